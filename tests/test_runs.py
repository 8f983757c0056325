"""The run folder: atomic writes, latents files, safetensors-only loading, per-epoch copies, --out checks."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from animevae import runs
from animevae.errors import UserError
from animevae.models.vae import VAE


class _Boom(Exception):
    pass


# -- atomic_write ------------------------------------------------------------------------------


def test_atomic_write_keeps_old_file_when_writer_raises(tmp_path):
    target = tmp_path / "model.safetensors"
    target.write_bytes(b"old contents")

    def writer(tmp):
        Path(tmp).write_bytes(b"half of the new")
        raise _Boom("disk full")

    with pytest.raises(_Boom):
        runs.atomic_write(target, writer)
    assert target.read_bytes() == b"old contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.safetensors"]  # no temp file left


def test_atomic_write_keeps_old_file_on_keyboard_interrupt(tmp_path):
    target = tmp_path / "metrics.jsonl"
    target.write_text("line 1\n")

    def writer(tmp):
        Path(tmp).write_text("line 1\nline 2 (torn")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        runs.atomic_write(target, writer)
    assert target.read_text() == "line 1\n"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]


def test_atomic_write_replaces_and_creates_parents(tmp_path):
    target = tmp_path / "a" / "b" / "f.bin"
    runs.atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"one"))
    assert target.read_bytes() == b"one"
    runs.write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_append_line_and_json(tmp_path):
    path = tmp_path / "metrics.jsonl"
    runs.append_line(path, json.dumps({"epoch": 1}))
    runs.append_line(path, json.dumps({"epoch": 2}) + "\n")
    assert [json.loads(l)["epoch"] for l in path.read_text().splitlines()] == [1, 2]
    runs.write_json(tmp_path / "c.json", {"a": [1, 2]})
    assert runs.read_json(tmp_path / "c.json") == {"a": [1, 2]}


def test_read_json_errors(tmp_path):
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(UserError, match="JSON object"):
        runs.read_json(tmp_path / "list.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(UserError, match="cannot read JSON"):
        runs.read_json(tmp_path / "bad.json")
    with pytest.raises(UserError, match="cannot read JSON"):
        runs.read_json(tmp_path / "missing.json")


# -- Latents -----------------------------------------------------------------------------------


def test_latents_round_trip(tmp_path):
    g = torch.Generator().manual_seed(0)
    lat = runs.Latents(torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g), torch.tensor([0, 2, 3, 7, 9]))
    lat.save(tmp_path / "latents.safetensors")
    back = runs.Latents.load(tmp_path / "latents.safetensors")
    assert torch.equal(back.mu, lat.mu) and torch.equal(back.logvar, lat.logvar) and torch.equal(back.row_id, lat.row_id)
    assert back.row_id.dtype == torch.int64 and back.mu.dtype == torch.float32
    assert torch.equal(runs.load_latents(str(tmp_path)).mu, lat.mu)


def test_latents_keep_a_hierarchical_runs_detail_in_half_precision(tmp_path):
    g = torch.Generator().manual_seed(0)
    detail = torch.randn(5, 7, generator=g)
    runs.Latents(torch.randn(5, 3, generator=g), torch.zeros(5, 3), torch.arange(5), detail).save(tmp_path / "latents.safetensors")
    back = runs.Latents.load(tmp_path / "latents.safetensors")
    assert back.detail.dtype == torch.float32 and torch.allclose(back.detail, detail, atol=2e-3) and not torch.equal(back.detail, detail)
    runs.Latents(torch.zeros(2, 3), torch.zeros(2, 3), torch.arange(2)).save(tmp_path / "plain.safetensors")
    assert runs.Latents.load(tmp_path / "plain.safetensors").detail is None


def test_latents_load_upcasts_half(tmp_path):
    mu = torch.randn(4, 2).to(torch.bfloat16)
    runs.Latents(mu, mu.clone(), torch.arange(4)).save(tmp_path / "l.safetensors")
    back = runs.Latents.load(tmp_path / "l.safetensors")
    assert back.mu.dtype == torch.float32 and torch.equal(back.mu, mu.float())


@pytest.mark.parametrize(
    "tensors, needle",
    [
        ({"mu": torch.zeros(4, 3), "logvar": torch.zeros(4, 3)}, "expected tensors mu, logvar, row_id"),
        ({"mu": torch.zeros(4, 3), "logvar": torch.zeros(4, 3), "row_id": torch.arange(5)}, "do not line up"),
        ({"mu": torch.zeros(4, 3), "logvar": torch.zeros(4, 2), "row_id": torch.arange(4)}, "do not line up"),
        ({"mu": torch.zeros(4), "logvar": torch.zeros(4), "row_id": torch.arange(4)}, "do not line up"),
        ({"mu": torch.zeros(4, 3), "logvar": torch.zeros(4, 3), "row_id": torch.zeros(4, 1, dtype=torch.int64)}, "do not line up"),
        ({"mu": torch.zeros(4, 3), "logvar": torch.zeros(4, 3), "row_id": torch.arange(4), "detail": torch.zeros(3, 8)}, "detail and mu do not line up"),
        ({"mu": torch.zeros(4, 3), "logvar": torch.zeros(4, 3), "row_id": torch.arange(4), "detail": torch.full((4, 8), float("nan"))}, "NaN or inf"),
    ],
)
def test_latents_mismatch(tmp_path, tensors, needle):
    save_file(tensors, str(tmp_path / "latents.safetensors"))
    with pytest.raises(UserError) as e:
        runs.Latents.load(tmp_path / "latents.safetensors")
    assert needle in str(e.value) and "latents.safetensors" in str(e.value)


# -- safetensors only: a pickle is never executed -----------------------------------------------


class _Plant:
    """Unpickling this creates ``marker`` (open(path, 'w')): proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("how", ["pickle", "torch.save"])
