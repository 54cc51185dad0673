"""Training recipes: which data, which loss and which defaults each model of the course trains with.

``fashiondiff train <kind>`` calls ``run(kind, ...)``: it builds the model, hands its loss to the shared
loop in ``fashiondiff.training``, then measures the result and writes ``record.json`` beside the weights
(command, git commit, wall time, hardware, metrics), which is what the bundled weights ship with.
"""

from __future__ import annotations

import copy
import datetime
import os
import platform
import subprocess
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .checkpoint import save_json
from .classifier import FashionClassifier, down_up
from .data import load
from .diffusion import diffusion_loss
from .schedule import NoiseSchedule
from .transformer import EfficientTransformerDenoiser
from .metrics import classifier_accuracy
from .training import TrainConfig, init_distributed, rank_and_world, train
from .vae import VAE, kl_divergence

DEFAULTS = {
    # 10 epochs of a 4-conv net: about 7 minutes on 2 CPU cores.
    "classifier": TrainConfig(epochs=10, batch_size=128, lr=2e-3, weight_decay=0.05, schedule="cosine",
                              warmup_steps=200, ema_decay=0.999, checkpoint_every=1000),
    # The reference recipe (batch 128, AdamW, weight decay 0.05, 30 epochs) with lr 1e-3 and one cosine decay in
    # place of 3e-4 with warm restarts: at 17 epochs that took fid/real_fid from 12.2 to 7.2 (notebook 04).
    "transformer": TrainConfig(epochs=30, batch_size=128, lr=1e-3, weight_decay=0.05, schedule="cosine",
                               cycles=4, warmup_steps=200, ema_decay=0.999, checkpoint_every=1000,
                               snapshot_every=1404, compile=True),
    # 7 epochs of a (16, 32, 64)-wide VAE with an 8 x 7 x 7 latent: about 20 minutes on 2 CPU cores.
    # The latent UNet on latents encoded once: ~670 images/s at batch 256 (measured over a full run), so 20 epochs
    # take about 30 minutes and the VAE plus the UNet stay inside the hour (notebook 06: quality vs training time).
    "latent": TrainConfig(epochs=20, batch_size=256, lr=1e-3, weight_decay=0.05, schedule="cosine", warmup_steps=200,
                          ema_decay=0.9995, checkpoint_every=1000, snapshot_every=1170),
    "vae": TrainConfig(epochs=7, batch_size=128, lr=2e-3, weight_decay=0.01, schedule="cosine", warmup_steps=200,
                       ema_decay=0.999, checkpoint_every=1000, snapshot_every=938),
}


def classifier_setup(device: torch.device):
    """The classifier at 28x28, trained with horizontal flips and, for half of each batch, the 16x16
    round trip of the pixel track, so that it also scores 16x16 samples well."""
    x, y = load("train", 28)
    x, y = x.to(device), y.to(device)
    x = x.contiguous(memory_format=torch.channels_last)                     # ~1.3x faster convs on CPU
    model = FashionClassifier().to(device, memory_format=torch.channels_last)

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        xb, yb = x[idx], y[idx]                                              # (B, 1, 28, 28), (B,)
        flip = torch.rand(len(idx), generator=gen) < 0.5
        xb = torch.where(flip.to(device)[:, None, None, None], xb.flip(-1), xb)
        half = len(idx) // 2
        xb = torch.cat([xb[:half], down_up(xb[half:], 16)])
        return F.cross_entropy(model(xb), yb, label_smoothing=0.05)

    return model, loss_fn, len(x)


def transformer_setup(device: torch.device):
    """The pixel track: 16x16 images, x0-prediction, T = 10 cosine schedule, 10% label dropout."""
    x, y = load("train", 16)
    x, y = x.to(device), y.to(device)
    model = EfficientTransformerDenoiser().to(device)
    schedule = NoiseSchedule(model.config["timesteps"], model.config["schedule"])

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        return diffusion_loss(model, schedule, x[idx], y[idx], gen, prediction="x0", p_uncond=0.1)

    return model, loss_fn, len(x)


def vae_setup(device: torch.device, kl_weight: float | None = None):
    """The latent track's autoencoder on 28x28 training images (channels-last: ~2x faster convs on CPU).
    ``kl_weight``: the loss's beta in place of the default's (benchmarks/kl_sweep.py, notebook 06)."""
    x, _ = load("train", 28)
    x = x.to(device).contiguous(memory_format=torch.channels_last)
    config = VAE_CONFIG if kl_weight is None else {**VAE_CONFIG, "beta": kl_weight}
    model = VAE(**config).to(device, memory_format=torch.channels_last)

    def loss_fn(model, idx, gen):
        _, mse, kl = model(x[idx.to(device)], gen)          # VAE.loss, called through forward (as DDP needs)
        return mse + model.beta * kl

    return model, loss_fn, len(x)


VAE_CONFIG = dict(latent_channels=8, widths=(16, 32, 64), beta=1e-3)


