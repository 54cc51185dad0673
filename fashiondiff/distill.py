"""Few-step generation by distilling a teacher's deterministic sampler (part 4, notebook 16).

A sampler with no noise of its own (DDIM with eta = 0, a flow's Euler or DPM-Solver++ steps) is a function from
noise to image, x = Phi(z, y). Its pairs (z, x) and the iterates between them are the teacher's trajectories; a
student learns from them to go from z to x in a few network calls. Both routes here train the same network, a flow
``FlowTransformer`` (x_t = (1 - t) x0 + t eps, velocity eps - x0), on the same loss: its x0 estimate
x_t - t v(x_t, t, y) should be the trajectory's end x, i.e. its velocity should be (x_t - x) / t:

    reflow       x_t = (1 - t) x + t z, t ~ U(0, 1]: points on the straight line between the pair; the target is
                 then z - x, the velocity of that line (the reflow of Liu et al. 2023, "Flow straight and fast")
    trajectory   x_t = the teacher's own iterate at one of its levels, in the flow's coordinates: every point of a
                 trajectory should map to the same end (the self-consistency of Song et al. 2023, "Consistency
                 models", sec. 3; at t = 1 alone it is Luhman & Luhman 2021's one-step distillation)

The teacher's iterates come in its own coordinates x = alpha x0 + sigma_vp eps (``solvers.Level``); the flow's
point with the same x0 and eps is x / (alpha + sigma_vp), at time t = sigma_vp / (alpha + sigma_vp). Its first
iterate is the noise z ~ N(0, I) it started from, which the student starts from too: at t = 1 (a diffusion
model's x_T keeps a trace of data, alpha_T = 0.005 for the pixel transformer, which its sampler ignores as well).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import flow, solvers
from .sampling import SAMPLERS, SamplingConfig


def iterate_levels(model, settings: SamplingConfig) -> list[solvers.Level]:
    """The level of each iterate a deterministic sampler visits, from the noise to the sample: a diffusion model's
    timesteps then t = 0, or a flow's time grid."""
    if SAMPLERS[settings.sampler].fixed_eta not in (0.0, None) or settings.eta != 0:
        raise ValueError(f"a teacher's sampler must be deterministic (eta = 0), got {settings}")
    return solvers.model_levels(model, settings.steps)


def to_flow(x: torch.Tensor, level: solvers.Level) -> tuple[torch.Tensor, float]:
    """(the flow's point with the same x0 and eps, its time t) for x at ``level``."""
    scale = level.alpha + level.sigma_vp
    return x / scale, level.sigma_vp / scale


@torch.no_grad()
def teacher_paths(teacher, labels: torch.Tensor, settings: SamplingConfig, seed: int = 0,
                  batch_size: int = 500, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The teacher's trajectories for ``labels`` (N,), in the flow's coordinates: (paths (N, K, C, H, W) from the
    noise z = paths[:, 0] to the sample x = paths[:, -1], times (K,) from 1 to 0). One generator seeded with
    ``seed`` draws all the noise, batch after batch, as ``generation.generate`` does."""
    loop = SAMPLERS[settings.sampler].loop
    levels = iterate_levels(teacher, settings)
    gen = torch.Generator().manual_seed(seed)
    device = next(teacher.parameters()).device
    paths = []
    from tqdm.auto import tqdm
    starts = range(0, len(labels), batch_size)
    for i in tqdm(starts, desc="teacher", unit="batch", disable=not progress or len(starts) < 4):
        _, xs = loop(teacher, labels[i:i + batch_size].to(device), settings, gen, trajectory=True)
        if len(xs) != len(levels):
            raise ValueError(f"the {settings.sampler} loop returned {len(xs)} iterates for {len(levels)} levels")
        flat = [xs[0].float()] + [to_flow(x.float(), lv)[0] for x, lv in zip(xs[1:], levels[1:])]
        paths.append(torch.stack(flat, dim=1))                                                     # (B, K, ...)
    times = torch.tensor([1.0] + [to_flow(torch.zeros(()), lv)[1] for lv in levels[1:]])            # (K,)
    return torch.cat(paths), times


def distill_loss(model, paths: torch.Tensor, times: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                 route: str) -> torch.Tensor:
    """MSE between the student's velocity and (x_t - x) / t for a batch of trajectories ``paths`` (B, K, C, H, W),
    or (B, K, D) for points, (times (K,), labels (B,)), x_t placed by ``route`` ("reflow" or "trajectory", the
    module docstring)."""
    z, x = paths[:, 0], paths[:, -1]                                                   # (B, C, H, W) each
    if route == "reflow":
        t = 1 - torch.rand(len(x), generator=generator)                                # (B,) in (0, 1]
        x_t = flow.interpolate(x, z, t.to(x.device))                                   # (B, C, H, W)
        target = z - x                                                                 # = (x_t - x) / t
    elif route == "trajectory":
        k = torch.randint(0, len(times) - 1, (len(x),), generator=generator)           # (B,): any level but t = 0
        x_t = paths[torch.arange(len(x)), k.to(paths.device)]                          # (B, C, H, W)
        t = times[k]                                                                   # (B,)
        target = (x_t - x) / t.to(x.device).reshape(-1, *[1] * (x.ndim - 1))          # (B, C, H, W)
    else:
        raise ValueError(f"route must be reflow or trajectory, got {route!r}")
    return F.mse_loss(model(x_t, t.to(x.device), y), target)


def straightness(paths: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """How far each trajectory (N, K, ...) bends: the mean over its steps of |dx/dt - (z - x)|^2 per pixel, the
    velocity of each step against that of the straight line from x to z (Liu et al. 2023's straightness, on
    the teacher's grid). 0 for a straight path at constant speed. Returns (N,)."""
    dt = (times[:-1] - times[1:]).reshape(1, -1, *([1] * (paths.ndim - 2)))           # (1, K-1, 1, ...)
    step_velocity = (paths[:, :-1] - paths[:, 1:]) / dt                               # (N, K-1, ...)
    line = (paths[:, 0] - paths[:, -1]).unsqueeze(1)                                   # (N, 1, ...)
    return (step_velocity - line).pow(2).flatten(2).mean(-1).mean(-1)                  # (N,)
