"""Training loss and samplers for a class-conditional diffusion model, shared by both tracks.

A denoiser is called as ``model(x_t, t, y)`` and predicts either the clean image (``"x0"``, the pixel
track) or the noise (``"eps"``, the latent track); ``schedule.eps_from_x0`` / ``x0_from_eps`` convert.

Training (Ho et al. 2020, Algorithm 1, with t drawn per example): x_t ~ q(x_t | x_0), regress the target.
Sampling goes from pure noise at t = T down to 0 over ``steps`` timesteps t > s:

    ancestral ("ddpm"):      x_s ~ q(x_s | x_t, x0_hat)                         (DDPM eq. 6-7)
    "ddim":                  x_s = sqrt(abar_s) x0_hat + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z
                             sigma = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s)
                             (Song et al. 2021, eq. 12 and 16): eta = 0 is deterministic, and eta = 1 has
                             exactly the posterior variance of the ancestral step

Classifier-free guidance (Ho & Salimans 2022): pred = pred_uncond + w (pred_cond - pred_uncond),
so w = 0 is unconditional and w = 1 plain conditional; ``SamplingConfig`` (``fashiondiff.sampling``) says which
sampler, how many steps, which w and at which timesteps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .sampling import SamplingConfig
from .schedule import NoiseSchedule


def diffusion_loss(model, schedule: NoiseSchedule, x0: torch.Tensor, y: torch.Tensor, generator: torch.Generator,
                   prediction: str = "x0", p_uncond: float = 0.1) -> torch.Tensor:
    """MSE of the model's prediction at x_t ~ q(x_t | x_0), t uniform in 1..T per example; labels dropped
    to the null class with probability ``p_uncond`` so that one network also learns the unconditional model."""
    n = len(x0)
    t = torch.randint(1, schedule.T + 1, (n,), generator=generator).to(x0.device)     # (N,)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)                  # (N, C, H, W)
    x_t = schedule.q_sample(x0, t, noise)                                              # (N, C, H, W)
    y = model.label.drop(y, p_uncond, generator) if p_uncond else y
    target = x0 if prediction == "x0" else noise
    return F.mse_loss(model(x_t, t, y), target)


def predict(model, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, guidance: float = 1.0) -> torch.Tensor:
    """The model's prediction with classifier-free guidance w = ``guidance`` (one batched call when w != 0, 1)."""
    if guidance == 1.0:
        return model(x_t, t, y)
    null = torch.full_like(y, model.label.null)
    if guidance == 0.0:
        return model(x_t, t, null)
    cond, uncond = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    return uncond + guidance * (cond - uncond)


@torch.no_grad()
def sample(model, schedule: NoiseSchedule, y: torch.Tensor, shape: tuple[int, ...], settings: SamplingConfig,
           prediction: str = "x0", clip: float | None = 1.0, generator: torch.Generator | None = None,
           trajectory: bool = False):
    """Generate ``len(y)`` samples of ``shape`` (C, H, W) for labels ``y`` (N,) as ``settings`` say.

    ``prediction`` is what ``model`` predicts ("x0" or "eps"); ``clip`` clamps the predicted x_0 to [-clip, clip]
    (right for pixels in [-1, 1]; None for latents). Returns (N, C, H, W), or with ``trajectory`` also the list
    of iterates [x_T, ..., x_0] (for plots).
    """
    if prediction not in ("x0", "eps"):
        raise ValueError(f"unknown prediction {prediction!r} (allowed: x0, eps)")
    device = y.device
    x = torch.randn((len(y), *shape), generator=generator).to(device)                  # (N, C, H, W) at t = T
    ts = schedule.timesteps(settings.steps)
    xs = [x.cpu()] if trajectory else None
    for i, t_int in enumerate(ts):
        s_int = ts[i + 1] if i + 1 < len(ts) else 0
        t = torch.full((len(y),), t_int, device=device, dtype=torch.long)               # (N,)
        s = torch.full_like(t, s_int)                                                   # (N,)
        out = predict(model, x, t, y, settings.guidance_at(t_int))                      # (N, C, H, W)
        x0 = out if prediction == "x0" else schedule.x0_from_eps(x, t, out)             # (N, C, H, W)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
        if s_int == 0:
            x = x0
        elif settings.sampler == "ddpm":
            mean, var = schedule.posterior(x0, x, t, s)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=generator).to(device)
        else:
            # a clamped x0 no longer matches the network's eps: recompute eps from it so the two agree
            eps = schedule.eps_from_x0(x, t, x0) if (prediction == "x0" or clip is not None) else out
            ab_t, ab_s = schedule.at(schedule.abar, t, x), schedule.at(schedule.abar, s, x)
            sigma = settings.eta * ((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)).sqrt()
            x = ab_s.sqrt() * x0 + (1 - ab_s - sigma ** 2).sqrt() * eps
            if settings.eta:
                x = x + sigma * torch.randn(x.shape, generator=generator).to(device)
        if trajectory:
            xs.append(x.cpu())
    return (x, xs) if trajectory else x


def generate(model, labels: torch.Tensor, settings: SamplingConfig, seed: int = 0, batch_size: int | None = None,
             trajectory: bool = False, progress: bool = False):
    """Sample one image per entry of ``labels`` (N,) from a generator: float (N, 1, H, W) in [-1, 1].

    A generator is a denoiser that also says how it is sampled: ``schedule``, ``prediction``, ``clip``,
    ``sample_shape`` (what the sampler draws), ``decode`` (from that to images) and ``sample_batch_size``
    (``TransformerDenoiser``, ``LatentDiffusion``). One generator seeded with ``seed`` serves all the batches.
    With ``trajectory`` the whole batch is sampled at once and the decoded iterates [x_T, ..., x_0] come back too.
    """
    device = next(model.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    labels = labels.to(device)
    opts = dict(prediction=model.prediction, clip=model.clip, generator=gen)
    if trajectory:
        x, xs = sample(model, model.schedule, labels, model.sample_shape, settings, trajectory=True, **opts)
        return model.decode(x).cpu(), [model.decode(z.to(device)).cpu() for z in xs]
    from tqdm.auto import tqdm
    batch_size = batch_size or model.sample_batch_size
    starts = range(0, len(labels), batch_size)
    return torch.cat([model.decode(sample(model, model.schedule, labels[i:i + batch_size], model.sample_shape,
                                          settings, **opts)).cpu()
                      for i in tqdm(starts, desc="sample", unit="batch", disable=not progress or len(starts) < 4)])
