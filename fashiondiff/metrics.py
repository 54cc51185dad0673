"""How the course scores images with a trained classifier: ``Evaluator`` turns samples into the classifier's
features and reports FID, KID, precision and recall against a reference set (``fashiondiff.stats``), and
conditional accuracy.

The features are ``FashionClassifier.features`` (128-d), not Inception: Inception features mean little for 28x28
greyscale clothes. The caller gives the reference (the course uses the 10,000 test images) and the real images
that set each measure's floor (training images); both go through the same resolution pipeline as the samples
(16x16 samples are compared with images taken down to 16x16 and back). Read precision and recall together with
KID: outliers among the reference images have wide balls, so even uniform noise lands in the reference manifold
about half the time here (its recall is 0 and its KID huge). ``Scores`` names what a score holds.
"""

from __future__ import annotations

import copy
from typing import TypedDict

import torch

from .classifier import FashionClassifier
from .data import CLASSES, map_batches, round_trip
from .stats import frechet_distance, gaussian_stats, kid, knn_radii, precision_recall


def predict(classifier: FashionClassifier, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
    """(N, 1, H, W) images -> (N,) the class ``classifier`` assigns to each."""
    device = next(classifier.parameters()).device
    with torch.autocast(device.type, enabled=False):            # a yardstick measures in fp32 on every host
        return map_batches(lambda xb: classifier(xb).argmax(1), x, batch_size, device)


def accuracy(classifier: FashionClassifier, x: torch.Tensor, labels: torch.Tensor,
             batch_size: int = 1000) -> tuple[float, dict[str, float]]:
    """Share of images ``x`` (N, 1, H, W) that ``classifier`` assigns to ``labels`` (N,): overall and per class."""
    hit = (predict(classifier, x, batch_size) == labels.cpu()).float()
    per_class = {CLASSES[c]: float(hit[labels == c].mean()) for c in labels.unique().tolist()}
    return float(hit.mean()), per_class


class Scores(TypedDict):
    """What ``Evaluator.score`` reports of a set of N class-conditional samples (a plain dict, JSON-ready)."""
    fid: float                         # Frechet distance to the reference
    real_fid: float                    # the same for N real images: FID's floor at this N
    ratio: float                       # fid / real_fid
    kid: float                         # KID x 10^3, with its spread over subsets
    kid_std: float
    real_kid: float                    # KID of N real images: about 0 at any N
    precision: float                   # share of samples inside the reference's manifold
    recall: float                      # share of the reference inside the samples' manifold
    cond_acc: float                    # share of samples classified as the class asked for
    cond_acc_per_class: dict           # the same per class name
    n: int
    resolution: int


MEASURES = tuple(k for k in Scores.__annotations__ if k not in ("cond_acc_per_class", "n", "resolution"))


def measures(scores: Scores) -> dict:
    """The comparable numbers of a score (``MEASURES``), without the per-class breakdown and the set's size."""
    return {k: scores[k] for k in MEASURES}


class Evaluator:
    """Scores images with a trained ``FashionClassifier``.

    ``reference`` (N_ref, 1, 28, 28) images in [-1, 1] are what samples are compared with (the course: the 10,000
    test images) and ``real`` (N, 1, 28, 28) the images whose score is each measure's floor (the training images);
    both are taken through ``resolution``'s pipeline (28, or the 16x16 round trip), the reference's features and
    statistics once. A copy of the classifier runs channels-last in eval mode (the same function, faster
    convolutions on a CPU), in fp32 even inside a bf16 autocast; the caller's classifier is left as it was.
    """

    k = 3                  # nearest neighbours for precision/recall (Kynkaanniemi et al. 2019's default)

    def __init__(self, classifier: FashionClassifier, reference: torch.Tensor, real: torch.Tensor,
                 resolution: int = 28, batch_size: int = 1000):
        self.classifier = copy.deepcopy(classifier).eval().to(memory_format=torch.channels_last)
        self.resolution, self.batch_size, self.real = resolution, batch_size, real
        self.device = next(classifier.parameters()).device
        self.ref_features = self.features(self._pipeline(reference))         # (N_ref, 128): KID, precision/recall
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
        with torch.autocast(self.device.type, enabled=False):    # fp32 even inside bf16 sampling: one yardstick
            return map_batches(run, x.float(), self.batch_size, self.device)

    def fid(self, x: torch.Tensor) -> float:
        """Frechet distance of samples ``x`` (N, 1, H, W) to the reference."""
        return frechet_distance(*gaussian_stats(self.features(x)), self.ref_mu, self.ref_cov)

    def real_images(self, n: int, seed: int = 0) -> torch.Tensor:
        """n of the ``real`` images (N, 1, 28, 28), drawn at random with ``seed``."""
        idx = torch.randperm(len(self.real), generator=torch.Generator().manual_seed(seed))[:n]
        return self.real[idx]

    def real_features(self, n: int, seed: int = 0) -> torch.Tensor:
        """(n, 128) features of n random real images (same pipeline): what a perfect generator would give."""
        return self.features(self._pipeline(self.real_images(n, seed)))

    def real_fid(self, n: int, seed: int = 0) -> float:
        """The floor at this n: n random real images (same pipeline) against the reference."""
        return frechet_distance(*gaussian_stats(self.real_features(n, seed)), self.ref_mu, self.ref_cov)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N,) predicted class."""
        return predict(self.classifier, x, self.batch_size)

    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, float]]:
        """Share of ``x`` classified as ``labels``: overall and per class name."""
        return accuracy(self.classifier, x, labels, self.batch_size)

    def score(self, x: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> Scores:
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
