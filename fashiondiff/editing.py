"""Using a trained generator on a given image (part 5, control): SDEdit, inpainting, inversion, classifier guidance.

Every generator of the course is one grid of levels in the noise level sigma (``solvers``: x = alpha (x0 + sigma
eps), a ``Level(alpha, sigma_vp, t)`` each) and one denoiser D(x, level) -> x0 (``solvers.diffusion_denoiser``,
``solvers.flow_denoiser``: guidance and its interval included), so each edit below is written once, in sigma:

    the grid     levels[0..S]: the sampler's S steps, levels[0] the noisiest (a diffusion model's t = T, a flow's
                 t = 1), levels[S] clean (sigma = 0); ``levels(model, steps)``
    images       ``encode``: a pixel model's sampler draws the image itself (N, 1, H, W), H = ``image_size`` (the
                 transformer and the flow: 16); the latent model's images (N, 1, 28, 28) go through its VAE: the
                 posterior mean, scaled as in training (``VAE.encode``), (N, 8, 7, 7); ``model.decode`` back

    SDEdit       (Meng et al. 2022, sec. 3): x0 noised to a level with fresh noise, then the deterministic sampler
                 from there to sigma = 0 under class y and the settings' guidance. Strength s in (0, 1] runs the
                 last k = ceil(s S) of the S steps: the start is levels[S - k] and its sigma (s = 1: levels[0],
                 where, as in every sampler of the course, x is pure noise N(0, I); s -> 0: one step from the
                 grid's least noisy level levels[S - 1], whose output is D(x0 + noise) there: the input to within
                 the denoiser's error at that sigma, which shrinks with it)
    inpainting   mask m (1 = keep the known pixels, 0 = fill): at each step the known region is replaced by x0
                 noised to that step's level (fresh noise, Song et al. 2021 "score SDE", app. I.2), then the unknown
                 region takes the sampler's step; with ``resample`` r > 1, RePaint (Lugmayr et al. 2022, Alg. 1,
                 jump length 1): the step's result is noised back to the level it came from (q(x_i | x_{i+1}), fresh
                 noise) and the step done again, r times in all, so the generated region is harmonised with the
                 known one; the last step (to sigma = 0) is done once: Alg. 1 repeats it without noise, to the same
                 result. Network calls per image: r (S - 1) + 1 (doubled where guidance needs both predictions).
                 The output pastes the known pixels back.
    inversion    (Song et al. 2021, DDIM, sec. 4.3 and eq. 14): the ODE dx~/dsigma = eps run from x0 (sigma = 0) up
                 to levels[0] in DDIM's (eta = 0, a flow's Euler) steps with the model's eps: ``invert`` returns the
                 noise from which that sampler's run returns (approximately) x0; ``slerp`` moves between two such
                 noises.
    classifier   (Dhariwal & Nichol 2021, sec. 4, Alg. 1-2): score + s grad log p(y | x_t), for a noise-aware
    guidance     classifier clf(x_t, level) -> logits (``noisy_classifier``: the recipe "noisy-classifier", trained
                 by ``noisy_classifier_loss``), added to any denoiser, unconditional or conditional.

Which update: ``solver_for`` maps the settings' sampler to its deterministic counterpart (ddpm, ddim at any eta,
euler and consistency: the DDIM update at eta = 0, which is a flow's Euler step; edm-heun and the flow's heun:
Heun; dpm++2m: DPM-Solver++(2M)); inpainting steps with the DDIM update at the settings' eta (ddpm: 1, a flow: 0),
as RePaint's Alg. 1 takes ancestral steps; inversion and its reconstruction use the DDIM update.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F

from .guidance import full_precision
from .solvers import Level, ddim_step, diffusion_denoiser, flow_denoiser, model_levels, solve

if TYPE_CHECKING:
    from .sampling import SamplingConfig


# ----------------------------------------------------------------------------------------------------------------
# Every generator as a grid of levels, a denoiser and an encoder


levels = model_levels               # the sampler's steps + 1 levels, noisiest first (``solvers.model_levels``)


def denoiser(model, labels: torch.Tensor, settings: SamplingConfig) -> Callable:
    """D(x, level) -> x0 (x's shape) for labels (N,), guided as ``settings`` say."""
    if model.process == "flow":
        return flow_denoiser(model, labels, settings)
    return diffusion_denoiser(model, model.schedule, labels, settings, model.prediction, model.clip)


def encode(model, images: torch.Tensor) -> torch.Tensor:
    """Images (N, 1, H, W) in [-1, 1] -> what the model's sampler draws (N, *sample_shape): the images themselves
    for a pixel model, the scaled posterior mean of its VAE for the latent model (``VAE.encode``)."""
    size = model.image_size
    if images.ndim != 4 or tuple(images.shape[1:]) != (1, size, size):
        raise ValueError(f"expected images of shape (N, 1, {size}, {size}) for this model, got {tuple(images.shape)}")
    vae = getattr(model, "vae", None)
    return images if vae is None else vae.encode(images)                                # (N, *sample_shape)


def latent_mask(model, mask: torch.Tensor) -> torch.Tensor:
    """A keep-mask (N, 1, H, W) of images -> one over what the sampler draws (N, 1, h, w): for the latent model
    a latent cell is kept only when every pixel it covers is (a min-pool, 28 -> 7); a pixel model's as it is."""
    h = model.sample_shape[-1]
    return mask if mask.shape[-1] == h else -F.adaptive_max_pool2d(-mask, h)           # (N, 1, h, w)


SOLVER_OF = {"edm-heun": "heun", "heun": "heun", "dpm++2m": "dpm++2m", "dpm++2m-flow": "dpm++2m"}


def solver_for(settings: SamplingConfig) -> str:
    """The deterministic counterpart of the settings' sampler: a ``solvers.solve`` name (the module docstring)."""
    return SOLVER_OF.get(settings.sampler, "ddim")


def run(denoise: Callable, x: torch.Tensor, grid: list[Level], solver: str) -> torch.Tensor:
    """``solvers.solve`` from x at grid[0] to grid[-1]; Heun, which cannot start at sigma = inf (a flow's t = 1),
    takes its first step there as DDIM (Euler)."""
    if solver == "heun" and math.isinf(grid[0].sigma) and len(grid) > 2:
        x = solve(denoise, x, grid[:2], "ddim")                                          # (N, C, H, W)
        grid = grid[1:]
    return solve(denoise, x, grid, solver)


def noised(x0: torch.Tensor, level: Level, noise: torch.Tensor) -> torch.Tensor:
    """x0 at ``level``: alpha x0 + sigma_vp noise (DDPM's q(x_t | x0); a flow's (1 - t) x0 + t noise)."""
    return level.alpha * x0 + level.sigma_vp * noise


def _noise(shape, generator: torch.Generator, device) -> torch.Tensor:
    return torch.randn(shape, generator=generator).to(device)


# ----------------------------------------------------------------------------------------------------------------
# SDEdit


def start_index(steps: int, strength: float) -> int:
    """The index into the grid where SDEdit starts: S - ceil(s S) (0 at s = 1, S - 1 for any s <= 1 / S)."""
    if not 0 < strength <= 1:
        raise ValueError(f"strength must be in (0, 1], got {strength}")
    return steps - math.ceil(strength * steps - 1e-9)                   # 1e-9: s = k / S is k steps, not k + 1


@torch.no_grad()
def sdedit(model, images: torch.Tensor, labels: torch.Tensor, settings: SamplingConfig, strength: float,
           seed: int = 0) -> torch.Tensor:
    """Images (N, 1, H, W) edited towards ``labels`` (N,): noised to the start level of ``strength`` (``start_index``)
    with fresh noise from a generator seeded with ``seed``, then the deterministic sampler (``solver_for``) to
    sigma = 0. Returns (N, 1, H, W) in [-1, 1]. At strength 1 the image is dropped: this is ``generate`` from the
    same seed (its noise is drawn the same way) with the same deterministic sampler."""
    device = next(model.parameters()).device
    x0 = encode(model, images.to(device))                                              # (N, C, h, w)
    noise = _noise(x0.shape, torch.Generator().manual_seed(seed), device)              # (N, C, h, w)
    grid = levels(model, settings.steps)
    start = start_index(settings.steps, strength)
    x = noise if start == 0 else noised(x0, grid[start], noise)                       # (N, C, h, w)
    x = run(denoiser(model, labels.to(device), settings), x, grid[start:], solver_for(settings))
    return full_precision(model.decode(x))                                             # (N, 1, H, W)


# ----------------------------------------------------------------------------------------------------------------
# Inpainting: replace, and RePaint's resampling


def ddim_eta_step(x: torch.Tensor, d: torch.Tensor, here: Level, there: Level, eta: float,
                  generator: torch.Generator) -> torch.Tensor:
    """DDIM's update (Song et al. 2021, eq. 12 and 16) from ``here`` to ``there`` with noise eta, on any grid:
    x' = alpha' d + sigma_vp' (sqrt(1 - r^2) eps_hat + r z), eps_hat = (x - alpha d) / sigma_vp,
    r = eta sqrt(1 - (sigma' / sigma)^2), z ~ N(0, I). In x~ = x / alpha this is the posterior of the variance-
    exploding process, x~' ~ N(d + ..., sigma'^2 (1 - sigma'^2 / sigma^2)), so eta = 1 is DDPM's ancestral step
    (eq. 6-7) on a diffusion model's grid; eta = 0 is ``solvers.ddim_step``."""
    if eta == 0 or there.sigma == 0:
        return ddim_step(x, d, here, there)
    r = eta * math.sqrt(1 - (0.0 if math.isinf(here.sigma) else (there.sigma / here.sigma) ** 2))
    eps_hat = (x - here.alpha * d) / here.sigma_vp                                     # (N, C, H, W)
    z = _noise(x.shape, generator, x.device)                                           # (N, C, H, W)
    return there.alpha * d + there.sigma_vp * (math.sqrt(1 - r * r) * eps_hat + r * z)


def renoise(x: torch.Tensor, here: Level, there: Level, generator: torch.Generator) -> torch.Tensor:
    """x at the noisier ``there`` from x at ``here``, the forward process q(x_there | x_here) with fresh noise:
    x~ gains variance sigma'^2 - sigma^2, so x' = (alpha' / alpha) x + sqrt(sigma_vp'^2 - (alpha' sigma)^2) z
    (DDPM: sqrt(abar'/abar) x + sqrt(1 - abar'/abar) z)."""
    spread = math.sqrt(max(there.sigma_vp ** 2 - (there.alpha * here.sigma) ** 2, 0.0))
    return (there.alpha / here.alpha) * x + spread * _noise(x.shape, generator, x.device)


@torch.no_grad()
def inpaint(model, images: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, settings: SamplingConfig,
            resample: int = 1, seed: int = 0, trace: Callable | None = None) -> torch.Tensor:
    """Fill where ``mask`` (N or 1, 1, H, W) is 0 and keep where it is 1: images (N, 1, H, W) -> (N, 1, H, W).

    ``resample`` = 1 replaces the known region at every step; r > 1 is RePaint's resampling (the module
    docstring). The unknown region steps with ``ddim_eta_step`` at the settings' eta.

    The latent model inpaints its 8x7x7 latent: the mask is min-pooled to 7x7 (``latent_mask``: a cell is known
    only when all 16 pixels under it are), and the decoder mixes neighbouring cells, so the known pixels come
    back only approximately after decoding (the VAE's reconstruction error, and the seams): the output pastes
    the known pixels of the input back over the decoded image. A pixel model's last step sets them exactly.

    ``trace(i, x, d)``, if given, is called after step i = 1..S (its last round) with the iterate x at levels[i] and
    the denoiser's x0 estimate d that took it there, both (N, *sample_shape) in the model's space (for the widget's
    step-by-step view: ``paste(model, images, mask, encode(model, images), d)`` at i = S is what this returns)."""
    if resample < 1:
        raise ValueError(f"resample must be at least 1, got {resample}")
    device = next(model.parameters()).device
    images, mask = images.to(device), mask.to(device).float()
    x0 = encode(model, images)                                                         # (N, C, h, w)
    m = latent_mask(model, mask)                                                       # (N, 1, h, w)
    gen = torch.Generator().manual_seed(seed)
    denoise = denoiser(model, labels.to(device), settings)
    grid = levels(model, settings.steps)
    x = _noise(x0.shape, gen, device)                                                  # (N, C, h, w) at levels[0]
    for i, (here, there) in enumerate(zip(grid[:-1], grid[1:]), 1):
        rounds = resample if there.sigma > 0 else 1
        for u in range(rounds):
            x = m * noised(x0, here, _noise(x0.shape, gen, device)) + (1 - m) * x       # known region at this level
            d = denoise(x, here)                                                        # (N, C, h, w) x0 estimate
            x = ddim_eta_step(x, d, here, there, settings.eta, gen)                     # (N, C, h, w) at there
            if u < rounds - 1:
                x = renoise(x, there, here, gen)                                        # back to here: resample
        if trace is not None:
            trace(i, x, d)
    return paste(model, images, mask, x0, x)                                           # (N, 1, H, W)


def paste(model, images: torch.Tensor, mask: torch.Tensor, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Inpainting's output from a clean x (N or 1, *sample_shape): its known cells set to the input's encoding x0
    (N or 1, *sample_shape), decoded, and the known pixels of ``images`` (N or 1, 1, H, W) pasted over the result
    where ``mask`` (N or 1, 1, H, W) is 1. Returns (N, 1, H, W); all on x's device."""
    m = latent_mask(model, mask)                                                       # (N, 1, h, w)
    x = m * x0 + (1 - m) * x                                                           # (N, C, h, w) clean
    return mask * images + (1 - mask) * full_precision(model.decode(x))                # (N, 1, H, W)


def inpainting_calls(model, settings: SamplingConfig, resample: int = 1) -> int:
    """Network evaluations per image of ``inpaint``: ``resample`` at each step but the last, one there, each
    doubled where guidance needs the unconditional prediction too (``SamplingConfig.calls_at``)."""
    grid = levels(model, settings.steps)
    return sum((resample if there.sigma > 0 else 1) * settings.calls_at(here.sigma)
               for here, there in zip(grid[:-1], grid[1:]))


# ----------------------------------------------------------------------------------------------------------------
# Inversion and interpolation


def inverse_ddim_step(x: torch.Tensor, d: torch.Tensor, here: Level, there: Level) -> torch.Tensor:
    """x at the noisier ``there`` from x at ``here``, given d, the model's x0 for x read at ``there``: DDIM's update
    run upwards (Song et al. 2021, eq. 14, an Euler step of dx~/dsigma = eps) with the noise the model predicts
    there, eps = (x - alpha_there d) / sigma_vp_there, as diffusers' DDIMInverseScheduler takes it:
    x~_there = x~_here + (sigma_there - sigma_here) eps, i.e. x_there = (alpha_there / alpha_here) x +
    (sigma_vp_there - alpha_there sigma_here) eps. Exact when the model's eps is one constant (the ODE's slope then
    is); an error in eps moves x~ by (sigma_there - sigma_here) times it, where solving the sampler's step for
    x_there with d would multiply d's error by sigma_there / sigma_here - 1, large on a grid whose first step leaves
    sigma ~ 0 (the latent model's: 0.01 -> 0.96 at 5 steps).
    At a flow's t = 1 (alpha = 0, sigma = inf) the model's eps is x itself and says nothing: there the sampler's step
    x_here = alpha_here d + sigma_vp_here x_there is solved for x_there."""
    if there.alpha == 0:
        return (x - here.alpha * d) / here.sigma_vp
    eps = (x - there.alpha * d) / there.sigma_vp                                       # (N, C, H, W)
    return (there.alpha / here.alpha) * x + (there.sigma_vp - there.alpha * here.sigma) * eps


@torch.no_grad()
def invert(model, images: torch.Tensor, labels: torch.Tensor, settings: SamplingConfig) -> torch.Tensor:
    """The noise (N, *sample_shape) at levels[0] from which the DDIM (eta = 0) sampler on ``settings``' grid, class
    ``labels`` and guidance returns approximately ``images`` (``reconstruct``).

    The probability-flow ODE dx~/dsigma = eps (DDIM eq. 14) is run upwards, one ``inverse_ddim_step`` a level, with
    the model's noise at the current point read at the level stepped to (the sampler reads it at that level's own
    point: the approximation, whose error shrinks with the steps, tests/test_editing.py).
    The first step, from sigma = 0, cannot be inverted (the sampler's last step returns D and keeps nothing of
    x): it takes the ODE's Euler step from x~ = x0 with the slope eps = (x0 - D(alpha x0)) / sigma there. For a
    model whose eps is one constant eps* the ODE is x~ = x0 + sigma eps*, and this returns its exact start."""
    device = next(model.parameters()).device
    x0 = encode(model, images.to(device))                                              # (N, C, h, w)
    denoise = denoiser(model, labels.to(device), settings)
    grid = levels(model, settings.steps)
    low = grid[-2]                                                                     # the least noisy level
    x = low.alpha * (2 * x0 - denoise(low.alpha * x0, low))                            # x~ = x0 + sigma eps
    for here, there in zip(grid[-2:0:-1], grid[-3::-1]):
        x = inverse_ddim_step(x, denoise(x, there), here, there)                      # (N, C, h, w) at there
    return x


@torch.no_grad()
def reconstruct(model, noise: torch.Tensor, labels: torch.Tensor, settings: SamplingConfig) -> torch.Tensor:
    """The DDIM (eta = 0; a flow's Euler) sampler from ``noise`` (N, *sample_shape) at levels[0]: images
    (N, 1, H, W). From ``invert``'s noise this returns the inverted images, to a tolerance falling with steps."""
    device = next(model.parameters()).device
    x = solve(denoiser(model, labels.to(device), settings), noise.to(device), levels(model, settings.steps), "ddim")
    return full_precision(model.decode(x))                                             # (N, 1, H, W)


def slerp(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
    """Spherical interpolation between a and b (N, ...) per example (Shoemake 1985; for noises, White 2016 and
    DDIM sec. 5.3): sin((1 - t) theta) / sin(theta) a + sin(t theta) / sin(theta) b, theta the angle between
    them. Two noises of equal norm stay at that norm all the way (a straight line's midpoint is shorter by
    cos(theta / 2): a noise of a norm the sampler never sees); t = 0 gives a, t = 1 b. Nearly parallel pairs
    (sin theta < 1e-6) are interpolated linearly."""
    af, bf = a.flatten(1).double(), b.flatten(1).double()                             # (N, D)
    cos = (af * bf).sum(1) / (af.norm(dim=1) * bf.norm(dim=1))                          # (N,)
    theta = cos.clamp(-1, 1).acos()                                                     # (N,)
    sin = theta.sin()
    straight = sin < 1e-6
    wa = torch.where(straight, 1 - t, ((1 - t) * theta).sin() / sin.where(~straight, 1.0))   # (N,)
    wb = torch.where(straight, t, (t * theta).sin() / sin.where(~straight, 1.0))             # (N,)
    return (wa[:, None] * af + wb[:, None] * bf).reshape(a.shape).to(a.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Classifier guidance: a noise-aware classifier, its training loss, and the guided denoiser
#
# A classifier trained on clean images alone says nothing useful about x_t at high noise (notebook 17 shows it), so
# the classifier is trained on x0 noised to levels drawn log-uniformly over the grids of the pixel track's
# generators (the transformer's sigma 0.17..204, the flow's 0.11..9 and inf, where guidance adds nothing), on the
# variance-preserving scale (``classifier.NoisyClassifier``); ``noisy_classifier`` reads any generator's x_t.

CLASSIFIER_LOG_SIGMA = (math.log(0.05), math.log(250.0))     # the levels the noise-aware classifier trains at


def vp_noised(x0: torch.Tensor, sigma, eps: torch.Tensor) -> torch.Tensor:
    """x0 (N, ...) noised to sigma (a number, or (N,) one per example) on the variance-preserving scale that
    ``classifier.NoisyClassifier`` reads: (x0 + sigma eps) / sqrt(1 + sigma^2), x0's shape."""
    if isinstance(sigma, torch.Tensor):
        sigma = sigma.reshape(-1, *[1] * (x0.ndim - 1))                                # (N, 1, ...)
        return (x0 + sigma * eps) / (1 + sigma * sigma).sqrt()
    return (x0 + sigma * eps) / math.sqrt(1 + sigma ** 2)


def noisy_classifier_loss(classifier, x0: torch.Tensor, labels: torch.Tensor,
                          generator: torch.Generator) -> torch.Tensor:
    """Cross-entropy of ``classifier(x, sigma)`` (``classifier.NoisyClassifier``) on x0 (N, 1, S, S) noised to
    log sigma ~ U(``CLASSIFIER_LOG_SIGMA``) with fresh noise (``vp_noised``)."""
    lo, hi = CLASSIFIER_LOG_SIGMA
    u = torch.rand(len(x0), generator=generator).to(x0.device)                         # (N,)
    sigma = (lo + (hi - lo) * u).exp()                                                 # (N,)
    eps = torch.randn(x0.shape, generator=generator).to(x0.device)                     # (N, 1, S, S)
    return F.cross_entropy(classifier(vp_noised(x0, sigma, eps), sigma), labels)


NOISY_ACCURACY_SIGMAS = (0.1, 0.3, 1.0, 2.0, 4.0, 10.0)   # where a noise-aware classifier's record reads its accuracy


@torch.no_grad()
def noisy_accuracy(classifier, x0: torch.Tensor, labels: torch.Tensor, sigmas=NOISY_ACCURACY_SIGMAS,
                   seed: int = 0, batch_size: int = 1000) -> dict[str, float]:
    """The accuracy of ``classifier(x, sigma)`` on x0 (N, 1, S, S) noised to each sigma on the variance-preserving
    scale (fresh noise from ``seed``): {str(sigma): accuracy}."""
    out = {}
    for sigma in sigmas:
        gen, right = torch.Generator().manual_seed(seed), 0
        for i in range(0, len(x0), batch_size):
            xb, yb = x0[i:i + batch_size], labels[i:i + batch_size]                     # (B, 1, S, S), (B,)
            x = vp_noised(xb, sigma, torch.randn(xb.shape, generator=gen))             # (B, 1, S, S)
            logits = classifier(x, torch.full((len(x),), float(sigma)))                 # (B, K)
            right += (logits.argmax(1) == yb).sum().item()
        out[str(sigma)] = right / len(x0)
    return out


def noisy_classifier(classifier) -> Callable:
    """``classifier.NoisyClassifier`` as a function of a generator's x_t and level: x = alpha (x0 + sigma eps) is
    divided by sqrt(alpha^2 + sigma_vp^2), which brings a diffusion model's x_t (alpha^2 + sigma_vp^2 = 1) and a
    flow's ((1 - t) x0 + t eps) alike to (x0 + sigma eps) / sqrt(1 + sigma^2). Returns clf(x, level) -> logits."""
    def clf(x: torch.Tensor, level: Level) -> torch.Tensor:
        sigma = torch.full((len(x),), level.sigma, device=x.device)                    # (N,)
        return classifier(x / math.hypot(level.alpha, level.sigma_vp), sigma)         # (N, K)
    return clf


def classifier_gradient(classifier: Callable, x: torch.Tensor, level: Level, labels: torch.Tensor) -> torch.Tensor:
    """grad_x log p(y | x_t) (x's shape) for a noise-aware classifier ``classifier(x_t, level) -> logits`` (N, K),
    through autograd; log p is the log-softmax of the logits at each example's label."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        log_p = F.log_softmax(full_precision(classifier(x, level)), dim=-1)            # (N, K)
        chosen = log_p.gather(1, labels.reshape(-1, 1).to(x.device)).sum()
        (grad,) = torch.autograd.grad(chosen, x)
    return grad                                                                         # x's shape


def guide_eps(eps: torch.Tensor, grad: torch.Tensor, level: Level, scale: float) -> torch.Tensor:
    """Dhariwal & Nichol Alg. 2: eps_hat - s sigma_vp grad log p(y | x_t). eps = -sigma_vp score, so this is the
    score plus s grad log p(y | x_t): the score of p_t(x) p_t(y | x)^s (s = 1: of p_t(x | y))."""
    return eps - scale * level.sigma_vp * grad


def guide_x0(x0: torch.Tensor, grad: torch.Tensor, level: Level, scale: float) -> torch.Tensor:
    """The same shift as an x0 prediction: x0 = (x - sigma_vp eps) / alpha, so x0 + s sigma_vp^2 / alpha grad
    (Tweedie's formula with the guided score)."""
    return x0 + scale * level.sigma_vp ** 2 / level.alpha * grad


def classifier_guided(denoise: Callable, classifier: Callable, labels: torch.Tensor, scale: float) -> Callable:
    """D(x, level) with classifier guidance of scale s added (``guide_x0``), for ``classifier(x_t, level) ->
    logits`` (``noisy_classifier``): a denoiser ``solvers.solve`` and the functions above take like any other. At
    sigma = inf (a flow's t = 1) x is pure noise, p(y | x) = p(y) and the gradient is zero; at sigma = 0 the shift
    sigma_vp^2 / alpha is: nothing is added at either."""
    def guided(x, level):
        d = denoise(x, level)                                                           # (N, C, H, W)
        if level.alpha == 0 or level.sigma_vp == 0 or scale == 0:
            return d
        return guide_x0(d, classifier_gradient(classifier, x, level, labels), level, scale)
    return guided


def classifier_sample(model, classifier, labels: torch.Tensor, settings: SamplingConfig, scale: float,
                      seed: int = 0) -> torch.Tensor:
    """Samples (N, 1, H, W) for ``labels`` (N,) with classifier guidance of ``scale`` from a noise-aware
    ``classifier.NoisyClassifier``, added to the denoiser ``settings`` give (guidance 0: the unconditional
    prediction, Dhariwal & Nichol's setting; 1: the conditional one; w: classifier-free guidance too), with its
    deterministic sampler (``solver_for``). The noise is drawn as ``generate`` draws it from ``seed``, so scale 0
    is ``generate``'s sample with the same deterministic sampler."""
    device = next(model.parameters()).device
    labels = labels.to(device)
    x = _noise((len(labels), *model.sample_shape), torch.Generator().manual_seed(seed), device)   # (N, C, h, w)
    guided = classifier_guided(denoiser(model, labels, settings), noisy_classifier(classifier), labels, scale)
    x = run(guided, x, levels(model, settings.steps), solver_for(settings))                      # (N, C, h, w)
    return full_precision(model.decode(x)).detach()                                               # (N, 1, H, W)
