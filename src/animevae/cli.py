"""``animevae`` command line: argument parsing only; each command calls one library function."""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys

from .errors import Interrupted, UserError
from .samplers import DEFAULT_MIX_K

DEFAULT_HUB_DATASET = "DrishtiSharma/Anime-Face-Dataset"


S = argparse.SUPPRESS  # train flags default to "not given", so a --config file can supply them


def _add_data_args(p: argparse.ArgumentParser, defaults: bool = True, required_help: str | None = None) -> None:
    """The data-source flags; ``required_help`` makes --data required (no Hub default) with that help."""
    d = (lambda v: v) if defaults else (lambda v: S)
    g = p.add_argument_group("data")
    if required_help:
        g.add_argument("--data", dest="source", required=True, help=required_help)
    else:
        g.add_argument("--data", dest="source", default=d(DEFAULT_HUB_DATASET), help=f"Hub dataset id, parquet file/glob/folder, image folder, or 'builtin' (default: {DEFAULT_HUB_DATASET})")
    g.add_argument("--split", default=d("train"), help="Hub dataset split (default: train)")
    g.add_argument("--revision", default=d(None), help="Hub dataset revision to pin (branch, tag or commit)")
    g.add_argument("--image-column", default=d(None), help="column holding the images (default: image, img, or the first Image feature)")
    g.add_argument("--limit", type=int, default=d(None), help="use only the first N images")
    g.add_argument("--convert-to-rgb", action="store_true", default=d(False), help="convert grayscale/RGBA/palette/CMYK images instead of skipping them (the seed skips)")
    g.add_argument("--builtin-count", type=int, default=d(4000), help="how many procedural faces --data builtin makes (default: 4000)")
    g.add_argument("--no-cache", dest="cache", action="store_false", default=d(True), help="decode into memory instead of the on-disk cache")
    g.add_argument("--cache-dir", default=d(None), help="where decoded images are cached (default: $ANIMEVAE_CACHE or ~/.cache/animevae)")
    g.add_argument("--workers", type=int, default=d(None), help="decode processes (default: all cores)")


def _pick(a, cls) -> dict:
    return {f: getattr(a, f) for f in cls.__dataclass_fields__ if hasattr(a, f)}


