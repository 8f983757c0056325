"""Does drawing from the gmm sampler at a lower temperature make a sharp run's faces harder to tell from real ones?

A cheap sampler knob: each face's latent is its component's mean plus ``temperature`` times the
component's Cholesky factor times N(0, I) noise (1 = the fitted mixture; lower = closer to the
components' means, the "truncation" of GAN samplers). This experiment takes a finished run's own fitted
mixture (``--run``, e.g. presets_96px.py's sharp run), draws 1,000 faces at each temperature with the same
seed, and scores them as ``evaluate`` does: the classifier two-sample test against the run's held-out
faces at 96 px and at 48 px (3 classifier seeds), the high-frequency power ratio, and the diversity.

    python experiments/gmm_temperature.py --run experiments/out/presets_96px/sharp20
"""

from __future__ import annotations

import _record
from _runs import fmt

STEPS = (
    "in Python: the run's gmm (load_or_fit_gmm), its Cholesky factors times each temperature, 1,000 latents (seed 0) decoded,"
    " classifier_two_sample_test against the held-out faces at 96 and 48 px, high_frequency_ratio, mean_pairwise_rms"
)
NAME = "gmm_temperature"
QUESTION = "Does drawing from the gmm sampler at a lower temperature make a sharp run's faces harder to tell from real ones, and at what cost in diversity?"


def key_figures(results: dict) -> list[str]:
    rows = results["temperatures"]
    return [
        "C2ST 96/48 px: " + ", ".join(f"t={t} {fmt(r['c2st'])}/{fmt(r['c2st_half'])}" for t, r in rows.items()),
        "diversity: " + ", ".join(f"t={t} {r['diversity_rms']}" for t, r in rows.items()),
        "high-frequency ratio: " + ", ".join(f"t={t} {fmt(r['hf_ratio'], '.3f')}" for t, r in rows.items()),
    ]


def score_faces(faces, held, c2st_seeds: int) -> dict:
    """``evaluate``'s measures of generated faces against held-out ones: the two-sample test at 96 and 48 px, the
    high-frequency power ratio and the diversity (mean pairwise RMS, 0-255)."""
    from animevae.evaluation.metrics import high_frequency_ratio, mean_pairwise_rms
    from animevae.evaluation.two_sample import classifier_two_sample_test

    c2st = classifier_two_sample_test(faces, held, seeds=range(c2st_seeds))
    sizes = list(c2st["by_size"].values())
    return {
        "c2st": round(c2st["accuracy"], 4),
        "c2st_per_seed": [round(x, 4) for x in c2st["per_seed"]],
        "c2st_half": round(sizes[1]["accuracy"], 4),
        "c2st_half_per_seed": [round(x, 4) for x in sizes[1]["per_seed"]],
        "hf_ratio": round(high_frequency_ratio(faces, held), 4),
        "diversity_rms": round(mean_pairwise_rms(faces), 2),
    }


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--run", required=True, help="a finished run folder with a gmm sampler (fitted now if it has none)")
    p.add_argument("--temperatures", type=float, nargs="+", default=[1.0, 0.85, 0.7, 0.5], help="temperatures to try (default %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces per temperature, and held-out faces (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default %(default)s)")
    a = p.parse_args()
    import torch

    from animevae import runs
    from animevae.config import DataConfig
    from animevae.evaluation.report import load_eval_data
    from animevae.sampling.generate import decode_latents, load_model, load_or_fit_gmm
    from animevae.sampling.samplers import GMMSampler

    model = load_model(a.run)
    gmm = load_or_fit_gmm(a.run)
    held, *_ = load_eval_data(runs.load_run_config(a.run), DataConfig(source=a.data), model.config.image_size, a.n_samples)
    results: dict = {"held_out_faces": len(held), "components": gmm.n_components, "temperatures": {}}
    for t in a.temperatures:
        cooled = GMMSampler(gmm.weights, gmm.means, gmm.scale * t, gmm.covariance_type)
        faces = decode_latents(model, cooled.sample(a.n_samples, torch.Generator().manual_seed(0)))
        results["temperatures"][str(t)] = score_faces(faces, held[: a.n_samples], a.c2st_seeds)
        print(t, results["temperatures"][str(t)], flush=True)
    settings = {"run": a.run.replace(str(_record.ROOT) + "/", ""), "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds, "seed": 0}
    _record.write(a.results, NAME, QUESTION, [STEPS], settings, results, key_figures(results))


if __name__ == "__main__":
    main()
