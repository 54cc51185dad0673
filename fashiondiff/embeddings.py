"""How a denoiser is told *when* (the timestep t) and *what* (the class y).

``TimestepEmbedding``: t -> sinusoidal features -> MLP (DDPM, Ho et al. 2020, after Vaswani et al. 2017).
``ClassEmbedding``: a learned vector per class plus one extra "null" class, which stands for
"no label" and is what classifier-free guidance (Ho & Salimans 2022) compares against.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def timestep_features(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(N,) float timesteps -> (N, dim) features [cos(t w_k), sin(t w_k)], w_k = max_period^(-k/(dim/2))."""
    if dim % 2:
        raise ValueError(f"timestep features need an even dim, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]                        # (N, dim/2)
    return torch.cat([angles.cos(), angles.sin()], dim=1)            # (N, dim)


class TimestepEmbedding(nn.Module):
    """(N,) timesteps -> (N, dim). ``scale`` maps the schedule's t onto 0..1000 so T = 10 and T = 1000
    models see the same range of frequencies."""

    def __init__(self, dim: int, scale: float = 1.0):
        super().__init__()
        self.dim, self.scale = dim, scale
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(timestep_features(t * self.scale, self.dim))  # (N, dim)


class ClassEmbedding(nn.Module):
    """(N,) labels in 0..n_classes (``n_classes`` itself = the null label) -> (N, dim)."""

    def __init__(self, n_classes: int, dim: int):
        super().__init__()
        self.null = n_classes
        self.table = nn.Embedding(n_classes + 1, dim)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.table(y)                                         # (N, dim)

    def drop(self, y: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """Replace each label by the null label with probability p (label dropout, for guidance)."""
        mask = torch.rand(y.shape, generator=generator).to(y.device) < p
        return torch.where(mask, torch.full_like(y, self.null), y)
