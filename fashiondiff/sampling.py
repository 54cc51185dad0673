"""How a generator is sampled: the table of samplers (``SAMPLERS``) and the settings of one run (``SamplingConfig``).

Each sampler is one row of ``SAMPLERS``: the process it samples ("diffusion": a ``NoiseSchedule`` with timesteps
T..1; "flow": continuous time from t = 1 to 0), its loop, the noise level of each network evaluation it makes, a
name for each iterate (plot titles) and, where its noise is not a choice, its eta. The command line, the widgets,
``generation`` (which runs the loop and counts network calls) and the sweeps read the table, so a new sampler is a
row here and its loop.

    ddpm    ancestral: x_s ~ q(x_s | x_t, x0_hat)                    (Ho et al. 2020, eq. 6-7)      diffusion.sample
    ddim    Song et al. 2021, eq. 12, with noise level eta           (eta = 1: the ancestral variance) diffusion.sample
    euler   dx/dt = v(x, t) from t = 1 to 0, one evaluation a step   (a flow)                       flow.sample
    heun    Euler and a trapezoidal correction, two a step but the last (Karras et al. 2022, Alg. 1)  flow.sample
    consistency  the x0 estimate, then fresh noise to the next time (Song et al. 2023, Alg. 1)         flow.sample
    edm-heun  the same in sigma for a diffusion model, between DDIM's timesteps                      solvers
    dpm++2m   DPM-Solver++(2M) (Lu et al. 2022, Alg. 2), same timesteps; dpm++2m-flow on a flow's grid  solvers

The settings of one run:

    sampler            a row of ``SAMPLERS``
    steps              how many of the T timesteps to visit, evenly strided from T down to 1; for a flow, how
                       many intervals of the time grid
    guidance           classifier-free guidance w in pred = pred_uncond + w (pred_cond - pred_uncond):
                       0 unconditional, 1 plain conditional (Ho & Salimans 2022 write (1 + w') eps_c - w' eps_u,
                       so this w is their w' + 1; diffusers calls it ``guidance_scale``)
    guidance_interval  (lo, hi): apply w only where the noise level sigma of the network's input is in lo..hi,
                       plain conditional (w = 1) elsewhere (Kynkaanniemi et al. 2024 state theirs in sigma);
                       None: at every step. sigma = sqrt((1 - abar_t) / abar_t) for a diffusion model (its x_t is
                       sqrt(abar_t) (x_0 + sigma eps)) and t / (1 - t) for a flow (x_t = (1 - t) (x_0 + sigma eps)),
                       so one interval means the same noise for every model; hi may be inf (pure noise)
    eta                DDIM's noise: 0 deterministic, 1 the ancestral step's variance; the other samplers' is
                       fixed (left out, it takes the sampler's own value)

A ``SamplingConfig`` is checked once, when it is made; a bad value raises ``SettingError`` naming the field, which the
command line turns into its option. Whether the sampler and ``steps`` fit a model is ``generation.check_settings``'s
to say. Each generator's ``config.json`` stores its default as a dict (``to_dict``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

from . import diffusion, flow, solvers


class SettingError(ValueError):
    """A sampling setting that is out of range: ``field`` names it, the message says what it must be."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field} {message}")
        self.field, self.message = field, message


# ----------------------------------------------------------------------------------------------------------------
# The table of samplers


def _diffusion_loop(model, labels, settings, generator, trajectory=False):
    return diffusion.sample(model, model.schedule, labels, model.sample_shape, settings, prediction=model.prediction,
                            clip=model.clip, generator=generator, trajectory=trajectory)


def _flow_loop(model, labels, settings, generator, trajectory=False):
    return flow.sample(model, labels, model.sample_shape, settings, generator, trajectory)


def _timestep_levels(model, steps: int) -> list[float]:
    """One evaluation per visited timestep, at its sigma."""
    return [model.schedule.sigma(t) for t in model.schedule.timesteps(steps)]


