"""A variational autoencoder that compresses a 28x28 image to a C x 7 x 7 latent (Kingma & Welling 2014).

    encoder:  x (N, 1, 28, 28) -> mean, log-variance (N, C, 7, 7)
    sample:   z = mean + exp(logvar / 2) * eps,  eps ~ N(0, I)          (the reparameterisation trick)
    decoder:  z -> x_hat (N, 1, 28, 28), through tanh (``output="tanh"``) or as it is (``"linear"``)
    loss:     mean (x - x_hat)^2 (``reconstruction="mse"``) or mean |x - x_hat| (``"l1"``)
              +  beta * KL(q(z | x) || N(0, I)) per latent element
    KL:       0.5 * (mean^2 + var - 1 - log var), summed over nothing: one value per latent element

Both halves are stacks of ``layers.ResBlock`` (GroupNorm, SiLU, 3x3 conv, twice, plus the input), strided
convolutions down (28 -> 14 -> 7) and nearest-neighbour upsampling plus a convolution up, and at 7x7 a
squeeze-and-excitation ``ChannelAttention`` (Hu et al. 2018) that reweights channels from their global mean.

Why tanh and L1: about half of Fashion-MNIST's pixels are exactly -1 (black background). A linear output layer
trained with MSE reaches -1 only on average, so background pixels come out a little above or below it and, once
clamped to [-1, 1], many are faintly grey: a haze that the latent samples inherit (``reports.reconstruction_metrics``
counts the black pixels kept). Through tanh the decoder can push those pixels as far towards -1 as it likes, where
they saturate. But MSE's pull on a pixel shrinks with its error, and tanh's slope shrinks near -1 too: a pixel
1/255 short of black is worth almost nothing to it. L1's pull keeps its size however small the error, so it
drives them all the way (notebook 06 compares the two).

The latent diffusion model wants latents of unit variance. ``latent_mean`` (per channel) and ``latent_scale``
(one number) are measured on the training set after training (``fit_latent_stats``), kept as buffers in
the weights, and applied by ``encode`` / ``decode``: ``encode`` returns (z - latent_mean) * latent_scale.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import map_batches
from .layers import ResBlock, group_norm as norm


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) elementwise (Kingma & Welling 2014, appendix B)."""
    return 0.5 * (mean.square() + logvar.exp() - 1 - logvar)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: x * sigmoid(MLP(mean over H, W of x)), one weight per channel."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.fc2 = nn.Linear(channels // reduction, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3))                                       # (N, C)
        w = torch.sigmoid(self.fc2(F.silu(self.fc1(w))))             # (N, C)
        return x * w[:, :, None, None]                               # (N, C, H, W)


