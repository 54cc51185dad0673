"""A training run, as ``fashiondiff train <model>`` does it: recipe -> trained weights -> measured -> recorded.

``run(name, out)`` builds the model and its loss from the recipe, asks for the CPU speed-ups
(``speed_up``), trains with ``fashiondiff.training.train``, ends training as the recipe says (``Recipe.finish``:
the VAE fits its latent statistics), measures the saved weights with the recipe's report and writes
``record.json`` beside them: the command, git commit, wall time, hardware, training settings and loss history, and
the metrics. That record is what the bundled weights ship with.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn as nn

from .checkpoint import load_module, save_json, save_weights
from .devices import init_distributed, keep_freed_memory, rank_and_world
from .fastlinear import conv_linears_are_faster, use_conv_linears
from .pipelines import yardsticks
from .provenance import git_commit, hardware
from .recipes import recipe
from .training import train


def speed_up(model: nn.Module, device: torch.device) -> nn.Module:
    """The two speed-ups a training command takes on a CPU, each a line a learner can see (the appendix, notebook 18,
    measures both):
    glibc keeps freed memory for the next step (``devices.keep_freed_memory``, for the whole process), and
    linear layers run as oneDNN convolutions where that is faster (``fastlinear.use_conv_linears``, in place: the
    parameters and state_dict do not change). Returns ``model``."""
    if device.type == "cpu":
        keep_freed_memory()
    return use_conv_linears(model, conv_linears_are_faster(device))


def run(name: str, out: str | Path, overrides: dict | None = None, device: str = "auto", resume: bool = False,
        progress: bool = True, command: str = "", measure: bool = True, **options) -> dict | None:
    """Train the recipe ``name`` (``overrides`` replace fields of its ``TrainConfig``), measure, record.

    ``options`` are the recipe's own (``Recipe.options``, e.g. ``vae_weights``); ``measure=False`` skips the
    report. Under torchrun every rank trains, and rank 0 alone measures, writes the record and returns it (the
    other ranks return None)."""
    r = recipe(name)
    unknown = set(options) - set(r.options)
    if unknown:
        raise ValueError(f"{', '.join(sorted(unknown))} does not apply to {name} "
                         f"(its options: {', '.join(r.options) or 'none'})")
    options = {k: v for k, v in options.items() if v is not None}
    cfg = replace(r.train, **{k: v for k, v in (overrides or {}).items() if v is not None})
    if overrides and overrides.get("max_steps"):
        cfg = replace(cfg, epochs=None)
    dev = init_distributed(device)
    rank, world = rank_and_world()
    commit = git_commit()                          # the code this run starts from
    torch.manual_seed(cfg.seed)                    # the initial weights depend on the seed alone
    started = time.time()
    model, loss_fn, n = r.setup(r, dev, **options)
    setup_s = time.time() - started                # data in memory, and anything a recipe makes first
    speed_up(model, dev)
    result = train(model, loss_fn, n, cfg, out=out, name=name, resume=resume, progress=progress and rank == 0)
    final = result.ema if result.ema is not None else result.model
    use_conv_linears(final, False)                 # measured and saved as a plain model
    if r.finish is not None and rank == 0:
        r.finish(final, dev)
        save_weights(out, final, name, final.config)
    rec = {"model": name, "command": command, "git_commit": commit, "resumed": resume,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "wall_time_s": round(result.seconds, 1), "setup_s": round(setup_s, 1), "steps": result.steps,   # of this call, if resumed
           "parameters": sum(p.numel() for p in final.parameters()), "hardware": {**hardware(dev), "processes": world},
           "train": asdict(cfg), "precision": result.precision, "options": {k: str(v) for k, v in options.items()}, "loss_history": result.history}
    if rank > 0:
        return None
    if measure:                                    # the weights as saved, as `fashiondiff evaluate` loads them
        rec["metrics"] = r.report(r, load_module(r.model, out, name).to(dev), Path(out), lambda: yardsticks(dev))
    else:
        rec["metrics"] = {}
    save_json(Path(out) / "record.json", rec)
    return rec
