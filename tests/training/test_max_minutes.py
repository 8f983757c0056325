"""--max-minutes: a run stops when its time is spent, with every output written as at a normal end, and
--resume (raising the budget) continues it; stopped and resumed, it ends bit-identical to a run that never stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch
from safetensors import safe_open
from test_resume import BASE

from animevae.runs import load_tensors

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
RUN = [*BASE, "--epochs", "4", "--log-every", "2"]  # a budget check every 2 steps


def train(*args) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "animevae", "train", *map(str, args)], env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_a_spent_budget_writes_everything_and_resume_continues_exactly(tmp_path):
    train(*RUN, "--out", tmp_path / "reference")
    reference = [json.loads(x) for x in (tmp_path / "reference" / "metrics.jsonl").read_text().splitlines()]
    epoch_minutes = reference[0]["seconds"] / 60

    out = tmp_path / "budget"
    proc = train(*RUN, "--out", out, "--max-minutes", f"{1.5 * epoch_minutes:.5f}")
    assert "spent after" in proc.stderr and f"animevae train --resume {out} --max-minutes MORE" in proc.stderr
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert 1 <= len(lines) < 4 and lines[-1]["latents"] == "clean pass"  # stopped early, final latents from a clean pass
    with safe_open(str(out / "latents.safetensors"), "pt") as f:
        assert f.metadata() == {"pass": "clean"}
    assert (out / "model.safetensors").is_file() and (out / "samples" / f"epoch_{lines[-1]['epoch']:03d}.png").is_file()
    assert any((out / "checkpoints").glob("step_*"))

    proc = train("--resume", out, "--max-minutes", 1000)  # raise the budget: it runs to the planned 4 epochs
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["epoch"] for x in lines] == [1, 2, 3, 4] and not any(x["partial"] for x in lines)
    assert [x["heldout_loss"] for x in lines] == [x["heldout_loss"] for x in reference]
    a, b = load_tensors(tmp_path / "reference" / "model.safetensors"), load_tensors(out / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_max_minutes_is_checked(cli, tmp_path):
    proc = cli("train", "--data", "builtin", "--max-minutes", "0", "--out", tmp_path / "r", check=False)
    assert proc.returncode == 2 and "--max-minutes must be a positive number of minutes" in proc.stderr
