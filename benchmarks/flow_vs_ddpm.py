"""The flow-matching model against the DDPM pixel transformer at equal numbers of network evaluations (NFE): both
bundled models, each at its own default sampling settings with the number of steps changed, scored alike.

    python benchmarks/flow_vs_ddpm.py [--models transformer,flow] [--nfe 4,10] [--n 2000]
                                      [--out fashiondiff/weights/flow/versus_transformer.json]

runs, for each number of steps k and each model,

    fashiondiff evaluate transformer --steps k --n 2000 --json     (DDIM: one evaluation a step, before guidance)
    fashiondiff evaluate flow --steps k --n 2000 --json            (Euler: one evaluation a step, before guidance)

The flow's record already holds it at 4 and 10 steps (its sweep and default, the same protocol), so notebook 12 runs
this for the transformer only: --models transformer.

Both default samplers guide, which doubles every evaluation it applies to: the flow with w = 1.5 at every step, the
transformer with w = 2.5 only where sigma is 0.5..2 (t = 3..7 of 10). Writes the scores with the commands, commit and hardware to --out and prints one JSON line per point.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.devices import pick_device
from fashiondiff.provenance import git_commit, hardware
from kl_sweep import fashiondiff                    # runs `python -m fashiondiff ...` and reads its JSON line

KEEP = ("kid", "kid_std", "real_kid", "precision", "recall", "fid", "real_fid", "cond_acc", "second", "sampler",
        "steps", "guidance", "guidance_interval", "eta", "sample_seconds")


def evaluate(model: str, steps: int, n: int) -> dict:
    result, seconds, command = fashiondiff("evaluate", model, "--steps", str(steps), "--n", str(n), "--json")
    return {"model": model, "nfe": steps, "command": command, "wall_time_s": seconds,
            **{k: result[k] for k in KEEP if k in result}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="transformer,flow", help="comma-separated generators")
    p.add_argument("--nfe", default="4,10", help="comma-separated numbers of steps")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", type=Path, default=Path("fashiondiff/weights/flow/versus_transformer.json"))
    args = p.parse_args()
    record = {"script": "python benchmarks/flow_vs_ddpm.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
              "hardware": hardware(pick_device("auto")), "n": args.n, "points": []}
    for k in (int(v) for v in args.nfe.split(",")):
        for model in args.models.split(","):
            point = evaluate(model, k, args.n)
            record["points"].append(point)
            print(json.dumps(point), flush=True)
            args.out.write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
