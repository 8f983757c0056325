"""The three configs of a run: what the model is, how it is trained, where the faces come from.

Kept apart (as in pythae) so a trained model's config travels alone with its weights, while a run
folder's ``config.json`` holds all three. Every field is validated on construction, so a config
read from a file a stranger wrote fails with a one-line message instead of a traceback deep inside.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, fields

from .errors import UserError


def _check_types(obj) -> None:
    """Reject wrong types field by field (JSON and TOML give ints, floats, strings, bools)."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        value, hint = getattr(obj, f.name), hints[f.name]
        allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union else (hint,)
        ok = False
        for t in allowed:
            if t is type(None) and value is None:
                ok = True
            elif t is float and isinstance(value, (int, float)) and not isinstance(value, bool):
                object.__setattr__(obj, f.name, float(value))
                ok = True
            elif t is int and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            elif t in (str, bool) and type(value) is t:
                ok = True
            elif typing.get_origin(t) is list and isinstance(value, (list, tuple)):
                object.__setattr__(obj, f.name, list(value))
                ok = True
        if not ok:
            names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
            raise UserError(f"config field '{f.name}' must be {names}, got {value!r}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"config field '{name}' must be one of {', '.join(choices)}; got {value!r}")


def from_dict(cls, data: dict, where: str = "config"):
    """Build a config dataclass from a dict, refusing unknown keys (a typo must not pass silently)."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a table of settings, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{where}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return cls(**data)


@dataclass
class ModelConfig:
    """The convolutional VAE. Defaults are the seed notebook's model (9,122,115 parameters)."""

    image_size: int = 96  # must be 3 * 2**num_layers
    in_channels: int = 3
    latent_dim: int = 256
    base_channels: int = 32  # width of the first conv; doubles at every layer (32..512 in the seed)
    num_layers: int = 5
    negative_slope: float = 0.2  # LeakyReLU

    def __post_init__(self):
        _check_types(self)
        for name in ("image_size", "in_channels", "latent_dim", "base_channels", "num_layers"):
            if getattr(self, name) < 1:
                raise UserError(f"model setting '{name}' must be at least 1, got {getattr(self, name)}")
        if self.image_size != 3 * 2**self.num_layers:
            ok = ", ".join(str(3 * 2**k) for k in range(3, 8))
            k = math.log2(self.image_size / 3) if self.image_size % 3 == 0 else None
            hint = f" (use num_layers={int(k)})" if k is not None and k == int(k) and k >= 1 else f"; sizes that work: {ok}"
            raise UserError(
                f"image size {self.image_size} does not fit a {self.num_layers}-layer model, which takes "
                f"{3 * 2**self.num_layers}x{3 * 2**self.num_layers}; the size must be 3*2^num_layers{hint}"
            )

    @property
    def bottleneck_channels(self) -> int:
        return self.base_channels * 2 ** (self.num_layers - 1)


@dataclass
class DataConfig:
    """Where the faces come from and how they are decoded (the seed's filters)."""

    source: str = "DrishtiSharma/Anime-Face-Dataset"  # Hub id, parquet file/glob/folder, image folder, or "builtin"
    split: str = "train"
    revision: str | None = None  # Hub dataset revision (branch, tag or commit) to pin
    image_column: str | None = None  # found automatically when None
    limit: int | None = None  # take the first N images
    convert_to_rgb: bool = False  # the seed skips non-RGB images; True converts them instead
    builtin_count: int = 4000  # how many procedural faces `builtin` makes
    cache: bool = True
    cache_dir: str | None = None
    workers: int | None = None  # decode processes; None = all cores

    def __post_init__(self):
        _check_types(self)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.limit}")
        if self.builtin_count < 1:
            raise UserError(f"builtin_count must be at least 1, got {self.builtin_count}")


@dataclass
class TrainConfig:
    """How a run trains. Defaults are the seed's (Adam, 100 epochs, batch 64) plus what users expect."""

    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3
    beta: float = 1.0  # weight of the KL term
    seed: int = 0
    val_fraction: float = 0.05  # held-out share, evaluated every epoch
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    # Augmentation, per the seed: resize (done when decoding), flip p=0.5, rotation in [-10, 10] degrees.
    hflip: bool = True
    rotation: float = 10.0  # degrees; 0 turns it off
    rotation_fill: str = "zeros"  # zeros (the seed's black corners) | border | reflection
    interpolation: str = "nearest"  # nearest (torchvision's RandomRotation default) | bilinear
    # Beyond the seed (off by default, so the seed's results stay reproducible)
    kl_warmup_epochs: float = 0.0  # beta ramps linearly from 0 to --beta over this many epochs
    free_bits: float = 0.0  # nats per latent dimension below which KL is not penalised
    ema: float = 0.0  # decay of an exponential moving average of the weights (e.g. 0.999); 0 = off
    # Fine-tuning
    init_from: str | None = None  # run folder or Hub repo id to start from
    freeze: str | None = None  # encoder | decoder
    # Run folder
    keep_last: int = 3  # per-epoch copies kept (0 = none)
    # Per-epoch latents come from the training pass (the seed's way: free); a clean pass (eval mode,
    # no augmentation, the epoch's final weights) replaces them after the last epoch only (last),
    # after every epoch (every: +14 % per epoch on a 2-core CPU), or never.
    clean_latents: str = "last"  # last | every | never
    log_every: int = 20  # read the loss from the device every N steps (no per-step host sync)
    save_every_steps: int = 0  # mid-epoch checkpoint every N steps (0 = off)
    save_every_minutes: float = 10.0  # ... and at least this often (0 = off); always at every epoch end
    max_bad_steps: int = 20  # non-finite losses in a row before the run stops
    sample_count: int = 64  # faces in each epoch's sample grid
    tensorboard: bool = False  # also log to runs/NAME/tensorboard

    def __post_init__(self):
        _check_types(self)
        for name in ("epochs", "batch_size", "log_every", "sample_count"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr must be a positive number, got {self.lr}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise UserError(f"--beta must be a non-negative number, got {self.beta}")
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.keep_last < 0:
            raise UserError(f"--keep-last must be 0 or more, got {self.keep_last}")
        for name in ("kl_warmup_epochs", "free_bits", "save_every_minutes"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.ema < 1:
            raise UserError(f"--ema must be in [0, 1), got {self.ema}")
        if self.save_every_steps < 0 or self.max_bad_steps < 1:
            raise UserError("--save-every-steps must be 0 or more and --max-bad-steps at least 1")
        if not 0 <= self.rotation <= 180:
            raise UserError(f"--rotation must be between 0 and 180 degrees, got {self.rotation}")
        _choice("precision", self.precision, ("auto", "fp32", "bf16", "fp16"))
        _choice("rotation_fill", self.rotation_fill, ("zeros", "border", "reflection"))
        _choice("interpolation", self.interpolation, ("nearest", "bilinear"))
        _choice("clean_latents", self.clean_latents, ("last", "every", "never"))
        if self.freeze is not None:
            _choice("freeze", self.freeze, ("encoder", "decoder"))


# Named training presets: "seed" is the notebook's setting (the default); "quality" combines the
# options that measurably helped at the same training budget (docs/results.md has the figures).
PRESETS: dict[str, dict] = {
    "seed": {},
    "quality": {"kl_warmup_epochs": 2.0, "free_bits": 0.25, "ema": 0.998, "rotation_fill": "reflection", "interpolation": "bilinear"},
}


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "PRESETS", "from_dict", "to_dict"]
