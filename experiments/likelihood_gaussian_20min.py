"""Do the learned-variance Gaussian likelihood's reconstructions stay the hardest to tell from real faces at 20 minutes,
under the converged two-sample test, and does the diffusion sampler bring its samples to them?

At 5 minutes on 20,000 faces (``likelihood_gaussian.py``, with the earlier 100-step test) ``--likelihood gaussian
--beta 1`` on the sharp preset's model gave the reconstructions hardest to tell from real ones, and gmm
samples among the easiest: its latents carry more than a mixture models. This trains it from scratch for
the presets' 20-minute budget on ``--data`` (one seed) and evaluates its reconstructions and the faces of
the gmm and diffusion samplers at 96 and 48 px; the sharp preset's 20-minute row to compare with is
``rotation_detail.py``'s (the same preset, bicubic rotation included).

    python experiments/likelihood_gaussian_20min.py
"""

from __future__ import annotations

from _runs import compare_from_scratch

NAME = "likelihood_gaussian_20min"
QUESTION = "At 20 minutes, are the Gaussian likelihood's reconstructions the hardest to tell from real, and does a diffusion prior bring its samples there?"
VARIANTS = {"gaussian": ["--preset", "sharp", "--beta", "1", "--likelihood", "gaussian"]}


if __name__ == "__main__":
    compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS, minutes=20.0, samplers="gmm,diffusion")
