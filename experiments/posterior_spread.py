"""How wide is each finer latent group's aggregate posterior against its learned prior: the temperature that matches them.

During training the decoder sees each finer group drawn from its posterior, z = mu_p + d_mu + sigma_p e^(d_logvar / 2) eps,
in the prior's whitened coordinates u = (z - mu_p) / sigma_p = d_mu / sigma_p + e^(d_logvar / 2) eps. Sampling draws
u = T eps from the prior at temperature T. The two agree in scale when T^2 = E[u^2] = E[(d_mu / sigma_p)^2] + E[e^d_logvar]
over the training faces: the *matched temperature* of the group. Free bits hold every dimension's KL at 0.25 nats or
more, which moves the posteriors off their priors: if the posterior's variance stays near the prior's, its means'
spread adds to it and the aggregate is wider than the prior, so a draw at T = 1 is narrower than what the decoder was
trained on. Over k x k blocks the same draws' mean has variance 1 / k^2 under the prior, which draws every position
independently; where the posterior's neighbouring positions move together, more: ``block_temperature`` is the prior's
temperature that would match it (the spread a shrunk face shows). This measures, per group, the KL per dimension,
the means' spread, the posterior / prior variance ratio, the matched temperature and the block temperatures, on the
training faces (one posterior pass, no augmentation), for runs in ``--out``:

    python experiments/posterior_spread.py --runs preset_hier20 hier60 --out experiments/out/hier
"""

from __future__ import annotations

import math
from pathlib import Path

import _record
import torch
from _runs import earlier_results

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.models.distributions import noise_like
from animevae.runs import load_run_config
from animevae.sampling.generate import load_model

NAME = "posterior_spread"
BLOCKS = (2, 4)  # block sizes over which the draws' spread is also measured
QUESTION = "How wide is each finer latent group's aggregate posterior against its learned prior (the temperature that matches them)?"


@torch.no_grad()
def posterior_draws(model, images: torch.Tensor, batch: int = 100, seed: int = 0):
    """One posterior pass over ``images`` (uint8 N x C x H x W) that draws each group as training does (the noise from a
    seeded generator): yields (group index, d_mu / sigma_p, d_logvar, u = (z - mu_p) / sigma_p) per batch and group."""
    gen = torch.Generator().manual_seed(seed)
    decoder = model.decoder
    for s in range(0, len(images), batch):
        x = images[s : s + batch].float().div(255)
        features = model.encoder(x)
        top = model._heads(features)
        h = model._top(top.mu + torch.exp(top.logvar / 2) * noise_like(top.mu, gen))  # the top drawn as in training
        for j, up in enumerate(decoder.ups):
            h = up(h)
            for g, group in enumerate(decoder.groups):
                if group.scale != j:
                    continue
                p_mu, p_logvar = group.prior_of(h)
                d_mu, d_logvar = group.shift_of(h, features[len(features) - 2 - group.scale])
                eps = noise_like(p_mu, gen)  # the same draws as the model's own posterior pass with this generator
                m = d_mu * torch.exp(-p_logvar / 2)
                u = m + torch.exp(d_logvar / 2) * eps
                yield g, m, d_logvar, u
                h = group.joined(h, p_mu + torch.exp(p_logvar / 2) * u)


def group_spread(model, images: torch.Tensor, batch: int = 100, seed: int = 0) -> list[dict]:
    """Per finer group, over ``images``: the KL per dimension, the means' spread E[(d_mu / sigma_p)^2], the variance
    ratio E[e^d_logvar], the matched temperature and the block temperatures (``posterior_draws``'s draws)."""
    decoder = model.decoder
    sums = [{"means": 0.0, "variance": 0.0, "kl": 0.0, "u2": 0.0, "count": 0} for _ in decoder.groups]
    for g, m, d_logvar, u in posterior_draws(model, images, batch, seed):
        acc = sums[g]
        acc["means"] += m.pow(2).sum().item()
        acc["variance"] += torch.exp(d_logvar).sum().item()
        acc["kl"] += (0.5 * (m.pow(2) + torch.exp(d_logvar) - 1 - d_logvar)).sum().item()
        acc["u2"] += u.pow(2).sum().item()
        for k in BLOCKS:  # the draws' spread over k x k blocks: k^2 E[pool(u)^2] is 1 for independent N(0, 1) positions
            acc[f"block{k}"] = acc.get(f"block{k}", 0.0) + torch.nn.functional.avg_pool2d(u, k).pow(2).sum().item() * k**4
        acc["count"] += u.numel()
    rows = []
    for g, acc in enumerate(sums):
        n = acc["count"]
        group = decoder.groups[g]
        rows.append(
            {
                "group": g,
                "scale": group.scale,
                "channels": group.z_channels,
                "kl_per_dim": round(acc["kl"] / n, 4),
                "means_spread": round(acc["means"] / n, 4),  # E[(d_mu / sigma_p)^2]
                "variance_ratio": round(acc["variance"] / n, 4),  # E[posterior variance / prior variance]
                "matched_temperature": round(math.sqrt((acc["means"] + acc["variance"]) / n), 4),
                "drawn_rms": round(math.sqrt(acc["u2"] / n), 4),  # the same, from the draws themselves (a check)
                # the temperature at which independent prior draws spread as much as the posterior draws over k x k blocks
                "block_temperature": {str(k): round(math.sqrt(acc[f"block{k}"] / n), 4) for k in BLOCKS},
            }
        )
    return rows


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.set_defaults(out=str(_record.HERE / "out" / "hier"))
    p.add_argument("--runs", nargs="+", default=["preset_hier20"], help="hierarchical runs in --out (default: %(default)s)")
    p.add_argument("--faces", type=int, default=2000, help="training faces to pass (default: %(default)s)")
    a = p.parse_args()
    settings = {"data": a.data, "faces": a.faces}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    commands = [*commands, _record.invocation()]
    for name in a.runs:
        run = Path(a.out) / name
        model = load_model(str(run))
        _, train_images, train_pos, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=a.data), model.config.image_size, 1)
        faces = torch.from_numpy(train_images[train_pos[: a.faces]].copy())
        rows[name] = {"groups": group_spread(model, faces), "fine_temperatures": list(model.temperatures)}
        for r in rows[name]["groups"]:
            print(name, r, flush=True)

    def line(r: dict) -> str:
        return f"group {r['group']} ({r['channels']} ch) T_match {r['matched_temperature']:.2f} (means {r['means_spread']:.2f}, var {r['variance_ratio']:.2f})"

    figures = [f"{n}: " + "; ".join(line(r) for r in row["groups"]) for n, row in rows.items()]
    _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)


if __name__ == "__main__":
    main()
