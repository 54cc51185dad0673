"""How the course measures a generator: FID and KID in the classifier's feature space, precision and recall,
and conditional accuracy.

Frechet distance between two Gaussians fitted to features (Heusel et al. 2017, eq. 6):

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

with features from ``FashionClassifier.features`` (128-d), not Inception: Inception features mean little
for 28x28 greyscale clothes. The reference set is the 10,000 test images put through the same resolution
pipeline as the samples (16x16 samples are compared with test images taken down to 16x16 and back).
FID is biased upwards at small n, so every score comes with ``real_fid``: n random *training* images against
the same reference, the value a perfect generator would get at that n.

KID (Binkowski et al. 2018) is the squared maximum mean discrepancy between the two feature sets with the
cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, estimated without bias (Gretton et al. 2012, eq. 3: the
k(x_i, x_i) terms are left out) and averaged over random subsets. Being unbiased, its expected value does not
depend on n: two samples of one distribution give about 0 at any n (``real_kid``, reported as the reference,
is ~0 up to sampling noise, not a floor that falls as n grows like ``real_fid``), so KIDs at different n
compare directly. Reported x 10^3.

Precision and recall (Kynkaanniemi et al. 2019) split quality into two numbers: the share of samples that fall
inside the reference's k-nearest-neighbour manifold (fidelity) and the share of reference images that fall
inside the samples' manifold (diversity; a collapsed generator has high precision and low recall).
Read them together with KID: outliers among the reference images have wide balls, so even uniform noise
lands in the reference manifold about half the time here (its recall is 0 and its KID huge).

``score_generator`` samples a generator with given ``SamplingConfig`` and scores the samples.
"""

from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from .classifier import FashionClassifier
from .data import CLASSES, load, map_batches, round_trip, to_uint8
from .generation import generate
from .sampling import SamplingConfig


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


