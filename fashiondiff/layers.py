"""Small layers shared by the convolutional models (the VAE and the latent UNet)."""

from __future__ import annotations

import torch.nn as nn


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm (Wu & He 2018) with min(8, channels / 4) groups, so that narrow layers keep 4 channels a group."""
    return nn.GroupNorm(min(8, channels // 4), channels)