def _timestep_names(model, steps: int) -> list[str]:
    return [f"t={t}" for t in model.schedule.timesteps(steps)] + ["t=0"]


def _euler_levels(model, steps: int) -> list[float]:
    """One evaluation at the start of each interval of the time grid."""
    return [flow.sigma(t) for t in flow.time_grid(steps)[:-1]]


def _heun_levels(model, steps: int) -> list[float]:
    """Two evaluations per interval (its start, then its end), one in the last interval, which ends at t = 0."""
    grid = flow.time_grid(steps)
    return [flow.sigma(t) for t0, t1 in zip(grid[:-1], grid[1:]) for t in ((t0, t1) if t1 > 0 else (t0,))]


def _solver_loop(model, labels, settings, generator, trajectory=False):
    run = solvers.sample_flow if model.process == "flow" else solvers.sample_diffusion
    return run(model, labels, settings, generator, trajectory)


def _heun_timestep_levels(model, steps: int) -> list[float]:
    """Two evaluations per step between visited timesteps (its start, then its end), one in the last (to t = 0)."""
    levels = solvers.diffusion_levels(model.schedule, model.schedule.timesteps(steps))
    return solvers.evaluations(levels, "heun")


def _time_names(model, steps: int) -> list[str]:
    return [f"t={t:.2g}" for t in flow.time_grid(steps)]


@dataclass(frozen=True)
class Sampler:
    """One row of the table: what a sampler samples, how, and what it costs."""
    name: str
    process: str                      # "diffusion" or "flow": the generators it samples (``Generator.process``)
    loop: Callable                    # loop(model, labels (N,), settings, generator, trajectory) -> x (N, C, H, W),
                                      # or with trajectory (x, [x_start, ..., x])
    noise_levels: Callable            # noise_levels(model, steps) -> sigma of each network evaluation, in order
    step_names: Callable              # step_names(model, steps) -> a name for each iterate, start to sample
    fixed_eta: float | None           # the sampler's own eta; None: eta is a choice
    summary: str


SAMPLERS: dict[str, Sampler] = {s.name: s for s in (
    Sampler("ddpm", "diffusion", _diffusion_loop, _timestep_levels, _timestep_names, 1.0,
            "ancestral DDPM steps (Ho et al. 2020)"),
    Sampler("ddim", "diffusion", _diffusion_loop, _timestep_levels, _timestep_names, None,
            "DDIM with noise eta (Song et al. 2021)"),
    Sampler("euler", "flow", _flow_loop, _euler_levels, _time_names, 0.0, "Euler steps of the flow's ODE"),
    Sampler("heun", "flow", _flow_loop, _heun_levels, _time_names, 0.0,
            "Heun steps of the flow's ODE (Karras et al. 2022, Alg. 1)"),
    Sampler("consistency", "flow", _flow_loop, _euler_levels, _time_names, 1.0,
            "x0 estimate, then fresh noise to the next time (Song et al. 2023, Algorithm 1)"),
    Sampler("edm-heun", "diffusion", _solver_loop, _heun_timestep_levels, _timestep_names, 0.0,
            "Heun steps in sigma (Karras et al. 2022, Alg. 1) between DDIM's timesteps"),
    Sampler("dpm++2m", "diffusion", _solver_loop, _timestep_levels, _timestep_names, 0.0,
            "DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) on DDIM's timesteps"),
    Sampler("dpm++2m-flow", "flow", _solver_loop, _euler_levels, _time_names, 0.0,
            "DPM-Solver++(2M) on the flow's time grid (Lu et al. 2022, Alg. 2)"),
)}


def samplers_for(process: str) -> tuple[str, ...]:
    """The names of the samplers of a process ("diffusion" or "flow")."""
    return tuple(name for name, s in SAMPLERS.items() if s.process == process)


# ----------------------------------------------------------------------------------------------------------------
# The settings of one run


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)


