"""Weights on disk: safetensors for tensors, JSON for everything else. Nothing is ever unpickled.

A weights folder holds ``model.safetensors`` (the weights to sample with, EMA where there is one),
``config.json`` (``{"model": name, "config": {...}}``, enough to rebuild the module, and for a generator
``"sampling"``: its default ``SamplingConfig``) and, for bundled weights, ``record.json`` (how they were trained
and what they score).
Every file is written atomically: to a temporary file in the same folder, fsync, then rename, so a
crash never leaves a half-written file under the real name.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .sampling import SamplingConfig

BUNDLED = Path(__file__).parent / "weights"          # the weights shipped with the package, a folder per model
WEIGHTS = "model.safetensors"
CONFIG = "config.json"
RECORD = "record.json"


def _atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    """Write a dict of tensors as safetensors, atomically; ``meta`` (JSON-able) goes into the same file's header,
    so tensors and metadata can never disagree after a crash."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    header = {"json": json.dumps(meta)} if meta is not None else None
    _atomic(Path(path), lambda tmp: save_file(tensors, tmp, metadata=header))


def load_meta(path: str | Path) -> dict | None:
    """The ``meta`` that ``save_tensors`` stored in a safetensors file's header (None when there is none)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a valid safetensors file ({e}); it may be truncated") from None
    return json.loads(header["json"]) if "json" in header else None


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``folder`` (never a real file); returns them."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file()]
    for p in stale:
        p.unlink()
    return stale


def save_json(path: str | Path, obj) -> None:
    """Write JSON, atomically."""
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2)
            f.write("\n")
    _atomic(Path(path), write)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file; a missing, truncated or foreign file raises ``ValueError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{path} is not a valid safetensors file ({e}); it may be truncated") from None


def load_json(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None


def config_dict(config) -> dict:
    """A model's config as the JSON-ready dict that rebuilds it (``Model(**config_dict(model.config))``)."""
    return dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)


def save_weights(folder: str | Path, model: torch.nn.Module, name: str, config) -> None:
    """Save ``model``'s state dict and the config that rebuilds it into ``folder``, with the model's default
    sampling settings (``model.sampling``) when it has them."""
    folder = Path(folder)
    save_tensors(folder / WEIGHTS, model.state_dict())
    meta = {"model": name, "config": config_dict(config)}
    if getattr(model, "sampling", None) is not None:
        meta["sampling"] = model.sampling.to_dict()
    save_json(folder / CONFIG, meta)


def read_weights(folder: str | Path, name: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(config.json as a dict, state_dict)`` from a weights folder, checking that it holds weights of the
    recipe ``name``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"weights folder {folder} does not exist")
    meta = load_json(folder / CONFIG)
    if meta.get("model") != name:
        raise ValueError(f"{folder} holds {meta.get('model')!r} weights, not {name!r} weights")
    return meta, load_tensors(folder / WEIGHTS)


def load_module(cls: type[torch.nn.Module], folder: str | Path, name: str) -> torch.nn.Module:
    """A ``cls`` model rebuilt from a weights folder, in eval mode on the CPU; a generator is built with the
    folder's default sampling settings when it has them. Weights that do not fit raise ``ValueError``."""
    meta, state = read_weights(folder, name)
    sampling = {"sampling": SamplingConfig(**meta["sampling"])} if meta.get("sampling") else {}
    model = cls(**meta["config"], **sampling)
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise ValueError(f"{folder}: weights do not fit a {name} model ({first})") from None
    return model.eval()
