"""decode_image on real encoded bytes: the seed's filters, --convert-to-rgb, resizing, and never raising."""

from __future__ import annotations

import io

import numpy as np
import pytest
from messy_images import CONVERTED, EXPECTED, GRAY16_VALUES, RGBA_SIZE, encode, huge_png, messy_bytes, rgb_pattern
from PIL import Image, ImageOps

from animevae.data import decode
from animevae.data.decode import REASONS, decode_image


@pytest.fixture(scope="module")
def messy() -> dict[str, bytes]:
    return messy_bytes()


def _pil_rgb_resized(data: bytes, size: int) -> np.ndarray:
    """What the seed does with an RGB image: PIL open, EXIF-upright, bilinear resize; as 3 x S x S."""
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


def test_messy_set_covers_every_reason():
    # every reason that bytes can earn; not_a_file is the reader's (a FIFO, a device: tests/test_special_files.py)
    assert set(EXPECTED.values()) == set(REASONS) - {"skipped_not_a_file"}


@pytest.mark.parametrize("convert, expected, size", [(False, EXPECTED, 32), (True, CONVERTED, 24)], ids=["seed-filters", "convert-to-rgb"])
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reason_for_every_file(messy, name, convert, expected, size):
    arr, reason = decode_image(messy[name], size, convert_to_rgb=convert)
    assert reason == expected[name]
    if reason == "kept":
        assert arr.shape == (3, size, size) and arr.dtype == np.uint8 and arr.flags.c_contiguous
    else:
        assert arr is None


@pytest.mark.parametrize("name", ["good.jpg", "good.png", "shout.JPG", "rgb.webp", "rgb.bmp", "nested/deeper/face.png"])
@pytest.mark.parametrize("size", [16, 24, 64])  # down, down, up
def test_resize_matches_pil_bilinear(messy, name, size):
    arr, reason = decode_image(messy[name], size)
    assert reason == "kept"
    np.testing.assert_array_equal(arr, _pil_rgb_resized(messy[name], size))


def test_no_resize_at_native_size_is_lossless():
    img = rgb_pattern(32, 32, seed=3)
    arr, reason = decode_image(encode(Image.fromarray(img), "PNG"), 32)
    assert reason == "kept"
    np.testing.assert_array_equal(arr, img.transpose(2, 0, 1))


def test_rgba_composited_over_white(messy):
    arr, reason = decode_image(messy["rgba.png"], RGBA_SIZE, convert_to_rgb=True)
    assert reason == "kept"
    px = arr.transpose(1, 2, 0).astype(int)
    assert (px[:, :4] == 255).all()  # fully transparent red -> white, not red, not black
    assert (abs(px[:, 4:8] - 127) <= 1).all()  # black at alpha 128 over white -> mid grey
    assert (px[:, 8:] == (0, 0, 255)).all()  # opaque blue untouched


def test_palette_transparency_composited_over_white(messy):
    arr, reason = decode_image(messy["palette_alpha.png"], 16, convert_to_rgb=True)
    assert reason == "kept"
    px = arr.transpose(1, 2, 0)
    assert (px[:, :8] == 255).all()  # transparent palette entry (red) -> white
    assert (px[:, 8:] == (0, 255, 0)).all()


def test_gray_alpha_composited_over_white(messy):
    gray = rgb_pattern(24, 24, seed=6)[..., 0].astype(float)  # what messy_images put in gray_alpha.png
    arr, reason = decode_image(messy["gray_alpha.png"], 24, convert_to_rgb=True)
    assert reason == "kept"
    want = gray * 128 / 255 + 255 * 127 / 255
    for c in range(3):
        assert np.abs(arr[c] - want).max() <= 1.5


def test_sixteen_bit_scaled_not_clipped(messy):
    assert Image.open(io.BytesIO(messy["gray16.png"])).mode == "I;16"
    arr, reason = decode_image(messy["gray16.png"], 16, convert_to_rgb=True)
    assert reason == "kept"
    assert (arr[:, 0:5] == 0).all()
    assert (np.abs(arr[:, 5:11].astype(int) - 128) <= 1).all()  # 32768 -> ~128 (clipping would give 255)
    assert (arr[:, 11:] == 255).all()  # 65535 -> 255
    assert (arr[0] == arr[1]).all() and (arr[1] == arr[2]).all()
    assert GRAY16_VALUES == (0, 32768, 65535)


