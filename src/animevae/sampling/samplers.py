"""Ways to pick new latents, behind one interface: ``sampler.sample(n, generator) -> n x latent``.

``mix`` is the seed's: random weighted averages of the learned latent means. With weights over all
~60k latents every average collapses to the mean face, so ``k`` (how many stored latents one mix
draws on) is a parameter; docs/how-to/generate.md shows what it does to diversity. ``prior`` draws from
N(0, T^2 I); ``gmm`` from a Gaussian mixture fitted to the stored latent means (``joint-gmm``: the same
mixture over a hierarchical model's latent means and detail latents, posterior draws of its 12-px group, so its
strokes are drawn with the face, and its finer 24-px group by its principal components with them);
``two-stage`` from a second VAE fitted to them; ``diffusion`` from a small diffusion model fitted to them.
"""

from __future__ import annotations

import torch

DEFAULT_GMM_COMPONENTS = 10  # the gmm sampler's mixture components
DEFAULT_JOINT_COMPONENTS = 30  # the joint-gmm's, over [top, detail] latents: of 1, 10, 30 and 100, 30 read best (experiments/joint_gmm.py)
JOINT_FINE_COMPONENTS = 256  # the 24-px group's principal components in the joint-gmm's mixture (experiments/joint_gmm_fine.py)
DEFAULT_MIX_K = 2  # measured (experiments/mix_k_diversity.py): the most diverse and sharpest mixes, no near-copies


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

    The mixture is fitted by EM in torch (``fit``; mixture.py), and sampling uses only torch: a component id
    per face from the fitted weights, then mean + cholesky factor @ N(0, I) noise, so a seeded
    ``torch.Generator`` gives the same faces every time. ``tensors()`` / ``from_tensors()`` save and
    load the fitted mixture (the run folder keeps it as ``gmm_<components>_<covariance>.safetensors``).
    A component that collapsed onto one latent (EM's way with an outlier in a rich latent space) would
    only copy that face: a minority of them are dropped, more than that is refused with advice.
    """

    name = "gmm"
    COVARIANCE_TYPES = ("full", "diag")
    MAX_FIT = 20_000  # latents the mixture is fitted on (a seeded subsample of larger sets)
    REG_SCALE = 1e-3  # reg_covar = REG_SCALE * mean per-dimension variance of the latents
    MAX_ITER = 15  # EM iterations at most; it stops earlier once the mean log-likelihood settles (experiments/sampler_budget.py)

    def __init__(self, weights: torch.Tensor, means: torch.Tensor, scale: torch.Tensor, covariance_type: str = "full"):
        if covariance_type not in self.COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {self.COVARIANCE_TYPES}, got {covariance_type!r}")
        k, d = means.shape
        want = (k, d, d) if covariance_type == "full" else (k, d)
        if weights.shape != (k,) or tuple(scale.shape) != want:
            raise ValueError(f"gmm tensors do not line up: weights {tuple(weights.shape)}, means {tuple(means.shape)}, scale {tuple(scale.shape)}")
        # kept at float32 precision, as the run folder stores them (a full-covariance mixture over a hierarchical run's
        # 1,984 joint dimensions is 30 x 1,984^2 numbers: 0.47 GB in float32), so a fitted and a reloaded one draw alike
        self.weights, self.means, self.scale = (t.float().double() for t in (weights, means, scale))
        self.covariance_type = covariance_type
        self.temperature = 1.0  # each component's spread is scaled by this when sampling (fitted parameters unchanged)

    @property
    def n_components(self) -> int:
        return len(self.means)

    @classmethod
    def fit(
        cls,
        mu: torch.Tensor,
        n_components: int = 10,
        covariance_type: str = "full",
        max_fit: int | None = None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        max_iter: int | None = None,
    ) -> GMMSampler:
        """Fit on (at most ``max_fit`` of) the latent means, on ``device``; a failed or degenerate fit raises UserError."""
        from ..errors import UserError

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
        from .mixture import FitFailed, fit_mixture

        try:
            weights, means, scale, _, _ = fit_mixture(x.to(device), n_components, covariance_type, reg, seed, max_iter or cls.MAX_ITER)
        except FitFailed as e:
            raise UserError(f"gmm: fitting {n_components} {covariance_type}-covariance components to {len(x)} latents failed ({e}); {hint}") from None
        weights, means, scale = weights.cpu(), means.cpu(), scale.cpu()
        if not all(torch.isfinite(t).all() for t in (weights, means, scale)):
            raise UserError(f"gmm: fitting {n_components} {covariance_type}-covariance components to {len(x)} latents gave non-finite parameters; {hint}")
        collapsed = weights * len(x) < 1.5  # a component that owns one latent would copy that training face
        if 2 * int(collapsed.sum()) >= n_components:
            raise UserError(
                f"gmm: {int(collapsed.sum())} of {n_components} components collapsed onto a single latent ({len(x)} latents for "
                f"{n_components} components): that copies training faces instead of modelling a density; {hint}"
            )
        keep = ~collapsed  # a few that grabbed single outlying latents (weight < 1.5 / N each) are dropped
        return cls(weights[keep] / weights[keep].sum(), means[keep], scale[keep], covariance_type)

    def sample(self, n, generator=None):
        comp = torch.multinomial(self.weights.float(), n, replacement=True, generator=generator)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64) * self.temperature
        if self.covariance_type == "full":  # per component: gathering a D x D factor per face would take n x D^2 memory
            z = self.means[comp].clone()
            for j in comp.unique().tolist():
                mine = comp == j
                z[mine] += eps[mine] @ self.scale[j].T
        else:
            z = self.means[comp] + self.scale[comp] * eps
        return z.float()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights.float(), "means": self.means.float(), "scale": self.scale.float()}

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
        if not all(torch.isfinite(x).all() for x in (w, m, s)) or (w < 0).any() or abs(float(w.double().sum()) - 1) > 1e-5:
            raise ValueError("non-finite parameters or weights that are not a distribution")
        return cls(w, m, s, covariance_type)


class JointGMMSampler(Sampler):
    """A hierarchical run's [top, detail, fine] latents (``runs.Latents``): one Gaussian mixture over the top latent, the
    first finer scale's detail latents and the first ``JOINT_FINE_COMPONENTS`` principal components of the finer
    scales' (the 24-px group's 2,304 dimensions at 96 px, too many for full covariances on 20,000 faces), the rest of
    those drawn as independent noise with the variance the components leave in each dimension. The finer group's own
    prior draws each position independently given the coarser ones; its principal components are the directions in
    which whole faces' fine latents vary together, and drawn with the face they read as one: on a 25-minute run its
    samples were caught less often at every rung than with that group from its prior, 0.696 against 0.793 at 32 px,
    and a control with the same spread but no shared directions was not (experiments/joint_gmm_fine.py). Latents
    without the fine part (older runs) give the mixture alone, and the finer group is drawn from its prior.
    ``temperature`` scales the mixture's components and the independent rest alike."""

    name = "joint-gmm"
    MAX_FIT = GMMSampler.MAX_FIT

    def __init__(self, mixture: GMMSampler, coarse: int, mean: torch.Tensor, basis: torch.Tensor, residual: torch.Tensor):
        fine, k = basis.shape
        if mixture.means.shape[1] != coarse + k or mean.shape != (fine,) or residual.shape != (fine,):
            raise ValueError(
                f"joint-gmm tensors do not line up: mixture {mixture.means.shape[1]} wide, {coarse} coarse + {k} components, "
                f"mean {tuple(mean.shape)}, residual {tuple(residual.shape)} for {fine} fine dimensions"
            )
        self.mixture, self.coarse = mixture, coarse
        self.mean, self.basis, self.residual = mean.float(), basis.float(), residual.float()

    @property
    def temperature(self) -> float:
        return self.mixture.temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        self.mixture.temperature = value

    @classmethod
    def fit(
        cls,
        x: torch.Tensor,
        coarse: int,
        n_components: int = DEFAULT_JOINT_COMPONENTS,
        covariance_type: str = "full",
        components: int = JOINT_FINE_COMPONENTS,
        seed: int = 0,
        device: str | torch.device = "cpu",
    ) -> JointGMMSampler:
        """Fit on (a seeded subsample of ``MAX_FIT`` of) the rows of ``x``: its first ``coarse`` columns whole, the rest by
        their first ``components`` principal components."""
        if len(x) > cls.MAX_FIT:
            x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: cls.MAX_FIT]]
        fine = x[:, coarse:].double()
        mean = fine.mean(0)
        centred = fine - mean
        cov = centred.T @ centred / max(len(x), 1)
        k = min(components, fine.shape[1], max(len(x) - 1, 0))
        values, vectors = torch.linalg.eigh(cov) if fine.shape[1] else (fine.new_zeros(0), fine.new_zeros(0, 0))
        basis = vectors[:, fine.shape[1] - k :].flip(1)  # the largest first
        kept = (basis.pow(2) * values[fine.shape[1] - k :].flip(0)).sum(1)
        residual = (cov.diagonal() - kept).clamp_min(0).sqrt()
        mixture = GMMSampler.fit(torch.cat([x[:, :coarse].double(), centred @ basis], 1), n_components, covariance_type, seed=seed, device=device)
        return cls(mixture, coarse, mean, basis, residual)

    def sample(self, n, generator=None):
        drawn = self.mixture.sample(n, generator)
        if not len(self.mean):
            return drawn
        rest = torch.randn(n, len(self.mean), generator=generator) * self.residual * self.temperature
        return torch.cat([drawn[:, : self.coarse], self.mean + drawn[:, self.coarse :] @ self.basis.T + rest], 1)

    def tensors(self) -> dict[str, torch.Tensor]:
        return self.mixture.tensors() | {"fine_mean": self.mean, "fine_basis": self.basis, "fine_residual": self.residual}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], covariance_type: str, width: int) -> JointGMMSampler:
        """A saved joint mixture for ``width``-wide latents, refused (ValueError, saying why) unless its shapes fit and its
        numbers are finite; one saved without the fine part (an older run's) draws the mixture alone."""
        basis = t.get("fine_basis", torch.zeros(0, 0))
        fine, k = basis.shape if basis.ndim == 2 else (-1, -1)
        mean, residual = t.get("fine_mean", torch.zeros(0)), t.get("fine_residual", torch.zeros(0))
        if fine < 0 or fine > width or not all(torch.isfinite(v).all() for v in (basis, mean, residual)) or (residual < 0).any():
            raise ValueError(f"fine_basis {tuple(basis.shape)}, fine_mean and fine_residual do not fit {width}-wide latents")
        coarse = width - fine
        return cls(GMMSampler.from_tensors(t, covariance_type, coarse + k), coarse, mean, basis, residual)