class Encoder(nn.Module):
    def __init__(self, latent_channels: int, widths: tuple[int, int, int]):
        super().__init__()
        w1, w2, w3 = widths
        self.conv_in = nn.Conv2d(1, w1, 3, padding=1)
        self.res1 = ResBlock(w1, w1)
        self.down1 = nn.Conv2d(w1, w2, 3, stride=2, padding=1)
        self.res2 = ResBlock(w2, w2)
        self.down2 = nn.Conv2d(w2, w3, 3, stride=2, padding=1)
        self.res3 = ResBlock(w3, w3)
        self.attn = ChannelAttention(w3)
        self.norm_out = norm(w3)
        self.conv_out = nn.Conv2d(w3, 2 * latent_channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.res1(self.conv_in(x))                               # (N, w1, 28, 28)
        h = self.res2(self.down1(h))                                 # (N, w2, 14, 14)
        h = self.attn(self.res3(self.down2(h)))                      # (N, w3, 7, 7)
        return self.conv_out(F.silu(self.norm_out(h)))               # (N, 2C, 7, 7)


class Decoder(nn.Module):
    def __init__(self, latent_channels: int, widths: tuple[int, int, int], output: str = "linear"):
        super().__init__()
        if output not in ("linear", "tanh"):
            raise ValueError(f"unknown decoder output {output!r} (allowed: linear, tanh)")
        self.output = output
        w1, w2, w3 = widths
        self.conv_in = nn.Conv2d(latent_channels, w3, 3, padding=1)
        self.res3 = ResBlock(w3, w3)
        self.attn = ChannelAttention(w3)
        self.up2 = nn.Conv2d(w3, w2, 3, padding=1)
        self.res2 = ResBlock(w2, w2)
        self.up1 = nn.Conv2d(w2, w1, 3, padding=1)
        self.res1 = ResBlock(w1, w1)
        self.norm_out = norm(w1)
        self.conv_out = nn.Conv2d(w1, 1, 3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.attn(self.res3(self.conv_in(z)))                    # (N, w3, 7, 7)
        h = self.res2(self.up2(F.interpolate(h, scale_factor=2.0)))  # (N, w2, 14, 14)
        h = self.res1(self.up1(F.interpolate(h, scale_factor=2.0)))  # (N, w1, 28, 28)
        x = self.conv_out(F.silu(self.norm_out(h)))                  # (N, 1, 28, 28)
        return torch.tanh(x) if self.output == "tanh" else x


@dataclass
class VAEConfig:
    """What builds a ``VAE``; the checkpoint stores it as a dict."""
    latent_channels: int = 4
    widths: tuple[int, int, int] = (32, 64, 128)      # channels at 28x28, 14x14 and 7x7
    beta: float = 1e-3                                 # the KL term's weight
    output: str = "linear"                             # the decoder's last activation: "linear" or "tanh"
    reconstruction: str = "mse"                        # the reconstruction loss: "mse" or "l1"

    def __post_init__(self):
        self.widths = tuple(self.widths)                   # a JSON list reads back as the same config


class VAE(nn.Module):
    """28x28 images in [-1, 1] <-> ``latent_channels`` x 7 x 7 latents; see the module docstring."""

    def __init__(self, config: VAEConfig | None = None, **changes):
        super().__init__()
        self.config = config = replace(config or VAEConfig(), **changes)
        if config.reconstruction not in ("mse", "l1"):
            raise ValueError(f"unknown reconstruction loss {config.reconstruction!r} (allowed: mse, l1)")
        self.reconstruction = F.mse_loss if config.reconstruction == "mse" else F.l1_loss
        self.latent_channels, self.beta = config.latent_channels, config.beta
        self.encoder = Encoder(config.latent_channels, tuple(config.widths))
        self.decoder = Decoder(config.latent_channels, tuple(config.widths), config.output)
        self.register_buffer("latent_mean", torch.zeros(config.latent_channels))
        self.register_buffer("latent_scale", torch.ones(()))

    def check_inputs(self, x: torch.Tensor) -> None:
        """Raise ``ValueError`` with the expected shape when ``x`` is not (N, 1, 28, 28) images."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"VAE expects images of shape (N, 1, 28, 28), got {tuple(x.shape)}")

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 1, 28, 28) -> mean, logvar, each (N, C, 7, 7), in the raw (unscaled) latent space."""
        self.check_inputs(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)               # (N, C, 7, 7) each
        return mean, logvar.clamp(-30.0, 20.0)

    @staticmethod
    def sample_posterior(mean: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None):
        """z = mean + exp(logvar / 2) * eps, eps ~ N(0, I): a draw from q(z | x) that gradients flow through."""
        eps = torch.randn(mean.shape, generator=generator).to(mean.device)
        return mean + (0.5 * logvar).exp() * eps                     # (N, C, 7, 7)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None):
        """Reconstruction (N, 1, 28, 28) from a sampled latent, and the loss terms (reconstruction, KL per element)."""
        mean, logvar = self.posterior(x)                             # (N, C, 7, 7)
        z = self.sample_posterior(mean, logvar, generator)           # (N, C, 7, 7)
        x_hat = self.decoder(z)                                      # (N, 1, 28, 28)
        return x_hat, self.reconstruction(x_hat, x), kl_divergence(mean, logvar).mean()

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _, rec, kl = self(x, generator)
        return rec + self.beta * kl

    def scale(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent -> the unit-variance latent the diffusion model works in."""
        return (z - self.latent_mean[:, None, None]) * self.latent_scale

    def unscale(self, z: torch.Tensor) -> torch.Tensor:
        return z / self.latent_scale + self.latent_mean[:, None, None]

    @torch.no_grad()
    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None) -> torch.Tensor:
        """(N, 1, 28, 28) -> scaled latents (N, C, 7, 7): the posterior mean, or a sample from it."""
        mean, logvar = self.posterior(x)                             # (N, C, 7, 7)
        return self.scale(self.sample_posterior(mean, logvar, generator) if sample else mean)

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Scaled latents (N, C, 7, 7) -> images (N, 1, 28, 28) clamped to [-1, 1]."""
        if z.ndim != 4 or tuple(z.shape[1:]) != (self.latent_channels, 7, 7):
            raise ValueError(f"VAE.decode expects latents of shape (N, {self.latent_channels}, 7, 7), got {tuple(z.shape)}")
        return self.decoder(self.unscale(z)).clamp(-1, 1)

    @property
    def latent_stats_fitted(self) -> bool:
        """False while ``latent_mean`` and ``latent_scale`` are still their initial 0 and 1 (never fitted)."""
        return not (float(self.latent_scale) == 1.0 and not self.latent_mean.any())

    @torch.no_grad()
    def fit_latent_stats(self, x: torch.Tensor, batch_size: int = 1000) -> None:
        """Set ``latent_mean`` (per channel) and ``latent_scale`` = 1 / std so that encoded ``x`` has
        mean 0 and variance 1 (measured on posterior samples, which is what the diffusion model sees)."""
        gen = torch.Generator().manual_seed(0)
        z = map_batches(lambda xb: self.sample_posterior(*self.posterior(xb), gen), x, batch_size,
                        self.latent_mean.device).double()            # (N, C, 7, 7)
        mu = z.mean(dim=(0, 2, 3))                                   # (C,)
        std = (z - mu[:, None, None]).std()
        self.latent_mean.copy_(mu.float())
        self.latent_scale.fill_(float(1 / std))
