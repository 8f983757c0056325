"""How much fitting does each fitted sampler need? EM iterations for the gmm, Adam steps for the diffusion prior.

The gmm's EM stops when the mean log-likelihood settles, which takes 12 iterations for one seed and 35
for another on the same latents; the diffusion prior trains for a fixed number of steps. This experiment
fits both on a finished run's latents with several budgets and asks what a shorter budget costs:

- gmm: for each fit seed, EM until it settles and EM capped at ``--caps`` iterations; the held-out
  log-likelihood (nats per latent) of the latents the seeded subsample left out measures the fit itself,
  and a cap that changes a fit gets its faces scored too.
- diffusion: ``--steps`` Adam steps each; the held-out v-prediction loss on the latents of the run's
  held-out faces (fixed noise levels and noise) measures the fit, and every budget's faces are scored.

Faces are scored with ``evaluate``'s classifier two-sample test at 96 px (3 classifier seeds, 1,000 faces
against the run's held-out faces) and their diversity (mean pairwise RMS, 0-255). Every fit runs first,
timed with the machine to itself; the scoring follows.

    python experiments/sampler_budget.py --run RUN --data ../shared/data/anime-faces-96
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import _record
import torch
from sampler_fit import score

from animevae import runs
from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.sampling import mixture
from animevae.sampling.generate import encode_images, load_model
from animevae.sampling.samplers import DEFAULT_GMM_COMPONENTS, DiffusionSampler, GMMSampler, _signal_level

NAME = "sampler_budget"
QUESTION = "How many EM iterations and diffusion steps do the fitted samplers need on a real sharp run's latents?"


def left_out(mu: torch.Tensor, seed: int) -> torch.Tensor:
    """The latents GMMSampler.fit's seeded subsample did not use (empty when it used them all)."""
    if len(mu) <= GMMSampler.MAX_FIT:
        return mu[:0]
    keep = torch.ones(len(mu), dtype=torch.bool)
    keep[torch.randperm(len(mu), generator=torch.Generator().manual_seed(seed))[: GMMSampler.MAX_FIT]] = False
    return mu[keep]


def gmm_log_likelihood(sampler: GMMSampler, x: torch.Tensor) -> float:
    """Mean log-density of the rows of ``x`` under the mixture, nats per latent (float64 throughout)."""
    log_prob = mixture._log_prob(x.double(), sampler.weights, sampler.means, sampler.scale, sampler.covariance_type)
    return float(torch.logsumexp(log_prob, 1).mean())


@torch.no_grad()
def v_loss(sampler: DiffusionSampler, mu: torch.Tensor, levels: int = 10, draws: int = 4) -> float:
    """The denoiser's v-prediction loss on ``mu`` (standardised as in its fit) over a fixed grid of noise levels."""
    gen = torch.Generator().manual_seed(0)
    z0 = (mu.float() - sampler.center) / sampler.scale
    total = 0.0
    for t in torch.linspace(0.05, 0.95, levels):
        a = _signal_level(t)
        for _ in range(draws):
            eps = torch.randn(z0.shape, generator=gen)
            v = a.sqrt() * eps - (1 - a).sqrt() * z0
            total += float((sampler.net(a.sqrt() * z0 + (1 - a).sqrt() * eps, t.expand(len(z0))) - v).pow(2).mean())
    return total / (levels * draws)


def timed(fit):
    start = time.perf_counter()
    out = fit()
    return out, round(time.perf_counter() - start, 2)


