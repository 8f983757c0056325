"""Gaussian-mixture EM in torch: the gmm sampler's fit, fast enough to run when training ends.

scikit-learn's ``GaussianMixture`` does the same in float64 on one BLAS thread, one component at a
time; on a spatial run's 20,000 x 576 latents that took minutes. Here the two costly products of
every iteration (each point's Mahalanobis distance to each component, and each component's weighted
scatter matrix, over the points it is responsible for) are float32 GEMMs on all cores, while what needs precision (Cholesky factors,
log-determinants, the responsibilities' normaliser) stays in float64. Initialisation is
scikit-learn's default: greedy k-means++ seeds, then Lloyd's k-means to convergence, so a seed gives
the same mixture every time.
"""

from __future__ import annotations

import math

import torch

GEMM_DTYPE = torch.float32  # the two large products per iteration; everything else is float64
RESP_FLOOR = 1e-12  # responsibilities at or below this add nothing a float32 scatter matrix could hold


class FitFailed(ValueError):
    """The mixture cannot be fitted to these points (a covariance that is not positive definite)."""


def kmeans_plus_plus(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k seeds, each drawn with probability proportional to its squared distance to the nearest seed so far;
    greedy: of 2 + log k such candidates the one that lowers the total distance most (Arthur & Vassilvitskii)."""
    n = len(x)
    first = x[int(torch.randint(n, (1,), generator=gen))]
    seeds, d2 = [first], ((x - first) ** 2).sum(1)
    trials = 2 + int(math.log(k))
    for _ in range(1, k):
        total = d2.sum()
        p = d2 / total if total > 0 else torch.full_like(d2, 1 / n)
        cand = torch.multinomial(p, trials, replacement=True, generator=gen)
        after = torch.minimum(d2[None], torch.cdist(x[cand], x).pow(2))
        best = int(after.sum(1).argmin())
        seeds.append(x[cand[best]])
        d2 = after[best]
    return torch.stack(seeds)


def kmeans(x: torch.Tensor, seeds: torch.Tensor, max_iter: int = 300) -> torch.Tensor:
    """Lloyd's iterations from ``seeds`` until no label changes: each point's cluster label."""
    centres, labels = seeds.clone(), None
    sq = (x * x).sum(1, keepdim=True)
    for _ in range(max_iter):
        new = (sq - 2 * x @ centres.T + (centres * centres).sum(1)).argmin(1)
        if labels is not None and torch.equal(new, labels):
            break
        labels = new
        counts = torch.bincount(labels, minlength=len(centres)).to(x.dtype)
        sums = torch.zeros_like(centres).index_add_(0, labels, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return labels


def _m_step(x: torch.Tensor, resp: torch.Tensor, covariance_type: str, reg: float):
    """Weights, means and covariance factors (Cholesky factors for full, standard deviations for diag) from responsibilities."""
    n, d = x.shape
    nk = resp.sum(0).double() + 10 * torch.finfo(torch.float64).eps
    means = (resp.T @ x).double() / nk[:, None]
    if covariance_type == "full":
        eye = torch.eye(d, dtype=torch.float64, device=x.device)
        covs = []
        for j in range(len(nk)):
            # only the points this component is responsible for: in a wide latent space EM's responsibilities are
            # nearly all 0 or 1, so this skips most of each scatter product and changes it by < RESP_FLOOR
            mine = (resp[:, j] > RESP_FLOOR).nonzero().squeeze(1)
            xc = (x[mine] - means[j].to(x.dtype)) * resp[mine, j].sqrt()[:, None]
            covs.append((xc.T @ xc).double() / nk[j] + reg * eye)
        scale, info = torch.linalg.cholesky_ex(torch.stack(covs))
        if bool((info > 0).any()):
            raise FitFailed("some components have ill-defined empirical covariance")
    else:
        x64 = x.double()
        var = (resp.T.double() @ (x64 * x64)) / nk[:, None] - means**2 + reg
        if bool((var <= 0).any()):
            raise FitFailed("some components have ill-defined empirical covariance")
        scale = var.sqrt()
    return nk / n, means, scale


def _log_prob(x: torch.Tensor, weights, means, scale, covariance_type: str) -> torch.Tensor:
    """log(weight_k) + log N(x | mean_k, cov_k) for every point and component: N x K, float64."""
    n, d = x.shape
    k = len(means)
    if covariance_type == "full":
        # the precision's Cholesky factor P = L^-T turns the Mahalanobis distance into one GEMM per component
        eye = torch.eye(d, dtype=torch.float64, device=x.device).expand(k, d, d)
        prec = torch.linalg.solve_triangular(scale, eye, upper=False).transpose(1, 2).to(x.dtype)
        maha = torch.empty(n, k, dtype=x.dtype, device=x.device)
        for j in range(k):
            y = (x - means[j].to(x.dtype)) @ prec[j]
            maha[:, j] = (y * y).sum(1)
        half_logdet = torch.log(torch.diagonal(scale, dim1=1, dim2=2)).sum(1)
    else:
        inv = (1 / scale**2).to(x.dtype)
        m = means.to(x.dtype)
        maha = (x * x) @ inv.T - 2 * x @ (m * inv).T + (m * m * inv).sum(1)
        half_logdet = torch.log(scale).sum(1)
    return -0.5 * maha.double() - half_logdet - 0.5 * d * math.log(2 * math.pi) + weights.log()


def fit_mixture(x: torch.Tensor, k: int, covariance_type: str = "full", reg: float = 1e-6, seed: int = 0, max_iter: int = 100, tol: float = 1e-3):
    """EM for a ``k``-component Gaussian mixture on the rows of ``x``, on ``x``'s device.

    Stops when the mean log-likelihood per point changes by less than ``tol`` (scikit-learn's rule) or after
    ``max_iter`` iterations. Returns (weights K, means K x D, scale, iterations, mean log-likelihood), float64;
    ``scale`` is K x D x D lower Cholesky factors (full) or K x D standard deviations (diag). Raises FitFailed.
    """
    gen = torch.Generator().manual_seed(seed)
    shift = x.double().mean(0)
    xs = (x.double() - shift).to(GEMM_DTYPE)  # centred: float32 products lose nothing to a common offset
    labels = kmeans(xs, kmeans_plus_plus(xs.cpu(), k, gen).to(xs.device))
    resp = torch.nn.functional.one_hot(labels, k).to(xs.dtype)
    previous, score, iterations = -math.inf, -math.inf, 0
    weights, means, scale = _m_step(xs, resp, covariance_type, reg)
    while iterations < max_iter:
        iterations += 1
        log_prob = _log_prob(xs, weights, means, scale, covariance_type)
        norm = torch.logsumexp(log_prob, 1)
        score = float(norm.mean())
        if not math.isfinite(score):
            raise FitFailed("the likelihood is not finite")
        resp = (log_prob - norm[:, None]).exp().to(xs.dtype)
        weights, means, scale = _m_step(xs, resp, covariance_type, reg)
        if abs(score - previous) < tol:
            break
        previous = score
    return weights, means + shift.to(means.device), scale, iterations, score
