"""The documentation cannot drift: every example in README.md and docs/ runs, and every flag they name exists.

**Examples.** Each page's fenced ```bash and ```python blocks run in order, as a reader would type them, in
a fresh folder per page (two pages at a time) that holds what the docs assume:

- ``runs/anime``: a tiny trained run (the seed preset, 48 px, 13 faces held out) of the parquet below;
- ``../shared/data/anime-faces-96/``: a Hub-format parquet file of 128 built-in faces, so the docs' path
  to the real faces works (their figures come from the real 30,000);
- ``~/Pictures/faces/``: 24 PNG faces (``HOME`` points into the folder); ``face.png`` and ``other.png``;
- the test suite's stand-in Hub on 127.0.0.1 (``HF_ENDPOINT``; ``FakeHub`` of tests/apps/test_hub.py), which
  takes ``push`` and serves what was pushed, so ``push`` then ``generate --run USER/NAME`` round-trips offline.

Heavy settings shrink on the way in, nothing else changes: ``animevae`` on the blocks' PATH is a wrapper
that applies ``shrink_args`` to the command line (a 48 px model with 8 base channels, a few epochs,
``--max-minutes`` in milliseconds, a handful of faces and samples) and, for ``demo``, stops the server
once it answers. Python blocks run in one interpreter (a fresh namespace per page), with ``animevae.train``,
``Run.generate`` and ``Run.evaluate`` shrunk the same way. A ```toml block whose first line is
``# NAME.toml`` is written to NAME.toml for the blocks after it.

**Markers**, an HTML comment on the line before a block (invisible on the site, visible in the source):

- ``<!-- doctest: skip REASON -->``: not run; reported as a skipped test with REASON (``pytest -ra`` lists it);
- ``<!-- doctest: expect-error -->``: the command, run as written (not shrunk), must exit 2 with the
  one-line error in the ```text block after it (``...`` there matches anything).

**Flags.** Every ``--flag`` in a command, an inline code span or prose of README.md and docs/ must exist
in the real parser (``animevae.cli.build_parser``) of the subcommand it is used with, or of any subcommand
when the text names none. Flags of other programs on a command line (``torchrun``, ``python script.py``,
``tensorboard``...) are theirs; a page that names other programs' flags in prose lists them in
``<!-- doctest: other-flags --fresh ... -->``.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK_TIMEOUT = 300


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


# -- reading the markdown ------------------------------------------------------------------------

FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)")
MARKER = re.compile(r"<!--\s*doctest:\s*(skip|expect-error|other-flags)\b\s*(.*?)\s*-->")
LANGS = {"bash": "bash", "sh": "bash", "shell": "bash", "python": "python", "py": "python", "toml": "toml"}


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    lang: str  # as written after the fence
    code: str
    marker: str | None = None  # skip | expect-error
    note: str = ""  # the skip reason
    expected: str | None = None  # expect-error: the ```text block after it

    @property
    def where(self) -> str:
        return f"{rel(self.page)}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    """Every fenced block of a page, with the doctest marker on the line before it (blank lines between allowed)."""
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence, lang = m.group(1), m.group(2), m.group(3).lower()
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = textwrap.dedent("\n".join(line[len(indent) :] if line.startswith(indent) else line for line in lines[i + 1 : j]))
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        mark = MARKER.search(lines[k]) if k >= 0 else None
        kind = mark.group(1) if mark and mark.group(1) != "other-flags" else None
        blocks.append(Block(page, i + 1, lang, body + "\n", kind, mark.group(2) if kind else ""))
        i = j + 1
    for a, b in zip(blocks, blocks[1:]):
        if a.marker == "expect-error":
            a.expected = b.code.strip() if b.lang in ("text", "") else None
    return blocks


def runnable(page: Path) -> list[Block]:
    return [b for b in read_blocks(page) if LANGS.get(b.lang)]


# -- making the docs' commands small -------------------------------------------------------------


def shrink_args(argv: list[str]) -> list[str]:
    """The command a page gives, with heavy settings made tiny: the same subcommand, data and flags otherwise.

    train: a 48 px model with 8 base channels (unless fine-tuning, which keeps the source's model), at most
    96 built-in or 64 other faces, one epoch (whatever a config file says) unless a time budget is given,
    --max-minutes M -> M / 6000 (a minute of the docs is 10 ms here); a resumed run: its budget shrunk the
    same way and --epochs N -> 2, one more than a shrunk run has. generate/reconstruct: at most 8 faces;
    evaluate: 16 samples, k 2, no two-sample test, the cheap samplers unless named.
    """
    args: list[str] = []
    for a in argv:  # --flag=value -> --flag value
        args += a.split("=", 1) if a.startswith("--") and "=" in a else [a]
    if not args or args[0].startswith("-"):
        return args

    def at(flag: str) -> int | None:
        return args.index(flag) + 1 if flag in args and args.index(flag) + 1 < len(args) else None

    def put(flag: str, change, add: str | None = None) -> None:
        i = at(flag)
        if i is not None:
            args[i] = str(change(args[i]))
        elif add is not None:
            args.extend([flag, add])

    def at_most(n):
        return lambda v: min(int(v), n)

    command = args[0]
    if command == "train":
        put("--max-minutes", lambda v: f"{float(v) / 6000:g}")
        if "--resume" in args:
            put("--epochs", lambda v: 2)  # one more than a shrunk run has
            return args
        given = "--epochs" in args or "--max-minutes" in args
        put("--epochs", lambda v: 1, add=None if given else "1")
        put("--limit", at_most(64))
        put("--builtin-count", at_most(96), add="96")
        if "--init-from" not in args:
            put("--image-size", lambda v: 48, add="48")
            put("--base-channels", lambda v: 8, add="8")
    elif command in ("generate", "reconstruct"):
        put("--n", at_most(8), add="8")
    elif command == "evaluate":
        put("--limit", at_most(64))
        put("--n-samples", at_most(16), add="16")
        put("--k", at_most(2), add="2")
        put("--c2st-seeds", lambda v: 0, add="0")  # the two-sample test trains a classifier per sampler: its own tests cover it
        put("--samplers", lambda v: v, add="mix_k2,prior,gmm")
    return args


WRAPPER = '''#!{python}
"""`animevae` for the docs' examples: the real CLI on a shrunk command line (tests/test_docs.py)."""
import os, socket, sys, threading, time, urllib.request

{shrink}

args = sys.argv[1:] if os.environ.get("DOCS_TEST_AS_WRITTEN") else shrink_args(sys.argv[1:])
if args[:1] == ["demo"]:  # a server: check that it answers, then stop it
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [a for i, a in enumerate(args) if a != "--port" and (i == 0 or args[i - 1] != "--port")] + ["--port", str(port)]

    def watch():
        end = time.time() + 180
        while time.time() < end:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{{port}}/", timeout=5) as r:
                    if r.status == 200:
                        print(f"docs test: the demo answered on port {{port}}; stopped", flush=True)
                        os._exit(0)
            except OSError:
                time.sleep(0.5)
        print("docs test: the demo did not answer within 180 s", file=sys.stderr, flush=True)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
from animevae.cli import main
sys.exit(main(args))
'''

DRIVER = '''
"""Runs the pages' Python blocks as they arrive on stdin, one namespace, folder and HOME per page (tests/test_docs.py)."""
import json, os, sys, traceback

{shrink}

import animevae
import animevae.api as api

_train, _generate, _evaluate = api.train, api.Run.generate, api.Run.evaluate


def train(out, data=None, preset="seed", **options):
    argv = ["train"] + [x for k, v in options.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)
                        for x in ("--" + k.replace("_", "-"), str(v))]
    argv += ["--resume"] * bool(options.get("resume")) + ["--init-from"] * bool(options.get("init_from"))
    small = shrink_args(argv)
    for flag, value in zip(small, small[1:]):
        key = flag[2:].replace("-", "_")
        if flag.startswith("--") and key in ("epochs", "max_minutes", "limit", "builtin_count", "image_size", "base_channels"):
            options[key] = type(options.get(key, 0))(float(value)) if key == "max_minutes" else int(value)
    return _train(out, data, preset, **options)


