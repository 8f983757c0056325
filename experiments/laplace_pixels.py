"""Does an L1 pixel likelihood (``--likelihood laplace``: the per-pixel median instead of the mean) give the sharp
preset's decoder sharper edges and faces harder to tell from real ones?

Under the Bernoulli likelihood a stroke whose place the latent leaves open is drawn as the average of its
possible places, a grey smear; under a Laplace likelihood as their per-pixel median, an edge where it is most
likely (or nothing). Both runs use ``--preset sharp --interpolation bicubic`` and train for the same
``--minutes`` on the same faces, one after the other; then each is evaluated (reconstructions and gmm samples:
the two-sample test at 96 and 48 px, the high-frequency power ratio, PSNR/SSIM).

    python experiments/laplace_pixels.py                  # 2 x 5 minutes of training, then the evaluations
    python experiments/laplace_pixels.py --minutes 20     # the same at the issue's budget
"""

from _runs import compare_from_scratch

NAME = "laplace_pixels"
QUESTION = "Does an L1 pixel likelihood give the sharp preset's decoder sharper edges and faces harder to tell from real ones?"
SHARP = ["--preset", "sharp", "--interpolation", "bicubic"]
VARIANTS = {"bernoulli": SHARP, "laplace": [*SHARP, "--likelihood", "laplace"]}

if __name__ == "__main__":
    compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS)
