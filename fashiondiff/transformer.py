"""The pixel track's networks: a small class-conditional transformer with linear attention, as a diffusion
denoiser (``TransformerDenoiser``) and as a flow (``FlowTransformer``).

A 16x16 image becomes 64 tokens of 2x2 patches (``fashiondiff.patches``); three pre-norm blocks of
linear attention and a feed-forward layer mix them; a linear layer turns each token back into its
patch (``PixelTransformer``, the backbone both share). The denoiser predicts the clean image x_0 from a
noised x_t (or the noise, or v: notebook 11); the flow predicts the velocity eps - x_0.

Time and class reach every token of every block through adaptive LayerNorm with zero-initialised
gates (adaLN-Zero, DiT: Peebles & Xie 2023, sec. 3.2): c = emb(t) + emb(y) sets a per-channel shift,
scale and gate for the attention and the feed-forward branch of each block.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from .attention import Attention, LinearAttention
from .diffusion import DiffusionGenerator, check_prediction
from .embeddings import ClassEmbedding, TimestepEmbedding
from .patches import PatchEmbedding, PositionalEncoding, unpatchify
from .sampling import SamplingConfig


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(N, L, D) with (N, 1, D) shift and scale: x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


class AdaLNBlock(nn.Module):
    """Pre-norm block: x + g1 * attn(adaLN(x)), then x + g2 * ff(adaLN(x)). (N, L, D), (N, D) -> (N, L, D)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, attention: str = "linear"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = {"linear": LinearAttention, "softmax": Attention}[attention](dim, heads)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.ff = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, dim))
        self.ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        nn.init.zeros_(self.ada[1].weight)                       # adaLN-Zero: each block starts as identity
        nn.init.zeros_(self.ada[1].bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = self.ada(c)[:, None].chunk(6, dim=-1)  # 6 x (N, 1, D)
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))                  # (N, L, D)
        x = x + gate2 * self.ff(modulate(self.norm2(x), shift2, scale2))                    # (N, L, D)
        return x


@dataclass
class TransformerConfig:
    """What builds the backbone, and the flow (``FlowTransformer(config)``); the checkpoint stores it as a dict."""
    image_size: int = 16
    patch_size: int = 2                # 2x2 patches: 64 tokens at 16x16
    channels: int = 1
    dim: int = 128
    heads: int = 4
    layers: int = 3
    ff_dim: int = 256
    n_classes: int = 10                # label n_classes is the null label
    attention: str = "linear"          # "linear" or "softmax"
    pos_encoding: str = "sincos"


@dataclass
class DenoiserConfig(TransformerConfig):
    """What builds a ``TransformerDenoiser``: the backbone's config, the noise schedule and the prediction target."""
    timesteps: int = 10
    schedule: str = "cosine"
    prediction: str = "x0"             # "x0", "eps" or "v" (fashiondiff.diffusion)


