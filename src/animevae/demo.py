"""``animevae demo --run R``: a Gradio web app on top of a trained run.

Four tabs: generate a grid (any sampler; the run's own by default), explore the top principal directions of the
stored latent means with sliders (the face redraws as they move), interpolate between two uploaded
faces, and reconstruct an uploaded face. Uploads are checked before anything decodes them: at most
10 MB, sides of at most 4096 px (read from the header), and something ``decode_image`` accepts as an
image. One computation runs at a time; at most QUEUE_SIZE requests wait, more are refused.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from . import runs
from .config import SAMPLER_NAMES
from .errors import UserError
from .images import make_grid
from .sampling.generate import DEFAULT_MIX_K, decode_latents, default_sampler, load_model, make_sampler, needs_fit, reconstruct_images

MAX_UPLOAD_BYTES = 10 * 1000 * 1000
MAX_UPLOAD_SIDE = 4096
NUM_DIRECTIONS = 6
QUEUE_SIZE = 32  # requests waiting for the model; beyond this the demo answers "the queue is full"
SLIDER_RANGE = 3.0  # standard deviations along a direction
# faces are 96 px: show them larger, with crisp pixels
CSS = (
    ".face-image img, .grid-image img { width: 100% !important; height: 100% !important; object-fit: contain; }\n"
    ".face-image img { image-rendering: pixelated; }"
)


class UploadError(ValueError):
    """An upload the demo refuses; the message is shown to the user as is."""


def read_upload(path, size: int) -> np.ndarray:
    """An uploaded file -> 3 x size x size uint8, or UploadError saying why not."""
    from PIL import Image, UnidentifiedImageError

    from .data.decode import decode_image

    if path is None:
        raise UploadError("Upload a face image first.")
    path = Path(path if isinstance(path, (str, os.PathLike)) else path.name)  # a path, or a tempfile-like upload
    try:
        nbytes = path.stat().st_size
    except OSError:
        raise UploadError("The upload could not be read; please upload it again.") from None
    if nbytes > MAX_UPLOAD_BYTES:
        raise UploadError(f"{path.name} is {nbytes / 1e6:.1f} MB; upload an image of at most {MAX_UPLOAD_BYTES // 1_000_000} MB.")
    data = path.read_bytes()
    try:  # the header alone: refuse huge images before decoding their pixels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            w, h = Image.open(io.BytesIO(data)).size
    except Image.DecompressionBombError:  # Pillow refuses it from the header alone
        raise UploadError(f"{path.name} has far too many pixels; upload an image with sides of at most {MAX_UPLOAD_SIDE} px.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise UploadError(f"{path.name} is not an image this demo can read (use PNG, JPEG, WebP, BMP or GIF).") from None
    if max(w, h) > MAX_UPLOAD_SIDE:
        raise UploadError(f"{path.name} is {w}x{h} px; upload an image with sides of at most {MAX_UPLOAD_SIDE} px.")
    arr, reason = decode_image(data, size, convert_to_rgb=True)
    if arr is None:
        why = {
            "skipped_undecodable": "it could not be decoded (damaged or truncated?)",
            "skipped_too_small": "it is smaller than 8 px on a side",
            "skipped_too_large": "it has more than 40 megapixels",
            "skipped_not_rgb": "it could not be converted to RGB",
            "skipped_not_a_file": "it is not a regular file",
        }.get(reason, reason)
        raise UploadError(f"{path.name} was skipped: {why}.")
    return arr


def _hwc(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


class DemoModel:
    """Everything the app computes, without Gradio: testable on its own."""

    def __init__(self, run: str, device: str = "cpu"):
        self.run = str(run)
        self.model = load_model(self.run, device)
        self.config = self.model.config
        self.mu = runs.load_latents(self.run).mu
        self.mean = self.mu.mean(0)
        q = max(1, min(NUM_DIRECTIONS, self.mu.shape[0] - 1, self.mu.shape[1]))
        with torch.random.fork_rng():  # pca_lowrank is randomized: the same directions every launch
            torch.manual_seed(0)
            _, s, v = torch.pca_lowrank(self.mu, q=q, center=True)
        self.directions = v[:, :q].T.contiguous()  # q x latent, unit length
        self.stds = s[:q] / max(1, self.mu.shape[0] - 1) ** 0.5  # spread of the latents along each
        self.explained = (s[:q] ** 2 / ((self.mu - self.mean) ** 2).sum().clamp_min(1e-12)).tolist()
        self._samplers: dict = {}
        self.default_sampler = default_sampler(str(run))
        self.sampler(self.default_sampler)  # ready before the first click (fitted here, saying so, if training did not)

    def sampler(self, name: str, mix_k=DEFAULT_MIX_K, temperature: float = 1.0):
        key = (name, str(mix_k), float(temperature))
        if key not in self._samplers:  # make_sampler reads the latents file: once per setting, not per click
            self._samplers[key] = make_sampler(name, self.model, self.run, mix_k, temperature)
        return self._samplers[key]

    def decode(self, z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Faces of latents; a hierarchical model's finer groups from ``generator``'s draw, else their priors' means (smooth sliders)."""
        return decode_latents(self.model, z, generator=generator, temperatures=None if generator is not None else 0)

    def needs_fit(self, sampler: str) -> bool:
        """Whether the first grid from ``sampler`` waits for its fit (a sampler other than the run's own, never fitted)."""
        return (sampler, str(DEFAULT_MIX_K), 1.0) not in self._samplers and needs_fit(self.run, sampler)

    def generate_grid(self, sampler: str, count: int, seed: int, mix_k, temperature: float) -> np.ndarray:
        if not 1 <= int(count) <= 256:
            raise UserError(f"faces must be between 1 and 256, got {count}")
        mix_k = int(mix_k) if sampler == "mix" else DEFAULT_MIX_K
        temperature = float(temperature) if sampler == "prior" else 1.0
        gen = torch.Generator().manual_seed(int(seed or 0))
        return make_grid(self.decode(self.sampler(sampler, mix_k, temperature).sample(int(count), gen), gen))

    def base_latent(self, base: str, seed: int) -> torch.Tensor:
        if base == "mean face":
            return self.mean
        return self.sampler("mix").sample(1, torch.Generator().manual_seed(int(seed or 0)))[0]

    def explore(self, base: str, seed: int, *values: float) -> np.ndarray:
        """The base latent moved ``values[i]`` standard deviations along principal direction i."""
        z = self.base_latent(base, seed).clone()
        for i, value in enumerate(values[: len(self.directions)]):
            z += float(value) * self.stds[i] * self.directions[i]
        return _hwc(self.decode(z[None]))[0]

    def encode(self, image: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(image).float().div(255)[None]
        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model.encode(x.to(device)).mu.float().cpu()[0]

    def reconstruct(self, path) -> tuple[np.ndarray, np.ndarray]:
        image = read_upload(path, self.config.image_size)
        return image.transpose(1, 2, 0), _hwc(reconstruct_images(self.model, torch.from_numpy(image)[None]))[0]

    def interpolate(self, path_a, path_b, steps: int = 8) -> np.ndarray:
        a = read_upload(path_a, self.config.image_size)
        b = read_upload(path_b, self.config.image_size)
        za, zb = self.encode(a), self.encode(b)
        t = torch.linspace(0, 1, int(steps))[:, None]
        faces = self.decode((1 - t) * za + t * zb)
        ends = torch.from_numpy(np.stack([a, b]))
        row = torch.cat([ends[:1], faces, ends[1:]])  # input A, the path, input B
        return make_grid(row, nrow=len(row))


def picture(label: str, elem_id: str, height: int | None = None, elem_classes: str | None = "face-image", value=None):
    """An output image of the demo: numpy in, PNG to the browser, not editable."""
    import gradio as gr

    return gr.Image(label=label, type="numpy", format="png", interactive=False, height=height, elem_id=elem_id, elem_classes=elem_classes, value=value)


def build_app(run, device: str = "cpu"):
    """The Gradio Blocks app for ``run`` (a run folder or Hub repo id)."""
    import gradio as gr

    demo_model = DemoModel(run, device)
    cfg = demo_model.config

    def guarded(fn):
        def inner(*args):
            try:
                return fn(*args)
            except (UploadError, UserError) as e:
                raise gr.Error(str(e), title="Cannot do that", print_exception=False) from None

        return inner

    with gr.Blocks(title=f"animevae: {Path(str(run)).name}", analytics_enabled=False) as app:
        gr.Markdown(
            f"# animevae demo\nRun `{run}`: a VAE with a {cfg.latent_dim}-d latent for {cfg.image_size}x{cfg.image_size} faces, "
            f"{len(demo_model.mu):,} stored training latents."
        )
        with gr.Tab("Generate"):
            with gr.Row():
                with gr.Column(scale=1):
                    sampler = gr.Radio(
                        [s for s in SAMPLER_NAMES if s != "joint-gmm" or demo_model.model.hierarchical],  # joint-gmm: hierarchical runs only
                        value=demo_model.default_sampler,
                        label="sampler",
                        info="mix: weighted averages of K learned latents (the seed's); prior: z ~ N(0, T^2 I); gmm: a Gaussian mixture "
                        "fitted to the latents (joint-gmm: over the top, 12-px and 24-px latents of a hierarchical run); two-stage: a second VAE "
                        "fitted to them; diffusion: a small diffusion model fitted to them. Default: this run's best",
                    )
                    count = gr.Slider(1, 64, value=16, step=1, label="faces")
                    seed = gr.Number(value=0, precision=0, label="seed", elem_id="generate-seed")
                    mix_k = gr.Slider(1, 32, value=DEFAULT_MIX_K, step=1, label="mix K (stored latents per face)")
                    temperature = gr.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature (prior)")
                    go = gr.Button("Generate", variant="primary", elem_id="generate-button")
                grid = picture("generated faces", "generate-output", height=560, elem_classes="grid-image")

            def generate_grid(name, *rest):
                if demo_model.needs_fit(name):  # say so at once: the grid waits for the fit (once; it is kept in the run)
                    gr.Info(f"{name}: fitting it to this run's {len(demo_model.mu):,} latents first (once: it is kept in the run folder)")
                return demo_model.generate_grid(name, *rest)

            go.click(guarded(generate_grid), [sampler, count, seed, mix_k, temperature], grid, api_name="generate")

        with gr.Tab("Explore the latent space"):
            gr.Markdown(
                f"The top {len(demo_model.directions)} principal directions of the stored latent means "
                "(torch.pca_lowrank). Each slider moves the face that many standard deviations along one."
            )
            with gr.Row():
                with gr.Column(scale=1):
                    base = gr.Radio(["mean face", "seed face"], value="mean face", label="start from")
                    base_seed = gr.Number(value=0, precision=0, label="seed (for 'seed face')")
                    sliders = [
                        gr.Slider(
                            -SLIDER_RANGE,
                            SLIDER_RANGE,
                            value=0.0,
                            step=0.1,
                            label=f"direction {i + 1} ({100 * demo_model.explained[i]:.1f}% of the variance)",
                            elem_id=f"pc-{i + 1}",
                        )
                        for i in range(len(demo_model.directions))
                    ]
                    reset = gr.Button("Reset sliders")
                face = picture("face", "explore-output", height=384, value=demo_model.explore("mean face", 0, *[0.0] * len(sliders)))
            inputs = [base, base_seed, *sliders]
            for component in inputs:
                component.change(guarded(demo_model.explore), inputs, face, trigger_mode="always_last", show_progress="hidden")
            reset.click(lambda: [0.0] * len(sliders), None, sliders)

        with gr.Tab("Interpolate"):
            gr.Markdown("Upload two faces: both are encoded, and the decoder draws the path between their latents.")
            with gr.Row():
                file_a = gr.File(label="face A", file_types=["image"], type="filepath", elem_id="interp-a")
                file_b = gr.File(label="face B", file_types=["image"], type="filepath", elem_id="interp-b")
            steps = gr.Slider(3, 16, value=8, step=1, label="steps")
            interp_go = gr.Button("Interpolate", variant="primary", elem_id="interpolate-button")
            strip = picture("A, the path, B", "interpolate-output", elem_classes=None)
            interp_go.click(guarded(demo_model.interpolate), [file_a, file_b, steps], strip, api_name="interpolate")

        with gr.Tab("Reconstruct"):
            gr.Markdown(
                f"Upload a face (at most {MAX_UPLOAD_BYTES // 1_000_000} MB, {MAX_UPLOAD_SIDE} px a side): it is resized to "
                f"{cfg.image_size}x{cfg.image_size}, encoded to its latent mean and decoded again."
            )
            upload = gr.File(label="your face", file_types=["image"], type="filepath", elem_id="reconstruct-upload")
            with gr.Row():
                seen = picture("as the model sees it", "reconstruct-input", height=288)
                recon = picture("reconstruction", "reconstruct-output", height=288)
            upload.change(guarded(lambda p: (None, None) if p is None else demo_model.reconstruct(p)), upload, [seen, recon], api_name="reconstruct")
    return app


def launch(run, host: str = "127.0.0.1", port: int = 7860, share: bool = False) -> None:
    """Build the app for ``run`` and serve it until interrupted."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("the demo needs Gradio: pip install gradio") from None
    if not 0 < port < 65536:
        raise UserError(f"--port must be between 1 and 65535, got {port}")
    app = build_app(run)
    try:
        # one computation at a time (the model runs on all cores), at most QUEUE_SIZE waiting: more are refused with a message
        app.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE).launch(
            server_name=host, server_port=port, share=share, max_file_size=MAX_UPLOAD_BYTES, ssr_mode=False, footer_links=[], show_error=True, css=CSS
        )
    except OSError as e:
        raise UserError(f"cannot serve the demo on {host}:{port} ({str(e).splitlines()[0][:120]}); pick another --port") from None
