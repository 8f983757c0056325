"""The classifier two-sample test: near 0.5 on two halves of one set, near 1 on sets a person tells apart at a glance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from animevae.data.toyfaces import render_faces
from animevae.evaluation.two_sample import classifier_two_sample_test


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.from_numpy(render_faces(400, seed=5, size=32)).permute(0, 3, 1, 2).contiguous()


def blurred(x: torch.Tensor) -> torch.Tensor:
    small = F.interpolate(x.float(), size=8, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=x.shape[-1], mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def test_two_halves_of_one_set_cannot_be_told_apart(faces):
    result = classifier_two_sample_test(faces[:200], faces[200:], seeds=(0, 1))
    assert 0.35 <= result["accuracy"] <= 0.65, result
    assert result["trained_on_per_class"] == 100 and result["scored_on_per_class"] == 100 and len(result["per_seed"]) == 2


def test_blurred_faces_are_caught(faces):
    result = classifier_two_sample_test(blurred(faces[:200]), faces[200:], seeds=(0,))
    assert result["accuracy"] >= 0.9, result


def test_too_few_images_is_an_error(faces):
    with pytest.raises(ValueError, match="at least 4"):
        classifier_two_sample_test(faces[:3], faces[3:10])
