"""The posterior and the pixel likelihood against closed forms and torch.distributions; a new likelihood is one class."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from animevae.config import ModelConfig
from animevae.errors import UserError
from animevae.models.distributions import LIKELIHOODS, BernoulliPixels, DiagonalGaussian, PixelLikelihood, register_likelihood, standard_normal_log_prob
from animevae.models.vae import VAE
from animevae.training.objectives import elbo_terms


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_gaussian_kl_matches_torch_distributions():
    mu, logvar = torch.randn(6, 5, generator=_gen(0)), torch.randn(6, 5, generator=_gen(1))
    q = DiagonalGaussian(mu, logvar)
    ref = torch.distributions.kl_divergence(torch.distributions.Normal(mu, torch.exp(logvar / 2)), torch.distributions.Normal(0.0, 1.0))
    assert torch.allclose(q.kl_per_dim(), ref, atol=1e-5)
    assert torch.allclose(q.kl(), ref.sum(1), atol=1e-5)
    assert torch.equal(q.mode(), mu)


def test_gaussian_rsample_moments_and_generator():
    mu, logvar = torch.tensor([[2.0, -1.0]]).expand(40000, 2), torch.tensor([[math.log(0.25), 0.0]]).expand(40000, 2)
    z = DiagonalGaussian(mu, logvar).rsample(_gen(2))
    assert z.mean(0).tolist() == pytest.approx([2.0, -1.0], abs=0.02)
    assert z.std(0).tolist() == pytest.approx([0.5, 1.0], abs=0.02)
    assert torch.equal(DiagonalGaussian(mu, logvar).rsample(_gen(2)), z)  # the generator decides the noise


def test_gaussian_k_samples_and_their_log_density():
    mu, logvar = torch.randn(3, 4, generator=_gen(3)), torch.randn(3, 4, generator=_gen(4))
    q = DiagonalGaussian(mu, logvar)
    z, eps = q.rsample_k(5, _gen(5))
    assert z.shape == eps.shape == (3, 5, 4)
    ref = torch.distributions.Normal(mu[:, None], torch.exp(logvar / 2)[:, None]).log_prob(z).sum(-1)
    assert torch.allclose(q.log_prob_of_noise(eps), ref, atol=1e-4)
    assert torch.allclose(standard_normal_log_prob(z), torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1), atol=1e-5)


def test_bernoulli_log_prob_mean_and_uint8():
    logits = torch.tensor([[[[0.0, 2.0], [-3.0, 40.0]]]])
    x = torch.tensor([[[[0.5, 1.0], [0.0, 0.25]]]])
    p = BernoulliPixels(logits)
    by_hand = sum(
        t * math.log(1 / (1 + math.exp(-lg))) + (1 - t) * math.log(1 - 1 / (1 + math.exp(-lg))) if lg < 30 else (t - 1) * lg
        for lg, t in zip(logits.flatten().tolist(), x.flatten().tolist())
    )
    assert p.log_prob(x).item() == pytest.approx(by_hand, rel=1e-6)
    assert torch.allclose(p.mean, torch.sigmoid(logits))
    assert p.to_uint8().flatten().tolist() == [128, 225, 12, 255]
    assert p.to_uint8().dtype == torch.uint8


class LearnedVarianceGaussian(PixelLikelihood):
    """N(mean, exp(log_scale)^2) per pixel: two decoder outputs per channel (the example the README gives)."""

    params_per_channel = 2

    def log_prob(self, x):
        mean, log_scale = self.params.float().chunk(2, dim=1)
        return (-0.5 * ((x.float() - mean) / log_scale.exp()) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)).sum((1, 2, 3))

    @property
    def mean(self):
        return self.params.float().chunk(2, dim=1)[0].clamp(0, 1)


def test_a_new_likelihood_is_one_class_and_one_config_value(tmp_path):
    register_likelihood("test-gaussian")(LearnedVarianceGaussian)
    try:
        cfg = ModelConfig(image_size=24, num_layers=3, latent_dim=4, base_channels=4, likelihood="test-gaussian")
        torch.manual_seed(0)
        model = VAE(cfg)
        x = torch.rand(2, 3, 24, 24, generator=_gen(6))
        out = model(x)
        assert out.logits.shape == (2, 6, 24, 24) and isinstance(out.likelihood, LearnedVarianceGaussian)
        loss, recon, kl = elbo_terms(out, x, beta=1.0)
        mean, log_scale = out.logits.float().chunk(2, dim=1)
        expected = -torch.distributions.Normal(mean, log_scale.exp()).log_prob(x).sum((1, 2, 3))
        assert torch.allclose(recon, expected, rtol=1e-5)
        loss.backward()
        assert model.decoder[-1].weight.grad.abs().sum() > 0
        assert model.generate(out.z.detach()).shape == (2, 3, 24, 24)
        model.save_pretrained(tmp_path)
        back = VAE.from_pretrained(tmp_path)
        assert back.config.likelihood == "test-gaussian" and isinstance(back.likelihood(out.logits), LearnedVarianceGaussian)
    finally:
        LIKELIHOODS.pop("test-gaussian")


def test_unknown_likelihood_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="likelihood 'poisson' is not known; choose one of bernoulli"):
        VAE(ModelConfig(likelihood="poisson"))


def test_bernoulli_log_prob_is_minus_the_seeds_bce_in_fp32_from_bf16():
    logits = torch.randn(2, 3, 8, 8, generator=_gen(7)).bfloat16()
    x = torch.rand(2, 3, 8, 8, generator=_gen(8))
    lp = BernoulliPixels(logits).log_prob(x)
    assert lp.dtype == torch.float32
    assert torch.equal(lp, -F.binary_cross_entropy_with_logits(logits.float(), x, reduction="none").sum((1, 2, 3)))


def test_the_gaussian_likelihood_is_normal_log_prob_with_a_floored_learned_scale():
    from animevae.models.distributions import GaussianPixels

    logits, log_scale = torch.randn(2, 3, 4, 4, generator=_gen(7)), torch.randn(2, 3, 4, 4, generator=_gen(8)) * 4 - 2
    x = torch.rand(2, 3, 4, 4, generator=_gen(9))
    p = GaussianPixels(torch.cat([logits, log_scale], 1))
    floored = log_scale.clamp_min(math.log(1 / 255))
    expected = torch.distributions.Normal(torch.sigmoid(logits), floored.exp()).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(p.log_prob(x), expected, rtol=1e-5)
    assert (log_scale < math.log(1 / 255)).any()  # the floor was exercised
    assert torch.allclose(p.mean, torch.sigmoid(logits)) and p.to_uint8().shape == (2, 3, 4, 4)
    model = VAE(ModelConfig(image_size=24, num_layers=3, latent_dim=4, base_channels=4, likelihood="gaussian"))
    assert model(torch.rand(2, 3, 24, 24)).logits.shape == (2, 6, 24, 24)


def test_the_laplace_likelihood_is_laplace_log_prob_and_learns_the_median():
    """L1 pixels: the log density is torch's Laplace; fitted to targets that are 0 six times in ten and 1 otherwise
    (a stroke that is there in four of ten possible faces), the output goes to their median (0: no smear), where
    the seed's Bernoulli goes to their mean (0.4)."""
    from animevae.models.distributions import LaplacePixels

    logits, x = torch.randn(2, 3, 4, 4, generator=_gen(7)), torch.rand(2, 3, 4, 4, generator=_gen(9))
    expected = torch.distributions.Laplace(torch.sigmoid(logits), LaplacePixels.SCALE).log_prob(x).sum((1, 2, 3))
    assert torch.allclose(LaplacePixels(logits).log_prob(x), expected, rtol=1e-5)
    targets = (torch.arange(10) >= 6).float().view(10, 1, 1, 1)  # 0 x 6, 1 x 4
    fitted = {}
    for name in ("laplace", "bernoulli"):
        logit = torch.zeros(1, 1, 1, 1, requires_grad=True)
        opt = torch.optim.Adam([logit], lr=0.05)
        for _ in range(400):
            loss = -LIKELIHOODS[name](logit.expand(10, 1, 1, 1)).log_prob(targets).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        fitted[name] = torch.sigmoid(logit).item()
    assert fitted["laplace"] < 0.05 and abs(fitted["bernoulli"] - 0.4) < 0.01, fitted
    model = VAE(ModelConfig(image_size=24, num_layers=3, latent_dim=4, base_channels=4, likelihood="laplace"))
    assert model(torch.rand(2, 3, 24, 24)).logits.shape == (2, 3, 24, 24)
