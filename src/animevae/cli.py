"""``animevae`` command line: argument parsing only; each command calls one library function."""

from __future__ import annotations

import argparse
import inspect
import os
import shlex
import sys
import typing
from dataclasses import fields

from . import __version__
from .config import PRESETS, RECONSTRUCTION_LATENTS, SAMPLER_NAMES, DataConfig, ModelConfig, TrainConfig
from .errors import Interrupted, UserError
from .sampling.samplers import DEFAULT_GMM_COMPONENTS, DEFAULT_JOINT_COMPONENTS, DEFAULT_MIX_K

GMM_COMPONENTS_HELP = f"the gmm samplers' mixture components (default: gmm {DEFAULT_GMM_COMPONENTS}, joint-gmm {DEFAULT_JOINT_COMPONENTS})"

S = argparse.SUPPRESS  # train flags default to "not given", so a --config file or a preset can supply them


def add_config_flags(parser: argparse.ArgumentParser, cls, *, suppress: bool, skip: tuple[str, ...] = (), group: str | None = None) -> None:
    """One flag per field of a config dataclass, with the field's own help, choices and default (config.py's ``opt``)."""
    groups: dict[str | None, argparse._ArgumentGroup] = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        meta, default = f.metadata, f.default
        title = meta.get("group") or group
        if title not in groups:
            groups[title] = parser.add_argument_group(title) if title else parser
        flag = meta.get("flag") or ("--no-" if default is True else "--") + f.name.replace("_", "-")
        shown = "" if default is None or isinstance(default, bool) else f" (default: {default})"
        kwargs = {"dest": f.name, "default": S if suppress else default, "help": meta.get("help", "") + shown}
        if isinstance(default, bool):
            kwargs["action"] = "store_false" if default else "store_true"
        else:
            kwargs["type"] = {int: int, float: float}.get(type(default), str) if default is not None else _field_type(cls, f.name)
            kwargs["choices"] = meta.get("choices")
        groups[title].add_argument(flag, **kwargs)


def _field_type(cls, name: str):
    hint = typing.get_type_hints(cls)[name]
    return next((t for t in (int, float) if t in typing.get_args(hint)), str)


def with_flags(fn, a, **given):
    """Call ``fn`` with the parsed flags that share a name with its parameters (plus ``given``)."""
    names = inspect.signature(fn).parameters
    return fn(**{k: getattr(a, k) for k in names if hasattr(a, k) and k not in given}, **given)


def _given(a, cls) -> dict:
    return {f.name: getattr(a, f.name) for f in fields(cls) if hasattr(a, f.name)}


def cmd_train(a) -> None:
    from .api import train

    given = {**_given(a, ModelConfig), **_given(a, TrainConfig), **_given(a, DataConfig)}
    if a.quiet:  # datasets' own bars too (it reads this when first imported, below)
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    if a.resume:  # flags that are not settings (the API refuses the settings themselves)
        extra = sorted(k for k in vars(a) if k in ("preset", "out", "overwrite") or (k == "config" and a.config))
        if extra:
            raise UserError(f"--resume continues a run exactly as configured; only --epochs and --max-minutes can change (got --{extra[0]})")
    out = a.resume or getattr(a, "out", "runs/anime")
    run = train(
        out,
        preset=getattr(a, "preset", "seed"),
        config=None if a.resume else a.config,
        resume=bool(a.resume),
        overwrite=getattr(a, "overwrite", False),
        progress=not a.quiet,
        command="animevae " + shlex.join(sys.argv[1:]),
        allow_data_change=a.allow_data_change,
        **given,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"run written to {run.path}  (generate faces: animevae generate --run {shlex.quote(str(run.path))})")


def cmd_generate(a) -> None:
    from .sampling.generate import generate

    out = with_flags(generate, a)
    print(f"{a.n} faces written to {out} (grid: {out / 'grid.png'})")


def cmd_cache(a) -> None:
    from .data.cache import load_images

    if not a.cache:
        raise UserError("`animevae cache` builds the cache; --no-cache contradicts it")
    faces = load_images(DataConfig(**_given(a, DataConfig)), a.image_size)
    c = faces.stats["counts"]
    print(
        f"{faces.path}: {c['kept']} images kept; skipped: non-RGB {c['skipped_not_rgb']}, undecodable {c['skipped_undecodable']}, "
        f"too small {c['skipped_too_small']}, too large {c['skipped_too_large']}, not a file {c['skipped_not_a_file']}"
    )


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
    given = _given(a, DataConfig)
    if not limit:
        given["limit"] = None
    return DataConfig(**given)


