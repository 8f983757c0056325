"""How good is a trained run? Likelihood bounds, reconstructions, latent usage, and every sampler's faces.

On held-out images (the run's own held-out split when ``--data`` is its training source, else all of
``--data``):

- negative ELBO (recon + KL, the training loss) and the tighter IWAE bound with ``k`` importance
  samples, per image and per pixel dimension (nats; Bernoulli-logit likelihood as in training, so
  these are not the bits/dim of papers that model discrete pixels);
- reconstruction MSE, PSNR and SSIM (the decode of the encoder mean, pixels in [0, 1]);
- KL per image and the number of active latent units (Burda et al. 2016: Cov_x(E_q[z]) > 0.01).

For each sampler (mix with k = 2, 4, 16, all; prior; gmm): diversity (mean pairwise RMS pixel
distance between samples, 0..255 scale), memorisation (each sample's RMS distance to its nearest
training image; the median and how many are near-copies), and FID / KID against the held-out images.

FID/KID need a feature extractor. The standard one (Inception-v3, through torch-fidelity as
torchmetrics uses it) needs torchvision and downloaded weights; when it cannot be built the two are
skipped with one line saying why. ``--features package.module:attr`` names any callable returning an
``nn.Module`` that maps N x 3 x H x W images (uint8) to N x D features; ``animevae.evaluate:pixel_features``
(8 x 8 average-pooled pixels) ships for offline use and tests -- its FID is NOT comparable to
published (Inception) FID numbers.
"""

from __future__ import annotations

import importlib
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import runs
from .errors import UserError
from .loss import kl_divergence

NEAR_COPY_RMS = 10.0  # a sample this close (RMS over pixels, 0..255 scale) to a training image counts as a near-copy
ACTIVE_THRESHOLD = 0.01  # Burda et al.: a latent unit is active when Cov_x(E_q[z_d]) exceeds this
LOG_2PI = math.log(2 * math.pi)
SAMPLERS = (("mix_k2", "mix", 2), ("mix_k4", "mix", 4), ("mix_k16", "mix", 16), ("mix_all", "mix", None), ("prior", "prior", None), ("gmm", "gmm", None))


