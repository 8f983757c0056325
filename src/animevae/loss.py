"""The seed's loss: BCE-with-logits reconstruction + KL to N(0, I), summed per image, mean over the batch."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class LossOutput:
    loss: torch.Tensor  # scalar to backpropagate: mean over the batch of recon + beta * kl
    recon: torch.Tensor  # per image, summed over pixels (nats)
    kl: torch.Tensor  # per image, summed over latent dimensions (nats)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension: -0.5 * (1 + logvar - mu^2 - exp(logvar))."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())


def vae_loss(
    logits: torch.Tensor, target: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta: float = 1.0, free_bits: float = 0.0
) -> LossOutput:
    """Computed in fp32 even under autocast: sums over 27,648 pixels lose precision in bf16.

    ``free_bits`` > 0 (Kingma et al. 2016): each latent dimension's batch-mean KL below that many nats
    is not penalised, so the encoder keeps using dimensions instead of collapsing them to the prior.
    The reported ``kl`` is always the true KL.
    """
    pixel_dims = tuple(range(1, logits.dim()))  # a sum over them, not flatten(1): no copy of channels-last logits
    recon = F.binary_cross_entropy_with_logits(logits.float(), target.float(), reduction="none").sum(pixel_dims)
    kl_dims = kl_divergence(mu.float(), logvar.float())
    kl = kl_dims.sum(1)
    penalty = kl.mean() if free_bits <= 0 else kl_dims.mean(0).clamp(min=free_bits).sum()
    return LossOutput(recon.mean() + beta * penalty, recon, kl)
