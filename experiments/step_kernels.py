"""Where does a bf16 CPU training step of the seed model lose time against the matrix peak, and which alternatives are slower?

The kernel-level measurements behind ``benchmarks/peak.py``'s per-layer table (seed model, batch 64,
bf16 autocast, channels-last), each a part that can be run alone (``--parts``):

* ``split``: oneDNN's conv backward, input and weight gradients together and apart (ms);
* ``first``: the encoder's first conv (3 -> 32 channels at 96 px), native vs space-to-depth + a 2x2 conv;
* ``last``: the decoder's last layer (32 -> 3 at 48 -> 96 px), a transposed conv vs a 3x3 conv to 12
  channels + pixel shuffle (the sub-pixel form the package uses under bf16);
* ``bn_compile``: BatchNorm + LeakyReLU forward + backward, eager vs ``torch.compile`` (and the compile time);
* ``step_variants``: the whole training step as shipped, with LeakyReLU in place, and with the decoder's last
  layer as oneDNN's transposed conv instead of the sub-pixel form (interleaved 6-step blocks, medians);
* ``loop_gap``: the step fed from preloaded batches vs the way ``animevae train`` feeds it (random rows of the
  cached faces, the latents recorded, the loss summed), interleaved in one process;
* ``sustain``: a bf16 2048^3 matmul held for ``--sustain-seconds``: GFLOP/s every 5 s (does the clock drop?).

``step_variants`` and ``loop_gap`` read real faces from ``--data``; the others use random tensors.

    python experiments/step_kernels.py                       # every part, a few minutes on 2 cores
    python experiments/step_kernels.py --parts split first last --results experiments/out/try.json
"""

from __future__ import annotations

import statistics
import sys
import time

import _record
from _runs import fmt

NAME = "step_kernels"
QUESTION = "Where does a bf16 CPU training step of the seed model lose time against the matrix peak, and which kernel alternatives measure slower?"
PARTS = ("split", "first", "last", "bn_compile", "step_variants", "loop_gap", "sustain")


def bench(fn, reps: int = 20) -> float:
    for _ in range(3):
        fn()
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps * 1000


def part_split() -> dict:
    import torch

    bf, cb, out = torch.bfloat16, torch.ops.aten.convolution_backward, {}
    for tr, cin, cout, side in ((False, 32, 64, 48), (False, 64, 128, 24), (True, 128, 64, 12), (True, 64, 32, 24), (False, 3, 32, 96), (True, 32, 3, 48)):
        x = torch.randn(64, cin, side, side, dtype=bf).contiguous(memory_format=torch.channels_last)
        w = (torch.randn(cin, cout, 4, 4, dtype=bf) if tr else torch.randn(cout, cin, 4, 4, dtype=bf)).contiguous(memory_format=torch.channels_last)
        y = torch.conv_transpose2d(x, w, None, 2, 1) if tr else torch.conv2d(x, w, None, 2, 1)
        g = torch.randn_like(y).contiguous(memory_format=torch.channels_last)

        def grads(mask, g=g, x=x, w=w, tr=tr):
            return cb(g, x, w, None, [2, 2], [1, 1], [1, 1], tr, [0, 0], 1, mask)

        name = f"{'convT' if tr else 'conv'} {cin}->{cout} at {side} px"
        out[name] = {
            k: round(bench(lambda m=m: grads(m), 15), 2)
            for k, m in (("both_ms", [True, True, False]), ("input_ms", [True, False, False]), ("weight_ms", [False, True, False]))
        }
    return out


