"""The passes over the data besides the training steps, and the files they feed, at each epoch's end:
the held-out loss, every training image's latents, the sample grid; then weights and latents on disk.

They run on ``VAE.folded()`` (BatchNorm folded into the convs) in one autocast context.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..data.device import DeviceImages
from ..images import save_grid
from ..models.vae import VAE
from ..sampling.samplers import DEFAULT_MIX_K, MixSampler
from .objectives import elbo_terms
from .system import System, gather_rows

PASS_BATCH = 512


@torch.no_grad()
def encode_rows(model: VAE, data: DeviceImages, positions: np.ndarray, batch: int, amp, detail: bool = False, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Latent mean and log-variance of every image at ``positions`` (eval mode, no augmentation); with ``detail``, a
    hierarchical model's finer latents as two more tensors, the first finer scale's and the finer scales' below it: one
    posterior draw each (``VAE.encode_detail`` of every scale, with a generator seeded ``seed``), as training decodes
    them. A mixture fitted on the means alone leaves out the posterior's own spread, about half of the prior's variance:
    its faces were caught more often from 32 px down (experiments/joint_gmm.py --fit-on-draws)."""
    mus, logvars, details = [], [], []
    gen = torch.Generator(device=data.device).manual_seed(seed) if detail else None
    with torch.autocast(data.device.type, dtype=amp or torch.float32, enabled=amp is not None):  # one context: weights cast once
        for s in range(0, len(positions), batch):
            x = data.pixels(positions[s : s + batch], amp or torch.float32)
            if detail:
                posterior, u = model.encode_detail(x, gen, scales=len(model.detail_dims))
                details.append(u.float().cpu())
            else:
                posterior = model.encode(x)
            mus.append(posterior.mu.float().cpu())
            logvars.append(posterior.logvar.float().cpu())
    d = model.config.latent_dim
    out = (torch.cat(mus) if mus else torch.zeros(0, d)), (torch.cat(logvars) if logvars else torch.zeros(0, d))
    if not detail:
        return out
    u = torch.cat(details) if details else torch.zeros(0, sum(model.detail_dims))
    return (*out, u[:, : model.detail_dim], u[:, model.detail_dim :])


