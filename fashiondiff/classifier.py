"""The course's yardsticks: a small Fashion-MNIST CNN classifier, and a second one trained differently to check it;
and part 5's noise-aware classifier, which guides a generator rather than scoring it (``NoisyClassifier``).

It scores generated images twice over: its predictions give conditional accuracy, and its
penultimate features (``features``, 128-d) are the space in which ``fashiondiff.metrics`` measures
the Frechet distance (FID with this network in place of Inception, as the fast.ai course does).

Input: (N, 1, 28, 28) in [-1, 1]; images of any other size are resized to 28x28 bilinearly,
so 16x16 samples of the pixel track are scored after upsampling.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .embeddings import TimestepEmbedding
from .layers import ResBlock, group_norm


def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution, batch norm, ReLU; keeps the spatial size."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


@dataclass
class ClassifierConfig:
    """What builds either classifier (``FashionClassifier(config)``, ``ResNetClassifier(config)``); the checkpoint
    stores it as a dict."""
    width: int = 32                    # channels of the first stage, doubled at each downsampling
    feature_dim: int = 128             # the features the course's measures use
    n_classes: int = 10


class FashionClassifier(nn.Module):
    """Conv net: 28 -> 14 -> 7, flattened -> 128-d features -> 10 logits (about 0.9M parameters)."""

    def __init__(self, config: ClassifierConfig | None = None, **changes):
        super().__init__()
        self.config = config = replace(config or ClassifierConfig(), **changes)
        w, feature_dim, n_classes = config.width, config.feature_dim, config.n_classes
        self.body = nn.Sequential(
            conv_bn(1, w), nn.MaxPool2d(2),                              # (N, w, 14, 14)
            conv_bn(w, 2 * w), conv_bn(2 * w, 2 * w), nn.MaxPool2d(2),   # (N, 2w, 7, 7)
            conv_bn(2 * w, 4 * w), nn.Flatten(),                         # (N, 4w * 49)
        )
        self.embed = nn.Sequential(nn.Linear(4 * w * 49, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(feature_dim, n_classes))

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """Bring (N, 1, H, W) images to 28x28 (bilinear) so samples at any resolution can be scored."""
        if x.shape[-1] != 28:
            x = F.interpolate(x, size=(28, 28), mode="bilinear", align_corners=False)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, feature_dim): the penultimate activations used for FID."""
        return self.embed(self.body(self.prepare(x)))                # (N, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, n_classes) logits."""
        return self.head(self.features(x))                           # (N, n_classes)


class ResNetClassifier(nn.Module):
    """The second yardstick: a pre-activation ResNet (He et al. 2016) with GroupNorm, global average pooling and
    no batch statistics, trained on 28x28 images with random shifts and flips but never on blurred (16x16) ones.
    A different architecture and different augmentations give a second feature space in which to check the
    first: where the two disagree, one of them is blind to something (notebook 09).

    (N, 1, H, W) -> 28 -> 14 -> 7 -> global mean -> ``feature_dim`` features -> ``n_classes`` logits."""

    def __init__(self, config: ClassifierConfig | None = None, **changes):
        super().__init__()
        self.config = config = replace(config or ClassifierConfig(), **changes)
        w, feature_dim, n_classes = config.width, config.feature_dim, config.n_classes
        self.stem = nn.Conv2d(1, w, 3, padding=1)
        self.blocks = nn.Sequential(ResBlock(w, w), ResBlock(w, 2 * w, stride=2),              # (N, 2w, 14, 14)
                                    ResBlock(2 * w, 2 * w), ResBlock(2 * w, 4 * w, stride=2),  # (N, 4w, 7, 7)
                                    ResBlock(4 * w, 4 * w))
        self.norm = group_norm(4 * w)
        self.embed = nn.Linear(4 * w, feature_dim)
        self.head = nn.Sequential(nn.SiLU(), nn.Dropout(0.2), nn.Linear(feature_dim, n_classes))

    prepare = staticmethod(FashionClassifier.prepare)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, feature_dim): the features the second FID, KID and precision/recall use."""
        h = self.blocks(self.stem(self.prepare(x)))                     # (N, 4w, 7, 7)
        return self.embed(F.silu(self.norm(h)).mean(dim=(2, 3)))        # (N, feature_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) -> (N, n_classes) logits."""
        return self.head(self.features(x))                              # (N, n_classes)


@dataclass
class NoisyClassifierConfig:
    """What builds ``NoisyClassifier``; the checkpoint stores it as a dict."""
    image_size: int = 16               # the pixel track's images
    width: int = 32                    # channels of the first stage, doubled at each downsampling
    emb_dim: int = 128                 # the noise level's embedding
    n_classes: int = 10


class NoisyClassifier(nn.Module):
    """p(y | x_sigma) at every noise level: the classifier of classifier guidance (Dhariwal & Nichol 2021, sec. 4,
    whose classifier is the downsampling half of their UNet, told the timestep by adaptive GroupNorm).

    Input x (N, 1, S, S), S = ``image_size``, on the variance-preserving scale: x = (x0 + sigma eps) /
    sqrt(1 + sigma^2), so its variance stays near 1 at every level; and sigma (N,) > 0, embedded as EDM's c_noise =
    log(sigma) / 4 (Karras et al. 2022, Table 1) through the course's sinusoidal timestep embedding. Three stages
    S -> S/2 -> S/4 of ``ResBlock``s with the embedding, global mean, -> ``n_classes`` logits (about 0.8M
    parameters). ``editing.noisy_logits`` brings any generator's x_t to this scale."""

    def __init__(self, config: NoisyClassifierConfig | None = None, **changes):
        super().__init__()
        self.config = config = replace(config or NoisyClassifierConfig(), **changes)
        w, e = config.width, config.emb_dim
        self.level = TimestepEmbedding(e, scale=250.0)                   # c_noise in about -1..1.5 -> +-400
        self.stem = nn.Conv2d(1, w, 3, padding=1)
        self.blocks = nn.ModuleList([ResBlock(w, w, e), ResBlock(w, 2 * w, e, stride=2),
                                     ResBlock(2 * w, 2 * w, e), ResBlock(2 * w, 4 * w, e, stride=2),
                                     ResBlock(4 * w, 4 * w, e)])
        self.norm = group_norm(4 * w)
        self.head = nn.Linear(4 * w, config.n_classes)

    def forward(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """x (N, 1, S, S) on the variance-preserving scale, sigma (N,) -> (N, n_classes) logits."""
        emb = self.level(sigma.clamp(min=1e-3).log() / 4)                # (N, emb_dim)
        h = self.stem(x)                                                 # (N, w, S, S)
        for block in self.blocks:
            h = block(h, emb)                                            # (N, w..4w, S..S/4, S..S/4)
        return self.head(F.silu(self.norm(h)).mean(dim=(2, 3)))          # (N, n_classes)