# -- metric functions on tensors ---------------------------------------------------------------------


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Peak signal-to-noise ratio per image (dB): 10 log10(range^2 / MSE); inf for identical images."""
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def _gaussian_window(size: int, sigma: float, channels: int) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, dtype=torch.float64) - (size - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 11, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03) -> torch.Tensor:
    """Structural similarity per image (Wang et al. 2004): 11x11 gaussian window (sigma 1.5), valid region, mean over channels."""
    x, y = x.double(), y.double()
    c = x.shape[1]
    window = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(window, sigma, c).to(x.device)
    blur = lambda t: F.conv2d(t, w, groups=c)  # noqa: E731
    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_THRESHOLD) -> int:
    """Latent dimensions whose posterior mean varies across images: Var_x(E_q[z_d]) > threshold."""
    if len(mu) < 2:
        return 0
    return int((mu.double().var(0, unbiased=True) > threshold).sum())


def logmeanexp(t: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return torch.logsumexp(t, dim) - math.log(t.shape[dim])


@dataclass
class ImportanceWeights:
    log_w: torch.Tensor  # N x k: log p(x|z) + log p(z) - log q(z|x) for z ~ q(z|x)
    log_px_z: torch.Tensor  # N x k: log p(x|z) = -BCE-with-logits summed over pixels (the training loss's recon term)
    kl: torch.Tensor  # N: analytic KL(q(z|x) || N(0, I))
    mu: torch.Tensor  # N x latent
    logvar: torch.Tensor

    @property
    def iwae(self) -> torch.Tensor:
        """Per image: log (1/k) sum_i w_i, a lower bound on log p(x) that tightens as k grows."""
        return logmeanexp(self.log_w, 1)

    @property
    def elbo_mc(self) -> torch.Tensor:
        """Per image: the k-sample Monte-Carlo ELBO, mean_i log w_i (<= iwae for the same samples, by Jensen)."""
        return self.log_w.mean(1)

    @property
    def elbo(self) -> torch.Tensor:
        """Per image: mean_i log p(x|z_i) - KL (analytic): minus the training loss, in expectation equal to elbo_mc."""
        return self.log_px_z.mean(1) - self.kl


@torch.no_grad()
def importance_weights(model, x: torch.Tensor, k: int, generator: torch.Generator | None = None) -> ImportanceWeights:
    """k samples z ~ q(z|x) per image (noise from ``generator``, drawn as N x k x latent on the CPU) and their log-weights."""
    enc = model.encode(x)
    mu, logvar = enc.mu.float(), enc.logvar.float()
    n, d = mu.shape
    eps = torch.randn(n, k, d, generator=generator).to(mu.device)
    z = mu[:, None] + torch.exp(logvar / 2)[:, None] * eps
    logits = model.decode(z.reshape(n * k, d)).float()
    target = x.float().repeat_interleave(k, 0)
    log_px_z = -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1).view(n, k)
    log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    log_qz = -0.5 * (eps.pow(2) + logvar[:, None] + LOG_2PI).sum(-1)
    log_w = (log_px_z.double() + log_pz.double() - log_qz.double())
    return ImportanceWeights(log_w.cpu(), log_px_z.double().cpu(), kl_divergence(mu, logvar).sum(1).double().cpu(), mu.cpu(), logvar.cpu())


def _features_array(f) -> np.ndarray:
    f = f.detach().cpu().double().numpy() if isinstance(f, torch.Tensor) else np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"expected an N x D array of features with N >= 2, got shape {f.shape}")
    return f


def _sqrtm_psd(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((c + c.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance_from_stats(mu1, cov1, mu2, cov2) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1 C2)^(1/2)), float64; tr (C1 C2)^(1/2) via the symmetric C1^(1/2) C2 C1^(1/2)."""
    mu1, mu2, cov1, cov2 = (np.asarray(a, dtype=np.float64) for a in (mu1, mu2, cov1, cov2))
    s1 = _sqrtm_psd(cov1)
    m = s1 @ cov2 @ s1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def frechet_distance(f1, f2) -> float:
    """FID between two feature sets: the Fréchet distance of their Gaussian fits."""
    f1, f2 = _features_array(f1), _features_array(f2)
    return frechet_distance_from_stats(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


def kernel_inception_distance(f1, f2, n_subsets: int = 100, subset_size: int = 1000, seed: int = 0) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with the kernel (x.y / D + 1)^3, mean and std over random subsets."""
    f1, f2 = _features_array(f1), _features_array(f2)
    d = f1.shape[1]
    m = min(subset_size, len(f1), len(f2))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        values.append((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def mean_pairwise_rms(images: torch.Tensor) -> float:
    """Diversity: mean over pairs of the RMS pixel difference (0..255 scale) between two images of the set."""
    x = images.flatten(1).double()
    if len(x) < 2:
        return float("nan")
    d = torch.cdist(x, x).div_(math.sqrt(x.shape[1]))
    i, j = torch.triu_indices(len(x), len(x), 1)
    return float(d[i, j].mean())


def nearest_rms(samples: torch.Tensor, train_images, positions=None, chunk: int = 1024) -> torch.Tensor:
    """Each sample's RMS pixel distance (0..255 scale) to its nearest image in ``train_images[positions]`` (read in chunks)."""
    positions = np.arange(len(train_images)) if positions is None else np.asarray(positions)
    s = samples.flatten(1).float() - 127.5
    s2 = s.pow(2).sum(1)
    best = torch.full((len(s),), float("inf"))
    for start in range(0, len(positions), chunk):
        t = torch.from_numpy(np.ascontiguousarray(train_images[positions[start : start + chunk]])).flatten(1).float() - 127.5
        d2 = s2[:, None] + t.pow(2).sum(1)[None] - 2 * (s @ t.T)
        best = torch.minimum(best, d2.min(1).values)
    return (best.clamp(min=0) / s.shape[1]).sqrt()


# -- feature extractors ----------------------------------------------------------------------------


class PixelFeatures(nn.Module):
    """Images -> their 8 x 8 average-pooled pixels (192 numbers in [0, 1]): offline, for tests and quick looks.

    FID/KID on these features measure colour layout only; they are NOT comparable to published FID.
    """

    def __init__(self, size: int = 8):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        return F.adaptive_avg_pool2d(x, self.size).flatten(1)


def pixel_features() -> nn.Module:
    return PixelFeatures()


class FeaturesUnavailable(Exception):
    """The standard (Inception) extractor cannot be built here; FID/KID are skipped."""


class _FirstOutput(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def standard_features(weights_path: str | None = None) -> nn.Module:
    """torch-fidelity's Inception-v3 (the FID standard, as torchmetrics uses it), 2048-d pool features."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # ImportError, or torchvision failing to load beside this torch
        raise FeaturesUnavailable(f"the standard Inception-v3 extractor (torch-fidelity, which needs torchvision) cannot be imported "
                                  f"({type(e).__name__}: {_first_line(e)})") from None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights_path)
    except Exception as e:  # a download that fails offline, or a bad weights file
        raise FeaturesUnavailable(f"the Inception-v3 weights could not be loaded ({type(e).__name__}: {_first_line(e)}; "
                                  "without internet they must be given as a local file)") from None
    return _FirstOutput(net)


def load_features(spec: str) -> nn.Module:
    """``package.module:attr`` -> attr() (an nn.Module mapping uint8 N x 3 x H x W images to N x D features)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"--features {spec}: expected package.module:callable, e.g. animevae.evaluate:pixel_features")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise UserError(f"--features {spec}: cannot import {module_name} ({type(e).__name__}: {_first_line(e)})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"--features {spec}: {module_name} has no callable {attr}")
    try:
        net = factory()
    except Exception as e:
        raise UserError(f"--features {spec}: calling {attr}() failed ({type(e).__name__}: {_first_line(e)})") from None
    if not callable(net):
        raise UserError(f"--features {spec}: {attr}() returned {type(net).__name__}, not a module mapping images to features")
    return net


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


@torch.no_grad()
def extract_features(net, images: torch.Tensor, batch: int = 100, device: str = "cpu") -> np.ndarray:
    out = []
    for s in range(0, len(images), batch):
        f = net(images[s : s + batch].to(device))
        if not isinstance(f, torch.Tensor) or f.ndim < 2 or len(f) != len(images[s : s + batch]):
            raise UserError(f"the feature extractor returned {getattr(f, 'shape', type(f).__name__)}; expected N x D features")
        out.append(f.flatten(1).double().cpu().numpy())
    return np.concatenate(out)


# -- the evaluation of a run -----------------------------------------------------------------------


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
    from dataclasses import replace

    from .config import DataConfig, from_dict
    from .data.cache import load_images
    from .train import split_rows

    saved = run_config.get("data") or {}
    train_cfg = run_config.get("train") or {}
    own_cfg = None
    if saved.get("source"):
        own_cfg = replace(from_dict(DataConfig, saved, "config.json data"), cache=data_cfg.cache, cache_dir=data_cfg.cache_dir,
                          workers=data_cfg.workers)
    kept = (run_config.get("data_stats") or {}).get("counts", {}).get("kept")
    if own_cfg is not None and _same_path(data_cfg.source, own_cfg.source):
        faces = load_images(replace(own_cfg, source=data_cfg.source), image_size, progress=progress)
        if kept is None or len(faces) == kept:
            train_pos, val_pos = split_rows(len(faces), train_cfg.get("val_fraction", 0.05), train_cfg.get("seed", 0))
            if len(val_pos) == 0:
                raise UserError(f"--data {data_cfg.source}: the run held out no images (val_fraction {train_cfg.get('val_fraction')}); "
                                "evaluate on another data source")
            held = val_pos[:limit] if limit else val_pos
            return (torch.from_numpy(np.ascontiguousarray(faces.images[held])), faces.images, train_pos,
                    f"the run's held-out split of {data_cfg.source} ({len(held)} of {len(val_pos)} images)", None)
        print(f"note: --data {data_cfg.source} now has {len(faces)} images, the run trained on {kept}; evaluating on all of it",
              file=sys.stderr)
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
def evaluate(run: str, data_cfg, out: str | Path | None = None, limit: int | None = None, k: int = 16, n_samples: int = 500,
             features: str | None = None, inception_weights: str | None = None, seed: int = 0, device: str = "cpu",
             gmm_components: int = 10, gmm_covariance: str = "full", batch: int = 64, progress: bool = True) -> tuple[dict, Path]:
    """Compute every metric, write them as JSON to ``out`` (default RUN/evaluation.json), print a table; returns (metrics, path)."""
    from .sample import decode_latents, load_model, make_sampler

    if k < 1:
        raise UserError(f"--k must be at least 1, got {k}")
    if n_samples < 2:
        raise UserError(f"--n-samples must be at least 2, got {n_samples}")
    if limit is not None and limit < 2:
        raise UserError(f"--limit must be at least 2, got {limit}")
    if inception_weights is not None and not Path(inception_weights).expanduser().is_file():
        raise UserError(f"--inception-weights {inception_weights}: no such file")
    say = (lambda msg: print(msg, file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    model = load_model(run, device)
    run_config = runs.load_run_config(run)
    size = model.config.image_size
    held, train_images, train_pos, described, no_train = load_eval_data(run_config, data_cfg, size, limit, progress=progress)
    if len(held) < 2:
        raise UserError(f"--data {data_cfg.source}: {len(held)} image(s) to evaluate on; need at least 2")
    say(f"evaluate: {described}")

    # likelihood bounds, reconstructions, latents
    gen = torch.Generator().manual_seed(seed)
    per = {name: [] for name in ("elbo", "iwae", "recon", "kl", "mse", "psnr", "ssim")}
    mus = []
    step = max(1, min(batch, 256 // k))
    for s in range(0, len(held), step):
        x = held[s : s + step].float().div(255).to(device)
        iw = importance_weights(model, x, k, gen)
        recon = torch.sigmoid(model.decode(iw.mu.to(device)).float()).cpu().double()
        xc = x.cpu().double()
        per["elbo"].append(iw.elbo)
        per["iwae"].append(iw.iwae)
        per["recon"].append(-iw.log_px_z.mean(1))
        per["kl"].append(iw.kl)
        per["mse"].append((recon - xc).pow(2).flatten(1).mean(1))
        per["psnr"].append(psnr(recon, xc))
        per["ssim"].append(ssim(recon, xc))
        mus.append(iw.mu)
    per = {name: torch.cat(v) for name, v in per.items()}
    dims = 3 * size * size
    neg_elbo, neg_iwae = -float(per["elbo"].mean()), -float(per["iwae"].mean())
    metrics: dict = {
        "run": str(run),
        "data": {"source": data_cfg.source, "evaluated_on": described, "images": len(held), "image_size": size},
        "settings": {"k": k, "n_samples": n_samples, "seed": seed, "near_copy_threshold_rms": NEAR_COPY_RMS,
                     "active_unit_threshold": ACTIVE_THRESHOLD, "gmm_components": gmm_components, "gmm_covariance": gmm_covariance},
        "likelihood": {
            "neg_elbo_per_image": neg_elbo,
            "neg_elbo_per_dim": neg_elbo / dims,
            "neg_iwae_per_image": neg_iwae,
            "neg_iwae_per_dim": neg_iwae / dims,
            "iwae_k": k,
            "recon_per_image": float(per["recon"].mean()),
            "kl_per_image": float(per["kl"].mean()),
            "note": "nats, Bernoulli-logit likelihood of pixels in [0, 1] as in training; IWAE >= ELBO as bounds on log p(x), so neg_iwae <= neg_elbo",
        },
        "reconstruction": {"mse": float(per["mse"].mean()), "psnr": float(per["psnr"].mean()), "ssim": float(per["ssim"].mean()),
                           "note": "decode of the encoder mean vs the input, pixels in [0, 1]; PSNR in dB"},
        "latents": {"kl_per_image": float(per["kl"].mean()), "active_units": active_units(torch.cat(mus)),
                    "latent_dim": model.config.latent_dim},
    }

    # feature extractor for FID/KID
    net, fid_note = None, None
    if features:
        net, feature_name = load_features(features), features
    else:
        feature_name = "inception-v3 (torch-fidelity)"
        try:
            net = standard_features(inception_weights)
        except FeaturesUnavailable as e:
            fid_note = str(e)
            print(f"FID/KID skipped: {e}; pass --inception-weights PATH (pt_inception-2015-12-05 weights, torch-fidelity installed) "
                  "or --features package.module:callable (e.g. animevae.evaluate:pixel_features, offline, not comparable to published FID)")
    if net is not None and isinstance(net, nn.Module):
        net = net.to(device).eval()
    held_features = extract_features(net, held, device=device) if net is not None else None
    metrics["fid_kid"] = {"features": feature_name, "skipped": fid_note, "reference": described,
                          "kid_subset_size": min(1000, len(held), n_samples)}

    # samplers
    samples: dict[str, torch.Tensor] = {}
    metrics["samplers"] = {}
    for name, kind, mix_k in SAMPLERS:
        try:
            sampler = make_sampler(kind, model, run, mix_k=mix_k if mix_k is not None else "all", gmm_components=gmm_components,
                                   gmm_covariance=gmm_covariance)
        except UserError as e:
            if kind != "gmm":
                raise
            say(f"evaluate: gmm skipped: {e}")
            metrics["samplers"][name] = {"skipped": str(e)}
            continue
        say(f"evaluate: {n_samples} samples from {name}")
        z = sampler.sample(n_samples, torch.Generator().manual_seed(seed))
        images = decode_latents(model, z)
        samples[name] = images
        entry = {"diversity_rms": mean_pairwise_rms(images)}
        if net is not None:
            f = extract_features(net, images, device=device)
            kid_mean, kid_std = kernel_inception_distance(f, held_features, subset_size=metrics["fid_kid"]["kid_subset_size"], seed=seed)
            entry.update(fid=frechet_distance(f, held_features), kid=kid_mean, kid_std=kid_std)
        else:
            entry.update(fid=None, kid=None, kid_std=None)
        metrics["samplers"][name] = entry

    # memorisation: one pass over the training images for all samplers' samples
    if train_images is not None and samples:
        say(f"evaluate: nearest training image for {sum(len(v) for v in samples.values())} samples among {len(train_pos)} training images")
        names = list(samples)
        nn_rms = nearest_rms(torch.cat([samples[n] for n in names]), train_images, train_pos)
        for i, name in enumerate(names):
            d = nn_rms[i * n_samples : (i + 1) * n_samples]
            metrics["samplers"][name]["memorisation"] = {
                "median_nearest_train_rms": float(d.median()), "min_nearest_train_rms": float(d.min()),
                "near_copies": int((d < NEAR_COPY_RMS).sum()), "near_copy_threshold_rms": NEAR_COPY_RMS, "of": len(d)}
    else:
        for name in samples:
            metrics["samplers"][name]["memorisation"] = {"skipped": no_train}

    out = Path(out) if out is not None else (Path(run) / "evaluation.json" if Path(run).is_dir() else Path("evaluation.json"))
    runs.write_json(out, _finite(metrics))
    print(format_table(metrics))
    return metrics, out


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


def format_table(m: dict) -> str:
    lk, rc, lt = m["likelihood"], m["reconstruction"], m["latents"]
    lines = [
        f"evaluated on {m['data']['evaluated_on']}",
        f"  {'-ELBO':<12} {_fmt(lk['neg_elbo_per_image'], '.1f')} nats/image   {_fmt(lk['neg_elbo_per_dim'], '.4f')} nats/dim",
        f"  {'-IWAE k=' + str(lk['iwae_k']):<12} {_fmt(lk['neg_iwae_per_image'], '.1f')} nats/image   {_fmt(lk['neg_iwae_per_dim'], '.4f')} nats/dim",
        f"  recon        {_fmt(lk['recon_per_image'], '.1f')} nats/image   KL {_fmt(lt['kl_per_image'], '.1f')} nats/image   "
        f"active units {lt['active_units']}/{lt['latent_dim']}",
        f"  reconstruction: MSE {_fmt(rc['mse'], '.5f')}   PSNR {_fmt(rc['psnr'])} dB   SSIM {_fmt(rc['ssim'], '.4f')}",
        f"samples ({m['settings']['n_samples']} per sampler; near-copy = RMS < {NEAR_COPY_RMS:g} of 255 to a training image; "
        f"FID/KID features: {m['fid_kid']['features']}{' - skipped' if m['fid_kid']['skipped'] else ''})",
        f"  {'sampler':<9} {'diversity':>9} {'NN median':>9} {'copies':>7} {'FID':>9} {'KID':>9}",
    ]
    for name, s in m["samplers"].items():
        if "skipped" in s:
            lines.append(f"  {name:<9} skipped: {s['skipped']}")
            continue
        mem = s.get("memorisation") or {}
        copies = f"{mem['near_copies']}/{mem['of']}" if "near_copies" in mem else "-"
        lines.append(f"  {name:<9} {_fmt(s['diversity_rms'], '.1f'):>9} {_fmt(mem.get('median_nearest_train_rms'), '.1f'):>9} {copies:>7} "
                     f"{_fmt(s.get('fid'), '.3f'):>9} {_fmt(s.get('kid'), '.4f'):>9}")
    return "\n".join(lines)
