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
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..config import DataConfig
from ..errors import UserError
from ..runs import FolderLock
from . import decode as decode_mod
from .sources import Source, _hash, open_source

CACHE_VERSION = 2  # 2: skipped_not_a_file counted, max_file_mb in the key
CHUNK = 256


@dataclass
class ImageSet:
    """Decoded faces: ``images[i]`` (3 x H x W uint8) is source row ``row_ids[i]``."""

    images: np.ndarray  # N x 3 x H x W uint8, usually a read-only memmap
    row_ids: np.ndarray  # N int64
    stats: dict  # counts per reason, plus the source's description
    path: Path | None = None  # the cache folder, when cached
    earlier_fingerprints: tuple[str, ...] = ()  # the source's names under earlier versions (Source.earlier_fingerprints)

    def __len__(self) -> int:
        return len(self.row_ids)


def default_cache_dir() -> Path:
    return Path(os.environ.get("ANIMEVAE_CACHE") or Path.home() / ".cache" / "animevae")


# Decode workers inherit the source by fork (under spawn they rebuild it from the config) and write
# each kept image straight into the shared output file at its row's position: no image crosses a pipe.
_worker: dict = {}


def _init_worker(cfg: DataConfig, image_size: int, source: Source | None, out_path: str, num_rows: int) -> None:
    _worker["source"] = source if source is not None else open_source(cfg, image_size)
    _worker["args"] = (image_size, cfg.convert_to_rgb)
    _worker["out"] = np.memmap(out_path, np.uint8, "r+", shape=(num_rows, 3, image_size, image_size))


def _decode_chunk(bounds: tuple[int, int]):
    start, stop = bounds
    size, convert = _worker["args"]
    out = _worker["out"]
    kept, reasons = np.zeros(stop - start, bool), Counter()
    for offset, data in enumerate(_worker["source"].read(start, stop)):
        arr, reason = decode_mod.decode_image(data, size, convert)
        reasons[reason] += 1
        if arr is not None:
            out[start + offset] = arr
            kept[offset] = True
    return start, kept, reasons


def _decode_into(source: Source, cfg: DataConfig, image_size: int, out_path: Path, progress: bool) -> tuple[np.ndarray, Counter]:
    """Decode every row of ``source`` into ``out_path`` (compacted to the kept rows); returns their row ids."""
    n = source.num_rows
    np.memmap(out_path, np.uint8, "w+", shape=(n, 3, image_size, image_size)).flush()
    chunks = [(s, min(s + CHUNK, n)) for s in range(0, n, CHUNK)]
    workers = max(1, min(cfg.workers or os.cpu_count() or 1, len(chunks)))
    kept, reasons = np.zeros(n, bool), Counter()
    bar = tqdm(total=n, desc=f"decoding {source.kind}", unit="img", disable=not progress, dynamic_ncols=True)
    fork = sys.platform != "win32" and "fork" in mp.get_all_start_methods()
    init = (cfg, image_size, source if fork or workers == 1 else None, str(out_path), n)
    pool = None
    if workers == 1:
        _init_worker(*init)
        results = map(_decode_chunk, chunks)
    else:
        pool = mp.get_context("fork" if fork else "spawn").Pool(workers, _init_worker, init)
        results = pool.imap_unordered(_decode_chunk, chunks)
    try:
        for start, chunk_kept, counts in results:
            kept[start : start + len(chunk_kept)] = chunk_kept
            reasons.update(counts)
            bar.update(len(chunk_kept))
    finally:
        bar.close()
        _worker.clear()
        if pool is not None:
            pool.terminate()
    rows = np.flatnonzero(kept).astype(np.int64)
    if len(rows) < n:  # move kept rows down in place (targets never pass sources), then truncate
        out = np.memmap(out_path, np.uint8, "r+", shape=(n, 3, image_size, image_size))
        for dst, src in enumerate(rows):
            if dst != src:
                out[dst] = out[src]
        out.flush()
        del out
        with open(out_path, "r+b") as f:
            f.truncate(len(rows) * 3 * image_size * image_size)
    with open(out_path, "rb+") as f:
        os.fsync(f.fileno())
    return rows, reasons


