"""Does a small 48 -> 96 px refiner, trained adversarially after the VAE, put real detail into a sharp run's faces?

The sharp preset's decoder draws a 48-px face at 96 px. This probe takes a finished ``--preset sharp``
run (``--run``) and trains, for ``--minutes``, a second network on top of its decoder: it reads the
decoder's output (plus a noise channel, as StyleGAN's generator does, so it can draw strokes the
latent does not pin down) and adds a residual, so it starts as the identity. Its pairs are the run's
reconstructions of training faces and those faces: pix2pix's recipe (Isola et al. 2017), an L1 term
towards the real face at ``--anchor-px`` (the coarse face stays the decoder's) plus a hinge loss
against an anti-aliased patch discriminator under DiffAugment. Then the run's held-out faces are
compared, with ``evaluate``'s converged two-sample test at 96 and 48 px and the high-frequency
power ratio, against the reconstructions and gmm samples with and without the refiner. Each
invocation trains one ``--variant`` and adds it to the results file, beside the variants already there.

    python experiments/refiner.py --run experiments/out/presets_96px/sharp20 --variant noise_diffaug
    python experiments/refiner.py --run experiments/out/presets_96px/sharp20 --variant plain --no-noise --no-diffaug
    python experiments/refiner.py --run experiments/out/presets_96px/sharp20 --variant strong_d --no-noise --no-diffaug --d-lr 1e-3
    python experiments/refiner.py --run experiments/out/presets_96px/sharp20 --variant half --no-noise --no-diffaug --half-residual
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import _record
import numpy as np
import torch
import torch.nn.functional as F
from _runs import c2st_line, earlier_results, score_faces
from torch import nn

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.images import save_grid
from animevae.runs import load_run_config
from animevae.sampling.generate import decode_latents, encode_images, load_model, sample_faces
from animevae.training.adversarial import PatchDiscriminator, diff_augment
from animevae.training.system import System, pick_precision

NAME = "refiner"
OPTIONS = ("minutes", "anchor_px", "l1_weight", "batch", "noise", "diffaug", "disc_blur", "d_lr", "half_residual")  # what a variant sets
QUESTION = "Does a small refiner trained adversarially on the decoder's reconstructions put 96-px detail into a sharp run's faces?"


class Refiner(nn.Module):
    """decoder output (3 x 96 x 96, [0, 1]) + one noise channel -> the same plus a residual. Works at 48 px on
    the space-to-depth of its input (cheap on a CPU), back to 96 px by pixel shuffle and two 3x3 convs there;
    with ``half``, the residual is drawn at 48 px and enlarged bilinearly, so it cannot hold a 2-px pattern."""

    def __init__(self, width: int = 48, blocks: int = 3, noise: bool = True, half: bool = False):
        super().__init__()
        self.noise, self.half = noise, half
        self.inp = nn.Conv2d(16, width, 3, 1, 1)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(width, width, 3, 1, 1)) for _ in range(blocks)
        )
        if half:
            self.out = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(width, 3, 3, 1, 1))
        else:
            self.to96 = nn.Conv2d(width, 64, 3, 1, 1)  # -> 16 channels at 96 px after the shuffle
            self.out = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(16, 16, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(16, 3, 3, 1, 1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, y: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        noise = torch.randn_like(y[:, :1]) if noise is None else noise
        noise = noise if self.noise else torch.zeros_like(noise)
        h = self.inp(F.pixel_unshuffle(torch.cat([y * 2 - 1, noise], 1), 2))
        for block in self.blocks:
            h = h + block(h)
        if self.half:
            return y + F.interpolate(self.out(h), scale_factor=2, mode="bilinear", align_corners=False)
        h = F.pixel_shuffle(self.to96(F.leaky_relu(h, 0.2)), 2)
        return y + self.out(h)


def bf16():
    """Training's autocast for precision="auto" on this CPU: bfloat16 where it is native, else none."""
    cpu = torch.device("cpu")
    return System(0, 1, cpu, pick_precision("auto", cpu), torch.channels_last).autocast()


