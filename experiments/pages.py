"""The figures of the README and the docs, written from experiments/results/*.json: none is copied by hand.

A page marks what is generated, and the text between the marks is what the JSON gives:

* ``<!-- generated:NAME -->`` ... ``<!-- /generated:NAME -->``: a block (a table, a line) that ``BLOCKS[NAME]``
  renders from one or more result files;
* ``<!-- figure:FILE:PATH:FORMAT -->`` ... ``<!-- /figure -->``: one figure, the value at PATH (keys joined by
  ``/``) in results/FILE.json, formatted with the Python format spec FORMAT (``.3f``, ``.0%``, ``,``).

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
BLOCK = re.compile(r"(?P<open><!-- generated:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<close><!-- /generated:(?P=name) -->)", re.S)
FIGURE = re.compile(r"(?P<open><!-- figure:(?P<file>[\w-]+):(?P<path>[^:]+):(?P<fmt>[^ ]*) -->)(?P<body>.*?)(?P<close><!-- /figure -->)", re.S)


def pages() -> list[Path]:
    """Every page that may hold generated parts: the README and the documentation."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def result(name: str) -> dict:
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        raise SystemExit(f"{path.relative_to(ROOT)}: no such result file (a page names it)")
    return json.loads(path.read_text())


def value(name: str, path: str):
    """The value at ``path`` (keys joined by '/') in results/NAME.json; a missing key stops with its name."""
    v = result(name)
    for key in path.split("/"):
        if not isinstance(v, dict) or key not in v:
            raise SystemExit(f"experiments/results/{name}.json has no {path!r} (stops at {key!r})")
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
        lines.append(f"| `{name}` ({own}) | {budget} | {row['neg_elbo']:,.1f} | {samples} | {up_to(e)} | {recons} | {up_to(row['recons'])} |")
    return (
        "\n".join(lines)
        + f"\n\n*{r['settings']['eval_limit']:,} held-out faces, as many samples, 3 classifier seeds; {cpu(r)}. `experiments/ladder_rerank.py`.*\n"
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
    and the hierarchical model beside it."""
    row, hier = hierarchical_row("sharp20"), hierarchical_row("hier20")
    own, hier_own = row["samplers"]["gmm"], hier["samplers"]["gmm"]
    smallest = list(own["ladder"])[-1]
    recons = lambda r: f"up to {r['recons']['real_up_to']} px" if r["recons"]["real_up_to"] else "at none of them"  # noqa: E731
    return (
        "**How real the faces are today.** On the realism ladder of `animevae evaluate` (a classifier trained until it stops "
        "improving, both sets shrunk to 96, 48, 32, 24 and 16 px; 50 % = it cannot tell, 60 % or less passes), the samples of the recommended "
        f"preset (`--preset sharp`, 20 minutes on 2 CPU cores, {row['images_seen']:,} images seen) {passes(own, smallest)}. Its "
        f"reconstructions of faces it never saw pass {recons(row)}: the gap between the two is the sampler's "
        "([what was tried](docs/explanation/sharper-faces.md)). The hierarchical model (`--arch hierarchical`, latents for the strokes, "
        f"the same 20 minutes: {hier['images_seen']:,} images) reconstructs them with more detail (PSNR {hier['psnr']:.1f} dB against "
        f"{row['psnr']:.1f}; real {recons(hier)}) and its samples {passes(hier_own, smallest)} "
        "([its figures](docs/explanation/hierarchical.md)).\n"
    )


def ladder_example() -> str:
    """The ladder table ``animevae evaluate`` printed for the sharp run, as it printed it."""
    from animevae.evaluation.report import format_ladder

    return "```text\n" + "\n".join(format_ladder(hierarchical_row("sharp20")["evaluate_ladder"])) + "\n```\n"


PRESET_ROWS = (  # preset, what it is, the record and run its figures come from, its own sampler
    ("`seed` (default)", "the seed notebook's model and training", "presets_96px", "seed", "mix_k2"),
    ("`quality`", "+ KL warm-up, free bits, EMA, reflect fill", "presets_20min", "quality", "gmm"),
    ("**`sharp`**", "quality + a 16 × 6 × 6 spatial latent, β = 0.1, bicubic rotation", "rotation_detail", "sharp_bicubic", "gmm"),
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
        at_one = ", finer groups at T = 1" if row.get("kl_per_group") else ""  # a hierarchical run's default
        faces += [(f"`{s}`{at_one}", e, e.get("hf_ratio")) for s, e in row["samplers"].items() if "ladder" in e]
        faces += [(f"`gmm`, finer groups at T = {k.removeprefix('gmm_fine')}", e, e.get("hf_ratio")) for k, e in row.get("sweep", {}).items()]
        for i, (what, e, hf) in enumerate(faces):
            lead = first if i == 0 else "| | | | |"
            cells = " / ".join(f"{e['ladder'][s]:.3f}" if s in e["ladder"] else "—" for s in sizes)
            lines.append(f"{lead} | {what} | {cells} | {up_to(e)} | {'—' if hf is None else f'{hf:.2f}'} |")
    return "\n".join(lines) + (
        f"\n\n*{r['settings']['eval_limit']:,} held-out faces, as many samples and reconstructions (of held-out faces), 3 classifier seeds, "
        f"mean accuracy; KL per group: top / 12 px / 24 px (one figure: the single latent); {cpu(r)}. `experiments/hierarchical.py`.*\n"
    )


BLOCKS: dict[str, Callable[[], str]] = {
    "hierarchical-explore": lambda: hierarchical_rows(["sharp48", "hier48", "hier48_fb0", "hier48_nocell", "hier48_fineb1"]),
    "hierarchical-20min": lambda: hierarchical_rows(["sharp20", "hier20"]),
    "preset-runs": preset_runs,
    "which-preset": which_preset,
    "experiments-table": experiments_table,
    "ladder-calibration": calibration_table,
    "ladder-samplers": sampler_table,
    "ladder-rerank": rerank_table,
    "ladder-cost": ladder_cost,
    "ladder-example": ladder_example,
    "readme-headline": readme_headline,
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
    stale = []
    for page in pages():
        old = page.read_text()
        new = render(old)
        if new != old:
            stale.append(page.relative_to(ROOT).as_posix())
            if not a.check:
                page.write_text(new)
    if a.check and stale:
        sys.exit(f"out of date (their generated parts differ from experiments/results): {', '.join(stale)}; run python experiments/pages.py")
    print(f"{'updated' if stale else 'up to date'}: {', '.join(stale) or 'every page'}")


if __name__ == "__main__":
    main()
