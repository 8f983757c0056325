"""Decode a source once, in parallel, into a uint8 N x 3 x H x W file that every later epoch and run memory-maps.

The notebook way re-decodes and re-resizes every JPEG every epoch; here that work is done once per
(source, preprocessing settings) and kept under ``~/.cache/animevae/<key>/`` (``$ANIMEVAE_CACHE`` or
``--cache-dir`` move it). A cache folder is built under a temporary name and renamed when complete,
so an interrupted build is never mistaken for a finished one.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import DataConfig
from ..errors import UserError
from . import decode as decode_mod
from .sources import Source, _hash, open_source

CACHE_VERSION = 1
CHUNK = 256


@dataclass
class ImageSet:
    """Decoded faces: ``images[i]`` (3 x H x W uint8) is source row ``row_ids[i]``."""

    images: np.ndarray  # N x 3 x H x W uint8, usually a read-only memmap
    row_ids: np.ndarray  # N int64
    stats: dict  # counts per reason, plus the source's description
    path: Path | None = None  # the cache folder, when cached

    def __len__(self) -> int:
        return len(self.row_ids)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANIMEVAE_CACHE") or Path.home() / ".cache" / "animevae")


# Decode workers inherit the source by fork; under spawn they rebuild it from the config.
_worker_source: Source | None = None
_worker_args: tuple = ()


def _init_worker(cfg: DataConfig | None, image_size: int, source: Source | None) -> None:
    global _worker_source, _worker_args
    _worker_source = source if source is not None else open_source(cfg, image_size)
    _worker_args = (image_size, cfg.convert_to_rgb if cfg else False)


def _decode_chunk(bounds: tuple[int, int]):
    start, stop = bounds
    size, convert = _worker_args
    kept, rows, reasons = [], [], Counter()
    for offset, data in enumerate(_worker_source.read(start, stop)):
        arr, reason = decode_mod.decode_image(data, size, convert)
        reasons[reason] += 1
        if arr is not None:
            kept.append(arr)
            rows.append(start + offset)
    images = np.stack(kept) if kept else np.zeros((0, 3, size, size), np.uint8)
    return images, np.asarray(rows, np.int64), reasons


def _decode_all(source: Source, cfg: DataConfig, image_size: int, sink, progress: bool) -> Counter:
    """Decode every row in order, handing (images, rows) chunks to ``sink``; returns counts per reason."""
    chunks = [(s, min(s + CHUNK, source.num_rows)) for s in range(0, source.num_rows, CHUNK)]
    workers = max(1, min(cfg.workers or os.cpu_count() or 1, len(chunks)))
    reasons: Counter = Counter()
    bar = tqdm(total=source.num_rows, desc=f"decoding {source.kind}", unit="img", disable=not progress, dynamic_ncols=True)
    fork = sys.platform != "win32" and "fork" in mp.get_all_start_methods()
    if workers == 1:
        _init_worker(cfg, image_size, source)
        results = map(_decode_chunk, chunks)
        pool = None
    else:
        ctx = mp.get_context("fork" if fork else "spawn")
        pool = ctx.Pool(workers, _init_worker, (cfg, image_size, source if fork else None))
        results = pool.imap(_decode_chunk, chunks)
    try:
        for images, rows, counts in results:
            sink(images, rows)
            reasons.update(counts)
            bar.update(sum(counts.values()))
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
    return reasons


def _stats(source: Source, reasons: Counter) -> dict:
    counts = {r: int(reasons.get(r, 0)) for r in decode_mod.REASONS}
    return {"source": source.describe(), "counts": counts, **source.stats}


def _check_nonempty(stats: dict, source: Source) -> None:
    if stats["counts"]["kept"] == 0:
        skipped = ", ".join(f"{k.removeprefix('skipped_')}: {v}" for k, v in stats["counts"].items() if v and k != "kept")
        hint = "; --convert-to-rgb keeps grayscale/RGBA/palette/CMYK images" if stats["counts"]["skipped_not_rgb"] else ""
        raise UserError(f"--data {source.name}: no images left after filtering ({skipped}){hint}")


def cache_key(source: Source, cfg: DataConfig, image_size: int) -> str:
    return _hash([CACHE_VERSION, source.fingerprint, image_size, cfg.convert_to_rgb, decode_mod.MIN_SIDE, decode_mod.MAX_PIXELS])


def _open_cached(folder: Path) -> ImageSet:
    meta = json.loads((folder / "meta.json").read_text())
    n, c, h, w = meta["shape"]
    images = np.memmap(folder / "images.u8", np.uint8, "r", shape=(n, c, h, w)) if n else np.zeros((0, c, h, w), np.uint8)
    return ImageSet(images, np.load(folder / "row_ids.npy", allow_pickle=False), meta["stats"], folder)


def load_images(cfg: DataConfig, image_size: int, progress: bool = True, source: Source | None = None) -> ImageSet:
    """The decoded, filtered, resized faces of ``cfg.source``: from the cache, or decoded now (and cached)."""
    source = source or open_source(cfg, image_size)
    if not cfg.cache:
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        reasons = _decode_all(source, cfg, image_size, lambda im, rows: parts.append((im, rows)), progress)
        stats = _stats(source, reasons)
        _check_nonempty(stats, source)
        return ImageSet(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), stats)

    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    folder = root / cache_key(source, cfg, image_size)
    if (folder / "meta.json").exists():
        try:
            cached = _open_cached(folder)
            _check_nonempty(cached.stats, source)
            return cached
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            shutil.rmtree(folder, ignore_errors=True)  # damaged: rebuild below
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
    except OSError as e:
        raise UserError(f"cache folder {root}: cannot write there ({e.strerror}); set --cache-dir or pass --no-cache") from None
    try:
        rows_all: list[np.ndarray] = []
        with open(tmp / "images.u8", "wb") as f:

            def sink(images, rows):
                f.write(images.tobytes())
                rows_all.append(rows)

            reasons = _decode_all(source, cfg, image_size, sink, progress)
            f.flush()
            os.fsync(f.fileno())
        row_ids = np.concatenate(rows_all) if rows_all else np.zeros(0, np.int64)
        stats = _stats(source, reasons)
        np.save(tmp / "row_ids.npy", row_ids)
        meta = {"version": CACHE_VERSION, "shape": [len(row_ids), 3, image_size, image_size], "stats": stats}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _check_nonempty(stats, source)
    return _open_cached(folder)
