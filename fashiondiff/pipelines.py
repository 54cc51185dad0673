"""From weights on disk to models and images.

``load_model(kind)`` rebuilds a model from a weights folder (``config.json`` + ``model.safetensors``);
without a folder it loads the bundled weights shipped in ``fashiondiff/weights/<kind>``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from .checkpoint import RECORD, load_json, read_weights
from .classifier import FashionClassifier
from .data import CLASSES, class_index, to_uint8
from .diffusion import sample
from .schedule import NoiseSchedule
from .training import pick_device

BUNDLED = Path(__file__).parent / "weights"
MODELS = {"classifier": FashionClassifier}
# How each generator samples when the command line does not say (chosen by measurement: notebooks 04 and 07).
SAMPLING = {"transformer": dict(sampler="ddim", steps=10, guidance=2.0, guidance_interval=(1, 6), eta=0.0),
            "latent": dict(sampler="ddim", steps=25, guidance=2.5, guidance_interval=(1, 400), eta=1.0)}
RESOLUTION = {"transformer": 16, "latent": 28}      # the size of the images each generator makes


def _model_classes() -> dict:
    from .transformer import EfficientTransformerDenoiser
    from .latent import LatentDiffusion
    from .vae import VAE
    return {**MODELS, "transformer": EfficientTransformerDenoiser, "vae": VAE, "latent": LatentDiffusion}


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


def schedule_of(model) -> NoiseSchedule:
    """The noise schedule a diffusion model was trained with (kept in its config)."""
    return NoiseSchedule(model.config["timesteps"], model.config["schedule"])


def parse_classes(classes: str | list = "all") -> list[int]:
    """``"all"``, ``"Sneaker,bag"``, ``"7,8"`` or a list of names/indices -> class indices."""
    if isinstance(classes, str):
        if classes.strip().lower() == "all":
            return list(range(len(CLASSES)))
        classes = [c for c in classes.split(",") if c.strip()]
    if not classes:
        raise ValueError("no classes given (allowed: class names, indices 0-9, or 'all')")
    return [class_index(c) for c in classes]


def sampling_options(kind: str, sampler=None, steps=None, guidance=None, guidance_interval=None, eta=None) -> dict:
    """The model's ``SAMPLING`` defaults with the given (non-None) options replacing them.
    ``guidance_interval="all"`` applies guidance at every step."""
    given = dict(sampler=sampler, steps=steps, guidance=guidance, guidance_interval=guidance_interval, eta=eta)
    return {**SAMPLING[kind], **{k: v for k, v in given.items() if v is not None}}


def generate(kind: str, model, labels: torch.Tensor, sampler: str | None = None, steps: int | None = None,
             guidance: float | None = None, seed: int = 0, batch_size: int | None = None, trajectory: bool = False,
             progress: bool = False, guidance_interval=None, eta: float | None = None):
    """Sample one image per entry of ``labels`` (N,): float (N, 1, H, W) in [-1, 1].

    Sampler, steps, guidance and eta default to the model's ``SAMPLING`` entry. With ``trajectory`` the
    whole batch is sampled at once and the iterates [x_T, ..., x_0] come back too (for the latent model,
    each iterate decoded by the VAE). Batches of 64 pixel images (128 rows with guidance) or 500 latents are
    the fastest on a 2-core CPU (benchmarks/).
    """
    opts = sampling_options(kind, sampler, steps, guidance, guidance_interval, eta)
    if opts["guidance_interval"] == "all":        # kept as "all" until here, so a second merge cannot undo it
        opts["guidance_interval"] = None
    schedule = schedule_of(model)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    labels = labels.to(device)
    latent = kind == "latent"
    shape = model.latent_shape if latent else (1, RESOLUTION[kind], RESOLUTION[kind])
    opts.update(prediction=model.config.get("prediction", "x0"), clip=None if latent else 1.0)  # latents are not in [-1, 1]
    decode = model.decode if latent else (lambda x: x)
    if trajectory:
        x, xs = sample(model, schedule, labels, shape, generator=gen, trajectory=True, **opts)
        return decode(x).cpu(), [decode(z.to(device)).cpu() for z in xs]
    from tqdm.auto import tqdm
    batch_size = batch_size or (500 if latent else 64)
    starts = range(0, len(labels), batch_size)
    return torch.cat([decode(sample(model, schedule, labels[i:i + batch_size], shape, generator=gen, **opts)).cpu()
                      for i in tqdm(starts, desc=f"sample {kind}", unit="batch", disable=not progress or len(starts) < 4)])


def generate_to_file(kind: str, out, classes="all", n_per_class: int = 8, sampler=None, steps=None, guidance=None,
                     seed: int = 0, weights=None, device="auto", progression: bool = False,
                     guidance_interval=None, eta=None) -> None:
    """What ``fashiondiff generate`` does: ``.npz`` (images uint8 (N, H, W), labels int64 (N,)) or a ``.png``
    grid, one row per class; with ``progression``, the denoising process of one sample per class."""
    from . import plotting
    out = Path(out)
    if out.suffix.lower() not in (".png", ".npz"):
        raise ValueError(f"unknown output extension {out.suffix!r} (allowed: .png, .npz)")
    if n_per_class < 1:
        raise ValueError(f"n_per_class must be at least 1, got {n_per_class}")
    cls = parse_classes(classes)
    model = load_model(kind, weights, device)
    schedule = schedule_of(model)
    if steps is not None and not 1 <= steps <= schedule.T:
        raise ValueError(f"--steps must be between 1 and T = {schedule.T}, got {steps}")
    if guidance is not None and guidance < 0:
        raise ValueError(f"--guidance must be >= 0 (0 = unconditional, 1 = conditional), got {guidance}")
    if progression:
        labels = torch.tensor(cls)
        _, traj = generate(kind, model, labels, sampler, steps, guidance, seed, trajectory=True,
                           guidance_interval=guidance_interval, eta=eta)
        ts = schedule.timesteps(steps or SAMPLING[kind]["steps"])
        fig = plotting.progression(traj, labels, ts)
        images = traj[-1]
    else:
        labels = torch.tensor(cls).repeat_interleave(n_per_class)
        images = generate(kind, model, labels, sampler, steps, guidance, seed, progress=True,
                          guidance_interval=guidance_interval, eta=eta)
        fig = plotting.class_grid(images, labels) if out.suffix.lower() == ".png" else None
    if out.suffix.lower() == ".npz":
        import numpy as np
        np.savez_compressed(out, images=to_uint8(images).numpy(), labels=labels.numpy())
    else:
        fig.savefig(out, dpi=100)
    if fig is not None:
        import matplotlib.pyplot as plt
        plt.close(fig)


def evaluate(kind: str, n: int = 2000, sampler: str | None = None, steps: int | None = None,
             guidance: float | None = None, seed: int = 0, weights=None, device="auto",
             classifier_weights=None, guidance_interval=None, eta=None) -> dict:
    """What ``fashiondiff evaluate`` prints: accuracy for the classifier; for a generator, FID, real FID,
    their ratio and conditional accuracy of ``n`` samples spread evenly over the classes."""
    from .metrics import classifier_accuracy
    classifier = load_model("classifier", classifier_weights if kind != "classifier" else weights, device)
    if kind == "classifier":
        return classifier_accuracy(classifier)
    return evaluate_model(kind, load_model(kind, weights, device), n, sampler, steps, guidance, seed, classifier,
                          progress=True, guidance_interval=guidance_interval, eta=eta)


_EVALUATORS: dict = {}


def evaluate_model(kind: str, model, n: int = 2000, sampler: str | None = None, steps: int | None = None,
                   guidance: float | None = None, seed: int = 0, classifier=None, progress: bool = False,
                   guidance_interval=None, eta=None) -> dict:
    """Score an in-memory generator ``model`` as ``evaluate`` does (classifier: the bundled one)."""
    from .metrics import Evaluator
    if n < 2:
        raise ValueError(f"n must be at least 2 to estimate a covariance, got {n}")
    classifier = classifier if classifier is not None else load_model("classifier", None, next(model.parameters()).device)
    opts = sampling_options(kind, sampler, steps, guidance, guidance_interval, eta)
    if not 1 <= opts["steps"] <= schedule_of(model).T:
        raise ValueError(f"--steps must be between 1 and T = {schedule_of(model).T}, got {opts['steps']}")
    if opts["guidance"] < 0:
        raise ValueError(f"--guidance must be >= 0 (0 = unconditional, 1 = conditional), got {opts['guidance']}")
    labels = torch.arange(n) % len(CLASSES)
    t0 = time.time()
    images = generate(kind, model, labels, seed=seed, progress=progress, **opts)
    seconds = time.time() - t0
    key = (id(classifier), RESOLUTION[kind])
    if key not in _EVALUATORS:                     # the reference statistics take a few seconds: keep them
        _EVALUATORS[key] = Evaluator(classifier, resolution=RESOLUTION[kind])
    scores = _EVALUATORS[key].score(images, labels, seed=seed)
    return {**scores, **opts, "seed": seed, "sample_seconds": round(seconds, 2)}
