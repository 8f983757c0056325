"""The training loop: decoded faces -> on-device augmentation -> VAE -> loss -> Adam, and the run folder per epoch.

Read top to bottom: ``setup`` picks device and precision, ``train`` is the loop. Single process by
default; under ``torchrun`` every rank trains on its shard with DistributedDataParallel and rank 0
alone writes files (the per-epoch latents are gathered from all ranks first).
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from . import checkpoint, runs
from .config import DataConfig, ModelConfig, TrainConfig
from .data.augment import augment
from .data.cache import ImageSet, load_images
from .errors import Interrupted, UserError
from .images import make_grid, save_grid, save_loss_curve
from .loss import vae_loss
from .model import VAE
from .samplers import DEFAULT_MIX_K, MixSampler

FINETUNE_LR = 1e-4  # default lr when starting from trained weights


# -- setup -------------------------------------------------------------------------------------


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name}: not a device name (try cpu, cuda, cuda:1, mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return device


def keep_freed_memory() -> None:
    """Ask glibc to serve blocks up to 32 MB from its heap and keep up to 64 MB free there for reuse.

    By default the threshold starts at 128 kB, so early activations are fresh mmaps whose pages fault
    in (and are zeroed) again on every batch. Fixed thresholds avoid that: on one epoch over 63,565
    faces the held-out + latents pass took 17.7 s instead of 20.1 s, peak memory 2.98 GB instead of
    2.89 GB (256 MB thresholds were faster still in isolation but peaked at 5.2 GB). No-op where the
    C library has no ``mallopt``.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    mallopt(m_mmap_threshold, 32 << 20)
    mallopt(m_trim_threshold, 64 << 20)


def cpu_has_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype (None = fp32). auto: bf16 where the hardware has it, fp16 on older GPUs."""
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if device.type == "cpu" and cpu_has_bf16() else None
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded held-out split of positions 0..n-1 (the same for every run with that seed)."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    n_val = min(n_val, n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class DeviceImages:
    """The uint8 images, fetched by index: from the memmap on CPU, or held whole on a GPU (1.7 GB for 63k faces)."""

    def __init__(self, images: np.ndarray, device: torch.device):
        self.device = device
        self.on_device = device.type == "cuda"
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device) if self.on_device else images

    def __getitem__(self, idx: np.ndarray) -> torch.Tensor:
        if self.on_device:
            return self.images[torch.as_tensor(idx, device=self.device)]
        return torch.from_numpy(self.images[idx])

    def pixels(self, idx: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        """Images in [0, 1], channels-last, in ``dtype``: one converting copy, for the inference passes."""
        u8 = self[idx]
        return torch.empty(u8.shape, dtype=dtype, device=u8.device, memory_format=torch.channels_last).copy_(u8).div_(255)


# -- evaluation passes ---------------------------------------------------------------------------


@torch.no_grad()
def encode_rows(model: VAE, data: DeviceImages, positions: np.ndarray, batch: int, amp) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent mean and log-variance of every image at ``positions`` (eval mode, no augmentation)."""
    mus, logvars = [], []
    with torch.autocast(data.device.type, dtype=amp or torch.float32, enabled=amp is not None):  # one context: weights cast once
        for s in range(0, len(positions), batch):
            x = data.pixels(positions[s : s + batch], amp or torch.float32)
            enc = model.encode(x)
            mus.append(enc.mu.float().cpu())
            logvars.append(enc.logvar.float().cpu())
    d = model.config.latent_dim
    return (torch.cat(mus) if mus else torch.zeros(0, d)), (torch.cat(logvars) if logvars else torch.zeros(0, d))


@torch.no_grad()
def heldout_loss(model: VAE, data: DeviceImages, positions: np.ndarray, batch: int, amp, beta: float, seed: int) -> dict:
    """Mean recon and KL per image on held-out images, one fixed-seed z sample each (comparable across epochs)."""
    gen = torch.Generator(device=data.device).manual_seed(seed)
    recon = kl = 0.0
    for s in range(0, len(positions), batch):
        x = data.pixels(positions[s : s + batch], torch.float32)  # fp32: the BCE target is the exact pixel value
        with torch.autocast(data.device.type, dtype=amp or torch.float32, enabled=amp is not None):
            enc = model.encode(x)
            eps = torch.randn(enc.mu.shape, generator=gen, device=data.device)
            logits = model.decode(enc.mu + torch.exp(enc.logvar.float() / 2) * eps)
        out = vae_loss(logits, x, enc.mu, enc.logvar, beta)
        recon += out.recon.sum().item()
        kl += out.kl.sum().item()
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


