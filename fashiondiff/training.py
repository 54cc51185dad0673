"""One training loop for every model in the course.

``train(model, loss_fn, n_examples, cfg)`` runs AdamW with a learning-rate schedule, gradient clipping,
an exponential moving average (EMA) of the weights, a tqdm bar with the loss, and periodic checkpoints
that ``resume`` continues from. The model-specific part is ``loss_fn(model, idx, generator)``: it gets
the indices of one batch into the caller's in-memory data and a seeded generator for any noise.

A checkpoint (``out/checkpoint/state.safetensors``) holds the weights, the EMA, the optimizer moments, the
random states and, in its header, the step and loss history, so a resumed run continues exactly where the
saved one stood. It is written atomically (temporary file, fsync, rename: ``fashiondiff.checkpoint``), so a
crash at any moment leaves the previous checkpoint intact; ``state.json`` beside it is a readable copy of the header.

Several processes (``torchrun --nproc_per_node N -m fashiondiff train ...``): ``devices.init_distributed`` joins
the process group (gloo on CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel``, every rank takes
its 1/N share of each global batch (so the batch size stays as configured), gradients are averaged across ranks,
and only rank 0 writes checkpoints, snapshots, weights and the progress bar.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import load_json, load_meta, load_tensors, remove_stale_temporaries, save_json, save_tensors, save_weights
from .devices import rank_and_world


@dataclass
class TrainConfig:
    """Everything that shapes a run; stored in every checkpoint."""
    epochs: float | None = None        # passes over the data; or set max_steps
    max_steps: int | None = None
    batch_size: int = 128
    lr: float = 3e-4
    weight_decay: float = 0.05         # AdamW, on Linear/Conv weights only (not norms, biases, embeddings)
    schedule: str = "cosine"           # "cosine" (one decay), "restarts" (cosine warm restarts) or "constant"
    cycles: int = 4                    # restarts only: cycle lengths 1, 2, 4, 8 (T_mult = 2) filling the run
    warmup_steps: int = 100
    grad_clip: float = 1.0
    ema_decay: float | None = 0.999
    checkpoint_every: int = 1000
    snapshot_every: int = 0            # also keep the EMA weights every N steps (out/snapshots/), to plot progress
    seed: int = 0
    log_every: int = 25
    compile: bool = False              # torch.compile the forward pass (fuses element-wise work; see benchmarks/)

    def total_steps(self, n_examples: int) -> int:
        if self.max_steps:
            return int(self.max_steps)
        if not self.epochs:
            raise ValueError("set epochs or max_steps")
        return max(1, int(self.epochs * (n_examples // self.batch_size)))


def lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    """Multiplier on ``cfg.lr`` at ``step``: linear warm-up, then the chosen schedule.

    ``restarts`` is SGDR (Loshchilov & Hutter 2017) with T_mult = 2, its first cycle sized so that
    ``cycles`` cycles end exactly at ``total`` (for 4 cycles: 1/15, 2/15, 4/15, 8/15 of the run).
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * min(1.0, step / total)))
    if cfg.schedule == "restarts":
        t0 = total / (2 ** cfg.cycles - 1)
        k = math.floor(math.log2(step / t0 + 1))          # which cycle this step is in
        start, length = t0 * (2 ** k - 1), t0 * 2 ** k
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - start) / length)))
    raise ValueError(f"unknown schedule {cfg.schedule!r} (allowed: restarts, cosine, constant)")


