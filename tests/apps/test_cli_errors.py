"""The real CLI in a subprocess: every user mistake exits 2 with one 'animevae: error:' line, no traceback;
and generation from a run is reproducible."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

HF_RETRY_NOISE = ("thrown while requesting", "Retrying in")


def assert_user_error(proc, *needles: str, allow_hub_retry_lines: bool = False) -> str:
    """Exit 2, stderr is exactly one line 'animevae: error: ...' (no traceback); returns the message."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    if allow_hub_retry_lines:  # huggingface_hub logs its retries before giving up
        lines = [l for l in lines if not any(n in l for n in HF_RETRY_NOISE)]
    assert len(lines) == 1, proc.stderr[-2000:]
    msg = lines[0]
    assert msg.startswith("animevae: error: "), msg
    assert proc.stderr.rstrip("\n").endswith(msg)
    for needle in needles:
        assert needle in msg, (needle, msg)
    return msg


def train(cli, *args, out, env=None):
    return cli("train", *args, "--epochs", 1, "--out", out, "--quiet", check=False, env=env)


# -- data problems -----------------------------------------------------------------------------


def test_data_path_does_not_exist(cli, tmp_path):
    missing = tmp_path / "no" / "faces"
    msg = assert_user_error(train(cli, "--data", missing, out=tmp_path / "o"), str(missing))
    assert "builtin" in msg


def test_data_empty_folder(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    assert_user_error(train(cli, "--data", tmp_path / "empty", out=tmp_path / "o"), str(tmp_path / "empty"), "no images")


def test_data_only_grayscale(cli, tmp_path):
    folder = tmp_path / "gray"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (40, 40), dtype=np.uint8), "L").save(folder / f"{i}.png")
    (folder / "notes.txt").write_text("not an image")
    msg = assert_user_error(train(cli, "--data", folder, out=tmp_path / "o"), "no images left", "--convert-to-rgb")
    assert "4" in msg.replace(str(folder), "")  # says how many were skipped


def test_data_hub_unreachable(cli, tmp_path):
    # unreachable on any machine: nothing listens on port 9 (the discard port) of localhost
    env = {"HF_HUB_ETAG_TIMEOUT": "2", "HF_HUB_DOWNLOAD_TIMEOUT": "2", "HF_HUB_OFFLINE": "0", "HF_ENDPOINT": "http://127.0.0.1:9"}
    proc = train(cli, "--data", "someuser/somedataset", out=tmp_path / "o", env=env)
    msg = assert_user_error(proc, "someuser/somedataset", allow_hub_retry_lines=True)
    assert "Hub" in msg
    assert "local" in msg and "builtin" in msg


def test_image_size_the_model_cannot_take(cli, tmp_path):
    msg = assert_user_error(train(cli, "--data", "builtin", "--image-size", "100", out=tmp_path / "o"), "100")
    assert "96" in msg  # says which sizes work


def test_freeze_without_init_from(cli, tmp_path):
    assert_user_error(train(cli, "--data", "builtin", "--freeze", "encoder", out=tmp_path / "o"), "--freeze", "--init-from")


def test_out_holds_a_run(cli, tiny_run):
    before = (tiny_run / "metrics.jsonl").read_bytes()
    assert_user_error(train(cli, "--data", "builtin", "--builtin-count", "32", out=tiny_run), "already holds a run", "--overwrite")
    assert (tiny_run / "metrics.jsonl").read_bytes() == before


# -- generate: broken run folders --------------------------------------------------------------


def test_generate_folder_without_weights(cli, tiny_run, tmp_path):
    run = tmp_path / "noweights"
    run.mkdir()
    assert_user_error(cli("generate", "--run", run, "--out", tmp_path / "g", check=False), str(run), "config.json")
    shutil.copy(tiny_run / "config.json", run)
    assert_user_error(cli("generate", "--run", run, "--out", tmp_path / "g", check=False), str(run), "model.safetensors")
    assert not (tmp_path / "g").exists()


@pytest.fixture
def no_latents_run(tiny_run, tmp_path) -> Path:
    run = tmp_path / "nolatents"
    run.mkdir()
    for name in ("model.safetensors", "config.json"):
        shutil.copy(tiny_run / name, run)
    return run


def test_generate_folder_without_latents(cli, no_latents_run, tmp_path):
    proc = cli("generate", "--run", no_latents_run, "--out", tmp_path / "g", check=False)
    assert_user_error(proc, str(no_latents_run), "latents.safetensors")
    # the prior sampler does not need them
    cli("generate", "--run", no_latents_run, "--sampler", "prior", "--n", 2, "--out", tmp_path / "p")
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["00000.png", "00001.png", "grid.png"]


