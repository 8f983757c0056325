"""Are a hierarchical run's reconstructions more real with their latents drawn from the posterior, as in training, than at their means?

``evaluate`` reconstructed a held-out face with every latent at its posterior mean. Training never decodes that:
each group is drawn from its posterior, and at the 24-px group the posterior's own spread is about half of its
prior's (``posterior_spread.py``), so the means may be a smoother input than the decoder learned to draw from.
Each held-out face is encoded and decoded with

* ``means``: every group at its posterior mean (``evaluate``'s reconstructions when its records were made;
  ``reconstruct --latents mean``);
* ``fine_draws``: the top at its mean, every finer group drawn from its posterior (one seeded draw);
* ``all_draws``: every group drawn, the top too, as in a training step (what ``reconstruct`` now makes of a
  hierarchical run by default);

and each set is scored on the realism ladder (paired with the faces it was made from, as ``evaluate`` scores
reconstructions), with its PSNR against them and its high-frequency ratio.

    python experiments/recon_draws.py --runs preset_hier20 --out experiments/out/hier
"""

from __future__ import annotations

import time

import _record
import torch
from _runs import held_out_probe, held_out_records, held_out_run, ladder_line, score_faces

from animevae.evaluation.metrics import psnr
from animevae.images import save_grid
from animevae.sampling.generate import reconstruct_images

NAME = "recon_draws"
QUESTION = (
    "Are a hierarchical run's reconstructions more real when their latents are drawn from the posterior, "
    "as training decodes them, instead of set to their means?"
)
ROWS = ("means", "fine_draws", "all_draws")


@torch.inference_mode()
def reconstruct(model, images: torch.Tensor, how: str, seed: int = 0, batch: int = 128) -> torch.Tensor:
    """uint8 N x 3 x H x W -> their reconstructions, each group at its posterior mean or drawn, as ``how`` says:
    ``means`` and ``all_draws`` are the tool's own (``reconstruct_images``), ``fine_draws`` draws the finer groups only."""
    gen = torch.Generator().manual_seed(seed)
    if how != "fine_draws":
        return reconstruct_images(model, images, batch, generator=gen, latents="mean" if how == "means" else "draw")
    out = []
    for s in range(0, len(images), batch):
        features = model.encoder(images[s : s + batch].float().div(255))
        params, _, _ = model.decoder(model._top(model._heads(features).mu), features[:-1], generator=gen)  # the top at its mean
        out.append(model.likelihood(params).to_uint8())
    return torch.cat(out)


def main() -> None:
    p = held_out_probe(__doc__, NAME, ["preset_hier20"])
    p.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS, help="which reconstructions (default: all)")
    a = p.parse_args()
    settings, rows, commands = held_out_records(a)
    for name in a.runs:
        run, model, held, control = held_out_run(a, name)
        row = rows.get(name, {})
        for how in a.rows:
            t0 = time.time()
            faces = reconstruct(model, held, how)
            save_grid(faces[:64], run.parent / f"{name}_recons_{how}.png", nrow=8)
            row[how] = score_faces(faces, held, a.c2st_seeds, control=control, paired=True) | {
                "psnr": round(float(psnr(faces.float() / 255, held.float() / 255).mean()), 2),
                "seconds": round(time.time() - t0, 1),
            }
            print(name, how, ladder_line(row[how]), "PSNR", row[how]["psnr"], "HF", row[how]["hf_ratio"], flush=True)
            rows[name] = row
            figures = [f"{n} {h}: {ladder_line(r)}, PSNR {r['psnr']}, HF ratio {r['hf_ratio']}" for n, rr in rows.items() for h, r in rr.items()]
            _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)


if __name__ == "__main__":
    main()
