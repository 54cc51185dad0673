"""Which models the course has, and how each is trained and sampled: one ``Recipe`` per model, in ``RECIPES``.

This is the one place that names the models. A recipe holds the model's class and config, its training defaults
(``TrainConfig``), ``setup`` (the model, its in-memory data and its loss), what training ends with (``finish``), the
report measured after training (``fashiondiff.reports``) and, for a generator, its default ``SamplingConfig`` and
the settings swept after training. A bundled model was trained with exactly these defaults, so ``fashiondiff train
NAME`` alone reproduces it (tests/test_recipes.py compares them with each bundled ``record.json``). The command
line, ``runs``, ``pipelines`` and the benchmarks read the recipes, so adding a model is adding its module and a
recipe here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import BUNDLED, load_meta, load_module, load_tensors, save_tensors
from .classifier import FashionClassifier, NoisyClassifier, ResNetClassifier
from .data import load, map_batches, round_trip
from .diffusion import PREDICTIONS, WEIGHTINGS, diffusion_loss
from .distill import distill_loss, teacher_paths
from .editing import noisy_accuracy, noisy_classifier_loss
from .flow import flow_loss
from .latent import LatentDiffusion
from .precision import autocast, resolve
from .reports import classifier_score, generator_score, score_report, sweep_report, vae_score
from .sampling import SamplingConfig
from .training import TrainConfig
from .transformer import FlowTransformer, TransformerDenoiser
from .vae import VAE

P_UNCOND = 0.1                     # share of labels dropped to the null class: one network, both models of guidance

# The settings measured after training, as changes to the default (``reports.sweep_report``; notebooks 08 and 09).
# Guidance intervals are noise levels sigma (``fashiondiff.sampling``); each bound lies between two visited steps'
# sigmas, so the comment's timesteps are exactly the steps guided.
EVERY_STEP = None
TRANSFORMER_SWEEP = (
    dict(sampler="ddpm", guidance=1.0, guidance_interval=EVERY_STEP),
    *(dict(eta=0.0, guidance=w, guidance_interval=EVERY_STEP) for w in (1.0, 2.0)),
    dict(eta=0.0, guidance=2.0, guidance_interval=(0.0, 1.5)),                   # t = 1..6, the low-noise end
    dict(eta=0.0, guidance=2.0, guidance_interval=(0.5, 4.0)),                   # t = 3..8
    dict(eta=0.0, guidance=2.5, guidance_interval=(0.5, 2.0)),                   # t = 3..7
)
LATENT_SWEEP = (
    *(dict(steps=k, guidance=2.0, guidance_interval=EVERY_STEP) for k in (10, 25, 50)),
    *(dict(steps=25, guidance=w, guidance_interval=EVERY_STEP) for w in (0.0, 1.0)),
    *(dict(steps=25, guidance=w, guidance_interval=(0.0, hi)) for w, hi in ((2.5, 2.0), (3.0, 2.0), (2.5, 4.0))),
    dict(steps=25, guidance=2.5, guidance_interval=(0.35, 6.0)),                 # t = 126..584 of the 25 steps
    dict(steps=25, guidance=2.5, guidance_interval=(0.7, 12.0)),                 # t = 209..667
)   # DDPM at all 1,000 steps is left out: 40 times DDIM-25's network calls (notebook 08 samples a few images with it)
# Its default is 2 Euler steps; 1 and 4 calls, and the consistency sampler, measured after training
FEWSTEP_SWEEP = (*(dict(steps=k) for k in (1, 4)), *(dict(sampler="consistency", steps=k) for k in (2, 4)))
FLOW_SWEEP = (
    *(dict(sampler="euler", steps=k) for k in (4, 20)),
    dict(sampler="heun", steps=5),                                      # 9 evaluations: within the default's 10
    *(dict(guidance=w) for w in (1.0, 2.5)),
    dict(guidance=2.5, guidance_interval=(0.4, 2.5)),                   # the middle of the path, t = 0.3..0.7
)


@dataclass(frozen=True)
class Recipe:
    """How one model of the course is built, trained, measured and (for a generator) sampled."""
    name: str
    model: type[nn.Module]
    config: dict                       # the model's constructor arguments
    train: TrainConfig                 # training defaults (the command line's options replace fields)
    setup: Callable                    # setup(recipe, device, **options) -> (model, loss_fn, n_examples)
    score: Callable                    # score(model, yardsticks, n, settings, seed, progress) -> dict (evaluate)
    report: Callable                   # report(recipe, model, out, yardsticks) -> dict for record.json
    summary: str                       # one line for the command line's help
    sampling: SamplingConfig | None = None    # a generator's default sampling settings
    sweep: tuple = ()                  # a generator's settings measured after training, as changes to the default
    options: dict = field(default_factory=dict)    # extra options of `train` it takes: name -> (type, help)
    finish: Callable | None = None     # finish(model, device): the end of training, before the weights are saved

    @property
    def is_generator(self) -> bool:
        return self.sampling is not None

    def build(self, **changes) -> nn.Module:
        """A fresh model with the recipe's config (``changes`` replace entries) and, for a generator, its default
        sampling."""
        sampling = {"sampling": self.sampling} if self.is_generator else {}
        return self.model(**{**self.config, **changes}, **sampling)


def yardstick_setup(recipe: Recipe, device: torch.device, augment: Callable):
    """A classifier on the 28x28 training set, channels-last (faster convolutions on CPU), with a label-smoothed
    cross-entropy loss on each batch as ``augment(images (B, 1, 28, 28), generator)`` returns it."""
    x, y = load("train", 28)
    x, y = x.to(device).contiguous(memory_format=torch.channels_last), y.to(device)
    model = recipe.build().to(device, memory_format=torch.channels_last)

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        xb, yb = augment(x[idx], gen), y[idx]                                # (B, 1, 28, 28), (B,)
        return F.cross_entropy(model(xb), yb, label_smoothing=0.05)

    return model, loss_fn, len(x)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Each image of (N, 1, H, W) mirrored left to right with probability 1/2."""
    flip = torch.rand(len(x), generator=generator) < 0.5                             # (N,)
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)        # (N, 1, H, W)


