"""How much of the machine a training step uses: images/s against the matrix peak measured in the same run.

    python benchmarks/peak.py                    # part of `make bench`
    python benchmarks/peak.py --presets seed sharp --steps 30

1. The machine's matmul peak, bf16 and fp32: 2048 x 2048 squared in a loop (the best of a few tries).
2. The model's FLOPs per training image (forward + backward), counted by torch's FlopCounterMode on the
   step the project runs (its objective and model: the sharp preset's spatial latent; an adversarial run's discriminator).
3. For each preset: steady images/s of the real training step (``animevae.training.loop.train_step`` on real
   faces through the real augmentation, channels-last, the preset's precision), then GFLOP/s and the
   fraction of the peak; and the end-to-end rate of a middle ``animevae train`` epoch (wall clock: its
   steps, per-epoch passes, files and checkpoint).
4. Where a step's time goes: torch.profiler's operators grouped into conv forward, conv backward
   (weight and input gradients: oneDNN computes them in one call), GEMMs (fastconv's im2col paths and
   the linear layers), BatchNorm, activations, casts/copies, the optimizer, augmentation, and the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "anime-faces-96"
RESULTS = ROOT / "benchmarks" / "results"

GROUPS = [  # (group, operator-name fragments), first match wins
    ("conv backward (weight + input grads)", ("convolution_backward",)),
    ("conv forward", ("mkldnn_convolution", "_convolution", "conv2d", "conv_transpose")),
    ("GEMMs (im2col paths, linear)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul")),
    ("BatchNorm", ("batch_norm",)),
    ("activations", ("leaky_relu", "sigmoid", "log_sigmoid", "softplus", "relu")),
    ("casts / copies / layout", ("aten::copy_", "aten::_to_copy", "aten::to", "contiguous", "aten::clone", "im2col", "col2im")),
    ("optimizer", ("adam", "_foreach")),
    ("augmentation (grid_sample)", ("grid_sampler", "affine_grid")),
]


def matmul_peak(dtype: torch.dtype, n: int = 2048, tries: int = 5) -> float:
    """GFLOP/s of an n x n x n matmul in ``dtype``, the best of ``tries`` timed loops."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best = 0.0
    for _ in range(tries):
        reps = 10
        t = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = max(best, 2 * n**3 * reps / (time.perf_counter() - t) / 1e9)
    return best


def make_state(preset: str, precision: str):
    from animevae.config import resolve_configs
    from animevae.training.state import TrainState, build_model
    from animevae.training.system import System

    model_cfg, cfg, _ = resolve_configs({"precision": precision, "adv_start_epochs": 0.0}, preset)
    system = System.setup("cpu", cfg.precision, cfg.channels_last)
    torch.manual_seed(0)
    state = TrainState.create(build_model(model_cfg, cfg), cfg, system, steps_per_epoch=1000)
    return state, cfg, system


def real_batches(data: str, n: int, batch: int):
    from animevae.config import DataConfig
    from animevae.data.cache import load_images

    faces = load_images(DataConfig(source=data, limit=n * batch), 96, progress=False)
    return torch.from_numpy(faces.images[: n * batch].copy()).view(n, batch, 3, 96, 96)


