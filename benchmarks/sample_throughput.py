"""Sampling throughput of the bundled generators (images/s) for each sampler the course ships.

    python benchmarks/sample_throughput.py [--n 500] [--precision fp32|bf16|both] [--defaults-only] [--device auto]

Times ``fashiondiff.pipelines.generate`` (the code behind ``fashiondiff generate``) with the model already
loaded, for every generator in ``fashiondiff.recipes.GENERATORS``: its default sampler at 10, 25, 50 and 100 steps
(those the model has) with guidance w = 2 at every step, each sampler it takes at the default's steps with w = 1 (one
network call a step instead of two), its default, and, for a model that samples with DDPM and has more timesteps than
that, DDPM at every timestep with w = 2 (on a fifth as many images: it takes many times the steps), VAE decoding
included. ``--precision both`` (the default where autocast can run bf16) times each setting in fp32 and under bf16
autocast (``fashiondiff.precision``), one after the other on the same seed, and reports how far the bf16 images
are from the fp32 ones (pixels in [-1, 1]: the largest and the mean absolute difference).
Prints one JSON line per setting and precision, then a summary; nothing is asserted by the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import json
import time

import torch


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.generation import generate
from fashiondiff.pipelines import load_model
from fashiondiff.precision import autocast, bf16_supported
from fashiondiff.recipes import GENERATORS
from fashiondiff.sampling import SamplingConfig, samplers_for

STEPS = (10, 25, 50, 100)        # the default sampler's step counts, up to the model's max_steps
EVERY_STEP = None                # guidance_interval None: guidance at every step
LONG = 5                         # the run at every timestep samples --n / LONG images


def timed_settings(model) -> list[tuple[SamplingConfig, bool]]:
    """(settings, whether they are the model's default) for each setting timed for ``model`` (see the module
    docstring), as changes to its default sampling settings; a change that gives a setting already listed is
    left out."""
    default = model.sampling
    changes = [dict(steps=k, guidance=2.0, guidance_interval=EVERY_STEP) for k in STEPS if k <= model.max_steps]
    changes += [dict(sampler=s, guidance=1.0, guidance_interval=EVERY_STEP) for s in samplers_for(model.process)] + [{}]
    if "ddpm" in samplers_for(model.process) and model.max_steps > max(STEPS):
        changes.append(dict(sampler="ddpm", steps=model.max_steps, guidance=2.0, guidance_interval=EVERY_STEP))
    timed = []
    for change in changes:
        settings = default.replace(**change)
        if (settings != default or not change) and settings not in [s for s, _ in timed]:
            timed.append((settings, not change))
    return timed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help=f"images per setting (DDPM at every timestep: 1/{LONG} of it)")
    p.add_argument("--defaults-only", action="store_true", help="time each generator's default settings only")
    p.add_argument("--precision", choices=("fp32", "bf16", "both"), default=None,
                   help="the network's precision: both (the default where bf16 runs here) or one of them")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    models = {kind: load_model(kind, device=args.device) for kind in GENERATORS}
    device = next(models[GENERATORS[0]].parameters()).device
    precision = args.precision or ("both" if bf16_supported(device) else "fp32")
    precisions = ("fp32", "bf16") if precision == "both" else (precision,)
    results = []
    for kind, model in models.items():
        for settings, is_default in timed_settings(model):
            if args.defaults_only and not is_default:
                continue
            n = args.n // LONG if settings.steps > max(STEPS) else args.n
            labels = torch.arange(n) % 10
            images = {}
            for taken in precisions:
                with autocast(taken, device):
                    generate(model, labels[:20], settings)                   # warm-up
                    t0 = time.perf_counter()
                    images[taken] = generate(model, labels, settings)
                    seconds = time.perf_counter() - t0
                diff = (images[taken] - images["fp32"]).abs() if "fp32" in images else None
                results.append({"benchmark": "sample_throughput", "model": kind, **settings.to_dict(), "n": n,
                                "precision": taken, "images_per_s": round(n / seconds, 1),
                                "seconds_per_1000": round(1000 * seconds / n, 2), "default": is_default,
                                **({"max_abs_diff_vs_fp32": round(diff.max().item(), 4),
                                    "mean_abs_diff_vs_fp32": round(diff.mean().item(), 5)} if taken != "fp32" and
                                   diff is not None else {}),
                                "device": str(device), "threads": torch.get_num_threads()})
                print(json.dumps(results[-1]), flush=True)
    for r in results:
        interval = "" if r["guidance_interval"] is None else " at sigma {:g}..{}".format(*r["guidance_interval"])
        diff = (f", {r['max_abs_diff_vs_fp32']:.3f} max / {r['mean_abs_diff_vs_fp32']:.4f} mean from fp32"
                if "max_abs_diff_vs_fp32" in r else "")
        print(f"{r['model']:>11} {r['sampler']} {r['steps']:>4} steps, w = {r['guidance']}{interval}, {r['precision']}:"
              f" {r['images_per_s']:8.1f} images/s ({r['seconds_per_1000']:.1f} s per 1,000){diff}"
              + ("  default" if r["default"] else ""))


if __name__ == "__main__":
    main()
