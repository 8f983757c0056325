"""Share a trained run on the Hugging Face Hub: a model card with Hub metadata, then one upload.

    animevae push --run runs/anime --repo-id USER/NAME

stages, in a temporary folder, everything another person needs to generate faces from the repo id
(``animevae generate --run USER/NAME`` or ``VAE.from_pretrained("USER/NAME")``):

    model.safetensors  config.json  latents.safetensors  metrics.jsonl  loss.png
    sample_grid.png    README.md (the model card)
    gmm_10_full.safetensors, two_stage.safetensors, diffusion.safetensors: the samplers fitted on these latents

(the fitted samplers, so that nobody who generates from the repo waits for a fit: ``generate`` checks
them against the sha256 of the latents they were fitted on, as it does in a run folder),

then creates the repo (``HfApi.create_repo``, ``exist_ok``) and uploads the folder in one commit
(``HfApi.upload_folder``). Only safetensors, JSON and PNGs go up: nothing a loader would execute.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
from pathlib import Path

from . import runs
from .errors import UserError

CARD_TAGS = ["vae", "anime", "image-generation", "pytorch"]
GRID = "sample_grid.png"
UPLOADED = (runs.WEIGHTS, runs.CONFIG, runs.LATENTS, runs.METRICS, "loss.png")  # + GRID and README.md
REQUIRED = (runs.WEIGHTS, runs.CONFIG, runs.LATENTS)


def _run_folder(run) -> Path:
    folder = Path(run).expanduser()
    if not folder.is_dir():
        raise UserError(f"--run {run}: no such run folder (push uploads a local run folder)")
    missing = [name for name in REQUIRED if not (folder / name).is_file()]
    if missing:
        raise UserError(f"--run {run}: no {', '.join(missing)} here; is this a finished animevae run folder?")
    return folder


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        repo_id_ok = False
    else:
        repo_id_ok = repo_id.count("/") == 1
    if not repo_id_ok:
        raise UserError(f"--repo-id {repo_id!r}: expected USER/NAME (letters, digits, '-', '_', '.')")


def hub_dataset_id(config: dict) -> str | None:
    """The Hub dataset a run was trained on, or None for local files and the built-in faces."""
    source = (config.get("data_stats") or {}).get("source") or {}
    if source.get("kind") == "hub" and source.get("name"):
        return str(source["name"])
    return None


def _fmt(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def _sample_grid(folder: Path, dest: Path) -> None:
    """64 faces (seed 0) from the run's own sampler (its preset's best); the newest epoch grid for a mix-sampler run that has one."""
    from .sampling.generate import decode_latents, default_sampler, load_model, make_sampler

    name = default_sampler(str(folder))
    samples = sorted((folder / "samples").glob("epoch_*.png")) if (folder / "samples").is_dir() else []
    if samples and name == "mix":
        shutil.copyfile(samples[-1], dest)
        return
    import torch

    from .images import save_grid

    model = load_model(str(folder))
    z = make_sampler(name, model, str(folder)).sample(64, torch.Generator().manual_seed(0))
    save_grid(decode_latents(model, z), dest)


def card_text(config: dict, metrics: list[dict], repo_id: str, parameters: int | None = None, evaluation: dict | None = None) -> str:
    """The model card (YAML front matter + markdown) for a run's config.json and metrics.jsonl, with the realism
    ladder of its evaluation.json when ``animevae evaluate`` wrote one."""
    from huggingface_hub import ModelCard, ModelCardData

    dataset = hub_dataset_id(config)
    data = ModelCardData(
        library_name="animevae", tags=list(CARD_TAGS), datasets=[dataset] if dataset else None, license="mit", pipeline_tag="unconditional-image-generation"
    )
    model = config.get("model") or config
    train = config.get("train") or {}
    size, chans, latent = model.get("image_size", 96), model.get("in_channels", 3), model.get("latent_dim", 256)
    pixels = size * size * chans
    last = metrics[-1] if metrics else {}
    held = last.get("heldout_loss")
    stats = config.get("data_stats") or {}
    source = stats.get("source") or {}
    counts = stats.get("counts") or {}
    split = config.get("split") or {}
    command = config.get("command") or "(not recorded)"
    params = f"{parameters:,} parameters, " if parameters else ""
    sampler = train.get("sampler") or "mix"
    if dataset:
        data_line = f"[{dataset}](https://huggingface.co/datasets/{dataset})"
    else:
        data_line = f"{source.get('name', 'unknown')} ({source.get('kind', 'local')} data, not on the Hub)"
    skipped = ", ".join(f"{k.removeprefix('skipped_').replace('_', ' ')} {v}" for k, v in counts.items() if k != "kept")

    rows = [
        ("epochs", f"{len(metrics)} of {train.get('epochs', '?')} planned"),
        ("held-out loss per image (final epoch)", f"{_fmt(held)} nats" if held is not None else "n/a (no held-out images)"),
        ("held-out loss per dimension", f"{_fmt(held / pixels, 4)} nats (over {pixels:,} = {chans}x{size}x{size} pixel values)" if held is not None else "n/a"),
        ("held-out reconstruction / KL per image", f"{_fmt(last.get('heldout_recon'))} / {_fmt(last.get('heldout_kl'))} nats"),
        ("training loss per image (final epoch)", f"{_fmt(last.get('loss'))} nats"),
        ("images/s (final epoch)", _fmt(last.get("images_per_s"), 0)),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    from .evaluation.report import ladder_markdown
    from .evaluation.two_sample import PASSES_AT

    ladder = ladder_markdown(evaluation or {})
    if ladder:
        held = (evaluation.get("data") or {}).get("evaluated_on", "held-out faces")
        ladder = (
            "\n## How real the faces look\n\nThe realism ladder of `animevae evaluate` (on "
            f"{held}): a small classifier trained until it stops improving, scored on faces it never saw, at telling "
            "this model's faces from real ones with both shrunk to each size (0.5 = it cannot; at most "
            f"{PASSES_AT:.2f} passes).\n\n{ladder}\n"
        )

    body = f"""