class _Plant:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_generate_refuses_pickled_weights_without_running_them(cli, tiny_run, tmp_path):
    run = tmp_path / "evil"
    run.mkdir()
    shutil.copy(tiny_run / "config.json", run)
    marker = tmp_path / "pwned"
    (run / "model.safetensors").write_bytes(pickle.dumps({"w": _Plant(marker)}))
    pickle.loads(pickle.dumps(_Plant(tmp_path / "probe")))  # the payload does run code when unpickled
    assert (tmp_path / "probe").exists()
    assert_user_error(cli("generate", "--run", run, "--out", tmp_path / "g", check=False), "safetensors")
    assert not marker.exists()


@pytest.mark.parametrize("args, needle", [(["--mix-k", "0"], "--mix-k"), (["--mix-k", "lots"], "--mix-k"), (["--n", "0"], "--n")])
def test_generate_bad_arguments(cli, tiny_run, tmp_path, args, needle):
    assert_user_error(cli("generate", "--run", tiny_run, *args, "--out", tmp_path / "g", check=False), needle)


def test_generate_hub_repo_offline_says_so(cli, tmp_path):
    proc = cli("generate", "--run", "someuser/somemodel", "--out", tmp_path / "g", check=False, env={"HF_HUB_OFFLINE": "1"})
    msg = assert_user_error(proc, "someuser/somemodel")
    assert "has no config.json" not in msg
    assert any(w in msg.lower() for w in ("connection", "offline", "reach"))


# -- generate: reproducible output --------------------------------------------------------------

SEVEN = [f"{i:05d}.png" for i in range(7)] + ["grid.png"]


@pytest.fixture(scope="module")
def gen_dirs(tiny_run, tmp_path_factory, cli) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("generated")
    runs = {"A": ("--seed", 3), "B": ("--seed", 3), "C": ("--seed", 4)}
    for name, args in runs.items():
        proc = cli("generate", "--run", tiny_run, "--n", 7, *args, "--out", base / name)
        assert "7 faces written" in proc.stdout
    return {name: base / name for name in runs}


def test_generate_writes_n_pngs_and_a_grid(gen_dirs):
    a = gen_dirs["A"]
    assert sorted(p.name for p in a.iterdir()) == SEVEN
    for name in SEVEN[:-1]:
        with Image.open(a / name) as im:
            assert im.format == "PNG" and im.size == (96, 96) and im.mode == "RGB"
    with Image.open(a / "grid.png") as im:
        assert im.size == (2 + 3 * 98, 2 + 3 * 98)  # 7 faces: 3 per row, 3 rows


def test_generate_same_seed_byte_identical(gen_dirs):
    a, b = gen_dirs["A"], gen_dirs["B"]
    assert sorted(p.name for p in b.iterdir()) == SEVEN
    for name in SEVEN:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_generate_other_seed_differs(gen_dirs):
    a, c = gen_dirs["A"], gen_dirs["C"]
    assert sorted(p.name for p in c.iterdir()) == SEVEN
    assert (a / "grid.png").read_bytes() != (c / "grid.png").read_bytes()
    assert sum((a / n).read_bytes() != (c / n).read_bytes() for n in SEVEN[:-1]) >= 5
    # the 7 faces of one run are not all the same picture
    faces = [np.asarray(Image.open(a / n)) for n in SEVEN[:-1]]
    assert len({f.tobytes() for f in faces}) == 7


@pytest.mark.parametrize("args", [("--mix-k", "all"), ("--sampler", "prior", "--temperature", "0.8"), ("--mix-k", "1")])
def test_generate_other_samplers(cli, tiny_run, tmp_path, gen_dirs, args):
    out = tmp_path / "g"
    proc = cli("generate", "--run", tiny_run, "--n", 7, "--seed", 3, *args, "--out", out)
    assert "Traceback" not in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == SEVEN
    with Image.open(out / "00000.png") as im:
        assert im.size == (96, 96)
    # the option changes what is drawn (A: the default mix of k=4, same seed)
    assert (out / "grid.png").read_bytes() != (gen_dirs["A"] / "grid.png").read_bytes()


def test_generate_uses_the_runs_own_sampler_by_default(cli, tiny_run, tmp_path):
    """A run whose preset recorded gmm as its sampler generates with gmm unless --sampler says otherwise."""
    import json
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("checkpoints", "epochs", "gmm*", "two_stage*"))
    config = json.loads((run / "config.json").read_text())
    config["train"]["sampler"] = "gmm"
    (run / "config.json").write_text(json.dumps(config))
    cli("generate", "--run", run, "--n", 7, "--seed", 3, "--out", tmp_path / "own")
    assert list(run.glob("gmm*.safetensors"))  # fitted (and kept) because the default was gmm
    cli("generate", "--run", run, "--n", 7, "--seed", 3, "--sampler", "gmm", "--out", tmp_path / "named")
    assert (tmp_path / "own" / "grid.png").read_bytes() == (tmp_path / "named" / "grid.png").read_bytes()
    cli("generate", "--run", run, "--n", 7, "--seed", 3, "--sampler", "mix", "--out", tmp_path / "mix")
    assert (tmp_path / "own" / "grid.png").read_bytes() != (tmp_path / "mix" / "grid.png").read_bytes()
