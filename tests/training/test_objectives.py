"""The seed's objective (the negative ELBO) against values computed by hand (plain Python math, not torch's own BCE)."""

from __future__ import annotations

import math

import pytest
import torch

from animevae.config import ModelConfig, TrainConfig
from animevae.models.distributions import BernoulliPixels, DiagonalGaussian
from animevae.models.vae import VAE, VAEOutput
from animevae.training.objectives import LossTerms, elbo_terms, focal_frequency_distance, make_objective


def vae_loss(logits, target, mu, logvar, beta=1.0, free_bits=0.0) -> LossTerms:
    """The ELBO's terms for given decoder logits and posterior parameters."""
    output = VAEOutput(DiagonalGaussian(mu, logvar), mu, BernoulliPixels(logits))
    return LossTerms(*elbo_terms(output, target, beta, free_bits), output)


def kl_divergence(mu, logvar):
    return DiagonalGaussian(mu, logvar).kl_per_dim()


def _bce(logit: float, target: float) -> float:
    p = 1 / (1 + math.exp(-logit))
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def _kl(mu: list[float], logvar: list[float]) -> float:
    return -0.5 * sum(1 + lv - m * m - math.exp(lv) for m, lv in zip(mu, logvar))


LOGITS = torch.tensor([[[[0.5, -1.0], [2.0, 0.0]]], [[[-0.3, 1.5], [-2.5, 0.7]]]])  # 2 x 1 x 2 x 2
TARGET = torch.tensor([[[[1.0, 0.0], [0.25, 0.5]]], [[[0.0, 1.0], [0.9, 0.1]]]])
MU = torch.tensor([[0.5, -1.0, 0.0], [2.0, 0.1, -0.3]])
LOGVAR = torch.tensor([[0.0, -0.5, 1.0], [0.3, -2.0, 0.0]])


def _by_hand():
    recon = [sum(_bce(l, t) for l, t in zip(LOGITS[i].flatten().tolist(), TARGET[i].flatten().tolist())) for i in range(2)]
    kl = [_kl(MU[i].tolist(), LOGVAR[i].tolist()) for i in range(2)]
    return recon, kl


def test_recon_and_kl_per_image():
    out = vae_loss(LOGITS, TARGET, MU, LOGVAR)
    recon, kl = _by_hand()
    assert out.recon.shape == (2,) and out.kl.shape == (2,)
    assert out.recon.tolist() == pytest.approx(recon, rel=1e-5)
    assert out.kl.tolist() == pytest.approx(kl, rel=1e-5)
    assert out.loss.ndim == 0
    assert out.loss.item() == pytest.approx((recon[0] + kl[0] + recon[1] + kl[1]) / 2, rel=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.5, 4.0])
def test_beta_weights_only_the_kl(beta):
    out = vae_loss(LOGITS, TARGET, MU, LOGVAR, beta=beta)
    recon, kl = _by_hand()
    assert out.loss.item() == pytest.approx(sum(r + beta * k for r, k in zip(recon, kl)) / 2, rel=1e-5)
    # the per-image terms do not depend on beta
    assert out.recon.tolist() == pytest.approx(recon, rel=1e-5)
    assert out.kl.tolist() == pytest.approx(kl, rel=1e-5)


def test_mean_over_batch_not_sum():
    one = vae_loss(LOGITS[:1], TARGET[:1], MU[:1], LOGVAR[:1])
    two = vae_loss(torch.cat([LOGITS[:1]] * 2), torch.cat([TARGET[:1]] * 2), torch.cat([MU[:1]] * 2), torch.cat([LOGVAR[:1]] * 2))
    assert two.loss.item() == pytest.approx(one.loss.item(), rel=1e-6)


def test_kl_zero_at_standard_normal():
    mu, logvar = torch.zeros(4, 256), torch.zeros(4, 256)
    assert torch.equal(kl_divergence(mu, logvar), torch.zeros(4, 256))
    out = vae_loss(torch.zeros(4, 3, 2, 2), torch.full((4, 3, 2, 2), 0.5), mu, logvar)
    assert torch.equal(out.kl, torch.zeros(4))
    assert out.recon.tolist() == pytest.approx([12 * math.log(2)] * 4, rel=1e-6)


