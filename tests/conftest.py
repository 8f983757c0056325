"""Shared fixtures and helpers: what a test needs from the machine (``need``), the real shared faces, a tmpfs, a private
cache folder, a CLI runner, and two trained runs (read-only: a test that writes into a run takes a copy of its own)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest

SHARED_FACES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "anime-faces-96"
RUN_FILES = ("config.json", "model.safetensors", "latents.safetensors")  # what generating, evaluating and fitting samplers read


MODULE_SECONDS: dict[str, float] = {}  # test module -> seconds of setup, call and teardown of its tests


def pytest_runtest_logreport(report) -> None:
    module = report.nodeid.split("::")[0]
    MODULE_SECONDS[module] = MODULE_SECONDS.get(module, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, config) -> None:
    """The time per test module, slowest first (where the suite's minutes go), and the random test order's seed
    (pytest-randomly shuffles every run; -q hides its header), so a failure that depends on order can be rerun."""
    if len(MODULE_SECONDS) > 1:
        terminalreporter.section("seconds per test module")
        for module, seconds in sorted(MODULE_SECONDS.items(), key=lambda kv: -kv[1])[:25]:
            terminalreporter.write_line(f"{seconds:8.1f}s  {module}")
        side_by_side = " (summed over pytest-xdist's workers, which ran side by side)" if config.getoption("dist", "no") != "no" else ""
        terminalreporter.write_line(f"{sum(MODULE_SECONDS.values()):8.1f}s  all {len(MODULE_SECONDS)} modules{side_by_side}")
    seed = getattr(config.option, "randomly_seed", None)
    if seed is not None:
        terminalreporter.write_line(f"test order: pytest-randomly seed {seed}; the same order again: pytest --randomly-seed={seed}")


def need(condition: bool, reason: str) -> None:
    """Skip the calling test, saying why, unless ``condition`` holds. Under CI (``CI=true``) fail instead: CI provides
    every component the tests need (Chromium, root to mount a tmpfs, ../shared beside the checkout), so a skip there
    would hide a test that did not run."""
    if condition:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and this test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    need(SHARED_FACES.is_dir(), f"the shared faces are not at {SHARED_FACES} (CI has ../shared beside the checkout)")
    return SHARED_FACES


@contextmanager
def tmpfs(parent: Path, options: str):
    """A real tmpfs (``mount -o options``) in a new folder under ``parent`` for one test; mounting needs root (CI has it)."""
    mnt = parent / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    mount = shutil.which("mount")
    proc = subprocess.run([mount, "-t", "tmpfs", "-o", options, "tmpfs", str(mnt)], capture_output=True, text=True) if mount else None
    why = "no mount command" if proc is None else (proc.stderr.strip().splitlines() or ["refused"])[-1]
    need(proc is not None and proc.returncode == 0, f"cannot mount a tmpfs ({options}) here: {why} (it needs mount and root, as CI has)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory) -> Path:
    """Every test's decoded-image cache goes to a temporary folder, never ~/.cache."""
    path = tmp_path_factory.mktemp("animevae-cache")
    os.environ["ANIMEVAE_CACHE"] = str(path)
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf-datasets")))
    return path


def run_cli(*args, check: bool = True, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess (``python -m animevae``)."""
    proc = subprocess.run(
        [sys.executable, "-m", "animevae", *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"animevae {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture(scope="session")
def cli():
    return run_cli


def _listing(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@contextmanager
def read_only(folder: Path, name: str):
    """Fail, on leaving, if anything in ``folder`` was written meanwhile: a fixture that tests share must stay as it was
    made, or their results would depend on their order (a test that writes takes a copy: fresh_run, run_copy)."""
    before = _listing(folder)
    yield folder
    after = _listing(folder)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a test wrote into the shared {name}, which tests must only read: {changed[:10]}"


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A seed-preset model trained 2 epochs on 320 built-in faces: enough to test everything downstream. Read it, never
    write into it (nor fit samplers into it): the tests share it."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    run_cli("train", "--data", "builtin", "--builtin-count", "320", "--epochs", "2", "--batch-size", "32", "--out", out, "--quiet", "--seed", "1")
    with read_only(out, "tiny_run"):
        yield out


@pytest.fixture(scope="session")
def sharp_run(tmp_path_factory) -> Path:
    """A sharp-preset model (spatial latent, gmm sampler) trained 1 epoch on 320 built-in faces; read it, never write into it."""
    out = tmp_path_factory.mktemp("runs") / "sharp"
    proc = run_cli(
        "train", "--data", "builtin", "--builtin-count", "320", "--epochs", "1", "--batch-size", "32", "--preset", "sharp", "--out", out, "--seed", "1"
    )
    (out / "train.stderr").write_text(proc.stderr)  # what a user saw while it trained (the sampler's fit is in it)
    with read_only(out, "sharp_run"):
        yield out


@pytest.fixture(scope="module")
def messy_dir(tmp_path_factory) -> Path:
    """The messy image set (tests/messy_images.py) written to a folder."""
    from messy_images import write_messy_set

    folder = tmp_path_factory.mktemp("messy")
    write_messy_set(folder)
    return folder


@pytest.fixture(scope="module")
def messy_parquet(tmp_path_factory) -> tuple[Path, list[str]]:
    """The same set as one Hub-format parquet file, with the names in row order."""
    from messy_images import write_messy_parquet

    path = tmp_path_factory.mktemp("messy-parquet") / "messy.parquet"
    return path, write_messy_parquet(path)


def copy_run(source: Path, dest: Path) -> Path:
    """A new run folder ``dest`` holding ``source``'s model, config and latents (no fitted samplers, no checkpoints)."""
    dest.mkdir(parents=True)
    for name in RUN_FILES:
        shutil.copy2(source / name, dest / name)
    return dest


@pytest.fixture(scope="module")
def run_copy(tiny_run, tmp_path_factory) -> Path:
    """A module's own copy of tiny_run's model, config and latents. Its tests may fit samplers into it (the fits are
    seeded: whichever test fits first, every test sees the same sampler); a test that checks whether something was
    fitted, or changes the latents, takes ``fresh_run``."""
    return copy_run(tiny_run, tmp_path_factory.mktemp("run-copy") / "run")


@pytest.fixture
def fresh_run(tiny_run, tmp_path) -> Path:
    """This test's own copy of tiny_run's model, config and latents: nothing fitted yet, free to write into."""
    return copy_run(tiny_run, tmp_path / "fresh-run")
