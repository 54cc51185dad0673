"""From a trained generator to images: ``generate``, whatever kind of generator it is.

A generator is a network that also says how it is sampled: ``Generator`` below is what the samplers, the command
line and the widgets read (``TransformerDenoiser``, ``LatentDiffusion`` and ``FlowTransformer`` each satisfy it).
The sampler in the settings is a row of ``sampling.SAMPLERS``, which names the loop that ``generate`` runs and the
noise levels at which ``network_calls`` counts the network's evaluations.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .guidance import full_precision
from .sampling import SAMPLERS, SamplingConfig, SettingError, samplers_for
from .schedule import NoiseSchedule


@runtime_checkable
class Generator(Protocol):
    """A class-conditional network ``model(x_t, t, y)`` and how it is sampled."""
    process: str                       # "diffusion" or "flow": which rows of ``SAMPLERS`` sample it
    sampling: SamplingConfig           # its default settings
    max_steps: int                     # the most steps a sampler may take
    schedule: NoiseSchedule | None     # a diffusion model's schedule (None for a flow)
    prediction: str                    # what the network predicts: "x0", "eps", "v", or a flow's "velocity"
    clip: float | None                 # the clamp of a predicted x0 (None: none)
    sample_shape: tuple[int, int, int]  # what the sampler draws, (C, H, W)
    image_size: int                    # the side of the decoded images
    sample_batch_size: int             # how many samples go through the network at once
    label: torch.nn.Module             # the class embedding; ``label.null`` is the label of no class

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """What the sampler drew (N, *sample_shape) -> images (N, 1, image_size, image_size) in [-1, 1]."""

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


def check_settings(model: Generator, settings: SamplingConfig) -> None:
    """Refuse, before any sampling, a sampler of another process or more steps than the model has."""
    if SAMPLERS[settings.sampler].process != model.process:
        raise SettingError("sampler", f"{settings.sampler}: this model samples with "
                                      f"{' or '.join(samplers_for(model.process))}")
    if settings.steps > model.max_steps:
        raise SettingError("steps", f"must be between 1 and {model.max_steps} for this model, got {settings.steps}")


def network_calls(model: Generator, settings: SamplingConfig) -> int:
    """Network evaluations per sample: one at each of the sampler's noise levels, two wherever guidance needs the
    unconditional prediction too (``SamplingConfig.calls_at``)."""
    return sum(settings.calls_at(s) for s in SAMPLERS[settings.sampler].noise_levels(model, settings.steps))


def step_names(model: Generator, settings: SamplingConfig) -> list[str]:
    """A name for each iterate of a trajectory, from pure noise to the sample (plot titles)."""
    return SAMPLERS[settings.sampler].step_names(model, settings.steps)


def generate(model: Generator, labels: torch.Tensor, settings: SamplingConfig, seed: int = 0,
             batch_size: int | None = None, trajectory: bool = False, progress: bool = False):
    """Sample one image per entry of ``labels`` (N,) from a generator: float (N, 1, H, W) in [-1, 1].

    One ``torch.Generator`` seeded with ``seed`` serves all the batches. With ``trajectory`` the whole batch is
    sampled at once and the decoded iterates [x_T, ..., x_0] come back too. Under bf16 autocast
    (``precision.autocast``) the network runs in bf16 and the sampler's arithmetic in fp32; the images are fp32."""
    check_settings(model, settings)
    loop = SAMPLERS[settings.sampler].loop
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    labels = labels.to(device)
    if trajectory:
        x, xs = loop(model, labels, settings, gen, trajectory=True)
        return (full_precision(model.decode(x)).cpu(),
                [full_precision(model.decode(z.to(device))).cpu() for z in xs])
    from tqdm.auto import tqdm
    batch_size = batch_size or model.sample_batch_size
    starts = range(0, len(labels), batch_size)
    return torch.cat([full_precision(model.decode(loop(model, labels[i:i + batch_size], settings, gen))).cpu()
                      for i in tqdm(starts, desc="sample", unit="batch", disable=not progress or len(starts) < 4)])
