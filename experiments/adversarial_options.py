"""Does an adversarial term (a patch discriminator) make the decoder's faces sharper, and which of its options matter?

Five-minute probes on the first 20,000 faces (19,000 trained on, seed 0), all with the quality options,
the adversarial objective and the gmm sampler (``--preset quality --objective adversarial``):

* ``weight0.1`` / ``weight0.5``: the adversarial weight (reconstructions and mixes as fakes);
* ``upconv_weight0.5``: a resize-conv decoder for the last two layers (``--arch upconv``);
* ``blur_weight0.5``: the discriminator anti-aliased (``--disc-blur``: a binomial low-pass before its 2nd and 3rd strided convs);
* ``blur_upconv_weight0.5``: both;
* ``r1_weight0.5`` / ``r1_weight2``: reconstruction-only fakes and a lazy R1 penalty (gamma 0.1 every 16 steps);
* ``fm_r1_weight1``: the same + feature matching (weight 10) at adversarial weight 1;
* ``fm_r1small_weight1`` / ``fm_nor1_weight1``: feature matching with R1 at gamma 0.001, and without R1;
* ``bilinear_weight0.5``: a decoder that upsamples bilinearly and convolves (3 x 3) at every layer, with no
  transposed conv (registered by this script, trained and evaluated in its process), against a
  discriminator without R1, reconstruction-only fakes, ``--disc-blur``;

and the seed preset for reference. Each is evaluated on 1,000 held-out faces with 1,000 samples of the
gmm and mix (k = 2) samplers (C2ST of samples and reconstructions, mean of 3 classifier seeds; held-out
-ELBO; PSNR/SSIM; FID on pixel features); each run's ``adv_d`` (the discriminator's hinge loss at each
epoch's last step; 2.0 = chance) comes from its metrics. ``--step-times`` also times one training step
(batch 64) of the ELBO and of the adversarial objective with the seed decoder and with 1 or 2 resize-conv
layers.

    python experiments/adversarial_options.py                                # 12 x 5 minutes
    python experiments/adversarial_options.py --only seed r1_weight0.5 --minutes 20 --limit 0 --k 8   # the 20-minute runs
    python experiments/adversarial_options.py --minutes 1 --limit 2000 --eval-limit 100 --n-samples 100 --only blur_weight0.5 --results experiments/out/try.json
"""

from __future__ import annotations

import statistics
import time

import _record
from _runs import Steps, add_probe_args, evaluate_flags, fmt, sampler_c2st

NAME = "adversarial_options"
QUESTION = (
    "Does a patch-discriminator term make the decoder's faces harder to tell from real ones, "
    "and do anti-aliasing, R1, feature matching or a resize-conv decoder change that?"
)
ADV = ["--preset", "quality", "--objective", "adversarial"]
RECON_R1 = ["--adv-fakes", "recon", "--disc-r1", "0.1", "--disc-blur"]
FM = ["--adv-weight", "1.0", "--adv-fakes", "recon", "--adv-feature-match", "10", "--disc-blur"]
VARIANTS = {
    "seed": ["--preset", "seed"],
    "weight0.1": [*ADV, "--adv-weight", "0.1"],
    "weight0.5": [*ADV, "--adv-weight", "0.5"],
    "upconv_weight0.5": [*ADV, "--adv-weight", "0.5", "--arch", "upconv"],
    "blur_weight0.5": [*ADV, "--adv-weight", "0.5", "--disc-blur"],
    "blur_upconv_weight0.5": [*ADV, "--adv-weight", "0.5", "--disc-blur", "--arch", "upconv"],
    "r1_weight0.5": [*ADV, "--adv-weight", "0.5", *RECON_R1],
    "r1_weight2": [*ADV, "--adv-weight", "2.0", *RECON_R1],
    "fm_r1_weight1": [*ADV, *FM, "--disc-r1", "0.1"],
    "fm_r1small_weight1": [*ADV, *FM, "--disc-r1", "0.001"],
    "fm_nor1_weight1": [*ADV, *FM, "--disc-r1", "0"],
    "bilinear_weight0.5": [*ADV, "--adv-weight", "0.5", "--adv-fakes", "recon", "--disc-blur", "--arch", "upconv-bilinear"],
}
SAMPLERS = "gmm,mix_k2"


