"""Which rows train and which are held out: a seeded split, the same for every run with that seed."""

from __future__ import annotations

import numpy as np


def split_rows(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, held-out positions) among 0..n-1, each sorted; at least one training row."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    n_val = int(round(n * val_fraction)) if n > 1 else 0
    n_val = min(n_val, n - 1)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
