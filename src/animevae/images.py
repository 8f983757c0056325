"""Tensors <-> pictures: uint8 PNGs, grids and GIFs, all written atomically."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .runs import write_bytes


def to_hwc(images) -> np.ndarray:
    """uint8 N x C x H x W (tensor or array) -> N x H x W x C numpy."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(images, dtype=np.uint8).transpose(0, 2, 3, 1))


def make_grid(images, nrow: int | None = None, pad: int = 2, background: int = 255) -> np.ndarray:
    """N x C x H x W uint8 -> one H' x W' x C uint8 picture, ``nrow`` images per row (square by default)."""
    tiles = to_hwc(images)
    n, h, w, c = tiles.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = max(1, math.ceil(n / nrow))
    grid = np.full((pad + rows * (h + pad), pad + nrow * (w + pad), c), background, np.uint8)
    for i, tile in enumerate(tiles):
        r, col = divmod(i, nrow)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = tile
    return grid


def png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def save_png(array: np.ndarray, path) -> None:
    write_bytes(path, png_bytes(array))


def save_grid(images, path, nrow: int | None = None) -> None:
    save_png(make_grid(images, nrow), path)


def save_images(images, folder, prefix: str = "") -> list[Path]:
    """One PNG per image: folder/00000.png, 00001.png, ..."""
    folder = Path(folder)
    paths = []
    for i, tile in enumerate(to_hwc(images)):
        path = folder / f"{prefix}{i:05d}.png"
        save_png(tile, path)
        paths.append(path)
    return paths


def save_gif(frames: list[np.ndarray], path, duration_ms: int = 80) -> None:
    """Frames (H x W x C uint8) -> an endlessly looping GIF that plays forwards then back."""
    seq = [Image.fromarray(f) for f in frames + frames[-2:0:-1]]
    buf = io.BytesIO()
    seq[0].save(buf, format="GIF", save_all=True, append_images=seq[1:], duration=duration_ms, loop=0)
    write_bytes(path, buf.getvalue())


def save_loss_curve(history: list[dict], path) -> None:
    """Training and held-out loss per epoch (matplotlib, no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, [h["loss"] for h in history], "o-", label="training (recon + beta*KL)")
    held = [(h["epoch"], h["heldout_loss"]) for h in history if h.get("heldout_loss") is not None]
    if held:
        ax.plot(*zip(*held), "s-", label="held-out")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss per image (nats)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    write_bytes(path, buf.getvalue())
