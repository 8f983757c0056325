"""Running ``animevae`` for an experiment: each step a subprocess waited for, each command recorded, each run summarised.

    steps = Steps(out_folder, data)
    row = steps.train_and_evaluate("seed", ["--preset", "seed"], minutes=5, limit=20000, evaluate=EVAL)

A run whose ``evaluation.json`` is already in the work folder is reused (an experiment stopped half-way
goes on where it stopped); ``fresh=True`` retrains it. The summary of a run (``summarize``) is the
row the experiments' JSON files hold: training length and speed, held-out likelihood, reconstructions,
and per sampler the two-sample test, FID/KID on pixel features, diversity and memorisation.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from _record import PIXEL_FEATURES


def _r(v, digits: int = 4):
    return None if v is None else round(float(v), digits)


class Steps:
    """The work folder of one experiment: runs the CLI in it and keeps the commands, as a reader would type them."""

    def __init__(self, out: str | os.PathLike, data: str, fresh: bool = False):
        self.out, self.data, self.fresh = Path(out), data, fresh
        self.out.mkdir(parents=True, exist_ok=True)
        self.commands: list[str] = []

    def shown(self, args) -> str:
        """A command as recorded: ``animevae ...`` with the work folder written as $OUT."""
        return shlex.join(["animevae", *map(str, args)]).replace(str(self.out), "$OUT")

    def animevae(self, *args, log: str | None = None) -> None:
        """Run ``python -m animevae ARGS`` and wait for it; its output goes to OUT/LOG (or through), a failure stops the experiment."""
        args = [str(a) for a in args]
        self.commands.append(self.shown(args))
        print(f"$ {self.commands[-1]}", flush=True)
        if log is None:
            subprocess.run([sys.executable, "-m", "animevae", *args], check=True)
            return
        with open(self.out / log, "w") as f:
            proc = subprocess.run([sys.executable, "-m", "animevae", *args], stdout=f, stderr=subprocess.STDOUT)
        if proc.returncode != 0:
            tail = (self.out / log).read_text().splitlines()[-15:]
            raise SystemExit(f"failed ({proc.returncode}): {self.commands[-1]}\n" + "\n".join(tail))

    def in_process(self, *args, log: str | None = None) -> None:
        """Run ``animevae ARGS`` in this process: for an objective or architecture this script registered (a
        subprocess would not know it). Its output still goes to OUT/LOG."""
        import contextlib

        from animevae.cli import main

        args = [str(a) for a in args]
        self.commands.append(self.shown(args) + "  # in the script's process")
        print(f"$ {self.commands[-1]}", flush=True)
        with contextlib.ExitStack() as stack:
            if log is not None:
                f = stack.enter_context(open(self.out / log, "w"))
                stack.enter_context(contextlib.redirect_stdout(f))
                stack.enter_context(contextlib.redirect_stderr(f))
            code = main(args)
        if code:
            raise SystemExit(f"failed ({code}): {self.commands[-1]}")

    def note(self, command: str) -> None:
        """Record a step run in this process (the Python API), in the words a reader would use."""
        self.commands.append(command)
        print(f"$ {command}", flush=True)

    def done(self, name: str) -> bool:
        return not self.fresh and (self.out / name / "evaluation.json").is_file()

    def trained(self, name: str) -> bool:
        """Whether ``train`` finished this run (its marker is written after training returned 0)."""
        return not self.fresh and (self.out / f"{name}.trained").is_file()

    def train(
        self,
        name: str,
        flags: list[str],
        minutes: float | None = None,
        limit: int | None = None,
        epochs: int | None = None,
        keep_last: int = 0,
        here: bool = False,
    ) -> Path:
        run = self.out / name
        budget = [*(["--limit", limit] if limit else []), *(["--max-minutes", minutes] if minutes else []), *(["--epochs", epochs] if epochs else [])]
        (self.in_process if here else self.animevae)(
            "train", "--data", self.data, *budget, *flags, "--keep-last", keep_last, "--quiet", "--out", run, "--overwrite", log=f"{name}.train.log"
        )
        (self.out / f"{name}.trained").write_text(self.commands[-1] + "\n")
        return run

    def resume(self, name: str, source: str, minutes: float, flags: tuple[str, ...] = ()) -> Path:
        """Train a copy of the run SOURCE on to MINUTES in all (``--resume`` with a larger ``--max-minutes``): the
        longer run in its own folder, the shorter one kept as it was for its own row."""
        import shutil

        run = self.out / name
        if run.exists():
            shutil.rmtree(run)
        skip = shutil.ignore_patterns("evaluation.json", "*.png", "*.lock", "gmm_*", "diffusion*", "two_stage*")  # samplers: fitted again at the end
        shutil.copytree(self.out / source, run, ignore=skip)
        self.note(f"cp -r $OUT/{source} $OUT/{name}")
        self.animevae("train", "--resume", run, "--max-minutes", minutes, *flags, "--quiet", log=f"{name}.train.log")
        (self.out / f"{name}.trained").write_text("\n".join(self.commands[-2:]) + "\n")
        return run

    def evaluate_args(self, name: str, evaluate: list[str]) -> list:
        run = self.out / name
        return ["evaluate", "--run", run, "--data", self.data, *evaluate, "--out", run / "evaluation.json"]

    def evaluate(self, name: str, evaluate: list[str], here: bool = False) -> Path:
        (self.in_process if here else self.animevae)(*self.evaluate_args(name, evaluate), log=f"{name}.evaluate.log")
        return self.out / name

    def train_and_evaluate(self, name: str, flags: list[str], evaluate: list[str], here: bool = False, train_only: bool = False, **budget) -> dict:
        """Train (unless done), evaluate, and return the run's summary with its flags. ``here``: in this process;
        ``train_only``: train (unless trained) and return {} (a later call evaluates)."""
        if self.done(name):
            print(f"{name}: reusing {self.out / name}", flush=True)
            if self.trained(name):  # the record still names the steps that made the run
                self.commands.append((self.out / f"{name}.trained").read_text().strip())
            self.commands.append(self.shown(self.evaluate_args(name, evaluate)))
        else:
            if self.trained(name):  # trained, not yet evaluated (e.g. --train-only before)
                print(f"{name}: reusing the trained run {self.out / name}", flush=True)
                self.commands.append((self.out / f"{name}.trained").read_text().strip())
            else:
                self.train(name, flags, here=here, **budget)
            if not train_only:
                self.evaluate(name, evaluate, here=here)
        if train_only:
            return {}
        return {"flags": shlex.join(flags), **summarize(self.out / name)}


def evaluate_flags(limit: int, n_samples: int, k: int, samplers: str, c2st: str | None = None, c2st_seeds: int = 3) -> list[str]:
    """``animevae evaluate`` options of the probes: the first LIMIT held-out faces, N samples per sampler, pixel-feature FID."""
    flags = ["--limit", limit, "--n-samples", n_samples, "--k", k, "--samplers", samplers, "--features", PIXEL_FEATURES, "--c2st-seeds", c2st_seeds]
    return [str(f) for f in [*flags, *(["--c2st-samplers", c2st] if c2st else [])]]


def training_facts(run: str | os.PathLike) -> dict:
    """How much a run folder trained: epochs, steps, images seen, images/s by epoch, minutes (its metrics.jsonl)."""
    run = Path(run)
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]
    batch = json.loads((run / "config.json").read_text()).get("train", {}).get("batch_size", 64)
    return {
        "epochs": len(lines),
        "steps": lines[-1]["step"] if lines else 0,
        "images_seen": (lines[-1]["step"] if lines else 0) * batch,
        "images_per_s_by_epoch": [round(x["images_per_s"]) for x in lines],
        "train_minutes": _r(sum(x["seconds"] + x.get("eval_seconds", 0) for x in lines) / 60, 2),
    }


def summarize(run: str | os.PathLike) -> dict:
    """A trained and evaluated run folder as one row of figures (see the module docstring)."""
    run = Path(run)
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines() if s.strip()]
    m = json.loads((run / "evaluation.json").read_text())
    lk, rc, lt = m["likelihood"], m["reconstruction"], m["latents"]
    row = {
        **training_facts(run),
        "heldout_loss_by_epoch": [_r(x.get("heldout_loss"), 1) for x in lines],
        "neg_elbo": _r(lk["neg_elbo_per_image"], 1),
        "neg_iwae": _r(lk["neg_iwae_per_image"], 1),
        "iwae_k": lk["iwae_k"],
        "kl": _r(lt["kl_per_image"], 1),
        "active_units": lt["active_units"],
        "latent_dim": lt["latent_dim"],
        "mse": _r(rc["mse"], 5),
        "psnr": _r(rc["psnr"], 2),
        "ssim": _r(rc["ssim"], 3),
        "evaluated_on": m["data"]["images"],
        "samplers": {},
    }
    if any("adv_d" in x for x in lines):
        row["adv_d_by_epoch"] = [_r(x.get("adv_d"), 3) for x in lines]
    if "reconstructions" in m:
        c = m["reconstructions"]["c2st"]
        row["c2st_recons"], row["c2st_recons_per_seed"] = _r(c["accuracy"], 3), [_r(a, 3) for a in c["per_seed"]]
        row["c2st_recons_half"] = half_size(c)
        row["hf_ratio_recons"] = _r(m["reconstructions"].get("high_frequency_ratio"), 3)
        row["recons"] = ladder_of(c)
    if "c2st_control" in m:
        control = m["c2st_control"]
        row["control"] = {
            "accuracy": _r(control["accuracy"], 3),
            "caught": control["caught"],
            "sigma_px": control["sigma_px"],
            "seconds": control.get("seconds"),
        }
        row["evaluate_ladder"] = {  # what animevae evaluate printed as its ladder table, for the docs to show as it was
            "samplers": {n: {"c2st": s["c2st"]} for n, s in m["samplers"].items() if "c2st" in s},
            **({"reconstructions": {"c2st": m["reconstructions"]["c2st"]}} if "reconstructions" in m else {}),
            "c2st_control": control,
        }
    for name, s in m["samplers"].items():
        if "skipped" in s:
            row["samplers"][name] = {"skipped": s["skipped"]}
            continue
        mem = s.get("memorisation") or {}
        entry = {"fid": _r(s.get("fid"), 3), "kid": _r(s.get("kid"), 4), "diversity": _r(s["diversity_rms"], 1)}
        if s.get("high_frequency_ratio") is not None:
            entry["hf_ratio"] = _r(s["high_frequency_ratio"], 3)
        if "c2st" in s:
            entry |= {"c2st": _r(s["c2st"]["accuracy"], 3), "c2st_per_seed": [_r(a, 3) for a in s["c2st"]["per_seed"]]}
            entry["c2st_half"] = half_size(s["c2st"])
            entry |= ladder_of(s["c2st"])
        if "near_copies" in mem:
            entry |= {
                "nearest_train_median": _r(mem["median_nearest_train_rms"], 1),
                "nearest_train_min": _r(mem["min_nearest_train_rms"], 1),
                "near_copies": mem["near_copies"],
                "of": mem["of"],
            }
        row["samplers"][name] = entry
    return row


def ladder_of(c2st: dict) -> dict:
    """An evaluate ladder as a row's fields: mean accuracy and each seed's per size, the headline, validity, seconds."""
    by = c2st.get("by_size") or {}
    return {
        "ladder": {px: _r(r["accuracy"], 3) for px, r in by.items()},
        "ladder_per_seed": {px: [_r(a, 3) for a in r["per_seed"]] for px, r in by.items()},
        "ladder_seconds": {px: r.get("seconds") for px, r in by.items()},
        "real_up_to": c2st.get("real_up_to"),
        "valid": c2st.get("valid"),
    }


def half_size(c2st: dict) -> float | None:
    """The two-sample test's accuracy with both sets shrunk to half size (``evaluate``'s second size), if it was run."""
    sizes = list((c2st.get("by_size") or {}).values())
    return _r(sizes[1]["accuracy"], 3) if len(sizes) > 1 else None


def fmt(v, spec: str = ".3f") -> str:
    """A figure for a key-figures line; '—' when it was not measured."""
    return "—" if v is None else format(v, spec)


def sampler_c2st(row: dict, name: str) -> float | None:
    return (row.get("samplers", {}).get(name) or {}).get("c2st")


def add_probe_args(p, eval_limit: int = 1000, n_samples: int = 1000, k: int = 2, variants: list[str] | None = None, default: list[str] | None = None) -> None:
    """The evaluation knobs of the probe experiments, and --only to run some of their variants."""
    p.add_argument("--eval-limit", type=int, default=eval_limit, help="held-out faces evaluated (default %(default)s)")
    p.add_argument("--n-samples", type=int, default=n_samples, help="faces drawn from each sampler (default %(default)s)")
    p.add_argument("--k", type=int, default=k, help="importance samples of the IWAE bound (default %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds of the two-sample test (default %(default)s)")
    if variants:
        p.add_argument("--only", nargs="+", choices=variants, default=default or variants, help="variants to run (default: %(default)s)")


def held_out_probe(doc: str, name: str, runs: list[str]):
    """The parser of a probe that scores faces made from trained runs in --out against their held-out faces."""
    import _record

    p = _record.parser(doc, name)
    p.set_defaults(out=str(_record.HERE / "out" / "hier"))
    p.add_argument("--runs", nargs="+", default=runs, help="runs in --out (default: %(default)s)")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces (default: %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds per rung (default: %(default)s)")
    return p


def held_out_records(a) -> tuple[dict, dict, list[str]]:
    """A held-out probe's settings, the rows of runs measured by earlier invocations (kept), and its commands."""
    import _record

    settings = {"data": a.data, "eval_limit": a.eval_limit, "c2st_seeds": a.c2st_seeds}
    results, commands = earlier_results(a.results, settings)
    return settings, results.get("runs", {}), [*commands, _record.invocation()]


