"""Where training reads its images: the GPU copy of the cache is exact and quiet."""

from __future__ import annotations

import warnings

import numpy as np
import torch

from animevae.data.device import copy_to


def test_the_read_only_cache_is_copied_whole_in_chunks_without_torchs_warning(tmp_path):
    path = tmp_path / "images.u8"
    data = np.random.default_rng(0).integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    data.tofile(path)
    cache = np.memmap(path, dtype=np.uint8, mode="r", shape=data.shape)  # as the cache opens it: read-only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.from_numpy(np.ascontiguousarray(cache))  # what a plain conversion does: torch warns
    assert any("not writable" in str(w.message) for w in caught)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copied = copy_to(cache, torch.device("cpu"), chunk=3)  # 4 chunks, the last one short
    assert copied.dtype == torch.uint8 and torch.equal(copied, torch.from_numpy(data))