def classifier_setup(recipe: Recipe, device: torch.device):
    """The classifier at 28x28, trained with horizontal flips and, for half of each batch, the 16x16
    round trip of the pixel track, so that it also scores 16x16 samples well."""
    def augment(xb, gen):
        xb = random_flip(xb, gen)                                            # (B, 1, 28, 28)
        half = len(xb) // 2
        return torch.cat([xb[:half], round_trip(xb[half:], 16)])             # (B, 1, 28, 28)

    return yardstick_setup(recipe, device, augment)


def shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Each image of (N, 1, H, W) moved by a random whole number of pixels in -max_shift..max_shift along each axis,
    the uncovered border black (-1)."""
    n, _, h, w = x.shape
    d = torch.randint(-max_shift, max_shift + 1, (n, 2), generator=generator).to(x.device)        # (N, 2)
    rows = (torch.arange(h, device=x.device)[None] - d[:, :1]).clamp(-1, h)                       # (N, H)
    cols = (torch.arange(w, device=x.device)[None] - d[:, 1:]).clamp(-1, w)                       # (N, W)
    padded = F.pad(x, (1, 1, 1, 1), value=-1.0)                                                    # (N, 1, H+2, W+2)
    out = padded[torch.arange(n)[:, None, None], 0, rows[:, :, None] + 1, cols[:, None, :] + 1]   # (N, H, W)
    return out[:, None]                                                                            # (N, 1, H, W)


def resnet_setup(recipe: Recipe, device: torch.device):
    """The second yardstick at 28x28 with random shifts of up to 2 pixels and horizontal flips, and, unlike the
    course's classifier, never the 16x16 round trip: it sees only sharp images."""
    def augment(xb, gen):
        xb = random_flip(shift(xb, 2, gen), gen)                             # (B, 1, 28, 28)
        return xb.contiguous(memory_format=torch.channels_last)

    return yardstick_setup(recipe, device, augment)


