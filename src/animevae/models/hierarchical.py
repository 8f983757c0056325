"""A top-down hierarchical VAE (NVAE, Vahdat & Kautz 2020; VDVAE, Child 2021) at laptop scale: latents for the strokes.

One latent map for a whole face (the sharp preset's 16 x 6 x 6) leaves open where each line goes, and a
decoder trained on a per-pixel likelihood draws the average of those places: a blur. Here the top map sets
the face, and finer latent groups, one per decoder octave below it (12 x 12 and 24 x 24 at 96 px), set the
detail, each conditioned on the coarser ones:

    image --encoder--> features at 48, 24, 12, 6 px --heads--> q(z_top | x) (the model's latent, as in the sharp preset)
    z_top --1x1 conv--> state at 6 px --up--> 12 px: prior p(z_12 | z_top), posterior q(z_12 | x, z_top) from the
          state and the encoder's 12-px features; z_12 joins the state --up--> 24 px: the same --up--> pixels

Each group's prior is a 3x3 conv of the decoder state, so it is learned with the model; its posterior is
the prior shifted and rescaled by a 3x3 conv of the state and the encoder's features at that size (NVAE's
residual parameterisation: its KL does not depend on the prior's own scale). Both heads start at zero, so a
new model's finer groups begin as N(0, I) with posterior = prior and add nothing; a residual cell after each
join lets the state use them. Log-variances go through a soft clamp (NVAE's), which keeps early steps finite.

The top group is the model's latent everywhere else (the latents file, every sampler, interpolation);
``decode(z_top)`` draws the finer groups from their learned priors at per-group temperatures, and
``reconstruct(x)`` takes them from the posterior. The 12-px group's prior draws each position independently
given the top, so the two halves of an eye need not agree: ``encode_detail`` gives each face's finer posteriors in
their priors' whitened coordinates (the latents file keeps one posterior draw per face of the 12-px group, ``detail``,
and of the 24-px one, ``fine``), a sampler fitted over them (joint-gmm) draws them with the top, and
``decode([z_top, u_12, u_24])`` decodes such a draw. Registered as ``arch="hierarchical"``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import UserError
from .distributions import noise_like
from .fastconv import ConvTranspose2d
from .vae import ResidualBlock, SpatialConv, _block, _cpu_path, register_architecture

LOG_2PI = math.log(2 * math.pi)
LOGVAR_BOUND = 5.0  # soft clamp of every group's log-variance (NVAE's): sigma in [e^-2.5, e^2.5]


def soft_clamp(t: torch.Tensor, bound: float = LOGVAR_BOUND) -> torch.Tensor:
    return bound * torch.tanh(t / bound)


class BottomUp(nn.Sequential):
    """The encoder's layers, returning every layer's output (finest first): the finer groups' posteriors read them."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for layer in self:
            x = layer(x)
            features.append(x)
        return features