def _fit(make_net, loss_of, x: torch.Tensor, steps: int, batch: int, seed: int, schedule, what: str, progress: bool = False) -> torch.nn.Module:
    """The fitted samplers' training loop: ``make_net()``, then ``steps`` Adam steps (lr 1e-3, ``schedule(opt)``) on
    random batches of ``x`` minimising ``loss_of(net, batch, generator)``. Seeded: the batches from one generator, the
    initialisation and any noise from the global RNG, forked so the caller's is untouched. Works inside no_grad."""
    from tqdm.auto import tqdm

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(), torch.enable_grad():
        torch.manual_seed(seed)
        net = make_net()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        sched = schedule(opt)
        for _ in tqdm(range(steps), desc=what, unit="step", disable=not progress, leave=False):
            loss = loss_of(net, x[torch.randint(len(x), (min(batch, len(x)),), generator=gen)], gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    if not torch.isfinite(loss):
        from ..errors import UserError

        raise UserError(f"{what} diverged (non-finite loss); try the gmm sampler")
    return net


def _net_state(t: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k[4:]: v for k, v in t.items() if k.startswith("net.")}


def _load(net: torch.nn.Module, state: dict[str, torch.Tensor], t: dict[str, torch.Tensor]) -> torch.nn.Module:
    """``net`` with a saved sampler's weights, or ValueError saying why they do not fit or are not finite."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise ValueError(f"the network does not fit ({str(e).splitlines()[0][:100]})") from None
    if not all(torch.isfinite(v).all() for v in t.values()):
        raise ValueError("non-finite parameters")
    return net


class _SecondStage(torch.nn.Module):
    """Dai & Wipf's second-stage VAE: an MLP VAE over (standardised) latents, u ~ N(0, I) -> z, with a learned
    scalar decoder variance gamma (what lets it match the first stage's aggregate posterior)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        nn = torch.nn
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * dim))
        self.decoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, dim))
        self.log_gamma = nn.Parameter(torch.tensor(-2.0))  # start from a sharp decoder: gamma = 1 invites collapse to the mean

    def loss(self, z: torch.Tensor) -> torch.Tensor:
        from ..models.distributions import DiagonalGaussian

        q = DiagonalGaussian(*self.encoder(z).chunk(2, dim=1))
        zhat = self.decoder(q.rsample())
        recon = 0.5 * (((z - zhat) ** 2) / self.log_gamma.exp() + self.log_gamma).sum(1)
        return (recon + q.kl()).mean()


