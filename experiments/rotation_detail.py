"""How much fine detail does the rotation augmentation take from the training faces, and does a decoder trained on
faces rotated with bicubic instead of bilinear resampling draw more of it?

Every preset after the seed's rotates its training faces (up to 10 degrees) with bilinear resampling, which
averages up to four pixels into each one: the decoder learns to reproduce faces with less fine detail than
the ones it is judged against. Part one (``real``) measures that on real faces alone: 1,000 of the run's
training faces, rotated as training rotates them with each resampling, against 1,000 of its held-out
faces left as they are (the two-sample test at 96 and 48 px, and the high-frequency power ratio).
Part two trains ``--preset sharp --interpolation bicubic`` for ``--minutes`` on the 30,000 shared faces and
evaluates it as ``presets_96px.py`` evaluates the presets, beside that experiment's recorded sharp run.

    python experiments/rotation_detail.py                      # 20 minutes of training, then the evaluations
    python experiments/rotation_detail.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --results experiments/out/try.json
"""

from __future__ import annotations

import json

import _record
import torch
from _runs import Steps, detail_figures, evaluate_flags, score_faces

from animevae.config import DataConfig
from animevae.data.augment import augment
from animevae.evaluation.report import load_eval_data
from animevae.runs import load_run_config

NAME = "rotation_detail"
QUESTION = "How much fine detail does the rotation take from the training faces, and does bicubic resampling give the sharp preset's decoder more of it?"
RESAMPLING = ("nearest", "bilinear", "bicubic")


def rotated_real_faces(run, data: str, n: int, seeds: int) -> dict:
    """Training faces rotated as training rotates them (reflection corners), per resampling, against held-out faces."""
    held, images, train_pos, _, _ = load_eval_data(load_run_config(run), DataConfig(source=data), 96, n)
    faces = torch.from_numpy(images[train_pos[:n]])
    out = {"unrotated": score_faces(faces, held, seeds)}
    for mode in RESAMPLING:
        x = augment(faces, torch.Generator().manual_seed(0), fill="reflection", interpolation=mode)
        out[mode] = score_faces(x.mul(255).round().to(torch.uint8), held, seeds)
        print(f"rotated, {mode}: {out[mode]}", flush=True)
    return out


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20.0, limit=0)
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces evaluated (default %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces drawn from the run's gmm sampler (default %(default)s)")
    p.add_argument("--k", type=int, default=8, help="importance samples of the IWAE bound (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default %(default)s)")
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, "gmm", "gmm", a.c2st_seeds)
    flags = ["--preset", "sharp", "--interpolation", "bicubic"]
    rows = {"sharp_bicubic": steps.train_and_evaluate("sharp_bicubic20", flags, evaluate, minutes=a.minutes, limit=a.limit or None, keep_last=1)}
    recorded = json.loads((_record.RESULTS / "presets_96px.json").read_text())
    if not a.limit and recorded["settings"]["minutes_per_run"] == a.minutes:
        rows = {"sharp (presets_96px.json)": recorded["results"]["runs"]["sharp"]} | rows
    real = rotated_real_faces(steps.out / "sharp_bicubic20", a.data, a.eval_limit, a.c2st_seeds)
    settings = {"data": a.data, "limit": a.limit or None, "minutes": a.minutes, "flags": flags, "evaluate": evaluate}
    results = {"real_faces_rotated": real, "runs": rows}
    key = [f"real faces rotated, {m}: C2ST 96/48 {r['c2st']:.3f}/{r['c2st_half']:.3f}, HF ratio {r['hf_ratio']:.2f}" for m, r in real.items()]
    key += detail_figures(rows)
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key)


if __name__ == "__main__":
    main()
