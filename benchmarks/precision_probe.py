"""What should ``--precision auto`` time? The bf16 speed-up of three probes on each model's own batch, interleaved.

    python benchmarks/precision_probe.py [--model transformer flow classifier ...] [--rounds 3]

For each recipe the model is built as ``fashiondiff train`` builds it (``runs.speed_up``) and three probes are timed
in fp32 and under bf16 autocast, each the best of ``--rounds`` interleaved rounds of two calls after two warm-up calls
(which compile where a probe is compiled):

    eager_forward      the loss's forward pass without gradients, eagerly (what "auto" once timed)
    eager_step         forward and backward, eagerly
    compiled_step      forward and backward through ``torch.compile`` (what a recipe with ``compile=True`` trains)

``fashiondiff.training`` times the last where the recipe compiles and the middle one elsewhere: a probe that is not
the step the loop runs can choose the slower precision. Prints one JSON line per model. Nothing here is asserted by
the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# the checkout this script lives in, not whichever fashiondiff is installed
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.provenance import hardware
from fashiondiff.recipes import RECIPES
from fashiondiff.runs import speed_up

PROBES = ("eager_forward", "eager_step", "compiled_step")


def probes(kind: str, device: torch.device) -> dict:
    """name -> a zero-argument function running that probe once on ``kind``'s model and a batch of its data."""
    r = RECIPES[kind]
    model, loss_fn, _ = r.setup(r, device)
    model = speed_up(model, device).train()
    idx = torch.arange(r.train.batch_size)
    compiled = torch.compile(model)

    def forward():
        with torch.no_grad():
            loss_fn(model, idx, torch.Generator().manual_seed(0))

    def step(net):
        def run():
            loss_fn(net, idx, torch.Generator().manual_seed(0)).float().backward()
            model.zero_grad(set_to_none=True)
        return run
    return dict(zip(PROBES, (forward, step(model), step(compiled))))


def measure(kind: str, device: torch.device, rounds: int) -> dict:
    runs = probes(kind, device)
    times = {(name, bf16): [] for name in PROBES for bf16 in (False, True)}
    for i in range(rounds + 1):                          # round 0 warms up (and compiles) every pair
        for name, run in runs.items():
            for bf16 in (False, True):
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    start = time.perf_counter()
                    run(), run()
                    if i:
                        times[name, bf16].append((time.perf_counter() - start) / 2)
    best = {key: min(t) for key, t in times.items()}
    return {"model": kind, **{name: {"fp32_ms": round(best[name, False] * 1e3, 1),
                                     "bf16_ms": round(best[name, True] * 1e3, 1),
                                     "speed_up": round(best[name, False] / best[name, True], 2)} for name in PROBES}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", nargs="+", default=["transformer", "flow", "classifier"],
                   choices=[k for k in RECIPES if k != "fewstep"])  # fewstep's setup first samples its teacher
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    device = torch.device("cpu")
    for kind in args.model:
        print(json.dumps({**measure(kind, device, args.rounds), "hardware": hardware(device)}), flush=True)


if __name__ == "__main__":
    main()
