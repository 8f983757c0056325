"""A real package: `python -m build` makes a wheel and an sdist that `twine check` passes; the wheel, installed
(not editable) into a fresh virtual environment, runs `animevae --version` and a one-epoch training run."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tomllib
import venv
from pathlib import Path

import pytest

import animevae

ROOT = Path(__file__).resolve().parents[1]
# Every requirement the installed wheel declares (extras aside) is met by an installed version.
CHECK_REQUIREMENTS = """
from importlib.metadata import requires, version
from packaging.requirements import Requirement
reqs = [Requirement(r) for r in requires("animevae")]
print([str(r) for r in reqs if r.marker is None and not r.specifier.contains(version(r.name), prereleases=True)])
"""


def run(*cmd, cwd=None, env=None, timeout=900) -> subprocess.CompletedProcess:
    proc = subprocess.run(list(map(str, cmd)), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))} exited {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, cwd=tmp_path_factory.mktemp("build-cwd"))
    return out


def test_wheel_and_sdist_pass_twine_check(dist):
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert [w.name for w in wheels] == [f"animevae-{animevae.__version__}-py3-none-any.whl"] and len(sdists) == 1
    proc = run(sys.executable, "-m", "twine", "check", "--strict", *wheels, *sdists)
    assert proc.stdout.count("PASSED") == 2


def test_the_wheel_installs_into_a_fresh_environment_and_trains(dist, tmp_path):
    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    # The dependencies (torch, datasets, gradio ...) are this environment's: a path file makes them importable
    # there without downloading gigabytes; animevae itself comes only from the wheel (this checkout's is editable,
    # served by an import hook that the path file does not load).
    fresh_site = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(fresh_site, "deps-from-test-env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(py, "-m", "pip", "install", "--no-deps", "--no-index", next(dist.glob("*.whl")))
    unmet = run(py, "-c", CHECK_REQUIREMENTS).stdout.strip()
    assert unmet == "[]", f"the wheel's requirements not met here: {unmet}"
    where = run(py, "-c", "import animevae; print(animevae.__file__)", cwd=tmp_path).stdout.strip()
    assert where.startswith(str(env_dir)), where
    version = run(env_dir / "bin" / "animevae", "--version", cwd=tmp_path).stdout.strip()
    assert version == f"animevae {animevae.__version__}"
    env = {**os.environ, "ANIMEVAE_CACHE": str(tmp_path / "cache")}
    run(
        env_dir / "bin" / "animevae",
        "train",
        "--data",
        "builtin",
        "--builtin-count",
        "64",
        "--epochs",
        "1",
        "--image-size",
        "48",
        "--out",
        tmp_path / "run",
        "--quiet",
        cwd=tmp_path,
        env=env,
    )
    assert (tmp_path / "run" / "model.safetensors").is_file() and (tmp_path / "run" / "latents.safetensors").is_file()


def test_metadata_names_the_versions_the_code_runs_on():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.11"  # tomllib (config files) is 3.11+
    torch_req = next(d for d in meta["dependencies"] if d.startswith("torch"))
    assert torch_req == "torch>=2.4"  # torch.get_autocast_dtype and fused Adam on the CPU are 2.4+
