"""Second-order ODE solvers in the noise level sigma for every generator of the course (part 4, notebooks 14-15).

Each generator's x_t is a scaled copy of data plus noise (Karras et al. 2022, "EDM", eq. 4 with their s(t)):

    x_t = alpha (x0 + sigma eps)     diffusion: alpha = sqrt(abar_t), sigma = sqrt((1 - abar_t) / abar_t)
                                     flow:      alpha = 1 - t,        sigma = t / (1 - t)

so a grid of levels is a list of ``Level(alpha, sigma_vp, t)``, sigma_vp = alpha sigma (DDPM's sqrt(1 - abar_t), the
flow's t; finite where sigma is not) and t the network's time input. ``D(x, level)`` is the model's x0 there (an eps-
or v-prediction converted, a flow's x_t - t v, clamped where the model clamps). In x~ = x / alpha the
probability-flow ODE is dx~/dsigma = (x~ - D) / sigma (EDM eq. 3 with s = 1), and the solvers step along it:

    ddim      x_{i+1} = (sigma_vp_{i+1} / sigma_vp_i) x_i + alpha_{i+1} (1 - e^{-h}) D_i       (Song et al. 2021,
              eq. 12, eta = 0; Euler in x~), e^{-h} = sigma_{i+1} / sigma_i, lambda = -log sigma, h = lambda_{i+1} - lambda_i
    heun      Euler to sigma_{i+1}, then the mean of the slopes there and here                 (EDM Algorithm 1;
              two evaluations a step, one in the last, which ends at sigma = 0)
    dpm++2m   the ddim update with D_i replaced by (1 + 1/(2 r)) D_i - 1/(2 r) D_{i-1},        (Lu et al. 2022,
              r = h_{i-1} / h_i: one evaluation a step, the previous one reused                 "DPM-Solver++",
                                                                                                Algorithm 2)

DPM-Solver++(2M)'s first step has no previous D and takes the ddim update; so does its last, to sigma = 0, where h
is infinite and 1/r is too (as k-diffusion does, and diffusers' ``lower_order_final``). A flow's first level
(t = 1) has sigma = inf: there e^{-h} = 0 and the ddim update is the flow's Euler step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from . import diffusion, flow
from .guidance import predict

if TYPE_CHECKING:                       # sampling's table holds this module's loops: no import at run time
    from .sampling import SamplingConfig

SOLVERS = ("ddim", "heun", "dpm++2m")   # the updates ``solve`` implements
RHO = 7.0                               # EDM's spacing exponent (Karras et al. 2022, eq. 5 and sec. 3)


@dataclass(frozen=True)
class Level:
    """One point of a grid: x = alpha x0 + sigma_vp eps there, and the network's time input t."""
    alpha: float
    sigma_vp: float
    t: float | int

    @property
    def sigma(self) -> float:
        """The noise level of x / alpha = x0 + sigma eps (inf where alpha = 0)."""
        return math.inf if self.alpha == 0 else self.sigma_vp / self.alpha


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = RHO) -> list[float]:
    """``n`` levels from sigma_max down to sigma_min, evenly spaced in sigma^(1/rho) (EDM eq. 5; rho = 7 crowds them
    at the low-noise end, rho = 1 is even in sigma, rho -> inf even in log sigma)."""
    if n == 1:
        return [float(sigma_max)]
    hi, lo = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [float((hi + i / (n - 1) * (lo - hi)) ** rho) for i in range(n)]


def loguniform_timesteps(schedule, steps: int) -> list[int]:
    """``steps`` distinct timesteps T..1 of ``schedule``, each the one nearest in log sigma to a grid even in log
    sigma from sigma(T) to sigma(1) (DPM-Solver's "logSNR" spacing, Lu et al. 2022), and always below the one
    before, with room left for the rest."""
    if not 1 <= steps <= schedule.T:
        raise ValueError(f"steps must be between 1 and T = {schedule.T}, got {steps}")
    logs = torch.tensor([math.log(schedule.sigma(t)) for t in range(1, schedule.T + 1)])    # (T,) at t = 1..T
    targets = torch.linspace(float(logs[-1]), float(logs[0]), steps) if steps > 1 else logs[-1:]
    chosen, above = [], schedule.T + 1
    for k, target in enumerate(targets.tolist()):
        allowed = torch.arange(steps - k, above)                                        # room for the rest
        t = int(allowed[(logs[allowed - 1] - target).abs().argmin()])
        chosen.append(t)
        above = t
    return chosen


def diffusion_levels(schedule, timesteps: list[int]) -> list[Level]:
    """The levels of a diffusion model at ``timesteps`` (T..1), then clean data (t = 0)."""
    ab = [float(schedule.abar[t]) for t in timesteps]
    return [Level(math.sqrt(a), math.sqrt(1 - a), t) for a, t in zip(ab, timesteps)] + [Level(1.0, 0.0, 0)]


def flow_levels(times: list[float]) -> list[Level]:
    """The levels of a flow at ``times`` (1..0): x_t = (1 - t) x0 + t eps."""
    return [Level(1 - t, t, t) for t in times]


def model_levels(model, steps: int) -> list[Level]:
    """A generator's ``steps`` + 1 levels, noisiest first, clean last: a diffusion model's DDIM timesteps
    (``NoiseSchedule.timesteps``) then t = 0, a flow's even time grid (``flow.time_grid``)."""
    if model.process == "flow":
        return flow_levels(flow.time_grid(steps))
    return diffusion_levels(model.schedule, model.schedule.timesteps(steps))


def evaluations(levels: list[Level], solver: str) -> list[float]:
    """The sigma of each evaluation of D the solver makes on ``levels``: one at each level but the last, and for
    heun one more at the end of every step but the last."""
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r} (allowed: {', '.join(SOLVERS)})")
    here = [lv.sigma for lv in levels[:-1]]
    if solver != "heun":
        return here
    return [s for i, s in enumerate(here) for s in ((s, levels[i + 1].sigma) if levels[i + 1].sigma > 0 else (s,))]


