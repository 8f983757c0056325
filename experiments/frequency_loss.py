"""Does a focal frequency loss on top of the ELBO put 96-px detail into the sharp preset's faces?

A per-pixel likelihood pays little for a missing thin stroke; the focal frequency loss (Jiang et al.
2021; ``--objective frequency``, training/objectives.py) compares each face and the decoder's mean for it
in the 2-D Fourier domain and weighs the frequencies drawn worst most. Each variant trains from scratch
for ``--minutes`` on ``--data`` (one seed), the sharp preset otherwise, then ``evaluate`` scores it on the
run's first ``--eval-limit`` held-out faces: reconstructions and ``--n-samples`` gmm samples, with the
two-sample test at 96 and at 48 px and the high-frequency power ratio against real faces.

    python experiments/frequency_loss.py --minutes 5                   # the short probe
    python experiments/frequency_loss.py --minutes 1 --eval-limit 100 --n-samples 100 --out experiments/out/try --results experiments/out/try.json
"""

from __future__ import annotations

from _runs import compare_from_scratch

NAME = "frequency_loss"
QUESTION = "Does a focal frequency loss (--objective frequency) make the sharp preset's faces harder to tell from real at 96 px?"
VARIANTS = {
    "sharp": ["--preset", "sharp"],
    "freq10": ["--preset", "sharp", "--objective", "frequency", "--freq-weight", "10"],
    "freq100": ["--preset", "sharp", "--objective", "frequency", "--freq-weight", "100"],
}


if __name__ == "__main__":
    compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS)
