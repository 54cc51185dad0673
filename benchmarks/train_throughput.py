"""Training throughput of every model in the course at its default batch size (images/s), with peak memory.

    python benchmarks/train_throughput.py [--model all|classifier|transformer|...] [--steps 30] [--repeats 3]
                                          [--compile default|on|off] [--linear auto|aten|conv|both]
                                          [--precision default|fp32|bf16|auto|both] [--device auto]

Each model's recipe (``fashiondiff.recipes``) builds the model, its data and its loss, and
``fashiondiff.training.train`` itself is timed ``--repeats`` times for ``--steps`` steps after a 5-step warm-up
(forward, backward, gradient clipping, AdamW, EMA), and the median is reported with the range. A model whose config
chooses its attention (such as the pixel transformer) is measured twice, with linear and with softmax attention.
With ``--model all`` (the default) every recipe in ``fashiondiff.recipes.RECIPES`` is measured, each in its own
process, so that each one's peak memory is its own.

``--linear`` picks how linear layers run: ``aten`` is ``F.linear`` (MKL's sgemm on x86 CPUs), ``conv`` is
``fashiondiff.fastlinear`` (1x1 convolutions, oneDNN), ``auto`` (the default) what the training command picks on this
machine (``fashiondiff.runs.speed_up``, which also tunes malloc on a CPU, as it does here for every choice),
``both`` the first two in one process, their timed rounds interleaved: the fair comparison on a host whose speed drifts.
``--precision`` picks the forward pass's precision (``fashiondiff.precision``): ``default`` is the recipe's, ``both``
measures fp32 and bf16 side by side, interleaved in the same way (with ``--linear both`` as well: every pair). Under
bf16 a ``ConvLinear`` calls ``F.linear`` (a oneDNN bf16 product already), so "conv" and "aten" coincide there and
only one bf16 model is measured.

Speed on a shared CPU drifts by tens of percent from hour to hour, so each measurement also reports where it stands
against the machine's own matrix-product speed at that moment, measured just before and just after the timed steps:
``matmul_gflops`` (a 2048 x 2048 fp32 product with ``torch.mm``, MKL), ``onednn_gflops`` (the same product as a
1x1 convolution, oneDNN, which on some x86 processors runs wider kernels than MKL: see ``fashiondiff/fastlinear.py``)
and ``bf16_gflops`` (the same product under bf16 autocast). With ``flops_per_image`` (the forward and backward
matrix-product FLOPs of one training example, counted by ``torch.utils.flop_counter``), ``matmul_fraction`` =
images/s x flops_per_image / the product speed at the step's own precision (for fp32 the faster of MKL and oneDNN)
is the share of its own roofline the step reaches, and ``roofline_images_per_s`` = that speed / flops_per_image the
images/s a step made of nothing but matrix products would reach.

Prints one JSON line per measurement, then a summary. Peak memory on CPU is the process's peak resident set
(``ru_maxrss``: the data in memory included) and, separately, how much training (model copies for the EMA, optimizer
state, activations) adds to what was resident
before the first step; on CUDA, ``torch.cuda.max_memory_allocated``. Nothing here is asserted by the test suite:
timings depend on the machine.
"""

from __future__ import annotations

from pathlib import Path

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace

import torch


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.devices import keep_freed_memory, pick_device
from fashiondiff.fastlinear import ConvLinear, conv_linears_are_faster, linear_as_conv, use_conv_linears
from fashiondiff.precision import PRECISIONS
from fashiondiff.recipes import RECIPES
from fashiondiff.training import train

MODELS = tuple(RECIPES)
ATTENTIONS = ("linear", "softmax")     # a model whose config chooses its attention is measured with each


def has_attention(kind: str) -> bool:
    """Whether ``kind``'s model takes an ``attention`` argument (linear or softmax)."""
    return "attention" in RECIPES[kind].config


def measurements(models=MODELS) -> list[tuple[str, str | None]]:
    """(model, attention) for each measurement of ``--model all``: every recipe, once with each attention where the
    model has the choice (attention None: the model has none to choose)."""
    return [(kind, attention) for kind in models for attention in (ATTENTIONS if has_attention(kind) else (None,))]


def resident_mb() -> float:
    """This process's current resident set (Linux), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def matmul_gflops(size: int = 2048, repeats: int = 5, onednn: bool = False, bf16: bool = False) -> float:
    """The best of ``repeats`` timings of a (size x size) @ (size x size) product on the CPU, in GFLOP/s:
    ``torch.mm`` in fp32 (MKL), with ``onednn`` the same product as a 1x1 convolution (``fastlinear.linear_as_conv``),
    with ``bf16`` the fp32 product under bf16 autocast (the cast included, as a training step pays it)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    product = (lambda: linear_as_conv(a, b)) if onednn else (lambda: a @ b)
    best = float("inf")
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        product()                                          # warm-up
        for _ in range(repeats):
            t0 = time.perf_counter()
            product()
            best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def product_speeds(bf16: bool) -> dict:
    return {"mkl": matmul_gflops(), "onednn": matmul_gflops(onednn=True),
            **({"bf16": matmul_gflops(bf16=True)} if bf16 else {})}