def cmd_reconstruct(a) -> None:
    from .sampling.explore import reconstruct

    out = reconstruct(a.run, _data_config(a), n=a.n, out=a.out, device=a.device, latents=a.latents, seed=a.seed)
    print(f"inputs and reconstructions written to {out}")


def cmd_interpolate(a) -> None:
    from .sampling.explore import interpolate

    out = interpolate(a.run, out=a.out, a=a.a, b=a.b, seed=a.seed, steps=a.steps, mode=a.mode, device=a.device)
    print(f"interpolation written to {out} (interpolation.png, interpolation_*.gif)")


def cmd_traverse(a) -> None:
    from .sampling.explore import traverse

    out = traverse(a.run, out=a.out, dim=a.dim, pc=a.pc, span=a.range, steps=a.steps, images=a.image, rows=a.rows, seed=a.seed, device=a.device)
    print(f"traversal written to {out}")


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _sizes(text: str) -> list[int]:
    try:
        return [int(n) for n in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes in pixels, like 96,48,32,24,16; got {text!r}") from None


def _temperatures(text: str) -> list[float]:
    try:
        values = [float(n) for n in _names(text)]
    except ValueError:
        values = []
    if not values or any(not 0 <= v < float("inf") for v in values):
        raise argparse.ArgumentTypeError(f"expected a temperature of 0 or more, or one per finer group, comma-separated (like 0.8 or 1,0.7); got {text!r}")
    return values


def cmd_evaluate(a) -> None:
    from .evaluation.report import evaluate

    _, out = with_flags(evaluate, a, data_cfg=_data_config(a, limit=False))
    print(f"metrics written to {out}")


def _training_commands(sub) -> None:
    """The commands that train: train, cache."""
    t = sub.add_parser(
        "train",
        help="train (or fine-tune) a VAE; writes a run folder every epoch",
        description="Flags override --config, which overrides the preset, which overrides the defaults (the seed's settings).",
    )
    t.add_argument("--config", help="TOML (or JSON) file of settings: [model], [train], [data] tables or flat keys")
    t.add_argument("--resume", help="continue this run folder from its last complete checkpoint")
    t.add_argument(
        "--allow-data-change",
        action="store_true",
        help="with --resume: go on although the data's fingerprint differs from the run's (same number of faces); "
        "the run then differs from an uninterrupted one",
    )
    t.add_argument(
        "--preset",
        default=S,
        choices=list(PRESETS),
        help="seed: the notebook's settings (default); quality: KL warm-up + free bits + EMA + reflect fill, gmm sampler "
        "(the best likelihood); sharp: quality + a spatial latent (--arch spatial --latent-dim 576) + --beta 0.1, gmm sampler "
        "(the most realistic faces measured; see docs/explanation/sharper-faces.md)",
    )
    t.add_argument("--out", default=S, help="run folder (default: runs/anime)")
    t.add_argument("--overwrite", action="store_true", default=S, help="replace a run already in --out")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_flags(t, DataConfig, suppress=True, group="data")
    add_config_flags(t, ModelConfig, suppress=True, group="model")
    add_config_flags(t, TrainConfig, suppress=True, group="training")
    t.set_defaults(func=cmd_train)

    c = sub.add_parser("cache", help="decode and cache a data source (training does this on first use)")
    add_config_flags(c, DataConfig, suppress=False, group="data")
    c.add_argument("--image-size", type=int, default=ModelConfig.image_size, help=f"decode to this size (default: {ModelConfig.image_size})")
    c.set_defaults(func=cmd_cache)


def _sharing_commands(sub) -> None:
    """Generate, push, demo, info: using a trained run."""
    gen = sub.add_parser("generate", help="generate new faces from a trained run")
    gen.add_argument("--run", required=True, help="run folder or Hub repo id")
    gen.add_argument("--revision", help="Hub revision to pin")
    gen.add_argument("--n", type=int, default=100)
    gen.add_argument("--out", help="output folder (default: RUN/generated)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--sampler",
        default=None,
        choices=list(SAMPLER_NAMES),
        help="default: the run's own (its preset's best; mix for the seed preset). "
        "mix: the seed's latent averaging; prior: z ~ N(0, I); gmm: a Gaussian mixture fitted to the stored latents; "
        "two-stage: a second VAE fitted to them (Dai & Wipf 2019); diffusion: a small diffusion model fitted to them",
    )
    gen.add_argument(
        "--mix-k", default=str(DEFAULT_MIX_K), help=f"stored latents one mix draws on, or 'all' (default {DEFAULT_MIX_K}: see docs/how-to/generate.md)"
    )
    gen.add_argument(
        "--temperature", type=float, default=1.0, help="scale of the prior's draws, of the gmm's spread around its components, of diffusion's starting noise"
    )
    gen.add_argument(
        "--fine-temperature",
        type=_temperatures,
        default=None,
        help="a hierarchical model's finer latent groups: the scale of their priors' draws, one number or one per finer scale "
        "(0: the priors' means; default: the model's own)",
    )
    gen.add_argument("--gmm-components", type=int, default=None, help=GMM_COMPONENTS_HELP)
    gen.add_argument("--gmm-covariance", default="full", choices=["full", "diag"], help="gmm sampler's covariance per component (default full)")
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(func=cmd_generate)

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


def _exploring_commands(sub) -> None:
    """Reconstruct, interpolate, traverse, evaluate: looking into a trained run."""
    r = sub.add_parser("reconstruct", help="inputs beside their reconstructions (a posterior draw or mean, decoded), as one grid")
    r.add_argument("--run", required=True, help="run folder or Hub repo id")
    r.add_argument("--data", dest="source", required=True, help="images to reconstruct: Hub dataset id, parquet file/glob/folder, image folder, or 'builtin'")
    add_config_flags(r, DataConfig, suppress=False, skip=("source",), group="data")
    r.add_argument("--n", type=int, default=16, help="how many images (default 16)")
    r.add_argument("--out", help="PNG to write (default: RUN/reconstructions.png); rows alternate input / reconstruction")
    r.add_argument(
        "--latents",
        choices=RECONSTRUCTION_LATENTS,
        help="decode a draw from the posterior, as training does (a hierarchical model's default), or its means (a one-latent model's default)",
    )
    r.add_argument("--seed", type=int, default=0, help="the posterior draw's seed (default 0)")
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

    ev = sub.add_parser(
        "evaluate",
        help="likelihood bounds, reconstruction quality, active units, and every sampler's diversity, memorisation, FID/KID",
        description="Evaluates on the run's own held-out split when --data is its training source, else on all of --data. "
        "--limit caps the number of images evaluated.",
    )
    ev.add_argument("--run", required=True, help="run folder or Hub repo id")
    ev.add_argument(
        "--data",
        dest="source",
        required=True,
        help="held-out images: the run's training source (its held-out split is used), or any other data source (all of it)",
    )
    add_config_flags(ev, DataConfig, suppress=False, skip=("source",), group="data")
    ev.add_argument("--k", type=int, default=16, help="importance samples per image for the IWAE bound (default 16)")
    ev.add_argument("--n-samples", type=int, default=500, help="faces drawn from each sampler (default 500)")
    ev.add_argument(
        "--features",
        help="FID/KID features: package.module:callable returning an nn.Module (images -> N x D); "
        "animevae.evaluation.features:pixel_features works offline but is not comparable to published FID",
    )
    ev.add_argument("--inception-weights", help="local Inception-v3 weights for the standard FID extractor (torch-fidelity)")
    ev.add_argument("--gmm-components", type=int, default=None, help=GMM_COMPONENTS_HELP)
    ev.add_argument("--gmm-covariance", default="full", choices=["full", "diag"], help="the gmm sampler's covariance (default full)")
    ev.add_argument("--seed", type=int, default=0, help="seed of the importance samples and the sampler draws (default 0)")
    ev.add_argument("--out", help="JSON file to write (default: RUN/evaluation.json)")
    ev.add_argument("--device", default="cpu")
    names = "mix_k2, mix_k4, mix_k16, mix_all, prior, gmm, two_stage, diffusion"
    ev.add_argument("--samplers", type=_names, help=f"evaluate only these samplers, comma-separated ({names}; default: all)")
    ev.add_argument("--c2st-samplers", type=_names, help="run the classifier two-sample test on these samplers (default: the run's own)")
    ev.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds to average over (default 3; 0 = no two-sample test)")
    ev.add_argument(
        "--c2st-sizes",
        type=_sizes,
        help="the realism ladder's sizes in px, comma-separated (default 96,48,32,24,16 and the images' own size; those above it are dropped)",
    )
    ev.add_argument(
        "--c2st-max-rounds", type=int, default=60, help="at most this many training rounds per classifier (default 60; early stopping usually ends sooner)"
    )
    ev.set_defaults(func=cmd_evaluate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animevae", description="Train a VAE on anime faces, generate new ones, fine-tune on your own.")
    parser.add_argument("--version", action="version", version=f"animevae {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _training_commands(sub)
    _sharing_commands(sub)
    _exploring_commands(sub)
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
