"""Mixed precision: matrix products in bfloat16 where the processor is faster at them, everything else in fp32.

bf16 keeps fp32's 8 exponent bits and only 7 of its 23 mantissa bits: the same range (no overflow, no loss scaling
as fp16 needs), about 2 to 3 significant decimal digits. Processors with bf16 units (Intel's AMX and AVX512-BF16,
AMD's Zen 4, recent GPUs) multiply bf16 matrices several times faster than fp32 ones. ``torch.autocast`` runs
matrix products and convolutions in bf16, the operations on its fp32 list (the losses among them) in fp32, and lets
the rest follow their inputs (on the CPU softmax and LayerNorm take and give bf16, summing in fp32 inside). The
weights, their gradients, the optimizer state and the EMA stay fp32, because an update of 1e-4 relative to a weight
is below bf16's resolution (2^-8) and would be lost.

    precision   "fp32" (autocast off), "bf16" (autocast to bfloat16), or "auto": bf16 where a short measurement
                (``bf16_is_faster`` on what the caller will run: a training step, a one-step sample, or by
                default a product of the course's sizes) finds it faster in bf16 on this device, else fp32

``autocast(precision, device)`` is the context to run a forward pass in; ``resolve`` turns "auto" into one of the
other two. Notebook 18 (the appendix) measures the products and a whole training step on the learner's machine.
"""

from __future__ import annotations

import contextlib
import time

import torch
import torch.nn.functional as F

PRECISIONS = ("fp32", "bf16", "auto")
BF16_DEVICES = ("cpu", "cuda")       # where torch.autocast takes bfloat16 (mps keeps fp32 here)
SPEED_UP_NEEDED = 1.3                # "auto" takes bf16 only when its product is at least this much faster
PROBE = (8192, 128, 384)             # (rows, in, out): a linear layer of the pixel transformer on a batch of 128

_measured: dict[str, bool] = {}      # device type -> bf16_is_faster, measured once per process


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def bf16_supported(device: torch.device | str) -> bool:
    """Whether autocast to bf16 can run on ``device`` at all: a CUDA GPU that has bf16, or a CPU with oneDNN's bf16
    support (``torch.ops.mkldnn._is_mkldnn_bf16_supported``: AVX-512 or newer; it may still be emulated, and slow,
    where the processor has no bf16 instructions, which is why "auto" measures)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return False


def seconds(run, device: torch.device | str, bf16: bool, repeats: int = 3) -> float:
    """The best of ``repeats`` timings of ``run()`` under autocast to bf16 (``bf16``) or in fp32, after one call
    that warms up (oneDNN picks its kernels on the first call of each shape)."""
    device = torch.device(device)
    best = float("inf")
    with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(repeats + 1):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            run()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i:
                best = min(best, time.perf_counter() - start)
    return best


def product(device: torch.device | str, shape: tuple[int, int, int] = PROBE):
    """A zero-argument function computing one (rows, in) x (in, out) product as a linear layer does."""
    rows, n_in, n_out = shape
    x, w = torch.randn(rows, n_in, device=device), torch.randn(n_out, n_in, device=device)
    return lambda: F.linear(x, w)


def bf16_is_faster(device: torch.device | str, run=None) -> bool:
    """Whether ``run()`` (default: ``product``, a product of the course's sizes) runs at least ``SPEED_UP_NEEDED``
    times faster under bf16 autocast than in fp32 on ``device``: two interleaved rounds of ``seconds`` (3 timed
    calls each for the product, 1 for a given ``run``, after a warm-up call). What the caller will run is the better
    probe: a convolution network may be slower in bf16 where products are faster, and a compiled training step may
    gain where an eager forward pass does not (``training._precision``). The default probe is measured once per
    process and device type. False where bf16 is not supported."""
    device = torch.device(device)
    if not bf16_supported(device):
        return False
    if run is None and device.type in _measured:
        return _measured[device.type]
    probe, repeats = (run, 1) if run is not None else (product(device), 3)   # a model's probe takes longer
    fp32, bf16 = [], []
    for _ in range(2):                                     # interleaved: both see the same state of a shared host
        fp32.append(seconds(probe, device, bf16=False, repeats=repeats))
        bf16.append(seconds(probe, device, bf16=True, repeats=repeats))
    faster = min(fp32) >= SPEED_UP_NEEDED * min(bf16)
    if run is None:
        _measured[device.type] = faster
    return faster


def resolve(precision: str, device: torch.device | str, run=None) -> str:
    """"fp32" or "bf16": ``precision`` itself, or for "auto" the measured choice (``bf16_is_faster`` with the probe
    ``run``). Asking for bf16 where it cannot run raises ``ValueError``."""
    device = torch.device(device)
    if check_precision(precision) == "auto":
        return "bf16" if bf16_is_faster(device, run) else "fp32"
    if precision == "bf16" and not bf16_supported(device):
        raise ValueError(f"bf16 is not supported on this {device.type} (use fp32 or auto)")
    return precision


def autocast(precision: str, device: torch.device | str):
    """The context to run a forward pass in at ``precision`` ("fp32", "bf16", or "auto" with the default probe):
    ``torch.autocast`` to bfloat16, or nothing for fp32. Backward passes and optimizer steps go outside it
    (PyTorch's advice)."""
    device = torch.device(device)
    if resolve(precision, device) == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