class LatentGroup(nn.Module):
    """One finer latent group: a prior and a residual posterior (3x3 conv heads), and the join of z into the state."""

    def __init__(self, width: int, feature_channels: int, z_channels: int, slope: float, cell: bool = True, scale: int = 0):
        super().__init__()
        self.z_channels, self.scale = z_channels, scale  # scale: octaves below the top map, less one
        self.prior = nn.Conv2d(width, 2 * z_channels, 3, 1, 1)
        self.posterior = nn.Conv2d(width + feature_channels, 2 * z_channels, 3, 1, 1)
        self.join = nn.Conv2d(z_channels, width, 1)
        self.cell = ResidualBlock(width, slope) if cell else nn.Identity()
        for head in (self.prior, self.posterior):  # start as N(0, I) with q = p: a new group changes nothing
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def prior_of(self, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.prior(state).float().chunk(2, 1)
        return mu, soft_clamp(logvar)

    def shift_of(self, state: torch.Tensor, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior's offsets from the prior: q = N(mu_p + d_mu, exp(logvar_p + d_logvar))."""
        d_mu, d_logvar = self.posterior(torch.cat([state, feature.to(state.dtype)], 1)).float().chunk(2, 1)
        return d_mu, soft_clamp(d_logvar)

    def joined(self, state: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.cell(state + self.join(z))


class TopDown(nn.Module):
    """The decoder: the sharp preset's transposed convs from the top map up to the pixels, with a latent group
    after the first ``len(groups)`` of them. ``forward(h, features)`` is the posterior pass (training,
    reconstruction: ``mode`` takes each group's posterior mean); ``forward(h)`` the prior pass (generation,
    at ``temperatures``, one per finer scale); ``forward(h, features, keep=k)`` takes the first k finer groups from the
    posterior and draws the rest from their priors (what each group holds); ``forward(h, given=u)`` takes the first finer
    groups, in order, as ``prior mean + prior sigma * u`` for as many groups as ``u`` is wide (``whitened``'s coordinates:
    what the joint-gmm sampler draws), the rest from their priors.
    Returns (likelihood params, per-group KL maps flattened or [], log p - log q of the drawn finer latents per image or None)."""

    def __init__(self, widths: list[int], group_channels: tuple[int, ...], slope: float, out_channels: int, cells: bool = True, per_scale: int = 1):
        super().__init__()
        last = len(widths) - 2
        self.ups = nn.ModuleList(_block(ConvTranspose2d(widths[i + 1], widths[i], _cpu_path(i, last)), widths[i], slope) for i in range(last, 0, -1))
        if len(group_channels) > len(self.ups):
            raise UserError(f"this image size leaves room for {len(self.ups)} finer latent groups, not {len(group_channels)}")
        # ``per_scale`` groups at each finer scale, in order: each next one's prior reads the state the earlier ones
        # joined, so neighbouring strokes are drawn one after another, not independently given the coarser maps
        self.groups = nn.ModuleList(
            LatentGroup(widths[last - j], widths[last - j], c, slope, cells, scale=j) for j, c in enumerate(group_channels) for _ in range(per_scale)
        )
        self.out = ConvTranspose2d(widths[1], out_channels, "subpixel")

    def forward(self, h, features=None, *, mode=False, generator=None, temperatures=(1.0,), keep=None, given=None):
        kls, log_ratio, taken = [], None, 0
        for j, up in enumerate(self.ups):
            h = up(h)
            for g, group in enumerate(self.groups):
                if group.scale != j:
                    continue
                u = None
                if given is not None and taken < given.shape[1]:  # this group's slice of the draw, in its prior's whitened coordinates
                    n = group.z_channels * h.shape[2] * h.shape[3]
                    u, taken = given[:, taken : taken + n].reshape(len(h), group.z_channels, *h.shape[2:]), taken + n
                h, z_kl, ratio = self._group(g, group, h, features, mode, generator, temperatures, keep, u)
                kls += z_kl
                if ratio is not None:
                    log_ratio = ratio if log_ratio is None else log_ratio + ratio
        return self.out(h), kls, log_ratio

    def whitened(self, h: torch.Tensor, features: list[torch.Tensor], generator: torch.Generator | None = None, scales: int = 1) -> torch.Tensor:
        """The first ``scales`` finer scales' posterior means (every group of them in order, each given the top state ``h``
        and the groups before it) in their priors' whitened coordinates, u = (mu_q - mu_p) / sigma_p, flattened and
        joined to N x D; with ``generator``, posterior draws (the mean plus the posterior's own spread, as training
        decodes them). A sampler fitted over [top, u] (joint-gmm) can hold which strokes go together, which a prior
        that draws each position independently cannot."""
        us = []
        for j, up in enumerate(self.ups[:scales]):
            h = up(h)
            for group in self.groups:
                if group.scale == j:
                    p_mu, p_logvar = group.prior_of(h)
                    d_mu, d_logvar = group.shift_of(h, features[len(features) - 1 - j])
                    u = d_mu * torch.exp(-p_logvar / 2)
                    if generator is not None:
                        u = u + torch.exp(d_logvar / 2) * noise_like(u, generator)
                    us.append(u.flatten(1))
                    h = group.joined(h, p_mu + torch.exp(p_logvar / 2) * u)
        return torch.cat(us, 1)

    @staticmethod
    def _group(g, group, h, features, mode, generator, temperatures, keep, u=None):
        """The g-th finer group at state ``h``: (the state with its z joined, [its KL map] or [], log p - log q of the draw or None)."""
        p_mu, p_logvar = group.prior_of(h)
        if u is not None:
            return group.joined(h, p_mu + torch.exp(p_logvar / 2) * u.to(p_mu.dtype)), [], None
        if features is None or (keep is not None and g >= keep):
            t = temperatures[min(group.scale, len(temperatures) - 1)]  # one temperature per finer scale
            z = p_mu if t == 0 else p_mu + t * torch.exp(p_logvar / 2) * noise_like(p_mu, generator)
            return group.joined(h, z), [], None
        d_mu, d_logvar = group.shift_of(h, features[len(features) - 1 - group.scale])
        # KL(q || p) with q = N(mu_p + d_mu, s_p^2 e^d_logvar), p = N(mu_p, s_p^2): the prior's scale cancels
        kl = (0.5 * (d_mu.pow(2) * torch.exp(-p_logvar) + torch.exp(d_logvar) - 1 - d_logvar)).flatten(1)
        z, ratio = p_mu + d_mu, None
        if not mode:
            eps = noise_like(z, generator)
            z = z + torch.exp((p_logvar + d_logvar) / 2) * eps
            # log p(z) - log q(z) of this draw: (z - mu_p) / s_p = d_mu / s_p + e^(d_logvar / 2) eps
            u = d_mu * torch.exp(-p_logvar / 2) + torch.exp(d_logvar / 2) * eps
            ratio = (-0.5 * (u.pow(2) - eps.pow(2)) + 0.5 * d_logvar).flatten(1).sum(1)
        return group.joined(h, z), [kl], ratio


@register_architecture("hierarchical")
class Hierarchical(SpatialConv):
    """The sharp preset's encoder and decoder (a 16 x 6 x 6 top map at 96 px) with finer latent groups of
    ``GROUPS`` channels one and two octaves below the top (12 x 12 and 24 x 24 at 96 px), sampled at
    ``TEMPERATURES`` (one per finer scale) unless told otherwise; ``CELLS``: a residual cell after each join."""

    hierarchical = True
    GROUPS: tuple[int, ...] = (8, 4)
    # 12 px, 24 px. On the realism ladder every finer group at 0, 0.5, 0.6 or 0.8 reads worse than at 1 from 48 px down
    # (experiments/hierarchical.py); with joint-gmm drawing the 12-px group, the 24-px group at 1.2 reads better than at
    # 1 at every rung from 48 px down and a little worse at 96, at 1.4 better still at 32-16 px but worse at 48 and 96
    # (experiments/joint_gmm.py --fine-temperature)
    TEMPERATURES: tuple[float, ...] = (1.0, 1.2)
    CELLS = True
    PER_SCALE = 1  # latent groups at each finer scale

    def encoder(self, c: ModelConfig):
        net, shape = super().encoder(c)
        return BottomUp(*net), shape

    def decoder(self, c: ModelConfig, out_channels: int) -> TopDown:
        f = self._fewer(c)
        return TopDown(self._widths(f), self.GROUPS, f.negative_slope, out_channels, self.CELLS, self.PER_SCALE)


@register_architecture("hierarchical-stacked")
class StackedHierarchical(Hierarchical):
    """Three latent groups at each finer scale instead of one (NVAE and VDVAE stack many): within one group the
    prior draws every position independently given the coarser maps, so neighbouring strokes (the two halves of an
    eye) need not agree; each next group's prior reads what the earlier ones drew. About as many latent
    dimensions per scale as ``hierarchical`` (3 x 3 channels at 12 x 12, 3 x 2 at 24 x 24 at 96 px)."""

    GROUPS = (3, 2)
    PER_SCALE = 3
    TEMPERATURES = (1.0,)
