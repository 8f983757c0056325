"""The run folder: what a run writes, written atomically, and how a run (local or on the Hub) is read back.

    runs/NAME/
      config.json           model fields at top level (a from_pretrained target) + train, data, data_stats
      model.safetensors     the latest weights
      latents.safetensors   mu, logvar (N x latent) and row_id (N) of every training image (hierarchical, last epoch: detail, fine too)
      metrics.jsonl         one line per epoch
      samples/epoch_001.png a sample grid per epoch
      epochs/epoch_001/     per-epoch copies of weights + latents (the last --keep-last)

Every file goes to a temporary name, is flushed and fsynced, then renamed over the old one, so a
crash at any instant leaves either the old or the new file, never half of one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import UserError

WEIGHTS = "model.safetensors"
LATENTS = "latents.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
LOCK = ".lock"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp's own 0600 would hide runs from other users


def fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class WriteFailed(UserError):
    """A file could not be written (a full disk, say); the old file, if any, is untouched."""


def atomic_write(path: str | os.PathLike, write) -> None:
    """Call ``write(tmp_path)``, fsync the result, then rename it over ``path``."""
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(e, (OSError, SafetensorError)):  # no space, no permission, a vanished folder ...
            raise WriteFailed(f"cannot write {path} ({getattr(e, 'strerror', None) or str(e).splitlines()[0][:120]})") from None
        raise
    fsync_dir(path.parent)


def write_bytes(path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def write_json(path, obj) -> None:
    write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def append_line(path, line: str) -> None:
    """Append by rewriting atomically: metrics files are small, and a torn last line is never left."""
    path = Path(path)
    old = path.read_bytes() if path.exists() else b""
    write_bytes(path, old + line.rstrip("\n").encode() + b"\n")


def read_metrics(folder) -> list[dict]:
    """A run's metrics.jsonl as a list of dicts (lines that do not parse are skipped)."""
    path = Path(folder) / METRICS
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def save_tensors(tensors: dict[str, torch.Tensor], path, metadata: dict[str, str] | None = None) -> None:
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def load_tensors(path, device: str = "cpu") -> dict[str, torch.Tensor]:
    """safetensors only: a file of tensors can never run code when read."""
    try:
        return load_file(str(path), device=device)
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable safetensors file ({str(e).splitlines()[0][:120]}); it may be damaged or not an animevae file") from None


