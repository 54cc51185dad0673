"""Images as sequences of tokens: patches and positional encodings (ViT, Dosovitskiy et al. 2021).

A (N, C, H, W) image cut into p x p patches becomes (N, T, C*p*p) with T = (H/p)(W/p) tokens;
for the course's 16x16 images and p = 2 that is 64 tokens of 4 pixels. ``PatchEmbedding`` maps each
patch to a ``dim``-vector with a stride-p convolution, which is the same as flattening the patch and
applying one linear layer (notebook 01 shows it). Attention is blind to order, so each token also
gets a vector that says where it sits: ``PositionalEncoding``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, T, C*p*p), tokens in row-major order, each patch flattened as (C, p, p)."""
    n, c, h, w = x.shape
    x = x.reshape(n, c, h // p, p, w // p, p)                       # (N, C, H/p, p, W/p, p)
    x = x.permute(0, 2, 4, 1, 3, 5)                                  # (N, H/p, W/p, C, p, p)
    return x.reshape(n, (h // p) * (w // p), c * p * p)              # (N, T, C*p*p)


def unpatchify(tokens: torch.Tensor, p: int, channels: int = 1) -> torch.Tensor:
    """(N, T, C*p*p) -> (N, C, H, W) for a square grid: the exact inverse of ``patchify``."""
    n, t, _ = tokens.shape
    g = math.isqrt(t)
    x = tokens.reshape(n, g, g, channels, p, p)                      # (N, H/p, W/p, C, p, p)
    x = x.permute(0, 3, 1, 4, 2, 5)                                  # (N, C, H/p, p, W/p, p)
    return x.reshape(n, channels, g * p, g * p)                      # (N, C, H, W)


class PatchEmbedding(nn.Module):
    """(N, C, H, W) -> (N, T, dim): a Conv2d with kernel = stride = p, i.e. one Linear on each patch.

    The weights are a Conv2d's (``proj``), but ``forward`` applies them as that Linear on the patchified
    image: the same numbers, and on a CPU several times faster than a strided convolution (and its
    backward pass) at this size. ``conv_forward`` is the convolution, for comparison.
    """

    def __init__(self, channels: int, dim: int, patch_size: int):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.proj.weight.flatten(1)                              # (dim, C*p*p)
        return F.linear(patchify(x, self.patch_size), w, self.proj.bias)   # (N, T, dim)

    def conv_forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)                                             # (N, dim, H/p, W/p)
        return x.flatten(2).transpose(1, 2)                          # (N, T, dim)


def sincos_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(T,) -> (T, dim): [sin(pos * w_k), cos(pos * w_k)] with w_k = 10000^(-k / (dim/2)) (Vaswani et al. 2017)."""
    freqs = torch.exp(-math.log(10000.0) * torch.arange(dim // 2, dtype=torch.float64) / (dim // 2))
    angles = positions.double()[:, None] * freqs[None]               # (T, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()    # (T, dim)


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim): half of the channels encode the row, half the column (as in MAE and DiT)."""
    if dim % 4:
        raise ValueError(f"2-D sin-cos positions need dim divisible by 4, got {dim}")
    rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
    return torch.cat([sincos_1d(rows.flatten(), dim // 2), sincos_1d(cols.flatten(), dim // 2)], dim=1)


class PositionalEncoding(nn.Module):
    """Adds a position vector to each token: fixed 2-D sin-cos (``"sincos"``) or learned (``"learned"``)."""

    def __init__(self, n_tokens: int, dim: int, kind: str = "sincos"):
        super().__init__()
        if math.isqrt(n_tokens) ** 2 != n_tokens:
            raise ValueError(f"positions are laid out on a square grid; {n_tokens} tokens is not a square")
        if kind == "sincos":
            self.register_buffer("pos", sincos_2d(math.isqrt(n_tokens), dim)[None], persistent=False)
        elif kind == "learned":
            self.pos = nn.Parameter(torch.randn(1, n_tokens, dim) * 0.02)
        else:
            raise ValueError(f"unknown positional encoding {kind!r} (allowed: sincos, learned)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pos                                          # (N, T, dim)
