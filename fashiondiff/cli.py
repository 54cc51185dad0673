"""The ``fashiondiff`` command: ``train``, ``generate`` and ``evaluate`` for every model of the course.

    fashiondiff train classifier
    fashiondiff train transformer --epochs 30
    fashiondiff generate transformer --progression --out fashion_mnist_generation.png
    fashiondiff train vae && fashiondiff train latent --vae-weights runs/vae
    fashiondiff generate latent --classes Sneaker --sampler ddim --steps 50 --guidance 2 --out sneakers.png
    fashiondiff evaluate transformer --n 2000 --json

Without ``--weights`` the bundled weights are used. Bad arguments exit with status 2 and one line.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

TRAINABLE = ("classifier", "transformer", "vae", "latent")
GENERATORS = ("transformer", "latent")
EVALUABLE = ("classifier",) + GENERATORS


class UsageError(ValueError):
    """Bad input from the command line: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashiondiff", description="Diffusion models on Fashion-MNIST.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model (defaults: the course's recipe)")
    t.add_argument("model", choices=TRAINABLE)
    length = t.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float)
    length.add_argument("--max-steps", type=int)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--schedule", choices=("restarts", "cosine", "constant"), help="learning-rate schedule")
    t.add_argument("--out", type=Path, help="output folder (default: runs/<model>)")
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--seed", type=int)
    t.add_argument("--vae-weights", type=Path, default=None, help="latent: the VAE to work with (default: bundled)")
    t.add_argument("--kl-weight", type=float, default=None, help="vae: beta, the KL term's weight (default 1e-3)")
    t.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (default)")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-eval", action="store_true", help="skip the measurements after training (quick runs)")

    g = sub.add_parser("generate", help="sample images from a diffusion model")
    g.add_argument("model", choices=GENERATORS)
    g.add_argument("--classes", default="all", help="comma-separated names or indices, or 'all'")
    g.add_argument("--n-per-class", type=int, default=8)
    _sampling_args(g)
    g.add_argument("--progression", action="store_true", help="draw the denoising process per class")
    g.add_argument("--out", type=Path, required=True, help="FILE.png (labelled grid) or FILE.npz")

    e = sub.add_parser("evaluate", help="measure a model (accuracy, FID ratio, conditional accuracy)")
    e.add_argument("model", choices=EVALUABLE)
    e.add_argument("--n", type=int, default=2000, help="number of samples (default 2000)")
    _sampling_args(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _sampling_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sampler", choices=("ddpm", "ddim"), default=None, help="default: the model's own")
    p.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's own)")
    p.add_argument("--guidance", type=float, default=None,
                   help="classifier-free guidance w: 0 unconditional, 1 plain conditional")
    p.add_argument("--guidance-interval", type=_interval, default=None, metavar="LO,HI|all",
                   help="apply guidance only at timesteps LO..HI (default: the model's own), or at all steps")
    p.add_argument("--eta", type=float, default=None, help="DDIM noise: 0 deterministic (default), 1 = DDPM's variance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: bundled)")
    p.add_argument("--device", default="auto")


def _interval(text: str):
    if text.strip().lower() == "all":
        return "all"
    try:
        lo, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two integers) or 'all', got {text!r}") from None
    if not 1 <= lo <= hi:
        raise argparse.ArgumentTypeError(f"need 1 <= LO <= HI, got {lo},{hi}")
    return (lo, hi)


def _check_out(path: Path, suffixes: tuple[str, ...]) -> None:
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out {path}: unknown extension {path.suffix or '(none)'!r} (allowed: {', '.join(suffixes)})")
    if not path.parent.resolve().is_dir():
        raise UsageError(f"--out {path}: folder {path.parent} does not exist")


def cmd_train(a) -> int:
    from . import recipes
    for name in ("epochs", "max_steps", "batch_size", "checkpoint_every"):
        v = getattr(a, name)
        if v is not None and v <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {v}")
    out = a.out or Path("runs") / a.model
    overrides = dict(epochs=a.epochs, max_steps=a.max_steps, batch_size=a.batch_size, lr=a.lr, schedule=a.schedule,
                     checkpoint_every=a.checkpoint_every, seed=a.seed)
    command = "fashiondiff " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    if a.vae_weights is not None and a.model != "latent":
        raise UsageError("--vae-weights only applies to `train latent`")
    if a.kl_weight is not None and (a.model != "vae" or a.kl_weight < 0):
        raise UsageError("--kl-weight applies to `train vae` only and must be >= 0")
    try:
        rec = recipes.run(a.model, out, overrides, device=a.device, resume=a.resume, progress=not a.no_progress,
                          command=command, vae_weights=a.vae_weights, measure=not a.no_eval,
                          kl_weight=a.kl_weight)
    finally:                                         # under torchrun: leave the process group cleanly
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if rec is not None:                              # rank 0 (or the only process) reports
        print(json.dumps({"out": str(out), "wall_time_s": rec["wall_time_s"], "steps": rec["steps"], **rec["metrics"]}))
    return 0


def _check_sampling(a) -> None:
    if a.eta is not None and not 0 <= a.eta <= 1:
        raise UsageError(f"--eta must be between 0 and 1, got {a.eta}")
    if a.eta and (a.sampler or "") == "ddpm":
        raise UsageError("--eta applies to --sampler ddim only (ddpm is eta = 1)")


def cmd_generate(a) -> int:
    from . import pipelines
    _check_sampling(a)
    _check_out(a.out, (".png", ".npz"))
    if a.n_per_class < 1:
        raise UsageError(f"--n-per-class must be at least 1, got {a.n_per_class}")
    pipelines.generate_to_file(a.model, a.out, classes=a.classes, n_per_class=a.n_per_class, sampler=a.sampler,
                               steps=a.steps, guidance=a.guidance, seed=a.seed, weights=a.weights,
                               device=a.device, progression=a.progression, guidance_interval=a.guidance_interval,
                               eta=a.eta)
    print(f"wrote {a.out}")
    return 0


def cmd_evaluate(a) -> int:
    from . import pipelines
    _check_sampling(a)
    if a.model != "classifier" and a.n < 2:
        raise UsageError(f"--n must be at least 2 to estimate a covariance, got {a.n}")
    result = pipelines.evaluate(a.model, n=a.n, sampler=a.sampler, steps=a.steps, guidance=a.guidance,
                                seed=a.seed, weights=a.weights, device=a.device, guidance_interval=a.guidance_interval,
                                eta=a.eta)
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v:.4f}" if isinstance(v, float) else f"{k:>20}: {v}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)                      # argparse itself exits 2 on bad syntax
    try:
        return {"train": cmd_train, "generate": cmd_generate, "evaluate": cmd_evaluate}[a.command](a)
    except KeyboardInterrupt as e:
        print(f"fashiondiff: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except ValueError as e:                          # UsageError, DataError, bad weights, bad class names
        print(f"fashiondiff: error: {e}", file=sys.stderr)
        return 2
