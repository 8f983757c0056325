"""Generation from a trained run: load model + latents, pick latents with a sampler, decode, write PNGs and a grid."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import runs
from ..config import SAMPLER_NAMES
from ..errors import UserError
from ..images import save_grid, save_images
from ..models.vae import VAE
from .samplers import DEFAULT_GMM_COMPONENTS, DEFAULT_MIX_K, DiffusionSampler, GMMSampler, MixSampler, PriorSampler, Sampler, TwoStageSampler


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


def gmm_file(run, n_components: int, covariance_type: str) -> Path:
    return Path(run) / f"gmm_{n_components}_{covariance_type}.safetensors"


def load_or_fit_gmm(
    run: str, n_components: int = DEFAULT_GMM_COMPONENTS, covariance_type: str = "full", revision: str | None = None, progress: bool = True
) -> GMMSampler:
    """The run's fitted mixture: read from RUN/gmm_<k>_<cov>.safetensors, or fitted now (and saved there)."""
    if covariance_type not in GMMSampler.COVARIANCE_TYPES:
        raise UserError(f"--gmm-covariance {covariance_type}: unknown; choose full or diag")
    return load_or_fit(
        run,
        gmm_file(run, n_components, covariance_type).name,
        lambda mu: GMMSampler.fit(mu, n_components, covariance_type),
        lambda t, dim: GMMSampler.from_tensors(t, covariance_type, dim),
        f"gmm: fitting {n_components} {covariance_type}-covariance components to {{n}} latents",
        revision,
        progress,
        limit=GMMSampler.MAX_FIT,
    )


def load_or_fit(run: str, filename: str, fit, load, says: str, revision: str | None = None, progress: bool = True, limit: int | None = None):
    """A sampler fitted on the run's latents: read from RUN/``filename``, or fitted now (and saved there).

    A saved one is used only when it records the sha256 of the latents file it was fitted on and that is
    today's file, and ``load(tensors, latent_dim)`` accepts it; otherwise it is fitted again, with one line
    saying why. A run on the Hub (or a read-only folder) is fitted in memory each time.
    """
    import sys

    latents_path = Path(runs.resolve_file(run, runs.LATENTS, revision=revision))
    latents = runs.load_latents(run, revision)  # checked against the run's config: width, rows, finite values
    path = Path(run).expanduser() / filename if Path(run).expanduser().is_dir() else None
    fitted_on = runs.sha256_file(latents_path)
    if path is not None and path.is_file():
        why = "it was fitted on other latents"
        if runs.read_metadata(path).get("latents_sha256") == fitted_on:
            try:
                return load(runs.load_tensors(path), latents.mu.shape[1])
            except (UserError, ValueError) as e:
                why = str(e)
        if progress:
            print(f"{filename}: not used ({why}); fitting it again", file=sys.stderr)
    n = min(len(latents.mu), limit or len(latents.mu))
    if progress:
        print(says.format(n=n) + " ...", file=sys.stderr, flush=True)
    sampler = fit(latents.mu)
    if path is not None:
        try:
            runs.save_tensors(sampler.tensors(), path, metadata={"fitted_on": str(n), "latents_sha256": fitted_on})
        except (OSError, UserError):
            pass  # a read-only run folder (or a full disk): use the sampler without keeping it
    return sampler


def load_or_fit_two_stage(run: str, revision: str | None = None, progress: bool = True) -> TwoStageSampler:
    """The run's second-stage VAE (Dai & Wipf): read from RUN/two_stage.safetensors, or fitted now (and saved there)."""
    return load_or_fit(
        run, "two_stage.safetensors", TwoStageSampler.fit, TwoStageSampler.from_tensors, "two-stage: fitting a second VAE to {n} latents", revision, progress
    )


def load_or_fit_diffusion(run: str, revision: str | None = None, progress: bool = True) -> DiffusionSampler:
    """The run's latent diffusion prior: read from RUN/diffusion.safetensors, or fitted now (and saved there)."""
    return load_or_fit(
        run,
        "diffusion.safetensors",
        lambda mu: DiffusionSampler.fit(mu, progress=progress),
        DiffusionSampler.from_tensors,
        "diffusion: fitting a denoiser to {n} latents",
        revision,
        progress,
    )


def default_sampler(run: str, revision: str | None = None) -> str:
    """The sampler a run's preset recorded as its best (``train.sampler`` in its config.json); mix for older runs."""
    try:
        name = (runs.load_run_config(run, revision).get("train") or {}).get("sampler")
    except (UserError, OSError, ValueError, AttributeError):
        return "mix"
    return name if name in SAMPLER_NAMES else "mix"


def make_sampler(
    name: str,
    model: VAE,
    run: str,
    mix_k=DEFAULT_MIX_K,
    temperature: float = 1.0,
    revision=None,
    gmm_components: int = DEFAULT_GMM_COMPONENTS,
    gmm_covariance: str = "full",
) -> Sampler:
    if name == "mix":
        return MixSampler(runs.load_latents(run, revision).mu, parse_k(mix_k))
    if name == "prior":
        return PriorSampler(model.config.latent_dim, temperature)
    if name == "gmm":
        return load_or_fit_gmm(run, gmm_components, gmm_covariance, revision)
    if name == "two-stage":
        return load_or_fit_two_stage(run, revision)
    if name == "diffusion":
        return load_or_fit_diffusion(run, revision)
    raise UserError(f"--sampler {name}: unknown; choose mix, prior, gmm, two-stage or diffusion")


@torch.no_grad()
@torch.no_grad()
def encode_images(model: VAE, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """uint8 N x 3 x H x W -> encoder means N x latent (on the CPU), in batches."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(images[s : s + batch].float().div(255).to(device)).mu.float().cpu() for s in range(0, len(images), batch)])


def decode_latents(model: VAE, z: torch.Tensor, batch: int = 256) -> torch.Tensor:
    """Latents -> uint8 N x C x H x W (on the CPU), in batches."""
    device = next(model.parameters()).device
    return torch.cat([model.generate(z[s : s + batch].to(device)).cpu() for s in range(0, len(z), batch)])


def load_model(run: str, device: str = "cpu", revision: str | None = None) -> VAE:
    return VAE.from_pretrained(run, revision=revision, map_location="cpu").to(device).eval()


def generate(
    run: str,
    n: int = 100,
    out: str | Path | None = None,
    sampler: str | None = None,
    mix_k=DEFAULT_MIX_K,
    temperature: float = 1.0,
    seed: int = 0,
    device: str = "cpu",
    revision: str | None = None,
    gmm_components: int = DEFAULT_GMM_COMPONENTS,
    gmm_covariance: str = "full",
) -> Path:
    """Write ``n`` generated faces as out/00000.png ... and out/grid.png; returns ``out``. ``sampler``: the run's own (its preset's best) by default."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    model = load_model(run, device, revision)
    sampler = sampler or default_sampler(run, revision)
    z = make_sampler(sampler, model, run, mix_k, temperature, revision, gmm_components, gmm_covariance).sample(n, torch.Generator().manual_seed(seed))
    images = decode_latents(model, z)
    out = Path(out) if out is not None else (Path(run) / "generated" if Path(run).is_dir() else Path("generated"))
    save_images(images, out)
    save_grid(images, out / "grid.png")
    return out
