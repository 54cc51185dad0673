"""The statistics the course measures samples with, on features or pixels already computed: nothing here loads
data or runs a network (``fashiondiff.metrics`` computes the features).

Frechet distance between two Gaussians fitted to features (Heusel et al. 2017, eq. 6):

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

FID is biased upwards at small n, so the course reports it next to ``real_fid``: n random *training* images
against the same reference, the value a perfect generator would get at that n.

KID (Binkowski et al. 2018) is the squared maximum mean discrepancy between the two feature sets with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, estimated without bias (Gretton et al. 2012, eq. 3: the
k(x_i, x_i) terms are left out) and averaged over random subsets. Being unbiased, its expected value does not
depend on n: two samples of one distribution give about 0 at any n, so KIDs at different n compare directly.

Precision and recall (Kynkaanniemi et al. 2019) split quality into two numbers: the share of samples that fall
inside the reference's k-nearest-neighbour manifold (fidelity) and the share of reference images that fall
inside the samples' manifold (diversity; a collapsed generator has high precision and low recall).

Pixel statistics (``black_share``, ``pixel_stats``, ``black_kept``) read what the feature-space measures do not
stress: how many pixels are exactly black, how bright and how sharp the images are.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .data import to_uint8


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) features -> mean (D,) and unbiased covariance (D, D), in float64."""
    f = features.double()
    return f.mean(0), torch.cov(f.T)


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Squared Frechet distance between N(mu1, cov1) and N(mu2, cov2).

    tr((S_1 S_2)^(1/2)) is computed as the sum of square roots of the eigenvalues of the symmetric
    matrix S_1^(1/2) S_2 S_1^(1/2), which has the same spectrum as S_1 S_2 and is stable to compute.
    """
    mu1, mu2, cov1, cov2 = (t.double() for t in (mu1, mu2, cov1, cov2))
    evals, evecs = torch.linalg.eigh(cov1)
    sqrt1 = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    middle = sqrt1 @ cov2 @ sqrt1
    tr_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    d2 = (mu1 - mu2).square().sum() + cov1.trace() + cov2.trace() - 2 * tr_sqrt
    return float(d2.clamp(min=0))


def cubic_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """KID's kernel (Binkowski et al. 2018, sec. 2.3): k(x, y) = (x.y / d + 1)^3, for features x (M, D) and
    y (N, D) -> (M, N), in float64."""
    x, y = x.double(), y.double()
    return torch.addmm(torch.ones((), dtype=torch.float64), x, y.T, alpha=1 / x.shape[1]).pow_(3)


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, kernel=cubic_kernel) -> float:
    """Unbiased estimate of MMD^2 between the distributions of x (M, D) and y (N, D), M, N >= 2
    (Gretton et al. 2012, eq. 3):

        1/(M(M-1)) sum_{i != j} k(x_i, x_j) + 1/(N(N-1)) sum_{i != j} k(y_i, y_j) - 2/(MN) sum_{i, j} k(x_i, y_j)

    The diagonals k(x_i, x_i) are left out: with them (the biased V-statistic) the estimate is too large by
    about (E k(x, x) - E k(x, x')) / M + (the same for y), which is what makes a distance grow as n shrinks.
    """
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD^2 needs at least 2 samples on each side, got {m} and {n}")
    kxx, kyy, kxy = kernel(x, x), kernel(y, y), kernel(x, y)              # (M, M), (N, N), (M, N)
    xx = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    yy = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(xx + yy - 2 * kxy.mean())


def kid(features_a: torch.Tensor, features_b: torch.Tensor, subsets: int = 100, subset_size: int = 1000,
        generator: torch.Generator | None = None) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018, sec. 2.3 and app. D) between features (N_a, D) and
    (N_b, D): ``mmd2_unbiased`` with ``cubic_kernel``, averaged over ``subsets`` pairs of random subsets of
    m = min(subset_size, N_a, N_b) rows each, drawn without replacement within a subset and independently
    across subsets (as the reference implementations do). Returns the mean and the standard deviation over
    subsets, in MMD^2 units (the course reports both x 10^3). Unbiased: about 0 for two samples of one
    distribution at any n, and it can come out slightly negative.

    ``generator`` draws the subsets; None means a fresh one seeded with 0, so equal inputs give equal numbers.
    """
    generator = torch.Generator().manual_seed(0) if generator is None else generator
    m = min(subset_size, len(features_a), len(features_b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 samples on each side, got {len(features_a)} and {len(features_b)}")
    a, b = features_a.double(), features_b.double()
    estimates = torch.tensor([mmd2_unbiased(a[torch.randperm(len(a), generator=generator)[:m]],
                                            b[torch.randperm(len(b), generator=generator)[:m]])
                              for _ in range(subsets)], dtype=torch.float64)                     # (subsets,)
    return float(estimates.mean()), float(estimates.std(correction=0))


def knn_radii(features: torch.Tensor, k: int = 3, chunk: int = 1000) -> torch.Tensor:
    """(N, D) features -> (N,) distance from each row to its k-th nearest neighbour among the *other* rows:
    the radius of its ball in the k-NN manifold estimate (Kynkaanniemi et al. 2019, eq. 2), in float64.
    Distances are computed ``chunk`` rows at a time (a (chunk, N) matrix in memory)."""
    f = features.double()
    if len(f) <= k:
        raise ValueError(f"k = {k} nearest neighbours need more than {k} samples, got {len(f)}")
    # the (k + 1)-th smallest distance in a row counts the row's own distance 0 as the first
    return torch.cat([torch.cdist(f[i:i + chunk], f).kthvalue(k + 1, dim=1).values for i in range(0, len(f), chunk)])


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = 3, chunk: int = 1000,
                     real_radii: torch.Tensor | None = None) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019, eqs. 1-3) of features ``fake`` (N_f, D) with
    respect to ``real`` (N_r, D), each set's manifold being the union of balls around its points reaching
    their k-th nearest neighbour (``knn_radii``):

        precision = share of fake samples inside the real manifold     (fidelity: are the samples realistic?)
        recall    = share of real samples inside the fake manifold     (diversity: is all of the data covered?)

    ``real_radii`` (N_r,) may be passed when the same real set is scored many times. Distances in float64,
    ``chunk`` real rows at a time.
    """
    real, fake = real.double(), fake.double()
    r_real = knn_radii(real, k, chunk) if real_radii is None else real_radii.double()      # (N_r,)
    r_fake = knn_radii(fake, k, chunk)                                                      # (N_f,)
    fake_in = torch.zeros(len(fake), dtype=torch.bool)
    real_in = []
    for i in range(0, len(real), chunk):
        d = torch.cdist(real[i:i + chunk], fake)                                            # (chunk, N_f)
        fake_in |= (d <= r_real[i:i + chunk, None]).any(0)
        real_in.append((d <= r_fake[None]).any(1))
    return float(fake_in.double().mean()), float(torch.cat(real_in).double().mean())


def black_share(x: torch.Tensor) -> float:
    """Share of pixels of images ``x`` (N, 1, H, W) in [-1, 1] that are exactly black once stored as 8-bit
    (value 0 after ``data.to_uint8``): about half of a real Fashion-MNIST image's pixels are."""
    return float((to_uint8(x) == 0).double().mean())


def pixel_stats(x: torch.Tensor) -> dict:
    """Pixel statistics a learner can read, of images (N, 1, H, W) in [-1, 1]: ``black_share`` (exactly black
    8-bit pixels), ``mean`` intensity (0 black, 1 white) and ``sharpness``, the mean absolute response to the 3x3
    Laplacian (in intensity units: blur lowers it)."""
    laplacian = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    intensity = (x.float().cpu() + 1) / 2                                                 # (N, 1, H, W) in [0, 1]
    edges = F.conv2d(intensity, laplacian)                                                # (N, 1, H-2, W-2)
    return {"black_share": black_share(x), "mean": float(intensity.mean()), "sharpness": float(edges.abs().mean())}


def black_kept(reconstructions: torch.Tensor, originals: torch.Tensor) -> float:
    """Of the pixels that are exactly black (8-bit 0) in ``originals`` (N, 1, H, W), the share that are exactly black
    in ``reconstructions`` too: 1 for a perfect autoencoder, low for one that leaves a grey haze."""
    black = to_uint8(originals) == 0
    return float((to_uint8(reconstructions)[black] == 0).double().mean())
