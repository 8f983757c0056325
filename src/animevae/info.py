"""``animevae info --run R``: what a run folder holds, in one screen."""

from __future__ import annotations

import json
from pathlib import Path

from . import runs
from .errors import UserError


def _size(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _checkpoints(folder: Path) -> list[str]:
    root = folder / "checkpoints"
    if not root.is_dir():
        return []
    out = []
    for dest in sorted(p for p in root.iterdir() if p.name.startswith("step_")):
        state = "complete" if (dest / "manifest.json").is_file() else "incomplete (no manifest)"
        epoch = ""
        try:
            meta = json.loads((dest / "state.json").read_text())
            e, i = int(meta["epoch"]), int(meta["step_in_epoch"])
            epoch = f", end of epoch {e - 1}" if i == 0 else f", epoch {e} after {i} steps"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        out.append(f"{dest.name} ({state}{epoch}, {_size(_tree_size(dest))})")
    return out


def _training_line(t: dict) -> str:
    parts = [
        f"batch {t.get('batch_size')}",
        f"Adam lr {t.get('lr')}",
        f"beta {t.get('beta')}",
        f"seed {t.get('seed')}",
        f"precision {t.get('precision')}",
        f"device {t.get('device')}",
        f"held-out share {t.get('val_fraction')}",
    ]
    aug = []
    aug.append("flip" if t.get("hflip") else "no flip")
    rot = t.get("rotation") or 0
    aug.append(f"rotation +-{rot:g} deg ({t.get('rotation_fill')}, {t.get('interpolation')})" if rot else "no rotation")
    extras = []
    if t.get("kl_warmup_epochs"):
        extras.append(f"KL warm-up {t['kl_warmup_epochs']:g} epochs")
    if t.get("free_bits"):
        extras.append(f"free bits {t['free_bits']:g}")
    if t.get("ema"):
        extras.append(f"EMA {t['ema']:g}")
    if t.get("init_from"):
        extras.append(f"init from {t['init_from']}")
    if t.get("freeze"):
        extras.append(f"{t['freeze']} frozen")
    if t.get("compile"):
        extras.append("torch.compile")
    return ", ".join(parts) + "; augmentation: " + ", ".join(aug) + ("; " + ", ".join(extras) if extras else "")


def summarize(run) -> str:
    """A plain-text summary of a local run folder: model, data, training, progress, files, checkpoints."""
    from .models.vae import VAE, count_parameters, model_config_from_json

    folder = Path(run).expanduser()
    if not folder.is_dir():
        raise UserError(f"--run {run}: no such run folder (info reads a local run folder; for a Hub model see its model card)")
    if not (folder / runs.CONFIG).is_file():
        raise UserError(f"--run {run}: no config.json here; is this an animevae run folder?")
    config = runs.read_json(folder / runs.CONFIG)
    model_cfg = model_config_from_json(config, folder / runs.CONFIG)
    train = config.get("train") or {}
    stats = config.get("data_stats") or {}
    source = stats.get("source") or {}
    counts = stats.get("counts") or {}
    split = config.get("split") or {}
    metrics = runs.read_metrics(folder)
    pixels = model_cfg.in_channels * model_cfg.image_size**2

    lines = [f"run: {folder}"]
    lines.append(
        f"model: {model_cfg.in_channels}x{model_cfg.image_size}x{model_cfg.image_size} images, latent {model_cfg.latent_dim}, "
        f"{model_cfg.num_layers} conv layers from {model_cfg.base_channels} channels, LeakyReLU {model_cfg.negative_slope:g}; "
        f"arch {model_cfg.arch}, {model_cfg.likelihood} likelihood, objective {train.get('objective', 'elbo')}; "
        f"{count_parameters(VAE(model_cfg)):,} parameters"
    )
    skipped = ", ".join(f"{k.removeprefix('skipped_').replace('_', ' ')} {v}" for k, v in counts.items() if k != "kept")
    extra = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in stats.items() if k not in ("source", "counts") and isinstance(v, int))
    lines.append(
        f"data: {source.get('name', config.get('data', {}).get('source', '?'))} [{source.get('kind', '?')}]: "
        f"kept {counts.get('kept', '?')}, skipped {skipped or 'none'}{'; ' + extra if extra else ''} | "
        f"train {split.get('train', '?')}, held out {split.get('heldout', '?')}"
    )
    lines.append(f"training: {_training_line(train)}")
    lines.append(f"epochs: {len(metrics)} done of {train.get('epochs', '?')} planned")
    held = [(m["heldout_loss"], m.get("epoch")) for m in metrics if isinstance(m.get("heldout_loss"), (int, float))]
    if held:
        best, epoch = min(held)
        lines.append(f"best held-out loss: {best:,.1f} nats per image ({best / pixels:.4f} per pixel value) at epoch {epoch}")
    else:
        lines.append("best held-out loss: none yet")
    if metrics:
        last = metrics[-1]
        lines.append(
            f"last epoch ({last.get('epoch')}): loss {last.get('loss', float('nan')):,.1f} per image "
            f"(recon {last.get('recon', float('nan')):,.1f} + kl {last.get('kl', float('nan')):,.1f}), "
            f"{last.get('images_per_s', float('nan')):,.1f} images/s, {last.get('seconds', float('nan')):,.0f} s"
            + (f"; latents.safetensors from the {last['latents']}" if last.get("latents") else "")
        )
    if config.get("command"):
        lines.append(f"command: {config['command']}")

    lines.append("files:")
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_file():
            lines.append(f"  {p.name:<22} {_size(p.stat().st_size):>10}")
        elif p.is_dir():
            n = sum(1 for q in p.rglob("*") if q.is_file())
            lines.append(f"  {p.name + '/':<22} {_size(_tree_size(p)):>10}  ({n} files)")
    for name in (runs.WEIGHTS, runs.LATENTS, runs.METRICS):
        if not (folder / name).is_file():
            lines.append(f"  (no {name}: the run has not finished an epoch)")
    epochs = sorted(p.name for p in (folder / "epochs").iterdir()) if (folder / "epochs").is_dir() else []
    lines.append(f"epoch copies: {', '.join(epochs) if epochs else 'none'}")
    ckpts = _checkpoints(folder)
    lines.append("checkpoints:" + ("" if ckpts else " none"))
    lines.extend(f"  {c}" for c in ckpts)
    if ckpts:
        more = " --epochs N" if len(metrics) >= (train.get("epochs") or 0) else ""
        lines.append(f"  (continue training: animevae train --resume {folder}{more})")
    return "\n".join(lines)
