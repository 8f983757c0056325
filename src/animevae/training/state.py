"""The training state: model, EMA, objective (with any networks it owns), optimizers by name, grad
scaler, RNGs and progress, with ``capture``/``restore`` to and from named tensors + JSON.

A checkpoint (checkpoint.py writes it) is exactly ``capture()``; ``restore`` puts it back so that a
resumed run continues bit for bit. Optimizers are kept by name ("model" for the VAE's, others from
the objective), so an objective that brings a discriminator and its optimizer resumes like the seed's.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..models.vae import VAE
from . import adversarial  # noqa: F401  (registers objective="adversarial")
from .objectives import Objective, make_objective
from .system import System, gather_rows


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch has a fused kernel for the device (about 2x faster steps on CPU)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def ema_with_warmup(decay: float):
    """EMA update whose decay ramps up as min(decay, (1 + n) / (10 + n)) over the first updates.

    A fixed 0.998 averages in the random initial weights for thousands of steps: measured on a
    short run it left a model with 1 active latent unit. Computed on the device (no host sync).
    """

    def update(ema_params, model_params, num_averaged):
        n = num_averaged.to(torch.float32)
        d = torch.clamp((1 + n) / (10 + n), max=decay)
        floats = [(e, m) for e, m in zip(ema_params, model_params) if e.is_floating_point()]
        for e, m in zip(ema_params, model_params):
            if not e.is_floating_point():  # BatchNorm's step counter: copied, not averaged
                e.copy_(m)
        if not floats:
            return
        ema_f, model_f = [e for e, _ in floats], [m for _, m in floats]
        torch._foreach_mul_(ema_f, d)
        torch._foreach_add_(ema_f, torch._foreach_mul(model_f, 1 - d))

    return update


def build_model(model_cfg: ModelConfig, train_cfg: TrainConfig, pretrained: bool = True) -> VAE:
    """A fresh model, or (fine-tuning, ``pretrained``) the weights and model config of ``init_from``; a frozen half stays frozen."""
    model = VAE.from_pretrained(train_cfg.init_from) if train_cfg.init_from and pretrained else VAE(model_cfg)
    for m in frozen_parts(model, train_cfg.freeze):
        m.requires_grad_(False)
    return model


def frozen_parts(model: VAE, half: str | None) -> tuple[nn.Module, ...]:
    return model.parts()[half] if half else ()


@dataclass
class Progress:
    """Where the run is. ``epoch``/``step_in_epoch``: the next step to take; ``seen``/``elapsed``: this epoch so far."""

    epoch: int = 1
    step_in_epoch: int = 0
    step: int = 0
    seen: int = 0
    elapsed: float = 0.0
    bad_steps: int = 0
    trained_seconds: float = 0.0  # training + end-of-epoch passes of the finished epochs, across resumes (--max-minutes)
    history: list[dict] = field(default_factory=list)  # one metrics line per finished epoch


@dataclass
class TrainState:
    model: VAE
    ema: torch.optim.swa_utils.AveragedModel | None
    objective: Objective
    optimizers: dict[str, torch.optim.Optimizer]
    scaler: torch.amp.GradScaler
    aug_gen: torch.Generator  # the augmentation's random stream (this rank's)
    sums: torch.Tensor  # this epoch's recon, KL and image count, on the device (read every log_every steps)
    progress: Progress = field(default_factory=Progress)

    @classmethod
    def create(cls, model: VAE, cfg: TrainConfig, system: System, steps_per_epoch: int) -> TrainState:
        model = model.to(system.device, memory_format=system.memory_format)
        objective = make_objective(cfg, steps_per_epoch, system.autocast, model.config).to(system.device)
        optimizers = {"model": make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.lr)}
        optimizers.update(objective.optimizers(lambda params: make_optimizer(params, cfg.lr)))
        ema = None
        if cfg.ema > 0:
            ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_with_warmup(cfg.ema), use_buffers=True)
        scaler = torch.amp.GradScaler(system.device.type, enabled=system.amp is torch.float16)
        aug_gen = torch.Generator(device=system.device).manual_seed(cfg.seed * 1000 + system.rank)
        return cls(model, ema, objective, optimizers, scaler, aug_gen, torch.zeros(3, device=system.device))

    @property
    def final(self) -> VAE:
        """The weights a run saves: the EMA's where there is one."""
        return self.ema.module if self.ema is not None else self.model

    def capture(self, world: int, **facts) -> tuple[dict[str, torch.Tensor], dict] | None:
        """Everything a resume needs, as (tensors, JSON meta, ``facts`` added to it); collective (every rank's
        RNG states are gathered), None on ranks > 0."""
        torch_states, aug_states = gather_rows([torch.get_rng_state()[None], self.aug_gen.get_state().cpu()[None]], world)
        if world > 1 and torch.distributed.get_rank() != 0:
            return None
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"ema.{k}": v for k, v in self.ema.state_dict().items()} if self.ema is not None else {})
        tensors.update({f"objective.{k}": v for k, v in self.objective.state_dict().items()})
        groups = {}
        for name, optimizer in self.optimizers.items():
            sd = optimizer.state_dict()
            tensors.update({f"optim.{name}.{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if isinstance(v, torch.Tensor)})
            groups[name] = sd["param_groups"]
        tensors.update({f"rng.torch.{r}": s for r, s in enumerate(torch_states)})
        tensors.update({f"rng.aug.{r}": s for r, s in enumerate(aug_states)})
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        tensors["sums"] = self.sums
        np_state, py = np.random.get_state(), random.getstate()
        rng = {"python": [py[0], list(py[1]), py[2]], "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]]}
        meta = {**asdict(self.progress), "optimizers": groups, "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None, "rng": rng, **facts}
        return tensors, meta

    def restore(self, tensors: dict[str, torch.Tensor], meta: dict, rank: int) -> None:
        """Put a captured state back: weights, EMA, objective, optimizer moments, grad scaler, this rank's RNG states, progress."""
        tensors, meta = _upgrade_legacy(tensors, meta)
        self.model.load_state_dict(_under(tensors, "model."), strict=True)
        if self.ema is not None:
            self.ema.load_state_dict(_under(tensors, "ema."), strict=True)
        self.objective.load_state_dict(_under(tensors, "objective."), strict=True)
        for name, optimizer in self.optimizers.items():
            _load_optimizer(optimizer, _under(tensors, f"optim.{name}."), meta["optimizers"][name])
        if meta.get("scaler"):
            self.scaler.load_state_dict(meta["scaler"])
        torch.set_rng_state(tensors[f"rng.torch.{rank}"])
        if "rng.cuda" in tensors and torch.cuda.is_available():
            torch.cuda.set_rng_state(tensors["rng.cuda"])
        py, npst = meta["rng"]["python"], meta["rng"]["numpy"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        np.random.set_state((npst[0], np.asarray(npst[1], dtype=np.uint32), *npst[2:]))
        aug = tensors[f"rng.aug.{rank}"]
        self.aug_gen.set_state(aug.to(self.aug_gen.device) if self.aug_gen.device.type != "cpu" else aug)
        self.sums = tensors["sums"].to(self.sums.device)
        self.progress = Progress(**{k: meta[k] for k in Progress.__dataclass_fields__ if k in meta})  # older checkpoints lack new fields


def _under(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _upgrade_legacy(tensors: dict, meta: dict) -> tuple[dict, dict]:
    """Checkpoints written before optimizers had names held one, as ``optim.<i>.<k>`` + ``param_groups``."""
    if "optimizers" in meta:
        return tensors, meta
    renamed = {(f"optim.model.{k[6:]}" if k.startswith("optim.") else k): v for k, v in tensors.items()}
    return renamed, {**meta, "optimizers": {"model": meta["param_groups"]}}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: list[dict]) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    # Moments must share their parameter's memory layout (channels_last): fused kernels walk raw storage.
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.shape == p.shape:
                    optimizer.state[p][name] = torch.empty_like(p).copy_(value)
