"""The figures of the README and the docs, written from experiments/results/*.json (and the benchmarks' own records,
benchmarks/results/*.json): none is copied by hand.

A page marks what is generated, and the text between the marks is what the JSON gives:

* ``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->``: a block (a table, a line) that ``BLOCKS[NAME]``
  renders from one or more result files;
* ``<!-- figure:FILE:PATH:FORMAT -->`` ... ``<!-- /figure -->``: one figure, the value at PATH (keys joined by
  ``/``) in results/FILE.json (experiments/ first, then benchmarks/), formatted with the Python format spec FORMAT (``.3f``, ``.0%``, ``,``).

    python experiments/pages.py            # rewrite the generated parts of README.md and every docs/ page
    python experiments/pages.py --check    # exit 1, naming each page whose generated parts differ from the JSON

``tests/test_experiments.py`` runs the check, and the documentation site renders every page through
``render`` while it builds (docs/hooks/figures.py), so neither a committed page nor the site can drift
from the figures measured.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
FOLDERS = (RESULTS, ROOT / "benchmarks" / "results")  # where a page's result files are looked for, in this order
BLOCK = re.compile(r"(?P<open><!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /generated:(?P=name) -->)", re.S)
FIGURE = re.compile(r"(?P<open><!-- figure:(?P<file>[\w-]+):(?P<path>[^:]+):(?P<fmt>[^ ]*) -->)(?P<body>.*?)(?P<close><!-- /figure -->)", re.S)


def pages() -> list[Path]:
    """Every page that may hold generated parts: the README and the documentation."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def result_path(name: str) -> Path:
    """results/NAME.json: the experiment's if there is one, else the benchmark's."""
    for folder in FOLDERS:
        if (folder / f"{name}.json").is_file():
            return folder / f"{name}.json"
    raise SystemExit(f"{name}.json: no such result file in {' or '.join(f.relative_to(ROOT).as_posix() for f in FOLDERS)} (a page names it)")


def result(name: str) -> dict:
    return json.loads(result_path(name).read_text())


def value(name: str, path: str):
    """The value at ``path`` (keys, or a list's indices, joined by '/') in results/NAME.json; a missing key stops with its name."""
    v = result(name)
    for key in path.split("/"):
        if isinstance(v, list) and key.isdigit() and int(key) < len(v):  # an item of a list, by its index
            v = v[int(key)]
            continue
        if not isinstance(v, dict) or key not in v:
            raise SystemExit(f"{result_path(name).relative_to(ROOT).as_posix()} has no {path!r} (stops at {key!r})")
        v = v[key]
    return v


def cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def cpu(record: dict) -> str:
    """The machine a record was measured on, in a few words: the CPU, its cores and its instruction flags."""
    m = record.get("machine") or {}
    flags = ", ".join(m.get("flags") or []) or "no flags recorded"
    return f"{m.get('cpu') or 'an unnamed CPU'}, {m.get('cores', '?')} cores ({flags})"


def experiments_table() -> str:
    """One row per experiments/results/NAME.json, in name order: script, question, key figures, command, commit, source."""
    lines = ["| experiment | question | key figures | command | commit | source |", "|---|---|---|---|---|---|"]
    for path in sorted(RESULTS.glob("*.json")):
        r = json.loads(path.read_text())
        figures = "<br>".join(cell(f) for f in r["key_figures"])
        commit = (r.get("commit") or "—")[:7]
        lines.append(
            f"| `experiments/{r['name']}.py` | {cell(r['question'])} | {figures} | `{cell(r['command'])}` | `{commit}` | {r['source']}, {r['date'][:10]} |"
        )
    return "\n".join(lines) + "\n"


def ladder_cells(ladder: dict, sizes: list[str]) -> str:
    return " | ".join(f"{ladder[s]:.3f}" if s in ladder else "—" for s in sizes)


def up_to(row: dict) -> str:
    if row.get("valid") is False:
        return "invalid"
    return f"**{row['real_up_to']} px**" if row.get("real_up_to") else "none"


def calibration_table() -> str:
    """sharpness_ladder.json's ladder rows: what each rung makes of real faces a little less sharp than they are."""
    r = result("sharpness_ladder")
    rows = {n: v for n, v in r["results"].items() if isinstance(v, dict) and "ladder" in v}
    sizes = list(next(iter(rows.values()))["ladder"])
    labels = {"real": "as they are"} | {f"blur_sigma{x}": f"blurred, σ = {x} px" for x in ("0.5", "0.75", "1")}
    labels |= {f"shrink{x}": f"shrunk to {x} px and enlarged again" for x in (48, 64, 72)}
    head = "| real faces, then … | " + " | ".join(s.replace("px", " px") for s in sizes) + " | real up to | HF ratio |"
    lines = [head, "|---|" + "---|" * (len(sizes) + 2)]
    lines += [f"| {labels.get(n, n)} | {ladder_cells(v['ladder'], sizes)} | {up_to(v)} | {v['hf_ratio']:.2f} |" for n, v in rows.items()]
    return "\n".join(lines) + f"\n\n*{r['settings']['n']:,} faces per set, {r['settings']['seeds']} classifier seeds, mean accuracy; {cpu(r)}.*\n"


SAMPLER_LABELS = {
    "recons": "reconstructions of training faces (the decoder's floor)",
    "gmm": "`gmm` (the sharp preset's own: 10 full-covariance components)",
    "gmm_t0.8": "`gmm` at temperature 0.8",
    "gmm_t1.2": "`gmm` at temperature 1.2",
    "gmm_k20": "`gmm`, 20 components",
    "gmm_k50": "`gmm`, 50 components",
    "gmm_critic": "`gmm` resampled by a latent critic",
    "gmm_critic_tau0.5": "`gmm` resampled by a latent critic, τ = 0.5",
    "gmm_chain1": "`gmm`, then one decode-encode step",
    "gmm_chain3": "`gmm`, then three decode-encode steps",
    "diffusion": "`diffusion` (MLP denoiser, DDIM)",
    "diffusion_ddpm": "`diffusion`, ancestral (DDPM) sampling",
    "diffusion_critic": "`diffusion` resampled by a latent critic",
    "diffusion_ddpm_critic": "`diffusion`, ancestral sampling, resampled by a latent critic",
    "mix_k2": "`mix`, k = 2 (the seed's)",
    "prior": "`prior`, N(0, I)",
    "two_stage": "`two-stage`",
    "conv_diffusion": "`diffusion` with a conv denoiser over the 16 × 6 × 6 map, fitted 5 minutes (DDIM)",
    "conv_diffusion_ddpm": "the same conv denoiser, ancestral sampling",
}


def sampler_label(name: str) -> str:
    base, _, seed = name.partition("@seed")
    return SAMPLER_LABELS.get(base, base) + (f", draw seed {seed}" if seed else "")


def sampler_table() -> str:
    """sampler_ladder.json: each candidate sampler's faces on the sharp run's ladder, beside its reconstructions."""
    r = result("sampler_ladder")
    rows = {n: v for n, v in r["results"].items() if n != "control"}
    sizes = list(next(iter(rows.values()))["ladder"])
    lines = ["| faces | " + " | ".join(s.replace("px", " px") for s in sizes) + " | real up to | diversity |", "|---|" + "---|" * (len(sizes) + 2)]
    order = ["recons", *sorted((n for n in rows if n != "recons"), key=lambda n: sum(rows[n]["ladder"].values()))]
    lines += [f"| {sampler_label(n)} | {ladder_cells(rows[n]['ladder'], sizes)} | {up_to(rows[n])} | {rows[n]['diversity']} |" for n in order]
    control = r["results"]["control"]
    return "\n".join(lines) + (
        f"\n\n*The sharp preset after 20 minutes ({rerank_row('sharp')['images_seen']:,} images seen); {r['settings']['n']:,} faces per set, "
        f"{r['settings']['seeds']} classifier seeds, mean accuracy, rows from best to worst; positive control {control['accuracy']:.3f} "
        f"({'valid' if control['caught'] else 'INVALID'}); {cpu(r)}. `experiments/sampler_ladder.py`.*\n"
    )


def rerank_row(name: str) -> dict:
    return result("ladder_rerank")["results"]["runs"][name]


