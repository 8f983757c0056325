"""Does a decoder with noise inputs, trained with the energy score, draw 96-px detail that passes?

A likelihood decoder draws the mean of the strokes a latent leaves open: a blur. Noise inputs (StyleGAN's
per-layer noise, Karras et al. 2019) give a decoder the means to draw one of those strokes instead, but
under a likelihood alone it learns to ignore them: any spread costs likelihood. The energy score
(Gneiting & Raftery 2007; ``energy_refiner.patch_energy_score``) rewards it: for two draws y1, y2 of the
decoder for the same latent and the face x, ``|y1 - x| + |y2 - x| - |y1 - y2|`` (halved; norms of 8 x 8 pixel
patches, summed over the face) is least in expectation when the draws are distributed as faces given the
latent. On a refiner after the decoder it drew grain at 96 px; here the noise enters the decoder's 12-,
24- and 48-px features, where the layers after it can shape it into strokes.

``--arch spatialnoise``: the sharp preset's ``spatial`` decoder with a noise map added after each
upsampling block, scaled per channel by a learned factor (0.1 at the start, so the draws differ from the
first step). ``--objective elbo-energyW``: the ELBO on one draw + W x the energy score of two draws
(decoder means, 0..1). Both are registered by this script and its runs train and are evaluated in this
process. Each variant trains from scratch for ``--minutes``, then ``evaluate`` scores it on 1,000 held-out
faces: reconstructions and 1,000 gmm samples, the two-sample test at 96 and 48 px, the high-frequency ratio.

    python experiments/decoder_noise.py --minutes 5
    python experiments/decoder_noise.py --minutes 0.5 --eval-limit 100 --only energy100 --out experiments/out/try --results experiments/out/try.json
"""

from __future__ import annotations

from pathlib import Path

from _runs import compare_from_scratch

NAME = "decoder_noise"
QUESTION = "Does a decoder with noise inputs, trained with the ELBO plus the patch energy score of two draws, put 96-px detail into the sharp preset's faces?"
WEIGHTS = (100, 1000)
PATCH = 8
VARIANTS = {"sharp": ["--preset", "sharp"]} | {f"energy{w}": ["--preset", "sharp", "--arch", "spatialnoise", "--objective", f"elbo-energy{w}"] for w in WEIGHTS}


def register_noise(weights=WEIGHTS) -> None:
    """``--arch spatialnoise`` and ``--objective elbo-energy<W>``, for this process."""
    import torch
    from energy_refiner import patch_energy_score
    from torch import nn

    from animevae.models.vae import SpatialConv, register_architecture
    from animevae.training.objectives import ELBO, register_objective

    class NoisyLayers(nn.Module):
        """The decoder's layers in order, each but the last followed by ``scale`` x a fresh N(0, 1) map."""

        def __init__(self, layers: nn.Sequential, channels: list[int]):
            super().__init__()
            self.layers = layers
            self.scales = nn.ParameterList([nn.Parameter(torch.full((1, c, 1, 1), 0.1)) for c in channels])

        def forward(self, h):
            for i, layer in enumerate(self.layers):
                h = layer(h)
                if i < len(self.scales):  # noise drawn N x H x W x C: the channels-last layout of the fast CPU path
                    noise = torch.randn(h.shape[0], *h.shape[2:], h.shape[1], dtype=h.dtype, device=h.device).permute(0, 3, 1, 2)
                    h = h + self.scales[i].to(h.dtype) * noise
            return h

    @register_architecture("spatialnoise")
    class SpatialNoise(SpatialConv):
        def decoder(self, c, out_channels):
            layers = super().decoder(c, out_channels)
            widths = self._widths(self._fewer(c))  # the upsampling blocks' outputs: widths[-2], ..., widths[1]
            return NoisyLayers(layers, widths[-2:0:-1])

    class EnergyTerm(ELBO):
        weight = 0.0

        def forward(self, model, x, step):
            terms = super().forward(model, x, step)
            with self.autocast():
                second = model.likelihood(model.decode(terms.output.z)).mean  # another draw for the same latent
            score = patch_energy_score(terms.output.likelihood.mean.float(), second.float(), x, PATCH)
            terms.loss = terms.loss + self.weight * score.mean()
            terms.logs["energy"] = score.detach().mean()
            return terms

    for w in weights:
        register_objective(f"elbo-energy{w}")(type(f"EnergyTerm{w}", (EnergyTerm,), {"weight": float(w)}))


def picture(out: Path, names=tuple(VARIANTS), n: int = 8) -> Path:
    """docs/images/decoder_noise_gmm.png: a row of ``n`` gmm faces (latents and decoder noise seeded 0) of each run, in ``names``' order, at full size."""
    import torch

    from animevae.images import save_grid
    from animevae.sampling.generate import load_model, sample_faces

    rows = []
    for name in names:
        torch.manual_seed(0)  # the noisy decoder's own draws come from torch's global generator
        rows.append(sample_faces(load_model(str(out / name)), str(out / name), "gmm", n))
    path = Path(__file__).resolve().parents[1] / "docs" / "images" / f"{NAME}_gmm.png"
    save_grid(torch.cat(rows), path, nrow=n)
    return path


if __name__ == "__main__":
    register_noise()
    a = compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS, here=frozenset(n for n in VARIANTS if n.startswith("energy")))
    print(picture(Path(a.out), a.only))
