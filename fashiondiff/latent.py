"""Latent diffusion (Rombach et al. 2022): a frozen VAE and a UNet that denoises in the VAE's latent space.

    training:  z_0 = vae.scale(sample of q(z | x))  (unit variance),  z_t ~ q(z_t | z_0),  eps_theta(z_t, t, y) ~ eps
    sampling:  z_T ~ N(0, I) -> DDPM / DDIM steps with eps_theta -> z_0 -> vae.decode(z_0) -> image (N, 1, 28, 28)

``LatentDiffusion`` holds both parts so that one weights folder rebuilds the whole pipeline. It is called like
any denoiser of the course (``model(z_t, t, y)`` is the UNet's eps), so ``fashiondiff.diffusion`` samples it
unchanged; ``decode`` turns the sampled latents into images. Only the UNet is trained: the VAE is frozen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from .diffusion import DiffusionGenerator
from .sampling import SamplingConfig
from .unet import LatentUNet, UNetConfig
from .vae import VAE, VAEConfig


@dataclass
class LatentConfig:
    """What builds a ``LatentDiffusion``: its two parts' configs (dicts are read as them). ``timesteps``,
    ``schedule`` and ``prediction`` repeat the UNet's for the samplers; given (as on loading), they must agree."""
    vae: VAEConfig
    unet: UNetConfig
    timesteps: int | None = None
    schedule: str | None = None
    prediction: str = "eps"

    def __post_init__(self):
        self.vae = self.vae if isinstance(self.vae, VAEConfig) else VAEConfig(**self.vae)
        self.unet = self.unet if isinstance(self.unet, UNetConfig) else UNetConfig(**self.unet)
        for key, value in (("timesteps", self.timesteps), ("schedule", self.schedule), ("prediction", self.prediction)):
            unet = getattr(self.unet, key, "eps")                   # the UNet always predicts eps
            if value is not None and value != unet:
                raise ValueError(f"latent config: {key} = {value!r} does not match the UNet's ({unet!r})")
        self.timesteps, self.schedule = self.unet.timesteps, self.unet.schedule
        if self.unet.latent_channels != self.vae.latent_channels:
            raise ValueError(f"the UNet expects {self.unet.latent_channels} latent channels, "
                             f"the VAE makes {self.vae.latent_channels}")


class LatentDiffusion(DiffusionGenerator, nn.Module):
    """The VAE and the UNet as one generator (``generation.Generator``): the sampler draws (C, 7, 7) latents with
    the UNet's eps, unclamped (latents are not confined to [-1, 1]), and ``decode`` turns them into images."""
    prediction = "eps"
    clip = None
    image_size = 28                    # of the decoded images
    sample_batch_size = 500            # latents per sampling batch

    def __init__(self, vae: VAEConfig | dict, unet: UNetConfig | dict, sampling: SamplingConfig | None = None,
                 **derived):
        """``vae`` and ``unet``: the two parts' configs; ``derived`` and the checks: ``LatentConfig``.
        ``sampling``: the default settings (without one, ancestral sampling at every timestep)."""
        super().__init__()
        self.config = LatentConfig(vae, unet, **derived)
        self.vae = VAE(self.config.vae).requires_grad_(False)
        self.unet = LatentUNet(self.config.unet)
        self.sampling = sampling or SamplingConfig("ddpm", steps=self.config.timesteps)

    @property
    def label(self):
        """The UNet's class embedding (its ``null`` label is what guidance compares against)."""
        return self.unet.label

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """(C, 7, 7): the latents the sampler draws."""
        return (self.vae.latent_channels, 7, 7)

    def train(self, mode: bool = True):
        super().train(mode)
        self.vae.eval()                                          # frozen: GroupNorm has no batch statistics,
        return self                                              # but keep it in eval mode all the same

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.unet(z_t, t, y)                              # (N, C, 7, 7): predicted eps

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(z)                                # (N, 1, 28, 28) in [-1, 1]