def rerank_table() -> str:
    """ladder_rerank.json: each run's own sampler and its reconstructions on the ladder, with its budget and likelihood."""
    r = result("ladder_rerank")
    runs = r["results"]["runs"]
    first = next(iter(runs.values()))
    sizes = list(first["recons"]["ladder"])
    head = " / ".join(s.replace("px", "") for s in sizes) + " px"
    lines = [
        f"| run | budget, images seen | held-out −ELBO | its sampler, {head} | real up to | reconstructions, {head} | real up to |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in runs.items():
        own = next(n for n, e in row["samplers"].items() if "ladder" in e)
        e = row["samplers"][own]
        samples = " / ".join(f"{e['ladder'][s]:.3f}" if s in e["ladder"] else "—" for s in sizes)
        recons = " / ".join(f"{row['recons']['ladder'][s]:.3f}" if s in row["recons"]["ladder"] else "—" for s in sizes)
        budget = f"{row['minutes']:g} min, {row['images_seen']:,}"
        of_training = " †" if row.get("recons_of", "training") == "training" else ""
        continuous = " ‡" if name.startswith(("gaussian", "laplace")) else ""  # a density over continuous pixels: other units
        lines.append(
            f"| `{name}` ({own}) | {budget} | {row['neg_elbo']:,.1f}{continuous} | {samples} | {up_to(e)} | {recons}{of_training} | {up_to(row['recons'])} |"
        )
    held = hierarchical_row("sharp20")["recons"]["ladder"]
    return (
        "\n".join(lines) + f"\n\n*{r['settings']['eval_limit']:,} held-out faces, as many samples, 3 classifier seeds; reconstructions of held-out faces, each "
        "scored beside its own face, except †: reconstructions of training faces, measured before `evaluate` changed to held-out ones "
        f"(the sharp run's of held-out faces, measured again by `experiments/hierarchical.py`, read {' / '.join(f'{v:.3f}' for v in held.values())}); "
        f"‡: a Gaussian or Laplace density over the pixels, not comparable with the Bernoulli runs' nats; {cpu(r)}. `experiments/ladder_rerank.py`.*\n"
    )


def ladder_cost() -> str:
    """What ``evaluate``'s ladder cost on the sharp run, from the seconds each rung took."""
    row = rerank_row("sharp")
    seconds = row["samplers"]["gmm"]["ladder_seconds"]
    total = sum(seconds.values())
    rungs = ", ".join(f"{px.replace('px', ' px')} {s:.0f} s" for px, s in seconds.items())
    return (
        f"On the sharp run ({cpu(result('ladder_rerank'))}), one set's ladder with 3 classifier seeds took {total / 60:.1f} minutes ({rungs}), "
        f"the positive control {row['control']['seconds']:.0f} s; a default `evaluate` runs two ladders (the run's own sampler and the "
        f"reconstructions) and the control: about {(2 * total + row['control']['seconds']) / 60:.0f} minutes beside the other metrics. "
        "`--c2st-sizes 32,24,16` keeps the cheap rungs only.\n"
    )


def hierarchical_row(name: str) -> dict:
    return result("hierarchical")["results"]["runs"][name]


def passes(e: dict, smallest: str) -> str:
    """Where a ladder row passes, in words."""
    if e["real_up_to"]:
        return f"pass for real up to **{e['real_up_to']} px**"
    thumbnails = smallest.replace("px", "-px")
    return f"pass at **none** of those sizes yet (even as {thumbnails} thumbnails a classifier tells them apart {e['ladder'][smallest]:.1%} of the time)"


def readme_headline() -> str:
    """The README's headline: up to what size the recommended preset's samples, and its reconstructions of unseen faces, pass;
    the sharp preset beside it, and what an hour buys."""
    row, sharp = hierarchical_row("preset_hier20"), hierarchical_row("sharp20")
    hot = (row.get("fine_temperatures") or [1.0])[-1]  # the hour's mixture measured with the 24-px group as hot as the preset's
    hour = result("joint_gmm")["results"]["runs"]["hier60"]
    key = "joint_gmm30" + (f"_t{hot:g}" if hot != 1 else "")
    drawn = "preset_hier20" in result("redraw_detail")["results"]["runs"]  # the preset's mixture fitted on posterior draws
    long = hour.get(key + "_draws") if drawn else hour[key]
    two = result("hierarchical")["results"]["runs"].get("hier120", {}).get("samplers", {}).get("joint_gmm")  # the same model at two hours
    own, sharp_own = row["samplers"]["joint_gmm"], sharp["samplers"]["gmm"]
    drawn_recons = result("recon_draws")["results"]["runs"].get("preset_hier20", {}).get("all_draws")  # what `reconstruct` makes now
    tool = row | {"recons": drawn_recons} if drawn_recons else row
    caught_up = (own["real_up_to"] or 0) >= (tool["recons"]["real_up_to"] or 0)
    smallest = list(own["ladder"])[-1]
    recons = lambda r: f"up to {r['recons']['real_up_to']} px" if r["recons"]["real_up_to"] else "at none of them"  # noqa: E731
    at = lambda e, size: f"{e['ladder'][size]:.3f}"  # noqa: E731
    return (
        "**How real the faces are today.** On the realism ladder of `animevae evaluate` (a classifier trained until it stops "
        "improving, both sets shrunk to 96, 48, 32, 24 and 16 px; 50 % = it cannot tell, 60 % or less passes), the samples of the recommended "
        f"preset (`--preset hierarchical`, latents for the strokes, 20 minutes on 2 CPU cores, {row['images_seen']:,} images seen) {passes(own, smallest)}. "
        f"From 24 to 48 px they are caught clearly less often than the sharp preset's ({at(own, '48px')} against {at(sharp_own, '48px')} at 48 px, "
        f"{at(own, '24px')} against {at(sharp_own, '24px')} at 24 px; at 16 px {at(own, smallest)} against {at(sharp_own, smallest)}), and its "
        f"reconstructions of faces it never saw pass {recons(tool)}"
        + (f" (a posterior draw of every latent, as `reconstruct` makes them; at the means {recons(row)}; " if drawn_recons else " (")
        + f"the sharp preset's {recons(sharp)}; "
        f"PSNR {row['psnr']:.1f} dB against {sharp['psnr']:.1f}): "
        + ("its samples pass as far as they do; above that, both are caught " if caught_up else "the rest of the gap is the sampler's ")
        + "([its figures](docs/explanation/hierarchical.md), [what was tried](docs/explanation/sharper-faces.md)). "
        + (
            f"An hour instead of 20 minutes: the same model resumed to an hour, with the same kind of mixture, is caught "
            f"{at(long, '48px')} / {at(long, '32px')} / {at(long, '24px')} of the time at 48 / 32 / 24 px "
            f"(at 20 minutes {at(own, '48px')} / {at(own, '32px')} / {at(own, '24px')})"
            + (
                f"; resumed on to two hours, {at(two, '48px')} / {at(two, '32px')} / {at(two, '24px')}"
                + (f", real up to {two['real_up_to']} px" if two["real_up_to"] else "")
                if two
                else ""
            )
            + ".\n"
            if long
            else "\n"
        )
    )


def ladder_example() -> str:
    """The ladder table ``animevae evaluate`` printed for the sharp run, as it printed it."""
    from animevae.evaluation.report import format_ladder

    return "```text\n" + "\n".join(format_ladder(hierarchical_row("sharp20")["evaluate_ladder"])) + "\n```\n"


PRESET_ROWS = (  # preset, what it is, the record and run its figures come from, its own sampler
    ("`seed` (default)", "the seed notebook's model and training", "presets_96px", "seed", "mix_k2"),
    ("`quality`", "+ KL warm-up, free bits, EMA, reflect fill", "presets_20min", "quality", "gmm"),
    ("`sharp`", "quality + a 16 × 6 × 6 spatial latent, β = 0.1, bicubic rotation", "rotation_detail", "sharp_bicubic", "gmm"),
)
HIERARCHICAL_PRESET = (
    "**`hierarchical`**",
    "sharp + latent groups at 12 and 24 px, a mixture over the top and 12-px latents (measured before it drew the 24-px group)",
    "preset_hier20",
    "joint_gmm",
)


EARLIER_TEST = {"presets_20min"}  # records whose classifier stopped after 100 steps (it flattered blurry faces)


def which_preset() -> str:
    """The README's preset table: each preset's 20-minute run, from the record that measured it (named under the table)."""
    lines = [
        "| preset | what it is | images seen | held-out −ELBO (nats) | PSNR / SSIM | C2ST recons, 96 / 48 px | C2ST its sampler, 96 / 48 px | record |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pair = lambda a, b: "—" if a is None else (f"{a:.3f}" if b is None else f"{a:.3f} / {b:.3f}")  # noqa: E731
    for label, what, record, run, sampler in PRESET_ROWS:
        r = result(record)["results"]["runs"][run]
        e = r["samplers"][sampler]
        old = " ¹" if record in EARLIER_TEST else ""
        samples = f"{pair(e.get('c2st'), e.get('c2st_half'))}{old} ({sampler.replace('_k', ' k=')})"
        recons = pair(r.get("c2st_recons"), r.get("c2st_recons_half")) + old
        lines.append(
            f"| {label} | {what} | {r['images_seen']:,} | {r['neg_elbo']:,.1f} | {r['psnr']:.2f} dB / {r['ssim']:.3f} | {recons} | {samples} | `{record}.py` |"
        )
    label, what, run, sampler = HIERARCHICAL_PRESET
    r = hierarchical_row(run)
    pair = lambda e: f"{e['ladder']['96px']:.3f} / {e['ladder']['48px']:.3f}"  # noqa: E731  the realism ladder's first two rungs
    lines.append(
        f"| {label} | {what} | {r['images_seen']:,} | {r['neg_elbo']:,.1f} | {r['psnr']:.2f} dB / {r['ssim']:.3f} | {pair(r['recons'])} | "
        f"{pair(r['samplers'][sampler])} ({sampler.replace('_', '-')}) | `hierarchical.py` |"
    )
    note = "\n\n¹ the earlier two-sample test (a classifier stopped after 100 steps, at 96 px only), on another 2-core machine.\n"
    return "\n".join(lines) + note


PRESET_RUNS = (  # the presets reference's rows: label, record, run, its own sampler
    ("seed", "presets_96px", "seed", "mix_k2"),
    ("**sharp**", "rotation_detail", "sharp_bicubic", "gmm"),
    ("sharp with bilinear rotation (before)", "presets_96px", "sharp", "gmm"),
)


def preset_runs() -> str:
    """The presets reference's table: each 20-minute run's likelihood, reconstructions, sampler and fine detail."""
    head = ["preset", "images seen", "held-out −ELBO (IWAE k=8)", "PSNR / SSIM", "C2ST recons 96 / 48 px", "C2ST its sampler 96 / 48 px", "HF ratio samples"]
    lines = ["| " + " | ".join([*head, "FID / diversity"]) + " |", "|---|---|---|---|---|---|---|---|"]
    for label, record, run, sampler in PRESET_RUNS:
        r = result(record)["results"]["runs"][run]
        e = r["samplers"][sampler]
        lines.append(
            f"| {label} | {r['images_seen']:,} | {r['neg_elbo']:,.1f} ({r['neg_iwae']:,.1f}) | {r['psnr']:.2f} dB / {r['ssim']:.3f} | "
            f"{r['c2st_recons']:.3f} / {r['c2st_recons_half']:.3f} | {e['c2st']:.3f} / {e['c2st_half']:.3f} {sampler.replace('_k', ' k=')} | "
            f"{e['hf_ratio']:.3f} | {e['fid']:.3f} / {e['diversity']:.1f} |"
        )
    return "\n".join(lines) + "\n"


HIERARCHICAL_LABELS = {
    "sharp48": "`sharp` preset",
    "hier48": "`--arch hierarchical` on the sharp preset",
    "hier48_fb0": "the same, no free bits",
    "hier48_nocell": "the same, no residual cell after each join",
    "hier48_fineb1": "the same, the finer groups' KL at full weight (`--fine-beta 1`)",
    "sharp20": "`sharp` preset",
    "hier20": "`--arch hierarchical` on the sharp preset",
    "sharp60": "`sharp` preset, resumed to 60 minutes",
    "hier60": "`--arch hierarchical`, resumed to 60 minutes",
    "hier120": "`--arch hierarchical`, resumed to 120 minutes",
    "stack48": "`--arch hierarchical-stacked` (three groups per finer scale)",
    "stack48_2": "the same, two groups per finer scale",
    "stack20": "`--arch hierarchical-stacked` on the sharp preset",
    "preset_hier20": "`--preset hierarchical` (the same model, its own sampler `joint_gmm`)",
    "finest20": "`--preset hierarchical` with a third finer group, 2 × 48 × 48 (`hierarchical-48`)",
    "preset_hier20_fb0": "`--preset hierarchical --free-bits 0` (no free bits)",
}


def hierarchical_rows(names: list[str]) -> str:
    """hierarchical.json: each run's budget, likelihood, KL per group, and the ladder of its reconstructions and samples."""
    r = result("hierarchical")
    runs = {n: r["results"]["runs"][n] for n in names if n in r["results"]["runs"]}
    if not runs:
        return "*Not measured yet.*\n"
    sizes = list(next(iter(runs.values()))["recons"]["ladder"])
    head = " / ".join(s.replace("px", "") for s in sizes) + " px"
    lines = [
        f"| run | images seen (img/s) | held-out −ELBO | PSNR / SSIM | KL per group (nats) | faces | {head} | real up to | HF ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in runs.items():
        rate = row["images_seen"] / (60 * row["train_minutes"])  # images per second of the run's wall time, its epoch-end passes included
        groups = " / ".join(f"{v:.0f}" for v in row["kl_per_group"].values()) if row.get("kl_per_group") else f"{row['kl']:.0f}"
        label, quality = HIERARCHICAL_LABELS.get(name, name), f"{row['psnr']:.2f} dB / {row['ssim']:.3f}"
        first = f"| {label} | {row['images_seen']:,} ({rate:,.0f}) | {row['neg_elbo']:,.1f} | {quality} | {groups}"
        faces = [("reconstructions", row["recons"], row.get("hf_ratio_recons"))]
        temps = row.get("fine_temperatures") or [1.0]  # older records: every finer group at 1
        at_one = (", finer groups at T = " + " / ".join(f"{t:g}" for t in temps)) if row.get("kl_per_group") else ""
        joint = f"`joint_gmm` (top and 12-px group from one mixture, 24-px group at T = {temps[-1]:g})"
        faces += [(joint if s == "joint_gmm" else f"`{s}`{at_one}", e, e.get("hf_ratio")) for s, e in row["samplers"].items() if "ladder" in e]
        faces += [(f"`gmm`, finer groups at T = {k.removeprefix('gmm_fine')}", e, e.get("hf_ratio")) for k, e in row.get("sweep", {}).items()]
        for i, (what, e, hf) in enumerate(faces):
            lead = first if i == 0 else "| | | | |"
            cells = " / ".join(f"{e['ladder'][s]:.3f}" if s in e["ladder"] else "—" for s in sizes)
            lines.append(f"{lead} | {what} | {cells} | {up_to(e)} | {'—' if hf is None else f'{hf:.2f}'} |")
    return "\n".join(lines) + (
        f"\n\n*{r['settings']['eval_limit']:,} held-out faces, as many samples and reconstructions (of held-out faces), 3 classifier seeds, "
        "mean accuracy; KL per group: the top, then each finer group from coarse to fine (one figure: the single latent); "
        f"{cpu(r)}. `experiments/hierarchical.py`.*\n"
    )


GAP_ROWS = {  # hierarchical_gap.json's rows: where the top latent and the finer groups come from
    "top": "top from the posterior, finer groups from their priors",
    "top+12": "top and 12-px groups from the posterior, 24-px groups from their priors",
}


def hierarchical_gap_rows(names: list[str]) -> str:
    """hierarchical_gap.json beside hierarchical.json: for each run the ladder of its samples (and of joint_gmm.json's, whose
    mixture draws the 12-px group too), of its held-out faces decoded with the top (and the 12-px groups) from the posterior
    and the rest from the priors, and of its reconstructions."""
    gap, runs = result("hierarchical_gap"), result("hierarchical")["results"]["runs"]
    names = [n for n in names if n in gap["results"]["runs"] or n in result("joint_gmm")["results"]["runs"]]
    if not names:
        return "*Not measured yet.*\n"
    sizes = list(runs[names[0]]["recons"]["ladder"])
    lines = [f"| run | faces | {' / '.join(s.replace('px', '') for s in sizes)} px | real up to |", "|---|---|---|---|"]
    for name in names:
        sets = [("`gmm` samples (top from the gmm, finer groups from their priors)", runs[name]["samplers"]["gmm"])]
        joint = {k: e for k, e in result("joint_gmm")["results"]["runs"].get(name, {}).items() if re.fullmatch(r"(joint|top)_gmm\d+", k)}
        for key in sorted(joint, key=lambda k: (k.startswith("joint"), int(k.rsplit("gmm", 1)[1]))):
            n = int(key.rsplit("gmm", 1)[1])
            mixture = f"{n} component{'s' * (n != 1)}"
            if key.startswith("top_gmm"):  # the control: as many components on the top latent alone, fitted on the same faces
                sets.append((f"samples, top from a mixture of {mixture} fitted on the same faces, finer groups from their priors", joint[key]))
            else:
                sets.append((f"samples, top and 12-px group from one mixture fitted to both ({mixture}), 24-px group from its prior", joint[key]))
        sets += [(GAP_ROWS[k], e) for k, e in gap["results"]["runs"].get(name, {}).items()]
        sets += [("reconstructions (every group from the posterior)", runs[name]["recons"])]
        for i, (what, e) in enumerate(sets):
            cells = " / ".join(f"{e['ladder'][s]:.3f}" for s in sizes)
            lines.append(f"| {HIERARCHICAL_LABELS.get(name, name) if i == 0 else ''} | {what} | {cells} | {up_to(e)} |")
    return (
        "\n".join(lines)
        + "\n"
        + footnote(
            f"{gap['settings']['eval_limit']:,} held-out faces, each decoded as the row says (finer priors at temperature 1), scored against the faces "
            f"they were made from, and as many samples; 3 classifier seeds, mean accuracy; {cpu(gap)}. `experiments/hierarchical_gap.py`, "
            "`experiments/joint_gmm.py`"
        )
    )


RECON_ROWS = {  # recon_draws.json's rows: how each group is taken from the posterior
    "means": "every group at its posterior mean (`--latents mean`)",
    "fine_draws": "the top at its mean, the finer groups drawn",
    "all_draws": "every group drawn, as in a training step (`reconstruct`'s default now)",
}


def recon_draw_rows(names=("preset_hier20", "hier120")) -> str:
    """recon_draws.json beside hierarchical.json: each run's reconstructions of held-out faces with its latents at their
    posterior means (evaluate's) or drawn from the posterior, on the ladder, with PSNR and the high-frequency ratio."""
    r, runs = result("recon_draws"), result("hierarchical")["results"]["runs"]
    names = [n for n in names if n in r["results"]["runs"]]
    if not names:
        return "*Not measured yet.*\n"
    sizes = list(runs[names[0]]["recons"]["ladder"])
    lines = [f"| run | reconstructions | {' / '.join(s.replace('px', '') for s in sizes)} px | real up to | PSNR | HF ratio |", "|---|---|---|---|---|---|"]
    for name in names:
        own = runs[name]["recons"] | {"psnr": runs[name]["psnr"], "hf_ratio": runs[name]["hf_ratio_recons"]}
        sets = {"means": own} | r["results"]["runs"][name]
        for i, (how, e) in enumerate(sets.items()):
            cells = " / ".join(f"{e['ladder'][s]:.3f}" for s in sizes)
            label = HIERARCHICAL_LABELS.get(name, name) if i == 0 else ""
            lines.append(f"| {label} | {RECON_ROWS[how]} | {cells} | {up_to(e)} | {e['psnr']:.2f} dB | {e['hf_ratio']:.2f} |")
    return (
        "\n".join(lines)
        + "\n"
        + footnote(
            f"{r['settings']['eval_limit']:,} held-out faces, each reconstruction scored against the face it was made from; 3 classifier seeds, "
            "mean accuracy (the means rows: `evaluate`'s before reconstructions were drawn, `experiments/hierarchical.py`); "
            f"draws seeded 0; {cpu(r)}. `experiments/recon_draws.py`"
        )
    )


def joint_fit_rows(name: str = "preset_hier20") -> str:
    """joint_gmm.json's refits of one run's joint mixture (more faces, mirror images, another draw of faces, the 24-px
    group's temperature) beside the mixture ``evaluate`` fitted (hierarchical.json): how far a refit alone moves the ladder."""
    rows = result("joint_gmm")["results"]["runs"].get(name, {})
    own = hierarchical_row(name)["samplers"].get("joint_gmm")
    if not rows or own is None:
        return "*Not measured yet.*\n"
    sizes = list(own["ladder"])
    head = f"| mixture | fitted on | 12-px latents | 24-px group | {' / '.join(s.replace('px', '') for s in sizes)} px | real up to |"
    lines = [head, "|---|---|---|---|---|---|"]
    hot = (hierarchical_row(name).get("fine_temperatures") or [1.0])[-1]  # what evaluate drew the 24-px group at
    redrawn = name in result("redraw_detail")["results"]["runs"]  # its latents pass redone with posterior draws
    own_detail = "posterior draws" if redrawn else "posterior means"
    sets = [("30 components (`evaluate`'s, the preset's own)", "20,000 training faces", own_detail, f"T = {hot:g}", own)]
    for key, e in rows.items():
        m = re.fullmatch(r"joint_gmm(\d+)(_flip)?(?:_s(\d+))?(?:_t([\d.-]+))?(_draws)?(?:_n([\d.]+))?(_shaped)?", key)
        if not m:
            continue
        k, flip, seed, t, draws, noise, shaped = m.groups()
        faces = f"{e.get('fitted_on', 20000):,} latents: every training face and its mirror image" if flip else f"{e.get('fitted_on', 20000):,} training faces"
        refit = " (refitted here)" if not (flip or seed or t or draws or noise or shaped) else ""
        detail = "posterior draws" if draws else f"posterior means + {noise} × N(0, I)" if noise else "posterior means"
        hotter = f"T = {t or 1}" + (", noise correlated as the posterior's" if shaped else "")
        sets.append((f"{k} components{refit}", faces + (f" (another draw, seed {seed})" if seed else ""), detail, hotter, e))
    for what, faces, detail, t, e in sets:
        cells = " / ".join(f"{e['ladder'][s]:.3f}" for s in sizes)
        lines.append(f"| {what} | {faces} | {detail} | {t} | {cells} | {up_to(e)} |")
    r = result("joint_gmm")
    return (
        "\n".join(lines)
        + "\n"
        + footnote(
            f"{HIERARCHICAL_LABELS.get(name, name)}; {r['settings']['eval_limit']:,} held-out faces and as many samples, 3 classifier seeds, mean accuracy; "
            f"{cpu(r)}. `python experiments/joint_gmm.py --runs {name}`"
        )
    )


# The findings' tables in docs/explanation/sharper-faces.md. A row is (label, figures): figures maps a column's keys to a number,
# a text (shown as it is), None (shown as "—"), or a list of (numbers, name) groups (several samplers in one cell).
Column = tuple[str, str | tuple[str, ...], str | tuple | None]  # its keys (space-separated), format(s), best: "min", "max", None, or one per key
IMAGES: Column = ("images_seen", "{:,}", None)
ELBO: Column = ("neg_elbo", "{:,.1f}", "min")
KL: Column = ("kl", "{:,.0f}", None)
PSNR: Column = ("psnr", "{:.2f}", "max")
PSNR_SSIM: Column = ("psnr ssim", ("{:.2f}", "{:.3f}"), "max")
PSNR_SSIM_DB: Column = ("psnr ssim", ("{:.2f} dB", "{:.3f}"), "max")
RECONS: Column = ("c2st_recons c2st_recons_half", "{:.3f}", "min")
RECONS_96: Column = ("c2st_recons", "{:.3f}", "min")
SAMPLES: Column = ("samples", "{:.3f}", "min")
HF: Column = ("hf_ratio_recons hf_samples", "{:.3f}", "max")
KID: Column = ("kid", "{:.4f}", "min")


def bold(col: Column, best) -> Column:
    """``col`` with another rule for its bold figures (None: none)."""
    return (col[0], col[1], best)


def per_key(x, i: int):
    return x[i] if isinstance(x, tuple) else x


def span(values, spec: str) -> str:
    """Figures as a range, 'low–high', or one figure where they round alike."""
    low, high = format(min(values), spec), format(max(values), spec)
    return low if low == high else f"{low}–{high}"


def figures_table(head: str, rows: list[tuple[str, dict]], cols: list[Column]) -> str:
    """A markdown table under ``head``, one line per row: a cell holds the figures at its column's keys joined by ' / ', each in
    its format, and the best of the column's figures at each key (the lowest for "min", the highest for "max") in bold."""

    def groups(figures: dict, keys: str) -> list[tuple[tuple, str]]:
        got = [figures.get(k) for k in keys.split()]
        return got[0] if len(got) == 1 and isinstance(got[0], list) else [(tuple(got), "")]

    cells = [[groups(figures, keys) for keys, _, _ in cols] for _, figures in rows]
    bests = []
    for j, (_, _, best) in enumerate(cols):
        found = []
        for i in range(max(len(v) for row in cells for v, _ in row[j])):
            numbers = [v[i] for row in cells for v, _ in row[j] if i < len(v) and isinstance(v[i], int | float)]
            how = per_key(best, i)
            found.append((min if how == "min" else max)(numbers) if how and numbers else None)
        bests.append(found)

    def show(values: tuple, name: str, fmt, best: list) -> str:
        parts = ["—" if v is None else v if isinstance(v, str) else per_key(fmt, i).format(v) for i, v in enumerate(values)]
        strong = [isinstance(v, int | float) and v == best[i] for i, v in enumerate(values)]
        text = f"**{' / '.join(parts)}**" if all(strong) else " / ".join(f"**{p}**" if b else p for p, b in zip(parts, strong))
        return f"{text} {name}" if name else text

    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for (label, _), row in zip(rows, cells):
        lines.append(f"| {label} | " + " | ".join(", ".join(show(v, name, fmt, bests[j]) for v, name in row[j]) for j, (_, fmt, _) in enumerate(cols)) + " |")
    return "\n".join(lines) + "\n"


TEXTURE_RUNS = {  # periodic_texture.json's runs: how each was trained
    "sharp5": "`sharp` preset, 5 min",
    "adversarial5": "+ adversarial late phase, 5 min",
    "sharp20": "`sharp` preset, 20 min",
    "adversarial20": "+ adversarial late phase, 20 min",
    "hier20": "`--arch hierarchical`, 20 min",
    "preset_hier20": "`--preset hierarchical`, 20 min",
    "finest20": "`--preset hierarchical` + a 48-px group, 20 min",
}


def texture_table() -> str:
    """periodic_texture.json: the controls (real faces, then with a grid of 8-px rings added), then each run's samples and reconstructions."""
    r = result("periodic_texture")
    res = r["results"]
    lines = ["| faces | periodicity at the 8-px stride | largest at one harmonic |", "|---|---|---|"]
    for key, e in res["controls"].items():
        what = "other held-out real faces" if key == "real" else f"the same, with a grid of 8-px rings of ±{key.rsplit('_', 1)[1]} gray levels added"
        lines.append(f"| {what} | {e['periodicity']:.2f} | {e['peak']:.2f} |")
    for name, row in res["runs"].items():
        label = TEXTURE_RUNS.get(name, name)
        lines.append(f"| {label}: `{row['sampler']}` samples | {row['samples']['periodicity']:.2f} | {row['samples']['peak']:.2f} |")
        lines.append(f"| {label}: reconstructions | {row['recons']['periodicity']:.2f} | {row['recons']['peak']:.2f} |")
    n = r["settings"]["n"]
    return "\n".join(lines) + "\n" + footnote(f"{n} faces of each kind against {n} held-out real faces; {cpu(r)}. `experiments/periodic_texture.py`")


def footnote(text: str) -> str:
    return f"\n*{text}.*\n"


def run_figures(record: str, path: str, samplers: tuple[str, ...] = ("gmm",), named: str = "") -> dict:
    """An ``evaluate``-shaped run at results/PATH of results/RECORD.json as a row's figures: its own keys; its samplers' C2ST at
    96 / 48 px in one cell, each named by the template ``named``; their HF ratios (a range where several); the first's KID, FID and
    diversity; its images per second (the mean over its epochs, rounded half up)."""
    run = value(record, f"results/{path}")
    found = {s: run["samplers"][s] for s in samplers}
    rates = run.get("images_per_s_by_epoch")
    hf = [e["hf_ratio"] for e in found.values() if "hf_ratio" in e]
    return (
        run
        | {k: found[samplers[0]].get(k) for k in ("kid", "fid", "diversity")}
        | {
            "samples": [(tuple(e[k] for k in ("c2st", "c2st_half") if k in e), named.format(s.replace("_k", " k="))) for s, e in found.items()],
            "hf_samples": (span(hf, ".3f") if len(hf) > 1 else hf[0]) if hf else None,
            "rate": int(sum(rates) / len(rates) + 0.5) if rates else None,
        }
    )


def runs(record: str, labels: dict[str, str], **kw) -> list[tuple[str, dict]]:
    """results/RECORD.json's runs named in ``labels``, in that order, each under its label."""
    return [(label, run_figures(record, f"runs/{name}", **kw)) for name, label in labels.items()]


def option(settings: dict, flag: str) -> str:
    """The value of ``flag`` among a record's ``evaluate`` arguments."""
    argv = settings["evaluate"]
    return argv[argv.index(flag) + 1]


def evaluated(settings: dict) -> str:
    """What a record's ``evaluate`` arguments scored: held-out faces, samples, classifier seeds."""
    faces, samples, seeds = (option(settings, flag) for flag in ("--limit", "--n-samples", "--c2st-seeds"))
    samplers = option(settings, "--c2st-samplers").replace(",", ", ")
    return f"{int(faces):,} held-out faces, {int(samples):,} samples ({samplers}), {seeds} classifier seed{'' if seeds == '1' else 's'}"


def runs_note(*records: str) -> str:
    """The line under a table of runs trained for it: their minutes, what ``evaluate`` scored, the machine, the scripts."""
    r = result(records[-1])
    scripts = ", ".join(f"`experiments/{n}.py`" for n in records)
    return footnote(f"{r['settings']['minutes']:g} minutes per run from scratch, one seed; {evaluated(r['settings'])}, mean accuracy; {cpu(r)}. {scripts}")


def runs_finding(head: str, rows: list[tuple[str, dict]], cols: list[Column], *records: str) -> str:
    """A table of trained runs and its note."""
    return figures_table(head, rows, cols) + runs_note(*records)


def stage_rows(record: str, labels: dict[str, str]) -> list[tuple[str, dict]]:
    """A stage-shaped record (a stage applied to a run's reconstructions and gmm samples): the run as it is ("baseline"), then
    each variant in ``labels``, under the keys ``run_figures`` gives."""
    res = result(record)["results"]
    rows = []
    for name, label in labels.items():
        e = res["baseline"] if name == "baseline" else {k.removesuffix("_refined"): v for k, v in res["variants"][name].items()}
        recons, gmm = e["recons"], e["gmm"]
        figures = {"c2st_recons": recons["c2st"], "c2st_recons_half": recons["c2st_half"], "hf_ratio_recons": recons["hf_ratio"]}
        rows.append((label, figures | {"samples": [((gmm["c2st"], gmm["c2st_half"]), "")], "hf_samples": gmm["hf_ratio"]}))
    return rows


def stage_table(first: str, rows: list[tuple[str, dict]], hf: str = "{:.2f}", best: tuple = ("min", "min", None)) -> str:
    """Reconstructions and gmm samples at 96 / 48 px and their HF ratios, one line per row (a run, or a stage on it)."""
    cols = [bold(RECONS, best[0]), bold(SAMPLES, best[1]), (HF[0], hf, best[2])]
    return figures_table(f"| {first} | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm |", rows, cols)


def stage_finding(record: str, first: str, labels: dict[str, str], **kw) -> str:
    """A stage-shaped record's table (the run as it is, then each stage on it) and its note."""
    r = result(record)
    s = r["settings"]
    return stage_table(first, stage_rows(record, labels), **kw) + footnote(
        f"On the `{s['run']}` run; {s['n']:,} held-out faces, as many reconstructions and gmm samples, {s['c2st_seeds']} classifier seeds, "
        f"mean accuracy; {cpu(r)}. `experiments/{record}.py`"
    )


def one_figure(head: str, rows: list[tuple[str, object]], fmt: str) -> str:
    """A table of one figure a row."""
    return figures_table(head, [(label, {"v": v}) for label, v in rows], [("v", fmt, None)])


def blur_calibration() -> str:
    """blur_baseline.json: what the 100-step test made of real faces against real ones, blurred, and shrunk and enlarged again."""
    r = result("blur_baseline")
    s, sets, early = r["settings"], r["results"]["sets"], r["results"]["calibration"]["sets"]
    rows = [
        ("real against real", sets["real"]["c2st"]["accuracy"]),
        ("real faces blurred with a one-pixel Gaussian (σ = 1 px) against real", sets["blur_sigma1"]["c2st"]["accuracy"]),
        *((f"real faces downsampled to {px} px and back", early[f"down{px}"]["c2st_by_steps"]["100"]["accuracy"]) for px in (48, 32)),
    ]
    return one_figure("| the two sets | C2ST |", rows, "{:.2f}") + footnote(
        f"{s['n_per_set']:,} faces per set; {s['c2st']}; the first two rows {s['seeds']} classifier seeds, mean accuracy, the downsampled "
        f"ones one classifier seed (an earlier calibration); {cpu(r)}. `experiments/blur_baseline.py`"
    )


def presets_20min_note(names: tuple[str, ...]) -> str:
    r = result("presets_20min")
    s, where = r["settings"], {}
    for n in names:  # the runs of one machine together
        where.setdefault(cpu({"machine": r["machine"]["runs"][n]}), []).append(n)
    machines = "; ".join(f"{' and '.join(ns)}: {m}" for m, ns in where.items())
    return footnote(
        f"{s['minutes_per_run']} minutes per run on {s['trained_on']:,} faces, one seed; {s['evaluated_on']:,} held-out faces, "
        f"3 classifier seeds, mean accuracy, the 100-step test; {machines}. `experiments/presets_20min.py`"
    )


def decoder_floor() -> str:
    """presets_20min.json: the seed and quality presets' reconstructions and samplers under the 100-step test."""
    rows = []
    for name, samplers in (("seed", ("gmm", "mix_k2")), ("quality", ("gmm",))):
        run = value("presets_20min", f"results/runs/{name}")
        own = ", ".join(f"{s.replace('_k', ' k=')} {run['samplers'][s]['c2st']:.3f}" for s in samplers)
        rows.append((name, {"c2st_recons": run["c2st_recons"], "own": own}))
    head = "| preset | C2ST of reconstructions | C2ST of its samplers |"
    return figures_table(head, rows, [bold(RECONS_96, None), ("own", "", None)]) + presets_20min_note(("seed", "quality"))


def sharpening() -> str:
    """decoder_floor.json and elbo_variants.json: the seed preset's reconstructions sharpened, or given real high frequencies."""
    r = result("decoder_floor")
    sets = r["results"]["frequency_split"]["sets"]
    edge = [value("elbo_variants", f"results/probes/{p}/c2st_recons") for p in ("edge0.05", "edge0.2")]
    rows = [
        ("the reconstructions as they are", r["results"]["reconstructions"]["seed20"]["accuracy"]),
        ("unsharp-masked, amount 2", sets["unsharp_2"]["accuracy"]),
        ("unsharp-masked to the real faces' high-pass power (amount 5)", sets["unsharp_5"]["accuracy"]),
        ("the reconstruction's low frequencies + the real face's high frequencies", sets["recon_low_real_high"]["accuracy"]),
        ("a training loss on local edge energy (weights 0.05 and 0.2, 5-minute runs)", span(edge, ".3f")),
    ]
    return one_figure("| what was tried, on the seed preset's reconstructions | C2ST |", rows, "{:.3f}") + footnote(
        f"The seed preset's 20-minute run; {r['settings']['n']:,} faces per set, {r['settings']['seeds']} classifier seeds, mean accuracy, "
        f"the 100-step test; {cpu(r)}. `experiments/decoder_floor.py`, the edge-energy runs `experiments/elbo_variants.py`"
    )


SPATIAL_PROBES = {  # label: record, probe
    "seed preset": ("spatial_latent", "seed"),
    "seed preset, `--beta 0.1`": ("elbo_variants", "beta0.1"),
    "`--arch spatial --latent-dim 576`": ("spatial_latent", "spatial"),
    "the same with `--beta 0.1`": ("spatial_latent", "spatial_beta0.1"),
    "quality preset + spatial latent + `--beta 0.1` (the `sharp` preset)": ("spatial_latent", "sharp"),
}


def spatial_latent() -> str:
    """spatial_latent.json (and elbo_variants.json's β = 0.1 probe): 5-minute probes of the spatial latent; samplers but the mix, best first."""
    rows = []
    for label, (record, probe) in SPATIAL_PROBES.items():
        samplers = value(record, f"results/probes/{probe}/samplers")
        scored = tuple(sorted((n for n, e in samplers.items() if n != "mix_k2" and "c2st" in e), key=lambda n: samplers[n]["c2st"]))
        rows.append((label, run_figures(record, f"probes/{probe}", samplers=scored, named="{}")))
    r = result("spatial_latent")
    s = r["settings"]
    return figures_table("| run | PSNR / SSIM | C2ST recons | C2ST samples |", rows, [PSNR_SSIM, RECONS_96, SAMPLES]) + footnote(
        f"{s['minutes_per_run']} minutes per run on {s['trained_on']:,} of {s['limit']:,} faces, one seed; the 100-step test; {cpu(r)}. "
        "`experiments/spatial_latent.py`, the `--beta 0.1` row `experiments/elbo_variants.py`"
    )


def presets_20min() -> str:
    """presets_20min.json: the three presets after 20 minutes, each with its own sampler (the seed's beside gmm), under the 100-step test."""
    rows = []
    for name in ("seed", "quality", "sharp"):
        own = result("presets_20min")["settings"]["own_sampler"][name]
        figures = run_figures("presets_20min", f"runs/{name}", samplers=(own,), named="{}")
        if own != "gmm":
            (c2st, text), gmm = figures["samples"][0], figures["samplers"]["gmm"]["c2st"]
            figures["samples"] = [(c2st, f"{text} (gmm {gmm:.3f})")]
        rows.append((f"**{name}**" if name == "sharp" else name, figures))
    cols = [IMAGES, ELBO, ("kl", "{:,.1f}", None), PSNR_SSIM_DB, RECONS_96, SAMPLES, ("fid", "{:.3f}", "min")]
    head = "| preset | images seen | held-out −ELBO | KL | PSNR / SSIM | C2ST recons | C2ST, its sampler | FID (pixel features) |"
    return figures_table(head, rows, cols) + presets_20min_note(("seed", "quality", "sharp"))


def presets_96px() -> str:
    """presets_96px.json: the seed and sharp presets after 20 minutes under the converged test, at 96 and 48 px."""
    r = result("presets_96px")
    s, sharp = r["settings"], r["results"]["runs"]["sharp"]
    rows = [(name, run_figures("presets_96px", f"runs/{name}", samplers=(s["own_sampler"][name],), named="({})")) for name in ("seed", "sharp")]
    cols = [IMAGES, ELBO, PSNR_SSIM_DB, RECONS, bold(SAMPLES, None), ("hf_samples hf_ratio_recons", "{:.3f}", None)]
    cols.append(("fid diversity", ("{:.3f}", "{:.1f}"), ("min", "max")))
    head = (
        "| preset | images seen | held-out −ELBO | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST its sampler 96 / 48 px "
        "| HF ratio samples / recons | FID / diversity |"
    )
    return figures_table(head, rows, cols) + footnote(
        f"{s['minutes_per_run']:g} minutes per run, one seed; {sharp['evaluated_on']:,} held-out faces, "
        f"{len(sharp['c2st_recons_per_seed'])} classifier seeds, mean accuracy; {cpu(r)}. `experiments/presets_96px.py`"
    )


def adversarial_phase() -> str:
    """detail_options.json: the sharp run, and the same after a late adversarial phase on its decoder."""
    r = result("detail_options")
    s = r["settings"]
    rows = runs("detail_options", {"base": "the sharp run (3 classifier seeds)", "fm": f"+ {s['phase_minutes']:g} minutes of the adversarial decoder phase"})
    return stage_table("", rows, hf="{:.3f}", best=(None, None, None)) + footnote(
        f"`{' '.join(s['phase'] + s['variants']['fm'])}` on `{s['base_run']}`; the phase's row: {evaluated(s)}; {cpu(r)}. `experiments/detail_options.py`"
    )


def decoder_detail() -> str:
    """decoder_detail.json: the sharp decoder against one that draws at full resolution, 5 minutes each."""
    head = "| 5 minutes | images seen | −ELBO | PSNR | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm |"
    rows = runs("decoder_detail", {"sharp": "sharp (`--arch spatial`)", "spatialres": "`--arch spatialres`"})
    return runs_finding(head, rows, [bold(c, None) for c in (IMAGES, ELBO, PSNR, RECONS, SAMPLES, HF)], "decoder_detail")


def gaussian_20min() -> str:
    """rotation_detail.json's bicubic sharp run beside likelihood_gaussian_20min.json's learned-variance run, 20 minutes each."""
    rows = [
        ("sharp preset (Bernoulli, β = 0.1)", run_figures("rotation_detail", "runs/sharp_bicubic", named="{}")),
        ("`--likelihood gaussian --beta 1`", run_figures("likelihood_gaussian_20min", "runs/gaussian", samplers=("gmm", "diffusion"), named="{}")),
    ]
    head = "| 20 minutes | images seen | KL | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST samples 96 / 48 px | HF ratio recons / samples |"
    return runs_finding(head, rows, [IMAGES, KL, PSNR_SSIM, RECONS, SAMPLES, HF], "rotation_detail", "likelihood_gaussian_20min")


FREQUENCY_HEAD = "| {} | images seen | held-out −ELBO | PSNR | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm |"
FREQUENCY_LABELS = {"sharp": "sharp", "freq10": "`--objective frequency --freq-weight 10`", "freq100": "`--objective frequency --freq-weight 100`"}


def frequency_loss(minutes: int) -> str:
    """frequency_loss.json (5 minutes) or frequency_loss_20min.json (beside presets_96px.json's sharp run): the focal frequency loss."""
    if minutes == 5:
        rows, records = runs("frequency_loss", FREQUENCY_LABELS), ("frequency_loss",)
    else:
        rows = runs("presets_96px", {"sharp": "sharp"}) + runs("frequency_loss_20min", {"freq10": FREQUENCY_LABELS["freq10"]})
        records = ("presets_96px", "frequency_loss_20min")
    return runs_finding(FREQUENCY_HEAD.format(f"{minutes} minutes"), rows, [IMAGES, ELBO, PSNR, RECONS, SAMPLES, HF], *records)


def latent_priors() -> str:
    """latent_prior.json: each prior's samples from the sharp run's latents, beside its reconstructions (refiner.json's baseline)."""
    r = result("latent_prior")
    res, recons = r["results"], result("refiner")["results"]["baseline"]["recons"]
    epochs = lambda name: f"{res[name]['training']['epochs']:.0f}"  # noqa: E731
    rows = [
        ("the encoder (reconstructions, for reference)", "—", recons),
        ("`gmm` (the preset's sampler)", "seconds", res["gmm"]),
        ("`diffusion` (an MLP over the flat vector)", "its default fit", res["diffusion"]),
        (f"conv diffusion, 5 minutes ({epochs('conv_diffusion_5min')} epochs)", "5 min", res["conv_diffusion_5min"]),
        (f"conv diffusion, 15 minutes ({epochs('conv_diffusion_15min')} epochs)", "15 min", res["conv_diffusion_15min"]),
    ]
    rows = [(label, e | {"fitted": fitted, "seeds": ", ".join(f"{x:.3f}" for x in e["c2st_half_per_seed"])}) for label, fitted, e in rows]
    cols = [("fitted", "", None), ("c2st c2st_half", "{:.3f}", None), ("seeds", "", None), ("hf_ratio", "{:.2f}", None), ("diversity", "{:.1f}", None)]
    s = r["settings"]
    return figures_table("| latents from | fitted | C2ST 96 / 48 px | 48 px per classifier seed | HF ratio | diversity |", rows, cols) + footnote(
        f"Priors over the `{s['run']}` run's stored latents; {s['n']:,} held-out faces, as many samples, {s['c2st_seeds']} classifier seeds; "
        f"the encoder's row from `experiments/refiner.py`'s baseline; {cpu(r)}. `experiments/latent_prior.py`"
    )


def rotated_real_faces() -> str:
    """rotation_detail.json: real training faces rotated as training rotates them, against held-out faces as they are."""
    r = result("rotation_detail")
    labels = {
        "unrotated": "as they are",
        "nearest": "rotated, nearest (the seed preset)",
        "bilinear": "rotated, bilinear (the quality and sharp presets until now)",
        "bicubic": "rotated, `--interpolation bicubic`",
    }
    rows = [(label, r["results"]["real_faces_rotated"][name]) for name, label in labels.items()]
    seeds = len(rows[0][1]["c2st_per_seed"])
    cols = [("c2st c2st_half", "{:.3f}", ("max", None)), ("hf_ratio", "{:.2f}", "min")]
    return figures_table("| real training faces | C2ST 96 / 48 px | HF ratio |", rows, cols) + footnote(
        f"{int(option(r['settings'], '--limit')):,} training faces against as many held-out ones, {seeds} classifier seeds, "
        f"mean accuracy; {cpu(r)}. `experiments/rotation_detail.py`"
    )


def rotation_runs() -> str:
    """rotation_detail.json: the sharp preset trained 20 minutes with bilinear rotation (presets_96px.json's run) and with bicubic."""
    labels = {"sharp (presets_96px.json)": "sharp, bilinear rotation", "sharp_bicubic": "sharp, bicubic rotation"}
    head = "| 20 minutes | images seen | held-out −ELBO | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm | KID |"
    return runs_finding(head, runs("rotation_detail", labels), [IMAGES, ELBO, PSNR_SSIM, RECONS, SAMPLES, HF, KID], "rotation_detail")


def laplace_pixels() -> str:
    """laplace_pixels.json: the sharp preset with its Bernoulli likelihood and with a Laplace one, 5 minutes each."""
    head = "| 5 minutes | images seen | KL | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm | KID |"
    rows = runs("laplace_pixels", {"bernoulli": "Bernoulli (the preset's)", "laplace": "`--likelihood laplace`"})
    return runs_finding(head, rows, [IMAGES, KL, PSNR_SSIM, RECONS, SAMPLES, HF, KID], "laplace_pixels")


def gpu_budget() -> str:
    """gpu_budget.json: the sharp preset on 7,500 faces for a 20-minute CPU run's images and for 4.5 times as many, on a GPU."""
    r = result("gpu_budget")
    s, res = r["settings"], r["results"]["runs"]
    times = res["long"]["images_seen"] / res["cpu20"]["images_seen"]
    rows = runs("gpu_budget", {"cpu20": "a 20-minute CPU run's images", "long": f"{times:.1f} times as many"})
    cols = [IMAGES, bold(ELBO, None), PSNR_SSIM, bold(RECONS, (None, "min")), bold(SAMPLES, None), HF, KID]
    head = "| sharp preset, 7,500 faces | images seen | −ELBO | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm | KID |"
    return figures_table(head, rows, cols) + footnote(
        f"Trained on one {s['trained_on']['gpu']} on {s['train_faces']}, one seed each; evaluated against the {s['heldout']}: {evaluated(s)}, "
        f"mean accuracy; on {cpu(r)}. `experiments/gpu_budget.py`"
    )


def detail_ceiling() -> str:
    """detail_ceiling.json: what each stage makes of real faces shrunk to 48 px and enlarged again."""
    r = result("detail_ceiling")
    labels = {
        "none": "nothing",
        "unsharp": "an unsharp mask (amount 1.5)",
        "shock": "a shock filter (5 steps of 0.2)",
        "energy": "the refiner, energy score (8 × 8 patches)",
        "l1": "the refiner without noise, L1",
        "l1_20min": "the refiner without noise, L1",
    }
    trained = lambda t: f"{t['seconds'] / 60:.0f} min, {t['images_seen']:,} faces" if t else ""  # noqa: E731
    rows = [(label, r["results"][name] | {"trained": trained(r["results"][name].get("training"))}) for name, label in labels.items()]
    cols = [("trained", "", None), ("c2st c2st_half", "{:.3f}", "min"), ("hf_ratio", "{:.2f}", None)]
    s = r["settings"]
    return figures_table("| real faces shrunk to 48 px, then | training | C2ST 96 / 48 px | HF ratio |", rows, cols) + footnote(
        f"{s['n']:,} training faces the stages did not train on against {s['n']:,} held-out faces, {s['seeds']} classifier seeds, mean accuracy; "
        f"{cpu(r)}. `experiments/detail_ceiling.py`"
    )


def ssim_loss() -> str:
    """ssim_loss.json: the sharp preset's ELBO with and without a multi-scale SSIM term, 5 minutes each."""
    labels = {"sharp": "the preset's ELBO", "ssim1000": "+ 1,000 × MS-SSIM", "ssim10000": "+ 10,000 × MS-SSIM"}
    cols = [bold(IMAGES, "max"), ("rate", "{:,}", "max"), PSNR_SSIM, RECONS, SAMPLES, HF]
    head = "| 5 minutes | images seen | images/s | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm |"
    return runs_finding(head, runs("ssim_loss", labels), cols, "ssim_loss")


def decoder_noise() -> str:
    """decoder_noise.json: the sharp preset, and noise inputs in its decoder trained with the energy score, 5 minutes each."""
    labels = {"sharp": "the sharp preset", "energy100": "noise + 100 × energy score", "energy1000": "noise + 1,000 × energy score"}
    cols = [bold(IMAGES, "max"), ELBO, KL, PSNR_SSIM, RECONS, SAMPLES, (HF[0], "{:.2f}", "max"), KID]
    head = "| 5 minutes | images seen | held-out −ELBO | KL | PSNR / SSIM | C2ST recons 96 / 48 px | C2ST gmm 96 / 48 px | HF ratio recons / gmm | KID |"
    return runs_finding(head, runs("decoder_noise", labels), cols, "decoder_noise")


# The tables of docs/how-to/generate.md and docs/how-to/train-faster.md.


def strong(text: str, yes: bool = True) -> str:
    """``text`` in bold where ``yes``: a row the page recommends, not a column's best."""
    return f"**{text}**" if yes else text


def signed(x: float, spec: str) -> str:
    """``x`` formatted with ``spec``, a negative one with a true minus sign."""
    return format(x, spec).replace("-", "−")


def latents_of(r: dict) -> str:
    """A fit record's run and the shape of its stored latents, in words."""
    n, dim = r["results"]["latents"]
    return f"the `{r['settings']['run']}` run's {n:,} latents of {dim} numbers"


def faces_scored(r: dict, seeds: int) -> str:
    """How a fit record's faces were scored: the converged two-sample test at 96 px, and the machine."""
    return f"{r['settings']['n_samples']:,} faces a fit against as many held-out ones at 96 px, {seeds} classifier seeds, mean accuracy; {cpu(r)}"


DIFFUSION_STEPS_BEFORE = 3000  # DiffusionSampler.STEPS until experiments/sampler_budget.py measured half as many


def sampler_fit() -> str:
    """sampler_fit.json: each fitted sampler's fit time on a sharp run's latents (the gmm's for three fit seeds), its faces' C2ST and diversity."""
    from animevae.sampling.samplers import GMMSampler

    r = result("sampler_fit")
    s, fits = r["settings"], r["results"]["fits"]
    seeds = [n for n in fits if n.startswith("gmm torch seed ")]
    gmm = (
        f"gmm, {s['gmm_components']} full-covariance components on {s['max_fit']:,} of the latents "
        f"(EM in torch, not yet capped at {GMMSampler.MAX_ITER} iterations), fit seeds {' / '.join(n.rsplit(' ', 1)[1] for n in seeds)}"
    )
    labels = {
        "gmm torch, every point in each scatter (before)": "the same, every point in each component's scatter matrix (the M-step before)",
        "gmm scikit-learn (previous)": "the same with scikit-learn's `GaussianMixture` (how it was fitted before)",
        "two-stage": "two-stage",
        "diffusion": f"diffusion ({DIFFUSION_STEPS_BEFORE:,} steps, as it was then)",
    }
    keys = ("seconds", "c2st", "diversity_rms")
    rows = [(gmm, {k: [(tuple(fits[n][k] for n in seeds), "")] for k in keys}), *((label, fits[n]) for n, label in labels.items())]
    cols = [("seconds", "{:.1f}", ("min", None, None)), ("c2st", "{:.3f}", None), ("diversity_rms", "{:.1f}", None)]
    return figures_table(f"| fit | seconds | C2ST of {s['n_samples']:,} faces | diversity |", rows, cols) + footnote(
        f"Each fit timed alone on {latents_of(r)} ({s['minutes']} minutes of the sharp preset); "
        f"{faces_scored(r, len(fits[seeds[0]]['c2st_seeds']))}. `experiments/sampler_fit.py`"
    )


def gmm_budget() -> str:
    """sampler_budget.json: the gmm's EM for each fit seed, until it settles and capped: iterations, seconds, held-out
    log-likelihood, and the faces of each fit the cap changed."""
    r = result("sampler_budget")
    s, fits = r["settings"], r["results"]["gmm"]
    (cap,) = s["caps"]
    rows = []
    for seed, e in fits.items():
        c = e["capped"][str(cap)]
        capped = "the same fit" if c["same_fit"] else f"{c['seconds']:.1f}, {signed(c['held_out_ll'], '.2f')}"
        faces = "" if c["same_fit"] else f"{e['c2st']:.3f} → {c['c2st']:.3f}, {e['diversity_rms']:.1f} → {c['diversity_rms']:.1f}"
        rows.append((seed, e | {"ll": signed(e["held_out_ll"], ".2f"), "capped_fit": capped, "faces": faces}))
    seeds = next(len(e["c2st_seeds"]) for e in fits.values() if "c2st_seeds" in e)
    cols = [("iterations", "{:d}", None), ("seconds", "{:.1f}", None), ("ll", "", None), ("capped_fit", "", None), ("faces", "", None)]
    head = (
        "| gmm fit seed | iterations to settle | seconds | held-out log-likelihood (nats per latent) "
        f"| capped at {cap}: seconds, log-likelihood | C2ST, diversity (settled → capped) |"
    )
    n = r["results"]["latents"][0]
    return figures_table(head, rows, cols) + footnote(
        f"{s['gmm_components']} full-covariance components on {s['max_fit']:,} of {latents_of(r)}, each fit timed alone; "
        f"the log-likelihood of the {n - s['max_fit']:,} left out; {faces_scored(r, seeds)}. `experiments/sampler_budget.py`"
    )


def diffusion_budget() -> str:
    """sampler_budget.json: the diffusion prior fitted for each number of Adam steps: seconds, held-out v-loss, its faces."""
    from animevae.sampling.samplers import DiffusionSampler

    r = result("sampler_budget")
    fits = r["results"]["diffusion"]
    now = DiffusionSampler.STEPS
    rows = []
    for steps, e in fits.items():
        note = {DIFFUSION_STEPS_BEFORE: " (before)", now: " (now)"}.get(int(steps), "")
        c2st = f"{e['c2st']:.3f} ({', '.join(f'{x:.3f}' for x in e['c2st_seeds'])})"
        rows.append((strong(f"{int(steps):,} steps{note}", int(steps) == now), e | {"s": strong(f"{e['seconds']:.1f}", int(steps) == now), "c2st": c2st}))
    seeds = len(next(iter(fits.values()))["c2st_seeds"])
    cols = [("s", "", None), ("held_out_v_loss", "{:.4f}", None), ("c2st", "", None), ("diversity_rms", "{:.1f}", None)]
    return figures_table("| diffusion fit | seconds | held-out v-loss | C2ST (classifier seeds) | diversity |", rows, cols) + footnote(
        f"Each fit timed alone on {latents_of(r)}; the v-loss on the latents of its {r['results']['held_out_faces']:,} held-out faces; "
        f"{faces_scored(r, seeds)}. `experiments/sampler_budget.py`"
    )


SAMPLER_ROWS = (  # the samplers table of docs/how-to/generate.md: presets_20min.json's run, its sampler, whether its lowest classifier seed is named
    ("seed", "mix_k2", False),
    ("seed", "gmm", False),
    ("sharp", "gmm", False),
    ("sharp", "mix_k2", True),
    ("sharp", "diffusion", False),
)


def samplers_20min() -> str:
    """presets_20min.json: the seed and sharp presets' 20-minute runs, each with several samplers: C2ST (the 100-step test), FID,
    diversity; the recommended preset's own sampler in bold."""
    r = result("presets_20min")
    own = r["settings"]["own_sampler"]
    rows = []
    for run, sampler, low in SAMPLER_ROWS:
        e = r["results"]["runs"][run]["samplers"][sampler]
        mine = sampler == own[run]
        name = sampler.replace("_k", " k=") + (" (its own)" if mine else "")
        c2st = strong(f"{e['c2st']:.3f}", mine and run == "sharp") + (f" (one classifier seed at {min(e['c2st_per_seed']):.3f})" if low else "")
        rows.append((f"{run} preset", e | {"sampler": strong(name, mine and run == "sharp"), "c2st": c2st}))
    cols = [("sampler", "", None), ("c2st", "", None), ("fid", "{:.3f}", "min"), ("diversity", "{:.1f}", None)]
    return figures_table("| run | sampler | C2ST | FID (pixel features) | diversity |", rows, cols) + presets_20min_note(("seed", "sharp"))


MIX_LABELS = {
    "mix k=1": "mix k=1 (stored latents: reconstructions of training faces)",
    "mix k=2": "mix k=2 (default)",
    "mix k=all": "mix k=all (the literal reading)",
    "prior N(0, I)": "prior N(0, I), for comparison",
}


def mix_k_diversity() -> str:
    """mix_k_diversity.json: the diversity of the seed's latent mix for each k, beside N(0, I); the default k in bold."""
    r = result("mix_k_diversity")
    s = r["settings"]
    rows = []
    for name, e in r["results"]["diversity"].items():
        default = name == "mix k=2"
        figures = {"rms": strong(f"{e['mean_pairwise_rms']:.1f}", default), "rel": strong(f"{e['relative_to_k1']:.2f}", default)}
        rows.append((strong(MIX_LABELS.get(name, name), default), figures))
    return figures_table("| sampler | mean pairwise distance | relative to k = 1 |", rows, [("rms", "", None), ("rel", "", None)]) + footnote(
        f"On {s['run']}: {s['stored_latents']:,} stored latents; {s['n']} faces per setting, {s['seeds']} seeds, mean pairwise RMS "
        f"pixel distance (0–255); {cpu(r)}. `experiments/mix_k_diversity.py`"
    )


def about_minutes(seconds: float) -> str:
    """A duration in minutes as 'about' means it: whole minutes from 10 on, half minutes below."""
    m = seconds / 60
    return f"about {m:.0f} minutes" if m >= 10 else f"about {round(2 * m) / 2:g} minutes"


GPU_LABELS = {
    "seed, batch 64": "seed preset, batch 64 (the seed's)",
    "sharp, batch 64": "sharp preset, batch 64 (its gmm fitted on the GPU at the end)",
    "seed, batch 256": "seed preset, `--batch-size 256`",
}


def gpu_runs() -> tuple[dict, int, dict[str, int], dict[str, str]]:
    """benchmarks/results/gpu_speed.json: the record, the Hub's face count its estimates are for, and per run its last
    epoch's images/s and 100 epochs of those faces at that rate ("about N minutes")."""
    r = result("gpu_speed")
    hours = next(k for k in next(iter(r["results"].values())) if k.startswith("hours_for_100_epochs_of_"))
    faces = int(hours.rsplit("_", 1)[1])
    rate = {name: run["images_per_s_by_epoch"][-1] for name, run in r["results"].items()}
    return r, faces, rate, {name: about_minutes(100 * faces / v) for name, v in rate.items()}


def gpu_speed() -> str:
    """benchmarks/results/gpu_speed.json: each run's images/s in its last (3rd) epoch on one GPU, and 100 epochs of the Hub's
    faces at that rate."""
    r, faces, rate, took = gpu_runs()
    rows = [(label, {"rate": rate[name], "hub": took[name]}) for name, label in GPU_LABELS.items()]
    epochs = len(r["results"]["seed, batch 64"]["images_per_s_by_epoch"])
    nth = f"{epochs}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(epochs, 'th') }"
    head = f"| run | images/s ({nth} epoch) | 100 epochs of the Hub's {faces:,} faces |"
    return figures_table(head, rows, [("rate", "{:,}", None), ("hub", "", None)]) + footnote(
        f"One {r['gpu']}, torch {r['torch']}, bf16; {epochs} epochs a run, 100 epochs at the last one's rate. `benchmarks/gpu_speed.py`"
    )


def gpu_speed_sentence() -> str:
    """The README's GPU sentence: 100 epochs of the Hub's faces on one GPU, per run, at its last epoch's rate."""
    r, faces, rate, took = gpu_runs()
    took = {name: t.removesuffix(" minutes") for name, t in took.items()}
    return (
        f"On one {r['gpu'].removeprefix('NVIDIA ')} GPU (torch {r['torch'].split('+')[0]}, bf16) the seed's 100 epochs over the Hub's {faces:,} faces take "
        f"{took['seed, batch 64']} minutes at its batch of 64 ({rate['seed, batch 64']:,} images/s), the sharp preset's "
        f"{took['sharp, batch 64']} ({rate['sharp, batch 64']:,} images/s), the seed's {took['seed, batch 256']} at batch 256 "
        f"({rate['seed, batch 256']:,} images/s) ([train faster](docs/how-to/train-faster.md), `benchmarks/gpu_speed.py`).\n"
    )


def train_speed() -> str:
    """benchmarks/results/train_speed.json: animevae's defaults against the seed notebook's loop on a 2-core CPU (the make bench
    run): images/s in the timed windows and by the wall clock, and the held-out loss after the same images."""
    r = result("train_speed")
    amx = r["results"]["amx_machine"]
    bench = amx["make_bench"]
    keys = ("images_per_s", "wall_clock_images_per_s", "heldout_loss")
    rows = [(label, bench[k]) for k, label in (("baseline", "the seed notebook's way"), ("project", "animevae defaults"))]
    ratio = (f"{bench['speedup_images_per_s']:.2f}×", f"{bench['speedup_wall_clock']:.2f}×", f"{bench['heldout_loss_difference_percent']:+.2f} %")
    rows.append(("ratio", dict(zip(keys, ratio))))
    images = r["settings"]["images_trained"]
    head = f"| path | images/s (data path + augmentation + step) | wall-clock images/s | held-out loss after {images:,} images |"
    return figures_table(head, rows, list(zip(keys, ("{:,}", "{:,}", "{:,.1f}"), (None,) * 3))) + footnote(
        f"`{bench['command']}`: {images:,} images each way, the held-out loss on {r['settings']['held_out']} faces; {cpu(amx)}. `benchmarks/train_speed.py`"
    )


def precision_speed() -> str:
    """benchmarks/results/precision.json: per preset, the training step's images/s in bf16 and in fp32 on one CPU, the
    bf16 / fp32 matmul rate ``--precision auto`` measures, and what it picks there."""
    r = result("precision")
    f = r["results"]
    lines = ["| preset | bf16 step (images/s) | fp32 step (images/s) | bf16 / fp32 |", "|---|---|---|---|"]
    for name, v in f["presets"].items():
        lines.append(f"| `{name}` | {v['bf16_step_img_s']:,} | {v['fp32_step_img_s']:,} | {v['bf16_over_fp32']:.2f}× |")
    return (
        "\n".join(lines)
        + "\n"
        + footnote(
            f"`{r['command']}`: batch 64, real faces through the real augmentation, the best of {r['settings']['rounds']} alternating rounds of "
            f"{r['settings']['steps']} steps; a bf16 matmul ran at {f['bf16_matmul_speedup']:.2f}× fp32's, so `--precision auto` picked "
            f"{f['auto_picks']}; {cpu(r)}. `benchmarks/precision.py`"
        )
    )


FINE_ROWS = {  # joint_gmm_fine.json's rows, in the table's order
    "joint_gmm": "the run's own `joint-gmm`: top and 12-px latents from one mixture, the 24-px group from its prior (T = 1.2)",
    "fine_pca0": "the control: the 24-px group independent of the rest, each dimension with its posterior draws' mean and spread",
    "fine_pca": "the 24-px group's first {k} principal components in the mixture, the rest independent",
    "recons": "reconstructions of the held-out faces (every group drawn from the posterior): the ceiling",
}


def fine_mixture_rows(name: str = "preset_hier") -> str:
    """joint_gmm_fine.json: one run's joint-gmm against a mixture that also draws the 24-px group's principal components,
    the K = 0 control and the reconstructions, on the same held-out faces and positive control."""
    r = result("joint_gmm_fine")
    rows = r["results"]["runs"].get(name)
    if not rows:
        return "*Not measured yet.*\n"
    scored = {k: v for k, v in rows.items() if k not in ("control", "training")}
    sizes = list(next(iter(scored.values()))["ladder"])
    lines = [f"| faces | {' / '.join(s.replace('px', '') for s in sizes)} px | real up to | HF ratio |", "|---|---|---|---|"]
    kind = lambda label: label if label in FINE_ROWS else "fine_pca"  # noqa: E731
    for label in sorted(scored, key=lambda k: list(FINE_ROWS).index(kind(k))):
        e = scored[label]
        what = FINE_ROWS[kind(label)].format(k=label.removeprefix("fine_pca").split("_")[0])
        if e.get("explained"):
            what += f" ({e['explained']:.0%} of its variance)"
        if "_r" in label:
            what += f", the rest at {label.split('_r')[-1]} × its spread"
        lines.append(f"| {what} | {ladder_cells(e['ladder'], sizes).replace(' | ', ' / ')} | {up_to(e)} | {e['hf_ratio']:.2f} |")
    tool = r["results"]["runs"].get(f"{name}_tool", {}).get("joint_gmm")  # the same run through the tool's joint-gmm now
    if tool is not None:
        what = "the tool's `joint-gmm` now, fitted when its latents pass is redone (`experiments/redraw_detail.py`)"
        at = len(lines) - ("recons" in scored)  # before the ceiling
        lines.insert(at, f"| {what} | {ladder_cells(tool['ladder'], sizes).replace(' | ', ' / ')} | {up_to(tool)} | {tool['hf_ratio']:.2f} |")
    control, settings, trained = rows["control"], r["settings"], rows["training"]
    return (
        "\n".join(lines)
        + "\n"
        + footnote(
            f"`--preset hierarchical` trained {trained['train_minutes']:.0f} minutes ({trained['images_seen']:,} images) on the CPU named here; "
            f"{settings['eval_limit']:,} held-out faces and {settings['n_samples']:,} samples, {settings['c2st_seeds']} classifier seeds, mean accuracy; "
            f"mixtures of {settings['components']} components fitted on {settings['fit_on']:,} training faces; positive control caught at "
            f"{control['accuracy']:.3f}; {cpu(r)}. `experiments/joint_gmm_fine.py`"
        )
    )


BLOCKS: dict[str, Callable[[], str]] = {
    "blur-calibration": blur_calibration,
    "decoder-floor": decoder_floor,
    "sharpening": sharpening,
    "spatial-latent": spatial_latent,
    "presets-20min": presets_20min,
    "presets-96px": presets_96px,
    "adversarial-decoder-phase": adversarial_phase,
    "decoder-detail": decoder_detail,
    "gaussian-likelihood-20min": gaussian_20min,
    "frequency-loss-5min": lambda: frequency_loss(5),
    "frequency-loss-20min": lambda: frequency_loss(20),
    "adversarial-refiner": lambda: stage_finding(
        "refiner",
        "6 minutes of refiner",
        {
            "baseline": "none (the sharp run as it is)",
            "noise_diffaug": "a noise input, DiffAugment",
            "plain": "plain: no noise input, no DiffAugment",
            "strong_d": "the same, discriminator at 5 × the learning rate",
            "half": "plain, the residual drawn at 48 px and enlarged",
        },
    ),
    "latent-priors": latent_priors,
    "rotated-real-faces": rotated_real_faces,
    "rotation-runs": rotation_runs,
    "laplace-pixels": laplace_pixels,
    "energy-refiner": lambda: stage_finding(
        "energy_refiner",
        "refiner (6 minutes unless said)",
        {
            "baseline": "none (the run as it is)",
            "patch8": "energy score, 8 × 8 patches",
            "patch16": "energy score, 16 × 16 patches",
            "patch8_20min": "energy score, 8 × 8 patches, 20 minutes",
        },
        best=((None, "min"), "min", "max"),
    ),
    "gpu-budget": gpu_budget,
    "detail-ceiling": detail_ceiling,
    "detail-chain": lambda: stage_finding(
        "detail_chain",
        "",
        {"baseline": "the run as it is", "sr": "+ the L1 enlarger (6 min)", "energy_sr": "+ energy refiner (6 min), shrunk, L1 enlarger (6 min)"},
    ),
    "shock-filter": lambda: stage_finding(
        "shock_filter", "", {"baseline": "the run as it is", "shock5": "+ a shock filter, 5 steps of 0.2", "shock10": "+ a shock filter, 10 steps of 0.2"}
    ),
    "ssim-loss": ssim_loss,
    "decoder-noise": decoder_noise,
    "hierarchical-explore": lambda: hierarchical_rows(["sharp48", "hier48", "hier48_fb0", "hier48_nocell", "hier48_fineb1", "stack48", "stack48_2"]),
    "hierarchical-20min": lambda: hierarchical_rows(["sharp20", "hier20", "stack20", "preset_hier20", "finest20", "preset_hier20_fb0"]),
    "hierarchical-60min": lambda: hierarchical_rows(["sharp20", "sharp60", "hier20", "hier60", "hier120"]),
    "hierarchical-gap": lambda: hierarchical_gap_rows(["hier20", "hier60", "stack20"]),
    "joint-gmm-fits": joint_fit_rows,
    "recon-draws": recon_draw_rows,
    "preset-runs": preset_runs,
    "which-preset": which_preset,
    "experiments-table": experiments_table,
    "ladder-calibration": calibration_table,
    "ladder-samplers": sampler_table,
    "ladder-rerank": rerank_table,
    "periodic-texture": texture_table,
    "ladder-cost": ladder_cost,
    "ladder-example": ladder_example,
    "readme-headline": readme_headline,
    "readme-gpu-speed": gpu_speed_sentence,
    "sampler-fit-times": sampler_fit,
    "gmm-fit-budget": gmm_budget,
    "diffusion-fit-budget": diffusion_budget,
    "samplers-20min": samplers_20min,
    "mix-k-diversity": mix_k_diversity,
    "gpu-speed": gpu_speed,
    "train-speed": train_speed,
    "precision-speed": precision_speed,
    "fine-mixture": fine_mixture_rows,
}


def render(text: str) -> str:
    """``text`` with every generated part rewritten from the result files."""

    def block(m: re.Match) -> str:
        name = m["name"]
        if name not in BLOCKS:
            raise SystemExit(f"<!-- generated:{name} -->: no such block; known: {', '.join(BLOCKS)}")
        return m["open"] + BLOCKS[name]() + m["close"]

    def figure(m: re.Match) -> str:
        return m["open"] + format(value(m["file"], m["path"]), m["fmt"]) + m["close"]

    return FIGURE.sub(figure, BLOCK.sub(block, text))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--check", action="store_true", help="only check that every page's generated parts are up to date")
    a = p.parse_args()
    stale, split = [], []
    for page in pages():
        old = page.read_text()
        # a line that opens with a figure's mark starts an HTML block in Markdown: its paragraph would break there
        split += [f"{page.relative_to(ROOT).as_posix()}:{i}" for i, line in enumerate(old.splitlines(), 1) if line.startswith("<!-- figure:")]
        new = render(old)
        if new != old:
            stale.append(page.relative_to(ROOT).as_posix())
            if not a.check:
                page.write_text(new)
    if split:
        sys.exit(f"a figure's mark opens these lines, which breaks their paragraph on the site: {', '.join(split)}; join each to the line before")
    if a.check and stale:
        sys.exit(f"out of date (their generated parts differ from experiments/results): {', '.join(stale)}; run python experiments/pages.py")
    print(f"{'updated' if stale else 'up to date'}: {', '.join(stale) or 'every page'}")


if __name__ == "__main__":
    main()
