"""Does a decoder that draws the last octave at full resolution put 96-px detail into the sharp preset's faces?

The sharp preset's decoder maps 32 channels at 48 px to the 96-px pixels with one linear transposed conv,
and its reconstructions of held-out faces are caught by a converged classifier at 96 px. ``--arch
spatialres`` keeps the same encoder, latent map and inner decoder, and adds a residual block at 48 px,
a resize-conv to 16 channels at 96 px, a residual block there and a 3x3 conv to the pixels
(models/vae.py). Each variant trains from scratch for ``--minutes`` on ``--data`` (one seed), then
``evaluate`` scores it on the run's first ``--eval-limit`` held-out faces: the reconstructions (the
decoder's floor) and ``--n-samples`` gmm samples, with the two-sample test at 96 and at 48 px and the
high-frequency power ratio against real faces.

    python experiments/decoder_detail.py --minutes 5                   # the short probe
    python experiments/decoder_detail.py --minutes 20 --out experiments/out/decoder_detail20 --results experiments/results/decoder_detail_20min.json
"""

from __future__ import annotations

from _runs import compare_from_scratch

NAME = "decoder_detail"
QUESTION = "Does a decoder with residual blocks and a resize-conv stage at 96 px (--arch spatialres) make sharp faces harder to tell from real at 96 px?"
VARIANTS = {"sharp": ["--preset", "sharp"], "spatialres": ["--preset", "sharp", "--arch", "spatialres"]}


if __name__ == "__main__":
    compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS)
