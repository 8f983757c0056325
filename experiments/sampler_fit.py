"""How long does each fitted sampler take to fit on a real run's latents, and are its faces as good as before?

The gmm sampler was fitted with scikit-learn (float64, one BLAS thread); it is now fitted by EM in torch
(``animevae.sampling.mixture``). This experiment fits both on the same seeded subsample of a finished
run's latents, times them, and scores 1,000 faces of each with ``evaluate``'s classifier two-sample test
(3 classifier seeds) against the run's held-out faces, with their diversity (mean pairwise RMS, 0-255).
The torch fit is repeated for 3 fit seeds, so its seed-to-seed spread is measured beside the comparison.
The two-stage and diffusion samplers' fits are timed and scored the same way.

    python experiments/sampler_fit.py --data ../shared/data/anime-faces-96 --minutes 20
    python experiments/sampler_fit.py --run runs/sharp20 --data ../shared/data/anime-faces-96   # an existing run

Without ``--run`` it first trains ``--preset sharp`` for ``--minutes`` on ``--data`` into ``--out``.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _record
import torch

from animevae import runs
from animevae.config import DataConfig
from animevae.evaluation.metrics import mean_pairwise_rms
from animevae.evaluation.report import load_eval_data
from animevae.evaluation.two_sample import classifier_two_sample_test
from animevae.sampling.generate import decode_latents, load_model
from animevae.sampling.samplers import DEFAULT_GMM_COMPONENTS, DiffusionSampler, GMMSampler, TwoStageSampler

NAME = "sampler_fit"
QUESTION = "How long does each fitted sampler's fit take on a real sharp run's latents, and do the torch EM's faces match scikit-learn's?"


def sklearn_gmm(mu: torch.Tensor, k: int, seed: int = 0) -> GMMSampler:
    """The previous fit: scikit-learn's EM on the same seeded subsample and regularisation, one BLAS thread."""
    from sklearn.mixture import GaussianMixture
    from threadpoolctl import threadpool_limits

    x = mu.double()
    if len(x) > GMMSampler.MAX_FIT:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[: GMMSampler.MAX_FIT]]
    reg = max(GMMSampler.REG_SCALE * float(x.var(0, unbiased=False).mean()), 1e-8)
    gm = GaussianMixture(k, covariance_type="full", reg_covar=reg, random_state=seed, max_iter=200)
    with threadpool_limits(1, user_api="blas"):
        gm.fit(x.numpy())
    weights, means, cov = (torch.from_numpy(a).double() for a in (gm.weights_, gm.means_, gm.covariances_))
    keep = weights * len(x) >= 1.5  # the same rule as GMMSampler.fit: components on single latents are dropped
    return GMMSampler(weights[keep] / weights[keep].sum(), means[keep], torch.linalg.cholesky(cov[keep]))


@contextlib.contextmanager
def every_point_in_each_scatter():
    """The M-step as it was: every point in every component's scatter matrix, whatever its responsibility."""
    from animevae.sampling import mixture

    floor, mixture.RESP_FLOOR = mixture.RESP_FLOOR, -1.0
    try:
        yield
    finally:
        mixture.RESP_FLOOR = floor


def score(model, sampler, held: torch.Tensor, n: int) -> dict:
    faces = decode_latents(model, sampler.sample(n, torch.Generator().manual_seed(0)))
    c2st = classifier_two_sample_test(faces, held[:n], seeds=range(3), half_size=False)
    return {"c2st": round(c2st["accuracy"], 4), "c2st_seeds": [round(a, 4) for a in c2st["per_seed"]], "diversity_rms": round(mean_pairwise_rms(faces), 2)}


def timed(fit):
    start = time.perf_counter()
    sampler = fit()
    return sampler, round(time.perf_counter() - start, 2)


def train_end_fit(run: Path) -> dict:
    """What ``train`` recorded of the fit it ran as its last step (the gmm file's metadata)."""
    from safetensors import safe_open

    files = sorted(run.glob("gmm_*.safetensors"))
    if not files:
        return {}
    with safe_open(str(files[0]), "pt") as f:
        meta = f.metadata() or {}
    return {"file": files[0].name, "seconds": float(meta["fit_seconds"]) if "fit_seconds" in meta else None, "fitted_on": meta.get("fitted_on")}


