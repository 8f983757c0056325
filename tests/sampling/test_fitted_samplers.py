"""A run's own sampler is fitted when training ends and kept in the run; a fit needed by two processes runs once."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

from animevae import runs
from animevae.sampling.generate import fitted_files, gmm_file


def test_train_ends_by_fitting_the_runs_own_sampler(sharp_run):
    path = gmm_file(sharp_run, 10, "full")
    assert path.is_file()
    meta = runs.read_metadata(path)
    assert meta["latents_sha256"] == runs.sha256_file(sharp_run / runs.LATENTS)  # fitted on the final latents
    assert float(meta["fit_seconds"]) >= 0
    said = (sharp_run / "train.stderr").read_text()
    assert "gmm: fitting 10 full-covariance components" in said and "fitted in" in said  # shown while training
    assert fitted_files(sharp_run) == [path]


def test_generate_right_after_train_does_not_fit(cli, sharp_run, tmp_path):
    proc = cli("generate", "--run", sharp_run, "--n", 8, "--out", tmp_path / "faces")
    assert "fitting" not in proc.stderr, proc.stderr
    assert len(list((tmp_path / "faces").glob("0*.png"))) == 8


def test_a_seed_preset_run_fits_nothing_when_it_ends(tiny_run):
    assert fitted_files(tiny_run) == [] and not list(tiny_run.glob(".*.safetensors.lock"))


def test_two_generates_on_an_unfitted_run_fit_once_and_draw_the_same_faces(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "model.safetensors", "latents.safetensors"):
        shutil.copy2(tiny_run / name, run / name)
    # hold the fit's lock while both start, so both reach it before either has fitted
    lock = runs.FolderLock(run, ".gmm_4_full.safetensors.lock", what="--run").acquire()
    logs = [tmp_path / f"stderr{i}" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "animevae",
                "generate",
                "--run",
                str(run),
                "--sampler",
                "gmm",
                "--gmm-components",
                "4",
                "--n",
                "6",
                "--seed",
                "5",
                "--out",
                str(tmp_path / f"out{i}"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=log.open("w"),
        )  # fmt: skip
        for i, log in enumerate(logs)
    ]
    deadline = time.monotonic() + 120  # both blocked on the lock (each says so), or one of them already failed
    while not all("waiting for" in _text(log) for log in logs) and time.monotonic() < deadline and all(p.poll() is None for p in procs):
        time.sleep(0.2)
    lock.release()
    codes = [p.wait(timeout=300) for p in procs]
    said = [_text(log) for log in logs]
    assert codes == [0, 0], said
    assert all("waiting for" in e for e in said), said  # both waited on the lock this test held
    assert sorted(e.count("gmm: fitting") for e in said) == [0, 1], said  # one fitted, the other read its file
    assert (tmp_path / "out0" / "grid.png").read_bytes() == (tmp_path / "out1" / "grid.png").read_bytes()
    assert gmm_file(run, 4, "full").is_file()


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def test_the_demo_holds_the_runs_own_sampler_before_the_first_click_and_knows_which_would_fit(sharp_run):
    from animevae.demo import DemoModel

    demo = DemoModel(str(sharp_run))
    assert demo.default_sampler == "gmm" and ("gmm", "2", 1.0) in demo._samplers  # loaded at start, not on the first click
    assert not demo.needs_fit("gmm") and not demo.needs_fit("mix") and not demo.needs_fit("prior")
    assert demo.needs_fit("diffusion") and demo.needs_fit("two-stage")  # never fitted on this run: the page says so first


def test_generate_temperature_reaches_the_runs_gmm(cli, sharp_run, tmp_path):
    """--temperature 0 draws every face at a component's mean: at most as many distinct faces as components."""
    cli("generate", "--run", sharp_run, "--n", 24, "--temperature", 0, "--seed", 3, "--out", tmp_path / "cold")
    cli("generate", "--run", sharp_run, "--n", 24, "--seed", 3, "--out", tmp_path / "warm")
    distinct = lambda folder: len({p.read_bytes() for p in folder.glob("0*.png")})  # noqa: E731
    assert distinct(tmp_path / "cold") <= 10 < distinct(tmp_path / "warm") == 24
