"""From weights on disk to models, images and scores.

``load_model(name)`` rebuilds a model of the recipe ``name`` from a weights folder (``config.json`` +
``model.safetensors``); without a folder it loads the bundled weights shipped in ``fashiondiff/weights/<name>``.
A generator comes back with its default sampling settings as ``model.sampling`` (from its ``config.json``).
``generate_to_file`` and ``evaluate`` are what the command line's ``generate`` and ``evaluate`` do: the sampling
options given (``changes``) are applied to the loaded model's default, once.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import BUNDLED, RECORD, WEIGHTS, load_json, load_module
from .data import CLASSES, class_index, to_uint8
from .devices import pick_device
from .generation import generate, step_names
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


def generate_to_file(name: str, out, changes: dict | None = None, classes="all", n_per_class: int = 8,
                     seed: int = 0, weights=None, device="auto", progression: bool = False) -> None:
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
    if progression:
        labels = torch.tensor(cls)
        images, trajectory = generate(model, labels, settings, seed, trajectory=True)
        fig = plotting.progression(trajectory, labels, step_names(model, settings))
    else:
        labels = torch.tensor(cls).repeat_interleave(n_per_class)
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
             device="auto", classifier_weights=None) -> dict:
    """What ``fashiondiff evaluate`` prints: the recipe's score (``fashiondiff.reports``) of the model in ``weights``
    (default: bundled), with the classifier in ``classifier_weights`` as the yardstick; a generator is scored on
    ``n`` samples at its default sampling settings with ``changes`` applied."""
    r = recipe(name)
    if changes and not r.is_generator:
        raise ValueError(f"{name} is not a generator: sampling settings do not apply")
    model = load_model(name, weights, device)
    settings = settings_for(model, changes) if r.is_generator else None
    return r.score(model, lambda: yardsticks(device, classifier_weights), n=n, settings=settings, seed=seed,
                   progress=True)
