"""The two routes to a few-step student compared at equal training (part 4, notebook 16).

    python benchmarks/fewstep_routes.py [--n-pairs 20000] [--max-steps 2500] [--n 2000]
                                        [--out benchmarks/records/fewstep_routes.json]

Trains ``fashiondiff train fewstep --route R`` for R = reflow and trajectory on the same teacher trajectories (one
file of --n-pairs, made by the first run and read by the second), each for --max-steps at bf16, into
runs/pilot-R (a folder already holding a record of the same command is reused), then scores each student like
``fashiondiff evaluate fewstep --weights runs/pilot-R --sampler S --steps K --n 2000 --precision bf16`` (both
yardsticks, seed 0; one process, each yardstick's reference features computed once) with Euler at 1, 2 and 4 steps
and the consistency sampler at 2 and 4 (one network call a step). Writes the record
(commands, commit, hardware, training records, scores) to --out and prints a table.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))     # the checkout this script lives in: its records name this commit

from fashiondiff.checkpoint import load_json, save_json
from fashiondiff.pipelines import load_model, yardsticks
from fashiondiff.precision import autocast
from fashiondiff.provenance import git_commit, hardware
from fashiondiff.reports import evaluators, score_generator

POINTS = (("euler", 1), ("euler", 2), ("euler", 4), ("consistency", 2), ("consistency", 4))
KEEP = ("kid", "kid_std", "precision", "recall", "cond_acc")


def train(route: str, n_pairs: int, max_steps: int) -> dict:
    out = ROOT / "runs" / f"pilot-{route}"
    args = ["train", "fewstep", "--route", route, "--n-pairs", str(n_pairs), "--pairs",
            f"runs/pairs{n_pairs // 1000}k.safetensors", "--max-steps", str(max_steps), "--precision", "bf16",
            "--out", f"runs/pilot-{route}", "--no-eval", "--no-progress"]
    command = "fashiondiff " + " ".join(args)
    if not ((out / "record.json").is_file() and load_json(out / "record.json")["command"] == command):
        subprocess.run([sys.executable, "-m", "fashiondiff", *args], cwd=ROOT, check=True)
    rec = load_json(out / "record.json")
    return {k: rec[k] for k in ("command", "git_commit", "wall_time_s", "setup_s", "steps", "precision", "hardware")}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-pairs", type=int, default=20_000)
    p.add_argument("--max-steps", type=int, default=2500)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "records" / "fewstep_routes.json")
    a = p.parse_args()
    record = {"script": "python benchmarks/fewstep_routes.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
              "hardware": hardware("cpu"), "n": a.n, "seed": 0, "training": {}, "points": []}
    first, second = evaluators(lambda: yardsticks("cpu"), 16)
    for route in ("reflow", "trajectory"):
        record["training"][route] = train(route, a.n_pairs, a.max_steps)
        model = load_model("fewstep", ROOT / "runs" / f"pilot-{route}", "cpu")
        for sampler, steps in POINTS:
            start = time.time()
            with autocast("bf16", "cpu"):
                s = score_generator(model, first, model.sampling.replace(sampler=sampler, steps=steps), n=a.n,
                                    second=second)
            point = {"route": route, "sampler": sampler, "steps": steps, "calls": steps,
                     **{k: s[k] for k in KEEP}, "second": {k: s["second"][k] for k in KEEP},
                     "network_precision": "bf16", "seconds": round(time.time() - start, 1)}
            record["points"].append(point)
            print(json.dumps(point), flush=True)
            save_json(a.out, record)
    print(f"\n{'route':10s} {'sampler':11s} calls   KID (x1e3)     prec  recall  acc    | second: KID     acc")
    for q in record["points"]:
        print(f"{q['route']:10s} {q['sampler']:11s} {q['calls']:5d}  {q['kid']:6.1f} +- {q['kid_std']:5.1f}  "
              f"{q['precision']:.3f} {q['recall']:.3f}  {q['cond_acc']:.3f} | {q['second']['kid']:6.1f} +- "
              f"{q['second']['kid_std']:4.1f} {q['second']['cond_acc']:.3f}")


if __name__ == "__main__":
    main()