# {repo_id}

A convolutional variational autoencoder (VAE) for {size}x{size} anime faces, trained with
the `animevae` package. The encoder maps a face to a {latent}-d latent (mean and log-variance),
the decoder maps a latent back to a face ({params}{model.get("num_layers", 5)} conv layers each way).
New faces come from mixing the learned latents of the training images (`latents.safetensors`, the
seed notebook's sampler), from the N(0, I) prior, or from a density fitted to the latents (gmm,
two-stage, diffusion). This run's sampler (the grid below, and `animevae generate`'s default): **{sampler}**.

![faces generated by this model]({GRID})

## How to load it in three lines

```python
from animevae import VAE, PriorSampler
model = VAE.from_pretrained("{repo_id}").eval()
faces = model.generate(PriorSampler(model.config.latent_dim).sample(16))  # uint8 16 x 3 x {size} x {size}
```

Or from the command line, with the seed's latent-mix sampler (it downloads `latents.safetensors` too):

```bash
animevae generate --run {repo_id} --n 100 --out faces/   # --sampler {sampler}
```

## Training

```bash
{command}
```

| | |
|---|---|
{table}

Data: {data_line}: kept {counts.get("kept", "?")} images (skipped: {skipped or "none"}); trained on
{split.get("train", "?")}, held out {split.get("heldout", "?")}. Batch {train.get("batch_size", "?")},
Adam lr {train.get("lr", "?")}, KL weight beta {train.get("beta", "?")}.

The loss is per image: BCE-with-logits summed over all {pixels:,} pixel values plus beta times the
KL divergence summed over the {latent} latent dimensions, in nats.

## Files