def test_kl_per_dimension_formula_and_positive():
    mu = torch.tensor([[0.0, 1.0, -2.0, 0.0]])
    logvar = torch.tensor([[0.0, 0.0, 0.0, math.log(4.0)]])
    per_dim = kl_divergence(mu, logvar)
    expected = [0.0, 0.5, 2.0, -0.5 * (1 + math.log(4.0) - 4.0)]
    assert per_dim[0].tolist() == pytest.approx(expected, abs=1e-6)
    assert (kl_divergence(torch.randn(50, 8), torch.randn(50, 8)) >= 0).all()


def test_sums_over_full_image_in_fp32_even_from_bf16():
    # 3 x 96 x 96 pixels at logit 0 and target 0.5 (exact in bf16): recon = 27648 * log 2 per image
    logits = torch.zeros(2, 3, 96, 96, dtype=torch.bfloat16)
    target = torch.full((2, 3, 96, 96), 0.5, dtype=torch.bfloat16)
    mu = torch.full((2, 256), 0.1, dtype=torch.bfloat16)
    logvar = torch.zeros(2, 256, dtype=torch.bfloat16)
    out = vae_loss(logits, target, mu, logvar)
    assert out.loss.dtype == torch.float32 and out.recon.dtype == torch.float32 and out.kl.dtype == torch.float32
    assert out.recon.tolist() == pytest.approx([27648 * math.log(2)] * 2, rel=1e-6)
    mu_bf16 = torch.tensor(0.1, dtype=torch.bfloat16).item()
    assert out.kl.tolist() == pytest.approx([256 * 0.5 * mu_bf16**2] * 2, rel=1e-5)


def test_gradient_flows_to_all_inputs():
    logits = LOGITS.clone().requires_grad_(True)
    mu = MU.clone().requires_grad_(True)
    logvar = LOGVAR.clone().requires_grad_(True)
    vae_loss(logits, TARGET, mu, logvar).loss.backward()
    # d/dlogit BCE = sigmoid(l) - t, divided by the batch size 2
    assert torch.allclose(logits.grad, (torch.sigmoid(LOGITS) - TARGET) / 2, atol=1e-6)
    # d/dmu KL = mu; d/dlogvar KL = 0.5 * (exp(logvar) - 1); mean over batch 2
    assert torch.allclose(mu.grad, MU / 2, atol=1e-6)
    assert torch.allclose(logvar.grad, 0.5 * (LOGVAR.exp() - 1) / 2, atol=1e-6)


# -- the focal frequency objective -----------------------------------------------------------------------------------


def _waves(low: float, high: float) -> torch.Tensor:
    """1 x 1 x 8 x 8: ``low`` x a horizontal cosine of period 8 px (two DFT bins of magnitude 4 * low, orthonormal DFT)
    plus ``high`` x a pixel checkerboard (one bin, the Nyquist frequency, of magnitude 8 * high)."""
    i = torch.arange(8.0)
    cosine = torch.cos(2 * math.pi * i / 8).expand(8, 8)
    checker = (-1.0) ** (i[:, None] + i[None, :])
    return (low * cosine + high * checker).view(1, 1, 8, 8)


def test_focal_frequency_with_flat_weights_is_the_sum_of_squared_differences():
    g = torch.Generator().manual_seed(0)
    fake, real = torch.rand(3, 3, 12, 12, generator=g), torch.rand(3, 3, 12, 12, generator=g)
    ssd = (fake - real).square().flatten(1).sum(1)
    assert focal_frequency_distance(fake, real, alpha=0.0).tolist() == pytest.approx(ssd.tolist(), rel=1e-5)  # Parseval
    assert focal_frequency_distance(real, real).tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)
    assert (focal_frequency_distance(fake, real) <= ssd * (1 + 1e-5)).all()


