"""Does drawing the 24-px latent group with the top and 12-px latents, not from its prior, close more of the sampler's gap?

The hierarchical preset's sampler (``joint-gmm``) draws the top and 12-px latents from one mixture and the 24-px group
from its learned prior, which draws each of its 576 positions independently given the decoder's state (at T = 1.2).
After an hour, held-out faces decoded with the top and 12-px groups from the posterior and the 24-px group from its
prior read 0.695 at 32 px where their reconstructions read 0.581 (``experiments/hierarchical_gap.py``): the 24-px
prior is what is left at 32 px and up. And neighbouring positions of its posterior draws move together
(``experiments/posterior_spread.py``: block averages spread like T = 1.15), which a per-position prior cannot draw.

This fits, after training, on 20,000 training faces: the top's posterior mean, a posterior draw of the 12-px group
given it and a posterior draw of the 24-px group given both, each finer group in its prior's whitened coordinates,
u = (z - mu_p) / sigma_p, as the tool's joint-gmm does for the 12-px group. The 24-px draws (2,304 dimensions) are
reduced to their first K principal components, the directions along which whole faces' 24-px latents vary together;
one mixture (30 components, full covariance) is fitted on [top, u_12, those K coefficients], and the rest of the
24-px group is drawn as independent noise with the variance the K components leave in each dimension. A sample
decodes all three groups as drawn (the priors' means and scales still follow the coarser draws).

Rows, on the same held-out faces, one positive control:
* ``joint_gmm``: the run's own sampler as the tool fits it (24-px group from its prior at T = 1.2);
* ``fine_pca0``: the control: K = 0, the 24-px group independent of the rest, each dimension with the variance and
  mean of its posterior draws (says whether a gain is the correlations' or only a matched spread's);
* ``fine_pca<K>``: K components joined to the mixture (``--pca``, default 256);
* ``recons`` (``--recons``): the run's reconstructions of the held-out faces, every group drawn: the ceiling.
The sampler is the tool's ``JointGMMSampler`` (``joint-gmm`` draws so since this was measured); the recorded rows were
measured with this script's own copy of the same steps, before it moved into the tool.

    python experiments/joint_gmm_fine.py --runs preset_hier --out experiments/out/hier
"""

from __future__ import annotations

import time
from pathlib import Path

import _record
import torch
from _runs import earlier_results, ladder_line, score_faces, training_facts
from joint_gmm import joint_latents

from animevae.config import DataConfig
from animevae.evaluation.report import control_faces, load_eval_data
from animevae.evaluation.two_sample import positive_control
from animevae.images import save_grid
from animevae.runs import load_run_config
from animevae.sampling.generate import decode_latents, load_model, reconstruct_images, sample_faces
from animevae.sampling.samplers import JointGMMSampler

NAME = "joint_gmm_fine"
QUESTION = "Does drawing the 24-px latent group with the top and 12-px latents, not from its prior, close more of the sampler's gap?"


def all_latents(model, faces: torch.Tensor, seed: int = 3) -> torch.Tensor:
    """uint8 faces -> N x [top posterior mean, every finer scale's posterior draw in its prior's whitened coordinates],
    each drawn given the ones above it (``VAE.encode_detail`` of every scale, as the tool's last latents pass)."""
    return joint_latents(model, faces, 200, torch.Generator().manual_seed(seed), scales=len(model.detail_dims))


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.set_defaults(out=str(_record.HERE / "out" / "hier"))
    p.add_argument("--runs", nargs="+", default=["preset_hier"], help="hierarchical runs in --out (default: %(default)s)")
    p.add_argument("--pca", type=int, nargs="*", default=[0, 256], help="principal components of the 24-px group in the mixture (default: %(default)s)")
    p.add_argument("--components", type=int, default=30, help="mixture components (default: %(default)s, joint-gmm's)")
    p.add_argument("--no-baseline", dest="baseline", action="store_false", help="skip the run's own joint-gmm row")
    p.add_argument("--recons", action="store_true", help="also the run's reconstructions of the held-out faces (every group drawn, seed 0): the ceiling")
    p.add_argument("--fit-on", type=int, default=20_000, help="training faces the mixture is fitted on (default: %(default)s)")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces (default: %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="samples scored (default: %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds per rung (default: %(default)s)")
    a = p.parse_args()
    settings = {"data": a.data, "eval_limit": a.eval_limit, "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds}
    settings |= {"fit_on": a.fit_on, "components": a.components}
    results, commands = earlier_results(a.results, settings)
    rows, commands = results.get("runs", {}), [*commands, _record.invocation()]
    out = Path(a.out)

    def save(rows: dict) -> None:
        figures = [f"{n} {lab}: {ladder_line(r)}" for n, rr in rows.items() for lab, r in rr.items() if lab not in ("control", "training")]
        _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)

    torch.set_grad_enabled(False)
    for name in a.runs:
        run = out / name
        model = load_model(str(run))
        held, images, train_pos, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=a.data), model.config.image_size, a.eval_limit)
        row = rows.setdefault(name, {})
        row["training"] = training_facts(run)
        if "control" not in row:
            faces, real = control_faces(images, train_pos, held, a.n_samples)
            row["control"] = positive_control(faces, real)
            print(name, "positive control", round(row["control"]["accuracy"], 3), "caught" if row["control"]["caught"] else "NOT CAUGHT", flush=True)
        scored = []  # (label, faces, facts)
        if a.baseline and "joint_gmm" not in row:
            scored.append(("joint_gmm", sample_faces(model, str(run), "joint-gmm", a.n_samples, 0), {}))
        labels = {k: f"fine_pca{k}" for k in a.pca if f"fine_pca{k}" not in row}
        t0 = time.time()
        order = torch.randperm(len(train_pos), generator=torch.Generator().manual_seed(0))[: a.fit_on]
        x = all_latents(model, torch.from_numpy(images[train_pos[order.numpy()]])) if labels else None
        encoded = time.time() - t0
        coarse = model.config.latent_dim + model.detail_dim
        for k, label in labels.items():
            t0 = time.time()
            sampler = JointGMMSampler.fit(x, coarse, a.components, "full", components=k)
            explained = 1 - float(sampler.residual.double().pow(2).sum() / x[:, coarse:].double().var(0, unbiased=False).sum())
            facts = {"dims": coarse + k, "explained": round(explained, 3), "fit_seconds": round(time.time() - t0, 1)}
            facts["encode_seconds"] = round(encoded, 1)
            scored.append((label, decode_latents(model, sampler.sample(a.n_samples, torch.Generator().manual_seed(0))), facts))
        if a.recons and "recons" not in row:
            scored.append(("recons", reconstruct_images(model, held), {}))
        for label, faces, facts in scored:
            save_grid(faces[:64], out / f"{name}_{label}.png", nrow=8)
            row[label] = score_faces(faces, held, a.c2st_seeds, control=row["control"], paired=label == "recons") | facts
            print(name, label, ladder_line(row[label]), facts, flush=True)
            save(rows)
        save(rows)  # the run's training facts, also when every row was scored before


if __name__ == "__main__":
    main()