def read_metadata(path) -> dict[str, str]:
    """A safetensors file's string metadata ({} when it has none or cannot be read)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), "pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError):
        return {}


def sha256_file(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_json(path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: cannot read JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def resolve_file(folder_or_repo: str, filename: str, revision: str | None = None, token=None) -> str:
    """Path of ``filename`` in a local folder, or downloaded from a Hub model repo (pinned to ``revision``)."""
    local = Path(folder_or_repo).expanduser()
    if local.is_dir():
        path = local / filename
        if not path.is_file():
            raise UserError(f"{local}: no {filename} here; is this a finished animevae run folder?")
        return str(path)
    if local.exists() or folder_or_repo.count("/") != 1 or folder_or_repo.startswith((".", "/", "~")):
        raise UserError(f"{folder_or_repo}: no such run folder (and not a Hub repo id of the form USER/NAME)")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    try:
        return hf_hub_download(folder_or_repo, filename, revision=revision, token=token)
    except LocalEntryNotFoundError:  # a subclass of EntryNotFoundError: offline, not a missing file
        raise UserError(
            f"cannot download {filename} from the Hub repo {folder_or_repo}: the Hub is unreachable (or HF_HUB_OFFLINE is set); "
            "check your connection, or pass a local run folder"
        ) from None
    except EntryNotFoundError:
        raise UserError(f"Hub repo {folder_or_repo} has no {filename}; is it an animevae model?") from None
    except RepositoryNotFoundError:
        raise UserError(f"Hub repo {folder_or_repo} not found (or private: log in with `hf auth login`)") from None
    except (HfHubHTTPError, OSError) as e:
        raise UserError(
            f"cannot download {filename} from the Hub repo {folder_or_repo} ({type(e).__name__}); check your connection, or pass a local run folder"
        ) from None


@dataclass
class Latents:
    """The learned latents of every training image, row-aligned with the dataset."""

    mu: torch.Tensor
    logvar: torch.Tensor
    row_id: torch.Tensor
    detail: torch.Tensor | None = None  # a hierarchical model's detail latents (VAE.encode_detail, a posterior draw each), from a clean pass; else None
    fine: torch.Tensor | None = None  # the same of its finer scales below the first (the 24-px group at 96 px), where it has them

    def head(self, n: int) -> Latents:
        """The first ``n`` rows (a sampler's width can be read off one row without building every row)."""
        return Latents(self.mu[:n], self.logvar[:n], self.row_id[:n], *(None if t is None else t[:n] for t in (self.detail, self.fine)))

    def save(self, path, metadata: dict[str, str] | None = None) -> None:
        tensors = {"mu": self.mu, "logvar": self.logvar, "row_id": self.row_id}
        for name in ("detail", "fine"):
            if getattr(self, name) is not None:
                tensors[name] = getattr(self, name).half()  # whitened values of a few units: fp16 halves the file's largest tensors
        save_tensors(tensors, path, metadata)

    @classmethod
    def load(cls, path) -> Latents:
        t = load_tensors(path)
        if not {"mu", "logvar", "row_id"} <= set(t):
            raise UserError(f"{path}: expected tensors mu, logvar, row_id; found {', '.join(sorted(t))}")
        if not (t["mu"].ndim == 2 and t["mu"].shape == t["logvar"].shape and t["row_id"].shape == t["mu"].shape[:1]):
            raise UserError(f"{path}: mu, logvar and row_id do not line up")
        extra = {name: t[name] for name in ("detail", "fine") if name in t}
        if "fine" in extra and "detail" not in extra:
            raise UserError(f"{path}: fine latents without detail latents")
        for name, v in extra.items():
            if v.ndim != 2 or len(v) != len(t["mu"]):
                raise UserError(f"{path}: {name} and mu do not line up")
        bad = ~torch.isfinite(t["mu"]).all(1) | ~torch.isfinite(t["logvar"]).all(1)
        for v in extra.values():
            bad |= ~torch.isfinite(v).all(1)
        if bad.any():
            raise UserError(f"{path}: {int(bad.sum())} of {len(t['mu'])} rows hold NaN or inf; the faces from them would be garbage: resume or retrain the run")
        detail, fine = (extra[name].float() if name in extra else None for name in ("detail", "fine"))
        return cls(t["mu"].float(), t["logvar"].float(), t["row_id"], detail, fine)

    def check(self, config: dict, where) -> Latents:
        """Refuse latents that do not belong to the run's model (width) or its training split (rows)."""
        width = (config.get("model") or config).get("latent_dim")
        if width is not None and self.mu.shape[1] != width:
            raise UserError(f"{where}: latents are {self.mu.shape[1]} wide but the model's latent_dim is {width}; they come from another run")
        rows = (config.get("split") or {}).get("train")
        if rows is not None and len(self.mu) != rows:
            raise UserError(f"{where}: {len(self.mu)} latent rows but the run trained on {rows} images; they come from another run or another data source")
        return self


def load_latents(run: str, revision: str | None = None) -> Latents:
    """The run's latents, checked for finite values and against its own config.json (width, row count) when it has one."""
    path = resolve_file(run, LATENTS, revision=revision)
    latents = Latents.load(path)
    local = Path(run).expanduser()
    if local.is_dir() and not (local / CONFIG).is_file():
        return latents  # a bare latents file claims nothing beyond itself (the model loader needs config.json anyway)
    return latents.check(load_run_config(run, revision), path)


def load_run_config(run: str, revision: str | None = None) -> dict:
    return read_json(resolve_file(run, CONFIG, revision=revision))


RUN_FILES = (CONFIG, WEIGHTS, LATENTS, METRICS, "loss.png")
RUN_FOLDERS = ("samples", "epochs", "checkpoints", "tensorboard")


def check_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse, touching nothing, a --out that is a file or already holds a run (unless it is to be overwritten)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: exists and is not a folder; choose another path")
    if out.is_dir() and (out / CONFIG).exists() and not overwrite:
        live = FolderLock(out).holder()
        if live:
            raise UserError(f"--out {out}: in use by another animevae run ({live}); wait for it to end, or pick another folder")
        raise UserError(f"--out {out}: already holds a run; pass --resume {out} to continue it, --overwrite to replace it, or pick a new --out")


def prepare_out_dir(out: Path, overwrite: bool) -> None:
    """Refuse to write over another run, and fail before training if the folder can't be written.

    ``overwrite`` removes the old run's own files and folders (nothing else in the folder), so no
    stale metrics line, sample grid or checkpoint of the old run mixes with the new one.
    """
    check_out_dir(out, overwrite)
    if out.is_dir() and (out / CONFIG).exists():
        for name in RUN_FOLDERS:
            shutil.rmtree(out / name, ignore_errors=True)
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"x")
        probe.unlink()
    except OSError as e:
        raise UserError(f"--out {out}: cannot write there ({e.strerror}); choose a writable folder") from None


