"""Measure bundled (or any) weights again with the course's current measures, without retraining them.

    python benchmarks/rescore.py transformer [--weights DIR] [--missing] [--pick-default MIN_ACCURACY [--both]]

Runs the recipe's report on the weights (for a generator: its default sampling settings and every setting of the
recipe's sweep, at n = 2,000, in both yardsticks' features; snapshots are not kept with bundled weights, so the
record's quality-over-training rows stay as they were measured) and writes the result into the folder's
``record.json`` under ``metrics``, with ``rescored``: the command, git commit, date and hardware of this run. The
metrics before the first rescore are kept under ``metrics_before_rescore``. Prints the new metrics as one JSON line.

``--missing`` measures only the recipe's sweep settings that the record does not hold yet and keeps its other rows as
they are (every row is seeded on its own, so a row measured now equals the one a full rescore would give).

``--pick-default A`` makes the sweep's setting with the lowest KID among those with conditional accuracy >= A the
generator's default (written to the folder's ``config.json``) and measures it again as the record's headline; with
``--both``, the second yardstick's accuracy must reach A too.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path


# the checkout this script lives in, not whichever fashiondiff is installed: its records name this commit
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fashiondiff.checkpoint import CONFIG, RECORD, load_json, save_json
from fashiondiff.reports import EVAL_N, evaluators, score_generator, sweep_row
from fashiondiff.sampling import SamplingConfig
from fashiondiff.devices import pick_device
from fashiondiff.pipelines import bundled, load_model, yardsticks
from fashiondiff.provenance import git_commit, hardware
from fashiondiff.recipes import RECIPES

FIELDS = ("sampler", "steps", "guidance", "guidance_interval", "eta")     # what a sweep row's SamplingConfig holds


def missing_rows(recipe, model, metrics: dict, device) -> dict:
    """``metrics`` with a row added for each setting of ``recipe.sweep`` it does not hold, each scored like the rest."""
    evaluator, second = evaluators(lambda: yardsticks(device), model.image_size)
    have = {SamplingConfig(**{k: r[k] for k in FIELDS}) for r in metrics.get("sweep", [])}
    sweep = list(metrics.get("sweep", []))
    for changes in recipe.sweep:
        settings = model.sampling.replace(**changes)
        if settings not in have:
            row = score_generator(model, evaluator, settings, n=EVAL_N, second=second)
            sweep.append({**settings.to_dict(), **sweep_row(row)})
            have.add(settings)
    return {**metrics, "sweep": sweep}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model", choices=tuple(RECIPES))
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: the bundled one)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--pick-default", type=float, default=None, metavar="MIN_ACCURACY")
    p.add_argument("--both", action="store_true", help="--pick-default: in both yardsticks' features")
    p.add_argument("--missing", action="store_true", help="measure only the sweep settings the record lacks")
    args = p.parse_args()
    folder = args.weights or bundled(args.model)
    recipe, device = RECIPES[args.model], pick_device(args.device)
    model = load_model(args.model, folder, device)
    old = load_json(folder / RECORD) if (folder / RECORD).is_file() else {}
    if args.missing and recipe.is_generator:
        metrics = missing_rows(recipe, model, old.get("metrics", {}), device)
    else:
        metrics = recipe.score(model, lambda: yardsticks(device)) if not recipe.is_generator else \
            recipe.report(recipe, model, folder, lambda: yardsticks(device))
    if "progress" in metrics and not metrics["progress"]:
        metrics["progress"] = old.get("metrics", {}).get("progress", [])
    if args.pick_default is not None and recipe.is_generator:
        rows = [r for r in metrics["sweep"] if r["cond_acc"] >= args.pick_default
                and (not args.both or r["second"]["cond_acc"] >= args.pick_default)]
        if not rows:
            raise SystemExit(f"no setting reaches conditional accuracy {args.pick_default}")
        best = SamplingConfig(**{k: min(rows, key=lambda r: r["kid"])[k] for k in FIELDS})
        if best != model.sampling:
            meta = load_json(folder / CONFIG)
            save_json(folder / CONFIG, {**meta, "sampling": best.to_dict()})
            evaluator, second = evaluators(lambda: yardsticks(device), model.image_size)
            default = score_generator(model, evaluator, best, n=EVAL_N, second=second)
            metrics.update(sweep_row(default), **{k: default[k] for k in ("pixels", "real_pixels", "cond_acc_per_class")
                                                  if k in default}, sampling=best.to_dict())
    rescored = {"command": "python benchmarks/rescore.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "hardware": hardware(device)}
    save_json(folder / RECORD, {**old, "metrics": metrics, "rescored": rescored,
                                "metrics_before_rescore": old.get("metrics_before_rescore") or old.get("metrics", {})})
    print(json.dumps({k: v for k, v in metrics.items() if k not in ("sweep", "progress")}))


if __name__ == "__main__":
    main()
