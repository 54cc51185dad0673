"""The ``fashiondiff`` command: ``train``, ``generate``, ``edit`` and ``evaluate`` for every model of the course.

    fashiondiff train classifier
    fashiondiff train transformer --epochs 30
    fashiondiff generate transformer --progression --out fashion_mnist_generation.png
    fashiondiff train vae && fashiondiff train latent --vae-weights runs/vae
    fashiondiff generate latent --classes Sneaker --sampler ddim --steps 50 --guidance 2 --out sneakers.png
    fashiondiff edit transformer --input shirt.png --to-class Dress --strength 0.6 --out dress.png
    fashiondiff edit latent --input shoe.png --mask-box 0,0,28,14 --to-class Sneaker --resample 4 --out fixed.png
    fashiondiff evaluate transformer --guidance 2.5 --guidance-interval 0.5,2 --json
    fashiondiff evaluate transformer --n 2000 --json

Without ``--weights`` the bundled weights are used. Bad arguments exit with status 2 and one line.
The models, their defaults and their options come from ``fashiondiff.recipes``, the samplers from
``fashiondiff.sampling.SAMPLERS``. The sampling options given are passed on as changes to the model's own default,
which the pipeline applies once, after loading the weights.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from .precision import PRECISIONS
from .recipes import GENERATORS, RECIPES
from .sampling import SAMPLERS, SettingError

SAMPLING_OPTIONS = ("sampler", "steps", "guidance", "guidance_interval", "eta")


class UsageError(ValueError):
    """Bad input from the command line: printed as one line, exit status 2."""


def _defaults(field_of) -> str:
    """'name X, name Y' over the recipes that have a value, for a help text."""
    pairs = [(name, field_of(r)) for name, r in RECIPES.items()]
    return ", ".join(f"{name} {value:g}" if isinstance(value, float) else f"{name} {value}"
                     for name, value in pairs if value is not None)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fashiondiff", description="Diffusion models on Fashion-MNIST.")
    sub = p.add_subparsers(dest="command", required=True)
    models = "; ".join(f"{name}: {r.summary}" for name, r in RECIPES.items())

    t = sub.add_parser("train", help="train a model with the course's recipe", description=models)
    t.add_argument("model", choices=tuple(RECIPES))
    length = t.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=float, help=f"default: {_defaults(lambda r: r.train.epochs)}")
    length.add_argument("--max-steps", type=int)
    t.add_argument("--batch-size", type=int, help=f"default: {_defaults(lambda r: r.train.batch_size)}")
    t.add_argument("--lr", type=float, help=f"peak learning rate; default: {_defaults(lambda r: r.train.lr)}")
    t.add_argument("--schedule", choices=("cosine", "restarts", "constant"),
                   help=f"learning-rate schedule; default: {_defaults(lambda r: r.train.schedule)}")
    t.add_argument("--out", type=Path, help="output folder (default: runs/<model>)")
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    t.add_argument("--seed", type=int)
    t.add_argument("--device", default="auto", help="cuda, mps, cpu or auto (default)")
    t.add_argument("--precision", choices=PRECISIONS,
                   help="the forward pass in fp32, in bf16 (autocast; weights and optimizer stay fp32), or auto: "
                        f"bf16 where this machine multiplies faster in it; default: {_defaults(lambda r: r.train.precision)}")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--no-eval", action="store_true", help="skip the measurements after training (quick runs)")
    for name in sorted({o for r in RECIPES.values() for o in r.options}):
        owners = [m for m, r in RECIPES.items() if name in r.options]
        kind, text = RECIPES[owners[0]].options[name]
        t.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"{', '.join(owners)} only: {text}")

    g = sub.add_parser("generate", help="sample images from a diffusion model")
    g.add_argument("model", choices=GENERATORS)
    g.add_argument("--classes", default="all", help="comma-separated names or indices, or 'all'")
    g.add_argument("--n-per-class", type=int, default=8)
    _sampling_args(g)
    g.add_argument("--progression", action="store_true", help="draw the denoising process per class")
    g.add_argument("--out", type=Path, required=True, help="FILE.png (labelled grid) or FILE.npz")

    d = sub.add_parser("edit", help="edit an image with a generator: SDEdit towards a class, or inpainting",
                       description="Reads a greyscale image (a square PNG such as a 28x28 Fashion-MNIST one: a white "
                                   "garment on black; larger ones are resized, colour is made grey) and resizes it to "
                                   "the model's images (16x16 for transformer and flow, 28x28 for latent). With "
                                   "--mask or --mask-box it fills the masked region (inpainting; RePaint with "
                                   "--resample R > 1); without, it noises the image to --strength and samples towards "
                                   "--to-class (SDEdit). Writes a PNG of panels at the model's size: input | the kept "
                                   "pixels (the rest grey) | result with a mask, input | result without. SDEdit runs "
                                   "the deterministic counterpart of --sampler; inpainting steps with DDIM at --eta "
                                   "(fashiondiff/editing.py).")
    d.add_argument("model", choices=GENERATORS)
    d.add_argument("--input", type=Path, help="the image to edit (required)")
    d.add_argument("--mask", type=Path, help="a PNG of the input's size: white (>= 128) keep, black fill")
    d.add_argument("--mask-box", metavar="X0,Y0,X1,Y1",
                   help="fill this box of the input's pixels (x0 <= x < x1, y0 <= y < y1; x right, y down), "
                        "keep the rest")
    d.add_argument("--to-class", help="the class to edit towards (a name or 0-9): required without a mask; with one, "
                                      "the class to fill with (default: unconditional)")
    d.add_argument("--strength", type=float, help="SDEdit only: the share of the sampler's steps to run, in (0, 1]: "
                                                  "1 ignores the input, near 0 keeps it (default 0.6)")
    d.add_argument("--resample", type=int, help="inpainting only: RePaint's rounds per step (default 1: replace)")
    _sampling_args(d)
    d.add_argument("--out", type=Path, help="FILE.png (required)")

    e = sub.add_parser("evaluate", help="measure a model: a classifier's accuracy, a VAE's reconstructions, "
                                        "a generator's samples")
    e.add_argument("model", choices=tuple(RECIPES))
    e.add_argument("--n", type=int, default=2000, help="number of samples or reconstructions (default 2000)")
    _sampling_args(e)
    e.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _sampling_args(p: argparse.ArgumentParser) -> None:
    """The sampling options; one not given is absent from the parsed arguments (the model's default stays)."""
    sampling = lambda field: _defaults(lambda r: getattr(r.sampling, field) if r.sampling else None)  # noqa: E731
    p.add_argument("--sampler", choices=tuple(SAMPLERS), default=argparse.SUPPRESS,
                   help="; ".join(f"{name}: {s.summary}" for name, s in SAMPLERS.items())
                   + f"; default: the model's own ({sampling('sampler')})")
    p.add_argument("--steps", type=int, default=argparse.SUPPRESS, help=f"default: {sampling('steps')}")
    p.add_argument("--guidance", type=float, default=argparse.SUPPRESS,
                   help=f"classifier-free guidance w: 0 unconditional, 1 plain conditional; default: {sampling('guidance')}")
    p.add_argument("--guidance-interval", type=_interval, default=argparse.SUPPRESS, metavar="LO,HI|all",
                   help="apply guidance only where the noise level sigma is in LO..HI (HI may be inf), or at all "
                        "steps (default: the model's own)")
    p.add_argument("--eta", type=float, default=argparse.SUPPRESS,
                   help=f"DDIM's noise: 0 deterministic, 1 = DDPM's variance; default: {sampling('eta')}")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the network in fp32 or bf16, or auto (default): bf16 where this machine multiplies faster "
                        "in it; the sampler's arithmetic and the yardsticks stay fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--weights", type=Path, default=None, help="weights folder (default: bundled)")
    p.add_argument("--device", default="auto")


