"""The gmm sampler (a Gaussian mixture fitted to the stored latents), and every sampler through `animevae generate`."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animevae import runs
from animevae.errors import UserError
from animevae.sampling.generate import gmm_file, load_or_fit_gmm
from animevae.sampling.samplers import GMMSampler


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


CENTRES = torch.tensor([[-10.0, 0.0, 0.0, 0.0], [10.0, 0.0, 0.0, 0.0], [0.0, 10.0, 5.0, 0.0]])
WEIGHTS = torch.tensor([0.5, 0.3, 0.2])


@pytest.fixture(scope="module")
def clustered() -> torch.Tensor:
    """600 latents in three tight, well-separated clusters with weights 0.5 / 0.3 / 0.2."""
    ids = torch.cat([torch.full((int(w * 600),), i) for i, w in enumerate(WEIGHTS.tolist())])
    return CENTRES[ids] + 0.5 * torch.randn(600, 4, generator=_gen(0))


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """The tiny run's model, latents and config in a folder of this test's own (gmm files are written into it)."""
    dest = tmp_path / "run"
    dest.mkdir()
    for name in ("config.json", "model.safetensors", "latents.safetensors"):
        shutil.copy2(tiny_run / name, dest / name)
    return dest


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_fit_recovers_the_clusters(clustered, cov):
    gmm = GMMSampler.fit(clustered, n_components=3, covariance_type=cov)
    assert gmm.n_components == 3 and gmm.covariance_type == cov
    assert gmm.scale.shape == ((3, 4, 4) if cov == "full" else (3, 4))
    order = torch.argsort(gmm.means[:, 0] + 0.1 * gmm.means[:, 1])  # -10, then (0, 10), then +10 along x
    assert torch.allclose(gmm.means[order].float(), CENTRES[[0, 2, 1]], atol=0.3)
    assert torch.allclose(gmm.weights[order].float(), WEIGHTS[[0, 2, 1]], atol=0.02)
    z = gmm.sample(4000, _gen(1))
    assert z.shape == (4000, 4) and z.dtype == torch.float32
    nearest = torch.cdist(z, CENTRES).argmin(1)
    assert torch.allclose(torch.bincount(nearest, minlength=3).float() / 4000, WEIGHTS, atol=0.03)
    assert torch.allclose(z[nearest == 0].std(0), torch.full((4,), 0.5), atol=0.08)


def test_sampling_is_reproducible_for_a_seed(clustered):
    gmm = GMMSampler.fit(clustered, n_components=3)
    assert torch.equal(gmm.sample(50, _gen(7)), gmm.sample(50, _gen(7)))
    assert not torch.equal(gmm.sample(50, _gen(7)), gmm.sample(50, _gen(8)))
    # the fit is deterministic too, and so is a reloaded mixture
    again = GMMSampler.fit(clustered, n_components=3)
    assert torch.allclose(again.means, gmm.means)
    reloaded = GMMSampler.from_tensors(gmm.tensors(), "full", clustered.shape[1])
    assert torch.equal(reloaded.sample(50, _gen(7)), gmm.sample(50, _gen(7)))


def test_fit_uses_a_seeded_subsample_and_scaled_regularisation(clustered, monkeypatch):
    from animevae.sampling import mixture

    seen = []
    real_fit = mixture.fit_mixture

    def spy(x, k, covariance_type, reg, seed, max_iter):
        seen.append((len(x), reg, covariance_type, k, max_iter))
        return real_fit(x, k, covariance_type, reg, seed, max_iter)

    monkeypatch.setattr(mixture, "fit_mixture", spy)
    GMMSampler.fit(clustered, n_components=2, covariance_type="diag", max_fit=100)
    n, reg, cov, k, max_iter = seen[0]
    assert (n, cov, k, max_iter) == (100, "diag", 2, GMMSampler.MAX_ITER)
    sub = clustered.double()[torch.randperm(600, generator=_gen(0))[:100]]
    assert reg == pytest.approx(1e-3 * float(sub.var(0, unbiased=False).mean()))


@pytest.mark.parametrize("cov", ["full", "diag"])
def test_the_torch_fit_is_as_likely_as_scikit_learns(cov):
    """The same data, components and regularisation: the torch EM's mean log-likelihood per point is at least
    scikit-learn's (to 0.1 %), on overlapping clusters with correlated covariances where EM's start matters."""
    from sklearn.mixture import GaussianMixture

    g = _gen(5)
    d, k = 12, 6
    mixing = [torch.randn(d, d, generator=g) * (0.4 + 0.3 * j) for j in range(k)]
    centres = 3 * torch.randn(k, d, generator=g)
    ids = torch.randint(k, (3000,), generator=g)
    x = torch.stack([centres[i] + mixing[i] @ torch.randn(d, generator=g) for i in ids.tolist()]).double()
    reg = 1e-3 * float(x.var(0, unbiased=False).mean())
    from animevae.sampling.mixture import fit_mixture

    weights, means, scale, iterations, score = fit_mixture(x, k, cov, reg, seed=0)
    assert 1 <= iterations <= 100
    ref = GaussianMixture(k, covariance_type=cov, reg_covar=reg, random_state=0, max_iter=200).fit(x.numpy())
    assert score >= ref.score(x.numpy()) - 1e-3 * abs(ref.score(x.numpy()))
    # the parameters it returns are the ones it scored: sklearn's own likelihood of them agrees
    ref.weights_, ref.means_ = weights.numpy(), means.numpy()
    ref.covariances_ = (scale @ scale.transpose(1, 2)).numpy() if cov == "full" else (scale**2).numpy()
    ref.precisions_cholesky_ = torch.linalg.inv(scale).transpose(1, 2).numpy() if cov == "full" else (1 / scale).numpy()
    assert ref.score(x.numpy()) == pytest.approx(score, rel=1e-3)


def test_em_stops_at_its_iteration_cap():
    """The cap bounds a slow fit's time: EM that would run longer stops at max_iter, and the sampler passes it on."""
    from animevae.sampling import mixture

    g = _gen(3)
    x = torch.cat([torch.randn(400, 6, generator=g) + shift for shift in (0.0, 1.5, 3.0)]).double()  # overlapping: EM takes a while
    _, _, _, free, _ = mixture.fit_mixture(x, 3, "full", 1e-6, seed=0, max_iter=1000, tol=1e-9)
    assert free > 4
    _, _, _, capped, _ = mixture.fit_mixture(x, 3, "full", 1e-6, seed=0, max_iter=4, tol=1e-9)
    assert capped == 4
    assert not torch.allclose(GMMSampler.fit(x, 3, max_iter=2).means, GMMSampler.fit(x, 3, max_iter=free).means)