class TwoStageSampler(Sampler):
    """z from a second, small VAE fitted on the stored latent means (Dai & Wipf 2019, "Diagnosing and
    enhancing VAE models"): the first stage's latents need not look like N(0, I), the second stage's do.

    ``fit`` trains it (seeded, CPU, a few seconds); sampling decodes u ~ N(0, I) to the second stage's
    mean and undoes the standardisation. ``tensors()`` / ``from_tensors()`` save and load it (the run
    folder keeps it as ``two_stage.safetensors``, fitted once like the gmm sampler).
    """

    name = "two-stage"
    HIDDEN = 256
    STEPS = 3000  # at most; ``fit`` takes len(latents) / 20 steps, at least 500 (63k latents: 3000, about 12 epochs)
    BATCH = 256

    def __init__(self, net: _SecondStage, center: torch.Tensor, scale: torch.Tensor):
        self.net, self.center, self.scale = net.eval(), center.float(), scale.float()

    @classmethod
    def fit(cls, mu: torch.Tensor, steps: int | None = None, seed: int = 0, hidden: int | None = None) -> TwoStageSampler:
        if mu.ndim != 2 or len(mu) < 2:
            raise ValueError("two-stage needs at least 2 stored latents (N x latent)")
        center = mu.float().mean(0)
        scale = (mu.float() - center).pow(2).mean().sqrt().clamp_min(1e-6).expand_as(center).clone()  # one scale: keeps the dims' proportions
        x = (mu.float() - center) / scale
        steps = steps or min(cls.STEPS, max(500, len(x) // 20))
        net = _fit(
            lambda: _SecondStage(x.shape[1], hidden or cls.HIDDEN),
            lambda net, batch, gen: net.loss(batch),
            x, steps, cls.BATCH, seed, lambda opt: torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps), "two-stage: fitting the second-stage VAE",
        )  # fmt: skip
        return cls(net, center, scale)

    @torch.no_grad()
    def sample(self, n, generator=None):
        u = torch.randn(n, self.center.shape[0], generator=generator)
        return self.net.decoder(u) * self.scale + self.center

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**{f"net.{k}": v for k, v in self.net.state_dict().items()}, "center": self.center, "scale": self.scale}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], latent_dim: int) -> TwoStageSampler:
        """A saved second stage, refused (ValueError, saying why) unless it fits ``latent_dim`` and its numbers are finite."""
        if "center" not in t or "scale" not in t or tuple(t["center"].shape) != (latent_dim,):
            raise ValueError(f"not a two-stage sampler for {latent_dim}-wide latents")
        state = _net_state(t)
        net = _load(_SecondStage(latent_dim, state.get("encoder.0.weight", torch.zeros(0, 0)).shape[0]), state, t)
        return cls(net, t["center"], t["scale"])


