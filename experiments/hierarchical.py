"""Does a hierarchical VAE (latent groups at 6, 12 and 24 px, learned priors) draw faces real up to a larger size than the sharp preset?

Each variant trains for its budget on the 30,000 shared faces (one run at a time, each with the machine to
itself), then ``animevae evaluate`` measures it: held-out -ELBO (and the KL of each latent group), PSNR /
SSIM, the realism ladder (the converged two-sample test at 96, 48, 32, 24, 16 px, 3 seeds) of its samples
(the gmm on the top group; at 96 px also the model's own prior, N(0, I) on the top group) and of its reconstructions of held-out faces, the
positive control, the high-frequency ratio, images per second. For the hierarchical runs the finer groups'
temperature is then swept: the same top latents (the gmm's), the finer groups drawn at each temperature.

* ``--only sharp48 hier48 hier48_fb0 hier48_nocell hier48_fineb1``: 48 px, ``--explore-minutes`` (5) each: the
  sharp preset, the hierarchical model on it, the same without free bits (whose free KL lets the finer posteriors
  drift from their priors), without the residual cell after each join (cheaper per step), and with the finer
  groups' KL at full weight (``--fine-beta 1``: their posteriors held closer to their priors, which sampling draws from);
* ``--only stack48 stack48_2``: 48 px, the same budget: three (``hierarchical-stacked``) or two latent groups at each
  finer scale instead of one, about as many latent dimensions (within a group the prior draws every position
  independently given the coarser maps; each next group's prior reads what the earlier ones drew);
* ``--only sharp20 hier20 stack20``: 96 px, ``--minutes`` (20) each: the sharp preset against the hierarchical model
  and its stacked variant;
* ``--only preset_hier20``: the same budget, ``--preset hierarchical`` (the hierarchical model with its own sampler,
  joint-gmm: a mixture over the top and 12-px latents, fitted when training ends), on the ladder beside the top-only gmm;
* ``--only finest20``: the hierarchical preset with a third finer group, 2 channels at 48 x 48 (``hierarchical-48``):
  latents for what the 24-px group leaves to the decoder's average (reconstructions caught at 48 px and up);
* ``--only preset_hier20_fb0``: the hierarchical preset without free bits (at 48 px, without them the finer
  posteriors stayed nearer their priors and the gmm's samples were caught less often at the smallest rungs);
* ``--only sharp60 hier60``: each of those runs, copied and resumed to ``--long-minutes`` (60) in all
  (``animevae train --resume RUN --max-minutes 60``): what more minutes buy;
* ``--only hier120``: the hierarchical run of one hour, copied and resumed to ``--longer-minutes`` (120) in all:
  the two-hour row, its samples from the top-only gmm and from joint-gmm (the preset's sampler; the preset trains
  this same model).

    python experiments/hierarchical.py --only sharp48 hier48 hier48_fb0 hier48_nocell
    python experiments/hierarchical.py --only sharp20 hier20
    python experiments/hierarchical.py --only sharp60 hier60
    python experiments/hierarchical.py --only hier120
    python experiments/hierarchical.py --only hier48 --explore-minutes 0.5 --eval-limit 200 --n-samples 200 --results experiments/out/try.json

Each invocation adds its variants to the results file (kept while the evaluation settings are the same);
every sweep's first 64 faces go to the work folder as a grid.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import _record
from _runs import Steps, add_probe_args, earlier_results, evaluate_flags, fmt, ladder_line, score_faces

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.images import save_grid
from animevae.models.hierarchical import Hierarchical
from animevae.models.vae import register_architecture
from animevae.runs import load_run_config
from animevae.sampling.generate import load_model, sample_faces

NAME = "hierarchical"
QUESTION = "Does a hierarchical VAE (latent groups at 6, 12 and 24 px with learned priors) draw faces real up to a larger size than the sharp preset?"


@register_architecture("hierarchical-nocell")
class HierarchicalNoCells(Hierarchical):
    """The hierarchical model without the residual cell after each join (a variant of this experiment)."""

    CELLS = False


@register_architecture("hierarchical-stacked2")
class StackedTwo(Hierarchical):
    """Two latent groups at each finer scale, as many latent dimensions as ``hierarchical`` (a variant of this experiment)."""

    GROUPS = (4, 2)
    PER_SCALE = 2


@register_architecture("hierarchical-48")
class HierarchicalTo48(Hierarchical):
    """A third finer latent group, 2 channels at 48 x 48 (at 96 px), below the 12- and 24-px ones (a variant of this experiment)."""

    GROUPS = (8, 4, 2)
    TEMPERATURES = (1.0, 1.0, 1.0)


IN_PROCESS = ("hier48_nocell", "stack48_2", "finest20")  # variants whose architecture this script registers
SHARP, HIER = ["--preset", "sharp"], ["--preset", "sharp", "--arch", "hierarchical"]
AT_48 = ["--image-size", "48"]
VARIANTS = {  # name: (flags, budget: "explore" or "full")
    "sharp48": ([*SHARP, *AT_48], "explore"),
    "hier48": ([*HIER, *AT_48], "explore"),
    "hier48_fb0": ([*HIER, *AT_48, "--free-bits", "0"], "explore"),
    "hier48_nocell": ([*SHARP, "--arch", "hierarchical-nocell", *AT_48], "explore"),
    "hier48_fineb1": ([*HIER, *AT_48, "--fine-beta", "1"], "explore"),
    "stack48": ([*SHARP, "--arch", "hierarchical-stacked", *AT_48], "explore"),
    "stack48_2": ([*SHARP, "--arch", "hierarchical-stacked2", *AT_48], "explore"),
    "sharp20": (SHARP, "full"),
    "hier20": (HIER, "full"),
    "stack20": ([*SHARP, "--arch", "hierarchical-stacked"], "full"),
    "preset_hier20": (["--preset", "hierarchical"], "full"),
    "finest20": (["--preset", "hierarchical", "--arch", "hierarchical-48"], "full"),
    "preset_hier20_fb0": (["--preset", "hierarchical", "--free-bits", "0"], "full"),
    "sharp60": (SHARP, "long"),
    "hier60": (HIER, "long"),
    "hier120": (HIER, "longer"),
}
JOINT = ("preset_hier20", "finest20", "preset_hier20_fb0", "hier120")  # measured with the preset's own sampler too
RESUMED_FROM = {"sharp60": "sharp20", "hier60": "hier20", "hier120": "hier60"}  # the "long" variants: these runs, resumed
SWEEP = {"explore": (0.0, 0.5), "full": (0.6, 0.8), "long": (0.6, 0.8)}  # the finer groups' temperatures tried on the gmm's top latents (evaluate's row: 1)
SWEPT_AT_48 = ("hier48",)  # the 48-px runs swept (the others' temperature 1 is evaluate's own row)


def sweep(run: Path, data: str, n: int, seeds: int, control: dict, out: Path, earlier: dict, temperatures) -> dict:
    """The ladder of the gmm's faces with the finer groups drawn at each of ``temperatures`` (the same top latents);
    the temperatures in ``earlier`` are kept, not measured again."""
    model = load_model(str(run))
    held, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=data), model.config.image_size, n)
    rows = dict(earlier)
    for t in temperatures:
        if f"gmm_fine{t:g}" in rows:
            continue
        t0 = time.time()
        faces = sample_faces(model, str(run), "gmm", n, 0, temperatures=t)
        save_grid(faces[:64], out / f"{run.name}_gmm_fine{t:g}.png", nrow=8)
        rows[f"gmm_fine{t:g}"] = score_faces(faces, held, seeds, control=control) | {"seconds": round(time.time() - t0, 1)}
        print(run.name, f"gmm_fine{t:g}", ladder_line(rows[f"gmm_fine{t:g}"]), flush=True)
    return dict(sorted(rows.items(), key=lambda kv: float(kv[0].removeprefix("gmm_fine"))))


def key_figures(rows: dict) -> list[str]:
    lines = []
    for name, r in rows.items():
        ladders = [f"{s} {ladder_line(e)}" for s, e in r["samplers"].items() if "ladder" in e]
        ladders += [f"{s} {ladder_line(e)}" for s, e in r.get("sweep", {}).items()]
        groups = ", ".join(f"{g} {v:.0f}" for g, v in (r.get("kl_per_group") or {}).items())
        lines.append(
            f"{name} ({r['images_seen']:,} images, {fmt(r['train_minutes'], '.1f')} min, −ELBO {fmt(r['neg_elbo'], '.1f')}, PSNR {fmt(r['psnr'], '.2f')}"
            + (f", KL per group {groups}" if groups else "")
            + f"): recons {ladder_line(r['recons']) if r.get('recons') else '—'}, HF ratio {fmt(r.get('hf_ratio_recons'))}; "
            + "; ".join(ladders)
        )
    return lines


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20.0)
    p.add_argument("--explore-minutes", type=float, default=5.0, help="budget of the 48-px variants (default %(default)s)")
    p.add_argument("--long-minutes", type=float, default=60.0, help="budget in all of the resumed variants (default %(default)s)")
    p.add_argument("--longer-minutes", type=float, default=120.0, help="budget in all of hier120 (default %(default)s)")
    add_probe_args(p, eval_limit=1000, n_samples=1000, k=2, variants=list(VARIANTS), default=["sharp48", "hier48"])
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    settings = {"data": a.data, "eval_limit": a.eval_limit, "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    explore = evaluate_flags(a.eval_limit, a.n_samples, a.k, "gmm", "gmm", a.c2st_seeds)  # the 48-px variants: the gmm alone on the ladder
    full = evaluate_flags(a.eval_limit, a.n_samples, a.k, "prior,gmm", "prior,gmm", a.c2st_seeds)
    joint = evaluate_flags(a.eval_limit, a.n_samples, a.k, "gmm,joint_gmm", "gmm,joint_gmm", a.c2st_seeds)  # the preset's own sampler beside the gmm
    budgets = {"explore": a.explore_minutes, "full": a.minutes, "long": a.long_minutes, "longer": a.longer_minutes}
    for name in a.only:  # every training first, each with the machine to itself
        flags, budget = VARIANTS[name]
        minutes = budgets[budget]
        if name in RESUMED_FROM:
            if not steps.trained(name):
                # the 20-minute runs' checkpoints name the data by an earlier fingerprint (its files' paths and times),
                # which a fresh copy of the same faces does not match: the same 30,000 faces, so go on with them
                steps.resume(name, RESUMED_FROM[name], minutes, ("--allow-data-change",))
            continue
        steps.train_and_evaluate(name, flags, [], here=name in IN_PROCESS, train_only=True, minutes=minutes, keep_last=1)
    for name in a.only:
        flags, budget = VARIANTS[name]
        minutes = budgets[budget]
        evaluate = explore if budget == "explore" else joint if name in JOINT else full
        row = steps.train_and_evaluate(name, flags, evaluate, here=name in IN_PROCESS, minutes=minutes, keep_last=1)
        run = Path(a.out) / name
        evaluation = json.loads((run / "evaluation.json").read_text())
        row["kl_per_group"] = evaluation["latents"].get("kl_per_group")
        row["fine_temperatures"] = evaluation["settings"].get("fine_temperatures", [1.0])  # older records: every finer group at 1
        row["budget_minutes"] = minutes
        if name in RESUMED_FROM:
            row["resumed_from"] = RESUMED_FROM[name]
        if name.startswith(("hier", "stack")) and budget in SWEEP and (budget != "explore" or name in SWEPT_AT_48):
            temperatures = SWEEP[budget]
            steps.note(f"python experiments/hierarchical.py  # sweep of the finer groups' temperature on {name}: {', '.join(map(str, temperatures))}")
            earlier = rows.get(name, {}).get("sweep", {})
            row["sweep"] = sweep(run, a.data, a.n_samples, a.c2st_seeds, evaluation["c2st_control"], Path(a.out), earlier, temperatures)
        rows[name] = row
        commands = [*commands, *steps.commands]
        steps.commands.clear()
        _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, key_figures(rows))


if __name__ == "__main__":
    main()
