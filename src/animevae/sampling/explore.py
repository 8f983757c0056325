"""Looking inside a trained run: reconstructions, interpolations between two faces, walks along one latent direction.

- ``reconstruct``: inputs beside their reconstructions (decode of the encoder mean), rows alternating
  input / reconstruction.
- ``interpolate``: from the latent of one image (or random prior latent) to another, linearly (lerp)
  and/or along the great circle (slerp: keeps the norm that prior samples have, which a straight line
  through the middle of the ball loses); a grid PNG and a GIF per mode.
- ``traverse``: a base latent moved along one latent dimension or a principal direction of the stored
  latent means, in steps of that direction's standard deviation in the stored latents.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..config import DataConfig
from ..errors import UserError
from ..images import save_gif, save_grid, to_hwc
from .generate import decode_latents, encode_images, load_model, reconstruct_images

MAX_IMAGE_BYTES = int(DataConfig.max_file_mb * (1 << 20))  # an image file given by name (--a, --b, --image): the data sources' cap


def _default_out(run: str, name: str) -> Path:
    return Path(run) / name if Path(run).is_dir() else Path(name)


def read_image(path: str | Path, size: int) -> torch.Tensor:
    """One image file -> uint8 3 x size x size (any mode converted to RGB, resized like the training data)."""
    from ..data.decode import decode_image
    from ..data.sources import Skipped, read_file

    data = read_file(str(Path(path).expanduser()), MAX_IMAGE_BYTES)
    if isinstance(data, OSError):
        raise UserError(f"{path}: cannot read it ({data.strerror or data})") from None
    if isinstance(data, Skipped):
        raise UserError(
            f"{path}: not read ({data.reason.removeprefix('skipped_').replace('_', ' ')}); give an image file of at most {MAX_IMAGE_BYTES >> 20} MB"
        )
    arr, reason = decode_image(data, size, convert_to_rgb=True)
    if arr is None:
        raise UserError(f"{path}: not a usable image ({reason.replace('skipped_', '').replace('_', ' ')})")
    return torch.from_numpy(arr)


def reconstruct(
    run: str, data_cfg, n: int = 16, out: str | Path | None = None, device: str = "cpu", cols: int = 8, latents: str | None = None, seed: int = 0
) -> Path:
    """The first ``n`` images of ``data_cfg`` and their reconstructions as one grid: rows alternate input / reconstruction.
    ``latents``, ``seed``: the posterior's means or a seeded draw (``reconstruct_images``; default: the model's kind's)."""
    from ..data.cache import load_images

    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    model = load_model(run, device)
    faces = load_images(data_cfg, model.config.image_size, progress=False)
    x = torch.from_numpy(np.array(faces.images[: min(n, len(faces))]))
    recon = reconstruct_images(model, x, generator=torch.Generator().manual_seed(seed), latents=latents)
    cols = min(cols, len(x))
    tiles = []
    for s in range(0, len(x), cols):
        row_in, row_out = x[s : s + cols], recon[s : s + cols]
        pad = cols - len(row_in)
        blank = torch.full((pad, *x.shape[1:]), 255, dtype=torch.uint8)
        tiles += [torch.cat([row_in, blank]), torch.cat([row_out, blank])]
    out = Path(out) if out is not None else _default_out(run, "reconstructions.png")
    save_grid(torch.cat(tiles), out, nrow=cols)
    return out


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Points (1 - t) a + t b for each t: len(t) x latent."""
    t = t[:, None].to(a.dtype)
    return (1 - t) * a + t * b


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985; White 2016 for generative models):
    sin((1 - t) W) / sin W * a + sin(t W) / sin W * b, W the angle between a and b (lerp when they are parallel)."""
    a64, b64, t64 = a.double(), b.double(), t.double()[:, None]
    na, nb = a64.norm(), b64.norm()
    if na < 1e-12 or nb < 1e-12:
        return lerp(a, b, t)
    omega = torch.arccos(torch.clamp((a64 / na) @ (b64 / nb), -1.0, 1.0))
    if torch.sin(omega) < 1e-6:  # (anti)parallel: no unique great circle
        return lerp(a, b, t)
    return ((torch.sin((1 - t64) * omega) * a64 + torch.sin(t64 * omega) * b64) / torch.sin(omega)).to(a.dtype)