def held_out_run(a, name: str):
    """(run folder, its model, its first --eval-limit held-out faces, its evaluation's positive control)."""
    from animevae.config import DataConfig
    from animevae.evaluation.report import load_eval_data
    from animevae.runs import load_run_config
    from animevae.sampling.generate import load_model

    run = Path(a.out) / name
    control = json.loads((run / "evaluation.json").read_text())["c2st_control"]
    model = load_model(str(run))
    held, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=a.data), model.config.image_size, a.eval_limit)
    return run, model, held, control


def detail_figures(rows: dict) -> list[str]:
    """One key-figures line per run: images seen, PSNR, the two-sample test of reconstructions and each evaluated
    sampler's faces at full and half size, and their high-frequency power ratios."""
    lines = []
    for n, r in rows.items():
        samplers = [f"{s} 96/48 {fmt(e.get('c2st'))}/{fmt(e.get('c2st_half'))}" for s, e in r["samplers"].items()]
        hf = "/".join(fmt(e.get("hf_ratio"), ".3f") for e in r["samplers"].values())
        recons = f"C2ST recons 96/48 {fmt(r.get('c2st_recons'))}/{fmt(r.get('c2st_recons_half'))}"
        lines.append(
            f"{n}: {r['images_seen']} images seen, PSNR {fmt(r['psnr'], '.2f')}, {recons}, "
            + ", ".join(samplers)
            + f", HF ratio recons/{'/'.join(r['samplers'])} {fmt(r.get('hf_ratio_recons'), '.3f')}/{hf}"
        )
    return lines


