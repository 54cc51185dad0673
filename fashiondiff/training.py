"""One training loop for every model in the course.

``train(model, loss_fn, n_examples, cfg)`` runs AdamW with a learning-rate schedule, gradient clipping,
an exponential moving average (EMA) of the weights, a tqdm bar with the loss, and periodic checkpoints
that ``resume`` continues from. The model-specific part is ``loss_fn(model, idx, generator)``: it gets
the indices of one batch into the caller's in-memory data (int64, shape (batch_size,)) and a seeded generator for
any noise.

A checkpoint (``out/checkpoint/state.safetensors``) holds a ``RunState``: the weights, the EMA, the optimizer moments,
the random states and, in its header, the step and loss history, so a resumed run continues exactly where the
saved one stood. It is written atomically (temporary file, fsync, rename: ``fashiondiff.checkpoint``), so a
crash at any moment leaves the previous checkpoint intact; ``state.json`` beside it is a readable copy of the header.
Ctrl-C (``CtrlC``) lets the current step finish, saves a checkpoint and then raises KeyboardInterrupt.

``cfg.precision`` "bf16" runs the forward pass (and the loss) under ``torch.autocast`` to bfloat16; the weights,
gradients, AdamW's moments, the EMA and the loss's reduction stay fp32 (``fashiondiff.precision``). "auto" takes
bf16 where it measures faster; the checkpoint stores what was taken, and a resumed "auto" run keeps it.

Several processes (``torchrun --nproc_per_node N -m fashiondiff train ...``): ``devices.init_distributed`` joins
the process group (gloo on CPU, nccl on CUDA), the model is wrapped in ``DistributedDataParallel``, every rank takes
its 1/N share of each global batch (so the batch size stays as configured; ``idx`` has shape (batch_size / N,)),
gradients are averaged across ranks, and only rank 0 writes checkpoints, snapshots, weights and the progress bar.
"""

from __future__ import annotations

import copy
import math
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from .checkpoint import config_dict, load_json, load_meta, load_tensors, remove_stale_temporaries, save_json, save_tensors, save_weights
from .devices import rank_and_world
from .precision import autocast, check_precision, resolve


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
    precision: str = "fp32"            # the forward pass's: fp32, bf16 (autocast) or auto (fashiondiff.precision)

    def __post_init__(self):
        check_precision(self.precision)

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
    precision: str = "fp32"          # what the forward passes ran in: fp32 or bf16


# The seeds of train()'s random streams, all derived from cfg.seed; they differ because the streams' roles differ:
# - torch's global random state inside train() (dropout, anything loss_fn draws from it) takes cfg.seed itself;
# - loss_fn's noise generator starts NOISE_SEED_OFFSET further on, and RANK_NOISE_STRIDE (a prime) further per rank:
#   each rank draws noise for other examples, so its noise must differ; the checkpoint stores this generator's state;
# - epoch e's data order is seeded with cfg.seed * ORDER_SEED_STRIDE + e: one permutation for all ranks (each takes its
#   slice of the same global batch) that depends on (seed, epoch) alone, so a resumed run recomputes it; the stride, a
#   prime above any epoch count, keeps one seed's epochs from taking the next seed's orders.
NOISE_SEED_OFFSET = 1
RANK_NOISE_STRIDE = 7919
ORDER_SEED_STRIDE = 100_003


def _noise_seed(cfg: TrainConfig, rank: int) -> int:
    return cfg.seed + NOISE_SEED_OFFSET + RANK_NOISE_STRIDE * rank


def _batches(n_examples: int, cfg: TrainConfig, step: int, rank: int, world: int) -> Iterator[torch.Tensor]:
    """This rank's share of each global batch from ``step`` on: int64 indices, shape (batch_size / world,).

    An epoch is ``n_examples // batch_size`` batches of one permutation; the examples left over are skipped that epoch.
    """
    per_epoch = n_examples // cfg.batch_size
    epoch, first = divmod(step, per_epoch)
    while True:
        seed = cfg.seed * ORDER_SEED_STRIDE + epoch
        order = torch.randperm(n_examples, generator=torch.Generator().manual_seed(seed))
        for b in range(first, per_epoch):
            yield order[b * cfg.batch_size:(b + 1) * cfg.batch_size][rank::world]
        epoch, first = epoch + 1, 0


def _all_reduce(x: float, **kw) -> float:
    """``x`` summed over the ranks (or reduced by ``op=``); every rank must call this at the same point."""
    t = torch.tensor([x])
    dist.all_reduce(t, **kw)
    return t.item()


