"""From weights on disk to models and images.

``load_model(kind)`` rebuilds a model from a weights folder (``config.json`` + ``model.safetensors``);
without a folder it loads the bundled weights shipped in ``fashiondiff/weights/<kind>``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import RECORD, load_json, read_weights
from .classifier import FashionClassifier
from .training import pick_device

BUNDLED = Path(__file__).parent / "weights"
MODELS = {"classifier": FashionClassifier}


def _model_classes() -> dict:
    return dict(MODELS)


def bundled(kind: str) -> Path:
    """The folder of the bundled weights for ``kind``."""
    return BUNDLED / kind


def load_model(kind: str, weights: str | Path | None = None, device: str | torch.device | None = "auto"):
    """Rebuild a ``kind`` model from ``weights`` (a folder; default: the bundled one), in eval mode."""
    classes = _model_classes()
    if kind not in classes:
        raise ValueError(f"unknown model {kind!r} (allowed: {', '.join(classes)})")
    folder = Path(weights) if weights else bundled(kind)
    if weights is None and not (folder / "model.safetensors").is_file():
        raise ValueError(f"no bundled {kind} weights in {folder}; train them with `fashiondiff train {kind}`")
    config, state = read_weights(folder, kind)
    model = classes[kind](**config)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{folder}: weights do not fit a {kind} model ({first})") from None
    return model.to(pick_device(device) if not isinstance(device, torch.device) else device).eval()


def record(kind: str, weights: str | Path | None = None) -> dict:
    """The training record beside a weights folder (empty when there is none)."""
    path = (Path(weights) if weights else bundled(kind)) / RECORD
    return load_json(path) if path.is_file() else {}


def evaluate(kind: str, n: int = 2000, sampler: str | None = None, steps: int | None = None,
             guidance: float | None = None, seed: int = 0, weights=None, device="auto") -> dict:
    """What ``fashiondiff evaluate`` prints: accuracy for the classifier; FID ratio and conditional
    accuracy of n samples for a generator (``n`` spread evenly over the classes)."""
    from .metrics import classifier_accuracy
    if kind == "classifier":
        return classifier_accuracy(load_model("classifier", weights, device))
    raise ValueError(f"cannot evaluate {kind!r} yet")


def generate_to_file(kind: str, out, **kwargs) -> None:
    raise ValueError(f"cannot generate with {kind!r} yet")
