"""The two distributions of a VAE, each written once: the posterior q(z|x) and the pixel likelihood p(x|z).

Training, the held-out loss, the IWAE bound, generation and the demo all go through these objects,
so a new likelihood is one class here plus its name in ``ModelConfig.likelihood``:

    @register_likelihood("my-likelihood")
    class MyPixels(PixelLikelihood):
        params_per_channel = 2          # decoder outputs per image channel
        def log_prob(self, x): ...      # per image, nats, summed over the pixels
        @property
        def mean(self): ...             # pixels in [0, 1]

Every log-density is computed in fp32, even under autocast: sums over 27,648 pixels lose precision in bf16.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import UserError

LOG_2PI = math.log(2 * math.pi)


class DiagonalGaussian:
    """q(z|x) = N(mu, exp(logvar)): ``rsample`` (the reparameterisation trick), ``kl`` to N(0, I), ``mode``."""

    def __init__(self, mu: torch.Tensor, logvar: torch.Tensor):
        self.mu = mu  # N x latent
        self.logvar = logvar  # N x latent (the seed's "sigma")

    def rsample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mu + sigma * eps, differentiable in mu and logvar. One ``randn_like`` per call (the seed's draw)."""
        eps = torch.randn_like(self.mu) if generator is None else torch.randn(self.mu.shape, generator=generator, device=self.mu.device)
        return self.mu + torch.exp(self.logvar / 2) * eps

    def rsample_k(self, k: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """k samples per row, N x k x latent, and their standard-normal noise (drawn on the CPU from ``generator``)."""
        mu, logvar = self.mu.float(), self.logvar.float()
        eps = torch.randn(*mu.shape[:1], k, mu.shape[1], generator=generator).to(mu.device)
        return mu[:, None] + torch.exp(logvar / 2)[:, None] * eps, eps

    def mode(self) -> torch.Tensor:
        return self.mu

    def kl_per_dim(self) -> torch.Tensor:
        """KL(q || N(0, I)) per latent dimension, fp32: -0.5 * (1 + logvar - mu^2 - exp(logvar))."""
        mu, logvar = self.mu.float(), self.logvar.float()
        return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp())

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per row, summed over the latent dimensions (nats)."""
        return self.kl_per_dim().sum(1)

    def log_prob_of_noise(self, eps: torch.Tensor) -> torch.Tensor:
        """log q(z|x) of z = mu + sigma * eps, from its noise (exact, no division by sigma): eps is N x k x latent."""
        return -0.5 * (eps.pow(2) + self.logvar.float()[:, None] + LOG_2PI).sum(-1)

    def detach(self) -> DiagonalGaussian:
        return DiagonalGaussian(self.mu.detach(), self.logvar.detach())


def noise_like(t: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Standard normal noise shaped like ``t`` (fp32), drawn on ``generator``'s own device when given (a CPU generator serves a GPU model)."""
    if generator is None:
        return torch.randn(t.shape, device=t.device)
    return torch.randn(t.shape, generator=generator, device=generator.device).to(t.device)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


class PixelLikelihood:
    """p(x|z) over images with pixels in [0, 1], parameterised by the decoder's output ``params``."""

    params_per_channel = 1

    def __init__(self, params: torch.Tensor):
        self.params = params  # N x (C * params_per_channel) x H x W

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x|z) per image (nats, summed over the pixels)."""
        raise NotImplementedError

    @property
    def mean(self) -> torch.Tensor:
        """The expected image, pixels in [0, 1] (fp32)."""
        raise NotImplementedError

    def to_uint8(self) -> torch.Tensor:
        """The mean as uint8 pixels (x255, rounded): what generation writes."""
        return (self.mean * 255).round().to(torch.uint8)


class BernoulliPixels(PixelLikelihood):
    """The seed's: a Bernoulli per pixel on logits, so -log p(x|z) is BCE-with-logits summed over the pixels."""

    @property
    def logits(self) -> torch.Tensor:
        return self.params

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        pixel_dims = tuple(range(1, self.params.dim()))  # a sum over them, not flatten(1): no copy of channels-last logits
        return -F.binary_cross_entropy_with_logits(self.params.float(), x.float(), reduction="none").sum(pixel_dims)

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.params.float())


class GaussianPixels(PixelLikelihood):
    """A Gaussian per pixel with a learned scale (two decoder outputs per channel: mean logits, log scale). The
    mean is sigmoid(logits), in [0, 1]; the scale is floored at one grey level (1/255) so the density cannot
    grow without bound on 8-bit data. Where the decoder is sure it may shrink the scale: the reconstruction
    term weighs more against the KL term than the seed's BCE does."""

    params_per_channel = 2
    MIN_LOG_SCALE = math.log(1 / 255)

    def _split(self) -> tuple[torch.Tensor, torch.Tensor]:
        logits, log_scale = self.params.float().chunk(2, dim=1)
        return torch.sigmoid(logits), log_scale.clamp_min(self.MIN_LOG_SCALE)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        mean, log_scale = self._split()
        per_pixel = -0.5 * ((x.float() - mean) * torch.exp(-log_scale)).pow(2) - log_scale - 0.5 * LOG_2PI
        return per_pixel.sum(tuple(range(1, per_pixel.dim())))

    @property
    def mean(self) -> torch.Tensor:
        return self._split()[0]


class LaplacePixels(PixelLikelihood):
    """A Laplace per pixel around sigmoid(logits) with a fixed scale: -log p(x|z) is an L1 distance. Where the latent
    leaves a stroke's place open, the best guess under a pixel likelihood is the mean of the possibilities (the
    Bernoulli and Gaussian: a grey smear) or, under this one, their per-pixel median (an edge drawn at its most
    likely place). ``SCALE`` makes its gradient as strong as the Bernoulli's on the sharp preset's reconstructions
    of held-out faces (the mean |d BCE / d mean| there is 0.33 = 1 / 3), so the same KL weight means about the same
    trade. A density on the real line, not on [0, 1]: its -ELBO compares with runs of this likelihood only."""

    SCALE = 3.0

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        per_pixel = -(x.float() - torch.sigmoid(self.params.float())).abs() / self.SCALE - math.log(2 * self.SCALE)
        return per_pixel.sum(tuple(range(1, per_pixel.dim())))

    @property
    def mean(self) -> torch.Tensor:
        return torch.sigmoid(self.params.float())


LIKELIHOODS: dict[str, type[PixelLikelihood]] = {"bernoulli": BernoulliPixels, "gaussian": GaussianPixels, "laplace": LaplacePixels}


def register_likelihood(name: str):
    """Class decorator: make a ``PixelLikelihood`` selectable as ``ModelConfig(likelihood=name)``."""

    def add(cls: type[PixelLikelihood]) -> type[PixelLikelihood]:
        LIKELIHOODS[name] = cls
        return cls

    return add


def likelihood_class(name: str) -> type[PixelLikelihood]:
    if name not in LIKELIHOODS:
        raise UserError(f"likelihood {name!r} is not known; choose one of {', '.join(sorted(LIKELIHOODS))}")
    return LIKELIHOODS[name]
