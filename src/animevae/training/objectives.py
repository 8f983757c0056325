"""What training minimises, behind one interface: given the model and a batch, the loss terms.

    terms = objective(model, x, step)          # forward pass included: LossTerms(loss, recon, kl, output, logs)
    objective.optimizers(make_optimizer)       # extra networks' optimizers, by name ({} for the ELBO)
    objective.after_step(x, terms, step, opts) # the override point for those networks' own updates

An objective is an ``nn.Module``: networks it owns (a discriminator, say) are its children, so the
training state saves and restores them with it, and their optimizers by name. The model never holds
a loss. Register a new one with ``@register_objective(name)``; ``TrainConfig(objective=name)`` picks it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import ModelConfig, TrainConfig
from ..errors import UserError
from ..models.vae import VAEOutput


@dataclass
class LossTerms:
    loss: torch.Tensor  # scalar to backpropagate
    recon: torch.Tensor  # per image: -log p(x|z) (nats)
    kl: torch.Tensor  # per image: KL(q(z|x) || p(z)) (nats, every latent group), always the true KL
    output: VAEOutput  # the forward pass (its posterior gives the training pass's latents)
    logs: dict[str, torch.Tensor] = field(default_factory=dict)  # extra scalars worth a line in the logs


class Objective(nn.Module):
    """Base class. ``forward(model, x, step) -> LossTerms`` is the one thing to write.

    ``run_share``: how much of the run is done, 0..1 (of its epochs, or of ``--max-minutes`` when set,
    whichever is further); the loop keeps it current, for objectives that change course late in a run.
    """

    run_share: float = 0.0

    def __init__(
        self, cfg: TrainConfig, steps_per_epoch: int, autocast: Callable[[], AbstractContextManager] = nullcontext, model_config: ModelConfig | None = None
    ):
        super().__init__()
        self.cfg, self.steps_per_epoch, self.autocast = cfg, steps_per_epoch, autocast
        self.model_config = model_config or ModelConfig()  # the model it trains (a discriminator sizes its input from it)

    def forward(self, model: nn.Module, x: torch.Tensor, step: int) -> LossTerms:
        raise NotImplementedError

    def optimizers(self, make_optimizer: Callable) -> dict[str, torch.optim.Optimizer]:
        """Optimizers of the networks this objective owns, by name (saved and restored by that name)."""
        return {}

    def after_step(self, x: torch.Tensor, terms: LossTerms, step: int, optimizers: dict[str, torch.optim.Optimizer]) -> None:
        """Called after the model's optimizer step, with every optimizer by name: update the objective's own networks here."""


OBJECTIVES: dict[str, type[Objective]] = {}


def register_objective(name: str):
    """Class decorator: make an ``Objective`` selectable as ``TrainConfig(objective=name)``."""

    def add(cls: type[Objective]) -> type[Objective]:
        OBJECTIVES[name] = cls
        return cls

    return add


def make_objective(
    cfg: TrainConfig, steps_per_epoch: int, autocast: Callable[[], AbstractContextManager] = nullcontext, model_config: ModelConfig | None = None
) -> Objective:
    if cfg.objective not in OBJECTIVES:
        raise UserError(f"--objective {cfg.objective}: not known; choose one of {', '.join(sorted(OBJECTIVES))}")
    return OBJECTIVES[cfg.objective](cfg, steps_per_epoch, autocast, model_config)


def elbo_terms(
    output: VAEOutput, x: torch.Tensor, beta: float, free_bits: float = 0.0, fine_beta: float | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, recon, kl) of the seed's negative ELBO: recon + beta * KL per image, mean over the batch, in fp32.

    ``free_bits`` > 0 (Kingma et al. 2016): each latent dimension's batch-mean KL below that many nats
    is not penalised, so the encoder keeps using dimensions instead of collapsing them to the prior.
    ``fine_beta``: a hierarchical model's finer groups' KL weight instead of ``beta`` (warmed up alike).
    """
    recon = -output.likelihood.log_prob(x)
    kl_dims = output.kl_per_dim()
    kl = kl_dims.sum(1)
    per_dim = kl_dims.mean(0) if free_bits <= 0 else kl_dims.mean(0).clamp(min=free_bits)
    if fine_beta is None or not output.detail_kl:
        penalty = kl.mean() if free_bits <= 0 else per_dim.sum()
        return recon.mean() + beta * penalty, recon, kl
    top = output.posterior.mu.shape[1]
    return recon.mean() + beta * per_dim[:top].sum() + fine_beta * per_dim[top:].sum(), recon, kl


@register_objective("elbo")
class ELBO(Objective):
    """The seed's loss: -log p(x|z) + beta * KL(q(z|x) || N(0, I)), with an optional KL warm-up and free bits."""

    def warmed(self, step: int) -> float:
        """How far the KL warm-up is at ``step``: 0 -> 1 over ``kl_warmup_epochs``."""
        warmup = self.cfg.kl_warmup_epochs
        return min(1.0, step / (warmup * self.steps_per_epoch)) if warmup > 0 else 1.0

    def beta_at(self, step: int) -> float:
        return self.cfg.beta * self.warmed(step)

    def fine_beta_at(self, step: int) -> float | None:
        return None if self.cfg.fine_beta is None else self.cfg.fine_beta * self.warmed(step)

    def forward(self, model, x, step):
        with self.autocast():
            output = model(x)
        loss, recon, kl = elbo_terms(output, x, self.beta_at(step), self.cfg.free_bits, self.fine_beta_at(step))
        logs = {}
        if output.detail_kl:  # a hierarchical model: which groups carry information (kl0 the top latent, then finer)
            logs = {f"kl{i}": v for i, v in enumerate(output.kl_groups().detach().mean(0))}
        return LossTerms(loss, recon, kl, output, logs)


def focal_frequency_distance(fake: torch.Tensor, real: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
    """Per image: the focal frequency loss (Jiang et al. 2021) between two batches of N x C x H x W images.

    Both go through the orthonormal 2-D DFT; each frequency's squared distance is weighted by its own
    distance to the power ``alpha``, normalised to 1 at each image and channel's worst frequency, and the
    weights are held constant (no gradient): the frequencies drawn worst weigh most, whatever their band.
    With every weight 1 this is the images' sum of squared differences (Parseval); here it is at most that.
    """
    diff = torch.fft.fft2(fake.float(), norm="ortho") - torch.fft.fft2(real.float(), norm="ortho")
    dist = diff.real.square() + diff.imag.square()
    with torch.no_grad():
        weight = dist.sqrt().pow(alpha)
        weight = weight / weight.amax(dim=(-2, -1), keepdim=True).clamp_min(1e-12)
    return (weight * dist).flatten(1).sum(1)


@register_objective("frequency")
class FocalFrequency(ELBO):
    """The ELBO plus ``freq_weight`` x the focal frequency loss between each face and the decoder's mean for it.

    A per-pixel likelihood pays little for missing line art: a thin dark stroke is a few pixels. In the
    Fourier domain the missing detail is high frequencies the focal weights can bring forward. No
    pretrained network; the FFTs cost about a tenth of the images a run sees. Logged as ``freq``.
    Measured against the sharp preset (experiments/frequency_loss.py, frequency_loss_20min.py): a little
    more fine detail, not faces harder to tell from real ones; an option, in no preset.
    """

    def forward(self, model, x, step):
        terms = super().forward(model, x, step)
        freq = focal_frequency_distance(terms.output.likelihood.mean, x)
        terms.loss = terms.loss + self.cfg.freq_weight * freq.mean()
        terms.logs["freq"] = freq.detach().mean()
        return terms
