"""If a face were exactly right at 48 px, could a detail stage trained for minutes draw its 96-px detail well enough to pass?

The decoder draws a face at 48 px's detail; a refiner on top of it was to draw the rest, and none passed at
96 px. This probe asks what such a stage can do at best in the same budget, with no VAE in the way: its
input is a real face shrunk to 48 px and enlarged again (the best a decoder of that detail could draw), its
target the real face. Each invocation adds one ``--variant`` to the results file:

* ``none``: the enlarged faces as they are;
* ``unsharp``: an unsharp mask (the face plus ``--amount`` times its difference from a sigma = 1 px blur);
* ``shock``: ``--iterations`` steps of a shock filter (Osher & Rudin 1990, with the second derivative along
  the gradient of the blurred luminance deciding, as Alvarez & Mazorra 1994 do): each pixel moves towards the
  brighter or darker side of the edge it lies on, so a smeared edge becomes a step and flat colour stays flat;
* ``energy``: the refiner of ``refiner.py`` trained for ``--minutes`` with the patched energy score of
  ``energy_refiner.py`` (noise input, two draws);
* ``l1``: the same refiner without noise, trained for ``--minutes`` with an L1 loss (the per-pixel median).

The refiners train on the training split's faces less the ones evaluated: 1,000 training faces spread over
the split, as ``blur_baseline.py`` picks them, compared with the first 1,000 held-out faces by ``evaluate``'s
converged two-sample test at 96 and 48 px, with the high-frequency power ratio.

    python experiments/detail_ceiling.py --variant none
    python experiments/detail_ceiling.py --variant unsharp
    python experiments/detail_ceiling.py --variant shock --iterations 5
    python experiments/detail_ceiling.py --variant energy --minutes 6
    python experiments/detail_ceiling.py --variant l1 --minutes 6
    python experiments/detail_ceiling.py --variant l1 --minutes 20 --label l1_20min
    python experiments/detail_ceiling.py --variant energy --minutes 0.2 --n 100 --seeds 1 --results experiments/out/try.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _record
import numpy as np
import torch
from _runs import c2st_line, earlier_results, score_faces
from blur_baseline import down_up, gaussian_low, to_u8
from energy_refiner import add_training_options, train_pairs
from energy_refiner import train_refiner as train_energy
from refiner import Refiner, bf16, refine

NAME = "detail_ceiling"
QUESTION = "Given faces exactly right at 48 px (real faces shrunk and enlarged), can a detail stage trained for minutes make them pass at 96 px?"
OPTIONS = {
    "none": (),
    "unsharp": ("amount",),
    "shock": ("iterations", "dt"),
    "energy": ("minutes", "patch", "batch", "lr", "width", "blocks"),
    "l1": ("minutes", "batch", "lr", "width", "blocks"),
}


def faces(data: str, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(training faces less the evaluated ones, the n evaluated training faces, the first n held-out faces), uint8."""
    from animevae.config import DataConfig
    from animevae.data.cache import load_images
    from animevae.data.split import split_rows

    images = load_images(DataConfig(source=data), 96, progress=False).images
    train, held = split_rows(len(images), 0.05, 0)
    chosen = np.linspace(0, len(train) - 1, n).round().astype(np.int64)
    rest = np.setdiff1d(np.arange(len(train)), chosen)
    pick = lambda pos: torch.from_numpy(np.ascontiguousarray(images[np.sort(pos)]))  # noqa: E731
    return pick(train[rest]), pick(train[chosen]), pick(held[:n])


def shrunk(u8: torch.Tensor, chunk: int = 2048) -> torch.Tensor:
    """Each face shrunk to 48 px and enlarged again (``blur_baseline``'s down48 set)."""
    return torch.cat([down_up(u8[s : s + chunk], 48) for s in range(0, len(u8), chunk)])


