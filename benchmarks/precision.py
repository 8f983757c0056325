"""Which precision trains faster on this CPU, bf16 autocast or fp32, and does ``--precision auto`` pick it?

    python benchmarks/precision.py                         # part of `make bench`
    python benchmarks/precision.py --presets seed sharp hierarchical --steps 12 --rounds 2

For each preset, the real training step (``animevae.training.loop.train_step`` on real faces through the real
augmentation, channels-last) is timed in bf16 and in fp32, alternating, ``--rounds`` times each, the best
round kept; beside it the bf16 / fp32 matmul rate that ``--precision auto`` measures
(``animevae.training.system.bf16_matmul_speedup``) and the precision it picks here. AVX512-BF16 alone does not
make bf16 pay: it did on an AMD EPYC (bf16 matmuls 2.2x as fast as fp32), not on an Intel Xeon without AMX.
Writes benchmarks/results/precision.json.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from peak import SHARED, real_batches, step_rate  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else "builtin")
    p.add_argument("--presets", nargs="+", default=["seed", "sharp", "hierarchical"])
    p.add_argument("--steps", type=int, default=12, help="timed steps per round (batch 64)")
    p.add_argument("--rounds", type=int, default=2, help="rounds per precision, alternating; the best is kept")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "precision.json"), help="'' = write nothing")
    a = p.parse_args()
    from animevae.training.system import BF16_MIN_SPEEDUP, bf16_matmul_speedup, cpu_has_bf16, pick_precision

    speedup = bf16_matmul_speedup()
    auto = pick_precision("auto", torch.device("cpu"))
    auto_name = "bf16" if auto is torch.bfloat16 else "fp32"
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores; native bf16 instructions: {cpu_has_bf16()}; bf16 matmul "
        f"{speedup:.2f}x fp32's (auto picks bf16 from {BF16_MIN_SPEEDUP}x): auto picks {auto_name}",
        flush=True,
    )
    batches = real_batches(a.data, a.steps, 64)
    presets: dict = {}
    for preset in a.presets:
        best = {"bf16": 0.0, "fp32": 0.0}
        for r in range(a.rounds):
            for precision in ("bf16", "fp32") if r % 2 == 0 else ("fp32", "bf16"):
                rate, _ = step_rate(preset, precision, batches, profile=False)
                best[precision] = max(best[precision], rate)
        ratio = best["bf16"] / best["fp32"]
        faster = "bf16" if ratio > 1 else "fp32"
        presets[preset] = {"bf16_step_img_s": round(best["bf16"]), "fp32_step_img_s": round(best["fp32"]), "bf16_over_fp32": round(ratio, 2), "faster": faster}
        print(f"{preset:>12}: bf16 {best['bf16']:.0f} img/s, fp32 {best['fp32']:.0f} img/s: bf16 {ratio:.2f}x ({faster} faster)", flush=True)
    agrees = all(v["faster"] == auto_name for v in presets.values())
    print(f"auto picks {auto_name}: {'the faster one for every preset' if agrees else 'NOT the faster one for every preset'}")
    figures = {"bf16_matmul_speedup": round(speedup, 2), "auto_picks": auto_name, "auto_picks_the_faster": agrees, "presets": presets}
    if a.json:
        sys.path.insert(0, str(ROOT / "experiments"))
        import _record

        key = [f"bf16 matmul {speedup:.2f}x fp32's: auto picks {auto_name}"] + [
            f"{name}: bf16 {v['bf16_step_img_s']} img/s, fp32 {v['fp32_step_img_s']} img/s ({v['bf16_over_fp32']}x)" for name, v in presets.items()
        ]
        settings = {"data": a.data, "presets": a.presets, "steps": a.steps, "rounds": a.rounds, "batch": 64, "min_speedup": BF16_MIN_SPEEDUP}
        question = "Which precision trains faster on this CPU, bf16 autocast or fp32, and does --precision auto pick it?"
        _record.write(a.json, "precision", question, [_record.invocation()], settings, figures, key)


if __name__ == "__main__":
    main()