def register_bilinear_decoder() -> None:
    """``--arch upconv-bilinear``: the seed's encoder; every decoder layer a bilinear x2 upsampling and a 3x3 conv (no transposed conv)."""
    from torch import nn

    from animevae.models.vae import SeedConv, register_architecture

    @register_architecture("upconv-bilinear")
    class UpsampleAll(SeedConv):
        def decoder(self, c, out_channels):
            chans = self._widths(c)

            def resize(cin, cout):
                return [nn.Upsample(scale_factor=2, mode="bilinear"), nn.Conv2d(cin, cout, 3, 1, 1)]

            layers = [
                nn.Sequential(*resize(chans[i + 1], chans[i]), nn.BatchNorm2d(chans[i]), nn.LeakyReLU(c.negative_slope)) for i in range(c.num_layers - 1, 0, -1)
            ]
            return nn.Sequential(*layers, *resize(chans[1], out_channels))


def step_times(batch: int = 64, steps: int = 8, rounds: int = 2) -> dict:
    """ms per training step (real step function, random inputs, bf16 where the CPU has it), alternating the variants ``rounds`` times."""
    import torch

    from animevae.config import resolve_configs
    from animevae.models import vae
    from animevae.training.loop import train_step
    from animevae.training.state import TrainState, build_model
    from animevae.training.system import System

    variants = {"elbo": ("elbo", "conv", 2), "adversarial": ("adversarial", "conv", 2), "adversarial_upconv1": ("adversarial", "upconv", 1)}
    variants["adversarial_upconv2"] = ("adversarial", "upconv", 2)
    times: dict[str, list[float]] = {k: [] for k in variants}
    default_layers = vae.UpsampleConv.RESIZE_LAYERS
    try:
        for _ in range(rounds):
            for name, (objective, arch, layers) in variants.items():
                vae.UpsampleConv.RESIZE_LAYERS = layers
                model_cfg, cfg, _ = resolve_configs({"objective": objective, "arch": arch, "adv_start_epochs": 0.0}, "quality")
                system = System.setup("cpu", cfg.precision, cfg.channels_last)
                torch.manual_seed(0)
                state = TrainState.create(build_model(model_cfg, cfg), cfg, system, steps_per_epoch=100)
                x = torch.rand(batch, 3, 96, 96).contiguous(memory_format=system.memory_format)
                fused = state.optimizers["model"].defaults.get("fused") and not state.scaler.is_enabled()
                for i in range(steps + 2):
                    if i == 2:
                        t = time.perf_counter()
                    train_step(state, state.model, x, fused)
                    state.progress.step += 1
                times[name].append((time.perf_counter() - t) / steps * 1000)
    finally:
        vae.UpsampleConv.RESIZE_LAYERS = default_layers
    return {k: {"median_ms": round(statistics.median(v)), "ms_per_round": [round(t) for t in v]} for k, v in times.items()}


def key_figures(results: dict) -> list[str]:
    lines = []
    for group, probes in results.items():
        if not isinstance(probes, dict) or not all(isinstance(r, dict) and "flags" in r for r in probes.values()):
            continue
        lines.append(f"{group}, C2ST gmm: " + ", ".join(f"{n} {fmt(sampler_c2st(r, 'gmm'))}" for n, r in probes.items()))
    if "adv_d" in results and "summary" in results["adv_d"]:
        lines.append(f"adv_d: {results['adv_d']['summary']}")
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=5.0, limit=20000)
    add_probe_args(p, variants=list(VARIANTS))
    p.add_argument("--step-times", action="store_true", help="also time one training step of each objective / decoder (batch 64)")
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, SAMPLERS, SAMPLERS, a.c2st_seeds)
    register_bilinear_decoder()
    probes = {}
    for n in a.only:
        here = "upconv-bilinear" in VARIANTS[n]  # the architecture exists in this process only
        probes[n] = steps.train_and_evaluate(n, VARIANTS[n], evaluate, here=here, minutes=a.minutes, limit=a.limit or None)
    results: dict = {"probes": probes}
    if a.step_times:
        steps.note("training step (animevae.training.loop.train_step), batch 64: ELBO; adversarial with the seed decoder; with 1 or 2 resize-conv layers")
        results["step_ms"] = step_times()
    settings = {"data": a.data, "limit": a.limit, "minutes_per_run": a.minutes, "variants": {n: VARIANTS[n] for n in a.only}, "evaluate": evaluate, "seed": 0}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
