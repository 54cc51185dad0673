"""Training throughput of the pixel-track denoiser (images/s at batch 128), linear vs softmax attention.

    python benchmarks/train_throughput.py [--batch-size 128] [--steps 30] [--compile]

Times full training steps (forward, backward, AdamW, EMA) on random data; prints one JSON line per
variant and a summary. Nothing here is asserted by the test suite: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from fashiondiff.diffusion import diffusion_loss
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.training import EMA, param_groups, pick_device
from fashiondiff.transformer import EfficientTransformerDenoiser


def throughput(attention: str, batch_size: int, steps: int, device, compile: bool = False) -> dict:
    torch.manual_seed(0)
    model = EfficientTransformerDenoiser(attention=attention).to(device)
    ema = EMA(model, 0.999)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=3e-4)
    schedule = NoiseSchedule(10, "cosine")
    x = torch.randn(batch_size, 1, 16, 16, device=device)
    y = torch.randint(0, 10, (batch_size,), device=device)
    gen = torch.Generator().manual_seed(0)
    step_model = torch.compile(model) if compile else model
    step_model.label = model.label

    def step():
        loss = diffusion_loss(step_model, schedule, x, y, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)

    for _ in range(5):  # warm-up (and compilation)
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    return {"model": "transformer", "attention": attention, "batch_size": batch_size, "compile": compile,
            "images_per_s": round(batch_size * steps / seconds, 1), "device": str(device),
            "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--device", default="auto")
    a = p.parse_args()
    device = pick_device(a.device)
    results = [throughput(att, a.batch_size, a.steps, device, a.compile) for att in ("linear", "softmax")]
    for r in results:
        print(json.dumps(r))
    for r in results:
        print(f"{r['attention']:>8} attention: {r['images_per_s']:8.1f} images/s at batch {r['batch_size']} "
              f"on {r['device']} ({r['threads']} threads)")


if __name__ == "__main__":
    main()
