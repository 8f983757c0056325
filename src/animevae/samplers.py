"""Ways to pick new latents, behind one interface: ``sampler.sample(n, generator) -> n x latent``.

``mix`` is the seed's: random weighted averages of the learned latent means. With weights over all
~60k latents every average collapses to the mean face, so ``k`` (how many stored latents one mix
draws on) is a parameter; the README's table shows what it does to diversity.
"""

from __future__ import annotations

import torch


class Sampler:
    name = "base"

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError


class MixSampler(Sampler):
    """Weighted averages of ``k`` randomly chosen learned latents (``k=None``: of all of them)."""

    name = "mix"

    def __init__(self, mu: torch.Tensor, k: int | None = 4):
        if mu.ndim != 2 or len(mu) == 0:
            raise ValueError("mix needs a non-empty N x latent tensor of learned latents")
        self.mu = mu.float()
        self.k = None if k is None or k >= len(mu) else int(k)
        if self.k is not None and self.k < 1:
            raise ValueError(f"mix k must be at least 1, got {k}")

    def sample(self, n, generator=None):
        big = len(self.mu)
        if self.k is None:  # the literal reading: a random weight for every stored latent
            w = torch.rand(n, big, generator=generator)
            return (w / w.sum(1, keepdim=True)) @ self.mu
        idx = torch.multinomial(torch.ones(n, big), self.k, replacement=False, generator=generator)
        w = torch.rand(n, self.k, generator=generator)
        w = w / w.sum(1, keepdim=True)
        return torch.einsum("nk,nkd->nd", w, self.mu[idx])


class PriorSampler(Sampler):
    """z ~ N(0, temperature^2 I): what the KL term trains the latent space to look like."""

    name = "prior"

    def __init__(self, latent_dim: int, temperature: float = 1.0):
        self.latent_dim, self.temperature = latent_dim, float(temperature)

    def sample(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator) * self.temperature
