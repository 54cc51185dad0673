"""Sampling throughput of the bundled generators (images/s) for each sampler the course ships.

    python benchmarks/sample_throughput.py [--n 500] [--device auto]

Times ``fashiondiff.pipelines.generate`` (the code behind ``fashiondiff generate``) with the model already
loaded: the pixel transformer at 10 steps (DDPM and DDIM, guidance w = 1 and 2, and its default), the latent
model with DDIM at 10, 25, 50 and 100 steps, its default, and DDPM at 1,000 (fewer images: it is ~20x slower), VAE decoding
included. Prints one JSON line per setting, then a summary; nothing is asserted by the test suite.
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

# Changes to each model's default sampling settings (guidance_interval None: guidance at every step).
SETTINGS = [("transformer", dict(sampler="ddpm", steps=10, guidance=1.0, guidance_interval=None)),
            ("transformer", dict(sampler="ddim", steps=10, guidance=1.0, guidance_interval=None)),
            ("transformer", dict(sampler="ddim", steps=10, guidance=2.0, guidance_interval=None)),
            ("transformer", {}),                                             # its default
            ("latent", dict(sampler="ddim", steps=10, guidance=2.0, guidance_interval=None)),
            ("latent", dict(sampler="ddim", steps=25, guidance=2.0, guidance_interval=None)),
            ("latent", dict(sampler="ddim", steps=50, guidance=2.0, guidance_interval=None)),
            ("latent", dict(sampler="ddim", steps=100, guidance=2.0, guidance_interval=None)),
            ("latent", dict(sampler="ddim", steps=50, guidance=1.0, guidance_interval=None)),
            ("latent", {}),                                                  # its default
            ("latent", dict(sampler="ddpm", steps=1000, guidance=2.0, guidance_interval=None))]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=500, help="images per setting (DDPM-1000: a fifth of it)")
    p.add_argument("--device", default="auto")
    args = p.parse_args()
    models = {kind: load_model(kind, device=args.device) for kind in ("transformer", "latent")}
    results = []
    for kind, changes in SETTINGS:
        model = models[kind]
        settings = model.sampling.replace(**changes)
        n = args.n // 5 if settings.steps == 1000 else args.n
        labels = torch.arange(n) % 10
        generate(model, labels[:20], settings)                               # warm-up
        t0 = time.perf_counter()
        generate(model, labels, settings)
        seconds = time.perf_counter() - t0
        results.append({"benchmark": "sample_throughput", "model": kind, **settings.to_dict(), "n": n,
                        "images_per_s": round(n / seconds, 1), "seconds_per_1000": round(1000 * seconds / n, 2),
                        "default": not changes, "device": str(next(model.parameters()).device),
                        "threads": torch.get_num_threads()})
        print(json.dumps(results[-1]), flush=True)
    for r in results:
        interval = "" if r["guidance_interval"] is None else f" at t={r['guidance_interval'][0]}..{r['guidance_interval'][1]}"
        print(f"{r['model']:>11} {r['sampler']} {r['steps']:>4} steps, w = {r['guidance']}{interval}:"
              f" {r['images_per_s']:8.1f} images/s ({r['seconds_per_1000']:.1f} s per 1,000)" + ("  default" if r["default"] else ""))


if __name__ == "__main__":
    main()
