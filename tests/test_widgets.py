"""The notebooks' widgets, their controls moved from Python: the forward-process explorer of notebook 03 redraws the
closed form q(x_t | x_0); the sample panels, the latent walk, and part 5's SDEdit and inpainting panels (checked
against generate, editing.inpainting_calls and the mask)."""
import math

import pytest
import torch

from fashiondiff.schedule import NoiseSchedule
from fashiondiff.widgets import NoiseExplorer
from conftest import needs_data

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def images():
    return torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1


def closed_form(images, noise, T, kind, t):
    return NoiseSchedule(T, kind).q_sample(images, torch.full((len(images),), t), noise)


def test_moving_the_slider_redraws_the_closed_form_with_fixed_noise(images):
    ex = NoiseExplorer(images=images, T=10, kind="cosine", t=2)
    assert ex.redraws == 1 and ex.current.shape == (4, 1, 16, 16)
    before, png_before = ex.current.clone(), bytes(ex.image.value)
    torch.testing.assert_close(before, closed_form(images, ex.noise, 10, "cosine", 2))
    ex.t.value = 7
    assert ex.redraws == 2
    assert (ex.current - before).abs().max() > 0.1
    torch.testing.assert_close(ex.current, closed_form(images, ex.noise, 10, "cosine", 7))
    assert bytes(ex.image.value).startswith(PNG) and bytes(ex.image.value) != png_before
    ex.t.value = 2                                                    # the same noise: back to the same images
    torch.testing.assert_close(ex.current, before, rtol=0, atol=0)
    ex.t.value = 0                                                    # t = 0 is the clean image
    torch.testing.assert_close(ex.current, images)
    assert "SNR = inf" in ex.label.value


def test_changing_T_rescales_t_and_redraws_once(images):
    ex = NoiseExplorer(images=images, T=10, kind="linear", t=3)
    ex.T_menu.value = 1000
    assert (ex.t.max, ex.t.value) == (1000, 300)
    assert ex.redraws == 2
    torch.testing.assert_close(ex.current, closed_form(images, ex.noise, 1000, "linear", 300))
    assert ex.abar == pytest.approx(float(NoiseSchedule(1000, "linear").abar[300]))
    ex.T_menu.value = 100
    assert (ex.t.max, ex.t.value, ex.redraws) == (100, 30, 3)
    ex.t.value = 100
    ex.T_menu.value = 10                                                   # t = T stays at the end
    assert (ex.t.max, ex.t.value) == (10, 10)


def test_switching_schedule_changes_abar_and_the_label(images):
    ex = NoiseExplorer(images=images, T=10, kind="linear", t=5)
    linear = ex.abar
    assert linear == pytest.approx(float(NoiseSchedule(10, "linear").abar[5]))
    assert linear < 0.02                                              # the T = 10 linear trap: noise by t = 5
    ex.schedule.value = "cosine"
    assert ex.abar == pytest.approx(float(NoiseSchedule(10, "cosine").abar[5]))
    assert ex.abar > 0.3 and ex.redraws == 2
    assert f"{ex.abar:.4f}" in ex.label.value and "cosine" in ex.label.value
    torch.testing.assert_close(ex.current, closed_form(images, ex.noise, 10, "cosine", 5))


@needs_data
def test_default_images_are_one_per_class_from_the_test_split():
    ex = NoiseExplorer()
    assert ex.current.shape == (6, 1, 16, 16)
    assert ex.images.min() >= -1 and ex.images.max() <= 1
    assert len({tuple(im.flatten()[:50].tolist()) for im in ex.images}) == 6


def tiny_latent_model():
    """A small random latent pipeline whose output depends on the class (the zero-initialised last layer is
    randomised, so that the sample panel has something to redraw)."""
    from fashiondiff.latent import LatentDiffusion
    torch.manual_seed(0)
    model = LatentDiffusion(dict(latent_channels=4, widths=(8, 16, 32)),
                            dict(latent_channels=4, widths=(8, 16, 16), emb_dim=32, context_tokens=2, context_dim=16))
    torch.nn.init.normal_(model.unet.conv_out.weight, std=0.3)
    return model.eval()


