"""The hierarchical VAE (models/hierarchical.py): its groups, its KL and importance weights, its decode and reconstruct."""

from __future__ import annotations

import pytest
import torch

from animevae.config import ModelConfig
from animevae.errors import UserError
from animevae.evaluation.metrics import importance_weights
from animevae.models.hierarchical import Hierarchical
from animevae.models.vae import VAE

SMALL = dict(arch="hierarchical", image_size=48, num_layers=4, base_channels=8, latent_dim=144)  # top 4 x 6 x 6; groups at 12, 24 px


def model(seed: int = 0, heads: bool = True, arch: str = "hierarchical") -> VAE:
    """A small hierarchical model; ``heads``: random prior and posterior heads (a new model's start at zero)."""
    torch.manual_seed(seed)
    m = VAE(ModelConfig(**SMALL | {"arch": arch}))
    if heads:
        for group in m.decoder.groups:
            for head in (group.prior, group.posterior):
                torch.nn.init.normal_(head.weight, std=0.05)
                torch.nn.init.normal_(head.bias, std=0.2)
    return m.eval()


def test_the_top_group_is_the_latent_and_the_finer_groups_sit_at_12_and_24_px():
    m = model()
    x = torch.rand(3, 3, 48, 48)
    out = m(x)
    assert m.hierarchical and m.latent_shape == (4, 6, 6)
    assert out.z.shape == (3, 144) and out.posterior.mu.shape == (3, 144)
    assert [kl.shape for kl in out.detail_kl] == [(3, 8 * 12 * 12), (3, 4 * 24 * 24)]
    assert out.kl_per_dim().shape == (3, 144 + 8 * 144 + 4 * 576)
    assert torch.allclose(out.kl_groups().sum(1), out.kl_per_dim().sum(1), rtol=1e-5)
    assert m.encode(x).mu.shape == (3, 144)
    assert m.decode(out.z).shape == m.reconstruct(x).shape == (3, 3, 48, 48)


def test_a_new_models_finer_groups_start_as_their_prior_and_cost_nothing():
    out = model(heads=False)(torch.rand(2, 3, 48, 48))
    assert all(float(kl.abs().max()) == 0 for kl in out.detail_kl)
    assert float(out.detail_log_ratio.abs().max()) < 1e-4  # q = p: every draw weighs as much under both


@pytest.mark.parametrize("arch", ["hierarchical", "hierarchical-stacked"])
def test_the_finer_groups_kl_is_the_expected_log_ratio_of_their_draws(arch):
    """-E_q[log p(z) - log q(z)] over many draws is the analytic KL (a wrong sign or a missing term would not be)."""
    m = model(seed=1, arch=arch)
    x = torch.rand(1, 3, 48, 48).repeat(4000, 1, 1, 1)
    with torch.no_grad():
        out = m(x, generator=torch.Generator().manual_seed(0))
    analytic = sum(kl.sum(1) for kl in out.detail_kl).mean()
    sampled = -out.detail_log_ratio.mean()
    assert float(analytic) > 5  # the random heads make the groups informative
    assert abs(float(sampled - analytic)) < 0.05 * float(analytic)


def test_importance_weights_bound_the_likelihood_in_order():
    m = model(seed=2)
    x = torch.rand(4, 3, 48, 48)
    iw = importance_weights(m, x, 64, torch.Generator().manual_seed(0))
    assert iw.log_w.shape == (4, 64) and iw.kl_groups.shape == (4, 3)
    assert torch.all(iw.iwae >= iw.elbo_mc)
    assert torch.allclose(iw.kl, iw.kl_groups.sum(1))
    assert abs(float((iw.elbo_mc - iw.elbo).mean())) < 0.05 * float(iw.kl.mean())  # the MC ELBO agrees with the analytic one


