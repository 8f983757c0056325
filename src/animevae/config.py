"""The three configs of a run: what the model is, how it is trained, where the faces come from.

Kept apart (as in pythae) so a trained model's config travels alone with its weights, while a run
folder's ``config.json`` holds all three. Every field is validated on construction, so a config
read from a file a stranger wrote fails with a one-line message instead of a traceback deep inside.

Each field carries its own help, choices and command-line flag (``opt``): the CLI is built from the
fields, so a default or a choice is written once, here. The rules that are not parsing (presets,
config files, the fine-tuning learning rate, what a resumed run may change) live here too.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path

from .errors import UserError

FINETUNE_LR = 1e-4  # default lr when starting from trained weights


def opt(default, help: str, *, choices: tuple | None = None, flag: str | None = None, group: str | None = None):
    """A config field with what the command line needs: its help, allowed values, flag and help group."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag, "group": group})


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
        if not ok:
            names = " or ".join(getattr(t, "__name__", str(t)) for t in allowed)
            raise UserError(f"config field '{f.name}' must be {names}, got {value!r}")
        choices = f.metadata.get("choices")
        if choices and value is not None and value not in choices:
            raise UserError(f"config field '{f.name}' must be one of {', '.join(choices)}; got {value!r}")


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
    """The VAE. Defaults are the seed notebook's model (9,122,115 parameters)."""

    image_size: int = opt(96, "3*2^k pixels (default 96: the seed's)")
    in_channels: int = opt(3, "image channels")
    latent_dim: int = opt(256, "latent dimensions")
    base_channels: int = opt(32, "width of the first conv; doubles at every layer (32..512 in the seed)")
    num_layers: int = opt(5, "conv layers (default: fits --image-size; 5 for 96)")
    negative_slope: float = opt(0.2, "LeakyReLU slope")
    arch: str = opt("conv", "encoder/decoder pair, by registered name (models/vae.py; conv: the seed's)")
    likelihood: str = opt("bernoulli", "pixel likelihood, by registered name (distributions.py; bernoulli: the seed's BCE)")

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

    source: str = opt("DrishtiSharma/Anime-Face-Dataset", "Hub dataset id, parquet file/glob/folder, image folder, or 'builtin'", flag="--data")
    split: str = opt("train", "Hub dataset split")
    revision: str | None = opt(None, "Hub dataset revision to pin (branch, tag or commit)")
    image_column: str | None = opt(None, "column holding the images (default: image, img, or the first Image feature)")
    limit: int | None = opt(None, "use only the first N images")
    convert_to_rgb: bool = opt(False, "convert grayscale/RGBA/palette/CMYK images instead of skipping them (the seed skips)")
    builtin_count: int = opt(4000, "how many procedural faces --data builtin makes")
    cache: bool = opt(True, "decode into memory instead of the on-disk cache", flag="--no-cache")
    cache_dir: str | None = opt(None, "where decoded images are cached (default: $ANIMEVAE_CACHE or ~/.cache/animevae)")
    workers: int | None = opt(None, "decode processes (default: all cores)")
    max_file_mb: float = opt(64.0, "files (and parquet cells) larger than this are skipped as too large, unread")

    def __post_init__(self):
        _check_types(self)
        if self.limit is not None and self.limit < 1:
            raise UserError(f"--limit must be at least 1, got {self.limit}")
        if self.builtin_count < 1:
            raise UserError(f"builtin_count must be at least 1, got {self.builtin_count}")
        if not (self.max_file_mb > 0 and math.isfinite(self.max_file_mb)):
            raise UserError(f"--max-file-mb must be a positive number, got {self.max_file_mb}")


AUG, BEYOND, ADV, CKPT, TUNE = (
    "augmentation (the seed's: flip p=0.5, rotation +-10 deg)",
    "beyond the seed (all off by default)",
    "adversarial objective (--objective adversarial)",
    "checkpoints (exact resume)",
    "fine-tuning",
)
SAMPLER_NAMES = ("mix", "prior", "gmm", "joint-gmm", "two-stage", "diffusion")
RECONSTRUCTION_LATENTS = ("draw", "mean")  # a reconstruction's latents: drawn from the posterior (a hierarchical model's default), or its means
ADV_FAKES = ("recon+mix", "recon")  # what the discriminator sees as fakes