class PixelTransformer(nn.Module):
    """The backbone: x_t (N, C, H, W), a noise time t (N,), y (N,) in 0..n_classes -> (N, C, H, W).

    Label ``n_classes`` is the null label (no class), used for classifier-free guidance. t reaches the network
    as ``time_scale`` t (``TimestepEmbedding``). The last layer starts at zero, so an untrained model outputs 0."""

    def __init__(self, config: TransformerConfig, time_scale: float):
        super().__init__()
        c = config
        self.n_classes, self.channels, self.image_size, self.patch_size = c.n_classes, c.channels, c.image_size, c.patch_size
        self.patch = PatchEmbedding(c.channels, c.dim, c.patch_size)
        self.pos = PositionalEncoding((c.image_size // c.patch_size) ** 2, c.dim, c.pos_encoding)
        self.time = TimestepEmbedding(c.dim, scale=time_scale)
        self.label = ClassEmbedding(c.n_classes, c.dim)
        self.blocks = nn.ModuleList(AdaLNBlock(c.dim, c.heads, c.ff_dim, c.attention) for _ in range(c.layers))
        self.final_norm = nn.LayerNorm(c.dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(c.dim, 2 * c.dim))
        self.out = nn.Linear(c.dim, c.channels * c.patch_size ** 2)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """A pixel model's sampler draws the image itself."""
        return (self.channels, self.image_size, self.image_size)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What the sampler draws is already an image (N, C, H, W)."""
        return x

    def check_inputs(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> None:
        """Raise ``ValueError`` with the expected shapes when the inputs do not fit."""
        s, c = self.image_size, self.channels
        if x.ndim != 4 or tuple(x.shape[1:]) != (c, s, s):
            raise ValueError(f"expected images of shape (N, {c}, {s}, {s}), got {tuple(x.shape)}")
        if t.shape != (len(x),) or y.shape != (len(x),):
            raise ValueError(f"expected t and y of shape ({len(x)},), got {tuple(t.shape)} and {tuple(y.shape)}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) > self.n_classes):
            raise ValueError(f"labels must be in 0..{self.n_classes} ({self.n_classes} = no class), "
                             f"got {int(y.min())}..{int(y.max())}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if not torch.compiler.is_compiling():                    # the checks read values: keep them out of graphs
            self.check_inputs(x, t, y)
        h = self.pos(self.patch(x))                              # (N, L, D): L tokens
        c = self.time(t) + self.label(y)                         # (N, D)
        for block in self.blocks:
            h = block(h, c)                                      # (N, L, D)
        shift, scale = self.final_ada(c)[:, None].chunk(2, dim=-1)   # 2 x (N, 1, D)
        h = self.out(modulate(self.final_norm(h), shift, scale))     # (N, L, C*p*p)
        return unpatchify(h, self.patch_size, self.channels)         # (N, C, H, W)


class TransformerDenoiser(DiffusionGenerator, PixelTransformer):
    """The backbone as a diffusion denoiser: t (N,) in 1..timesteps -> its prediction (N, C, H, W), the clean image
    x_0, or with ``prediction`` = "eps" / "v" the noise or the velocity (``fashiondiff.diffusion``).

    ``timesteps`` and ``schedule`` name the ``NoiseSchedule`` it is trained with; they are kept in its config. As a
    generator (``generation.Generator``) it draws images directly, the predicted x_0 clamped to the pixel range
    [-1, 1], with ``sampling`` as its default (without one, ancestral sampling at every timestep).
    """
    clip = 1.0                         # x_0 lies in [-1, 1]
    sample_batch_size = 64             # images per sampling batch

    def __init__(self, config: DenoiserConfig | None = None, sampling: SamplingConfig | None = None, **changes):
        config = replace(config or DenoiserConfig(), **changes)
        super().__init__(config, time_scale=1000 / config.timesteps)
        self.config = config
        self.prediction = check_prediction(config.prediction)   # the output: the loss's target, the sampler's input
        self.sampling = sampling or SamplingConfig("ddpm", steps=config.timesteps)


class FlowTransformer(PixelTransformer):
    """The backbone as a flow-matching model (``fashiondiff.flow``): continuous t (N,) in [0, 1] (0 = data,
    1 = noise) -> the velocity eps - x_0 (N, C, H, W).

    t reaches the network as 1000 t, the range of timesteps the diffusion models see. It is sampled by integrating
    the ODE (the "flow" samplers), with no noise schedule and nothing to clamp (a velocity is not a pixel);
    ``sampling`` is its default (without one, 10 Euler steps).
    """
    process = "flow"
    prediction = "velocity"
    clip = None
    schedule = None
    max_steps = 1000
    sample_batch_size = 64

    def __init__(self, config: TransformerConfig | None = None, sampling: SamplingConfig | None = None, **changes):
        config = replace(config or TransformerConfig(), **changes)
        super().__init__(config, time_scale=1000)                # t in [0, 1] -> 0..1000
        self.config = config
        self.sampling = sampling or SamplingConfig("euler", steps=10)
