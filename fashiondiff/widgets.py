"""Interactive widgets for the notebooks: the forward-process explorer of notebook 03, the sample
explorer of notebooks 04 and 08, and the latent-space walk of notebook 06.

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
from .generation import generate
from .plotting import show_images
from .sampling import SAMPLERS, SamplingConfig, samplers_for
from .schedule import NoiseSchedule


def _png(images: torch.Tensor, size: float = 1.2) -> bytes:
    """A row of (n, 1, H, W) images as PNG bytes, drawn without showing a pyplot figure."""
    fig = show_images(images, ncols=len(images), size=size)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


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
        self.T_menu = W.Dropdown(options=(10, 100, 1000), value=T, description="T")
        self.schedule = W.Dropdown(options=("linear", "cosine"), value=kind, description="schedule")
        self.label = W.Label()
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.T_menu, self.schedule]), self.t, self.label, self.image])
        self.redraws, self._busy = 0, False
        self.t.observe(self._redraw, names="value")
        self.schedule.observe(self._redraw, names="value")
        self.T_menu.observe(self._change_T, names="value")
        self._redraw()

    @property
    def noise_schedule(self) -> NoiseSchedule:
        return NoiseSchedule(self.T_menu.value, self.schedule.value)

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
        self.image.value = _png(self.current)
        self.redraws += 1


class SampleExplorer:
    """Regenerate samples of a trained generator (``generation.generate``): class, seed, steps, sampler, eta where
    the sampler leaves it open, guidance w, and where w applies (the default's interval of noise levels sigma, plain
    conditional w = 1 outside it, or every step).

    Display ``explorer.widget``; ``explorer.settings`` is the ``SamplingConfig`` the controls show,
    ``explorer.current`` holds the (n, C, H, W) samples drawn last and ``explorer.redraws`` counts the draws.
    ``settings``: where the controls start (default: the model's own, ``model.sampling``).
    """

    def __init__(self, model, settings: SamplingConfig | None = None, n: int = 8, label: int = 7, seed: int = 0):
        opts = settings or model.sampling
        self.model, self.n = model, n
        self.label = W.Dropdown(options=[(name, i) for i, name in enumerate(data.CLASSES)], value=label,
                                description="class")
        self.seed = W.IntSlider(value=seed, min=0, max=99, description="seed")
        self.steps = W.IntSlider(value=opts.steps, min=1, max=model.max_steps, description="steps")
        self.sampler = W.Dropdown(options=samplers_for(model.process), value=opts.sampler, description="sampler")
        self.eta = W.FloatSlider(value=opts.eta, min=0.0, max=1.0, step=0.25, description="eta",
                                 disabled=self._eta_fixed(opts.sampler))
        self.guidance = W.FloatSlider(value=opts.guidance, min=0.0, max=5.0, step=0.5, description="guidance")
        interval = opts.guidance_interval                    # the default's, or None (every step); w = 1 outside it
        choices = [("every step", None)] if interval is None else \
            [("sigma {:g}..{:g}".format(*interval), interval), ("every step", None)]
        self.interval = W.Dropdown(options=choices, value=choices[0][1], description="w at")
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.label, self.sampler]), self.seed, self.steps, self.eta,
                              W.HBox([self.guidance, self.interval]), self.image])
        self.redraws, self._busy = 0, False
        for control in (self.label, self.seed, self.steps, self.eta, self.guidance, self.interval):
            control.observe(self._redraw, names="value")
        self.sampler.observe(self._change_sampler, names="value")
        self._redraw()

    @staticmethod
    def _eta_fixed(sampler: str) -> bool:
        return SAMPLERS[sampler].fixed_eta is not None

    @property
    def settings(self) -> SamplingConfig:
        return SamplingConfig(self.sampler.value, self.steps.value, self.guidance.value, self.interval.value,
                              None if self._eta_fixed(self.sampler.value) else self.eta.value)

    def _change_sampler(self, change) -> None:
        """A sampler whose eta is fixed (ddpm 1, euler and heun 0) shows its own value and locks the slider; one
        whose eta is a choice (ddim) unlocks it."""
        self._busy = True
        self.eta.disabled = self._eta_fixed(change["new"])
        if self.eta.disabled:
            self.eta.value = SAMPLERS[change["new"]].fixed_eta
        self._busy = False
        self._redraw()

    def _redraw(self, change=None) -> None:
        if self._busy:
            return
        labels = torch.full((self.n,), self.label.value, dtype=torch.long)                  # (n,)
        self.current = generate(self.model, labels, self.settings, seed=self.seed.value)     # (n, C, H, W)
        self.image.value = _png(self.current)
        self.redraws += 1


class LatentInterpolator:
    """Walk in a VAE's latent space between two test images: z = (1 - a) z_first + a z_second, decoded.

    Display ``explorer.widget``; ``explorer.current`` is the (1, 1, 28, 28) image decoded last and
    ``explorer.redraws`` counts the draws. The two images are the first test image of each chosen class.
    """

    def __init__(self, vae, first: int = 7, second: int = 9, alpha: float = 0.5):
        self.vae = vae.eval()
        split = data.load_split("test")
        self._first_of = {c: int((split.labels == c).nonzero()[0]) for c in range(len(data.CLASSES))}
        self._split = split
        options = [(name, i) for i, name in enumerate(data.CLASSES)]
        self.first = W.Dropdown(options=options, value=first, description="from")
        self.second = W.Dropdown(options=options, value=second, description="to")
        self.alpha = W.FloatSlider(value=alpha, min=0.0, max=1.0, step=0.1, description="a")
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.first, self.second]), self.alpha, self.image])
        self.redraws = 0
        for control in (self.first, self.second, self.alpha):
            control.observe(self._redraw, names="value")
        self._redraw()

    def endpoints(self) -> torch.Tensor:
        """The two chosen test images, (2, 1, 28, 28) in [-1, 1]."""
        idx = [self._first_of[self.first.value], self._first_of[self.second.value]]
        return data.to_float(self._split.images[idx], 28)

    def _redraw(self, change=None) -> None:
        x = self.endpoints()                                                            # (2, 1, 28, 28)
        z = self.vae.encode(x.to(self.vae.latent_mean.device))                          # (2, C, 7, 7)
        a = self.alpha.value
        self.current = self.vae.decode((1 - a) * z[:1] + a * z[1:]).cpu()               # (1, 1, 28, 28)
        self.image.value = _png(torch.cat([x[:1], self.current, x[1:]]), size=1.4)
        self.redraws += 1
