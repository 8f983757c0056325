"""Output folder problems are clear errors before training starts, and never damage what is already there."""

from __future__ import annotations

import subprocess
import uuid

import pytest

TINY = ["--data", "builtin", "--builtin-count", "64", "--epochs", "1", "--batch-size", "16", "--quiet"]


def _mount_tmpfs(tmp_path, options: str):
    """A real tmpfs mounted for one test (needs root, as CI has); skips where mounting is refused."""
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True).returncode != 0:
        pytest.skip(f"cannot mount a tmpfs ({options}) here (needs root)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MB filesystem: the run cannot fit on it."""
    yield from _mount_tmpfs(tmp_path, "size=4m")


@pytest.fixture
def read_only_fs(tmp_path):
    yield from _mount_tmpfs(tmp_path, "ro,size=1m")


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
