"""Linear layers computed as 1x1 convolutions, so that PyTorch runs them with oneDNN instead of MKL.

On the CPU, ``F.linear`` calls MKL's sgemm, which on some x86 processors with AVX-512 (AMD's among them) runs
narrower kernels than the processor allows, while a convolution goes to oneDNN, which picks its kernels by the
instruction set alone (the README's benchmarks give both speeds). A linear layer is a 1x1 convolution over a
sequence of tokens, so we can send it there:

    y = x W^T + b,  x (M, in)  ==  conv2d(x seen as a (1, in, M, 1) image, W as (out, in, 1, 1) kernels)

and seeing it so costs nothing: a row-major (M, in) matrix *is* a channels-last (1, in, M, 1) image, the layout
oneDNN prefers, and the output comes back channels-last, i.e. as a row-major (M, out) matrix. The backward pass
is the convolution's backward (grad_x = grad_y W, grad_W = grad_y^T x, grad_b = sum of grad_y), also oneDNN.
``benchmarks/train_throughput.py --linear both`` measures what it gains for a whole training step.

Both passes are registered as custom operators (``torch.library.custom_op``), so that ``torch.compile`` calls them
as they are instead of re-deriving the convolution with its own, here slower, choice of memory layout.

``use_conv_linears(model)`` switches every ``nn.Linear`` of a model to ``ConvLinear`` in place: the class changes,
the parameters and the ``state_dict`` stay as they are, so checkpoints and weights files do not notice. A
``ConvLinear`` given fewer than ``MIN_ROWS`` rows (a classifier head on a batch of 128, say) calls ``F.linear``, which
is the faster of the two at such sizes, and so does one under bf16 autocast (``fashiondiff.precision``), where
``F.linear`` is already a oneDNN product.
"""

from __future__ import annotations

import platform

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import register_flop_formula


def _as_image(rows: Tensor) -> Tensor:
    """(M, C) row-major -> (1, C, M, 1) channels-last: the same memory, no copy."""
    return rows.reshape(1, -1, 1, rows.shape[-1]).permute(0, 3, 1, 2)


def _as_rows(image: Tensor) -> Tensor:
    """(1, C, M, 1) channels-last -> (M, C) row-major: the same memory, no copy."""
    return image.permute(0, 2, 3, 1).reshape(-1, image.shape[1])


def _empty_image(channels: int, m: int, like: Tensor) -> Tensor:
    """An empty (1, channels, m, 1) channels-last tensor: what the operators below return (for torch.compile)."""
    return torch.empty(m, channels, dtype=like.dtype, device=like.device).t()[None, :, :, None]


@torch.library.custom_op("fashiondiff::conv1x1", mutates_args=())
def _conv1x1(image: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """(1, in, M, 1) channels-last, (out, in), (out,) -> (1, out, M, 1) channels-last."""
    return F.conv2d(image.contiguous(memory_format=torch.channels_last), weight[:, :, None, None], bias)


@_conv1x1.register_fake
def _(image, weight, bias):
    return _empty_image(weight.shape[0], image.shape[2], image)


@torch.library.custom_op("fashiondiff::conv1x1_backward", mutates_args=())
def _conv1x1_backward(grad: Tensor, image: Tensor, weight: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradient (1, out, M, 1) of the output -> gradients of the image (1, in, M, 1), the weight (out, in, 1, 1)
    and the bias (out,): grad_x = grad_y W, grad_W = grad_y^T x, grad_b = the sum of grad_y over M."""
    cl = torch.channels_last
    return torch.ops.aten.convolution_backward(
        grad.contiguous(memory_format=cl), image.contiguous(memory_format=cl), weight[:, :, None, None],
        [weight.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [True, True, True])  # stride, padding, dilation


@_conv1x1_backward.register_fake
def _(grad, image, weight):
    return (_empty_image(image.shape[1], image.shape[2], image), weight.new_empty(*weight.shape, 1, 1),
            weight.new_empty(weight.shape[0]))


def _setup_context(ctx, inputs, output):
    image, weight, bias = inputs
    ctx.save_for_backward(image, weight)
    ctx.has_bias = bias is not None


def _backward(ctx, grad):
    image, weight = ctx.saved_tensors
    grad_image, grad_w, grad_b = _conv1x1_backward(grad, image, weight)
    return grad_image, grad_w.reshape(weight.shape), grad_b if ctx.has_bias else None


_conv1x1.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.fashiondiff.conv1x1)
def _forward_flops(image_shape, w_shape, *args, **kwargs) -> int:
    return 2 * image_shape[2] * w_shape[1] * w_shape[0]             # as for F.linear: 2 M in out


@register_flop_formula(torch.ops.fashiondiff.conv1x1_backward)
def _backward_flops(grad_shape, image_shape, w_shape, *args, **kwargs) -> int:
    return 4 * image_shape[2] * w_shape[1] * w_shape[0]             # grad_x and grad_W: 2 M in out each


def linear_as_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """(..., in) -> (..., out), the same as ``F.linear(x, weight, bias)``, computed by a 1x1 convolution."""
    *lead, n_in = x.shape
    if x.numel() == 0:
        return F.linear(x, weight, bias)
    image = _as_image(x.reshape(-1, n_in))                           # (1, in, M, 1)
    return _as_rows(_conv1x1(image, weight, bias)).reshape(*lead, weight.shape[0])   # (..., out)


MIN_ROWS = 512      # below this many rows the convolution's fixed cost outweighs its faster kernel: F.linear stays


class ConvLinear(nn.Linear):
    """``nn.Linear`` whose forward is ``linear_as_conv`` for inputs of at least ``MIN_ROWS`` rows (all dimensions but
    the last), ``F.linear`` for smaller ones: the same parameters, state_dict and results."""

    def forward(self, x: Tensor) -> Tensor:
        # under bf16 autocast F.linear is itself a oneDNN product, in bf16 (the custom operator would see fp32
        # weights next to bf16 activations): the faster of the two wherever "auto" picks bf16
        if x.numel() < MIN_ROWS * x.shape[-1] or torch.is_autocast_enabled(x.device.type):
            return F.linear(x, self.weight, self.bias)
        return linear_as_conv(x, self.weight, self.bias)


def conv_linears_are_faster(device: torch.device | str) -> bool:
    """True where ``use_conv_linears`` is expected to speed up training on ``device``: an x86 CPU with AVX-512 and
    oneDNN. (On Intel processors MKL has AVX-512 kernels of its own, so the gain there should be small. On ARM and
    on GPUs the plain ``F.linear`` stays.)"""
    return (torch.device(device).type == "cpu" and torch.backends.mkldnn.is_available()
            and platform.machine().lower() in ("x86_64", "amd64")
            and torch.backends.cpu.get_cpu_capability().startswith("AVX512"))


def use_conv_linears(model: nn.Module, on: bool = True) -> nn.Module:
    """Make every ``nn.Linear`` in ``model`` a ``ConvLinear`` (``on=False``: back to ``nn.Linear``); in place,
    returns ``model``."""
    for module in model.modules():
        if type(module) in (nn.Linear, ConvLinear):
            module.__class__ = ConvLinear if on else nn.Linear
    return model
