"""The acceptance run: 2 epochs on 1,000 shared faces through the parquet path and the real CLI, then fine-tuning."""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from animevae import runs
from animevae.config import FINETUNE_LR, ModelConfig
from animevae.data.split import split_rows
from animevae.models.vae import VAE

LIMIT = 1000
METRIC_KEYS = {
    "epoch",
    "step",
    "loss",
    "recon",
    "kl",
    "recon_per_dim",
    "kl_per_dim",
    "heldout_loss",
    "heldout_recon",
    "heldout_kl",
    "images_per_s",
    "seconds",
    "eval_seconds",
}
ENCODER_PREFIXES = ("encoder.", "fc_mu.", "fc_logvar.")
DECODER_PREFIXES = ("fc_decode.", "decoder.")


@pytest.fixture(scope="module")
def faces_run(shared_faces, tmp_path_factory, cli) -> Path:
    out = tmp_path_factory.mktemp("acceptance") / "run"
    cli("train", "--data", shared_faces, "--limit", LIMIT, "--epochs", 2, "--out", out, "--keep-last", 1, "--quiet")
    return out


def _parquet_rows(folder: Path, rows: list[int]) -> dict[int, bytes]:
    """Encoded image bytes of global rows (files in sorted order, as a Hub-format parquet folder reads)."""
    wanted, found, base = sorted(rows), {}, 0
    for f in sorted(folder.glob("**/*.parquet")):
        pf = pq.ParquetFile(f)
        n = pf.metadata.num_rows
        here = [r for r in wanted if base <= r < base + n]
        if here:
            table = pf.read(columns=["image"]).slice(0, here[-1] - base + 1)
            cells = table.column("image").to_pylist()
            for r in here:
                found[r] = cells[r - base]["bytes"]
        base += n
        if len(found) == len(wanted):
            break
    return found


# -- the run folder ------------------------------------------------------------------------------


def test_config_json(faces_run, shared_faces):
    cfg = json.loads((faces_run / "config.json").read_text())
    for k, v in asdict(ModelConfig()).items():
        assert cfg[k] == v, k  # model fields at top level: a from_pretrained target
    assert cfg["train"]["epochs"] == 2 and cfg["train"]["keep_last"] == 1 and cfg["train"]["lr"] == 1e-3
    assert cfg["data"]["limit"] == LIMIT and cfg["data"]["source"] == str(shared_faces)
    assert cfg["data_stats"]["counts"]["kept"] == LIMIT
    assert cfg["data_stats"]["source"]["kind"] == "parquet"
    assert cfg["data_stats"]["source"]["rows"] == LIMIT
    train_pos, val_pos = split_rows(LIMIT, cfg["train"]["val_fraction"], cfg["train"]["seed"])
    assert cfg["split"] == {"train": len(train_pos), "heldout": len(val_pos)}


def test_model_weights(faces_run):
    state = load_file(str(faces_run / "model.safetensors"))
    fresh = VAE(ModelConfig()).state_dict()
    assert set(state) == set(fresh)
    assert all(state[k].shape == v.shape for k, v in fresh.items())
    assert all(torch.isfinite(v.float()).all() for v in state.values())


def test_latents_one_row_per_training_image(faces_run):
    cfg = json.loads((faces_run / "config.json").read_text())
    lat = runs.Latents.load(faces_run / "latents.safetensors")
    train_pos, val_pos = split_rows(LIMIT, cfg["train"]["val_fraction"], cfg["train"]["seed"])
    assert len(val_pos) > 0 and len(train_pos) + len(val_pos) == LIMIT
    assert lat.mu.shape == (len(train_pos), 256) and lat.logvar.shape == (len(train_pos), 256)
    rows = lat.row_id.tolist()
    assert len(set(rows)) == len(rows)
    assert min(rows) >= 0 and max(rows) < LIMIT
    # every image was kept, so row ids are positions: the training split exactly, none held out
    assert set(rows) == set(train_pos.tolist())
    assert not set(rows) & set(val_pos.tolist())
    assert torch.isfinite(lat.mu).all() and torch.isfinite(lat.logvar).all()
    assert lat.mu.std(0).mean() > 0  # not one constant latent


def test_metrics(faces_run):
    lines = [json.loads(l) for l in (faces_run / "metrics.jsonl").read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1, 2]
    for l in lines:
        assert METRIC_KEYS <= set(l)
        for k in METRIC_KEYS:
            assert isinstance(l[k], (int, float)) and math.isfinite(l[k]), k
        assert l["loss"] == pytest.approx(l["recon"] + l["kl"], rel=1e-9)  # beta 1
        assert l["recon_per_dim"] == pytest.approx(l["recon"] / (3 * 96 * 96), rel=1e-9)
        assert l["kl_per_dim"] == pytest.approx(l["kl"] / 256, rel=1e-9)
        assert l["heldout_loss"] == pytest.approx(l["heldout_recon"] + l["heldout_kl"], rel=1e-9)
        assert 0 < l["recon_per_dim"] < math.log(2) * 1.5  # BCE per pixel, in nats
        assert l["images_per_s"] > 0 and l["seconds"] > 0 and l["eval_seconds"] > 0
    assert lines[1]["step"] > lines[0]["step"] > 0
    assert lines[1]["heldout_loss"] < lines[0]["heldout_loss"]
    assert [l["latents"] for l in lines] == ["training pass", "clean pass"]  # the default: a clean pass after the last epoch