def test_sample_panel_for_the_latent_model_redraws_on_class_guidance_steps_and_eta():
    from fashiondiff.recipes import RECIPES
    from fashiondiff.widgets import SampleExplorer
    default = RECIPES["latent"].sampling
    ex = SampleExplorer(tiny_latent_model(), default, n=2, label=7)
    assert ex.steps.max == 1000 and ex.settings == default
    assert ex.current.shape == (2, 1, 28, 28) and ex.redraws == 1
    first, png = ex.current.clone(), bytes(ex.image.value)
    ex.label.value = 1
    assert ex.redraws == 2 and not torch.equal(ex.current, first)
    ex.label.value = 7
    torch.testing.assert_close(ex.current, first)                    # same settings, same images
    assert ex.interval.value == default.guidance_interval            # w = 1 outside it
    ex.interval.value = None                                          # every step
    ex.guidance.value = 0.0                                           # unconditional: the class stops mattering
    uncond = ex.current.clone()
    ex.label.value = 3
    torch.testing.assert_close(ex.current, uncond)
    ex.steps.value = 5
    assert ex.redraws == 7 and not torch.equal(ex.current, uncond)
    assert bytes(ex.image.value).startswith(PNG) and bytes(ex.image.value) != png
    ex.eta.value = 0.0                                                # deterministic DDIM: other images
    assert ex.redraws == 8 and ex.settings.eta == 0 and not torch.equal(ex.current, uncond)
    ex.sampler.value = "ddpm"                                         # one redraw; ddpm's eta is 1, locked
    assert ex.redraws == 9 and ex.eta.value == 1.0 and ex.eta.disabled and ex.settings.sampler == "ddpm"


def test_sample_panel_for_a_flow_offers_its_own_samplers_and_locks_eta_at_zero():
    from fashiondiff.recipes import RECIPES
    from fashiondiff.widgets import SampleExplorer
    torch.manual_seed(0)
    flow = RECIPES["flow"].build(dim=32, heads=2, layers=1, ff_dim=32)
    torch.nn.init.normal_(flow.out.weight, std=0.3)
    ex = SampleExplorer(flow.eval(), n=2, label=7)
    from fashiondiff.sampling import samplers_for
    assert tuple(ex.sampler.options) == tuple(samplers_for("flow")) and "heun" in ex.sampler.options
    assert ex.eta.disabled and ex.eta.value == 0.0
    assert ex.current.shape == (2, 1, 16, 16) and ex.settings == flow.sampling
    euler = ex.current.clone()
    ex.sampler.value = "heun"                                         # one redraw, eta stays 0 and locked
    assert ex.redraws == 2 and ex.eta.disabled and ex.settings.sampler == "heun" and ex.settings.eta == 0.0
    assert not torch.equal(ex.current, euler)
    ex.steps.value = 3
    assert ex.redraws == 3


@needs_data
def test_latent_interpolator_ends_at_the_two_reconstructions_and_redraws_between():
    from fashiondiff.vae import VAE
    from fashiondiff.widgets import LatentInterpolator
    torch.manual_seed(0)
    vae = VAE(latent_channels=4, widths=(8, 16, 32))
    ex = LatentInterpolator(vae, first=7, second=9, alpha=0.0)
    ends = ex.endpoints()
    assert ends.shape == (2, 1, 28, 28) and ex.redraws == 1
    recon = vae.decode(vae.encode(ends))
    torch.testing.assert_close(ex.current, recon[:1])
    ex.alpha.value = 1.0
    torch.testing.assert_close(ex.current, recon[1:])
    ex.alpha.value = 0.5
    assert ex.redraws == 3
    torch.testing.assert_close(ex.current, vae.decode(vae.encode(ends).mean(0, keepdim=True)))
    ex.first.value = 1                                                # a trouser at the other end now
    assert ex.redraws == 4 and not torch.equal(ex.endpoints()[0], ends[0])


