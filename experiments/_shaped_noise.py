"""Prior draws of a finer latent group whose neighbouring positions move together as the posterior's do.

A finer group's learned prior draws every position independently given the coarser maps, while the posterior draws
the decoder was trained on are correlated between neighbours: over 4 x 4 blocks of the 24-px group they spread like
independent draws at temperature 1.15, at single positions like 0.99 (``experiments/posterior_spread.py``). An
independent draw can match one of those scales, not both; that is one reading of why a hotter 24-px group (1.2)
reads better on the shrunk rungs of the realism ladder and worse at 96 px. Here the prior's unit noise is instead
shaped to the posterior draws' own spatial autocorrelation (measured per channel on training faces, lags up to
``RADIUS``): eps = k * n, with n white noise and k the kernel whose autocorrelation is the measured one (the square
root of its spectrum), normalised so each position still has unit variance. The draw is z = mu_p + T sigma_p eps as
before. ``experiments/joint_gmm.py --shaped-noise`` decodes the joint mixture's draws with it (on the hierarchical
preset's run, at T = 1, it read behind white noise at T = 1.2 at 32 and 24 px: docs/explanation/hierarchical.md).
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from animevae.models import hierarchical

RADIUS = 4  # lags measured, in latent positions (a 9 x 9 kernel)


def autocorrelation(maps, radius: int = RADIUS) -> torch.Tensor:
    """Iterable of N x C x H x W maps -> C x (2r+1) x (2r+1): per channel, E[u(p) u(p + d)] over every pair of positions
    ``d`` apart inside the map, divided by E[u(p)^2] (1 at the centre)."""
    sums = counts = None
    for u in maps:
        u = u.double()
        _, c, h, w = u.shape
        if sums is None:
            sums = torch.zeros(c, 2 * radius + 1, 2 * radius + 1, dtype=torch.float64)
            counts = torch.zeros(2 * radius + 1, 2 * radius + 1, dtype=torch.float64)
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                a = u[:, :, max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
                b = u[:, :, max(0, dy) : h - max(0, -dy), max(0, dx) : w - max(0, -dx)]
                sums[:, dy + radius, dx + radius] += (a * b).sum((0, 2, 3))
                counts[dy + radius, dx + radius] += a.shape[0] * a.shape[2] * a.shape[3]
    ac = sums / counts
    return (ac / ac[:, radius : radius + 1, radius : radius + 1]).float()


def kernel_of(ac: torch.Tensor) -> torch.Tensor:
    """C x K x K autocorrelations -> C x K x K kernels k with k * k (their autocorrelation) close to them and sum k^2 = 1:
    the square root of the spectrum (negative parts, from a window's edges, set to 0), on a grid twice as wide."""
    c, size, _ = ac.shape
    r, grid = size // 2, 4 * (size // 2) + 1
    padded = torch.zeros(c, grid, grid, dtype=torch.float64)
    mid = grid // 2
    padded[:, mid - r : mid + r + 1, mid - r : mid + r + 1] = ac.double()
    spectrum = torch.fft.fft2(torch.fft.ifftshift(padded, dim=(-2, -1))).real.clamp(min=0)
    k = torch.fft.fftshift(torch.fft.ifft2(spectrum.sqrt()).real, dim=(-2, -1))[:, mid - r : mid + r + 1, mid - r : mid + r + 1]
    return (k / k.pow(2).sum((1, 2), keepdim=True).sqrt()).float()


def shaped(shape: tuple[int, ...], kernel: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """N x C x H x W unit-variance noise with ``kernel``'s (C x K x K) correlation between neighbours (no wrap-around)."""
    n, c, h, w = shape
    r = kernel.shape[-1] // 2
    white = torch.randn((n, c, h + 2 * r, w + 2 * r), generator=generator)
    return F.conv2d(white, kernel.unsqueeze(1), groups=c)


@contextlib.contextmanager
def shaped_prior_noise(kernels: dict[tuple[int, int, int], torch.Tensor]):
    """Within the block, a hierarchical model's prior draws of a group whose (C, H, W) is in ``kernels`` use shaped noise."""
    plain = hierarchical.noise_like

    def noise_like(t, generator):
        kernel = kernels.get(tuple(t.shape[1:]))
        return plain(t, generator) if kernel is None else shaped(tuple(t.shape), kernel, generator).to(t.device)

    hierarchical.noise_like = noise_like
    try:
        yield
    finally:
        hierarchical.noise_like = plain
