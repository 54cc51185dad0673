"""The forward-process explorer of notebook 03: moving its controls redraws the closed form q(x_t | x_0)."""
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
