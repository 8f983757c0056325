"""The Python API: what the command line does, as one function and one object, for notebooks and scripts.

    import animevae
    run = animevae.train("runs/nb", data="builtin", epochs=1, image_size=48)
    faces = run.generate(4)                  # four PIL images
    animevae.Run("runs/nb").metrics          # one dict per epoch
    animevae.Run("USER/anime-faces-vae")     # a Hub model repo works the same way

The command line is a thin layer over this module: the same validation, and the same one-line
``UserError`` messages, raised here as exceptions.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import runs
from .config import RECONSTRUCTION_LATENTS, RESUME_MAY_CHANGE, DataConfig, inherited_settings, resolve_configs, resumed_configs
from .errors import UserError
from .evaluation.report import evaluate as evaluate_run
from .hub import push as push_run
from .images import make_grid, to_hwc
from .sampling.explore import lerp, read_image, slerp
from .sampling.generate import decode_latents, default_sampler, encode_images, load_model, make_sampler, reconstruct_images
from .sampling.samplers import DEFAULT_MIX_K
from .training.loop import train as train_loop


def train(
    out: str | Path,
    data: str | None = None,
    preset: str = "seed",
    *,
    config: str | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    allow_data_change: bool = False,
    **options,
) -> Run:
    """Train (or, with ``resume=True``, continue) a run in the folder ``out``; returns it as a ``Run``.

    ``data`` is any ``--data`` source (a Hub dataset id, parquet files, an image folder, ``"builtin"``);
    ``options`` are fields of ModelConfig, TrainConfig or DataConfig by name (``epochs=3``,
    ``image_size=48``, ``lr=2e-4`` ...), validated exactly as the command line validates its flags.
    ``config`` names a TOML/JSON file of settings; ``preset`` is ``"seed"`` (the notebook's), ``"quality"`` or ``"sharp"``.
    Fine-tuning (``init_from=``) keeps the source run's objective and sampler unless given.
    A resumed run checks that its data is the one it started on (by content); ``allow_data_change=True`` goes on
    with data whose fingerprint differs, if it has as many faces.
    """
    if allow_data_change and not resume:
        raise UserError("--allow-data-change goes with --resume (a new run takes whatever data it is given)")
    if resume:
        extra = sorted(k for k in options if k not in RESUME_MAY_CHANGE) + (["data"] if data is not None else []) + (["config"] if config else [])
        if extra:
            raise UserError(f"--resume continues a run exactly as configured; only --epochs and --max-minutes can change (got --{extra[0].replace('_', '-')})")
        model_cfg, train_cfg, data_cfg, command = resumed_configs(str(out), **options)
    else:
        settings = {**options, **({"source": data} if data is not None else {})}
        model_cfg, train_cfg, data_cfg = resolve_configs(settings, preset, config)
        if train_cfg.init_from:  # fine-tuning keeps the source run's objective and sampler unless told otherwise
            kept = inherited_settings(runs.load_run_config(train_cfg.init_from), settings, config)
            model_cfg, train_cfg, data_cfg = resolve_configs({**kept, **settings}, preset, config)
        command = command or f"animevae.train({str(out)!r}, {', '.join(f'{k}={v!r}' for k, v in settings.items())})"
    try:
        train_loop(
            model_cfg, train_cfg, data_cfg, out, overwrite=overwrite, progress=progress, command=command, resume=resume, allow_data_change=allow_data_change
        )
    except (OSError, runs.WriteFailed) as e:  # a full disk mid-run, say: what failed, and how to go on
        what = str(e) if isinstance(e, runs.WriteFailed) else f"{e.filename or 'a file'}: {e.strerror or e}"
        saved = any(Path(out, "checkpoints").glob("step_*"))
        then = (
            f"the last complete checkpoint is in {Path(out) / 'checkpoints'}: fix that, then: animevae train --resume {out}"
            if saved
            else "no checkpoint was written yet: fix that, then start the run again"
        )
        raise UserError(f"{what}; the run stopped, {then}") from None
    return Run(out)


def _pil(images: torch.Tensor) -> list[Image.Image]:
    return [Image.fromarray(a) for a in to_hwc(images)]


def _as_batch(images, size: int) -> torch.Tensor:
    """PIL images, file paths or a uint8 N x 3 x H x W tensor -> uint8 N x 3 x size x size."""
    if isinstance(images, torch.Tensor):
        batch = images if images.ndim == 4 else images[None]
        if batch.dtype != torch.uint8 or batch.shape[1:] != (3, size, size):
            raise UserError(f"images: expected uint8 N x 3 x {size} x {size}, got {batch.dtype} {tuple(batch.shape)}")
        return batch
    items = images if isinstance(images, (list, tuple)) else [images]
    out = []
    for item in items:
        if isinstance(item, Image.Image):
            rgb = item.convert("RGB").resize((size, size), Image.BILINEAR)
            out.append(torch.from_numpy(np.asarray(rgb).copy()).permute(2, 0, 1))
        else:
            out.append(read_image(item, size))
    return torch.stack(out)


class Run:
    """A trained run: a local run folder or a Hub model repo id. Loads what it needs when first asked.

    ``model`` (the VAE, eval mode), ``config`` (config.json), ``latents`` (every training image's),
    ``metrics`` (metrics.jsonl: one dict per epoch); ``generate``, ``reconstruct``, ``interpolate``,
    ``evaluate``, ``push``. In Jupyter it shows its summary and latest sample grid.
    """

    def __init__(self, path_or_hub_id: str | Path, revision: str | None = None, device: str = "cpu"):
        self.path, self.revision, self.device = str(path_or_hub_id), revision, device
        self._model = None
        runs.resolve_file(self.path, runs.CONFIG, revision=revision)  # fail now, in one line, if it is not a run

    def __repr__(self) -> str:
        return f"Run({self.path!r})"

    @property
    def is_local(self) -> bool:
        """A folder on this machine (else a Hub repo id)."""
        return Path(self.path).expanduser().is_dir()

    @property
    def model(self):
        """The trained VAE, in eval mode, on ``device`` (loaded once)."""
        if self._model is None:
            self._model = load_model(self.path, self.device, self.revision)
        return self._model

    @property
    def config(self) -> dict:
        """config.json: the model, train and data configs, the data's counts, the command."""
        return runs.load_run_config(self.path, self.revision)

    @property
    def latents(self) -> runs.Latents:
        """Every training image's latent mean and log-variance, with its dataset row."""
        return runs.load_latents(self.path, self.revision)

    @property
    def metrics(self) -> list[dict]:
        """metrics.jsonl: one dict per finished epoch (losses, held-out loss, images/s)."""
        if self.is_local:
            return runs.read_metrics(self.path)
        try:
            return runs.read_metrics(Path(runs.resolve_file(self.path, runs.METRICS, revision=self.revision)).parent)
        except UserError:
            return []

    def generate(self, n: int = 100, sampler: str | None = None, seed: int | None = None, fine_temperature=None, **options) -> list[Image.Image]:
        """``n`` new faces as PIL images. ``sampler``: mix (the seed's), prior, gmm, joint-gmm (hierarchical runs), two-stage or diffusion; default: the run's
        own (its preset's best); ``options``: ``mix_k``, ``temperature``, ``gmm_components``, ``gmm_covariance``. ``seed`` fixes the draw.
        ``fine_temperature``: a hierarchical model's finer groups' (a number or one per finer scale; default: the model's own)."""
        if n < 1:
            raise UserError(f"n must be at least 1, got {n}")
        options.setdefault("mix_k", DEFAULT_MIX_K)
        chosen = make_sampler(sampler or default_sampler(self.path, self.revision), self.model, self.path, revision=self.revision, **options)
        gen = torch.Generator().manual_seed(seed or 0)
        return _pil(decode_latents(self.model, chosen.sample(n, gen), generator=gen, temperatures=fine_temperature))

    def encode(self, images) -> torch.Tensor:
        """Latent means (N x latent) of PIL images, image files or a uint8 tensor."""
        return encode_images(self.model, _as_batch(images, self.model.config.image_size))

    def reconstruct(self, images, latents: str | None = None, seed: int = 0) -> list[Image.Image]:
        """Each image through the model: resized, encoded, decoded. ``latents``: ``"draw"`` (a hierarchical model's
        default: a posterior draw, seeded ``seed``, as training decodes) or ``"mean"`` (a one-latent model's default)."""
        if latents is not None and latents not in RECONSTRUCTION_LATENTS:
            raise UserError(f"latents must be one of {', '.join(RECONSTRUCTION_LATENTS)}, got {latents!r}")
        gen = torch.Generator().manual_seed(seed)
        return _pil(reconstruct_images(self.model, _as_batch(images, self.model.config.image_size), generator=gen, latents=latents))

    def interpolate(self, a, b, steps: int = 8, mode: str = "slerp") -> list[Image.Image]:
        """The faces on the path between two images (or two latent vectors), ends included."""
        if steps < 2:
            raise UserError(f"steps must be at least 2, got {steps}")
        if mode not in ("lerp", "slerp"):
            raise UserError(f"mode must be lerp or slerp, got {mode!r}")
        za, zb = (x.float() if isinstance(x, torch.Tensor) and x.ndim == 1 else self.encode(x)[0] for x in (a, b))
        return _pil(decode_latents(self.model, (slerp if mode == "slerp" else lerp)(za, zb, torch.linspace(0, 1, steps)), temperatures=0))

    def evaluate(self, data: str, out: str | Path | None = None, limit: int | None = None, **options) -> dict:
        """Every metric of ``animevae evaluate`` on ``data`` (the run's own source: its held-out split, at most
        ``limit`` images); ``options``: its other settings (``k``, ``n_samples``, ``features`` ...) and data fields.
        Writes ``out`` (default RUN/evaluation.json) and returns the metrics."""
        data_cfg = DataConfig(source=data, **{k: options.pop(k) for k in list(options) if k in DataConfig.__dataclass_fields__})
        return evaluate_run(self.path, data_cfg, out=out, limit=limit, device=self.device, **options)[0]

    def push(self, repo_id: str, **options) -> str:
        """Upload the run to a Hub model repo (``private``, ``token``, ``revision``); returns the commit URL."""
        return push_run(self.path, repo_id, **options)

    def sample_grid(self) -> Image.Image | None:
        """The newest per-epoch sample grid of a local run, or None."""
        grids = sorted((Path(self.path) / "samples").glob("epoch_*.png")) if self.is_local else []
        return Image.open(grids[-1]) if grids else None

    def _repr_html_(self) -> str:
        from .info import summarize

        text = summarize(self.path) if self.is_local else f"Hub model {self.path}"
        html = f"<pre>{text.replace('&', '&amp;').replace('<', '&lt;')}</pre>"
        grid = self.sample_grid()
        if grid is not None:
            buf = io.BytesIO()
            grid.save(buf, format="PNG")
            html += f'<img alt="latest sample grid" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}"/>'
        return html


def load_run(path_or_hub_id: str | Path, revision: str | None = None, device: str = "cpu") -> Run:
    """The same as ``Run(path_or_hub_id)``."""
    return Run(path_or_hub_id, revision=revision, device=device)


def show(images, nrow: int | None = None) -> Image.Image:
    """Several faces (PIL images, or a uint8 N x 3 x H x W tensor) as one grid picture: what a notebook cell displays."""
    if not isinstance(images, torch.Tensor):
        images = torch.stack([torch.from_numpy(np.asarray(im.convert("RGB")).copy()).permute(2, 0, 1) for im in images])
    return Image.fromarray(make_grid(images, nrow=nrow))
