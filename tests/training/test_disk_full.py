"""A disk that fills up mid-run, for real (a small tmpfs): the run stops with one line saying what failed and how
to resume (exit 2), its last complete checkpoint intact; once space is freed, --resume ends bit-identical to a
run that never stopped."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch
from conftest import tmpfs
from test_resume import BASE

from animevae.runs import load_tensors
from animevae.training import checkpoint

RUN = [*BASE, "--epochs", "6"]  # the resume test's small deterministic run, longer


@pytest.fixture
def small_disk(tmp_path):
    with tmpfs(tmp_path, "size=48m") as mnt:  # skips without root; under CI, fails
        yield mnt


def fill(folder) -> int:
    """Write until the disk is full; returns the bytes written."""
    written = 0
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (1 << 20))
                f.flush()
                written += 1 << 20
        except OSError:
            pass
    return written


def test_a_full_disk_stops_the_run_cleanly_and_resume_is_bit_identical(tmp_path, small_disk):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ANIMEVAE_CACHE": str(tmp_path / "cache")}
    cmd = [sys.executable, "-m", "animevae", "train", *RUN]
    ref = subprocess.run([*cmd, "--out", tmp_path / "reference"], env=env, capture_output=True, text=True, timeout=600)
    assert ref.returncode == 0, ref.stderr[-2000:]

    out = small_disk / "run"
    proc = subprocess.Popen([*cmd, "--out", out], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 300
    while not ((out / "metrics.jsonl").exists() and any((out / "checkpoints").glob("step_*"))):
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1][-2000:]
        time.sleep(0.01)
    assert fill(small_disk) > 0
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-2000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("animevae: error: cannot write "), err
    assert "No space left on device" in lines[0] and f"animevae train --resume {out}" in lines[0]
    steps = sorted((out / "checkpoints").glob("step_*"))
    assert steps and all(checkpoint._verify(s) is None for s in steps)  # every checkpoint left is complete

    (small_disk / "filler").unlink()
    resumed = subprocess.run([*cmd[:4], "--resume", out], env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_tensors(tmp_path / "reference" / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 6
