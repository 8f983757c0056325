"""load_images: decode once into a memory-mapped cache; every source row accounted for; no half-built caches."""

from __future__ import annotations

import io
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from messy_images import CONVERTED, EXPECTED, encode, messy_bytes, write_parquet
from PIL import Image, ImageOps

from animevae.config import DataConfig
from animevae.data import cache as cache_mod
from animevae.data.cache import load_images
from animevae.data.decode import REASONS, decode_image
from animevae.data.toyfaces import render_faces
from animevae.errors import UserError


def _counts(reasons) -> dict:
    c = Counter(reasons)
    return {r: c.get(r, 0) for r in REASONS}


def _pil_reference(data: bytes, size: int) -> np.ndarray:
    """An RGB file decoded independently of animevae: PIL, EXIF-upright, bilinear resize; 3 x S x S."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert img.mode == "RGB"
    return np.asarray(img.resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


def _load(source, tmp_path, **kw):
    kw.setdefault("cache_dir", str(tmp_path / "cache"))
    kw.setdefault("workers", 1)
    size = kw.pop("size", 32)
    return load_images(DataConfig(source=str(source), **kw), size, progress=False)


def _snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.rglob("*"))}


@pytest.mark.parametrize("kind", ["folder", "parquet"])
@pytest.mark.parametrize("convert", [False, True])
def test_every_row_accounted_for(tmp_path, messy_dir, messy_parquet, kind, convert):
    expected = CONVERTED if convert else EXPECTED
    if kind == "folder":
        spec, names = messy_dir, sorted(EXPECTED)  # a folder's rows are its image files in sorted order
    else:
        spec, names = messy_parquet
    result = _load(spec, tmp_path, convert_to_rgb=convert)
    assert result.stats["counts"] == _counts(expected.values())
    assert sum(result.stats["counts"].values()) == len(EXPECTED) == result.stats["source"]["rows"]
    if kind == "folder":
        assert result.stats["ignored_not_image_extension"] == 1  # notes.txt
    assert result.images.shape == (result.stats["counts"]["kept"], 3, 32, 32) and result.images.dtype == np.uint8
    assert result.row_ids.dtype == np.int64 and len(result) == len(result.images)
    kept_names = [names[r] for r in result.row_ids]
    assert kept_names == [n for n in names if expected[n] == "kept"]  # in source order
    data = messy_bytes()
    for img, name in zip(result.images, kept_names):
        if convert:  # non-RGB modes: compare with the decoder itself (the plumbing must not touch pixels)
            ref, reason = decode_image(data[name], 32, convert_to_rgb=True)
            assert reason == "kept"
        else:
            ref = _pil_reference(data[name], 32)
        np.testing.assert_array_equal(np.asarray(img), ref, err_msg=name)


def test_row_ids_on_shared_faces(tmp_path, shared_faces):
    import datasets

    result = _load(shared_faces, tmp_path, limit=30, size=48)
    assert result.stats["counts"]["kept"] == 30 and list(result.row_ids) == list(range(30))
    files = sorted(str(f) for f in shared_faces.glob("*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train").cast_column("image", datasets.Image(decode=False))
    for row in (0, 7, 29):
        np.testing.assert_array_equal(np.asarray(result.images[row]), _pil_reference(ds[row]["image"]["bytes"], 48))


def test_second_call_hits_the_cache(tmp_path, messy_dir):
    t0 = time.perf_counter()
    first = _load(messy_dir, tmp_path)
    t_first = time.perf_counter() - t0
    root = tmp_path / "cache"
    assert first.path is not None and first.path.parent == root and (first.path / "meta.json").is_file()
    before = _snapshot(root)
    time.sleep(0.01)
    t0 = time.perf_counter()
    second = _load(messy_dir, tmp_path)
    t_second = time.perf_counter() - t0
    assert second.path == first.path
    assert isinstance(second.images, np.memmap) and not second.images.flags.writeable
    assert _snapshot(root) == before  # nothing rewritten, no new temporary folder
    np.testing.assert_array_equal(np.asarray(second.images), np.asarray(first.images))
    np.testing.assert_array_equal(second.row_ids, first.row_ids)
    assert second.stats == first.stats
    assert t_second < max(t_first, 0.5)
    # It really reads the cache rather than decoding again: doctor the cached pixels, see them come back.
    raw = first.path / "images.u8"
    doctored = 255 - np.fromfile(raw, np.uint8)
    doctored.tofile(raw)
    third = _load(messy_dir, tmp_path)
    np.testing.assert_array_equal(np.asarray(third.images).ravel(), doctored)


def test_default_cache_dir_is_the_environment(messy_dir, private_cache):
    result = load_images(DataConfig(source=str(messy_dir), workers=1), 16, progress=False)
    assert result.path.parent == private_cache == cache_mod.default_cache_dir()


def test_settings_change_the_key(tmp_path, messy_dir):
    a = _load(messy_dir, tmp_path, size=32)
    b = _load(messy_dir, tmp_path, size=16)
    c = _load(messy_dir, tmp_path, size=32, convert_to_rgb=True)
    d = _load(messy_dir, tmp_path, size=32, limit=5)
    assert len({a.path, b.path, c.path, d.path}) == 4
    assert b.images.shape[2:] == (16, 16) and len(c) > len(a)
    assert sum(d.stats["counts"].values()) == 5


def test_no_cache_gives_identical_arrays(tmp_path, messy_dir, messy_parquet):
    for spec in (messy_dir, messy_parquet[0]):
        cached = _load(spec, tmp_path)
        plain = _load(spec, tmp_path, cache=False, cache_dir=str(tmp_path / "unused"))
        assert plain.path is None and not isinstance(plain.images, np.memmap)
        assert not (tmp_path / "unused").exists()
        np.testing.assert_array_equal(plain.images, np.asarray(cached.images))
        np.testing.assert_array_equal(plain.row_ids, cached.row_ids)
        assert plain.stats == cached.stats


def test_nothing_left_is_a_user_error(tmp_path):
    gray = tmp_path / "gray"
    gray.mkdir()
    for i, face in enumerate(render_faces(3, seed=1, size=24)):
        (gray / f"{i}.png").write_bytes(encode(Image.fromarray(face).convert("L"), "PNG"))
    for cache in (False, True, True):  # the last call finds the (empty) cache and must still refuse
        with pytest.raises(UserError) as e:
            _load(gray, tmp_path, cache=cache)
        msg = str(e.value)
        assert "no images left" in msg and "--convert-to-rgb" in msg and "not_rgb: 3" in msg
    assert len(_load(gray, tmp_path, convert_to_rgb=True)) == 3

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.jpg").write_bytes(b"not a jpeg")
    (broken / "b.png").write_bytes(b"")
    with pytest.raises(UserError) as e:
        _load(broken, tmp_path)
    assert "undecodable: 2" in str(e.value) and "--convert-to-rgb" not in str(e.value)


@pytest.fixture(scope="module")
def messy_x13(tmp_path_factory) -> tuple[Path, list[str]]:
    """The messy set 13 times over: 286 rows, so two decode chunks of 256 (a real worker pool)."""
    data = messy_bytes()
    names = sorted(EXPECTED) * 13
    path = tmp_path_factory.mktemp("x13") / "messy13.parquet"
    write_parquet(path, [(n, data[n]) for n in names])
    assert len(names) > cache_mod.CHUNK
    return path, names


def test_workers_give_identical_results(tmp_path, messy_x13):
    path, names = messy_x13
    one = _load(path, tmp_path, workers=1, cache=False)
    two = _load(path, tmp_path, workers=2, cache=False)
    assert one.stats["counts"] == _counts(EXPECTED[n] for n in names)
    np.testing.assert_array_equal(two.images, one.images)
    np.testing.assert_array_equal(two.row_ids, one.row_ids)
    assert two.stats == one.stats
    assert [names[r] for r in two.row_ids] == [n for n in names if EXPECTED[n] == "kept"]
    cached = _load(path, tmp_path, workers=2)  # through the cache file too
    np.testing.assert_array_equal(np.asarray(cached.images), one.images)


def test_workers_on_shared_faces(tmp_path, shared_faces):
    one = _load(shared_faces, tmp_path, limit=600, size=24, workers=1, cache=False)
    two = _load(shared_faces, tmp_path, limit=600, size=24, workers=2, cache=False)
    assert len(one) == 600
    np.testing.assert_array_equal(two.images, one.images)
    np.testing.assert_array_equal(two.row_ids, one.row_ids)


def test_damaged_cache_is_rebuilt(tmp_path, messy_dir):
    first = _load(messy_dir, tmp_path, size=16)
    good = np.array(first.images)
    raw = first.path / "images.u8"
    with open(raw, "r+b") as f:
        f.truncate(raw.stat().st_size // 2)
    again = _load(messy_dir, tmp_path, size=16)
    assert again.path == first.path and raw.stat().st_size == good.nbytes
    np.testing.assert_array_equal(np.asarray(again.images), good)


# ------------------------------------------------------------------------------ interrupted builds
# A FIFO named like an image makes a real build block, deterministically, in the middle of the
# source: reading it waits for a writer that only the test controls, so the build cannot finish
# before the test interrupts it.

SLOW = {"source": "builtin", "builtin_count": 6000, "workers": 1}  # a build long enough (seconds) to be caught mid-way


def _wait_for_build_folder(root: Path, timeout: float = 60) -> Path | None:
    """The temporary folder of a build in progress (a dot-folder holding the images file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in root.glob(".*"):
            if (d / "images.u8").exists():
                return d
        time.sleep(0.01)
    return None


def _dirs(root: Path) -> list[Path]:
    return [p for p in root.iterdir() if p.is_dir()]  # the build's lock file aside


needs_signals = pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="needs POSIX signals")


