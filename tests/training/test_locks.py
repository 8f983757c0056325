"""One run per folder and one build per cache entry, with real processes: a second `train` on a live run's folder
is refused naming the other process (with or without --overwrite or --resume); a SIGKILLed run's lock is taken
over; two cache builds of one new source decode once; a killed build's temporary folder is cleaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from animevae.errors import UserError
from animevae.runs import FolderLock

SLOW = ["--data", "builtin", "--builtin-count", "2000", "--image-size", "48", "--epochs", "50", "--batch-size", "16", "--quiet"]


def start(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "animevae", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})}
    )


def wait_for(predicate, proc: subprocess.Popen, limit: float = 120) -> None:
    end = time.monotonic() + limit
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_a_second_run_on_a_live_runs_folder_is_refused_and_a_killed_runs_lock_is_taken_over(cli, tmp_path):
    out = tmp_path / "run"
    first = start("train", *SLOW, "--out", out, "--save-every-steps", "5", env={"ANIMEVAE_CACHE": str(tmp_path / "cache")})
    try:
        wait_for(lambda: (out / "checkpoints").is_dir() and any((out / "checkpoints").glob("step_*")), first)
        owner = json.loads((out / ".lock").read_text())
        assert owner["pid"] == first.pid and owner["host"]
        metrics_before = (out / "config.json").read_bytes()
        for extra in ([], ["--overwrite"]):
            msg = one_line_error(cli("train", *SLOW, "--out", out, *extra, check=False))
            assert f"pid {first.pid}" in msg and "in use by another animevae run" in msg
        msg = one_line_error(cli("train", "--resume", out, check=False))
        assert f"pid {first.pid}" in msg
        assert (out / "config.json").read_bytes() == metrics_before  # the refused runs touched nothing
        assert first.poll() is None  # and the first one is still training
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resumed = cli("train", "--resume", out, "--epochs", "1", check=False, env={"ANIMEVAE_CACHE": str(tmp_path / "cache")})
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"taking over .lock in {out} from a run that did not finish (pid {first.pid}" in resumed.stderr
    assert (out / ".lock").read_text() == ""  # released cleanly at the end


def test_two_cache_builds_of_one_new_source_decode_once(tmp_path):
    env = {"ANIMEVAE_CACHE": str(tmp_path / "cache")}
    args = ["cache", "--data", "builtin", "--builtin-count", "6000", "--image-size", "96"]
    a = start(*args, env=env)
    wait_for(lambda: any(p.is_dir() for p in (tmp_path / "cache").glob(".*")), a)
    b = start(*args, env=env)
    (a_out, a_err), (b_out, b_err) = a.communicate(timeout=300), b.communicate(timeout=300)
    assert a.returncode == b.returncode == 0, a_err + b_err
    assert "6000 images kept" in a_out and "6000 images kept" in b_out
    assert "waiting for pid" in b_err and "decoding" not in b_err  # b waited for a, then read a's cache
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 1


def test_a_killed_cache_builds_temporary_folder_is_cleaned_by_the_next_build(cli, tmp_path):
    env = {"ANIMEVAE_CACHE": str(tmp_path / "cache")}
    args = ["cache", "--data", "builtin", "--builtin-count", "6000", "--image-size", "96"]
    a = start(*args, env=env)
    wait_for(lambda: any(p.is_dir() for p in (tmp_path / "cache").glob(".*")), a)
    a.send_signal(signal.SIGKILL)
    a.wait()
    left = [p for p in (tmp_path / "cache").glob(".*") if p.is_dir()]
    assert len(left) == 1
    assert "6000 images kept" in cli(*args, env=env).stdout
    assert not left[0].exists() and not [p for p in (tmp_path / "cache").glob(".*") if p.is_dir()]


def test_folder_lock_in_process(tmp_path):
    with FolderLock(tmp_path / "x") as lock:
        assert json.loads(Path(lock.path).read_text())["pid"] == os.getpid()
        with pytest.raises(UserError, match=f"in use by another animevae run \\(pid {os.getpid()} on "):
            FolderLock(tmp_path / "x").acquire()
    FolderLock(tmp_path / "x").acquire().release()  # free again once released
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="exists and is not a folder"):
        FolderLock(tmp_path / "file").acquire()
