"""Ways to pick new latents, behind one interface: ``sampler.sample(n, generator) -> n x latent``.

``mix`` is the seed's: random weighted averages of the learned latent means. With weights over all
~60k latents every average collapses to the mean face, so ``k`` (how many stored latents one mix
draws on) is a parameter; the README's table shows what it does to diversity. ``prior`` draws from
N(0, T^2 I); ``gmm`` from a Gaussian mixture fitted to the stored latent means.
"""

from __future__ import annotations

import torch

DEFAULT_GMM_COMPONENTS = 10  # the gmm sampler's mixture components
DEFAULT_MIX_K = 2  # measured (README, docs/results.md): the most diverse and sharpest mixes, no near-copies


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


class GMMSampler(Sampler):
    """z from a Gaussian mixture fitted to the stored latent means (ex-post density estimation, Ghosh et al. 2020).

    The mixture is fitted with scikit-learn (``fit``), but sampling uses only torch: a component id
    per face from the fitted weights, then mean + cholesky factor @ N(0, I) noise, so a seeded
    ``torch.Generator`` gives the same faces every time. ``tensors()`` / ``from_tensors()`` save and
    load the fitted mixture (the run folder keeps it as ``gmm_<components>_<covariance>.safetensors``).
    """

    name = "gmm"
    COVARIANCE_TYPES = ("full", "diag")
    MAX_FIT = 20_000  # latents the mixture is fitted on (a seeded subsample of larger sets)
    REG_SCALE = 1e-3  # reg_covar = REG_SCALE * mean per-dimension variance of the latents

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale: torch.Tensor, covariance_type: str = "full"):
        if covariance_type not in self.COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {self.COVARIANCE_TYPES}, got {covariance_type!r}")
        k, d = means.shape
        want = (k, d, d) if covariance_type == "full" else (k, d)
        if weights.shape != (k,) or tuple(scale.shape) != want:
            raise ValueError(f"gmm tensors do not line up: weights {tuple(weights.shape)}, means {tuple(means.shape)}, scale {tuple(scale.shape)}")
        self.weights, self.means, self.scale = weights.double(), means.double(), scale.double()
        self.covariance_type = covariance_type

    @property
    def n_components(self) -> int:
        return len(self.means)

    @classmethod
    def fit(cls, mu: torch.Tensor, n_components: int = 10, covariance_type: str = "full", max_fit: int | None = None, seed: int = 0) -> GMMSampler:
        """Fit on (at most ``max_fit`` of) the latent means; a failed or degenerate fit raises UserError."""
        from .errors import UserError

        if covariance_type not in cls.COVARIANCE_TYPES:
            raise UserError(f"--gmm-covariance {covariance_type}: unknown; choose full or diag")
        if n_components < 1:
            raise UserError(f"--gmm-components must be at least 1, got {n_components}")
        if mu.ndim != 2 or len(mu) == 0:
            raise ValueError("gmm needs a non-empty N x latent tensor of learned latents")
        max_fit = cls.MAX_FIT if max_fit is None else max_fit
        x = mu.double()
        if len(x) > max_fit:
            x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_fit]]
        hint = f"try fewer components (--gmm-components, now {n_components}) or --gmm-covariance diag"
        if covariance_type == "diag":
            hint = f"try fewer components (--gmm-components, now {n_components})"
        if len(x) < n_components:
            raise UserError(f"gmm: cannot fit {n_components} components to {len(x)} latents; {hint}")
        reg = max(cls.REG_SCALE * float(x.var(0, unbiased=False).mean()), 1e-8)
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        try:
            gm = GaussianMixture(n_components, covariance_type=covariance_type, reg_covar=reg, random_state=seed, max_iter=200)
            # one BLAS thread: EM's many small (latent x latent) Cholesky factorisations run ~10x slower
            # threaded on a busy machine (measured: 2.9 s vs 0.23 s on 304 x 256 latents, 2 cores)
            with threadpool_limits(1, user_api="blas"):
                gm.fit(x.numpy())
            weights = torch.from_numpy(gm.weights_).double()
            means = torch.from_numpy(gm.means_).double()
            cov = torch.from_numpy(gm.covariances_).double()
            scale = torch.linalg.cholesky(cov) if covariance_type == "full" else cov.sqrt()
        except Exception as e:  # sklearn raises ValueError/LinAlgError on ill-defined covariances; cholesky too
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise UserError(f"gmm: fitting {n_components} {covariance_type}-covariance components to {len(x)} latents failed ({first}); {hint}") from None
        if not all(torch.isfinite(t).all() for t in (weights, means, scale)):
            raise UserError(f"gmm: fitting {n_components} {covariance_type}-covariance components to {len(x)} latents gave non-finite parameters; {hint}")
        collapsed = int((weights * len(x) < 1.5).sum())
        if collapsed:
            raise UserError(
                f"gmm: {collapsed} of {n_components} components collapsed onto a single latent ({len(x)} latents for "
                f"{n_components} components): that copies training faces instead of modelling a density; {hint}"
            )
        return cls(weights / weights.sum(), means, scale, covariance_type)

    def sample(self, n, generator=None):
        comp = torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        if self.covariance_type == "full":
            z = self.means[comp] + torch.einsum("nij,nj->ni", self.scale[comp], eps)
        else:
            z = self.means[comp] + self.scale[comp] * eps
        return z.float()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights, "means": self.means, "scale": self.scale}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], covariance_type: str, latent_dim: int) -> GMMSampler:
        """A saved mixture, refused (ValueError, saying why) unless its shapes fit ``latent_dim`` and its numbers are finite."""
        if not {"weights", "means", "scale"} <= set(t):
            raise ValueError(f"expected weights, means, scale; found {', '.join(sorted(t))}")
        w, m, s = t["weights"], t["means"], t["scale"]
        k = len(w)
        scale_shape = (k, latent_dim, latent_dim) if covariance_type == "full" else (k, latent_dim)
        if w.ndim != 1 or tuple(m.shape) != (k, latent_dim) or tuple(s.shape) != scale_shape:
            raise ValueError(f"shapes {tuple(w.shape)}, {tuple(m.shape)}, {tuple(s.shape)} do not fit {latent_dim}-wide latents")
        if not all(torch.isfinite(x).all() for x in (w, m, s)) or (w < 0).any() or abs(float(w.sum()) - 1) > 1e-6:
            raise ValueError("non-finite parameters or weights that are not a distribution")
        return cls(w, m, s, covariance_type)
