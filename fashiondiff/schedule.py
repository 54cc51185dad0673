"""The DDPM noise schedule and the closed forms built on it (Ho et al. 2020).

Timesteps run t = 1..T; index 0 means "clean". With alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s:

    q(x_t | x_0)          = N(sqrt(abar_t) x_0, (1 - abar_t) I)                        (DDPM eq. 4)
    q(x_s | x_t, x_0)     = N(c0 x_0 + ct x_t, var), for s < t, with a = abar_t / abar_s:
        c0 = sqrt(abar_s) (1 - a) / (1 - abar_t),  ct = sqrt(a) (1 - abar_s) / (1 - abar_t),
        var = (1 - a) (1 - abar_s) / (1 - abar_t)                                    (eq. 6-7 for s = t-1)
    SNR(t)                = abar_t / (1 - abar_t)
    sigma(t)              = sqrt((1 - abar_t) / abar_t) = SNR^(-1/2): the noise level of x_t / sqrt(abar_t) = x_0 + sigma eps
                            (Karras et al. 2022, sec. 2; the unit of a guidance interval, ``fashiondiff.sampling``)
    v                     = sqrt(abar_t) eps - sqrt(1 - abar_t) x_0   (Salimans & Ho 2022, sec. 4 and app. D)

``linear``: betas from 1e-4 to 0.02, scaled by 1000/T so that T = 1000 is DDPM's schedule; for small T
the scaled betas pass 1 and are clipped at 0.999, so at T = 10 the image is gone by t = 5 (notebook 03).
``cosine``: abar_t = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), betas clipped at 0.999
(Nichol & Dhariwal 2021, eq. 17): it reaches (nearly) pure noise at t = T whatever T is
(abar_T = 2.4e-5 at T = 10, because of the clip) and spreads the steps in between evenly in log SNR.
"""

from __future__ import annotations

import math

import torch


class NoiseSchedule:
    """betas, alphas and abar as float64 tensors of length T+1 (entry 0 is t = 0: beta 0, abar 1)."""

    def __init__(self, T: int = 1000, kind: str = "linear"):
        if T < 1:
            raise ValueError(f"T must be at least 1, got {T}")
        self.T, self.kind = T, kind
        if kind == "linear":
            scale = 1000 / T
            betas = torch.linspace(1e-4 * scale, 0.02 * scale, T, dtype=torch.float64).clamp(max=0.999)
        elif kind == "cosine":
            s = 0.008
            f = torch.cos((torch.arange(T + 1, dtype=torch.float64) / T + s) / (1 + s) * math.pi / 2) ** 2
            betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        else:
            raise ValueError(f"unknown schedule {kind!r} (allowed: linear, cosine)")
        self.betas = torch.cat([torch.zeros(1, dtype=torch.float64), betas])     # (T+1,)
        self.alphas = 1 - self.betas                                             # (T+1,)
        self.abar = torch.cumprod(self.alphas, dim=0)                            # (T+1,)

    def __repr__(self) -> str:
        return f"NoiseSchedule(T={self.T}, kind={self.kind!r})"

    def at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] as float32 on like's device, shaped to broadcast over (N, ...)."""
        v = values.to(like.device)[t.to(like.device)].to(like.dtype)
        return v.reshape(-1, *([1] * (like.ndim - 1)))

    def snr(self, t: torch.Tensor) -> torch.Tensor:
        """Signal-to-noise ratio abar_t / (1 - abar_t) at integer timesteps t (float64, t's shape)."""
        return self.abar[t] / (1 - self.abar[t])

    def sigma(self, t: int) -> float:
        """The noise level sqrt((1 - abar_t) / abar_t) of timestep ``t`` (0 at t = 0)."""
        return float(((1 - self.abar[t]) / self.abar[t]).sqrt())

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) given standard normal ``noise``; t is (N,) int64 in 0..T (t = 0 gives x_0)."""
        ab = self.at(self.abar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """The noise that turns x0 into x_t: (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t)."""
        ab = self.at(self.abar, t, x_t)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        ab = self.at(self.abar, t, x_t)
        return (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()

    def v_from(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The velocity target sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (Salimans & Ho 2022)."""
        ab = self.at(self.abar, t, x0)
        return ab.sqrt() * noise - (1 - ab).sqrt() * x0

    def x0_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x0 = sqrt(abar_t) x_t - sqrt(1 - abar_t) v: x_t and v are a rotation of (x0, eps) by the same angle."""
        ab = self.at(self.abar, t, x_t)
        return ab.sqrt() * x_t - (1 - ab).sqrt() * v

    def posterior(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, s: torch.Tensor | None = None):
        """Mean and variance of q(x_s | x_t, x_0), s < t (default s = t - 1); see the module docstring."""
        s = t - 1 if s is None else s
        ab_t, ab_s = self.at(self.abar, t, x_t), self.at(self.abar, s, x_t)
        a = ab_t / ab_s
        c0 = ab_s.sqrt() * (1 - a) / (1 - ab_t)
        ct = a.sqrt() * (1 - ab_s) / (1 - ab_t)
        var = (1 - a) * (1 - ab_s) / (1 - ab_t)
        return c0 * x0 + ct * x_t, var

    def timesteps(self, steps: int | None = None) -> list[int]:
        """``steps`` timesteps from T down to 1, evenly spaced (all T when ``steps`` is None)."""
        steps = self.T if steps is None else steps
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps must be between 1 and T = {self.T}, got {steps}")
        ts = torch.linspace(self.T, 1, steps).round().long().tolist()
        return sorted(set(ts), reverse=True)
