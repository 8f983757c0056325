"""Evaluation metrics against hand-computed values: PSNR, SSIM, active units, IWAE, FID, KID, diversity, nearest neighbours."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animevae.config import ModelConfig
from animevae.evaluation.metrics import (
    active_units,
    frechet_distance,
    frechet_distance_from_stats,
    importance_weights,
    kernel_inception_distance,
    mean_pairwise_rms,
    nearest_rms,
    psnr,
    ssim,
)
from animevae.models.vae import VAE


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- reconstruction metrics ---------------------------------------------------------------------------


def test_psnr_of_a_known_pair():
    x = torch.zeros(2, 3, 8, 8)
    y = torch.full((2, 3, 8, 8), 0.1)  # MSE 0.01 -> 10 log10(1 / 0.01) = 20 dB
    assert torch.allclose(psnr(x, y), torch.tensor([20.0, 20.0], dtype=torch.float64))
    assert psnr(x * 255, y * 255, data_range=255.0)[0].item() == pytest.approx(20.0)
    assert math.isinf(psnr(y, y)[0].item())


def test_ssim_of_identical_images_is_one_and_drops_with_noise():
    x = torch.rand(3, 3, 32, 32, generator=_gen(0))
    assert torch.allclose(ssim(x, x), torch.ones(3, dtype=torch.float64))
    noisy = (x + 0.2 * torch.randn(x.shape, generator=_gen(1))).clamp(0, 1)
    s = ssim(x, noisy)
    assert (s < 0.9).all() and (s > -1).all()


def test_ssim_of_flat_images_matches_the_formula():
    # flat images have no variance: SSIM = (2 a b + C1) / (a^2 + b^2 + C1), C1 = (0.01)^2
    a, b = 0.3, 0.6
    c1 = 0.01**2
    got = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert got.item() == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)


def test_ssim_in_float32_agrees_with_the_report_and_gives_a_gradient():
    x = torch.rand(2, 3, 24, 24, generator=_gen(2))
    y = (x + 0.1 * torch.randn(x.shape, generator=_gen(3))).clamp(0, 1).requires_grad_()
    s32 = ssim(x, y, dtype=torch.float32)
    assert s32.dtype == torch.float32 and torch.allclose(s32.double(), ssim(x, y.detach()), atol=1e-5)
    s32.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


# -- latents ---------------------------------------------------------------------------------------------


def test_active_units_on_a_constructed_example():
    g = _gen(2)
    n = 1000
    mu = torch.cat(
        [
            torch.randn(n, 3, generator=g),  # variance ~1: active
            0.05 * torch.randn(n, 2, generator=g),  # variance ~0.0025 < 0.01: inactive
            torch.full((n, 1), 4.0),  # constant: inactive whatever its value
            0.2 * torch.randn(n, 1, generator=g),  # variance ~0.04 > 0.01: active
        ],
        1,
    )
    assert active_units(mu) == 4
    assert active_units(mu, threshold=0.5) == 3
    assert active_units(mu[:1]) == 0


# -- likelihood bounds ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(ModelConfig(image_size=24, num_layers=3, latent_dim=6, base_channels=4)).eval()


@pytest.fixture(scope="module")
def small_x() -> torch.Tensor:
    return torch.rand(5, 3, 24, 24, generator=_gen(3))


def test_iwae_k1_is_the_single_sample_elbo_for_the_same_noise(small_vae, small_x):
    iw = importance_weights(small_vae, small_x, k=1, generator=_gen(4))
    # by hand, with the same noise: log p(x|z) + log p(z) - log q(z|x)
    with torch.no_grad():
        enc = small_vae.encode(small_x)
        eps = torch.randn(5, 1, 6, generator=_gen(4))[:, 0]
        std = torch.exp(enc.logvar / 2)
        z = enc.mu + std * eps
        log_px = -F.binary_cross_entropy_with_logits(small_vae.decode(z), small_x, reduction="none").flatten(1).sum(1)
        normal = torch.distributions.Normal
        log_pz = normal(0.0, 1.0).log_prob(z).sum(1)
        log_qz = normal(enc.mu, std).log_prob(z).sum(1)
    expected = (log_px + log_pz - log_qz).double()
    assert torch.allclose(iw.iwae, expected, rtol=1e-5, atol=1e-3)
    assert torch.allclose(iw.elbo_mc, expected, rtol=1e-5, atol=1e-3)
    assert torch.allclose(iw.iwae, iw.elbo_mc)


def test_iwae_bounds_the_elbo_from_above(small_vae, small_x):
    iw = importance_weights(small_vae, small_x, k=16, generator=_gen(5))
    assert iw.log_w.shape == (5, 16)
    # for the same samples, by Jensen: log mean exp >= mean log
    assert (iw.iwae >= iw.elbo_mc - 1e-9).all()
    # and against the analytic-KL ELBO (the training loss), averaged over many draws
    many = importance_weights(small_vae, small_x.repeat(40, 1, 1, 1), k=16, generator=_gen(6))
    assert many.iwae.mean() > many.elbo.mean()
    # the analytic ELBO is the MC ELBO's expectation
    assert many.elbo.mean().item() == pytest.approx(many.elbo_mc.mean().item(), abs=0.5)
    # the training loss's terms: recon = -log p(x|z), KL analytic
    assert torch.allclose(iw.elbo, iw.log_px_z.mean(1) - iw.kl)


# -- FID / KID -------------------------------------------------------------------------------------------------


def test_fid_of_a_set_with_itself_is_zero():
    f = torch.randn(300, 12, generator=_gen(7)) @ torch.randn(12, 12, generator=_gen(8))
    assert abs(frechet_distance(f, f)) < 1e-6


def test_fid_of_shifted_gaussians_is_the_squared_mean_distance():
    f = torch.randn(400, 8, generator=_gen(9)).double() * torch.linspace(0.5, 3, 8, dtype=torch.float64)
    shift = torch.tensor([1.0, -2.0, 0.5, 0, 0, 3.0, 0, 1.0], dtype=torch.float64)
    # equal covariances (a shifted copy): FID = ||mu1 - mu2||^2 exactly
    assert frechet_distance(f, f + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    cov = np.cov(torch.randn(50, 5, generator=_gen(10)).numpy(), rowvar=False)
    mu1, mu2 = np.zeros(5), np.arange(5.0)
    assert frechet_distance_from_stats(mu1, cov, mu2, cov) == pytest.approx(30.0, rel=1e-6)


def test_fid_matches_scipy_sqrtm_for_different_covariances():
    from scipy.linalg import sqrtm

    a = np.random.default_rng(0).normal(size=(6, 6))
    b = np.random.default_rng(1).normal(size=(6, 6))
    c1, c2 = a @ a.T + 0.1 * np.eye(6), b @ b.T + 0.1 * np.eye(6)
    mu1, mu2 = np.ones(6), np.zeros(6)
    expected = 6.0 + np.trace(c1) + np.trace(c2) - 2 * np.trace(sqrtm(c1 @ c2).real)
    assert frechet_distance_from_stats(mu1, c1, mu2, c2) == pytest.approx(expected, rel=1e-8)


def test_kid_is_near_zero_for_identical_distributions_and_not_for_different_ones():
    g = _gen(11)
    x, y = torch.randn(400, 10, generator=g), torch.randn(400, 10, generator=g)
    same, same_std = kernel_inception_distance(x, y, n_subsets=20, subset_size=200)
    shifted, _ = kernel_inception_distance(x, y + 1.0, n_subsets=20, subset_size=200)
    assert abs(same) < 0.05 * shifted
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 0.1


def test_kid_is_the_unbiased_polynomial_mmd():
    # one subset of all points: compare with the formula written out
    x = torch.randn(6, 3, generator=_gen(12)).double().numpy()
    y = torch.randn(6, 3, generator=_gen(13)).double().numpy() + 0.5
    k = lambda a, b: (a @ b.T / 3 + 1) ** 3  # noqa: E731
    m = 6
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    expected = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    got, std = kernel_inception_distance(x, y, n_subsets=3, subset_size=6)
    assert got == pytest.approx(expected, rel=1e-9) and std == pytest.approx(0.0, abs=1e-12)


# -- diversity, memorisation, features -----------------------------------------------------------------------


def test_pairwise_rms_and_nearest_training_image():
    base = torch.full((3, 4, 4), 100, dtype=torch.uint8)
    images = torch.stack([base, base + 10, base + 20])
    # pairs: 10, 20, 10 -> mean 40 / 3
    assert mean_pairwise_rms(images) == pytest.approx(40 / 3)
    train = np.stack([base.numpy() + 30, base.numpy() + 4, base.numpy() + 18])
    d = nearest_rms(images, train, chunk=2)
    assert torch.allclose(d, torch.tensor([4.0, 6.0, 2.0]), atol=1e-3)
    d = nearest_rms(images, train, positions=[0], chunk=2)
    assert torch.allclose(d, torch.tensor([30.0, 20.0, 10.0]), atol=1e-3)