def test_sample_explorer_regenerates_for_class_seed_and_steps():
    from fashiondiff.pipelines import load_model
    from fashiondiff.widgets import SampleExplorer
    ex = SampleExplorer(load_model("transformer", device="cpu"), n=4, label=7)
    first = ex.current.clone()
    assert ex.redraws == 1 and first.shape == (4, 1, 16, 16)
    ex.seed.value = 5
    assert ex.redraws == 2 and not torch.equal(ex.current, first)
    ex.seed.value = 0
    torch.testing.assert_close(ex.current, first)                                 # same settings, same images
    ex.label.value = 1                                                            # trousers: a different picture
    assert (ex.current - first).abs().mean() > 0.1
    ex.steps.value = 1
    assert ex.redraws == 5


# --- part 5's editing panels ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def transformer():
    from fashiondiff.pipelines import load_model
    return load_model("transformer", device="cpu")


def counting_rows(model):
    """Wrap the network so that every example it sees is counted (guidance's two predictions are two)."""
    forward, seen = model.forward, {"rows": 0}

    def counted(x, *args, **kwargs):
        seen["rows"] += len(x)
        return forward(x, *args, **kwargs)
    model.forward = counted
    return seen


@needs_data
def test_sdedit_strength_slider_moves_the_start_level_and_redraws_once(transformer):
    from fashiondiff import editing
    from fashiondiff.widgets import SDEditExplorer
    ex = SDEditExplorer(transformer, n=4, image=0, label=7, strength=0.5)
    grid = editing.levels(transformer, 10)
    assert ex.redraws == 1 and ex.current.shape == (4, 1, 16, 16) and ex.input.shape == (1, 1, 16, 16)
    assert (ex.strength.min, ex.strength.step, ex.start) == (0.1, 0.1, 5)          # one slider step, one level
    assert f"sigma = {grid[5].sigma:.3g}" in ex.caption.value
    before, png = ex.current.clone(), bytes(ex.image.value)
    ex.strength.value = 0.8
    assert ex.redraws == 2 and ex.start == 2 and ex.sigma == grid[2].sigma > grid[5].sigma
    assert f"sigma = {grid[2].sigma:.3g}" in ex.caption.value and "the last 8 of 10 steps" in ex.caption.value
    assert not torch.equal(ex.current, before) and bytes(ex.image.value) != png
    assert len({tuple(e.flatten()[:40].tolist()) for e in ex.current}) == 4       # four noises, four edits


@needs_data
def test_sdedit_at_the_lowest_strength_stays_near_the_input(transformer):
    """s = 0.1 is one step from levels[9] (sigma = 0.17): the noise added there moves a pixel by sigma sqrt(2 / pi)
    = 0.135 on average, and the step towards a sneaker takes about half of it away (measured: 0.061 to 0.073 for
    these four edits of the T-shirt; 0.04 to 0.10 over the ten classes' images), so each edit is nearer the input
    than the noisy start it came from, while at s = 1 the edits are new sneakers, 0.5 and more away."""
    from fashiondiff.widgets import SDEditExplorer
    ex = SDEditExplorer(transformer, n=4, image=0, label=7, strength=0.1)
    assert ex.start == 9
    away = (ex.current - ex.input).abs().mean((1, 2, 3))                             # (4,) per edit
    assert away.max() < ex.sigma * math.sqrt(2 / math.pi), away
    ex.strength.value = 1.0
    assert (ex.current - ex.input).abs().mean((1, 2, 3)).min() > 4 * away.max()


@needs_data
def test_sdedit_at_full_strength_is_generate_from_the_seed_whatever_the_image(transformer):
    """The default sampler is already deterministic (DDIM, eta = 0), so s = 1 is the panel of generate's samples."""
    from fashiondiff.generation import generate
    from fashiondiff.widgets import SDEditExplorer
    assert transformer.sampling.sampler == "ddim" and transformer.sampling.eta == 0
    ex = SDEditExplorer(transformer, n=4, image=0, label=7, strength=1.0, seed=3)
    assert ex.start == 0
    samples = generate(transformer, torch.full((4,), 7), transformer.sampling, seed=3)
    torch.testing.assert_close(ex.current, samples, rtol=0, atol=1e-5)
    ex.source.value = 8                                                               # another input: the same
    assert ex.redraws == 2 and not torch.equal(ex.input, ex.images[:1])
    torch.testing.assert_close(ex.current, samples, rtol=0, atol=1e-5)


