"""The web demo: its computations and upload checks directly, then the real app in headless Chromium.

The browser tests start ``animevae demo`` as a subprocess on a free loopback port and drive it
with Playwright through the Debian ``chromium`` package (``apt-get install chromium``; never
``playwright install``). They skip, saying why, when /usr/bin/chromium or playwright is missing;
under CI (``CI=true``, where .ci/run installs Chromium) they fail instead.

    ANIMEVAE_SCREENSHOT=docs/images/demo.png   also copy the screenshot of the Generate tab there
    ANIMEVAE_DEMO_RUN=runs/quickstart          serve this run instead of the tiny test run
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import copy_run, need
from PIL import Image

from animevae.data.toyfaces import render_face
from animevae.demo import MAX_UPLOAD_BYTES, DemoModel, UploadError, read_upload

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def face_png(path: Path, index: int = 5, size: int = 96) -> Path:
    Image.fromarray(render_face(index, size=size)).save(path)
    return path


# -- without a browser -------------------------------------------------------------------------


def test_read_upload_accepts_a_face_of_any_size(tmp_path):
    arr = read_upload(face_png(tmp_path / "f.png", size=200), 96)
    assert arr.shape == (3, 96, 96) and arr.dtype == np.uint8
    rgba = tmp_path / "rgba.png"
    Image.fromarray(render_face(3)).convert("RGBA").save(rgba)
    assert read_upload(rgba, 96).shape == (3, 96, 96)  # converted, not skipped


def _oversized(path: Path) -> None:
    path.write_bytes(b"\0" * (MAX_UPLOAD_BYTES + 1))


def _truncated(path: Path) -> None:
    path.write_bytes(face_png(path.with_name("whole.png")).read_bytes()[:400])


REFUSED_UPLOADS = [  # file name, how to write it, what the one-line refusal must say
    ("big.png", _oversized, "at most 10 MB"),
    ("wide.png", lambda p: Image.new("RGB", (4097, 16)).save(p), "4097x16 px.*at most 4096 px"),
    ("notes.png", lambda p: p.write_text("not an image at all"), "notes.png is not an image"),
    ("tiny.png", lambda p: Image.new("RGB", (4, 4)).save(p), "skipped: it is smaller than 8 px"),
    ("cut.png", _truncated, "cut.png"),
]


def test_read_upload_refuses_a_missing_upload():
    with pytest.raises(UploadError, match="Upload a face image first"):
        read_upload(None, 96)


@pytest.mark.parametrize("name, write, says", REFUSED_UPLOADS, ids=[r[0] for r in REFUSED_UPLOADS])
def test_read_upload_refusals_say_why(tmp_path, name, write, says):
    path = tmp_path / name
    write(path)
    with pytest.raises(UploadError, match=says):
        read_upload(path, 96)


@pytest.fixture(scope="module")
def demo_model(tiny_run, tmp_path_factory) -> DemoModel:
    """The demo's model on a copy of the tiny run: drawing from gmm, two-stage and diffusion fits them into the folder."""
    return DemoModel(str(copy_run(tiny_run, tmp_path_factory.mktemp("demo-model") / "run")))


def test_demo_model_computations(demo_model, tmp_path):
    grid = demo_model.generate_grid("mix", 9, 0, 4, 1.0)
    assert grid.dtype == np.uint8 and grid.shape == (2 + 3 * 98, 2 + 3 * 98, 3)
    assert np.array_equal(grid, demo_model.generate_grid("mix", 9, 0, 4, 1.0))
    assert not np.array_equal(grid, demo_model.generate_grid("mix", 9, 1, 4, 1.0))
    assert demo_model.generate_grid("prior", 4, 0, 4, 0.5).shape == (2 + 2 * 98, 2 + 2 * 98, 3)
    for fitted in ("gmm", "two-stage", "diffusion"):  # every sampler is offered, the fitted ones included
        assert demo_model.generate_grid(fitted, 4, 0, 4, 1.0).shape == (2 + 2 * 98, 2 + 2 * 98, 3)
    assert demo_model.default_sampler == "mix"  # the seed preset's run: its own sampler

    n = len(demo_model.directions)
    assert n == 6 and demo_model.directions.shape == (6, 256)
    assert np.allclose((demo_model.directions @ demo_model.directions.T).numpy(), np.eye(6), atol=1e-4)
    assert all(a >= b for a, b in zip(demo_model.explained, demo_model.explained[1:]))
    mean_face = demo_model.explore("mean face", 0, *[0.0] * n)
    assert mean_face.shape == (96, 96, 3)
    assert not np.array_equal(mean_face, demo_model.explore("mean face", 0, 3.0, *[0.0] * (n - 1)))
    assert not np.array_equal(mean_face, demo_model.explore("seed face", 0, *[0.0] * n))

    a, b = face_png(tmp_path / "a.png", 1), face_png(tmp_path / "b.png", 2)
    seen, recon = demo_model.reconstruct(a)
    assert seen.shape == recon.shape == (96, 96, 3)
    assert np.array_equal(seen, render_face(1))
    strip = demo_model.interpolate(a, b, 5)
    assert strip.shape == (2 + 98, 2 + 7 * 98, 3)  # A, 5 steps, B


