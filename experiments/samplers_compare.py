"""How good is the seed preset's model on real faces, and how do its samplers compare?

Trains the seed preset on all the faces (28,500 trained on, 1,500 held out, seed 0) for ``--epochs``
epochs or ``--minutes`` minutes, then evaluates it on 1,000 of its held-out faces: -ELBO and the IWAE
bound (k = 16), reconstruction MSE/PSNR/SSIM, KL and active units, and for 500 samples of each sampler
(mix of k = 2, 4, 16 and all stored latents; the prior N(0, I); a 10-component Gaussian mixture on the
stored latents) their diversity, nearest training face and FID/KID on offline pixel features. With
``--images DIR`` it writes the documentation's pictures of this model there: ``results_loss.png``,
``results_{mix2,prior,gmm,mixall}.png`` (32 faces each), ``results_interpolation.png`` (+ the slerp GIF),
``results_traverse_pc1.png`` and ``generated_faces30k.png``.

    python experiments/samplers_compare.py                           # 7 epochs (about 45 minutes on 2 cores)
    python experiments/samplers_compare.py --epochs 1 --limit 2000 --eval-limit 100 --n-samples 100 --results experiments/out/try.json
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import _record
from _runs import Steps, evaluate_flags, fmt

NAME = "samplers_compare"
QUESTION = "How good is the seed preset's model on real faces after a few epochs, and how do its samplers (mix k, prior, gmm) compare?"
SAMPLERS = "mix_k2,mix_k4,mix_k16,mix_all,prior,gmm"
GRIDS = {
    "mix2": ["--sampler", "mix", "--mix-k", "2"],
    "prior": ["--sampler", "prior"],
    "gmm": ["--sampler", "gmm"],
    "mixall": ["--sampler", "mix", "--mix-k", "all"],
}


def key_figures(results: dict) -> list[str]:
    r = results["model"]
    s = r["samplers"]
    return [
        f"held-out −ELBO {fmt(r.get('neg_elbo'), ',.1f')}, −IWAE {fmt(r.get('neg_iwae'), ',.1f')} nats/image; PSNR {fmt(r.get('psnr'), '.2f')} dB; "
        f"active units {r.get('active_units')}/{r.get('latent_dim')}",
        "FID (pixel): " + ", ".join(f"{n} {fmt(v.get('fid'), '.2f')}" for n, v in s.items()),
        "diversity: " + ", ".join(f"{n} {fmt(v.get('diversity'), '.1f')}" for n, v in s.items()),
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=None, limit=None)
    p.add_argument("--epochs", type=int, default=7, help="epochs of training (default 7)")
    p.add_argument("--minutes", type=float, help="stop training after this many minutes instead")
    p.add_argument("--limit", type=int, help="use only the first N faces")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces evaluated (default 1000)")
    p.add_argument("--n-samples", type=int, default=500, help="faces drawn from each sampler (default 500)")
    p.add_argument("--images", help="write this model's pictures into this folder (e.g. docs/images)")
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, 16, SAMPLERS, c2st_seeds=0)
    row = steps.train_and_evaluate("faces30k", ["--preset", "seed"], evaluate, epochs=a.epochs, minutes=a.minutes, limit=a.limit, keep_last=2)
    run = steps.out / "faces30k"
    if a.images:
        images = Path(a.images)
        images.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(run / "loss.png", images / "results_loss.png")
        for name, flags in GRIDS.items():
            steps.animevae("generate", "--run", run, *flags, "--n", 32, "--seed", 0, "--out", run / f"grid_{name}", log="generate.log")
            shutil.copyfile(run / f"grid_{name}" / "grid.png", images / f"results_{name}.png")
        steps.animevae("interpolate", "--run", run, "--seed", 3, "--out", run / "interpolation", log="interpolate.log")
        shutil.copyfile(run / "interpolation" / "interpolation.png", images / "results_interpolation.png")
        shutil.copyfile(run / "interpolation" / "interpolation_slerp.gif", images / "results_interpolation_slerp.gif")
        steps.animevae("traverse", "--run", run, "--pc", 1, "--rows", 1, "--out", images / "results_traverse_pc1.png", log="traverse.log")
        steps.note(f"python experiments/make_images.py --out {a.images} --run $OUT/faces30k")
        subprocess.run([sys.executable, str(Path(__file__).with_name("make_images.py")), "--out", a.images, "--run", str(run)], check=True)
    settings = {"data": a.data, "limit": a.limit, "epochs": a.epochs, "minutes": a.minutes, "preset": "seed", "evaluate": evaluate, "seed": 0}
    results = {"model": row}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
