"""Never lose a run: exact resume after SIGKILL at random moments, SIGINT/SIGTERM, damaged checkpoints, NaN losses."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from messy_images import encode, write_parquet
from PIL import Image

from animevae.data.toyfaces import render_faces
from animevae.runs import load_tensors
from animevae.training import checkpoint

# A small model (48 px, 4 layers) so a step and a checkpoint take milliseconds; one thread for determinism.
BASE = [
    "--data",
    "builtin",
    "--builtin-count",
    "256",
    "--image-size",
    "48",
    "--base-channels",
    "16",
    "--latent-dim",
    "32",
    "--batch-size",
    "16",
    "--keep-last",
    "1",
    "--quiet",
    "--seed",
    "5",
]
SMALL = BASE + ["--epochs", "3"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def train_proc(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "animevae", "train", *map(str, args)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> tuple[int, str]:
    _, err = proc.communicate(timeout=timeout)
    return proc.returncode, err


def complete_checkpoints_verify(out: Path) -> list[str]:
    """Every checkpoint that has a manifest must verify; returns the problems found."""
    root = out / "checkpoints"
    problems = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if (d / "manifest.json").exists() and checkpoint._verify(d) is not None:
            problems.append(f"{d.name}: {checkpoint._verify(d)}")
    return problems


def wait_mid_write(out: Path, proc: subprocess.Popen, limit: float) -> bool:
    """Poll until a checkpoint is being written (its hidden temporary folder exists)."""
    end = time.monotonic() + limit
    root = out / "checkpoints"
    while time.monotonic() < end and proc.poll() is None:
        if root.is_dir() and any(d.name.startswith(".tmp-step_") for d in root.iterdir()):
            return True
        time.sleep(0.0005)
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "reference"
    code, err = finish(train_proc(*SMALL, "--out", out))
    assert code == 0, err
    return out


def test_sigkill_at_random_moments_then_resume_is_bit_identical(reference, tmp_path):
    out = tmp_path / "killed"
    rng = random.Random(1234)
    kills, mid_write, problems = 0, 0, []
    proc = train_proc(*SMALL, "--out", out, "--save-every-steps", "1")
    while True:
        if kills < 6:
            if kills % 2 == 1:  # every other kill aims at a checkpoint write in progress
                hit = wait_mid_write(out, proc, limit=30.0)
                mid_write += hit
            else:
                time.sleep(rng.uniform(0.5, 3.0))
            if proc.poll() is None:
                proc.kill()  # SIGKILL: no handler runs, no cleanup happens
                proc.wait()
                kills += 1
                problems += complete_checkpoints_verify(out)
                has_ckpt = any((d / "manifest.json").exists() for d in (out / "checkpoints").glob("step_*"))
                proc = train_proc("--resume", out) if has_ckpt else train_proc(*SMALL, "--out", out, "--save-every-steps", "1", "--overwrite")
                continue
        code, err = finish(proc)
        assert code == 0, err
        break
    assert kills >= 5, f"the run finished before {kills} kills could land; make it longer"
    assert problems == [], problems
    assert mid_write >= 1, "no kill landed during a checkpoint write"
    ref = load_tensors(reference / "model.safetensors")
    got = load_tensors(out / "model.safetensors")
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), f"{k} differs after {kills} kills and resumes"
    assert (reference / "latents.safetensors").read_bytes() == (out / "latents.safetensors").read_bytes()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_saves_checkpoint_and_says_how_to_resume(reference, tmp_path, sig, code):
    out = tmp_path / "signalled"
    proc = train_proc(*SMALL, "--out", out)
    assert wait_for(lambda: (out / "config.json").exists(), proc, 60)  # training is about to start
    time.sleep(0.3)
    proc.send_signal(sig)
    rc, err = finish(proc)
    if rc == 0:
        pytest.skip("the run finished before the signal arrived")
    assert rc == code, err
    assert f"--resume {out}" in err and "Traceback" not in err
    assert checkpoint.load_latest(out)[1]["step"] >= 1
    rc, err = finish(train_proc("--resume", out))
    assert rc == 0, err
    assert (reference / "model.safetensors").read_bytes() == (out / "model.safetensors").read_bytes()


def wait_for(cond, proc, limit) -> bool:
    end = time.monotonic() + limit
    while time.monotonic() < end and proc.poll() is None:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_damaged_newest_checkpoint_falls_back_with_warning(reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    ckpts = sorted((out / "checkpoints").glob("step_*"))
    assert len(ckpts) == checkpoint.KEEP
    newest = ckpts[-1]
    data = bytearray((newest / "state.safetensors").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (newest / "state.safetensors").write_bytes(bytes(data))
    _, meta, used = checkpoint.load_latest(out)
    assert used == ckpts[-2]
    assert "skipped" in capsys.readouterr().err
    (ckpts[-2] / "manifest.json").unlink()  # an incomplete one is skipped too
    with pytest.raises(Exception, match="no usable checkpoint"):
        checkpoint.load_latest(out)


def one_line_refusal(proc) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("animevae: error: "), proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize(
    "change, says",
    [(["--lr", "1e-3"], "(got --lr)"), (["--batch-size", "8"], "(got --batch-size)"), (["--preset", "sharp"], "(got --preset)")],
    ids=["lr", "batch-size", "preset"],
)
def test_resume_refuses_changed_settings(reference, tmp_path, cli, change, says):
    out = tmp_path / "run"
    shutil.copytree(reference, out)  # a real run with checkpoints, its own copy
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    msg = one_line_refusal(cli("train", "--resume", out, "--epochs", 4, *change, check=False))
    assert "--resume continues a run exactly as configured; only --epochs and --max-minutes can change" in msg and says in msg, msg
    assert {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before  # nothing trained or written


def test_resume_refuses_a_missing_run(tmp_path, cli):
    msg = one_line_refusal(cli("train", "--resume", tmp_path / "nothing", check=False))
    assert str(tmp_path / "nothing") in msg


def test_nonfinite_losses_stop_the_run_with_checkpoint_intact(tmp_path):
    out = tmp_path / "nan"
    rc, err = finish(train_proc(*BASE, "--epochs", "2", "--out", out, "--lr", "1e12", "--max-bad-steps", "3", "--precision", "fp32", "--save-every-steps", "1"))
    assert rc == 2, err
    assert "non-finite" in err and "Traceback" not in err
    assert checkpoint.load_latest(out) is not None


def test_a_hierarchical_run_resumes_bit_identically_after_sigkill(tmp_path):
    """Its finer groups' noise, priors and posteriors are all in the saved state: a killed run continues exactly."""
    hier = [*BASE, "--arch", "hierarchical", "--latent-dim", "144", "--epochs", "2"]
    code, err = finish(train_proc(*hier, "--out", tmp_path / "reference"))
    assert code == 0, err
    out = tmp_path / "killed"
    proc = train_proc(*hier, "--out", out, "--save-every-steps", "3")
    assert wait_for(lambda: any((d / "manifest.json").exists() for d in (out / "checkpoints").glob("step_*")), proc, 120)
    proc.kill()
    proc.wait()
    code, err = finish(train_proc("--resume", out))
    assert code == 0, err
    ref, got = load_tensors(tmp_path / "reference" / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert ref.keys() == got.keys() and any(k.startswith("decoder.groups.1.posterior") for k in ref)
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def _parquet_faces(path: Path, n: int, seed: int) -> Path:
    return write_parquet(path, [(f"{i}.png", encode(Image.fromarray(f), "PNG")) for i, f in enumerate(render_faces(n, seed=seed, size=48))])


def test_resume_checks_the_data_by_content(tmp_path, cli):
    """A touched or moved copy of the same files resumes; other faces are refused in one line that names the way on
    (--allow-data-change), which then resumes if there are as many faces, and refuses otherwise."""
    data, out = tmp_path / "faces.parquet", tmp_path / "run"
    _parquet_faces(data, 48, seed=1)
    flags = [a for a in BASE if a not in ("builtin", "--builtin-count", "256")]
    flags[flags.index("--data") + 1 : flags.index("--data") + 1] = [data]
    cli("train", *flags, "--epochs", 1, "--out", out)
    os.utime(data, ns=(0, data.stat().st_mtime_ns + 5 * 10**9))  # the same bytes, a new time (a fresh copy)
    cli("train", "--resume", out, "--epochs", 2, "--quiet")
    _parquet_faces(data, 48, seed=2)  # other faces, as many
    before = {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    msg = one_line_refusal(cli("train", "--resume", out, "--epochs", 3, "--quiet", check=False))
    assert "the data source changed since the run started" in msg and "--allow-data-change" in msg, msg
    assert {p.relative_to(out): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()} == before  # nothing trained or written
    cli("train", "--resume", out, "--epochs", 3, "--quiet", "--allow-data-change")
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    _parquet_faces(data, 47, seed=2)
    msg = one_line_refusal(cli("train", "--resume", out, "--epochs", 4, "--quiet", "--allow-data-change", check=False))
    assert "the run started on 48 faces, the data source now has 47" in msg, msg
    msg = one_line_refusal(cli("train", *flags, "--epochs", 1, "--out", tmp_path / "new", "--allow-data-change", check=False))
    assert "--allow-data-change goes with --resume" in msg, msg
