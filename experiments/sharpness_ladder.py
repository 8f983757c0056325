"""How sharp must a face be to pass ``evaluate``'s converged two-sample test at 96 px?

``blur_baseline.py`` calibrated the earlier test (a classifier stopped after 100 steps): a one-pixel blur
of real faces was caught 83 % of the time. ``evaluate`` now trains its classifier until a validation split
stops improving, and catches far more. This ladder measures, with no model in the way, what that test
makes of real faces a little less sharp than they are: 1,000 training faces spread over the split (as
``detail_ceiling.py`` picks them) against the first 1,000 held-out faces, on ``evaluate``'s whole ladder
(both sets shrunk to 96, 48, 32, 24 and 16 px), with the high-frequency power ratio. The rows calibrate
the ladder: what each rung asks of a model's faces. Each invocation adds one ``--variant`` to the results file:

* ``real``: the faces as they are;
* ``blur``: a Gaussian blur of ``--sigma`` px (reflect padding);
* ``shrink``: shrunk to ``--size`` px and enlarged again (bilinear, antialiased).

    python experiments/sharpness_ladder.py --variant real
    python experiments/sharpness_ladder.py --variant blur --sigma 0.5
    python experiments/sharpness_ladder.py --variant shrink --size 48
    python experiments/sharpness_ladder.py --variant blur --sigma 1 --n 200 --seeds 1 --results experiments/out/try.json
"""

from __future__ import annotations

import _record
from _runs import earlier_results, ladder_line, score_faces
from blur_baseline import down_up, gaussian_low, to_u8
from detail_ceiling import faces

NAME = "sharpness_ladder"
QUESTION = "How sharp must real faces be for evaluate's converged two-sample test to pass them at 96 px?"


def degraded(u8, variant: str, sigma: float, size: int):
    """The faces as the variant leaves them (uint8)."""
    if variant == "blur":
        return to_u8(gaussian_low(u8.float(), sigma))
    if variant == "shrink":
        return down_up(u8, size)
    return u8


def label(variant: str, sigma: float, size: int) -> str:
    return {"blur": f"blur_sigma{sigma:g}", "shrink": f"shrink{size}"}.get(variant, variant)


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--variant", required=True, choices=["real", "blur", "shrink"])
    p.add_argument("--sigma", type=float, default=1.0, help="blur: the Gaussian's sigma in pixels (default %(default)s)")
    p.add_argument("--size", type=int, default=48, help="shrink: the size shrunk to (default %(default)s)")
    p.add_argument("--n", type=int, default=1000, help="faces per set (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds (default %(default)s)")
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 48, 32, 24, 16], help="the ladder's sizes (default %(default)s)")
    a = p.parse_args()

    _, evaluated, held = faces(a.data, a.n)
    made = degraded(evaluated, a.variant, a.sigma, a.size)
    row = {"command": _record.invocation()} | score_faces(made, held, a.seeds, a.sizes)
    name = label(a.variant, a.sigma, a.size)
    print(f"{name}: {ladder_line(row)}", flush=True)
    settings = {"data": a.data, "n": a.n, "seeds": a.seeds, "sizes": a.sizes, "held_out": "first n of the 5 % split, seed 0"}
    results, _ = earlier_results(a.results, settings)
    results[name] = row
    key = [f"{v}: {ladder_line(r)}, HF ratio {r['hf_ratio']:.2f}" for v, r in results.items()]
    _record.write(a.results, NAME, QUESTION, [r["command"] for r in results.values()], settings, results, key)


if __name__ == "__main__":
    main()
