"""The decoded uint8 faces where training reads them: the memory-mapped cache on a CPU, the whole array on a GPU."""

from __future__ import annotations

import numpy as np
import torch


class DeviceImages:
    """The uint8 images, fetched by index: from the memmap on CPU, or held whole on a GPU (1.7 GB for 63k faces)."""

    def __init__(self, images: np.ndarray, device: torch.device):
        self.device = device
        self.on_device = device.type == "cuda"
        self.images = torch.from_numpy(np.ascontiguousarray(images)).to(device) if self.on_device else images

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
