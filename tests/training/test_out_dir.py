"""Output folder problems are clear errors before training starts, and never damage what is already there."""

from __future__ import annotations

import pytest
from conftest import tmpfs

TINY = ["--data", "builtin", "--builtin-count", "64", "--epochs", "1", "--batch-size", "16", "--quiet"]


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MB filesystem: the run cannot fit on it (a real tmpfs: skips without root; under CI, fails)."""
    with tmpfs(tmp_path, "size=4m") as mnt:
        yield mnt


@pytest.fixture
def read_only_fs(tmp_path):
    with tmpfs(tmp_path, "ro,size=1m") as mnt:
        yield mnt


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("animevae: error:")]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_no_space_is_refused_before_training(cli, small_fs):
    proc = cli("train", *TINY, "--out", small_fs / "run", check=False)
    assert_one_line_error(proc, "MB on disk")
    assert not (small_fs / "run" / "model.safetensors").exists()


def test_no_permission_is_refused(cli, read_only_fs):
    proc = cli("train", *TINY, "--out", read_only_fs / "run", check=False)
    assert_one_line_error(proc, "cannot write")


def test_existing_run_is_refused_and_untouched(cli, tiny_run, tmp_path):
    import shutil

    out = tmp_path / "existing"
    shutil.copytree(tiny_run, out)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    proc = cli("train", *TINY, "--out", out, check=False)
    assert_one_line_error(proc, "already holds a run", "--resume")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_out_is_a_file(cli, tmp_path):
    f = tmp_path / "afile"
    f.write_text("keep me")
    proc = cli("train", *TINY, "--out", f, check=False)
    assert_one_line_error(proc, "not a folder")
    assert f.read_text() == "keep me"
