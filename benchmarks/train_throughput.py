"""Training throughput of every model in the course at its default batch size (images/s), with peak memory.

    python benchmarks/train_throughput.py [--model all|classifier|transformer|vae|latent] [--steps 30]
                                          [--compile default|on|off] [--device auto]

Each model's recipe (``fashiondiff.recipes``) builds the model, its data and its loss, and
``fashiondiff.training.train`` itself is timed for ``--steps`` steps after a 5-step warm-up: forward, backward,
gradient clipping, AdamW, EMA. The transformer is measured twice, with linear and with softmax attention. With ``--model all`` (the default) every model runs in its
own process, so that each one's peak memory is its own.

Speed on a shared CPU drifts by tens of percent from hour to hour, so each measurement also reports where it stands
against the machine's own matrix-product speed at that moment: ``matmul_gflops`` (a 2048 x 2048 fp32 product,
measured just before and just after the timed steps), ``flops_per_image`` (the forward and backward matrix-product
FLOPs of one training example, counted by ``torch.utils.flop_counter``) and ``matmul_fraction`` = images/s x
flops_per_image / matmul speed, the share of the matrix-product roofline the step reaches. ``images_per_s_at_250``
is what that fraction gives on a host whose products run at 250 GFLOP/s (the figure the speed target assumes).

Prints one JSON line per measurement, then a summary. Peak memory on CPU is the process's peak resident set
(``ru_maxrss``: the data in memory included) and, separately, how much training (model copies for the EMA, optimizer
state, activations) adds to what was resident
before the first step; on CUDA, ``torch.cuda.max_memory_allocated``. Nothing here is asserted by the test suite:
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace

import torch

from fashiondiff.recipes import DEFAULTS, SETUPS
from fashiondiff.training import pick_device, train

MODELS = ("classifier", "transformer", "vae", "latent")


def resident_mb() -> float:
    """This process's current resident set (Linux), in MB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 20


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best of ``repeats`` timings of a (size x size) @ (size x size) fp32 product on the CPU, in GFLOP/s."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b                                                  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * size ** 3 / best / 1e9


def flops_per_image(run, batch_size: int) -> float:
    """Matrix-product FLOPs of one training example, forward and backward: one step of ``run`` under
    ``torch.utils.flop_counter`` (run eagerly: the counter sees every product)."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        run(1, compile=False)
    return counter.get_total_flops() / batch_size


def recipe_run(kind: str, device: torch.device, compile: str = "default", attention: str | None = None):
    """(run, model, cfg): ``run(steps)`` trains ``kind``'s recipe for ``steps`` steps with
    ``fashiondiff.training.train`` itself (a batch, forward, backward, clipping, AdamW, EMA; no checkpoints) and
    returns its wall seconds. Successive calls continue on the same model; ``attention`` swaps the transformer's."""
    cfg = DEFAULTS[kind]
    model, loss_fn, n = SETUPS[kind][0](device)
    if attention is not None:                              # the same recipe with the other attention
        from fashiondiff.transformer import EfficientTransformerDenoiser
        model = EfficientTransformerDenoiser(attention=attention).to(device)
    cfg = replace(cfg, epochs=None, checkpoint_every=0, snapshot_every=0,
                  compile=cfg.compile if compile == "default" else compile == "on")

    def run(steps: int, compile: bool = cfg.compile) -> float:
        return train(model, loss_fn, n, replace(cfg, max_steps=steps, log_every=steps, compile=compile),
                     progress=False).seconds
    return run, model, cfg


def throughput(kind: str, steps: int, device: torch.device, compile: str = "default", attention: str | None = None) -> dict:
    run, model, cfg = recipe_run(kind, device, compile, attention)
    before = resident_mb()
    run(5)                                                 # warm-up (and compilation)
    gflops = [matmul_gflops()] if device.type == "cpu" else []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    seconds = run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    images_per_s = cfg.batch_size * steps / seconds
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024          # KB on Linux -> MB
    memory = ({"peak_cuda_mb": round(torch.cuda.max_memory_allocated() / 2 ** 20, 1)} if device.type == "cuda" else
              {"peak_rss_mb": round(peak, 1), "step_adds_mb": round(max(0.0, peak - before), 1)})
    roofline = {}
    if device.type == "cpu":
        gflops.append(matmul_gflops())
        flops, speed = flops_per_image(run, cfg.batch_size), sum(gflops) / 2 * 1e9
        fraction = images_per_s * flops / speed
        roofline = {"flops_per_image": round(flops), "matmul_gflops": [round(g, 1) for g in gflops],
                    "matmul_fraction": round(fraction, 3), "images_per_s_at_250": round(fraction * 250e9 / flops, 1)}
    return {"benchmark": "train_throughput", "model": kind, **({"attention": attention or "linear"} if kind == "transformer" else {}),
            "batch_size": cfg.batch_size, "compile": cfg.compile, "images_per_s": round(images_per_s, 1),
            "seconds_per_step": round(seconds / steps, 4), "steps_timed": steps,
            "parameters": sum(p.numel() for p in model.parameters()), **memory, **roofline,
            "device": str(device), "threads": torch.get_num_threads(), "torch": torch.__version__}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="all", choices=("all",) + MODELS)
    p.add_argument("--attention", default=None, choices=("linear", "softmax"), help="transformer only")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--compile", default="default", choices=("default", "on", "off"),
                   help="default: as the recipe trains (the transformer compiled, the others eager)")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    if a.model == "all":                                   # one process per measurement: separate peak memory
        results = []
        runs = [("classifier", None), ("transformer", "linear"), ("transformer", "softmax"), ("vae", None), ("latent", None)]
        for kind, attention in runs:
            cmd = [sys.executable, __file__, "--model", kind, "--steps", str(a.steps), "--compile", a.compile,
                   "--device", a.device] + (["--attention", attention] if attention else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            line = next(s for s in out.splitlines() if s.startswith('{"benchmark"'))
            results.append(json.loads(line))
            print(line, flush=True)
    else:
        results = [throughput(a.model, a.steps, pick_device(a.device), a.compile,
                              a.attention if a.model == "transformer" else None)]
        print(json.dumps(results[0]))
    for r in results:
        name = r["model"] + (f" ({r['attention']} attention)" if "attention" in r else "")
        mem = (f"peak {r['peak_cuda_mb']} MB" if "peak_cuda_mb" in r else
               f"peak RSS {r['peak_rss_mb']:.0f} MB, training adds {r['step_adds_mb']:.0f} MB")
        roof = (f"; {100 * r['matmul_fraction']:.0f}% of the matmul roofline ({r['flops_per_image'] / 1e6:.0f} MFLOP"
                f" per image, products at {min(r['matmul_gflops']):.0f}-{max(r['matmul_gflops']):.0f} GFLOP/s), "
                f"{r['images_per_s_at_250']:.0f} images/s at 250 GFLOP/s" if "matmul_fraction" in r else "")
        print(f"{name:>32}: {r['images_per_s']:7.1f} images/s at batch {r['batch_size']}"
              f"{' (compiled)' if r['compile'] else ''}, {mem}{roof}")


if __name__ == "__main__":
    main()
