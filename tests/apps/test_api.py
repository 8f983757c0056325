"""The Python API: train -> Run, and everything a Run does, in a fresh Python process as a notebook user would."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import read_only
from PIL import Image

import animevae
from animevae.errors import UserError


@pytest.fixture(scope="module")
def api_run(tmp_path_factory):
    """A run the module's tests share: they read it (a test that writes into a run takes a copy)."""
    out = tmp_path_factory.mktemp("api") / "nb"
    run = animevae.train(out, data="builtin", builtin_count=160, epochs=2, image_size=48, batch_size=32, progress=False)
    with read_only(out, "api_run"):
        yield run


def test_the_issue_example_in_a_fresh_process(tmp_path):
    code = (
        "import animevae; run = animevae.train('runs/nb', data='builtin', epochs=1, image_size=48, progress=False); faces = run.generate(4)\n"
        "import json; print(json.dumps([[f.size, f.mode, type(f).__name__] for f in faces] + [len(animevae.Run('runs/nb').metrics)]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    *faces, epochs = json.loads(proc.stdout.strip().splitlines()[-1])
    assert faces == [[[48, 48], "RGB", "Image"]] * 4 and epochs == 1


def test_run_exposes_model_config_latents_and_metrics(api_run):
    assert isinstance(api_run, animevae.Run) and animevae.load_run(api_run.path).path == api_run.path
    assert api_run.model.config.image_size == 48 and not api_run.model.training
    assert api_run.config["train"]["epochs"] == 2 and api_run.config["model"]["num_layers"] == 4
    assert api_run.latents.mu.shape == (api_run.config["split"]["train"], 256)
    assert [m["epoch"] for m in api_run.metrics] == [1, 2]


def test_generate_reconstruct_interpolate(api_run):
    a, b = api_run.generate(2, seed=3)
    assert a.size == (48, 48) and a.tobytes() != b.tobytes()
    assert [f.tobytes() for f in api_run.generate(2, seed=3)] == [a.tobytes(), b.tobytes()]  # the seed fixes the draw
    assert api_run.generate(1, sampler="prior", temperature=0.5)[0].size == (48, 48)
    recon = api_run.reconstruct([a, b])
    assert len(recon) == 2 and recon[0].size == (48, 48)
    path = api_run.interpolate(a, b, steps=5)
    assert len(path) == 5
    # ends of a linear path decode the two endpoints' latents exactly
    za, zb = api_run.encode([a, b])
    assert path[0].tobytes() == api_run.interpolate(za, zb, steps=5)[0].tobytes()
    grid = animevae.show(path, nrow=5)
    assert isinstance(grid, Image.Image) and grid.size == (2 + 5 * 50, 2 + 50)


def test_evaluate_returns_the_metrics(api_run, tmp_path):
    shutil.copytree(api_run.path, tmp_path / "own")  # evaluate fits samplers into the run: the shared run must stay as trained
    m = animevae.Run(tmp_path / "own").evaluate(
        "builtin",
        out=tmp_path / "e.json",
        limit=8,
        k=2,
        n_samples=8,
        gmm_components=2,
        features="animevae.evaluation.features:pixel_features",
        c2st_max_rounds=2,
        progress=False,
    )
    assert m["likelihood"]["neg_iwae_per_image"] <= m["likelihood"]["neg_elbo_per_image"] + 1e-6
    assert m["data"]["images"] == 8 and json.loads((tmp_path / "e.json").read_text())["data"]["images"] == 8


def test_jupyter_shows_the_summary_and_the_grid(api_run):
    html = api_run._repr_html_()
    assert html.startswith("<pre>run: ") and "latent 256" in html
    assert '<img alt="latest sample grid" src="data:image/png;base64,' in html


def test_resume_and_mistakes_are_user_errors(api_run, tmp_path):
    own = tmp_path / "own"
    shutil.copytree(api_run.path, own)  # resuming writes into the run: the other tests' run must stay as trained
    run = animevae.train(own, resume=True, epochs=3, progress=False)
    assert [m["epoch"] for m in run.metrics] == [1, 2, 3]
    with pytest.raises(UserError, match="only --epochs and --max-minutes can change"):
        animevae.train(own, resume=True, lr=0.1)
    with pytest.raises(UserError, match="unknown setting 'learning_rate'"):
        animevae.train(tmp_path / "x", data="builtin", learning_rate=0.1)
    with pytest.raises(UserError, match="--lr must be a positive number"):
        animevae.train(tmp_path / "x", data="builtin", lr=-1.0)
    with pytest.raises(UserError, match="no config.json"):
        animevae.Run(tmp_path)
    with pytest.raises(UserError, match="images: expected uint8"):
        api_run.reconstruct(torch.zeros(1, 3, 10, 10))