def test_decode_draws_the_finer_groups_from_the_generator_at_the_temperature():
    m = model(seed=3)
    z = torch.randn(2, 144)
    same = [m.decode(z, torch.Generator().manual_seed(5)) for _ in range(2)]
    other = m.decode(z, torch.Generator().manual_seed(6))
    assert torch.equal(*same) and not torch.allclose(same[0], other)
    cold = [m.decode(z, torch.Generator().manual_seed(s), temperatures=0) for s in (5, 6)]
    assert torch.equal(*cold)  # temperature 0: the priors' means, whatever the noise
    warm, hot = (float((m.decode(z, torch.Generator().manual_seed(s), temperatures=t) - cold[0]).abs().mean()) for s, t in ((5, 0.5), (5, 1.5)))
    assert 0 < warm < hot


def test_by_default_the_24px_group_is_drawn_a_little_hotter_than_the_12px_one():
    m = model(seed=3)
    z = torch.randn(2, 144)
    own = m.decode(z, torch.Generator().manual_seed(5))
    assert tuple(m.temperatures) == (1.0, 1.2)
    assert torch.equal(own, m.decode(z, torch.Generator().manual_seed(5), temperatures=(1.0, 1.2)))
    assert not torch.allclose(own, m.decode(z, torch.Generator().manual_seed(5), temperatures=1.0))


def test_reconstruct_takes_the_posterior_and_keep_says_how_many_finer_groups():
    m = model(seed=4)
    x = torch.rand(2, 3, 48, 48)
    full = m.reconstruct(x)
    assert torch.equal(full, m.reconstruct(x, groups=2))
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    top_only, one = m.reconstruct(x, groups=0, generator=gen()), m.reconstruct(x, groups=1, generator=gen())
    assert not torch.allclose(full, one) and not torch.allclose(one, top_only)
    z = m.encode(x).mu
    assert torch.equal(top_only, m.decode(z, gen()))  # groups=0: the top from the posterior, the rest as decode draws them


def test_reconstruct_can_draw_every_latent_from_the_posterior_as_training_does():
    """``latents="draw"``: the top and each finer group drawn from their posteriors (seeded); with the top's noise at
    zero it is the draw of the 12-px groups that ``encode_detail`` makes with the same generator, decoded."""
    m = model(seed=3)
    x = torch.rand(3, 3, 48, 48)
    gen = lambda s=0: torch.Generator().manual_seed(s)  # noqa: E731
    with torch.no_grad():
        drawn = m.reconstruct(x, latents="draw", generator=gen())
        assert torch.equal(drawn, m.reconstruct(x, latents="draw", generator=gen()))
        assert not torch.allclose(drawn, m.reconstruct(x, latents="draw", generator=gen(1)))
        assert not torch.allclose(drawn, m.reconstruct(x), atol=1e-3)  # the means
        m.fc_logvar.bias.data.fill_(-60.0)  # a top posterior of no width: its draw is its mean (its noise still drawn first)
        m.fc_logvar.weight.data.zero_()
        coarse = sum(g.scale == 0 for g in m.decoder.groups)
        g = gen()
        torch.randn((3, 144), generator=g)  # the top's noise, drawn before the finer groups'
        posterior, detail = m.encode_detail(x, g)
        wanted = m.reconstruct(x, groups=coarse, temperatures=0, latents="draw", generator=gen())
        assert torch.allclose(m.decode(torch.cat([posterior.mu, detail], 1), temperatures=0), wanted, atol=1e-5)
    with pytest.raises(ValueError, match="latents must be one of draw, mean"):
        m.reconstruct(x, latents="median")


