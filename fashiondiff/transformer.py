"""The pixel track's denoiser: a small class-conditional diffusion transformer with linear attention.

A 16x16 image becomes 64 tokens of 2x2 patches (``fashiondiff.patches``); three pre-norm blocks of
linear attention and a feed-forward layer mix them; a linear layer turns each token back into its
patch. The network predicts the clean image x_0 from a noised x_t.

Time and class reach every token of every block through adaptive LayerNorm with zero-initialised
gates (adaLN-Zero, DiT: Peebles & Xie 2023, sec. 3.2): c = emb(t) + emb(y) sets a per-channel shift,
scale and gate for the attention and the feed-forward branch of each block.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .attention import Attention, LinearAttention
from .diffusion import PREDICTIONS
from .embeddings import ClassEmbedding, TimestepEmbedding
from .patches import PatchEmbedding, PositionalEncoding, unpatchify
from .schedule import NoiseSchedule


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """(N, T, D) with (N, 1, D) shift and scale: x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


class AdaLNBlock(nn.Module):
    """Pre-norm block: x + g1 * attn(adaLN(x)), then x + g2 * ff(adaLN(x)). (N, T, D), (N, D) -> (N, T, D)."""

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
        x = x + gate1 * self.attn(modulate(self.norm1(x), shift1, scale1))                  # (N, T, D)
        x = x + gate2 * self.ff(modulate(self.norm2(x), shift2, scale2))                    # (N, T, D)
        return x


class TransformerDenoiser(nn.Module):
    """x_t (N, C, H, W), t (N,) in 1..timesteps, y (N,) in 0..n_classes -> its prediction (N, C, H, W): the clean
    image x_0, or with ``prediction`` = "eps" / "v" the noise or the velocity (``fashiondiff.diffusion``).

    Label ``n_classes`` is the null label (no class), used for classifier-free guidance. ``timesteps`` and
    ``schedule`` name the ``NoiseSchedule`` the model is trained with; they are kept in its config.

    As a generator (``generation.generate``) it draws images directly: ``sample_shape`` is the image's, ``decode``
    is the identity, and the predicted x_0 is clamped to the pixel range [-1, 1].
    """
    clip = 1.0                         # x_0 lies in [-1, 1]
    samplers = ("ddpm", "ddim")
    sample_batch_size = 64             # images per sampling batch


    def __init__(self, image_size: int = 16, patch_size: int = 2, channels: int = 1, dim: int = 128,
                 heads: int = 4, layers: int = 3, ff_dim: int = 256, n_classes: int = 10, timesteps: int = 10,
                 schedule: str = "cosine", attention: str = "linear", pos_encoding: str = "sincos",
                 prediction: str = "x0"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r} (allowed: {', '.join(PREDICTIONS)})")
        self.config = dict(image_size=image_size, patch_size=patch_size, channels=channels, dim=dim, heads=heads,
                           layers=layers, ff_dim=ff_dim, n_classes=n_classes, timesteps=timesteps,
                           schedule=schedule, attention=attention, pos_encoding=pos_encoding, prediction=prediction)
        self.prediction = prediction   # what the output is: diffusion_loss's target, the sampler's input
        self.n_classes, self.channels, self.image_size, self.patch_size = n_classes, channels, image_size, patch_size
        n_tokens = (image_size // patch_size) ** 2
        self.patch = PatchEmbedding(channels, dim, patch_size)
        self.pos = PositionalEncoding(n_tokens, dim, pos_encoding)
        self.time = TimestepEmbedding(dim, scale=1000 / timesteps)
        self.label = ClassEmbedding(n_classes, dim)
        self.blocks = nn.ModuleList(AdaLNBlock(dim, heads, ff_dim, attention) for _ in range(layers))
        self.final_norm = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.final_ada = nn.Sequential(nn.SiLU(), nn.Linear(dim, 2 * dim))
        self.out = nn.Linear(dim, channels * patch_size ** 2)
        for layer in (self.final_ada[1], self.out):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    @property
    def schedule(self) -> NoiseSchedule:
        """The noise schedule the model is trained and sampled with."""
        return NoiseSchedule(self.config["timesteps"], self.config["schedule"])

    @property
    def max_steps(self) -> int:
        return self.schedule.T

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.image_size, self.image_size)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What the sampler draws is already an image (N, C, H, W)."""
        return x

    def check(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> None:
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
            self.check(x, t, y)
        h = self.pos(self.patch(x))                              # (N, T, D)
        c = self.time(t) + self.label(y)                         # (N, D)
        for block in self.blocks:
            h = block(h, c)                                      # (N, T, D)
        shift, scale = self.final_ada(c)[:, None].chunk(2, dim=-1)   # 2 x (N, 1, D)
        h = self.out(modulate(self.final_norm(h), shift, scale))     # (N, T, C*p*p)
        return unpatchify(h, self.patch_size, self.channels)         # (N, C, H, W)


class FlowTransformer(TransformerDenoiser):
    """The same backbone as a flow-matching model (``fashiondiff.flow``): x_t (N, C, H, W), continuous t (N,) in
    [0, 1] (0 = data, 1 = noise), y (N,) -> the velocity eps - x_0 (N, C, H, W).

    t reaches the network as 1000 t, the range of timesteps the diffusion models see. It is sampled by integrating
    the ODE (euler or heun), with no noise schedule and nothing to clamp (a velocity is not a pixel).
    """
    prediction = "velocity"
    clip = None
    samplers = ("euler", "heun")
    max_steps = 1000
    schedule = None

    def __init__(self, image_size: int = 16, patch_size: int = 2, channels: int = 1, dim: int = 128,
                 heads: int = 4, layers: int = 3, ff_dim: int = 256, n_classes: int = 10,
                 attention: str = "linear", pos_encoding: str = "sincos"):
        super().__init__(image_size, patch_size, channels, dim, heads, layers, ff_dim, n_classes, timesteps=1,
                         attention=attention, pos_encoding=pos_encoding)
        self.config = dict(image_size=image_size, patch_size=patch_size, channels=channels, dim=dim, heads=heads,
                           layers=layers, ff_dim=ff_dim, n_classes=n_classes, attention=attention,
                           pos_encoding=pos_encoding)
        self.prediction = FlowTransformer.prediction
        self.time = TimestepEmbedding(dim, scale=1000)           # t in [0, 1] -> 0..1000
