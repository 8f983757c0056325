"""The seed's 4x4 stride-2 conv and transposed conv, trained faster on the CPU. Same parameters, same maths.

Measured at batch 128 in bf16 on a 2-core AMX CPU (oneDNN in torch 2.13), forward + backward:

* ``nn.ConvTranspose2d``'s backward asks oneDNN for the weight and bias gradients together, and
  that primitive runs 3-5x slower than the weight gradient alone (16 ms vs 3.4 ms at 64->32, 24->48).
  Here the bias gradient is a plain sum instead: the decoder's four wide layers save ~35 ms a step.
* At the 3x3 bottleneck (256 <-> 512 channels, 6x6 <-> 3x3) oneDNN's kernels run at a tenth of the
  matmul rate (~65 ms each). There, both layers are one channels-last im2col + one GEMM each way (~17 ms).
* At the 6x6 maps (128 <-> 256 channels) oneDNN's weight gradient runs at a fifth of the matmul rate;
  there only the weight gradient is one GEMM (4.9 -> 2.5 ms each at batch 64).

* A transposed conv to 3 channels (the decoder's last layer, 32 -> 3 at 48 -> 96) runs at an eighth of
  the matmul rate in oneDNN's forward (10 ms at batch 64). The same map is one 3x3 conv to 4 x 3 channels
  (each output phase of the stride-2 map reads a 2x2 window of the input) followed by a pixel shuffle:
  5.5 ms. Its backward stays oneDNN's transposed-conv backward (the gradients are the layer's own).
  Only under bf16 autocast: the fp32 path keeps its exact numerics.

The bottleneck GEMMs also serve CPU inference (the latents pass, sampling: per 128 images the
encoder's last conv 12.0 -> 7.0 ms, the decoder's first 16.5 -> 4.0 ms); everything else at
inference, and all of CUDA, takes the ordinary native kernels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

KERNEL, STRIDE, PAD = 4, 2, 1


def _autocast_args(x: torch.Tensor, *params: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What autocast would hand a conv: everything in the autocast dtype (casts stay differentiable)."""
    if not torch.is_autocast_enabled(x.device.type):
        return (x, *params)
    dtype = torch.get_autocast_dtype(x.device.type)
    return tuple(t.to(dtype) for t in (x, *params))


def _nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1)


def _im2col(t: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """Patches of an N x C x H x W tensor, zero-padded by 1: (N * out_h * out_w) x (ky, kx, C), one copy
    (a strided view of the padded channels-last data, then a reshape)."""
    padded = F.pad(_nhwc(t), (0, 0, PAD, PAD, PAD, PAD)).contiguous()
    n, _, _, c = padded.shape
    s_n, s_h, s_w, _ = padded.stride()
    view = padded.as_strided((n, out_h, out_w, KERNEL, KERNEL, c), (s_n, STRIDE * s_h, STRIDE * s_w, s_h, s_w, 1))
    return view.reshape(n * out_h * out_w, KERNEL * KERNEL * c)


def _conv_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
    """d loss / d weight of conv2d 4/2/1 as one GEMM: grad_out^T @ im2col(x)."""
    cols = _im2col(x, *grad_out.shape[2:]) if cols is None else cols
    g = _nhwc(grad_out).reshape(-1, grad_out.shape[1])
    return (g.t() @ cols).view(-1, KERNEL, KERNEL, x.shape[1]).permute(0, 3, 1, 2)


def _conv_transpose_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, cols: torch.Tensor | None = None) -> torch.Tensor:
    """d loss / d weight of conv_transpose2d 4/2/1 as one GEMM: x^T @ im2col(grad_out)."""
    cols = _im2col(grad_out, *x.shape[2:]) if cols is None else cols
    x_mat = _nhwc(x).reshape(-1, x.shape[1])
    return (x_mat.t() @ cols).view(-1, KERNEL, KERNEL, grad_out.shape[1]).permute(0, 3, 1, 2)


