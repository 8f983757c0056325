"""Samplers: the seed's latent mixing (convex weights over k stored latents) and the N(0, T^2) prior."""

from __future__ import annotations

import pytest
import torch

from animevae.sampling.samplers import MixSampler, PriorSampler


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def stored() -> torch.Tensor:
    return torch.randn(50, 8, generator=_gen(0)) * 3 + torch.arange(8.0)


def test_k1_returns_stored_latents_exactly(stored):
    z = MixSampler(stored, k=1).sample(40, _gen(1))
    assert z.shape == (40, 8)
    for row in z:
        assert any(torch.equal(row, s) for s in stored), row
    # and not always the same one
    assert len({tuple(r.tolist()) for r in z}) > 5


@pytest.mark.parametrize("k", [2, 4, 10, None])
def test_mixes_lie_in_the_convex_hull(stored, k):
    z = MixSampler(stored, k=k).sample(200, _gen(2))
    lo, hi = stored.min(0).values, stored.max(0).values
    assert (z >= lo - 1e-5).all() and (z <= hi + 1e-5).all()
    # a real mix (not just a stored latent) for k > 1
    assert not any(torch.equal(z[0], s) for s in stored)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_weights_are_convex_over_exactly_k_latents(k):
    # with one-hot latents, a mix's coordinates are its weights
    basis = torch.eye(12)
    w = MixSampler(basis, k=k).sample(300, _gen(3))
    assert (w >= 0).all()
    assert torch.allclose(w.sum(1), torch.ones(300), atol=1e-5)
    assert ((w > 0).sum(1) == k).all()
    # every stored latent gets drawn on now and then
    assert ((w > 0).sum(0) > 0).all()


def test_k_none_or_at_least_n_uses_all():
    basis = torch.eye(6)
    for k in (None, 6, 100):
        sampler = MixSampler(basis, k=k)
        assert sampler.k is None
        w = sampler.sample(50, _gen(4))
        assert ((w > 0).sum(1) == 6).all()
        assert torch.allclose(w.sum(1), torch.ones(50), atol=1e-5)


def test_all_latents_collapse_to_the_mean():
    many = torch.randn(3000, 16, generator=_gen(5))
    mean = many.mean(0)
    z = MixSampler(many, k=None).sample(100, _gen(6))
    assert (z - mean).abs().max() < 0.2  # stored latents spread ~1 per dimension
    assert (many - mean).abs().max() > 2.0
    # while k=4 mixes keep the spread
    z4 = MixSampler(many, k=4).sample(100, _gen(6))
    assert z4.std(0).mean() > 0.4


@pytest.mark.parametrize("k", [1, 4, None])
def test_mix_is_reproducible_with_a_seeded_generator(stored, k):
    sampler = MixSampler(stored, k=k)
    a, b = sampler.sample(16, _gen(7)), sampler.sample(16, _gen(7))
    assert torch.equal(a, b)
    assert not torch.equal(a, sampler.sample(16, _gen(8)))


def test_mix_returns_float32_for_half_latents(stored):
    z = MixSampler(stored.to(torch.bfloat16), k=3).sample(4, _gen(0))
    assert z.dtype == torch.float32


@pytest.mark.parametrize("mu, k", [(torch.zeros(0, 4), 4), (torch.zeros(5), 2), (torch.zeros(5, 3), 0), (torch.zeros(5, 3), -2)])
def test_mix_rejects_bad_input(mu, k):
    with pytest.raises(ValueError):
        MixSampler(mu, k=k)


@pytest.mark.parametrize("temperature", [1.0, 0.5, 2.0])
def test_prior_std_is_temperature(temperature):
    z = PriorSampler(32, temperature).sample(20_000, _gen(9))
    assert z.shape == (20_000, 32)
    assert z.std().item() == pytest.approx(temperature, rel=0.01)
    assert abs(z.mean().item()) < 0.01 * temperature
    assert torch.allclose(z.std(0), torch.full((32,), temperature), rtol=0.05)


def test_prior_reproducible_and_zero_temperature():
    s = PriorSampler(8, 1.0)
    assert torch.equal(s.sample(5, _gen(1)), s.sample(5, _gen(1)))
    assert not torch.equal(s.sample(5, _gen(1)), s.sample(5, _gen(2)))
    assert torch.equal(PriorSampler(8, 0.0).sample(3, _gen(1)), torch.zeros(3, 8))
