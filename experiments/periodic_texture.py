"""Does a run draw a periodic texture at full size, which the realism ladder's shrunk rungs cannot see?

The ladder shrinks both sets by area averaging before its classifier looks, so a faint pattern with a period of a
few pixels vanishes below 48 px, and at 96 px the test is saturated for every run (0.98-1.00). A patch
discriminator teaches a decoder such patterns first (docs/explanation/sharper-faces.md): the adversarial late
phase reads better than the sharp preset at 48-16 px, yet its faces can carry rings at the discriminator's stride.
This measures that directly. For each run, its own sampler's faces and its reconstructions of held-out faces:

* the mean luminance power spectrum (Hann-windowed, each face's mean removed) over that of held-out real faces,
  at every frequency: R(f) = P_faces(f) / P_real(f);
* ``periodicity``: at each harmonic of an 8-px period (frequencies k/8 cycles per pixel along x, y and both; the
  discriminator's stride), R over the median R of the 8 neighbouring frequencies, averaged over the harmonics
  (``peak``: the largest). A face set without a pattern at that period reads about 1 (a blur or a colour shift
  changes neighbouring frequencies alike); a texture at the stride, or at half of it, lifts those frequencies alone;
* the controls, the measure's own check and its scale: other held-out real faces (about 1), and the same real faces
  with a faint grid of 8-px rings added (``--control-amplitudes``, gray levels; each must read above the last).

    python experiments/periodic_texture.py --runs ladder/sharp20 ladder/adversarial20 ladder/sharp5 ladder/adversarial5
"""

from __future__ import annotations

import math
from pathlib import Path

import _record
import hierarchical  # noqa: F401  (registers that experiment's architectures, so its runs load here)
import torch
from _runs import earlier_results

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.images import save_grid
from animevae.runs import load_run_config
from animevae.sampling.generate import default_sampler, load_model, reconstruct_images, sample_faces

NAME = "periodic_texture"
QUESTION = "Do a run's full-size faces carry a periodic texture at the discriminator's 8-px stride, which the ladder's shrunk rungs cannot see?"
PERIOD = 8


def power_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean luminance power per frequency bin of uint8 N x 3 x H x W faces (Hann-windowed, each face's mean removed)."""
    x = images.double()
    gray = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    h, w = gray.shape[-2:]
    window = torch.hann_window(h, periodic=False, dtype=torch.float64)[:, None] * torch.hann_window(w, periodic=False, dtype=torch.float64)[None]
    gray = (gray - gray.mean((-2, -1), keepdim=True)) * window
    return torch.fft.fft2(gray).abs().pow(2).mean(0)


def periodicity(images: torch.Tensor, real_power: torch.Tensor, period: int = PERIOD) -> dict:
    """R at each harmonic of ``period`` over the median R of its 8 neighbouring frequency bins, averaged over the harmonics:
    a smooth change of R (a blur, a colour shift) cancels between neighbours, a spike does not."""
    h, w = real_power.shape
    fy, fx = torch.fft.fftfreq(h, dtype=torch.float64)[:, None], torch.fft.fftfreq(w, dtype=torch.float64)[None]
    on_grid = lambda f, n: (f * period - (f * period).round()).abs() < 0.5 / n * period  # noqa: E731  a multiple of 1/period, to a bin
    harmonic = on_grid(fy, h) & on_grid(fx, w) & ~((fy == 0) & (fx == 0))
    ratio = power_spectrum(images) / real_power.clamp_min(1e-12)
    neighbours = torch.stack([ratio.roll((dy, dx), (0, 1)) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]).median(0).values
    contrast = ratio / neighbours.clamp_min(1e-12)
    return {
        "periodicity": round(float(contrast[harmonic].mean()), 3),
        "peak": round(float(contrast[harmonic].max()), 3),
        "ratio_at_harmonics": round(float(ratio[harmonic].mean()), 4),
    }


def with_pattern(images: torch.Tensor, amplitude: float, period: int = PERIOD) -> torch.Tensor:
    """The faces with a faint grid of rings of ``period`` px added (``amplitude`` gray levels): the positive control."""
    h, w = images.shape[-2:]
    y, x = torch.arange(h, dtype=torch.float64)[:, None], torch.arange(w, dtype=torch.float64)[None]
    pattern = amplitude * torch.cos(2 * math.pi * x / period) * torch.cos(2 * math.pi * y / period)
    return (images.double() + pattern).round().clamp(0, 255).to(torch.uint8)


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.set_defaults(out=str(_record.HERE / "out"))
    p.add_argument("--runs", nargs="+", required=True, help="run folders, relative to --out")
    p.add_argument("--n", type=int, default=500, help="faces of each kind (default: %(default)s)")
    p.add_argument("--control-amplitudes", type=float, nargs="+", default=[2.0, 4.0, 8.0], help="gray levels of the controls' patterns (default: %(default)s)")
    a = p.parse_args()
    settings = {"data": a.data, "n": a.n, "period_px": PERIOD, "control_amplitudes": a.control_amplitudes}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    commands = [*commands, _record.invocation()]
    controls = results.get("controls")
    torch.set_grad_enabled(False)
    for name in a.runs:
        run = Path(a.out) / name
        model = load_model(str(run))
        held, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=a.data), model.config.image_size, 2 * a.n)
        reference, others = held[: a.n], held[a.n : 2 * a.n]
        real_power = power_spectrum(reference)
        if controls is None:
            controls = {"real": periodicity(others, real_power)}
            controls |= {f"real_with_pattern_{amp:g}": periodicity(with_pattern(others, amp), real_power) for amp in a.control_amplitudes}
            print("controls", controls, flush=True)
        sampler = default_sampler(str(run))
        faces = sample_faces(model, str(run), sampler, a.n, 0)
        save_grid(faces[:32], Path(a.out) / f"{Path(name).name}_{sampler}_full_size.png", nrow=8)
        rows[Path(name).name] = {
            "sampler": sampler,
            "samples": periodicity(faces, real_power),
            "recons": periodicity(reconstruct_images(model, others, latents="mean"), real_power),
        }
        print(Path(name).name, rows[Path(name).name], flush=True)
        patterned = ", ".join(f"+ {amp:g}-level pattern {controls[f'real_with_pattern_{amp:g}']['periodicity']}" for amp in a.control_amplitudes)
        figures = [f"controls: real {controls['real']['periodicity']}, real {patterned}"]
        figures += [
            f"{n}: {r['sampler']} {r['samples']['periodicity']} (peak {r['samples']['peak']}), recons {r['recons']['periodicity']} (peak {r['recons']['peak']})"
            for n, r in rows.items()
        ]
        _record.write(a.results, NAME, QUESTION, commands, settings, {"controls": controls, "runs": rows}, figures)


if __name__ == "__main__":
    main()
