"""Training loss and samplers for a class-conditional diffusion model, shared by both tracks.

A denoiser is called as ``model(x_t, t, y)`` and predicts the clean image (``"x0"``, the pixel track), the noise
(``"eps"``, the latent track) or the velocity v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 (``"v"``, Salimans & Ho
2022); ``to_x0`` turns any of them into x0, and ``loss_weight`` says how each target's MSE weighs the timesteps.

Training (Ho et al. 2020, Algorithm 1, with t drawn per example): x_t ~ q(x_t | x_0), regress the target.
Sampling goes from pure noise at t = T down to 0 over ``steps`` timesteps t > s:

    ancestral ("ddpm"):      x_s ~ q(x_s | x_t, x0_hat)                         (DDPM eq. 6-7)
    "ddim":                  x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z
                             sigma = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)
                             (Song et al. 2021, eq. 12 and 16): eta = 0 is deterministic, and eta = 1 has
                             exactly the posterior variance of the ancestral step

Classifier-free guidance (``fashiondiff.guidance``): pred = pred_uncond + w (pred_cond - pred_uncond),
so w = 0 is unconditional and w = 1 plain conditional; ``SamplingConfig`` (``fashiondiff.sampling``) says which
sampler, how many steps, which w and at which noise levels sigma(t) = sqrt((1 - abar_t) / abar_t).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from .guidance import predict
from .schedule import NoiseSchedule

if TYPE_CHECKING:                       # sampling's table holds this module's loop: no import at run time
    from .sampling import SamplingConfig


PREDICTIONS = ("x0", "eps", "v")       # what a denoiser's output is
WEIGHTINGS = ("none", "min-snr")        # how the loss weighs the timesteps
MIN_SNR_GAMMA = 5.0                     # Hang et al. 2023: min(SNR, 5) worked best in their sweep
SAMPLERS = ("ddpm", "ddim")             # the updates ``sample`` implements


def check_prediction(prediction: str) -> str:
    """``prediction`` if it is one of ``PREDICTIONS``; otherwise a ``ValueError`` listing them."""
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r} (allowed: {', '.join(PREDICTIONS)})")
    return prediction


class DiffusionGenerator:
    """What a generator trained on a ``NoiseSchedule`` shares (``generation.Generator``): it is sampled by the
    "diffusion" samplers, with its schedule rebuilt from ``config.timesteps`` and ``config.schedule``."""
    process = "diffusion"

    @property
    def schedule(self) -> NoiseSchedule:
        return NoiseSchedule(self.config.timesteps, self.config.schedule)

    @property
    def max_steps(self) -> int:
        return self.config.timesteps


def target(schedule: NoiseSchedule, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, prediction: str):
    """What a denoiser predicting ``prediction`` regresses at x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise."""
    if check_prediction(prediction) == "x0":
        return x0
    return noise if prediction == "eps" else schedule.v_from(x0, noise, t)


def loss_weight(schedule: NoiseSchedule, t: torch.Tensor, prediction: str, weighting: str = "none") -> torch.Tensor:
    """(N,) weights on the per-example MSE of ``prediction``'s target.

    At one x_t the three errors are proportional: eps-MSE = SNR x0-MSE and v-MSE = (SNR + 1) x0-MSE, so each
    plain MSE is a different weighting of the same x0 error. "min-snr" makes the weight on the x0 error
    min(SNR, gamma) whatever the target (Hang et al. 2023, "min-SNR-gamma"): min(SNR, gamma) for x0, min(SNR, gamma) / SNR
    for eps, min(SNR, gamma) / (SNR + 1) for v."""
    if weighting == "none":
        return torch.ones(t.shape, dtype=torch.float32, device=t.device)
    if weighting != "min-snr":
        raise ValueError(f"unknown loss weighting {weighting!r} (allowed: {', '.join(WEIGHTINGS)})")
    snr = schedule.snr(t.cpu())                                                   # (N,) float64
    clipped = snr.clamp(max=MIN_SNR_GAMMA)
    w = {"x0": clipped, "eps": clipped / snr, "v": clipped / (snr + 1)}[prediction]
    return w.float().to(t.device)


def diffusion_loss(model, schedule: NoiseSchedule, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                   prediction: str = "x0", p_uncond: float = 0.1, weighting: str = "none") -> torch.Tensor:
    """MSE of the model's prediction at x_t ~ q(x_t | x_0), t uniform in 1..T per example, weighted per example
    by ``loss_weight``; labels dropped to the null class with probability ``p_uncond`` so that one network also
    learns the unconditional model."""
    n = len(x0)
    t = torch.randint(1, schedule.T + 1, (n,), generator=generator).to(x0.device)     # (N,)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)                  # (N, C, H, W)
    x_t = schedule.q_sample(x0, t, noise)                                              # (N, C, H, W)
    y = model.label.drop(y, p_uncond, generator) if p_uncond else y
    goal = target(schedule, x0, noise, t, prediction)                                  # (N, C, H, W)
    if weighting == "none":
        return F.mse_loss(model(x_t, t, y), goal)
    per_example = (model(x_t, t, y) - goal).pow(2).flatten(1).mean(1)                  # (N,)
    return (loss_weight(schedule, t, prediction, weighting) * per_example).mean()


def to_x0(schedule: NoiseSchedule, x_t: torch.Tensor, t: torch.Tensor, out: torch.Tensor, prediction: str):
    """The clean image a denoiser's output ``out`` (an x0, eps or v prediction) stands for."""
    if check_prediction(prediction) == "x0":
        return out
    return schedule.x0_from_eps(x_t, t, out) if prediction == "eps" else schedule.x0_from_v(x_t, t, out)