@dataclass
class TrainConfig:
    """How a run trains. Defaults are the seed's (Adam, 100 epochs, batch 64) plus what users expect."""

    epochs: int = opt(100, "passes over the training images (the seed's: 100)")
    max_minutes: float | None = opt(None, "stop after this many minutes of training (and end-of-epoch passes), every output written as at a normal end")
    batch_size: int = opt(64, "images per step")
    lr: float = opt(1e-3, "Adam learning rate (1e-4 by default with --init-from)")
    beta: float = opt(1.0, "weight of the KL term (the seed's: 1)")
    seed: int = opt(0, "seed of the initialisation, the split, the order and the augmentation")
    val_fraction: float = opt(0.05, "held-out share, evaluated every epoch")
    objective: str = opt("elbo", "training objective, by registered name (training/objectives.py; elbo: the seed's)")
    precision: str = opt("auto", "mixed precision (auto: bf16 on GPUs that have it, CPUs where it measures faster)", choices=("auto", "fp32", "bf16", "fp16"))
    channels_last: bool = opt(True, "keep activations channels-last (faster on CPUs and GPUs)", flag="--no-channels-last")
    compile: bool = opt(False, "torch.compile the model")
    device: str = opt("auto", "auto, cpu, cuda, cuda:N, mps")
    hflip: bool = opt(True, "no horizontal flips", flag="--no-flip", group=AUG)
    rotation: float = opt(10.0, "max rotation in degrees; 0 turns it off", group=AUG)
    rotation_fill: str = opt("zeros", "corner fill (zeros: the seed's black)", choices=("zeros", "border", "reflection"), group=AUG)
    interpolation: str = opt(
        "nearest",
        "rotation resampling (nearest: torchvision's default, jagged; bilinear blurs; bicubic keeps fine detail)",
        choices=("nearest", "bilinear", "bicubic"),
        group=AUG,
    )
    kl_warmup_epochs: float = opt(0.0, "ramp beta from 0 over this many epochs", group=BEYOND)
    free_bits: float = opt(0.0, "nats per latent dimension not penalised", group=BEYOND)
    fine_beta: float | None = opt(None, "KL weight of a hierarchical model's finer latent groups (default: --beta)", group=BEYOND)
    freq_weight: float = opt(10.0, "weight of the focal frequency loss (--objective frequency; training/objectives.py)", group=BEYOND)
    ema: float = opt(0.0, "EMA decay of the weights, e.g. 0.999 (saved weights are the EMA); 0 = off", group=BEYOND)
    adv_weight: float = opt(0.1, "weight of the patch discriminator's term, on top of VQGAN's adaptive gradient-norm ratio (0.5 drew textures)", group=ADV)
    adv_start_epochs: float = opt(1.0, "epochs of plain ELBO training before the discriminator is switched on", group=ADV)
    adv_start_fraction: float | None = opt(
        None, "switch the discriminator on after this share of the run (of --epochs, or of --max-minutes when set) instead of --adv-start-epochs", group=ADV
    )
    adv_decoder_only: bool = opt(False, "once the discriminator is on, train the decoder only: the encoder, and so the latents, stay as they are", group=ADV)
    disc_width: int = opt(32, "channels of the discriminator's first conv (doubling over 3 layers)", group=ADV)
    diffaug: bool = opt(True, "no differentiable augmentation of the discriminator's inputs", flag="--no-diffaug", group=ADV)
    disc_blur: bool = opt(False, "low-pass the discriminator's input to each strided conv (anti-aliasing against textures at its stride)", group=ADV)
    adv_fakes: str = opt("recon+mix", "the discriminator's fakes: reconstructions and mix decodes, or reconstructions only", choices=ADV_FAKES, group=ADV)
    adv_feature_match: float = opt(0.0, "weight of feature matching (L1 between the discriminator's features of a reconstruction and of its face)", group=ADV)
    disc_r1: float = opt(0.0, "gamma of a lazy R1 penalty on the discriminator's gradient at real faces, every 16 steps; 0 = off", group=ADV)
    sampler: str = opt("mix", "the sampler generate, the demo and the model card use for this run by default", choices=SAMPLER_NAMES)
    init_from: str | None = opt(None, "start from a trained run folder or Hub repo id", group=TUNE)
    freeze: str | None = opt(None, "keep this half fixed while fine-tuning", choices=("encoder", "decoder"), group=TUNE)
    keep_last: int = opt(3, "per-epoch copies of weights+latents to keep (0 = none)")
    # Per-epoch latents come from the training pass (the seed's way: free); a clean pass (eval mode,
    # no augmentation, the epoch's final weights) replaces them after the last epoch only (last),
    # after every epoch (every: +14 % per epoch on a 2-core CPU), or never.
    clean_latents: str = opt(
        "last",
        "when every training image is re-encoded in eval mode for latents.safetensors "
        "(other epochs save the latents their training pass produced, as the seed does)",
        choices=("last", "every", "never"),
    )
    log_every: int = opt(20, "read the loss from the device every N steps (no per-step host sync)")
    save_every_steps: int = opt(0, "mid-epoch checkpoint every N steps (0 = off)", group=CKPT)
    save_every_minutes: float = opt(10.0, "... and at least every M minutes (0 = off); always at epoch ends", group=CKPT)
    max_bad_steps: int = opt(20, "non-finite losses in a row before the run stops", group=CKPT)
    sample_count: int = opt(64, "faces in each epoch's sample grid")
    tensorboard: bool = opt(False, "also log losses, images/s and sample grids to RUN/tensorboard")

    def __post_init__(self):
        _check_types(self)
        for name in ("epochs", "batch_size", "log_every", "sample_count"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_minutes is not None and not (self.max_minutes > 0 and math.isfinite(self.max_minutes)):
            raise UserError(f"--max-minutes must be a positive number of minutes, got {self.max_minutes}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise UserError(f"--lr must be a positive number, got {self.lr}")
        if not (self.beta >= 0 and math.isfinite(self.beta)):
            raise UserError(f"--beta must be a non-negative number, got {self.beta}")
        if not 0 <= self.val_fraction < 1:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")
        if self.keep_last < 0:
            raise UserError(f"--keep-last must be 0 or more, got {self.keep_last}")
        if self.fine_beta is not None and not (self.fine_beta >= 0 and math.isfinite(self.fine_beta)):
            raise UserError(f"--fine-beta must be a non-negative number, got {self.fine_beta}")
        for name in ("kl_warmup_epochs", "free_bits", "save_every_minutes", "freq_weight"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if not 0 <= self.ema < 1:
            raise UserError(f"--ema must be in [0, 1), got {self.ema}")
        if self.save_every_steps < 0 or self.max_bad_steps < 1:
            raise UserError("--save-every-steps must be 0 or more and --max-bad-steps at least 1")
        if not (self.adv_weight >= 0 and math.isfinite(self.adv_weight)) or not (self.adv_start_epochs >= 0 and math.isfinite(self.adv_start_epochs)):
            raise UserError(f"--adv-weight and --adv-start-epochs must be 0 or more, got {self.adv_weight} and {self.adv_start_epochs}")
        if self.adv_start_fraction is not None and not 0 <= self.adv_start_fraction < 1:
            raise UserError(f"--adv-start-fraction must be in [0, 1), got {self.adv_start_fraction}")
        for name in ("adv_feature_match", "disc_r1"):
            if not (getattr(self, name) >= 0 and math.isfinite(getattr(self, name))):
                raise UserError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(self, name)}")
        if self.disc_width < 1:
            raise UserError(f"--disc-width must be at least 1, got {self.disc_width}")
        if not 0 <= self.rotation <= 180:
            raise UserError(f"--rotation must be between 0 and 180 degrees, got {self.rotation}")


# Named presets (settings of any of the three configs): "seed" is the notebook's setting (the default);
# "quality" combines the options that measurably helped the likelihood at the same training budget;
# "sharp" adds to those a spatial latent (a 16 x 6 x 6 map), a weaker KL term and bicubic rotation (it keeps
# the training faces' fine detail), for faces that look real; "hierarchical" is the sharp preset with latent
# groups at 12 and 24 px (models/hierarchical.py) and a mixture over its top, 12-px and 24-px latents as its sampler: the
# recommended one for real faces (its samples are caught least often from 24 to 96 px)
# docs/explanation/experiments.md has the figures, and each records the sampler that measured best for it.
QUALITY = {"kl_warmup_epochs": 2.0, "free_bits": 0.25, "ema": 0.998, "rotation_fill": "reflection", "interpolation": "bilinear"}
SHARP = {"arch": "spatial", "latent_dim": 576, "beta": 0.1, "sampler": "gmm", "interpolation": "bicubic"}
HIERARCHICAL = {"arch": "hierarchical", "sampler": "joint-gmm"}
PRESETS: dict[str, dict] = {
    "seed": {},
    "quality": {**QUALITY, "sampler": "gmm"},
    "sharp": {**QUALITY, **SHARP},
    "hierarchical": {**QUALITY, **SHARP, **HIERARCHICAL},
}
SECTIONS = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def read_config_file(path: str) -> dict[str, dict]:
    """A TOML (or JSON) file with [model], [train] and [data] tables, or flat keys of any of them."""
    import tomllib

    try:
        raw = Path(path).read_bytes()
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"--config {path}: cannot parse it ({str(e).splitlines()[0]})") from None
    sections: dict[str, dict] = {name: {} for name in SECTIONS}
    for key, value in data.items():
        if key in sections and isinstance(value, dict):
            sections[key].update(value)
            continue
        owner = next((name for name, cls in SECTIONS.items() if key in cls.__dataclass_fields__), None)
        if owner is None:
            raise UserError(f"--config {path}: unknown setting '{key}'")
        sections[owner][key] = value
    for name, cls in SECTIONS.items():
        unknown = sorted(set(sections[name]) - set(cls.__dataclass_fields__))
        if unknown:
            raise UserError(f"--config {path}: unknown setting(s) in [{name}]: {', '.join(unknown)}")
    return sections


def resolve_configs(settings: dict, preset: str = "seed", config_file: str | None = None) -> tuple[ModelConfig, TrainConfig, DataConfig]:
    """Defaults <- preset <- config file <- ``settings`` (flat field names of any of the three configs), validated.

    Two rules beyond merging: the number of conv layers follows ``image_size`` when only the size is
    given, and fine-tuning (``init_from``) defaults to a 10x lower learning rate.
    """
    if preset not in PRESETS:
        raise UserError(f"preset {preset!r} is not known; choose one of {', '.join(PRESETS)}")
    sections = read_config_file(config_file) if config_file else {name: {} for name in SECTIONS}
    for key, value in PRESETS[preset].items():
        owner = next(name for name, cls in SECTIONS.items() if key in cls.__dataclass_fields__)
        sections[owner].setdefault(key, value)
    for key, value in settings.items():
        owner = next((name for name, cls in SECTIONS.items() if key in cls.__dataclass_fields__), None)
        if owner is None:
            known = sorted(k for cls in SECTIONS.values() for k in cls.__dataclass_fields__)
            raise UserError(f"unknown setting {key!r}; known: {', '.join(known)}")
        sections[owner][key] = value
    model, train = sections["model"], sections["train"]
    if "image_size" in model and "num_layers" not in model and isinstance(model["image_size"], int) and model["image_size"] > 0:
        k = math.log2(model["image_size"] / 3)
        model["num_layers"] = int(k) if k == int(k) and k >= 1 else 5
    if "lr" not in train and train.get("init_from"):
        train["lr"] = FINETUNE_LR
    if train.get("freeze") and not train.get("init_from"):
        raise UserError("--freeze only makes sense with --init-from (freezing a random network)")
    where = f"--config {config_file}" if config_file else "settings"
    return tuple(from_dict(cls, sections[name], where) for name, cls in SECTIONS.items())  # type: ignore[return-value]


# What fine-tuning (--init-from) keeps from the run it starts from unless set again: its objective and
# KL weight (a sharp or adversarial run stays so) and the sampler that run measured best.
KEPT_BY_FINETUNING = (
    *("objective", "beta", "freq_weight"),
    *("adv_weight", "adv_start_epochs", "adv_fakes", "adv_feature_match"),
    *("disc_width", "diffaug", "disc_blur", "disc_r1"),
    "sampler",
)


def inherited_settings(init_run_config: dict, settings: dict, config_file: str | None = None) -> dict:
    """The settings of ``KEPT_BY_FINETUNING`` from the run being fine-tuned (its config.json), where neither
    ``settings`` nor the config file set them."""
    saved = init_run_config.get("train") if isinstance(init_run_config, dict) else None
    if not isinstance(saved, dict):
        return {}
    in_file = read_config_file(config_file)["train"] if config_file else {}
    return {k: saved[k] for k in KEPT_BY_FINETUNING if k in saved and k not in settings and k not in in_file}


RESUME_MAY_CHANGE = ("epochs", "max_minutes")  # to train longer; nothing else changes in a resumed run


def resumed_configs(run: str, **longer) -> tuple[ModelConfig, TrainConfig, DataConfig, str | None]:
    """A run folder's own saved configs and command, to continue it exactly; only ``epochs`` and ``max_minutes`` may change."""
    path = Path(run) / "config.json"
    if not path.is_file():
        raise UserError(f"--resume {run}: no config.json there; is it an animevae run folder?")
    try:
        saved = json.loads(path.read_text())
        sections = {name: dict(saved[name]) for name in SECTIONS}
    except (OSError, ValueError, KeyError, TypeError):
        raise UserError(f"{path}: not a readable animevae run config; start the run again with --overwrite") from None
    sections["train"].update({k: v for k, v in longer.items() if k in RESUME_MAY_CHANGE and v is not None})
    model, train, data = (from_dict(cls, sections[name], str(path)) for name, cls in SECTIONS.items())
    return model, train, data, saved.get("command")


__all__ = ["ModelConfig", "DataConfig", "TrainConfig", "PRESETS", "FINETUNE_LR", "from_dict", "to_dict", "resolve_configs", "resumed_configs"]
