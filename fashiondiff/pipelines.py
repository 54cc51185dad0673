"""From weights on disk to models, images and scores.

``load_model(name)`` rebuilds a model of the recipe ``name`` from a weights folder (``config.json`` +
``model.safetensors``); without a folder it loads the bundled weights shipped in ``fashiondiff/weights/<name>``.
A generator comes back with its default sampling settings as ``model.sampling`` (from its ``config.json``).
``generate_to_file`` and ``evaluate`` are what the command line's ``generate`` and ``evaluate`` do: the sampling
options given (``changes``) are applied to the loaded model's default, once, and the network runs at ``precision``
("auto": bf16 where this machine multiplies faster in it; the yardsticks always measure in fp32).
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import BUNDLED, RECORD, WEIGHTS, load_json, load_module
from .data import CLASSES, class_index, to_uint8
from .devices import pick_device
from .generation import generate, step_names
from .precision import autocast, resolve
from .recipes import SECOND_YARDSTICK, YARDSTICK, recipe
from .sampling import SamplingConfig


def bundled(name: str) -> Path:
    """The folder of the bundled weights for the model ``name``."""
    return BUNDLED / name


def load_model(name: str, weights: str | Path | None = None, device: str | torch.device | None = "auto"):
    """Rebuild a ``name`` model from ``weights`` (a folder; default: the bundled one), in eval mode."""
    r = recipe(name)
    folder = Path(weights) if weights else bundled(name)
    if weights is None and not (folder / "model.safetensors").is_file():
        raise ValueError(f"no bundled {name} weights in {folder}; train them with `fashiondiff train {name}`")
    model = load_module(r.model, folder, name)
    return model.to(device if isinstance(device, torch.device) else pick_device(device))


def yardsticks(device="auto", classifier_weights=None) -> tuple:
    """(the course's classifier, the second yardstick or None when it has no bundled weights), for scoring."""
    second = load_model(SECOND_YARDSTICK, device=device) if (bundled(SECOND_YARDSTICK) / WEIGHTS).is_file() else None
    return load_model(YARDSTICK, classifier_weights, device), second


def record(name: str, weights: str | Path | None = None) -> dict:
    """The training record beside a weights folder (empty when there is none)."""
    path = (Path(weights) if weights else bundled(name)) / RECORD
    return load_json(path) if path.is_file() else {}


def parse_classes(classes: str | list = "all") -> list[int]:
    """``"all"``, ``"Sneaker,bag"``, ``"7,8"`` or a list of names/indices -> class indices."""
    if isinstance(classes, str):
        if classes.strip().lower() == "all":
            return list(range(len(CLASSES)))
        classes = [c for c in classes.split(",") if c.strip()]
    if not classes:
        raise ValueError("no classes given (allowed: class names, indices 0-9, or 'all')")
    return [class_index(c) for c in classes]


def settings_for(model, changes: dict | None = None) -> SamplingConfig:
    """The generator's default sampling settings with ``changes`` (field -> value) applied; a bad value raises
    ``sampling.SettingError`` naming its field."""
    return model.sampling.replace(**changes) if changes else model.sampling


def sampling_precision(model, settings: SamplingConfig, precision: str = "auto") -> str:
    """"fp32" or "bf16" for sampling ``model`` at ``settings``: "auto" times a one-step sample of one sampling batch,
    decoded, both ways (``precision.resolve``): a generator made of convolutions (the latent model) can be slower
    in bf16 on a CPU whose products are faster in it."""
    labels = torch.arange(model.sample_batch_size) % len(CLASSES)
    return resolve(precision, next(model.parameters()).device,
                   lambda: generate(model, labels, settings.replace(steps=1)))


def generate_to_file(name: str, out, changes: dict | None = None, classes="all", n_per_class: int = 8,
                     seed: int = 0, weights=None, device="auto", progression: bool = False,
                     precision: str = "auto") -> None:
    """What ``fashiondiff generate`` does: ``.npz`` (images uint8 (N, H, W), labels int64 (N,)) or a ``.png``
    grid, one row per class; with ``progression``, the denoising process of one sample per class.
    ``changes``: sampling settings that replace the model's default."""
    from . import plotting
    out = Path(out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise ValueError(f"unknown output extension {out.suffix!r} (allowed: .png, .npz)")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    cls = parse_classes(classes)
    model = load_model(name, weights, device)
    settings = settings_for(model, changes)
    at = autocast(sampling_precision(model, settings, precision), next(model.parameters()).device)
    if progression:
        labels = torch.tensor(cls)
        with at:
            images, trajectory = generate(model, labels, settings, seed, trajectory=True)
        fig = plotting.progression(trajectory, labels, step_names(model, settings))
    else:
        labels = torch.tensor(cls).repeat_interleave(n_per_class)
        with at:
            images = generate(model, labels, settings, seed, progress=True)
        fig = plotting.class_grid(images, labels) if out.suffix.lower() == ".png" else None
    if out.suffix.lower() == ".npz":
        import numpy as np
        np.savez_compressed(out, images=to_uint8(images).numpy(), labels=labels.numpy())
    else:
        fig.savefig(out, dpi=100)
    if fig is not None:
        import matplotlib.pyplot as plt
        plt.close(fig)


def evaluate(name: str, n: int = 2000, changes: dict | None = None, seed: int = 0, weights=None,
             device="auto", classifier_weights=None, precision: str = "auto") -> dict:
    """What ``fashiondiff evaluate`` prints: the recipe's score (``fashiondiff.reports``) of the model in ``weights``
    (default: bundled), with the classifier in ``classifier_weights`` as the yardstick; a generator is scored on
    ``n`` samples at its default sampling settings with ``changes`` applied, its network at ``precision`` (the
    answer's ``network_precision`` says which it took; a classifier or a VAE is measured in fp32)."""
    r = recipe(name)
    if changes and not r.is_generator:
        raise ValueError(f"{name} is not a generator: sampling settings do not apply")
    model = load_model(name, weights, device)
    settings = settings_for(model, changes) if r.is_generator else None
    taken = sampling_precision(model, settings, precision) if r.is_generator else "fp32"
    with autocast(taken, next(model.parameters()).device):
        scores = r.score(model, lambda: yardsticks(device, classifier_weights), n=n, settings=settings, seed=seed,
                         progress=True)
    return {**scores, "network_precision": taken}      # "precision" is the samples' (Kynkaanniemi et al.)