def _precision(cfg: TrainConfig, model: nn.Module, forward: Callable, loss_fn: Callable, device: torch.device,
               world: int, resume: bool) -> str:
    """The precision the run's forward passes take: ``cfg.precision``, or for "auto" the measured choice
    (``precision.resolve``) on what the loop runs: a training step's forward pass through ``forward`` (compiled where
    the recipe compiles) and its backward pass, in training mode. The probe must be the step itself: on a processor
    with AVX512-BF16 the pixel transformer's compiled step gains enough from bf16 to choose it, while its eager
    forward pass alone does not (README, "bf16 against fp32"). Nothing of the run changes: the random streams are
    forked, the buffers (BatchNorm's running statistics) are put back and the gradients dropped. Every rank must
    take the same: bf16 only if every rank measured it faster. A resumed "auto" run takes the checkpoint's
    (``RunState.restore``), so nothing is measured for it."""
    if cfg.precision != "auto":
        return resolve(cfg.precision, device)            # bf16 where it cannot run: a one-line error
    if resume:
        return "fp32"                                    # replaced by the checkpoint's
    idx = torch.arange(cfg.batch_size // world)

    def step():
        with torch.enable_grad():
            loss_fn(forward, idx, torch.Generator().manual_seed(0)).float().backward()
        model.zero_grad(set_to_none=True)

    devices = [device] if device.type == "cuda" else []
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        was_training = model.training
        model.train()
        choice = resolve(cfg.precision, device, step)
        model.train(was_training)
    with torch.no_grad():
        for name, b in model.named_buffers():
            b.copy_(buffers[name])
    if world > 1:
        choice = "bf16" if _all_reduce(float(choice == "bf16"), op=dist.ReduceOp.MIN) else "fp32"
    return choice


class CtrlC:
    """``with CtrlC() as ctrl_c:`` a Ctrl-C (SIGINT) inside the block sets ``ctrl_c.pressed`` instead of raising
    KeyboardInterrupt, so that the loop can finish its step, save a checkpoint and stop. A SIGINT handler other than
    Python's default (the caller's own, or SIG_IGN in a background job) is left in place."""

    def __enter__(self) -> CtrlC:
        self.pressed = False
        self.takes_over = signal.getsignal(signal.SIGINT) is signal.default_int_handler
        if self.takes_over:
            signal.signal(signal.SIGINT, self._press)
        return self

    def _press(self, signum, frame) -> None:
        self.pressed = True

    def __exit__(self, *exc) -> None:
        if self.takes_over:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def pressed_on_any_rank(self, world: int) -> bool:
        """Ctrl-C reaches each rank at its own moment; all must stop after the same step."""
        if world == 1:
            return self.pressed
        return _all_reduce(float(self.pressed), op=dist.ReduceOp.MAX) > 0


@dataclass
class RunState:
    """What a checkpoint holds and ``resume`` restores: with it a resumed run takes exactly the steps the saved one
    would have taken (the data order needs no state, see ``_batches``)."""
    model: nn.Module
    ema: EMA | None
    opt: torch.optim.Optimizer
    noise: torch.Generator                         # loss_fn's; the global random state (dropout) is saved beside it
    precision: str = "fp32"                        # what the forward passes run in: fp32 or bf16, never auto
    step: int = 0
    history: list = field(default_factory=list)   # [(step, mean loss since the previous entry)]
    saved_step: int | None = None                  # the step of the checkpoint on disk

    @property
    def to_sample(self) -> nn.Module:
        return self.ema.model if self.ema is not None else self.model

    def save(self, folder: Path, meta: dict) -> None:
        """Write ``folder/state.safetensors`` (the tensors; step, history and ``meta`` in its header) and its
        header's readable copy ``folder/state.json``."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema.{k}": v for k, v in self.ema.model.state_dict().items()})
        for i, s in self.opt.state_dict()["state"].items():
            tensors.update({f"optim.{i}.{k}": torch.as_tensor(v) for k, v in s.items()})
        tensors["rng.torch"] = torch.get_rng_state()
        tensors["rng.noise"] = self.noise.get_state()
        header = {"step": self.step, "history": self.history, "precision": self.precision, **meta}
        save_tensors(folder / "state.safetensors", tensors, header)
        save_json(folder / "state.json", header)       # resuming reads the header above
        self.saved_step = self.step

    def restore(self, folder: Path, precision: str = "auto") -> None:
        """Load the checkpoint in ``folder``; its precision stays unless ``precision`` asks for another one (a run
        resumed with "auto" keeps the precision it was started with, whatever a new measurement would say)."""
        t = load_tensors(folder / "state.safetensors")
        meta = load_meta(folder / "state.safetensors") or load_json(folder / "state.json")  # a header without meta
        self.model.load_state_dict({k[6:]: v for k, v in t.items() if k.startswith("model.")})
        if self.ema is not None:
            self.ema.model.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
        opt_state = self.opt.state_dict()
        for key, v in t.items():
            if key.startswith("optim."):
                _, i, name = key.split(".", 2)
                opt_state["state"].setdefault(int(i), {})[name] = v
        self.opt.load_state_dict(opt_state)
        torch.set_rng_state(t["rng.torch"])
        self.noise.set_state(t["rng.noise"])
        self.step = self.saved_step = meta["step"]
        self.history = [tuple(h) for h in meta["history"]]
        if precision == "auto":
            self.precision = meta.get("precision", "fp32")


def train(model: nn.Module, loss_fn: Callable, n_examples: int, cfg: TrainConfig, out: str | Path | None = None,
          name: str = "model", resume: bool = False, progress: bool = True) -> TrainResult:
    """Train ``model`` on ``n_examples`` in-memory examples; see the module docstring.

    ``loss_fn(model, idx, generator) -> scalar loss``, with ``idx`` the int64 indices of this process's share of one
    batch, shape (batch_size / processes,).
    It trains ``model``'s parameters in place and touches nothing else of the caller's: the global random state is
    seeded with ``cfg.seed`` inside and restored on return, and speed-ups (``fastlinear.use_conv_linears``,
    ``devices.keep_freed_memory``) are the caller's to ask for.
    With ``out`` set, checkpoints go to ``out/checkpoint`` every ``cfg.checkpoint_every`` steps and at the
    end, and the weights to sample with (EMA if kept) plus their config to ``out``, under the model's recipe
    ``name`` (``checkpoint.save_weights``).
    """
    from tqdm.auto import tqdm

    total = cfg.total_steps(n_examples)
    if n_examples < cfg.batch_size:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the data ({n_examples} examples)")
    rank, world = rank_and_world()
    if cfg.batch_size % world:
        raise ValueError(f"batch size {cfg.batch_size} must be divisible by the number of processes ({world})")
    folder = Path(out) / "checkpoint" if out else None
    writes = folder is not None and rank == 0            # only rank 0 writes files
    meta = {"kind": name, "train": asdict(cfg), "model_config": config_dict(getattr(model, "config", {}))}
    device = next(model.parameters()).device
    devices = [device] if device.type == "cuda" else []
    net = DDP(model) if world > 1 else model            # averages the gradients across ranks
    forward = torch.compile(net) if cfg.compile else net      # same parameters, fused kernels
    start = time.time()                                  # the precision's measurement (and compiling) included
    precision = _precision(cfg, model, forward, loss_fn, device, world, resume)
    with torch.random.fork_rng(devices=devices, device_type=device.type if devices else "cuda"):
        torch.manual_seed(cfg.seed)                      # dropout draws the same on every rank and every run
        run = RunState(model, EMA(model, cfg.ema_decay) if cfg.ema_decay else None,
                       torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.999)),
                       torch.Generator().manual_seed(_noise_seed(cfg, rank)), precision)
        if resume:
            if folder is None or not (folder / "state.safetensors").is_file():
                raise ValueError(f"--resume: no checkpoint in {folder}")
            if rank == 0:
                remove_stale_temporaries(folder)         # left by a run that was killed while writing
            run.restore(folder, cfg.precision)
            if rank:                                     # the checkpoint holds rank 0's noise generator
                run.noise.manual_seed(_noise_seed(cfg, rank) + run.step)
        batches = _batches(n_examples, cfg, run.step, rank, world)
        model.train()
        run_loss, run_n = 0.0, 0
        with CtrlC() as ctrl_c, tqdm(total=total, initial=run.step, disable=not progress or rank > 0,
                                     desc=f"train {name}", dynamic_ncols=True) as bar:
            while run.step < total and not ctrl_c.pressed_on_any_rank(world):
                for g in run.opt.param_groups:
                    g["lr"] = cfg.lr * lr_factor(run.step, total, cfg)
                with autocast(run.precision, device):   # the forward pass; backward and AdamW stay outside
                    loss = loss_fn(forward, next(batches), run.noise).float()
                run.opt.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                run.opt.step()
                if run.ema is not None:
                    run.ema.update(model, run.step)      # warm-up: no memory of the initial weights
                run.step += 1
                run_loss, run_n = run_loss + loss.item(), run_n + 1
                if run.step % cfg.log_every == 0 or run.step == total:
                    if world > 1:                        # the mean over all ranks, i.e. over the global batch
                        run_loss = _all_reduce(run_loss) / world
                    run.history.append((run.step, run_loss / run_n))
                    bar.set_postfix(loss=f"{run_loss / run_n:.4f}", lr=f"{run.opt.param_groups[0]['lr']:.2e}")
                    run_loss, run_n = 0.0, 0
                bar.update(1)
                if writes and cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0:
                    run.save(folder, meta)
                if writes and cfg.snapshot_every and run.step % cfg.snapshot_every == 0:
                    snapshot = Path(out) / "snapshots" / f"step_{run.step:06d}.safetensors"
                    save_tensors(snapshot, run.to_sample.state_dict())
        if writes and run.saved_step != run.step:       # unless the loop has just saved this step
            run.save(folder, meta)
        if ctrl_c.pressed or run.step < total:          # short of the end: another rank's Ctrl-C stopped this one
            raise KeyboardInterrupt(f"interrupted at step {run.step}; checkpoint saved in {folder}")
        if writes:
            save_weights(out, run.to_sample, name, meta["model_config"])
    model.eval()
    ema = run.ema.model if run.ema is not None else None
    return TrainResult(model, ema, run.step, time.time() - start, run.history, run.precision)
