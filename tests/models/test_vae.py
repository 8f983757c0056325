"""The seed's convolutional VAE: sizes, layer layout, reparameterisation, and save/load through folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from animevae.config import ModelConfig
from animevae.errors import UserError
from animevae.models.vae import ARCHITECTURES, VAE, Architecture, count_parameters, register_architecture

SMALL = ModelConfig(image_size=24, num_layers=3, latent_dim=8, base_channels=4)


def _convs(seq: nn.Module) -> list[nn.Module]:
    return [m for m in seq.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]


def _settle_batchnorm(model: VAE, size: int, seed: int = 0) -> None:
    """Run a few train-mode passes so BatchNorm running stats differ from their defaults."""
    g = torch.Generator().manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(4, 3, size, size, generator=g))
    model.eval()


# -- the seed preset ---------------------------------------------------------------------------


def test_seed_preset_parameter_count():
    assert count_parameters(VAE(ModelConfig())) == 9_122_115
    assert count_parameters(VAE()) == 9_122_115


def test_seed_preset_shapes():
    torch.manual_seed(0)
    model = VAE(ModelConfig()).eval()
    x = torch.rand(2, 3, 96, 96)
    with torch.no_grad():
        h = model.encoder(x)
        assert tuple(h.shape) == (2, 512, 3, 3)
        enc = model.encode(x)
        assert tuple(enc.mu.shape) == (2, 256) and tuple(enc.logvar.shape) == (2, 256)
        logits = model.decode(enc.mu)
        assert tuple(logits.shape) == (2, 3, 96, 96)
        out = model(x)
        assert tuple(out.logits.shape) == (2, 3, 96, 96)
        assert tuple(out.z.shape) == (2, 256)
    # logits are unbounded (no sigmoid inside the model); generate applies sigmoid -> uint8
    images = model.generate(enc.mu)
    assert images.dtype == torch.uint8 and tuple(images.shape) == (2, 3, 96, 96)
    expected = (torch.sigmoid(logits.float()) * 255).round().to(torch.uint8)
    assert torch.equal(images, expected)


def test_seed_preset_layer_layout():
    model = VAE(ModelConfig())
    enc_convs, dec_convs = _convs(model.encoder), _convs(model.decoder)
    assert len(enc_convs) == 5 and all(isinstance(c, nn.Conv2d) for c in enc_convs)
    assert len(dec_convs) == 5 and all(isinstance(c, nn.ConvTranspose2d) for c in dec_convs)
    assert [(c.in_channels, c.out_channels) for c in enc_convs] == [(3, 32), (32, 64), (64, 128), (128, 256), (256, 512)]
    assert [(c.in_channels, c.out_channels) for c in dec_convs] == [(512, 256), (256, 128), (128, 64), (64, 32), (32, 3)]
    for c in enc_convs + dec_convs:
        assert c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (1, 1), c
    assert (model.fc_mu.in_features, model.fc_mu.out_features) == (4608, 256)
    assert (model.fc_logvar.in_features, model.fc_logvar.out_features) == (4608, 256)
    assert (model.fc_decode.in_features, model.fc_decode.out_features) == (256, 4608)

    # every encoder layer and every decoder layer but the last: conv -> BatchNorm -> LeakyReLU(0.2)
    blocks = list(model.encoder) + list(model.decoder)[:-1]
    assert len(blocks) == 9
    for block in blocks:
        conv, bn, act = list(block)
        assert isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d))
        assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == conv.out_channels
        assert (bn.momentum, bn.eps, bn.affine, bn.track_running_stats) == (0.1, 1e-5, True, True)  # PyTorch's defaults, the notebook's
        assert isinstance(act, nn.LeakyReLU) and act.negative_slope == pytest.approx(0.2)
    # the decoder's last layer is a bare transposed conv: it outputs logits
    last = list(model.decoder)[-1]
    assert isinstance(last, nn.ConvTranspose2d)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    acts = [m for m in model.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(bns) == 9 and len(acts) == 9


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("size", [6, 8])
def test_every_conv_computes_the_plain_convolution(size, channels_last):
    """Whatever kernel a conv layer uses (the model may swap in faster CPU paths), it is the standard op."""
    torch.manual_seed(3)
    model = VAE(ModelConfig(image_size=24, num_layers=3, latent_dim=8, base_channels=8))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for conv in _convs(model):
        x = torch.randn(2, conv.in_channels, size, size).contiguous(memory_format=fmt)
        with torch.no_grad():
            got = conv(x)
            if isinstance(conv, nn.ConvTranspose2d):
                want = F.conv_transpose2d(x, conv.weight, conv.bias, stride=2, padding=1)
            else:
                want = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
        assert got.shape == want.shape
        assert torch.allclose(got, want, atol=1e-5, rtol=1e-4), type(conv).__name__


# -- other sizes -------------------------------------------------------------------------------


@pytest.mark.parametrize("size, layers, bottom_channels", [(48, 4, 256), (192, 6, 1024), (24, 3, 128)])
def test_other_sizes_round_trip_shapes(size, layers, bottom_channels):
    cfg = ModelConfig(image_size=size, num_layers=layers, latent_dim=16)
    model = VAE(cfg).eval()
    assert cfg.bottleneck_channels == bottom_channels
    x = torch.rand(2, 3, size, size)
    with torch.no_grad():
        assert tuple(model.encoder(x).shape) == (2, bottom_channels, 3, 3)
        enc = model.encode(x)
        assert tuple(enc.mu.shape) == (2, 16)
        assert tuple(model.decode(enc.mu).shape) == (2, 3, size, size)
    assert len(_convs(model.encoder)) == layers and len(_convs(model.decoder)) == layers


@pytest.mark.parametrize(
    "kwargs, must_mention",
    [
        ({"image_size": 100}, ["100", "sizes that work", "96"]),
        ({"image_size": 96, "num_layers": 4}, ["96", "num_layers=5"]),
        ({"image_size": 48}, ["48", "num_layers=4"]),
        ({"image_size": 50, "num_layers": 4}, ["50", "48"]),
    ],
)
def test_invalid_size_layer_combos(kwargs, must_mention):
    with pytest.raises(UserError) as e:
        VAE(ModelConfig(**kwargs))
    msg = str(e.value)
    assert "\n" not in msg
    for piece in must_mention:
        assert piece in msg, (piece, msg)


@pytest.mark.parametrize("field", ["latent_dim", "base_channels", "num_layers", "in_channels"])
def test_non_positive_sizes_refused(field):
    with pytest.raises(UserError, match=field):
        ModelConfig(**{field: 0})


# -- reparameterisation ------------------------------------------------------------------------


def test_reparameterize_statistics():
    torch.manual_seed(123)
    n = 200_000
    mu = torch.tensor([[1.0, -2.0, 0.0, 5.0]]).expand(n, 4)
    std = torch.tensor([2.0, 0.5, 1.0, 0.1])
    logvar = (2 * std.log()).expand(n, 4)
    z = VAE.reparameterize(mu, logvar)
    assert z.shape == (n, 4)
    assert torch.allclose(z.mean(0), mu[0], atol=4 * 2.0 / math.sqrt(n))
    assert torch.allclose(z.std(0), std, rtol=0.02)
    # gaussian, not uniform or the like: about 68% within one std
    inside = ((z - mu).abs() < std).float().mean(0)
    assert torch.allclose(inside, torch.full((4,), 0.6827), atol=0.01)


def test_reparameterize_is_differentiable_and_random():
    mu = torch.zeros(3, 5, requires_grad=True)
    logvar = torch.zeros(3, 5, requires_grad=True)
    z1 = VAE.reparameterize(mu, logvar)
    z2 = VAE.reparameterize(mu, logvar)
    assert not torch.equal(z1, z2)
    z1.sum().backward()
    assert torch.equal(mu.grad, torch.ones(3, 5))
    assert logvar.grad is not None and logvar.grad.abs().sum() > 0


# -- save / load -------------------------------------------------------------------------------


def _assert_same_function(a: VAE, b: VAE, size: int, latent: int):
    a.eval(), b.eval()
    g = torch.Generator().manual_seed(5)
    x = torch.rand(3, 3, size, size, generator=g)
    z = torch.randn(3, latent, generator=g)
    with torch.no_grad():
        ea, eb = a.encode(x), b.encode(x)
        assert torch.equal(ea.mu, eb.mu) and torch.equal(ea.logvar, eb.logvar)
        assert torch.equal(a.decode(z), b.decode(z))


def test_save_pretrained_round_trip(tmp_path):
    torch.manual_seed(1)
    model = VAE(SMALL)
    _settle_batchnorm(model, 24)
    model.save_pretrained(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file()
    assert json.loads((tmp_path / "m" / "config.json").read_text())["latent_dim"] == 8
    loaded = VAE.from_pretrained(tmp_path / "m")
    assert loaded.config == SMALL
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    _assert_same_function(model, loaded, 24, 8)
    # a fresh model of the same config does something else: the comparison above can fail
    other = VAE(SMALL)
    with torch.no_grad():
        x = torch.rand(2, 3, 24, 24)
        assert not torch.equal(other.eval().encode(x).mu, loaded.encode(x).mu)


def test_save_pretrained_round_trip_seed_preset_explicit(tmp_path):
    torch.manual_seed(2)
    model = VAE(ModelConfig())
    model.save_pretrained(tmp_path)
    loaded = VAE.from_pretrained(str(tmp_path))
    assert loaded.config == ModelConfig()
    _assert_same_function(model, loaded, 96, 256)


def test_save_pretrained_round_trip_default_constructor(tmp_path):
    model = VAE()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "config.json").is_file()
    loaded = VAE.from_pretrained(tmp_path)
    _assert_same_function(model, loaded, 96, 256)


def test_from_pretrained_wrong_shape(tmp_path):
    VAE(SMALL).save_pretrained(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["latent_dim"] = 16  # weights have 8
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UserError) as e:
        VAE.from_pretrained(tmp_path)
    assert "shape mismatch" in str(e.value) and "model.safetensors" in str(e.value)


def _drop_fc_mu_bias(state: dict) -> None:
    del state["fc_mu.bias"]


def _add_extra_tensor(state: dict) -> None:
    state["extra.weight"] = torch.zeros(2)


@pytest.mark.parametrize(
    "edit, says", [(_drop_fc_mu_bias, ["missing", "fc_mu.bias"]), (_add_extra_tensor, ["unexpected"])], ids=["missing-key", "unexpected-key"]
)
def test_from_pretrained_refuses_edited_weights(tmp_path, edit, says):
    VAE(SMALL).save_pretrained(tmp_path)
    state = load_file(str(tmp_path / "model.safetensors"))
    edit(state)
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError) as e:
        VAE.from_pretrained(tmp_path)
    assert all(word in str(e.value) for word in says), str(e.value)


def test_from_pretrained_bad_config(tmp_path):
    VAE(SMALL).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"image_size": 100, "num_layers": 3}))
    with pytest.raises(UserError) as e:
        VAE.from_pretrained(tmp_path)
    assert "config.json" in str(e.value) and "100" in str(e.value)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="JSON object"):
        VAE.from_pretrained(tmp_path)


def test_from_pretrained_missing_folder_or_files(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        VAE.from_pretrained(tmp_path)
    with pytest.raises(UserError, match="no such run folder"):
        VAE.from_pretrained(tmp_path / "not" / "there")


def test_run_folder_is_a_from_pretrained_target(tiny_run: Path):
    model = VAE.from_pretrained(tiny_run)
    assert model.config == ModelConfig()
    state = load_file(str(tiny_run / "model.safetensors"))
    own = model.state_dict()
    assert set(own) == set(state)
    for k, v in state.items():
        assert torch.equal(own[k], v), k
    # and a string path works the same
    again = VAE.from_pretrained(str(tiny_run))
    _assert_same_function(model, again, 96, 256)


# -- the seams: another encoder/decoder pair is one registered class -----------------------------------


class TinyDense(Architecture):
    """An encoder/decoder pair of plain linear layers: the smallest thing an architecture can be."""

    def encoder(self, c):
        return nn.Sequential(nn.Flatten(), nn.Linear(c.in_channels * c.image_size**2, 16), nn.ReLU(), nn.Unflatten(1, (16, 1, 1))), (16, 1, 1)

    def decoder(self, c, out_channels):
        return nn.Sequential(nn.Flatten(), nn.Linear(16, out_channels * c.image_size**2), nn.Unflatten(1, (out_channels, c.image_size, c.image_size)))


def test_a_registered_architecture_trains_saves_and_loads_like_the_seeds(tmp_path):
    register_architecture("test-dense")(TinyDense)
    try:
        cfg = ModelConfig(image_size=24, num_layers=3, latent_dim=5, arch="test-dense")
        model = VAE(cfg)
        assert not _convs(model) and model.bottom == (16, 1, 1)
        x = torch.rand(3, 3, 24, 24)
        out = model(x)
        assert out.logits.shape == (3, 3, 24, 24) and out.mu.shape == (3, 5)
        assert set(model.parts()) == {"encoder", "decoder"}
        model.save_pretrained(tmp_path)
        back = VAE.from_pretrained(tmp_path)
        assert back.config.arch == "test-dense"
        assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), back.state_dict().values()))
    finally:
        ARCHITECTURES.pop("test-dense")


def test_unknown_architecture_is_a_one_line_error(tmp_path):
    with pytest.raises(UserError, match="model arch 'resnet9' is not known; choose one of conv"):
        VAE(ModelConfig(arch="resnet9"))
    VAE(SMALL).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "arch": "resnet9"}))
    with pytest.raises(UserError, match="config.json: model arch 'resnet9' is not known"):
        VAE.from_pretrained(tmp_path)


def test_the_seed_keeps_its_state_dict_keys():
    keys = list(VAE(SMALL).state_dict())
    assert keys[:2] == ["encoder.0.0.weight", "encoder.0.0.bias"]
    assert [k for k in keys if k.startswith("fc_")] == [
        "fc_mu.weight",
        "fc_mu.bias",
        "fc_logvar.weight",
        "fc_logvar.bias",
        "fc_decode.weight",
        "fc_decode.bias",
    ]
    assert keys[-2:] == ["decoder.2.weight", "decoder.2.bias"]


# -- the spatial-latent variant ------------------------------------------------------------------------


def test_spatial_latent_is_a_flat_vector_of_a_6x6_map_and_round_trips(tmp_path):
    cfg = ModelConfig(arch="spatial", latent_dim=4 * 36, base_channels=8)
    model = VAE(cfg)
    assert model.bottom == (64, 6, 6) and model.latent_shape == (4, 6, 6)
    out = model(torch.rand(2, 3, 96, 96))
    assert out.mu.shape == out.z.shape == (2, 144) and out.logits.shape == (2, 3, 96, 96)
    assert out.posterior.kl().shape == (2,)
    _settle_batchnorm(model, 96)
    model.save_pretrained(tmp_path)
    back = VAE.from_pretrained(tmp_path)
    _assert_same_function(model, back, 96, 144)


def test_each_spatial_latent_cell_draws_its_own_patch():
    """A change in the top-left cell of the latent map changes the top-left of the face and leaves the
    bottom-right untouched (the seed's global latent changes every pixel)."""
    torch.manual_seed(0)
    for arch, dim, local in (("spatial", 2 * 36, True), ("conv", 72, False)):
        model = VAE(ModelConfig(arch=arch, latent_dim=dim, base_channels=4))
        _settle_batchnorm(model, 96)
        z = torch.randn(1, dim)
        moved = z.clone()
        if local:
            moved.view(1, 2, 6, 6)[:, :, 0, 0] += 3.0
        else:
            moved[:, 0] += 3.0
        with torch.no_grad():
            diff = (model.decode(moved) - model.decode(z)).abs()
        assert diff[..., :16, :16].amax() > 0
        assert (diff[..., 48:, 48:].amax() == 0) == local


def test_the_full_resolution_decoder_starts_as_its_plain_layers_and_folds_exactly(tmp_path):
    """spatialres: its residual blocks start as the identity (the zeroed last conv), it trains them (gradients reach
    the 96-px block), it round-trips through save/load, and folding its BatchNorms keeps the same function."""
    from animevae.models.vae import ResidualBlock

    torch.manual_seed(0)
    cfg = ModelConfig(arch="spatialres", latent_dim=2 * 36, base_channels=4)
    model = VAE(cfg)
    blocks = [m for m in model.decoder.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 2
    x = torch.randn(2, blocks[1].body[0].num_features, 12, 12)
    assert torch.equal(blocks[1](x), x)
    out = model(torch.rand(2, 3, 96, 96))
    assert out.logits.shape == (2, 3, 96, 96)
    out.logits.square().mean().backward()
    assert blocks[1].body[-1].weight.grad.abs().sum() > 0
    model.zero_grad()
    _settle_batchnorm(model, 96)
    with torch.no_grad():
        for block in blocks:  # as after training: blocks that do something
            block.body[-1].weight.normal_(0, 0.1)
    z = torch.randn(3, 72)
    with torch.no_grad():
        assert torch.allclose(model.decode(z), model.folded().decode(z), atol=1e-4)
    model.save_pretrained(tmp_path)
    _assert_same_function(model, VAE.from_pretrained(tmp_path), 96, 72)


def test_spatial_settings_that_cannot_work_are_one_line_errors():
    with pytest.raises(UserError, match=r"latent_dim 256 does not fill arch 'spatial'.s 6x6 latent map; use a multiple of 36"):
        VAE(ModelConfig(arch="spatial"))
    with pytest.raises(UserError, match=r"model arch 'spatial12' needs num_layers above 2 \(a larger --image-size\), got 2"):
        VAE(ModelConfig(arch="spatial12", image_size=12, num_layers=2, latent_dim=36))
