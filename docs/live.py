"""The website's live widgets (issue 30): what the build exports so that the reader's browser runs the bundled models
with onnxruntime-web, and what the browser test compares the page's samples with.

A widget marks itself for a live copy with a CSS class (``fashiondiff.widgets.live_class``): "live-noise",
"live-sample-NAME" or "live-interpolate-NAME", NAME being bundled weights; docs/build.py reads the marks from the
notebooks' saved widget state. ``export`` writes, for the marks (kind, NAME) it is given:

    _live/ort/               onnxruntime-web's WebAssembly build, from docs/node_modules (``npm ci --prefix docs``)
    _live/NAME.onnx          a generator's network model(x_t, t, y), batch dynamic (``torch.onnx``)
    _live/NAME-decode.onnx   what turns its samples into images, where that is not the identity (the latent model's
                             VAE decoder); for "interpolate", the VAE's decoder
    _live/live.json          the rest, all read from the package: the samplers the page runs (rows of
                             ``sampling.SAMPLERS``), each generator's schedule or time grid and default settings, the
                             noise explorer's schedules, images and noise, the interpolator's latents
    _live/reference.json     per live sampler, fixed noise and the package's sample from it (``reference``)

The page's samplers (static/live.js) are the loops of ``diffusion.sample`` and ``flow.sample``, written again in
JavaScript over these numbers; ``reference`` is how a test holds the two to the same answers.
"""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path

import torch

from fashiondiff import data
from fashiondiff.flow import time_grid, sigma as flow_sigma
from fashiondiff.generation import generate
from fashiondiff.pipelines import load_model
from fashiondiff.recipes import RECIPES
from fashiondiff.sampling import SAMPLERS, SamplingConfig
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.widgets import NoiseExplorer, first_test_images

DOCS = Path(__file__).resolve().parent
ORT_DIST = DOCS / "node_modules" / "onnxruntime-web" / "dist"
# onnxruntime-web's plain-script build and the WebAssembly module it loads (SIMD; one thread, as pages that are not
# cross-origin isolated get no SharedArrayBuffer)
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
PAGE_SAMPLERS = ("ddpm", "ddim", "euler", "heun", "consistency")   # the loops static/live.js implements
MAX_PAGE_STEPS = 50             # the steps slider's end in the page (a model's max_steps may be 1000)
REFERENCE_LABELS = (7, 0, 9, 3)  # the classes of a reference sample's images
REFERENCE_SEED = 0


def missing() -> str | None:
    """What the live widgets need that is not installed, as one line; None when all is there."""
    try:
        import onnx  # noqa: F401  (torch.onnx writes the models with it)
    except ImportError:
        return "the onnx package is not installed: pip install -e \".[dev]\"; until then the widgets are stills"
    if not all((ORT_DIST / f).is_file() for f in ORT_FILES):
        return ("onnxruntime-web is not installed: run `npm ci --prefix docs` once (from the npm registry); "
                "until then the widgets are stills")
    return None


