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

Below them, what they share: ``evaluator`` (a classifier with the course's reference, the test set, and its floor,
the training set), ``score_images`` and ``score_generator``.
"""

from __future__ import annotations

import copy
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import load_tensors
from .data import CLASSES, load, map_batches, round_trip
from .generation import generate
from .metrics import Evaluator, accuracy, measures
from .stats import black_kept, black_share, pixel_stats
from .vae import kl_divergence

EVAL_N = 2000                      # samples per measurement: the course reports every figure at n = 2,000


def evaluator(classifier, resolution: int = 28, reference: torch.Tensor | None = None) -> Evaluator:
    """``classifier`` as the course's yardstick at ``resolution``: against the 10,000 test images (or ``reference``,
    (N, 1, 28, 28), where a quick check needs fewer), its floor measured on training images."""
    return Evaluator(classifier, load("test")[0] if reference is None else reference, load("train")[0], resolution)


def evaluators(yardsticks, resolution: int = 28) -> tuple[Evaluator, Evaluator | None]:
    """The two yardsticks as ``Evaluator``s at ``resolution`` (the second None where it has no weights)."""
    first, second = yardsticks()
    return evaluator(first, resolution), (evaluator(second, resolution) if second is not None else None)


def classifier_accuracy(model) -> dict:
    """Test accuracy of a classifier: at 28x28, and after the 16x16 round trip of the pixel track."""
    x, y = load("test", 28)
    model.eval()
    return {"accuracy": accuracy(model, x, y)[0], "accuracy_16": accuracy(model, round_trip(x, 16), y)[0],
            "n_test": len(y)}


def score_images(images: torch.Tensor, labels: torch.Tensor, evaluator: Evaluator, second: Evaluator | None = None,
                 seed: int = 0) -> dict:
    """``evaluator.score`` of images (N, 1, H, W) asked to be ``labels`` (N,); with ``second``, its ``measures``
    but the ratio (``"second"``); and ``pixel_stats`` of the images next to those of N random training images at
    the same size (``"pixels"``, ``"real_pixels"``)."""
    scores = evaluator.score(images, labels, seed=seed)
    if second is not None:
        scores["second"] = {k: v for k, v in measures(second.score(images, labels, seed=seed)).items() if k != "ratio"}
    x_train, _ = load("train", images.shape[-1])
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:len(images)]
    return {**scores, "pixels": pixel_stats(images), "real_pixels": pixel_stats(x_train[idx])}


def score_generator(model, evaluator: Evaluator, settings, n: int = 2000, seed: int = 0, progress: bool = False,
                    second: Evaluator | None = None) -> dict:
    """Sample ``n`` images from a generator (``generation.generate``), spread evenly over the classes, with
    ``settings`` and ``seed``, and score them (``score_images``) with ``evaluator`` and the optional ``second``,
    both made at the generator's ``image_size``: the measures, the settings, the seed and the sampling time."""
    if n < 2:
        raise ValueError(f"n must be at least 2 to estimate a covariance, got {n}")
    for ev in (evaluator, second):
        if ev is not None and ev.resolution != model.image_size:
            raise ValueError(f"the evaluator works at {ev.resolution}x{ev.resolution}, "
                             f"the generator makes {model.image_size}x{model.image_size} images")
    labels = torch.arange(n) % len(CLASSES)                                            # (n,)
    start = time.time()
    images = generate(model, labels, settings, seed=seed, progress=progress)          # (n, 1, H, W)
    seconds = time.time() - start
    return {**score_images(images, labels, evaluator, second, seed), **settings.to_dict(), "seed": seed,
            "sample_seconds": round(seconds, 2)}


def sweep_row(scores: dict) -> dict:
    """What a sweep row keeps of a generator's score: its ``measures``, the second yardstick's, the sampling time."""
    return {**measures(scores), **{k: scores[k] for k in ("second", "sample_seconds") if k in scores}}


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
            **{f"recon_{k}": v for k, v in measures(scores).items() if k != "cond_acc"}, "n": n,
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
    default = score(model, model.sampling)
    sweep = []
    for changes in recipe.sweep:
        settings = model.sampling.replace(**changes)
        sweep.append({**settings.to_dict(), **sweep_row(default if settings == model.sampling else score(model, settings))})
    progress = []
    snapshot = copy.deepcopy(model)
    for path in sorted((Path(out) / "snapshots").glob("step_*.safetensors")):
        snapshot.load_state_dict(load_tensors(path))
        progress.append({"step": int(path.stem[5:]), **sweep_row(score(snapshot, model.sampling))})
    return {**sweep_row(default), **{k: default[k] for k in ("pixels", "real_pixels") if k in default},
            "sampling": model.sampling.to_dict(), "cond_acc_per_class": default["cond_acc_per_class"], "n": EVAL_N,
            "sweep": sweep, "progress": progress}
