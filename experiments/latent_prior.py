"""Does a convolutional denoiser over the latent map make a sharp run's samples look like faces at 48 px?

The sharp preset's reconstructions are caught less often at 48 px than its samples (0.951 against 0.991
with the converged two-sample test): the decoder draws a face when its latent is one an encoder gave,
and the samplers' latents are not. The gmm sampler and the diffusion sampler both treat the 16 x 6 x 6
latent map as a flat vector of 576 numbers (a mixture; an MLP denoiser). This probe fits, for
``--fit-minutes``, the denoiser of latent diffusion proper on the map itself (3x3 convs with GroupNorm
and SiLU, the noise level added per channel, v-prediction, the cosine schedule) and samples it with the
diffusion sampler's deterministic DDIM loop; then scores the decoded faces like ``evaluate`` does, beside
the run's own gmm and (MLP) diffusion samplers'.

    python experiments/latent_prior.py --run experiments/out/presets_96px/sharp20 --fit-minutes 5 15

The results file keeps what earlier invocations with the same settings measured, so a longer fit can be
added later without measuring the others again.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import _record
import numpy as np
import torch
from _runs import c2st_line, earlier_results, score_faces
from torch import nn

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.images import save_grid
from animevae.runs import load_latents, load_run_config
from animevae.sampling.generate import decode_latents, load_model, sample_faces
from animevae.sampling.samplers import DiffusionSampler, v_loss

NAME = "latent_prior"
QUESTION = "Does a convolutional denoiser over the 16 x 6 x 6 latent map make a sharp run's samples look like faces at 48 px?"


class ConvDenoiser(nn.Module):
    """v from a noised latent map and its noise level: 3x3 convs in residual blocks (GroupNorm, SiLU), the level's
    sinusoidal features projected and added per channel in each block. Takes and returns flat latents."""

    FREQUENCIES = 32

    def __init__(self, shape: tuple[int, int, int], width: int = 96, blocks: int = 4):
        super().__init__()
        self.shape = shape
        self.inp = nn.Conv2d(shape[0], width, 3, 1, 1)
        self.level = nn.Sequential(nn.Linear(2 * self.FREQUENCIES, width), nn.SiLU(), nn.Linear(width, blocks * width))
        conv = lambda: nn.Conv2d(width, width, 3, 1, 1)  # noqa: E731
        self.pre = nn.ModuleList(nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), conv()) for _ in range(blocks))
        self.post = nn.ModuleList(nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), conv()) for _ in range(blocks))
        self.out = nn.Sequential(nn.GroupNorm(8, width), nn.SiLU(), nn.Conv2d(width, shape[0], 3, 1, 1))

    def forward(self, zt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        f = torch.exp(torch.linspace(0, math.log(1000), self.FREQUENCIES, device=t.device)) * t[:, None]
        levels = self.level(torch.cat([f.sin(), f.cos()], 1)).chunk(len(self.pre), 1)
        h = self.inp(zt.view(-1, *self.shape))
        for pre, post, lv in zip(self.pre, self.post, levels):
            h = h + post(pre(h) + lv[:, :, None, None])
        return self.out(h).flatten(1)


def fit(mu: torch.Tensor, shape, minutes: float, width: int, blocks: int, batch: int, seed: int, log) -> tuple[DiffusionSampler, dict]:
    """The diffusion sampler's v-loss and standardisation, with the conv denoiser, for ``minutes``."""
    center, scale = mu.float().mean(0), mu.float().std(0).clamp_min(1e-3)
    x = (mu.float() - center) / scale
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = ConvDenoiser(shape, width, blocks)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
    start, step, losses = time.time(), 0, []
    budget = minutes * 60
    while (elapsed := time.time() - start) < budget:
        for group in opt.param_groups:  # linear warm-up over 2 % of the time, cosine decay to 0 by the end
            share = elapsed / budget
            group["lr"] = 1e-3 * min(1.0, share / 0.02) * 0.5 * (1 + math.cos(math.pi * share))
        loss = v_loss(net, x[torch.randint(len(x), (batch,), generator=gen)], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        if step % 500 == 0:
            log(f"step {step} ({time.time() - start:.0f} s): v-loss {np.mean(losses[-500:]):.4f}")
    record = {"steps": step, "latents_seen": step * batch, "epochs": round(step * batch / len(x), 1), "final_v_loss": round(float(np.mean(losses[-500:])), 4)}
    return DiffusionSampler(net, center, scale), record


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--run", required=True, help="a finished run with a spatial latent (--preset sharp)")
    p.add_argument("--fit-minutes", type=float, nargs="+", default=[5.0], help="minutes the conv denoiser trains, one fit per value (default 5)")
    p.add_argument("--width", type=int, default=96)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--n", type=int, default=1000, help="held-out faces and samples compared (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3)
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    model = load_model(a.run)
    if model.latent_shape is None:
        raise SystemExit(f"--run {a.run}: its latent is a vector, not a map; train one with --preset sharp")
    held, _, _, described, _ = load_eval_data(load_run_config(a.run), DataConfig(source=a.data), model.config.image_size, a.n)
    mu = load_latents(a.run).mu
    settings = {"run": Path(a.run).name, "width": a.width, "blocks": a.blocks, "batch": a.batch, "n": a.n, "c2st_seeds": a.c2st_seeds}
    results, commands = earlier_results(a.results, settings)  # what these settings already measured is kept
    log(f"held out: {described}; {len(mu)} latents of shape {tuple(model.latent_shape)}")
    for minutes in a.fit_minutes:
        name = f"conv_diffusion_{minutes:g}min"
        if name in results:
            continue
        log(f"{name}: fitting a conv denoiser for {minutes} min")
        sampler, training = fit(mu, tuple(model.latent_shape), minutes, a.width, a.blocks, a.batch, 0, log)
        t0 = time.time()
        images = decode_latents(model, sampler.sample(a.n, torch.Generator().manual_seed(0)))
        training["sample_seconds"] = round(time.time() - t0, 1)
        save_grid(images[:32], out / f"{name}.png", nrow=8)
        results[name] = {"training": training, **score_faces(images, held, a.c2st_seeds)}
        log(f"{name}: {results[name]}")
    for name in ("gmm", "diffusion"):  # the run's own samplers over the flat vector, as evaluate fits them
        if name not in results:
            images = sample_faces(model, a.run, name, a.n)
            save_grid(images[:32], out / f"{name}.png", nrow=8)
            results[name] = score_faces(images, held, a.c2st_seeds)
            log(f"{name}: {results[name]}")
    fitted = lambda r: f" (fitted {r['training']['epochs']} epochs)" if "training" in r else ""  # noqa: E731
    commands.append(_record.invocation())
    key = [f"{name}{fitted(r)}: {c2st_line(r)}, diversity {r['diversity']}" for name, r in results.items()]
    _record.write(a.results, NAME, QUESTION, commands, settings, results, key, command=commands[-1])


if __name__ == "__main__":
    main()
