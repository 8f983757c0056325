"""Metrics of a VAE and its samples, as plain functions on tensors and arrays (no files, no runs).

Likelihood: the IWAE bound from importance weights (Burda et al. 2016), through the model's own
posterior and pixel likelihood (distributions.py). Reconstruction: PSNR, SSIM (Wang et al. 2004).
Latents: active units. Samples: FID and KID on any features (features.py), diversity as mean pairwise
RMS, memorisation as each sample's RMS distance to its nearest training image, and detail as the
power above half the Nyquist frequency relative to real faces' (``high_frequency_ratio``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..models.distributions import LOG_2PI, standard_normal_log_prob

NEAR_COPY_RMS = 10.0  # a sample this close (RMS over pixels, 0..255 scale) to a training image counts as a near-copy
ACTIVE_THRESHOLD = 0.01  # Burda et al.: a latent unit is active when Cov_x(E_q[z_d]) exceeds this


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (dB): 10 log10(range^2 / MSE); inf for identical images."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(
    x: torch.Tensor,
    y: torch.Tensor,
    data_range: float = 1.0,
    window: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004): 11x11 gaussian window (sigma 1.5), valid region, mean over channels.

    Computed in ``dtype``: float64 for the report, float32 where it is a training loss (it is differentiable)."""
    x, y = x.to(dtype), y.to(dtype)
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(window, sigma, c).to(x.device, dtype)
    blur = lambda t: F.conv2d(t, w, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies across images: Var_x(E_q[z_d]) > threshold."""
    if len(mu) < 2:
        return 0
    return int((mu.double().var(0, unbiased=True) > threshold).sum())


def logmeanexp(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


@dataclass
class ImportanceWeights:
    log_w: torch.Tensor  # N x k: log p(x|z) + log p(z) - log q(z|x) for z ~ q(z|x)
    log_px_z: torch.Tensor  # N x k: log p(x|z) = -BCE-with-logits summed over pixels (the training loss's recon term)
    kl: torch.Tensor  # N: analytic KL(q(z|x) || p(z)) (a hierarchical model's: summed over its groups)
    mu: torch.Tensor  # N x latent
    logvar: torch.Tensor
    kl_groups: torch.Tensor | None = None  # N x groups: a hierarchical model's KL per group, top first

    @property
    def iwae(self) -> torch.Tensor:
        """Per image: log (1/k) sum_i w_i, a lower bound on log p(x) that tightens as k grows."""
        return logmeanexp(self.log_w, 1)

    @property
    def elbo_mc(self) -> torch.Tensor:
        """Per image: the k-sample Monte-Carlo ELBO, mean_i log w_i (<= iwae for the same samples, by Jensen)."""
        return self.log_w.mean(1)

    @property
    def elbo(self) -> torch.Tensor:
        """Per image: mean_i log p(x|z_i) - KL (analytic): minus the training loss, in expectation equal to elbo_mc."""
        return self.log_px_z.mean(1) - self.kl


@torch.no_grad()
def importance_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> ImportanceWeights:
    """k samples z ~ q(z|x) per image (noise from ``generator``, drawn as N x k x latent on the CPU) and their log-weights."""
    if getattr(model, "hierarchical", False):
        return _hierarchical_weights(model, x, k, generator)
    posterior = model.encode(x)
    z, eps = posterior.rsample_k(k, generator)
    n, d = posterior.mu.shape
    pixels = model.likelihood(model.decode(z.reshape(n * k, d)))
    log_px_z = pixels.log_prob(x.float().repeat_interleave(k, 0)).view(n, k)
    log_w = log_px_z.double() + standard_normal_log_prob(z).double() - posterior.log_prob_of_noise(eps).double()
    mu, logvar = posterior.mu.float(), posterior.logvar.float()
    return ImportanceWeights(log_w.cpu(), log_px_z.double().cpu(), posterior.kl().double().cpu(), mu.cpu(), logvar.cpu())


def _features_array(f) -> np.ndarray:
    f = f.detach().cpu().double().numpy() if isinstance(f, torch.Tensor) else np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"expected an N x D array of features with N >= 2, got shape {f.shape}")
    return f


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), float64; tr (C1 C2)^(1/2) via the symmetric C1^(1/2) C2 C1^(1/2)."""
    mu1, mu2, cov1, cov2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, cov1, cov2))
    s1 = _sqrtm_psd(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def frechet_distance(f1, f2) -> float:
    """FID between two feature sets: the Fréchet distance of their Gaussian fits."""
    f1, f2 = _features_array(f1), _features_array(f2)
    return frechet_distance_from_stats(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def kernel_inception_distance(f1, f2, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y / D + 1)^3, mean and std over random subsets."""
    f1, f2 = _features_array(f1), _features_array(f2)
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def mean_pairwise_rms(images: torch.Tensor) -> float:
    """Diversity: mean over pairs of the RMS pixel difference (0..255 scale) between two images of the set."""
    x = images.flatten(1).double()
    if len(x) < 2:
        return float("nan")
    d = torch.cdist(x, x).div_(math.sqrt(x.shape[1]))
    i, j = torch.triu_indices(len(x), len(x), 1)
    return float(d[i, j].mean())


HIGH_FREQUENCY = 0.25  # cycles per pixel: above what an image at half the size can hold (its Nyquist limit)


def high_frequency_power(images: torch.Tensor, cutoff: float = HIGH_FREQUENCY) -> float:
    """Mean power per image above ``cutoff`` cycles/pixel (radially) of the luminance, Hann-windowed so the
    image borders add no spurious edges; uint8 N x 3 x H x W in, 0..255 scale."""
    x = images.double()
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2] if x.shape[1] == 3 else x.mean(1)
    h, w = gray.shape[-2:]
    window = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] * torch.hann_window(w, periodic=False, dtype=torch.float64)[None]
    gray = (gray - gray.mean((-2, -1), keepdim=True)) * window
    power = torch.fft.fft2(gray).abs().pow(2) / (h * w)
    radius = torch.sqrt(torch.fft.fftfreq(h, dtype=torch.float64)[:, None] ** 2 + torch.fft.fftfreq(w, dtype=torch.float64)[None] ** 2)
    return float(power[:, radius > cutoff].sum(1).mean())


def high_frequency_ratio(images: torch.Tensor, real: torch.Tensor, cutoff: float = HIGH_FREQUENCY) -> float:
    """Detail: the images' power above ``cutoff`` cycles/pixel over the real images' (1 = as much fine detail as real
    faces; a face shrunk to half size and blown back up keeps about a fifth of real anime faces')."""
    return high_frequency_power(images, cutoff) / max(high_frequency_power(real, cutoff), 1e-12)


def nearest_rms(samples: torch.Tensor, train_images, positions=None, chunk: int = 1024) -> torch.Tensor:
    """Each sample's RMS pixel distance (0..255 scale) to its nearest image in ``train_images[positions]`` (read in chunks)."""
    positions = np.arange(len(train_images)) if positions is None else np.asarray(positions)
    s = samples.flatten(1).float() - 127.5
    s2 = s.pow(2).sum(1)
    best = torch.full((len(s),), float("inf"))
    for start in range(0, len(positions), chunk):
        t = torch.from_numpy(np.ascontiguousarray(train_images[positions[start : start + chunk]])).flatten(1).float() - 127.5
        d2 = s2[:, None] + t.pow(2).sum(1)[None] - 2 * (s @ t.T)
        best = torch.minimum(best, d2.min(1).values)
    return (best.clamp(min=0) / s.shape[1]).sqrt()


def _hierarchical_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None) -> ImportanceWeights:
    """A hierarchical model's: each of k posterior passes draws every group in turn (the finer ones depend on the
    coarser draws), and the weight adds each group's log p - log q of its draw."""
    n = len(x)
    out = model(x.repeat_interleave(k, 0), generator=generator)
    q = out.posterior
    z, mu, logvar = out.z.float(), q.mu.float(), q.logvar.float()
    top_ratio = standard_normal_log_prob(z) + 0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(1)  # log N(z) - log q(z|x)
    log_px_z = out.likelihood.log_prob(x.float().repeat_interleave(k, 0)).view(n, k)
    log_w = log_px_z.double() + (top_ratio.double() + out.detail_log_ratio.double()).view(n, k)
    kl_groups = out.kl_groups().double().view(n, k, -1).mean(1)  # analytic per group, averaged over the coarser groups' draws
    mu, logvar = q.mu.float()[::k], q.logvar.float()[::k]
    return ImportanceWeights(log_w.cpu(), log_px_z.double().cpu(), kl_groups.sum(1).cpu(), mu.cpu(), logvar.cpu(), kl_groups.cpu())