@torch.no_grad()
def vae_metrics(model, out: Path) -> dict:
    """Fit the latent scale on the training set and save it with the weights, then measure: test MSE and KL,
    reconstructions of n = 2,000 training images scored like samples (the floor of the latent pipeline), and
    the classifier's accuracy on test reconstructions next to its accuracy on the originals."""
    from .checkpoint import save_weights
    from .metrics import Evaluator
    from .pipelines import load_model
    model = model.eval().to(memory_format=torch.contiguous_format)
    x_train, _ = load("train", 28)
    model.fit_latent_stats(x_train)
    save_weights(out, model, "vae", model.config)
    return reconstruction_metrics(model, Evaluator(load_model("classifier", device=next(model.parameters()).device)))


@torch.no_grad()
def reconstruction_metrics(model, evaluator, n: int = None, batch_size: int = 1000) -> dict:
    """How well ``model`` (a VAE) reconstructs: see ``vae_metrics``."""
    n = n or EVAL_N
    device = next(model.parameters()).device
    x_test, y_test = load("test", 28)
    x_train, y_train = load("train", 28)
    rec = lambda x: torch.cat([model.decode(model.encode(x[i:i + batch_size].to(device))).cpu()  # noqa: E731
                               for i in range(0, len(x), batch_size)])
    r_test = rec(x_test)
    kl = []
    for i in range(0, len(x_test), batch_size):
        mean, logvar = model.posterior(x_test[i:i + batch_size].to(device))
        kl.append(kl_divergence(mean, logvar).mean().item())
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(1))[:n]
    scores = evaluator.score(rec(x_train[idx]), y_train[idx])
    acc_rec, _ = evaluator.accuracy(r_test, y_test)
    acc_orig, _ = evaluator.accuracy(x_test, y_test)
    return {"test_mse": float(F.mse_loss(r_test, x_test)), "test_kl_per_element": sum(kl) / len(kl),
            "latent_scale": float(model.latent_scale), "latent_mean": model.latent_mean.tolist(),
            "recon_fid": scores["fid"], "recon_real_fid": scores["real_fid"], "recon_ratio": scores["ratio"], "n": n,
            "accuracy_reconstructions": acc_rec, "accuracy_originals": acc_orig}


UNET_CONFIG = dict(widths=(32, 64, 128), emb_dim=256, context_tokens=4, context_dim=64, heads=4,
                   timesteps=1000, schedule="linear")


def latent_setup(device: torch.device, vae_weights=None):
    """The latent track's UNet on the training set encoded once by the (frozen) VAE: the posterior's mean and
    log-variance are kept in memory and every batch draws a fresh latent from them, scaled to unit variance."""
    from .latent import LatentDiffusion
    from .pipelines import load_model
    vae = load_model("vae", vae_weights, device)
    x, y = load("train", 28)
    with torch.no_grad():                                                  # encode once, keep no graph
        means, logvars = zip(*(vae.posterior(x[i:i + 1000].to(device)) for i in range(0, len(x), 1000)))
    mean, std = torch.cat(means), (0.5 * torch.cat(logvars)).exp()           # (N, C, 7, 7) each
    y = y.to(device)
    model = LatentDiffusion(vae.config, {**UNET_CONFIG, "latent_channels": vae.latent_channels}).to(device)
    model.vae.load_state_dict(vae.state_dict())
    model.unet.to(memory_format=torch.channels_last)                       # ~2x faster small convs on CPU
    schedule = NoiseSchedule(model.config["timesteps"], model.config["schedule"])

    def loss_fn(model, idx, gen):
        idx = idx.to(device)
        eps = torch.randn(mean[idx].shape, generator=gen).to(device)
        z0 = vae.scale(mean[idx] + std[idx] * eps).contiguous(memory_format=torch.channels_last)
        return diffusion_loss(model, schedule, z0, y[idx], gen, prediction="eps", p_uncond=0.1)

    return model, loss_fn, len(x)


def latent_metrics(model, out: Path) -> dict:
    """At n = 2,000 with the EMA weights: DDIM at several step counts and guidance scales against DDPM-1000
    (notebook 07 plots them), and the default sampler on each snapshot (quality against training time)."""
    model = model.to(memory_format=torch.contiguous_format)
    return sweep_metrics("latent", model, out, [dict(sampler=s, steps=k, guidance=w, guidance_interval=i)
                                                     for s, k, w, i in LATENT_SWEEP])


LATENT_SWEEP = [("ddim", 10, 2.0, "all"), ("ddim", 25, 2.0, "all"), ("ddim", 50, 2.0, "all"), ("ddim", 100, 2.0, "all"),
                ("ddim", 50, 0.0, "all"), ("ddim", 50, 1.0, "all"), ("ddim", 50, 1.5, "all"), ("ddim", 50, 3.0, "all"),
                ("ddim", 50, 4.0, "all"), ("ddim", 25, 2.0, (1, 400)), ("ddim", 25, 2.5, (1, 400)),
                ("ddpm", 1000, 2.0, "all")]    # the ancestral sampler DDIM is measured against (~30 min at n = 2000)