def test_pictures(faces_run):
    for name in ("samples/epoch_001.png", "samples/epoch_002.png", "loss.png"):
        with Image.open(faces_run / name) as im:
            im.load()
            assert im.format == "PNG" and im.mode in ("RGB", "RGBA")
            size = im.size
        if name.startswith("samples"):
            assert size == (2 + 8 * 98, 2 + 8 * 98)  # 64 faces, 8 x 8, 2px gaps
        else:
            assert min(size) >= 200  # a real plot, not a placeholder


def test_epoch_copies_bounded_by_keep_last(faces_run):
    assert sorted(p.name for p in (faces_run / "epochs").iterdir()) == ["epoch_002"]
    copy = faces_run / "epochs" / "epoch_002"
    for name in ("model.safetensors", "latents.safetensors"):
        assert (copy / name).read_bytes() == (faces_run / name).read_bytes()


def test_latents_are_the_encoder_means_of_their_images(faces_run, shared_faces):
    model = VAE.from_pretrained(faces_run).eval()
    lat = runs.Latents.load(faces_run / "latents.safetensors")
    picks = [0, 1, 17, len(lat.row_id) // 2, len(lat.row_id) - 1]
    rows = [int(lat.row_id[i]) for i in picks]
    encoded = _parquet_rows(shared_faces, rows)
    images = []
    for r in rows:
        with Image.open(io.BytesIO(encoded[r])) as im:
            im = im.convert("RGB") if im.mode != "RGB" else im
            if im.size != (96, 96):
                im = im.resize((96, 96), Image.BILINEAR)
            images.append(np.asarray(im).transpose(2, 0, 1))
    x = torch.from_numpy(np.stack(images)).float() / 255
    with torch.no_grad():
        ref = model.encode(x).mu
    stored = lat.mu[picks]
    for i in range(len(picks)):
        rel = (stored[i] - ref[i]).norm() / ref[i].norm()
        assert rel < 5e-2, (rows[i], rel.item())
    # and the rows are told apart: another row's mean is much farther off
    for i in range(len(picks)):
        j = (i + 1) % len(picks)
        assert (stored[i] - ref[j]).norm() / ref[j].norm() > 4 * (stored[i] - ref[i]).norm() / ref[i].norm()


def _latents_file(path: Path) -> tuple[dict, torch.Tensor]:
    """(metadata, mu and logvar side by side)."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        return f.metadata(), torch.cat([f.get_tensor("mu"), f.get_tensor("logvar")], 1)


def test_clean_latents_choice_changes_only_the_latents(shared_faces, tmp_path, cli):
    """Recording the training pass's latents must not disturb training: last / every / never reach
    bit-identical weights; an epoch's latents are the clean pass's exactly when the choice says so.
    A 48-px model: the test compares the three choices with each other, not with the seed's numbers."""
    for choice in ("last", "every", "never"):
        small = ["--limit", 300, "--epochs", 2, "--batch-size", 32, "--image-size", 48]
        cli("train", "--data", shared_faces, *small, "--out", tmp_path / choice, "--clean-latents", choice, "--quiet")
    weights = {c: (tmp_path / c / "model.safetensors").read_bytes() for c in ("last", "every", "never")}
    assert weights["last"] == weights["every"] == weights["never"]
    lat = {(c, e): _latents_file(tmp_path / c / "epochs" / f"epoch_00{e}" / "latents.safetensors") for c in ("last", "every", "never") for e in (1, 2)}
    assert lat["last", 1][0] == {"pass": "training"} and lat["last", 2][0] == {"pass": "clean"}
    for (c, e), (d, f) in ((("last", 1), ("never", 1)), (("last", 2), ("every", 2))):  # same pass, same values
        assert lat[c, e][0] == lat[d, f][0] and torch.equal(lat[c, e][1], lat[d, f][1])
    assert lat["every", 1][0]["pass"] == "clean" and lat["never", 2][0]["pass"] == "training"
    for e in (1, 2):  # the training pass saw augmented images in training mode: far from the clean pass
        assert (lat["every", e][1] - lat["never", e][1]).norm() > 0.1 * lat["every", e][1].norm()
    train_rows, _ = split_rows(300, 0.05, 0)
    for c in ("last", "every", "never"):
        for e in (1, 2):
            assert runs.Latents.load(tmp_path / c / "epochs" / f"epoch_00{e}" / "latents.safetensors").row_id.tolist() == train_rows.tolist()
    lines = [json.loads(x) for x in (tmp_path / "last" / "metrics.jsonl").read_text().splitlines()]
    assert [x["latents"] for x in lines] == ["training pass", "clean pass"]


def test_epoch_latents_fills_rows_the_training_pass_missed():
    """Recorded rows keep the training pass's values; rows never recorded (a resume, the dropped partial
    batch) or recorded non-finite (a bad step) get the clean encoding; a cleared buffer starts over."""
    from animevae.data.device import DeviceImages
    from animevae.training.passes import PassLatents, encode_rows, epoch_latents

    torch.manual_seed(0)
    model = VAE(ModelConfig(image_size=24, num_layers=3, base_channels=8, latent_dim=4)).eval()
    images = np.random.default_rng(0).integers(0, 256, (10, 3, 24, 24), dtype=np.uint8)
    data = DeviceImages(images, torch.device("cpu"))
    train_pos = np.array([0, 2, 3, 5, 6, 7, 9])  # 1, 4, 8 are held out
    recorded = PassLatents(10, 4, torch.device("cpu"))
    recorded.record(np.array([9, 2]), torch.full((2, 4), 7.0), torch.full((2, 4), -1.0))
    recorded.record(np.array([5]), torch.full((1, 4), float("nan")), torch.zeros(1, 4))
    pos, mu, logvar, _ = epoch_latents(model, data, train_pos, train_pos, recorded, None, world=1, rank=0)
    assert sorted(pos.tolist()) == train_pos.tolist()  # every training row once, no held-out row
    by_pos = {int(q): i for i, q in enumerate(pos)}
    for q in (2, 9):
        assert torch.equal(mu[by_pos[q]], torch.full((4,), 7.0)) and torch.equal(logvar[by_pos[q]], torch.full((4,), -1.0))
    clean_mu, clean_logvar = encode_rows(model, data, np.array([0, 3, 5, 6, 7]), 512, None)
    for i, q in enumerate((0, 3, 5, 6, 7)):
        assert torch.allclose(mu[by_pos[q]], clean_mu[i]) and torch.allclose(logvar[by_pos[q]], clean_logvar[i])
    recorded.clear()
    pos, mu, _, _ = epoch_latents(model, data, train_pos, train_pos, recorded, None, world=1, rank=0)
    assert not (mu == 7.0).any()  # nothing carried over from the last epoch


def test_the_clean_pass_keeps_a_posterior_draw_of_each_faces_detail_latents_fixed_by_the_seed():
    """A hierarchical model's detail latents in the latents file are posterior draws (what training decodes), the
    same for the same seed, not the posterior means; the finer scale's beside them, drawn given the detail ones."""
    from animevae.data.device import DeviceImages
    from animevae.training.passes import encode_rows

    torch.manual_seed(0)
    model = VAE(ModelConfig(arch="hierarchical", image_size=48, num_layers=4, base_channels=8, latent_dim=144)).eval()
    images = np.random.default_rng(0).integers(0, 256, (6, 3, 48, 48), dtype=np.uint8)
    data = DeviceImages(images, torch.device("cpu"))
    rows = np.arange(6)
    mu, _, detail, fine = encode_rows(model, data, rows, 4, None, detail=True, seed=5)
    _, means = model.encode_detail(data.pixels(rows, torch.float32))
    assert detail.shape == (6, model.detail_dim) and fine.shape == (6, model.detail_dims[1]) == (6, 4 * 24 * 24)
    again = encode_rows(model, data, rows, 4, None, detail=True, seed=5)
    assert torch.equal(detail, again[2]) and torch.equal(fine, again[3])
    assert not torch.allclose(detail, encode_rows(model, data, rows, 4, None, detail=True, seed=6)[2])
    assert abs(float((detail - means).std()) - 1) < 0.05  # a new model's posterior is its prior: unit spread around the means
    assert abs(float(fine.std()) - 1) < 0.05 and abs(float(fine.mean())) < 0.05  # and the finer scale's: unit draws around 0


# -- fine-tuning -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finetuned(tiny_run, tmp_path_factory, cli) -> Path:
    out = tmp_path_factory.mktemp("finetune") / "plain"
    cli("train", "--init-from", tiny_run, "--data", "builtin", "--builtin-count", 128, "--epochs", 1, "--out", out, "--quiet")
    return out


@pytest.fixture(scope="module")
def frozen(tiny_run, tmp_path_factory, cli) -> Path:
    out = tmp_path_factory.mktemp("finetune") / "frozen"
    cli("train", "--init-from", tiny_run, "--data", "builtin", "--builtin-count", 128, "--epochs", 1, "--freeze", "encoder", "--out", out, "--quiet")
    return out


def _split(state: dict, prefixes) -> dict:
    return {k: v for k, v in state.items() if k.startswith(prefixes)}


def _is_buffer(key: str) -> bool:
    return key.endswith(("running_mean", "running_var", "num_batches_tracked"))


def test_finetune_defaults(finetuned, tiny_run):
    cfg = json.loads((finetuned / "config.json").read_text())
    assert cfg["train"]["lr"] == FINETUNE_LR == 1e-4
    assert cfg["train"]["init_from"] == str(tiny_run)
    assert cfg["data_stats"]["counts"]["kept"] == 128
    assert cfg["latent_dim"] == 256 and cfg["image_size"] == 96
    lines = (finetuned / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 1
    lat = runs.Latents.load(finetuned / "latents.safetensors")
    assert lat.mu.shape[0] == cfg["split"]["train"]
    # it started from the init weights and moved away from them, encoder included
    init = load_file(str(tiny_run / "model.safetensors"))
    after = load_file(str(finetuned / "model.safetensors"))
    assert set(init) == set(after)
    changed = [k for k in init if not _is_buffer(k) and not torch.equal(init[k], after[k])]
    assert any(k.startswith(ENCODER_PREFIXES) for k in changed)
    assert any(k.startswith(DECODER_PREFIXES) for k in changed)
    # small steps at lr 1e-4 from the init: far closer to it than a fresh network is
    fresh = VAE(ModelConfig()).state_dict()
    w = "decoder.0.0.weight"
    assert (after[w] - init[w]).norm() < 0.5 * (fresh[w] - init[w]).norm()


def test_finetune_explicit_lr_wins(tiny_run, tmp_path, cli):
    out = tmp_path / "lr"
    cli("train", "--init-from", tiny_run, "--data", "builtin", "--builtin-count", 64, "--epochs", 1, "--lr", "3e-4", "--out", out, "--quiet")
    assert json.loads((out / "config.json").read_text())["train"]["lr"] == 3e-4


def test_freeze_encoder_keeps_encoder_weights_bit_identical(frozen, tiny_run):
    cfg = json.loads((frozen / "config.json").read_text())
    assert cfg["train"]["freeze"] == "encoder" and cfg["train"]["lr"] == 1e-4
    init = load_file(str(tiny_run / "model.safetensors"))
    after = load_file(str(frozen / "model.safetensors"))
    enc_params = [k for k in _split(init, ENCODER_PREFIXES) if not _is_buffer(k)]
    assert len(enc_params) == 5 * 4 + 4  # conv w/b + bn w/b per layer, fc_mu and fc_logvar w/b
    for k in enc_params:
        assert torch.equal(init[k], after[k]), k
    dec_changed = [k for k in _split(init, DECODER_PREFIXES) if not _is_buffer(k) and not torch.equal(init[k], after[k])]
    assert dec_changed  # the decoder did train


def test_freeze_encoder_keeps_encoder_function(frozen, tiny_run):
    """BatchNorm running statistics of the frozen half stay as loaded too (eval-mode output unchanged)."""
    init = load_file(str(tiny_run / "model.safetensors"))
    after = load_file(str(frozen / "model.safetensors"))
    for k in _split(init, ENCODER_PREFIXES):
        assert torch.equal(init[k], after[k]), k


def test_the_sharp_preset_trains_a_spatial_latent_generates_with_a_fitted_prior_and_fine_tunes_as_sharp(tmp_path):
    import animevae

    run = animevae.train(
        tmp_path / "sharp", data="builtin", preset="sharp", builtin_count=160, image_size=24, base_channels=8,
        epochs=1, batch_size=32, kl_warmup_epochs=0.0, progress=False,
    )  # fmt: skip
    path = Path(run.path)
    saved = json.loads((path / "config.json").read_text())
    assert saved["model"]["arch"] == "spatial" and saved["model"]["latent_dim"] == 576
    assert saved["train"]["sampler"] == "gmm" and saved["train"]["beta"] == 0.1
    assert runs.Latents.load(path / runs.LATENTS).mu.shape[1] == 576
    assert len(run.generate(3, gmm_components=2, gmm_covariance="diag")) == 3 and list(path.glob("gmm_2_diag.safetensors"))  # its own sampler
    assert len(run.generate(3, sampler="diffusion")) == 3 and (path / "diffusion.safetensors").is_file()
    tuned = animevae.train(tmp_path / "tuned", data="builtin", builtin_count=64, init_from=str(path), epochs=1, batch_size=16, progress=False)
    again = json.loads((Path(tuned.path) / "config.json").read_text())
    assert again["model"]["arch"] == "spatial" and again["train"]["sampler"] == "gmm" and again["train"]["beta"] == 0.1
