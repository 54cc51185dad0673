"""Latent diffusion (Rombach et al. 2022): a frozen VAE and a UNet that denoises in the VAE's latent space.

    training:  z_0 = vae.scale(sample of q(z | x))  (unit variance),  z_t ~ q(z_t | z_0),  eps_theta(z_t, t, y) ~ eps
    sampling:  z_T ~ N(0, I) -> DDPM / DDIM steps with eps_theta -> z_0 -> vae.decode(z_0) -> image (N, 1, 28, 28)

``LatentDiffusion`` holds both parts so that one weights folder rebuilds the whole pipeline. It is called like
any denoiser of the course (``model(z_t, t, y)`` is the UNet's eps), so ``fashiondiff.diffusion`` samples it
unchanged; ``decode`` turns the sampled latents into images. Only the UNet is trained: the VAE is frozen.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .diffusion import DiffusionGenerator
from .sampling import SamplingConfig
from .unet import LatentUNet
from .vae import VAE


class LatentDiffusion(DiffusionGenerator, nn.Module):
    """The VAE and the UNet as one generator (``generation.Generator``): the sampler draws (C, 7, 7) latents with
    the UNet's eps, unclamped (latents are not confined to [-1, 1]), and ``decode`` turns them into images."""
    prediction = "eps"
    clip = None
    image_size = 28                    # of the decoded images
    sample_batch_size = 500            # latents per sampling batch

    def __init__(self, vae: dict, unet: dict, sampling: SamplingConfig | None = None, **derived):
        """``vae`` and ``unet``: the two parts' configs. ``derived`` (timesteps, schedule, prediction) is what
        ``config`` repeats from the UNet's config for the samplers; given back on loading, it must agree.
        ``sampling``: the default settings (without one, ancestral sampling at every timestep)."""
        super().__init__()
        self.config = {"vae": dict(vae), "unet": dict(unet), "timesteps": unet.get("timesteps", 1000),
                       "schedule": unet.get("schedule", "linear"), "prediction": "eps"}
        for key, value in derived.items():
            if key not in self.config or self.config[key] != value:
                raise ValueError(f"latent config: {key} = {value!r} does not match the UNet's ({self.config.get(key)!r})")
        self.vae = VAE(**vae).requires_grad_(False)
        self.unet = LatentUNet(**unet)
        if self.unet.config["latent_channels"] != self.vae.latent_channels:
            raise ValueError(f"the UNet expects {self.unet.config['latent_channels']} latent channels, "
                             f"the VAE makes {self.vae.latent_channels}")
        self.sampling = sampling or SamplingConfig("ddpm", steps=self.config["timesteps"])

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
