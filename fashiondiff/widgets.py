"""Interactive widgets for the notebooks; here, the forward-process explorer of notebook 03.

``NoiseExplorer`` shows x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps (DDPM eq. 4, Ho et al. 2020) for a row of
images, with a slider for t, a choice of T and of schedule (linear, or cosine as in Nichol & Dhariwal 2021).
The noise eps is drawn once, so moving the slider fades the same noise in smoothly. The logic lives here,
not in the notebook, so that tests can move the slider and check what is drawn.
"""

from __future__ import annotations

import io

import ipywidgets as W
import matplotlib.pyplot as plt
import torch

from . import data
from .plotting import show_images
from .schedule import NoiseSchedule


class NoiseExplorer:
    """Sliders over q(x_t | x_0). Display ``explorer.widget``; read ``explorer.current`` (n, 1, H, W),
    the images drawn last, ``explorer.redraws`` (how many times they were drawn) and ``explorer.abar``.

    ``images``: (n, 1, H, W) in [-1, 1]; by default the first test image of each of the classes 0..n-1,
    resized to ``size`` x ``size`` (16: what the course's models see).
    """

    def __init__(self, images: torch.Tensor | None = None, T: int = 10, kind: str = "cosine",
                 t: int | None = None, n: int = 6, size: int = 16, seed: int = 0):
        if images is None:
            split = data.load_split("test")
            first = [int((split.labels == c).nonzero()[0]) for c in range(n)]
            images = data.to_float(split.images[first], size)                   # (n, 1, size, size)
        self.images = images
        self.noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))   # (n, 1, H, W)
        self.t = W.IntSlider(value=T // 2 if t is None else t, min=0, max=T, description="t")
        self.T = W.Dropdown(options=(10, 100, 1000), value=T, description="T")
        self.schedule = W.Dropdown(options=("linear", "cosine"), value=kind, description="schedule")
        self.label = W.Label()
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.T, self.schedule]), self.t, self.label, self.image])
        self.redraws, self._busy = 0, False
        self.t.observe(self._redraw, names="value")
        self.schedule.observe(self._redraw, names="value")
        self.T.observe(self._change_T, names="value")
        self._redraw()

    @property
    def noise_schedule(self) -> NoiseSchedule:
        return NoiseSchedule(self.T.value, self.schedule.value)

    @property
    def abar(self) -> float:
        """abar_t of the current schedule at the slider's t (1 at t = 0)."""
        return float(self.noise_schedule.abar[self.t.value])

    def _change_T(self, change) -> None:
        """Keep t at the same fraction of the way: t -> round(t * T_new / T_old)."""
        t = round(self.t.value * change["new"] / change["old"])
        self._busy = True                        # one redraw below, not one per slider trait
        if change["new"] > self.t.max:
            self.t.max, self.t.value = change["new"], t
        else:
            self.t.value, self.t.max = t, change["new"]
        self._busy = False
        self._redraw()

    def _redraw(self, change=None) -> None:
        if self._busy:
            return
        s, t = self.noise_schedule, self.t.value
        steps = torch.full((len(self.images),), t, dtype=torch.long)                      # (n,)
        self.current = s.q_sample(self.images, steps, self.noise)                        # (n, 1, H, W)
        snr = self.abar / (1 - self.abar) if t > 0 else float("inf")
        self.label.value = f"t = {t} of T = {s.T} ({s.kind}):  abar_t = {self.abar:.4f},  SNR = {snr:.3g}"
        fig = show_images(self.current, ncols=len(self.images), size=1.2)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)                           # drawn into the Image widget, never shown by pyplot
        self.image.value = buf.getvalue()
        self.redraws += 1
