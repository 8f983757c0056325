"""The training loop, ``train()``: decoded faces -> on-device augmentation -> objective (VAE + loss) -> optimizers,
and the run folder at every epoch's end.

``train()`` reads top to bottom, a comment per stage; the pieces it calls each live in a module named
for them: system.py (device, precision, DDP), state.py (model, EMA, objective, optimizers, RNGs,
progress; capture/restore), objectives.py (the loss), passes.py (the end-of-epoch passes and files),
logs.py (progress bar, metrics.jsonl, TensorBoard), checkpoint.py (checkpoint files). Single process
by default; under ``torchrun`` every rank trains on its shard with DistributedDataParallel and rank 0
alone writes files (the per-epoch latents are gathered from all ranks first).
"""

from __future__ import annotations

import shutil
import signal
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import runs
from ..config import DataConfig, ModelConfig, TrainConfig
from ..data.augment import augment
from ..data.cache import ImageSet, load_images
from ..data.device import DeviceImages
from ..data.split import split_rows
from ..errors import Interrupted, UserError
from ..models.vae import VAE
from ..sampling.generate import fit_own_sampler
from . import checkpoint
from .logs import RunLog, epoch_line
from .objectives import LossTerms
from .passes import PassLatents, run_epoch_passes, write_epoch_files
from .state import TrainState, build_model, frozen_parts
from .system import StopSignal, System