| file | what |
|---|---|
| `model.safetensors` | the weights (safetensors: loading cannot run code) |
| `config.json` | model settings at top level (what `from_pretrained` reads), plus the training and data settings |
| `latents.safetensors` | `mu`, `logvar` and `row_id` of every training image: what the mix sampler averages |
| `metrics.jsonl` | per-epoch losses (per image and per dimension), held-out loss, images/s |
| `loss.png` | training and held-out loss curves |
| `{GRID}` | faces generated at the end of training |
{ladder}"""
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}").content


def _evaluation(folder: Path) -> dict | None:
    """The run's evaluation.json for the card's ladder; one that cannot be read or has no ladder is left out, said why."""
    from .evaluation.report import ladder_markdown

    path = folder / "evaluation.json"
    if not path.is_file():
        return None
    try:
        evaluation = runs.read_json(path)
        ladder_markdown(evaluation)
    except (UserError, KeyError, TypeError, AttributeError) as e:
        print(f"note: {path}: not shown on the model card ({e if isinstance(e, UserError) else 'not an evaluate report'})", file=sys.stderr)
        return None
    return evaluation


def write_model_card(run, repo_id: str, out: str | Path | None = None) -> Path:
    """Write README.md (the model card) and the sample grid it shows into ``out`` (default: the run folder)."""
    from .models.vae import VAE, count_parameters, model_config_from_json

    _check_repo_id(repo_id)
    folder = _run_folder(run)
    out = Path(out) if out is not None else folder
    out.mkdir(parents=True, exist_ok=True)
    config = runs.read_json(folder / runs.CONFIG)
    parameters = count_parameters(VAE(model_config_from_json(config, folder / runs.CONFIG)))
    _sample_grid(folder, out / GRID)
    path = out / "README.md"
    runs.write_bytes(path, card_text(config, runs.read_metrics(folder), repo_id, parameters, _evaluation(folder)).encode())
    return path


def stage(run, repo_id: str, folder: str | Path) -> list[str]:
    """Copy what is uploaded into ``folder`` and write the card; returns the file names."""
    src = _run_folder(run)
    folder = Path(folder)
    from .sampling.generate import fitted_files

    names = []
    for name in UPLOADED:
        if (src / name).is_file():
            shutil.copyfile(src / name, folder / name)
            names.append(name)
    write_model_card(src, repo_id, folder)  # its grid comes from the run's own sampler: fitted now if it was not yet
    for path in fitted_files(src):  # only those fitted on the latents that go up with them
        shutil.copyfile(path, folder / path.name)
        names.append(path.name)
    return sorted(names + [GRID, "README.md"])


def _hub_error(e: Exception, repo_id: str, what: str) -> UserError:
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(e, OfflineModeIsEnabled):
        return UserError(f"cannot push to {repo_id}: HF_HUB_OFFLINE is set; unset it to upload")
    if isinstance(e, HfHubHTTPError) and e.response is not None:
        status = e.response.status_code
        if status == 401:
            return UserError(f"cannot push to {repo_id}: not logged in to the Hub (HTTP 401); run `hf auth login` or pass --token")
        if status == 403:
            return UserError(f"cannot push to {repo_id}: this token may not write there (HTTP 403); use a token with write access to {repo_id.split('/')[0]}")
        first = (str(e).splitlines() or [""])[0][:160]
        return UserError(f"cannot push to {repo_id}: the Hub refused to {what} (HTTP {status}: {first})")
    first = (str(e).splitlines() or [type(e).__name__])[0][:120]
    return UserError(
        f"cannot push to {repo_id}: cannot reach the Hugging Face Hub at {constants.ENDPOINT} while trying to {what} "
        f"({type(e).__name__}: {first}); check your connection"
    )


def push(run, repo_id: str, private: bool = False, token: str | None = None, revision: str | None = None) -> str:
    """Create ``repo_id`` (if needed) and upload the run's files + a model card in one commit; returns the commit URL."""
    from huggingface_hub import HfApi

    _check_repo_id(repo_id)
    _run_folder(run)
    api = HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="animevae-push-") as tmp:
        stage(run, repo_id, tmp)
        step = "create the repo"
        try:
            api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision:
                step = f"create the branch {revision}"
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            step = "upload the files"
            info = api.upload_folder(
                repo_id=repo_id, folder_path=tmp, repo_type="model", revision=revision, commit_message=f"Upload animevae run {Path(run).name}"
            )
        except Exception as e:  # network and HTTP errors of every kind, across client versions
            raise _hub_error(e, repo_id, step) from None
    return str(getattr(info, "commit_url", info))
