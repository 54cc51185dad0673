"""Attention cost against sequence length: softmax (explicit N x N), torch's SDPA and linear attention.

    python benchmarks/attention_cost.py [--max-tokens 4096] [--dim 128] [--heads 4] [--batch 1] [--backward]

Times the attention operation alone (not the projections) on random q, k, v of shape (batch, heads, N, dim/heads)
for N = 16, 32, ..., max-tokens: the median of repeated calls after a warm-up. Softmax attention costs O(N^2 d),
linear attention O(N d^2) (notebook 02), so the curves cross; this prints where. One JSON line per (method, N),
then a summary; nothing is asserted by the test suite.
"""

from __future__ import annotations

import sys
from pathlib import Path

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.attention import linear_attention, softmax_attention

METHODS = {"softmax": softmax_attention, "sdpa": F.scaled_dot_product_attention, "linear": linear_attention}


def median_seconds(fn, budget: float = 0.5, max_repeats: int = 50) -> float:
    fn()                                                   # warm-up
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(int(min(max_repeats, max(3, budget / max(first, 1e-6))))):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--max-tokens", type=int, default=4096)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--backward", action="store_true", help="time forward + backward")
    a = p.parse_args()
    torch.manual_seed(0)
    results = []
    n = 16
    while n <= a.max_tokens:
        q, k, v = (torch.randn(a.batch, a.heads, n, a.dim // a.heads, requires_grad=a.backward) for _ in range(3))
        for name, fn in METHODS.items():
            def call():
                out = fn(q, k, v)
                if a.backward:
                    out.sum().backward()
            with torch.set_grad_enabled(a.backward):
                s = median_seconds(call)
            results.append({"benchmark": "attention_cost", "method": name, "tokens": n, "dim": a.dim, "heads": a.heads,
                            "batch": a.batch, "backward": a.backward, "ms": round(1000 * s, 4),
                            "threads": torch.get_num_threads()})
            print(json.dumps(results[-1]), flush=True)
        n *= 2
    ms = {(r["method"], r["tokens"]): r["ms"] for r in results}
    tokens = sorted({r["tokens"] for r in results})
    print(f"{'tokens':>7}" + "".join(f"{m + ' ms':>14}" for m in METHODS))
    for t in tokens:
        print(f"{t:>7}" + "".join(f"{ms[(m, t)]:14.3f}" for m in METHODS))
    for other in ("softmax", "sdpa"):
        wins = [t for t in tokens if ms[("linear", t)] < ms[(other, t)]]
        print(f"linear attention is faster than {other} from N = {wins[0]} on" if wins and
              all(ms[("linear", t)] < ms[(other, t)] for t in tokens if t >= wins[0])
              else f"linear vs {other}: no single crossover in this range (faster at N = {wins})")


if __name__ == "__main__":
    main()