def interpolate(
    run: str,
    out: str | Path | None = None,
    a: str | None = None,
    b: str | None = None,
    seed: int = 0,
    steps: int = 10,
    mode: str = "both",
    device: str = "cpu",
    duration_ms: int = 120,
) -> Path:
    """Decode ``steps`` points between two latents (of images ``a`` and ``b``, or two prior draws from ``seed``).

    Writes OUT/interpolation.png (one row per mode) and OUT/interpolation_<mode>.gif; returns OUT.
    """
    if steps < 2:
        raise UserError(f"--steps must be at least 2, got {steps}")
    if mode not in ("lerp", "slerp", "both"):
        raise UserError(f"--mode {mode}: unknown; choose lerp, slerp or both")
    if (a is None) != (b is None):
        raise UserError("--a and --b go together: give two images, or neither (two random prior latents from --seed)")
    model = load_model(run, device)
    if a is not None:
        size = model.config.image_size
        za, zb = encode_images(model, torch.stack([read_image(a, size), read_image(b, size)]))
    else:
        za, zb = torch.randn(2, model.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    t = torch.linspace(0, 1, steps)
    modes = ["lerp", "slerp"] if mode == "both" else [mode]
    out = Path(out) if out is not None else _default_out(run, "interpolation")
    rows = []
    for m in modes:
        z = (lerp if m == "lerp" else slerp)(za, zb, t)
        images = decode_latents(model, z, temperatures=0)  # a hierarchical model's finer groups: their priors' means, for smooth frames
        rows.append(images)
        save_gif(list(to_hwc(images)), out / f"interpolation_{m}.gif", duration_ms=duration_ms)
    save_grid(torch.cat(rows), out / "interpolation.png", nrow=steps)
    return out


def principal_directions(mu: torch.Tensor, max_rows: int = 50_000, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(directions latent x latent, one per column, by decreasing variance; std of the latents along each)."""
    x = mu.double()
    if len(x) > max_rows:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_rows]]
    x = x - x.mean(0)
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    return vh.T.float(), (s / max(1, len(x) - 1) ** 0.5).float()


def traverse(
    run: str,
    out: str | Path | None = None,
    dim: int | None = None,
    pc: int | None = None,
    span: float = 3.0,
    steps: int = 9,
    images: list[str] | None = None,
    rows: int = 4,
    seed: int = 0,
    device: str = "cpu",
) -> Path:
    """Move base latents along one direction: latent dimension ``dim`` (0-based) or principal direction ``pc`` (1 = largest variance).

    The offsets run from -span to +span standard deviations of the stored latent means along that
    direction. Bases: the given ``images`` (encoded), else the mean of the stored latents plus
    ``rows - 1`` stored latents picked with ``seed``. One grid row per base; returns the PNG's path.
    """
    if dim is not None and pc is not None:
        raise UserError("--dim and --pc are alternatives; give one")
    if steps < 2:
        raise UserError(f"--steps must be at least 2, got {steps}")
    if span <= 0:
        raise UserError(f"--range must be positive, got {span}")
    if rows < 1:
        raise UserError(f"--rows must be at least 1, got {rows}")
    model = load_model(run, device)
    mu = runs.load_latents(run).mu
    d = model.config.latent_dim
    if dim is not None:
        if not 0 <= dim < d:
            raise UserError(f"--dim {dim}: out of range; this model's latent dimensions are 0..{d - 1}")
        direction = torch.zeros(d)
        direction[dim] = 1.0
        std = float(mu[:, dim].std()) if len(mu) > 1 else 1.0
    else:
        pc = 1 if pc is None else pc
        limit = min(d, len(mu) - 1)
        if not 1 <= pc <= limit:
            raise UserError(f"--pc {pc}: out of range; the stored latents have principal directions 1..{limit}")
        vecs, stds = principal_directions(mu, seed=seed)
        direction, std = vecs[:, pc - 1], float(stds[pc - 1])
    std = std if std > 1e-8 else 1.0  # a dead dimension: walk in raw units instead
    if images:
        bases = encode_images(model, torch.stack([read_image(p, model.config.image_size) for p in images]))
    else:
        picks = torch.randperm(len(mu), generator=torch.Generator().manual_seed(seed))[: rows - 1]
        bases = torch.cat([mu.mean(0, keepdim=True), mu[picks]])
    offsets = torch.linspace(-span, span, steps) * std
    z = (bases[:, None, :] + offsets[None, :, None] * direction[None, None, :]).reshape(-1, d)
    out = Path(out) if out is not None else _default_out(run, f"traverse_{'dim' + str(dim) if dim is not None else 'pc' + str(pc)}.png")
    save_grid(decode_latents(model, z, temperatures=0), out, nrow=steps)
    return out