def flops_per_image(run, batch_size: int) -> float:
    """Matrix-product FLOPs of one training example, forward and backward: one step of ``run`` under
    ``torch.utils.flop_counter`` (run eagerly: the counter sees every product)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        run(1, compile=False)
    return counter.get_total_flops() / batch_size


def recipe_run(kind: str, device: torch.device, compile: str = "default", attention: str | None = None,
               linear: str = "auto", precision: str = "default"):
    """(run, model, cfg): ``run(steps)`` trains ``kind``'s recipe for ``steps`` steps with
    ``fashiondiff.training.train`` itself (a batch, forward, backward, clipping, AdamW, EMA; no checkpoints) and
    returns its wall seconds. Successive calls continue on the same model; ``attention`` swaps the model's,
    ``linear`` (auto, aten, conv) picks how its linear layers run, ``precision`` (default: the recipe's, fp32,
    bf16, auto) the forward pass's precision, resolved here once: "auto" by one training step of ``train``, which
    measures as the training command does (``training._precision``)."""
    recipe = RECIPES[kind]
    model, loss_fn, n = recipe.setup(recipe, device)
    if attention is not None:                              # the same recipe with the other attention
        model = recipe.build(attention=attention).to(device)
    if device.type == "cpu":
        keep_freed_memory()
    use_conv_linears(model, {"auto": conv_linears_are_faster(device), "aten": False, "conv": True}[linear])
    precision = recipe.train.precision if precision == "default" else precision
    cfg = replace(recipe.train, epochs=None, checkpoint_every=0, snapshot_every=0, precision=precision,
                  compile=recipe.train.compile if compile == "default" else compile == "on")
    if precision == "auto":
        cfg = replace(cfg, precision=train(model, loss_fn, n, replace(cfg, max_steps=1, log_every=1),
                                           progress=False).precision)

    def run(steps: int, compile: bool = cfg.compile) -> float:
        return train(model, loss_fn, n, replace(cfg, max_steps=steps, log_every=steps, compile=compile),
                     progress=False).seconds
    return run, model, cfg


def variants(linear: str, precision: str, default_precision: str) -> list[tuple[str, str]]:
    """The (linear, precision) pairs to measure: every pair of the choices ("both" is two of each), where bf16 takes
    one of them only (under bf16 a ConvLinear is F.linear), with "default" as the recipe's; "auto" stays, for
    ``recipe_run`` to measure on the model (``throughput`` then drops a second bf16 model)."""
    linears = ("aten", "conv") if linear == "both" else (linear,)
    precisions = ("fp32", "bf16") if precision == "both" else (default_precision if precision == "default" else precision,)
    pairs = []
    for p in precisions:
        for lin in linears if p != "bf16" else linears[:1]:
            if (lin, p) not in pairs:
                pairs.append((lin, p))
    return pairs


def throughput(kind: str, steps: int, device: torch.device, compile: str = "default", attention: str | None = None,
               linear: str = "auto", repeats: int = 3, precision: str = "default") -> list[dict]:
    """One record per way of running the step (``variants``): ``linear`` is auto, aten or conv, or ``both`` (aten
    and conv), ``precision`` default, fp32, bf16, auto, or ``both``; several ways are several models in this
    process with their timed rounds interleaved, so that all see the same host (no memory figures then)."""
    pairs = variants(linear, precision, RECIPES[kind].train.precision)
    runs = {}
    for pair in pairs:
        run = recipe_run(kind, device, compile, attention, *pair)
        if not (run[2].precision == "bf16" and any(cfg.precision == "bf16" for _, _, cfg in runs.values())):
            runs[pair] = run
    pairs = list(runs)
    before = resident_mb()                                 # the model(s) and the data are in memory now
    for run, _, _ in runs.values():
        run(5)                                             # warm-up (and compilation)
    bf16 = any(cfg.precision == "bf16" for _, _, cfg in runs.values())
    speeds = [product_speeds(bf16)] if device.type == "cpu" else []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = {pair: [] for pair in pairs}
    for _ in range(repeats):
        for pair, (run, _, _) in runs.items():
            seconds[pair].append(run(steps))
    if device.type == "cuda":
        torch.cuda.synchronize()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024          # KB on Linux -> MB
    memory = ({"peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)} if device.type == "cuda" else
              {"peak_rss_mb": round(peak, 1), "step_adds_mb": round(max(0.0, peak - before), 1)})
    if device.type == "cpu":
        speeds.append(product_speeds(bf16))
    records = []
    for pair, (run, model, cfg) in runs.items():
        times = sorted(seconds[pair])
        rates = [cfg.batch_size * steps / s for s in times]           # fastest first
        images_per_s = rates[len(rates) // 2]
        roofline = {}
        if device.type == "cpu":
            flops = flops_per_image(run, cfg.batch_size)
            own = ("bf16",) if cfg.precision == "bf16" else ("mkl", "onednn")      # its own precision's roofline
            speed = max(sum(s[k] for s in speeds) / 2 for k in own) * 1e9
            roofline = {"flops_per_image": round(flops), "matmul_gflops": [round(s["mkl"], 1) for s in speeds],
                        "onednn_gflops": [round(s["onednn"], 1) for s in speeds],
                        **({"bf16_gflops": [round(s["bf16"], 1) for s in speeds]} if bf16 else {}),
                        "matmul_fraction": round(images_per_s * flops / speed, 3),
                        "roofline_images_per_s": round(speed / flops, 1)}
        is_conv = any(isinstance(m, ConvLinear) for m in model.modules()) and cfg.precision == "fp32"
        records.append({
            "benchmark": "train_throughput", "model": kind,
            **({"attention": attention or RECIPES[kind].config["attention"]} if has_attention(kind) else {}),
            "batch_size": cfg.batch_size, "compile": cfg.compile, "linear": "conv" if is_conv else "aten",
            "precision": cfg.precision, "interleaved": len(pairs) > 1, "images_per_s": round(images_per_s, 1),
            "images_per_s_range": [round(rates[-1], 1), round(rates[0], 1)],
            "seconds_per_step": round(times[len(times) // 2] / steps, 4), "steps_timed": steps, "repeats": repeats,
            "parameters": sum(p.numel() for p in model.parameters()), **(memory if len(pairs) == 1 else {}),
            **roofline, "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__})
    return records


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="all", choices=("all",) + MODELS)
    p.add_argument("--attention", default=None, choices=ATTENTIONS,
                   help="for a model whose config chooses its attention (default: the recipe's)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3, help="time --steps steps this many times; report the median")
    p.add_argument("--compile", default="default", choices=("default", "on", "off"),
                   help="default: as the recipe trains (its TrainConfig.compile)")
    p.add_argument("--linear", default="auto", choices=("auto", "aten", "conv", "both"),
                   help="linear layers: F.linear (aten), 1x1 convolutions (conv), as training picks (auto), "
                        "or aten and conv interleaved in one process (both)")
    p.add_argument("--precision", default="default", choices=("default",) + PRECISIONS + ("both",),
                   help="the forward pass: as the recipe trains (default), fp32, bf16, auto (measured), or fp32 and "
                        "bf16 interleaved in one process (both)")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    if a.model == "all":                                   # one process per measurement: separate peak memory
        results = []
        for kind, attention in measurements():
            cmd = [sys.executable, __file__, "--model", kind, "--steps", str(a.steps), "--repeats", str(a.repeats),
                   "--compile", a.compile, "--precision", a.precision,
                   "--device", a.device, "--linear", a.linear] + (["--attention", attention] if attention else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            for line in out.splitlines():
                if line.startswith('{"benchmark"'):
                    results.append(json.loads(line))
                    print(line, flush=True)
    else:
        results = throughput(a.model, a.steps, pick_device(a.device), a.compile,
                             a.attention if has_attention(a.model) else None, a.linear, a.repeats, a.precision)
        for r in results:
            print(json.dumps(r))
    for r in results:
        name = r["model"] + (f" ({r['attention']} attention)" if "attention" in r else "")
        mem = (f"peak {r['peak_cuda_mb']} MB" if "peak_cuda_mb" in r else
               f"peak RSS {r['peak_rss_mb']:.0f} MB, training adds {r['step_adds_mb']:.0f} MB" if "peak_rss_mb" in r
               else "interleaved with the other variants")
        bf16 = (f", {min(r['bf16_gflops']):.0f}-{max(r['bf16_gflops']):.0f} in bf16" if "bf16_gflops" in r else "")
        roof = (f"; {100 * r['matmul_fraction']:.0f}% of its {r['precision']} roofline of "
                f"{r['roofline_images_per_s']:.0f} images/s ({r['flops_per_image'] / 1e6:.0f} MFLOP per image; "
                f"products at {min(r['matmul_gflops']):.0f}-{max(r['matmul_gflops']):.0f} GFLOP/s with MKL, "
                f"{min(r['onednn_gflops']):.0f}-{max(r['onednn_gflops']):.0f} with oneDNN{bf16})"
                if "matmul_fraction" in r else "")
        lo, hi = r["images_per_s_range"]
        print(f"{name:>32}: {r['images_per_s']:7.1f} images/s ({lo:.0f}-{hi:.0f}) at batch {r['batch_size']}"
              f"{' (compiled)' if r['compile'] else ''}, {r['precision']}, linear layers {r['linear']}, {mem}{roof}")


if __name__ == "__main__":
    main()