def test_the_scatter_over_the_responsible_points_equals_the_scatter_over_all_points():
    """The M-step skips points whose responsibility is below RESP_FLOOR: on overlapping clusters with soft
    responsibilities (many between 1e-12 and 1), its covariances equal the weighted scatter over every point."""
    import animevae.sampling.mixture as mixture

    g = _gen(7)
    x = torch.randn(2000, 8, generator=g)
    logits = torch.randn(2000, 3, generator=g) * 20  # a wide spread: some responsibilities are tiny, some in between
    resp = torch.softmax(logits.double(), 1).float()
    assert ((resp > 0) & (resp <= mixture.RESP_FLOOR)).any() and ((resp > 1e-6) & (resp < 1e-2)).sum() > 100
    weights, means, scale = mixture._m_step(x, resp, "full", 1e-6)
    r, x64 = resp.double(), x.double()
    nk = r.sum(0)
    expected_means = (r.T @ x64) / nk[:, None]
    expected_covs = [((x64 - expected_means[j]) * r[:, j, None]).T @ (x64 - expected_means[j]) / nk[j] + 1e-6 * torch.eye(8) for j in range(3)]
    torch.testing.assert_close(weights, nk / len(x), rtol=1e-6, atol=0)
    torch.testing.assert_close(means, expected_means, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scale @ scale.transpose(1, 2), torch.stack(expected_covs).to(scale.dtype), rtol=1e-5, atol=1e-6)


