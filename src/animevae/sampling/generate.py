"""Generation from a trained run: load model + latents, pick latents with a sampler, decode, write PNGs and a grid."""

from __future__ import annotations

from pathlib import Path

import torch

from .. import runs
from ..config import SAMPLER_NAMES
from ..errors import UserError
from ..images import save_grid, save_images
from ..models.vae import VAE
from .samplers import (
    DEFAULT_GMM_COMPONENTS,
    DEFAULT_JOINT_COMPONENTS,
    DEFAULT_MIX_K,
    DiffusionSampler,
    GMMSampler,
    JointGMMSampler,
    MixSampler,
    PriorSampler,
    Sampler,
    TwoStageSampler,
)


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


def gmm_file(run, n_components: int, covariance_type: str, joint: bool = False) -> Path:
    return Path(run) / f"{'joint_' if joint else ''}gmm_{n_components}_{covariance_type}.safetensors"


def joint_rows(latents: runs.Latents) -> torch.Tensor:
    """[top latent, detail latents, fine latents (where kept)] of every training image: what the joint-gmm sampler is fitted on."""
    if latents.detail is None:
        raise UserError(
            "--sampler joint-gmm: this run's latents hold no detail latents (a hierarchical run's clean pass after its last epoch writes them); "
            "use --sampler gmm, or train with --arch hierarchical"
        )
    return torch.cat([latents.mu, latents.detail, *([] if latents.fine is None else [latents.fine])], 1)


def load_or_fit_gmm(
    run: str,
    n_components: int | None = None,
    covariance_type: str = "full",
    revision: str | None = None,
    progress: bool = True,
    device: str | torch.device = "cpu",
    joint: bool = False,
) -> GMMSampler | JointGMMSampler:
    """The run's fitted mixture: read from RUN/gmm_<k>_<cov>.safetensors, or fitted now (and saved there). ``joint``: over
    [top, detail, fine] latents (RUN/joint_gmm_<k>_<cov>.safetensors; a hierarchical run's, ``JointGMMSampler``), its draws
    decoded as ``VAE.decode`` says."""
    if covariance_type not in GMMSampler.COVARIANCE_TYPES:
        raise UserError(f"--gmm-covariance {covariance_type}: unknown; choose full or diag")
    if n_components is None:
        n_components = DEFAULT_JOINT_COMPONENTS if joint else DEFAULT_GMM_COMPONENTS
    name = gmm_file(run, n_components, covariance_type, joint).name
    says = f"{'joint-' if joint else ''}gmm: fitting {n_components} {covariance_type}-covariance components to {{n}} latents"
    if not joint:
        fit = lambda x: GMMSampler.fit(x, n_components, covariance_type, device=device)  # noqa: E731
        return load_or_fit(run, name, fit, lambda t, dim: GMMSampler.from_tensors(t, covariance_type, dim), says, revision, progress, limit=GMMSampler.MAX_FIT)
    coarse = {}  # [top, detail]'s width, read off the latents the joint mixture is fitted on: the fine ones go in by their principal components

    def rows(latents: runs.Latents) -> torch.Tensor:
        coarse["width"] = latents.mu.shape[1] + latents.detail.shape[1] if latents.detail is not None else 0
        return joint_rows(latents)

    fit = lambda x: JointGMMSampler.fit(x, coarse["width"], n_components, covariance_type, device=device)  # noqa: E731
    load = lambda t, dim: JointGMMSampler.from_tensors(t, covariance_type, dim)  # noqa: E731
    return load_or_fit(run, name, fit, load, says, revision, progress, limit=JointGMMSampler.MAX_FIT, rows=rows)


FITTED_FILES = ("gmm_*_*.safetensors", "joint_gmm_*_*.safetensors", "two_stage.safetensors", "diffusion.safetensors")  # what fitted samplers write


def _saved(path: Path | None, fitted_on: str, load, latent_dim: int):
    """(the sampler saved at ``path``, None) when it was fitted on the latents whose sha256 is ``fitted_on`` and
    ``load`` accepts it; (None, why not) otherwise."""
    if path is None or not path.is_file():
        return None, "not fitted yet"
    if runs.read_metadata(path).get("latents_sha256") != fitted_on:
        return None, "it was fitted on other latents"
    try:
        return load(runs.load_tensors(path), latent_dim), None
    except (UserError, ValueError) as e:
        return None, str(e)


