"""`animevae train --config run.toml`: file settings, flags override them, the resolved config is saved, mistakes are clear."""

from __future__ import annotations

import json

from PIL import Image

FAST = ["--builtin-count", "96", "--batch-size", "32", "--quiet"]


def test_config_file_with_flag_override_and_tensorboard(cli, tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text('[data]\nsource = "builtin"\n\n[model]\nlatent_dim = 64\n\n[train]\nepochs = 3\nlr = 0.002\nbeta = 0.5\ntensorboard = true\n')
    out = tmp_path / "run"
    cli("train", "--config", cfg, "--epochs", "1", "--out", out, *FAST)
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"]["latent_dim"] == 64 and saved["latent_dim"] == 64
    assert saved["train"]["epochs"] == 1  # the flag wins over the file
    assert saved["train"]["lr"] == 0.002 and saved["train"]["beta"] == 0.5
    assert saved["data"]["source"] == "builtin"
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    with Image.open(out / "loss.png") as im:
        assert im.size[0] > 100
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"loss/epoch_train", "loss/epoch_heldout"} <= set(events.Tags()["scalars"])
    assert "samples" in events.Tags()["images"]


def _error(cli, tmp_path, text: str) -> str:
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    proc = cli("train", "--config", cfg, "--out", tmp_path / "x", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stderr


def test_unknown_key_is_an_error(cli, tmp_path):
    assert "unknown setting" in _error(cli, tmp_path, "[train]\nepochz = 3\n")
    assert "unknown setting 'colour'" in _error(cli, tmp_path, "colour = 3\n")


def test_wrong_type_is_an_error(cli, tmp_path):
    assert "'epochs' must be int" in _error(cli, tmp_path, '[train]\nepochs = "ten"\n')
    assert "'convert_to_rgb' must be bool" in _error(cli, tmp_path, "[data]\nconvert_to_rgb = 1\n")


def test_unparsable_and_missing_files(cli, tmp_path):
    assert "cannot parse" in _error(cli, tmp_path, "[train\nepochs = 3\n")
    proc = cli("train", "--config", tmp_path / "nope.toml", check=False)
    assert proc.returncode == 2 and "no such file" in proc.stderr