def test_gray_and_bilevel_become_gray_rgb(messy):
    for name in ("gray.jpg", "bilevel.png"):
        arr, reason = decode_image(messy[name], 24, convert_to_rgb=True)
        assert reason == "kept"
        want = np.asarray(Image.open(io.BytesIO(messy[name])).convert("L"))
        for c in range(3):
            np.testing.assert_array_equal(arr[c], want)
    bits, _ = decode_image(messy["bilevel.png"], 24, convert_to_rgb=True)
    assert set(np.unique(bits)) == {0, 255}


@pytest.mark.parametrize("name", ["cmyk.jpg", "palette.gif", "palette.png", "animated.gif"])
def test_converted_like_pil(messy, name):
    arr, reason = decode_image(messy[name], 20, convert_to_rgb=True)
    assert reason == "kept"
    np.testing.assert_array_equal(arr, _pil_rgb_resized(messy[name], 20))


def test_exif_orientation_applied(messy):
    # stored 32x16, left half red / right half blue, orientation 6 -> displayed 16x32, top red / bottom blue
    arr, reason = decode_image(messy["exif_rotated.jpg"], 16)
    assert reason == "kept"
    px = arr.transpose(1, 2, 0).astype(int)
    for r, c in [(2, 2), (2, 13), (5, 8)]:  # top row, both sides: red (stored orientation has blue top-right)
        assert px[r, c, 0] > 200 and px[r, c, 2] < 60, (r, c, px[r, c])
    for r, c in [(13, 2), (13, 13), (10, 8)]:
        assert px[r, c, 2] > 200 and px[r, c, 0] < 60, (r, c, px[r, c])


@pytest.mark.parametrize("w,h,reason", [(8, 8, "kept"), (7, 30, "skipped_too_small"), (30, 7, "skipped_too_small"), (8, 200, "kept")])
def test_min_side(w, h, reason):
    data = encode(Image.fromarray(rgb_pattern(w, h)), "PNG")
    assert decode_image(data, 16)[1] == reason
    assert decode.MIN_SIDE == 8


def test_too_large_refused_before_decoding():
    data = huge_png(8000, 5001)  # 40,008,000 pixels, just over MAX_PIXELS
    assert decode.MAX_PIXELS == 40_000_000
    assert decode_image(data, 16) == (None, "skipped_too_large")
    # exactly MAX_PIXELS is decoded (a 1-bit image, so the seed's filter then skips it as not RGB)
    assert decode_image(huge_png(8000, 5000), 16) == (None, "skipped_not_rgb")


def test_decompression_bomb_counted_as_too_large():
    assert decode_image(huge_png(20000, 20000), 16)[1] == "skipped_too_large"


def test_array_input():
    img = rgb_pattern(30, 20, seed=12)
    arr, reason = decode_image(img, 16)
    assert reason == "kept"
    np.testing.assert_array_equal(arr, np.asarray(Image.fromarray(img).resize((16, 16), Image.BILINEAR)).transpose(2, 0, 1))
    assert decode_image(img[..., 0], 16) == (None, "skipped_not_rgb")
    gray, reason = decode_image(np.ascontiguousarray(img[..., 0]), 20, convert_to_rgb=True)
    assert reason == "kept" and (gray[0] == gray[2]).all()


def test_exception_input_is_undecodable():
    assert decode_image(FileNotFoundError("gone"), 16) == (None, "skipped_undecodable")


def test_never_raises_on_garbage(messy):
    rng = np.random.default_rng(2024)
    seeds = [messy[n] for n in ("good.jpg", "good.png", "palette.gif", "rgb.webp", "rgb.bmp", "gray16.png", "rgba.png")]
    inputs = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"BM"]
    inputs += [rng.integers(0, 256, int(rng.integers(1, 3000)), dtype=np.uint8).tobytes() for _ in range(50)]
    for i in range(150):
        data = bytearray(seeds[i % len(seeds)])
        kind = i % 3
        if kind == 0:  # flip a few bytes anywhere
            for pos in rng.integers(0, len(data), int(rng.integers(1, 6))):
                data[pos] = int(rng.integers(0, 256))
        elif kind == 1:  # flip bytes in the header
            for pos in rng.integers(0, min(64, len(data)), int(rng.integers(1, 4))):
                data[pos] ^= 1 << int(rng.integers(0, 8))
        else:  # truncate
            data = data[: int(rng.integers(0, len(data)))]
        inputs.append(bytes(data))
    seen = set()
    for data in inputs:
        arr, reason = decode_image(data, 16, convert_to_rgb=bool(len(data) % 2))
        assert reason in REASONS
        seen.add(reason)
        if reason == "kept":
            assert arr.shape == (3, 16, 16) and arr.dtype == np.uint8
        else:
            assert arr is None
    assert {"kept", "skipped_undecodable"} <= seen  # the loop reached both the decoder and the error path
