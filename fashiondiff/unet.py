"""The latent track's denoiser: a small UNet over C x 7 x 7 VAE latents that predicts the noise eps.

    latent (N, C, 7, 7) -> conv -> [ResBlock] 7x7 -> down -> [ResBlock, CrossAttention] 4x4
                        -> down -> [ResBlock, CrossAttention] 2x2 -> middle -> the same back up,
                        each decoder level concatenating the encoder's output at its size (skip connections)

Downsampling is a stride-2 convolution with padding 1 (7 -> 4 -> 2); upsampling is nearest-neighbour to the
skip's exact size (2 -> 4 -> 7) followed by a 3x3 convolution (Ronneberger et al. 2015; Ho et al. 2020).

Conditioning reaches every position twice:
  * ``LatentResBlock``: the timestep embedding plus the class embedding gives a per-channel scale and shift
    after the second GroupNorm (adaptive GroupNorm, Dhariwal & Nichol 2021, sec. 3);
  * ``CrossAttention``: every latent position (query) attends over a *context* of ``context_tokens`` tokens
    made from the class (Rombach et al. 2022, sec. 3.3). With a single context token the softmax over keys is
    1 whatever the query, and the layer collapses to adding W_o W_v c: a per-class bias (notebook 07).
Label ``n_classes`` is the null label of classifier-free guidance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .embeddings import ClassEmbedding, TimestepEmbedding
from .layers import ResBlock, group_norm as norm


class LatentResBlock(ResBlock):
    """``layers.ResBlock`` conditioned on ``emb`` (N, E) through the scale and shift of its second norm, with its
    last convolution zero-initialised so that the block starts as its skip (Ho et al. 2020):
    (N, c_in, H, W), (N, E) -> (N, c_out, H, W)."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__(c_in, c_out, emb_dim)
        nn.init.zeros_(self.conv2.weight)                            # start as the identity (skip only)
        nn.init.zeros_(self.conv2.bias)