def load_or_fit(run: str, filename: str, fit, load, says: str, revision: str | None = None, progress: bool = True, limit: int | None = None, rows=None):
    """A sampler fitted on the run's latents (``rows(latents)``; default their means): read from RUN/``filename``, or fitted now (and saved there).

    A saved one (in the run folder, or in the Hub repo when ``push`` uploaded it) is used only when it records
    the sha256 of the latents file it was fitted on and that is today's file, and ``load(tensors, latent_dim)``
    accepts it; otherwise it is fitted again, with one line saying why. In a run folder the fit holds
    RUN/.``filename``.lock, so two processes that need it at once fit it once: the second waits, then reads the
    first's file. A Hub repo without a current fitted file, or a read-only folder, is fitted in memory.
    """
    import sys
    import time

    latents_path = Path(runs.resolve_file(run, runs.LATENTS, revision=revision))
    latents = runs.load_latents(run, revision)  # checked against the run's config: width, rows, finite values
    rows = rows or (lambda latents: latents.mu)
    fitted_on, dim = runs.sha256_file(latents_path), rows(latents.head(1)).shape[1]  # every row is built only to fit
    folder = Path(run).expanduser()
    lock = None
    if folder.is_dir():
        path = folder / filename
        sampler, _ = _saved(path, fitted_on, load, dim)
        if sampler is not None:  # current: read without taking the lock (nothing is written into the run)
            return sampler
        try:
            lock = runs.FolderLock(folder, f".{filename}.lock", what="--run", doing=f"fitting {filename} in").acquire(wait=True)
        except UserError:
            pass  # a read-only run folder: nothing to keep the fit in, so nothing to share
    else:
        try:
            path = Path(runs.resolve_file(run, filename, revision=revision))
        except UserError:
            path = None
    try:
        sampler, why = _saved(path, fitted_on, load, dim)
        if sampler is not None:
            return sampler
        x = rows(latents)
        n = min(len(x), limit or len(x))
        if progress:
            if why != "not fitted yet":
                print(f"{filename}: not used ({why}); fitting it again", file=sys.stderr)
            print(says.format(n=n) + " ...", file=sys.stderr, flush=True)
        start = time.monotonic()
        sampler = fit(x)
        seconds = time.monotonic() - start
        if progress:
            print(f"{filename}: fitted in {seconds:.1f} s", file=sys.stderr, flush=True)
        if lock is not None:
            try:
                metadata = {"fitted_on": str(n), "latents_sha256": fitted_on, "fit_seconds": f"{seconds:.2f}"}
                runs.save_tensors(sampler.tensors(), folder / filename, metadata=metadata)
            except (OSError, UserError):
                pass  # a full disk: use the sampler without keeping it
        return sampler
    finally:
        if lock is not None:
            lock.release()


def needs_fit(run: str | Path, name: str, n_components: int | None = None, covariance_type: str = "full") -> bool:
    """Whether sampler ``name`` would have to be fitted before it can draw from this run folder's latents."""
    folder = Path(run)
    path = {
        "gmm": gmm_file(folder, DEFAULT_GMM_COMPONENTS if n_components is None else n_components, covariance_type),
        "joint-gmm": gmm_file(folder, DEFAULT_JOINT_COMPONENTS if n_components is None else n_components, covariance_type, joint=True),
        "two-stage": folder / "two_stage.safetensors",
        "diffusion": folder / "diffusion.safetensors",
    }
    return name in path and folder.is_dir() and path[name] not in fitted_files(folder)


def fitted_files(run: str | Path) -> list[Path]:
    """The run folder's fitted sampler files that were fitted on its current latents (what ``push`` uploads)."""
    folder = Path(run)
    latents = folder / runs.LATENTS
    if not latents.is_file():
        return []
    fitted_on = runs.sha256_file(latents)
    found = sorted({p for pattern in FITTED_FILES for p in folder.glob(pattern)})
    return [p for p in found if runs.read_metadata(p).get("latents_sha256") == fitted_on]


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


def fit_own_sampler(run: str | Path, device: str | torch.device = "cpu", progress: bool = True) -> str | None:
    """Fit the run's own sampler (its preset's) when it is one that is fitted, and keep it in the run folder:
    ``train`` calls this as its last step, so ``generate``, the demo and ``push`` find it ready. Its name, or None (none
    to fit, or a fit that cannot be made: said in one line, and ``generate`` says it again with what to do)."""
    name = default_sampler(str(run))
    fits = {
        "gmm": lambda: load_or_fit_gmm(str(run), progress=progress, device=device),
        "joint-gmm": lambda: load_or_fit_gmm(str(run), progress=progress, device=device, joint=True),
        "two-stage": lambda: load_or_fit_two_stage(str(run), progress=progress),
        "diffusion": lambda: load_or_fit_diffusion(str(run), progress=progress),
    }
    if name not in fits:
        return None
    try:
        fits[name]()
    except UserError as e:  # the run is saved whole: a sampler that cannot be fitted is said, not an error of the training
        import sys

        print(f"note: the run's own sampler was not fitted: {e}", file=sys.stderr)
        return None
    return name


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
    gmm_components: int | None = None,
    gmm_covariance: str = "full",
) -> Sampler:
    """Sampler ``name`` of ``run`` (fitted ones read from the run or fitted now); ``gmm_components`` None: the
    sampler's own default (gmm 10, joint-gmm 30)."""
    if name == "mix":
        return MixSampler(runs.load_latents(run, revision).mu, parse_k(mix_k))
    if name == "prior":
        return PriorSampler(model.config.latent_dim, temperature)
    if name in ("gmm", "joint-gmm"):
        sampler = load_or_fit_gmm(run, gmm_components, gmm_covariance, revision, joint=name == "joint-gmm")
        sampler.temperature = float(temperature)
        return sampler
    if name == "two-stage":
        return load_or_fit_two_stage(run, revision)
    if name == "diffusion":
        sampler = load_or_fit_diffusion(run, revision)
        sampler.temperature = float(temperature)
        return sampler
    raise UserError(f"--sampler {name}: unknown; choose {', '.join(SAMPLER_NAMES)}")


