"""Training speed on a CUDA GPU, and what 100 epochs of the seed's data set would take there.

    python benchmarks/gpu_speed.py            # on a machine with a CUDA GPU

Trains 3 epochs on 20,000 built-in faces (the images' content does not change the speed; built-in
faces need no download) with ``--device cuda``: the seed preset at batch 64 (the seed's), the sharp
preset (which ends by fitting its gmm sampler on the GPU), and the seed preset at batch 256. Reads
each epoch's images/s from metrics.jsonl and estimates 100 epochs over the Hub dataset's 63,565 faces
from the last epoch's rate (the first epoch includes warm-up). Writes benchmarks/results/gpu_speed.json.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
HUB_FACES = 63_565  # rows of DrishtiSharma/Anime-Face-Dataset that pass the seed's RGB filter
RUNS = {"seed, batch 64": ["--preset", "seed"], "sharp, batch 64": ["--preset", "sharp"], "seed, batch 256": ["--preset", "seed", "--batch-size", "256"]}


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_speed.py: no CUDA GPU here")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in RUNS.items():
            out = Path(tmp) / name.replace(", ", "_").replace(" ", "")
            cmd = [sys.executable, "-m", "animevae", "train", "--data", "builtin", "--builtin-count", "20000", "--epochs", "3", "--device", "cuda"]
            start = time.perf_counter()
            subprocess.run([*cmd, *extra, "--out", str(out), "--quiet"], check=True)
            wall = time.perf_counter() - start
            rates = [json.loads(line)["images_per_s"] for line in (out / "metrics.jsonl").read_text().splitlines()]
            results[name] = {
                "images_per_s_by_epoch": [round(r) for r in rates],
                "wall_seconds_3_epochs": round(wall, 1),
                "hours_for_100_epochs_of_63565": round(100 * HUB_FACES / rates[-1] / 3600, 2),
            }
            print(name, results[name], flush=True)
    record = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "results": results}
    path = ROOT / "benchmarks" / "results" / "gpu_speed.json"
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
