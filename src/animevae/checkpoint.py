"""Checkpoints for exact resume: everything needed to continue a run as if it had never stopped.

    runs/NAME/checkpoints/step_000001234/
      state.safetensors   weights, optimizer moments, the EMA copy, RNG states, the epoch's running sums
      state.json          epoch, step, optimizer hyper-parameters, grad-scaler state, metrics so far
      manifest.json       sha256 of both files, written last: no manifest = an incomplete checkpoint

Only safetensors and JSON: loading a checkpoint can never run code. On resume the newest checkpoint
whose manifest and hashes check out is used; a damaged one is skipped with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from . import runs
from .errors import UserError

KEEP = 2  # checkpoints kept: the newest may be the one a crash interrupted


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    """Flatten an optimizer's state into named tensors + JSON-able param groups."""
    sd = optimizer.state_dict()
    tensors = {f"optim.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if isinstance(v, torch.Tensor)}
    return tensors, sd["param_groups"]


def load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # Moments must share their parameter's memory layout (channels_last): fused kernels walk raw storage.
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    optimizer.state[p][name] = torch.empty_like(p).copy_(value)


def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    np_state = np.random.get_state()
    py = random.getstate()
    return tensors, {"python": [py[0], list(py[1]), py[2]], "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    npst = meta["numpy"]
    np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32), *npst[2:]))


def capture(model, ema, optimizer, scaler, torch_states, aug_states, rng_rest: dict, rng_meta: dict, sums, progress: dict):
    """Everything a resume needs, as (tensors, JSON meta). ``torch_states``/``aug_states``: one RNG state per rank."""
    opt_t, groups = optimizer_tensors(optimizer)
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v for k, v in ema.state_dict().items()} if ema is not None else {})
    tensors.update(opt_t)
    tensors.update({f"rng.torch.{r}": s for r, s in enumerate(torch_states)})
    tensors.update({f"rng.aug.{r}": s for r, s in enumerate(aug_states)})
    tensors.update({k: v for k, v in rng_rest.items() if k != "rng.torch"})
    tensors["sums"] = sums
    meta = {**progress, "param_groups": groups, "scaler": scaler.state_dict() if scaler.is_enabled() else None, "rng": rng_meta}
    return tensors, meta


def restore(tensors: dict, meta: dict, model, ema, optimizer, scaler, aug_gen: torch.Generator, rank: int) -> None:
    """Put a captured state back: weights, EMA, optimizer moments, grad scaler, and this rank's RNG states."""
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if ema is not None:
        ema.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}, strict=True)
    load_optimizer(optimizer, tensors, meta["param_groups"])
    if meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    own = {"rng.torch": tensors[f"rng.torch.{rank}"]}
    if "rng.cuda" in tensors:
        own["rng.cuda"] = tensors["rng.cuda"]
    set_rng_state(own, meta["rng"])
    aug_gen.set_state(tensors[f"rng.aug.{rank}"].to(aug_gen.device) if aug_gen.device.type != "cpu" else tensors[f"rng.aug.{rank}"])


def _discard(path: Path) -> None:
    """Remove a folder without ever leaving a half-deleted ``step_*``: rename it away first."""
    trash = path.with_name(f".trash-{path.name}-{os.getpid()}")
    os.replace(path, trash)
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
    manifest = {name: _sha256(tmp / name) for name in ("state.safetensors", "state.json")}
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
        if not path.is_file() or _sha256(path) != digest:
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
