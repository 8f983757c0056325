"""Does a GPU's budget put 96-px detail into the sharp preset's faces?

The 20-minute CPU budget shows the sharp preset about 340,000 images. A GPU shows it that many in under a
minute, so one machine with a GPU answers whether the missing 96-px detail is a matter of training
longer. Both runs train ``--preset sharp`` on the same faces on the GPU: ``cpu20`` for the images a
20-minute CPU run sees (48 epochs), ``long`` for ``--minutes`` of GPU time. The weights come back and are
evaluated here as the CPU experiments evaluate theirs, against real faces neither run saw.

The GPU machine has no ``datasets`` package and takes a small working tree, so the training faces are one
parquet shard of the shared faces (7,500), written as the JPEG files the shard holds (``faces``); the
held-out faces are the first ``--eval-limit`` of another shard.

    python experiments/gpu_budget.py faces --to .gpu/faces                 # here: shard 0's JPEG bytes as files
    python experiments/gpu_budget.py train --faces .gpu/faces --runs DIR   # on the GPU machine: both runs, weights into DIR
    python experiments/gpu_budget.py evaluate --runs DIR                   # here: latents, gmm, evaluation, the JSON
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import _record
import numpy as np
import torch
from _runs import Steps, detail_figures, evaluate_flags, summarize

NAME = "gpu_budget"
QUESTION = "Does training the sharp preset for a GPU's budget (4.5x the images of 20 CPU minutes) put 96-px detail into its faces?"
TRAIN_SHARD, HELDOUT_SHARD = "train-00000-of-00004.parquet", "train-00003-of-00004.parquet"
FLAGS = ["--preset", "sharp", "--device", "cuda"]
CPU20_EPOCHS = 48  # 48 x 7,125 training faces = 342,000 images: what the 20-minute CPU run saw (338,880)
KEPT = ("config.json", "metrics.jsonl", "model.safetensors")  # what comes back; latents are re-encoded here (they are 33 MB)


def write_faces(data: str, to: Path) -> None:
    """The training shard's images as files: the JPEG bytes as stored, one file per row, in row order."""
    import pyarrow.parquet as pq

    to.mkdir(parents=True, exist_ok=True)
    table = pq.read_table(Path(data) / TRAIN_SHARD, columns=["image"])
    for i, cell in enumerate(table.column("image").to_pylist()):
        (to / f"{i:05d}.jpg").write_bytes(cell["bytes"])
    print(f"wrote {table.num_rows} faces to {to}")


def train(faces: str, out: Path, minutes: float) -> None:
    """Both runs on the GPU, in a scratch folder; the files in KEPT of each into OUT/<run>/."""
    work = Path(tempfile.mkdtemp(prefix=f"{NAME}-"))
    steps = Steps(work, faces, fresh=True)
    budgets = {"cpu20": {"epochs": CPU20_EPOCHS}, "long": {"epochs": 1000, "minutes": minutes}}
    for name, budget in budgets.items():
        start = time.perf_counter()
        steps.train(name, FLAGS, **budget)
        (out / name).mkdir(parents=True, exist_ok=True)
        for f in KEPT:
            shutil.copy(work / name / f, out / name / f)
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    info = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "commands": steps.commands}
    (out / "trained_on.json").write_text(json.dumps(info, indent=2) + "\n")


def write_latents(run: Path) -> None:
    """The run's latents.safetensors, as training writes it at its end: a clean pass (eval mode, no augmentation)
    of the final weights over every training face."""
    from animevae.config import DataConfig, from_dict
    from animevae.data.cache import load_images
    from animevae.data.device import DeviceImages
    from animevae.data.split import split_rows
    from animevae.models.vae import VAE
    from animevae.runs import LATENTS, Latents, load_run_config
    from animevae.training.passes import PASS_BATCH, encode_rows

    config = load_run_config(str(run))
    faces = load_images(from_dict(DataConfig, config["data"]), config["model"]["image_size"], progress=False)
    train_pos, _ = split_rows(len(faces), config["train"]["val_fraction"], config["train"]["seed"])
    model = VAE.from_pretrained(str(run)).eval()
    mu, logvar = encode_rows(model, DeviceImages(faces.images, torch.device("cpu")), train_pos, PASS_BATCH, None)
    Latents(mu, logvar, torch.from_numpy(np.asarray(faces.row_ids)[train_pos])).save(run / LATENTS, {"pass": "clean"})


def evaluate(a) -> None:
    trained = json.loads((Path(a.runs) / "trained_on.json").read_text())
    steps = Steps(a.runs, str(Path(a.data) / HELDOUT_SHARD))
    steps.commands = [*trained["commands"]]
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, "gmm", "gmm", a.c2st_seeds)
    rows = {}
    for name in ("cpu20", "long"):
        if not (Path(a.runs) / name / "latents.safetensors").is_file():
            write_latents(Path(a.runs) / name)
        steps.note(f"python experiments/gpu_budget.py evaluate  # {name}: latents.safetensors re-encoded from the weights")
        if steps.done(name):
            steps.commands.append(steps.shown(steps.evaluate_args(name, evaluate)))
        else:
            steps.evaluate(name, evaluate)
        rows[name] = {"flags": " ".join(FLAGS), **summarize(Path(a.runs) / name)}
    settings = {"data": a.data, "train_faces": f"{TRAIN_SHARD} (7,500)", "heldout": f"first {a.eval_limit} of {HELDOUT_SHARD}", "evaluate": evaluate}
    settings |= {"trained_on": {"gpu": trained["gpu"], "torch": trained["torch"]}}
    _record.write(a.results, NAME, QUESTION, steps.commands, settings, {"runs": rows}, detail_figures(rows))


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=4.0)
    p.add_argument("step", choices=["faces", "train", "evaluate"])
    p.add_argument("--to", default=".gpu/faces", help="faces: the folder to write the training shard's faces into")
    p.add_argument("--faces", default=".gpu/faces", help="train: the training faces")
    p.add_argument("--runs", default=str(_record.HERE / "out" / NAME), help="train: where the weights go; evaluate: where they are")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces evaluated (default %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="faces drawn from each run's gmm sampler (default %(default)s)")
    p.add_argument("--k", type=int, default=8, help="importance samples of the IWAE bound (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default %(default)s)")
    a = p.parse_args()
    if a.step == "faces":
        write_faces(a.data, Path(a.to))
    elif a.step == "train":
        if not torch.cuda.is_available():
            sys.exit("gpu_budget.py train: no CUDA GPU here")
        train(a.faces, Path(a.runs), a.minutes)
    else:
        evaluate(a)


if __name__ == "__main__":
    main()