@dataclass(frozen=True)
class SamplingConfig:
    sampler: str = "ddpm"
    steps: int = 10
    guidance: float = 1.0
    guidance_interval: tuple[float, float] | None = None    # (lo, hi) in sigma
    eta: float | None = None          # None: the sampler's own (1 for ddim)

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise SettingError("sampler", f"must be one of {', '.join(SAMPLERS)}, got {self.sampler!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise SettingError("steps", f"must be a whole number >= 1, got {self.steps!r}")
        if not (_number(self.guidance) and math.isfinite(self.guidance) and self.guidance >= 0):
            raise SettingError("guidance", "must be a number >= 0 (0 = unconditional, 1 = conditional), "
                                           f"got {self.guidance!r}")
        if self.guidance_interval is not None:
            object.__setattr__(self, "guidance_interval", _interval(self.guidance_interval))
        fixed = SAMPLERS[self.sampler].fixed_eta
        if self.eta is None:
            object.__setattr__(self, "eta", 1.0 if fixed is None else fixed)
        if not (_number(self.eta) and 0 <= self.eta <= 1):
            raise SettingError("eta", f"must be between 0 and 1, got {self.eta!r}")
        if fixed is not None and self.eta != fixed:
            raise SettingError("eta", f"applies to the ddim sampler only ({self.sampler} is eta = {fixed:g}), "
                                      f"got {self.eta}")
        object.__setattr__(self, "guidance", float(self.guidance))
        object.__setattr__(self, "eta", float(self.eta))

    def replace(self, **changes) -> SamplingConfig:
        """A copy with ``changes`` applied (checked like a new one). Switching to a sampler whose eta is fixed
        without naming eta takes that sampler's eta."""
        if "sampler" in changes and "eta" not in changes and changes["sampler"] in SAMPLERS:
            changes["eta"] = SAMPLERS[changes["sampler"]].fixed_eta
        return dataclasses.replace(self, **changes)

    def guidance_at(self, sigma: float) -> float:
        """The guidance scale applied at noise level ``sigma``: w inside the interval, 1 (plain conditional)
        outside."""
        if self.guidance_interval is None or self.guidance_interval[0] <= sigma <= self.guidance_interval[1]:
            return self.guidance
        return 1.0

    def calls_at(self, sigma: float) -> int:
        """Network evaluations per image at noise level ``sigma``: 2 when guidance needs the unconditional model
        too."""
        return 1 if self.guidance_at(sigma) in (0.0, 1.0) else 2

    def to_dict(self) -> dict:
        """JSON-ready (an unbounded hi is None): ``SamplingConfig(**config.to_dict()) == config``."""
        d = dataclasses.asdict(self)
        if self.guidance_interval is not None:
            lo, hi = self.guidance_interval
            d["guidance_interval"] = [lo, None if math.isinf(hi) else hi]
        return d

    def __str__(self) -> str:
        where = "every step" if self.guidance_interval is None else "sigma {:g}..{:g}".format(*self.guidance_interval)
        eta = f", eta {self.eta:g}" if SAMPLERS[self.sampler].fixed_eta is None else ""
        return f"{self.sampler} {self.steps} steps{eta}, w = {self.guidance:g} at {where}"


def _interval(value) -> tuple[float, float]:
    """(lo, hi) with 0 <= lo <= hi from a pair of numbers (hi None or inf: no upper end)."""
    try:
        lo, hi = value
        lo, hi = float(lo), math.inf if hi is None else float(hi)
    except (TypeError, ValueError):
        raise SettingError("guidance_interval", f"must be (lo, hi) in sigma or None, got {value!r}") from None
    if not (0 <= lo <= hi) or math.isinf(lo):
        raise SettingError("guidance_interval", f"needs 0 <= lo <= hi (noise levels sigma), got ({lo:g}, {hi:g})")
    return lo, hi
