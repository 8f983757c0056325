"""Does a refiner trained with the energy score, instead of a discriminator, draw 96-px detail that passes?

A likelihood decoder draws the mean of the strokes a latent allows: a blur. A discriminator was to teach
the refiner of ``refiner.py`` to draw strokes instead; in minutes it taught textures. The energy score
(Gneiting & Raftery 2007) asks for the same thing without a second network: for two draws y1, y2 of the
refiner (two noise inputs) and the real face x, ``|y1 - x| + |y2 - x| - |y1 - y2|`` (halved; norms of
``--patch`` x ``--patch`` pixel patches, summed over the face) is smallest in expectation when the draws come
from the distribution of faces given the decoder's output. The mean alone scores worse than draws
that carry detail of the right size and contrast, so the refiner is pushed to draw it, and the loss
cannot be gamed by a texture a discriminator misses. Same refiner, pairs, budget and evaluation as
``refiner.py``; each invocation adds one ``--variant``.

    python experiments/energy_refiner.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant patch8
    python experiments/energy_refiner.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant patch16 --patch 16
    python experiments/energy_refiner.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant patch8_20min --minutes 20
    python experiments/energy_refiner.py --run RUN --variant try --minutes 0.2 --n 100 --pairs 500 --results experiments/out/try.json
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F
from refiner import Refiner, bf16, probe, probe_parser, random_pairs

NAME = "energy_refiner"
OPTIONS = ("minutes", "patch", "batch", "lr", "width", "blocks")
QUESTION = "Does a refiner trained with the (patched) energy score, no discriminator, put 96-px detail into a sharp run's faces?"


def patch_energy_score(y1: torch.Tensor, y2: torch.Tensor, x: torch.Tensor, patch: int) -> torch.Tensor:
    """Per image: the energy score of the two draws ``y1``, ``y2`` for ``x``, summed over non-overlapping
    ``patch`` x ``patch`` patches (all channels): a proper score for each patch's distribution, so its
    expectation is least when the draws' patches are distributed as the real ones given the input."""

    def norms(a, b):
        d = F.pixel_unshuffle(a - b, patch)  # N x (C p p) x H/p x W/p: one column per patch
        return d.square().sum(1).add(1e-8).sqrt().flatten(1).sum(1)

    return 0.5 * (norms(y1, x) + norms(y2, x)) - 0.5 * norms(y1, y2)


def train_pairs(net: Refiner, inputs: torch.Tensor, real: torch.Tensor, a: argparse.Namespace, seed: int, step_loss, log) -> tuple[Refiner, dict]:
    """Adam on random (input, face) pairs for ``a.minutes``; ``step_loss(net, y, x)`` -> (loss, {name: figure}). Logs
    each figure's mean over the last 100 steps, and records it as ``final_NAME``; returns the net in eval mode."""
    opt = torch.optim.Adam(net.parameters(), lr=a.lr, betas=(0.9, 0.99))
    gen = torch.Generator().manual_seed(seed)
    start, step, history = time.time(), 0, []
    while time.time() - start < a.minutes * 60:
        y, x = random_pairs(inputs, real, a.batch, gen)
        loss, figures = step_loss(net, y, x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        history.append(figures)
        if step % 100 == 0:
            shown = "  ".join(f"{k} {np.mean([h[k] for h in history[-100:]]):.4f}" for k in figures)
            log(f"step {step} ({time.time() - start:.0f} s): {shown}")
    record = {"steps": step, "images_seen": step * a.batch, "seconds": round(time.time() - start, 1)}
    return net.eval(), record | {f"final_{k}": round(float(np.mean([h[k] for h in history[-100:]])), 4) for k in history[-1]}


def energy_step(net: Refiner, y: torch.Tensor, x: torch.Tensor, patch: int) -> tuple[torch.Tensor, dict]:
    """Two draws of the refiner for each input, scored against the real face; also how far the draws are apart."""
    with bf16():
        y1, y2 = net(torch.cat([y, y])).float().chunk(2)
    score = patch_energy_score(y1, y2, x, patch).mean()
    return score, {"score": score.item(), "draw_spread": (y1 - y2).abs().mean().item()}


def train_refiner(recons: torch.Tensor, real: torch.Tensor, a: argparse.Namespace, seed: int, log) -> tuple[Refiner, dict]:
    """Train on (reconstruction, face) pairs for ``a.minutes`` with the energy score; returns the refiner and its record."""
    torch.manual_seed(seed)
    net = Refiner(width=a.width, blocks=a.blocks, noise=True).to(memory_format=torch.channels_last)
    return train_pairs(net, recons, real, a, seed, lambda net, y, x: energy_step(net, y, x, a.patch), log)


def add_training_options(p: argparse.ArgumentParser) -> None:
    """The options of a refiner trained on pairs, shared by the probes that train one."""
    p.add_argument("--patch", type=int, default=8, help="side of the patches whose norms the energy score sums (default %(default)s)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--width", type=int, default=48, help="the refiner's channels at 48 px (default %(default)s)")
    p.add_argument("--blocks", type=int, default=3, help="its residual blocks (default %(default)s)")


def main() -> None:
    p = probe_parser(__doc__, NAME, minutes=6.0)
    add_training_options(p)
    probe(p.parse_args(), train_refiner, NAME, QUESTION, OPTIONS)


if __name__ == "__main__":
    main()
