"""The two-stage sampler (Dai & Wipf 2019): a second VAE fitted on the stored latents matches their distribution
where N(0, I) does not, is seeded, saves and reloads, is cached like the gmm sampler (as the diffusion sampler
is: both checked here), and runs from the CLI."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from animevae import runs
from animevae.evaluation.metrics import frechet_distance
from animevae.sampling.generate import fitted_files, load_or_fit_diffusion, load_or_fit_two_stage
from animevae.sampling.samplers import DiffusionSampler, PriorSampler, TwoStageSampler


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def curved() -> torch.Tensor:
    """Latents on a curved, shifted, unevenly scaled 2-d sheet in 8 dimensions: far from N(0, I)."""
    g = _gen(0)
    a, b = torch.rand(4000, generator=g) * 2 * math.pi, torch.randn(4000, generator=g)
    x = torch.stack([3 * torch.cos(a), 3 * torch.sin(a), 0.5 * b, a.sin() * b, *(0.05 * torch.randn(4, 4000, generator=g))], 1)
    return x + torch.arange(8.0)


def test_it_matches_the_latents_distribution_far_better_than_the_prior(curved):
    sampler = TwoStageSampler.fit(curved, steps=1500, hidden=128)
    two_stage = sampler.sample(4000, _gen(1))
    prior = PriorSampler(8).sample(4000, _gen(1))
    held = curved[torch.randperm(4000, generator=_gen(2))]
    assert frechet_distance(two_stage, held) < 0.05 * frechet_distance(prior, held)
    assert torch.equal(sampler.sample(10, _gen(3)), sampler.sample(10, _gen(3)))
    small = [TwoStageSampler.fit(curved, steps=50, hidden=32) for _ in range(2)]  # the fit is seeded (a small fit shows it)
    assert torch.equal(small[0].sample(10, _gen(3)), small[1].sample(10, _gen(3)))
    back = TwoStageSampler.from_tensors(sampler.tensors(), 8)
    assert torch.equal(back.sample(10, _gen(3)), sampler.sample(10, _gen(3)))
    with pytest.raises(ValueError, match="not a two-stage sampler for 7-wide latents"):
        TwoStageSampler.from_tensors(sampler.tensors(), 7)


@pytest.mark.parametrize(
    "load_or_fit, filename, says",
    [
        (load_or_fit_two_stage, "two_stage.safetensors", "two-stage: fitting a second VAE"),
        (load_or_fit_diffusion, "diffusion.safetensors", "diffusion: fitting a denoiser"),
    ],
)
def test_a_fitted_sampler_is_fitted_once_per_run_and_refitted_for_new_latents(fresh_run, capsys, monkeypatch, load_or_fit, filename, says):
    for cls in (TwoStageSampler, DiffusionSampler):  # when a fit happens is tested here, not how good it is: small fits
        monkeypatch.setattr(cls, "fit", functools.partial(cls.fit, steps=50, hidden=32))
    first = load_or_fit(str(fresh_run))
    assert says in capsys.readouterr().err and (fresh_run / filename).is_file()
    again = load_or_fit(str(fresh_run))
    assert "fitting" not in capsys.readouterr().err
    assert torch.equal(again.sample(4, _gen(0)), first.sample(4, _gen(0)))
    old = runs.Latents.load(fresh_run / runs.LATENTS)
    runs.Latents(old.mu + 1, old.logvar, old.row_id).save(fresh_run / runs.LATENTS)
    load_or_fit(str(fresh_run))
    assert "it was fitted on other latents" in capsys.readouterr().err


def test_generate_with_the_two_stage_sampler(cli, fresh_run, tmp_path):
    proc = cli("generate", "--run", fresh_run, "--sampler", "two-stage", "--n", 6, "--seed", 3, "--out", tmp_path / "g")
    assert "6 faces written" in proc.stdout
    assert "two-stage: fitting a second VAE" in proc.stderr and "two_stage.safetensors: fitted in" in proc.stderr
    assert fitted_files(fresh_run) == [fresh_run / "two_stage.safetensors"]  # the named sampler was fitted, no other
    faces = sorted(p.name for p in (tmp_path / "g").glob("0000*.png"))
    assert len(faces) == 6
    cli("generate", "--run", fresh_run, "--sampler", "prior", "--n", 6, "--seed", 3, "--out", tmp_path / "prior")
    assert all((tmp_path / "g" / f).read_bytes() != (tmp_path / "prior" / f).read_bytes() for f in faces)  # its draws, not N(0, I)'s
