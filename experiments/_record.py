"""What every experiment records beside its figures: the machine, the commit, the date; the JSON written atomically.

Each script in this folder ends by calling ``write(...)``, which writes ``experiments/results/NAME.json``
(or the path given with ``--results``) with the keys in ``REQUIRED``. ``source`` is ``"rerun"`` for a file
a script wrote, ``"recorded"`` for the figures measured before these scripts existed (by the same steps,
run by hand); ``commit`` is the commit the figures were measured at (``git rev-parse HEAD`` for a rerun).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
DEFAULT_DATA = "../shared/data/anime-faces-96"
PIXEL_FEATURES = "animevae.evaluation.features:pixel_features"  # offline FID/KID features: they rank runs here, nothing more
REQUIRED = ("name", "question", "command", "commands", "settings", "machine", "results", "key_figures", "commit", "source", "date")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")  # the ones torch's CPU kernels care about


def cpu_info() -> tuple[str, list[str]]:
    """(CPU model name, the flags of CPU_FLAGS it has), from /proc/cpuinfo where there is one."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    return model, [f for f in CPU_FLAGS if f in flags]


def machine() -> dict:
    """The machine this process runs on, as an experiment's figures depend on it."""
    import torch

    model, flags = cpu_info()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "flags": flags,
        "amx": "amx_bf16" in flags,
        "gpu": gpu,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def git_commit() -> str | None:
    """HEAD of the checkout these scripts are in (None outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip() or None


def git_dirty() -> bool:
    """Whether src/ differs from HEAD (then the commit alone does not say what code ran)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return False
    return bool(out.stdout.strip())


def invocation() -> str:
    """How this script was started, from the repository root, with a portable script path."""
    script = Path(sys.argv[0]).resolve()
    shown = script.relative_to(ROOT).as_posix() if script.is_relative_to(ROOT) else script.name
    return shlex.join(["python", shown, *sys.argv[1:]])


def parser(doc: str, name: str, minutes: float | None = None, limit: int | None = None) -> argparse.ArgumentParser:
    """The options every experiment takes: --data, --out (its work folder), --results, and the budget knobs."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=doc.split("\n\n", 1)[-1])
    p.add_argument("--data", default=DEFAULT_DATA, help=f"the faces to train and evaluate on (default: {DEFAULT_DATA})")
    p.add_argument("--out", default=str(HERE / "out" / name), help=f"work folder for runs and logs (default: experiments/out/{name})")
    p.add_argument("--results", default=str(RESULTS / f"{name}.json"), help="the JSON to write (default: experiments/results/NAME.json)")
    if minutes is not None:
        p.add_argument("--minutes", type=float, default=minutes, help="training budget per run, wall-clock minutes (default: %(default)s)")
    if limit is not None:
        p.add_argument("--limit", type=int, default=limit, help="use only the first N faces (default: %(default)s)")
    p.add_argument("--fresh", action="store_true", help="retrain runs already in --out instead of reusing them")
    return p


def write_json(path: str | os.PathLike, obj) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically: a temporary file beside it, then a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write(path, name: str, question: str, commands: list[str], settings: dict, results: dict, key_figures: list[str], command: str | None = None) -> Path:
    """The experiment's record, ``source: "rerun"``, at this checkout's commit; returns the path written. An absolute
    ``settings["data"]`` is written relative to the repository: no path of one machine in a record."""
    data = settings.get("data")
    if isinstance(data, str) and os.path.isabs(data):
        settings = {**settings, "data": os.path.relpath(data, ROOT)}
    record = {
        "name": name,
        "question": question,
        "command": command or invocation(),
        "commands": commands,
        "settings": settings,
        "machine": machine(),
        "results": results,
        "key_figures": key_figures,
        "commit": git_commit(),
        "uncommitted_changes_in_src": git_dirty(),
        "source": "rerun",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    out = write_json(path, record)
    print(f"wrote {out}")
    return out


def load(path) -> dict:
    return json.loads(Path(path).read_text())
