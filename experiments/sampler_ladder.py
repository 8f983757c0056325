"""Which sampler brings a sharp run's samples closest to its own reconstructions on the realism ladder?

At 24-32 px a sharp run's reconstructions pass the two-sample test while its gmm samples are caught: the
decoder draws a face a classifier accepts when its latent is right, and the sampler draws latents that
are not. This probe scores, on one finished run, each candidate sampler's faces on ``evaluate``'s ladder
(the converged two-sample test with both sets shrunk to each size), beside the run's reconstructions of
training faces and the positive control (real faces blurred by 1 px, which a working classifier catches):

* ``gmm``: the run's own Gaussian mixture (10 full-covariance components); ``gmm_t0.8``: drawn at a lower
  temperature (each component's spread times 0.8); ``gmm_k20``: 20 components;
* ``diffusion``: the run's own MLP denoiser; ``diffusion_long``: the same fitted 4x longer and wider;
  ``diffusion_t0.8``: DDIM started from noise times 0.8;
* ``conv_diffusion``: a convolutional denoiser over the 16 x 6 x 6 map (latent_prior.py's), fitted ``--fit-minutes``;
* ``mix_k2``: the seed's weighted average of two stored latents.

    python experiments/sampler_ladder.py --run experiments/out/ladder/sharp20 --only gmm gmm_t0.8 diffusion
    python experiments/sampler_ladder.py --run RUN --n 300 --seeds 1 --sizes 32 24 --results experiments/out/try.json

Each invocation adds its candidates to the results file (kept while the settings are the same); every
candidate's 32 first faces go to the work folder as a grid.
"""

from __future__ import annotations

import time
from pathlib import Path

import _record
import torch
from _runs import earlier_results, ladder_line, score_faces

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data, training_faces
from animevae.evaluation.two_sample import positive_control
from animevae.images import save_grid
from animevae.runs import load_latents, load_run_config
from animevae.sampling.generate import decode_latents, encode_images, load_model, make_sampler
from animevae.sampling.samplers import DiffusionSampler, GMMSampler, MixSampler

NAME = "sampler_ladder"
QUESTION = "Which sampler brings a sharp run's samples closest to its own reconstructions on the realism ladder (16-96 px)?"


def cooled(sampler, t: float):
    """``sampler`` drawing at temperature ``t`` (a gmm's spread, a diffusion sampler's starting noise, times ``t``)."""
    sampler.temperature = t
    return sampler


class LatentCritic:
    """Sampling-importance-resampling of a proposal sampler's latents by a density ratio: an MLP trained to tell the
    stored latent means from the proposal's draws estimates log p_latents(z) / p_proposal(z) as its logit; from
    ``oversample`` x n proposals, n are kept without replacement with probability proportional to exp(logit / tau)
    (Gumbel top-k). The proposal's blind spots (where it puts mass the encoder never does) are dropped."""

    def __init__(self, proposal, mu: torch.Tensor, oversample: int = 8, tau: float = 1.0, seed: int = 0, hidden: int = 512, log=print):
        self.proposal, self.oversample, self.tau = proposal, oversample, tau
        gen = torch.Generator().manual_seed(seed)
        real = mu.float()[torch.randperm(len(mu), generator=gen)]
        fake = proposal.sample(len(real), gen).float()
        self.center, self.scale = real.mean(0), real.std(0).clamp_min(1e-3)
        x = (torch.cat([real, fake]) - self.center) / self.scale
        y = torch.cat([torch.ones(len(real)), torch.zeros(len(fake))])
        order = torch.randperm(len(x), generator=gen)
        x, y = x[order], y[order]
        cut = len(x) // 10
        (xv, yv), (xt, yt) = (x[:cut], y[:cut]), (x[cut:], y[cut:])
        nn = torch.nn
        with torch.random.fork_rng(), torch.enable_grad():
            torch.manual_seed(seed)
            net = nn.Sequential(
                nn.Linear(x.shape[1], hidden), nn.SiLU(), nn.Dropout(0.2), nn.Linear(hidden, hidden), nn.SiLU(), nn.Dropout(0.2), nn.Linear(hidden, 1)
            )
            opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
            best, best_state, bad, epoch = float("inf"), None, 0, 0
            while bad < 3 and epoch < 50:
                epoch += 1
                net.train()
                for _ in range(0, len(xt), 256):
                    idx = torch.randint(len(xt), (256,), generator=gen)
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(net(xt[idx]).squeeze(1), yt[idx])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                net.eval()
                with torch.no_grad():
                    val = float(torch.nn.functional.binary_cross_entropy_with_logits(net(xv).squeeze(1), yv))
                    acc = float(((net(xv).squeeze(1) > 0).float() == yv).float().mean())
                if val < best - 1e-4:
                    best, best_state, bad = val, {k: v.clone() for k, v in net.state_dict().items()}, 0
                else:
                    bad += 1
                log(f"latent critic epoch {epoch}: validation BCE {val:.4f}, accuracy {acc:.3f}")
            net.load_state_dict(best_state)
        self.net = net.eval()
        self.record = {"epochs": epoch, "validation_bce": round(best, 4)}

    @torch.no_grad()
    def sample(self, n, generator=None):
        z = self.proposal.sample(n * self.oversample, generator).float()
        logit = self.net((z - self.center) / self.scale).squeeze(1)
        gumbel = -torch.log(-torch.log(torch.rand(len(z), generator=generator).clamp_min(1e-12)))
        return z[torch.topk(logit / self.tau + gumbel, n).indices]


