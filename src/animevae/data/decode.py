"""Decode one image, apply the seed's filters, resize: never raises, always says why an image was dropped.

The seed keeps only images that become a rank-3 array with 3 channels (i.e. RGB); grayscale, RGBA,
palette, CMYK and 16-bit images are skipped unless ``convert_to_rgb`` is set, which converts them
(alpha is composited over white, 16-bit is scaled, not clipped). Resizing matches torchvision's
``Resize`` on a PIL image: bilinear with antialiasing.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

REASONS = ("kept", "skipped_not_rgb", "skipped_undecodable", "skipped_too_small", "skipped_too_large", "skipped_not_a_file")
MIN_SIDE = 8  # smaller images carry no face; a 1x1 "image" would train on a flat colour
MAX_PIXELS = 40_000_000  # larger ones are decompression bombs or not faces; refuse before decoding


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha over white, 16/32-bit scaled to 8-bit, CMYK/palette/gray converted."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        img = img.convert("RGBA")
        background = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, img)
    return img.convert("RGB")


def decode_image(data, size: int, convert_to_rgb: bool = False) -> tuple[np.ndarray | None, str]:
    """bytes (or an HxWx3 uint8 array, or an Exception from reading) -> (3 x size x size uint8, reason)."""
    if isinstance(data, Exception):  # not read: a reason of its own (sources.Skipped), or a read that failed
        return None, getattr(data, "reason", "skipped_undecodable")
    if isinstance(data, np.ndarray):
        img = Image.fromarray(data)
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # DecompressionBombWarning, EXIF warnings: handled below
                img = Image.open(io.BytesIO(data))
                w, h = img.size
                if w * h > MAX_PIXELS:
                    return None, "skipped_too_large"
                img.load()  # raises on truncated or corrupt data
                img = ImageOps.exif_transpose(img)
        except Image.DecompressionBombError:  # Pillow's own limit, raised by open() before our size check
            return None, "skipped_too_large"
        except Exception:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... on bad bytes
            return None, "skipped_undecodable"
    if min(img.size) < MIN_SIDE:
        return None, "skipped_too_small"
    try:
        if convert_to_rgb:
            img = to_rgb(img)
        arr = np.asarray(img)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:  # the seed's two filters
            return None, "skipped_not_rgb"
        if img.size != (size, size):
            img = img.resize((size, size), Image.BILINEAR)
            arr = np.asarray(img)
    except Exception:
        return None, "skipped_undecodable"
    return np.ascontiguousarray(arr.transpose(2, 0, 1)), "kept"