def transformer_setup(recipe: Recipe, device: torch.device, prediction: str | None = None,
                      loss_weighting: str = "none"):
    """The pixel track: 16x16 images, the model's prediction target (``prediction`` replaces the recipe's x0), its
    noise schedule, label dropout, and the loss's weighting over timesteps (``diffusion.loss_weight``)."""
    if loss_weighting not in WEIGHTINGS:
        raise ValueError(f"--loss-weighting must be one of {', '.join(WEIGHTINGS)}, got {loss_weighting!r}")
    if prediction is not None and prediction not in PREDICTIONS:
        raise ValueError(f"--prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}")
    model = recipe.build(**({} if prediction is None else {"prediction": prediction})).to(device)
    x, y = load("train", model.image_size)
    x, y = x.to(device), y.to(device)
    schedule = model.schedule

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        return diffusion_loss(model, schedule, x[idx], y[idx], gen, prediction=model.prediction, p_uncond=P_UNCOND,
                              weighting=loss_weighting)

    return model, loss_fn, len(x)


def flow_setup(recipe: Recipe, device: torch.device):
    """Part 3's flow: the pixel track's 16x16 images and backbone, the velocity loss with logit-normal t."""
    model = recipe.build().to(device)
    x, y = load("train", model.image_size)
    x, y = x.to(device), y.to(device)

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        return flow_loss(model, x[idx], y[idx], gen, p_uncond=P_UNCOND)

    return model, loss_fn, len(x)


def vae_setup(recipe: Recipe, device: torch.device, kl_weight: float | None = None):
    """The latent track's autoencoder on 28x28 training images (channels-last: faster convs on CPU).
    ``kl_weight``: the loss's beta in place of the recipe's (benchmarks/kl_sweep.py)."""
    if kl_weight is not None and not kl_weight >= 0:
        raise ValueError(f"--kl-weight must be >= 0, got {kl_weight}")
    x, _ = load("train", 28)
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    model = recipe.build(**({} if kl_weight is None else {"beta": kl_weight}))
    model = model.to(device, memory_format=torch.channels_last)

    def loss_fn(model, idx, gen):
        _, rec, kl = model(x[idx.to(device)], gen)     # VAE.loss spelled out: DDP syncs gradients through forward only
        return rec + model.beta * kl

    return model, loss_fn, len(x)


@torch.no_grad()
def vae_finish(model: VAE, device: torch.device) -> None:
    """The end of the VAE's training: fit the latent statistics on the training set (``VAE.fit_latent_stats``),
    which the latent model's training needs, so that they are saved with the weights."""
    x, _ = load("train", 28)
    model.eval().fit_latent_stats(x)


def latent_setup(recipe: Recipe, device: torch.device, vae_weights=None):
    """The latent track's UNet on the training set encoded once by the (frozen) VAE in ``vae_weights`` (default:
    the bundled one): the posterior's mean and log-variance stay in memory and every batch draws a fresh latent
    from them, scaled to unit variance."""
    folder = vae_weights or BUNDLED / "vae"
    vae = load_module(VAE, folder, "vae").to(device)
    if not vae.latent_stats_fitted:
        raise ValueError(f"the VAE in {folder} has no fitted latent statistics (latent_scale = 1, latent_mean = 0); "
                         "train it with `fashiondiff train vae`, which fits them")
    x, y = load("train", 28)
    mean, logvar = map_batches(vae.posterior, x, 1000, device)                 # (N, C, 7, 7) each
    mean, logvar, y = mean.to(device), logvar.to(device), y.to(device)
    model = recipe.build(vae=vae.config, unet={**recipe.config["unet"], "latent_channels": vae.latent_channels})
    model.vae.load_state_dict(vae.state_dict())
    model = model.to(device)
    model.unet.to(memory_format=torch.channels_last)                           # faster small convs on CPU
    schedule = model.schedule

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        z0 = vae.scale(vae.sample_posterior(mean[idx], logvar[idx], gen))      # (B, C, 7, 7)
        z0 = z0.contiguous(memory_format=torch.channels_last)
        return diffusion_loss(model, schedule, z0, y[idx], gen, prediction=model.prediction, p_uncond=P_UNCOND)

    return model, loss_fn, len(x)


