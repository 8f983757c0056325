"""Does a spatial latent (a small map instead of one vector) make the decoder's faces harder to tell from real ones?

Five-minute probes on the first 20,000 faces (19,000 trained on, seed 0): the seed preset; the seed's
layers with one stride-2 layer fewer each side and a 16 x 6 x 6 latent (``--arch spatial --latent-dim 576``)
at beta 1 and 0.1; the 4 x 12 x 12 map (``--arch spatial12``) at beta 0.1; and the quality options on the
6 x 6 map at beta 0.1 (``--preset sharp``). Each is evaluated on 1,000 held-out faces with 1,000 samples
of the gmm, mix (k = 2) and diffusion samplers: the classifier two-sample test (C2ST, mean of 3
classifier seeds; 0.5 = indistinguishable) of the samples and of the reconstructions of 1,000 training
faces, the held-out likelihood, PSNR/SSIM and FID on offline pixel features. It also times a bare bf16
training step of the seed and spatial models (batch 128, random inputs) and counts their parameters.

    python experiments/spatial_latent.py                     # 5 x 5 minutes of training, then the evaluations
    python experiments/spatial_latent.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --only sharp --results experiments/out/try.json
"""

from __future__ import annotations

import time

import _record
from _runs import Steps, add_probe_args, evaluate_flags, fmt

NAME = "spatial_latent"
QUESTION = "Does a spatial latent (a 6 x 6 or 12 x 12 map) move the decoder's floor on the two-sample test, and which sampler does it need?"
VARIANTS = {
    "seed": ["--preset", "seed"],
    "spatial": ["--arch", "spatial", "--latent-dim", "576"],
    "spatial_beta0.1": ["--arch", "spatial", "--latent-dim", "576", "--beta", "0.1"],
    "spatial12_beta0.1": ["--arch", "spatial12", "--latent-dim", "576", "--beta", "0.1"],
    "sharp": ["--preset", "sharp"],  # = --preset quality --arch spatial --latent-dim 576 --beta 0.1
}
SAMPLERS = "gmm,mix_k2,diffusion"


def best(row: dict) -> str:
    tests = {n: s.get("c2st") for n, s in row.get("samplers", {}).items() if s.get("c2st") is not None}
    if not tests:
        return "—"
    name = min(tests, key=tests.get)
    return f"{tests[name]:.3f} ({name})"


def key_figures(results: dict) -> list[str]:
    probes = results["probes"]
    lines = [
        "C2ST of reconstructions: " + ", ".join(f"{n} {fmt(r.get('c2st_recons'))}" for n, r in probes.items()),
        "best sampler's C2ST: " + ", ".join(f"{n} {best(r)}" for n, r in probes.items()),
        "PSNR dB: " + ", ".join(f"{n} {fmt(r.get('psnr'), '.2f')}" for n, r in probes.items()),
    ]
    speed = results.get("bf16_step")
    if speed:
        lines.append("bf16 step img/s (batch 128): " + ", ".join(f"{n} {v['images_per_s']}" for n, v in speed.items() if isinstance(v, dict)))
    return lines


def step_speed(batch: int = 128, steps: int = 4) -> dict:
    """A bare bf16 training step (channels-last, random inputs, Adam) of the seed model and the spatial one: images/s and parameters."""
    import torch
    import torch.nn.functional as F

    from animevae.config import ModelConfig
    from animevae.models.vae import VAE

    out = {}
    torch.manual_seed(0)
    for name, arch, dim in (("seed", "conv", 256), ("spatial", "spatial", 576)):
        m = VAE(ModelConfig(arch=arch, latent_dim=dim)).to(memory_format=torch.channels_last)
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        x = torch.rand(batch, 3, 96, 96).contiguous(memory_format=torch.channels_last)
        for i in range(steps + 2):
            if i == 2:
                t = time.perf_counter()
            with torch.autocast("cpu", torch.bfloat16):
                o = m(x)
                loss = F.binary_cross_entropy_with_logits(o.logits.float(), x, reduction="sum") + o.posterior.kl().sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        out[name] = {"images_per_s": round(batch * steps / (time.perf_counter() - t)), "parameters": sum(p.numel() for p in m.parameters())}
    return out


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=5.0, limit=20000)
    add_probe_args(p, variants=list(VARIANTS))
    p.add_argument("--no-speed", dest="speed", action="store_false", help="skip the bf16 step timing")
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, SAMPLERS, SAMPLERS, a.c2st_seeds)
    results: dict = {"probes": {n: steps.train_and_evaluate(n, VARIANTS[n], evaluate, minutes=a.minutes, limit=a.limit) for n in a.only}}
    if a.speed:
        steps.note("bf16 training step of VAE(ModelConfig(arch='conv')) and VAE(ModelConfig(arch='spatial', latent_dim=576)), batch 128")
        results["bf16_step"] = step_speed()
    settings = {"data": a.data, "limit": a.limit, "minutes_per_run": a.minutes, "variants": {n: VARIANTS[n] for n in a.only}, "evaluate": evaluate, "seed": 0}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