def test_build_app(tiny_run):
    import gradio as gr

    from animevae.demo import build_app

    app = build_app(str(tiny_run))
    assert isinstance(app, gr.Blocks)
    radio = next(c for c in app.blocks.values() if isinstance(c, gr.Radio) and c.label == "sampler")
    assert [value for _, value in radio.choices] == ["mix", "prior", "gmm", "two-stage", "diffusion"] and radio.value == "mix"  # joint-gmm: hierarchical


def test_build_app_offers_joint_gmm_for_a_hierarchical_run(tmp_path, cli):
    import gradio as gr

    from animevae.demo import build_app

    run = tmp_path / "hier"
    cli("train", "--preset", "hierarchical", "--data", "builtin", "--builtin-count", "128", "--image-size", "48", "--base-channels", "8",
        "--latent-dim", "144", "--epochs", "1", "--out", run, "--quiet")  # fmt: skip
    radio = next(c for c in build_app(str(run)).blocks.values() if isinstance(c, gr.Radio) and c.label == "sampler")
    assert "joint-gmm" in [value for _, value in radio.choices] and radio.value == "joint-gmm"


# -- in a real browser -------------------------------------------------------------------------


def _need_browser():
    need(CHROMIUM.exists(), f"{CHROMIUM} is missing: apt-get install -y chromium (the Debian package)")
    need(
        importlib.util.find_spec("playwright") is not None,
        "playwright is missing: pip install playwright (no `playwright install` needed: it uses /usr/bin/chromium)",
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tiny_run, tmp_path_factory):
    _need_browser()
    run = os.environ.get("ANIMEVAE_DEMO_RUN") or str(tiny_run)
    port = _free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "GRADIO_TEMP_DIR": str(log.parent / "gradio")}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "animevae", "demo", "--run", run, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 240
        while True:
            if proc.poll() is not None:
                pytest.fail(f"animevae demo exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"animevae demo did not answer on {url} within 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def page(demo_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 900})
        pg.set_default_timeout(90_000)
        pg.goto(demo_url)
        pg.get_by_text("animevae demo").wait_for()
        yield pg
        browser.close()


def _image_bytes(page, selector: str) -> tuple[str, bytes]:
    img = page.locator(f"{selector} img")
    img.wait_for()
    src = img.get_attribute("src")
    response = page.request.get(src)
    assert response.ok, src
    return src, response.body()


def _wait_new_src(page, selector: str, old: str | None) -> None:
    page.wait_for_function(
        "([sel, old]) => { const i = document.querySelector(sel + ' img'); return i && i.complete && i.naturalWidth > 0 && i.src !== old; }",
        arg=[selector, old],
    )


def _decoded(data: bytes) -> np.ndarray:
    import io

    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def test_browser_generate(page):
    page.get_by_role("tab", name="Generate").click()
    page.get_by_role("button", name="Generate").click()
    _wait_new_src(page, "#generate-output", None)
    src, data = _image_bytes(page, "#generate-output")
    grid = _decoded(data)
    assert grid.shape == (2 + 4 * 98, 2 + 4 * 98, 3)  # 16 faces, 4 x 4
    assert grid[2:98, 2:98].std() > 5  # a face, not a blank tile
    # another seed, other faces
    page.locator("#generate-seed input").fill("7")
    page.get_by_role("button", name="Generate").click()
    _wait_new_src(page, "#generate-output", src)
    assert _image_bytes(page, "#generate-output")[1] != data


