"""Redo a finished hierarchical run's last latents pass as the tool now does it: each face's 12-px detail latents a
posterior draw (``training.passes.encode_rows``, seeded as training seeds it), not the posterior mean, and its 24-px
fine latents beside them (the joint-gmm sampler draws their principal components).

Training itself is unchanged by that step, so a run trained before it needs no retraining to measure its joint-gmm
sampler as a new run would fit it: this rewrites RUN/latents.safetensors (the top latents are kept; the detail
latents are encoded again from the run's training faces, in the file's row order), and removes the run's fitted
joint-gmm file and its evaluation.json, so the next ``python experiments/hierarchical.py --only RUN`` fits and
evaluates it again. Writes a small record of what it did:

    python experiments/redraw_detail.py --runs preset_hier20 --out experiments/out/hier
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import _record
import numpy as np
import torch
from _runs import earlier_results

from animevae import runs
from animevae.config import DataConfig, from_dict
from animevae.data.cache import load_images
from animevae.data.device import DeviceImages
from animevae.sampling.generate import load_model
from animevae.training.passes import PASS_BATCH, encode_rows

NAME = "redraw_detail"
QUESTION = "Which detail latents does a finished hierarchical run get when its last latents pass is redone with posterior draws, as the tool now does it?"


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.set_defaults(out=str(_record.HERE / "out" / "hier"))
    p.add_argument("--runs", nargs="+", default=["preset_hier20"], help="hierarchical runs in --out (default: %(default)s)")
    a = p.parse_args()
    settings = {"data": a.data}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    commands = [*commands, _record.invocation()]
    for name in a.runs:
        run = Path(a.out) / name
        t0 = time.time()
        config = json.loads((run / runs.CONFIG).read_text())
        model = load_model(str(run))
        faces = load_images(replace(from_dict(DataConfig, config["data"], "config.json data"), source=a.data), model.config.image_size)
        latents = runs.Latents.load(run / runs.LATENTS)
        positions = np.searchsorted(faces.row_ids, latents.row_id.numpy())
        if not np.array_equal(faces.row_ids[positions], latents.row_id.numpy()):
            raise SystemExit(f"{run}: its latents name rows that {a.data} does not hold")
        data = DeviceImages(faces.images, torch.device("cpu"))
        seed = config["train"].get("seed", 0) * 1000  # rank 0's seed in the last latents pass
        _, _, detail, fine = encode_rows(model.folded(), data, positions, PASS_BATCH, None, detail=True, seed=seed)
        was = latents.detail
        runs.Latents(latents.mu, latents.logvar, latents.row_id, detail, fine if fine.shape[1] else None).save(run / runs.LATENTS)
        for stale in [*run.glob("joint_gmm_*_*.safetensors"), run / "evaluation.json"]:
            stale.unlink(missing_ok=True)
        rows[name] = {
            "faces": len(detail),
            "seconds": round(time.time() - t0, 1),
            "means_rms": round(float(was.pow(2).mean().sqrt()), 4) if was is not None else None,
            "draws_rms": round(float(detail.pow(2).mean().sqrt()), 4),
        }
        print(name, rows[name], flush=True)
    figures = [f"{n}: {r['faces']:,} faces, detail RMS {r['means_rms']} (means) -> {r['draws_rms']} (draws)" for n, r in rows.items()]
    _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)


if __name__ == "__main__":
    main()
