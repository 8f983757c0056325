"""Feature extractors for FID/KID: the standard Inception-v3 (torch-fidelity, when it can be built),
8 x 8 pooled pixels for offline use, or any ``package.module:callable`` a user names.

FID/KID on ``pixel_features`` measure colour layout only; they are NOT comparable to published FID.
"""

from __future__ import annotations

import importlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError


class PixelFeatures(nn.Module):
    """Images -> their 8 x 8 average-pooled pixels (192 numbers in [0, 1]): offline, for tests and quick looks.

    FID/KID on these features measure colour layout only; they are NOT comparable to published FID.
    """

    def __init__(self, size: int = 8):
        super().__init__()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float() / 255 if x.dtype == torch.uint8 else x.float()
        return F.adaptive_avg_pool2d(x, self.size).flatten(1)


def pixel_features() -> nn.Module:
    return PixelFeatures()


class FeaturesUnavailable(Exception):
    """The standard (Inception) extractor cannot be built here; FID/KID are skipped."""


class _FirstOutput(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        out = self.net(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def standard_features(weights_path: str | None = None) -> nn.Module:
    """torch-fidelity's Inception-v3 (the FID standard, as torchmetrics uses it), 2048-d pool features."""
    try:
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
    except Exception as e:  # ImportError, or torchvision failing to load beside this torch
        raise FeaturesUnavailable(
            f"the standard Inception-v3 extractor (torch-fidelity, which needs torchvision) cannot be imported ({type(e).__name__}: {_first_line(e)})"
        ) from None
    try:
        net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=weights_path)
    except Exception as e:  # a download that fails offline, or a bad weights file
        raise FeaturesUnavailable(
            f"the Inception-v3 weights could not be loaded ({type(e).__name__}: {_first_line(e)}; without internet they must be given as a local file)"
        ) from None
    return _FirstOutput(net)


def load_features(spec: str) -> nn.Module:
    """``package.module:attr`` -> attr() (an nn.Module mapping uint8 N x 3 x H x W images to N x D features)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise UserError(f"--features {spec}: expected package.module:callable, e.g. animevae.evaluation.features:pixel_features")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise UserError(f"--features {spec}: cannot import {module_name} ({type(e).__name__}: {_first_line(e)})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise UserError(f"--features {spec}: {module_name} has no callable {attr}")
    try:
        net = factory()
    except Exception as e:
        raise UserError(f"--features {spec}: calling {attr}() failed ({type(e).__name__}: {_first_line(e)})") from None
    if not callable(net):
        raise UserError(f"--features {spec}: {attr}() returned {type(net).__name__}, not a module mapping images to features")
    return net


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


@torch.no_grad()
def extract_features(net, images: torch.Tensor, batch: int = 100, device: str = "cpu") -> np.ndarray:
    out = []
    for s in range(0, len(images), batch):
        f = net(images[s : s + batch].to(device))
        if not isinstance(f, torch.Tensor) or f.ndim < 2 or len(f) != len(images[s : s + batch]):
            raise UserError(f"the feature extractor returned {getattr(f, 'shape', type(f).__name__)}; expected N x D features")
        out.append(f.flatten(1).double().cpu().numpy())
    return np.concatenate(out)