def generate(self, n=100, *args, **options):
    return _generate(self, min(n, 8), *args, **options)


def evaluate(self, data, out=None, limit=None, **options):
    options["n_samples"] = min(options.get("n_samples", 16), 16)
    options["k"] = min(options.get("k", 2), 2)
    options["c2st_seeds"] = 0
    options.setdefault("samplers", ["mix_k2", "prior", "gmm"])
    return _evaluate(self, data, out=out, limit=min(limit or 64, 64), **options)


animevae.train, api.train, api.Run.generate, api.Run.evaluate = train, train, generate, evaluate
reply, scope = os.fdopen(os.dup(1), "w"), {{"__name__": "__main__"}}
os.dup2(2, 1)  # what the blocks print goes to stderr; stdout carries the replies
for line in sys.stdin:
    block = json.loads(line)
    try:
        if "page" in block:  # a new page: its own folder, home and namespace
            os.chdir(block["cwd"])
            os.environ["HOME"] = block["home"]
            scope = {{"__name__": "__main__"}}
        else:
            exec(compile(block["code"], block["where"], "exec"), scope)
        reply.write(json.dumps({{"ok": True}}) + "\\n")
    except BaseException:
        reply.write(json.dumps({{"ok": False, "error": traceback.format_exc()}}) + "\\n")
    reply.flush()
