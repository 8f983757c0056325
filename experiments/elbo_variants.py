"""Can the ELBO itself be changed to make the decoder's faces sharper: a weaker KL term, or an edge-energy term?

Five-minute probes on the first 20,000 faces (19,000 trained on, seed 0), the seed's model:

* ``beta1``: the seed preset as it is;
* ``beta0.1``: ``--beta 0.1``, a KL term ten times weaker (more information in the latents);
* ``edge0.05`` / ``edge0.2``: the ELBO plus an edge-energy term of that weight per pixel dimension: the L1
  distance between the reconstruction's and the face's mean absolute Laplacian (luminance) in each 4 x 4
  window, so the decoder may put detail where the face has some without guessing its phase. The objective
  is registered by this script through the Python API (``register_objective``), trained and evaluated in
  this process; the run logs ``hf_ratio``, the reconstructions' edge energy over the faces'.

Each is evaluated on 1,000 held-out faces with 1,000 samples of the gmm and mix (k = 2) samplers: the
classifier two-sample test (C2ST, mean of 3 classifier seeds) of samples and reconstructions, held-out
-ELBO, KL, PSNR/SSIM, FID on offline pixel features.

    python experiments/elbo_variants.py
    python experiments/elbo_variants.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --only edge0.05 --results experiments/out/try.json
"""

from __future__ import annotations

import json

import _record
from _runs import Steps, add_probe_args, evaluate_flags, fmt, sampler_c2st

NAME = "elbo_variants"
QUESTION = "Does a weaker KL term (beta 0.1) or an edge-energy loss term make reconstructions and samples harder to tell from real faces?"
VARIANTS = {
    "beta1": ["--preset", "seed"],
    "beta0.1": ["--preset", "seed", "--beta", "0.1"],
    "edge0.05": ["--preset", "seed", "--objective", "elbo-edge0.05"],
    "edge0.2": ["--preset", "seed", "--objective", "elbo-edge0.2"],
}
SAMPLERS = "gmm,mix_k2"


def register_edge_energy(weights=(0.05, 0.2)) -> None:
    """``elbo-edge<W>``: the seed's ELBO + W x pixel dims x mean |E(recon) - E(face)|, E the 4x4-pooled |Laplacian| of the luminance."""
    import torch
    import torch.nn.functional as F

    from animevae.training.objectives import ELBO, LossTerms, elbo_terms, register_objective

    lap = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)

    def energy(x):
        y = (x.float() * luma).sum(1, keepdim=True)
        return F.avg_pool2d(F.conv2d(F.pad(y, [1, 1, 1, 1], mode="replicate"), lap).abs(), 4)

    class EdgeEnergy(ELBO):
        weight = 0.0

        def forward(self, model, x, step):
            with self.autocast():
                output = model(x)
            loss, recon, kl = elbo_terms(output, x, self.beta_at(step), self.cfg.free_bits)
            ef, er = energy(output.likelihood.mean), energy(x)
            loss = loss + self.weight * x[0].numel() * (ef - er).abs().flatten(1).mean(1).mean()
            return LossTerms(loss, recon, kl, output, {"hf_ratio": (ef.mean() / er.mean()).detach()})

    for w in weights:
        register_objective(f"elbo-edge{w}")(type(f"EdgeEnergy{w}", (EdgeEnergy,), {"weight": w}))


def key_figures(results: dict) -> list[str]:
    probes = results["probes"]
    return [
        "C2ST of reconstructions: " + ", ".join(f"{n} {fmt(r.get('c2st_recons'))}" for n, r in probes.items()),
        "C2ST gmm: " + ", ".join(f"{n} {fmt(sampler_c2st(r, 'gmm'))}" for n, r in probes.items()),
        "PSNR dB: " + ", ".join(f"{n} {fmt(r.get('psnr'), '.2f')}" for n, r in probes.items()),
    ]


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=5.0, limit=20000)
    add_probe_args(p, variants=list(VARIANTS))
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, SAMPLERS, SAMPLERS, a.c2st_seeds)
    register_edge_energy()
    probes = {}
    for n in a.only:
        here = n.startswith("edge")  # the objective exists in this process only
        probes[n] = steps.train_and_evaluate(n, VARIANTS[n], evaluate, here=here, minutes=a.minutes, limit=a.limit)
        if here:
            lines = [json.loads(s) for s in (steps.out / n / "metrics.jsonl").read_text().splitlines() if s.strip()]
            probes[n]["hf_ratio_by_epoch"] = [round(x["hf_ratio"], 3) for x in lines if x.get("hf_ratio") is not None]
    settings = {"data": a.data, "limit": a.limit, "minutes_per_run": a.minutes, "variants": {n: VARIANTS[n] for n in a.only}, "evaluate": evaluate, "seed": 0}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, {"probes": probes}, key_figures({"probes": probes}))


if __name__ == "__main__":
    main()