def predict(classifier: FashionClassifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, 1, H, W) images -> (N,) the class ``classifier`` assigns to each."""
    return map_batches(lambda xb: classifier(xb).argmax(1), x, batch_size, next(classifier.parameters()).device)


def accuracy(classifier: FashionClassifier, x: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> tuple[float, dict[str, float]]:
    """Share of images ``x`` (N, 1, H, W) that ``classifier`` assigns to ``labels`` (N,): overall and per class."""
    hit = (predict(classifier, x, batch_size) == labels.cpu()).float()
    per_class = {CLASSES[c]: float(hit[labels == c].mean()) for c in labels.unique().tolist()}
    return float(hit.mean()), per_class


class Evaluator:
    """Scores images with a trained ``FashionClassifier``.

    ``resolution`` is the size the samples are generated at (28 or 16); the reference statistics are
    computed once, from the test set taken through the same pipeline (or from ``reference``, (N, 1, 28, 28)
    images, when a quick check needs fewer than all 10,000). A copy of the classifier runs channels-last
    (the same function, faster convolutions on a CPU). The reference features themselves are kept too
    (``ref_features``), for KID and precision/recall.
    """

    k = 3                  # nearest neighbours for precision/recall (Kynkaanniemi et al. 2019's default)

    def __init__(self, classifier: FashionClassifier, resolution: int = 28, batch_size: int = 1000,
                 reference: torch.Tensor | None = None):
        # a channels-last copy in eval mode: measuring leaves the caller's classifier as it was
        self.classifier = copy.deepcopy(classifier).eval().to(memory_format=torch.channels_last)
        self.resolution = resolution
        self.batch_size = batch_size
        self.device = next(classifier.parameters()).device
        x_ref = load("test")[0] if reference is None else reference
        self.ref_features = self.features(self._pipeline(x_ref))              # (N_ref, 128): KID, precision/recall
        self.ref_mu, self.ref_cov = gaussian_stats(self.ref_features)
        self._ref_radii = None                                                 # (N_ref,) k-NN radii, on first use

    @property
    def ref_radii(self) -> torch.Tensor:
        """(N_ref,) distance from each reference feature to its ``k``-th nearest reference neighbour (computed once)."""
        if self._ref_radii is None:
            self._ref_radii = knn_radii(self.ref_features, self.k)
        return self._ref_radii

    def _pipeline(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.resolution == 28 else round_trip(x, self.resolution)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [-1, 1] -> (N, 128)."""
        def run(xb):                                             # (B, 1, 28, 28) channels-last -> (B, 128)
            return self.classifier.features(self.classifier.prepare(xb).contiguous(memory_format=torch.channels_last))
        return map_batches(run, x, self.batch_size, self.device)

    def fid(self, x: torch.Tensor) -> float:
        """Frechet distance of samples ``x`` (N, 1, H, W) to the reference."""
        return frechet_distance(*gaussian_stats(self.features(x)), self.ref_mu, self.ref_cov)

    def real_features(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, 128) features of n random training images (same pipeline): what a perfect generator would give."""
        x_train, _ = load("train")
        idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n]
        return self.features(self._pipeline(x_train[idx]))

    def real_fid(self, n: int, seed: int = 0) -> float:
        """The floor at this n: n random training images (same pipeline) against the reference."""
        return frechet_distance(*gaussian_stats(self.real_features(n, seed)), self.ref_mu, self.ref_cov)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N,) predicted class."""
        return predict(self.classifier, x, self.batch_size)

    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, float]]:
        """Share of ``x`` classified as ``labels``: overall and per class name."""
        return accuracy(self.classifier, x, labels, self.batch_size)

    def score(self, x: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
        """Everything the course reports for a set of class-conditional samples ``x`` (N, 1, H, W), N >= 2.

        ``fid`` and ``kid`` (x 10^3, with ``kid_std`` over KID's subsets) against the reference, each next to the
        same measure for N random training images (drawn with ``seed``, features computed once for both):
        ``real_fid``, FID's floor at this N, and ``real_kid``, about 0 at any N; ``precision`` and ``recall`` of
        the samples against the reference (k = ``self.k``, or N - 1 when N is smaller); ``cond_acc``, overall and
        per class.
        """
        n = len(x)
        fake, real = self.features(x), self.real_features(n, seed)                           # (N, 128) each
        fid = frechet_distance(*gaussian_stats(fake), self.ref_mu, self.ref_cov)
        real_fid = frechet_distance(*gaussian_stats(real), self.ref_mu, self.ref_cov)
        kid_mean, kid_std = kid(fake, self.ref_features, generator=torch.Generator().manual_seed(seed))
        real_kid, _ = kid(real, self.ref_features, generator=torch.Generator().manual_seed(seed))
        k = min(self.k, n - 1)
        precision, recall = precision_recall(self.ref_features, fake, k,
                                             real_radii=self.ref_radii if k == self.k else None)
        acc, per_class = self.accuracy(x, labels)
        return {"fid": fid, "real_fid": real_fid, "ratio": fid / real_fid,
                "kid": 1e3 * kid_mean, "kid_std": 1e3 * kid_std, "real_kid": 1e3 * real_kid,
                "precision": precision, "recall": recall, "cond_acc": acc,
                "cond_acc_per_class": per_class, "n": n, "resolution": self.resolution}


def classifier_accuracy(model: FashionClassifier) -> dict:
    """Test accuracy of the classifier itself: at 28x28, and after the 16x16 round trip of the pixel track."""
    x, y = load("test", 28)
    model.eval()
    return {"accuracy": accuracy(model, x, y)[0], "accuracy_16": accuracy(model, round_trip(x, 16), y)[0],
            "n_test": len(y)}


SECOND_KEYS = ("fid", "real_fid", "kid", "kid_std", "real_kid", "precision", "recall", "cond_acc")


def score_images(images: torch.Tensor, labels: torch.Tensor, evaluator: Evaluator, second: Evaluator | None = None,
                 seed: int = 0) -> dict:
    """``evaluator.score`` of images (N, 1, H, W) asked to be ``labels`` (N,); with ``second``, its measures too
    (``"second"``: ``SECOND_KEYS``); and ``pixel_stats`` of the images next to those of N random training images
    at the same size (``"pixels"``, ``"real_pixels"``)."""
    scores = evaluator.score(images, labels, seed=seed)
    if second is not None:
        scores["second"] = {k: v for k, v in second.score(images, labels, seed=seed).items() if k in SECOND_KEYS}
    x_train, _ = load("train", images.shape[-1])
    idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:len(images)]
    return {**scores, "pixels": pixel_stats(images), "real_pixels": pixel_stats(x_train[idx])}


def score_generator(model, evaluator: Evaluator, settings: SamplingConfig, n: int = 2000, seed: int = 0,
                    progress: bool = False, second: Evaluator | None = None) -> dict:
    """Sample ``n`` images from a generator (``generation.generate``), spread evenly over the classes, with
    ``settings`` and ``seed``, and score them (``score_images``) with ``evaluator`` and the optional ``second``,
    both made at the generator's ``image_size``: the measures, the settings, the seed and the sampling time."""
    if n < 2:
        raise ValueError(f"n must be at least 2 to estimate a covariance, got {n}")
    for ev in (evaluator, second):
        if ev is not None and ev.resolution != model.image_size:
            raise ValueError(f"the evaluator works at {ev.resolution}x{ev.resolution}, "
                             f"the generator makes {model.image_size}x{model.image_size} images")
    labels = torch.arange(n) % len(CLASSES)                                            # (n,)
    start = time.time()
    images = generate(model, labels, settings, seed=seed, progress=progress)          # (n, 1, H, W)
    seconds = time.time() - start
    return {**score_images(images, labels, evaluator, second, seed), **settings.to_dict(), "seed": seed,
            "sample_seconds": round(seconds, 2)}