def part_first() -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.rand(64, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    w, b = (torch.randn(32, 3, 4, 4) * 0.1).requires_grad_(), torch.zeros(32, requires_grad=True)

    def s2d_weight(w):  # a 4x4 stride-2 kernel as a 2x2 stride-1 kernel over 12 = 3 * 4 channels (pixel_unshuffle order)
        cout, cin = w.shape[:2]
        return w.view(cout, cin, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(cout, cin * 4, 2, 2)

    def native():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.conv2d(x, w, b, 2, 1)

    def s2d():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            xs = F.pixel_unshuffle(F.pad(x, (1, 1, 1, 1)), 2).contiguous(memory_format=torch.channels_last)
            return F.conv2d(xs, s2d_weight(w), b, 1, 0)

    g = torch.randn(64, 32, 48, 48).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        out = {"max_abs_difference_bf16": float((native().float() - s2d().float()).abs().max())}
    for name, f in (("native", native), ("space_to_depth", s2d)):
        out[f"{name}_total_ms"] = round(bench(lambda f=f: f().backward(g)), 2)
    return out


def part_last() -> dict:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    w, b = torch.randn(32, 3, 4, 4) * 0.1, torch.zeros(3)

    def subpixel_weight(w):  # the 4x4 transposed conv's four output phases as one 3x3 conv to 4 x out channels
        cin, cout = w.shape[:2]
        k = w.new_zeros(2, 2, cout, cin, 3, 3)
        for p in range(2):
            for q in range(2):
                for dy in range(3):
                    ky = p + 1 - 2 * (dy - 1)
                    for dx in range(3):
                        kx = q + 1 - 2 * (dx - 1)
                        if 0 <= ky < 4 and 0 <= kx < 4:
                            k[p, q, :, :, dy, dx] = w[:, :, ky, kx].t()
        return k.permute(2, 0, 1, 3, 4, 5).reshape(cout * 4, cin, 3, 3)

    x = torch.randn(64, 32, 48, 48).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    k = subpixel_weight(w).requires_grad_(True)
    wt = w.clone().requires_grad_(True)
    with torch.no_grad():
        out = {
            "max_abs_difference_fp32": float((F.pixel_shuffle(F.conv2d(x, k, b.repeat_interleave(4), 1, 1), 2) - F.conv_transpose2d(x, w, b, 2, 1)).abs().max())
        }

    def convt():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.conv_transpose2d(x, wt, b, 2, 1)

    def subpixel():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return F.pixel_shuffle(F.conv2d(x, k, None, 1, 1), 2)

    for name, f in (("transposed_conv", convt), ("subpixel", subpixel)):
        g = torch.randn_like(f())
        fwd = bench(f)
        out[name] = {"forward_ms": round(fwd, 2), "backward_ms": round(bench(lambda f=f, g=g: f().backward(g)) - fwd, 2)}
    return out


def part_bn_compile() -> dict:
    import torch
    from torch import nn

    torch.manual_seed(0)
    out = {}
    for c, s in ((32, 48), (64, 24)):
        block = nn.Sequential(nn.BatchNorm2d(c), nn.LeakyReLU(0.2))
        x = torch.randn(64, c, s, s, dtype=torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_(True)
        g = torch.randn_like(x)
        row = {}
        for name, f in (("eager", block), ("compiled", torch.compile(block))):

            def fb(f=f, x=x, g=g):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    y = f(x)
                y.backward(g)

            t = time.perf_counter()
            fb()
            row[f"{name}_first_call_s"] = round(time.perf_counter() - t, 1)
            row[f"{name}_ms"] = round(bench(fb), 2)
        out[f"{c} channels at {s} px"] = row
    return out


def _peak():
    sys.path.insert(0, str(_record.ROOT / "benchmarks"))
    import peak

    return peak


def _blocks(variants: dict, run_block, rounds: int = 5) -> dict:
    times = {k: [] for k in variants}
    for k, v in variants.items():
        run_block(k, v, 0, 3)
    for r in range(rounds):
        for k, v in variants.items():
            times[k].append(run_block(k, v, 10 * r, 6))
    return {k: {"median_ms_per_step": round(statistics.median(ts), 1), "blocks_ms": [round(t) for t in ts]} for k, ts in times.items()}


def part_step_variants(data: str) -> dict:
    import torch

    from animevae.data.augment import augment
    from animevae.training.loop import train_step

    peak = _peak()
    batches = peak.real_batches(data, 6, 64)

    def setup(inplace: bool = False, native_last: bool = False):
        state, cfg, system = peak.make_state("seed", "auto")
        for mod in state.model.modules():
            if isinstance(mod, torch.nn.LeakyReLU):
                mod.inplace = inplace
        if native_last:
            state.model.decoder[-1].path = "native"
        return state, cfg, system

    gen = torch.Generator().manual_seed(0)

    def block(name, v, start, n):
        state, cfg, system = v
        fused = state.optimizers["model"].defaults.get("fused") and not state.scaler.is_enabled()
        t = time.perf_counter()
        for i in range(start, start + n):
            x = augment(batches[i % 6], gen, cfg.hflip, cfg.rotation, cfg.rotation_fill, cfg.interpolation)
            train_step(state, state.model, x.contiguous(memory_format=system.memory_format), fused)
            state.progress.step += 1
        return (time.perf_counter() - t) / n * 1000

    return _blocks({"as_shipped": setup(), "inplace_leaky": setup(inplace=True), "native_last_layer": setup(native_last=True)}, block)


def part_loop_gap(data: str) -> dict:
    import numpy as np
    import torch

    from animevae.config import DataConfig
    from animevae.data.augment import augment
    from animevae.data.cache import load_images
    from animevae.data.device import DeviceImages
    from animevae.training.loop import train_step
    from animevae.training.passes import PassLatents

    peak = _peak()
    faces = load_images(DataConfig(source=data, limit=6000), 96, progress=False)
    rows = DeviceImages(faces.images, torch.device("cpu"))
    pre = torch.from_numpy(faces.images[: 20 * 64].copy()).view(20, 64, 3, 96, 96)
    state, cfg, system = peak.make_state("seed", "auto")
    fused = state.optimizers["model"].defaults.get("fused") and not state.scaler.is_enabled()
    gen = torch.Generator().manual_seed(0)
    rec = PassLatents(len(faces), 256, torch.device("cpu"))
    order = np.random.default_rng(0).permutation(len(faces))
    sums = torch.zeros(3)
    usable = len(faces) // 64 * 64 - 64

    def block(kind, _, start, n):
        t = time.perf_counter()
        for i in range(start, start + n):
            if kind == "preloaded":
                u8 = pre[i % 20]
            else:
                idx = order[(i * 64) % usable : (i * 64) % usable + 64]
                u8 = rows[idx]
            x = augment(u8, gen, cfg.hflip, cfg.rotation, cfg.rotation_fill, cfg.interpolation)
            terms, _ = train_step(state, state.model, x.contiguous(memory_format=system.memory_format), fused)
            if kind == "as_train_feeds_it":
                rec.record(idx, terms.output.mu, terms.output.logvar)
                sums.add_(torch.stack([terms.recon.detach().sum(), terms.kl.detach().sum(), torch.tensor(64.0)]))
            state.progress.step += 1
        return (time.perf_counter() - t) / n * 1000

    return _blocks({"preloaded": None, "as_train_feeds_it": None}, block)


def part_sustain(seconds: float) -> dict:
    import torch

    a = torch.randn(2048, 2048, dtype=torch.bfloat16)
    t0, rates = time.perf_counter(), []
    while time.perf_counter() - t0 < seconds:
        t, n = time.perf_counter(), 0
        while time.perf_counter() - t < 5:
            a @ a
            n += 1
        rates.append(round(2 * 2048**3 * n / (time.perf_counter() - t) / 1e9))
    return {"gflops_every_5_s": rates, "min": min(rates), "max": max(rates)}


def key_figures(results: dict) -> list[str]:
    lines = []
    if "first" in results:
        f = results["first"]
        lines.append(f"first layer fwd+bwd: native {fmt(f.get('native_total_ms'), '.1f')} ms, space-to-depth {fmt(f.get('space_to_depth_total_ms'), '.1f')} ms")
    if "last" in results:
        f = results["last"]
        lines.append(
            f"last layer forward: transposed conv {fmt(f['transposed_conv']['forward_ms'], '.1f')} ms, sub-pixel {fmt(f['subpixel']['forward_ms'], '.1f')} ms"
        )
    if "bn_compile" in results:
        r = results["bn_compile"].get("32 channels at 48 px", {})
        lines.append(f"BN + LeakyReLU at 48 px: eager {fmt(r.get('eager_ms'), '.2f')} ms, compiled {fmt(r.get('compiled_ms'), '.2f')} ms")
    for part, label in (("step_variants", "whole step"), ("loop_gap", "step fed as train feeds it")):
        if part in results:
            lines.append(
                f"{label} (median ms): "
                + ", ".join(f"{k} {fmt(v['median_ms_per_step'], '.1f')}" for k, v in results[part].items() if isinstance(v, dict) and "median_ms_per_step" in v)
            )
    ab = results.get("step_variants", {}).get("native_last_layer_ab")
    if ab:
        lines.append(f"whole step, sub-pixel last layer {ab['as_shipped_ms']} ms against transposed conv {ab['native_last_layer_ms']} ms")
    if "sustain" in results:
        lines.append(f"sustained bf16 matmul: {results['sustain']['min']}–{results['sustain']['max']} GFLOP/s")
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which measurements (default: all)")
    p.add_argument("--sustain-seconds", type=float, default=60.0, help="how long the sustained matmul runs (default 60)")
    a = p.parse_args()
    results = {}
    for part in a.parts:
        print(f"{part} ...", flush=True)
        if part in ("step_variants", "loop_gap"):
            results[part] = globals()[f"part_{part}"](a.data)
        elif part == "sustain":
            results[part] = part_sustain(a.sustain_seconds)
        else:
            results[part] = globals()[f"part_{part}"]()
        print(results[part], flush=True)
    settings = {"batch": 64, "precision": "bf16 autocast", "memory_format": "channels_last", "parts": a.parts, "data": a.data}
    _record.write(a.results, NAME, QUESTION, [f"python experiments/step_kernels.py --parts {' '.join(a.parts)}"], settings, results, key_figures(results))


if __name__ == "__main__":
    main()
