"""The diffusion sampler: a small denoiser fitted on the stored latents draws from their distribution (a ring,
which no single Gaussian can draw), is seeded, saves and reloads, refuses files that do not fit, and runs from
the CLI (its cache: tests/test_samplers_two_stage.py)."""

from __future__ import annotations

import math

import pytest
import torch

from animevae.sampling.generate import fitted_files
from animevae.sampling.samplers import DiffusionSampler, GMMSampler


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def ring() -> torch.Tensor:
    """Latents on a circle of radius 3 (first two dims), shifted and with a little noise in 6 more dims."""
    g = _gen(0)
    a = torch.rand(4000, generator=g) * 2 * math.pi
    x = torch.stack([3 * torch.cos(a), 3 * torch.sin(a), *(0.1 * torch.randn(6, 4000, generator=g))], 1)
    return x + torch.arange(8.0)


def _radius(z: torch.Tensor) -> torch.Tensor:
    return (z[:, :2] - torch.arange(2.0)).norm(dim=1)


@pytest.fixture(scope="module")
def fitted(ring) -> DiffusionSampler:
    return DiffusionSampler.fit(ring, steps=1500, hidden=128)


def test_it_draws_the_ring_a_gaussian_fills_in(fitted, ring):
    r = _radius(fitted.sample(2000, _gen(1)))
    gaussian = _radius(GMMSampler.fit(ring, n_components=1).sample(2000, _gen(1)))
    assert (r - 3).abs().median() < 0.25 and (r < 1.5).float().mean() < 0.05
    assert (gaussian - 3).abs().median() > 0.5 and (gaussian < 1.5).float().mean() > 0.15  # the test can tell the two apart


def test_it_is_seeded_and_saves_and_reloads(fitted, ring):
    assert torch.equal(fitted.sample(10, _gen(3)), fitted.sample(10, _gen(3)))
    assert not torch.equal(fitted.sample(10, _gen(3)), fitted.sample(10, _gen(4)))
    again = DiffusionSampler.fit(ring, steps=50, hidden=32)
    assert torch.equal(DiffusionSampler.fit(ring, steps=50, hidden=32).sample(5, _gen(0)), again.sample(5, _gen(0)))
    back = DiffusionSampler.from_tensors(fitted.tensors(), 8)
    assert torch.equal(back.sample(10, _gen(3)), fitted.sample(10, _gen(3)))


def test_saved_tensors_that_do_not_fit_are_refused(fitted):
    t = fitted.tensors()
    with pytest.raises(ValueError, match="not a diffusion sampler for 7-wide latents"):
        DiffusionSampler.from_tensors(t, 7)
    with pytest.raises(ValueError, match="the network does not fit"):
        DiffusionSampler.from_tensors({k: v for k, v in t.items() if k != "net.out.1.bias"}, 8)
    with pytest.raises(ValueError, match="non-finite parameters"):
        DiffusionSampler.from_tensors({**t, "net.inp.bias": torch.full_like(t["net.inp.bias"], float("nan"))}, 8)


def test_generate_with_the_diffusion_sampler(cli, fresh_run, tmp_path):
    proc = cli("generate", "--run", fresh_run, "--sampler", "diffusion", "--n", 6, "--seed", 3, "--out", tmp_path / "g")
    assert "6 faces written" in proc.stdout
    assert "diffusion: fitting a denoiser" in proc.stderr and "diffusion.safetensors: fitted in" in proc.stderr
    assert fitted_files(fresh_run) == [fresh_run / "diffusion.safetensors"]  # the named sampler was fitted, no other
    faces = sorted(p.name for p in (tmp_path / "g").glob("0000*.png"))
    assert len(faces) == 6
    cli("generate", "--run", fresh_run, "--sampler", "prior", "--n", 6, "--seed", 3, "--out", tmp_path / "prior")
    assert all((tmp_path / "g" / f).read_bytes() != (tmp_path / "prior" / f).read_bytes() for f in faces)  # its draws, not N(0, I)'s