def ddim_step(x: torch.Tensor, d: torch.Tensor, here: Level, there: Level) -> torch.Tensor:
    """x at ``there`` from x at ``here`` and an x0 estimate d: exact when x0 is d at every level between."""
    decay = 0.0 if math.isinf(here.sigma) else there.sigma / here.sigma                     # e^{-h}
    return (there.sigma_vp / here.sigma_vp) * x + there.alpha * (1 - decay) * d


@torch.no_grad()
def solve(denoise: Callable, x: torch.Tensor, levels: list[Level], solver: str, trajectory: bool = False):
    """Integrate the probability-flow ODE from x (N, ...) at levels[0] to levels[-1] with ``solver`` ("ddim",
    "heun" or "dpm++2m"), calling ``denoise(x, level) -> x0`` (x's shape) as ``evaluations`` says. Returns x at the
    last level, or with ``trajectory`` also the list of iterates (on the CPU), one per level."""
    evaluations(levels, solver)                                                   # checks the name
    xs = [x.cpu()] if trajectory else None
    previous = None                                                               # (D_{i-1}, level i-1) for 2M
    for i, (here, there) in enumerate(zip(levels[:-1], levels[1:])):
        d = denoise(x, here)                                                      # (N, ...)
        if solver == "heun" and there.sigma > 0:
            if math.isinf(here.sigma):
                raise ValueError("heun steps in x / alpha, which is infinite at sigma = inf: start below it")
            x_tilde, slope = x / here.alpha, (x / here.alpha - d) / here.sigma   # x~ and dx~/dsigma
            euler = x_tilde + (there.sigma - here.sigma) * slope
            d_next = denoise(there.alpha * euler, there)
            slope_next = (euler - d_next) / there.sigma
            x = there.alpha * (x_tilde + (there.sigma - here.sigma) * 0.5 * (slope + slope_next))
        elif solver == "dpm++2m" and previous is not None and there.sigma > 0 and not math.isinf(previous[1].sigma):
            h = math.log(here.sigma / there.sigma)                                # lambda = -log sigma
            r = math.log(previous[1].sigma / here.sigma) / h
            x = ddim_step(x, (1 + 1 / (2 * r)) * d - 1 / (2 * r) * previous[0], here, there)
        else:
            x = ddim_step(x, d, here, there)
        previous = (d, here)
        if trajectory:
            xs.append(x.cpu())
    return (x, xs) if trajectory else x


# ----------------------------------------------------------------------------------------------------------------
# The course's generators as denoisers D(x, level), and the sampler table's loops


def diffusion_denoiser(model, schedule, y: torch.Tensor, settings: SamplingConfig, prediction: str,
                       clip: float | None) -> Callable:
    """D(x_t, level) for a diffusion model: its guided prediction at timestep level.t turned into x0, clamped."""
    def denoise(x, level):
        t = torch.full((len(y),), level.t, device=x.device, dtype=torch.long)               # (N,)
        out = predict(model, x, t, y, settings.guidance_at(level.sigma))                    # (N, C, H, W)
        x0 = diffusion.to_x0(schedule, x, t, out, prediction)                               # (N, C, H, W)
        return x0 if clip is None else x0.clamp(-clip, clip)
    return denoise


def flow_denoiser(model, y: torch.Tensor, settings: SamplingConfig) -> Callable:
    """D(x_t, level) for a flow: x0 = x_t - t v, its guided velocity v at time level.t."""
    def denoise(x, level):
        return x - level.t * flow.velocity(model, x, level.t, y, settings)                  # (N, C, H, W)
    return denoise


@torch.no_grad()
def sample_diffusion(model, labels: torch.Tensor, settings: SamplingConfig, generator: torch.Generator | None = None,
                     trajectory: bool = False):
    """A diffusion generator sampled by ``settings.sampler`` ("edm-heun" or "dpm++2m") on the timesteps DDIM visits
    (``NoiseSchedule.timesteps``, even in t: DPM-Solver's "time uniform" spacing; on the latent model it beat
    ``loguniform_timesteps``, notebook 15): x_T ~ N(0, I) (N, C, H, W) -> x_0, or
    (x_0, iterates)."""
    solver = {"edm-heun": "heun", "dpm++2m": "dpm++2m"}.get(settings.sampler)
    if solver is None:
        raise ValueError(f"solvers.sample_diffusion implements edm-heun and dpm++2m, not {settings.sampler!r}")
    schedule = model.schedule
    x = torch.randn((len(labels), *model.sample_shape), generator=generator).to(labels.device)   # (N, C, H, W)
    denoise = diffusion_denoiser(model, schedule, labels, settings, model.prediction, model.clip)
    return solve(denoise, x, diffusion_levels(schedule, schedule.timesteps(settings.steps)), solver, trajectory)


@torch.no_grad()
def sample_flow(model, labels: torch.Tensor, settings: SamplingConfig, generator: torch.Generator | None = None,
                trajectory: bool = False):
    """A flow sampled by DPM-Solver++(2M) ("dpm++2m-flow") on its even time grid: x_1 ~ N(0, I) -> x_0."""
    if settings.sampler != "dpm++2m-flow":
        raise ValueError(f"solvers.sample_flow implements dpm++2m-flow, not {settings.sampler!r}")
    x = torch.randn((len(labels), *model.sample_shape), generator=generator).to(labels.device)   # (N, C, H, W)
    levels = flow_levels(flow.time_grid(settings.steps))
    return solve(flow_denoiser(model, labels, settings), x, levels, "dpm++2m", trajectory)
