"""Figures the course draws again and again: image grids with labels, and the denoising progression."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .data import CLASSES


def sharp_figures() -> bool:
    """In Jupyter, store figures at twice their pixel density ("retina": a figure shows at the same size, and reads
    sharp at any zoom, on the course website and full size). Done once when this module is imported; True if it
    applied (False outside IPython, where nothing is displayed inline)."""
    try:
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
    except ImportError:                                                # pragma: no cover - no Jupyter installed
        return False
    if get_ipython() is None:
        return False
    set_matplotlib_formats("retina")
    return True


sharp_figures()


def _img(x: torch.Tensor):
    """(1, H, W) or (H, W) in [-1, 1] -> (H, W) in [0, 1] for imshow."""
    return ((x.squeeze(0).detach().cpu().float().clamp(-1, 1) + 1) / 2).numpy()


def show_images(images: torch.Tensor, titles=None, ncols: int = 10, size: float = 1.0, suptitle: str | None = None):
    """A grid of (N, 1, H, W) images in [-1, 1], optional title per image. Returns the figure."""
    n = len(images)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * (1.25 if titles else 1)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(_img(images[i]), cmap="gray", vmin=0, vmax=1)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def class_grid(images: torch.Tensor, labels: torch.Tensor, size: float = 0.9, title: str | None = None):
    """One row per class present in ``labels``, its name on the left. Returns the figure."""
    classes = labels.unique().tolist()
    per_row = max(int((labels == c).sum()) for c in classes)
    fig, axes = plt.subplots(len(classes), per_row, figsize=(per_row * size + 1.2, len(classes) * size), squeeze=False)
    for r, c in enumerate(classes):
        row = images[labels == c]
        for j, ax in enumerate(axes[r]):
            ax.set_xticks([]), ax.set_yticks([])
            for side in ax.spines.values():
                side.set_visible(False)
            if j < len(row):
                ax.imshow(_img(row[j]), cmap="gray", vmin=0, vmax=1)
        axes[r, 0].set_ylabel(CLASSES[c], rotation=0, ha="right", va="center", fontsize=9)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def progression(trajectory: list[torch.Tensor], labels: torch.Tensor, timesteps: list, size: float = 0.9):
    """The denoising process: one row per sample (labelled with its class), one column per step,
    from pure noise x_T on the left to the sample x_0 on the right. ``trajectory`` = [x_T, ..., x_0];
    ``timesteps``: the sampler's integer timesteps (then "t=0" ends the row), or a title per column."""
    cols = len(trajectory)
    fig, axes = plt.subplots(len(labels), cols, figsize=(cols * size + 1.2, len(labels) * size + 0.4), squeeze=False)
    names = list(timesteps) if len(timesteps) == cols else [f"t={t}" for t in timesteps] + ["t=0"]
    for r, c in enumerate(labels.tolist()):
        for j in range(cols):
            ax = axes[r, j]
            ax.imshow(_img(trajectory[j][r]), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(names[j], fontsize=8)
        axes[r, 0].set_ylabel(CLASSES[c], rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig
