"""Does a mixture fitted jointly over the top latent and the 12-px latent group close a hierarchical run's sampler gap?

``experiments/hierarchical_gap.py`` finds that the hierarchical model's samples lose to its reconstructions mainly
at the 12-px group: decoded with that group from the posterior and only the 24-px group from its prior, held-out
faces read close to the reconstructions at 16-24 px; with it from its learned prior (one 3x3 conv of the decoder
state, every position drawn independently) the eyes break. This fits, after training, a Gaussian mixture (the gmm
sampler's EM, full covariance) on each training face's top latent mean joined with its 12-px group's posterior
mean in the prior's whitened coordinates, u = (z - mu_prior) / sigma_prior (``VAE.encode_detail``); sampling draws
(top, u) from it, decodes z_12 = mu_prior + sigma_prior u (so the learned prior still follows the top), and the
24-px group from its prior at temperature 1 (``VAE.decode`` of the wider latent). A full covariance over u holds
what the per-position prior cannot: which strokes go together. The tool's ``joint-gmm`` sampler (the hierarchical
preset's own) is this mixture at 30 components, fitted on the latents file's detail latents. Scored on the
realism ladder beside the run's own gmm (top only), and, as the control that says whether the gain is the 12-px
group's or only more components', a mixture of as many components on the top latent alone (``--top-only``).
``--flip`` fits on every training face and its mirror image (training flips faces, so mirrors are in the
data): a full covariance over 1,728 dimensions has fewer faces per component than dimensions at 20,000 faces
and 30 components, and twice as many should say whether the mixture is starved for data. ``--subsample-seed``
refits on another draw of the same number of faces: the spread a refit alone makes. ``--detail-noise S`` adds
S N(0, I) to each drawn 12-px latent: the mixture is fitted on posterior means, while training decodes posterior
draws, whose own spread (``experiments/posterior_spread.py`` measures it) the means leave out.
``--fit-on-draws`` fits the mixture on posterior draws instead (the spread is then the mixture's own).
``--fine-temperature T [T ...]`` draws the 24-px group (and any finer one, one T each) from its prior at T instead
of 1 (labels end in _t<T>): its posterior means have about 0.4 of the prior's variance, the rest is the posterior's
own spread, so T = 1 draws more than a reconstruction decodes.

    python experiments/joint_gmm.py --runs hier60 --components 1 10 30 --top-only 30 --out experiments/out/hier
    python experiments/joint_gmm.py --runs preset_hier20 --components 30 60 --flip --out experiments/out/hier
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import _record
import hierarchical  # noqa: F401  (registers that experiment's architectures, so its runs load here)
import torch
from _runs import earlier_results, ladder_line, score_faces
from _shaped_noise import autocorrelation, kernel_of, shaped_prior_noise
from posterior_spread import posterior_draws

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.images import save_grid
from animevae.runs import load_run_config
from animevae.sampling.generate import decode_latents, load_model
from animevae.sampling.samplers import GMMSampler

NAME = "joint_gmm"
SHAPED_FROM = 2000  # training faces whose posterior draws give --shaped-noise its correlations
QUESTION = "Does a mixture fitted jointly over the top latent and the 12-px latent group close a hierarchical run's sampler gap?"


@torch.no_grad()
def joint_latents(model, faces: torch.Tensor, batch: int = 256, generator: torch.Generator | None = None, scales: int = 1) -> torch.Tensor:
    """uint8 faces -> [top latent mean, detail latents (``VAE.encode_detail``: the first ``scales`` finer scales' posterior
    means in their priors' whitened coordinates, the 12-px groups' unless told; with ``generator``, posterior draws)]."""
    rows = []
    for s in range(0, len(faces), batch):
        posterior, detail = model.encode_detail(faces[s : s + batch].float().div(255), generator, scales)
        rows.append(torch.cat([posterior.mu.float(), detail.float()], 1))
    return torch.cat(rows)


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.set_defaults(out=str(_record.HERE / "out" / "hier"))
    p.add_argument("--runs", nargs="+", default=["hier60"], help="hierarchical runs in --out (default: %(default)s)")
    p.add_argument("--components", type=int, nargs="+", default=[10], help="mixture components to try (default: %(default)s)")
    p.add_argument("--top-only", type=int, nargs="*", default=[], help="the control: mixtures of these many components on the top latent alone")
    p.add_argument("--fit-on", type=int, default=20_000, help="training faces the mixture is fitted on (default: %(default)s)")
    p.add_argument("--flip", action="store_true", help="fit on all training faces and their mirror images (labels end in _flip)")
    p.add_argument("--subsample-seed", type=int, default=0, help="which faces --fit-on draws (labels end in _s<seed> unless 0)")
    p.add_argument(
        "--fine-temperature", type=float, nargs="+", default=[1.0], help="the 24-px (and finer) groups' temperatures when decoding draws (default: %(default)s)"
    )
    p.add_argument(
        "--detail-noise",
        type=float,
        default=0.0,
        help="add this much N(0, I) to each drawn 12-px latent u, as a posterior draw adds to its mean (labels end in _n<S>)",
    )
    p.add_argument("--fit-on-draws", action="store_true", help="fit on the 12-px groups' posterior draws, not their means (labels end in _draws)")
    p.add_argument(
        "--shaped-noise",
        action="store_true",
        help="draw the 24-px (and finer) groups with noise correlated between neighbours as their posterior draws are (labels end in _shaped)",
    )
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces (default: %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="samples scored (default: %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds per rung (default: %(default)s)")
    a = p.parse_args()
    settings = {"data": a.data, "eval_limit": a.eval_limit, "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds, "fit_on": a.fit_on}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    out = Path(a.out)
    commands = [*commands, _record.invocation()]
    torch.set_grad_enabled(False)
    for name in a.runs:
        run = out / name
        control = json.loads((run / "evaluation.json").read_text())["c2st_control"]
        model = load_model(str(run))
        held, images, train_pos, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=a.data), model.config.image_size, a.eval_limit)
        t0 = time.time()
        order = torch.randperm(len(train_pos), generator=torch.Generator().manual_seed(a.subsample_seed))
        faces = torch.from_numpy(images[train_pos[order.numpy() if a.flip else order[: a.fit_on].numpy()]])
        drawing = torch.Generator().manual_seed(3) if a.fit_on_draws else None
        x = joint_latents(model, faces, generator=drawing)
        if a.flip:
            x = torch.cat([x, joint_latents(model, faces.flip(-1), generator=drawing)])
        encoded = time.time() - t0
        row = rows.get(name, {})
        fine = "-".join(f"{t:g}" for t in a.fine_temperature)
        suffix = ("_flip" if a.flip else "") + (f"_s{a.subsample_seed}" if a.subsample_seed else "") + (f"_t{fine}" if a.fine_temperature != [1.0] else "")
        suffix += ("_draws" if a.fit_on_draws else "") + (f"_n{a.detail_noise:g}" if a.detail_noise else "") + ("_shaped" if a.shaped_noise else "")
        kernels = {}
        if a.shaped_noise:  # each finer group below the first scale: its posterior draws' correlation between neighbours
            later = [g for g, group in enumerate(model.decoder.groups) if group.scale > 0]
            draws = [(i, u) for i, _, _, u in posterior_draws(model, faces[:SHAPED_FROM]) if i in later]
            for g in later:
                maps = [u for i, u in draws if i == g]
                kernels[tuple(maps[0].shape[1:])] = kernel_of(autocorrelation(maps))
        for k, label in [(k, f"joint_gmm{k}{suffix}") for k in a.components] + [(k, f"top_gmm{k}{suffix}") for k in a.top_only]:
            t0 = time.time()
            joint = label.startswith("joint")
            sampler = GMMSampler.fit(x if joint else x[:, : model.config.latent_dim], k, "full", max_fit=len(x) if a.flip else a.fit_on)
            fitted = time.time() - t0
            drawn = sampler.sample(a.n_samples, torch.Generator().manual_seed(0))
            if joint and a.detail_noise:  # the 12-px latents as training draws them: the posterior's mean plus its own spread
                noise = torch.randn(drawn[:, model.config.latent_dim :].shape, generator=torch.Generator().manual_seed(2))
                drawn[:, model.config.latent_dim :] += a.detail_noise * noise
            # a top-only draw takes every finer group from its prior; a joint one the 24-px (and finer) ones
            with shaped_prior_noise(kernels):
                faces = decode_latents(model, drawn, generator=torch.Generator().manual_seed(1), temperatures=(1.0, *a.fine_temperature))
            save_grid(faces[:64], out / f"{name}_{label}.png", nrow=8)
            row[label] = score_faces(faces, held, a.c2st_seeds, control=control) | {
                "dims": drawn.shape[1],
                "fit_seconds": round(fitted, 1),
                "encode_seconds": round(encoded, 1),
                "fitted_on": len(x),
            }
            print(name, label, ladder_line(row[label]), f"(fit {fitted:.0f} s on {len(x)} x {drawn.shape[1]})", flush=True)
            rows[name] = row
            figures = [f"{n} {label}: {ladder_line(r)}" for n, rr in rows.items() for label, r in rr.items()]
            _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)


if __name__ == "__main__":
    main()