class DecodeEncodeChain:
    """A proposal sampler's latents moved ``steps`` times through the autoencoder: decode to the likelihood's mean,
    encode to the posterior mean (Arulkumaran et al. 2016: a Markov chain whose stationary distribution is nearer the
    aggregate posterior than the prior the latents came from)."""

    def __init__(self, proposal, model, steps: int):
        self.proposal, self.model, self.steps = proposal, model, steps

    @torch.no_grad()
    def sample(self, n, generator=None):
        z = self.proposal.sample(n, generator).float()
        for _ in range(self.steps):
            z = encode_images(self.model, decode_latents(self.model, z))
        return z


class StochasticDiffusion:
    """A fitted diffusion sampler's denoiser sampled with DDIM's eta = 1 (ancestral, DDPM-like) instead of eta = 0: the
    fresh noise at each step lets the trajectory correct the denoiser's errors (Karras et al. 2022)."""

    def __init__(self, inner: DiffusionSampler, steps: int = 200, eta: float = 1.0):
        self.inner, self.steps, self.eta = inner, steps, eta

    @torch.no_grad()
    def sample(self, n, generator=None):
        from animevae.sampling.samplers import _signal_level

        net = self.inner.net
        z = torch.randn(n, self.inner.center.shape[0], generator=generator)
        levels = torch.linspace(1, 0, self.steps + 1)
        for t, s in zip(levels[:-1], levels[1:]):
            a, a_next = _signal_level(t), _signal_level(s)
            v = net(z, t.expand(n))
            z0, eps = a.sqrt() * z - (1 - a).sqrt() * v, (1 - a).sqrt() * z + a.sqrt() * v
            sigma = self.eta * ((1 - a_next) / (1 - a) * (1 - a / a_next)).clamp_min(0).sqrt()
            z = a_next.sqrt() * z0 + (1 - a_next - sigma**2).clamp_min(0).sqrt() * eps + sigma * torch.randn(z.shape, generator=generator)
        return z * self.inner.scale + self.inner.center


