"""The CPU training kernels compute exactly the standard conv / transposed conv, forward and backward."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from animevae.config import ModelConfig
from animevae.models.fastconv import PATHS, Conv2d, ConvTranspose2d, _SubpixelConvTranspose
from animevae.models.vae import VAE


def _reference(layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    op = F.conv_transpose2d if isinstance(layer, nn.ConvTranspose2d) else F.conv2d
    return op(x, layer.weight, layer.bias, stride=2, padding=1)


def _grads(layer: nn.Module, x: torch.Tensor, out_grad_seed: int, use_reference: bool):
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    y = _reference(layer, x) if use_reference else layer(x)
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(out_grad_seed), dtype=y.dtype)
    (y * g).sum().backward()
    return y.detach(), x.grad, layer.weight.grad.clone(), layer.bias.grad.clone()


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("path", [p for p in PATHS if p != "subpixel"])
@pytest.mark.parametrize(
    "kind, cin, cout, size", [("conv", 8, 16, 6), ("conv", 3, 5, 10), ("conv", 4, 6, 7), ("transposed", 16, 8, 3), ("transposed", 5, 3, 5)]
)
def test_forward_and_all_gradients_match_the_standard_op(kind, cin, cout, size, path, channels_last):
    torch.manual_seed(0)
    layer = (Conv2d if kind == "conv" else ConvTranspose2d)(cin, cout, path).double()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    layer = layer.to(memory_format=fmt)
    x = torch.randn(4, cin, size, size, dtype=torch.float64).contiguous(memory_format=fmt)
    got = _grads(layer, x, 1, use_reference=False)
    want = _grads(layer, x, 1, use_reference=True)
    for name, a, b in zip(("output", "input grad", "weight grad", "bias grad"), got, want):
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-10), name
    if channels_last:  # the next layer gets channels-last activations
        assert got[0].is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("cls, path", [(Conv2d, p) for p in PATHS if p != "subpixel"] + [(ConvTranspose2d, p) for p in PATHS])
def test_under_bf16_autocast_like_the_native_layer(cls, path):
    """Autocast sees the same dtypes as with nn.Conv2d: bf16 compute, fp32 gradients for fp32 parameters."""
    torch.manual_seed(1)
    layer = cls(32, 64, path)
    native = (nn.Conv2d if cls is Conv2d else nn.ConvTranspose2d)(32, 64, 4, 2, 1)
    native.load_state_dict(layer.state_dict())
    x = torch.randn(8, 32, 6, 6)
    outs = []
    for m in (layer, native):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = m(xi)
        assert y.dtype == torch.bfloat16
        y.float().square().mean().backward()
        assert m.weight.grad.dtype == torch.float32 and xi.grad.dtype == torch.float32
        outs.append((y.float(), xi.grad, m.weight.grad, m.bias.grad))
    for a, b in zip(*outs):
        assert torch.allclose(a, b, atol=2e-2 * b.abs().max().item() + 1e-6, rtol=0.05)


def test_the_seed_model_uses_gemms_only_at_the_small_maps():
    model = VAE(ModelConfig())
    convs = [m for m in model.modules() if isinstance(m, (Conv2d, ConvTranspose2d))]
    assert len(convs) == 10
    assert [(m.in_channels, m.out_channels) for m in convs if m.path == "gemm"] == [(256, 512), (512, 256)]
    assert [(m.in_channels, m.out_channels) for m in convs if m.path == "gemm-weight-grad"] == [(128, 256), (256, 128)]
    assert [(m.in_channels, m.out_channels) for m in convs if m.path == "subpixel"] == [(32, 3)]


def test_unknown_path_refused():
    with pytest.raises(ValueError, match="path must be one of"):
        Conv2d(3, 4, "fast")


def test_cuda_style_inference_path_is_native_outside_the_bottleneck():
    """No grad and not the bottleneck: the plain nn.Conv2d forward runs (same values, no custom graph)."""
    layer = Conv2d(4, 8)
    with torch.no_grad():
        y = layer(torch.randn(2, 4, 8, 8))
    assert y.grad_fn is None and y.shape == (2, 8, 4, 4)


def test_folded_model_is_the_same_function_in_eval_mode():
    torch.manual_seed(2)
    model = VAE(ModelConfig(image_size=24, num_layers=3, latent_dim=8, base_channels=8))
    model.train()
    for _ in range(3):  # give BatchNorm running statistics that are not the identity
        model(torch.rand(16, 3, 24, 24))
    model.eval()
    folded = model.folded()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules()), "folding must not touch the original"
    x = torch.rand(4, 3, 24, 24)
    with torch.no_grad():
        a, b = model.encode(x), folded.encode(x)
        assert torch.allclose(a.mu, b.mu, atol=1e-5) and torch.allclose(a.logvar, b.logvar, atol=1e-5)
        assert torch.allclose(model.decode(a.mu), folded.decode(a.mu), atol=1e-4)


@pytest.mark.parametrize("cin, cout, size", [(8, 3, 5), (5, 6, 4), (16, 2, 7)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_subpixel_transposed_conv_matches_the_standard_op(cin, cout, size, channels_last):
    """The 3x3 conv + pixel shuffle forward is the transposed conv (in float64: to rounding), gradients too."""
    torch.manual_seed(2)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(3, cin, size, size, dtype=torch.float64).contiguous(memory_format=fmt)
    w = torch.randn(cin, cout, 4, 4, dtype=torch.float64)
    b = torch.randn(cout, dtype=torch.float64)
    g = torch.randn(3, cout, 2 * size, 2 * size, dtype=torch.float64)
    results = []
    for op in (_SubpixelConvTranspose.apply, lambda x, w, b: F.conv_transpose2d(x, w, b, 2, 1)):
        xi, wi, bi = (t.clone().requires_grad_() for t in (x, w, b))
        y = op(xi, wi, bi)
        (y * g).sum().backward()
        results.append((y.detach(), xi.grad, wi.grad, bi.grad))
        if channels_last and op is _SubpixelConvTranspose.apply:
            assert y.is_contiguous(memory_format=torch.channels_last)
    for name, a, b in zip(("output", "input grad", "weight grad", "bias grad"), *results):
        assert a.shape == b.shape, name
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-10), name


def test_subpixel_path_under_bf16_only():
    """Under bf16 autocast the layer takes the sub-pixel forward (close to oneDNN's, not bit-equal);
    in fp32 it is the plain transposed conv bit for bit (the golden test's path)."""
    torch.manual_seed(3)
    layer = ConvTranspose2d(32, 3, "subpixel")
    x = torch.randn(4, 32, 12, 12).requires_grad_()
    want = F.conv_transpose2d(x, layer.weight, layer.bias, 2, 1)
    assert torch.equal(layer(x), want)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = layer(x)
        native = F.conv_transpose2d(x, layer.weight, layer.bias, 2, 1)
    assert got.dtype == torch.bfloat16 and got.grad_fn.name().startswith("_SubpixelConvTranspose")
    assert torch.allclose(got.float(), native.float(), atol=0.05, rtol=0.02)
    with pytest.raises(ValueError, match="ConvTranspose2d only"):
        Conv2d(3, 4, "subpixel")
