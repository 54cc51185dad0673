"""How each kind of model is measured: by ``fashiondiff evaluate`` (a score) and after training (a report).

Each recipe names one of each. ``yardsticks`` below is a function that loads the course's classifier and the
second yardstick (``None`` where it has no weights); a classifier being scored needs neither. Measuring never
changes the model it measures.

    score(model, yardsticks, n, settings, seed, progress)
        classifier_score    test accuracy at 28x28 and after the 16x16 round trip
        vae_score           reconstruction quality (``reconstruction_metrics``)
        generator_score     ``n`` samples at ``settings`` (default: the model's own) scored (``score_generator``)
    report(recipe, model, out, yardsticks), written to the run's ``record.json``
        score_report        the model's score
        sweep_report        a generator at its default sampling settings, under each of the recipe's ``sweep``
                            settings, and at the default on every snapshot kept during training
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_tensors
from .data import load, map_batches
from .metrics import Evaluator, black_kept, black_share, classifier_accuracy, score_generator, score_images
from .vae import kl_divergence

EVAL_N = 2000                      # samples per measurement: the course reports every figure at n = 2,000
SWEEP_KEYS = ("kid", "kid_std", "real_kid", "fid", "real_fid", "ratio", "precision", "recall", "cond_acc",
              "second", "sample_seconds")                              # what a sweep row keeps, where measured


def evaluators(yardsticks, resolution: int = 28) -> tuple[Evaluator, Evaluator | None]:
    """The two yardsticks as ``Evaluator``s at ``resolution`` (the second None where it has no weights)."""
    first, second = yardsticks()
    return Evaluator(first, resolution), (Evaluator(second, resolution) if second is not None else None)


def classifier_score(model, yardsticks=None, n=None, settings=None, seed: int = 0, progress: bool = False) -> dict:
    return classifier_accuracy(model)


def vae_score(model, yardsticks, n: int = EVAL_N, settings=None, seed: int = 0, progress: bool = False) -> dict:
    return reconstruction_metrics(model, *evaluators(yardsticks), n=n)


def generator_score(model, yardsticks, n: int = EVAL_N, settings=None, seed: int = 0, progress: bool = False) -> dict:
    evaluator, second = evaluators(yardsticks, model.image_size)
    return score_generator(model, evaluator, settings or model.sampling, n, seed, progress, second)


def score_report(recipe, model, out: Path, yardsticks) -> dict:
    return recipe.score(model, yardsticks)


@torch.no_grad()
def reconstruction_metrics(vae, evaluator: Evaluator, second: Evaluator | None = None, n: int = EVAL_N,
                           batch_size: int = 1000) -> dict:
    """How well ``vae`` reconstructs: test MSE and KL per latent element; reconstructions of ``n`` training images
    scored like samples (the floor of the latent pipeline), with the share of their exactly black pixels that stay
    black (``metrics.black_kept``); the classifier's accuracy on test reconstructions next to its accuracy on the
    originals."""
    device = next(vae.parameters()).device
    x_test, y_test = load("test", 28)
    x_train, y_train = load("train", 28)
    reconstruct = lambda x: map_batches(lambda xb: vae.decode(vae.encode(xb)), x, batch_size, device)  # noqa: E731
    r_test = reconstruct(x_test)
    mean, logvar = map_batches(vae.posterior, x_test, batch_size, device)              # (N, C, 7, 7) each
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(1))[:n]
    r_train = reconstruct(x_train[idx])
    scores = score_images(r_train, y_train[idx], evaluator, second)
    return {"test_mse": float(F.mse_loss(r_test, x_test)), "test_kl_per_element": float(kl_divergence(mean, logvar).mean()),
            "latent_scale": float(vae.latent_scale), "latent_mean": vae.latent_mean.tolist(),
            "recon_fid": scores["fid"], "recon_real_fid": scores["real_fid"], "recon_ratio": scores["ratio"], "n": n,
            **{f"recon_{k}": scores[k] for k in ("kid", "kid_std", "real_kid", "precision", "recall")},
            "black_kept": black_kept(r_train, x_train[idx]), "black_share": black_share(r_train),
            "black_share_originals": black_share(x_train[idx]),
            **({"recon_second": scores["second"]} if "second" in scores else {}),
            "accuracy_reconstructions": evaluator.accuracy(r_test, y_test)[0],
            "accuracy_originals": evaluator.accuracy(x_test, y_test)[0]}


def sweep_report(recipe, model, out: Path, yardsticks) -> dict:
    """Score ``model`` at n = 2,000 at its default sampling settings (``model.sampling``), then under each change
    of ``recipe.sweep`` (a row equal to the default reuses that measurement), then the default on every snapshot in
    ``out/snapshots`` (how quality grows with training time)."""
    evaluator, second = evaluators(yardsticks, model.image_size)
    score = lambda m, settings: score_generator(m, evaluator, settings, n=EVAL_N, second=second)  # noqa: E731
    keep = lambda r: {k: r[k] for k in SWEEP_KEYS if k in r}                                        # noqa: E731
    default = score(model, model.sampling)
    sweep = []
    for changes in recipe.sweep:
        settings = model.sampling.replace(**changes)
        sweep.append({**settings.to_dict(), **keep(default if settings == model.sampling else score(model, settings))})
    progress = []
    snapshot = copy.deepcopy(model)
    for path in sorted((Path(out) / "snapshots").glob("step_*.safetensors")):
        snapshot.load_state_dict(load_tensors(path))
        progress.append({"step": int(path.stem[5:]), **keep(score(snapshot, model.sampling))})
    return {**keep(default), **{k: default[k] for k in ("pixels", "real_pixels") if k in default},
            "sampling": model.sampling.to_dict(), "cond_acc_per_class": default["cond_acc_per_class"], "n": EVAL_N,
            "sweep": sweep, "progress": progress}
