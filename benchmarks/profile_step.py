"""Where a training step spends its time: a ``torch.profiler`` summary of the pixel transformer's (or another
model's) training step at its default batch size, so that the next speed-up is chosen by measurement.

    python benchmarks/profile_step.py [--model transformer|latent|vae|classifier] [--steps 5] [--rows 15]

Profiles ``--steps`` eager steps (forward, backward, clipping, AdamW, EMA) after a warm-up, prints the operators
that take the most CPU time (self time, so nothing is counted twice), then one JSON line with the top operators'
shares and the share of all matrix products (mm, addmm, bmm, convolutions). Nothing is asserted by the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import json

import torch
from torch.profiler import ProfilerActivity, profile


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.devices import pick_device
from fashiondiff.recipes import RECIPES
from train_throughput import recipe_run                          # benchmarks/: the training loop itself

MATMUL = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::mkldnn_convolution",
          "aten::convolution_backward", "aten::_convolution", "aten::baddbmm")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="transformer", choices=tuple(RECIPES))
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    device = pick_device(a.device)
    run, model, cfg = recipe_run(a.model, device, compile="off")          # eager: the profiler sees every operator
    run(3)                                                                 # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        run(a.steps)
    events = prof.key_averages()
    print(events.table(sort_by="self_cpu_time_total", row_limit=a.rows))
    total = sum(e.self_cpu_time_total for e in events)
    top = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:a.rows]
    matmul = sum(e.self_cpu_time_total for e in events if e.key in MATMUL)
    print(json.dumps({"benchmark": "profile_step", "model": a.model, "batch_size": cfg.batch_size, "steps": a.steps,
                      "ms_per_step": round(total / 1000 / a.steps, 2), "matmul_share": round(matmul / total, 3),
                      "top": {e.key: round(e.self_cpu_time_total / total, 3) for e in top},
                      "device": str(device), "threads": torch.get_num_threads()}))
    print(f"{a.model}: {total / 1000 / a.steps:.1f} ms of operator self time per step at batch {cfg.batch_size}; "
          f"matrix products and convolutions {100 * matmul / total:.0f}% of it; the top operator is {top[0].key} "
          f"({100 * top[0].self_cpu_time_total / total:.0f}%)")


if __name__ == "__main__":
    main()
