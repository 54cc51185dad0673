"""Editing real images with the bundled generators (part 5, issue 28): SDEdit, inpainting, inversion.

    python benchmarks/editing.py [--n 1000] [--n-inpaint 100] [--n-latent 100] [--n-invert 50] [--n-pairs 200]
                                 [--threads 1] [--quick] [--out benchmarks/records/editing.json]
                                 [--figures benchmarks/figures]

Every measure is taken in the course's yardstick's features (the first yardstick only), at 16x16 for the pixel
models and 28x28 for the latent model, seed 0. Inputs are real test images, the same number of each class (the
first of each class in test order). KID x 10^3 is ``stats.kid`` (100 subsets of up to 1,000) against
``REF_PER_CLASS`` random training images of each class: ``kid`` pools the scored set against the references of
its classes (the set holds each class equally often, so the two have one composition: realism, whatever the
class), ``kid_class`` is the mean over classes of each class's images against that class's reference (realism *as
that class*). ``real`` rows score real test images of the same classes (KID's floor, about 0).

    sdedit      the transformer at its default settings (DDIM, 10 steps, w = 2.5 at sigma 0.5..2) edits --n images
                to another class (``TARGET``: T-shirt -> Pullover -> Coat -> Shirt -> T-shirt, Sandal -> Sneaker ->
                Ankle boot -> Sandal, Trouser -> Dress -> Bag -> Trouser) at strengths 0.1, 0.2, ..., 1.0, each the
                start of one level of its 10-step grid (its sigma recorded): KID for the target classes, the share
                classified as the target and as the source class, and the RMSE to the input in [-1, 1]. Strength 0
                is the inputs themselves.
    inpaint     the transformer (--n-inpaint) and the latent model (--n-latent, its default: DDIM 25 steps, eta = 1,
                w = 3 at sigma <= 2) fill three regions (the left half, the top half, the centre box of half the side)
                of test images of their own class, with resample r = 1 (replace) and RePaint's r = 2 and 4: KID,
                accuracy on the true class, network calls per image (``editing.inpainting_calls``), the largest error
                on the known pixels (zero: they are pasted back) and the seam: the mean |difference| of neighbouring
                pixels across the mask's edge (one known, one filled) against the originals' at the same pairs.
    invert      DDIM inversion then reconstruction (``editing.invert``, ``editing.reconstruct``) of --n-invert test
                images with their class and no guidance (w = 1): RMSE to the input against steps, for the flow and
                the latent model at 5, 10, 20, 50, 100 steps (its VAE's own RMSE is that model's floor) and the
                transformer at its 10; the transformer also at its default guidance.
    interpolate --n-pairs pairs of test images of one class: the transformer's (10 steps, w = 1) midpoint of the
                inverted noises by slerp, by a straight line, and the pixels' average, scored like SDEdit (KID
                against the class, accuracy, the classifier's mean top probability).

Writes the record (command, commit, hardware, wall times, every point) to --out and three figures to --figures,
prints one JSON line per point, then tables. --quick: a few images each and the figures beside --out, for tests.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))     # the checkout this script lives in: its records name this commit

from fashiondiff import editing
from fashiondiff.checkpoint import save_json
from fashiondiff.data import CLASSES, load
from fashiondiff.pipelines import load_model, yardsticks
from fashiondiff.provenance import git_commit, hardware
from fashiondiff.reports import evaluators
from fashiondiff.stats import kid

STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
TARGET = {0: 2, 2: 4, 4: 6, 6: 0, 5: 7, 7: 9, 9: 5, 1: 3, 3: 8, 8: 1}      # a permutation moving every class
RESAMPLE = (1, 2, 4)
INVERT_STEPS = (5, 10, 20, 50, 100)
REF_PER_CLASS = 1000


def balanced(split: str, size: int, n: int, skip: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n images of ``split`` at ``size``, n / 10 of each class (after the first ``skip`` of each), class-major."""
    x, y = load(split, size)
    idx = torch.cat([(y == c).nonzero()[skip:skip + n // len(CLASSES), 0] for c in range(len(CLASSES))])
    return x[idx], y[idx]


class Judge:
    """The first yardstick at one resolution, with a reference of ``REF_PER_CLASS`` training images of each class."""

    def __init__(self, evaluator, size: int):
        self.ev, self.size = evaluator, size
        train_x, train_y = load("train", size)
        self.test_x, self.test_y = load("test", size)
        g = torch.Generator().manual_seed(0)
        self.ref = {c: self.ev.features(train_x[(train_y == c).nonzero()[:, 0][torch.randperm(
                    int((train_y == c).sum()), generator=g)[:REF_PER_CLASS]]]) for c in range(len(CLASSES))}

    def real(self, labels: torch.Tensor, skip: int) -> torch.Tensor:
        """Real test images of ``labels``' classes in its composition, the first ``skip`` of each class left out."""
        idx = torch.empty(len(labels), dtype=torch.long)
        for c in labels.unique().tolist():
            where = (labels == c).nonzero()[:, 0]
            idx[where] = (self.test_y == c).nonzero()[skip:skip + len(where), 0]
        return self.test_x[idx]

    @torch.no_grad()
    def score(self, images: torch.Tensor, labels: torch.Tensor) -> dict:
        """KID x 10^3 (+- spread over subsets) of the whole set against the references of its classes (its labels
        must hold each class equally often: the reference then has the set's composition), and ``kid_class``: the
        mean over classes of each class's images against that class's reference; the share classified as
        ``labels``; the classifier's mean top probability."""
        counts = labels.bincount(minlength=len(CLASSES))
        classes = counts.nonzero()[:, 0].tolist()
        if len(set(counts[classes].tolist())) != 1:
            raise ValueError(f"the labels must hold each of their classes equally often, got {counts.tolist()}")
        g = lambda: torch.Generator().manual_seed(0)                                        # noqa: E731
        f = self.ev.features(images)                                                         # (N, 128)
        pooled, pooled_std = kid(f, torch.cat([self.ref[c] for c in classes]), generator=g())
        per_class = [kid(f[labels == c], self.ref[c], generator=g()) for c in classes]
        with torch.autocast("cpu", enabled=False):
            p = F.softmax(self.ev.classifier(self.ev.classifier.prepare(images.float())), dim=1)   # (N, 10)
        return {"kid": 1e3 * pooled, "kid_std": 1e3 * pooled_std,
                "kid_class": 1e3 * sum(m for m, _ in per_class) / len(classes),
                "kid_class_std": 1e3 * sum(sd for _, sd in per_class) / len(classes),
                "acc": float((p.argmax(1) == labels).float().mean()), "confidence": float(p.max(1).values.mean())}


def rmse(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).pow(2).mean().sqrt())


def emit(record: dict, section: str, point: dict, out: Path) -> None:
    record[section].append(point)
    print(json.dumps({"section": section, **point}), flush=True)
    save_json(out, record)


# ----------------------------------------------------------------------------------------------------------------


def sdedit_points(model, judge: Judge, n: int, record: dict, out: Path) -> torch.Tensor:
    x, y = balanced("test", 16, n)
    target = torch.tensor([TARGET[int(c)] for c in y])
    settings = model.sampling
    grid = editing.levels(model, settings.steps)
    floor = judge.score(judge.real(target, skip=n // 10), target)
    record["sdedit_real"] = {**floor, "n": n}
    before = judge.score(x, target)
    emit(record, "sdedit", {"strength": 0.0, "sigma0": 0.0, "start_index": settings.steps, "n": n, **before,
                            "source_acc": float((judge.ev.predict(x) == y).float().mean()), "rmse": 0.0,
                            "calls": 0, "seconds": 0.0}, out)
    examples = [x[::max(n // 10, 1)][:10]]
    for s in STRENGTHS:
        start = time.time()
        edits = editing.sdedit(model, x, target, settings, s, seed=0)                    # (n, 1, 16, 16)
        i = editing.start_index(settings.steps, s)
        calls = sum(settings.calls_at(level.sigma) for level in grid[i:-1])
        point = {"strength": s, "sigma0": grid[i].sigma, "start_index": i, "n": n, **judge.score(edits, target),
                 "source_acc": float((judge.ev.predict(edits) == y).float().mean()), "rmse": rmse(edits, x),
                 "calls": calls, "seconds": round(time.time() - start, 1)}
        emit(record, "sdedit", point, out)
        examples.append(edits[::max(n // 10, 1)][:10])
    return torch.stack(examples, 1)                                                      # (10, 11, 1, 16, 16)


def masks(size: int) -> dict[str, torch.Tensor]:
    """Keep-masks (1, 1, size, size): 0 where the model fills."""
    h, q = size // 2, size // 4
    out = {name: torch.ones(1, 1, size, size) for name in ("left half", "top half", "centre box")}
    out["left half"][..., :, :h] = 0
    out["top half"][..., :h, :] = 0
    out["centre box"][..., q:q + h, q:q + h] = 0
    return out


def seam(images: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean |difference| of horizontally and vertically neighbouring pixels of which one is kept, one filled."""
    diffs = []
    for dim in (-1, -2):
        a, b = images.narrow(dim, 0, images.shape[dim] - 1), images.narrow(dim, 1, images.shape[dim] - 1)
        ma, mb = mask.narrow(dim, 0, mask.shape[dim] - 1), mask.narrow(dim, 1, mask.shape[dim] - 1)
        across = (ma != mb).expand_as(a)
        diffs.append((a - b).abs()[across])
    return float(torch.cat(diffs).mean())


def inpaint_points(name: str, model, judge: Judge, n: int, record: dict, out: Path) -> torch.Tensor:
    size = model.image_size
    x, y = balanced("test", size, n)
    settings = model.sampling
    floor = judge.score(x, y)
    examples = []
    for mask_name, mask in masks(size).items():
        emit(record, "inpaint", {"model": name, "mask": mask_name, "resample": 0, "n": n, **floor,
                                 "seam": seam(x, mask), "calls": 0, "known_max_error": 0.0,
                                 "filled_rmse": 0.0, "seconds": 0.0}, out)
        shown = [x[::max(n // 10, 1)][:4], (mask * x)[::max(n // 10, 1)][:4]]
        for r in RESAMPLE:
            start = time.time()
            filled = editing.inpaint(model, x, mask, y, settings, resample=r, seed=0)    # (n, 1, size, size)
            keep = mask.expand_as(x).bool()
            point = {"model": name, "mask": mask_name, "resample": r, "n": n, **judge.score(filled, y),
                     "seam": seam(filled, mask), "calls": editing.inpainting_calls(model, settings, r),
                     "known_max_error": float((filled - x).abs()[keep].max()),
                     "filled_rmse": float((filled - x)[~keep].pow(2).mean().sqrt()),
                     "seconds": round(time.time() - start, 1)}
            emit(record, "inpaint", point, out)
            shown.append(filled[::max(n // 10, 1)][:4])
        examples.append(torch.stack(shown, 1))                                           # (4, 5, 1, s, s)
    return torch.cat(examples, 1)                                                        # (4, 15, 1, s, s)


def invert_points(models: dict, n: int, steps: tuple, record: dict, out: Path) -> None:
    for name, model in models.items():
        x, y = balanced("test", model.image_size, n)
        if getattr(model, "vae", None) is not None:
            record["vae_floor_rmse"] = rmse(model.decode(model.vae.encode(x)), x)
        runs = [(w, k) for k in ((10,) if name == "transformer" else steps[:4] if name == "flow" else steps)
                for w in ((1.0, model.sampling.guidance) if name == "transformer" else (1.0,))]
        for w, k in runs:
            settings = model.sampling.replace(steps=k, guidance=w)
            start = time.time()
            noise = editing.invert(model, x, y, settings)
            back = editing.reconstruct(model, noise, y, settings)
            grid = editing.levels(model, k)
            calls = 2 * sum(settings.calls_at(level.sigma) for level in grid[:-1])
            emit(record, "invert", {"model": name, "steps": k, "guidance": w, "n": n, "rmse": rmse(back, x),
                                    "noise_std": float(noise.std()), "calls": calls,
                                    "seconds": round(time.time() - start, 1)}, out)


def interpolate_points(model, judge: Judge, n_pairs: int, record: dict, out: Path) -> torch.Tensor:
    a, y = balanced("test", 16, n_pairs)
    b, _ = balanced("test", 16, n_pairs, skip=n_pairs // 10)
    settings = model.sampling.replace(guidance=1.0)
    start = time.time()
    za, zb = editing.invert(model, a, y, settings), editing.invert(model, b, y, settings)
    mids = {"slerp of inverted noises": editing.reconstruct(model, editing.slerp(za, zb, 0.5), y, settings),
            "straight line of inverted noises": editing.reconstruct(model, (za + zb) / 2, y, settings),
            "pixel average": (a + b) / 2,
            "real images (floor)": judge.real(y, skip=2 * (n_pairs // 10))}
    seconds = round(time.time() - start, 1)
    for how, images in mids.items():
        emit(record, "interpolate", {"how": how, "n_pairs": n_pairs, **judge.score(images, y),
                                     "seconds": seconds}, out)
    record["interpolate_noise_norm_ratio"] = float(((za + zb) / 2).flatten(1).norm(dim=1).mean()
                                                   / za.flatten(1).norm(dim=1).mean())
    k = max(n_pairs // 10, 1)
    path = [editing.reconstruct(model, editing.slerp(za[::k][:6], zb[::k][:6], t), y[::k][:6], settings)
            for t in (0.0, 0.25, 0.5, 0.75, 1.0)]
    return torch.stack([a[::k][:6], *path, b[::k][:6], mids["pixel average"][::k][:6]], 1)   # (6, 8, 1, 16, 16)


# ----------------------------------------------------------------------------------------------------------------
# Figures


def image_grid(ax, images: torch.Tensor, col_titles: list[str], row_titles: list[str] | None = None) -> None:
    """images (R, C, 1, H, W) in [-1, 1] as one picture with thin gaps, titled above each column."""
    r, c, _, h, w = images.shape
    canvas = torch.ones(r * (h + 1) - 1, c * (w + 1) - 1)
    for i in range(r):
        for j in range(c):
            canvas[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = (images[i, j, 0] + 1) / 2
    ax.imshow(canvas.clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([j * (w + 1) + w / 2 for j in range(c)], col_titles, fontsize=7)
    ax.xaxis.tick_top()
    ax.set_yticks([i * (h + 1) + h / 2 for i in range(r)] if row_titles else [], row_titles or [], fontsize=7)
    ax.tick_params(length=0)
    for s in ax.spines.values():
        s.set_visible(False)


def figures(record: dict, sd_examples, inpaint_examples, interp_examples, folder: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    folder.mkdir(parents=True, exist_ok=True)
    paths = []

    pts = record["sdedit"]
    fig = plt.figure(figsize=(10, 3.6))
    ax1, ax2, ax3 = fig.add_axes([0.085, 0.14, 0.235, 0.72]), fig.add_axes([0.37, 0.14, 0.18, 0.72]), \
        fig.add_axes([0.63, 0.02, 0.36, 0.9])
    ax1.plot([q["rmse"] for q in pts], [q["kid_class"] for q in pts], "o-", color="C0", label="as the target class")
    ax1.plot([q["rmse"] for q in pts], [q["kid"] for q in pts], "^:", color="C2", label="pooled: any class")
    for q in pts:
        ax1.annotate(f"{q['sigma0']:.2g}", (q["rmse"], q["kid_class"]), fontsize=7, xytext=(3, 3),
                     textcoords="offset points")
    ax1.axhline(record["sdedit_real"]["kid_class"], color="grey", lw=0.8, ls="--")
    ax1.set_xlabel("RMSE to the input (lower: more faithful)")
    ax1.set_yscale("symlog", linthresh=100)
    ax1.set_ylabel("KID x 1e3 (lower: more real; log above 100)", fontsize=8)
    ax1.legend(fontsize=7)
    ax1.set_title(f"SDEdit, transformer, n = {pts[0]['n']}\n(labels: start sigma; dashed: real images)", fontsize=8)
    s = [q["strength"] for q in pts]
    ax2.plot(s, [q["acc"] for q in pts], "o-", label="classified as target")
    ax2.plot(s, [q["source_acc"] for q in pts], "s-", label="classified as source")
    ax2.set_xlabel("strength s (0: the input)")
    ax2.set_ylim(0, 1)
    ax2.legend(fontsize=7)
    ax2.set_title("the yardstick's verdict", fontsize=8)
    image_grid(ax3, sd_examples, ["input"] + [f"{q['strength']:g}" for q in pts[1:]],
               [f"to {CLASSES[k][:7]}" for k in target_rows(sd_examples.shape[0])])
    ax3.set_title("edited to (rows) at strength (columns)", fontsize=8, pad=14)
    paths.append(folder / "editing_sdedit.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    rows = record["inpaint"]
    fig = plt.figure(figsize=(10, 5.4))
    axk, axs, axi = fig.add_axes([0.08, 0.52, 0.25, 0.42]), fig.add_axes([0.41, 0.52, 0.25, 0.42]), \
        fig.add_axes([0.03, 0.0, 0.94, 0.32])
    for mi, mask_name in enumerate(masks(16)):
        for mk, (model, style) in enumerate((("transformer", "o-"), ("latent", "s--"))):
            qs = [q for q in rows if q["model"] == model and q["mask"] == mask_name and q["resample"] > 0]
            if not qs:
                continue
            kw = dict(color=f"C{mi}", label=f"{model[:5]}, {mask_name}")
            axk.plot([q["calls"] for q in qs], [q["kid"] for q in qs], style, **kw)
            real = next(q for q in rows if q["model"] == model and q["mask"] == mask_name and q["resample"] == 0)
            axs.plot([q["calls"] for q in qs], [q["seam"] / real["seam"] for q in qs], style, **kw)
    calls = sorted({q["calls"] for q in rows if q["resample"] > 0})
    for ax in (axk, axs):
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(calls, [str(c) for c in calls], fontsize=7)
        ax.set_xlabel("network calls per image (r = 1, 2, 4)", fontsize=8)
    axk.set_ylabel("KID x 1e3 vs the same classes")
    axs.set_ylabel("seam |difference| / the originals'")
    axs.axhline(1, color="grey", lw=0.8, ls="--")
    axk.legend(fontsize=7, loc="upper left", bbox_to_anchor=(2.45, 1.0))
    axk.set_title("completions: realism", fontsize=8)
    axs.set_title("completions: the edge of the mask", fontsize=8)
    image_grid(axi, inpaint_examples, ["original", "kept", "r = 1", "r = 2", "r = 4"] * 3)
    axi.set_title("the transformer's completions: left half, top half, centre box", fontsize=8, pad=14)
    paths.append(folder / "editing_inpaint.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)

    fig = plt.figure(figsize=(10, 3.4))
    axr, axp = fig.add_axes([0.07, 0.15, 0.3, 0.7]), fig.add_axes([0.44, 0.02, 0.55, 0.86])
    for model, style in (("flow", "o-"), ("latent", "s-"), ("transformer", "D")):
        qs = [q for q in record["invert"] if q["model"] == model and q["guidance"] == 1.0]
        if qs:
            axr.plot([q["steps"] for q in qs], [q["rmse"] for q in qs], style, label=model)
    if "vae_floor_rmse" in record:
        axr.axhline(record["vae_floor_rmse"], color="C1", lw=0.8, ls="--", label="latent: VAE alone")
    axr.set_xscale("log")
    axr.set_yscale("log")
    axr.set_xlabel("steps (inversion, then as many to reconstruct)")
    axr.set_ylabel("RMSE of the reconstruction")
    axr.legend(fontsize=7)
    n = record["invert"][0]["n"]
    axr.set_title(f"DDIM inversion, w = 1, n = {n}", fontsize=8)
    image_grid(axp, interp_examples, ["a", "t = 0", ".25", ".5", ".75", "t = 1", "b", "pixel avg"])
    axp.set_title("transformer: a and b, the slerp path of their inverted noises, the pixels' average", fontsize=8,
                  pad=14)
    paths.append(folder / "editing_inversion.png")
    fig.savefig(paths[-1], dpi=80)
    plt.close(fig)
    return paths


def target_rows(rows: int) -> list[int]:
    """The target class of each example row of the SDEdit figure (one input of each class, class order)."""
    return [TARGET[c] for c in range(rows)]


# ----------------------------------------------------------------------------------------------------------------


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="SDEdit inputs (a multiple of 10)")
    p.add_argument("--n-inpaint", type=int, default=100, help="the transformer's inpainting inputs per mask")
    p.add_argument("--n-latent", type=int, default=100, help="the latent model's inpainting inputs per mask (0: none)")
    p.add_argument("--n-invert", type=int, default=50)
    p.add_argument("--n-pairs", type=int, default=200)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="20 images each, inversion at 5 and 10 steps, for a test; figures beside --out")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "records" / "editing.json")
    p.add_argument("--figures", type=Path, default=None, help="default: benchmarks/figures (--quick: beside --out)")
    a = p.parse_args()
    steps = INVERT_STEPS
    if a.quick:
        a.n = a.n_inpaint = a.n_latent = a.n_invert = a.n_pairs = 20                 # 2 a class: a KID each
        steps = INVERT_STEPS[:2]
    figures_dir = a.figures or (a.out.parent if a.quick else ROOT / "benchmarks" / "figures")
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    began = time.time()
    record = {"script": "python benchmarks/editing.py " + " ".join(sys.argv[1:]), "git_commit": git_commit(),
              "hardware": hardware(torch.device("cpu")), "seed": 0, "quick": a.quick,
              "n": {"sdedit": a.n, "inpaint": a.n_inpaint, "inpaint_latent": a.n_latent, "invert": a.n_invert,
                    "interpolate_pairs": a.n_pairs},
              "target": {CLASSES[k]: CLASSES[v] for k, v in TARGET.items()},
              "sdedit": [], "inpaint": [], "invert": [], "interpolate": []}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    first, _ = evaluators(lambda: yardsticks("cpu"), 16)
    judge16 = Judge(first, 16)
    models = {name: load_model(name, device="cpu") for name in ("transformer", "flow", "latent")}
    record["settings"] = {name: str(m.sampling) for name, m in models.items()}
    with torch.no_grad():
        sd = sdedit_points(models["transformer"], judge16, a.n, record, a.out)
        inp = inpaint_points("transformer", models["transformer"], judge16, a.n_inpaint, record, a.out)
        if a.n_latent:
            first28, _ = evaluators(lambda: yardsticks("cpu"), 28)
            inpaint_points("latent", models["latent"], Judge(first28, 28), a.n_latent, record, a.out)
        invert_points(models, a.n_invert, steps, record, a.out)
        ip = interpolate_points(models["transformer"], judge16, a.n_pairs, record, a.out)
    record["wall_time_s"] = round(time.time() - began, 1)
    record["figures"] = [str(q.relative_to(ROOT) if q.is_relative_to(ROOT) else q)
                         for q in figures(record, sd, inp, ip, figures_dir)]
    save_json(a.out, record)

    print(f"\nSDEdit (transformer, n = {a.n}): KID x1e3 as the target class and pooled "
          f"(real: {record['sdedit_real']['kid_class']:.1f}, {record['sdedit_real']['kid']:.1f})")
    print(f"{'s':>4} {'sigma0':>7} {'calls':>5} {'KID class':>15} {'KID pooled':>15} {'acc(target)':>11} "
          f"{'acc(source)':>11} {'RMSE':>6}")
    for q in record["sdedit"]:
        print(f"{q['strength']:4.1f} {q['sigma0']:7.3f} {q['calls']:5d} {q['kid_class']:7.1f} +- {q['kid_class_std']:5.1f} "
              f"{q['kid']:7.1f} +- {q['kid_std']:5.1f} {q['acc']:11.3f} {q['source_acc']:11.3f} {q['rmse']:6.3f}")
    print(f"\n{'model':12} {'mask':11} {'r':>2} {'calls':>5} {'KID':>14} {'acc':>6} {'seam':>6} {'known err':>9}")
    for q in record["inpaint"]:
        print(f"{q['model']:12} {q['mask']:11} {q['resample']:2d} {q['calls']:5d} {q['kid']:7.1f} +- "
              f"{q['kid_std']:4.1f} {q['acc']:6.3f} {q['seam']:6.3f} {q['known_max_error']:9.2g}")
    print(f"\n{'model':12} {'w':>4} {'steps':>5} {'calls':>5} {'RMSE':>7} {'noise std':>9}")
    for q in record["invert"]:
        print(f"{q['model']:12} {q['guidance']:4g} {q['steps']:5d} {q['calls']:5d} {q['rmse']:7.4f} {q['noise_std']:9.3f}")
    print(f"\n{'midpoint':34} {'KID class':>15} {'KID pooled':>15} {'acc':>6} {'confidence':>10}")
    for q in record["interpolate"]:
        print(f"{q['how']:34} {q['kid_class']:7.1f} +- {q['kid_class_std']:5.1f} {q['kid']:7.1f} +- {q['kid_std']:5.1f} "
              f"{q['acc']:6.3f} {q['confidence']:10.3f}")
    print(f"\nwall time {record['wall_time_s']} s; figures: {', '.join(record['figures'])}")


if __name__ == "__main__":
    main()
