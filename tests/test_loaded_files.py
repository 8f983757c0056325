"""Everything loaded is checked against what it claims: latents against the model config and the run's split,
weights for finite values, a saved gmm mixture against the latents it was fitted on. One line, never garbage."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from animevae import runs
from animevae.sampling.generate import gmm_file, load_or_fit_gmm


@pytest.fixture
def run(run_copy, tmp_path):
    dest = tmp_path / "run"
    shutil.copytree(run_copy, dest)
    return dest


def edit(path, **changes):
    t = load_file(str(path))
    t.update(changes)
    save_file({k: v.contiguous() for k, v in t.items()}, str(path))


def one_line(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(
    "change, says",
    [
        (lambda t: {"mu": t["mu"][:, :100], "logvar": t["logvar"][:, :100]}, "latents are 100 wide but the model's latent_dim is 256"),
        (lambda t: {"mu": t["mu"][:10], "logvar": t["logvar"][:10], "row_id": t["row_id"][:10]}, "10 latent rows but the run trained on"),
        (lambda t: {"mu": t["mu"].index_fill(0, torch.tensor([3, 5]), float("nan"))}, "2 of"),
        (lambda t: {"logvar": t["logvar"].index_fill(0, torch.tensor([0]), float("inf"))}, "rows hold NaN or inf"),
    ],
)
@pytest.mark.parametrize("sampler", ["mix", "gmm"])
def test_latents_that_do_not_belong_are_refused(cli, run, tmp_path, change, says, sampler):
    path = run / runs.LATENTS
    edit(path, **change(load_file(str(path))))
    msg = one_line(cli("generate", "--run", run, "--sampler", sampler, "--n", 2, "--out", tmp_path / "g", check=False))
    assert says in msg and str(path) in msg
    assert not (tmp_path / "g").exists()


def test_non_finite_weights_are_refused_naming_the_tensor(cli, run, tmp_path):
    path = run / runs.WEIGHTS
    t = load_file(str(path))
    edit(path, **{"fc_decode.bias": torch.full_like(t["fc_decode.bias"], float("nan"))})
    msg = one_line(cli("generate", "--run", run, "--sampler", "prior", "--n", 2, "--out", tmp_path / "g", check=False))
    assert "tensor fc_decode.bias holds NaN or inf" in msg


def test_a_saved_mixture_is_used_only_for_the_latents_it_was_fitted_on(run, capsys):
    first = load_or_fit_gmm(str(run), 3, "diag")
    assert "fitting" in capsys.readouterr().err
    again = load_or_fit_gmm(str(run), 3, "diag")
    assert "fitting" not in capsys.readouterr().err and torch.equal(again.means, first.means)
    # other latents of the same shape (another run's, say): the mixture is stale and fitted again, saying why
    latents = load_file(str(run / runs.LATENTS))
    edit(run / runs.LATENTS, mu=latents["mu"] * 2)
    refit = load_or_fit_gmm(str(run), 3, "diag")
    assert "it was fitted on other latents" in capsys.readouterr().err and not torch.equal(refit.means, first.means)
    # a mixture file with the right fingerprint but tensors that do not fit: refused, refitted, said
    saved = gmm_file(run, 3, "diag")
    meta = runs.read_metadata(saved)
    save_file({"weights": torch.ones(3) / 3, "means": torch.zeros(3, 7), "scale": torch.ones(3, 7)}, str(saved), metadata=meta)
    load_or_fit_gmm(str(run), 3, "diag")
    assert "do not fit 256-wide latents" in capsys.readouterr().err
