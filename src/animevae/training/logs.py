"""What a run tells its user while it trains: the progress bar, metrics.jsonl, loss.png, TensorBoard.

Losses are summed on the device every step and read back every ``log_every`` steps (no per-step
host sync); the same read counts non-finite steps, so a run of bad steps stops the run there.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .. import runs
from ..config import ModelConfig, TrainConfig
from ..errors import UserError
from ..images import make_grid, save_loss_curve
from .objectives import LossTerms
from .passes import EpochPasses
from .state import Progress


def open_tensorboard(out: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise UserError("--tensorboard needs the tensorboard package: pip install 'animevae[tensorboard]'") from None
    return SummaryWriter(str(out / "tensorboard"))


class RunLog:
    """One per run; ``start_epoch`` / ``step`` / ``end_epoch`` from the loop. Only the writing rank shows or writes anything."""

    def __init__(self, out: Path, cfg: TrainConfig, steps_per_epoch: int, world: int, device: torch.device, show: bool, writer: bool):
        self.out, self.cfg, self.steps_per_epoch, self.world, self.show, self.writer = out, cfg, steps_per_epoch, world, show, writer
        self.board = open_tensorboard(out) if cfg.tensorboard and writer else None
        self.bad_run = torch.zeros((), device=device)  # length of the current run of non-finite steps
        self.bad_new = torch.zeros((), device=device)  # non-finite steps since the last read
        self.bar = None
        self.t0 = 0.0
        self.objective_logs: dict[str, float] = {}  # the objective's extra scalars at the last read (an adversarial one's lambda, say)

    def start_epoch(self, epoch: int, first_step: int, elapsed: float) -> None:
        self.t0 = time.perf_counter() - elapsed
        self.bar = tqdm(
            total=self.steps_per_epoch,
            initial=first_step,
            desc=f"epoch {epoch}/{self.cfg.epochs}",
            unit="step",
            disable=not self.show,
            dynamic_ncols=True,
            leave=False,
        )
        self.bad_run.zero_()
        self.bad_new.zero_()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def step(self, sums: torch.Tensor, terms: LossTerms, bad: torch.Tensor, n: int, i: int, epoch: int, step: int, seen: int, beta: float) -> int:
        """Add the step to the device sums; every ``log_every`` steps read them, update the bar and TensorBoard,
        and stop the run after ``max_bad_steps`` non-finite losses in a row. Returns the non-finite steps read now."""
        good = (~bad).float()
        sums += torch.stack([torch.nan_to_num(terms.recon.detach().sum()) * good, torch.nan_to_num(terms.kl.detach().sum()) * good, good * n])
        self.bad_run = (self.bad_run + 1) * bad.float()
        self.bad_new += bad.float()
        self.bar.update(1)
        if (i + 1) % self.cfg.log_every and i + 1 != self.steps_per_epoch:
            return 0
        r, k, c = sums.tolist()
        run_now, new = int(self.bad_run.item()), int(self.bad_new.item())
        self.bad_new.zero_()
        if run_now >= self.cfg.max_bad_steps:
            raise UserError(
                f"epoch {epoch}, step {step}: {run_now} non-finite losses in a row; the last good checkpoint is in {self.out / 'checkpoints'}. "
                f"Lower --lr (now {self.cfg.lr}) or use --precision fp32, then --resume {self.out}"
            )
        rate = seen * self.world / self.elapsed()
        self.objective_logs = {name: float(v) for name, v in terms.logs.items()}
        if self.board is not None and c:
            self.board.add_scalars("loss/train_per_image", {"recon": r / c, "kl": k / c}, step)
            self.board.add_scalar("images_per_s", rate, step)
            for name, v in self.objective_logs.items():
                self.board.add_scalar(f"objective/{name}", v, step)
        if self.show and c:
            extra = {name: f"{v:.3g}" for name, v in self.objective_logs.items()}
            self.bar.set_postfix(loss=f"{(r + beta * k) / c:.1f}", recon=f"{r / c:.1f}", kl=f"{k / c:.1f}", img_s=f"{rate:.0f}", **extra)
        return new

    def close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def end_epoch(self, history: list[dict], grid: torch.Tensor | None) -> None:
        """Append the epoch's line to metrics.jsonl, redraw loss.png, log to TensorBoard, print one line."""
        line = history[-1]
        if not self.writer:
            return
        runs.append_line(self.out / runs.METRICS, json.dumps(line))
        if self.board is not None:
            self.board.add_scalar("loss/epoch_train", line["loss"], line["epoch"])
            if line["heldout_loss"] is not None:
                self.board.add_scalar("loss/epoch_heldout", line["heldout_loss"], line["epoch"])
            self.board.add_image("samples", make_grid(grid), line["epoch"], dataformats="HWC")
            self.board.flush()
        save_loss_curve(history, self.out / "loss.png")
        if self.show:
            held = f", held-out {line['heldout_loss']:.1f}" if line["heldout_loss"] is not None else ""
            tqdm.write(
                f"epoch {line['epoch']}: loss {line['loss']:.1f} (recon {line['recon']:.1f} + kl {line['kl']:.1f}){held}, "
                f"{line['images_per_s']:.0f} img/s, {line['seconds']:.0f}s",
                file=sys.stderr,
            )

    def budget_spent(self, p: Progress, max_minutes: float) -> None:
        """Say where --max-minutes stopped the run and how to go on (with --quiet too: it ended early)."""
        if self.writer:
            tqdm.write(
                f"--max-minutes {max_minutes:g} spent after {p.trained_seconds / 60:.1f} minutes, at epoch {p.epoch}, step {p.step}: "
                f"every output written; to train longer: animevae train --resume {self.out} --max-minutes MORE",
                file=sys.stderr,
            )

    def rewrite_metrics(self, history: list[dict]) -> None:
        """After a resume: metrics.jsonl matches the checkpoint again (drops a line written after it)."""
        if self.writer:
            runs.write_bytes(self.out / runs.METRICS, "".join(json.dumps(h) + "\n" for h in history).encode())

    def close(self) -> None:
        if self.board is not None:
            self.board.close()


def epoch_line(epoch: int, p: Progress, sums: torch.Tensor, passes: EpochPasses, beta: float, model_cfg: ModelConfig, world: int, seconds: float) -> dict:
    """The epoch's line of metrics.jsonl: training loss per image and per dimension, held-out loss, speed."""
    r, k, c = sums.tolist()
    c = max(c, 1.0)
    pixels, val = model_cfg.in_channels * model_cfg.image_size**2, passes.val
    return {
        "epoch": epoch,
        "step": p.step,
        "loss": (r + beta * k) / c,
        "recon": r / c,
        "kl": k / c,
        "recon_per_dim": r / c / pixels,
        "kl_per_dim": k / c / model_cfg.latent_dim,
        "heldout_loss": val["loss"] if val else None,
        "heldout_recon": val["recon"] if val else None,
        "heldout_kl": val["kl"] if val else None,
        "images_per_s": p.seen * world / seconds,
        "seconds": seconds,
        "eval_seconds": passes.seconds,
        "bad_steps": p.bad_steps,
        "latents": "clean pass" if passes.clean else "training pass",
    }
