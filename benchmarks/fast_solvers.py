"""First- and second-order samplers of the bundled generators at equal network calls (part 4, notebook 15).

    python benchmarks/fast_solvers.py [--models transformer,latent,flow] [--calls 4,6,8,10,20] [--n 2000]
                                      [--samplers NAME,...] [--out benchmarks/records/fast_solvers.json]

For each model, at its own guidance (w and interval), each of its samplers

    diffusion:  ddim (eta = 0), edm-heun, dpm++2m          flow:  euler, heun, dpm++2m-flow

takes the most steps whose network calls (``generation.network_calls``: guided evaluations count twice) fit each
budget, and is scored like ``fashiondiff evaluate MODEL --sampler S --steps K [--eta 0] --n 2000 --json`` (both
yardsticks, seed 0; one process, each yardstick's reference features computed once). The model's default is scored
first: the figure each sampler is compared with. Budgets no step count fits, and step counts already scored, are
skipped, and so are points already in --out (a run can be resumed, or extended with other --calls or --samplers,
which keeps only those samplers). Writes the record (commands, commit, hardware, wall times) to --out after every point and prints one JSON
line per point, then a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.generation import network_calls
from fashiondiff.pipelines import load_model, yardsticks
from fashiondiff.provenance import git_commit, hardware
from fashiondiff.reports import evaluators, score_generator

SAMPLERS = {"diffusion": ("ddim", "edm-heun", "dpm++2m"), "flow": ("euler", "heun", "dpm++2m-flow")}
KEEP = ("kid", "kid_std", "real_kid", "precision", "recall", "fid", "real_fid", "cond_acc", "second", "sampler",
        "steps", "guidance", "guidance_interval", "eta", "sample_seconds")


def steps_within(model, settings, budget: int) -> int | None:
    """The most steps whose network calls fit ``budget`` (None if even one step does not)."""
    fits = [k for k in range(1, model.max_steps + 1) if network_calls(model, settings.replace(steps=k)) <= budget]
    return max(fits) if fits else None


def command(name: str, settings, n: int) -> str:
    eta = " --eta 0" if settings.sampler == "ddim" else ""
    return f"fashiondiff evaluate {name} --sampler {settings.sampler} --steps {settings.steps}{eta} --n {n} --json"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="transformer,latent,flow")
    p.add_argument("--calls", default="4,6,8,10,20", help="comma-separated budgets of network calls per image")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--samplers", default=None, help="comma-separated: only these samplers (default: all of each model's)")
    p.add_argument("--no-default", action="store_true",
                   help="skip the model's default (its record already holds it at n = 2,000, seed 0)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/records/fast_solvers.json"))
    args = p.parse_args()
    only = None if args.samplers is None else set(args.samplers.split(","))
    budgets = [int(v) for v in args.calls.split(",")]
    record = {"script": "python benchmarks/fast_solvers.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
              "hardware": hardware(torch.device("cpu")), "n": args.n, "seed": 0, "points": []}
    if args.out.exists():                                            # resume: keep what an earlier run measured
        earlier = json.loads(args.out.read_text())
        record["points"] = [q for q in earlier["points"] if q.get("n", earlier["n"]) == args.n]
        for q in record["points"]:
            q.setdefault("git_commit", earlier["git_commit"])
            q.setdefault("script", earlier["script"])
    done = {(q["model"], q["sampler"], q["steps"], q["guidance"], q["eta"]) for q in record["points"]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    judges = {}
    for name in args.models.split(","):
        model = load_model(name, device="cpu")
        if model.image_size not in judges:
            judges[model.image_size] = evaluators(lambda: yardsticks("cpu"), model.image_size)
        first, second = judges[model.image_size]
        runs = [] if args.no_default else [("default", model.sampling)]
        for budget in budgets:
            for sampler in (s for s in SAMPLERS[model.process] if only is None or s in only):
                settings = model.sampling.replace(sampler=sampler, eta=0.0)
                k = steps_within(model, settings, budget)
                if k is not None and settings.replace(steps=k) not in [s for _, s in runs] + [model.sampling]:
                    runs.append((budget, settings.replace(steps=k)))
        for budget, settings in runs:
            if (name, settings.sampler, settings.steps, settings.guidance, settings.eta) in done:
                continue
            start = time.time()
            scores = score_generator(model, first, settings, n=args.n, seed=0, second=second)
            point = {"model": name, "budget": budget, "calls": network_calls(model, settings), "n": args.n,
                     "git_commit": record["git_commit"], "script": record["script"],
                     "command": command(name, settings, args.n) if budget != "default"
                     else f"fashiondiff evaluate {name} --n {args.n} --json",
                     "wall_time_s": round(time.time() - start, 1), **{k: scores[k] for k in KEEP if k in scores}}
            record["points"].append(point)
            print(json.dumps(point), flush=True)
            args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"{'model':12} {'sampler':13} {'steps':>5} {'calls':>5} {'KID x1e3':>14} {'cond acc':>8}")
    for q in record["points"]:
        print(f"{q['model']:12} {q['sampler']:13} {q['steps']:5d} {q['calls']:5d} "
              f"{q['kid']:7.1f} +- {q['kid_std']:4.1f} {q['cond_acc']:8.3f}")


if __name__ == "__main__":
    main()
