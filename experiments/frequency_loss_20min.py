"""Does the focal frequency loss at weight 10 keep its 96-px gain over the sharp preset at 20 minutes, and its 48-px cost?

At 5 minutes (``frequency_loss.py``) ``--objective frequency --freq-weight 10`` had every classifier seed
catch fewer gmm faces at 96 px than the sharp preset's, and more at 48 px. This trains it from scratch for
the presets' 20-minute budget on ``--data`` (one seed) and evaluates it as ``frequency_loss.py`` does; the
sharp preset's 20-minute row to compare with is ``presets_96px.py``'s.

    python experiments/frequency_loss_20min.py
"""

from __future__ import annotations

from _runs import compare_from_scratch

NAME = "frequency_loss_20min"
QUESTION = "Does the focal frequency loss at weight 10 keep its 96-px gain over the sharp preset at 20 minutes, and its 48-px cost?"
VARIANTS = {"freq10": ["--preset", "sharp", "--objective", "frequency", "--freq-weight", "10"]}


if __name__ == "__main__":
    compare_from_scratch(__doc__, NAME, QUESTION, VARIANTS, minutes=20.0)