@needs_data
def test_toggling_a_grid_cell_changes_the_mask_and_only_the_filled_cells_change(transformer):
    from fashiondiff.widgets import InpaintExplorer
    ex = InpaintExplorer(transformer, image=0, shape="top half")
    assert ex.runs == ex.redraws == 1 and ex.fill[:2].all() and not ex.fill[2:].any()
    top = ex.mask.clone()
    assert top[..., :8, :].eq(0).all() and top[..., 8:, :].eq(1).all()
    ex.cells[0].value = False                                                          # keep the top-left cell
    assert ex.runs == 2 and ex.shape.value == "custom"
    changed = ex.mask != top
    assert changed.sum() == 16 and changed[..., :4, :4].all()                           # exactly that 4x4 cell
    ex.shape.value = "centre box"                                                      # then fill just one cell
    assert ex.runs == 3 and ex.fill.nonzero().tolist() == [[1, 1], [1, 2], [2, 1], [2, 2]]
    for i in (5, 6, 9):
        ex.cells[i].value = False
    assert ex.fill.nonzero().tolist() == [[2, 2]] and ex.shape.value == "custom" and ex.runs == 6
    moved = ex.completion != ex.input                                                   # (1, 1, 16, 16)
    assert moved[..., 8:12, 8:12].float().mean() > 0.5                                  # the cell is drawn again
    moved[..., 8:12, 8:12] = False
    assert not moved.any(), "a known pixel changed"
    torch.testing.assert_close(ex.completion * ex.mask, ex.input * ex.mask, rtol=0, atol=0)
    for i in (5, 6, 9):                                                                 # the preset again: its name
        ex.cells[i].value = True
    assert ex.shape.value == "centre box"


@needs_data
def test_the_step_slider_walks_to_the_completion_without_running_again(transformer):
    from fashiondiff import editing
    from fashiondiff.widgets import InpaintExplorer
    ex = InpaintExplorer(transformer, image=9, shape="left half")
    assert ex.frames.shape == ex.iterates.shape == (10, 1, 16, 16) and ex.step.value == 10
    torch.testing.assert_close(ex.current, ex.completion, rtol=0, atol=0)
    torch.testing.assert_close(ex.frames[-1:], ex.completion, rtol=0, atol=0)
    ex.step.value = 1
    assert (ex.runs, ex.redraws) == (1, 2)
    torch.testing.assert_close(ex.current, ex.frames[:1])
    assert (ex.current - ex.completion).abs().max() > 0.1                               # an early, blurred guess
    assert f"sigma = {editing.levels(transformer, 10)[1].sigma:.3g}" in ex.caption.value
    assert (ex.iterates[0] - ex.completion[0]).abs().mean() > (ex.iterates[-2] - ex.completion[0]).abs().mean()


@needs_data
def test_resample_changes_the_network_calls_as_inpainting_calls_counts(transformer):
    from fashiondiff import editing
    from fashiondiff.pipelines import load_model
    from fashiondiff.widgets import InpaintExplorer
    model = load_model("transformer", device="cpu")                                     # its own: forward wrapped
    seen = counting_rows(model)
    ex = InpaintExplorer(model, shape="centre box", resample=2)
    calls = {}
    for r in (1, 3):                                                                    # each a change: one run
        seen["rows"] = 0
        ex.resample.value = r
        calls[r] = seen["rows"]
        assert calls[r] == editing.inpainting_calls(model, model.sampling, r) and ex.runs == 1 + len(calls)
        assert f"r = {r}: {calls[r]} network calls" in ex.caption.value
    assert calls[3] > 2 * calls[1]