@pytest.mark.parametrize("arch", ["hierarchical", "hierarchical-stacked"])
def test_detail_latents_decode_as_the_first_finer_scales_posterior(arch):
    """[top mean, detail] decodes as the reconstruction that takes the 12-px groups from the posterior and the finer
    ones at their priors' means; the detail is whitened (it differs from the raw posterior shift) and must be the face's."""
    m = model(seed=2, arch=arch)
    x = torch.rand(3, 3, 48, 48)
    coarse = sum(g.scale == 0 for g in m.decoder.groups)
    with torch.no_grad():
        posterior, detail = m.encode_detail(x)
        assert detail.shape == (3, m.detail_dim) and m.detail_dim == {"hierarchical": 8, "hierarchical-stacked": 3 * 3}[arch] * 12 * 12
        wanted = m.reconstruct(x, groups=coarse, temperatures=0)
        got = m.decode(torch.cat([posterior.mu, detail], 1), temperatures=0)
        assert torch.allclose(got, wanted, atol=1e-5)
        assert not torch.allclose(m.decode(torch.cat([posterior.mu, detail.flip(0)], 1), temperatures=0), wanted, atol=1e-3)
        assert not torch.allclose(m.decode(posterior.mu, temperatures=0), wanted, atol=1e-3)  # the detail carries something
    with pytest.raises(ValueError, match="wide"):
        m.decode(torch.zeros(1, 144 + 5))
    with pytest.raises(ValueError, match="detail latents"):
        VAE(ModelConfig(image_size=48, num_layers=4, base_channels=8, latent_dim=16)).encode_detail(x)


@pytest.mark.parametrize("arch", ["hierarchical", "hierarchical-stacked"])
def test_every_finer_scale_s_latents_decode_as_the_reconstruction_at_the_means(arch):
    """[top mean, every scale's detail] decodes as ``reconstruct`` at the posterior means; each scale's width is
    ``detail_dims``, the first is ``encode_detail``'s default, and a width between scales is refused."""
    m = model(seed=3, arch=arch)
    x = torch.rand(3, 3, 48, 48)
    with torch.no_grad():
        posterior, every = m.encode_detail(x, scales=2)
        _, first = m.encode_detail(x)
        per_scale = {"hierarchical": (8, 4), "hierarchical-stacked": (3 * 3, 3 * 2)}[arch]
        assert m.detail_dims == (per_scale[0] * 12 * 12, per_scale[1] * 24 * 24) and every.shape == (3, sum(m.detail_dims))
        assert torch.allclose(every[:, : m.detail_dim], first, atol=1e-6)
        got = m.decode(torch.cat([posterior.mu, every], 1))
        assert torch.allclose(got, m.reconstruct(x, latents="mean"), atol=1e-5)  # no noise drawn: every group given
        assert not torch.allclose(m.decode(torch.cat([posterior.mu, first], 1), temperatures=0), got, atol=1e-3)
    with pytest.raises(ValueError, match="wide"):
        m.decode(torch.zeros(1, 144 + m.detail_dim + 7))


def test_detail_latents_drawn_from_the_posterior_spread_around_its_means_by_its_own_scale():
    """With a generator, ``encode_detail`` draws each face's 12-px latents from the posterior (what training decodes)
    instead of taking the means: reproducible for a seed, centred on the means, spread by the posterior's own sigma
    (1 on a new model, whose posterior is its prior), and a later group at that scale reads the draw, not the mean."""
    x = torch.rand(64, 3, 48, 48)
    with torch.no_grad():
        _, means = model(heads=False).encode_detail(x)
        _, drawn = model(heads=False).encode_detail(x, torch.Generator().manual_seed(0))
        assert torch.equal(means, torch.zeros_like(means)) and abs(float(drawn.std()) - 1) < 0.02
        m = model(seed=3)
        _, means = m.encode_detail(x)
        first = m.encode_detail(x, torch.Generator().manual_seed(1))[1]
        assert torch.equal(first, m.encode_detail(x, torch.Generator().manual_seed(1))[1])
        assert not torch.allclose(first, m.encode_detail(x, torch.Generator().manual_seed(2))[1])
        h = m._top(m.encode(x).mu)
        group = m.decoder.groups[0]
        state = m.decoder.ups[0](h)
        _, d_logvar = group.shift_of(state, m.encoder(x)[-2])
        _, p_logvar = group.prior_of(state)
        sigma = torch.exp(d_logvar / 2).flatten(1)  # the posterior's sigma over the prior's, per dimension
        z = (first - means) / sigma
        assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.02
        assert float(sigma.std()) > 0.01  # the spread differs between dimensions: not one noise level for all
    stacked = model(seed=3, arch="hierarchical-stacked")
    with torch.no_grad():
        _, means = stacked.encode_detail(x)
        drawn = stacked.encode_detail(x, torch.Generator().manual_seed(1))[1]
    width = stacked.decoder.groups[0].z_channels * 144
    # the second group's prior reads the first group's draw: its whitened mean moves with it
    assert not torch.allclose(drawn[:, width:], means[:, width:], atol=1e-4)