def _signal_level(t: torch.Tensor) -> torch.Tensor:
    """alpha-bar(t) of the cosine noise schedule (Nichol & Dhariwal 2021), t in [0, 1]: 1 = clean, ~0 = noise."""
    import math

    return torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2


def v_loss(net: torch.nn.Module, z0: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """The denoiser's loss on clean latents ``z0``: noise them to a random level of the cosine schedule and score the
    predicted v (Salimans & Ho 2022) by squared error. Any ``net(noised, level)`` fits; the diffusion sampler's is an MLP."""
    t = torch.rand(len(z0), generator=gen)
    a = _signal_level(t)[:, None]
    eps = torch.randn(z0.shape, generator=gen)
    v = a.sqrt() * eps - (1 - a).sqrt() * z0
    return (net(a.sqrt() * z0 + (1 - a).sqrt() * eps, t) - v).pow(2).mean()


class _Denoiser(torch.nn.Module):
    """An MLP that predicts v (Salimans & Ho 2022) from a noised latent and its noise level: residual blocks
    with LayerNorm, the level given as sinusoidal features added to the input's projection."""

    FREQUENCIES = 32

    def __init__(self, dim: int, hidden: int, blocks: int):
        super().__init__()
        nn = torch.nn
        self.inp = nn.Linear(dim, hidden)
        self.level = nn.Sequential(nn.Linear(2 * self.FREQUENCIES, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        block = lambda: nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, 2 * hidden), nn.SiLU(), nn.Linear(2 * hidden, hidden))  # noqa: E731
        self.blocks = nn.ModuleList(block() for _ in range(blocks))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def forward(self, zt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        import math

        f = torch.exp(torch.linspace(0, math.log(1000), self.FREQUENCIES, device=t.device)) * t[:, None]
        h = self.inp(zt) + self.level(torch.cat([f.sin(), f.cos()], 1))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class DiffusionSampler(Sampler):
    """z from a small denoising diffusion model fitted on the stored latent means: a latent-diffusion prior
    (Rombach et al. 2022) for a VAE whose latents are too rich for a Gaussian mixture (the spatial archs).

    ``fit`` trains the denoiser (seeded, CPU, a few minutes) on standardised latents with v-prediction and a
    cosine schedule; ``sample`` runs deterministic DDIM (Song et al. 2021) from N(0, I), so a seeded
    generator gives the same faces every time. Saved and loaded like the others (``diffusion.safetensors``).
    """

    name = "diffusion"
    HIDDEN = 512  # at most; narrower for fewer latents: len(latents) / 16, at least 64 (a small run's prior fits in seconds)
    BLOCKS = 3
    STEPS = 1500  # at most (3000 fitted twice as long for 1 % lower held-out loss: experiments/sampler_budget.py); len(latents) / 6, at least 200
    BATCH = 256
    SAMPLE_STEPS = 100

    def __init__(self, net: _Denoiser, center: torch.Tensor, scale: torch.Tensor):
        self.net, self.center, self.scale = net.eval(), center.float(), scale.float()
        self.temperature = 1.0  # DDIM starts from N(0, temperature^2 I)

    @classmethod
    def fit(cls, mu: torch.Tensor, steps: int | None = None, seed: int = 0, hidden: int | None = None, progress: bool = False) -> DiffusionSampler:
        if mu.ndim != 2 or len(mu) < 2:
            raise ValueError("diffusion needs at least 2 stored latents (N x latent)")
        center, scale = mu.float().mean(0), mu.float().std(0).clamp_min(1e-3)
        x = (mu.float() - center) / scale
        steps = steps or min(cls.STEPS, max(200, len(x) // 6))

        net = _fit(
            lambda: _Denoiser(x.shape[1], hidden or min(cls.HIDDEN, max(64, len(x) // 16)), cls.BLOCKS), v_loss, x, steps, cls.BATCH, seed,
            lambda opt: torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=steps, pct_start=0.05),
            "diffusion: fitting the denoiser", progress,
        )  # fmt: skip
        return cls(net, center, scale)

    @torch.no_grad()
    def sample(self, n, generator=None):
        z = torch.randn(n, self.center.shape[0], generator=generator) * self.temperature
        levels = torch.linspace(1, 0, self.SAMPLE_STEPS + 1)
        for t, s in zip(levels[:-1], levels[1:]):
            a, a_next = _signal_level(t), _signal_level(s)
            v = self.net(z, t.expand(n))
            z0, eps = a.sqrt() * z - (1 - a).sqrt() * v, (1 - a).sqrt() * z + a.sqrt() * v
            z = a_next.sqrt() * z0 + (1 - a_next).sqrt() * eps
        return z * self.scale + self.center

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**{f"net.{k}": v for k, v in self.net.state_dict().items()}, "center": self.center, "scale": self.scale}

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], latent_dim: int) -> DiffusionSampler:
        """A saved denoiser, refused (ValueError, saying why) unless it fits ``latent_dim`` and its numbers are finite."""
        if "center" not in t or "scale" not in t or tuple(t["center"].shape) != (latent_dim,) or tuple(t["scale"].shape) != (latent_dim,):
            raise ValueError(f"not a diffusion sampler for {latent_dim}-wide latents")
        state = _net_state(t)
        blocks = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
        net = _load(_Denoiser(latent_dim, state.get("inp.weight", torch.zeros(0, 0)).shape[0], blocks), state, t)
        return cls(net, t["center"], t["scale"])
