"""The experiments folder: every result file is complete and names a script that exists, the documentation's
table is what the result files give, and every script at least parses its options."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
RESULTS = sorted((EXPERIMENTS / "results").glob("*.json"))
SCRIPTS = sorted(p for p in EXPERIMENTS.glob("*.py") if not p.name.startswith("_"))

sys.path.insert(0, str(EXPERIMENTS))
import _record  # noqa: E402
import pages  # noqa: E402


def test_there_are_results_and_scripts():
    assert len(RESULTS) >= 6 and len(SCRIPTS) >= 6


@pytest.mark.parametrize("path", RESULTS, ids=lambda p: p.stem)
def test_each_result_file_is_complete_and_its_script_exists(path):
    r = json.loads(path.read_text())
    missing = [k for k in _record.REQUIRED if k not in r]
    assert not missing, f"{path.name} lacks {missing}"
    assert r["name"] == path.stem
    assert (EXPERIMENTS / f"{r['name']}.py").is_file(), f"no script experiments/{r['name']}.py"
    assert r["source"] in ("recorded", "rerun")
    assert re.fullmatch(r"[0-9a-f]{40}", r["commit"] or ""), f"{path.name}: commit {r['commit']!r}"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT[\d:]+(\+00:00|Z)?", r["date"]), r["date"]
    assert r["question"].endswith("?") and r["command"].startswith("python experiments/")
    assert isinstance(r["machine"], dict) and r["machine"] and isinstance(r["results"], dict) and r["results"]
    assert r["key_figures"] and all(isinstance(f, str) and f for f in r["key_figures"])
    assert isinstance(r["commands"], list) and r["commands"]


def test_the_table_in_the_documentation_is_up_to_date():
    page = (ROOT / "docs" / "explanation" / "experiments.md").read_text()
    assert "<!-- generated:experiments-table -->" in page
    for path in RESULTS:  # one row per result file, naming its script
        assert f"| `experiments/{path.stem}.py` |" in page


def test_every_generated_part_of_the_readme_and_the_docs_is_what_the_json_gives():
    out = subprocess.run([sys.executable, str(EXPERIMENTS / "pages.py"), "--check"], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr + out.stdout


def test_a_stale_or_unknown_generated_part_is_caught(tmp_path):
    fresh = pages.render("a <!-- figure:sharpness_ladder:settings/seeds:d -->7<!-- /figure --> b")
    assert fresh == f"a <!-- figure:sharpness_ladder:settings/seeds:d -->{pages.value('sharpness_ladder', 'settings/seeds')}<!-- /figure --> b"
    assert pages.render(fresh) == fresh  # rendering again changes nothing
    table = pages.render("<!-- generated:experiments-table -->\nold rows\n<!-- /generated:experiments-table -->")
    assert "old rows" not in table and table.count("| `experiments/") == len(RESULTS)
    with pytest.raises(SystemExit, match="no such block"):
        pages.render("<!-- generated:nothing -->\n<!-- /generated:nothing -->")
    with pytest.raises(SystemExit, match="has no 'settings/nothing'"):
        pages.render("<!-- figure:sharpness_ladder:settings/nothing:d -->1<!-- /figure -->")


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_each_script_parses_its_options(script):
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout


def test_a_record_is_written_atomically_with_the_machine_and_commit(tmp_path):
    path = _record.write(tmp_path / "x.json", "x", "What?", ["animevae train"], {"a": 1}, {"b": 2}, ["b 2"], command="python experiments/x.py")
    r = json.loads(path.read_text())
    assert all(k in r for k in _record.REQUIRED) and r["source"] == "rerun"
    assert r["machine"]["cores"] >= 1 and r["machine"]["torch"] and isinstance(r["machine"]["flags"], list)
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]  # no temporary file left behind


def test_the_refiner_probe_starts_as_the_identity_and_then_adds_a_residual():
    import refiner
    import torch

    torch.manual_seed(0)
    net = refiner.Refiner()
    y = torch.rand(2, 3, 96, 96)
    assert torch.equal(net(y), y)  # zero-initialised last conv: the decoder's faces, untouched, before training
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    noise = torch.randn(2, 1, 96, 96)
    assert not torch.allclose(net(y, noise), y) and not torch.allclose(net(y, noise), net(y, -noise))  # it reads the noise
    quiet = refiner.Refiner(noise=False)
    torch.nn.init.normal_(quiet.out[-1].weight, std=0.1)
    assert not torch.allclose(quiet(y, noise), y) and torch.equal(quiet(y, noise), quiet(y, -noise))  # --no-noise: a deterministic refiner


def test_the_energy_score_prefers_draws_from_the_right_distribution_to_its_mean():
    """A patch is all 0 or all 1, even odds. Draws from that distribution score better, averaged over every
    combination of the face and the two draws, than the mean (all 0.5) drawn twice: the score is proper, and
    the blur a likelihood decoder draws is what it penalises."""
    import itertools

    import torch
    from energy_refiner import patch_energy_score

    patches = [torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8)]
    right = torch.stack([patch_energy_score(y1, y2, x, 8) for x, y1, y2 in itertools.product(patches, repeat=3)]).mean()
    mean = torch.full_like(patches[0], 0.5)
    blurred = torch.stack([patch_energy_score(mean, mean, x, 8) for x in patches]).mean()
    side = (3 * 8 * 8) ** 0.5  # the norm of an all-ones patch
    assert right.item() == pytest.approx(0.25 * side, rel=1e-4) and blurred.item() == pytest.approx(0.5 * side, rel=1e-4)
    x = torch.rand(2, 3, 16, 16)
    assert patch_energy_score(x, x, x, 8).abs().max() < 1e-2  # a perfect draw scores (nearly) 0: four 8 x 8 patches, sqrt(1e-8) each


def test_the_conv_prior_probe_denoises_latent_maps_given_as_flat_vectors():
    import latent_prior
    import torch

    torch.manual_seed(0)
    net = latent_prior.ConvDenoiser((4, 3, 3), width=16, blocks=2)
    z, t = torch.randn(5, 36), torch.rand(5)
    assert net(z, t).shape == (5, 36)
    assert not torch.allclose(net(z, t), net(z.roll(1, dims=-1), t))  # the latent is read
    assert not torch.allclose(net(z, t), net(z, 1 - t))  # the noise level is read


def test_the_shock_filter_turns_a_smeared_edge_into_a_step_and_leaves_flat_colour_alone():
    import torch
    from detail_ceiling import shock_filter

    ramp = torch.linspace(0, 1, 16).clamp(0.2, 0.8).sub(0.2).div(0.6)  # a 9-px ramp from black to white
    face = ramp.view(1, 1, 1, 16).expand(1, 3, 16, 16).contiguous()
    sharp = shock_filter(face, 10, 0.2)
    steepest = lambda x: (x[0, 0, 8, 1:] - x[0, 0, 8, :-1]).max().item()  # noqa: E731
    assert steepest(sharp) > 1.5 * steepest(face)  # the edge got steeper
    assert sharp.min() >= 0 and sharp.max() <= 1 and torch.allclose(sharp[..., :2], face[..., :2])  # no overshoot; the flat sides stay
    flat = torch.full((1, 3, 16, 16), 0.3)
    assert torch.equal(shock_filter(flat, 10, 0.2), flat)


def test_the_detail_chain_shrinks_faces_as_its_super_resolution_stage_was_trained_on():
    import torch
    from detail_ceiling import shrunk
    from detail_chain import shrink_enlarge

    torch.manual_seed(0)
    u8 = torch.randint(0, 256, (3, 3, 96, 96), dtype=torch.uint8)
    same = shrink_enlarge(u8.float() / 255).mul(255).round().to(torch.uint8)
    assert (same.int() - shrunk(u8).int()).abs().max() <= 1  # the training inputs and the decoder's, within rounding
    checker = (torch.arange(96).view(1, -1) + torch.arange(96).view(-1, 1)) % 2
    assert shrunk(checker.expand(1, 3, 96, 96).mul(255).to(torch.uint8)).float().std() < 2  # 1-px detail is gone


def test_the_ssim_probe_is_zero_on_the_face_and_like_the_pixel_loss_prefers_the_average_of_two_edges_to_a_sharp_one():
    import torch
    from blur_baseline import gaussian_low
    from ssim_loss import multiscale_ssim_distance as distance

    torch.manual_seed(0)
    face = gaussian_low(torch.rand(2, 3, 96, 96), 1.5)
    assert distance(face, face).abs().max() < 1e-5 and (distance(gaussian_low(face, 1.5), face) > 0.05).all()

    def edge(at: int) -> torch.Tensor:  # black left of column ``at``, white right of it
        x = torch.zeros(1, 3, 96, 96)
        x[..., at:] = 1
        return x

    left, right = edge(44), edge(52)  # a stroke whose place the latent leaves open: one or the other
    average, sharp = (left + right) / 2, edge(48)
    expected = lambda y: (distance(y, left) + distance(y, right)).item() / 2  # noqa: E731
    assert expected(average) < expected(sharp)  # the blur still wins: SSIM does not reward guessing a sharp edge


def test_the_noisy_decoder_draws_differ_through_learned_scales_and_the_energy_term_trains_them():
    import torch
    from decoder_noise import register_noise

    from animevae.config import ModelConfig, TrainConfig
    from animevae.models.vae import ARCHITECTURES, VAE
    from animevae.training.objectives import OBJECTIVES, make_objective

    before = dict(ARCHITECTURES), dict(OBJECTIVES)
    try:
        register_noise(weights=(100,))
        torch.manual_seed(0)
        model = VAE(ModelConfig(arch="spatialnoise", latent_dim=576)).eval()
        z = torch.randn(2, 576)
        with torch.no_grad():
            assert (model.decode(z) - model.decode(z)).abs().mean() > 1e-3  # two draws for one latent
            for s in model.decoder.scales:
                s.zero_()
            assert torch.equal(model.decode(z), model.decode(z))  # no noise without the scales
            for s in model.decoder.scales:
                s.fill_(0.1)
        model.train()
        objective = make_objective(TrainConfig(objective="elbo-energy100", beta=0.1), steps_per_epoch=10, model_config=model.config)
        terms = objective(model, torch.rand(4, 3, 96, 96), step=0)
        terms.loss.backward()
        assert terms.logs["energy"] > 0 and all(s.grad.abs().sum() > 0 for s in model.decoder.scales)
    finally:
        ARCHITECTURES.clear(), ARCHITECTURES.update(before[0])
        OBJECTIVES.clear(), OBJECTIVES.update(before[1])


def test_the_periodicity_measure_reads_about_one_without_a_pattern_and_catches_a_faint_8px_one():
    """experiments/periodic_texture.py: other faces of the same kind read about 1; a 2-gray-level grid of 8-px
    rings added to them reads far above it; a blur (less power everywhere) does not read as a pattern."""
    import periodic_texture

    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(400, 3, 12, 12, generator=g), size=96, mode="bicubic", align_corners=False)
    faces = (smooth * 180 + 30 + torch.randn(400, 3, 96, 96, generator=g) * 6).round().clamp(0, 255).to(torch.uint8)
    reference, others = faces[:200], faces[200:]
    real_power = periodic_texture.power_spectrum(reference)
    same = periodic_texture.periodicity(others, real_power)
    patterned = periodic_texture.periodicity(periodic_texture.with_pattern(others, 2.0), real_power)
    blurred = periodic_texture.periodicity(torch.nn.functional.avg_pool2d(others.float(), 3, 1, 1, count_include_pad=False).round().to(torch.uint8), real_power)
    assert 0.9 < same["periodicity"] < 1.15 and same["peak"] < 1.6 and blurred["peak"] < 1.6  # a blur lowers neighbouring frequencies alike
    assert patterned["peak"] > 4 * same["peak"] and patterned["periodicity"] > same["periodicity"] + 0.3


def test_the_detail_prior_is_causal_in_raster_order_and_learns_a_dependence_between_positions():
    from detail_prior import DetailPrior

    torch.manual_seed(0)
    prior = DetailPrior(channels=2, state_channels=3, width=16)
    u, state = torch.randn(4, 2, 6, 6), torch.randn(4, 3, 6, 6)
    mu, _ = prior(u, state)
    for r, c in [(0, 0), (2, 3), (5, 5)]:
        moved = u.clone()
        moved[:, :, r, c] += 3.0
        changed = (prior(moved, state)[0] - mu).abs().amax((0, 1)) > 1e-6
        order = torch.arange(36).reshape(6, 6)
        assert not changed[order <= r * 6 + c].any(), f"position ({r}, {c}) leaks into itself or an earlier one"
    # each position copies the one before it in raster order: learnable only through the causal context
    x = torch.randn(256, 1, 6, 6).flatten(1).cumsum(1).div(6).reshape(256, 1, 6, 6)
    fit = DetailPrior(channels=1, state_channels=1, width=16)
    opt = torch.optim.Adam(fit.parameters(), lr=3e-3)
    start = float(fit.nll(x, torch.zeros_like(x)))
    for _ in range(150):
        loss = fit.nll(x, torch.zeros_like(x))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < start - 0.5
    drawn = fit.sample(torch.zeros(8, 1, 6, 6), 1, 1.0, torch.Generator().manual_seed(0))
    assert drawn.shape == (8, 1, 6, 6) and torch.isfinite(drawn).all()


def test_the_posterior_spread_is_the_prior_s_on_a_new_model_and_reads_the_model_s_own_kl():
    from posterior_spread import group_spread

    from animevae.config import ModelConfig
    from animevae.models.vae import VAE

    torch.manual_seed(0)
    m = VAE(ModelConfig(arch="hierarchical", image_size=48, num_layers=4, base_channels=8, latent_dim=144)).eval()
    faces = torch.randint(0, 256, (6, 3, 48, 48), dtype=torch.uint8)
    for r in group_spread(m, faces):  # a new model's finer posteriors are their priors (zero heads)
        assert r["kl_per_dim"] == 0 and r["means_spread"] == 0 and r["variance_ratio"] == 1 and r["matched_temperature"] == 1
        assert all(abs(t - 1) < 0.15 for t in r["block_temperature"].values())  # independent positions: 1 over any block
    for group in m.decoder.groups:
        for head in (group.prior, group.posterior):
            torch.nn.init.normal_(head.weight, std=0.05)
            torch.nn.init.normal_(head.bias, std=0.2)
    rows = group_spread(m, faces, seed=3)
    with torch.no_grad():
        own = m(faces.float().div(255), generator=torch.Generator().manual_seed(3)).detail_kl
    for r, kl in zip(rows, own):
        assert r["kl_per_dim"] > 0.01 and r["kl_per_dim"] == pytest.approx(float(kl.mean()), abs=1e-4)  # figures kept to 4 places
        assert abs(r["matched_temperature"] - r["drawn_rms"]) < 0.05  # the expectation and the draws agree
        assert r["matched_temperature"] ** 2 == pytest.approx(r["means_spread"] + r["variance_ratio"], abs=1e-3)


def test_shaped_noise_has_unit_variance_and_the_measured_correlation_between_neighbours():
    from _shaped_noise import autocorrelation, kernel_of, shaped

    gen = torch.Generator().manual_seed(0)
    blur = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]).expand(2, 1, 3, 3)
    correlated = [torch.nn.functional.conv2d(torch.randn(64, 2, 26, 26, generator=gen), blur, groups=2) for _ in range(4)]
    ac = autocorrelation(correlated, radius=3)
    assert ac.shape == (2, 7, 7) and torch.allclose(ac[:, 3, 3], torch.ones(2))
    assert 0.4 < float(ac[0, 3, 4]) < 0.8 and abs(float(ac[0, 3, 6])) < 0.05  # neighbours correlated, three apart not
    white = autocorrelation([torch.randn(64, 2, 24, 24, generator=gen)], radius=3)
    assert float(white[:, 3, 4].abs().max()) < 0.05
    kernel = kernel_of(ac)
    drawn = shaped((256, 2, 24, 24), kernel, gen)
    assert abs(float(drawn.var()) - 1) < 0.05  # each position still has unit variance
    assert torch.allclose(autocorrelation([drawn], radius=3), ac, atol=0.05)  # and the measured correlation
    assert torch.allclose(kernel_of(white), torch.eye(7)[3].outer(torch.eye(7)[3]).expand(2, 7, 7), atol=0.1)  # white stays white


def test_the_probe_s_reconstructions_are_the_tool_s_at_the_means_and_drawn():
    from recon_draws import reconstruct

    from animevae.config import ModelConfig
    from animevae.models.vae import VAE
    from animevae.sampling.generate import reconstruct_images

    torch.manual_seed(0)
    m = VAE(ModelConfig(arch="hierarchical", image_size=48, num_layers=4, base_channels=8, latent_dim=144)).eval()
    faces = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
    assert torch.equal(reconstruct(m, faces, "means"), reconstruct_images(m, faces, latents="mean"))
    assert torch.equal(reconstruct(m, faces, "all_draws"), reconstruct_images(m, faces))  # the tool's default: every latent drawn, seed 0
    for how in ("fine_draws", "all_draws"):
        drawn = reconstruct(m, faces, how)
        assert torch.equal(drawn, reconstruct(m, faces, how)) and not torch.equal(drawn, reconstruct(m, faces, how, seed=1))
        assert not torch.equal(drawn, reconstruct(m, faces, "means"))
    assert not torch.equal(reconstruct(m, faces, "fine_draws"), reconstruct(m, faces, "all_draws"))  # the top drawn too


def test_the_fine_mixture_s_latents_are_posterior_draws_that_decode_as_the_model_s_own_posterior_pass():
    from joint_gmm_fine import all_latents
    from recon_draws import reconstruct

    from animevae.config import ModelConfig
    from animevae.models.vae import VAE
    from animevae.sampling.generate import decode_latents

    torch.manual_seed(0)
    m = VAE(ModelConfig(arch="hierarchical", image_size=48, num_layers=4, base_channels=8, latent_dim=144)).eval()
    for group in m.decoder.groups:  # posteriors away from their priors, so a wrong group or draw shows
        for head in (group.prior, group.posterior):
            torch.nn.init.normal_(head.weight, std=0.05)
            torch.nn.init.normal_(head.bias, std=0.2)
    faces = torch.randint(0, 256, (4, 3, 48, 48), dtype=torch.uint8)
    x = all_latents(m, faces, seed=5)
    assert x.shape == (4, 144 + 8 * 12 * 12 + 4 * 24 * 24) and torch.equal(x[:, :144], m.encode(faces.float().div(255)).mu)
    # the top at its mean and every finer group drawn from the posterior: the probe's "fine_draws" reconstructions, up to
    # the rounding of z = mu_p + sigma_p u against mu_p + d_mu + sigma_q eps (one grey level, on a pixel or two)
    drawn, own = decode_latents(m, x).int(), reconstruct(m, faces, "fine_draws", seed=5).int()
    assert (drawn - own).abs().max() <= 1 and (drawn - own).abs().float().mean() < 1e-3
    assert (decode_latents(m, all_latents(m, faces, seed=6)).int() - drawn).abs().float().mean() > 5  # other draws, other faces