def as_float(u8: torch.Tensor) -> torch.Tensor:
    return u8.float().div(255)


def as_u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


def random_pairs(recons: torch.Tensor, real: torch.Tensor, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch`` random (reconstruction, face) pairs in [0, 1], each pair mirrored together with probability 1/2."""
    idx = torch.randint(0, len(recons), (batch,), generator=gen)
    y, x = as_float(recons[idx]), as_float(real[idx])
    flip = (torch.rand(batch, generator=gen) < 0.5).view(-1, 1, 1, 1)
    return torch.where(flip, y.flip(-1), y), torch.where(flip, x.flip(-1), x)


@torch.no_grad()
def refine(net: Refiner, images: torch.Tensor, seed: int, batch: int = 128) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in range(0, len(images), batch):
        y = as_float(images[s : s + batch])
        out.append(as_u8(net(y, torch.randn(len(y), 1, *y.shape[-2:], generator=g))))
    return torch.cat(out)


def train_refiner(recons: torch.Tensor, real: torch.Tensor, a: argparse.Namespace, seed: int, log) -> tuple[Refiner, dict]:
    """Train on (reconstruction, face) pairs for ``a.minutes`` with ``a``'s options; returns the refiner and its training record."""
    torch.manual_seed(seed)
    minutes, anchor_px, l1_weight, batch = a.minutes, a.anchor_px, a.l1_weight, a.batch
    augment = diff_augment if a.diffaug else (lambda x: x)
    g_net, d_net = Refiner(noise=a.noise, half=a.half_residual), PatchDiscriminator(3, 32, blur=a.disc_blur)
    g_net, d_net = g_net.to(memory_format=torch.channels_last), d_net.to(memory_format=torch.channels_last)
    g_opt = torch.optim.Adam(g_net.parameters(), lr=2e-4, betas=(0.5, 0.9))
    d_opt = torch.optim.Adam(d_net.parameters(), lr=a.d_lr, betas=(0.5, 0.9))
    gen = torch.Generator().manual_seed(seed)
    start, step, history = time.time(), 0, []
    scale = recons.shape[-1] // anchor_px
    while time.time() - start < minutes * 60:
        y, x = random_pairs(recons, real, batch, gen)
        with bf16():
            fake = g_net(y).float()
            d_net.requires_grad_(False)
            adv = -d_net(augment(fake)).float().mean()
        anchor = (F.avg_pool2d(fake, scale) - F.avg_pool2d(x, scale)).abs().mean()
        g_loss = adv + l1_weight * anchor
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        d_net.requires_grad_(True)
        with bf16():
            logits = d_net(augment(torch.cat([x, fake.detach()]))).float()
        d_loss = F.relu(1 - logits[:batch]).mean() + F.relu(1 + logits[batch:]).mean()
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
        step += 1
        history.append((d_loss.item(), adv.item(), anchor.item()))
        if step % 100 == 0:
            d, adv_mean, l1 = np.mean(history[-100:], 0)
            log(f"step {step} ({time.time() - start:.0f} s): d {d:.3f}  g_adv {adv_mean:.3f}  anchor L1 {l1:.4f}")
    d, adv_mean, l1 = np.mean(history[-100:], 0)
    return g_net.eval(), {
        "steps": step,
        "images_seen": step * batch,
        "seconds": round(time.time() - start, 1),
        "final_d": round(float(d), 3),
        "final_anchor_l1": round(float(l1), 4),
    }


def probe_parser(doc: str, name: str, **budget) -> argparse.ArgumentParser:
    """``_record.parser`` with the options every probe of a finished run takes: the run, the variant, how much is compared."""
    p = _record.parser(doc, name, **budget)
    p.add_argument("--run", required=True, help="a finished --preset sharp run")
    p.add_argument("--variant", required=True, help="this variant's name in the results file (which keeps the others' with the same settings)")
    p.add_argument("--n", type=int, default=1000, help="held-out faces, reconstructions and samples compared (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3)
    p.add_argument("--pairs", type=int, help="use the first N training faces only (a quick check)")
    return p


def main() -> None:
    p = probe_parser(__doc__, NAME, minutes=6.0)
    p.add_argument("--anchor-px", type=int, default=24, help="the size at which the refined face is held to the real one by L1 (default %(default)s)")
    p.add_argument("--l1-weight", type=float, default=100.0, help="weight of that L1 term against the hinge loss (default %(default)s)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--noise", action=argparse.BooleanOptionalAction, default=True, help="a noise channel as the refiner's fourth input")
    p.add_argument("--diffaug", action=argparse.BooleanOptionalAction, default=True, help="DiffAugment on what the discriminator sees")
    p.add_argument("--disc-blur", action=argparse.BooleanOptionalAction, default=True, help="an anti-aliased discriminator")
    p.add_argument("--half-residual", action="store_true", help="draw the residual at 48 px and enlarge it (no 96-px texture possible)")
    p.add_argument("--d-lr", type=float, default=2e-4, help="the discriminator's learning rate (the refiner's is 2e-4)")
    probe(p.parse_args(), train_refiner, NAME, QUESTION, OPTIONS)


def probe(a: argparse.Namespace, train, name: str, question: str, options: tuple[str, ...]) -> None:
    """Train a refiner with ``train(recons, real, a, seed, log)`` on the run's (reconstruction, face) pairs, then
    compare, against its held-out faces, its reconstructions and gmm samples with and without the refiner,
    and add variant ``a.variant`` (with ``options`` of ``a``) to ``a.results``."""
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    model = load_model(a.run)
    cfg = load_run_config(a.run)
    held, train_images, train_pos, described, _ = load_eval_data(cfg, DataConfig(source=a.data), model.config.image_size, a.n)
    log(f"held out: {described}; encoding and decoding {len(train_pos[: a.pairs])} training faces")
    t0 = time.time()
    train_real = torch.from_numpy(np.ascontiguousarray(train_images[train_pos[: a.pairs]]))
    train_recons = decode_latents(model, encode_images(model, train_real))
    log(f"reconstructions in {time.time() - t0:.0f} s")
    net, training = train(train_recons, train_real, a, 0, log)
    # the evaluate protocol: n training faces spread over the set, reconstructed; n gmm samples (seed 0)
    pos = np.linspace(0, len(train_real) - 1, a.n).round().astype(np.int64)
    recons = train_recons[pos]
    samples = sample_faces(model, a.run, "gmm", a.n)
    refined = {"recons_refined": refine(net, recons, 1), "gmm_refined": refine(net, samples, 2)}
    for kind, images in refined.items():
        save_grid(images[:32], out / f"{a.variant}_{kind}.png", nrow=8)
    save_grid(samples[:32], out / "gmm.png", nrow=8)
    settings = {"run": Path(a.run).name, "n": a.n, "c2st_seeds": a.c2st_seeds, "pairs": a.pairs}
    results, _ = earlier_results(a.results, settings)
    if "baseline" not in results:  # the run as it is: what every variant is compared with
        results["baseline"] = {}
        for kind, images in {"recons": recons, "gmm": samples}.items():
            log(f"two-sample test: {kind}")
            results["baseline"][kind] = score_faces(images, held, a.c2st_seeds)
    variant = {"command": _record.invocation(), "options": {k: getattr(a, k) for k in options}, "training": training}
    for kind, images in refined.items():
        log(f"two-sample test: {kind}")
        variant[kind] = score_faces(images, held, a.c2st_seeds)
        log(f"{kind}: {variant[kind]}")
    results.setdefault("variants", {})[a.variant] = variant
    key = [f"baseline {n}: {c2st_line(r)}" for n, r in results["baseline"].items()]
    key += [f"{v} {n}: {c2st_line(r[n])}" for v, r in results["variants"].items() for n in refined]
    commands = [r["command"] for r in results["variants"].values()]
    _record.write(a.results, name, question, commands, settings, results, key, command=_record.invocation())


if __name__ == "__main__":
    main()
