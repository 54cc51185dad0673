"""Interactive widgets for the notebooks: the forward-process explorer of notebook 03, the sample
explorer of notebooks 04 and 08, the latent-space walk of notebook 06, and part 5's editing panels (``editing``):
``SDEditExplorer`` (a test image moved towards a class at a chosen strength) and ``InpaintExplorer`` (a test image
with cells to fill, replacement or RePaint's resampling, the completion step by step).

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

from . import data, editing
from .generation import generate
from .guidance import full_precision
from .plotting import show_images
from .sampling import SAMPLERS, SamplingConfig, samplers_for
from .schedule import NoiseSchedule


def _png(images: torch.Tensor, size: float = 1.2, titles: list[str] | None = None) -> bytes:
    """A row of (n, 1, H, W) images as PNG bytes, drawn without showing a pyplot figure."""
    fig = show_images(images, titles, ncols=len(images), size=size)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def first_test_images(size: int, n: int = 10) -> torch.Tensor:
    """The first test image of each of the classes 0..n-1: (n, 1, size, size) in [-1, 1]."""
    split = data.load_split("test")
    first = [int((split.labels == c).nonzero()[0]) for c in range(n)]
    return data.to_float(split.images[first], size)                                     # (n, 1, size, size)


def live_class(widget: W.Box, kind: str, model=None) -> None:
    """Mark ``widget`` for the course website, which draws a live copy of it in the reader's browser (docs/live.py):
    the CSS class "live-KIND", with "-NAME" when it shows the bundled model NAME (``pipelines.load_model``). A widget
    over a model trained in the notebook gets no mark: the website shows its still."""
    name = getattr(model, "bundled_name", None) if model is not None else ""
    if name is not None:
        widget.add_class(f"live-{kind}" + (f"-{name}" if name else ""))


CLASS_OPTIONS = [(name, i) for i, name in enumerate(data.CLASSES)]


class NoiseExplorer:
    """Sliders over q(x_t | x_0). Display ``explorer.widget``; read ``explorer.current`` (n, 1, H, W),
    the images drawn last, ``explorer.redraws`` (how many times they were drawn) and ``explorer.abar``.

    ``images``: (n, 1, H, W) in [-1, 1]; by default the first test image of each of the classes 0..n-1,
    resized to ``size`` x ``size`` (16: what the course's models see).
    """

    def __init__(self, images: torch.Tensor | None = None, T: int = 10, kind: str = "cosine",
                 t: int | None = None, n: int = 6, size: int = 16, seed: int = 0):
        if images is None:
            images = first_test_images(size, n)                                 # (n, 1, size, size)
        self.images = images
        self.noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))   # (n, 1, H, W)
        self.t = W.IntSlider(value=T // 2 if t is None else t, min=0, max=T, description="t")
        self.T_menu = W.Dropdown(options=(10, 100, 1000), value=T, description="T")
        self.schedule = W.Dropdown(options=("linear", "cosine"), value=kind, description="schedule")
        self.label = W.Label()
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.T_menu, self.schedule]), self.t, self.label, self.image])
        live_class(self.widget, "noise")
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
        live_class(self.widget, "sample", model)
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
        live_class(self.widget, "interpolate", vae)
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


class SDEditExplorer:
    """SDEdit (``editing.sdedit``) on a test image: the image (the first test image of the class chosen), the class
    to move it towards and the strength s in (0, 1]; the input and ``n`` edits are drawn side by side.

    The strength moves in steps of 1 / S (S: the settings' steps), so that each position is its own start level: the
    last ceil(s S) steps run from levels[start], start = ``editing.start_index(S, s)``, whose sigma the caption shows.
    The n edits are one batch from ``seed`` (the i-th takes the batch's i-th noise), so at s = 1, where the image is
    dropped, they are ``generate(model, labels, settings, seed)`` with the deterministic sampler.

    Display ``explorer.widget``. ``explorer.input`` is the (1, 1, H, W) image chosen (H = ``model.image_size``: 16
    for the pixel models, 28 for the latent one), ``explorer.current`` the (n, 1, H, W) edits drawn last (on the
    CPU), ``explorer.start`` and ``explorer.sigma`` the start level's index and sigma, ``explorer.redraws`` counts
    the draws. ``settings``: default ``model.sampling``; ``image`` and ``label`` are class indices.
    """

    def __init__(self, model, settings: SamplingConfig | None = None, n: int = 4, image: int = 0, label: int = 7,
                 strength: float = 0.5, seed: int = 0):
        self.model, self.n = model, n
        self.settings = settings or model.sampling
        self.images = first_test_images(model.image_size)                                  # (10, 1, H, W)
        steps = self.settings.steps
        self.source = W.Dropdown(options=CLASS_OPTIONS, value=image, description="image")
        self.label = W.Dropdown(options=CLASS_OPTIONS, value=label, description="towards")
        k = min(max(round(strength * steps), 1), steps)                                    # snapped to the grid
        self.strength = W.FloatSlider(value=k / steps, min=1 / steps, max=1.0, step=1 / steps, description="strength",
                                      readout_format=".2f")
        self.seed = W.IntSlider(value=seed, min=0, max=99, description="seed")
        self.caption = W.Label()
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.source, self.label]), self.strength, self.seed, self.caption, self.image])
        self.redraws = 0
        for control in (self.source, self.label, self.strength, self.seed):
            control.observe(self._redraw, names="value")
        self._redraw()

    @property
    def input(self) -> torch.Tensor:
        return self.images[self.source.value:self.source.value + 1]                        # (1, 1, H, W)

    @property
    def start(self) -> int:
        return editing.start_index(self.settings.steps, self.strength.value)

    @property
    def sigma(self) -> float:
        return editing.levels(self.model, self.settings.steps)[self.start].sigma

    def _redraw(self, change=None) -> None:
        steps, n = self.settings.steps, self.n
        labels = torch.full((n,), self.label.value, dtype=torch.long)                      # (n,)
        images = self.input.expand(n, -1, -1, -1)                                          # (n, 1, H, W)
        self.current = editing.sdedit(self.model, images, labels, self.settings, self.strength.value,
                                      self.seed.value).cpu()                               # (n, 1, H, W)
        name = data.CLASSES[self.label.value]
        self.image.value = _png(torch.cat([self.input, self.current]), size=1.4,
                                titles=["input"] + [f"{name} {i + 1}" for i in range(n)])
        noise = ": pure noise, the image dropped" if self.start == 0 else ""
        # the caption last: the page gets it after the picture it describes
        self.caption.value = (f"strength {self.strength.value:.2f}: the last {steps - self.start} of {steps} steps, "
                              f"from sigma = {self.sigma:.3g}{noise}")
        self.redraws += 1


# The preset masks as the 4 x 4 cells they fill (row, column), and the grid the learner toggles.
GRID = 4
SHAPES = {"left half": [(r, c) for r in range(GRID) for c in range(GRID // 2)],
          "right half": [(r, c) for r in range(GRID) for c in range(GRID // 2, GRID)],
          "top half": [(r, c) for r in range(GRID // 2) for c in range(GRID)],
          "bottom half": [(r, c) for r in range(GRID // 2, GRID) for c in range(GRID)],
          "centre box": [(r, c) for r in (1, 2) for c in (1, 2)]}


class InpaintExplorer:
    """Inpainting (``editing.inpaint``) of a test image towards its own class: the image (the first test image of
    the class chosen), the cells to fill (a preset shape, or the 4 x 4 grid of toggle buttons, on = fill), the
    RePaint rounds ``resample`` (1: replacement) and the seed; a step slider walks through the completion.

    Drawn: the input, the kept pixels (grey where filled), the sampler's iterate x at the step (decoded: the
    latent model's noisy latent as its VAE shows it) and, at that step, the denoiser's x0 estimate with the known
    pixels in place (``editing.paste``): at the last step, the completion ``inpaint`` returns.

    Display ``explorer.widget``. ``explorer.input`` (1, 1, H, W), ``explorer.mask`` (1, 1, H, W: 1 keep, 0 fill;
    H = ``model.image_size``, each cell H / 4 pixels, rounded), ``explorer.fill`` the (4, 4) bool cells to fill,
    ``explorer.completion`` (1, 1, H, W), ``explorer.frames`` and ``explorer.iterates`` (S, 1, H, W) for steps
    1..S, ``explorer.current`` the (1, 1, H, W) frame drawn last; ``explorer.runs`` counts the inpainting runs
    and ``explorer.redraws`` the draws (moving the step slider redraws without a run). All on the CPU.
    """

    def __init__(self, model, settings: SamplingConfig | None = None, image: int = 0, shape: str = "right half",
                 resample: int = 1, seed: int = 0):
        self.model = model
        self.settings = settings or model.sampling
        self.images = first_test_images(model.image_size)                                  # (10, 1, H, W)
        steps = self.settings.steps
        self.source = W.Dropdown(options=CLASS_OPTIONS, value=image, description="image")
        self.shape = W.Dropdown(options=[*SHAPES, "custom"], value=shape, description="fill")
        self.resample = W.Dropdown(options=[("1: replace", 1)] + [(f"{r}: RePaint", r) for r in (2, 3, 4)],
                                   value=resample, description="resample")
        self.cells = [W.ToggleButton(value=False, tooltip=f"row {i // GRID}, column {i % GRID}",
                                     layout=W.Layout(width="34px", height="26px")) for i in range(GRID * GRID)]
        grid = W.GridBox(self.cells, layout=W.Layout(grid_template_columns=f"repeat({GRID}, 36px)"))
        self.seed = W.IntSlider(value=seed, min=0, max=99, description="seed")
        self.step = W.IntSlider(value=steps, min=1, max=steps, description="step")
        self.caption = W.Label()
        self.image = W.Image(format="png")
        self.widget = W.VBox([W.HBox([self.source, self.shape, self.resample]),
                              W.HBox([W.Label("cells to fill"), grid]), self.seed, self.step, self.caption, self.image])
        self.redraws, self.runs, self._busy = 0, 0, False
        self._set_cells(SHAPES.get(shape, []))
        for control in (self.source, self.resample, self.seed):
            control.observe(self._run, names="value")
        self.shape.observe(self._change_shape, names="value")
        for cell in self.cells:
            cell.observe(self._toggle, names="value")
        self.step.observe(self._draw, names="value")
        self._run()

    @property
    def input(self) -> torch.Tensor:
        return self.images[self.source.value:self.source.value + 1]                        # (1, 1, H, W)

    @property
    def fill(self) -> torch.Tensor:
        return torch.tensor([cell.value for cell in self.cells]).reshape(GRID, GRID)         # (4, 4) bool

    @property
    def mask(self) -> torch.Tensor:
        size = self.model.image_size
        edges = [round(k * size / GRID) for k in range(GRID + 1)]                           # cell boundaries
        mask = torch.ones(1, 1, size, size)
        for r, c in self.fill.nonzero().tolist():
            mask[..., edges[r]:edges[r + 1], edges[c]:edges[c + 1]] = 0
        return mask                                                                         # (1, 1, H, W)

    def _set_cells(self, cells) -> None:
        self._busy = True                        # one run for the new shape, not one per button
        for i, cell in enumerate(self.cells):
            cell.value = divmod(i, GRID) in cells
        self._busy = False

    def _change_shape(self, change) -> None:
        if self._busy or change["new"] == "custom":                                         # "custom": as it is
            return
        self._set_cells(SHAPES[change["new"]])
        self._run()

    def _toggle(self, change) -> None:
        """A cell toggled by hand: the shape menu names the preset the grid now matches, or "custom"."""
        if self._busy:
            return
        filled = set(map(tuple, self.fill.nonzero().tolist()))
        self._busy = True
        self.shape.value = next((name for name, cells in SHAPES.items() if set(cells) == filled), "custom")
        self._busy = False
        self._run()

    def _run(self, change=None) -> None:
        if self._busy:
            return
        xs, ds = [], []
        label = torch.tensor([self.source.value])                                          # its own class
        self.completion = editing.inpaint(self.model, self.input, self.mask, label, self.settings,
                                          self.resample.value, self.seed.value,
                                          trace=lambda i, x, d: (xs.append(x), ds.append(d))).cpu()
        device = next(self.model.parameters()).device
        image, mask = self.input.to(device), self.mask.to(device)
        with torch.no_grad():                    # every step's x0 estimate as inpaint's output would paste it
            self.frames = editing.paste(self.model, image, mask, editing.encode(self.model, image),
                                        torch.cat(ds)).cpu()                                # (S, 1, H, W)
            self.iterates = full_precision(self.model.decode(torch.cat(xs))).cpu()          # (S, 1, H, W)
        self.runs += 1
        self._draw()

    def _draw(self, change=None) -> None:
        k, steps, r = self.step.value, self.settings.steps, self.resample.value
        self.current = self.frames[k - 1:k]                                                 # (1, 1, H, W)
        panels = torch.cat([self.input, self.mask * self.input, self.iterates[k - 1:k], self.current])
        titles = ["input", "kept (grey: fill)", f"x at step {k}", "completion" if k == steps else f"x0 est., step {k}"]
        self.image.value = _png(panels, size=1.4, titles=titles)
        sigma = editing.levels(self.model, steps)[k].sigma
        calls = editing.inpainting_calls(self.model, self.settings, r)
        self.caption.value = (f"step {k} of {steps}, sigma = {sigma:.3g}; r = {r}: {calls} network calls "
                              "per image in all")
        self.redraws += 1
