"""A hostile corpus through every file-backed source kind and the real CLI: every file accounted for, no crash.

The corpus is the messy set (tests/messy_images.py) plus: a 10000x10000 image, a decompression bomb
over Pillow's own limit, a dangling link, a folder link loop and a folder named like an image.
The Hub kind goes through the same `datasets` parquet path as the parquet kind (the Hub itself is
unreachable here); `builtin` has no files.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter

import pytest
from messy_images import huge_png, messy_bytes, write_messy_set, write_parquet

EXTRA = {"ten_thousand.png": "skipped_too_large", "bomb.png": "skipped_too_large"}


def build_corpus(folder) -> dict[str, str]:
    expected = write_messy_set(folder)
    (folder / "ten_thousand.png").write_bytes(huge_png(10000, 10000))
    (folder / "bomb.png").write_bytes(huge_png(20000, 20000))
    expected.update(EXTRA)
    os.symlink(folder / "does-not-exist.png", folder / "dangling.png")
    expected["dangling.png"] = "skipped_undecodable"
    (folder / "loop").mkdir()
    os.symlink(folder, folder / "loop" / "back-to-top")  # a folder link loop
    (folder / "folder.jpg").mkdir()  # a folder named like an image is not an image
    return expected


def counts_from_stderr(text: str) -> dict[str, int]:
    line = next(l for l in text.splitlines() if l.startswith("data:"))
    m = re.search(r"kept (\d+), skipped non-RGB (\d+), undecodable (\d+), too small (\d+), too large (\d+)", line)
    return dict(zip(["kept", "skipped_not_rgb", "skipped_undecodable", "skipped_too_small", "skipped_too_large"], map(int, m.groups())))


@pytest.mark.parametrize("kind", ["folder", "parquet"])
def test_hostile_corpus_every_file_accounted_for(cli, tmp_path, kind):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    expected = build_corpus(corpus)
    if kind == "parquet":
        data = {**messy_bytes(), "ten_thousand.png": huge_png(10000, 10000), "bomb.png": huge_png(20000, 20000), "dangling.png": b""}
        names = sorted(expected)
        write_parquet(tmp_path / "corpus.parquet", [(n, data[n]) for n in names])
        expected["dangling.png"] = "skipped_undecodable"  # an empty cell
        source = tmp_path / "corpus.parquet"
    else:
        source = corpus
    out = tmp_path / f"run-{kind}"
    proc = cli(
        "train",
        "--data",
        source,
        "--epochs",
        "1",
        "--batch-size",
        "4",
        "--val-fraction",
        "0",
        "--out",
        out,
        "--image-size",
        "24",
        "--latent-dim",
        "8",
        "--base-channels",
        "8",
        timeout=300,
    )
    assert "Traceback" not in proc.stderr
    want = Counter(expected.values())
    got = counts_from_stderr(proc.stderr)
    assert got == {k: want.get(k, 0) for k in got}, (got, want)
    stats = json.loads((out / "config.json").read_text())["data_stats"]
    assert sum(stats["counts"].values()) == len(expected)  # every image-named file: kept or skipped with a reason
    if kind == "folder":
        assert stats["ignored_not_image_extension"] == 1  # notes.txt
    assert (out / "model.safetensors").exists()