def candidates(a) -> dict:
    """name -> f(run, model, mu) -> a sampler (anything with .sample(n, generator))."""
    from latent_prior import fit as fit_conv

    fitted: dict = {}

    def conv(run, model, mu):  # fitted once per invocation, shared by its two ways of sampling
        if "conv" not in fitted:
            fitted["conv"], _ = fit_conv(mu, tuple(model.latent_shape), a.fit_minutes, 96, 4, 256, 0, print)
        return fitted["conv"]

    return {
        "gmm": lambda run, model, mu: make_sampler("gmm", model, run),
        "gmm_t1.2": lambda run, model, mu: cooled(make_sampler("gmm", model, run), 1.2),
        "gmm_t0.9": lambda run, model, mu: cooled(make_sampler("gmm", model, run), 0.9),
        "gmm_t0.8": lambda run, model, mu: cooled(make_sampler("gmm", model, run), 0.8),
        "gmm_t0.7": lambda run, model, mu: cooled(make_sampler("gmm", model, run), 0.7),
        "gmm_k20": lambda run, model, mu: GMMSampler.fit(mu, 20),
        "gmm_k5": lambda run, model, mu: GMMSampler.fit(mu, 5),
        "gmm_k50": lambda run, model, mu: GMMSampler.fit(mu, 50),
        "prior": lambda run, model, mu: make_sampler("prior", model, run),
        "two_stage": lambda run, model, mu: make_sampler("two-stage", model, run),
        "diffusion": lambda run, model, mu: make_sampler("diffusion", model, run),
        "diffusion_t0.8": lambda run, model, mu: cooled(make_sampler("diffusion", model, run), 0.8),
        "diffusion_long": lambda run, model, mu: DiffusionSampler.fit(mu, steps=6000, hidden=1024, progress=True),
        "conv_diffusion": conv,
        "conv_diffusion_ddpm": lambda run, model, mu: StochasticDiffusion(conv(run, model, mu)),
        "mix_k2": lambda run, model, mu: MixSampler(mu, 2),
        "gmm_critic": lambda run, model, mu: LatentCritic(make_sampler("gmm", model, run), mu),
        "gmm_critic_tau0.5": lambda run, model, mu: LatentCritic(make_sampler("gmm", model, run), mu, tau=0.5),
        "diffusion_critic": lambda run, model, mu: LatentCritic(make_sampler("diffusion", model, run), mu),
        "diffusion_ddpm_critic": lambda run, model, mu: LatentCritic(StochasticDiffusion(make_sampler("diffusion", model, run)), mu),
        "diffusion_ddpm": lambda run, model, mu: StochasticDiffusion(make_sampler("diffusion", model, run)),
        "gmm_chain1": lambda run, model, mu: DecodeEncodeChain(make_sampler("gmm", model, run), model, 1),
        "gmm_chain3": lambda run, model, mu: DecodeEncodeChain(make_sampler("gmm", model, run), model, 3),
        "gmm_chain10": lambda run, model, mu: DecodeEncodeChain(make_sampler("gmm", model, run), model, 10),
    }


def key_figures(results: dict) -> list[str]:
    control = results["control"]
    lines = [f"control (1-px blur of real faces, full size): {control['accuracy']:.3f} ({'valid' if control['caught'] else 'INVALID'})"]
    lines += [f"{name} ({r['images']}): {ladder_line(r)}; diversity {r['diversity']}" for name, r in results.items() if name != "control"]
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME)
    every = candidates(None)
    p.add_argument("--run", required=True, help="a finished run with a spatial latent (--preset sharp)")
    p.add_argument("--only", nargs="+", choices=[*every, "recons"], default=["recons", "gmm"], help="candidates to score (default: %(default)s)")
    p.add_argument("--n", type=int, default=1000, help="held-out faces, samples and reconstructions per set (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds (default %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 48, 32, 24, 16], help="the ladder's sizes (default %(default)s)")
    p.add_argument("--fit-minutes", type=float, default=5.0, help="conv_diffusion's fit, minutes (default %(default)s)")
    p.add_argument("--draw-seed", type=int, default=0, help="seed of the samplers' draws; other than 0 it names the rows NAME@seedS (default 0)")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    run = a.run
    model = load_model(run)
    held, train_images, train_pos, described, _ = load_eval_data(load_run_config(run), DataConfig(source=a.data), model.config.image_size, a.n)
    mu = load_latents(run).mu
    settings = {"run": Path(run).name, "data": a.data, "n": a.n, "seeds": a.seeds, "sizes": a.sizes, "held_out": described}
    results, commands = earlier_results(a.results, settings)
    faces = training_faces(train_images, train_pos, a.n)
    if "control" not in results:
        t0 = time.time()
        results["control"] = positive_control(faces, held) | {"seconds": round(time.time() - t0, 1)}
        print("control:", results["control"]["accuracy"], flush=True)
    control = results["control"]
    makers = candidates(a)
    for name in a.only:
        t0 = time.time()
        if name == "recons":
            images, what = decode_latents(model, encode_images(model, faces)), "reconstructions of training faces"
        else:
            sampler = makers[name](run, model, mu)
            images, what = decode_latents(model, sampler.sample(a.n, torch.Generator().manual_seed(a.draw_seed))), f"samples, seed {a.draw_seed}"
        fit_s = time.time() - t0
        save_grid(images[:32], out / f"{name}.png", nrow=8)
        t1 = time.time()
        scored = score_faces(images, held, a.seeds, a.sizes, control)
        row = name if a.draw_seed == 0 else f"{name}@seed{a.draw_seed}"
        results[row] = {"images": what, **scored, "fit_seconds": round(fit_s, 1), "ladder_seconds": round(time.time() - t1, 1)}
        print(row, results[row], flush=True)
        commands.append(_record.invocation())
        _record.write(a.results, NAME, QUESTION, commands, settings, results, key_figures(results), command=commands[-1])


if __name__ == "__main__":
    main()