def transformer_metrics(model, out: Path) -> dict:
    """Measured after training, at n = 2,000 with the EMA weights: every sampler/guidance pair of
    ``TRANSFORMER_SWEEP`` (the default is chosen from these), and the default sampler on each snapshot."""
    return sweep_metrics("transformer", model, out, [dict(sampler=s, guidance=w, guidance_interval=i)
                                                     for s, w, i in TRANSFORMER_SWEEP])


def sweep_metrics(kind: str, model, out: Path, settings: list[dict]) -> dict:
    """Score ``model`` at n = 2,000 at the default setting, then under each setting of ``settings`` (a row that is
    the default reuses that measurement), then the default on every snapshot in ``out/snapshots`` (how quality
    grows with training time)."""
    from .checkpoint import load_tensors
    from .pipelines import SAMPLING, evaluate_model, sampling_options
    keep = ("fid", "real_fid", "ratio", "cond_acc", "sample_seconds")
    default = evaluate_model(kind, model, n=EVAL_N)

    def measure(opts: dict) -> dict:
        is_default = sampling_options(kind, **opts) == sampling_options(kind)
        return default if is_default else evaluate_model(kind, model, n=EVAL_N, **opts)
    sweep = [{**opts, **{k: r[k] for k in keep}} for opts in settings for r in [measure(opts)]]
    progress = []
    snap_model = copy.deepcopy(model)
    for path in sorted((Path(out) / "snapshots").glob("step_*.safetensors")):
        snap_model.load_state_dict(load_tensors(path))
        r = evaluate_model(kind, snap_model, n=EVAL_N)
        progress.append({"step": int(path.stem[5:]), **{k: r[k] for k in keep}})
    return {**{k: default[k] for k in keep}, "sampling": SAMPLING[kind],
            "cond_acc_per_class": default["cond_acc_per_class"], "n": EVAL_N, "sweep": sweep, "progress": progress}


EVAL_N = 2000                      # samples per measurement (the course reports every figure at n = 2000)
TRANSFORMER_SWEEP = [("ddpm", 1.0, "all"), ("ddpm", 2.0, "all"), ("ddim", 1.0, "all"), ("ddim", 1.5, "all"),
                     ("ddim", 2.0, "all"), ("ddim", 3.0, "all"), ("ddim", 2.0, (1, 6)), ("ddim", 2.5, (1, 5))]


SETUPS = {"classifier": (classifier_setup, lambda model, out: classifier_accuracy(model)),
          "transformer": (transformer_setup, transformer_metrics),
          "vae": (vae_setup, vae_metrics),
          "latent": (latent_setup, latent_metrics)}


def git_commit() -> str:
    """HEAD of the repository this package lives in, with ``-dirty`` when the tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True).stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def hardware(device: torch.device) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"device": str(device), "cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version()}


def run(kind: str, out: str | Path, overrides: dict | None = None, device: str = "auto", resume: bool = False,
        progress: bool = True, command: str = "", vae_weights=None, measure: bool = True,
        kl_weight: float | None = None) -> dict | None:
    """Train ``kind`` with its defaults (``overrides`` replace fields of ``TrainConfig``), measure, record.
    ``vae_weights``: the VAE the latent model works with (default: the bundled one); ``kl_weight``: the VAE's
    beta (default: ``VAE_CONFIG``'s); ``measure=False`` skips
    the measurements after training. Under torchrun every rank trains, and rank 0 alone measures, writes the
    record and returns it (the other ranks return None)."""
    if kind not in SETUPS:
        raise ValueError(f"unknown model {kind!r} (allowed: {', '.join(SETUPS)})")
    setup, metrics = SETUPS[kind]
    cfg = replace(DEFAULTS[kind], **{k: v for k, v in (overrides or {}).items() if v is not None})
    if overrides and overrides.get("max_steps"):
        cfg = replace(cfg, epochs=None)
    dev = init_distributed(device)
    rank, world = rank_and_world()
    commit = git_commit()                          # the code this run starts from
    torch.manual_seed(cfg.seed)                    # the initial weights depend on the seed alone
    extra = {"latent": dict(vae_weights=vae_weights), "vae": dict(kl_weight=kl_weight)}.get(kind, {})
    model, loss_fn, n = setup(dev, **extra)
    result = train(model, loss_fn, n, cfg, out=out, kind=kind, resume=resume, progress=progress and rank == 0)
    final = result.ema if result.ema is not None else result.model
    rec = {"model": kind, "command": command, "git_commit": commit, "resumed": resume,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "wall_time_s": round(result.seconds, 1), "steps": result.steps,   # of this call, if resumed
           "parameters": sum(p.numel() for p in final.parameters()), "hardware": {**hardware(dev), "processes": world},
           "train": asdict(cfg), "loss_history": result.history}
    if rank > 0:
        return None
    rec["metrics"] = metrics(final, out) if measure else {}
    if kind == "latent":
        rec["vae_weights"] = str(vae_weights) if vae_weights else "bundled (fashiondiff/weights/vae)"
    save_json(Path(out) / "record.json", rec)
    return rec
