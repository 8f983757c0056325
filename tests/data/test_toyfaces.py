import colorsys

import numpy as np
import pytest

from animevae.data.toyfaces import render_face, render_faces


@pytest.mark.parametrize("size", [48, 96])
def test_shape_dtype(size):
    x = render_faces(3, seed=0, size=size)
    assert x.shape == (3, size, size, 3) and x.dtype == np.uint8
    assert render_face(5, size=size).shape == (size, size, 3)


def test_deterministic():
    np.testing.assert_array_equal(render_faces(4, seed=3), render_faces(4, seed=3))
    np.testing.assert_array_equal(render_face(2, seed=3), render_faces(4, seed=3)[2])


def test_seeds_and_indices_differ():
    a, b = render_faces(4, seed=0), render_faces(4, seed=1)
    assert all(not np.array_equal(a[i], b[i]) for i in range(4))
    assert all(not np.array_equal(a[i], a[i + 1]) for i in range(3))


def test_slice_matches_longer_render():
    full = render_faces(10, seed=7, size=48)
    np.testing.assert_array_equal(render_faces(4, seed=7, size=48, start=5), full[5:9])


def _hair_class(face):
    """Coarse colour class of a patch that is always hair (top left of the head)."""
    s = face.shape[0]
    patch = face[int(0.22 * s) : int(0.26 * s) + 1, int(0.38 * s) : int(0.42 * s) + 1].reshape(-1, 3)
    h, sat, v = colorsys.rgb_to_hsv(*(np.median(patch, 0) / 255))
    return ("grey", round(v * 2)) if sat < 0.25 else ("hue", round(h * 8) % 8)


def test_variety():
    x = render_faces(64, seed=0)
    assert x.reshape(64, -1, 3).std(1).mean() > 30  # faces are not flat images
    assert x.std(0).mean() > 25  # and not all the same image
    assert len({_hair_class(f) for f in x}) >= 6  # many different hair colours


def test_eyes_have_highlights_and_pupils():
    for face in render_faces(16, seed=1):
        s = face.shape[0]
        eyes = face[int(0.4 * s) : int(0.65 * s), int(0.25 * s) : int(0.75 * s)].astype(int)
        assert (eyes.min(-1) > 235).sum() >= 6  # white sclera / highlights
        assert (eyes.max(-1) < 110).sum() >= 4  # dark pupils / lashes