def _col2im(cols: torch.Tensor, n: int, h: int, w: int, c: int) -> torch.Tensor:
    """col2im, the adjoint of ``_im2col``: sums (N*h*w) x (4*4*C) patches into N x (2h+2) x (2w+2) x C.

    Tap (ky, kx) = (2a + p, 2b + q) lands on rows 2(i + a) + p, columns 2(j + b) + q: four shifted adds.
    """
    taps = cols.view(n, h, w, 2, STRIDE, 2, STRIDE, c)
    out = cols.new_zeros(n, h + 1, STRIDE, w + 1, STRIDE, c)
    for a in range(2):
        for b in range(2):
            out[:, a : a + h, :, b : b + w] += taps[:, :, :, a, :, b].permute(0, 1, 3, 2, 4, 5)
    return out.view(n, STRIDE * h + 2, STRIDE * w + 2, c)


class _Conv(torch.autograd.Function):
    """conv2d (or conv_transpose2d) with the bias gradient taken apart from oneDNN's weight gradient,
    and optionally the weight gradient as im2col + GEMM (``gemm_weight_grad``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, transposed: bool, gemm_weight_grad: bool):
        ctx.save_for_backward(x, weight)
        ctx.transposed, ctx.gemm_weight_grad = transposed, gemm_weight_grad
        return (F.conv_transpose2d if transposed else F.conv2d)(x, weight, bias, STRIDE, PAD)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b, _, _ = ctx.needs_input_grad
        native_w = need_w and not ctx.gemm_weight_grad
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_out, x, weight, None, [STRIDE] * 2, [PAD] * 2, [1, 1], ctx.transposed, [0, 0], 1, [need_x, native_w, False]
        )
        if need_w and ctx.gemm_weight_grad:
            grad_w = (_conv_transpose_weight_grad if ctx.transposed else _conv_weight_grad)(x, grad_out)
        return grad_x, grad_w, grad_out.sum((0, 2, 3)) if need_b else None, None, None


class _BottleneckConv(torch.autograd.Function):
    """conv2d 4/2/1 as im2col + GEMM, channels-last (for the tiny 6x6 -> 3x3 map)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        n, c, h, w = x.shape
        oh, ow = h // STRIDE, w // STRIDE
        cols = _im2col(x, oh, ow)
        w_mat = _nhwc(weight).reshape(weight.shape[0], -1)  # Cout x (ky, kx, Cin)
        ctx.save_for_backward(x, cols, w_mat)
        y = torch.addmm(bias, cols, w_mat.t())
        return y.view(n, oh, ow, -1).permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad_out):
        x, cols, w_mat = ctx.saved_tensors
        n, c, h, w = x.shape
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            g = _nhwc(grad_out).reshape(-1, grad_out.shape[1])
            padded = _col2im(g @ w_mat, n, h // STRIDE, w // STRIDE, c)
            grad_x = padded[:, PAD : PAD + h, PAD : PAD + w].permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_w = _conv_weight_grad(x, grad_out, cols)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


class _BottleneckConvTranspose(torch.autograd.Function):
    """conv_transpose2d 4/2/1 as GEMM + col2im, channels-last (for the tiny 3x3 -> 6x6 map)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        n, c, h, w = x.shape
        w_mat = _nhwc(weight).reshape(c, -1)  # Cin x (ky, kx, Cout)
        ctx.save_for_backward(x, w_mat)
        padded = _col2im(_nhwc(x).reshape(n * h * w, c) @ w_mat, n, h, w, weight.shape[1])
        y = padded[:, PAD : PAD + STRIDE * h, PAD : PAD + STRIDE * w] + bias
        return y.permute(0, 3, 1, 2)

    @staticmethod
    def backward(ctx, grad_out):
        x, w_mat = ctx.saved_tensors
        n, _, h, w = x.shape
        cols = _im2col(grad_out, h, w)  # (N*h*w) x (ky, kx, Cout)
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = (cols @ w_mat.t()).view(n, h, w, -1).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[1]:
            grad_w = _conv_transpose_weight_grad(x, grad_out, cols)
        if ctx.needs_input_grad[2]:
            grad_b = grad_out.sum((0, 2, 3))
        return grad_x, grad_w, grad_b


def _subpixel_taps() -> torch.Tensor:
    """For output phase (p, q) and 3x3 position (dy, dx): the index ky * 4 + kx of the transposed conv's tap it
    reads, ky = p + 3 - 2 dy (likewise kx), or 16 (a zero) where that falls outside 0..3."""
    taps = torch.full((2, 2, 3, 3), KERNEL * KERNEL, dtype=torch.long)
    for p in range(2):
        for q in range(2):
            for dy in range(3):
                for dx in range(3):
                    ky, kx = p + 3 - 2 * dy, q + 3 - 2 * dx
                    if 0 <= ky < KERNEL and 0 <= kx < KERNEL:
                        taps[p, q, dy, dx] = ky * KERNEL + kx
    return taps.flatten()


SUBPIXEL_TAPS = _subpixel_taps()


def subpixel_weight(weight: torch.Tensor) -> torch.Tensor:
    """The 3x3 kernel (4 * Cout) x Cin x 3 x 3 whose conv (stride 1, padding 1) followed by ``pixel_shuffle(2)``
    equals conv_transpose2d 4/2/1 with ``weight`` (Cin x Cout x 4 x 4): output pixel (2i + p, 2j + q) reads
    input row i + dy - 1 through tap ky = p + 3 - 2 dy (and likewise for columns)."""
    cin, cout = weight.shape[:2]
    flat = torch.cat([weight.flatten(2), weight.new_zeros(cin, cout, 1)], 2)  # Cin x Cout x 17: tap 16 is zero
    k = flat[:, :, SUBPIXEL_TAPS.to(weight.device)].view(cin, cout, 4, 3, 3)
    return k.permute(1, 2, 0, 3, 4).reshape(cout * 4, cin, 3, 3)


class _SubpixelConvTranspose(torch.autograd.Function):
    """conv_transpose2d 4/2/1: forward as a 3x3 conv to 4 x Cout channels + pixel shuffle, backward oneDNN's own."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        y = F.pixel_shuffle(F.conv2d(x, subpixel_weight(weight), bias.repeat_interleave(4), 1, 1), 2)
        return y.contiguous(memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x, grad_w, _ = torch.ops.aten.convolution_backward(
            grad_out, x, weight, None, [STRIDE] * 2, [PAD] * 2, [1, 1], True, [0, 0], 1, [need_x, need_w, False]
        )
        return grad_x, grad_w, grad_out.sum((0, 2, 3)) if need_b else None


PATHS = ("native", "gemm-weight-grad", "gemm", "subpixel")


def _native(x: torch.Tensor, path: str) -> bool:
    """CUDA, and inference outside the bottleneck, keep the ordinary kernels."""
    return x.device.type != "cpu" or not (path == "gemm" or torch.is_grad_enabled())


def _checked(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {PATHS}, got {path!r}")
    return path


class Conv2d(nn.Conv2d):
    """``nn.Conv2d(cin, cout, 4, 2, 1)`` with the faster CPU training path.

    ``path``: "native" (oneDNN, bias gradient apart), "gemm-weight-grad" (also the weight gradient as
    one GEMM) or "gemm" (im2col + GEMM throughout, also at inference).
    """

    def __init__(self, in_channels: int, out_channels: int, path: str = "native"):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, PAD)
        if path == "subpixel":
            raise ValueError("path 'subpixel' is for ConvTranspose2d only")
        self.path = _checked(path)

    def forward(self, x):
        if _native(x, self.path):
            return super().forward(x)
        args = _autocast_args(x, self.weight, self.bias)
        return _BottleneckConv.apply(*args) if self.path == "gemm" else _Conv.apply(*args, False, self.path == "gemm-weight-grad")


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d(cin, cout, 4, 2, 1)`` with the faster CPU training path (``path`` as for Conv2d, or
    "subpixel": the forward as a 3x3 conv + pixel shuffle under low-precision autocast, else "native")."""

    def __init__(self, in_channels: int, out_channels: int, path: str = "native"):
        super().__init__(in_channels, out_channels, KERNEL, STRIDE, PAD)
        self.path = _checked(path)

    def forward(self, x, output_size=None):
        if _native(x, self.path) or output_size is not None:
            return super().forward(x, output_size)
        args = _autocast_args(x, self.weight, self.bias)
        if self.path == "subpixel" and torch.is_autocast_enabled(x.device.type):
            return _SubpixelConvTranspose.apply(*args)
        return _BottleneckConvTranspose.apply(*args) if self.path == "gemm" else _Conv.apply(*args, True, self.path == "gemm-weight-grad")
