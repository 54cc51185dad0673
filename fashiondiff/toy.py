"""A 2-D toy whose noised density is known exactly at every noise level: part 3's lab for scores and ODEs.

Data: a mixture of K isotropic Gaussians N(mu_k, s^2 I) in the plane, weights pi_k, each component belonging to a
class c_k. Noising with q(x_t | x_0) = N(sqrt(abar) x_0, (1 - abar) I) keeps it a mixture (notebook 10):

    p_t(x) = sum_k pi_k N(x; sqrt(abar) mu_k, v I),     v = abar s^2 + (1 - abar)
    score   grad log p_t(x) = sum_k r_k(x) (sqrt(abar) mu_k - x) / v,    r_k = the posterior weight of component k
    Tweedie E[x_0 | x_t] = (x_t + (1 - abar) score) / sqrt(abar)          (Efron 2011; Song et al. 2021, app.)
    the ideal noise prediction eps*(x_t) = -sqrt(1 - abar) score
    any Gaussian path x = alpha x_0 + sigma eps (``posterior_mean``): E[x_0 | x] in closed form, per component

Conditioning on a class keeps only its components; p_t(y | x) is the share of the posterior weight on them.
``ToyDenoiser`` is a small MLP eps-predictor with the course's time and class embeddings, trained by the course's
``diffusion_loss`` on samples of the mixture.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from .embeddings import ClassEmbedding, TimestepEmbedding


class GaussianMixture:
    """K isotropic components: ``means`` (K, 2), common std ``std``, ``weights`` (K,), ``classes`` (K,) ints."""

    def __init__(self, means: torch.Tensor, std: float, weights: torch.Tensor | None = None,
                 classes: torch.Tensor | None = None):
        self.means = means.double()                                                    # (K, 2)
        self.std = float(std)
        k = len(means)
        self.weights = (torch.full((k,), 1 / k) if weights is None else weights / weights.sum()).double()   # (K,)
        self.classes = torch.zeros(k, dtype=torch.long) if classes is None else classes.long()             # (K,)
        self.n_classes = int(self.classes.max()) + 1

    @classmethod
    def ring(cls, k: int = 8, radius: float = 2.0, std: float = 0.25, n_classes: int = 2) -> GaussianMixture:
        """k components evenly on a circle, their classes alternating 0, 1, ..., n_classes - 1 around it."""
        angles = torch.arange(k, dtype=torch.float64) * 2 * math.pi / k
        means = radius * torch.stack([angles.cos(), angles.sin()], dim=1)             # (K, 2)
        return cls(means, std, classes=torch.arange(k) % n_classes)

    def sample(self, n: int, generator: torch.Generator | None = None, y: int | None = None):
        """n points (n, 2) float32 and their classes (n,); with ``y``, of that class only."""
        w = self.weights * (1.0 if y is None else (self.classes == y).double())
        k = torch.multinomial(w, n, replacement=True, generator=generator)           # (n,)
        x = self.means[k] + self.std * torch.randn(n, 2, generator=generator, dtype=torch.float64)
        return x.float(), self.classes[k]

    def _log_terms(self, x: torch.Tensor, abar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log(pi_k N(x; sqrt(abar) mu_k, v I)) (N, K), the noised means (N, K, 2) and v (N, 1, 1)."""
        x = x.double()
        ab = torch.as_tensor(abar, dtype=torch.float64).reshape(-1, 1, 1).expand(len(x), 1, 1)   # (N, 1, 1)
        v = ab * self.std ** 2 + (1 - ab)                                            # (N, 1, 1)
        m = ab.sqrt() * self.means[None]                                              # (N, K, 2)
        sq = (x[:, None] - m).pow(2).sum(-1)                                          # (N, K)
        log = self.weights.log()[None] - sq / (2 * v[:, :, 0]) - torch.log(2 * math.pi * v[:, :, 0])  # (N, K)
        return log, m, v

    def _mask(self, y) -> torch.Tensor | None:
        if y is None:
            return None
        y = torch.as_tensor(y).reshape(-1, 1)                                         # (N or 1, 1)
        return self.classes[None] == y                                                # (N, K)

    def log_prob(self, x: torch.Tensor, abar, y=None) -> torch.Tensor:
        """log p_t(x) (N,), or log p_t(x | y) with ``y`` (an int or (N,) classes), at noise level ``abar``."""
        log, _, _ = self._log_terms(x, abar)
        mask = self._mask(y)
        if mask is not None:
            log = log.masked_fill(~mask, -math.inf) - torch.log((self.weights[None] * mask).sum(1, keepdim=True))
        return torch.logsumexp(log, dim=1)

    def score(self, x: torch.Tensor, abar, y=None) -> torch.Tensor:
        """grad_x log p_t(x) (or of p_t(x | y)), (N, 2) float64: the responsibility-weighted pull to the means."""
        log, m, v = self._log_terms(x, abar)
        mask = self._mask(y)
        if mask is not None:
            log = log.masked_fill(~mask, -math.inf)
        r = torch.softmax(log, dim=1)                                                 # (N, K)
        return (r[:, :, None] * (m - x.double()[:, None])).sum(1) / v[:, 0]           # (N, 2)

    def eps(self, x: torch.Tensor, abar, y=None) -> torch.Tensor:
        """The ideal noise prediction -sqrt(1 - abar) score, (N, 2) float64."""
        ab = torch.as_tensor(abar, dtype=torch.float64).reshape(-1, 1)
        return -(1 - ab).sqrt() * self.score(x, abar, y)

    def posterior_mean(self, x: torch.Tensor, alpha, sigma, y=None) -> torch.Tensor:
        """E[x_0 | x] (N, 2) float64 for any Gaussian path x = alpha x_0 + sigma eps (alpha, sigma: floats or (N,)):
        alpha = sqrt(abar), sigma = sqrt(1 - abar) is DDPM's; alpha = 1 - t, sigma = t the rectified flow's.
        Each component k gives x ~ N(alpha mu_k, (alpha^2 s^2 + sigma^2) I) and
        E[x_0 | x, k] = mu_k + alpha s^2 (x - alpha mu_k) / (alpha^2 s^2 + sigma^2); the mean weighs them by r_k(x)."""
        x = x.double()
        a = torch.as_tensor(alpha, dtype=torch.float64).reshape(-1, 1, 1).expand(len(x), 1, 1)     # (N, 1, 1)
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1, 1, 1).expand(len(x), 1, 1)     # (N, 1, 1)
        var = a ** 2 * self.std ** 2 + s ** 2                                         # (N, 1, 1)
        m = a * self.means[None]                                                      # (N, K, 2)
        log = self.weights.log()[None] - (x[:, None] - m).pow(2).sum(-1) / (2 * var[:, :, 0])   # (N, K)
        mask = self._mask(y)
        if mask is not None:
            log = log.masked_fill(~mask, -math.inf)
        r = torch.softmax(log, dim=1)                                                 # (N, K)
        per_k = self.means[None] + a * self.std ** 2 * (x[:, None] - m) / var          # (N, K, 2)
        return (r[:, :, None] * per_k).sum(1)                                         # (N, 2)

    def class_posterior(self, x: torch.Tensor, abar) -> torch.Tensor:
        """p_t(y | x) (N, n_classes): the posterior weight of each class's components."""
        log, _, _ = self._log_terms(x, abar)
        r = torch.softmax(log, dim=1)                                                 # (N, K)
        return torch.zeros(len(x), self.n_classes, dtype=torch.float64).index_add_(1, self.classes, r)


