"""Does a multi-scale SSIM term on top of the ELBO put 96-px detail into the sharp preset's faces?

A per-pixel likelihood (and the focal frequency loss, a squared distance in the Fourier domain) is least at
the average of the faces a latent could stand for: a blur. SSIM (Wang et al. 2004) compares each 11 x 11
window's mean, contrast and structure separately; its contrast term costs a prediction whose local spread
is below the face's, however well placed, and its structure term is a correlation, blind to how strongly a
stroke is drawn. Networks trained on it are reported to draw sharper images than with L2 (Zhao et al. 2017).
The variant ``ssimW`` adds W x the mean of (1 - SSIM) at 96, 48 and 24 px (each face and the decoder's
mean for it, average-pooled by 2 between scales) to the ELBO; the objective is registered by this script
(``register_objective``) and its runs train and are evaluated in this process. Each variant trains from
scratch for ``--minutes`` (the sharp preset otherwise, one seed), then ``evaluate`` scores it on 1,000
held-out faces: reconstructions and 1,000 gmm samples, the two-sample test at 96 and 48 px, the
high-frequency power ratio.

    python experiments/ssim_loss.py --minutes 5
    python experiments/ssim_loss.py --minutes 0.5 --eval-limit 100 --n-samples 100 --only ssim1000 --out experiments/out/try --results experiments/out/try.json
"""

from __future__ import annotations

from _runs import compare_from_scratch

NAME = "ssim_loss"
QUESTION = "Does a multi-scale SSIM term on top of the ELBO make the sharp preset's faces harder to tell from real at 96 px?"
WEIGHTS = (1000, 10000)
VARIANTS = {"sharp": ["--preset", "sharp"]} | {f"ssim{w}": ["--preset", "sharp", "--objective", f"elbo-ssim{w}"] for w in WEIGHTS}


def multiscale_ssim_distance(fake, real, scales: int = 3):
    """Per image: the mean over ``scales`` sizes (halved by 2 x 2 average pooling) of 1 - SSIM, in float32."""
    import torch
    import torch.nn.functional as F

    from animevae.evaluation.metrics import ssim

    fake, real = fake.float(), real.float()
    total = 0.0
    for s in range(scales):
        if s:
            fake, real = F.avg_pool2d(fake, 2), F.avg_pool2d(real, 2)
        total = total + (1 - ssim(fake, real, dtype=torch.float32))
    return total / scales


def register_ssim(weights=WEIGHTS) -> None:
    """``elbo-ssim<W>``: the ELBO + W x the multi-scale SSIM distance between each face and the decoder's mean; logs ``ssim``."""
    from animevae.training.objectives import ELBO, register_objective

    class SSIMTerm(ELBO):
        weight = 0.0

        def forward(self, model, x, step):
            terms = super().forward(model, x, step)
            d = multiscale_ssim_distance(terms.output.likelihood.mean, x)
            terms.loss = terms.loss + self.weight * d.mean()
            terms.logs["ssim"] = 1 - d.detach().mean()
            return terms

    for w in weights:
        register_objective(f"elbo-ssim{w}")(type(f"SSIMTerm{w}", (SSIMTerm,), {"weight": float(w)}))


if __name__ == "__main__":
    register_ssim()
    compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS, here=frozenset(n for n in VARIANTS if n.startswith("ssim")))