def test_a_component_that_collapses_onto_one_outlier_is_dropped_not_sampled():
    """EM gives a component to a lone outlier (weight 1/N); sampling it would copy that latent. It is dropped."""
    g = _gen(0)
    clusters = [torch.randn(300, 4, generator=g) + torch.tensor([8.0, 0, 0, 0]) * k for k in range(3)]
    outlier = torch.full((1, 4), 100.0)
    sampler = GMMSampler.fit(torch.cat([*clusters, outlier]), n_components=4, covariance_type="full")
    assert sampler.n_components == 3 and float(sampler.weights.sum()) == pytest.approx(1.0)
    z = sampler.sample(5000, _gen(1))
    assert float((z - outlier).norm(dim=1).min()) > 50  # no draw lands on the outlier
    assert float(z[:, 0].max()) < 30  # the three clusters, at 0, 8 and 16


def test_too_many_full_components_fail_with_advice():
    latents = torch.randn(60, 8, generator=_gen(2))
    with pytest.raises(UserError) as e:
        GMMSampler.fit(latents, n_components=50, covariance_type="full")
    msg = str(e.value)
    assert "fewer components" in msg and "--gmm-covariance diag" in msg and "50" in msg
    with pytest.raises(UserError, match="cannot fit 80 components to 60 latents"):
        GMMSampler.fit(latents, n_components=80)


def test_failed_and_non_finite_fits_become_user_errors(clustered, monkeypatch):
    from animevae.sampling import mixture

    def boom(*a, **k):
        raise mixture.FitFailed("some components have ill-defined empirical covariance")

    monkeypatch.setattr(mixture, "fit_mixture", boom)
    with pytest.raises(UserError, match=r"failed \(some components have ill-defined.*--gmm-covariance diag"):
        GMMSampler.fit(clustered, n_components=3)

    def nan_fit(x, k, covariance_type, reg, seed, max_iter):
        eye = torch.eye(x.shape[1], dtype=torch.float64)
        return torch.full((k,), 1 / k, dtype=torch.float64), torch.full((k, x.shape[1]), float("nan")), torch.stack([eye] * k), 1, 0.0

    monkeypatch.setattr(mixture, "fit_mixture", nan_fit)
    with pytest.raises(UserError, match="non-finite parameters.*fewer components"):
        GMMSampler.fit(clustered, n_components=3)


def test_a_singular_covariance_fails_with_advice():
    """Points on a line in 4-d, with no regularisation to rescue them: the Cholesky factor does not exist."""
    from animevae.sampling.mixture import FitFailed, fit_mixture

    line = torch.linspace(0, 1, 50, dtype=torch.float64)[:, None] * torch.ones(1, 4, dtype=torch.float64)
    with pytest.raises(FitFailed, match="ill-defined"):
        fit_mixture(line, 2, "full", reg=0.0)


def test_bad_settings_are_refused(clustered):
    with pytest.raises(UserError, match="--gmm-covariance tied"):
        GMMSampler.fit(clustered, covariance_type="tied")
    with pytest.raises(UserError, match="--gmm-components must be at least 1"):
        GMMSampler.fit(clustered, n_components=0)