def noisy_classifier_setup(recipe: Recipe, device: torch.device):
    """Part 5's noise-aware classifier on the pixel track's 16x16 training images, each batch noised to fresh
    levels (``editing.noisy_classifier_loss``)."""
    model = recipe.build().to(device)
    x, y = load("train", model.config.image_size)
    x, y = x.to(device), y.to(device)

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        return noisy_classifier_loss(model, x[idx], y[idx], gen)

    return model, loss_fn, len(x)


def noisy_classifier_score(model, yardsticks=None, n=None, settings=None, seed: int = 0, progress: bool = False) -> dict:
    """Test accuracy at each of ``editing.NOISY_ACCURACY_SIGMAS`` (the 10,000 test images at 16x16)."""
    x, y = load("test", model.config.image_size)
    device = next(model.parameters()).device
    model.eval()
    return {"accuracy_at_sigma": noisy_accuracy(lambda xb, s: model(xb.to(device), s.to(device)).cpu(), x, y,
                                                seed=seed),
            "n_test": len(y)}


FEWSTEP_TEACHER = "transformer"    # the course's best pixel generator (its record), sampled at its default
FEWSTEP_INIT = "flow"              # the student starts from the flow's weights: same network, continuous time
PAIRS_SEED = 12345                 # the teacher's noise: not the seeds evaluation samples with (0, 1, 2, ...)
ROUTES = ("reflow", "trajectory")  # fashiondiff.distill


def teacher_data(device: torch.device, n: int, path: Path | None = None, progress: bool = True) -> dict:
    """The teacher's trajectories for n labels (0..9 in turn) as ``distill.teacher_paths`` makes them, in bf16
    where this machine samples faster in it: {"paths" (n, K, 1, 16, 16) fp16, "times" (K,), "labels" (n,)} and
    "meta" (teacher, settings, n, seed, precision, seconds). With ``path``, read from that file if it holds the
    same teacher, settings, n and seed (refused if it holds others), else made and written there."""
    import time
    teacher = load_module(TransformerDenoiser, BUNDLED / FEWSTEP_TEACHER, FEWSTEP_TEACHER).to(device)
    settings = teacher.sampling
    want = {"teacher": FEWSTEP_TEACHER, "settings": settings.to_dict(), "n": n, "seed": PAIRS_SEED}
    if path is not None and Path(path).is_file():
        meta = load_meta(path) or {}
        if {k: meta.get(k) for k in want} != want:
            raise ValueError(f"--pairs {path} holds other trajectories ({ {k: meta.get(k) for k in want} }); "
                             f"give another file or remove it")
        return {**load_tensors(path), "meta": meta}
    labels = (torch.arange(n) % 10).to(device)
    precision = resolve("auto", device, lambda: teacher_paths(teacher, labels[:500], settings.replace(steps=1)))
    start = time.time()
    with autocast(precision, device):
        paths, times = teacher_paths(teacher, labels, settings, seed=PAIRS_SEED, progress=progress)
    meta = {**want, "precision": precision, "seconds": round(time.time() - start, 1)}
    data = {"paths": paths.half(), "times": times, "labels": labels.cpu()}
    if path is not None:
        save_tensors(path, data, meta)
    return {**data, "meta": meta}


def fewstep_setup(recipe: Recipe, device: torch.device, route: str = "trajectory", n_pairs: int = 50_000,
                  pairs: Path | None = None):
    """Part 4's few-step student: the flow's network, started from its weights, trained on ``n_pairs`` of the
    teacher's trajectories (made here, or read from the file ``pairs``) by ``route``."""
    if route not in ROUTES:
        raise ValueError(f"--route must be one of {', '.join(ROUTES)}, got {route!r}")
    if not n_pairs >= 1000:
        raise ValueError(f"--n-pairs must be at least 1000, got {n_pairs}")
    data = teacher_data(device, n_pairs, pairs)
    print(f"teacher trajectories: {json.dumps(data['meta'])}", flush=True)
    paths, times, y = data["paths"].to(device), data["times"].to(device), data["labels"].to(device)
    model = recipe.build()
    model.load_state_dict(load_module(FlowTransformer, BUNDLED / FEWSTEP_INIT, FEWSTEP_INIT).state_dict())
    model = model.to(device)

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        return distill_loss(model, paths[idx].float(), times, y[idx], gen, route)

    return model, loss_fn, n_pairs


