"""How the course measures a generator: FID in the classifier's feature space, and conditional accuracy.

Frechet distance between two Gaussians fitted to features (Heusel et al. 2017, eq. 6):

    d^2 = |mu_1 - mu_2|^2 + tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2))

with features from ``FashionClassifier.features`` (128-d), not Inception: Inception features mean little
for 28x28 greyscale clothes. The reference set is the 10,000 test images put through the same resolution
pipeline as the samples (16x16 samples are compared with test images taken down to 16x16 and back).
A number alone says little because FID is biased upwards at small n, so every score comes with
``real_fid``: n random *training* images against the same reference. Read the ratio ``fid / real_fid``.
"""

from __future__ import annotations

import torch

from .classifier import FashionClassifier, down_up
from .data import CLASSES, load


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


class Evaluator:
    """Scores images with a trained ``FashionClassifier``.

    ``resolution`` is the size the samples are generated at (28 or 16); the reference statistics are
    computed once, from the test set taken through the same pipeline. The classifier runs channels-last
    (the same function, about 1.6x faster convolutions on CPU).
    """

    def __init__(self, classifier: FashionClassifier, resolution: int = 28, batch_size: int = 1000):
        self.classifier = classifier.eval().to(memory_format=torch.channels_last)
        self.resolution = resolution
        self.batch_size = batch_size
        self.device = next(classifier.parameters()).device
        x_test, _ = load("test")
        self.ref_mu, self.ref_cov = gaussian_stats(self.features(self._pipeline(x_test)))

    def _pipeline(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.resolution == 28 else down_up(x, self.resolution)

    @torch.no_grad()
    def _run(self, x: torch.Tensor, fn) -> torch.Tensor:
        def chunk(i):                                            # (B, 1, 28, 28), channels-last
            return self.classifier.prepare(x[i:i + self.batch_size].to(self.device)).contiguous(memory_format=torch.channels_last)
        return torch.cat([fn(chunk(i)).cpu() for i in range(0, len(x), self.batch_size)])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) in [-1, 1] -> (N, 128)."""
        return self._run(x, self.classifier.features)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N,) predicted class."""
        return self._run(x, self.classifier).argmax(1)

    def fid(self, x: torch.Tensor) -> float:
        """Frechet distance of samples ``x`` (N, 1, H, W) to the reference."""
        return frechet_distance(*gaussian_stats(self.features(x)), self.ref_mu, self.ref_cov)

    def real_fid(self, n: int, seed: int = 0) -> float:
        """The floor at this n: n random training images (same pipeline) against the reference."""
        x_train, _ = load("train")
        idx = torch.randperm(len(x_train), generator=torch.Generator().manual_seed(seed))[:n]
        return self.fid(self._pipeline(x_train[idx]))

    def accuracy(self, x: torch.Tensor, labels: torch.Tensor) -> tuple[float, dict[str, float]]:
        """Share of ``x`` classified as ``labels``: overall and per class name."""
        hit = (self.predict(x) == labels.cpu()).float()
        per_class = {CLASSES[c]: float(hit[labels == c].mean()) for c in labels.unique().tolist()}
        return float(hit.mean()), per_class

    def score(self, x: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> dict:
        """Everything the course reports for a set of class-conditional samples."""
        fid, real = self.fid(x), self.real_fid(len(x), seed)
        acc, per_class = self.accuracy(x, labels)
        return {"fid": fid, "real_fid": real, "ratio": fid / real, "cond_acc": acc,
                "cond_acc_per_class": per_class, "n": len(x), "resolution": self.resolution}


@torch.no_grad()
def classifier_accuracy(model: FashionClassifier) -> dict:
    """Test accuracy of the classifier itself: at 28x28, and after the 16x16 round trip of the pixel track."""
    device = next(model.parameters()).device
    x, y = load("test", 28)
    model.eval()

    def acc(xs):
        pred = torch.cat([model(xs[i:i + 1000].to(device)).argmax(1).cpu() for i in range(0, len(xs), 1000)])
        return float((pred == y).float().mean())
    return {"accuracy": acc(x), "accuracy_16": acc(down_up(x, 16)), "n_test": len(y)}
