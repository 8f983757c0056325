"""Does a late adversarial phase on the decoder alone put 96-px detail into a sharp run's faces, and with which options?

The sharp preset's decoder draws a 48-px face at 96 px: its reconstructions and samples have about a fifth
of real faces' power above a quarter of the sampling frequency, and a converged classifier catches them at
96 px. This experiment takes a finished ``--preset sharp`` run (``--run``, or one it trains for
``--minutes``) and continues it for ``--phase-minutes`` per variant with the patch discriminator switched
on at once, the encoder frozen (its latents, and the gmm fitted on them, stay as they are) and the
decoder learning against the discriminator at the preset's learning rate. Each variant is scored on the
run's held-out faces: reconstructions and 1,000 gmm samples, the two-sample test at 96 and at 48 px, and
the high-frequency power ratio. The ``plain`` variant continues with the ELBO alone for the same minutes,
so the extra training time is not mistaken for the discriminator's doing. The base run's own evaluation
(``evaluation.json``, as presets_96px.py writes it) is recorded beside the variants when it is there.

    python experiments/detail_options.py --run experiments/out/presets_96px/sharp20 --phase-minutes 5 --c2st-seeds 1 --only fm
    python experiments/detail_options.py --minutes 20 --phase-minutes 6 --only plain fm
"""

from __future__ import annotations

from pathlib import Path

import _record
from _runs import Steps, add_probe_args, evaluate_flags, fmt, sampler_c2st, summarize

NAME = "detail_options"
QUESTION = "Does a late adversarial phase on the decoder alone (encoder frozen) put 96-px detail into a sharp run's faces, and with which options?"
PHASE = ["--adv-start-epochs", "0", "--freeze", "encoder", "--lr", "1e-3", "--sampler", "gmm"]
VARIANTS = {
    "plain": ["--objective", "elbo"],
    "recon": ["--objective", "adversarial", "--adv-fakes", "recon"],
    "fm": ["--objective", "adversarial", "--adv-fakes", "recon", "--adv-feature-match", "1.0"],
    "fm_r1": ["--objective", "adversarial", "--adv-fakes", "recon", "--adv-feature-match", "1.0", "--disc-r1", "0.1"],
    "fm_mix": ["--objective", "adversarial", "--adv-fakes", "recon+mix", "--adv-feature-match", "1.0"],
    "fm_w05": ["--objective", "adversarial", "--adv-fakes", "recon", "--adv-feature-match", "1.0", "--adv-weight", "0.5"],
}


def key_figures(results: dict) -> list[str]:
    rows = results["runs"]
    names = list(rows)
    return [
        "C2ST recons 96/48 px: " + ", ".join(f"{n} {fmt(rows[n].get('c2st_recons'))}/{fmt(rows[n].get('c2st_recons_half'))}" for n in names),
        "C2ST gmm 96/48 px: " + ", ".join(f"{n} {fmt(sampler_c2st(rows[n], 'gmm'))}/{fmt(rows[n]['samplers'].get('gmm', {}).get('c2st_half'))}" for n in names),
        "high-frequency ratio recons/gmm: "
        + ", ".join(f"{n} {fmt(rows[n].get('hf_ratio_recons'), '.2f')}/{fmt(rows[n]['samplers'].get('gmm', {}).get('hf_ratio'), '.2f')}" for n in names),
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20.0)
    p.add_argument("--run", help="a finished --preset sharp run to continue; default: train one for --minutes into --out/sharp")
    p.add_argument("--phase-minutes", type=float, default=6.0, help="minutes each variant continues the run (default %(default)s)")
    add_probe_args(p, eval_limit=1000, n_samples=1000, k=2, variants=list(VARIANTS), default=["plain", "recon", "fm", "fm_r1"])
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, "gmm", "gmm", a.c2st_seeds)
    base = a.run or str(steps.out / "sharp")
    if not a.run and not steps.trained("sharp"):
        steps.train("sharp", ["--preset", "sharp"], minutes=a.minutes, keep_last=1)
    rows = {}
    for name in a.only:
        rows[name] = steps.train_and_evaluate(name, ["--init-from", base, *PHASE, *VARIANTS[name]], evaluate, minutes=a.phase_minutes, keep_last=1)
    if (Path(base) / "evaluation.json").is_file():
        rows = {"base": summarize(base), **rows}
    settings = {"data": a.data, "base_run": base.replace(str(steps.out), "$OUT"), "phase_minutes": a.phase_minutes, "phase": PHASE,
                "variants": {n: VARIANTS[n] for n in rows if n in VARIANTS}, "evaluate": evaluate}  # fmt: skip
    results = {"runs": rows}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
