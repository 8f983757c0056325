"""Sharing on the Hub: save/load round trip, the model card, and `animevae push` against a local stand-in Hub.

huggingface_hub has no official local Hub, so ``push`` runs against a small HTTP server on
127.0.0.1 that answers the calls an upload of small files makes (create repo, create branch,
validate the card's YAML, preupload, and one commit with the files inline as base64) and records
every request; the test then checks exactly what reached it. Nothing leaves the machine.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from animevae import VAE
from animevae.hub import CARD_TAGS, GRID, card_text, stage, write_model_card
from animevae.runs import read_json

REPO = "someuser/tiny-faces"
UPLOADED = {"model.safetensors", "config.json", "latents.safetensors", "metrics.jsonl", "loss.png", GRID, "README.md"}


def assert_one_line_error(proc, *needles) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("animevae: error: "), lines[0]
    for needle in needles:
        assert needle.lower() in lines[0].lower(), lines[0]
    return lines[0]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- save_pretrained / from_pretrained ---------------------------------------------------------


def test_save_pretrained_from_pretrained_round_trip_of_a_trained_run(tiny_run, tmp_path):
    model = VAE.from_pretrained(tiny_run).eval()
    model.save_pretrained(tmp_path / "saved")
    assert {"model.safetensors", "config.json"} <= {p.name for p in (tmp_path / "saved").iterdir()}
    assert not list((tmp_path / "saved").glob("*.bin")) and not list((tmp_path / "saved").glob("*.pt"))
    loaded = VAE.from_pretrained(tmp_path / "saved").eval()
    assert loaded.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    z = torch.randn(3, model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    x = torch.rand(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(model.generate(z), loaded.generate(z))
        assert torch.equal(model.encode(x).mu, loaded.encode(x).mu)


# -- the model card ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def card(tiny_run, tmp_path_factory) -> Path:
    return write_model_card(tiny_run, REPO, tmp_path_factory.mktemp("card"))


def test_card_metadata_parses_back(card):
    data = ModelCard.load(card).data.to_dict()
    assert data["library_name"] == "animevae"
    assert data["tags"] == CARD_TAGS == ["vae", "anime", "image-generation", "pytorch"]
    assert data["license"] == "mit"
    assert data["pipeline_tag"] == "unconditional-image-generation"
    assert "datasets" not in data  # trained on the built-in faces: no Hub dataset to link


def test_card_links_the_hub_dataset_when_the_run_used_one(tiny_run, tmp_path):
    config = read_json(tiny_run / "config.json")
    config["data_stats"]["source"].update(kind="hub", name="DrishtiSharma/Anime-Face-Dataset")
    path = tmp_path / "README.md"
    path.write_text(card_text(config, [], REPO))
    card = ModelCard.load(path)
    assert card.data.to_dict()["datasets"] == ["DrishtiSharma/Anime-Face-Dataset"]
    assert "https://huggingface.co/datasets/DrishtiSharma/Anime-Face-Dataset" in card.text
    assert "This run's sampler (the grid below, and `animevae generate`'s default): **mix**" in card.text


def test_card_names_the_runs_own_sampler(tiny_run, tmp_path):
    config = read_json(tiny_run / "config.json")
    config["train"]["sampler"] = "gmm"
    text = card_text(config, [], REPO)
    assert "**gmm**" in text and "--sampler gmm" in text


def _rung(acc: float) -> dict:
    return {"accuracy": acc, "per_seed": [acc, acc], "spread": 0.0, "rounds": [5, 5]}


def test_card_shows_the_realism_ladder_of_the_runs_evaluation(tiny_run, tmp_path, capsys):
    from animevae.hub import _evaluation

    config = read_json(tiny_run / "config.json")
    ladder = {"by_size": {"96px": _rung(0.991), "24px": _rung(0.583), "16px": _rung(0.512)}, "per_seed": [0.991, 0.991], "real_up_to": 24, "valid": True}
    control = {"accuracy": 0.967, "caught": True, "caught_at": 0.9, "sigma_px": 1.0, "size": 96}
    evaluation = {"data": {"evaluated_on": "the run's held-out split"}, "samplers": {"gmm": {"c2st": ladder}}, "c2st_control": control}
    text = card_text(config, [], REPO, evaluation=evaluation)
    assert "## How real the faces look" in text and "the run's held-out split" in text
    assert "| faces | 96 px | 24 px | 16 px | real up to |" in text and "| gmm | 0.991 | 0.583 | 0.512 | 24 px |" in text
    assert "caught 0.967 at 96 px" in text and "the ladder is valid" in text
    assert "How real" not in card_text(config, [], REPO)  # no evaluation: no section
    # the card of a run folder reads its evaluation.json; one that is not an evaluate report is left out, said why
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "evaluation.json").write_text(json.dumps(evaluation))
    assert _evaluation(folder) == evaluation
    (folder / "evaluation.json").write_text('{"samplers": {"gmm": {"c2st": {}}}}')
    assert _evaluation(folder) is None and "not shown on the model card" in capsys.readouterr().err
    (folder / "evaluation.json").write_text("{not json")
    assert _evaluation(folder) is None and "cannot read JSON" in capsys.readouterr().err


def test_card_shows_grid_command_figures_and_a_three_line_snippet(card, tiny_run):
    text = ModelCard.load(card).text
    assert f"![faces generated by this model]({GRID})" in text
    assert (card.parent / GRID).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = read_json(tiny_run / "config.json")
    assert config["command"].startswith("animevae train --data builtin")
    assert f"```bash\n{config['command']}\n```" in text
    metrics = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert "| epochs | 2 of 2 planned |" in text
    assert f"{metrics[-1]['heldout_loss']:,.1f} nats" in text
    assert f"{metrics[-1]['heldout_loss'] / 27648:,.4f} nats (over 27,648" in text
    assert f"| images/s (final epoch) | {metrics[-1]['images_per_s']:,.0f} |" in text
    assert "9,122,115 parameters" in text

    snippet = re.search(r"## How to load it in three lines\n\n```python\n(.*?)```", text, re.S).group(1)
    lines = snippet.strip().splitlines()
    assert len(lines) == 3
    assert lines[0] == "from animevae import VAE, PriorSampler"
    assert f'VAE.from_pretrained("{REPO}")' in lines[1]
    assert f"animevae generate --run {REPO}" in text
    # the snippet runs as written (with the repo id pointed at the local run)
    scope: dict = {}
    exec(snippet.replace(f'"{REPO}"', repr(str(tiny_run))), scope)
    assert scope["faces"].dtype == torch.uint8 and scope["faces"].shape == (16, 3, 96, 96)


def test_stage_holds_exactly_what_is_uploaded(tiny_run, tmp_path):
    names = stage(tiny_run, REPO, tmp_path)
    assert set(names) == UPLOADED == {p.name for p in tmp_path.iterdir()}
    for name in UPLOADED - {GRID, "README.md"}:
        assert (tmp_path / name).read_bytes() == (tiny_run / name).read_bytes(), name
    assert not (tiny_run / "README.md").exists()  # staging never writes into the run folder


# -- push against a local stand-in Hub ---------------------------------------------------------


class FakeHub:
    """A loopback HTTP server answering the Hub API calls of create_repo, create_branch and upload_folder, and
    serving what was committed back to hf_hub_download (HEAD + GET of /REPO/resolve/REVISION/FILE)."""

    COMMIT = "c" * 40

    def __init__(self, fail_with: int | None = None):
        self.requests: list[dict] = []
        self.files: dict[tuple[str, str], bytes] = {}  # (repo id, path) -> what the last commit uploaded
        self.fail_with = fail_with
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _reply(self, status: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _record(self, method: str) -> tuple[str, bytes]:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                hub.requests.append({"method": method, "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                return self.path, body

            def _file(self) -> bytes | None:
                m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/(.+)", self.path.split("?")[0])
                data = hub.files.get((m.group(1), m.group(2))) if m else None
                if data is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                self.send_response(200)
                self.send_header("X-Repo-Commit", hub.COMMIT)
                self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                return data

            def do_HEAD(self):
                self._record("HEAD")
                self._file()

            def do_GET(self):
                self._record("GET")
                data = self._file()
                if data is not None:
                    self.wfile.write(data)

            def do_POST(self):
                path, body = self._record("POST")
                if hub.fail_with:
                    return self._reply(hub.fail_with, {"error": "Invalid credentials in Authorization header"})
                if path == "/api/repos/create":
                    d = json.loads(body)
                    return self._reply(200, {"url": f"{hub.url}/{d['organization']}/{d['name']}", "name": d["name"]})
                if "/branch/" in path or path == "/api/validate-yaml":
                    return self._reply(200, {})
                if "/preupload/" in path:
                    files = json.loads(body)["files"]
                    return self._reply(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]})
                if "/commit/" in path:
                    repo = path.split("/api/models/")[1].split("/commit/")[0]
                    for op in map(json.loads, body.decode().splitlines()):
                        if op["key"] == "file":
                            hub.files[(repo, op["value"]["path"])] = base64.b64decode(op["value"]["content"])
                    return self._reply(200, {"commitUrl": f"{hub.url}/{repo}/commit/{hub.COMMIT}", "commitOid": hub.COMMIT, "success": True})
                return self._reply(404, {"error": f"unexpected {path}"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def posts(self, fragment: str) -> list[dict]:
        return [r for r in self.requests if r["method"] == "POST" and fragment in r["path"]]


def hub_env(tmp_path, endpoint: str) -> dict:
    return {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf-home"), "HF_HUB_OFFLINE": "0", "HF_TOKEN": ""}


def test_push_uploads_the_run_and_card_in_one_commit(cli, tiny_run, tmp_path):
    with FakeHub() as hub:
        proc = cli(
            "push",
            "--run",
            tiny_run,
            "--repo-id",
            REPO,
            "--private",
            "--branch",
            "dev",
            "--token",
            "hf_test_token",
            env=hub_env(tmp_path, hub.url),
            timeout=300,
        )
    assert f"pushed {tiny_run} to {REPO}" in proc.stdout
    assert f"{REPO}/commit/" in proc.stdout and f"animevae generate --run {REPO}" in proc.stdout

    (create,) = hub.posts("/api/repos/create")
    body = json.loads(create["body"])
    assert (body["organization"], body["name"]) == ("someuser", "tiny-faces")
    assert body.get("private") is True or body.get("visibility") == "private", body
    assert create["headers"].get("authorization") == "Bearer hf_test_token"
    assert hub.posts(f"/api/models/{REPO}/branch/dev")
    (validate,) = hub.posts("/api/validate-yaml")  # the client checks the card's metadata before the commit
    assert "library_name: animevae" in json.loads(validate["body"])["content"]
    (pre,) = hub.posts(f"/api/models/{REPO}/preupload/dev")
    assert {f["path"] for f in json.loads(pre["body"])["files"]} == UPLOADED
    (commit,) = hub.posts(f"/api/models/{REPO}/commit/dev")
    ops = [json.loads(line) for line in commit["body"].decode().splitlines()]
    assert ops[0]["key"] == "header"
    files = {op["value"]["path"]: base64.b64decode(op["value"]["content"]) for op in ops if op["key"] == "file"}
    assert set(files) == UPLOADED
    for name in ("model.safetensors", "config.json", "latents.safetensors", "metrics.jsonl", "loss.png"):
        assert files[name] == (tiny_run / name).read_bytes(), name
    assert files[GRID][:8] == b"\x89PNG\r\n\x1a\n"
    card = tmp_path / "README.md"
    card.write_bytes(files["README.md"])
    assert ModelCard.load(card).data.library_name == "animevae"
    assert f'VAE.from_pretrained("{REPO}")' in files["README.md"].decode()


def test_a_pushed_run_generates_from_the_repo_id_with_its_fitted_sampler_and_no_fit(cli, sharp_run, tmp_path):
    """push uploads the sampler fitted when training ended; generate --run USER/NAME downloads and uses it (same faces as
    the run folder gives), and a repo whose fitted file is stale is refitted in memory with one line saying why."""
    local = cli("generate", "--run", sharp_run, "--n", 6, "--seed", 2, "--out", tmp_path / "local")
    with FakeHub() as hub:
        cli("push", "--run", sharp_run, "--repo-id", REPO, "--token", "hf_test_token", env=hub_env(tmp_path, hub.url), timeout=300)
        assert (REPO, "gmm_10_full.safetensors") in hub.files
        env = hub_env(tmp_path, hub.url)
        proc = cli("generate", "--run", REPO, "--n", 6, "--seed", 2, "--out", tmp_path / "hub", env=env, timeout=300)
        assert "fitting" not in proc.stderr and "fitting" not in local.stderr, proc.stderr
        assert any(r["method"] == "GET" and r["path"].endswith("/gmm_10_full.safetensors") for r in hub.requests)
        assert (tmp_path / "hub" / "grid.png").read_bytes() == (tmp_path / "local" / "grid.png").read_bytes()

        # a fitted file that does not belong to the repo's latents is not used
        other = tmp_path / "other.safetensors"
        from animevae.runs import Latents

        old = Latents.load(sharp_run / "latents.safetensors")
        Latents(old.mu + 0.01, old.logvar, old.row_id).save(other)
        hub.files[(REPO, "latents.safetensors")] = other.read_bytes()
        env = {**env, "HF_HOME": str(tmp_path / "fresh-hf-home")}
        proc = cli("generate", "--run", REPO, "--n", 6, "--seed", 2, "--out", tmp_path / "stale", env=env, timeout=300)
        assert "gmm_10_full.safetensors: not used (it was fitted on other latents); fitting it again" in proc.stderr, proc.stderr


def test_push_unreachable_hub_is_one_line(cli, tiny_run, tmp_path):
    port = closed_port()
    proc = cli("push", "--run", tiny_run, "--repo-id", REPO, "--token", "hf_x", check=False, env=hub_env(tmp_path, f"http://127.0.0.1:{port}"), timeout=300)
    assert_one_line_error(proc, REPO, "cannot reach", f"127.0.0.1:{port}")


def test_push_rejected_token_is_one_line(cli, tiny_run, tmp_path):
    with FakeHub(fail_with=401) as hub:
        proc = cli("push", "--run", tiny_run, "--repo-id", REPO, "--token", "hf_bad", check=False, env=hub_env(tmp_path, hub.url), timeout=300)
    assert_one_line_error(proc, "not logged in", "--token")


def test_push_offline_mode_is_one_line(cli, tiny_run, tmp_path):
    proc = cli(
        "push",
        "--run",
        tiny_run,
        "--repo-id",
        REPO,
        check=False,
        env={**hub_env(tmp_path, f"http://127.0.0.1:{closed_port()}"), "HF_HUB_OFFLINE": "1"},
        timeout=300,
    )
    assert_one_line_error(proc, REPO)


@pytest.mark.parametrize("repo_id", ["noslash", "a/b/c", "bad name/x", "-/x", "a/b..c"])
def test_push_bad_repo_id(cli, tiny_run, tmp_path, repo_id):
    proc = cli("push", "--run", tiny_run, f"--repo-id={repo_id}", check=False, env=hub_env(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    assert_one_line_error(proc, "--repo-id", "USER/NAME")


def test_push_needs_a_finished_run(cli, tiny_run, tmp_path):
    proc = cli("push", "--run", tmp_path / "missing", "--repo-id", REPO, check=False)
    assert_one_line_error(proc, "no such run folder")
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copy(tiny_run / "config.json", partial)
    proc = cli("push", "--run", partial, "--repo-id", REPO, check=False)
    assert_one_line_error(proc, "model.safetensors", "latents.safetensors")


# -- a Hub repo id where a run folder goes, offline ----------------------------------------------


def test_generate_from_a_hub_repo_id_offline_is_one_line(cli, tmp_path):
    proc = cli("generate", "--run", REPO, "--out", tmp_path / "g", check=False, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf-home")})
    msg = assert_one_line_error(proc, REPO)
    assert "has no config.json" not in msg  # says it could not reach the Hub, not that the repo lacks files
    assert not (tmp_path / "g").exists()