def _export_onnx(module: torch.nn.Module, args: tuple, names: list[str], path: Path) -> None:
    """``module(*args)`` to ONNX with the batch (dim 0 of every input and of the output) left free. The TorchScript
    exporter, because torch.export (torch 2.14) fixes the latent UNet's batch at the example's size."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)        # the models' input checks, traced as constants
        warnings.filterwarnings("ignore", "You are using the legacy TorchScript-based ONNX export")
        torch.onnx.export(module, args, str(path), input_names=names, output_names=["out"], dynamo=False,
                          dynamic_axes={n: {0: "batch"} for n in [*names, "out"]})


class _Decode(torch.nn.Module):
    """A generator's (or a VAE's) ``decode`` as a module of its own, for export."""

    def __init__(self, owner):
        super().__init__()
        self.owner = owner

    def forward(self, z):
        return self.owner.decode(z)


def _flat(x: torch.Tensor) -> list[float]:
    """float32 values, each written exactly (a float32 is a float64, which JSON's numbers keep)."""
    return x.detach().float().flatten().tolist()


def _finite(value: float) -> float | None:
    """JSON has no infinity: an unbounded noise level is null (the page reads it as Infinity)."""
    return None if math.isinf(value) else value


def generator_data(name: str, model, folder: Path) -> dict:
    """Export one bundled generator's network (and decoder) to ``folder``; its constants as a dict."""
    x = torch.randn(2, *model.sample_shape, generator=torch.Generator().manual_seed(0))   # (2, C, H, W), an example
    t = (torch.tensor([model.max_steps, 1]) if model.process == "diffusion"
         else torch.tensor([0.9, 0.1]))                                            # (n,)
    y = torch.tensor([1, model.label.null])                                       # (n,)
    _export_onnx(model, (x, t, y), ["x", "t", "y"], folder / f"{name}.onnx")
    decode = None
    if model.decode(x) is not x:                     # a pixel model's decode hands back what it is given: no network
        decode = f"{name}-decode.onnx"
        _export_onnx(_Decode(model), (x,), ["z"], folder / decode)
    steps = range(1, min(model.max_steps, MAX_PAGE_STEPS) + 1)
    out = dict(process=model.process, prediction=model.prediction, clip=model.clip,
               sample_shape=list(model.sample_shape), image_size=model.image_size, null=model.label.null,
               onnx=f"{name}.onnx", decode=decode, t_type="int64" if model.process == "diffusion" else "float32",
               sampling=model.sampling.to_dict(), max_steps=len(steps), model_max_steps=model.max_steps,
               summary=RECIPES[name].summary)
    if model.process == "diffusion":
        s = model.schedule
        out["abar"] = s.abar.tolist()                                                # entry t, t = 0..T
        out["sigma"] = [s.sigma(t) for t in range(s.T + 1)]
        out["timesteps"] = {k: s.timesteps(k) for k in steps}
    else:
        out["grid"] = {k: [[t, _finite(flow_sigma(t))] for t in time_grid(k)] for k in steps}
    return out


def noise_data() -> dict:
    """The noise explorer's images and noise (those of ``NoiseExplorer``'s defaults) and the abar of each schedule
    it offers."""
    explorer = NoiseExplorer()
    kinds, choices = explorer.schedule.options, explorer.T_menu.options
    return dict(shape=list(explorer.images.shape), images=_flat(explorer.images), noise=_flat(explorer.noise),
                abar={kind: {T: NoiseSchedule(T, kind).abar.tolist() for T in choices} for kind in kinds})


def interpolate_data(name: str, folder: Path) -> tuple[dict, dict]:
    """The VAE's decoder, the latents of the first test image of each class (what ``LatentInterpolator`` walks
    between), and a reference: its middle image from Sneaker to Ankle boot at a = 0.3, by the package."""
    vae = load_model(name, device="cpu")
    images = first_test_images(28, len(data.CLASSES))                              # (10, 1, 28, 28)
    with torch.no_grad():
        z = vae.encode(images)                                                     # (10, C, 7, 7)
        first, second, a = 7, 9, 0.3
        middle = vae.decode((1 - a) * z[first:first + 1] + a * z[second:second + 1])   # (1, 1, 28, 28)
    _export_onnx(_Decode(vae), (z[:2],), ["z"], folder / f"{name}-decode.onnx")
    live = dict(decode=f"{name}-decode.onnx", latent_shape=list(z.shape[1:]), latents=_flat(z), images=_flat(images))
    return live, dict(first=first, second=second, a=a, image=_flat(middle))


def reference_settings(model) -> list[SamplingConfig]:
    """The settings a reference sample is drawn with: each page sampler of the model's process at the model's own
    guidance and interval, then at w = 2 inside a bounded and an unbounded interval; unconditional once, plain
    conditional once; for a diffusion model DDIM at eta 0 and 0.5 too."""
    steps = min(5, model.max_steps)
    each = [model.sampling.replace(sampler=name, steps=steps) for name in PAGE_SAMPLERS
            if SAMPLERS[name].process == model.process]
    out = each + [each[0].replace(guidance=0.0), each[-1].replace(guidance=1.0)]
    # guidance w = 2 inside an interval, bounded and unbounded (sigma = inf at a flow's t = 1), with each sampler
    out += [s.replace(guidance=2.0, guidance_interval=interval) for s in each for interval in ((0.5, 2.0), (1.0, None))]
    if model.process == "diffusion":
        out += [model.sampling.replace(sampler="ddim", steps=steps, eta=eta, guidance_interval=None)
                for eta in (0.0, 0.5)]
    return list({str(s.to_dict()): s for s in out}.values())                         # each setting once


def reference(model) -> list[dict]:
    """Per setting: the noise the sampler draws from a ``torch.Generator`` seeded ``REFERENCE_SEED`` (the start,
    then one draw a step; a loop takes them in that order and may leave the last unused) and ``generate``'s images
    from the same seed, in one batch (one generator stream)."""
    labels = torch.tensor(REFERENCE_LABELS)
    assert len(labels) <= model.sample_batch_size
    cases = []
    for settings in reference_settings(model):
        g = torch.Generator().manual_seed(REFERENCE_SEED)
        draws = [torch.randn((len(labels), *model.sample_shape), generator=g) for _ in range(settings.steps + 1)]
        images = generate(model, labels, settings, seed=REFERENCE_SEED)                # (n, 1, H, W)
        cases.append(dict(settings=settings.to_dict(), labels=labels.tolist(), noise=[_flat(d) for d in draws],
                          images=_flat(images), shape=list(images.shape)))
    return cases


def export(out: Path, wanted: set[tuple[str, str]]) -> None:
    """Write ``out``/_live for the widgets marked ``wanted``, a set of (kind, NAME)."""
    folder = out / "_live"
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "ort").mkdir(parents=True)
    for f in ORT_FILES:
        shutil.copy2(ORT_DIST / f, folder / "ort" / f)
    live = dict(classes=list(data.CLASSES), samplers={name: dict(process=SAMPLERS[name].process,
                                                                 fixed_eta=SAMPLERS[name].fixed_eta,
                                                                 summary=SAMPLERS[name].summary)
                                                      for name in PAGE_SAMPLERS},
                generators={}, interpolate={})
    refs = dict(generators={}, noise=None, interpolate={})
    for kind, name in sorted(wanted):
        if kind == "noise":
            live["noise"] = noise_data()
            refs["noise"] = dict(T=10, kind="linear", t=3, images=_noised(live["noise"], 10, "linear", 3))
        elif kind == "sample":
            model = load_model(name, device="cpu").eval()
            live["generators"][name] = generator_data(name, model, folder)
            refs["generators"][name] = reference(model)
        elif kind == "interpolate":
            live["interpolate"][name], refs["interpolate"][name] = interpolate_data(name, folder)
    (folder / "live.json").write_text(json.dumps(live, allow_nan=False))
    (folder / "reference.json").write_text(json.dumps(refs, allow_nan=False))


def _noised(noise: dict, T: int, kind: str, t: int) -> list[float]:
    """The noise explorer's x_t at (T, kind, t), by the package: ``NoiseSchedule.q_sample``."""
    shape = noise["shape"]
    images = torch.tensor(noise["images"]).reshape(shape)
    eps = torch.tensor(noise["noise"]).reshape(shape)
    return _flat(NoiseSchedule(T, kind).q_sample(images, torch.full((shape[0],), t), eps))