@pytest.mark.parametrize(("low", "high", "expected"), [(1.0, 0.25, 2 * 16 + 4 * 0.5), (0.25, 1.0, 2 * 1 * 0.125 + 64)])
def test_focal_frequency_weighs_the_worst_drawn_frequency_most(low, high, expected):
    # squared distances per bin: 16 low^2 (twice) and 64 high^2; weights: each bin's distance over the largest
    got = focal_frequency_distance(_waves(low, high), torch.zeros(1, 1, 8, 8)).item()
    assert got == pytest.approx(expected, rel=1e-5)


def test_the_frequency_objective_is_the_elbo_plus_its_weighted_term():
    model_cfg = ModelConfig(image_size=24, num_layers=3, latent_dim=4, base_channels=4)
    x = torch.rand(4, 3, 24, 24, generator=torch.Generator().manual_seed(1))
    results = {}
    for name, weight in (("elbo", 0.0), ("frequency", 0.0), ("frequency", 7.0)):
        torch.manual_seed(0)
        model = VAE(model_cfg)
        objective = make_objective(TrainConfig(objective=name, freq_weight=weight), steps_per_epoch=1, model_config=model_cfg)
        torch.manual_seed(2)  # the same posterior draw each time
        results[name, weight] = objective(model, x, step=0)
    elbo, flat, weighted = results["elbo", 0.0], results["frequency", 0.0], results["frequency", 7.0]
    freq = focal_frequency_distance(weighted.output.likelihood.mean, x).mean()
    assert flat.loss.item() == pytest.approx(elbo.loss.item(), rel=1e-6) and "freq" not in elbo.logs
    assert weighted.logs["freq"].item() == pytest.approx(freq.item(), rel=1e-5) and freq > 0
    assert weighted.loss.item() == pytest.approx(elbo.loss.item() + 7.0 * freq.item(), rel=1e-5)
    weighted.loss.backward()
    assert all(p.grad is not None for p in model.decoder.parameters() if p.requires_grad)


def test_focal_frequency_weights_take_no_gradient():
    # the weights steer the loss but are constants: its gradient is that of sum(w * |F|^2) with w fixed by hand
    fake = _waves(1.0, 0.25).requires_grad_(True)
    focal_frequency_distance(fake, torch.zeros(1, 1, 8, 8)).sum().backward()
    by_hand = fake.detach().clone().requires_grad_(True)
    weight = torch.zeros(8, 8)
    weight[0, 1] = weight[0, 7] = 1.0  # the cosine's two bins
    weight[4, 4] = 0.5  # the checkerboard's, at half the cosine's distance
    (weight * torch.fft.fft2(by_hand, norm="ortho").abs().square()).sum().backward()
    assert torch.allclose(fake.grad, by_hand.grad, atol=1e-5)


def test_fine_beta_weighs_a_hierarchical_models_finer_groups_alone_and_warms_up_with_beta():
    from animevae.models.distributions import likelihood_class
    from animevae.training.objectives import ELBO

    top = DiagonalGaussian(torch.ones(2, 3), torch.zeros(2, 3))  # KL 0.5 per dimension: 1.5 per image
    out = VAEOutput(top, top.mu, likelihood_class("bernoulli")(torch.zeros(2, 3, 4, 4)), [torch.full((2, 5), 2.0)])  # finer groups: 10
    x = torch.rand(2, 3, 4, 4)
    plain, _, kl = elbo_terms(out, x, beta=0.1)
    fine, _, same_kl = elbo_terms(out, x, beta=0.1, fine_beta=1.0)
    assert torch.allclose(kl, torch.full((2,), 11.5)) and torch.equal(kl, same_kl)  # the KL reported is the true one either way
    assert float(fine - plain) == pytest.approx((1.0 - 0.1) * 10, rel=1e-5)
    objective = ELBO(TrainConfig(beta=0.1, fine_beta=1.0, kl_warmup_epochs=1.0), steps_per_epoch=10)
    assert (objective.beta_at(5), objective.fine_beta_at(5), objective.fine_beta_at(20)) == pytest.approx((0.05, 0.5, 1.0))
    assert ELBO(TrainConfig(), steps_per_epoch=10).fine_beta_at(5) is None
