"""How many stored latents should one mixed face draw on (``--mix-k``)?

The seed's generator decodes a random convex mix of stored latent means. For k = 1 (stored latents
themselves: reconstructions of training faces), 2, 4, 8, 16, 64 and all of them, and for the prior
N(0, I), it decodes 100 faces with each of 3 seeds and measures their diversity: the mean pairwise RMS
pixel distance (0-255) between the faces, and that relative to k = 1's. Needs a trained run (by default
samplers_compare.py's seed-preset model; ``--run`` names another).

    python experiments/mix_k_diversity.py                               # after samplers_compare.py
    python experiments/mix_k_diversity.py --run runs/faces30k --n 100 --seeds 3
"""

from __future__ import annotations

import statistics
from pathlib import Path

import _record
from _runs import fmt

NAME = "mix_k_diversity"
QUESTION = "How many stored latents should one face of the mix sampler draw on (--mix-k): what does k do to the diversity of its faces?"
KS = (1, 2, 4, 8, 16, 64, None)


def key_figures(results: dict) -> list[str]:
    rows = results["diversity"]
    return [
        "diversity (relative to k=1): " + ", ".join(f"{n} {fmt(r['mean_pairwise_rms'], '.1f')} ({fmt(r['relative_to_k1'], '.2f')})" for n, r in rows.items())
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--run", default=str(_record.HERE / "out" / "samplers_compare" / "faces30k"), help="trained run folder (default: samplers_compare.py's)")
    p.add_argument("--n", type=int, default=100, help="faces per setting and seed (default 100)")
    p.add_argument("--seeds", type=int, default=3, help="seeds per setting (default 3)")
    a = p.parse_args()
    if not (Path(a.run) / "latents.safetensors").is_file():
        raise SystemExit(f"{a.run}: no trained run there; run experiments/samplers_compare.py first, or pass --run")

    import torch

    from animevae.evaluation.metrics import mean_pairwise_rms
    from animevae.runs import load_latents
    from animevae.sampling.generate import decode_latents, load_model
    from animevae.sampling.samplers import MixSampler, PriorSampler

    model = load_model(a.run)
    mu = load_latents(a.run).mu
    settings_list = [(f"mix k={k or 'all'}", MixSampler(mu, k)) for k in KS] + [("prior N(0, I)", PriorSampler(mu.shape[1]))]
    rows, ref = {}, None
    for name, sampler in settings_list:
        dists, stds = [], []
        for seed in range(a.seeds):
            z = sampler.sample(a.n, torch.Generator().manual_seed(seed))
            dists.append(mean_pairwise_rms(decode_latents(model, z)))
            stds.append(z.std(0).mean().item())
        d = statistics.mean(dists)
        ref = ref or d
        rows[name] = {"mean_pairwise_rms": round(d, 2), "relative_to_k1": round(d / ref, 3), "latent_std": round(statistics.mean(stds), 4)}
        print(f"{name}: {d:.1f} ({d / ref:.2f} of k=1)", flush=True)
    run_shown = Path(a.run).name
    commands = [f"MixSampler(load_latents(RUN).mu, k).sample({a.n}, seed) for k in 1, 2, 4, 8, 16, 64, all; PriorSampler; decode_latents; mean_pairwise_rms"]
    settings = {"run": run_shown, "stored_latents": len(mu), "n": a.n, "seeds": a.seeds}
    results = {"diversity": rows}
    _record.write(a.results, NAME, QUESTION, commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
