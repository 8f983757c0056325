"""What ``--mix-k`` does to the seed's latent-averaging generator: diversity of 100 faces per setting.

    python benchmarks/mix_diversity.py --run runs/faces30k [--n 100] [--seeds 3]

Diversity = mean pairwise RMS pixel distance (0..255 scale) between the generated faces; the same
figure for 100 faces decoded from single stored latents (k=1, i.e. reconstructions of training
faces) is the reference a generator should approach. Averages over several seeds.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from animevae.runs import load_latents
from animevae.sampling.generate import decode_latents, load_model
from animevae.sampling.samplers import MixSampler, PriorSampler


def mean_pairwise_distance(images: torch.Tensor) -> float:
    """Mean over pairs i<j of the RMS pixel difference, images uint8 N x C x H x W."""
    x = images.flatten(1).float()
    d = torch.cdist(x, x) / x.shape[1] ** 0.5
    n = len(x)
    return (d.sum() / (n * (n - 1))).item()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--run", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    model = load_model(a.run)
    mu = load_latents(a.run).mu
    settings = [("mix k=1 (stored latents)", MixSampler(mu, 1))]
    settings += [(f"mix k={k}", MixSampler(mu, k)) for k in (2, 4, 8, 16, 64)]
    settings += [("mix k=all (literal)", MixSampler(mu, None)), ("prior N(0, I)", PriorSampler(mu.shape[1]))]
    print(f"run {a.run}: {len(mu)} stored latents; {a.n} faces per setting, {a.seeds} seeds\n")
    print("| sampler | mean pairwise distance | relative to k=1 | latent std (mean over dims) |")
    print("|---|---|---|---|")
    ref = None
    for name, sampler in settings:
        dists, stds = [], []
        for seed in range(a.seeds):
            z = sampler.sample(a.n, torch.Generator().manual_seed(seed))
            dists.append(mean_pairwise_distance(decode_latents(model, z)))
            stds.append(z.std(0).mean().item())
        d = statistics.mean(dists)
        ref = ref or d
        print(f"| {name} | {d:.1f} | {d / ref:.2f} | {statistics.mean(stds):.3f} |")


if __name__ == "__main__":
    main()
