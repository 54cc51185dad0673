"""Linear layers as 1x1 convolutions (fashiondiff.fastlinear): the same function, gradients, weights and FLOPs;
and the malloc settings a training command asks for on the CPU (runs.speed_up)."""

import copy
import platform

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from fashiondiff.devices import keep_freed_memory
from fashiondiff.fastlinear import MIN_ROWS, ConvLinear, conv_linears_are_faster, linear_as_conv, use_conv_linears
from fashiondiff.training import TrainConfig, train
from fashiondiff.transformer import TransformerDenoiser


@pytest.mark.parametrize("shape", [(37, 24), (3, 64, 24)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_as_conv_equals_linear_with_its_gradients(shape, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g, requires_grad=True)
    w = torch.randn(40, 24, generator=g, requires_grad=True)
    b = torch.randn(40, generator=g, requires_grad=True) if bias else None
    grad = torch.randn(*shape[:-1], 40, generator=g)
    outs = []
    for f in (F.linear, linear_as_conv):
        y = f(x, w, b)
        params = [x, w] + ([b] if bias else [])
        outs.append([y, *torch.autograd.grad(y, params, grad)])
    for a, c in zip(*outs):
        torch.testing.assert_close(c, a, rtol=1e-5, atol=1e-4)
    assert outs[1][0].is_contiguous()


def test_linear_as_conv_gradcheck_in_float64():
    g = torch.Generator().manual_seed(1)
    x, w, b = (torch.randn(*s, generator=g, dtype=torch.float64, requires_grad=True) for s in ((2, 5, 4), (3, 4), (3,)))
    assert torch.autograd.gradcheck(linear_as_conv, (x, w, b))
    assert linear_as_conv(torch.randn(0, 4), torch.randn(3, 4)).shape == (0, 3)        # an empty batch


def test_the_flop_counter_sees_the_same_products_as_for_linear():
    x, w = torch.randn(10, 8, requires_grad=True), torch.randn(6, 8, requires_grad=True)
    counts = []
    for f in (F.linear, linear_as_conv):
        with FlopCounterMode(display=False) as counter:
            f(x, w).sum().backward()
        counts.append(counter.get_total_flops())
    assert counts == [3 * 2 * 10 * 8 * 6] * 2           # forward, grad_x and grad_W: 2 M in out each


def test_use_conv_linears_keeps_the_weights_and_the_function():
    torch.manual_seed(0)
    model = TransformerDenoiser(dim=32, heads=2, layers=2, ff_dim=64)
    for p in model.parameters():                        # adaLN-Zero starts at zero: give every layer a say
        nn.init.normal_(p, std=0.1)
    x, t, y = torch.randn(16, 1, 16, 16), torch.arange(16) % 10 + 1, torch.arange(16) % 11    # 1,024 token rows
    before, state = model(x, t, y), copy.deepcopy(model.state_dict())
    n_linear = sum(type(m) is nn.Linear for m in model.modules())
    use_conv_linears(model)
    assert all(type(m) is not nn.Linear for m in model.modules())
    assert sum(isinstance(m, ConvLinear) for m in model.modules()) == n_linear == 2 * 5 + 4   # 5 a block, 4 outside
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    torch.testing.assert_close(model(x, t, y), before, rtol=1e-4, atol=1e-5)
    use_conv_linears(model, on=False)
    assert not any(isinstance(m, ConvLinear) for m in model.modules())
    assert torch.equal(model(x, t, y), before)


def test_conv_linear_leaves_small_inputs_to_f_linear():
    layer = ConvLinear(16, 8)
    small, large = torch.randn(MIN_ROWS - 1, 16), torch.randn(2, MIN_ROWS, 16)
    assert torch.equal(layer(small), F.linear(small, layer.weight, layer.bias))
    torch.testing.assert_close(layer(large), F.linear(large, layer.weight, layer.bias))


def test_compiled_conv_linear_matches_eager():
    torch.manual_seed(0)
    layer = ConvLinear(16, 8)
    x = torch.randn(5, 128, 16, requires_grad=True)                  # 640 rows: the convolution
    eager = layer(x)
    (gx,) = torch.autograd.grad(eager.square().sum(), x)
    compiled = torch.compile(layer)(x)
    (cgx,) = torch.autograd.grad(compiled.square().sum(), x)
    torch.testing.assert_close(compiled, eager)
    torch.testing.assert_close(cgx, gx)


def test_train_leaves_the_callers_layers_and_random_state_alone_and_the_run_switches_them(monkeypatch):
    """train() changes the parameters only; the training command's speed_up() is what switches the layers."""
    from fashiondiff.devices import pick_device
    import fashiondiff.runs as runs
    from fashiondiff.runs import speed_up
    assert not conv_linears_are_faster("cuda") and not conv_linears_are_faster("meta")
    data = torch.randn(64, 8)

    def loss_fn(model, idx, gen):
        return (model(data[idx]) - data[idx].flip(-1)).square().mean()

    model = nn.Sequential(nn.Linear(8, 16), nn.GELU(), nn.Linear(16, 8))
    before = [p.clone() for p in model.parameters()]
    torch.manual_seed(123)
    state = torch.get_rng_state()
    res = train(model, loss_fn, 64, TrainConfig(max_steps=3, batch_size=16, warmup_steps=1), progress=False)
    assert type(model[0]) is nn.Linear and type(res.ema[2]) is nn.Linear
    assert torch.equal(torch.get_rng_state(), state)                  # the caller's random stream goes on as before
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    outputs = model(data)
    for faster in (True, False):                                      # what the processor check says, both ways
        monkeypatch.setattr(runs, "conv_linears_are_faster", lambda device: faster)
        speed_up(model, pick_device("cpu"))
        assert [type(model[i]) for i in (0, 2)] == [ConvLinear if faster else nn.Linear] * 2
        torch.testing.assert_close(model(data), outputs)              # the same function either way


def test_the_custom_operators_pass_torch_opcheck():
    """Registration, fake (shape-only) versions and autograd agree with the real operators (torch.library.opcheck)."""
    from fashiondiff.fastlinear import _as_image, _conv1x1, _conv1x1_backward
    image, grad = _as_image(torch.randn(10, 8)), _as_image(torch.randn(10, 6))
    for bias in (torch.randn(6), None):
        torch.library.opcheck(_conv1x1, (image, torch.randn(6, 8), bias))
    torch.library.opcheck(_conv1x1_backward, (grad, image, torch.randn(6, 8)))


@pytest.mark.parametrize("machine,capability,mkldnn,faster", [
    ("x86_64", "AVX512", True, True), ("AMD64", "AVX512_BF16", True, True), ("x86_64", "AVX2", True, False),
    ("x86_64", "AVX512", False, False), ("aarch64", "NO AVX", True, False)])
def test_conv_linears_are_faster_on_an_x86_cpu_with_avx512_and_onednn_only(monkeypatch, machine, capability, mkldnn,
                                                                            faster):
    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: mkldnn)
    assert conv_linears_are_faster("cpu") is faster and conv_linears_are_faster(torch.device("cpu")) is faster


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_malloc_takes_the_settings_that_keep_freed_memory():
    assert keep_freed_memory() and keep_freed_memory()          # accepted, and again (every training command calls it)