def test_killed_build_leaves_no_cache_and_its_leftover_is_removed_by_the_next_build(tmp_path):
    root = tmp_path / "cache"
    script = (
        "import sys; from animevae.config import DataConfig; from animevae.data.cache import load_images; "
        f"load_images(DataConfig(**{SLOW!r}, cache_dir=sys.argv[1]), 96, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(root)], stderr=subprocess.PIPE)
    try:
        partial = _wait_for_build_folder(root)
        assert partial is not None, proc.stderr.read().decode()[-2000:] if proc.poll() is not None else "no build"
        time.sleep(0.3)
        assert proc.poll() is None  # still running: mid-build
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs, like a power cut or the OOM killer
        proc.wait(30)
    assert _dirs(root) == [partial] and partial.name.startswith(".")
    assert not (partial / "meta.json").exists()

    result = load_images(DataConfig(**SLOW, cache_dir=str(root)), 96, progress=False)
    assert partial.name.startswith(f".{result.path.name}.")  # the same key: the leftover was there to misuse
    assert result.path.parent == root and not result.path.name.startswith(".")
    assert (result.path / "meta.json").is_file() and len(result) == 6000
    np.testing.assert_array_equal(np.asarray(result.images[:4]), render_faces(4, seed=1234, size=96).transpose(0, 3, 1, 2))
    assert not partial.exists() and _dirs(root) == [result.path]  # removed by the next build, never renamed into place


class _Interrupted(BaseException):  # like KeyboardInterrupt: not an Exception, so nothing may swallow it
    pass


@needs_signals
def test_failed_build_removes_its_temporary_folder(tmp_path):
    root = tmp_path / "cache"
    main = threading.get_ident()

    def handler(signum, frame):
        raise _Interrupted()

    done = threading.Event()

    def interrupt_mid_build():
        if _wait_for_build_folder(root, timeout=30) is not None and not done.wait(0.3):
            signal.pthread_kill(main, signal.SIGUSR1)

    old = signal.signal(signal.SIGUSR1, handler)
    interrupter = threading.Thread(target=interrupt_mid_build, daemon=True)
    try:
        interrupter.start()
        with pytest.raises(_Interrupted):
            load_images(DataConfig(**SLOW, cache_dir=str(root)), 96, progress=False)
    finally:
        done.set()
        interrupter.join(30)  # no signal can arrive after the handler is restored
        signal.signal(signal.SIGUSR1, old)
    assert _dirs(root) == []  # neither a finished cache nor a half-written one
