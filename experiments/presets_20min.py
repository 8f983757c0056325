"""Which preset gives the most realistic faces for the same wall-clock training budget?

Trains the seed, quality and sharp presets (and, with ``--only ... adversarial``, the quality options with
the adversarial objective, which is what ``--preset sharp`` meant before the spatial latent) for the same
minutes on the same faces, one after the other, then evaluates each with ``animevae evaluate`` on 1,000
held-out faces: the held-out likelihood (IWAE k = 8), reconstructions, and per sampler the classifier
two-sample test (C2ST, 0.5 = indistinguishable from real faces), FID/KID on offline pixel features,
diversity and the nearest training face. It also times the diffusion sampler (1,000 latents of the sharp
run). With ``--images DIR`` it writes 32 faces of each run's mix/gmm/diffusion samplers there
(``compare_<run>_<sampler>.png``, via make_images.py).

    python experiments/presets_20min.py                      # 3 x 20 minutes of training, then the evaluations
    python experiments/presets_20min.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --results experiments/out/try.json

Nothing else should run beside the training runs: the budget is wall clock.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import _record
from _runs import Steps, evaluate_flags, fmt, sampler_c2st

NAME = "presets_20min"
QUESTION = "Which preset gives the most realistic faces for the same wall-clock training budget (20 minutes on 2 CPU cores)?"
VARIANTS = {
    "seed": ["--preset", "seed"],
    "quality": ["--preset", "quality"],
    "sharp": ["--preset", "sharp"],
    "adversarial": ["--preset", "quality", "--objective", "adversarial"],  # --preset sharp before the spatial latent
}
OWN = {"seed": "mix_k2", "quality": "gmm", "sharp": "gmm", "adversarial": "gmm"}  # the sampler each records as its own


def key_figures(results: dict) -> list[str]:
    runs = results["runs"]
    names = [n for n in ("seed", "quality", "sharp", "adversarial") if n in runs]
    own = ", ".join(f"{n} {fmt(sampler_c2st(runs[n], OWN[n]))} ({OWN[n]})" for n in names)
    recons = ", ".join(f"{n} {fmt(runs[n].get('c2st_recons'))}" for n in names)
    elbo = ", ".join(f"{n} {fmt(runs[n].get('neg_elbo'), ',.1f')}" for n in names)
    psnr = ", ".join(f"{n} {fmt(runs[n].get('psnr'), '.2f')}" for n in names)
    return [f"C2ST of each preset's own sampler: {own}", f"C2ST of reconstructions: {recons}", f"held-out −ELBO: {elbo}", f"PSNR dB: {psnr}"]


def diffusion_seconds(run: Path) -> float:
    """Seconds to draw 1,000 latents from the run's diffusion sampler (the one evaluate fitted and saved in the run)."""
    import torch

    from animevae.sampling.generate import load_or_fit_diffusion

    sampler = load_or_fit_diffusion(str(run), progress=False)
    t = time.perf_counter()
    sampler.sample(1000, torch.Generator().manual_seed(0))
    return round(time.perf_counter() - t, 2)


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20.0, limit=None)
    p.add_argument("--only", nargs="+", choices=list(VARIANTS), default=["seed", "quality", "sharp"], help="presets to run (default: seed quality sharp)")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces evaluated (default 1000)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces drawn from each sampler (default 1000)")
    p.add_argument("--k", type=int, default=8, help="importance samples of the IWAE bound (default 8)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default 3)")
    p.add_argument("--images", help="also write each run's sample grids into this folder (e.g. docs/images)")
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, "mix_k2,gmm,two_stage,diffusion,prior", "mix_k2,gmm,two_stage,diffusion", a.c2st_seeds)
    runs = {}
    for name in a.only:  # one after the other: each has the machine to itself
        runs[name] = steps.train_and_evaluate(f"{name}20", VARIANTS[name], evaluate, minutes=a.minutes, limit=a.limit, keep_last=1)
    results: dict = {"runs": runs}
    if "sharp" in runs:
        results["diffusion_seconds_per_1000_latents"] = diffusion_seconds(steps.out / "sharp20")
    if a.images:
        folders = [str(steps.out / f"{n}20") for n in runs]
        shown = " ".join(f"$OUT/{n}20" for n in runs)
        steps.note(f"python experiments/make_images.py --out {a.images} --samplers mix gmm diffusion --run {shown} --compare {shown}")
        script = str(Path(__file__).with_name("make_images.py"))
        subprocess.run(
            [sys.executable, script, "--out", a.images, "--samplers", "mix", "gmm", "diffusion", "--run", *folders, "--compare", *folders], check=True
        )
    settings = {
        "data": a.data,
        "limit": a.limit,
        "minutes_per_run": a.minutes,
        "variants": {n: VARIANTS[n] for n in runs},
        "own_sampler": {n: OWN[n] for n in runs},
        "evaluate": evaluate,
        "seed": 0,
    }
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
