"""Does an autoregressive prior over the 12-px latent group, fitted after training, close a hierarchical run's sampler gap?

The hierarchical model's samples lose to its reconstructions mainly at the 12-px group (``experiments/hierarchical_gap.py``):
its learned prior draws each of the 144 positions independently given the top, so the two halves of an eye need
not agree. The joint mixture (``experiments/joint_gmm.py``, the preset's ``joint-gmm``) holds which positions go
together through a full covariance, on 20,000 faces for 1,728 dimensions; refitting it on mirror images or with more
components does not move it. This fits instead a small PixelCNN (van den Oord et al. 2016) over that group after
training: each position's 8 channels in the prior's whitened coordinates u (``VAE.encode_detail``) as a Gaussian given
the positions before it in raster order and the decoder's 12-px state (which carries the top latent). Sampling draws the
top latent from the run's gmm, u position by position at temperature ``--ar-temperature``, and decodes
z_12 = mu_p + sigma_p u with the 24-px group from its prior at temperature 1 (``VAE.decode`` of the wider latent). Trained on every
training face but ``--val`` held back for its negative log-likelihood per dimension, printed beside that of the
model's own prior (N(0, I) in these coordinates) on the same faces. Scored on the realism ladder beside the run's
gmm and joint_gmm (from its ``evaluate``).

    python experiments/detail_prior.py --runs preset_hier20 --out experiments/out/hier
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import _record
import torch
import torch.nn.functional as F
from _runs import earlier_results, ladder_line, score_faces
from torch import nn

from animevae.config import DataConfig
from animevae.evaluation.report import load_eval_data
from animevae.images import save_grid
from animevae.runs import load_run_config
from animevae.sampling.generate import decode_latents, load_model, load_or_fit_gmm

NAME = "detail_prior"
QUESTION = "Does an autoregressive prior over the 12-px latent group, fitted after training, close a hierarchical run's sampler gap?"


class MaskedConv(nn.Conv2d):
    """A conv that sees only the positions before the centre in raster order (``first``: not the centre itself)."""

    def __init__(self, cin: int, cout: int, k: int, first: bool):
        super().__init__(cin, cout, k, padding=k // 2)
        mask = torch.ones_like(self.weight)
        mask[:, :, k // 2, k // 2 + (0 if first else 1) :] = 0
        mask[:, :, k // 2 + 1 :] = 0
        self.register_buffer("mask", mask)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class DetailPrior(nn.Module):
    """p(u | state) = prod over positions of N(u_i; mu_i, sigma_i^2), (mu_i, sigma_i) from u before i and the whole state."""

    def __init__(self, channels: int, state_channels: int, width: int = 64, layers: int = 4):
        super().__init__()
        self.first = MaskedConv(channels, width, 5, first=True)
        self.condition = nn.Conv2d(state_channels, width * (layers + 1), 3, padding=1)
        self.body = nn.ModuleList(MaskedConv(width, width, 3, first=False) for _ in range(layers))
        self.out = nn.Conv2d(width, 2 * channels, 1)

    def forward(self, u: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.condition(state).chunk(len(self.body) + 1, 1)
        h = F.gelu(self.first(u) + c[0])
        for layer, ci in zip(self.body, c[1:], strict=True):
            h = h + F.gelu(layer(h) + ci)
        mu, logvar = self.out(h).chunk(2, 1)
        return mu, logvar.clamp(-7.0, 3.0)

    def nll(self, u: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per dimension (nats)."""
        mu, logvar = self(u, state)
        return (0.5 * (logvar + (u - mu).pow(2) * torch.exp(-logvar) + math.log(2 * math.pi))).mean()

    @torch.no_grad()
    def sample(self, state: torch.Tensor, channels: int, temperature: float, generator: torch.Generator, batch: int = 500) -> torch.Tensor:
        out = []
        for s in range(0, len(state), batch):
            st = state[s : s + batch]
            u = torch.zeros(len(st), channels, *st.shape[2:])
            for r in range(st.shape[2]):
                for c in range(st.shape[3]):
                    mu, logvar = self(u, st)
                    noise = torch.randn(len(st), channels, generator=generator)
                    u[:, :, r, c] = mu[:, :, r, c] + temperature * torch.exp(logvar[:, :, r, c] / 2) * noise
            out.append(u)
        return torch.cat(out)