def _interval(text: str):
    if text.strip().lower() == "all":
        return None                                  # SamplingConfig's "every step"
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LO,HI (two noise levels sigma) or 'all', got {text!r}") from None
    return (lo, hi)                                  # checked by SamplingConfig, like the other options


def _changes(args) -> dict:
    """The sampling options given on the command line, as changes to the model's default ({} when none were)."""
    changes = {k: getattr(args, k) for k in SAMPLING_OPTIONS if hasattr(args, k)}
    if changes and args.model not in GENERATORS:
        raise UsageError(f"--{next(iter(changes)).replace('_', '-')} applies to generators only "
                         f"({', '.join(GENERATORS)})")
    return changes


def _check_out(path: Path, suffixes: tuple[str, ...]) -> None:
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"--out {path}: unknown extension {path.suffix or '(none)'!r} (allowed: {', '.join(suffixes)})")
    if not path.parent.resolve().is_dir():
        raise UsageError(f"--out {path}: folder {path.parent} does not exist")


def cmd_train(args) -> int:
    from .runs import run
    for name in ("epochs", "max_steps", "batch_size", "checkpoint_every"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise UsageError(f"--{name.replace('_', '-')} must be positive, got {v}")
    recipe = RECIPES[args.model]
    options = {name: getattr(args, name) for name in {o for r in RECIPES.values() for o in r.options}}
    for name, value in options.items():
        if value is not None and name not in recipe.options:
            owners = [m for m, r in RECIPES.items() if name in r.options]
            raise UsageError(f"--{name.replace('_', '-')} only applies to `train {' / '.join(owners)}`")
    out = args.out or Path("runs") / args.model
    overrides = dict(epochs=args.epochs, max_steps=args.max_steps, batch_size=args.batch_size, lr=args.lr,
                     schedule=args.schedule, checkpoint_every=args.checkpoint_every, seed=args.seed,
                     precision=args.precision)
    command = "fashiondiff " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    try:
        rec = run(args.model, out, overrides, device=args.device, resume=args.resume, progress=not args.no_progress,
                  command=command, measure=not args.no_eval, **{k: v for k, v in options.items() if k in recipe.options})
    finally:                                         # under torchrun: leave the process group cleanly
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if rec is not None:                              # rank 0 (or the only process) reports
        print(json.dumps({"out": str(out), "wall_time_s": rec["wall_time_s"], "steps": rec["steps"], **rec["metrics"]}))
    return 0


def cmd_generate(args) -> int:
    from . import pipelines
    changes = _changes(args)
    _check_out(args.out, (".png", ".npz"))
    if args.n_per_class < 1:
        raise UsageError(f"--n-per-class must be at least 1, got {args.n_per_class}")
    pipelines.generate_to_file(args.model, args.out, changes, classes=args.classes, n_per_class=args.n_per_class,
                               seed=args.seed, weights=args.weights, device=args.device, progression=args.progression,
                               precision=args.precision)
    print(f"wrote {args.out}")
    return 0


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        box = tuple(int(v) for v in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4:
        raise UsageError(f"--mask-box expects four whole numbers X0,Y0,X1,Y1, got {text!r}")
    return box


def cmd_edit(args) -> int:
    """Checked here, each in one line (argparse's own errors print its usage too): the options that must or must
    not go together, the output; the files and the class are checked by ``pipelines.edit_to_file`` before the
    model is loaded."""
    from . import pipelines
    changes = _changes(args)
    for option in ("input", "out"):
        if getattr(args, option) is None:
            raise UsageError(f"--{option} is required")
    _check_out(args.out, (".png",))
    if args.mask is not None and args.mask_box is not None:
        raise UsageError("give --mask or --mask-box, not both")
    masked = args.mask is not None or args.mask_box is not None
    if masked and args.strength is not None:
        raise UsageError("--strength applies to SDEdit (without a mask); inpainting runs every step")
    if not masked and args.resample is not None:
        raise UsageError("--resample applies to inpainting (with --mask or --mask-box)")
    strength = 0.6 if args.strength is None else args.strength
    if not 0 < strength <= 1:
        raise UsageError(f"--strength must be in (0, 1] (the share of the sampler's steps to run), got {strength:g}")
    if args.resample is not None and args.resample < 1:
        raise UsageError(f"--resample must be at least 1, got {args.resample}")
    pipelines.edit_to_file(args.model, args.out, args.input, mask_path=args.mask,
                           box=_box(args.mask_box) if args.mask_box is not None else None, to_class=args.to_class,
                           strength=strength, resample=args.resample or 1, changes=changes, seed=args.seed,
                           weights=args.weights, device=args.device, precision=args.precision)
    print(f"wrote {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    from . import pipelines
    changes = _changes(args)
    if args.n < 2:
        raise UsageError(f"--n must be at least 2 to estimate a covariance, got {args.n}")
    result = pipelines.evaluate(args.model, n=args.n, changes=changes, seed=args.seed, weights=args.weights,
                                device=args.device, precision=args.precision)
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v:.4f}" if isinstance(v, float) else f"{k:>20}: {v}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)                   # argparse itself exits 2 on bad syntax
    try:
        return {"train": cmd_train, "generate": cmd_generate, "edit": cmd_edit, "evaluate": cmd_evaluate}[args.command](args)
    except SettingError as e:                        # a sampling setting: name the option it came from
        print(f"fashiondiff: error: --{e.field.replace('_', '-')} {e.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"fashiondiff: {e or 'interrupted'}", file=sys.stderr)
        return 130
    except ValueError as e:                          # UsageError, DataError, bad weights, bad class names
        print(f"fashiondiff: error: {e}", file=sys.stderr)
        return 2
