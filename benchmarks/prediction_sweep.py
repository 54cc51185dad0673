"""What the pixel transformer should predict, and how its loss should weigh the noise levels: the same model, data,
optimiser and number of steps, trained with each target (x0, eps, v) and weighting (none, min-SNR), then scored.

    python benchmarks/prediction_sweep.py [--runs x0:none,eps:none,v:none,v:min-snr] [--epochs 2] [--out runs/prediction]
                                          [--record fashiondiff/weights/transformer/prediction_sweep.json]

Each run is

    fashiondiff train transformer --prediction P --loss-weighting W --epochs E --no-eval --out OUT/P_W
    fashiondiff evaluate transformer --weights OUT/P_W --n 2000 --json --sampler ddpm --guidance 1 --guidance-interval all

scored with the plain ancestral sampler of notebook 04 (10 steps, no guidance): the recipe's default sampler was
tuned on the x0 model, so it would favour that one.
The bundled record (read by notebook 11) was made with --epochs 4.

The runs are shorter than the bundled recipe's 17 epochs, so every figure is worse than the bundled model's; the
comparison at equal training is the point. One run per setting: the spread between runs is not measured, and KID's
own spread over subsets (kid_std) is the only error bar. Writes the commands, commit, wall
times, loss histories, scores) to --record (bundled with the transformer's weights, read by notebook 11) and prints one
JSON line per run.
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

KEEP = ("kid", "kid_std", "real_kid", "precision", "recall", "fid", "real_fid", "cond_acc", "second", "pixels")


def one_run(prediction: str, weighting: str, epochs: float, out: Path, n: int) -> dict:
    folder = out / f"{prediction}_{weighting}"
    _, train_s, train_cmd = fashiondiff("train", "transformer", "--prediction", prediction, "--loss-weighting",
                                        weighting, "--epochs", f"{epochs:g}", "--no-eval", "--no-progress",
                                        "--out", str(folder))
    plain, plain_s, plain_cmd = fashiondiff("evaluate", "transformer", "--weights", str(folder), "--n", str(n), "--json",
                                            "--sampler", "ddpm", "--guidance", "1", "--guidance-interval", "all")
    record = json.loads((folder / "record.json").read_text())
    return {"prediction": prediction, "loss_weighting": weighting, "epochs": epochs, "steps": record["steps"],
            "loss_history": record["loss_history"],
            "ddpm_w1": {k: plain[k] for k in KEEP if k in plain},
            "wall_time_s": {"training": record["wall_time_s"], "train_command": train_s, "evaluate": plain_s},
            "commands": [train_cmd, plain_cmd]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", default="x0:none,eps:none,v:none,v:min-snr", help="comma-separated PREDICTION:WEIGHTING")
    p.add_argument("--epochs", type=float, default=2)
    p.add_argument("--n", type=int, default=2000, help="samples per evaluation")
    p.add_argument("--out", type=Path, default=Path("runs/prediction"), help="the runs' folders")
    p.add_argument("--record", type=Path, default=Path("fashiondiff/weights/transformer/prediction_sweep.json"))
    args = p.parse_args()
    runs = [tuple(r.split(":")) for r in args.runs.split(",")]
    if any(len(r) != 2 for r in runs):
        p.error(f"--runs: expected PREDICTION:WEIGHTING pairs, got {args.runs!r}")
    args.out.mkdir(parents=True, exist_ok=True)
    sweep = {"script": "python benchmarks/prediction_sweep.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
             "hardware": hardware(pick_device("auto")), "epochs": args.epochs, "n": args.n, "runs": []}
    for prediction, weighting in runs:
        row = one_run(prediction, weighting, args.epochs, args.out, args.n)
        sweep["runs"].append(row)
        print(json.dumps({k: row[k] for k in ("prediction", "loss_weighting", "ddpm_w1")}), flush=True)
        args.record.write_text(json.dumps(sweep, indent=1) + "\n")


if __name__ == "__main__":
    main()