def test_folding_batchnorm_keeps_the_function():
    m = model(seed=5)
    x = torch.rand(2, 3, 48, 48)
    with torch.no_grad():
        folded = m.folded()
        assert torch.allclose(folded.reconstruct(x), m.reconstruct(x), atol=1e-4)
        z, gen = torch.zeros(2, 144), lambda: torch.Generator().manual_seed(0)
        assert torch.allclose(folded.decode(z, gen()), m.decode(z, gen()), atol=1e-4)


def test_save_and_load_keep_every_group(tmp_path):
    m = model(seed=6)
    m.save_pretrained(tmp_path)
    loaded = VAE.from_pretrained(tmp_path).eval()
    x = torch.rand(2, 3, 48, 48)
    assert loaded.hierarchical and torch.equal(loaded.reconstruct(x), m.reconstruct(x))


def test_more_groups_than_the_decoder_has_octaves_is_a_clear_error():
    class TooMany(Hierarchical):
        GROUPS = (8, 4, 2, 1)

    with pytest.raises(UserError, match="finer latent groups"):
        TooMany().decoder(ModelConfig(**SMALL), 3)


def test_stacked_groups_sit_three_to_a_scale_and_each_prior_reads_the_draws_before_it():
    m = model(seed=7, arch="hierarchical-stacked")
    x = torch.rand(2, 3, 48, 48)
    out = m(x)
    assert [g.scale for g in m.decoder.groups] == [0, 0, 0, 1, 1, 1]
    assert [kl.shape[1] for kl in out.detail_kl] == [3 * 144] * 3 + [2 * 576] * 3
    # the second 12-px group's prior, after the first group's draw at two temperatures: it reads that draw
    top = m.decoder.ups[0](m._top(torch.randn(1, 144)))
    first, second = m.decoder.groups[0], m.decoder.groups[1]
    p_mu, p_logvar = first.prior_of(top)
    priors = [second.prior_of(first.joined(top, p_mu + t * torch.exp(p_logvar / 2) * torch.randn_like(p_mu)))[0] for t in (0.0, 1.0)]
    assert not torch.allclose(*priors)
    # groups=k counts groups: the first scale's three from the posterior, the rest from their priors
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert torch.equal(m.reconstruct(x), m.reconstruct(x, groups=6))
    assert not torch.allclose(m.reconstruct(x, groups=3, generator=gen()), m.reconstruct(x, groups=1, generator=gen()))


def test_a_temperature_applies_to_every_group_of_its_scale():
    """``(0, 1)``: all three 12-px groups at their priors' means whatever the noise, the 24-px groups drawn."""
    m = model(seed=8, arch="hierarchical-stacked")
    seen = {}
    for g in (2, 5):
        m.decoder.groups[g].join.register_forward_hook(lambda _, args, __, g=g: seen.setdefault(g, []).append(args[0].clone()))
    z = torch.randn(2, 144)
    for s in (5, 6):
        m.decode(z, torch.Generator().manual_seed(s), temperatures=(0.0, 1.0))
    assert torch.equal(*seen[2]) and not torch.allclose(*seen[5])
