"""The classifier two-sample test: near 0.5 on two halves of one set, near 1 on sets a person tells apart at a glance."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from animevae.data.toyfaces import render_faces
from animevae.evaluation.two_sample import (
    CONTROL_CAUGHT_AT,
    PASSES_AT,
    classifier_two_sample_test,
    gaussian_blur,
    ladder_sizes,
    positive_control,
    real_up_to,
    with_control,
)


@pytest.fixture(scope="module")
def faces() -> torch.Tensor:
    return torch.from_numpy(render_faces(400, seed=5, size=32)).permute(0, 3, 1, 2).contiguous()


def blurred(x: torch.Tensor, size: int = 8) -> torch.Tensor:
    small = F.interpolate(x.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(small, size=x.shape[-1], mode="bilinear", align_corners=False).round().clamp(0, 255).to(torch.uint8)


def test_two_halves_of_one_set_cannot_be_told_apart(faces):
    result = classifier_two_sample_test(faces[:200], faces[200:], seeds=(0, 1))
    assert 0.35 <= result["accuracy"] <= 0.65, result
    assert all(0.35 <= r["accuracy"] <= 0.65 for r in result["by_size"].values()), result
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


# -- the ladder and its positive control ---------------------------------------------------------------------------------


def test_ladder_sizes_keep_the_rungs_at_most_the_image_size_and_the_size_itself():
    assert ladder_sizes(96) == [96, 48, 32, 24, 16]
    assert ladder_sizes(48) == [48, 32, 24, 16]
    assert ladder_sizes(64) == [64, 48, 32, 24, 16]
    assert ladder_sizes(12) == [12]


def test_real_up_to_is_the_largest_size_with_every_smaller_rung_passing():
    rungs = lambda **acc: {f"{k.removeprefix('s')}px": {"accuracy": v} for k, v in acc.items()}  # noqa: E731
    assert real_up_to(rungs(s96=0.99, s48=0.9, s32=0.6, s24=0.55, s16=0.5)) == 32  # 0.60 itself passes
    assert real_up_to(rungs(s96=0.99, s48=0.9, s32=0.61, s24=0.55, s16=0.5)) == 24
    assert real_up_to(rungs(s96=0.99, s48=0.58, s32=0.7, s24=0.55, s16=0.5)) == 24  # a lucky larger rung does not count
    assert real_up_to(rungs(s96=0.99, s48=0.9, s32=0.8, s24=0.7, s16=0.65)) is None


def test_the_ladder_reports_every_rung_with_its_seeds_and_a_headline(faces):
    result = classifier_two_sample_test(faces[:200], faces[200:], seeds=(0, 1))
    assert list(result["by_size"]) == ["32px", "24px", "16px"]
    for rung in result["by_size"].values():
        assert len(rung["per_seed"]) == 2 and rung["spread"] == max(rung["per_seed"]) - min(rung["per_seed"]) and len(rung["rounds"]) == 2
    assert result["accuracy"] == result["by_size"]["32px"]["accuracy"]
    assert result["real_up_to"] == real_up_to(result["by_size"]) and result["passes_at"] == PASSES_AT


def test_a_working_classifier_catches_the_control_and_a_stalled_one_is_reported_invalid(faces, monkeypatch):
    """A classifier that cannot learn reads 0.5 everywhere, which looks like perfect realism: the control says otherwise."""
    from animevae.evaluation import two_sample

    fake = blurred(faces[:200], 8)  # a person tells these apart at a glance
    working = positive_control(faces[:200], faces[200:])
    assert working["caught"] and working["accuracy"] >= CONTROL_CAUGHT_AT, working
    ok = with_control(classifier_two_sample_test(fake, faces[200:], seeds=(0,)), working)
    assert ok["valid"] and ok["real_up_to"] is None  # caught at every size: real up to nothing

    monkeypatch.setattr(two_sample, "LR", 0.0)  # the classifier's weights never move
    stalled = positive_control(faces[:200], faces[200:])
    assert not stalled["caught"] and stalled["accuracy"] < CONTROL_CAUGHT_AT, stalled
    ladder = classifier_two_sample_test(fake, faces[200:], seeds=(0,))
    assert max(r["accuracy"] for r in ladder["by_size"].values()) <= 0.7  # blind: this would read as realistic ...
    marked = with_control(ladder, stalled)
    assert not marked["valid"] and marked["real_up_to"] is None and "not learning" in marked["invalid_because"]  # ... but is not


def test_gaussian_blur_keeps_flat_images_and_the_mean():
    flat = torch.full((2, 3, 16, 16), 77, dtype=torch.uint8)
    assert torch.equal(gaussian_blur(flat, 1.0), flat)
    noise = torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    out = gaussian_blur(noise, 1.0)
    assert out.dtype == torch.uint8 and abs(out.float().mean() - noise.float().mean()) < 1 and out.float().std() < 0.5 * noise.float().std()