def epoch_latents(model: VAE, data: DeviceImages, train_pos: np.ndarray, my_train: np.ndarray, recorded: PassLatents | None,
                  amp, world: int, rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(positions, mu, logvar) for every training image, gathered from all ranks: a clean pass of
    ``model`` (eval mode, no augmentation) over them all when ``recorded`` is None, else the training
    pass's latents plus a clean pass over the rows it missed (rank 0, which writes the file)."""
    if recorded is None:
        mu, logvar = encode_rows(model, data, my_train, 512, amp)
        return tuple(gather_rows([torch.from_numpy(my_train), mu, logvar], world))
    pos, mu, logvar = gather_rows(list(recorded.taken()), world)
    missing = np.setdiff1d(train_pos, pos.numpy()) if rank == 0 else np.zeros(0, dtype=np.int64)
    if len(missing):
        more_mu, more_logvar = encode_rows(model, data, missing, 512, amp)
        pos, mu, logvar = torch.cat([pos, torch.from_numpy(missing)]), torch.cat([mu, more_mu]), torch.cat([logvar, more_logvar])
    return pos, mu, logvar


# -- distributed helpers ---------------------------------------------------------------------------


def dist_setup(device_name: str) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        device = pick_device(device_name)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        return dist.get_rank(), world, device
    return 0, 1, pick_device(device_name)


def gather_rows(tensors: list[torch.Tensor], world: int) -> list[torch.Tensor]:
    """Concatenate each rank's rows on every rank (ranks may hold different counts)."""
    if world == 1:
        return tensors
    out = []
    for t in tensors:
        size = torch.tensor([len(t)])
        sizes = [torch.zeros_like(size) for _ in range(world)]
        dist.all_gather(sizes, size)
        biggest = int(max(s.item() for s in sizes))
        padded = torch.zeros((biggest, *t.shape[1:]), dtype=t.dtype)
        padded[: len(t)] = t
        parts = [torch.zeros_like(padded) for _ in range(world)]
        dist.all_gather(parts, padded)
        out.append(torch.cat([p[: int(s.item())] for p, s in zip(parts, sizes)]))
    return out


# -- the loop --------------------------------------------------------------------------------------


def make_optimizer(params, lr: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch has a fused kernel for the device (about 2x faster steps on CPU)."""
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(params, lr=lr)


def _frozen_parts(model: VAE, half: str | None) -> tuple:
    if half is None:
        return ()
    return (model.encoder, model.fc_mu, model.fc_logvar) if half == "encoder" else (model.fc_decode, model.decoder)


def _freeze(model: VAE, half: str) -> None:
    for m in _frozen_parts(model, half):
        m.requires_grad_(False)


def _train_mode(model: VAE, frozen: str | None) -> None:
    """Training mode, except a frozen half, whose BatchNorm statistics stay as loaded."""
    model.train()
    for m in _frozen_parts(model, frozen):
        m.eval()


def build_model(model_cfg: ModelConfig, train_cfg: TrainConfig) -> tuple[VAE, ModelConfig]:
    """A fresh model, or (fine-tuning) the weights and model config of ``init_from``."""
    if train_cfg.init_from is None:
        return VAE(model_cfg), model_cfg
    model = VAE.from_pretrained(train_cfg.init_from)
    if train_cfg.freeze:
        _freeze(model, train_cfg.freeze)
    return model, model.config


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


def check_disk_space(out: Path, model: VAE, n_train: int, cfg: TrainConfig) -> None:
    """Fail before training, not after hours, when the run folder's disk cannot hold what the run writes."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    latents = n_train * model.config.latent_dim * 2 * 4
    need = weights * (1 + cfg.keep_last + 3 * checkpoint.KEEP + (checkpoint.KEEP if cfg.ema else 0)) + latents * (1 + cfg.keep_last) + (20 << 20)
    free = shutil.disk_usage(out).free
    if free < need:
        raise UserError(f"--out {out}: the run needs about {need >> 20} MB on disk and only {free >> 20} MB are free; free some space or pick another --out")


def open_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'animevae[tensorboard]'") from None
    return SummaryWriter(str(out / "tensorboard"))


class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop checkpoints at the next step and exits with a resume hint."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signum is not None:  # a second Ctrl-C stops at once
            raise KeyboardInterrupt
        self.signum = signum

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data_cfg: DataConfig,
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    resume: bool = False,
) -> Path:
    """Train a VAE and write the run folder ``out``; with ``resume``, continue it from its last checkpoint."""
    rank, world, device = dist_setup(train_cfg.device)
    if device.type == "cpu":
        keep_freed_memory()
    out = Path(out)
    ckpt = None
    if resume:
        tensors, meta, where = checkpoint.load_latest(out)
        ckpt = {"tensors": tensors, "meta": meta}
        if rank == 0 and progress:
            print(f"resuming {out} from {where.name} (epoch {meta['epoch']}, step {meta['step']})", file=sys.stderr)
    elif rank == 0:
        runs.prepare_out_dir(out, overwrite)
    torch.manual_seed(train_cfg.seed)
    model, model_cfg = build_model(model_cfg, train_cfg) if ckpt is None else (VAE(model_cfg), model_cfg)
    if ckpt is not None and train_cfg.freeze:  # the frozen half stays frozen after a resume
        _freeze(model, train_cfg.freeze)
    show = progress and rank == 0

    faces: ImageSet = load_images(data_cfg, model_cfg.image_size, progress=show) if rank == 0 or world == 1 else None
    if world > 1:  # rank 0 builds the cache, the others then read it
        dist.barrier()
        if rank != 0:
            faces = load_images(data_cfg, model_cfg.image_size, progress=False)
    if ckpt is not None and ckpt["meta"]["data_fingerprint"] != faces.stats["source"]["fingerprint"]:
        raise UserError(f"--resume {out}: the data source changed since the run started (fingerprint differs); resume needs the same data")
    train_pos, val_pos = split_rows(len(faces), train_cfg.val_fraction, train_cfg.seed)
    if len(train_pos) < world:
        raise UserError(f"--data {data_cfg.source}: {len(train_pos)} training image(s) for {world} processes; use more data")
    if show:
        counts = faces.stats["counts"]
        print(
            f"data: {faces.stats['source']['name']}: kept {counts['kept']}, skipped non-RGB {counts['skipped_not_rgb']}, "
            f"undecodable {counts['skipped_undecodable']}, too small {counts['skipped_too_small']}, too large {counts['skipped_too_large']}"
            f" | train {len(train_pos)}, held out {len(val_pos)}",
            file=sys.stderr,
        )

    amp = pick_precision(train_cfg.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp is torch.float16)
    memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], train_cfg.lr)
    ema = None
    if train_cfg.ema > 0:
        ema = torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=ema_with_warmup(train_cfg.ema), use_buffers=True)
    step_model = model
    if world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    if train_cfg.compile:
        step_model = torch.compile(step_model)
    data = DeviceImages(faces.images, device)
    aug_gen = torch.Generator(device=device).manual_seed(train_cfg.seed * 1000 + rank)
    fused = optimizer.defaults.get("fused") and scaler.is_enabled() is False  # skip bad steps on the device, no sync

    if rank == 0:
        check_disk_space(out, model, len(train_pos), train_cfg)

    config = {
        **asdict(model_cfg),
        "model": asdict(model_cfg),
        "train": asdict(train_cfg),
        "data": asdict(data_cfg),
        "data_stats": faces.stats,
        "split": {"train": len(train_pos), "heldout": len(val_pos)},
        "world_size": world,
        "command": command,
    }
    if rank == 0:
        runs.write_json(out / runs.CONFIG, config)

    board = open_tensorboard(out) if train_cfg.tensorboard and rank == 0 else None
    steps_per_epoch = len(train_pos) // (train_cfg.batch_size * world) or 1
    history: list[dict] = []
    start_epoch, start_i, step, bad_total = 1, 0, 0, 0
    sums = torch.zeros(3, device=device)  # recon, kl, count: read every log_every steps, not every step
    seen, elapsed = 0, 0.0
    if ckpt is not None:
        checkpoint.restore(ckpt["tensors"], ckpt["meta"], model, ema, optimizer, scaler, aug_gen, rank)
        m = ckpt["meta"]
        history, start_epoch, start_i, step, bad_total = m["history"], m["epoch"], m["step_in_epoch"], m["step"], m["bad_steps"]
        sums = ckpt["tensors"]["sums"].to(device)
        seen, elapsed = m["seen"], m["elapsed"]
        if rank == 0:  # metrics.jsonl matches the checkpoint again (drops a line written after it)
            runs.write_bytes(out / runs.METRICS, "".join(json.dumps(h) + "\n" for h in history).encode())

    def save_checkpoint(epoch: int, step_in_epoch: int) -> None:
        rng_t, rng_meta = checkpoint.rng_state()
        per_rank = gather_rows([rng_t["rng.torch"][None], aug_gen.get_state().cpu()[None]], world)
        if rank != 0:
            return
        progress = {"epoch": epoch, "step_in_epoch": step_in_epoch, "step": step, "seen": seen, "elapsed": elapsed, "bad_steps": bad_total,
                    "history": history, "data_fingerprint": faces.stats["source"]["fingerprint"]}
        tensors, meta = checkpoint.capture(model, ema, optimizer, scaler, per_rank[0], per_rank[1], rng_t, rng_meta, sums, progress)
        checkpoint.save(out, step, tensors, meta)

    my_train = train_pos[rank::world]  # this rank's shard, for the clean latents pass
    recorded = PassLatents(len(faces), model_cfg.latent_dim, device) if train_cfg.clean_latents != "every" else None
    grid_pos = train_pos[:: max(1, len(train_pos) // 512)][:512]  # every epoch's sample grid mixes these images' latents
    last_save = time.monotonic()
    with StopSignal() as stop:
        for epoch in range(start_epoch, train_cfg.epochs + 1):
            _train_mode(model, train_cfg.freeze)
            order = train_pos[np.random.default_rng([train_cfg.seed, epoch]).permutation(len(train_pos))]
            shard = order[rank::world]
            if epoch != start_epoch or start_i == 0:
                sums.zero_()
                seen, elapsed = 0, 0.0
            t0 = time.perf_counter() - elapsed
            bar = tqdm(total=steps_per_epoch, initial=start_i if epoch == start_epoch else 0, desc=f"epoch {epoch}/{train_cfg.epochs}",
                       unit="step", disable=not show, dynamic_ncols=True, leave=False)
            if recorded is not None:
                recorded.clear()
            bad_flag = torch.zeros((), device=device)  # length of the current run of bad steps
            bad_count = torch.zeros((), device=device)
            for i in range(start_i if epoch == start_epoch else 0, steps_per_epoch):
                idx = shard[i * train_cfg.batch_size : (i + 1) * train_cfg.batch_size]
                if len(idx) == 0:
                    idx = shard[: train_cfg.batch_size]
                x = augment(data[idx], aug_gen, train_cfg.hflip, train_cfg.rotation, train_cfg.rotation_fill, train_cfg.interpolation)
                x = x.contiguous(memory_format=memory_format)
                beta = train_cfg.beta * (min(1.0, step / (train_cfg.kl_warmup_epochs * steps_per_epoch)) if train_cfg.kl_warmup_epochs > 0 else 1.0)
                with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
                    outp = step_model(x)
                loss = vae_loss(outp.logits, x, outp.mu, outp.logvar, beta, train_cfg.free_bits)
                if recorded is not None:
                    recorded.record(idx, outp.mu, outp.logvar)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss.loss).backward()
                bad = ~torch.isfinite(loss.loss.detach())
                if fused:  # the fused kernel skips the update where found_inf is 1
                    optimizer.found_inf = bad.float()
                    optimizer.step()
                elif scaler.is_enabled():
                    scaler.step(optimizer)
                    scaler.update()
                elif not bad.item():
                    optimizer.step()
                if ema is not None:
                    ema.update_parameters(model)
                good = (~bad).float()
                sums += torch.stack([torch.nan_to_num(loss.recon.detach().sum()) * good, torch.nan_to_num(loss.kl.detach().sum()) * good, good * len(idx)])
                bad_flag = (bad_flag + 1) * bad.float()
                bad_count += bad.float()
                seen += len(idx)
                step += 1
                bar.update(1)
                if (i + 1) % train_cfg.log_every == 0 or i + 1 == steps_per_epoch:
                    r, k, c = sums.tolist()
                    run_now = int(bad_flag.item())
                    bad_total += int(bad_count.item())
                    bad_count.zero_()
                    if run_now >= train_cfg.max_bad_steps:
                        raise UserError(
                            f"epoch {epoch}, step {step}: {run_now} non-finite losses in a row; the last good checkpoint is in {out / 'checkpoints'}. "
                            f"Lower --lr (now {train_cfg.lr}) or use --precision fp32, then --resume {out}"
                        )
                    if board is not None and c:
                        board.add_scalars("loss/train_per_image", {"recon": r / c, "kl": k / c}, step)
                        board.add_scalar("images_per_s", seen * world / (time.perf_counter() - t0), step)
                    if show and c:
                        bar.set_postfix(loss=f"{(r + beta * k) / c:.1f}", recon=f"{r / c:.1f}", kl=f"{k / c:.1f}",
                                        img_s=f"{seen * world / (time.perf_counter() - t0):.0f}")
                stopping = stop.signum is not None
                if world > 1 and (stopping or (i + 1) % train_cfg.log_every == 0):
                    flag = torch.tensor([float(stopping)])
                    dist.all_reduce(flag)
                    stopping = flag.item() > 0
                due = (train_cfg.save_every_steps and step % train_cfg.save_every_steps == 0) or (
                    train_cfg.save_every_minutes and time.monotonic() - last_save > 60 * train_cfg.save_every_minutes)
                if (due or stopping) and i + 1 < steps_per_epoch:
                    elapsed = time.perf_counter() - t0
                    save_checkpoint(epoch, i + 1)
                    last_save = time.monotonic()
                if stopping:
                    bar.close()
                    name = signal.Signals(stop.signum).name if stop.signum else "stop"
                    raise Interrupted(f"{name}: stopped at epoch {epoch}, step {step} after saving a checkpoint; continue with: animevae train --resume {out}",
                                      130 if stop.signum == signal.SIGINT else 143)
            bar.close()
            if world > 1:
                dist.all_reduce(sums)
            r, k, c = sums.tolist()
            c = max(c, 1.0)
            seconds = time.perf_counter() - t0

            # end of epoch: held-out loss, every training image's latents, then the files
            final = ema.module if ema is not None else model
            final.eval()
            t_eval = time.perf_counter()
            infer = final.folded().to(memory_format=memory_format)
            val = heldout_loss(infer, data, val_pos, 512, amp, train_cfg.beta, train_cfg.seed) if len(val_pos) and rank == 0 else None
            clean = train_cfg.clean_latents == "every" or (train_cfg.clean_latents == "last" and epoch == train_cfg.epochs)
            pos, mu, logvar = epoch_latents(infer, data, train_pos, my_train, None if clean else recorded, amp, world, rank)
            rows = torch.from_numpy(faces.row_ids[pos.numpy()])
            eval_seconds = time.perf_counter() - t_eval
            pixels = model_cfg.in_channels * model_cfg.image_size**2
            line = {
                "epoch": epoch, "step": step,
                "loss": (r + train_cfg.beta * k) / c, "recon": r / c, "kl": k / c,
                "recon_per_dim": r / c / pixels, "kl_per_dim": k / c / model_cfg.latent_dim,
                "heldout_loss": val["loss"] if val else None, "heldout_recon": val["recon"] if val else None, "heldout_kl": val["kl"] if val else None,
                "images_per_s": seen * world / seconds, "seconds": seconds, "eval_seconds": eval_seconds, "bad_steps": bad_total,
                "latents": "clean pass" if clean else "training pass",
            }
            history.append(line)
            if rank == 0:
                order_rows = torch.argsort(rows)
                latents = runs.Latents(mu[order_rows], logvar[order_rows], rows[order_rows])
                runs.save_tensors(final.state_dict(), out / runs.WEIGHTS)
                latents.save(out / runs.LATENTS, {"pass": "clean" if clean else "training"})  # one key: safetensors writes several in random order
                runs.append_line(out / runs.METRICS, json.dumps(line))
                grid_mu, _ = encode_rows(infer, data, grid_pos, 512, amp)  # clean latents, whatever the file holds
                z = MixSampler(grid_mu, k=DEFAULT_MIX_K).sample(train_cfg.sample_count, torch.Generator().manual_seed(0))
                grid = infer.generate(z.to(device)).cpu()
                save_grid(grid, out / "samples" / f"epoch_{epoch:03d}.png")
                if board is not None:
                    board.add_scalar("loss/epoch_train", line["loss"], epoch)
                    if val:
                        board.add_scalar("loss/epoch_heldout", val["loss"], epoch)
                    board.add_image("samples", make_grid(grid), epoch, dataformats="HWC")
                    board.flush()
                save_loss_curve(history, out / "loss.png")
                runs.keep_epoch_copy(out, epoch, train_cfg.keep_last)
                if show:
                    held = f", held-out {val['loss']:.1f}" if val else ""
                    tqdm.write(f"epoch {epoch}: loss {line['loss']:.1f} (recon {line['recon']:.1f} + kl {line['kl']:.1f}){held}, "
                               f"{line['images_per_s']:.0f} img/s, {seconds:.0f}s", file=sys.stderr)
            seen, elapsed = 0, 0.0
            sums.zero_()
            save_checkpoint(epoch + 1, 0)
            last_save = time.monotonic()
            start_i = 0
    if board is not None:
        board.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return out
