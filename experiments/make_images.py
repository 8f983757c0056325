"""The documentation's pictures of generated faces: the built-in procedural faces, a run's own samples, and runs side by side.

    python experiments/make_images.py --builtin                          # builtin_faces.png
    python experiments/make_images.py --run runs/sharp20                 # generated_sharp20.png: 48 faces of its own sampler
    python experiments/make_images.py --compare runs/seed20 runs/sharp20 --samplers mix gmm diffusion
                                                                         # compare_<run>_<sampler>.png: 32 faces each, seed 0
    python experiments/make_images.py --groups runs/hier20               # groups_hier20.png, detail_hier20.png: what the finer groups draw

Every picture is of faces a model generated (or the procedural built-in faces), never of training faces.
The default output folder is docs/images; presets_20min.py and samplers_compare.py call this script.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--out", default=str(DOCS_IMAGES), help="folder for the PNGs (default: docs/images)")
    p.add_argument("--builtin", action="store_true", help="write builtin_faces.png: 32 of the procedural faces of --data builtin")
    p.add_argument("--run", nargs="*", default=[], help="run folders: generated_<run name>.png, 48 faces of each run's own sampler, seed 0")
    p.add_argument("--compare", nargs="*", default=[], help="run folders: 32 faces each from every --samplers, seed 0")
    p.add_argument("--samplers", nargs="*", default=["mix", "gmm"], help="samplers of --compare (default: mix gmm)")
    p.add_argument(
        "--groups",
        nargs="*",
        default=[],
        help="hierarchical runs: groups_<run>.png, 8 top latents of its gmm (columns) with the finer groups at temperature 0, 0.5 "
        "and 1 (rows); detail_<run>.png, 3 top latents (rows) with the finer groups drawn 8 times each at temperature 1",
    )
    a = p.parse_args()

    import hierarchical  # noqa: F401  (registers that experiment's architectures, so its runs load here)
    import torch

    from animevae.images import save_grid
    from animevae.sampling.generate import decode_latents, default_sampler, load_model, make_sampler, sample_faces
    from animevae.sampling.samplers import DEFAULT_MIX_K

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.builtin:
        from animevae.data.sources import BUILTIN_SEED
        from animevae.data.toyfaces import render_faces

        save_grid(render_faces(32, seed=BUILTIN_SEED).transpose(0, 3, 1, 2), out / "builtin_faces.png", nrow=8)
        print(out / "builtin_faces.png")
    for run in a.run:
        model = load_model(run)
        save_grid(sample_faces(model, run, default_sampler(run), 48, 0, DEFAULT_MIX_K), out / f"generated_{Path(run).name}.png", nrow=12)
        print(out / f"generated_{Path(run).name}.png")
    for run in a.compare:
        model = load_model(run)
        for name in a.samplers:
            save_grid(sample_faces(model, run, name, 32, 0, DEFAULT_MIX_K), out / f"compare_{Path(run).name}_{name}.png", nrow=8)
            print(out / f"compare_{Path(run).name}_{name}.png")

    for run in a.groups:
        model = load_model(run)
        z = make_sampler("gmm", model, run).sample(8, torch.Generator().manual_seed(0))
        rows = [decode_latents(model, z, generator=torch.Generator().manual_seed(1), temperatures=t) for t in (0.0, 0.5, 1.0)]
        save_grid(torch.cat(rows), out / f"groups_{Path(run).name}.png", nrow=8)
        again = z[:3].repeat_interleave(8, 0)
        save_grid(decode_latents(model, again, generator=torch.Generator().manual_seed(2), temperatures=1.0), out / f"detail_{Path(run).name}.png", nrow=8)
        print(out / f"groups_{Path(run).name}.png", out / f"detail_{Path(run).name}.png")


if __name__ == "__main__":
    main()