def train(
    model_cfg: ModelConfig,
    train_cfg: TrainConfig,
    data_cfg: DataConfig,
    out: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    command: str | None = None,
    resume: bool = False,
    allow_data_change: bool = False,
) -> Path:
    """Train a VAE and write the run folder ``out``; with ``resume``, continue it from its last checkpoint
    (``allow_data_change``: even on data whose fingerprint differs from the run's, if it has as many faces)."""
    cfg, out = train_cfg, Path(out)
    # where: device, precision, this process's rank among torchrun's
    system = System.setup(cfg.device, cfg.precision, cfg.channels_last)
    show = progress and system.is_writer
    if system.is_writer and not resume:
        runs.check_out_dir(out, overwrite)  # before the lock: a refused run leaves the folder as it was
    # one run per folder: the lock holds while this process lives; a second run on it is refused
    with runs.FolderLock(out) if system.is_writer else nullcontext():
        # the run folder: a new one, or the newest complete checkpoint of the one we resume
        saved = open_run(out, resume, overwrite, system, show)
        # the model, initialised by the seed (or loaded from --init-from)
        torch.manual_seed(cfg.seed)
        model = build_model(model_cfg, cfg, pretrained=saved is None)
        # the data: decoded faces (rank 0 builds the cache) and the seeded held-out split
        faces, train_pos, val_pos = load_data(data_cfg, cfg, model.config.image_size, system, show, saved, out, allow_data_change)
        # the training state: model, EMA, objective, optimizers by name, scaler, RNGs, progress
        steps_per_epoch = len(train_pos) // (cfg.batch_size * system.world) or 1
        state = TrainState.create(model, cfg, system, steps_per_epoch)
        step_model = wrap_for_steps(state.model, system, cfg.compile)
        data = DeviceImages(faces.images, system.device)
        if system.is_writer:
            check_disk_space(out, state.model, len(train_pos), cfg)
            runs.write_json(out / runs.CONFIG, run_config(state.model.config, cfg, data_cfg, faces, train_pos, val_pos, system.world, command))
        log = RunLog(out, cfg, steps_per_epoch, system.world, system.device, show, system.is_writer)
        if saved is not None:
            state.restore(*saved, system.rank)
            log.rewrite_metrics(state.progress.history)
        p = state.progress
        recorded = PassLatents(len(faces), state.model.config.latent_dim, system.device) if cfg.clean_latents != "every" else None
        fused = state.optimizers["model"].defaults.get("fused") and not state.scaler.is_enabled()  # bad steps skipped on the device

        def save_checkpoint() -> None:
            captured = state.capture(system.world, data_fingerprint=faces.stats["source"]["fingerprint"])
            if captured is not None:
                checkpoint.save(out, p.step, *captured)

        last_save = time.monotonic()
        with StopSignal() as stop:
            for epoch in range(p.epoch, cfg.epochs + 1):
                # a new epoch: this epoch's order, this rank's shard (a resumed epoch continues where it stopped)
                train_mode(state.model, cfg.freeze)
                shard = train_pos[np.random.default_rng([cfg.seed, epoch]).permutation(len(train_pos))][system.rank :: system.world]
                if p.step_in_epoch == 0:
                    state.sums.zero_()
                    p.seen, p.elapsed = 0, 0.0
                log.start_epoch(epoch, p.step_in_epoch, p.elapsed)
                if recorded is not None:
                    recorded.clear()
                out_of_time = stopping = False
                for i in range(p.step_in_epoch, steps_per_epoch):
                    # one step: a batch, augmented on the device, through the objective and the optimizers
                    idx = shard[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                    if len(idx) == 0:
                        idx = shard[: cfg.batch_size]
                    x = augment(data[idx], state.aug_gen, cfg.hflip, cfg.rotation, cfg.rotation_fill, cfg.interpolation)
                    terms, bad = train_step(state, step_model, x.contiguous(memory_format=system.memory_format), fused)
                    if recorded is not None:
                        recorded.record(idx, terms.output.mu, terms.output.logvar)
                    p.seen += len(idx)
                    p.step += 1
                    p.bad_steps += log.step(state.sums, terms, bad, len(idx), i, epoch, p.step, p.seen, cfg.beta)
                    # checkpoint when due; stop cleanly on SIGINT/SIGTERM or when --max-minutes is spent (every rank votes)
                    stopping, boundary = stop.signum is not None, (i + 1) % cfg.log_every == 0 or i + 1 == steps_per_epoch
                    out_of_time = boundary and cfg.max_minutes is not None and p.trained_seconds + log.elapsed() >= 60 * cfg.max_minutes
                    if system.world > 1 and (stopping or boundary):
                        stopping, out_of_time = system.any_rank(stopping), system.any_rank(out_of_time)
                    if boundary:  # how much of the run is done, for objectives that change course late (every rank agrees)
                        state.objective.run_share = system.max_over_ranks(run_share(p, cfg, steps_per_epoch, log.elapsed()))
                    due = (cfg.save_every_steps and p.step % cfg.save_every_steps == 0) or (
                        cfg.save_every_minutes and time.monotonic() - last_save > 60 * cfg.save_every_minutes
                    )
                    if (due or stopping or out_of_time) and i + 1 < steps_per_epoch:
                        p.epoch, p.step_in_epoch, p.elapsed = epoch, i + 1, log.elapsed()
                        save_checkpoint()
                        last_save = time.monotonic()
                    if stopping and i + 1 < steps_per_epoch:  # at an epoch's last step the epoch's end saves the checkpoint
                        log.close_bar()
                        raise interrupted(stop.signum, epoch, p.step, out)
                    if out_of_time:
                        break
                log.close_bar()
                seconds = log.elapsed()
                if system.world > 1:
                    torch.distributed.all_reduce(state.sums)
                # the epoch's end (or the run's, its time spent): held-out loss, every training image's latents, a grid, the files
                last = epoch == cfg.epochs or out_of_time
                clean = cfg.clean_latents == "every" or (cfg.clean_latents == "last" and last)
                passes = run_epoch_passes(state.final, system, data, faces.row_ids, train_pos, val_pos, recorded, clean, cfg.beta, cfg.seed, cfg.sample_count)
                partial = out_of_time and i + 1 < steps_per_epoch  # its checkpoint is the mid-epoch one saved above
                line = epoch_line(epoch, p, state.sums, passes, cfg.beta, state.model.config, system.world, seconds)
                p.history.append(line | log.objective_logs | {"partial": partial})
                p.trained_seconds += seconds + passes.seconds
                if system.is_writer:
                    write_epoch_files(out, state.final, passes, epoch, cfg.keep_last)
                    log.end_epoch(p.history, passes.grid)
                if partial:
                    log.budget_spent(p, cfg.max_minutes)
                    break
                # a checkpoint at every epoch's end: the next step is the next epoch's first
                state.sums.zero_()
                p.epoch, p.step_in_epoch, p.seen, p.elapsed = epoch + 1, 0, 0, 0.0
                save_checkpoint()
                last_save = time.monotonic()
                if stopping and epoch < cfg.epochs:  # a stop asked for at an epoch's last step, now checkpointed
                    raise interrupted(stop.signum, epoch, p.step, out)
                if out_of_time:
                    log.budget_spent(p, cfg.max_minutes)
                    break
        # the run's own sampler (gmm for the sharp preset), fitted on the final latents and kept beside the weights
        if system.is_writer:
            fit_own_sampler(out, system.device, show)
        log.close()
        system.close()
        return out


def train_step(state: TrainState, step_model: torch.nn.Module, x: torch.Tensor, fused: bool) -> tuple[LossTerms, torch.Tensor]:
    """One step: the objective's forward pass and loss, backward, the model's optimizer (a non-finite loss
    skips the update: on the device with a fused optimizer, no host sync), EMA, then the objective's own
    networks. Returns the loss terms and a 0-d bool tensor, True when the loss was not finite."""
    terms = state.objective(step_model, x, state.progress.step)
    optimizer, scaler = state.optimizers["model"], state.scaler
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(terms.loss).backward()
    bad = ~torch.isfinite(terms.loss.detach())
    if fused:  # the fused kernel skips the update where found_inf is 1
        optimizer.found_inf = bad.float()
        optimizer.step()
    elif scaler.is_enabled():
        scaler.step(optimizer)
        scaler.update()
    elif not bad.item():
        optimizer.step()
    if state.ema is not None:
        state.ema.update_parameters(state.model)
    state.objective.after_step(x, terms, state.progress.step, state.optimizers)
    return terms, bad


def run_share(p, cfg: TrainConfig, steps_per_epoch: int, elapsed: float) -> float:
    """The share of the run done: of its steps, or of its --max-minutes when that is further along."""
    share = p.step / (cfg.epochs * steps_per_epoch)
    if cfg.max_minutes is not None:
        share = max(share, (p.trained_seconds + elapsed) / (60 * cfg.max_minutes))
    return min(share, 1.0)


# -- what train() calls once ------------------------------------------------------------------------


def open_run(out: Path, resume: bool, overwrite: bool, system: System, show: bool) -> tuple[dict, dict] | None:
    """Resume: the newest complete checkpoint (tensors, meta). Else: prepare a new run folder, None."""
    if resume:
        tensors, meta, where = checkpoint.load_latest(out)
        if show:
            print(f"resuming {out} from {where.name} (epoch {meta['epoch']}, step {meta['step']})", file=sys.stderr)
        return tensors, meta
    if system.is_writer:
        runs.prepare_out_dir(out, overwrite)
    return None


def load_data(data_cfg: DataConfig, cfg: TrainConfig, image_size: int, system: System, show: bool, saved, out: Path, allow_data_change: bool = False):
    """(faces, training positions, held-out positions), checked: a resumed run's data must be the one it started on
    (or, with ``allow_data_change``, as many faces)."""
    faces = load_faces(data_cfg, image_size, system, show)
    if saved is not None and saved[1]["data_fingerprint"] not in (faces.stats["source"]["fingerprint"], *faces.earlier_fingerprints):
        if not allow_data_change:
            raise UserError(
                f"--resume {out}: the data source changed since the run started (its fingerprint differs); resume needs the same "
                "data, or --allow-data-change to go on with this data (the run then differs from an uninterrupted one)"
            )
        started = sum(runs.load_run_config(out).get("split", {}).values())
        if started != len(faces):
            raise UserError(f"--resume {out}: the run started on {started} faces, the data source now has {len(faces)}; --allow-data-change needs as many")
        if show:
            print(f"resuming on data whose fingerprint differs from the run's (--allow-data-change): {len(faces)} faces, as before", file=sys.stderr)
    train_pos, val_pos = split_rows(len(faces), cfg.val_fraction, cfg.seed)
    if len(train_pos) < system.world:
        raise UserError(f"--data {data_cfg.source}: {len(train_pos)} training image(s) for {system.world} processes; use more data")
    if show:
        print(describe_data(faces, train_pos, val_pos), file=sys.stderr)
    return faces, train_pos, val_pos


def interrupted(signum: int | None, epoch: int, step: int, out: Path) -> Interrupted:
    """What a run stopped by SIGINT/SIGTERM says (after its checkpoint), and its exit code."""
    name = signal.Signals(signum).name if signum else "stop"
    message = f"{name}: stopped at epoch {epoch}, step {step} after saving a checkpoint; continue with: animevae train --resume {out}"
    return Interrupted(message, 130 if signum == signal.SIGINT else 143)


def load_faces(data_cfg: DataConfig, image_size: int, system: System, show: bool) -> ImageSet:
    """The decoded faces; with several processes rank 0 builds the cache and the others then read it."""
    faces = load_images(data_cfg, image_size, progress=show) if system.is_writer else None
    system.barrier()
    return faces if faces is not None else load_images(data_cfg, image_size, progress=False)


def describe_data(faces: ImageSet, train_pos: np.ndarray, val_pos: np.ndarray) -> str:
    c = faces.stats["counts"]
    skipped = (
        f"skipped non-RGB {c['skipped_not_rgb']}, undecodable {c['skipped_undecodable']}, too small {c['skipped_too_small']}, "
        f"too large {c['skipped_too_large']}, not a file {c['skipped_not_a_file']}"
    )
    return f"data: {faces.stats['source']['name']}: kept {c['kept']}, {skipped} | train {len(train_pos)}, held out {len(val_pos)}"


def run_config(
    model_cfg: ModelConfig, train_cfg: TrainConfig, data_cfg: DataConfig, faces: ImageSet, train_pos, val_pos, world: int, command: str | None
) -> dict:
    """config.json: the model fields at top level (what from_pretrained reads), all three configs, the data's counts."""
    return {
        **asdict(model_cfg),
        "model": asdict(model_cfg),
        "train": asdict(train_cfg),
        "data": asdict(data_cfg),
        "data_stats": faces.stats,
        "split": {"train": len(train_pos), "heldout": len(val_pos)},
        "world_size": world,
        "command": command,
    }


def wrap_for_steps(model: VAE, system: System, compile: bool) -> torch.nn.Module:
    """What the step calls: the model, in DistributedDataParallel under torchrun, compiled with --compile."""
    step_model = model
    if system.world > 1:
        step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[system.device.index] if system.device.type == "cuda" else None)
    return torch.compile(step_model) if compile else step_model


def train_mode(model: VAE, frozen: str | None) -> None:
    """Training mode, except a frozen half, whose BatchNorm statistics stay as loaded."""
    model.train()
    for m in frozen_parts(model, frozen):
        m.eval()


def check_disk_space(out: Path, model: VAE, n_train: int, cfg: TrainConfig) -> None:
    """Fail before training, not after hours, when the run folder's disk cannot hold what the run writes."""
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    latents = n_train * (model.config.latent_dim * 2 * 4 + sum(model.detail_dims) * 2)  # mu, logvar in fp32; a hierarchical run's finer ones in fp16
    need = weights * (1 + cfg.keep_last + 3 * checkpoint.KEEP + (checkpoint.KEEP if cfg.ema else 0)) + latents * (1 + cfg.keep_last) + (20 << 20)
    free = shutil.disk_usage(out).free
    if free < need:
        raise UserError(f"--out {out}: the run needs about {need >> 20} MB on disk and only {free >> 20} MB are free; free some space or pick another --out")
