"""Only regular files are read, and never more than --max-file-mb of one: FIFOs, sockets, devices and links to
them are skipped as not_a_file, a 4 GB sparse file as too_large, through the folder and the parquet sources."""

from __future__ import annotations

import os
import socket
import stat
import time

import pytest
from messy_images import write_parquet
from PIL import Image


def make_special_folder(folder) -> dict[str, str]:
    """One good face and every kind of file that must not be read; returns name -> expected reason."""
    folder.mkdir()
    Image.new("RGB", (40, 40), (200, 120, 90)).save(folder / "good.png")
    os.mkfifo(folder / "fifo.png")  # opening it for a plain read would wait for a writer forever
    os.symlink("/dev/zero", folder / "zero.png")  # reading it would never end
    os.symlink("/dev/null", folder / "null.jpg")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(folder / "sock.png"))
    with open(folder / "sparse.png", "wb") as f:  # 4 GB on paper, no blocks on disk
        f.truncate(4 << 30)
    expected = {
        "good.png": "kept",
        "fifo.png": "skipped_not_a_file",
        "zero.png": "skipped_not_a_file",
        "null.jpg": "skipped_not_a_file",
        "sock.png": "skipped_not_a_file",
        "sparse.png": "skipped_too_large",
    }
    assert stat.S_ISSOCK(os.stat(folder / "sock.png").st_mode)
    return expected


@pytest.mark.parametrize("kind", ["folder", "parquet"])
def test_special_and_huge_files_are_skipped_unread(cli, tmp_path, kind):
    expected = make_special_folder(tmp_path / "faces")
    source = tmp_path / "faces"
    if kind == "parquet":  # path-only cells point at the files
        source = write_parquet(tmp_path / "p" / "cells.parquet", [(str(source / n), None) for n in sorted(expected)])
    start = time.monotonic()
    proc = cli("cache", "--data", source, "--cache-dir", tmp_path / "cache", "--image-size", 48, timeout=120)
    assert time.monotonic() - start < 100  # nothing blocked
    assert "1 images kept" in proc.stdout, proc.stdout
    assert "too large 1, not a file 4" in proc.stdout, proc.stdout


def test_max_file_mb_skips_larger_files_and_is_part_of_the_cache_key(cli, tmp_path):
    folder = tmp_path / "faces"
    folder.mkdir()
    for i, side in enumerate((16, 600)):  # 600 x 600 noise: a PNG of about 1 MB
        Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(folder / f"{i}.png")
    big = os.path.getsize(folder / "1.png")
    assert big > 1 << 20
    small = cli("cache", "--data", folder, "--cache-dir", tmp_path / "cache", "--max-file-mb", 1, "--image-size", 48).stdout
    assert "1 images kept" in small and "too large 1" in small
    roomy = cli("cache", "--data", folder, "--cache-dir", tmp_path / "cache", "--max-file-mb", 2, "--image-size", 48).stdout
    assert "2 images kept" in roomy and "too large 0" in roomy


def test_bad_max_file_mb_is_one_line(cli, tmp_path):
    proc = cli("cache", "--data", "builtin", "--max-file-mb", 0, check=False)
    assert proc.returncode == 2 and "--max-file-mb must be a positive number" in proc.stderr and "Traceback" not in proc.stderr


def test_train_says_what_it_skipped(cli, tmp_path):
    make_special_folder(tmp_path / "faces")
    for i in range(7):
        Image.new("RGB", (40, 40), (10 * i, 100, 90)).save(tmp_path / "faces" / f"more{i}.png")
    proc = cli(
        "train",
        "--data",
        tmp_path / "faces",
        "--epochs",
        1,
        "--batch-size",
        4,
        "--image-size",
        48,
        "--out",
        tmp_path / "run",
        "--cache-dir",
        tmp_path / "cache",
        timeout=300,
    )
    assert "kept 8" in proc.stderr and "too large 1, not a file 4" in proc.stderr