def _stats(source: Source, reasons: Counter) -> dict:
    counts = {r: int(reasons.get(r, 0)) for r in decode_mod.REASONS}
    return {"source": source.describe(), "counts": counts, **source.stats}


def _check_nonempty(stats: dict, source: Source) -> None:
    if stats["counts"]["kept"] == 0:
        skipped = ", ".join(f"{k.removeprefix('skipped_')}: {v}" for k, v in stats["counts"].items() if v and k != "kept")
        hint = "; --convert-to-rgb keeps grayscale/RGBA/palette/CMYK images" if stats["counts"]["skipped_not_rgb"] else ""
        raise UserError(f"--data {source.name}: no images left after filtering ({skipped}){hint}")


def cache_key(source: Source, cfg: DataConfig, image_size: int) -> str:
    return _hash([CACHE_VERSION, source.fingerprint, image_size, cfg.convert_to_rgb, source.max_bytes, decode_mod.MIN_SIDE, decode_mod.MAX_PIXELS])


def _open_cached(folder: Path) -> ImageSet:
    meta = json.loads((folder / "meta.json").read_text())
    n, c, h, w = meta["shape"]
    images = np.memmap(folder / "images.u8", np.uint8, "r", shape=(n, c, h, w)) if n else np.zeros((0, c, h, w), np.uint8)
    return ImageSet(images, np.load(folder / "row_ids.npy", allow_pickle=False), meta["stats"], folder)


def load_images(cfg: DataConfig, image_size: int, progress: bool = True, source: Source | None = None) -> ImageSet:
    """The decoded, filtered, resized faces of ``cfg.source``: from the cache, or decoded now (and cached)."""
    source = source or open_source(cfg, image_size)
    return replace(_load_images(cfg, image_size, progress, source), earlier_fingerprints=source.earlier_fingerprints)


def _load_images(cfg: DataConfig, image_size: int, progress: bool, source: Source) -> ImageSet:
    if not cfg.cache:  # decode through a temporary file, keep the result in memory only
        with tempfile.TemporaryDirectory(prefix="animevae-") as tmp:
            rows, reasons = _decode_into(source, cfg, image_size, Path(tmp) / "images.u8", progress)
            stats = _stats(source, reasons)
            _check_nonempty(stats, source)
            images = np.fromfile(Path(tmp) / "images.u8", np.uint8).reshape(len(rows), 3, image_size, image_size)
        return ImageSet(images, rows, stats)

    root = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else default_cache_dir()
    folder = root / cache_key(source, cfg, image_size)
    cached = _try_cached(folder, source)
    if cached is not None:
        return cached
    # one build per cache entry: a second process on the same new source waits, then reads what the first built
    with FolderLock(root, name=f".{folder.name}.lock", what="cache folder").acquire(wait=True):
        cached = _try_cached(folder, source)
        if cached is not None:
            return cached
        for left in root.glob(f".{folder.name}.*"):  # a killed build's temporary folder (no live build holds the lock)
            if left.is_dir():
                shutil.rmtree(left, ignore_errors=True)
        try:
            tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=root))
        except OSError as e:
            raise UserError(f"cache folder {root}: cannot write there ({e.strerror}); set --cache-dir or pass --no-cache") from None
        try:
            rows, reasons = _decode_into(source, cfg, image_size, tmp / "images.u8", progress)
            stats = _stats(source, reasons)
            np.save(tmp / "row_ids.npy", rows)
            meta = {"version": CACHE_VERSION, "shape": [len(rows), 3, image_size, image_size], "stats": stats}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
            if folder.exists():
                shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    _check_nonempty(stats, source)
    return _open_cached(folder)


def _try_cached(folder: Path, source: Source) -> ImageSet | None:
    """The cache entry when it is complete and readable; a damaged one is removed (and rebuilt by the caller)."""
    if not (folder / "meta.json").exists():
        return None
    try:
        cached = _open_cached(folder)
    except (OSError, ValueError, KeyError, json.JSONDecodeError):
        shutil.rmtree(folder, ignore_errors=True)
        return None
    _check_nonempty(cached.stats, source)
    return cached
