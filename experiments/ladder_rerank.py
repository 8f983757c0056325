"""Everything tried so far, re-ranked on the realism ladder: which preset, sampler and option draws the most real faces?

At 96 and 48 px the converged two-sample test reads 0.98-1.00 for every option this project has tried, so
those comparisons could not rank them. This script trains each variant for its budget on the 30,000 shared
faces (one run at a time, each with the machine to itself) and evaluates it with ``animevae evaluate``: the
ladder (96, 48, 32, 24, 16 px) for its samplers' faces and for its reconstructions of training faces, the
positive control, held-out -ELBO and images seen. The sharp run's ladder has every rung; the others skip 96 px,
where every run trained so far reads 0.98-1.00 (experiments/sampler_ladder.py puts each sampler of the sharp run on it).

* the presets at ``--minutes`` (20): ``seed``, ``quality``, ``sharp``;
* the options still in the code, on top of the sharp preset, at ``--option-minutes`` (5) beside a sharp run
  of the same budget: the adversarial late phase, the focal frequency loss, Gaussian and Laplace pixel
  likelihoods, and the 16 x 12 x 12 latent (spatial12) with the diffusion sampler;
* the adversarial late phase again at ``--minutes`` (``adversarial20``), the option that led at 5 minutes.

    python experiments/ladder_rerank.py --only sharp seed quality
    python experiments/ladder_rerank.py --only sharp5 adversarial5 frequency5
    python experiments/ladder_rerank.py --only adversarial20
    python experiments/ladder_rerank.py --only sharp --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --results experiments/out/try.json

Each invocation adds its variants to the results file (kept while the evaluation settings are the same).
"""

from __future__ import annotations

import json
from pathlib import Path

import _record
from _runs import Steps, add_probe_args, earlier_results, evaluate_flags, fmt, ladder_line

NAME = "ladder_rerank"
QUESTION = (
    "Re-ranked on the realism ladder, which preset, sampler and training option draws faces a classifier cannot tell from real ones, and up to what size?"
)
EVERY_SAMPLER = "mix_k2,prior,gmm,two_stage,diffusion"
PRESETS = {"seed": ["--preset", "seed"], "quality": ["--preset", "quality"], "sharp": ["--preset", "sharp"]}
SHARP = ["--preset", "sharp"]
OPTIONS = {
    "sharp5": SHARP,
    "adversarial5": [*SHARP, "--objective", "adversarial", "--adv-start-fraction", "0.6", "--adv-decoder-only"],
    "frequency5": [*SHARP, "--objective", "frequency"],
    "gaussian5": [*SHARP, "--likelihood", "gaussian"],
    "laplace5": [*SHARP, "--likelihood", "laplace"],
    "spatial12_diffusion5": [*SHARP, "--arch", "spatial12", "--latent-dim", "2304", "--sampler", "diffusion"],
}
FULL_BUDGET_OPTIONS = {"adversarial20": OPTIONS["adversarial5"]}  # the 5-minute lead, at the presets' budget


def samplers_of(name: str, flags: list[str]) -> tuple[str, str]:
    """(samplers evaluated, samplers on the ladder): every sampler on the sharp preset's run, the run's own on the ladder
    (experiments/sampler_ladder.py puts each of the sharp run's samplers on it)."""
    if name == "sharp":
        return EVERY_SAMPLER, "gmm"
    own = flags[flags.index("--sampler") + 1] if "--sampler" in flags else {"seed": "mix"}.get(name, "gmm")
    entry = {"mix": "mix_k2", "two-stage": "two_stage"}.get(own, own)
    return entry, entry


def key_figures(rows: dict) -> list[str]:
    lines = []
    for name, r in rows.items():
        ladders = [f"{s} {ladder_line(e)}" for s, e in r["samplers"].items() if "ladder" in e]
        recons = ladder_line(r["recons"]) if r.get("recons") else "—"
        lines.append(f"{name} ({r['minutes']} min, {r['images_seen']:,} images, −ELBO {fmt(r['neg_elbo'], '.1f')}): recons {recons}; " + "; ".join(ladders))
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20.0, limit=0)
    p.add_argument("--option-minutes", type=float, default=5.0, help="training budget of the option runs (default %(default)s)")
    add_probe_args(p, eval_limit=1000, n_samples=1000, k=2, variants=[*PRESETS, *OPTIONS, *FULL_BUDGET_OPTIONS], default=["sharp"])
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    settings = {"data": a.data, "limit": a.limit or None, "eval_limit": a.eval_limit, "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    for name in a.only:
        flags = PRESETS.get(name) or OPTIONS.get(name) or FULL_BUDGET_OPTIONS[name]
        minutes = a.option_minutes if name in OPTIONS else a.minutes
        evaluated, laddered = samplers_of(name, flags)
        evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, evaluated, laddered, a.c2st_seeds)
        if name != "sharp":  # 96 px reads 0.98-1.00 for every run trained so far: the other runs skip that costly rung
            evaluate += ["--c2st-sizes", "48,32,24,16"]
        run_name = f"{name}{minutes:g}" if name in PRESETS else name
        row = steps.train_and_evaluate(run_name, flags, evaluate, minutes=minutes, limit=a.limit or None, keep_last=1)
        c2st = json.loads((Path(a.out) / run_name / "evaluation.json").read_text())["reconstructions"]["c2st"]
        row["recons_of"] = "held-out" if c2st.get("paired") else "training"  # evaluate reconstructed training faces before it paired held-out ones
        rows[name] = {"minutes": minutes, **row}
        commands = [*commands, *steps.commands]
        steps.commands.clear()
        _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, key_figures(rows))


if __name__ == "__main__":
    main()