def time_generate(run: Path, n: int) -> dict:
    """``animevae generate --run RUN --n N`` as a user types it right after training: seconds, and whether it fitted anything."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "animevae", "generate", "--run", str(run), "--n", str(n), "--out", tmp], capture_output=True, text=True, check=True
        )
        seconds = time.perf_counter() - start
        written = len([p for p in Path(tmp).glob("*.png") if p.name != "grid.png"])  # the faces, not their grid
    return {"seconds": round(seconds, 2), "faces_written": written, "fitted": "fitting" in proc.stdout + proc.stderr}


def key_figures(results: dict) -> list[str]:
    fits = results["fits"]
    out = []
    if results.get("train_end_fit", {}).get("seconds") is not None:
        out.append(f"train-end gmm fit (train's last step): {results['train_end_fit']['seconds']} s")
    if "generate" in results:
        g = results["generate"]
        out.append(f"generate --n {g['faces_written']} right after training: {g['seconds']} s, fitted: {g['fitted']}")
    out += [f"{name}: {v['seconds']} s, C2ST {v['c2st']}, diversity {v['diversity_rms']}" for name, v in fits.items()]
    if "gmm_speedup" in results:
        out.append(f"gmm fit {results['gmm_speedup']}x faster than scikit-learn's")
    return out


def main() -> None:
    p = _record.parser(__doc__, NAME, minutes=20)
    p.add_argument("--run", help="a finished run folder; default: train --preset sharp for --minutes into --out/run")
    p.add_argument("--n-samples", type=int, default=1000, help="faces scored per sampler (default 1000)")
    p.add_argument("--skip-sklearn", action="store_true", help="do not time the previous (scikit-learn) fit: it takes minutes")
    args = p.parse_args()

    commands = []
    run = Path(args.run) if args.run else Path(args.out) / "run"
    if not args.run and (args.fresh or not (run / runs.LATENTS).is_file()):
        cmd = [sys.executable, "-m", "animevae", "train", "--data", args.data, "--preset", "sharp", "--max-minutes", str(args.minutes)]
        cmd += ["--keep-last", "1", "--out", str(run), "--overwrite"]
        commands.append("animevae " + " ".join(cmd[3:]))
        subprocess.run(cmd, check=True)
    model = load_model(str(run))
    mu = runs.load_latents(str(run)).mu
    held, *_ = load_eval_data(runs.load_run_config(str(run)), DataConfig(source=args.data), model.config.image_size, args.n_samples)
    k = DEFAULT_GMM_COMPONENTS
    results: dict = {"latents": list(mu.shape), "held_out_faces": len(held), "train_end_fit": train_end_fit(run), "fits": {}}
    commands.append(f"animevae generate --run RUN --n {args.n_samples} --out TMP  # timed")
    results["generate"] = time_generate(run, args.n_samples)
    print("generate:", results["generate"], flush=True)

    # every fit first, timed with the machine to itself; then every sampler's faces scored
    fitted = {}
    for seed in range(3):
        fitted[f"gmm torch seed {seed}"] = timed(lambda: GMMSampler.fit(mu, k, seed=seed))  # noqa: B023
        print(f"gmm torch seed {seed}: {fitted[f'gmm torch seed {seed}'][1]} s", flush=True)
    with every_point_in_each_scatter():
        fitted["gmm torch, every point in each scatter (before)"] = timed(lambda: GMMSampler.fit(mu, k, seed=0))
    if not args.skip_sklearn:
        fitted["gmm scikit-learn (previous)"] = timed(lambda: sklearn_gmm(mu, k))
    for name, fit in (("two-stage", TwoStageSampler.fit), ("diffusion", DiffusionSampler.fit)):
        fitted[name] = timed(lambda: fit(mu))  # noqa: B023
    print("fits:", {name: seconds for name, (_, seconds) in fitted.items()}, flush=True)
    for name, (sampler, seconds) in fitted.items():
        components = {"components": sampler.n_components} if isinstance(sampler, GMMSampler) else {}
        results["fits"][name] = {"seconds": seconds, **components, **score(model, sampler, held, args.n_samples)}
        print(name, results["fits"][name], flush=True)
    torch_s = [v["seconds"] for key, v in results["fits"].items() if key.startswith("gmm torch")]
    if "gmm scikit-learn (previous)" in results["fits"]:
        results["gmm_speedup"] = round(results["fits"]["gmm scikit-learn (previous)"]["seconds"] / (sum(torch_s) / len(torch_s)), 1)
    settings = {"run": run.name, "n_samples": args.n_samples, "gmm_components": k, "max_fit": GMMSampler.MAX_FIT, "minutes": args.minutes}
    _record.write(args.results, NAME, QUESTION, commands, settings, results, key_figures(results))


if __name__ == "__main__":
    main()
