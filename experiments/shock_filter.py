"""Does a shock filter, no training at all, turn a sharp run's smeared 96-px edges into ones that pass?

``detail_ceiling.py`` found that five steps of a shock filter (Osher & Rudin 1990) turn real faces shrunk to
48 px into faces the two-sample test catches less often at 96 px (0.967 against 0.994), second only to a
trained enlarger, with crisp edges and flat colour: the look of cel shading. This probe applies the same
filter to a finished ``--preset sharp`` run's reconstructions and gmm samples and compares them with its
held-out faces as ``refiner.py`` does (the converged two-sample test at 96 and 48 px, the high-frequency
power ratio). Each invocation adds one ``--variant``.

    python experiments/shock_filter.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant shock5 --iterations 5
    python experiments/shock_filter.py --run experiments/out/rotation_detail/sharp_bicubic20 --variant shock10 --iterations 10
    python experiments/shock_filter.py --run RUN --variant try --n 100 --pairs 200 --c2st-seeds 1 --results experiments/out/try.json
"""

from __future__ import annotations

import argparse

import torch
from detail_ceiling import shock_filter
from refiner import probe, probe_parser
from torch import nn

NAME = "shock_filter"
OPTIONS = ("iterations", "dt", "sigma")
QUESTION = "Does a shock filter, with no training, put 96-px edges into a sharp run's faces that the two-sample test cannot tell from real ones?"


class Shock(nn.Module):
    """The filter in a refiner's place: (faces in [0, 1], noise) -> filtered faces; the noise is ignored."""

    def __init__(self, iterations: int, dt: float, sigma: float):
        super().__init__()
        self.iterations, self.dt, self.sigma = iterations, dt, sigma

    def forward(self, y: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        return shock_filter(y, self.iterations, self.dt, self.sigma)


def no_training(recons: torch.Tensor, real: torch.Tensor, a: argparse.Namespace, seed: int, log) -> tuple[Shock, dict]:
    return Shock(a.iterations, a.dt, a.sigma), {}


def main() -> None:
    p = probe_parser(__doc__, NAME)
    p.add_argument("--iterations", type=int, default=5, help="filter steps (default %(default)s)")
    p.add_argument("--dt", type=float, default=0.2, help="step size (default %(default)s)")
    p.add_argument("--sigma", type=float, default=1.0, help="blur of the luminance whose curvature picks the side (default %(default)s)")
    probe(p.parse_args(), no_training, NAME, QUESTION, OPTIONS)


if __name__ == "__main__":
    main()