def flops_per_image(preset: str, batch: int) -> float:
    """Forward + backward FLOPs of one training step per image (fp32 count; the same ops in bf16)."""
    from torch.utils.flop_counter import FlopCounterMode

    from animevae.training.loop import train_step

    state, _, _ = make_state(preset, "fp32")
    x = torch.rand(batch, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    train_step(state, state.model, x, False)  # past any lazy set-up
    with FlopCounterMode(display=False) as counter:
        train_step(state, state.model, x, False)
    return counter.get_total_flops() / batch


def step_rate(preset: str, precision: str, batches: torch.Tensor, profile: bool) -> tuple[float, dict[str, float]]:
    """Steady images/s of the real step on real faces (augmentation included); with ``profile``, ms per step by group."""
    from animevae.data.augment import augment
    from animevae.training.loop import train_step

    state, cfg, system = make_state(preset, precision)
    fused = state.optimizers["model"].defaults.get("fused") and not state.scaler.is_enabled()
    gen = torch.Generator().manual_seed(0)

    def one(i: int) -> None:
        x = augment(batches[i % len(batches)], gen, cfg.hflip, cfg.rotation, cfg.rotation_fill, cfg.interpolation)
        train_step(state, state.model, x.contiguous(memory_format=system.memory_format), fused)
        state.progress.step += 1

    for i in range(3):
        one(i)
    n = len(batches)
    t = time.perf_counter()
    for i in range(n):
        one(i)
    rate = n * batches.shape[1] / (time.perf_counter() - t)
    groups: dict[str, float] = {}
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        k = min(n, 5)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(k):
                one(i)
        totals: dict[str, float] = defaultdict(float)
        for ev in prof.key_averages():
            name = ev.key.lower()
            group = next((g for g, keys in GROUPS if any(f.lower() in name for f in keys)), "other")
            totals[group] += ev.self_cpu_time_total / 1000 / k
        groups = dict(sorted(totals.items(), key=lambda kv: -kv[1]))
    return rate, groups


def layer_table(peak_bf16: float, batch: int = 64, reps: int = 10) -> list[tuple]:
    """Each conv layer of the seed model alone, bf16 autocast, channels-last, its own CPU path: forward and
    backward ms and fraction of the bf16 peak; then its BatchNorm + LeakyReLU (memory-bound) forward + backward ms."""
    from torch.utils.flop_counter import FlopCounterMode

    from animevae.config import ModelConfig
    from animevae.models.fastconv import Conv2d, ConvTranspose2d
    from animevae.models.vae import VAE

    model = VAE(ModelConfig()).to(memory_format=torch.channels_last).train()
    inputs: dict[torch.nn.Module, torch.Tensor] = {}

    def keep(m, i, o) -> None:
        inputs.setdefault(m, i[0].detach())

    hooks = [m.register_forward_hook(keep) for m in model.modules() if isinstance(m, (Conv2d, ConvTranspose2d))]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(torch.rand(batch, 3, 96, 96).contiguous(memory_format=torch.channels_last))
    for h in hooks:
        h.remove()
    rest = {seq[0]: torch.nn.Sequential(*seq[1:]) for seq in model.modules() if isinstance(seq, torch.nn.Sequential) and seq[0] in inputs and len(seq) > 1}

    def timed(fn) -> float:
        for _ in range(2):
            fn()
        t = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - t) / reps * 1000

    rows = []
    for layer, x in inputs.items():
        x = x.float().contiguous(memory_format=torch.channels_last).requires_grad_(x.shape[1] != 3)

        def fwd(layer=layer, x=x):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return layer(x)

        y = fwd()
        grad = torch.randn(y.shape, dtype=y.dtype).contiguous(memory_format=torch.channels_last)
        with FlopCounterMode(display=False) as counter:
            (F.conv_transpose2d if isinstance(layer, ConvTranspose2d) else F.conv2d)(x.detach(), layer.weight, layer.bias, 2, 1)
        fwd_flops = counter.get_total_flops()
        t_fwd = timed(fwd)
        t_bwd = timed(lambda fwd=fwd, grad=grad: fwd().backward(grad)) - t_fwd
        bwd_flops = fwd_flops * (2 if x.requires_grad else 1)
        name = f"{'dec' if isinstance(layer, ConvTranspose2d) else 'enc'} {layer.in_channels}->{layer.out_channels} at {x.shape[-1]} px ({layer.path})"
        t_norm = None
        if layer in rest:
            a = y.detach().requires_grad_()

            def norm(a=a, block=rest[layer]):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return block(a)

            t_norm = timed(lambda norm=norm, grad=grad: norm().backward(grad))
        rows.append((name, t_fwd, fwd_flops / t_fwd / 1e6 / peak_bf16, t_bwd, bwd_flops / t_bwd / 1e6 / peak_bf16, t_norm))
    return rows


