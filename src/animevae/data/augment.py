"""The seed's augmentation (flip p=0.5, then rotation uniform in [-r, r]) as one batched warp on the device.

torchvision applies these per image with PIL on the CPU; here a whole uint8 batch is converted to
floats and warped by a single ``grid_sample`` wherever the model runs. Same distribution: each image
gets its own flip and angle; rotation is counter-clockwise about the centre like ``PIL.Image.rotate``,
and by default uses nearest-neighbour sampling and black corners like ``RandomRotation``'s defaults.

How the rotation resamples decides how much fine detail the training faces keep. On real 96-px anime
faces rotated by up to 10 degrees, the power above half the Nyquist frequency relative to the same
faces unrotated is 0.53 with bilinear sampling (every pixel averages up to four), 0.86 with bicubic,
and 1.15 with nearest (its jagged edges add detail no face has); experiments/rotation_detail.py.
Bicubic overshoots at edges, so its output is clamped to [0, 1] (a Bernoulli likelihood needs targets
in range).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def affine_matrices(flip: torch.Tensor, angle_deg: torch.Tensor, aspect: float = 1.0) -> torch.Tensor:
    """N x 2 x 3 sampling matrices (output -> input coordinates) for ``affine_grid``; ``aspect`` = H / W."""
    a = angle_deg * (math.pi / 180)
    cos, sin = torch.cos(a), torch.sin(a)
    sx = 1 - 2 * flip.to(a.dtype)  # -1 mirrors x
    zero = torch.zeros_like(a)
    # input = Flip @ Rot(-angle) @ output in pixel units, written in affine_grid's [-1, 1] coordinates
    # (x scaled by W/2, y by H/2), y pointing down
    row0 = torch.stack([sx * cos, -sx * sin * aspect, zero], dim=-1)
    row1 = torch.stack([sin / aspect, cos, zero], dim=-1)
    return torch.stack([row0, row1], dim=1)


def augment(
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    hflip: bool = True,
    rotation: float = 10.0,
    fill: str = "zeros",
    interpolation: str = "nearest",
) -> torch.Tensor:
    """uint8 N x C x H x W (on any device) -> float32 in [0, 1], flipped and rotated per image."""
    x = images.float().div_(255)
    n = x.shape[0]
    if n == 0 or (not hflip and rotation == 0):
        return x
    dev = x.device
    flip = torch.rand(n, device=dev, generator=generator) < 0.5 if hflip else torch.zeros(n, dtype=torch.bool, device=dev)
    if rotation == 0:
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    angle = (torch.rand(n, device=dev, generator=generator) * 2 - 1) * rotation
    grid = F.affine_grid(affine_matrices(flip, angle, x.shape[-2] / x.shape[-1]), list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode=interpolation, padding_mode=fill, align_corners=False)
    return out.clamp_(0, 1) if interpolation == "bicubic" else out
