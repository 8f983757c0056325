"""Does a detail stage trained on real faces only (shrunk to 48 px -> the face) draw a sharp run's 96-px detail?

``detail_ceiling.py`` found that the refiner of ``refiner.py``, without its noise and trained for minutes with an
L1 loss to enlarge real faces shrunk to 48 px, draws 96-px detail the two-sample test catches far less often
than the energy score's grain. A sharp run's faces are not real faces shrunk, but they are close to them at
48 px, and the energy-score refiner brings them closer. This probe trains both on a finished ``--preset sharp``
run: the super-resolution stage on the run's training faces (each shrunk to 48 px and enlarged, -> the face,
L1, ``--sr-minutes``) and, with ``--energy-minutes`` > 0, the energy-score refiner on its reconstructions.
A decoder output then goes through the energy refiner (if trained), is shrunk to 48 px and enlarged (which
removes whatever the earlier stages drew finer than that) and goes through the super-resolution stage. It is
compared with the run's held-out faces as ``refiner.py`` compares (reconstructions and gmm samples; the
converged two-sample test at 96 and 48 px, the high-frequency power ratio). Each invocation adds one
``--variant``.

    python experiments/detail_chain.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant sr --energy-minutes 0
    python experiments/detail_chain.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant energy_sr
    python experiments/detail_chain.py --run RUN --variant try --sr-minutes 0.2 --energy-minutes 0.2 --n 100 --pairs 500 \
        --c2st-seeds 1 --results experiments/out/try.json
"""

from __future__ import annotations

import argparse

import torch
from blur_baseline import down_up
from detail_ceiling import shrunk, train_l1
from energy_refiner import add_training_options
from energy_refiner import train_refiner as train_energy
from refiner import Refiner, probe, probe_parser
from torch import nn

NAME = "detail_chain"
OPTIONS = ("sr_minutes", "energy_minutes", "patch", "batch", "lr", "width", "blocks")
QUESTION = "Does a super-resolution stage trained on real faces shrunk to 48 px, alone or after the energy refiner, put 96-px detail into a sharp run's faces?"


def shrink_enlarge(x: torch.Tensor) -> torch.Tensor:
    """Float faces in [0, 1] shrunk to 48 px and enlarged again, on the grey levels of a uint8 image (as ``shrunk``)."""
    return down_up(x * 255, 48).float() / 255


class Chain(nn.Module):
    """(decoder output in [0, 1], noise) -> the energy refiner (if any), shrunk and enlarged, the super-resolution stage."""

    def __init__(self, sr: Refiner, energy: Refiner | None):
        super().__init__()
        self.sr, self.energy = sr, energy

    def forward(self, y: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        if self.energy is not None:
            y = self.energy(y, noise).clamp(0, 1)
        return self.sr(shrink_enlarge(y))


def train_chain(recons: torch.Tensor, real: torch.Tensor, a: argparse.Namespace, seed: int, log) -> tuple[Chain, dict]:
    energy, record = None, {}
    if a.energy_minutes > 0:
        log(f"energy-score refiner: {a.energy_minutes} minutes on the reconstructions")
        energy, record["energy"] = train_energy(recons, real, argparse.Namespace(**{**vars(a), "minutes": a.energy_minutes}), seed, log)
    log(f"super-resolution stage: {a.sr_minutes} minutes on {len(real)} training faces")
    sr, record["sr"] = train_l1(shrunk(real), real, argparse.Namespace(**{**vars(a), "minutes": a.sr_minutes}), seed, log)
    return Chain(sr, energy).eval(), record


def main() -> None:
    p = probe_parser(__doc__, NAME)
    p.add_argument("--sr-minutes", type=float, default=6.0, help="training of the super-resolution stage (default %(default)s)")
    p.add_argument("--energy-minutes", type=float, default=6.0, help="training of the energy-score refiner; 0: none (default %(default)s)")
    add_training_options(p)
    probe(p.parse_args(), train_chain, NAME, QUESTION, OPTIONS)


if __name__ == "__main__":
    main()