def test_load_tensors_refuses_pickles_without_running_them(tmp_path, how):
    marker = tmp_path / "pwned"
    probe = tmp_path / "probe"
    path = tmp_path / "model.safetensors"
    if how == "pickle":
        path.write_bytes(pickle.dumps({"w": _Plant(marker)}))
        # the same payload with another marker does run code under pickle.loads
        pickle.loads(pickle.dumps({"w": _Plant(probe)}))
    else:
        torch.save({"w": _Plant(marker)}, path)
        probe_file = tmp_path / "probe.pt"
        torch.save({"w": _Plant(probe)}, probe_file)
        torch.load(probe_file, weights_only=False)
    assert probe.exists() and not marker.exists()

    with pytest.raises(UserError) as e:
        runs.load_tensors(path)
    assert "safetensors" in str(e.value) and str(path) in str(e.value)
    assert not marker.exists()

    # through the model loader too
    (tmp_path / "config.json").write_text(json.dumps({"image_size": 24, "num_layers": 3, "latent_dim": 4, "base_channels": 2}))
    with pytest.raises(UserError, match="not a readable safetensors file"):
        VAE.from_pretrained(tmp_path)
    with pytest.raises(UserError, match="not a readable safetensors file"):
        runs.Latents.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"abc", b"\xff" * 64])
