"""From a trained generator to images: ``generate``, whatever kind of generator it is.

A generator is a network that also says how it is sampled (``TransformerDenoiser``, ``LatentDiffusion``,
``FlowTransformer``):

    samplers            the ``SamplingConfig.sampler`` values it accepts
    max_steps           the most steps a sampler may take
    schedule            a diffusion model's ``NoiseSchedule`` (None for a flow)
    prediction, clip    what the network predicts ("x0", "eps", "v" or a flow's "velocity"), and the clamp of x0
    sample_shape        what the sampler draws, (C, H, W)
    decode              from that to images in [-1, 1] (the identity in pixel space, the VAE's decoder for latents)
    sample_batch_size   how many samples go through the network at once
    image_size          the side of the decoded images

The sampler in the settings picks the loop: ``diffusion.sample`` for ddpm and ddim, ``flow.sample`` for euler and
heun.
"""

from __future__ import annotations

import torch

from . import diffusion, flow
from .sampling import SamplingConfig

ODE_SAMPLERS = ("euler", "heun")


def check_settings(model, settings: SamplingConfig) -> None:
    """Refuse, before any sampling, a sampler the generator does not take or more steps than it has."""
    if settings.sampler not in model.samplers:
        raise ValueError(f"--sampler {settings.sampler}: this model samples with {' or '.join(model.samplers)}")
    if settings.steps > model.max_steps:
        raise ValueError(f"--steps must be between 1 and {model.max_steps} for this model, got {settings.steps}")


def sample(model, labels: torch.Tensor, settings: SamplingConfig, generator: torch.Generator,
           trajectory: bool = False):
    """What the sampler draws for ``labels`` (N,) (latents for a latent model), before ``decode``."""
    if settings.sampler in ODE_SAMPLERS:
        return flow.sample(model, labels, model.sample_shape, settings, generator, trajectory)
    return diffusion.sample(model, model.schedule, labels, model.sample_shape, settings, prediction=model.prediction,
                            clip=model.clip, generator=generator, trajectory=trajectory)


def network_calls(model, settings: SamplingConfig) -> int:
    """Network evaluations per sample: one per step (two per Heun step but the last), doubled wherever guidance
    needs the unconditional prediction too (``SamplingConfig.calls_per_step``)."""
    if settings.sampler in ODE_SAMPLERS:
        grid = flow.time_grid(settings.steps)
        times = grid[:-1] + (grid[1:-1] if settings.sampler == "heun" else [])
        return sum(settings.calls_per_step(round(t * flow.TIME_UNITS)) for t in times)
    return sum(settings.calls_per_step(t) for t in model.schedule.timesteps(settings.steps))


def step_names(model, settings: SamplingConfig) -> list[str]:
    """A name for each iterate of a trajectory, from pure noise to the sample (plot titles)."""
    if settings.sampler in ODE_SAMPLERS:
        return [f"t={t:.2g}" for t in flow.time_grid(settings.steps)]
    return [f"t={t}" for t in model.schedule.timesteps(settings.steps)] + ["t=0"]


def generate(model, labels: torch.Tensor, settings: SamplingConfig, seed: int = 0, batch_size: int | None = None,
             trajectory: bool = False, progress: bool = False):
    """Sample one image per entry of ``labels`` (N,) from a generator: float (N, 1, H, W) in [-1, 1].

    One ``torch.Generator`` seeded with ``seed`` serves all the batches. With ``trajectory`` the whole batch is
    sampled at once and the decoded iterates [x_T, ..., x_0] come back too."""
    check_settings(model, settings)
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    labels = labels.to(device)
    if trajectory:
        x, xs = sample(model, labels, settings, gen, trajectory=True)
        return model.decode(x).cpu(), [model.decode(z.to(device)).cpu() for z in xs]
    from tqdm.auto import tqdm
    batch_size = batch_size or model.sample_batch_size
    starts = range(0, len(labels), batch_size)
    return torch.cat([model.decode(sample(model, labels[i:i + batch_size], settings, gen)).cpu()
                      for i in tqdm(starts, desc="sample", unit="batch", disable=not progress or len(starts) < 4)])