def key_figures(results: dict) -> list[str]:
    out = []
    for seed, r in results["gmm"].items():
        line = f"gmm seed {seed}: {r['iterations']} iterations, {r['seconds']} s, held-out {r['held_out_ll']:.2f} nats"
        for cap, c in r["capped"].items():
            line += f"; cap {cap}: {c['seconds']} s, {c['held_out_ll']:.2f} nats" + (f", C2ST {c['c2st']}" if "c2st" in c else "")
        out.append(line)
    for steps, r in results["diffusion"].items():
        out.append(f"diffusion {steps} steps: {r['seconds']} s, held-out v-loss {r['held_out_v_loss']:.4f}, C2ST {r['c2st']}, diversity {r['diversity_rms']}")
    return out


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--run", required=True, help="a finished spatial run folder (the sharp preset's)")
    p.add_argument("--seeds", type=int, default=5, help="gmm fit seeds (default 5)")
    p.add_argument("--caps", default="15", help="EM iteration caps to try, comma-separated (default 15)")
    p.add_argument("--steps", default="3000,1500,750", help="diffusion fit budgets in Adam steps (default 3000,1500,750)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces scored per sampler (default 1000)")
    args = p.parse_args()
    caps = [int(c) for c in args.caps.split(",")]
    budgets = [int(s) for s in args.steps.split(",")]

    run = Path(args.run)
    model = load_model(str(run))
    mu = runs.load_latents(str(run)).mu
    held, *_ = load_eval_data(runs.load_run_config(str(run)), DataConfig(source=args.data), model.config.image_size, None)
    held_mu = encode_images(model, held)
    k = DEFAULT_GMM_COMPONENTS
    results: dict = {"latents": list(mu.shape), "held_out_faces": len(held), "gmm": {}, "diffusion": {}}

    samplers = {}
    for seed in range(args.seeds):
        rest = left_out(mu, seed)
        its = {}
        with _count_iterations(its):
            sampler, seconds = timed(lambda: GMMSampler.fit(mu, k, seed=seed, max_iter=1000))  # noqa: B023
        r = {"iterations": its["n"], "seconds": seconds, "held_out_ll": round(gmm_log_likelihood(sampler, rest), 3), "capped": {}}
        for cap in caps:
            if cap >= r["iterations"]:
                r["capped"][cap] = {"same_fit": True, "seconds": seconds, "held_out_ll": r["held_out_ll"]}
                continue
            capped, cap_s = timed(lambda: GMMSampler.fit(mu, k, seed=seed, max_iter=cap))  # noqa: B023
            r["capped"][cap] = {"same_fit": False, "seconds": cap_s, "held_out_ll": round(gmm_log_likelihood(capped, rest), 3)}
            samplers[("gmm", seed, cap)] = capped
        samplers[("gmm", seed, None)] = sampler
        results["gmm"][seed] = r
        print(f"gmm seed {seed}:", r, flush=True)
    for steps in budgets:
        sampler, seconds = timed(lambda: DiffusionSampler.fit(mu, steps=steps))  # noqa: B023
        results["diffusion"][steps] = {"seconds": seconds, "held_out_v_loss": round(v_loss(sampler, held_mu), 5)}
        samplers[("diffusion", steps)] = sampler
        print(f"diffusion {steps} steps:", results["diffusion"][steps], flush=True)

    # the faces: every diffusion budget, and each gmm seed whose fit a cap changed (with its uncapped fit beside it)
    held_faces = held[: args.n_samples]
    for steps in budgets:
        results["diffusion"][steps].update(score(model, samplers[("diffusion", steps)], held_faces, args.n_samples))
        print(f"diffusion {steps}:", results["diffusion"][steps], flush=True)
    for seed, r in results["gmm"].items():
        changed = [cap for cap, c in r["capped"].items() if not c["same_fit"]]
        if changed:
            r.update(score(model, samplers[("gmm", seed, None)], held_faces, args.n_samples))
            for cap in changed:
                r["capped"][cap].update(score(model, samplers[("gmm", seed, cap)], held_faces, args.n_samples))
            print(f"gmm seed {seed} scored:", r, flush=True)
    settings = {"run": run.name, "n_samples": args.n_samples, "gmm_components": k, "max_fit": GMMSampler.MAX_FIT, "caps": caps, "diffusion_steps": budgets}
    commands = [f"python experiments/sampler_budget.py --run RUN --data DATA  # RUN: {run.name}, a 20-minute --preset sharp run"]
    _record.write(args.results, NAME, QUESTION, commands, settings, results, key_figures(results))


class _count_iterations:
    """Records how many EM iterations the next fit_mixture call ran (its fourth return value)."""

    def __init__(self, into: dict):
        self.into = into

    def __enter__(self):
        self.original = mixture.fit_mixture

        def counted(*a, **kw):
            out = self.original(*a, **kw)
            self.into["n"] = out[3]
            return out

        mixture.fit_mixture = counted

    def __exit__(self, *exc):
        mixture.fit_mixture = self.original


if __name__ == "__main__":
    sys.exit(main())