def test_browser_slider_changes_the_face(page):
    page.get_by_role("tab", name="Explore the latent space").click()
    src0, before = _image_bytes(page, "#explore-output")
    assert _decoded(before).shape == (96, 96, 3)
    slider = page.locator("#pc-1 input[type=range]")
    slider.focus()
    for _ in range(10):  # drag the first slider to +1.0 with the keyboard, as a user would
        page.keyboard.press("ArrowRight")
    _wait_new_src(page, "#explore-output", src0)
    assert page.locator("#pc-1 input[type=number]").input_value() == "1"
    src1, after = _image_bytes(page, "#explore-output")
    assert after != before
    assert np.abs(_decoded(after).astype(int) - _decoded(before).astype(int)).mean() > 0.5
    # typing a value into a slider's box redraws as well
    box = page.locator("#pc-2 input[type=number]")
    box.fill("-2.5")
    box.press("Enter")
    _wait_new_src(page, "#explore-output", src1)
    assert _image_bytes(page, "#explore-output")[1] not in (before, after)


def test_browser_reconstructs_an_uploaded_face(page, tmp_path):
    page.get_by_role("tab", name="Reconstruct").click()
    face = face_png(tmp_path / "my_face.png", 11, size=128)
    page.locator("#reconstruct-upload input[type=file]").set_input_files(str(face))
    _wait_new_src(page, "#reconstruct-output", None)
    _, seen = _image_bytes(page, "#reconstruct-input")
    _, recon = _image_bytes(page, "#reconstruct-output")
    expected = np.asarray(Image.fromarray(render_face(11, size=128)).resize((96, 96), Image.BILINEAR))
    assert np.array_equal(_decoded(seen), expected)  # the upload, as the model sees it
    out = _decoded(recon)
    assert out.shape == (96, 96, 3) and out.std() > 2
    # a reconstruction resembles its input more than a flat grey picture does
    assert np.abs(out.astype(int) - expected).mean() < np.abs(128 - expected.astype(int)).mean()


def test_browser_interpolates_and_refuses_a_non_image(page, tmp_path):
    page.get_by_role("tab", name="Interpolate").click()
    page.locator("#interp-a input[type=file]").set_input_files(str(face_png(tmp_path / "a.png", 1)))
    bad = tmp_path / "holiday.png"
    bad.write_text("these are not pixels")
    page.locator("#interp-b input[type=file]").set_input_files(str(bad))
    page.locator("#interp-b").get_by_label("holiday.png").wait_for()
    page.get_by_role("button", name="Interpolate").click()
    page.get_by_text("holiday.png is not an image this demo can read").wait_for()
    page.locator("#interp-b").get_by_role("button", name="Clear").click()
    page.locator("#interp-b input[type=file]").set_input_files(str(face_png(tmp_path / "b.png", 2)))
    page.locator("#interp-b").get_by_label("b.png").wait_for()
    page.get_by_role("button", name="Interpolate").click()
    _wait_new_src(page, "#interpolate-output", None)
    strip = _decoded(_image_bytes(page, "#interpolate-output")[1])
    assert strip.shape == (2 + 98, 2 + 10 * 98, 3)  # A, 8 steps, B
    assert np.array_equal(strip[2:98, 2:98], render_face(1))


def test_browser_screenshot(page, demo_url, tmp_path):
    """A fresh page's Generate tab after one click, as the README shows it: a PNG of the whole viewport (with
    ANIMEVAE_SCREENSHOT=path, copied there too)."""
    fresh = page.context.browser.new_page(viewport={"width": 1280, "height": 760})  # no toasts or state from the other tests
    fresh.set_default_timeout(90_000)
    fresh.goto(demo_url)
    fresh.get_by_role("button", name="Generate").click()
    _wait_new_src(fresh, "#generate-output", None)
    fresh.locator("#generate-output [data-testid='status-tracker'].hide").wait_for(state="attached")  # not pending
    fresh.wait_for_timeout(500)
    shot = tmp_path / "demo.png"
    fresh.screenshot(path=shot)
    fresh.close()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    with Image.open(shot) as im:
        assert im.size == (1280, 760)
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.std() > 10  # the page drawn (text, controls, faces), not a blank viewport
    if target := os.environ.get("ANIMEVAE_SCREENSHOT"):
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, target)
