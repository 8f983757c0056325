"""`animevae info --run R`, through the real CLI."""

from __future__ import annotations

import json
import shutil

from animevae.runs import read_json


def _one_line_error(proc, *needles) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("animevae: error: "), proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_info_summarizes_a_run(cli, tiny_run):
    out = cli("info", "--run", tiny_run).stdout
    config = read_json(tiny_run / "config.json")
    metrics = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert out.startswith(f"run: {tiny_run}\n")
    # model config + parameter count
    assert "3x96x96 images, latent 256, 5 conv layers from 32 channels" in out
    assert "arch conv, bernoulli likelihood, objective elbo; 9,122,115 parameters" in out
    # data source + filter counts + split
    assert "data: builtin (320 procedural faces) [builtin]: kept 320" in out
    assert "undecodable 0" in out
    assert f"train {config['split']['train']}, held out {config['split']['heldout']}" in out
    # training settings
    assert "batch 32, Adam lr 0.001, beta 1.0, seed 1" in out
    assert "rotation +-10 deg" in out
    # progress, best held-out loss and its epoch, last speed
    assert "epochs: 2 done of 2 planned" in out
    best = min(metrics, key=lambda m: m["heldout_loss"])
    assert f"best held-out loss: {best['heldout_loss']:,.1f} nats per image" in out
    assert f"at epoch {best['epoch']}" in out
    assert f"{metrics[-1]['images_per_s']:,.1f} images/s" in out
    assert "latents.safetensors from the clean pass" in out  # the last epoch re-encodes every training image
    assert f"command: {config['command']}" in out
    # files with sizes, epoch copies, checkpoints
    size = (tiny_run / "model.safetensors").stat().st_size
    assert "model.safetensors" in out and f"{size / 1e6:,.1f} MB" in out
    for name in ("config.json", "latents.safetensors", "metrics.jsonl", "loss.png", "samples/"):
        assert f"  {name}" in out, name
    assert "epoch copies: epoch_001, epoch_002" in out
    checkpoints = sorted(p.name for p in (tiny_run / "checkpoints").iterdir())
    assert checkpoints and all(f"  {c} (complete" in out for c in checkpoints)
    assert "end of epoch 2" in out
    assert f"animevae train --resume {tiny_run} --epochs N" in out


def test_info_on_a_run_that_has_not_finished_an_epoch(cli, tiny_run, tmp_path):
    run = tmp_path / "young"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run)
    out = cli("info", "--run", run).stdout
    assert "epochs: 0 done of 2 planned" in out
    assert "best held-out loss: none yet" in out
    assert "(no model.safetensors: the run has not finished an epoch)" in out
    assert "checkpoints: none" in out


def test_info_errors_are_one_line(cli, tmp_path):
    _one_line_error(cli("info", "--run", tmp_path / "nope", check=False), "no such run folder")
    _one_line_error(cli("info", "--run", tmp_path, check=False), "no config.json")
    (tmp_path / "config.json").write_text("[1, 2]")
    _one_line_error(cli("info", "--run", tmp_path, check=False), "expected a JSON object")