def shock_filter(x: torch.Tensor, iterations: int, dt: float, sigma: float = 1.0) -> torch.Tensor:
    """``iterations`` explicit steps of the shock filter on float N x 3 x H x W faces in [0, 1]: dilation where the
    luminance, blurred by ``sigma``, curves down along its gradient, erosion where it curves up (upwind differences)."""
    import torch.nn.functional as F

    for _ in range(iterations):
        g = gaussian_low(0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:], sigma)
        p = F.pad(g, [1, 1, 1, 1], mode="replicate")
        gx, gy = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2, (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
        gxx, gyy = p[..., 1:-1, 2:] - 2 * g + p[..., 1:-1, :-2], p[..., 2:, 1:-1] - 2 * g + p[..., :-2, 1:-1]
        gxy = (p[..., 2:, 2:] - p[..., 2:, :-2] - p[..., :-2, 2:] + p[..., :-2, :-2]) / 4
        along = gxx * gx * gx + 2 * gxy * gx * gy + gyy * gy * gy
        q = F.pad(x, [1, 1, 1, 1], mode="replicate")
        back_x, fwd_x, back_y, fwd_y = x - q[..., 1:-1, :-2], q[..., 1:-1, 2:] - x, x - q[..., :-2, 1:-1], q[..., 2:, 1:-1] - x
        up = (back_x.clamp(max=0) ** 2 + fwd_x.clamp(min=0) ** 2 + back_y.clamp(max=0) ** 2 + fwd_y.clamp(min=0) ** 2).sqrt()  # from the brighter side
        down = (back_x.clamp(min=0) ** 2 + fwd_x.clamp(max=0) ** 2 + back_y.clamp(min=0) ** 2 + fwd_y.clamp(max=0) ** 2).sqrt()  # from the darker
        x = x + dt * torch.where(along < 0, up, -down)
    return x.clamp(0, 1)


def l1_step(net: Refiner, y: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, dict]:
    with bf16():
        out = net(y).float()
    loss = (out - x).abs().mean()
    return loss, {"l1": loss.item()}


def train_l1(inputs: torch.Tensor, real: torch.Tensor, a: argparse.Namespace, seed: int, log) -> tuple[Refiner, dict]:
    """The refiner without its noise input, trained for ``a.minutes`` on the L1 distance to the real face."""
    torch.manual_seed(seed)
    net = Refiner(width=a.width, blocks=a.blocks, noise=False).to(memory_format=torch.channels_last)
    return train_pairs(net, inputs, real, a, seed, l1_step, log)


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=6.0)
    p.add_argument("--variant", required=True, choices=sorted(OPTIONS))
    p.add_argument("--label", help="its name in the results file (default: the variant's), to keep several settings of one variant")
    p.add_argument("--amount", type=float, default=1.5, help="unsharp: how much of the face's difference from its blur is added (default %(default)s)")
    p.add_argument("--iterations", type=int, default=5, help="shock: filter steps (default %(default)s)")
    p.add_argument("--dt", type=float, default=0.2, help="shock: step size (default %(default)s)")
    add_training_options(p)
    p.add_argument("--n", type=int, default=1000, help="faces evaluated, and held-out faces they are compared with (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds (default %(default)s)")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    train_real, evaluated, held = faces(a.data, a.n)
    inputs = shrunk(evaluated)
    training = None
    if a.variant == "none":
        made = inputs
    elif a.variant == "unsharp":
        x = inputs.float()
        made = to_u8(x + a.amount * (x - gaussian_low(x)))
    elif a.variant == "shock":
        made = to_u8(shock_filter(inputs.float() / 255, a.iterations, a.dt) * 255)
    else:
        log(f"training on {len(train_real)} faces for {a.minutes} minutes")
        train = train_energy if a.variant == "energy" else train_l1
        net, training = train(shrunk(train_real), train_real, a, 0, log)
        made = refine(net, inputs, 1)
    from animevae.images import save_grid

    save_grid(made[:32], out / f"{a.label or a.variant}.png", nrow=8)  # real faces' derivatives: stays in the work folder
    log("two-sample test")
    row = {"options": {k: getattr(a, k) for k in OPTIONS[a.variant]}, "command": _record.invocation()} | ({"training": training} if training else {})
    row |= score_faces(made, held, a.seeds)
    log(f"{a.variant}: {c2st_line(row)}")
    settings = {"data": a.data, "n": a.n, "seeds": a.seeds, "held_out": "first n of the 5 % split, seed 0"}
    results, _ = earlier_results(a.results, settings)
    results[a.label or a.variant] = row
    key = [f"{v}: {c2st_line(r)}" for v, r in results.items()]
    _record.write(a.results, NAME, QUESTION, [r["command"] for r in results.values()], settings, results, key)


if __name__ == "__main__":
    main()