def _read_config_file(path: str) -> dict:
    """A TOML (or JSON) file with [model], [train] and [data] tables, or flat keys of any of them."""
    import json
    import tomllib

    from .config import DataConfig, ModelConfig, TrainConfig

    try:
        raw = open(path, "rb").read()
        data = json.loads(raw) if path.endswith(".json") else tomllib.loads(raw.decode())
    except FileNotFoundError:
        raise UserError(f"--config {path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise UserError(f"--config {path}: cannot parse it ({str(e).splitlines()[0]})") from None
    sections = {"model": {}, "train": {}, "data": {}}
    owners = {"model": ModelConfig, "train": TrainConfig, "data": DataConfig}
    for key, value in data.items():
        if key in sections and isinstance(value, dict):
            sections[key].update(value)
            continue
        owner = next((name for name, cls in owners.items() if key in cls.__dataclass_fields__), None)
        if owner is None:
            raise UserError(f"--config {path}: unknown setting '{key}'")
        sections[owner][key] = value
    for name, cls in owners.items():
        unknown = sorted(set(sections[name]) - set(cls.__dataclass_fields__))
        if unknown:
            raise UserError(f"--config {path}: unknown setting(s) in [{name}]: {', '.join(unknown)}")
    return sections


def _configs(a):
    """Defaults <- --config file <- command-line flags, validated field by field."""
    from .config import PRESETS, DataConfig, ModelConfig, TrainConfig, from_dict
    from .train import FINETUNE_LR

    sections = _read_config_file(a.config) if getattr(a, "config", None) else {"model": {}, "train": {}, "data": {}}
    model = {**sections["model"], **_pick(a, ModelConfig)}
    train = {**PRESETS[getattr(a, "preset", "seed")], **sections["train"], **_pick(a, TrainConfig)}
    data = {**sections["data"], **_pick(a, DataConfig)}
    if "image_size" in model and "num_layers" not in model and isinstance(model["image_size"], int) and model["image_size"] > 0:
        k = math.log2(model["image_size"] / 3)
        model["num_layers"] = int(k) if k == int(k) and k >= 1 else 5
    if "lr" not in train and train.get("init_from"):
        train["lr"] = FINETUNE_LR
    if train.get("freeze") and not train.get("init_from"):
        raise UserError("--freeze only makes sense with --init-from (freezing a random network)")
    where = f"--config {a.config}" if getattr(a, "config", None) else "settings"
    return from_dict(ModelConfig, model, where), from_dict(TrainConfig, train, where), from_dict(DataConfig, data, where)


def _resumed_configs(a):
    """--resume: the run's own saved configs; only --epochs may change (to train longer)."""
    from .config import DataConfig, ModelConfig, TrainConfig, from_dict
    from .runs import read_json

    path = os.path.join(a.resume, "config.json")
    if not os.path.isfile(path):
        raise UserError(f"--resume {a.resume}: no config.json there; is it an animevae run folder?")
    saved = read_json(path)
    given = {k for k, v in vars(a).items() if k not in ("func", "command", "resume", "quiet", "epochs") and not (k == "config" and v is None)}
    if given:
        raise UserError(f"--resume continues a run exactly as configured; only --epochs can change (got --{sorted(given)[0].replace('_', '-')})")
    train = dict(saved["train"])
    if hasattr(a, "epochs"):
        train["epochs"] = a.epochs
    return from_dict(ModelConfig, saved["model"], path), from_dict(TrainConfig, train, path), from_dict(DataConfig, saved["data"], path), saved.get("command")


def cmd_train(a) -> None:
    from .train import train

    command = "animevae " + shlex.join(sys.argv[1:])
    if a.resume:
        model_cfg, train_cfg, data_cfg, command = _resumed_configs(a)
        out = a.resume
    else:
        model_cfg, train_cfg, data_cfg = _configs(a)
        out = getattr(a, "out", "runs/anime")
    out = train(model_cfg, train_cfg, data_cfg, out, overwrite=getattr(a, "overwrite", False), progress=not a.quiet,
                command=command, resume=bool(a.resume))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run written to {out}  (generate faces: animevae generate --run {shlex.quote(str(out))})")


def cmd_generate(a) -> None:
    from .sample import generate

    out = generate(a.run, n=a.n, out=a.out, sampler=a.sampler, mix_k=a.mix_k, temperature=a.temperature, seed=a.seed, device=a.device, revision=a.revision,
                   gmm_components=a.gmm_components, gmm_covariance=a.gmm_covariance)
    print(f"{a.n} faces written to {out} (grid: {out / 'grid.png'})")


def cmd_cache(a) -> None:
    from .config import DataConfig
    from .data.cache import load_images

    if not a.cache:
        raise UserError("`animevae cache` builds the cache; --no-cache contradicts it")
    faces = load_images(DataConfig(**_pick(a, DataConfig)), a.image_size)
    c = faces.stats["counts"]
    print(f"{faces.path}: {c['kept']} images kept; skipped: non-RGB {c['skipped_not_rgb']}, undecodable {c['skipped_undecodable']}, "
          f"too small {c['skipped_too_small']}, too large {c['skipped_too_large']}")


def cmd_push(a) -> None:
    from .hub import push

    url = push(a.run, a.repo_id, private=a.private, token=a.token, revision=a.revision)
    print(f"pushed {a.run} to {a.repo_id}: {url}  (anyone can now run: animevae generate --run {a.repo_id})")


def cmd_demo(a) -> None:
    from .demo import launch

    launch(a.run, host=a.host, port=a.port, share=a.share)


def cmd_info(a) -> None:
    from .info import summarize

    print(summarize(a.run))


def _data_config(a, limit=True):
    from .config import DataConfig

    fields = _pick(a, DataConfig)
    if not limit:
        fields["limit"] = None
    return DataConfig(**fields)


def cmd_reconstruct(a) -> None:
    from .explore import reconstruct

    out = reconstruct(a.run, _data_config(a), n=a.n, out=a.out, device=a.device)
    print(f"inputs and reconstructions written to {out}")


def cmd_interpolate(a) -> None:
    from .explore import interpolate

    out = interpolate(a.run, out=a.out, a=a.a, b=a.b, seed=a.seed, steps=a.steps, mode=a.mode, device=a.device)
    print(f"interpolation written to {out} (interpolation.png, interpolation_*.gif)")


def cmd_traverse(a) -> None:
    from .explore import traverse

    out = traverse(a.run, out=a.out, dim=a.dim, pc=a.pc, span=a.range, steps=a.steps, images=a.image, rows=a.rows, seed=a.seed, device=a.device)
    print(f"traversal written to {out}")


def cmd_evaluate(a) -> None:
    from .evaluate import evaluate

    _, out = evaluate(a.run, _data_config(a, limit=False), out=a.out, limit=a.limit, k=a.k, n_samples=a.n_samples, features=a.features,
                      inception_weights=a.inception_weights, seed=a.seed, device=a.device, gmm_components=a.gmm_components,
                      gmm_covariance=a.gmm_covariance)
    print(f"metrics written to {out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animevae", description="Train a VAE on anime faces, generate new ones, fine-tune on your own.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or fine-tune) a VAE; writes a run folder every epoch",
                       description="Flags override --config, which overrides the defaults (the seed's settings).")
    t.add_argument("--config", help="TOML (or JSON) file of settings: [model], [train], [data] tables or flat keys")
    t.add_argument("--resume", help="continue this run folder from its last complete checkpoint")
    t.add_argument("--preset", default=S, choices=["seed", "quality"],
                   help="seed: the notebook's settings (default); quality: KL warm-up + free bits + EMA + reflect fill (see docs/results.md)")
    _add_data_args(t, defaults=False)
    g = t.add_argument_group("model")
    g.add_argument("--image-size", type=int, default=S, help="3*2^k pixels (default 96: the seed's)")
    g.add_argument("--num-layers", type=int, default=S, help="conv layers (default: fits --image-size; 5 for 96)")
    g.add_argument("--latent-dim", type=int, default=S, help="default 256")
    g.add_argument("--base-channels", type=int, default=S, help="default 32")
    g = t.add_argument_group("training")
    g.add_argument("--out", default=S, help="run folder (default: runs/anime)")
    g.add_argument("--overwrite", action="store_true", default=S, help="replace a run already in --out")
    g.add_argument("--epochs", type=int, default=S, help="default 100 (the seed's)")
    g.add_argument("--batch-size", type=int, default=S, help="default 64")
    g.add_argument("--lr", type=float, default=S, help="Adam learning rate (default 1e-3; 1e-4 with --init-from)")
    g.add_argument("--beta", type=float, default=S, help="weight of the KL term (default 1: the seed's)")
    g.add_argument("--seed", type=int, default=S, help="default 0")
    g.add_argument("--val-fraction", type=float, default=S, help="held-out share evaluated every epoch (default 0.05)")
    g.add_argument("--precision", default=S, choices=["auto", "fp32", "bf16", "fp16"], help="default auto")
    g.add_argument("--compile", action="store_true", default=S, help="torch.compile the model")
    g.add_argument("--device", default=S, help="auto (default), cpu, cuda, cuda:N, mps")
    g.add_argument("--keep-last", type=int, default=S, help="per-epoch copies of weights+latents to keep (default 3)")
    g.add_argument("--clean-latents", default=S, choices=["last", "every", "never"],
                   help="when every training image is re-encoded in eval mode for latents.safetensors (default last; "
                        "other epochs save the latents their training pass produced, as the seed does)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g.add_argument("--tensorboard", action="store_true", default=S, help="also log losses, images/s and sample grids to RUN/tensorboard")
    g = t.add_argument_group("checkpoints (exact resume)")
    g.add_argument("--save-every-steps", type=int, default=S, help="mid-epoch checkpoint every N steps (default off)")
    g.add_argument("--save-every-minutes", type=float, default=S, help="... and at least every M minutes (default 10); always at epoch ends")
    g.add_argument("--max-bad-steps", type=int, default=S, help="non-finite losses in a row before stopping (default 20)")
    g = t.add_argument_group("augmentation (the seed's: flip p=0.5, rotation +-10 deg)")
    g.add_argument("--no-flip", dest="hflip", action="store_false", default=S)
    g.add_argument("--rotation", type=float, default=S, help="max degrees; 0 turns rotation off (default 10)")
    g.add_argument("--rotation-fill", default=S, choices=["zeros", "border", "reflection"], help="corner fill (zeros: the seed's black)")
    g.add_argument("--interpolation", default=S, choices=["nearest", "bilinear"], help="default nearest (torchvision's)")
    g = t.add_argument_group("beyond the seed (all off by default)")
    g.add_argument("--kl-warmup-epochs", type=float, default=S, help="ramp beta from 0 over this many epochs")
    g.add_argument("--free-bits", type=float, default=S, help="nats per latent dimension not penalised")
    g.add_argument("--ema", type=float, default=S, help="EMA decay of the weights, e.g. 0.999 (saved weights are the EMA)")
    g = t.add_argument_group("fine-tuning")
    g.add_argument("--init-from", default=S, help="start from a trained run folder or Hub repo id")
    g.add_argument("--freeze", default=S, choices=["encoder", "decoder"], help="keep this half fixed while fine-tuning")
    t.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="generate new faces from a trained run")
    gen.add_argument("--run", required=True, help="run folder or Hub repo id")
    gen.add_argument("--revision", help="Hub revision to pin")
    gen.add_argument("--n", type=int, default=100)
    gen.add_argument("--out", help="output folder (default: RUN/generated)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--sampler", default="mix", choices=["mix", "prior", "gmm"],
                     help="mix: the seed's latent averaging; prior: z ~ N(0, I); gmm: a Gaussian mixture fitted to the stored latents")
    gen.add_argument("--mix-k", default=str(DEFAULT_MIX_K), help=f"stored latents one mix draws on, or 'all' (default {DEFAULT_MIX_K}: see the README's table)")
    gen.add_argument("--temperature", type=float, default=1.0, help="prior sampler's scale")
    gen.add_argument("--gmm-components", type=int, default=10, help="gmm sampler's mixture components (default 10)")
    gen.add_argument("--gmm-covariance", default="full", choices=["full", "diag"], help="gmm sampler's covariance per component (default full)")
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(func=cmd_generate)

    c = sub.add_parser("cache", help="decode and cache a data source (training does this on first use)")
    _add_data_args(c)
    c.add_argument("--image-size", type=int, default=96)
    c.set_defaults(func=cmd_cache)

    p = sub.add_parser("push", help="upload a run (weights, latents, metrics, a model card) to a Hugging Face Hub model repo")
    p.add_argument("--run", required=True, help="local run folder")
    p.add_argument("--repo-id", required=True, help="Hub model repo USER/NAME (created if missing)")
    p.add_argument("--private", action="store_true", help="create the repo private")
    p.add_argument("--revision", "--branch", dest="revision", help="branch to push to (created if missing; default: main)")
    p.add_argument("--token", help="Hub token with write access (default: the one `hf auth login` saved, or $HF_TOKEN)")
    p.set_defaults(func=cmd_push)

    d = sub.add_parser("demo", help="a web demo of a run (Gradio): generate, explore the latent space, reconstruct uploads")
    d.add_argument("--run", required=True, help="run folder or Hub repo id")
    d.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)")
    d.add_argument("--port", type=int, default=7860)
    d.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    d.set_defaults(func=cmd_demo)

    i = sub.add_parser("info", help="summarize a run folder: model, data, training, losses, files, checkpoints")
    i.add_argument("--run", required=True, help="local run folder")
    i.set_defaults(func=cmd_info)

    r = sub.add_parser("reconstruct", help="inputs beside their reconstructions (decode of the encoder mean), as one grid")
    r.add_argument("--run", required=True, help="run folder or Hub repo id")
    _add_data_args(r, required_help="images to reconstruct: Hub dataset id, parquet file/glob/folder, image folder, or 'builtin'")
    r.add_argument("--n", type=int, default=16, help="how many images (default 16)")
    r.add_argument("--out", help="PNG to write (default: RUN/reconstructions.png); rows alternate input / reconstruction")
    r.add_argument("--device", default="cpu")
    r.set_defaults(func=cmd_reconstruct)

    ip = sub.add_parser("interpolate", help="decode a path between two latents: of two images, or two random prior draws")
    ip.add_argument("--run", required=True, help="run folder or Hub repo id")
    ip.add_argument("--a", help="first image file (with --b)")
    ip.add_argument("--b", help="second image file (with --a)")
    ip.add_argument("--seed", type=int, default=0, help="without --a/--b: seed of the two prior latents (default 0)")
    ip.add_argument("--steps", type=int, default=10, help="faces along the path, ends included (default 10)")
    ip.add_argument("--mode", default="both", choices=["lerp", "slerp", "both"], help="straight line, great circle, or both (default)")
    ip.add_argument("--out", help="folder for interpolation.png and interpolation_<mode>.gif (default: RUN/interpolation)")
    ip.add_argument("--device", default="cpu")
    ip.set_defaults(func=cmd_interpolate)

    tr = sub.add_parser("traverse", help="move latents along one dimension or principal direction of the stored latents")
    tr.add_argument("--run", required=True, help="run folder or Hub repo id")
    tr.add_argument("--dim", type=int, help="latent dimension to move along (0-based)")
    tr.add_argument("--pc", type=int, help="principal direction of the stored latent means (1 = most variance; the default)")
    tr.add_argument("--range", type=float, default=3.0, help="offsets from -R to +R standard deviations of the stored latents along it (default 3)")
    tr.add_argument("--steps", type=int, default=9, help="faces per row (default 9)")
    tr.add_argument("--image", action="append", help="base face from this image file (repeatable; default: the mean latent and --rows - 1 stored ones)")
    tr.add_argument("--rows", type=int, default=4, help="base latents without --image: the mean plus rows - 1 stored latents (default 4)")
    tr.add_argument("--seed", type=int, default=0, help="which stored latents are picked as bases (default 0)")
    tr.add_argument("--out", help="PNG to write (default: RUN/traverse_pcK.png or RUN/traverse_dimD.png)")
    tr.add_argument("--device", default="cpu")
    tr.set_defaults(func=cmd_traverse)

    ev = sub.add_parser("evaluate", help="likelihood bounds, reconstruction quality, active units, and every sampler's diversity, memorisation, FID/KID",
                        description="Evaluates on the run's own held-out split when --data is its training source, else on all of --data. "
                                    "--limit caps the number of images evaluated.")
    ev.add_argument("--run", required=True, help="run folder or Hub repo id")
    _add_data_args(ev, required_help="held-out images: the run's training source (its held-out split is used), or any other data source (all of it)")
    ev.add_argument("--k", type=int, default=16, help="importance samples per image for the IWAE bound (default 16)")
    ev.add_argument("--n-samples", type=int, default=500, help="faces drawn from each sampler (default 500)")
    ev.add_argument("--features", help="FID/KID features: package.module:callable returning an nn.Module (images -> N x D); "
                                       "animevae.evaluate:pixel_features works offline but is not comparable to published FID")
    ev.add_argument("--inception-weights", help="local Inception-v3 weights for the standard FID extractor (torch-fidelity)")
    ev.add_argument("--gmm-components", type=int, default=10, help="the gmm sampler's components (default 10)")
    ev.add_argument("--gmm-covariance", default="full", choices=["full", "diag"], help="the gmm sampler's covariance (default full)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the importance samples and the sampler draws (default 0)")
    ev.add_argument("--out", help="JSON file to write (default: RUN/evaluation.json)")
    ev.add_argument("--device", default="cpu")
    ev.set_defaults(func=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"animevae: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:
        print(f"animevae: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("animevae: interrupted", file=sys.stderr)
        return 130
    return 0
