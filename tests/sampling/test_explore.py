"""reconstruct, interpolate and traverse: the math on small tensors, and each command through the real CLI on the tiny run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animevae.errors import UserError
from animevae.sampling.explore import lerp, principal_directions, read_image, slerp

TILE = 96 + 2  # a 96 px face plus the grid's 2 px padding


def _grid_shape(rows: int, cols: int) -> tuple[int, int, int]:
    return (2 + rows * TILE, 2 + cols * TILE, 3)


def _tile(grid: np.ndarray, r: int, c: int) -> np.ndarray:
    return grid[2 + r * TILE : 2 + r * TILE + 96, 2 + c * TILE : 2 + c * TILE + 96]


@pytest.fixture(scope="module")
def two_pictures(tmp_path_factory) -> tuple[Path, Path]:
    """An RGB JPEG and an RGBA PNG of another size (converted to RGB and resized on reading)."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    a, b = folder / "a.jpg", folder / "b.png"
    Image.fromarray(rng.integers(0, 256, (120, 120, 3), dtype=np.uint8)).save(a)
    Image.fromarray(rng.integers(0, 256, (64, 80, 4), dtype=np.uint8), "RGBA").save(b)
    return a, b


# -- the math -----------------------------------------------------------------------------------------------------


def test_lerp_and_slerp_start_and_end_at_the_two_latents():
    a, b = torch.randn(16, generator=torch.Generator().manual_seed(0)), torch.randn(16, generator=torch.Generator().manual_seed(1))
    t = torch.linspace(0, 1, 7)
    for f in (lerp, slerp):
        z = f(a, b, t)
        assert z.shape == (7, 16)
        assert torch.allclose(z[0], a, atol=1e-5) and torch.allclose(z[-1], b, atol=1e-5)
    assert torch.allclose(lerp(a, b, t)[3], (a + b) / 2)


def test_slerp_keeps_the_norm_where_lerp_shrinks_it():
    a, b = torch.tensor([3.0, 0.0]), torch.tensor([0.0, 3.0])
    mid = torch.tensor([0.5])
    assert slerp(a, b, mid)[0].norm().item() == pytest.approx(3.0, rel=1e-6)
    assert torch.allclose(slerp(a, b, mid)[0], torch.tensor([3 / math.sqrt(2)] * 2), atol=1e-6)
    assert lerp(a, b, mid)[0].norm().item() == pytest.approx(3 / math.sqrt(2), rel=1e-6)
    # parallel vectors: no great circle, falls back to the straight line
    assert torch.allclose(slerp(a, 2 * a, mid), lerp(a, 2 * a, mid))


def test_principal_directions_find_the_long_axis():
    g = torch.Generator().manual_seed(2)
    axis = torch.tensor([1.0, 2.0, 0.0, -2.0]) / 3  # unit length
    mu = 5.0 * torch.randn(2000, 1, generator=g) * axis + 0.3 * torch.randn(2000, 4, generator=g) + 7
    vecs, stds = principal_directions(mu)
    assert abs(float(vecs[:, 0] @ axis)) == pytest.approx(1.0, abs=1e-3)
    assert stds[0].item() == pytest.approx(math.sqrt(25 + 0.09), rel=0.05)
    assert stds[1].item() == pytest.approx(0.3, rel=0.1)
    assert (stds[:-1] >= stds[1:]).all()


def test_read_image_converts_and_resizes(two_pictures, tmp_path):
    _, b = two_pictures
    x = read_image(b, 48)
    assert x.shape == (3, 48, 48) and x.dtype == torch.uint8
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a picture")
    with pytest.raises(UserError, match="not a usable image"):
        read_image(bad, 48)
    with pytest.raises(UserError, match="cannot read it"):
        read_image(tmp_path / "missing.png", 48)


# -- the commands ---------------------------------------------------------------------------------------------------------


def test_reconstruct_puts_inputs_above_their_reconstructions(cli, run_copy, tmp_path):
    out = tmp_path / "rec.png"
    cli("reconstruct", "--run", run_copy, "--data", "builtin", "--builtin-count", 320, "--n", 10, "--out", out)
    grid = np.asarray(Image.open(out))
    assert grid.shape == _grid_shape(4, 8)  # 10 faces, 8 a row: inputs, reconstructions, inputs, reconstructions
    from animevae.config import DataConfig
    from animevae.data.cache import load_images

    faces = load_images(DataConfig(source="builtin", builtin_count=320), 96, progress=False)
    assert np.array_equal(_tile(grid, 0, 0), faces.images[0].transpose(1, 2, 0))
    assert np.array_equal(_tile(grid, 2, 1), faces.images[9].transpose(1, 2, 0))
    assert not np.array_equal(_tile(grid, 1, 0), _tile(grid, 0, 0))  # a reconstruction, not a copy
    assert (_tile(grid, 2, 2) == 255).all()  # blank where the last row ends


def test_interpolate_between_prior_latents_writes_a_grid_and_gifs(cli, run_copy, tmp_path):
    out = tmp_path / "interp"
    cli("interpolate", "--run", run_copy, "--seed", 4, "--steps", 5, "--out", out)
    grid = np.asarray(Image.open(out / "interpolation.png"))
    assert grid.shape == _grid_shape(2, 5)  # lerp row, slerp row
    for c in (0, 4):  # both paths start and end at the same two latents (up to a rounding step)
        assert np.abs(_tile(grid, 0, c).astype(int) - _tile(grid, 1, c).astype(int)).max() <= 1
    for mode in ("lerp", "slerp"):
        gif = Image.open(out / f"interpolation_{mode}.gif")
        assert gif.size == (96, 96) and gif.n_frames == 5 + 3  # forwards, then back without repeating the ends


def test_interpolate_between_two_pictures(cli, run_copy, tmp_path, two_pictures):
    a, b = two_pictures
    out = tmp_path / "ab"
    cli("interpolate", "--run", run_copy, "--a", a, "--b", b, "--mode", "lerp", "--steps", 3, "--out", out)
    assert np.asarray(Image.open(out / "interpolation.png")).shape == _grid_shape(1, 3)
    assert (out / "interpolation_lerp.gif").is_file() and not (out / "interpolation_slerp.gif").exists()
    proc = cli("interpolate", "--run", run_copy, "--a", a, "--out", out, check=False)
    assert proc.returncode == 2 and "--a and --b go together" in proc.stderr


def test_traverse_principal_direction_and_dimension(cli, run_copy, tmp_path, two_pictures):
    out = tmp_path / "pc.png"
    cli("traverse", "--run", run_copy, "--pc", 1, "--steps", 5, "--rows", 3, "--out", out)
    grid = np.asarray(Image.open(out))
    assert grid.shape == _grid_shape(3, 5)
    assert not np.array_equal(_tile(grid, 0, 0), _tile(grid, 0, 4))  # the walk changes the face
    out2 = tmp_path / "dim.png"
    cli("traverse", "--run", run_copy, "--dim", 0, "--image", two_pictures[0], "--image", two_pictures[1], "--steps", 4, "--out", out2)
    assert np.asarray(Image.open(out2)).shape == _grid_shape(2, 4)
    proc = cli("traverse", "--run", run_copy, "--dim", 256, "--out", out2, check=False)
    assert proc.returncode == 2 and "--dim 256: out of range" in proc.stderr and "Traceback" not in proc.stderr
