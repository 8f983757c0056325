"""Checkpoints for exact resume: everything needed to continue a run as if it had never stopped.

    runs/NAME/checkpoints/step_000001234/
      state.safetensors   weights, optimizer moments by name, the EMA copy, RNG states, the epoch's running sums
      state.json          epoch, step, optimizer hyper-parameters, grad-scaler state, metrics so far
      manifest.json       sha256 of both files, written last: no manifest = an incomplete checkpoint

What goes in is ``TrainState.capture()`` (state.py); this module only writes, verifies and finds them.
Only safetensors and JSON: loading a checkpoint can never run code. On resume the newest checkpoint
whose manifest and hashes check out is used; a damaged one is skipped with a warning.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import torch

from .. import runs
from ..errors import UserError

KEEP = 2  # checkpoints kept: the newest may be the one a crash interrupted


def _discard(path: Path) -> None:
    """Remove a folder without ever leaving a half-deleted ``step_*``: rename it away first."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
    (trash / "manifest.json").unlink(missing_ok=True)  # first: a removal cut short leaves no manifest over partial files
    shutil.rmtree(trash, ignore_errors=True)


def save(folder: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write checkpoint ``step`` into a hidden folder, then rename it into place; keep the newest KEEP.

    A ``step_*`` folder is therefore always complete (the manifest is a second check), whatever
    instant the process dies at: a kill leaves at most a hidden ``.tmp-*``/``.trash-*`` folder.
    """
    root = folder / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".*-step_*"):
        shutil.rmtree(stale, ignore_errors=True)
    dest = root / f"step_{step:09d}"
    tmp = root / f".tmp-step_{step:09d}-{os.getpid()}"
    runs.save_tensors(tensors, tmp / "state.safetensors")
    runs.write_json(tmp / "state.json", meta)
    manifest = {name: runs.sha256_file(tmp / name) for name in ("state.safetensors", "state.json")}
    runs.write_json(tmp / "manifest.json", manifest)
    if dest.exists():  # the same step saved again after a resume
        _discard(dest)
    os.replace(tmp, dest)
    runs.fsync_dir(root)
    for old in sorted(p for p in root.iterdir() if p.name.startswith("step_"))[:-KEEP]:
        _discard(old)
    return dest


def _verify(dest: Path) -> str | None:
    """None if the checkpoint is complete and undamaged, else what is wrong."""
    manifest = dest / "manifest.json"
    if not manifest.is_file():
        return "incomplete (no manifest)"
    try:
        expected = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return "unreadable manifest"
    for name, digest in expected.items():
        path = dest / name
        if not path.is_file() or runs.sha256_file(path) != digest:
            return f"{name} damaged or missing"
    return None


def load_latest(folder: Path) -> tuple[dict[str, torch.Tensor], dict, Path]:
    """The newest valid checkpoint of a run: (tensors, meta, path); warns about each damaged one skipped."""
    root = folder / "checkpoints"
    candidates = sorted((p for p in root.iterdir() if p.name.startswith("step_")), reverse=True) if root.is_dir() else []
    for dest in candidates:
        problem = _verify(dest)
        if problem is None:
            try:
                return runs.load_tensors(dest / "state.safetensors"), runs.read_json(dest / "state.json"), dest
            except UserError as e:
                problem = str(e)
        print(f"animevae: warning: checkpoint {dest.name} skipped: {problem}; trying the previous one", file=sys.stderr)
    raise UserError(f"--resume {folder}: no usable checkpoint in {root} (the run may not have finished a step yet); start it again with --overwrite")
