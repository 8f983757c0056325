"""The repository speaks of the tool: no development diary and no paths of the machine that wrote a file.

Every tracked text file (code, docs, experiments, benchmarks, tests, notebooks) is read. A path of one
machine (its home or work folders, the folder this checkout sits in) is of no use to anybody else, and
a numbered working period or tracker issue is the history of how the project was written, which users do not know.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINARY = {".png", ".gif", ".jpg", ".jpeg", ".webp", ".ico", ".parquet", ".safetensors", ".whl", ".gz"}
HISTORY = re.compile(r"\b(sessions?|issues?)[ _-]?\d+(?!\d)|\bprobe diary\b", re.IGNORECASE)
WORD = "sess" + "ion"  # spelled apart so that a search of the repository for the word finds no test data
MACHINE_PATHS = re.compile(r"(?<![\w.])/(?:root|home/\w+|Users/\w+|work|tmp/pytest-of-\w+)/")


def tracked_text_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: nothing tracked to read")
    return [ROOT / n for n in names if n and Path(n).suffix.lower() not in BINARY and (ROOT / n).is_file()]


def offending_lines(pattern: re.Pattern, skip=()) -> list[str]:
    found = []
    for path in tracked_text_files():
        if path.resolve() == Path(__file__).resolve() or path.name in skip:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    return found


def test_no_development_history_in_the_repository():
    lines = offending_lines(HISTORY)
    assert not lines, "development history (say what the tool does, not when it was built):\n" + "\n".join(lines[:20])


def test_no_paths_of_one_machine_in_the_repository():
    here = re.compile(re.escape(str(ROOT.parent)) + "/")  # the folder this checkout sits in, wherever that is
    lines = offending_lines(MACHINE_PATHS) + offending_lines(here)
    assert not lines, "paths of one machine (use relative paths or placeholders):\n" + "\n".join(lines[:20])


@pytest.mark.parametrize(
    ("text", "caught"),
    [
        (f"measured in {WORD} 8 on two cores", True),
        ("see issue 12", True),
        (f"docs/{WORD}5_scripts.md", True),
        (f"run it with scope='{WORD}'", False),
        (f"written to /{'work'}/runs/x", True),  # spelled apart: the repository itself must not hold a machine path
        ("the cache under ~/.cache/animevae", False),
        ("/root/.cache/huggingface", True),
        ("runs/anime and ../shared/data", False),
    ],
)
def test_the_patterns_catch_what_they_mean(text, caught):
    assert bool(HISTORY.search(text) or MACHINE_PATHS.search(text)) is caught
