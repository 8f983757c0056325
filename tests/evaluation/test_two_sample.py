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


def blurred(x: torch.Tensor, size: int = 8) -> torch.Tensor:
    small = F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=x.shape[-1], mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def test_two_halves_of_one_set_cannot_be_told_apart(faces):
    result = classifier_two_sample_test(faces[:200], faces[200:], seeds=(0, 1))
    assert 0.35 <= result["accuracy"] <= 0.65, result
    assert 0.35 <= result["by_size"]["16px"]["accuracy"] <= 0.65, result
    assert (result["trained_on_per_class"], result["validated_on_per_class"], result["scored_on_per_class"]) == (100, 40, 60)
    assert len(result["per_seed"]) == 2 and all(1 <= r <= 60 for r in result["rounds"])


def test_blurred_faces_are_caught(faces):
    result = classifier_two_sample_test(blurred(faces[:200]), faces[200:], seeds=(0,))
    assert result["accuracy"] >= 0.9 and result["by_size"]["16px"]["accuracy"] >= 0.9, result


def test_pixel_scale_detail_is_seen_at_full_size_only(faces):
    """A +-8 checkerboard on every pixel: caught at full size; at half size each 2x2 average cancels it exactly."""
    x = (16 + faces.float() * (223 / 255)).round()  # away from 0 and 255, so nothing clips
    checker = 8 * (1 - 2 * ((torch.arange(32)[:, None] + torch.arange(32)[None]) % 2)).float()
    fake, real = (x[:200] + checker).to(torch.uint8), x[200:].to(torch.uint8)
    result = classifier_two_sample_test(fake, real, seeds=(0,))
    assert result["accuracy"] >= 0.9, result
    assert 0.3 <= result["by_size"]["16px"]["accuracy"] <= 0.7, result


def test_training_stops_early_and_uses_its_best_epoch(faces, monkeypatch):
    from animevae.evaluation import two_sample

    scored = []
    real_accuracy = two_sample._balanced_accuracy

    def spy(net, x, y):
        scored.append(real_accuracy(net, x, y))
        return scored[-1]

    monkeypatch.setattr(two_sample, "_balanced_accuracy", spy)
    result = two_sample.accuracy_once(blurred(faces[:200], 8), faces[200:], seed=0, max_rounds=60, patience=3)
    validation = scored[:-1]  # one per round, then the score on the test part
    assert len(validation) == result["rounds"] < 60  # stopped before the bound
    best = max(validation)
    assert validation.index(best) == result["rounds"] - 4  # 3 rounds without improvement after the best
    assert result["validation_accuracy"] == best


def test_too_few_images_is_an_error(faces):
    with pytest.raises(ValueError, match="at least 4"):
        classifier_two_sample_test(faces[:3], faces[3:10])
