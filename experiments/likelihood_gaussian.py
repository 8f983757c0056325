"""Does a learned-variance Gaussian pixel likelihood give faces harder to tell from real ones than the Bernoulli one?

Two five-minute probes on the first 20,000 faces (19,000 trained on, seed 0): the sharp preset's
settings as they are (Bernoulli likelihood, beta 0.1) and the same with ``--likelihood gaussian --beta 1``
(a Gaussian per pixel, mean sigmoid(logits), a learned log scale floored at one grey level). Each is
evaluated on 1,000 held-out faces with 1,000 samples of the gmm and diffusion samplers: the classifier
two-sample test (C2ST, mean of 3 classifier seeds) of samples and reconstructions, PSNR/SSIM, KL, FID on
offline pixel features. The Gaussian run's -ELBO is a density on continuous pixels: it is not
comparable with the Bernoulli figures.

    python experiments/likelihood_gaussian.py
    python experiments/likelihood_gaussian.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --results experiments/out/try.json
"""

from __future__ import annotations

import _record
from _runs import Steps, add_probe_args, evaluate_flags, fmt, sampler_c2st

NAME = "likelihood_gaussian"
QUESTION = "Does a learned-variance Gaussian pixel likelihood give faces harder to tell from real ones than the Bernoulli one?"
VARIANTS = {"sharp": ["--preset", "sharp"], "gaussian": ["--preset", "sharp", "--beta", "1", "--likelihood", "gaussian"]}
SAMPLERS = "gmm,diffusion"


def key_figures(results: dict) -> list[str]:
    return [
        f"{n}: C2ST recons {fmt(r.get('c2st_recons'))}, gmm {fmt(sampler_c2st(r, 'gmm'))}, diffusion {fmt(sampler_c2st(r, 'diffusion'))}; "
        f"PSNR {fmt(r.get('psnr'), '.2f')} dB, KL {fmt(r.get('kl'), ',.0f')}"
        for n, r in results["probes"].items()
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=5.0, limit=20000)
    add_probe_args(p, variants=list(VARIANTS))
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, SAMPLERS, SAMPLERS, a.c2st_seeds)
    results = {"probes": {n: steps.train_and_evaluate(n, VARIANTS[n], evaluate, minutes=a.minutes, limit=a.limit) for n in a.only}}
    settings = {"data": a.data, "limit": a.limit, "minutes_per_run": a.minutes, "variants": {n: VARIANTS[n] for n in a.only}, "evaluate": evaluate, "seed": 0}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
