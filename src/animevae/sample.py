"""Generation from a trained run: load model + latents, pick latents with a sampler, decode, write PNGs and a grid."""

from __future__ import annotations

from pathlib import Path

import torch

from . import runs
from .errors import UserError
from .images import save_grid, save_images
from .model import VAE
from .samplers import MixSampler, PriorSampler, Sampler

DEFAULT_MIX_K = 4  # chosen from the diversity table in the README


def parse_k(value) -> int | None:
    """``--mix-k``: a positive whole number, or ``all`` (the seed's literal reading)."""
    if value is None or str(value).lower() == "all":
        return None
    try:
        k = int(value)
    except ValueError:
        raise UserError(f"--mix-k must be a whole number or 'all', got {value!r}") from None
    if k < 1:
        raise UserError(f"--mix-k must be at least 1, got {k}")
    return k


def make_sampler(name: str, model: VAE, run: str, mix_k=DEFAULT_MIX_K, temperature: float = 1.0, revision=None) -> Sampler:
    if name == "mix":
        return MixSampler(runs.load_latents(run, revision).mu, parse_k(mix_k))
    if name == "prior":
        return PriorSampler(model.config.latent_dim, temperature)
    raise UserError(f"--sampler {name}: unknown; choose mix or prior")


@torch.no_grad()
def decode_latents(model: VAE, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Latents -> uint8 N x C x H x W (on the CPU), in batches."""
    device = next(model.parameters()).device
    return torch.cat([model.generate(z[s : s + batch].to(device)).cpu() for s in range(0, len(z), batch)])


def load_model(run: str, device: str = "cpu", revision: str | None = None) -> VAE:
    return VAE.from_pretrained(run, revision=revision, map_location="cpu").to(device).eval()


def generate(run: str, n: int = 100, out: str | Path | None = None, sampler: str = "mix", mix_k=DEFAULT_MIX_K,
             temperature: float = 1.0, seed: int = 0, device: str = "cpu", revision: str | None = None) -> Path:
    """Write ``n`` generated faces as out/00000.png ... and out/grid.png; returns ``out``."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    model = load_model(run, device, revision)
    z = make_sampler(sampler, model, run, mix_k, temperature, revision).sample(n, torch.Generator().manual_seed(seed))
    images = decode_latents(model, z)
    out = Path(out) if out is not None else (Path(run) / "generated" if Path(run).is_dir() else Path("generated"))
    save_images(images, out)
    save_grid(images, out / "grid.png")
    return out