def compare_from_scratch(
    doc: str, name: str, question: str, variants: dict[str, list[str]], minutes: float = 5.0, samplers: str = "gmm", here: frozenset[str] = frozenset()
) -> argparse.Namespace:
    """The main of a probe that trains each variant from scratch for ``--minutes`` (every run first, each with the machine
    to itself; then every evaluation: reconstructions and the faces of ``samplers``) and records ``detail_figures``.
    Variants named in ``here`` run in this process (they use a part the calling script registered). Returns the options."""
    import _record

    p = _record.parser(doc, name, minutes=minutes)
    add_probe_args(p, eval_limit=1000, n_samples=1000, k=2, variants=list(variants))
    a = p.parse_args()
    steps = Steps(a.out, a.data, a.fresh)
    evaluate = evaluate_flags(a.eval_limit, a.n_samples, a.k, samplers, samplers, a.c2st_seeds)
    for n in a.only:
        steps.train_and_evaluate(n, variants[n], evaluate, here=n in here, train_only=True, minutes=a.minutes, keep_last=1)
    rows = {n: steps.train_and_evaluate(n, variants[n], evaluate, here=n in here, minutes=a.minutes, keep_last=1) for n in a.only}
    settings = {"data": a.data, "minutes": a.minutes, "variants": {n: variants[n] for n in a.only}, "evaluate": evaluate}
    results = {"runs": rows}
    _record.write(a.results, name, question, steps.commands, settings, results, detail_figures(rows))
    return a


