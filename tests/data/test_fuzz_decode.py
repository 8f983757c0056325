"""Fuzz the decode path with mutated image bytes: it must never raise and never hang."""

from __future__ import annotations

import io
import time

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from animevae.data.decode import REASONS, decode_image


def _seed_files() -> list[bytes]:
    rng = np.random.default_rng(0)
    arr = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    out = []
    for fmt, mode in [
        ("JPEG", "RGB"),
        ("PNG", "RGB"),
        ("PNG", "RGBA"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("WEBP", "RGB"),
        ("PNG", "L"),
        ("JPEG", "CMYK"),
        ("TIFF", "RGB"),
    ]:
        buf = io.BytesIO()
        Image.fromarray(arr).convert(mode).save(buf, format=fmt)
        out.append(buf.getvalue())
    return out


SEEDS = _seed_files()


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["flip", "cut", "insert", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif kind == "cut":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=32))
        elif kind == "dup":
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 256))]
    return bytes(data)


@settings(max_examples=400, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_images_never_crash_or_hang(data):
    start = time.perf_counter()
    for convert in (False, True):
        arr, reason = decode_image(data, 32, convert)
        assert reason in REASONS
        assert (arr is None) == (reason != "kept")
        if arr is not None:
            assert arr.shape == (3, 32, 32) and arr.dtype == np.uint8
    assert time.perf_counter() - start < 2.0


@settings(max_examples=150, deadline=2000)
@given(st.binary(max_size=4096))
def test_random_bytes_are_skipped_as_undecodable(data):
    arr, reason = decode_image(data, 32)
    assert arr is None or reason == "kept"
    assert reason in REASONS
