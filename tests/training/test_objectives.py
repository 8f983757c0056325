"""The seed's objective (the negative ELBO) against values computed by hand (plain Python math, not torch's own BCE)."""

from __future__ import annotations

import math

import pytest
import torch

from animevae.models.distributions import BernoulliPixels, DiagonalGaussian
from animevae.models.vae import VAEOutput
from animevae.training.objectives import LossTerms, elbo_terms


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