class EMA:
    """Exponential moving average of a model's weights: ``shadow <- decay * shadow + (1 - decay) * weights``.

    With ``step`` given, the decay warms up as min(decay, (1 + step) / (10 + step)): without it, after n steps
    a fraction decay^n of the *initial* weights stays in the average (0.9995^n: 10% after 4,600 steps; with a
    zero-initialised output layer that shrinks every prediction by as much, which deterministic DDIM cannot recover
    from: notebook 04).
    Sample from ``ema.model``: at the same step it is usually markedly better than the raw weights.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        decay = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        ema_p, p = list(self.model.parameters()), list(model.parameters())
        torch._foreach_lerp_(ema_p, p, 1.0 - decay)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decay the weights of Linear and Conv layers only; norms, biases, embeddings are exempt."""
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            is_matrix = isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)) and name == "weight"
            (decay if is_matrix else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


class DDP(DistributedDataParallel):
    """DistributedDataParallel that lets a loss function reach the model's own attributes (``model.label``,
    ``model.beta``) as it would without the wrapper."""

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


@dataclass
class TrainResult:
    model: nn.Module                 # the raw weights after the last step
    ema: nn.Module | None            # the EMA weights (sample from these)
    steps: int
    seconds: float                   # wall time of this call (not counting earlier, resumed runs)
    history: list = field(default_factory=list)   # [(step, mean loss since the previous entry)]


def _state(model, ema, opt, step, gen, history) -> tuple[dict, dict]:
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
    opt_state = opt.state_dict()
    for i, s in opt_state["state"].items():
        tensors.update({f"optim.{i}.{k}": torch.as_tensor(v) for k, v in s.items()})
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.noise"] = gen.get_state()
    return tensors, {"step": step, "history": history}


def _restore(folder: Path, model, ema, opt, gen) -> tuple[int, list]:
    t = load_tensors(folder / "state.safetensors")
    meta = load_meta(folder / "state.safetensors") or load_json(folder / "state.json")  # a header without meta
    model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
    if ema is not None:
        ema.model.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
    opt_state = opt.state_dict()
    for key, v in t.items():
        if key.startswith("optim."):
            _, i, name = key.split(".", 2)
            opt_state["state"].setdefault(int(i), {})[name] = v
    opt.load_state_dict(opt_state)
    torch.set_rng_state(t["rng.torch"])
    gen.set_state(t["rng.noise"])
    return meta["step"], [tuple(h) for h in meta["history"]]


def train(model: nn.Module, loss_fn: Callable, n_examples: int, cfg: TrainConfig, out: str | Path | None = None,
          kind: str = "model", resume: bool = False, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``n_examples`` in-memory examples; see the module docstring.

    ``loss_fn(model, idx, generator) -> scalar loss``, with ``idx`` an int64 tensor of batch indices.
    It trains ``model``'s parameters in place and touches nothing else of the caller's: the global random state is
    seeded with ``cfg.seed`` inside and restored on return, and speed-ups (``fastlinear.use_conv_linears``,
    ``devices.keep_freed_memory``) are the caller's to ask for.
    With ``out`` set, checkpoints go to ``out/checkpoint`` every ``cfg.checkpoint_every`` steps and at the
    end, and the weights to sample with (EMA if kept) plus their config to ``out``.
    """
    total = cfg.total_steps(n_examples)
    steps_per_epoch = n_examples // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the data ({n_examples} examples)")
    rank, world = rank_and_world()
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the number of processes ({world})")
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(cfg.seed)                      # dropout draws the same on every rank and every run
        return _train(model, loss_fn, n_examples, cfg, total, steps_per_epoch, out, kind, resume, progress)


def _train(model, loss_fn, n_examples, cfg, total, steps_per_epoch, out, kind, resume, progress) -> TrainResult:
    from tqdm.auto import tqdm

    rank, world = rank_and_world()
    gen = torch.Generator().manual_seed(cfg.seed + 1 + 7919 * rank)     # each rank its own noise
    ema = EMA(model, cfg.ema_decay) if cfg.ema_decay else None
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999))
    ckpt = Path(out) / "checkpoint" if out else None
    step, history = 0, []
    if resume:
        if ckpt is None or not (ckpt / "state.safetensors").is_file():
            raise ValueError(f"--resume: no checkpoint in {ckpt}")
        if rank == 0:
            remove_stale_temporaries(ckpt)               # left by a run that was killed while writing
        step, history = _restore(ckpt, model, ema, opt, gen)
        if rank:                                         # the checkpoint holds rank 0's noise generator
            gen.manual_seed(cfg.seed + 1 + 7919 * rank + step)

    def save():
        if ckpt is not None and rank == 0:
            tensors, meta = _state(model, ema, opt, step, gen, history)
            meta.update(kind=kind, train=asdict(cfg), model_config=getattr(model, "config", {}))
            save_tensors(ckpt / "state.safetensors", tensors, meta)
            save_json(ckpt / "state.json", meta)           # a readable copy; resuming reads the header above

    interrupted = []
    old_handler = signal.getsignal(signal.SIGINT)
    if old_handler is signal.default_int_handler:        # Ctrl-C: finish the step, save, stop
        signal.signal(signal.SIGINT, lambda *_: interrupted.append(True))
    net = DDP(model) if world > 1 else model            # averages the gradients across ranks
    forward = torch.compile(net) if cfg.compile else net      # same parameters, fused kernels
    model.train()
    start, run_loss, run_n = time.time(), 0.0, 0
    bar = tqdm(total=total, initial=step, disable=not progress or rank > 0, desc=f"train {kind}", dynamic_ncols=True)

    def stop_requested() -> bool:                        # Ctrl-C reaches every rank: agree on when to stop
        if world == 1:
            return bool(interrupted)
        flag = torch.tensor([float(bool(interrupted))])
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    try:
        while step < total and not stop_requested():
            epoch, offset = divmod(step, steps_per_epoch)
            order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch))
            for b in range(offset, steps_per_epoch):
                if step >= total or stop_requested():
                    break
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size][rank::world]    # this rank's share
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * lr_factor(step, total, cfg)
                loss = loss_fn(forward, idx, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                opt.step()
                if ema is not None:
                    ema.update(model, step)                 # warm-up: no memory of the initial weights
                step += 1
                run_loss, run_n = run_loss + loss.item(), run_n + 1
                if step % cfg.log_every == 0 or step == total:
                    if world > 1:                        # the mean over all ranks, i.e. over the global batch
                        mean = torch.tensor([run_loss])
                        dist.all_reduce(mean)
                        run_loss = mean.item() / world
                    history.append((step, run_loss / run_n))
                    bar.set_postfix(loss=f"{run_loss / run_n:.4f}", lr=f"{opt.param_groups[0]['lr']:.2e}")
                    run_loss, run_n = 0.0, 0
                bar.update(1)
                if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                    save()
                if out is not None and rank == 0 and cfg.snapshot_every and step % cfg.snapshot_every == 0:
                    snap = ema.model if ema is not None else model
                    save_tensors(Path(out) / "snapshots" / f"step_{step:06d}.safetensors", snap.state_dict())
    finally:
        bar.close()
        if old_handler is signal.default_int_handler:
            signal.signal(signal.SIGINT, old_handler)
    save()
    if interrupted or (world > 1 and step < total):
        raise KeyboardInterrupt(f"interrupted at step {step}; checkpoint saved in {ckpt}")
    final = ema.model if ema is not None else model
    if out is not None and rank == 0:
        save_weights(out, final, kind, getattr(model, "config", {}))
    model.eval()
    return TrainResult(model, ema.model if ema else None, step, time.time() - start, history)
