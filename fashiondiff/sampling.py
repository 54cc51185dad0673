"""How to sample a diffusion model, as one validated object: ``SamplingConfig``.

    sampler            for a diffusion model: "ddpm" (ancestral: x_s ~ q(x_s | x_t, x0_hat), Ho et al. 2020
                       eq. 6-7) or "ddim" (Song et al. 2021 eq. 12, with noise level eta); for a flow
                       (``fashiondiff.flow``): "euler" or "heun", ODE steps from t = 1 to 0
    steps              how many of the T timesteps to visit, evenly strided from T down to 1; for a flow, how
                       many intervals of the time grid
    guidance           classifier-free guidance w in pred = pred_uncond + w (pred_cond - pred_uncond):
                       0 unconditional, 1 plain conditional (Ho & Salimans 2022 write (1 + w') eps_c - w' eps_u,
                       so this w is their w' + 1)
    guidance_interval  (lo, hi): apply w only at timesteps lo <= t <= hi and plain conditional (w = 1) elsewhere
                       (Kynkaanniemi et al. 2024); None: at every step. A flow reads it in thousandths of t
    eta                DDIM's noise: 0 deterministic, 1 the ancestral step's variance; "ddpm" is eta = 1 and the
                       ODE samplers eta = 0 (left out, it takes the sampler's own value)

It is checked once, when it is made, so everything downstream (the command line, ``pipelines``, the widgets,
``diffusion.sample``) can trust it. Each generator's ``config.json`` stores its default as a dict.
Whether the sampler and ``steps`` fit the model is the model's to say (``model.samplers``, ``model.max_steps``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

SAMPLERS = ("ddpm", "ddim", "euler", "heun")
FIXED_ETA = {"ddpm": 1.0, "euler": 0.0, "heun": 0.0}     # the samplers whose noise is not a choice


@dataclass(frozen=True)
class SamplingConfig:
    sampler: str = "ddpm"
    steps: int = 10
    guidance: float = 1.0
    guidance_interval: tuple[int, int] | None = None
    eta: float | None = None          # None: 1 for ddpm and ddim, 0 for euler and heun

    def __post_init__(self):
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r} (allowed: {', '.join(SAMPLERS)})")
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, got {self.steps!r}")
        if not (isinstance(self.guidance, (int, float)) and math.isfinite(self.guidance) and self.guidance >= 0):
            raise ValueError(f"guidance must be a number >= 0 (0 = unconditional, 1 = conditional), got {self.guidance!r}")
        if self.guidance_interval is not None:
            try:
                lo, hi = (int(v) for v in self.guidance_interval)
            except (TypeError, ValueError):
                raise ValueError(f"guidance_interval must be (lo, hi) or None, got {self.guidance_interval!r}") from None
            if not 1 <= lo <= hi:
                raise ValueError(f"guidance_interval needs 1 <= lo <= hi, got ({lo}, {hi})")
            object.__setattr__(self, "guidance_interval", (lo, hi))     # a JSON list becomes a tuple
        if self.eta is None:
            object.__setattr__(self, "eta", FIXED_ETA.get(self.sampler, 1.0))
        if isinstance(self.eta, bool) or not (isinstance(self.eta, (int, float)) and 0 <= self.eta <= 1):
            raise ValueError(f"eta must be between 0 and 1, got {self.eta!r}")
        if self.sampler in FIXED_ETA and self.eta != FIXED_ETA[self.sampler]:
            raise ValueError(f"eta applies to the ddim sampler only ({self.sampler} is eta = "
                             f"{FIXED_ETA[self.sampler]:g}), got eta = {self.eta}")
        object.__setattr__(self, "guidance", float(self.guidance))
        object.__setattr__(self, "eta", float(self.eta))

    def replace(self, **changes) -> SamplingConfig:
        """A copy with ``changes`` applied (checked like a new one). Switching to a sampler whose eta is fixed
        (ddpm 1, euler and heun 0) without naming eta sets that value."""
        if changes.get("sampler") in FIXED_ETA and "eta" not in changes:
            changes["eta"] = FIXED_ETA[changes["sampler"]]
        return dataclasses.replace(self, **changes)

    def guidance_at(self, t: int) -> float:
        """The guidance scale applied at timestep ``t``: w inside the interval, 1 (plain conditional) outside."""
        if self.guidance_interval is None or self.guidance_interval[0] <= t <= self.guidance_interval[1]:
            return self.guidance
        return 1.0

    def calls_per_step(self, t: int) -> int:
        """Network evaluations per image at timestep ``t``: 2 when guidance needs the unconditional model too."""
        return 1 if self.guidance_at(t) in (0.0, 1.0) else 2

    def to_dict(self) -> dict:
        """JSON-ready: ``SamplingConfig(**config.to_dict()) == config``."""
        d = dataclasses.asdict(self)
        d["guidance_interval"] = list(self.guidance_interval) if self.guidance_interval else None
        return d

    def __str__(self) -> str:
        where = "every step" if self.guidance_interval is None else "t = {}..{}".format(*self.guidance_interval)
        eta = f", eta {self.eta:g}" if self.sampler == "ddim" else ""
        return f"{self.sampler} {self.steps} steps{eta}, w = {self.guidance:g} at {where}"
