"""How sharp must faces be to pass the classifier two-sample test? The test on real faces, blurred real faces and downsampled real faces.

No model: the classifier two-sample test (C2ST: a small CNN trained from scratch to tell one set from
another, scored on images it did not train on; 0.5 = indistinguishable) of 1,000 real training faces,
spread over the training split, against the first 1,000 held-out faces (the split every run uses:
5 % held out, seed 0), as they are and after:

* a Gaussian blur of sigma = 1 px (reflect padding);
* downsampling to 48 px and back up (bilinear, antialiased);
* downsampling to 32 px and back up.

Each set is tested as ``animevae evaluate`` tests samples (``classifier_two_sample_test`` with its
defaults), with ``--seeds`` classifier seeds; with it the "high-pass power" of each set: the mean squared
difference between its faces and their sigma = 1 blur (0-255 scale).

    python experiments/blur_baseline.py                          # about 10 minutes on 2 cores
    python experiments/blur_baseline.py --n 200 --seeds 1 --results experiments/out/try.json
"""

from __future__ import annotations

import _record
from _runs import fmt

NAME = "blur_baseline"
QUESTION = "How well does the classifier two-sample test tell real faces from real faces, from real faces blurred by 1 px, and from downsampled ones?"


def gaussian_low(x, sigma: float = 1.0):
    """A separable Gaussian blur of float N x C x H x W images (reflect padding, radius 3 sigma): evaluate's control blur."""
    from animevae.evaluation.two_sample import gaussian_blur

    return gaussian_blur(x, sigma)


def to_u8(x):
    import torch

    return x.round().clamp(0, 255).to(torch.uint8)


def high_pass_power(u8) -> float:
    x = u8.float()
    return float((x - gaussian_low(x)).pow(2).mean())


def down_up(u8, size: int):
    import torch.nn.functional as F

    y = F.interpolate(u8.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return to_u8(F.interpolate(y, size=u8.shape[-1], mode="bilinear", align_corners=False))


def real_sets(data: str, n: int):
    """(n training faces spread over the training split, the first n held-out faces), uint8, as ``animevae evaluate`` picks them."""
    import numpy as np
    import torch

    from animevae.config import DataConfig
    from animevae.data.cache import load_images
    from animevae.data.split import split_rows

    faces = load_images(DataConfig(source=data), 96, progress=False)
    train, held = split_rows(len(faces), 0.05, 0)
    pos = np.sort(train[np.linspace(0, len(train) - 1, n).round().astype(np.int64)])
    return torch.from_numpy(np.ascontiguousarray(faces.images[pos])), torch.from_numpy(np.ascontiguousarray(faces.images[held[:n]]))


def key_figures(results: dict) -> list[str]:
    sets = results["sets"]

    lines = ["C2ST against held-out real faces: " + ", ".join(f"{n} {fmt(r['c2st']['accuracy'])}" for n, r in sets.items())]
    cal = results.get("calibration")
    if cal:  # the first calibration: one classifier seed, at several training lengths
        lines.append(
            "calibration, one seed: " + ", ".join(f"{n} " + "/".join(fmt(v["accuracy"]) for v in r["c2st_by_steps"].values()) for n, r in cal["sets"].items())
        )
        lines[-1] += " (" + "/".join(next(iter(cal["sets"].values()))["c2st_by_steps"]) + " steps)"
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--n", type=int, default=1000, help="faces per set (default 1000)")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds (default 3)")
    a = p.parse_args()

    from animevae.evaluation.two_sample import classifier_two_sample_test

    train, held = real_sets(a.data, a.n)
    sets = {"real": train, "blur_sigma1": to_u8(gaussian_low(train.float())), "down48": down_up(train, 48), "down32": down_up(train, 32)}
    rows = {}
    for name, x in sets.items():
        r = classifier_two_sample_test(x, held, seeds=range(a.seeds))
        rows[name] = {
            "high_pass_power": round(high_pass_power(x), 1),
            "c2st": {"accuracy": round(r["accuracy"], 3), "per_seed": [round(v, 3) for v in r["per_seed"]]},
        }
        print(f"{name}: C2ST {r['accuracy']:.3f} {rows[name]['c2st']['per_seed']}", flush=True)
    commands = [f"animevae.evaluation.two_sample.classifier_two_sample_test(SET, HELD_OUT, seeds=range({a.seeds}))"]
    settings = {
        "data": a.data,
        "n_per_set": a.n,
        "seeds": a.seeds,
        "held_out": "first n of the 5 % split, seed 0",
        "c2st": "the package's defaults, as animevae evaluate runs it",
    }
    results = {"sets": rows, "held_out_high_pass_power": round(high_pass_power(held), 1)}
    _record.write(a.results, NAME, QUESTION, commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
