"""Is the blur the two-sample test sees the sampler's or the decoder's, and in which frequencies is it?

Needs trained runs (by default presets_20min.py's 20-minute runs; ``--runs`` names others). For each run,
the classifier two-sample test (C2ST, 3 classifier seeds; 0.5 = indistinguishable) of the decoder's own
reconstructions (decodes of the posterior means) of 1,000 training faces against the run's first 1,000
held-out faces: no sampler can do better than what the decoder draws from the best latents it has.
For the first run, the reconstructions are then split at a Gaussian blur of sigma = 1 px and tested as:

* the reconstruction's low frequencies + the real face's high;
* the real face's low frequencies + the reconstruction's high;
* the reconstructions unsharp-masked, x + A (x - blur x), for each ``--amounts`` A;

each with its high-pass power (mean squared difference from its own sigma = 1 blur, 0-255 scale).

    python experiments/decoder_floor.py                                    # after presets_20min.py
    python experiments/decoder_floor.py --runs runs/seed20 --n 200 --results experiments/out/try.json
"""

from __future__ import annotations

from pathlib import Path

import _record
from _runs import fmt
from blur_baseline import gaussian_low, high_pass_power, to_u8

NAME = "decoder_floor"
QUESTION = "Is the blur the two-sample test catches in the sampler or in the decoder, and at which spatial frequencies?"
DEFAULT_RUNS = [str(_record.HERE / "out" / "presets_20min" / f"{n}20") for n in ("seed", "quality", "sharp")]


def key_figures(results: dict) -> list[str]:
    lines = ["C2ST of reconstructions: " + ", ".join(f"{n} {fmt(r['accuracy'])}" for n, r in results["reconstructions"].items())]
    split = results.get("frequency_split")
    if split:
        lines.append("first run's reconstructions, C2ST: " + ", ".join(f"{n} {fmt(r['accuracy'])}" for n, r in split["sets"].items()))
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--runs", nargs="+", default=DEFAULT_RUNS, help="trained run folders (default: presets_20min.py's seed20 quality20 sharp20)")
    p.add_argument("--n", type=int, default=1000, help="reconstructions and held-out faces per test (default 1000)")
    p.add_argument("--seeds", type=int, default=3, help="classifier seeds (default 3)")
    p.add_argument("--sigma", type=float, default=1.0, help="where the frequencies are split, px (default 1)")
    p.add_argument("--amounts", type=float, nargs="*", default=[2.0, 5.0], help="unsharp-mask amounts (default: 2 5)")
    a = p.parse_args()
    runs_present = [r for r in a.runs if (Path(r) / "model.safetensors").is_file()]
    if not runs_present:
        raise SystemExit(f"no trained run among {a.runs}: run experiments/presets_20min.py first, or pass --runs")

    import numpy as np
    import torch

    from animevae import runs
    from animevae.config import DataConfig
    from animevae.evaluation.report import load_eval_data
    from animevae.evaluation.two_sample import classifier_two_sample_test
    from animevae.sampling.generate import decode_latents, encode_images, load_model

    def test(x, held) -> dict:
        r = classifier_two_sample_test(x, held, seeds=range(a.seeds))
        return {"accuracy": round(r["accuracy"], 3), "per_seed": [round(v, 3) for v in r["per_seed"]], "high_pass_power": round(high_pass_power(x), 1)}

    recons, split = {}, None
    for i, run in enumerate(runs_present):
        model = load_model(run)
        held, train_images, train_pos, _, _ = load_eval_data(runs.load_run_config(run), DataConfig(source=a.data), model.config.image_size, a.n)
        pos = np.sort(train_pos[np.linspace(0, len(train_pos) - 1, a.n).round().astype(np.int64)])
        faces = torch.from_numpy(np.ascontiguousarray(train_images[pos]))
        recon = decode_latents(model, encode_images(model, faces))
        recons[Path(run).name] = test(recon, held)
        print(f"{Path(run).name}: reconstructions C2ST {recons[Path(run).name]['accuracy']:.3f}", flush=True)
        if i == 0:
            real, rec = faces.float(), recon.float()

            def low(x):
                return gaussian_low(x, a.sigma)

            sets = {
                "recon_low_real_high": to_u8(low(rec) + real - low(real)),
                "real_low_recon_high": to_u8(low(real) + rec - low(rec)),
                **{f"unsharp_{v:g}": to_u8(rec + v * (rec - low(rec))) for v in a.amounts},
            }
            split = {"run": Path(run).name, "sigma": a.sigma, "held_out_high_pass_power": round(high_pass_power(held), 1), "sets": {}}
            for name, x in sets.items():
                split["sets"][name] = test(x, held)
                print(f"  {name}: C2ST {split['sets'][name]['accuracy']:.3f}", flush=True)
    commands = ["reconstructions = decode_latents(model, encode_images(model, training_faces)); classifier_two_sample_test(SET, held_out, seeds=range(3))"]
    settings = {"data": a.data, "runs": [Path(r).name for r in runs_present], "n": a.n, "seeds": a.seeds, "sigma": a.sigma, "amounts": a.amounts}
    results = {"reconstructions": recons, "frequency_split": split}
    _record.write(a.results, NAME, QUESTION, commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