@torch.no_grad()
def encode_images(model: VAE, images: torch.Tensor, batch: int = 128) -> torch.Tensor:
    """uint8 N x 3 x H x W -> encoder means N x latent (on the CPU), in batches."""
    device = next(model.parameters()).device
    return torch.cat([model.encode(images[s : s + batch].float().div(255).to(device)).mu.float().cpu() for s in range(0, len(images), batch)])


def decode_latents(model: VAE, z: torch.Tensor, batch: int = 256, generator: torch.Generator | None = None, temperatures=None) -> torch.Tensor:
    """Latents -> uint8 N x C x H x W (on the CPU), in batches. A hierarchical model draws its finer groups with
    ``generator``'s noise at ``temperatures`` (``VAE.decode``); 0 takes their priors' means, as interpolation does."""
    device = next(model.parameters()).device
    return torch.cat([model.generate(z[s : s + batch].to(device), generator, temperatures).cpu() for s in range(0, len(z), batch)])


@torch.no_grad()
def reconstruct_images(
    model: VAE, images: torch.Tensor, batch: int = 128, groups: int | None = None, generator: torch.Generator | None = None, latents: str | None = None
) -> torch.Tensor:
    """uint8 N x 3 x H x W -> their reconstructions, uint8 on the CPU. ``latents``: ``"mean"`` decodes the posterior
    means; ``"draw"`` one draw from the posterior, as training decodes (a generator seeded 0 unless given: the same faces,
    the same reconstructions). Default: draws for a hierarchical model (its reconstructions of held-out faces read more
    real from 48 px down, ``experiments/recon_draws.py``), the means for a one-latent model (the seed's). ``groups``: a
    hierarchical model's first ``groups`` finer groups from the posterior, the rest from their priors (``VAE.reconstruct``)."""
    latents = latents or ("draw" if model.hierarchical else "mean")
    if latents == "draw" and generator is None:
        generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    return torch.cat(
        [
            model.likelihood(model.reconstruct(images[s : s + batch].float().div(255).to(device), groups, generator, latents=latents)).to_uint8().cpu()
            for s in range(0, len(images), batch)
        ]
    )


def sample_faces(model: VAE, run: str, sampler: str, n: int, seed: int = 0, *sampler_options, temperatures=None) -> torch.Tensor:
    """``n`` faces (uint8 N x C x H x W) from ``run``'s ``sampler`` (``make_sampler``'s further options after the name),
    drawn with a generator seeded ``seed``: the same faces for the same seed. ``temperatures``: a hierarchical
    model's finer groups' (default: the model's own)."""
    gen = torch.Generator().manual_seed(seed)
    z = make_sampler(sampler, model, run, *sampler_options).sample(n, gen)
    return decode_latents(model, z, generator=gen, temperatures=temperatures)


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
    gmm_components: int | None = None,
    gmm_covariance: str = "full",
    fine_temperature=None,
) -> Path:
    """Write ``n`` generated faces as out/00000.png ... and out/grid.png; returns ``out``. ``sampler``: the run's own (its preset's best) by default.
    ``fine_temperature``: a hierarchical model's finer groups' (a number or one per finer scale; default: the model's own)."""
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    model = load_model(run, device, revision)
    if fine_temperature is not None and not model.hierarchical:
        raise UserError(f"--fine-temperature: {run} has one latent group (arch {model.config.arch!r}); it applies to --arch hierarchical runs")
    options = (mix_k, temperature, revision, gmm_components, gmm_covariance)
    images = sample_faces(model, run, sampler or default_sampler(run, revision), n, seed, *options, temperatures=fine_temperature)
    out = Path(out) if out is not None else (Path(run) / "generated" if Path(run).is_dir() else Path("generated"))
    save_images(images, out)
    save_grid(images, out / "grid.png")
    return out
