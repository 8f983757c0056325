"""Training speed: the seed notebook's way against animevae's default path, on the same data, in one run.

    python benchmarks/train_speed.py                 # `make bench`
    python benchmarks/train_speed.py --limit 4000 --epochs 3 --rounds 2 [--memory]

Baseline (the seed's way): a torch DataLoader over the dataset that decodes every JPEG with PIL each
time, per-image PIL resize / flip p=0.5 / rotation +-10 deg (torchvision's defaults: nearest, black
fill), ToTensor, fp32, eager, batch 64, Adam, the seed model built from plain torch.nn layers. Project: ``animevae train`` with its
defaults. Both run as separate processes (so peak memory is each one's own), alternating, for the
same epochs over the same training rows from the same initial weights; then both final models are
scored on the same held-out rows with the same fp32 evaluation.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "anime-faces-96"
RESULTS = ROOT / "benchmarks" / "results"


def notebook_vae():
    """The seed model as a notebook builds it: torch.nn's own Conv2d / ConvTranspose2d everywhere, so
    none of animevae's CPU kernels (fastconv.py) speed up the baseline. Same modules, names and
    initial weights as ``animevae.models.vae.VAE()`` (so either side's weights load into the other)."""
    from torch import nn

    from animevae.models.vae import VAE

    model = VAE()
    for blocks in (model.encoder, model.decoder):
        for i, block in enumerate(blocks):
            holder, key = (block, 0) if isinstance(block, nn.Sequential) else (blocks, i)
            conv = holder[key]
            plain = (nn.ConvTranspose2d if isinstance(conv, nn.ConvTranspose2d) else nn.Conv2d)(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding
            )
            plain.load_state_dict(conv.state_dict())
            holder[key] = plain
    assert not any(type(m).__module__ == "animevae.models.fastconv" for m in model.modules())
    return model


def baseline_worker(a) -> None:
    """The notebook's loop, written the way the seed describes it."""
    from PIL import Image

    from animevae.config import DataConfig
    from animevae.data.sources import open_source
    from animevae.data.split import split_rows
    from animevae.runs import save_tensors
    from animevae.training.objectives import elbo_terms

    torch.manual_seed(0)
    random.seed(0)
    source = open_source(DataConfig(source=a.data, limit=a.limit))
    train_rows, _ = split_rows(source.num_rows, 0.05, 0)

    class NotebookDataset(torch.utils.data.Dataset):
        def __len__(self):
            return len(train_rows)

        def __getitem__(self, i):
            row = int(train_rows[i])
            data = source.read(row, row + 1)[0]
            img = Image.fromarray(data) if isinstance(data, np.ndarray) else Image.open(io.BytesIO(data))
            img = img.resize((96, 96), Image.BILINEAR)  # Resize
            if random.random() < 0.5:  # RandomHorizontalFlip
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            img = img.rotate(random.uniform(-10, 10), Image.NEAREST)  # RandomRotation(10)
            return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)  # ToTensor

    loader = torch.utils.data.DataLoader(NotebookDataset(), batch_size=64, shuffle=True, drop_last=True)
    model = notebook_vae()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    windows, start, t0 = [], time.perf_counter(), time.perf_counter()
    for _ in range(a.epochs):
        mus, logvars = [], []
        for i, x in enumerate(loader, 1):
            out = model(x)
            loss, _, _ = elbo_terms(out, x, beta=1.0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            mus.append(out.mu.detach())  # the notebook keeps each batch's latents as it trains
            logvars.append(out.logvar.detach())
            if i % 5 == 0:
                now = time.perf_counter()
                windows.append(5 * 64 / (now - t0))
                t0 = now
        # end of epoch, as the seed does: save the model, then the latents
        save_tensors(model.state_dict(), Path(a.out) / "model.safetensors")
        save_tensors({"mu": torch.cat(mus), "logvar": torch.cat(logvars)}, Path(a.out) / "latents.safetensors")
        t0 = time.perf_counter()
    seen = a.epochs * (len(train_rows) // 64) * 64
    (Path(a.out) / "result.json").write_text(json.dumps({"windows": windows[1:] or windows, "seen": seen, "loop_seconds": time.perf_counter() - start}))


def timed(cmd: list[str], env=None) -> tuple[float, int]:
    """Run a command; return wall seconds and its peak resident memory (MB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})})
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed ({proc.returncode}): {' '.join(cmd)}")
    return time.perf_counter() - t, usage.ru_maxrss // 1024


def heldout(run_weights: Path, data: str, limit: int, cache_dir: str) -> float:
    from animevae.config import DataConfig
    from animevae.data.cache import load_images
    from animevae.data.device import DeviceImages
    from animevae.data.split import split_rows
    from animevae.models.vae import VAE, load_weights
    from animevae.training.passes import heldout_loss

    faces = load_images(DataConfig(source=data, limit=limit, cache_dir=cache_dir), 96, progress=False)
    _, val = split_rows(len(faces), 0.05, 0)
    model = VAE()
    load_weights(model, run_weights)
    model.eval()
    return heldout_loss(model, DeviceImages(faces.images, torch.device("cpu")), val, 256, None, 1.0, 0)["loss"]


def cache_speed(data: str) -> float:
    from animevae.config import DataConfig
    from animevae.data.cache import load_images
    from animevae.data.sources import open_source

    cfg = DataConfig(source=data, cache_dir=tempfile.mkdtemp(prefix="bench-cache-"))
    source = open_source(cfg)
    t = time.perf_counter()
    load_images(cfg, 96, progress=False, source=source)
    return source.num_rows / (time.perf_counter() - t)


def project_round(a, run: Path, env: dict, into: dict, cache_dir: str, label: str) -> None:
    """One ``animevae train`` process with the project's defaults; its timed windows, wall-clock rate, memory and held-out loss."""
    cmd = [sys.executable, "-m", "animevae", "train", "--data", a.data, "--limit", str(a.limit), "--epochs", str(a.epochs), "--out", str(run)]
    wall, mem = timed([*cmd, "--quiet", "--keep-last", "0", *a.project_args.split()], env)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    into["win"] += [x["images_per_s"] for x in lines[1:]] or [lines[0]["images_per_s"]]
    into["wall"].append(sum(x["images_per_s"] * x["seconds"] for x in lines) / wall)  # the images it trained on
    into["mem"].append(mem)
    into["loss"].append(heldout(run / "model.safetensors", a.data, a.limit, cache_dir))
    recent = statistics.median(into["win"][-max(1, a.epochs - 1) :])
    print(f"{label} {recent:.0f} img/s, held-out {into['loss'][-1]:.1f}, peak {mem} MB", flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else "builtin")
    p.add_argument("--limit", type=int, default=4000)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--project-args", default="", help='extra `animevae train` options for the project side, e.g. "--batch-size 128"')
    p.add_argument("--reference-src", help="also run the project side from this src/ folder (e.g. an older checkout's), alternating, and compare")
    p.add_argument("--memory", action="store_true", help="also train 1 epoch on 63,565 faces and report peak memory")
    p.add_argument("--json", default=str(RESULTS / "train_speed.json"), help="write the figures here (default: benchmarks/results/train_speed.json; '' = none)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker == "baseline":
        return baseline_worker(a)

    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="animevae-bench-"))
    cache_dir = str(work / "cache")
    env = {"ANIMEVAE_CACHE": cache_dir}
    print(
        f"data: {a.data} (first {a.limit}), {a.epochs} epochs x {a.rounds} rounds, torch {torch.__version__}, "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} threads",
        flush=True,
    )
    cache_rate = cache_speed(a.data)
    print(f"cache build: {cache_rate:,.0f} images/s (decode + filter + resize, {os.cpu_count()} processes)", flush=True)

    base, proj, ref = ({"win": [], "wall": [], "mem": [], "loss": []} for _ in range(3))
    seen = 0
    for r in range(a.rounds):
        out = work / f"baseline{r}"
        out.mkdir()
        wall, mem = timed([py, __file__, "--worker", "baseline", "--data", a.data, "--limit", str(a.limit), "--epochs", str(a.epochs), "--out", str(out)], env)
        res = json.loads((out / "result.json").read_text())
        seen = res["seen"]
        base["win"] += res["windows"]
        base["wall"].append(seen / wall)
        base["mem"].append(mem)
        base["loss"].append(heldout(out / "model.safetensors", a.data, a.limit, cache_dir))
        print(f"round {r + 1} baseline: {statistics.median(res['windows']):.0f} img/s, held-out {base['loss'][-1]:.1f}, peak {mem} MB", flush=True)

        project_round(a, work / f"project{r}", env, proj, cache_dir, f"round {r + 1} project:  ")
        if a.reference_src:
            project_round(a, work / f"reference{r}", {**env, "PYTHONPATH": a.reference_src}, ref, cache_dir, f"round {r + 1} reference:")

    b, q = statistics.median(base["win"]), statistics.median(proj["win"])
    bl, ql = statistics.mean(base["loss"]), statistics.mean(proj["loss"])
    print(
        "\n| path | images/s (median timed window after warm-up: data path + augmentation + step) | wall-clock images/s "
        f"(process start to exit: start-up, per-epoch latents, held-out loss, saves) | held-out loss after {seen:,} images (fp32 eval) | peak memory |"
    )
    print("|---|---|---|---|---|")
    print(f"| baseline (seed's way) | {b:.0f} | {statistics.median(base['wall']):.0f} | {bl:.1f} | {max(base['mem'])} MB |")
    print(f"| animevae defaults | {q:.0f} | {statistics.median(proj['wall']):.0f} | {ql:.1f} | {max(proj['mem'])} MB |")
    print(
        f"\nspeed-up: {q / b:.2f}x images/s (timed windows), {statistics.median(proj['wall']) / statistics.median(base['wall']):.2f}x wall clock; "
        f"held-out loss difference {100 * (ql - bl) / bl:+.2f}%"
    )
    side = lambda d: {  # noqa: E731
        "images_per_s": round(statistics.median(d["win"]), 1),
        "wall_clock_images_per_s": round(statistics.median(d["wall"]), 1),
        "heldout_loss": round(statistics.mean(d["loss"]), 1),
        "peak_rss_mb": max(d["mem"]),
    }
    figures = {
        "baseline": side(base),
        "project": side(proj),
        "speedup_images_per_s": round(q / b, 3),
        "speedup_wall_clock": round(statistics.median(proj["wall"]) / statistics.median(base["wall"]), 3),
        "heldout_loss_difference_percent": round(100 * (ql - bl) / bl, 2),
        "images_trained": seen,
        "cache_build_images_per_s": round(cache_rate),
    }
    if a.reference_src:
        rq, rl = statistics.median(ref["win"]), statistics.mean(ref["loss"])
        figures["reference"] = side(ref)
        print(
            f"against --reference-src {a.reference_src}: {rq:.0f} img/s (timed windows), {statistics.median(ref['wall']):.0f} wall clock, "
            f"held-out {rl:.1f}; this code / reference: {q / rq:.3f}x timed windows, "
            f"{statistics.median(proj['wall']) / statistics.median(ref['wall']):.3f}x wall clock"
        )

    if a.memory:
        wall, mem = timed(
            [
                py,
                "-m",
                "animevae",
                "train",
                "--data",
                "builtin",
                "--builtin-count",
                "63565",
                "--epochs",
                "1",
                "--out",
                str(work / "memory"),
                "--quiet",
                "--keep-last",
                "0",
            ],
            env,
        )
        line = json.loads((work / "memory" / "metrics.jsonl").read_text().splitlines()[-1])
        print(
            f"memory: 1 epoch over 63,565 faces: peak {mem} MB resident, {wall:.0f} s wall (incl. rendering + caching the faces); "
            f"the epoch: {line['seconds']:.0f} s training at {line['images_per_s']:.0f} images/s + {line['eval_seconds']:.0f} s for the "
            f"held-out loss and every training image's latents"
        )
        figures["memory_63565_faces"] = {
            "peak_rss_mb": mem,
            "wall_seconds": round(wall),
            "train_seconds": round(line["seconds"]),
            "train_images_per_s": round(line["images_per_s"]),
            "heldout_and_latents_seconds": round(line["eval_seconds"]),
        }
    if a.json:
        write_json(a, figures)


def write_json(a, figures: dict) -> None:
    """The figures as a result file of the same form as the experiments' (experiments/_record.py)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import _record

    settings = {"data": a.data, "limit": a.limit, "epochs": a.epochs, "rounds": a.rounds, "project_args": a.project_args, "memory": a.memory}
    key = [
        f"{figures['project']['images_per_s']:.0f} against {figures['baseline']['images_per_s']:.0f} img/s ({figures['speedup_images_per_s']:.2f}x; "
        f"wall clock {figures['speedup_wall_clock']:.2f}x), held-out loss {figures['heldout_loss_difference_percent']:+.2f} %"
    ]
    question = "How much faster does animevae train than the seed notebook's loop, at the same held-out loss?"
    _record.write(a.json, "train_speed", question, [_record.invocation()], settings, figures, key)


if __name__ == "__main__":
    main()