@torch.no_grad()
def encode(model, faces: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 faces -> (top latent means, 12-px detail latents u as C x 12 x 12 maps)."""
    tops, us = [], []
    for s in range(0, len(faces), batch):
        posterior, detail = model.encode_detail(faces[s : s + batch].float().div(255))
        tops.append(posterior.mu.float())
        us.append(detail.float())
    return torch.cat(tops), torch.cat(us)


@torch.no_grad()
def states(model, top: torch.Tensor, batch: int = 512) -> torch.Tensor:
    """The decoder's state at 12 px for each top latent (what the 12-px group's prior reads), fp16 to save memory."""
    return torch.cat([model.decoder.ups[0](model._top(top[s : s + batch])).float().half() for s in range(0, len(top), batch)])


def main() -> None:
    p = _record.parser(__doc__, NAME)
    p.set_defaults(out=str(_record.HERE / "out" / "hier"))
    p.add_argument("--runs", nargs="+", default=["preset_hier20"], help="hierarchical runs in --out (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=10, help="passes over the training faces' latents (default: %(default)s)")
    p.add_argument("--width", type=int, default=64, help="the PixelCNN's channels (default: %(default)s)")
    p.add_argument("--val", type=int, default=1000, help="training faces held back for the prior's NLL (default: %(default)s)")
    p.add_argument("--ar-temperature", type=float, nargs="+", default=[1.0], help="temperatures of the autoregressive draw (default: %(default)s)")
    p.add_argument("--eval-limit", type=int, default=1000, help="held-out faces (default: %(default)s)")
    p.add_argument("--n-samples", type=int, default=1000, help="samples scored (default: %(default)s)")
    p.add_argument("--c2st-seeds", type=int, default=3, help="classifier seeds per rung (default: %(default)s)")
    a = p.parse_args()
    settings = {"data": a.data, "eval_limit": a.eval_limit, "n_samples": a.n_samples, "c2st_seeds": a.c2st_seeds}
    results, commands = earlier_results(a.results, settings)
    rows = results.get("runs", {})
    commands = [*commands, _record.invocation()]
    torch.manual_seed(0)
    for name in a.runs:
        run = Path(a.out) / name
        control = json.loads((run / "evaluation.json").read_text())["c2st_control"]
        model = load_model(str(run)).float()
        model.requires_grad_(False)
        model.temperatures = (1.0, 1.0)  # the 24-px group at 1, as recorded (and as joint_gmm.py's rows it is compared with)
        held, images, train_pos, *_ = load_eval_data(load_run_config(str(run)), DataConfig(source=a.data), model.config.image_size, a.eval_limit)
        t0 = time.time()
        top, u = encode(model, torch.from_numpy(images[train_pos]))
        state = states(model, top)
        u = u.reshape(len(u), -1, *state.shape[2:])
        encoded = time.time() - t0
        order = torch.randperm(len(u), generator=torch.Generator().manual_seed(0))
        val, train = order[: a.val], order[a.val :]
        prior = DetailPrior(u.shape[1], state.shape[1], a.width)
        opt = torch.optim.Adam(prior.parameters(), lr=2e-3)
        steps = a.epochs * math.ceil(len(train) / 256)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
        t0, curve = time.time(), []
        for epoch in range(a.epochs):
            perm = train[torch.randperm(len(train))]
            for s in range(0, len(perm), 256):
                i = perm[s : s + 256]
                loss = prior.nll(u[i], state[i].float())
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            with torch.no_grad():
                nll = float(prior.nll(u[val], state[val].float()))
            curve.append(round(nll, 4))
            print(f"{name}: epoch {epoch + 1}/{a.epochs} held-back NLL {nll:.4f} nats/dim ({time.time() - t0:.0f} s)", flush=True)
        fit_seconds = time.time() - t0
        own = float((0.5 * (u[val].pow(2) + math.log(2 * math.pi))).mean())  # the model's own prior: N(0, I) in whitened coordinates
        prior.eval()
        gmm = load_or_fit_gmm(str(run))
        row = rows.get(name, {}) | {
            "nll_per_dim": curve[-1],
            "nll_curve": curve,
            "own_prior_nll_per_dim": round(own, 4),
            "fit_seconds": round(fit_seconds, 1),
            "encode_seconds": round(encoded, 1),
            "fitted_on": len(train),
            "width": a.width,
            "epochs": a.epochs,
        }
        print(f"{name}: held-back NLL {curve[-1]:.4f} nats/dim against the model's own prior's {own:.4f}", flush=True)
        for t in a.ar_temperature:
            label = f"ar_t{t:g}"
            t0 = time.time()
            top_draw = gmm.sample(a.n_samples, torch.Generator().manual_seed(0)).float()
            drawn = prior.sample(states(model, top_draw).float(), u.shape[1], t, torch.Generator().manual_seed(2))
            faces = decode_latents(model, torch.cat([top_draw, drawn.flatten(1)], 1), generator=torch.Generator().manual_seed(1))
            save_grid(faces[:64], Path(a.out) / f"{name}_{label}.png", nrow=8)
            row[label] = score_faces(faces, held, a.c2st_seeds, control=control) | {"sample_seconds": round(time.time() - t0, 1)}
            print(name, label, ladder_line(row[label]), flush=True)
            rows[name] = row
            figures = [
                f"{n} {k}: {ladder_line(r)} (held-back NLL {rr['nll_per_dim']:.3f} nats/dim, own prior {rr['own_prior_nll_per_dim']:.3f})"
                for n, rr in rows.items()
                for k, r in rr.items()
                if isinstance(r, dict) and "ladder" in r
            ]
            _record.write(a.results, NAME, QUESTION, commands, settings, {"runs": rows}, figures)


if __name__ == "__main__":
    main()
