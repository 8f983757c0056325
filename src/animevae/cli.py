"""``animevae`` command line: argument parsing only; each command calls one library function."""

from __future__ import annotations

import argparse
import math
import shlex
import sys

from .errors import UserError

DEFAULT_HUB_DATASET = "DrishtiSharma/Anime-Face-Dataset"


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", default=DEFAULT_HUB_DATASET, help="Hub dataset id, parquet file/glob/folder, image folder, or 'builtin' (default: %(default)s)")
    g.add_argument("--split", default="train", help="Hub dataset split (default: train)")
    g.add_argument("--revision", help="Hub dataset revision to pin (branch, tag or commit)")
    g.add_argument("--image-column", help="column holding the images (default: image, img, or the first Image feature)")
    g.add_argument("--limit", type=int, help="use only the first N images")
    g.add_argument("--convert-to-rgb", action="store_true", help="convert grayscale/RGBA/palette/CMYK images instead of skipping them (the seed skips)")
    g.add_argument("--builtin-count", type=int, default=4000, help="how many procedural faces --data builtin makes (default: 4000)")
    g.add_argument("--no-cache", action="store_true", help="decode into memory instead of the on-disk cache")
    g.add_argument("--cache-dir", help="where decoded images are cached (default: $ANIMEVAE_CACHE or ~/.cache/animevae)")
    g.add_argument("--workers", type=int, help="decode processes (default: all cores)")


def _data_config(a):
    from .config import DataConfig

    return DataConfig(
        source=a.data, split=a.split, revision=a.revision, image_column=a.image_column, limit=a.limit,
        convert_to_rgb=a.convert_to_rgb, builtin_count=a.builtin_count, cache=not a.no_cache,
        cache_dir=a.cache_dir, workers=a.workers,
    )


def cmd_train(a) -> None:
    from .config import ModelConfig, TrainConfig
    from .train import FINETUNE_LR, train

    image_size = a.image_size or 96
    layers = a.num_layers
    if layers is None:
        k = math.log2(image_size / 3) if image_size > 0 else 0
        layers = int(k) if k == int(k) and k >= 1 else 5
    model_cfg = ModelConfig(image_size=image_size, latent_dim=a.latent_dim, base_channels=a.base_channels, num_layers=layers)
    lr = a.lr if a.lr is not None else (FINETUNE_LR if a.init_from else 1e-3)
    train_cfg = TrainConfig(
        epochs=a.epochs, batch_size=a.batch_size, lr=lr, beta=a.beta, seed=a.seed, val_fraction=a.val_fraction,
        precision=a.precision, compile=a.compile, device=a.device, hflip=not a.no_flip, rotation=a.rotation,
        rotation_fill=a.rotation_fill, interpolation=a.interpolation, init_from=a.init_from, freeze=a.freeze,
        keep_last=a.keep_last,
    )
    if a.freeze and not a.init_from:
        raise UserError("--freeze only makes sense with --init-from (freezing a random network)")
    out = train(model_cfg, train_cfg, _data_config(a), a.out, overwrite=a.overwrite, progress=not a.quiet,
                command="animevae " + shlex.join(sys.argv[1:]))
    print(f"run written to {out}  (generate faces: animevae generate --run {shlex.quote(str(out))})")


def cmd_generate(a) -> None:
    from .sample import generate

    out = generate(a.run, n=a.n, out=a.out, sampler=a.sampler, mix_k=a.mix_k, temperature=a.temperature, seed=a.seed, device=a.device, revision=a.revision)
    print(f"{a.n} faces written to {out} (grid: {out / 'grid.png'})")


def cmd_cache(a) -> None:
    from .data.cache import load_images

    if a.no_cache:
        raise UserError("`animevae cache` builds the cache; --no-cache contradicts it")
    faces = load_images(_data_config(a), a.image_size)
    c = faces.stats["counts"]
    print(f"{faces.path}: {c['kept']} images kept; skipped: non-RGB {c['skipped_not_rgb']}, undecodable {c['skipped_undecodable']}, "
          f"too small {c['skipped_too_small']}, too large {c['skipped_too_large']}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="animevae", description="Train a VAE on anime faces, generate new ones, fine-tune on your own.")
    sub = parser.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train (or fine-tune) a VAE; writes a run folder every epoch")
    _add_data_args(t)
    g = t.add_argument_group("model")
    g.add_argument("--image-size", type=int, help="3*2^k pixels (default 96: the seed's)")
    g.add_argument("--num-layers", type=int, help="conv layers (default: fits --image-size; 5 for 96)")
    g.add_argument("--latent-dim", type=int, default=256)
    g.add_argument("--base-channels", type=int, default=32)
    g = t.add_argument_group("training")
    g.add_argument("--out", default="runs/anime", help="run folder (default: %(default)s)")
    g.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    g.add_argument("--epochs", type=int, default=100)
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--lr", type=float, help="Adam learning rate (default 1e-3; 1e-4 with --init-from)")
    g.add_argument("--beta", type=float, default=1.0, help="weight of the KL term (default 1: the seed's)")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--val-fraction", type=float, default=0.05, help="held-out share evaluated every epoch (default 0.05)")
    g.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    g.add_argument("--compile", action="store_true", help="torch.compile the model")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    g.add_argument("--keep-last", type=int, default=3, help="per-epoch copies of weights+latents to keep (default 3)")
    g.add_argument("--quiet", action="store_true", help="no progress bars")
    g = t.add_argument_group("augmentation (the seed's: flip p=0.5, rotation +-10 deg)")
    g.add_argument("--no-flip", action="store_true")
    g.add_argument("--rotation", type=float, default=10.0, help="max degrees; 0 turns rotation off")
    g.add_argument("--rotation-fill", default="zeros", choices=["zeros", "border", "reflection"], help="corner fill (zeros: the seed's black)")
    g.add_argument("--interpolation", default="nearest", choices=["nearest", "bilinear"])
    g = t.add_argument_group("fine-tuning")
    g.add_argument("--init-from", help="start from a trained run folder or Hub repo id")
    g.add_argument("--freeze", choices=["encoder", "decoder"], help="keep this half fixed while fine-tuning")
    t.set_defaults(func=cmd_train)

    gen = sub.add_parser("generate", help="generate new faces from a trained run")
    gen.add_argument("--run", required=True, help="run folder or Hub repo id")
    gen.add_argument("--revision", help="Hub revision to pin")
    gen.add_argument("--n", type=int, default=100)
    gen.add_argument("--out", help="output folder (default: RUN/generated)")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--sampler", default="mix", choices=["mix", "prior"], help="mix: the seed's latent averaging; prior: z ~ N(0, I)")
    gen.add_argument("--mix-k", default="4", help="stored latents one mix draws on, or 'all' (default 4)")
    gen.add_argument("--temperature", type=float, default=1.0, help="prior sampler's scale")
    gen.add_argument("--device", default="cpu")
    gen.set_defaults(func=cmd_generate)

    c = sub.add_parser("cache", help="decode and cache a data source (training does this on first use)")
    _add_data_args(c)
    c.add_argument("--image-size", type=int, default=96)
    c.set_defaults(func=cmd_cache)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"animevae: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("animevae: interrupted", file=sys.stderr)
        return 130
    return 0
