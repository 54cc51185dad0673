"""Flow matching (Lipman et al. 2023) with the straight path of rectified flow (Liu et al. 2023), as trained in
Esser et al. 2024 ("Scaling rectified flow transformers", sec. 2-3).

Time is continuous, t in [0, 1], from data (t = 0) to noise (t = 1):

    x_t = (1 - t) x_0 + t eps,        eps ~ N(0, I)
    velocity:   dx_t/dt = eps - x_0   (the regression target; the network v_theta(x_t, t, y) predicts it)
    t ~ logit-normal: t = sigmoid(m + s u), u ~ N(0, 1)   (Esser et al. 2024, sec. 3.1; m = 0, s = 1 ranked best)

Sampling integrates the ODE dx/dt = v_theta(x, t, y) from t = 1 (pure noise) back to t = 0 on an even grid
of ``steps`` intervals:

    "euler":   x_{t'} = x_t + (t' - t) v(x_t, t)                                       (1 evaluation a step)
    "heun":    x~ = Euler step;  x_{t'} = x_t + (t' - t) (v(x_t, t) + v(x~, t')) / 2   (2 a step; Karras et al.
               2022, Algorithm 1: the last step, to t' = 0, stays Euler), so NFE = 2 steps - 1
    "consistency": x0 = x_t - t v(x_t, t), then fresh noise to the next time: x_{t'} = (1 - t') x0 + t' eps'
               (1 a step; the multistep sampling of Song et al. 2023, Algorithm 1, for a model whose x0 estimate is
               the end of the trajectory through x_t; the last x0 is the sample)

Classifier-free guidance combines the two velocities like any other prediction (``fashiondiff.guidance``). A
guidance interval of ``SamplingConfig`` is read in the noise level sigma = t / (1 - t): x_t = (1 - t) (x_0 + sigma
eps), the same scaled-noise picture as a diffusion model's x_t = sqrt(abar_t) (x_0 + sigma eps).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .guidance import predict

if TYPE_CHECKING:                   # sampling's table holds this module's loop: no import at run time
    from .sampling import SamplingConfig

SAMPLERS = ("euler", "heun", "consistency")     # the steps ``sample`` implements


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise for t (N,) in [0, 1]."""
    t = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)                     # (N, 1, 1, 1)
    return (1 - t) * x0 + t * noise


def logit_normal(n: int, generator: torch.Generator | None = None, mean: float = 0.0, std: float = 1.0):
    """(N,) times in (0, 1): sigmoid of N(mean, std^2), which puts more samples in the middle of the path."""
    return torch.sigmoid(mean + std * torch.randn(n, generator=generator))


def flow_loss(model, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator, p_uncond: float = 0.1,
              t_mean: float = 0.0, t_std: float = 1.0) -> torch.Tensor:
    """MSE between ``model(x_t, t, y)`` and the velocity eps - x0, t logit-normal per example; labels dropped to
    the null class with probability ``p_uncond`` (one network, both halves of classifier-free guidance)."""
    t = logit_normal(len(x0), generator, t_mean, t_std).to(x0.device)                # (N,)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)                 # (N, C, H, W)
    x_t = interpolate(x0, noise, t)                                                    # (N, C, H, W)
    y = model.label.drop(y, p_uncond, generator) if p_uncond else y
    return F.mse_loss(model(x_t, t, y), noise - x0)


def time_grid(steps: int) -> list[float]:
    """The ``steps`` + 1 times 1, ..., 0 the ODE samplers visit, evenly spaced."""
    return torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64).tolist()


def sigma(t: float) -> float:
    """The noise level t / (1 - t) of time ``t`` in [0, 1] (inf at t = 1, pure noise)."""
    return math.inf if t >= 1 else t / (1 - t)


def velocity(model, x: torch.Tensor, t: float, y: torch.Tensor, settings: SamplingConfig) -> torch.Tensor:
    """The guided velocity at time ``t`` (a float) for the whole batch x (N, C, H, W)."""
    tt = torch.full((len(y),), t, device=x.device)                                     # (N,)
    return predict(model, x, tt, y, settings.guidance_at(sigma(t)))                    # (N, C, H, W)


@torch.no_grad()
def sample(model, y: torch.Tensor, shape: tuple[int, ...], settings: SamplingConfig,
           generator: torch.Generator | None = None, trajectory: bool = False):
    """Integrate dx/dt = v(x, t, y) from x_1 ~ N(0, I) to t = 0 for labels ``y`` (N,), with ``settings.sampler``
    ("euler", "heun" or "consistency", the module docstring) over ``settings.steps`` intervals. Returns x_0 (N, C, H, W), or with ``trajectory`` also
    the list of iterates [x_1, ..., x_0]."""
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"flow.sample implements {' and '.join(SAMPLERS)}, not {settings.sampler!r}")
    x = torch.randn((len(y), *shape), generator=generator).to(y.device)               # (N, C, H, W) at t = 1
    grid = time_grid(settings.steps)
    xs = [x.cpu()] if trajectory else None
    for t, t_next in zip(grid[:-1], grid[1:]):
        v = velocity(model, x, t, y, settings)                                         # (N, C, H, W)
        x_euler = x + (t_next - t) * v                                                 # (N, C, H, W)
        if settings.sampler == "consistency":
            fresh = torch.randn(x.shape, generator=generator).to(x.device) if t_next > 0 else 0.0
            x = interpolate(x - t * v, fresh, torch.full((len(y),), t_next, device=x.device))   # (N, C, H, W)
        elif settings.sampler == "heun" and t_next > 0:
            x = x + (t_next - t) * 0.5 * (v + velocity(model, x_euler, t_next, y, settings))
        else:
            x = x_euler
        if trajectory:
            xs.append(x.cpu())
    return (x, xs) if trajectory else x