@torch.no_grad()
def heldout_loss(model: VAE, data: DeviceImages, positions: np.ndarray, batch: int, amp, beta: float, seed: int) -> dict:
    """Mean recon and KL per image on held-out images, one fixed-seed z sample each (comparable across epochs)."""
    gen = torch.Generator(device=data.device).manual_seed(seed)
    recon = kl = 0.0
    for s in range(0, len(positions), batch):
        x = data.pixels(positions[s : s + batch], torch.float32)  # fp32: the likelihood's target is the exact pixel value
        with torch.autocast(data.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            output = model(x, generator=gen)  # sigma in fp32 under autocast
        _, r, k = elbo_terms(output, x, beta)
        recon += r.sum().item()
        kl += k.sum().item()
    n = max(1, len(positions))
    return {"recon": recon / n, "kl": kl / n, "loss": (recon + beta * kl) / n}


class PassLatents:
    """The latents the training pass produces, by dataset position: the seed keeps these each epoch.

    Each step records its images' mu and log-variance (augmented images, the weights of that step;
    with EMA, the online weights), for free. Rows hold NaN until recorded, so rows no step reached
    this epoch (the dropped last partial batch, steps before a resume) and rows that came out
    non-finite (a skipped bad step) are told apart the same way and get a clean pass at the epoch's end.
    """

    def __init__(self, n: int, dim: int, device: torch.device):
        self.mu = torch.full((n, dim), float("nan"), device=device)
        self.logvar = torch.full((n, dim), float("nan"), device=device)

    def record(self, positions: np.ndarray, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        idx = torch.as_tensor(positions, device=self.mu.device)
        self.mu[idx] = mu.detach().float()
        self.logvar[idx] = logvar.detach().float()

    def taken(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(positions, mu, logvar) of the finite rows recorded since the last ``clear``, on the CPU."""
        pos = (torch.isfinite(self.mu).all(1) & torch.isfinite(self.logvar).all(1)).nonzero().squeeze(1)
        return pos.cpu(), self.mu[pos].cpu(), self.logvar[pos].cpu()

    def clear(self) -> None:
        self.mu.fill_(float("nan"))
        self.logvar.fill_(float("nan"))


def epoch_latents(
    model: VAE, data: DeviceImages, train_pos: np.ndarray, my_train: np.ndarray, recorded: PassLatents | None, amp, world: int, rank: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor] | None]:
    """(positions, mu, logvar, [detail, fine] or None) for every training image, gathered from all ranks: a clean pass of
    ``model`` (eval mode, no augmentation) over them all when ``recorded`` is None (with a hierarchical model's
    finer latents, for the joint-gmm sampler), else the training pass's latents plus a clean pass over the rows
    it missed (rank 0, which writes the file)."""
    if recorded is None:
        rows = encode_rows(model, data, my_train, PASS_BATCH, amp, detail=model.hierarchical, seed=seed * 1000 + rank)
        pos, mu, logvar, *detail = gather_rows([torch.from_numpy(my_train), *rows], world)
        return pos, mu, logvar, (detail or None)
    pos, mu, logvar = gather_rows(list(recorded.taken()), world)
    missing = np.setdiff1d(train_pos, pos.numpy()) if rank == 0 else np.zeros(0, dtype=np.int64)
    if len(missing):
        more_mu, more_logvar = encode_rows(model, data, missing, PASS_BATCH, amp)
        pos, mu, logvar = torch.cat([pos, torch.from_numpy(missing)]), torch.cat([mu, more_mu]), torch.cat([logvar, more_logvar])
    return pos, mu, logvar, None


@dataclass
class EpochPasses:
    val: dict | None  # held-out recon, kl, loss per image (None without held-out images, and on ranks > 0)
    latents: runs.Latents  # every training image's, ordered by row id
    clean: bool  # from a clean pass (else the training pass's)
    grid: torch.Tensor | None  # uint8 sample faces (rank 0)
    seconds: float


def run_epoch_passes(
    model: VAE,
    system: System,
    data: DeviceImages,
    row_ids: np.ndarray,
    train_pos: np.ndarray,
    val_pos: np.ndarray,
    recorded: PassLatents | None,
    clean: bool,
    beta: float,
    seed: int,
    sample_count: int,
) -> EpochPasses:
    """The epoch's end on ``model`` (its final weights): held-out loss, latents (gathered), and a sample grid
    mixing the clean latents of the same 512 training images every epoch, so grids compare across epochs."""
    t0 = time.perf_counter()
    model.eval()
    infer = model.folded().to(memory_format=system.memory_format)
    val = heldout_loss(infer, data, val_pos, PASS_BATCH, system.amp, beta, seed) if len(val_pos) and system.is_writer else None
    my_train = train_pos[system.rank :: system.world]
    pos, mu, logvar, detail = epoch_latents(infer, data, train_pos, my_train, None if clean else recorded, system.amp, system.world, system.rank, seed)
    rows = torch.from_numpy(row_ids[pos.numpy()])
    order = torch.argsort(rows)
    seconds = time.perf_counter() - t0
    grid = None
    if system.is_writer:
        grid_pos = train_pos[:: max(1, len(train_pos) // 512)][:512]
        grid_mu, _ = encode_rows(infer, data, grid_pos, PASS_BATCH, system.amp)  # clean latents, whatever the file holds
        z = MixSampler(grid_mu, k=DEFAULT_MIX_K).sample(sample_count, torch.Generator().manual_seed(0))
        grid = infer.generate(z.to(system.device), torch.Generator(system.device).manual_seed(0)).cpu()
    detail, fine = (None, None) if detail is None else (detail[0][order], detail[1][order] if detail[1].shape[1] else None)
    latents = runs.Latents(mu[order], logvar[order], rows[order], detail, fine)
    return EpochPasses(val, latents, clean, grid, seconds)


def write_epoch_files(out: Path, model: VAE, passes: EpochPasses, epoch: int, keep_last: int) -> None:
    """Weights, latents and the epoch's sample grid, each written atomically; keep the last per-epoch copies."""
    runs.save_tensors(model.state_dict(), out / runs.WEIGHTS)
    passes.latents.save(out / runs.LATENTS, {"pass": "clean" if passes.clean else "training"})  # one key: safetensors writes several in random order
    save_grid(passes.grid, out / "samples" / f"epoch_{epoch:03d}.png")
    runs.keep_epoch_copy(out, epoch, keep_last)