class CrossAttention(nn.Module):
    """Queries from the H*W positions of x, keys and values from ``context`` (N, K, D_ctx):

        out = x + W_o softmax(Q K^T / sqrt(d)) V,  Q = W_q GN(x), K = W_k c, V = W_v c   (per head)
    """

    def __init__(self, channels: int, context_dim: int, heads: int = 4):
        super().__init__()
        if channels % heads:
            raise ValueError(f"channels ({channels}) must be divisible by heads ({heads})")
        self.heads = heads
        self.norm = norm(channels)
        self.q = nn.Linear(channels, channels, bias=False)
        self.kv = nn.Linear(context_dim, 2 * channels, bias=False)
        self.out = nn.Linear(channels, channels)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)             # (N, H*W, C)
        q = self.q(tokens).unflatten(-1, (self.heads, -1)).transpose(1, 2)          # (N, heads, H*W, C/heads)
        k, v = self.kv(context).unflatten(-1, (2, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (N, heads, K, C/heads) each
        a = F.scaled_dot_product_attention(q, k, v)                  # (N, heads, H*W, C/heads)
        a = self.out(a.transpose(1, 2).flatten(2))                   # (N, H*W, C)
        return x + a.transpose(1, 2).reshape(n, c, h, w)             # (N, C, H, W)


class ClassContext(nn.Module):
    """(N,) labels -> (N, K, D) context tokens: the class's embedding split into K tokens, plus a learned
    embedding per token position so the tokens differ even for the null class."""

    def __init__(self, n_classes: int, tokens: int, dim: int):
        super().__init__()
        self.tokens, self.dim = tokens, dim
        self.label = ClassEmbedding(n_classes, tokens * dim)
        self.position = nn.Parameter(torch.randn(tokens, dim) * 0.02)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.label(y).view(-1, self.tokens, self.dim) + self.position   # (N, K, D)


class ResAttentionBlock(nn.Module):
    """One resolution of the UNet: a LatentResBlock, optionally followed by CrossAttention."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, context_dim: int, heads: int, attention: bool):
        super().__init__()
        self.res = LatentResBlock(c_in, c_out, emb_dim)
        self.attn = CrossAttention(c_out, context_dim, heads) if attention else None

    def forward(self, x, emb, context):
        x = self.res(x, emb)                                         # (N, c_out, H, W)
        return self.attn(x, context) if self.attn is not None else x


@dataclass
class UNetConfig:
    """What builds a ``LatentUNet``; the checkpoint stores it as a dict (inside the latent model's)."""
    latent_channels: int = 4
    widths: tuple[int, int, int] = (64, 128, 128)      # channels at 7x7, 4x4 and 2x2
    emb_dim: int = 256                                 # time and class embedding
    context_tokens: int = 4                            # class context tokens for cross-attention
    context_dim: int = 64
    heads: int = 4
    attention_7x7: bool = False                        # attention at 7x7 too (49 tokens)
    n_classes: int = 10
    timesteps: int = 1000                              # the NoiseSchedule it is trained with
    schedule: str = "linear"

    def __post_init__(self):
        self.widths = tuple(self.widths)                   # a JSON list reads back as the same config


class LatentUNet(nn.Module):
    """eps_theta(z_t, t, y) for z_t (N, C, 7, 7), t (N,) in 1..T, y (N,) in 0..n_classes (n_classes = null)."""

    def __init__(self, config: UNetConfig | None = None, **changes):
        super().__init__()
        c = self.config = replace(config or UNetConfig(), **changes)
        w1, w2, w3 = c.widths
        block = lambda ci, co, attn: ResAttentionBlock(ci, co, c.emb_dim, c.context_dim, c.heads, attn)  # noqa: E731
        self.time = TimestepEmbedding(c.emb_dim, scale=1000 / c.timesteps)
        self.label = ClassEmbedding(c.n_classes, c.emb_dim)
        self.context = ClassContext(c.n_classes, c.context_tokens, c.context_dim)
        self.conv_in = nn.Conv2d(c.latent_channels, w1, 3, padding=1)
        self.enc7, self.down4 = block(w1, w1, c.attention_7x7), nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.enc4, self.down2 = block(w2, w2, True), nn.Conv2d(w2, w3, 3, stride=2, padding=1)
        self.enc2 = block(w3, w3, True)
        self.mid1, self.mid2 = block(w3, w3, True), block(w3, w3, False)
        self.dec2 = block(2 * w3, w3, True)
        self.up4, self.dec4 = nn.Conv2d(w3, w2, 3, padding=1), block(2 * w2, w2, True)
        self.up7, self.dec7 = nn.Conv2d(w2, w1, 3, padding=1), block(2 * w1, w1, c.attention_7x7)
        self.norm_out, self.conv_out = norm(w1), nn.Conv2d(w1, c.latent_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def check_inputs(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> None:
        """Raise ``ValueError`` with the expected shapes when the inputs do not fit."""
        c = self.config.latent_channels
        if z.ndim != 4 or tuple(z.shape[1:]) != (c, 7, 7):
            raise ValueError(f"LatentUNet expects latents of shape (N, {c}, 7, 7), got {tuple(z.shape)}")
        if t.shape != (len(z),) or y.shape != (len(z),):
            raise ValueError(f"t and y must have shape ({len(z)},), got {tuple(t.shape)} and {tuple(y.shape)}")
        if not torch.compiler.is_compiling() and (y.min() < 0 or y.max() > self.config.n_classes):
            raise ValueError(f"labels must be in 0..{self.config.n_classes} ({self.config.n_classes} = no label)")

    def forward(self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.check_inputs(z, t, y)
        emb = self.time(t) + self.label(y)                           # (N, E)
        ctx = self.context(y)                                        # (N, K, D)
        h7 = self.enc7(self.conv_in(z), emb, ctx)                    # (N, w1, 7, 7)
        h4 = self.enc4(self.down4(h7), emb, ctx)                     # (N, w2, 4, 4)
        h2 = self.enc2(self.down2(h4), emb, ctx)                     # (N, w3, 2, 2)
        h = self.mid2(self.mid1(h2, emb, ctx), emb, ctx)             # (N, w3, 2, 2)
        h = self.dec2(torch.cat([h, h2], 1), emb, ctx)               # (N, w3, 2, 2)
        h = self.up4(F.interpolate(h, size=h4.shape[-2:]))           # (N, w2, 4, 4)
        h = self.dec4(torch.cat([h, h4], 1), emb, ctx)               # (N, w2, 4, 4)
        h = self.up7(F.interpolate(h, size=h7.shape[-2:]))           # (N, w1, 7, 7)
        h = self.dec7(torch.cat([h, h7], 1), emb, ctx)               # (N, w1, 7, 7)
        return self.conv_out(F.silu(self.norm_out(h)))               # (N, C, 7, 7)