'''


# -- the folder every page starts from -----------------------------------------------------------


@pytest.fixture(scope="session")
def docs_world(tmp_path_factory):
    """A template folder (the tiny run, the parquet, the pictures) and the environment the blocks run in."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from animevae.data.toyfaces import render_faces

    base = tmp_path_factory.mktemp("docs-world")
    work, home, tools = base / "work", base / "home", base / "tools"
    faces_dir, pictures = base / "shared" / "data" / "anime-faces-96", home / "Pictures" / "faces"
    for d in (work, faces_dir, pictures, tools):
        d.mkdir(parents=True)

    def png(array) -> bytes:
        import io

        buf = io.BytesIO()
        Image.fromarray(np.asarray(array)).save(buf, format="PNG")
        return buf.getvalue()

    faces = render_faces(128, seed=11, size=48)
    cells = [{"bytes": png(f), "path": f"{i:05d}.png"} for i, f in enumerate(faces)]
    pq.write_table(pa.table({"image": cells}), faces_dir / "train-00000-of-00001.parquet")
    for i, f in enumerate(render_faces(24, seed=12, size=64)):
        (pictures / f"{i:02d}.png").write_bytes(png(f))
    (work / "face.png").write_bytes(png(faces[0]))
    (work / "other.png").write_bytes(png(faces[1]))

    shrink = inspect.getsource(shrink_args)
    (tools / "animevae").write_text(WRAPPER.format(python=sys.executable, shrink=shrink))
    (tools / "animevae").chmod(0o755)
    (tools / "driver.py").write_text(DRIVER.format(shrink=shrink))

    sys.path.insert(0, str(Path(__file__).parent / "apps"))
    from test_hub import FakeHub  # the test suite's stand-in Hub: takes pushes, serves what was pushed

    hub = FakeHub().__enter__()
    env = {
        **os.environ,
        "PATH": f"{tools}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(base / "hf-home"),
        "HF_HUB_OFFLINE": "0",
        "HF_TOKEN": "hf_docs_test_token",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONWARNINGS": "ignore",
    }
    train = "train --data ../shared/data/anime-faces-96 --epochs 1 --batch-size 32 --val-fraction 0.1 --out runs/anime --quiet".split()
    proc = subprocess.run([tools / "animevae", *train], cwd=work, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield {"base": base, "work": work, "home": home, "tools": tools, "env": env}
    hub.__exit__(None, None, None)


def page_dir(docs_world, folder: Path) -> tuple[Path, dict]:
    """A fresh copy of the template for one page in ``folder``; the page's blocks all run in it."""
    work = folder / "work"
    shutil.copytree(docs_world["work"], work)
    shutil.copytree(docs_world["base"] / "shared", folder / "shared")
    shutil.copytree(docs_world["home"], folder / "home")
    return work, {**docs_world["env"], "HOME": str(folder / "home")}


# -- running a page ------------------------------------------------------------------------------


class PythonSession:
    """One interpreter for every page's Python blocks (torch is imported once), started at the first block; each page
    gets a fresh namespace, its own folder and HOME. An interpreter that died is started again for the next page."""

    def __init__(self, env: dict, tools: Path):
        self.env, self.tools, self.proc, self.err = env, tools, None, []

    def page(self, cwd: Path, home: str) -> None:
        if self.proc is None or self.proc.poll() is not None:
            self.err = []
            pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
            self.proc = subprocess.Popen([sys.executable, str(self.tools / "driver.py")], cwd=cwd, env=self.env, text=True, **pipes)
            threading.Thread(target=lambda err=self.err, proc=self.proc: err.extend(iter(proc.stderr.readline, "")), daemon=True).start()
        self._send({"page": str(cwd), "cwd": str(cwd), "home": home}, str(cwd))

    def run(self, block: Block) -> None:
        reply = self._send({"code": block.code, "where": block.where}, block.where)
        if not reply["ok"]:
            pytest.fail(f"{block.where}: the Python example failed\n{block.code}\n{reply['error']}\n{''.join(self.err)[-2000:]}", pytrace=False)

    def _send(self, message: dict, where: str) -> dict:
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            pytest.fail(f"{where}: the Python interpreter died\n{''.join(self.err)[-3000:]}", pytrace=False)
        return json.loads(line)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


def toml_target(block: Block) -> str | None:
    first = block.code.splitlines()[0] if block.code.strip() else ""
    m = re.fullmatch(r"#\s*([\w.-]+\.(?:toml|json))\s*", first)
    return m.group(1) if m else None


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual.strip(), re.S) is not None


def run_bash(block: Block, cwd: Path, env: dict) -> None:
    if block.marker == "expect-error":  # an error comes before any heavy work: the command runs as written
        env = {**env, "DOCS_TEST_AS_WRITTEN": "1"}
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", block.code], cwd=cwd, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT)
    if block.marker == "expect-error":
        assert block.expected, f"{block.where}: an expect-error block needs the expected message in a ```text block right after it"
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or [""]
        assert proc.returncode == 2 and matches(block.expected, last[0]), (
            f"{block.where}: expected exit 2 and\n  {block.expected}\ngot exit {proc.returncode} and\n  {last[0]}\n{proc.stderr[-2000:]}"
        )
        return
    if proc.returncode != 0:
        pytest.fail(
            f"{block.where}: the shell example failed (exit {proc.returncode})\n{block.code}\n{proc.stdout[-1500:]}\n{proc.stderr[-3000:]}", pytrace=False
        )


def run_page(page: Path, cwd: Path, env: dict, python: PythonSession) -> str | None:
    """Every block of a page in order; None, or what failed."""
    started = False
    try:
        for block in runnable(page):
            kind = LANGS[block.lang]
            if block.marker == "skip":
                continue  # test_skipped_example reports it
            elif kind == "toml":
                if toml_target(block):
                    (cwd / toml_target(block)).write_text(block.code)
            elif kind == "bash":
                run_bash(block, cwd, env)
            else:
                if not started:
                    python.page(cwd, env["HOME"])
                    started = True
                python.run(block)
    except (pytest.fail.Exception, Exception) as e:  # pytest.fail raises a BaseException
        return getattr(e, "msg", None) or f"{type(e).__name__}: {e}"
    return None


PAGES_WITH_EXAMPLES = [p for p in PAGES if runnable(p)]
WORKERS = 2  # pages at a time: most of a small command's time is one core importing torch


@pytest.fixture(scope="session")
def page_outcomes(docs_world, request, tmp_path_factory) -> dict[Path, str | None]:
    """The selected pages' examples, run once, WORKERS pages at a time (each page's blocks in order, in its own folder)."""
    import queue
    from concurrent.futures import ThreadPoolExecutor

    wanted = [item.callspec.params["page"] for item in request.session.items if getattr(item, "originalname", "") == "test_every_example_runs"]
    sessions: queue.Queue = queue.Queue()
    for _ in range(WORKERS):
        sessions.put(PythonSession(docs_world["env"], docs_world["tools"]))

    folders = {page: tmp_path_factory.mktemp("page") for page in wanted}

    def run(page: Path) -> str | None:
        cwd, env = page_dir(docs_world, folders[page])
        python = sessions.get()
        try:
            return run_page(page, cwd, env, python)
        finally:
            sessions.put(python)

    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = dict(zip(wanted, pool.map(run, wanted)))
    yield outcomes
    while not sessions.empty():
        sessions.get().close()


@pytest.mark.parametrize("page", PAGES_WITH_EXAMPLES, ids=rel)
def test_every_example_runs(page, page_outcomes):
    if page_outcomes[page]:
        pytest.fail(page_outcomes[page], pytrace=False)


SKIPPED = [b for p in PAGES for b in read_blocks(p) if b.marker == "skip" and LANGS.get(b.lang)]


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
def test_skipped_example(block):
    """Each block marked skip is reported as a skipped test with the page's reason (pytest -ra lists them)."""
    assert block.note, f"{block.where}: say why a block is skipped: <!-- doctest: skip REASON -->"
    pytest.skip(f"{block.where}: {block.note}")


# -- flags ---------------------------------------------------------------------------------------

OTHER_PROGRAMS = {"torchrun", "python", "python3", "pip", "make", "tensorboard", "jupyter", "hf", "mkdocs", "ruff", "pytest", "git", "ls", "cd"}
SEPARATORS = {"|", "||", "&&", ";", ">", ">>", "2>", "&"}
FLAG = re.compile(r"(?<![\w/.-])--[a-z][a-z0-9-]*")


@pytest.fixture(scope="module")
def parser_flags() -> dict[str | None, set[str]]:
    """The flags of each subcommand of the real parser; None: the top level."""
    from animevae.cli import build_parser

    parser = build_parser()
    flags: dict[str | None, set[str]] = {None: {o for a in parser._actions for o in a.option_strings}}
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        flags[name] = {o for a in p._actions for o in a.option_strings}
    return flags


def _tokens(text: str) -> list[str]:
    try:
        return shlex.split(text, comments=True)
    except ValueError:
        return text.split()


def command_flags(text: str, subcommands: set[str]) -> list[tuple[str | None, str]]:
    """(subcommand, flag) for each animevae command in a line of shell; other programs' flags are theirs."""
    found: list[tuple[str | None, str]] = []
    tokens = _tokens(text)
    segments: list[list[str]] = [[]]
    for t in tokens:
        if t in SEPARATORS:
            segments.append([])
        else:
            segments[-1].append(t)
    for seg in segments:
        seg = [t for t in seg if not re.fullmatch(r"[A-Z_]+=.*", t)] or [""]
        starts = [i for i, t in enumerate(seg) if t.endswith("animevae") and (i == 0 or seg[i - 1] == "-m" or "/" in t)]
        if not starts and seg[0] in subcommands:
            starts = [-1]
        elif not starts:
            continue  # another program
        i = starts[0]
        sub = seg[i + 1] if i + 1 < len(seg) and seg[i + 1] in subcommands else None
        found += [(sub, t.split("=", 1)[0]) for t in seg[i + 1 :] if t.startswith("--")]
    return found


def mentioned_flags(page: Path, subcommands: set[str]) -> tuple[list[tuple[int, str | None, str]], set[str]]:
    """Every flag a page names, with the subcommand it goes with (None: any), and the page's other-flags list."""
    text = page.read_text()
    others = {f for m in MARKER.finditer(text) if m.group(1) == "other-flags" for f in m.group(2).split()}
    found: list[tuple[int, str | None, str]] = []
    in_fence, fence_lang, lines = None, "", text.splitlines()
    logical = ""
    for n, line in enumerate(lines, 1):
        m = FENCE.match(line)
        if m and in_fence is None:
            in_fence, fence_lang = m.group(2), m.group(3).lower()
            continue
        if in_fence is not None:
            if line.strip().startswith(in_fence):
                in_fence = None
                continue
            if LANGS.get(fence_lang) == "bash":
                logical += line.rstrip("\\") + " "
                if not line.rstrip().endswith("\\"):
                    found += [(n, s, f) for s, f in command_flags(logical, subcommands)]
                    logical = ""
            elif fence_lang in ("text", ""):
                found += [(n, None, f) for f in FLAG.findall(line)]
            continue
        spans = re.findall(r"`([^`]+)`", line)
        for span in spans:
            first = (_tokens(span) or [""])[0].split("/")[-1]
            if first == "animevae" or first in subcommands or first in OTHER_PROGRAMS:
                found += [(n, s, f) for s, f in command_flags(span, subcommands)]
            else:
                found += [(n, None, f) for f in FLAG.findall(span)]
        prose = re.sub(r"`[^`]+`", "", re.sub(r"<!--.*?-->", "", line))
        found += [(n, None, f) for f in FLAG.findall(prose)]
    return found, others


def test_every_flag_the_docs_name_exists(parser_flags):
    subcommands = {k for k in parser_flags if k}
    every = set().union(*parser_flags.values())
    wrong = []
    for page in PAGES:
        found, others = mentioned_flags(page, subcommands)
        for line, sub, flag in found:
            known = parser_flags[sub] if sub else every
            if flag not in known and flag not in others:
                where = f"animevae {sub}" if sub else "any animevae command"
                wrong.append(f"{rel(page)}:{line}: {flag} is not a flag of {where}")
    assert not wrong, "\n".join(wrong)


def test_the_flag_check_sees_commands_spans_and_prose():
    subs = {"train", "generate"}
    assert command_flags("animevae generate --run r --n 4 | tee log", subs) == [("generate", "--run"), ("generate", "--n")]
    assert command_flags("torchrun --nproc_per_node 2 -m animevae train --out x", subs) == [("train", "--out")]
    assert command_flags("python experiments/x.py --fresh", subs) == []
    assert command_flags("generate --run", subs) == [("generate", "--run")]


def test_every_test_the_docs_cite_exists():
    """The reliability guarantees and the extension guide name the tests that prove them: those must exist."""
    missing = []
    for page in PAGES:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            for path, name in re.findall(r"\b(tests/[\w/]+\.py)(?:::(\w+))?", line):
                if not (ROOT / path).is_file():
                    missing.append(f"{rel(page)}:{n}: {path} does not exist")
                elif name and not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.M):
                    missing.append(f"{rel(page)}:{n}: {path} has no test {name}")
    assert not missing, "\n".join(missing)


def test_the_readme_links_and_pictures_resolve():
    """mkdocs checks the site's links (strict); the README, read on its own, links into docs/ and shows pictures from it."""
    text = (ROOT / "README.md").read_text()
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text) if not t.startswith(("http://", "https://", "#"))]
    assert targets and not [t for t in targets if not (ROOT / t).exists()]


# -- the generated reference -----------------------------------------------------------------------


def _hook():
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_cli_reference_is_generated_from_the_parser(parser_flags):
    text = _hook().cli_reference()
    for sub, flags in parser_flags.items():
        if sub:
            assert f"## animevae {sub}" in text
            assert all(f"`{f}`" in text for f in flags - {"-h", "--help"}), sub


def test_the_presets_and_config_tables_come_from_the_config():
    from animevae.config import PRESETS, SECTIONS

    hook = _hook()
    presets, fields_table = hook.presets_table(), hook.config_fields()
    assert all(f"| `{name}` |" in presets for name in PRESETS)
    assert "`--arch spatial`" in presets and "`--latent-dim 576`" in presets
    assert all(f"| `{key}` |" in fields_table for cls in SECTIONS.values() for key in cls.__dataclass_fields__)


# -- what the docs must not contain ------------------------------------------------------------------

FORBIDDEN = {"a machine path": re.compile(r"(?<![\w.])/(?:work|root|home|tmp|opt)/"), "the development history": re.compile(r"\bsessions?\b|\bissue \d+", re.I)}


def test_the_docs_name_no_machine_paths_and_no_development_history():
    bad = []
    for page in PAGES:
        for n, line in enumerate(page.read_text().splitlines(), 1):
            bad += [f"{rel(page)}:{n}: {what}: {line.strip()[:120]}" for what, pattern in FORBIDDEN.items() if pattern.search(line)]
    assert not bad, "\n".join(bad)
