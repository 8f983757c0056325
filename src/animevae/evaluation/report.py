"""How good is a trained run? Likelihood bounds, reconstructions, latent usage, and every sampler's faces.

On held-out images (the run's own held-out split when ``--data`` is its training source, else all of
``--data``):

- negative ELBO (recon + KL, the training loss) and the tighter IWAE bound with ``k`` importance
  samples, per image and per pixel dimension (nats; Bernoulli-logit likelihood as in training, so
  these are not the bits/dim of papers that model discrete pixels);
- reconstruction MSE, PSNR and SSIM (the decode of the encoder mean, pixels in [0, 1]);
- KL per image and the number of active latent units (Burda et al. 2016: Cov_x(E_q[z]) > 0.01).

For each sampler (mix with k = 2, 4, 16, all; prior; gmm; two-stage; diffusion; or those ``samplers`` names):
diversity (mean pairwise RMS pixel distance between samples, 0..255 scale), memorisation (each
sample's RMS distance to its nearest training image; the median and how many are near-copies), and
FID / KID against the held-out images. For the run's own sampler (or ``c2st_samplers``) and for the
decoder's reconstructions, the realism ladder (two_sample.py): a small CNN trained from scratch to tell
the faces from held-out real ones, scored on faces it did not train on, mean over ``c2st_seeds`` seeds
(0.5 = indistinguishable), at each of ``c2st_sizes``, with "real up to N px" as its headline, and a
positive control that says whether the classifier learns at all (a ladder without it is marked invalid).

FID/KID need a feature extractor. The standard one (Inception-v3, through torch-fidelity as
torchmetrics uses it) needs torchvision and downloaded weights; when it cannot be built the two are
skipped with one line saying why. ``--features package.module:attr`` names any callable returning an
``nn.Module`` that maps N x 3 x H x W images (uint8) to N x D features; ``animevae.evaluation.features:pixel_features``
(8 x 8 average-pooled pixels) ships for offline use and tests -- its FID is NOT comparable to
published (Inception) FID numbers.

This module is the report: which images, which samplers, the JSON and the table. The metric
functions are in metrics.py, the feature extractors in features.py.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import runs
from ..config import DataConfig, from_dict
from ..data.cache import load_images
from ..data.split import split_rows
from ..errors import UserError
from ..sampling.generate import decode_latents, default_sampler, load_model, make_sampler, reconstruct_images
from ..sampling.samplers import DEFAULT_MIX_K
from . import metrics as metric
from .features import FeaturesUnavailable, extract_features, load_features, standard_features
from .metrics import ACTIVE_THRESHOLD, NEAR_COPY_RMS
from .two_sample import MAX_ROUNDS, PASSES_AT, classifier_two_sample_test, ladder_sizes, positive_control, with_control

SAMPLERS = (
    ("mix_k2", "mix", 2),
    ("mix_k4", "mix", 4),
    ("mix_k16", "mix", 16),
    ("mix_all", "mix", None),
    ("prior", "prior", None),
    ("gmm", "gmm", None),
    ("joint_gmm", "joint-gmm", None),
    ("two_stage", "two-stage", None),
    ("diffusion", "diffusion", None),
)
__all__ = ["evaluate", "format_table", "load_eval_data"]


def _same_path(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        pa, pb = Path(a).expanduser(), Path(b).expanduser()
        return pa.exists() and pb.exists() and pa.resolve() == pb.resolve()
    except OSError:
        return False


def load_eval_data(run_config: dict, data_cfg, image_size: int, limit: int | None, progress: bool = False):
    """-> (images to evaluate on, training images, training positions, description, why no training images or None).

    ``data_cfg.source`` the run's own training source (same string or same path): the run's data
    settings are used and its held-out split (train.split_rows with the run's val_fraction and seed)
    is evaluated; anything else is evaluated whole. ``limit`` caps the images evaluated.
    """
    saved = run_config.get("data") or {}
    train_cfg = run_config.get("train") or {}
    own_cfg = None
    if saved.get("source"):
        own_cfg = replace(from_dict(DataConfig, saved, "config.json data"), cache=data_cfg.cache, cache_dir=data_cfg.cache_dir, workers=data_cfg.workers)
    kept = (run_config.get("data_stats") or {}).get("counts", {}).get("kept")
    if own_cfg is not None and _same_path(data_cfg.source, own_cfg.source):
        faces = load_images(replace(own_cfg, source=data_cfg.source), image_size, progress=progress)
        if kept is None or len(faces) == kept:
            train_pos, val_pos = split_rows(len(faces), train_cfg.get("val_fraction", 0.05), train_cfg.get("seed", 0))
            if len(val_pos) == 0:
                raise UserError(
                    f"--data {data_cfg.source}: the run held out no images (val_fraction {train_cfg.get('val_fraction')}); evaluate on another data source"
                )
            held = val_pos[:limit] if limit else val_pos
            return (
                torch.from_numpy(np.ascontiguousarray(faces.images[held])),
                faces.images,
                train_pos,
                f"the run's held-out split of {data_cfg.source} ({len(held)} of {len(val_pos)} images)",
                None,
            )
        print(f"note: --data {data_cfg.source} now has {len(faces)} images, the run trained on {kept}; evaluating on all of it", file=sys.stderr)
    faces = load_images(replace(data_cfg, limit=limit or data_cfg.limit), image_size, progress=progress)
    held_images = torch.from_numpy(np.array(faces.images[:]))
    description = f"all of {data_cfg.source} ({len(faces)} images)"
    if own_cfg is None:
        return held_images, None, None, description, "the run's config.json names no training data"
    try:
        own = load_images(own_cfg, image_size, progress=progress)
    except UserError as e:
        return held_images, None, None, description, f"the run's training data cannot be read ({e})"
    train_pos, _ = split_rows(len(own), train_cfg.get("val_fraction", 0.05), train_cfg.get("seed", 0))
    return held_images, own.images, train_pos, description, None


@torch.no_grad()
def evaluate(
    run: str,
    data_cfg,
    out: str | Path | None = None,
    limit: int | None = None,
    k: int = 16,
    n_samples: int = 500,
    features: str | None = None,
    inception_weights: str | None = None,
    seed: int = 0,
    device: str = "cpu",
    gmm_components: int | None = None,
    gmm_covariance: str = "full",
    batch: int = 64,
    progress: bool = True,
    samplers: list[str] | None = None,
    c2st_samplers: list[str] | None = None,
    c2st_seeds: int = 3,
    c2st_max_rounds: int = MAX_ROUNDS,
    c2st_sizes: list[int] | None = None,
) -> tuple[dict, Path]:
    """Compute every metric, write them as JSON to ``out`` (default RUN/evaluation.json), print a table; returns (metrics, path)."""
    if k < 1:
        raise UserError(f"--k must be at least 1, got {k}")
    if n_samples < 2:
        raise UserError(f"--n-samples must be at least 2, got {n_samples}")
    if limit is not None and limit < 2:
        raise UserError(f"--limit must be at least 2, got {limit}")
    if inception_weights is not None and not Path(inception_weights).expanduser().is_file():
        raise UserError(f"--inception-weights {inception_weights}: no such file")
    known = [name for name, _, _ in SAMPLERS]
    for name in (samplers or []) + (c2st_samplers or []):
        if name not in known:
            raise UserError(f"sampler {name!r}: not one evaluate knows; choose from {', '.join(known)}")
    if c2st_seeds < 0:
        raise UserError(f"--c2st-seeds must be 0 (off) or more, got {c2st_seeds}")
    if c2st_max_rounds < 1:
        raise UserError(f"--c2st-max-rounds must be at least 1, got {c2st_max_rounds}")
    if c2st_sizes is not None and (not c2st_sizes or min(c2st_sizes) < 4):
        raise UserError(f"--c2st-sizes must list sizes of at least 4 px, got {','.join(map(str, c2st_sizes)) or 'none'}")
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    model = load_model(run, device)
    size = model.config.image_size
    held, train_images, train_pos, described, no_train = load_eval_data(runs.load_run_config(run), data_cfg, size, limit, progress=progress)
    if len(held) < 2:
        raise UserError(f"--data {data_cfg.source}: {len(held)} image(s) to evaluate on; need at least 2")
    if c2st_seeds and min(len(held), n_samples) < 4:
        raise UserError(
            f"--data {data_cfg.source}: the two-sample test needs at least 4 images per set, got {len(held)} to evaluate on and --n-samples "
            f"{n_samples}; evaluate on more, or pass --c2st-seeds 0"
        )
    say(f"evaluate: {described}")
    ladder = ladder_sizes(size) if c2st_sizes is None else sorted({px for px in c2st_sizes if px <= size} or {size}, reverse=True)
    metrics: dict = {
        "run": str(run),
        "data": {"source": data_cfg.source, "evaluated_on": described, "images": len(held), "image_size": size},
        "settings": {
            "k": k,
            "n_samples": n_samples,
            "seed": seed,
            "near_copy_threshold_rms": NEAR_COPY_RMS,
            "active_unit_threshold": ACTIVE_THRESHOLD,
            "gmm_components": gmm_components,
            "gmm_covariance": gmm_covariance,
            "c2st_seeds": c2st_seeds,
            "c2st_max_rounds": c2st_max_rounds,
            "c2st_sizes": ladder,
            **({"fine_temperatures": list(model.temperatures)} if model.hierarchical else {}),  # finer groups drawn from priors (joint-gmm: its own)
        },
        **likelihood_metrics(model, held, k, seed, batch, device),
    }
    net, feature_name, fid_note = feature_extractor(features, inception_weights, device)
    metrics["fid_kid"] = {"features": feature_name, "skipped": fid_note, "reference": described, "kid_subset_size": min(1000, len(held), n_samples)}
    held_features = extract_features(net, held, device=device) if net is not None else None
    samples: dict[str, torch.Tensor] = {}
    metrics["samplers"] = {}
    c2st = set(c2st_samplers if c2st_samplers is not None else [own_entry(default_sampler(run))]) if c2st_seeds else set()
    if c2st:
        faces, real = control_faces(train_images, train_pos, held, n_samples)
        say(f"evaluate: the two-sample test's positive control: {len(faces)} real faces blurred by 1 px against {len(real)} others")
        metrics["c2st_control"] = control = positive_control(faces, real, seeds=range(1), max_rounds=c2st_max_rounds)
        if not control["caught"]:
            print(
                f"warning: the two-sample test's positive control failed: real faces blurred by {control['sigma_px']:g} px were caught "
                f"{control['accuracy']:.3f} of the time (a working classifier: >= {control['caught_at']}); every ladder below is INVALID",
                file=sys.stderr,
            )
    for name, kind, mix_k in SAMPLERS:
        if (samplers and name not in samplers) or (not samplers and kind == "joint-gmm" and not model.hierarchical):
            continue
        try:
            sampler = make_sampler(kind, model, run, mix_k=mix_k if mix_k is not None else "all", gmm_components=gmm_components, gmm_covariance=gmm_covariance)
        except UserError as e:
            if kind not in ("gmm", "joint-gmm", "two-stage", "diffusion"):  # the fitted samplers can fail on odd latents: skipped, said
                raise
            say(f"evaluate: {name} skipped: {e}")
            metrics["samplers"][name] = {"skipped": str(e)}
            continue
        say(f"evaluate: {n_samples} samples from {name}")
        gen = torch.Generator().manual_seed(seed)
        samples[name] = decode_latents(model, sampler.sample(n_samples, gen), generator=gen)
        metrics["samplers"][name] = sample_metrics(samples[name], held, net, held_features, metrics["fid_kid"]["kid_subset_size"], seed, device)
        if name in c2st:
            say(f"evaluate: classifier two-sample test of {name} against the held-out faces ({c2st_seeds} seeds)")
            result = classifier_two_sample_test(samples[name], held, seeds=range(c2st_seeds), max_rounds=c2st_max_rounds, sizes=ladder)
            metrics["samplers"][name]["c2st"] = with_control(result, control)
    if c2st:
        say(f"evaluate: classifier two-sample test of the model's reconstructions of {min(n_samples, len(held))} held-out faces ({c2st_seeds} seeds)")
        metrics["reconstructions"] = reconstruction_c2st(model, held, n_samples, c2st_seeds, c2st_max_rounds, ladder)
        metrics["reconstructions"]["c2st"] = with_control(metrics["reconstructions"]["c2st"], control)
    if train_images is not None and samples:
        say(f"evaluate: nearest training image for {sum(len(v) for v in samples.values())} samples among {len(train_pos)} training images")
    for name, entry in memorisation(samples, train_images, train_pos, no_train).items():
        metrics["samplers"][name]["memorisation"] = entry
    out = Path(out) if out is not None else (Path(run) / "evaluation.json" if Path(run).is_dir() else Path("evaluation.json"))
    runs.write_json(out, _finite(metrics))
    print(format_table(metrics))
    return metrics, out


def training_faces(train_images, train_pos, n: int) -> torch.Tensor:
    """``n`` training faces spread evenly over the training split (uint8): what the positive control blurs."""
    pos = np.sort(train_pos[np.linspace(0, len(train_pos) - 1, min(n, len(train_pos))).round().astype(np.int64)])
    return torch.from_numpy(np.ascontiguousarray(train_images[pos]))


def control_faces(train_images, train_pos, held: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(faces to blur, real faces) for the positive control: training faces against the
    held-out faces, as the ladders' sets are sized; without training images, alternate held-out faces against the rest."""
    if train_images is not None:
        return training_faces(train_images, train_pos, n), held
    return held[0::2], held[1::2]


def reconstruction_c2st(model, held: torch.Tensor, n: int, seeds: int, max_rounds: int = MAX_ROUNDS, sizes=None) -> dict:
    """The two-sample test of the model's reconstructions (``reconstruct_images``' default: a posterior draw for a
    hierarchical model, the means for a one-latent one) of ``n`` held-out
    faces, faces it never trained on, against those faces: the same test as the samplers', on what the decoder
    draws when its latents are the best they can be. A sampler's accuracy near this one means the blur is the
    decoder's, not the sampler's. Paired: a face and its reconstruction fall in the same part of each split
    (``accuracy_once``), which makes this test, if anything, stricter than the samplers'."""
    faces = held[:n]
    recons = reconstruct_images(model, faces)
    result = classifier_two_sample_test(recons, faces, seeds=range(seeds), max_rounds=max_rounds, sizes=sizes, paired=True)
    how = "every latent drawn from the posterior, seed 0" if model.hierarchical else "the latent at its posterior mean"
    note = f"reconstructions of held-out faces ({how}) against those faces; 0.5 = indistinguishable"
    return {"c2st": result | {"note": note}, "high_frequency_ratio": metric.high_frequency_ratio(recons, faces)}


def own_entry(sampler: str) -> str:
    """The evaluate table's row for a run's own sampler (``train.sampler``)."""
    return {"mix": f"mix_k{DEFAULT_MIX_K}", "two-stage": "two_stage", "joint-gmm": "joint_gmm"}.get(sampler, sampler)


def likelihood_metrics(model, held: torch.Tensor, k: int, seed: int, batch: int, device: str) -> dict:
    """The likelihood bounds, reconstruction quality and latent usage on the held-out images (uint8)."""
    gen = torch.Generator().manual_seed(seed)
    per = {name: [] for name in ("elbo", "iwae", "recon", "kl", "mse", "psnr", "ssim")}
    mus, groups = [], []
    step = max(1, min(batch, 256 // k))
    for s in range(0, len(held), step):
        x = held[s : s + step].float().div(255).to(device)
        iw = metric.importance_weights(model, x, k, gen)
        recon = model.likelihood(model.reconstruct(x)).mean.cpu().double()
        xc = x.cpu().double()
        per["elbo"].append(iw.elbo)
        per["iwae"].append(iw.iwae)
        per["recon"].append(-iw.log_px_z.mean(1))
        per["kl"].append(iw.kl)
        per["mse"].append((recon - xc).pow(2).flatten(1).mean(1))
        per["psnr"].append(metric.psnr(recon, xc))
        per["ssim"].append(metric.ssim(recon, xc))
        mus.append(iw.mu)
        if iw.kl_groups is not None:
            groups.append(iw.kl_groups)
    per = {name: torch.cat(v) for name, v in per.items()}
    dims = held[0].numel()
    neg_elbo, neg_iwae = -float(per["elbo"].mean()), -float(per["iwae"].mean())
    return {
        "likelihood": {
            "neg_elbo_per_image": neg_elbo,
            "neg_elbo_per_dim": neg_elbo / dims,
            "neg_iwae_per_image": neg_iwae,
            "neg_iwae_per_dim": neg_iwae / dims,
            "iwae_k": k,
            "recon_per_image": float(per["recon"].mean()),
            "kl_per_image": float(per["kl"].mean()),
            "note": f"nats, {model.config.likelihood} likelihood of pixels in [0, 1] as in training; "
            "IWAE >= ELBO as bounds on log p(x), so neg_iwae <= neg_elbo",
        },
        "reconstruction": {
            "mse": float(per["mse"].mean()),
            "psnr": float(per["psnr"].mean()),
            "ssim": float(per["ssim"].mean()),
            "note": "decode of the encoder mean vs the input, pixels in [0, 1]; PSNR in dB",
        },
        "latents": {
            "kl_per_image": float(per["kl"].mean()),
            "active_units": metric.active_units(torch.cat(mus)),
            "latent_dim": model.config.latent_dim,
            **({"kl_per_group": dict(zip(group_names(model), torch.cat(groups).mean(0).tolist()))} if groups else {}),
        },
    }


def group_names(model) -> list[str]:
    """A hierarchical model's latent groups by their map sizes, top first ("top 16x6x6", "8x12x12", ...)."""
    shape = model.latent_shape
    names = [f"top {shape[0]}x{shape[1]}x{shape[2]}"]
    for group in model.decoder.groups:
        side = shape[1] * 2 ** (group.scale + 1)
        name = f"{group.z_channels}x{side}x{side}"
        names.append(name if name not in names else f"{name} #{sum(n.split(' #')[0] == name for n in names) + 1}")
    return names


def feature_extractor(features: str | None, inception_weights: str | None, device: str) -> tuple[nn.Module | None, str, str | None]:
    """(network or None, its name, why FID/KID are skipped or None): ``--features`` if given, else Inception-v3 where it can be built."""
    if features:
        net, name, note = load_features(features), features, None
    else:
        name, note = "inception-v3 (torch-fidelity)", None
        try:
            net = standard_features(inception_weights)
        except FeaturesUnavailable as e:
            net, note = None, str(e)
            print(
                f"FID/KID skipped: {e}; pass --inception-weights PATH (pt_inception-2015-12-05 weights, torch-fidelity installed) "
                "or --features package.module:callable (e.g. animevae.evaluation.features:pixel_features, offline, not comparable to published FID)"
            )
    if net is not None and isinstance(net, nn.Module):
        net = net.to(device).eval()
    return net, name, note


def sample_metrics(images: torch.Tensor, held: torch.Tensor, net, held_features, kid_subset_size: int, seed: int, device: str) -> dict:
    """One sampler's faces: diversity, fine detail against the held-out images, and FID/KID against their features (None without)."""
    entry = {
        "diversity_rms": metric.mean_pairwise_rms(images),
        "high_frequency_ratio": metric.high_frequency_ratio(images, held),
        "fid": None,
        "kid": None,
        "kid_std": None,
    }
    if net is not None:
        f = extract_features(net, images, device=device)
        kid_mean, kid_std = metric.kernel_inception_distance(f, held_features, subset_size=kid_subset_size, seed=seed)
        entry.update(fid=metric.frechet_distance(f, held_features), kid=kid_mean, kid_std=kid_std)
    return entry


def memorisation(samples: dict[str, torch.Tensor], train_images, train_pos, no_train: str | None) -> dict[str, dict]:
    """Per sampler: how close its faces come to training images, in one pass over the training images for all samplers."""
    if train_images is None or not samples:
        return {name: {"skipped": no_train} for name in samples}
    names = list(samples)
    nn_rms = metric.nearest_rms(torch.cat([samples[n] for n in names]), train_images, train_pos)
    out, start = {}, 0
    for name in names:
        d = nn_rms[start : start + len(samples[name])]
        start += len(samples[name])
        out[name] = {
            "median_nearest_train_rms": float(d.median()),
            "min_nearest_train_rms": float(d.min()),
            "near_copies": int((d < NEAR_COPY_RMS).sum()),
            "near_copy_threshold_rms": NEAR_COPY_RMS,
            "of": len(d),
        }
    return out


def _finite(obj):
    """JSON has no inf/nan: write them as null (PSNR of a perfect reconstruction is inf)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj


def _fmt(v, spec: str = ".2f") -> str:
    return "-" if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, spec)


def _up_to(c: dict) -> str:
    if not c.get("valid", True):
        return "INVALID"
    return "none" if c.get("real_up_to") is None else f"{c['real_up_to']} px"


def ladder_rows(m: dict) -> list[tuple[str, dict]]:
    """(name, two-sample result) of each set ``evaluate`` ran the ladder on: samplers, then reconstructions."""
    rows = [(name, s["c2st"]) for name, s in m.get("samplers", {}).items() if "c2st" in s]
    if "reconstructions" in m:
        rows.append(("recons", m["reconstructions"]["c2st"]))
    return rows


def control_line(control: dict) -> str:
    verdict = "the classifier learns: the ladder is valid" if control["caught"] else "NOT caught: the classifier is not learning, the ladder is INVALID"
    return (
        f"control: real faces blurred by {control['sigma_px']:g} px against other real faces, caught {control['accuracy']:.3f} "
        f"at {control['size']} px (needs >= {control['caught_at']}): {verdict}"
    )


def format_ladder(m: dict) -> list[str]:
    """The realism ladder as a small table: each tested set's mean accuracy at each size, and the size it passes up to."""
    rows = ladder_rows(m)
    if not rows:
        return []
    sizes = list(rows[0][1]["by_size"])
    lines = [
        f"realism ladder: a classifier's accuracy at telling the faces from real ones, both shrunk to each size (0.5 = cannot; "
        f"<= {PASSES_AT:.2f} passes), mean of {len(rows[0][1]['per_seed'])} seeds",
        f"  {'faces':<9} " + " ".join(f"{px:>6}" for px in sizes) + "   real up to",
    ]
    for name, c in rows:
        cells = " ".join(f"{_fmt(c['by_size'][px]['accuracy'], '.3f'):>6}" if px in c["by_size"] else f"{'-':>6}" for px in sizes)
        lines.append(f"  {name:<9} {cells}   {_up_to(c)}")
    if "reconstructions" in m:
        lines.append("  recons: the model's reconstructions of held-out faces (what its samples could be with the best latents)")
    if m.get("c2st_control"):
        lines.append("  " + control_line(m["c2st_control"]))
    return lines


def ladder_markdown(m: dict) -> str:
    """The realism ladder of an evaluation as a markdown table (the model card's), or '' when none was run."""
    rows = ladder_rows(m)
    if not rows:
        return ""
    sizes = list(rows[0][1]["by_size"])
    lines = ["| faces | " + " | ".join(px.replace("px", " px") for px in sizes) + " | real up to |", "|---|" + "---|" * (len(sizes) + 1)]
    for name, c in rows:
        lines.append(
            f"| {name} | " + " | ".join(_fmt(c["by_size"][px]["accuracy"], ".3f") if px in c["by_size"] else "-" for px in sizes) + f" | {_up_to(c)} |"
        )
    if m.get("c2st_control"):
        lines += ["", control_line(m["c2st_control"])[0].upper() + control_line(m["c2st_control"])[1:] + "."]
    return "\n".join(lines)


def format_table(m: dict) -> str:
    lk, rc, lt = m["likelihood"], m["reconstruction"], m["latents"]
    lines = [
        f"evaluated on {m['data']['evaluated_on']}",
        f"  {'-ELBO':<12} {_fmt(lk['neg_elbo_per_image'], '.1f')} nats/image   {_fmt(lk['neg_elbo_per_dim'], '.4f')} nats/dim",
        f"  {'-IWAE k=' + str(lk['iwae_k']):<12} {_fmt(lk['neg_iwae_per_image'], '.1f')} nats/image   {_fmt(lk['neg_iwae_per_dim'], '.4f')} nats/dim",
        f"  recon        {_fmt(lk['recon_per_image'], '.1f')} nats/image   KL {_fmt(lt['kl_per_image'], '.1f')} nats/image   "
        f"active units {lt['active_units']}/{lt['latent_dim']}",
        *(["  KL per group: " + "   ".join(f"{k} {_fmt(v, '.1f')}" for k, v in lt["kl_per_group"].items()) + " nats/image"] if lt.get("kl_per_group") else []),
        f"  reconstruction: MSE {_fmt(rc['mse'], '.5f')}   PSNR {_fmt(rc['psnr'])} dB   SSIM {_fmt(rc['ssim'], '.4f')}",
        f"samples ({m['settings']['n_samples']} per sampler; near-copy = RMS < {NEAR_COPY_RMS:g} of 255 to a training image; "
        f"FID/KID features: {m['fid_kid']['features']}{' - skipped' if m['fid_kid']['skipped'] else ''})",
        f"  {'sampler':<9} {'diversity':>9} {'NN median':>9} {'copies':>7} {'FID':>9} {'KID':>9} {'HF ratio':>8}",
    ]
    for name, s in m["samplers"].items():
        if "skipped" in s:
            lines.append(f"  {name:<9} skipped: {s['skipped']}")
            continue
        mem = s.get("memorisation") or {}
        copies = f"{mem['near_copies']}/{mem['of']}" if "near_copies" in mem else "-"
        lines.append(
            f"  {name:<9} {_fmt(s['diversity_rms'], '.1f'):>9} {_fmt(mem.get('median_nearest_train_rms'), '.1f'):>9} {copies:>7} "
            f"{_fmt(s.get('fid'), '.3f'):>9} {_fmt(s.get('kid'), '.4f'):>9} {_fmt(s.get('high_frequency_ratio'), '.2f'):>8}"
        )
    if "reconstructions" in m:
        hf = _fmt(m["reconstructions"].get("high_frequency_ratio"), ".2f")
        lines.append(f"  {'recons':<9} {'':>9} {'':>9} {'':>7} {'':>9} {'':>9} {hf:>8}   (of held-out faces: the decoder's own)")
    lines.append("  HF ratio: power above half the Nyquist frequency relative to real faces' (1 = as much fine detail)")
    return "\n".join(lines + format_ladder(m))