def test_the_run_keeps_its_mixture_and_refits_when_latents_change(run_copy, monkeypatch):
    first = load_or_fit_gmm(str(run_copy), 3, "diag", progress=False)
    path = gmm_file(run_copy, 3, "diag")
    assert path.is_file()
    assert set(runs.load_tensors(path)) == {"weights", "means", "scale"}

    def no_fit(*a, **k):
        raise AssertionError("refitted although the saved mixture is current")

    monkeypatch.setattr(GMMSampler, "fit", no_fit)
    reused = load_or_fit_gmm(str(run_copy), 3, "diag", progress=False)
    assert torch.equal(reused.sample(20, _gen(3)), first.sample(20, _gen(3)))

    # new latents (a resumed or continued run writes them): the mixture is fitted again
    monkeypatch.undo()
    latents = run_copy / runs.LATENTS
    old = runs.Latents.load(latents)
    runs.Latents(old.mu * 1.5, old.logvar, old.row_id).save(latents)
    later = time.time()
    fits = []
    real_fit = GMMSampler.fit.__func__

    def counting_fit(cls, *a, **k):
        fits.append(1)
        return real_fit(cls, *a, **k)

    monkeypatch.setattr(GMMSampler, "fit", classmethod(counting_fit))
    load_or_fit_gmm(str(run_copy), 3, "diag", progress=False)
    assert fits == [1]
    assert path.stat().st_mtime >= later - 1  # and saved again


@pytest.mark.parametrize("sampler", ["mix", "prior", "gmm"])
def test_every_sampler_generates_through_the_cli(cli, run_copy, tmp_path, sampler):
    out = tmp_path / "faces"
    extra = ["--gmm-components", "4"] if sampler == "gmm" else []
    cli("generate", "--run", run_copy, "--sampler", sampler, "--n", 6, "--seed", 3, "--out", out, *extra)
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert pngs == [f"{i:05d}.png" for i in range(6)] + ["grid.png"]
    assert np.asarray(Image.open(out / "00000.png")).shape == (96, 96, 3)
    if sampler == "gmm":
        assert gmm_file(run_copy, 4, "full").is_file()
        out2 = tmp_path / "again"
        proc = cli("generate", "--run", run_copy, "--sampler", "gmm", "--gmm-components", "4", "--n", 6, "--seed", 3, "--out", out2)
        assert "fitting" not in proc.stderr  # the saved mixture was reused
        assert (out / "grid.png").read_bytes() == (out2 / "grid.png").read_bytes()


def test_gmm_failure_is_one_line_through_the_cli(cli, run_copy, tmp_path):
    proc = cli("generate", "--run", run_copy, "--sampler", "gmm", "--gmm-components", 1000, "--out", tmp_path / "x", check=False)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("animevae: error: gmm: cannot fit 1000 components") and "--gmm-covariance diag" in last
    assert "Traceback" not in proc.stderr


def test_gmm_temperature_scales_the_spread_around_each_component_and_nothing_else():
    gen = torch.Generator().manual_seed(0)
    means = torch.randn(3, 8, generator=gen, dtype=torch.float64) * 5
    scale = torch.linalg.cholesky(torch.eye(8, dtype=torch.float64).expand(3, 8, 8) * torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64).view(3, 1, 1))
    gmm = GMMSampler(torch.full((3,), 1 / 3, dtype=torch.float64), means, scale)
    draws = {}
    for t in (0.0, 1.0, 0.5):
        gmm.temperature = t
        draws[t] = gmm.sample(500, torch.Generator().manual_seed(1)).double()
    at_means = draws[0.0]
    assert all(any(torch.allclose(z, m.float().double(), atol=1e-5) for m in means) for z in at_means[:20])  # T = 0: the means
    assert torch.allclose(draws[0.5] - at_means, 0.5 * (draws[1.0] - at_means), atol=1e-5)  # same components, half the offset


def _coarse_and_fine(n: int = 3000) -> torch.Tensor:
    """4 coarse dimensions in two clusters, 40 fine ones: three shared directions that follow the cluster, plus noise."""
    g = _gen(3)
    ids = torch.randint(0, 2, (n,), generator=g)
    coarse = torch.stack([ids * 8.0 - 4, torch.zeros(n), torch.zeros(n), torch.zeros(n)], 1) + torch.randn(n, 4, generator=g)
    mixing = torch.randn(3, 40, generator=g)
    shared = torch.randn(n, 3, generator=g) + ids[:, None] * 2.0
    return torch.cat([coarse, shared @ mixing + 0.1 * torch.randn(n, 40, generator=g)], 1)