def score_faces(fake, held, seeds: int, sizes=None, control: dict | None = None, paired: bool = False) -> dict:
    """``evaluate``'s measures of one set of faces (uint8 tensors) against held-out ones, for probes that make faces in
    their own process: the realism ladder (the two-sample test at each of ``sizes``, default ``evaluate``'s: mean and
    per seed, and "real up to"; marked valid or not by a ``positive_control`` result), the high-frequency ratio, diversity.
    ``c2st`` / ``c2st_half`` are the first two rungs (full and half size), as earlier records name them. ``paired``:
    ``fake[i]`` is made from ``held[i]`` (a reconstruction), as ``evaluate``'s reconstruction ladder."""
    from animevae.evaluation import metrics
    from animevae.evaluation.two_sample import classifier_two_sample_test, with_control

    c = classifier_two_sample_test(fake, held, seeds=range(seeds), sizes=sizes, paired=paired)
    if control is not None:
        c = with_control(c, control)
    rungs = list(c["by_size"].values())
    row = {"c2st": _r(rungs[0]["accuracy"], 3), "c2st_per_seed": [_r(a, 3) for a in rungs[0]["per_seed"]]}
    if len(rungs) > 1:
        row |= {"c2st_half": _r(rungs[1]["accuracy"], 3), "c2st_half_per_seed": [_r(a, 3) for a in rungs[1]["per_seed"]]}
    return row | {
        "ladder": {px: _r(r["accuracy"], 3) for px, r in c["by_size"].items()},
        "ladder_per_seed": {px: [_r(a, 3) for a in r["per_seed"]] for px, r in c["by_size"].items()},
        "real_up_to": c["real_up_to"],
        **({"valid": c["valid"]} if control is not None else {}),
        "hf_ratio": _r(metrics.high_frequency_ratio(fake, held), 3),
        "diversity": _r(metrics.mean_pairwise_rms(fake), 1),
    }


def ladder_line(r: dict) -> str:
    """A score_faces row's ladder as a key figure: the accuracy at each size, largest first, and the headline."""
    sizes = "/".join(k.removesuffix("px") for k in r["ladder"])
    up_to = "INVALID" if r.get("valid") is False else (f"{r['real_up_to']} px" if r["real_up_to"] else "none")
    return f"{sizes} px {' / '.join(f'{v:.3f}' for v in r['ladder'].values())}, real up to {up_to}"


def earlier_results(path: str | os.PathLike, settings: dict) -> tuple[dict, list[str]]:
    """(results, commands) of the record at ``path`` if it was measured with the same ``settings``, else ({}, []): a probe
    that adds variants one invocation at a time keeps what the earlier invocations measured."""
    path = Path(path)
    old = json.loads(path.read_text()) if path.is_file() else {}
    if old.get("settings") != settings:
        return {}, []
    return old.get("results", {}), old.get("commands", [])


def c2st_line(r: dict) -> str:
    """A score_faces row as a key figure."""
    return f"C2ST 96/48 px {r['c2st']:.3f}/{r['c2st_half']:.3f}, HF ratio {r['hf_ratio']:.2f}"
