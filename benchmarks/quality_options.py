"""The effect of each option beyond the seed, at the same training budget, measured by `animevae evaluate`.

    python benchmarks/quality_options.py [--limit 8000] [--epochs 4] [--out /tmp/quality]

Trains the seed preset and one variant per option (KL warm-up, free bits, EMA, corner fill) plus
the `quality` preset on the same images for the same epochs, evaluates each on the same held-out
faces, and prints a markdown table; the prior-sample grids the documentation shows go to docs/images/.
experiments/quality_options.py asks the same question and records its figures (docs/explanation/experiments.md).
FID/KID use the offline pixel features (not comparable to published FID; Inception is unavailable offline).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "anime-faces-96"

VARIANTS = {
    "seed": [],
    "kl-warmup": ["--kl-warmup-epochs", "2"],
    "free-bits": ["--free-bits", "0.25"],
    "ema": ["--ema", "0.998"],
    "reflect-fill": ["--rotation-fill", "reflection", "--interpolation", "bilinear"],
    "quality-preset": ["--preset", "quality"],
}


SHOWN = ("seed", "quality-preset", "reflect-fill")  # the grids docs/explanation/experiments.md shows


def run(*args) -> None:
    subprocess.run([sys.executable, "-m", "animevae", *map(str, args)], check=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else "builtin")
    p.add_argument("--limit", type=int, default=8000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--out", default="/tmp/animevae-quality")
    p.add_argument("--only", nargs="*", help="variant names to run")
    a = p.parse_args()
    out = Path(a.out)
    rows = []
    for name, extra in VARIANTS.items():
        if a.only and name not in a.only:
            continue
        run_dir = out / name
        if not (run_dir / "evaluation.json").exists():
            run("train", "--data", a.data, "--limit", a.limit, "--epochs", a.epochs, "--out", run_dir, "--overwrite", "--quiet", "--keep-last", "0", *extra)
            run(
                "evaluate",
                "--run",
                run_dir,
                "--data",
                a.data,
                "--limit",
                400,
                "--k",
                8,
                "--n-samples",
                300,
                "--features",
                "animevae.evaluation.features:pixel_features",
                "--out",
                run_dir / "evaluation.json",
            )
            run("generate", "--run", run_dir, "--sampler", "prior", "--n", 32, "--out", run_dir / "prior")
        m = json.loads((run_dir / "evaluation.json").read_text())
        rows.append((name, m))
        if name in SHOWN:
            (ROOT / "docs" / "images").mkdir(parents=True, exist_ok=True)
            (ROOT / "docs" / "images" / f"quality_{name}.png").write_bytes((run_dir / "prior" / "grid.png").read_bytes())
    held = rows[0][1]["data"]["images"] if rows else 0
    print(f"\n{a.limit} images ({a.data}), {a.epochs} epochs each; held-out: {held} faces; 300 samples per sampler\n")
    print("| variant | -ELBO/image | -IWAE bound | recon MSE | PSNR | SSIM | KL | active units | prior FID (pixel) | mix k=4 FID (pixel) | prior diversity |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in rows:
        s, lk, rc = m["samplers"], m["likelihood"], m["reconstruction"]
        print(
            f"| {name} | {lk['neg_elbo_per_image']:.1f} | {lk['neg_iwae_per_image']:.1f} | {rc['mse']:.4f} | {rc['psnr']:.2f} | {rc['ssim']:.3f} | "
            f"{lk['kl_per_image']:.1f} | {m['latents']['active_units']} | {s['prior']['fid']:.2f} | {s['mix_k4']['fid']:.2f} | "
            f"{s['prior']['diversity_rms']:.1f} |"
        )


if __name__ == "__main__":
    main()
