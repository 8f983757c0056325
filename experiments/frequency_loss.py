"""Does a focal frequency loss on top of the ELBO put 96-px detail into the sharp preset's faces?

A per-pixel likelihood pays little for a missing thin stroke; the focal frequency loss (Jiang et al.
2021; ``--objective frequency``, training/objectives.py) compares each face and the decoder's mean for it
in the 2-D Fourier domain and weighs the frequencies drawn worst most. Each variant trains from scratch
for ``--minutes`` on ``--data`` (one seed), the sharp preset otherwise, then ``evaluate`` scores it on the
run's first ``--eval-limit`` held-out faces: reconstructions and ``--n-samples`` gmm samples, with the
two-sample test at 96 and at 48 px and the high-frequency power ratio against real faces.

    python experiments/frequency_loss.py --minutes 5                   # the short probe
    python experiments/frequency_loss.py --minutes 1 --eval-limit 100 --n-samples 100 --out experiments/out/try --results experiments/out/try.json
"""

from __future__ import annotations

import _record
from _runs import Steps, add_probe_args, evaluate_flags, fmt, sampler_c2st

NAME = "frequency_loss"
QUESTION = "Does a focal frequency loss (--objective frequency) make the sharp preset's faces harder to tell from real at 96 px?"
VARIANTS = {
    "sharp": ["--preset", "sharp"],
    "freq10": ["--preset", "sharp", "--objective", "frequency", "--freq-weight", "10"],
    "freq100": ["--preset", "sharp", "--objective", "frequency", "--freq-weight", "100"],
}


def key_figures(results: dict) -> list[str]:
    rows = results["runs"]
    return [
        f"{n}: {r['images_seen']} images seen, PSNR {fmt(r['psnr'], '.2f')}, C2ST recons 96/48 {fmt(r.get('c2st_recons'))}/{fmt(r.get('c2st_recons_half'))}, "
        f"gmm 96/48 {fmt(sampler_c2st(r, 'gmm'))}/{fmt(r['samplers'].get('gmm', {}).get('c2st_half'))}, "
        f"HF ratio recons/gmm {fmt(r.get('hf_ratio_recons'), '.3f')}/{fmt(r['samplers'].get('gmm', {}).get('hf_ratio'), '.3f')}"
        for n, r in rows.items()
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=5.0)
    add_probe_args(p, eval_limit=1000, n_samples=1000, k=2, variants=list(VARIANTS))
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, "gmm", "gmm", a.c2st_seeds)
    for name in a.only:  # every run first, each with the machine to itself; then every evaluation
        steps.train_and_evaluate(name, VARIANTS[name], evaluate, train_only=True, minutes=a.minutes, keep_last=1)
    rows = {name: steps.train_and_evaluate(name, VARIANTS[name], evaluate, minutes=a.minutes, keep_last=1) for name in a.only}
    settings = {"data": a.data, "minutes": a.minutes, "variants": {n: VARIANTS[n] for n in a.only}, "evaluate": evaluate}
    results = {"runs": rows}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