def epoch_rate(preset: str, data: str, limit: int) -> dict:
    """``animevae train`` for 3 epochs. A middle epoch, end to end, is the wall clock between the sample grids
    of epochs 1 and 2 (the last files each epoch's end writes): epoch 1's checkpoint, epoch 2's steps, its
    per-epoch passes (held-out loss, latents, grid) and its files. The last epoch's extra clean latents pass
    (once per run) is reported apart."""
    with tempfile.TemporaryDirectory() as work:
        out = Path(work) / "run"
        cmd = [sys.executable, "-m", "animevae", "train", "--data", data, "--limit", str(limit), "--epochs", "3", "--preset", preset, "--adv-start-epochs", "0"]
        subprocess.run([*cmd, "--out", str(out), "--quiet", "--keep-last", "0"], check=True, env={**os.environ, "ANIMEVAE_CACHE": str(Path(work) / "cache")})
        lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
        grids = [(out / "samples" / f"epoch_{e:03d}.png").stat().st_mtime_ns / 1e9 for e in (1, 2)]
    middle, last = lines[1], lines[2]
    images = middle["images_per_s"] * middle["seconds"]
    return {
        "train_img_s": middle["images_per_s"],
        "end_to_end_img_s": images / (grids[1] - grids[0]),
        "epoch_seconds": grids[1] - grids[0],
        "train_seconds": middle["seconds"],
        "pass_seconds": middle["eval_seconds"],
        "last_pass_seconds": last["eval_seconds"],
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else "builtin")
    p.add_argument("--presets", nargs="+", default=["seed", "sharp"])
    p.add_argument("--steps", type=int, default=20, help="timed steps per preset (batch 64)")
    p.add_argument("--epoch-limit", type=int, default=6000, help="faces in the end-to-end `animevae train` epochs (0: skip)")
    p.add_argument("--no-layers", dest="layers", action="store_false", help="skip the per-layer table")
    p.add_argument("--json", default=str(RESULTS / "peak.json"), help="write the figures here (default: benchmarks/results/peak.json; '' = none)")
    a = p.parse_args()
    figures: dict = {"presets": {}}
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} threads", flush=True)
    peak = {"bf16": matmul_peak(torch.bfloat16), "fp32": matmul_peak(torch.float32)}
    print(f"matmul peak (2048^3, best of 5): bf16 {peak['bf16']:.0f} GFLOP/s, fp32 {peak['fp32']:.0f} GFLOP/s", flush=True)
    figures["matmul_peak_gflops"] = {k: round(v) for k, v in peak.items()}
    if a.layers:
        print("each conv layer of the seed model alone, batch 64, bf16 (fraction of the bf16 peak), then its BatchNorm + LeakyReLU forward + backward:")
        total, layer_rows = [0.0, 0.0, 0.0, 0.0], []
        for name, t_fwd, f_fwd, t_bwd, f_bwd, t_norm in layer_table(peak["bf16"]):
            layer_rows.append(
                {
                    "layer": name,
                    "forward_ms": round(t_fwd, 1),
                    "forward_fraction_of_peak": round(f_fwd, 2),
                    "backward_ms": round(t_bwd, 1),
                    "backward_fraction_of_peak": round(f_bwd, 2),
                    "bn_leakyrelu_ms": None if t_norm is None else round(t_norm, 1),
                }
            )
            norm = f"; BN + LeakyReLU {t_norm:5.1f} ms" if t_norm is not None else ""
            print(f"  {name:<42} forward {t_fwd:5.1f} ms ({f_fwd:.2f})  backward {t_bwd:5.1f} ms ({f_bwd:.2f}){norm}", flush=True)
            at_peak = t_fwd * f_fwd + t_bwd * f_bwd  # the same FLOPs at the peak rate
            total = [total[0] + t_fwd, total[1] + t_bwd, total[2] + (t_norm or 0.0), total[3] + at_peak]
        print(
            f"  all layers: convs forward {total[0]:.0f} ms + backward {total[1]:.0f} ms (at the peak: {total[3]:.0f} ms); BN + LeakyReLU {total[2]:.0f} ms",
            flush=True,
        )
        all_layers = {"forward_ms": round(total[0]), "backward_ms": round(total[1]), "bn_leakyrelu_ms": round(total[2]), "at_peak_ms": round(total[3])}
        figures["layers"] = {"rows": layer_rows, "all": all_layers}
    batches = real_batches(a.data, a.steps, 64)
    rows = []
    for preset in a.presets:
        gflop = flops_per_image(preset, 64) / 1e9
        for precision in ("bf16", "fp32"):
            rate, groups = step_rate(preset, precision, batches, profile=precision == "bf16")
            rows.append((preset, precision, rate, gflop, rate * gflop, rate * gflop / peak[precision]))
            entry = figures["presets"].setdefault(preset, {"gflop_per_image": round(gflop, 3)})
            entry[f"{precision}_step_img_s"] = round(rate)
            entry[f"{precision}_fraction_of_peak"] = round(rate * gflop / peak[precision], 2)
            print(
                f"{preset:>6} {precision}: {gflop:.3f} GFLOP/image, step {rate:.0f} img/s = {rate * gflop:.0f} GFLOP/s = "
                f"{rate * gflop / peak[precision]:.2f} of the {precision} peak",
                flush=True,
            )
            if groups:
                total = sum(groups.values())
                parts = "; ".join(f"{g} {ms:.0f} ms ({ms / total:.0%})" for g, ms in groups.items())
                print(f"       where a bf16 step's {total:.0f} ms (CPU self time) go: {parts}")
                entry["bf16_step_profile_ms"] = {g: round(ms, 1) for g, ms in groups.items()}
        if a.epoch_limit:
            e = epoch_rate(preset, a.data, a.epoch_limit)
            print(
                f"{preset:>6} end to end (`animevae train` on {a.epoch_limit} faces, a middle epoch: steps {e['train_seconds']:.1f} s at "
                f"{e['train_img_s']:.0f} img/s, wall clock with its passes and files {e['epoch_seconds']:.1f} s): {e['end_to_end_img_s']:.0f} img/s = "
                f"{e['end_to_end_img_s'] * gflop:.0f} GFLOP/s = {e['end_to_end_img_s'] * gflop / peak['bf16']:.2f} of the bf16 peak "
                f"(per-epoch passes {e['pass_seconds']:.1f} s; the last epoch's clean latents pass, once per run: {e['last_pass_seconds']:.1f} s)",
                flush=True,
            )
            entry = figures["presets"][preset]
            entry["end_to_end_img_s"] = round(e["end_to_end_img_s"])
            entry["end_to_end_fraction_of_peak"] = round(e["end_to_end_img_s"] * gflop / peak["bf16"], 2)
            entry["epoch_steps_s"], entry["epoch_wall_s"] = round(e["train_seconds"], 1), round(e["epoch_seconds"], 1)
    if len(a.presets) > 1:
        base = {(r[0], r[1]): r[2] for r in rows}
        for preset in a.presets[1:]:
            print(f"{preset} / {a.presets[0]} step images/s (bf16): {base[(preset, 'bf16')] / base[(a.presets[0], 'bf16')]:.2f}")
    if a.json:
        write_json(a, figures)


def write_json(a, figures: dict) -> None:
    """The figures as a result file of the same form as the experiments' (experiments/_record.py)."""
    sys.path.insert(0, str(ROOT / "experiments"))
    import _record

    bf16 = figures["matmul_peak_gflops"]["bf16"]
    key = [f"matmul peak bf16 {bf16} GFLOP/s"] + [
        f"{name}: bf16 step {p['bf16_step_img_s']} img/s = {p['bf16_fraction_of_peak']} of the peak"
        + (f", end to end {p['end_to_end_img_s']} img/s = {p['end_to_end_fraction_of_peak']}" if "end_to_end_img_s" in p else "")
        for name, p in figures["presets"].items()
    ]
    settings = {"data": a.data, "presets": a.presets, "steps": a.steps, "batch": 64, "epoch_limit": a.epoch_limit, "layers": a.layers}
    question = "What fraction of the machine's bf16 matmul peak does a training step, and a whole training epoch, use?"
    _record.write(a.json, "peak", question, [_record.invocation()], settings, figures, key)


if __name__ == "__main__":
    main()