class ExactDenoiser(nn.Module):
    """The mixture's ideal eps-predictor as a course denoiser ``model(x_t, t, y)``: the package's samplers run on it
    unchanged. Label ``n_classes`` (the null label) means unconditional."""

    def __init__(self, mixture: GaussianMixture, schedule):
        super().__init__()
        self.mixture, self.schedule = mixture, schedule
        self.label = ClassEmbedding(mixture.n_classes, 1)        # only its .null is used
        self.anchor = nn.Parameter(torch.zeros(()))               # so that the samplers find a device

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        abar = self.schedule.abar[t.cpu()]                                             # (N,)
        out = torch.empty(x.shape, dtype=torch.float64)
        null = y.cpu() == self.label.null
        if null.any():
            out[null] = self.mixture.eps(x[null].cpu(), abar[null])
        if (~null).any():
            out[~null] = self.mixture.eps(x[~null].cpu(), abar[~null], y.cpu()[~null])
        return out.to(x.dtype).to(x.device)                                            # (N, 2)


class ToyDenoiser(nn.Module):
    """x_t (N, 2), t (N,), y (N,) in 0..n_classes (n_classes = no class) -> predicted eps (N, 2): an MLP on the
    point and the course's time and class embeddings (``fashiondiff.embeddings``)."""

    def __init__(self, n_classes: int = 2, hidden: int = 128, timesteps: int = 1000):
        super().__init__()
        self.time = TimestepEmbedding(hidden, scale=1000 / timesteps)
        self.label = ClassEmbedding(n_classes, hidden)
        self.inp = nn.Linear(2, hidden)
        self.net = nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden),
                                 nn.SiLU(), nn.Linear(hidden, 2))

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.inp(x) + self.time(t) + self.label(y)                                # (N, hidden)
        return self.net(h)                                                            # (N, 2)
