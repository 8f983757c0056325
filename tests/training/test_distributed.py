"""Two real CPU processes under torchrun (gloo): each trains its shard, rank 0 writes one row-aligned latents file."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import torch

from animevae.config import DataConfig
from animevae.data.cache import load_images
from animevae.data.split import split_rows
from animevae.models.vae import VAE, load_weights
from animevae.runs import Latents


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_cover_every_row_once(tmp_path, shared_faces):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        "-m",
        "animevae",
        "train",
        "--data",
        shared_faces,
        "--limit",
        "300",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--out",
        out,
        "--quiet",
        "--seed",
        "3",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(list(map(str, cmd)), capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("run written to") == 1  # only rank 0 speaks
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    train_rows, held_out = split_rows(300, config["train"]["val_fraction"], 3)
    latents = Latents.load(out / "latents.safetensors")
    assert latents.row_id.tolist() == sorted(train_rows.tolist())  # every training row exactly once, in order
    assert len(set(latents.row_id.tolist()) & set(held_out.tolist())) == 0
    assert torch.isfinite(latents.mu).all() and latents.mu.abs().sum() > 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 2 and lines[1]["loss"] < lines[0]["loss"]
    assert lines[0]["step"] == len(train_rows) // (2 * 32)  # each rank steps through its half of the epoch

    # Epoch 1 kept the training pass's latents, gathered from both ranks, and filled the rows no step
    # reached (the dropped partial batch) with a clean pass: those alone match the epoch-1 model's
    # eval-mode encoding of the plain image.
    first = Latents.load(out / "epochs" / "epoch_001" / "latents.safetensors")
    assert first.row_id.tolist() == sorted(train_rows.tolist())
    faces = load_images(DataConfig(source=str(shared_faces), limit=300), 96, progress=False)
    where = {int(r): i for i, r in enumerate(faces.row_ids)}
    x = torch.from_numpy(faces.images[np.array([where[int(r)] for r in first.row_id])]).float() / 255
    model = VAE()
    load_weights(model, out / "epochs" / "epoch_001" / "model.safetensors")
    with torch.no_grad():
        clean = model.eval().encode(x).mu
    rel = (first.mu - clean).norm(dim=1) / clean.norm(dim=1)
    assert int((rel > 0.05).sum()) == lines[0]["step"] * 2 * 32  # the rows the two ranks trained on
    assert int((rel < 0.05).sum()) == len(train_rows) - lines[0]["step"] * 2 * 32
