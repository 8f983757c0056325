"""The decoded uint8 faces where training reads them: the memory-mapped cache on a CPU, the whole array on a GPU."""

from __future__ import annotations

import numpy as np
import torch


def copy_to(images: np.ndarray, device: torch.device, chunk: int = 4096) -> torch.Tensor:
    """The whole uint8 array as a tensor on ``device``, copied a chunk of images at a time: the cache's read-only
    memmap never becomes a tensor itself (torch warns at that), and the host holds one chunk beyond the map."""
    out = torch.empty(images.shape, dtype=torch.uint8, device=device)
    for s in range(0, len(images), chunk):
        out[s : s + chunk].copy_(torch.from_numpy(np.array(images[s : s + chunk])))
    return out


class DeviceImages:
    """The uint8 images, fetched by index: from the memmap on CPU, or held whole on a GPU (1.7 GB for 63k faces)."""

    def __init__(self, images: np.ndarray, device: torch.device):
        self.device = device
        self.on_device = device.type == "cuda"
        self.images = copy_to(images, device) if self.on_device else images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: np.ndarray) -> torch.Tensor:
        if self.on_device:
            return self.images[torch.as_tensor(idx, device=self.device)]
        return torch.from_numpy(self.images[idx])

    def pixels(self, idx: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
        """Images in [0, 1], channels-last, in ``dtype``: one converting copy, for the inference passes."""
        u8 = self[idx]
        return torch.empty(u8.shape, dtype=dtype, device=u8.device, memory_format=torch.channels_last).copy_(u8).div_(255)
