"""The adversarial objective: its pieces (DiffAugment, the adaptive weight, the discriminator's step) and a
real run with it: the discriminator trains, is checkpointed, and stays out of the saved model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

import animevae
from animevae.config import ModelConfig, TrainConfig, resolve_configs
from animevae.models.vae import VAE
from animevae.training.adversarial import FAKE_SHARE, MAX_SCALE, R1_EVERY, Adversarial, Blur, PatchDiscriminator, diff_augment, last_layer, mix_pairs

SMALL = ModelConfig(image_size=24, num_layers=3, latent_dim=4, base_channels=4)


def test_diff_augment_keeps_shape_passes_gradients_and_changes_every_image():
    x = torch.rand(8, 3, 24, 24, requires_grad=True)
    torch.manual_seed(0)
    y = diff_augment(x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable: the generator learns through it
    assert all(not torch.equal(a, b) for a, b in zip(y.detach(), x.detach()))
    assert ((y == 0).flatten(1).float().mean(1) >= 1 / 16 - 0.01).all()  # the cutout square (a quarter of the image, at least a quarter of it inside) is zero


def test_patch_discriminator_scores_patches():
    d = PatchDiscriminator(3, 8)
    assert d(torch.rand(2, 3, 96, 96)).shape == (2, 1, 12, 12)
    blurred = PatchDiscriminator(3, 8, blur=True)
    assert blurred(torch.rand(2, 3, 96, 96)).shape == (2, 1, 12, 12)
    assert sum(isinstance(m, Blur) for m in blurred.modules()) == 2 and not isinstance(blurred.body[0], Blur)
    assert not any(isinstance(m, Blur) for m in d.modules())
    assert all("kernel" not in k for k in blurred.state_dict())  # the fixed filter is not a weight to save


def test_blur_keeps_flat_images_and_removes_the_pattern_a_stride_2_conv_would_alias():
    flat = torch.full((1, 2, 8, 8), 0.3)
    assert torch.allclose(Blur(2)(flat), flat)
    checker = (torch.arange(8).view(8, 1) + torch.arange(8).view(1, 8)) % 2  # the highest frequency, period 2
    out = Blur(1)(checker.float().view(1, 1, 8, 8))
    assert torch.allclose(out[..., 1:-1, 1:-1], torch.full((6, 6), 0.5))  # only its mean is left


def test_mix_pairs_lie_on_the_segment_between_two_of_the_means():
    mu = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, -2.0], [2.0, 4.0, 1.0], [-3.0, 1.0, 2.0]])
    torch.manual_seed(0)
    z = mix_pairs(mu, 200)
    assert z.shape == (200, 3)

    def coefficient(p: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> float | None:
        """t where p = a + t (b - a) on the line through a and b (None when p is off that line)."""
        d = b - a
        t = float((p - a) @ d / (d @ d))
        return t if float((p - a - t * d).norm()) < 1e-5 else None

    pairs = [(i, j) for i in range(len(mu)) for j in range(i + 1, len(mu))]
    for p in z:
        if any(torch.allclose(p, m, atol=1e-6) for m in mu):
            continue  # both ends the same mean (or the weight at 0 or 1)
        ts = [t for t in (coefficient(p, mu[i], mu[j]) for i, j in pairs) if t is not None]
        assert len(ts) == 1 and 0 <= ts[0] <= 1, (p, ts)  # on one line through two means, between them
    assert sum(not any(torch.allclose(p, m, atol=1e-6) for m in mu) for p in z) > 100  # mixes, not copies of the means


def test_adaptive_weight_is_the_ratio_of_gradient_norms_at_the_decoders_last_layer():
    cfg = TrainConfig(objective="adversarial", adv_start_epochs=0)
    torch.manual_seed(0)
    model, objective = VAE(SMALL), Adversarial(cfg, steps_per_epoch=10, model_config=SMALL)
    x = torch.rand(6, 3, 24, 24)
    torch.manual_seed(1)
    terms = objective(model, x, step=0)
    w = last_layer(model)
    assert w is model.decoder[-1].weight
    lam = float(terms.logs["adv_lambda"])
    # recompute by hand: the same weights, the same random draws in the same order (the posterior sample, the mixes'
    # pairs and weights, DiffAugment), the same fakes (half reconstructions, half mix decodes)
    torch.manual_seed(0)
    model2, objective2 = VAE(SMALL), Adversarial(cfg, steps_per_epoch=10, model_config=SMALL)
    torch.manual_seed(1)
    out = model2(x)
    recon_per_dim = (-out.likelihood.log_prob(x)).mean() / x[0].numel()
    n = max(2, round(len(x) * FAKE_SHARE))
    mixes = model2.likelihood(model2.decode(mix_pairs(out.mu.detach(), n - n // 2))).mean
    g = -objective2.judge(torch.cat([out.likelihood.mean[: n // 2], mixes])).mean()
    w2 = last_layer(model2)
    g_rec = torch.autograd.grad(recon_per_dim, w2, retain_graph=True)[0]
    g_adv = torch.autograd.grad(g, w2)[0]
    expected = float(g_rec.norm() / (g_adv.norm() + 1e-4))
    assert 0 < expected < MAX_SCALE  # not clamped: the formula itself is compared
    assert lam == pytest.approx(expected, rel=1e-5)


def test_off_before_the_warm_up_then_the_discriminator_learns_in_after_step():
    cfg = TrainConfig(objective="adversarial", adv_start_epochs=1)
    torch.manual_seed(0)
    model, objective = VAE(SMALL), Adversarial(cfg, steps_per_epoch=2, model_config=SMALL)
    opts = objective.optimizers(lambda params: torch.optim.Adam(params, lr=1e-3))
    x = torch.rand(4, 3, 24, 24)
    before = objective(model, x, step=1)
    assert "adv_g" not in before.logs and objective._fake is None
    snapshot = {k: v.clone() for k, v in objective.disc.state_dict().items()}
    objective.after_step(x, before, 1, opts)  # nothing to learn from yet: no change
    assert all(torch.equal(v, objective.disc.state_dict()[k]) for k, v in snapshot.items())
    assert "adv_d" not in before.logs and not opts["disc"].state  # no discriminator step was taken
    terms = objective(model, x, step=2)
    assert {"adv_g", "adv_lambda"} <= set(terms.logs) and float(terms.logs["adv_lambda"]) > 0
    terms.loss.backward()
    assert all(p.grad is None for p in objective.disc.parameters())  # the generator's step leaves the discriminator's gradients alone
    objective.after_step(x, terms, 2, opts)
    assert "adv_d" in terms.logs and any(not torch.equal(v, objective.disc.state_dict()[k]) for k, v in snapshot.items())


def test_the_adversarial_objective_goes_on_top_of_a_preset_and_settings_beat_the_preset():
    _, train, _ = resolve_configs({"objective": "adversarial"}, "quality")
    assert train.objective == "adversarial" and train.sampler == "gmm" and train.ema > 0
    _, train, _ = resolve_configs({"objective": "adversarial", "adv_weight": 0.1, "sampler": "mix"}, "quality")
    assert train.adv_weight == 0.1 and train.sampler == "mix"


def test_feature_matching_compares_each_reconstruction_with_its_own_face_and_trains_only_the_vae():
    cfg = TrainConfig(objective="adversarial", adv_start_epochs=0, adv_fakes="recon", adv_feature_match=10.0)
    torch.manual_seed(0)
    model, objective = VAE(SMALL), Adversarial(cfg, steps_per_epoch=10, model_config=SMALL)
    x = torch.rand(6, 3, 24, 24)
    assert objective.feature_distance(x, x).item() == 0.0
    assert objective.feature_distance(x.flip(0), x).item() > 0  # another face's features differ
    terms = objective(model, x, step=0)
    n = round(len(x) * FAKE_SHARE)
    assert torch.equal(objective._fake, terms.output.likelihood.mean[:n].detach())  # reconstructions only, no mix decodes
    assert float(terms.logs["adv_fm"]) > 0
    terms.loss.backward()
    assert all(p.grad is None for p in objective.disc.parameters())

    def decoder_grad(weight: float) -> torch.Tensor:  # the same step, with and without the feature-matching term
        torch.manual_seed(0)
        m = VAE(SMALL)
        o = Adversarial(TrainConfig(objective="adversarial", adv_start_epochs=0, adv_fakes="recon", adv_feature_match=weight), 10, model_config=SMALL)
        torch.manual_seed(1)
        o(m, x, step=0).loss.backward()  # step 0: lambda is measured (a zero buffer before that turns the whole term off)
        return m.decoder[-1].weight.grad

    assert not torch.allclose(decoder_grad(10.0), decoder_grad(0.0))  # the term reaches the decoder


def test_r1_penalty_runs_every_r1_every_steps_and_changes_the_discriminators_update():
    x = torch.rand(8, 3, 24, 24)

    def disc_after(r1: float, step: int):
        cfg = TrainConfig(objective="adversarial", adv_start_epochs=0, disc_r1=r1)
        torch.manual_seed(0)
        model, objective = VAE(SMALL), Adversarial(cfg, steps_per_epoch=10, model_config=SMALL)
        opts = objective.optimizers(lambda params: torch.optim.Adam(params, lr=1e-3))
        torch.manual_seed(1)
        terms = objective(model, x, step=step)
        objective.after_step(x, terms, step, opts)
        return objective.disc.state_dict(), terms.logs

    plain, logs = disc_after(0.0, R1_EVERY)
    assert "adv_r1" not in logs
    penalised, logs = disc_after(1.0, R1_EVERY)
    assert float(logs["adv_r1"]) > 0
    assert any(not torch.equal(plain[k], penalised[k]) for k in plain)
    _, logs = disc_after(1.0, R1_EVERY + 1)  # lazy: not on the steps between
    assert "adv_r1" not in logs


@pytest.mark.parametrize(
    "bad",
    [
        *({"adv_weight": -1.0}, {"disc_width": 0}, {"adv_start_epochs": float("nan")}, {"sampler": "best"}),
        *({"disc_r1": -0.1}, {"adv_feature_match": float("inf")}, {"adv_fakes": "mix"}),
    ],
)
def test_bad_adversarial_settings_are_refused(bad):
    with pytest.raises(animevae.UserError):
        TrainConfig(**bad)


def test_an_adversarial_run_trains_saves_a_plain_model_and_fine_tunes_as_adversarial(tmp_path, capsys):
    run = animevae.train(
        tmp_path / "sharp", data="builtin", preset="quality", objective="adversarial", builtin_count=192, image_size=24,
        latent_dim=8, base_channels=8, epochs=2, batch_size=32, adv_start_epochs=0.5, kl_warmup_epochs=0.0, progress=False,
    )  # fmt: skip
    path = Path(run.path)
    lines = [json.loads(s) for s in (path / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["adv_lambda"] > 0 and "adv_d" in lines[-1] and "adv_g" in lines[-1]
    with safe_open(str(path / "model.safetensors"), "pt") as f:
        assert not any("disc" in k for k in f.keys())  # training-only: not in the model
    ckpt = sorted((path / "checkpoints").glob("step_*"))[-1]
    names = [k for p in ckpt.glob("*.safetensors") for k in safe_open(str(p), "pt").keys()]
    assert any(k.startswith("objective.disc.") for k in names) and any(k.startswith("optim.disc.") for k in names)
    model = VAE.from_pretrained(path)  # loads without the discriminator
    assert model.generate(torch.zeros(2, 8)).shape == (2, 3, 24, 24)
    assert [p.name for p in path.glob("gmm*.safetensors")] == ["gmm_10_full.safetensors"]  # the preset's sampler, fitted as training ended
    capsys.readouterr()
    faces = run.generate(4, seed=1)
    assert len(faces) == 4 and "fitting" not in capsys.readouterr().err  # generate uses the kept fit
    digests = lambda images: [hashlib.sha256(f.tobytes()).hexdigest()[:12] for f in images]  # noqa: E731
    assert digests(faces) == digests(run.generate(4, seed=1, sampler="gmm")) != digests(run.generate(4, seed=1, sampler="mix"))  # gmm by default
    tuned = animevae.train(tmp_path / "tuned", data="builtin", builtin_count=96, init_from=str(path), epochs=1, batch_size=16, progress=False)
    saved = json.loads((Path(tuned.path) / "config.json").read_text())["train"]
    assert saved["objective"] == "adversarial" and saved["sampler"] == "gmm" and saved["adv_start_epochs"] == 0.5
    plain = animevae.train(tmp_path / "plain", data="builtin", builtin_count=96, init_from=str(path), objective="elbo", epochs=1, batch_size=16, progress=False)
    assert json.loads((Path(plain.path) / "config.json").read_text())["train"]["objective"] == "elbo"  # said again: it wins


def test_a_share_of_the_run_switches_it_on_for_good_and_a_resumed_objective_stays_on():
    cfg = TrainConfig(objective="adversarial", adv_start_epochs=100, adv_start_fraction=0.5)
    torch.manual_seed(0)
    model, objective = VAE(SMALL), Adversarial(cfg, steps_per_epoch=2, model_config=SMALL)
    x = torch.rand(4, 3, 24, 24)
    objective.run_share = 0.49
    assert "adv_g" not in objective(model, x, step=5).logs  # before the share: off (adv_start_epochs is not what counts)
    objective.run_share = 0.5
    assert "adv_g" in objective(model, x, step=6).logs
    assert int(objective.state_dict()["started_at"]) == 6
    objective.run_share = 0.0  # on for good once switched on
    assert "adv_g" in objective(model, x, step=7).logs
    resumed = Adversarial(cfg, steps_per_epoch=2, model_config=SMALL)
    resumed.load_state_dict(objective.state_dict())
    assert "adv_g" in resumed(model, x, step=8).logs  # the checkpoint says it started: share 0 does not switch it off
    fresh = Adversarial(cfg, steps_per_epoch=2, model_config=SMALL)
    assert "adv_g" not in fresh(model, x, step=8).logs


def test_decoder_only_gives_the_encoder_no_gradient_once_the_discriminator_is_on():
    cfg = TrainConfig(objective="adversarial", adv_start_epochs=1, adv_decoder_only=True)
    torch.manual_seed(0)
    model, objective = VAE(SMALL), Adversarial(cfg, steps_per_epoch=2, model_config=SMALL)
    x = torch.rand(4, 3, 24, 24)
    decoder = {id(p) for p in model.decoder.parameters()}
    objective(model, x, step=1).loss.backward()  # before: the whole VAE learns
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad(set_to_none=True)
    objective(model, x, step=2).loss.backward()
    assert all((p.grad is not None) == (id(p) in decoder) for p in model.parameters())
    assert any(id(p) not in decoder for p in model.parameters())  # there is an encoder side to leave alone


def test_a_late_decoder_only_phase_keeps_the_encoder_of_the_first_half(tmp_path):
    run = animevae.train(
        tmp_path / "late", data="builtin", objective="adversarial", builtin_count=96, image_size=24, latent_dim=8, base_channels=8,
        epochs=2, batch_size=16, adv_start_fraction=0.5, adv_decoder_only=True, log_every=1, keep_last=2, progress=False,
    )  # fmt: skip
    path = Path(run.path)
    lines = [json.loads(s) for s in (path / "metrics.jsonl").read_text().splitlines()]
    assert "adv_d" not in lines[0] and "adv_d" in lines[1]  # off for the first half of the steps, on for the second
    load = lambda p: {k: f.get_tensor(k) for f in [safe_open(str(p), "pt")] for k in f.keys()}  # noqa: E731
    first, last = load(path / "epochs" / "epoch_001" / "model.safetensors"), load(path / "model.safetensors")
    weights = [k for k in first if k.endswith("weight") and "running" not in k]
    encoder = [k for k in weights if not k.startswith("decoder.")]
    decoder = [k for k in weights if k.startswith("decoder.")]
    assert encoder and decoder
    assert all(torch.equal(first[k], last[k]) for k in encoder)
    assert not all(torch.equal(first[k], last[k]) for k in decoder)
