"""Does a gmm sampler with more components make a sharp run's faces harder to tell from real ones?

A cheap sampler knob: the mixture fitted to a finished run's latents (``--run``, e.g. presets_96px.py's
sharp run) with ``--components`` components each (seed 0, on the same seeded 20,000-latent subsample),
timed. Each is scored by the held-out log-likelihood of the latents that subsample left out (the fit
itself), and by 1,000 faces drawn with the same seed, as ``evaluate`` scores them: the classifier
two-sample test against the run's held-out faces at 96 px and at 48 px (3 classifier seeds), the
high-frequency power ratio and the diversity.

    python experiments/gmm_components.py --run experiments/out/presets_96px/sharp20
"""

from __future__ import annotations

import time

import _record
import torch
from _runs import fmt
from gmm_temperature import score_faces
from sampler_budget import gmm_log_likelihood, left_out

from animevae import runs
from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.sampling.generate import decode_latents, load_model
from animevae.sampling.samplers import GMMSampler

STEPS = (
    "in Python: GMMSampler.fit(latents, K) for each K (seed 0), timed; the held-out log-likelihood of the latents its subsample left out;"
    " 1,000 latents (seed 0) decoded and scored against the held-out faces at 96 and 48 px, high_frequency_ratio, mean_pairwise_rms"
)
NAME = "gmm_components"
QUESTION = "Does a gmm sampler with more components make a sharp run's faces harder to tell from real ones?"


def key_figures(results: dict) -> list[str]:
    rows = results["components"]
    return [
        "C2ST 96/48 px: " + ", ".join(f"k={k} {fmt(r['c2st'])}/{fmt(r['c2st_half'])}" for k, r in rows.items()),
        "held-out log-likelihood (nats per latent): " + ", ".join(f"k={k} {r['held_out_ll']:.1f}" for k, r in rows.items()),
        "fit seconds: " + ", ".join(f"k={k} {r['seconds']}" for k, r in rows.items()),
        "diversity: " + ", ".join(f"k={k} {r['diversity_rms']}" for k, r in rows.items()),
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--run", required=True, help="a finished spatial run folder (the sharp preset's)")
    p.add_argument("--components", type=int, nargs="+", default=[10, 20, 40], help="mixture sizes to try (default %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces per mixture, and held-out faces (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default %(default)s)")
    a = p.parse_args()
    model = load_model(a.run)
    mu = runs.load_latents(a.run).mu
    held, *_ = load_eval_data(runs.load_run_config(a.run), DataConfig(source=a.data), model.config.image_size, a.n_samples)
    fits = {}
    for k in a.components:  # every fit first, timed with the machine to itself
        start = time.perf_counter()
        fits[k] = (GMMSampler.fit(mu, k, seed=0), round(time.perf_counter() - start, 2))
        print(f"k={k}: {fits[k][1]} s", flush=True)
    results: dict = {"latents": list(mu.shape), "held_out_faces": len(held), "components": {}}
    for k, (gmm, seconds) in fits.items():
        faces = decode_latents(model, gmm.sample(a.n_samples, torch.Generator().manual_seed(0)))
        row = {"kept": gmm.n_components, "seconds": seconds, "held_out_ll": round(gmm_log_likelihood(gmm, left_out(mu, 0)), 3)}
        results["components"][str(k)] = row | score_faces(faces, held[: a.n_samples], a.c2st_seeds)
        print(k, results["components"][str(k)], flush=True)
    settings = {"run": a.run.replace(str(_record.ROOT) + "/", ""), "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds, "seed": 0}
    settings["max_iter"] = GMMSampler.MAX_ITER
    _record.write(a.results, NAME, QUESTION, [STEPS], settings, results, key_figures(results))


if __name__ == "__main__":
    main()
