"""A messy image set, generated at test time (never committed): every mode, format and failure a
user's folder of "faces" can hold, each with the reason ``decode_image`` must give for it.

``write_messy_set(folder)`` writes the files and returns {relative path: expected reason} for
``convert_to_rgb=False``; ``CONVERTED`` gives the reasons with ``convert_to_rgb=True``.
``write_parquet`` / ``write_messy_parquet`` pack images into a parquet file in the Hugging Face
Hub's image format ({bytes, path} cells with the Image feature in the schema metadata).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# name -> reason with convert_to_rgb=False (the seed's filters)
EXPECTED: dict[str, str] = {
    "good.jpg": "kept",
    "good.png": "kept",
    "shout.JPG": "kept",  # upper-case extension
    "rgb.webp": "kept",
    "rgb.bmp": "kept",
    "exif_rotated.jpg": "kept",
    "nested/deeper/face.png": "kept",
    "gray.jpg": "skipped_not_rgb",  # L
    "gray_alpha.png": "skipped_not_rgb",  # LA
    "rgba.png": "skipped_not_rgb",
    "palette.gif": "skipped_not_rgb",  # P
    "palette.png": "skipped_not_rgb",  # P
    "palette_alpha.png": "skipped_not_rgb",  # P with a transparent palette entry
    "cmyk.jpg": "skipped_not_rgb",
    "gray16.png": "skipped_not_rgb",  # I;16
    "bilevel.png": "skipped_not_rgb",  # 1
    "animated.gif": "skipped_not_rgb",  # P frames
    "tiny.png": "skipped_too_small",  # 1x1 RGB
    "truncated.jpg": "skipped_undecodable",
    "text.jpg": "skipped_undecodable",  # a text file with an image extension
    "empty.png": "skipped_undecodable",  # zero bytes
    "huge.png": "skipped_too_large",  # a valid 7000x6000 1-bit PNG: 42M pixels > MAX_PIXELS
}
# convert_to_rgb=True keeps every image that decodes, whatever its mode
CONVERTED: dict[str, str] = {k: ("kept" if v == "skipped_not_rgb" else v) for k, v in EXPECTED.items()}
NOT_IMAGES = ("notes.txt",)  # ignored by extension; counted in stats["ignored_not_image_extension"]

# Pixel facts the decode tests check
RGBA_SIZE = 16  # rgba.png: columns 0-3 fully transparent red, 4-7 half-transparent black, 8-15 opaque blue
GRAY16_VALUES = (0, 32768, 65535)  # gray16.png: 16x16, rows 0-4 / 5-10 / 11-15 hold these values
EXIF_STORED = (32, 16)  # exif_rotated.jpg as stored: left half red, right half blue; orientation 6


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def rgb_pattern(w: int, h: int, seed: int = 0) -> np.ndarray:
    """A structured RGB image (gradients plus noise): resizing and rotation errors show on it."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / max(w - 1, 1), y * 255 / max(h - 1, 1), (x + y) % 32 * 8], -1)
    noise = _rng(seed).integers(-40, 41, (h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def huge_png(width: int, height: int) -> bytes:
    """A valid, tiny (compressed) all-black 1-bit PNG of width x height pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def messy_bytes() -> dict[str, bytes]:
    """name -> file content, for every file of the messy set (notes.txt included)."""
    good = Image.fromarray(rgb_pattern(40, 30, seed=1))
    out: dict[str, bytes] = {}
    out["good.jpg"] = encode(good, "JPEG", quality=95)
    out["good.png"] = encode(good, "PNG")
    out["shout.JPG"] = encode(Image.fromarray(rgb_pattern(24, 24, seed=2)), "JPEG")
    out["rgb.webp"] = encode(Image.fromarray(rgb_pattern(20, 28, seed=3)), "WEBP", lossless=True)
    out["rgb.bmp"] = encode(Image.fromarray(rgb_pattern(28, 20, seed=4)), "BMP")

    w, h = EXIF_STORED
    stored = np.zeros((h, w, 3), np.uint8)
    stored[:, : w // 2] = (255, 0, 0)
    stored[:, w // 2 :] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    out["exif_rotated.jpg"] = encode(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())
    out["nested/deeper/face.png"] = encode(Image.fromarray(rgb_pattern(32, 32, seed=5)), "PNG")

    gray = rgb_pattern(24, 24, seed=6)[..., 0]
    out["gray.jpg"] = encode(Image.fromarray(gray, "L"), "JPEG")
    out["gray_alpha.png"] = encode(Image.fromarray(np.stack([gray, np.full_like(gray, 128)], -1), "LA"), "PNG")

    s = RGBA_SIZE
    rgba = np.zeros((s, s, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 0)  # fully transparent red: must become white
    rgba[:, 4:8] = (0, 0, 0, 128)  # half-transparent black over white: mid grey
    rgba[:, 8:] = (0, 0, 255, 255)  # opaque blue
    out["rgba.png"] = encode(Image.fromarray(rgba, "RGBA"), "PNG")

    pal = Image.fromarray(rgb_pattern(24, 24, seed=7)).quantize(16)
    out["palette.gif"] = encode(pal, "GIF")
    out["palette.png"] = encode(pal, "PNG")
    pal_alpha = Image.new("P", (16, 16), 0)
    pal_alpha.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal_alpha.paste(1, (8, 0, 16, 16))  # left half index 0 (transparent red), right half index 1 (green)
    out["palette_alpha.png"] = encode(pal_alpha, "PNG", transparency=0)

    out["cmyk.jpg"] = encode(Image.fromarray(rgb_pattern(24, 24, seed=8)).convert("CMYK"), "JPEG", quality=95)
    g16 = np.zeros((16, 16), np.uint16)
    g16[5:11], g16[11:] = GRAY16_VALUES[1], GRAY16_VALUES[2]
    out["gray16.png"] = encode(Image.fromarray(g16), "PNG")  # mode I;16
    bits = rgb_pattern(24, 24, seed=9)[..., 0] > 127
    out["bilevel.png"] = encode(Image.fromarray(bits), "PNG")  # mode 1

    frames = [Image.fromarray(rgb_pattern(24, 24, seed=10 + i)) for i in range(3)]
    out["animated.gif"] = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)

    out["tiny.png"] = encode(Image.new("RGB", (1, 1), (200, 100, 50)), "PNG")
    noisy = encode(Image.fromarray(_rng(11).integers(0, 256, (64, 64, 3), dtype=np.uint8)), "JPEG", quality=95)
    out["truncated.jpg"] = noisy[: len(noisy) // 2]
    out["text.jpg"] = b"this is not a JPEG, just text with the wrong extension\n" * 4
    out["empty.png"] = b""
    out["huge.png"] = huge_png(7000, 6000)
    out["notes.txt"] = b"a note next to the pictures; not an image\n"
    assert set(out) == set(EXPECTED) | set(NOT_IMAGES)
    return out


def write_messy_set(folder) -> dict[str, str]:
    """Write the messy set under ``folder``; return {relative path: expected reason (convert_to_rgb=False)}."""
    folder = Path(folder)
    for name, data in messy_bytes().items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return dict(EXPECTED)


def write_parquet(path, items, column: str = "image", extra: dict | None = None, image_feature: bool = True, image_first: bool = True) -> Path:
    """items: [(name, bytes)] -> a parquet file in the Hub's image format; ``extra``: more columns
    (after the image column, or before it with ``image_first=False``)."""
    import datasets

    cells = {column: [{"bytes": b, "path": name} for name, b in items]}
    data = {**cells, **(extra or {})} if image_first else {**(extra or {}), **cells}
    ds = datasets.Dataset.from_dict(data)
    if image_feature:
        ds = ds.cast_column(column, datasets.Image())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(path))
    return path


def write_messy_parquet(path, column: str = "image") -> list[str]:
    """The messy set's image files as one parquet file; returns the names in row order (sorted like a folder)."""
    data = messy_bytes()
    names = sorted(EXPECTED)
    write_parquet(path, [(n, data[n]) for n in names], column=column, extra={"id": list(range(len(names)))})
    return names
