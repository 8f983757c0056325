"""Feature extractors for FID/KID: pooled pixels, and user-named extractors checked with one-line errors."""

from __future__ import annotations

import pytest
import torch

from animevae.errors import UserError
from animevae.evaluation.features import load_features, pixel_features


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_pixel_features_take_uint8_or_float():
    net = pixel_features()
    x = torch.randint(0, 256, (4, 3, 96, 96), dtype=torch.uint8, generator=_gen(14))
    f = net(x)
    assert f.shape == (4, 192)
    assert torch.allclose(f, net(x.float() / 255))
    assert torch.allclose(f[:, 0], x[:, 0, :12, :12].float().mean((1, 2)) / 255)


def test_feature_specs_are_checked():
    assert isinstance(load_features("animevae.evaluation.features:pixel_features"), torch.nn.Module)
    for spec, match in [
        ("animevae.evaluation.report", "expected package.module:callable"),
        ("no_such_pkg.x:f", "cannot import no_such_pkg.x"),
        ("animevae.evaluation.report:nothing_here", "has no callable nothing_here"),
    ]:
        with pytest.raises(UserError, match=match):
            load_features(spec)
