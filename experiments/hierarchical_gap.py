"""Where do a hierarchical run's samples lose to its reconstructions: the top latent's sampler, or the finer groups' priors?

The hierarchical model's reconstructions of held-out faces pass the realism ladder up to 32 px while its samples
(the gmm on the top group, the finer groups from their learned priors) are caught at every size, even at 16 px.
This splits the gap: each held-out face is encoded and decoded with

* ``top``: the top group from the posterior (its mean), every finer group drawn from its prior (temperature 1);
* ``top+12``: the top and the 12-px group from the posterior, the 24-px group from its prior;
* ``recons``: every group from the posterior (``evaluate``'s reconstructions, quoted from its record);

and each set is scored on the same ladder (paired with the faces it was made from, as ``evaluate`` scores
reconstructions). Where ``top`` reads like ``recons``, the finer priors draw what the posteriors would and the
gap is the top sampler's; where it reads like the samples, the finer priors are the gap.

    python experiments/hierarchical_gap.py --runs hier60 --out experiments/out/hier
"""

from __future__ import annotations

import time
from pathlib import Path

import _record
import torch
from _runs import held_out_probe, held_out_records, held_out_run, ladder_line, score_faces

from animevae.images import save_grid
from animevae.sampling.generate import reconstruct_images

NAME = "hierarchical_gap"
QUESTION = "Do a hierarchical run's samples lose to its reconstructions through the top latent's sampler or through the finer groups' priors?"
ROWS = {"top": 0, "top+12": 1}  # row: how many finer scales come from the posterior


def main() -> None:
    a = held_out_probe(__doc__, NAME, ["hier60"]).parse_args()
    settings, rows, commands = held_out_records(a)
    for name in a.runs:
        _, model, held, control = held_out_run(a, name)
        model.temperatures = (1.0,)  # every finer group drawn at 1, as recorded (the model's own default may differ)
        row = {}
        for label, scales in ROWS.items():
            groups = sum(g.scale < scales for g in model.decoder.groups)
            t0 = time.time()
            faces = reconstruct_images(model, held, groups=groups, generator=torch.Generator().manual_seed(0), latents="mean")  # the rest from their priors
            save_grid(faces[:64], Path(a.out) / f"{name}_gap_{label.replace('+', '_')}.png", nrow=8)
            row[label] = score_faces(faces, held, a.c2st_seeds, control=control, paired=True) | {"seconds": round(time.time() - t0, 1)}
            print(name, label, ladder_line(row[label]), flush=True)
        rows[name] = row
        figures = [f"{n} {label}: {ladder_line(r)}" for n, rr in rows.items() for label, r in rr.items()]
        _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)


if __name__ == "__main__":
    main()