def test_load_tensors_garbage(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a readable safetensors file"):
        runs.load_tensors(path)


def test_load_tensors_missing_file(tmp_path):
    with pytest.raises(UserError):
        runs.load_tensors(tmp_path / "nope.safetensors")


# -- per-epoch copies --------------------------------------------------------------------------


def _fake_epoch(out: Path, epoch: int) -> None:
    (out / runs.WEIGHTS).write_bytes(f"weights {epoch}".encode())
    (out / runs.LATENTS).write_bytes(f"latents {epoch}".encode())


def test_keep_epoch_copy_keeps_last_k(tmp_path):
    for epoch in range(1, 6):
        _fake_epoch(tmp_path, epoch)
        runs.keep_epoch_copy(tmp_path, epoch, keep_last=2)
        kept = sorted(p.name for p in (tmp_path / "epochs").iterdir())
        assert kept == [f"epoch_{e:03d}" for e in range(max(1, epoch - 1), epoch + 1)]
    for epoch in (4, 5):
        d = tmp_path / "epochs" / f"epoch_{epoch:03d}"
        assert (d / runs.WEIGHTS).read_bytes() == f"weights {epoch}".encode()
        assert (d / runs.LATENTS).read_bytes() == f"latents {epoch}".encode()
        assert sorted(p.name for p in d.iterdir()) == sorted([runs.WEIGHTS, runs.LATENTS])


def test_keep_epoch_copy_zero_keeps_none(tmp_path):
    _fake_epoch(tmp_path, 1)
    runs.keep_epoch_copy(tmp_path, 1, keep_last=1)
    assert (tmp_path / "epochs" / "epoch_001").is_dir()
    _fake_epoch(tmp_path, 2)
    runs.keep_epoch_copy(tmp_path, 2, keep_last=0)
    assert list((tmp_path / "epochs").iterdir()) == []


def test_keep_epoch_copy_past_epoch_999(tmp_path):
    for epoch in (998, 999, 1000):
        _fake_epoch(tmp_path, epoch)
        runs.keep_epoch_copy(tmp_path, epoch, keep_last=2)
    assert sorted(p.name for p in (tmp_path / "epochs").iterdir()) == ["epoch_1000", "epoch_999"]


# -- --out checks ------------------------------------------------------------------------------


def test_prepare_out_dir_refuses_existing_run(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / runs.CONFIG).write_text("{}")
    with pytest.raises(UserError) as e:
        runs.prepare_out_dir(out, overwrite=False)
    msg = str(e.value)
    assert "already holds a run" in msg and "--overwrite" in msg and "\n" not in msg
    runs.prepare_out_dir(out, overwrite=True)  # allowed with overwrite, which clears the old run's files
    assert out.is_dir() and not (out / runs.CONFIG).exists()


def test_prepare_out_dir_new_and_empty_and_file(tmp_path):
    runs.prepare_out_dir(tmp_path / "new" / "nested", overwrite=False)
    assert (tmp_path / "new" / "nested").is_dir()
    assert list((tmp_path / "new" / "nested").iterdir()) == []  # the write probe is cleaned up
    (tmp_path / "empty").mkdir()
    runs.prepare_out_dir(tmp_path / "empty", overwrite=False)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        runs.prepare_out_dir(tmp_path / "afile", overwrite=True)


def test_out_dir_message_only_suggests_real_options(tiny_run, tmp_path, cli):
    proc = cli("train", "--data", "builtin", "--builtin-count", "32", "--epochs", "1", "--out", tiny_run, "--quiet", check=False)
    assert proc.returncode == 2 and "already holds a run" in proc.stderr and "--overwrite" in proc.stderr
    helptext = cli("train", "--help").stdout
    for flag in ("--resume", "--overwrite", "--out"):
        if flag in proc.stderr:
            assert flag in helptext, f"the error suggests {flag}, which `animevae train` does not accept"


def test_overwrite_replaces_the_old_run(tiny_run, tmp_path, cli):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "metrics.jsonl", "model.safetensors", "latents.safetensors"):
        shutil.copy(tiny_run / name, out)
    for name in ("samples", "epochs"):
        shutil.copytree(tiny_run / name, out / name)
    assert len((out / runs.METRICS).read_text().splitlines()) == 2
    cli("train", "--data", "builtin", "--builtin-count", "64", "--epochs", "1", "--batch-size", "32", "--out", out, "--overwrite", "--quiet")
    lines = [json.loads(l) for l in (out / runs.METRICS).read_text().splitlines()]
    assert [l["epoch"] for l in lines] == [1]
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["epoch_001.png"]
    assert sorted(p.name for p in (out / "epochs").iterdir()) == ["epoch_001"]


# -- resolve_file ------------------------------------------------------------------------------


def test_resolve_file_local(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    assert runs.resolve_file(str(tmp_path), "config.json") == str(tmp_path / "config.json")
    with pytest.raises(UserError, match="no latents.safetensors here"):
        runs.resolve_file(str(tmp_path), "latents.safetensors")
    for name in (str(tmp_path / "missing"), "./rel", "a/b/c", "plainname"):
        with pytest.raises(UserError, match="no such run folder"):
            runs.resolve_file(name, "config.json")