@torch.no_grad()
def sample(model, schedule: NoiseSchedule, y: torch.Tensor, shape: tuple[int, ...], settings: SamplingConfig,
           prediction: str = "x0", clip: float | None = 1.0, generator: torch.Generator | None = None,
           trajectory: bool = False):
    """Generate ``len(y)`` samples of ``shape`` (C, H, W) for labels ``y`` (N,) as ``settings`` say.

    ``prediction`` is what ``model`` predicts ("x0", "eps" or "v"); ``clip`` clamps the predicted x_0 to [-clip, clip]
    (right for pixels in [-1, 1]; None for latents). Returns (N, C, H, W), or with ``trajectory`` also the list
    of iterates [x_T, ..., x_0] (for plots).
    """
    check_prediction(prediction)
    if settings.sampler not in SAMPLERS:
        raise ValueError(f"diffusion.sample implements {' and '.join(SAMPLERS)}, not {settings.sampler!r}")
    device = y.device
    x = torch.randn((len(y), *shape), generator=generator).to(device)                  # (N, C, H, W) at t = T
    ts = schedule.timesteps(settings.steps)
    xs = [x.cpu()] if trajectory else None
    for i, t_int in enumerate(ts):
        s_int = ts[i + 1] if i + 1 < len(ts) else 0
        t = torch.full((len(y),), t_int, device=device, dtype=torch.long)               # (N,)
        s = torch.full_like(t, s_int)                                                   # (N,)
        out = predict(model, x, t, y, settings.guidance_at(schedule.sigma(t_int)))       # (N, C, H, W)
        x0 = to_x0(schedule, x, t, out, prediction)                                     # (N, C, H, W)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        if s_int == 0:
            x = x0
        elif settings.sampler == "ddpm":
            mean, var = schedule.posterior(x0, x, t, s)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=generator).to(device)
        else:
            # a clamped x0 no longer matches the network's eps: recompute eps from it so the two agree
            eps = schedule.eps_from_x0(x, t, x0) if (prediction != "eps" or clip is not None) else out
            ab_t, ab_s = schedule.at(schedule.abar, t, x), schedule.at(schedule.abar, s, x)
            sigma = settings.eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).sqrt()
            x = ab_s.sqrt() * x0 + (1 - ab_s - sigma ** 2).sqrt() * eps
            if settings.eta:
                x = x + sigma * torch.randn(x.shape, generator=generator).to(device)
        if trajectory:
            xs.append(x.cpu())
    return (x, xs) if trajectory else x
