"""Classifier guidance against classifier-free guidance on the bundled transformer (part 5, notebook 17).

    python benchmarks/classifier_guidance.py [--n 2000] [--out benchmarks/records/classifier_guidance.json]

The transformer's deterministic sampler (DDIM, eta = 0, 10 steps), the same noise (seed 0) and labels (0..9 in
turn) for every point, in fp32, scored with both yardsticks as ``fashiondiff evaluate`` scores (each yardstick's
reference features computed once):

    cfg        classifier-free guidance w over every step: 2 network calls a step where w != 1
    cg-uncond  the unconditional prediction (w = 0) plus s grad log p(y | x_t) from the bundled noisy-classifier
               (Dhariwal & Nichol 2021's setting): 1 network call and 1 classifier gradient a step
    cg-cond    the conditional prediction (w = 1) plus the same gradient
    cfg at 5 steps, to compare at the 10 calls of the transformer that classifier guidance makes

Writes the record (command, commit, hardware, each point's settings, calls, seconds and scores) to --out after every
point and prints a table. ``--figure`` samples nothing new to score: it draws the record's trade-off beside ten
samples per setting (the unconditional model guided at s = 0, 1, 3; classifier-free guidance at w = 1.5) into
benchmarks/figures/classifier_guidance.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))     # the checkout this script lives in: its records name this commit

import torch  # noqa: E402

from fashiondiff import editing  # noqa: E402
from fashiondiff.checkpoint import save_json  # noqa: E402
from fashiondiff.classifier import NoisyClassifier  # noqa: E402
from fashiondiff.generation import generate, network_calls  # noqa: E402
from fashiondiff.pipelines import bundled, load_model, load_module, yardsticks  # noqa: E402
from fashiondiff.provenance import git_commit, hardware  # noqa: E402
from fashiondiff.reports import evaluators, score_images  # noqa: E402

KEEP = ("kid", "kid_std", "precision", "recall", "cond_acc")
# (method, steps, CFG's w, classifier scale)
POINTS = (*(("cfg", 10, w, 0.0) for w in (1.0, 1.5, 2.0, 3.0, 4.0)),
          *(("cg-uncond", 10, 0.0, s) for s in (0.0, 1.0, 2.0, 4.0, 8.0)),
          *(("cg-cond", 10, 1.0, s) for s in (1.0, 2.0, 4.0)),
          ("cfg", 5, 2.0, 0.0))


def figure(record: dict, model, clf, path: Path) -> None:
    """The record's KID against accuracy for each method, and ten samples (classes 0..9, seed 0) per setting."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from fashiondiff.plotting import _img
    fig = plt.figure(figsize=(11, 3.6))
    ax = fig.add_axes([0.06, 0.15, 0.3, 0.75])
    for method, marker in (("cfg", "o-"), ("cg-uncond", "s-"), ("cg-cond", "^-")):
        ps = [p for p in record["points"] if p["method"] == method and p["steps"] == 10]
        ax.plot([p["cond_acc"] for p in ps], [p["kid"] for p in ps], marker, label=method)
    ax.set(xlabel="accuracy (yardstick)", ylabel="KID x 1e3", title=f"10 DDIM steps, n = {record['n']:,}")
    ax.legend()
    labels, uncond = torch.arange(10), model.sampling.replace(eta=0.0, guidance=0.0, guidance_interval=None)
    rows = {f"s={s:g}": editing.classifier_sample(model, clf, labels, uncond, s, seed=0) for s in (0, 1, 3)}
    rows["w=1.5"] = generate(model, labels, uncond.replace(guidance=1.5), seed=0)
    for r, (name, images) in enumerate(rows.items()):
        for c in range(10):
            a = fig.add_axes([0.42 + c * 0.057, 0.7 - r * 0.21, 0.052, 0.19])
            a.imshow(_img(images[c]), cmap="gray", vmin=0, vmax=1); a.set_xticks([]); a.set_yticks([])
            if c == 0:
                a.set_ylabel(name, fontsize=8)
    fig.text(0.7, 0.93, "unconditional + classifier guidance s (rows 1-3), classifier-free w (row 4); "
             "column k: class k", ha="center", fontsize=9)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "records" / "classifier_guidance.json")
    p.add_argument("--figure", action="store_true", help="draw the record in --out and samples; score nothing")
    a = p.parse_args()
    torch.manual_seed(0)
    model = load_model("transformer", device="cpu")
    clf = load_module(NoisyClassifier, bundled("noisy-classifier"), "noisy-classifier").eval()
    if a.figure:
        figure(json.loads(a.out.read_text()), model, clf, ROOT / "benchmarks" / "figures" / "classifier_guidance.png")
        return
    record = {"script": "python benchmarks/classifier_guidance.py " + " ".join(sys.argv[1:]),
              "git_commit": git_commit(), "hardware": hardware("cpu"), "model": "transformer", "n": a.n, "seed": 0,
              "precision": "fp32", "points": []}
    first, second = evaluators(lambda: yardsticks("cpu"), model.image_size)
    labels = torch.arange(a.n) % 10
    for method, steps, w, scale in POINTS:
        settings = model.sampling.replace(steps=steps, eta=0.0, guidance=w, guidance_interval=None)
        start = time.time()
        if scale == 0:                              # one batch: the noise classifier_sample draws from seed 0
            images = generate(model, labels, settings, seed=0, batch_size=a.n)
        else:
            images = editing.classifier_sample(model, clf, labels, settings, scale, seed=0)
        seconds = time.time() - start
        s = score_images(images, labels, first, second)
        point = {"method": method, "steps": steps, "guidance": w, "classifier_scale": scale,
                 "network_calls": network_calls(model, settings), "classifier_gradients": steps if scale else 0,
                 "sample_seconds": round(seconds, 1), **{k: s[k] for k in KEEP},
                 "second": {k: s["second"][k] for k in KEEP}}
        record["points"].append(point)
        print(json.dumps(point), flush=True)
        save_json(a.out, record)
    print(f"\n{'method':10s} steps   w  scale calls  grads  KID (x1e3)     prec  recall  acc    | second: KID   acc")
    for q in record["points"]:
        print(f"{q['method']:10s} {q['steps']:5d} {q['guidance']:3.1f} {q['classifier_scale']:5.1f} "
              f"{q['network_calls']:5d} {q['classifier_gradients']:5d}  {q['kid']:6.1f} +- {q['kid_std']:5.1f}  "
              f"{q['precision']:.3f} {q['recall']:.3f}  {q['cond_acc']:.3f} | {q['second']['kid']:6.1f} "
              f"{q['second']['cond_acc']:.3f}")


if __name__ == "__main__":
    main()