# Every recipe trains at precision "auto": bf16 where this machine runs a training step faster in it
# (fashiondiff.precision), else fp32. A record says which its run took; the bundled fewstep's
# run took bf16 (given explicitly), the others fp32.
RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("classifier", FashionClassifier, dict(width=32, feature_dim=128, n_classes=10),
           TrainConfig(epochs=10, batch_size=128, lr=2e-3, weight_decay=0.05, warmup_steps=200, ema_decay=0.999,
                       precision="auto"),
           classifier_setup, classifier_score, score_report, summary="the course's yardstick: a small Fashion-MNIST CNN"),
    Recipe("resnet", ResNetClassifier, dict(width=32, feature_dim=128, n_classes=10),
           TrainConfig(epochs=5, batch_size=128, lr=2e-3, weight_decay=0.05, warmup_steps=200, ema_decay=0.999,
                       precision="auto"),
           resnet_setup, classifier_score, score_report,
           summary="the second yardstick: a GroupNorm ResNet trained on sharp images only"),
    # Part 5: the classifier of classifier guidance, on noised 16x16 images (notebook 17).
    Recipe("noisy-classifier", NoisyClassifier, dict(image_size=16, width=32, emb_dim=128, n_classes=10),
           TrainConfig(epochs=10, batch_size=256, lr=2e-3, weight_decay=0.05, warmup_steps=200, ema_decay=0.999,
                       precision="auto"),
           noisy_classifier_setup, noisy_classifier_score, score_report,
           summary="a noise-aware classifier of 16x16 images at every noise level, for classifier guidance"),
    # The pixel track: batch 128, AdamW with weight decay 0.05, one cosine decay from lr 1e-3 (notebook 04).
    Recipe("transformer", TransformerDenoiser, dict(image_size=16, patch_size=2, channels=1, dim=128, heads=4,
                                                    layers=3, ff_dim=256, n_classes=10, timesteps=10,
                                                    schedule="cosine", attention="linear", pos_encoding="sincos"),
           TrainConfig(epochs=17, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_steps=200, ema_decay=0.999,
                       precision="auto", snapshot_every=1404, compile=True),
           transformer_setup, generator_score, sweep_report, summary="16x16 pixel-space transformer, x0-prediction, T = 10",
           # w = 2.5 where sigma is 0.5..2 (timesteps 3..7 of 10): the lowest KID of its sweep (notebook 08)
           sampling=SamplingConfig("ddim", steps=10, guidance=2.5, guidance_interval=(0.5, 2.0), eta=0.0),
           sweep=TRANSFORMER_SWEEP,
           options={"prediction": (str, "what the network predicts: x0 (the recipe's), eps or v"),
                    "loss_weighting": (str, "none (plain MSE of the target, the recipe's) or min-snr (min(SNR, 5))")}),
    # Part 3: the pixel track's backbone, optimiser and training length (the transformer's 17 epochs), trained as
    # a flow (fashiondiff/flow.py): the two compare at equal compute.
    Recipe("flow", FlowTransformer, dict(image_size=16, patch_size=2, channels=1, dim=128, heads=4, layers=3,
                                         ff_dim=256, n_classes=10, attention="linear", pos_encoding="sincos"),
           TrainConfig(epochs=17, batch_size=128, lr=1e-3, weight_decay=0.05, warmup_steps=200, ema_decay=0.999,
                       precision="auto", snapshot_every=1989, compile=True),
           flow_setup, generator_score, sweep_report,
           summary="16x16 pixel-space transformer trained by flow matching, sampled as an ODE",
           # the lowest KID at conditional accuracy >= 0.97 among the settings tried after training (its record)
           sampling=SamplingConfig("euler", steps=10, guidance=1.5),
           sweep=FLOW_SWEEP),
    # Part 4: the flow's network trained on the transformer's trajectories to sample in 1-4 calls (notebook 16).
    # Fine-tuning from the flow's weights: a lower lr than training from scratch. The trajectory route and 2 Euler
    # steps scored best of both routes at 1 and 2 calls in equal short runs (benchmarks/records/fewstep_routes.json).
    Recipe("fewstep", FlowTransformer, dict(image_size=16, patch_size=2, channels=1, dim=128, heads=4, layers=3,
                                            ff_dim=256, n_classes=10, attention="linear", pos_encoding="sincos"),
           TrainConfig(epochs=40, batch_size=128, lr=3e-4, weight_decay=0.05, warmup_steps=200, ema_decay=0.999,
                       precision="auto", compile=True),
           fewstep_setup, generator_score, sweep_report,
           summary="the flow's network distilled from the transformer's DDIM to sample in 1-4 network calls",
           sampling=SamplingConfig("euler", steps=2, guidance=1.0), sweep=FEWSTEP_SWEEP,
           options={"route": (str, "where the student learns: trajectory (the teacher's own iterates, the recipe's) "
                                   "or reflow (straight lines between noise and sample)"),
                    "n_pairs": (int, "how many teacher trajectories to make (the recipe's: 50000)"),
                    "pairs": (Path, "a file of teacher trajectories: read if it holds the same ones, else written")}),
    # tanh on the decoder's output and an L1 reconstruction loss, so that black background comes out black
    # (fashiondiff/vae.py); beta 1e-2, which gave the latent samples a smoother latent than 1e-3 (README, notebook 09).
    Recipe("vae", VAE, dict(latent_channels=8, widths=(16, 32, 64), beta=1e-2, output="tanh", reconstruction="l1"),
           TrainConfig(epochs=7, batch_size=128, lr=2e-3, weight_decay=0.01, warmup_steps=200, ema_decay=0.999,
                       precision="auto", snapshot_every=938),
           vae_setup, vae_score, score_report, summary="the latent track's autoencoder, 28x28 -> 8x7x7",
           options={"kl_weight": (float, "the KL term's weight beta (default: the recipe's 1e-2)")},
           finish=vae_finish),
    # The latent UNet trains on latents encoded once, so the VAE and the UNet together stay within the hour.
    Recipe("latent", LatentDiffusion, dict(vae=None, unet=dict(widths=(32, 64, 128), emb_dim=256, context_tokens=4,
                                                             context_dim=64, heads=4, timesteps=1000,
                                                             schedule="linear")),
           TrainConfig(epochs=20, batch_size=256, lr=1e-3, weight_decay=0.05, warmup_steps=200, ema_decay=0.9995,
                       precision="auto", snapshot_every=1170),
           latent_setup, generator_score, sweep_report, summary="latent diffusion: a UNet over the VAE's latents, eps-prediction, T = 1000",
           # w = 3 where sigma <= 2 (timesteps up to 376 of the 25): the lowest KID among the settings whose
           # accuracy reaches 0.97 in both yardsticks (benchmarks/rescore.py latent --pick-default 0.97 --both)
           sampling=SamplingConfig("ddim", steps=25, guidance=3.0, guidance_interval=(0.0, 2.0), eta=1.0),
           sweep=LATENT_SWEEP,
           options={"vae_weights": (Path, "the VAE folder to work with (default: the bundled VAE)")}),
)}
GENERATORS = tuple(name for name, r in RECIPES.items() if r.is_generator)
YARDSTICK = "classifier"           # the model whose predictions and features score the others (fashiondiff.metrics)
SECOND_YARDSTICK = "resnet"        # trained differently, to check the first (reported as "second")


def recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name raises ``ValueError`` listing the known ones."""
    if name not in RECIPES:
        raise ValueError(f"unknown model {name!r} (allowed: {', '.join(RECIPES)})")
    return RECIPES[name]