def test_the_joint_mixture_draws_the_fine_part_by_its_principal_components_with_the_coarse_one():
    from animevae.sampling.samplers import JointGMMSampler

    x = _coarse_and_fine()
    sampler = JointGMMSampler.fit(x, coarse=4, n_components=2, components=3)
    assert sampler.mixture.means.shape == (2, 4 + 3) and sampler.basis.shape == (40, 3)
    z = sampler.sample(4000, _gen(1))
    assert z.shape == (4000, 44) and torch.equal(z, sampler.sample(4000, _gen(1)))
    data_cov, drawn_cov = torch.cov(x.T), torch.cov(z.T)
    assert torch.allclose(drawn_cov, data_cov, atol=0.12 * float(data_cov.abs().max()))  # fine part, and how it goes with the coarse
    assert float(drawn_cov[0, 4:].abs().max()) > 0.3 * float(data_cov[0, 4:].abs().max())  # the fine part follows the cluster
    independent = JointGMMSampler.fit(x, coarse=4, n_components=2, components=0)  # no shared directions: only each dimension's spread
    cov0 = torch.cov(independent.sample(4000, _gen(1)).T)
    assert torch.allclose(cov0.diagonal(), data_cov.diagonal(), rtol=0.15)
    assert float(cov0[4:, 4:].fill_diagonal_(0).abs().max()) < 0.2 * float(data_cov[4:, 4:].fill_diagonal_(0).abs().max())
    again = JointGMMSampler.from_tensors(sampler.tensors(), "full", 44)  # what the run folder keeps
    assert torch.equal(again.sample(50, _gen(2)), sampler.sample(50, _gen(2)))
    sampler.temperature = 0.0  # the components' means alone: no spread in the mixture, none in the independent rest
    assert len(torch.unique(sampler.sample(500, _gen(4)), dim=0)) == sampler.mixture.n_components


def test_a_joint_mixture_without_fine_latents_is_the_mixture_alone_and_bad_files_are_refused():
    from animevae.sampling.samplers import JointGMMSampler

    x = _coarse_and_fine()[:, :4]
    sampler = JointGMMSampler.fit(x, coarse=4, n_components=2)
    plain = GMMSampler.fit(x, 2)
    assert torch.equal(sampler.sample(100, _gen(0)), plain.sample(100, _gen(0)))  # an older run's latents: as before
    old = JointGMMSampler.from_tensors(plain.tensors(), "full", 4)  # an older run's file: no fine part
    assert torch.equal(old.sample(10, _gen(0)), plain.sample(10, _gen(0)))
    t = JointGMMSampler.fit(_coarse_and_fine(), coarse=4, n_components=2, components=3).tensors()
    for bad in ({"fine_basis": torch.zeros(40, 5)}, {"fine_residual": -torch.ones(40)}, {"fine_mean": torch.full((40,), float("nan"))}):
        with pytest.raises(ValueError):
            JointGMMSampler.from_tensors(t | bad, "full", 44)
    with pytest.raises(ValueError):
        JointGMMSampler.from_tensors(t, "full", 50)  # latents of another width


def test_the_mixture_is_kept_in_float32_and_a_reloaded_one_draws_as_the_fitted_one(clustered):
    """A full-covariance mixture over a hierarchical run's joint latents is 30 x D^2 numbers: stored in float32 (half of
    float64's file), and held at that precision after fitting too, so the run's first draw equals every later one."""
    sampler = GMMSampler.fit(clustered, 3)
    t = sampler.tensors()
    assert all(v.dtype == torch.float32 for v in t.values())
    again = GMMSampler.from_tensors(t, "full", 4)
    assert torch.equal(again.sample(200, _gen(5)), sampler.sample(200, _gen(5)))
