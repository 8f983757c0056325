"""How far are the presets' faces from real ones at 96 px and at 48 px, and how much fine detail do they carry?

Trains ``--preset seed`` and ``--preset sharp`` for the same wall-clock minutes on the same faces, one after
the other (each alone on the machine), then evaluates each on 1,000 held-out faces
with ``animevae evaluate``: the held-out likelihood (IWAE k = 8), PSNR/SSIM, and for the reconstructions
and 1,000 faces of the run's own sampler the classifier two-sample test (trained to convergence, mean of 3
classifier seeds) at 96 px and with both sets shrunk to 48 px, the high-frequency power ratio against the
real faces, FID/KID on offline pixel features, diversity and the nearest training face. With
``--images DIR`` it writes 48 faces of each run's own sampler there (``generated_<run>.png``, full size).

    python experiments/presets_96px.py --images docs/images        # 2 x 20 minutes of training, then the evaluations
    python experiments/presets_96px.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --results experiments/out/try.json

Nothing else should run beside the training runs: the budget is wall clock.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import _record
from _runs import Steps, evaluate_flags, fmt

NAME = "presets_96px"
QUESTION = "How far are the presets' faces from real ones at 96 px and at 48 px after 20 minutes on 2 CPU cores, and how much fine detail do they carry?"
PRESETS = ("seed", "sharp")
OWN = {"seed": "mix_k2", "sharp": "gmm"}  # the sampler each preset records as its own


def key_figures(results: dict) -> list[str]:
    runs = results["runs"]
    names = [n for n in PRESETS if n in runs]
    own = {n: runs[n]["samplers"].get(OWN[n], {}) for n in names}
    return [
        "C2ST own sampler 96/48 px: " + ", ".join(f"{n} {fmt(own[n].get('c2st'))}/{fmt(own[n].get('c2st_half'))}" for n in names),
        "C2ST recons 96/48 px: " + ", ".join(f"{n} {fmt(runs[n].get('c2st_recons'))}/{fmt(runs[n].get('c2st_recons_half'))}" for n in names),
        "high-frequency ratio samples/recons: "
        + ", ".join(f"{n} {fmt(own[n].get('hf_ratio'), '.2f')}/{fmt(runs[n].get('hf_ratio_recons'), '.2f')}" for n in names),
        "images seen: " + ", ".join(f"{n} {runs[n]['images_seen']:,}" for n in names),
        "held-out −ELBO: " + ", ".join(f"{n} {fmt(runs[n].get('neg_elbo'), ',.1f')}" for n in names),
        "PSNR dB: " + ", ".join(f"{n} {fmt(runs[n].get('psnr'), '.2f')}" for n in names),
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20.0, limit=0)
    p.add_argument("--only", nargs="+", choices=PRESETS, default=list(PRESETS), help="presets to run (default: both)")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces evaluated (default %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces drawn from each run's own sampler (default %(default)s)")
    p.add_argument("--k", type=int, default=8, help="importance samples of the IWAE bound (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default %(default)s)")
    p.add_argument("--train-only", action="store_true", help="train the runs (those not trained yet) and stop: a later call evaluates them")
    p.add_argument("--images", help="also write 48 faces of each run's own sampler into this folder (e.g. docs/images)")
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    runs = {}
    for name in a.only:  # one after the other: each has the machine to itself
        evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, OWN[name], OWN[name], a.c2st_seeds)
        runs[name] = steps.train_and_evaluate(
            f"{name}20", ["--preset", name], evaluate, minutes=a.minutes, limit=a.limit or None, keep_last=1, train_only=a.train_only
        )
    if a.train_only:
        return
    if a.images:
        folders = [str(steps.out / f"{n}20") for n in runs]
        steps.note(f"python experiments/make_images.py --out {a.images} --run " + " ".join(f"$OUT/{n}20" for n in runs))
        subprocess.run([sys.executable, str(Path(__file__).with_name("make_images.py")), "--out", a.images, "--run", *folders], check=True)
    settings = {"data": a.data, "limit": a.limit or None, "minutes_per_run": a.minutes, "own_sampler": {n: OWN[n] for n in runs}, "seed": 0}
    results = {"runs": runs}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
