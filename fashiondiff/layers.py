"""Small layers shared by the convolutional models (the VAE, the latent UNet and the second yardstick's ResNet)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (Wu & He 2018) with min(8, channels / 4) groups, so that narrow layers keep 4 channels a group."""
    return nn.GroupNorm(min(8, channels // 4), channels)


class ResBlock(nn.Module):
    """Pre-activation residual block (He et al. 2016) with GroupNorm and SiLU, as in DDPM's UNet (Ho et al. 2020):

        h   = conv1(SiLU(GN(x)))                          3x3, stride ``stride``
        h   = conv2(SiLU(GN(h) * (1 + scale) + shift))    3x3; without ``emb_dim``: conv2(SiLU(GN(h)))
        out = skip(x) + h                                 skip: 1x1 conv (stride ``stride``) if the shape changes

    x (N, c_in, H, W) -> (N, c_out, H / stride, W / stride). With ``emb_dim`` the block takes a conditioning
    vector emb (N, emb_dim), and ``scale, shift = Linear(SiLU(emb))`` modulate the second norm per channel
    (adaptive GroupNorm, Dhariwal & Nichol 2021, sec. 3)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int | None = None, stride: int = 1):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out) if emb_dim is not None else None
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1, stride=stride) if (c_in, stride) != (c_out, 1) else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.norm2(self.conv1(F.silu(self.norm1(x))))            # (N, c_out, H / stride, W / stride)
        if self.emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)   # (N, c_out, 1, 1) each
            h = h * (1 + scale) + shift                              # (N, c_out, H / stride, W / stride)
        h = self.conv2(F.silu(h))                                    # (N, c_out, H / stride, W / stride)
        return self.skip(x) + h                                      # (N, c_out, H / stride, W / stride)