def keep_epoch_copy(out: Path, epoch: int, keep_last: int) -> None:
    """Copy this epoch's weights and latents to epochs/epoch_NNN and drop copies older than keep_last."""
    epochs = out / "epochs"
    if keep_last > 0:
        dest = epochs / f"epoch_{epoch:03d}"
        for name in (WEIGHTS, LATENTS):
            atomic_write(dest / name, lambda tmp, name=name: shutil.copyfile(out / name, tmp))
    if epochs.is_dir():
        old = sorted((p for p in epochs.iterdir() if p.name.startswith("epoch_") and p.name[6:].isdigit()), key=lambda p: int(p.name[6:]))
        for p in old[: max(0, len(old) - keep_last)]:
            shutil.rmtree(p, ignore_errors=True)


class FolderLock:
    """One process at a time in a folder: an exclusive ``flock`` on FOLDER/NAME, which holds the owner's pid and host.

    The kernel drops the lock when its process ends, however it ends, so a lock left by a killed run is
    stale by construction: the next run takes it over (and says so). ``acquire(wait=False)`` refuses with
    a one-line error naming the other process; ``wait=True`` waits for it (the cache build).
    """

    def __init__(self, folder: str | os.PathLike, name: str = LOCK, what: str = "--out", doing: str = "building"):
        self.folder, self.path, self.what, self.doing, self.fd = Path(folder), Path(folder) / name, what, doing, None

    def owner(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "another process"
        return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, since {info.get('since', '?')}" if info else "another process"

    def holder(self) -> str | None:
        """Who holds the lock now (a live process), without taking it or creating the file; None when free."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return None
        except BlockingIOError:
            return self.owner()
        finally:
            os.close(fd)

    def acquire(self, wait: bool = False) -> FolderLock:
        if self.folder.exists() and not self.folder.is_dir():
            raise UserError(f"{self.what} {self.folder}: exists and is not a folder; choose another path")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise UserError(f"{self.what} {self.folder}: cannot write there ({e.strerror}); choose a writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                os.close(fd)
                who = self.owner()
                raise UserError(f"{self.what} {self.folder}: in use by another animevae run ({who}); wait for it to end, or pick another folder") from None
            print(f"animevae: waiting for {self.owner()}, which is {self.doing} {self.folder} ...", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        left = os.pread(fd, 4096, 0)
        if left:  # a holder that ended without releasing: killed
            print(f"animevae: note: taking over {self.path.name} in {self.folder} from a run that did not finish ({self.owner()})", file=sys.stderr)
        record = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # empty: ended cleanly
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> FolderLock:
        return self if self.fd is not None else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