@needs_data
@pytest.mark.parametrize("name", ["flow", "fewstep"])
def test_both_editing_panels_work_for_the_other_pixel_models(name):
    from fashiondiff.pipelines import load_model
    from fashiondiff.widgets import InpaintExplorer, SDEditExplorer
    model = load_model(name, device="cpu")
    steps = model.sampling.steps
    sd = SDEditExplorer(model, n=2, strength=1.0)
    assert sd.current.shape == (2, 1, 16, 16) and sd.sigma == math.inf and "pure noise" in sd.caption.value
    sd.strength.value = sd.strength.min
    assert sd.start == steps - 1 and sd.redraws == 2
    ip = InpaintExplorer(model, shape="bottom half", resample=2)
    assert ip.frames.shape == (steps, 1, 16, 16)
    torch.testing.assert_close(ip.frames[-1:], ip.completion, rtol=0, atol=0)
    torch.testing.assert_close(ip.completion * ip.mask, ip.input * ip.mask, rtol=0, atol=0)


@needs_data
def test_both_editing_panels_work_for_the_latent_model_with_the_mask_on_the_image():
    """A 28x28 image, its 4x4 cells of 7 pixels; the latent is 7x7, so the known latent cells are those wholly under
    known pixels (``editing.latent_mask``), and the known pixels are pasted back exactly after decoding."""
    from fashiondiff.generation import generate
    from fashiondiff.recipes import RECIPES
    from fashiondiff.widgets import InpaintExplorer, SDEditExplorer
    model = tiny_latent_model()
    settings = RECIPES["latent"].sampling.replace(steps=4, eta=0.0)
    sd = SDEditExplorer(model, settings, n=2, label=3, strength=1.0)
    assert sd.current.shape == (2, 1, 28, 28)
    torch.testing.assert_close(sd.current, generate(model, torch.full((2,), 3), settings, seed=0), rtol=0, atol=1e-5)
    sd.strength.value = 0.5
    assert sd.start == 2 and not torch.allclose(sd.current, generate(model, torch.full((2,), 3), settings, seed=0))
    ip = InpaintExplorer(model, settings, shape="right half")
    assert ip.mask.shape == (1, 1, 28, 28) and ip.mask[..., :14].eq(1).all() and ip.mask[..., 14:].eq(0).all()
    ip.cells[3].value = False                                                           # keep the top-right cell
    assert ip.mask[..., :7, 21:].eq(1).all() and ip.runs == 2
    assert ip.frames.shape == ip.iterates.shape == (4, 1, 28, 28)
    torch.testing.assert_close(ip.completion * ip.mask, ip.input * ip.mask, rtol=0, atol=0)
    torch.testing.assert_close(ip.frames[-1:], ip.completion, rtol=0, atol=1e-5)        # decoded in a batch of 4


def test_only_widgets_over_bundled_weights_are_marked_for_the_live_website(tmp_path):
    """The website draws a live copy of a widget marked "live-sample-NAME" with the bundled NAME model: a model
    loaded from other weights, or built in the notebook, would be drawn as a different model, so it gets no mark."""
    from fashiondiff.checkpoint import save_weights
    from fashiondiff.pipelines import load_model
    from fashiondiff.recipes import RECIPES
    from fashiondiff.widgets import SampleExplorer

    bundled = load_model("flow", device="cpu")
    assert SampleExplorer(bundled, n=1).widget._dom_classes == ("live-sample-flow",)
    save_weights(tmp_path, bundled, "flow", bundled.config)
    same_weights_elsewhere = load_model("flow", weights=tmp_path, device="cpu")
    assert SampleExplorer(same_weights_elsewhere, n=1).widget._dom_classes == ()
    built = RECIPES["flow"].build(dim=32, heads=2, layers=1, ff_dim=32).eval()
    assert SampleExplorer(built, n=1).widget._dom_classes == ()
    assert NoiseExplorer(T=10).widget._dom_classes == ("live-noise",)
