"""From weights on disk to models, images and scores.

``load_model(name)`` rebuilds a model of the recipe ``name`` from a weights folder (``config.json`` +
``model.safetensors``); without a folder it loads the bundled weights shipped in ``fashiondiff/weights/<name>``.
A generator comes back with its default sampling settings as ``model.sampling`` (from its ``config.json``).
``generate_to_file``, ``edit_to_file`` and ``evaluate`` are what the command line's ``generate``, ``edit`` and
``evaluate`` do: the sampling options given (``changes``) are applied to the loaded model's default, once, and the
network runs at ``precision`` ("auto": bf16 where this machine multiplies faster in it; the yardsticks always
measure in fp32). ``read_image`` and ``read_mask`` read a learner's PNG for ``edit``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from . import editing
from .checkpoint import BUNDLED, RECORD, WEIGHTS, load_json, load_module
from .data import CLASSES, class_index, to_uint8
from .devices import pick_device
from .generation import check_settings, generate, step_names
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
    # which bundled weights these are (None for others): the course website draws a live copy of a widget that shows
    # a bundled model (``widgets.live_class``), and only those weights are exported to the browser
    model.bundled_name = None if weights else name
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


# ----------------------------------------------------------------------------------------------------------------
# Editing a learner's image


def _read_grey(path, option: str) -> torch.Tensor:
    """A PNG (or any image PIL reads) as uint8 (H, W), colour converted to grey (ITU-R 601 luma, PIL's "L")."""
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as im:
            grey = im.convert("L")
    except FileNotFoundError:
        raise ValueError(f"{option} {path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise ValueError(f"{option} {path}: not an image PIL can read ({type(e).__name__})") from None
    import numpy as np
    return torch.from_numpy(np.array(grey, dtype=np.uint8))                              # (H, W)


def read_image(path) -> torch.Tensor:
    """A square greyscale image file -> float (1, 1, H, W) in [-1, 1] (white 1), as Fashion-MNIST is scaled."""
    grey = _read_grey(path, "--input")
    if grey.shape[0] != grey.shape[1]:
        raise ValueError(f"--input {path}: the image is {grey.shape[1]}x{grey.shape[0]}; give a square one (28x28)")
    return grey.float().div(127.5).sub(1.0)[None, None]                                 # (1, 1, H, W)


def read_mask(path, shape: tuple[int, int]) -> torch.Tensor:
    """A mask image of the input's ``shape`` (H, W) -> float (1, 1, H, W): 1 (white, >= 128) keep, 0 (black) fill."""
    grey = _read_grey(path, "--mask")
    if tuple(grey.shape) != tuple(shape):
        raise ValueError(f"--mask {path}: the mask is {grey.shape[1]}x{grey.shape[0]}, the input "
                         f"{shape[1]}x{shape[0]}; they must be the same size")
    return (grey >= 128).float()[None, None]                                             # (1, 1, H, W)


def box_mask(box: tuple[int, int, int, int], shape: tuple[int, int]) -> torch.Tensor:
    """The keep-mask (1, 1, H, W) of an input of ``shape`` (H, W) with the box x0 <= x < x1, y0 <= y < y1 (pixels of
    the input, x to the right, y down) to fill."""
    x0, y0, x1, y1 = box
    h, w = shape
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"--mask-box {x0},{y0},{x1},{y1}: needs 0 <= x0 < x1 <= {w} and 0 <= y0 < y1 <= {h} "
                         "(pixels of the input; x1, y1 excluded)")
    mask = torch.ones(1, 1, h, w)
    mask[..., y0:y1, x0:x1] = 0
    return mask


def resize(x: torch.Tensor, size: int, mask: bool = False) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 1, size, size): images antialiased and bilinear, as ``data.to_float`` does; a keep-mask
    by a min-pool (a pixel of the result is kept only when every input pixel under it is)."""
    if x.shape[-1] == size:
        return x
    if mask:
        return -torch.nn.functional.adaptive_max_pool2d(-x, size)
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                                           align_corners=False).clamp(-1, 1)


def edit_to_file(name: str, out, image_path, mask_path=None, box=None, to_class=None, strength: float = 0.6,
                 resample: int = 1, changes: dict | None = None, seed: int = 0, weights=None, device="auto",
                 precision: str = "auto") -> None:
    """What ``fashiondiff edit`` does: the image in ``image_path``, resized to the model's images, inpainted where
    the mask (``mask_path`` or ``box``) is 0, towards ``to_class`` (unconditional without one), with RePaint's
    ``resample`` rounds; without a mask, SDEdit to ``to_class`` at ``strength``. Writes a PNG of three panels
    (input | the kept pixels, the rest grey | result) or two (input | result), each at the model's image size.
    Everything the user gave is read and checked before the model is loaded."""
    from . import plotting
    out = Path(out)
    image = read_image(image_path)                                                       # (1, 1, H, W)
    shape = tuple(image.shape[-2:])
    mask = read_mask(mask_path, shape) if mask_path is not None else box_mask(box, shape) if box is not None else None
    label = class_index(to_class) if to_class is not None else None
    if mask is None and label is None:
        raise ValueError("--to-class is needed without a mask (SDEdit moves the image towards a class)")
    if mask is None:
        editing.start_index(1, strength)                                                  # checks the range
    model = load_model(name, weights, device)
    settings = settings_for(model, changes)
    check_settings(model, settings)
    if label is None:                                                                     # no class: unconditional
        settings, label = settings.replace(guidance=0.0), 0
    image = resize(image, model.image_size)                                               # (1, 1, s, s)
    labels = torch.tensor([label])
    with autocast(sampling_precision(model, settings, precision), next(model.parameters()).device):
        if mask is None:
            result = editing.sdedit(model, image, labels, settings, strength, seed)
        else:
            mask = resize(mask, model.image_size, mask=True)
            result = editing.inpaint(model, image, mask, labels, settings, resample, seed)
    what = CLASSES[label] if to_class is not None else "no class"
    title = f"SDEdit: {what}, strength {strength:g}" if mask is None else f"inpainted: {what}, r = {resample}"
    panels = [image, result.cpu()] if mask is None else [image, mask * image, result.cpu()]   # filled: grey (0)
    names = ["input", title] if mask is None else ["input", "kept (grey: to fill)", title]
    fig = plotting.show_images(torch.cat(panels), names, ncols=len(panels), size=2.0)
    fig.savefig(out, dpi=100)
    import matplotlib.pyplot as plt
    plt.close(fig)
