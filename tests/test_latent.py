"""The latent track: the VAE, the UNet and its cross-attention, DDIM with eta, guidance, and the bundled pipeline."""
import math

import pytest
import torch
from torch.testing import assert_close

from fashiondiff.diffusion import diffusion_loss
from fashiondiff.latent import LatentDiffusion
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.training import TrainConfig, train
from fashiondiff.unet import CrossAttention, LatentUNet
from fashiondiff.vae import VAE, kl_divergence
from conftest import needs_data

SMALL_VAE = dict(latent_channels=4, widths=(8, 16, 16))
SMALL_UNET = dict(latent_channels=4, widths=(16, 32, 32), emb_dim=32, context_tokens=3, context_dim=16, heads=2)


def randomise(model, std=0.05):
    """Zero-initialised output layers make an untrained model ignore its inputs; give them weights."""
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "conv2" in name or "conv_out" in name:
            torch.nn.init.normal_(p, std=std)
    return model


def test_vae_shapes_and_round_trip_of_the_latent_scale():
    vae = VAE(**SMALL_VAE).eval()
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    mean, logvar = vae.posterior(x)
    assert mean.shape == logvar.shape == (5, 4, 7, 7)
    x_hat, mse, kl = vae(x)
    assert x_hat.shape == (5, 1, 28, 28) and mse.ndim == kl.ndim == 0
    vae.latent_mean.fill_(0.3)
    vae.latent_scale.fill_(2.5)
    z = torch.randn(5, 4, 7, 7)
    assert_close(vae.unscale(vae.scale(z)), z)
    with pytest.raises(ValueError, match=r"\(N, 1, 28, 28\)"):
        vae.posterior(torch.randn(2, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\(N, 4, 7, 7\)"):
        vae.decode(torch.randn(2, 8, 7, 7))


def test_kl_matches_the_closed_form_of_two_gaussians():
    mean, logvar = torch.randn(1000, dtype=torch.float64), torch.randn(1000, dtype=torch.float64)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(1000, dtype=torch.float64), torch.ones(1000, dtype=torch.float64))
    assert_close(kl_divergence(mean, logvar), torch.distributions.kl_divergence(q, p))
    assert kl_divergence(torch.zeros(3), torch.zeros(3)).abs().max() == 0        # q = prior: nothing to pay


def test_kl_is_the_expected_log_ratio_on_samples():
    # KL = E_q[log q(z) - log p(z)], estimated by Monte Carlo on 200,000 samples.
    mean, logvar = torch.tensor(0.7, dtype=torch.float64), torch.tensor(-1.2, dtype=torch.float64)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    z = q.sample((200_000,), )
    mc = (q.log_prob(z) - torch.distributions.Normal(0.0, 1.0).log_prob(z)).mean()
    assert abs(float(mc - kl_divergence(mean, logvar))) < 0.01


class KnownPosterior(torch.nn.Module):
    """An encoder whose posterior is known: mean c_k + 1.5 u in channel k, u a pixel of the (standard normal) image
    (every 4th row and column: 7 x 7), and variance 4. A posterior sample in channel k then has mean c_k and, about
    that mean, variance 1.5^2 + 4 = 6.25 (2.25 of it from the means, 4 from the sampling)."""
    c = torch.tensor([3.0, -2.0, 0.5, 1.0])

    def forward(self, x):                                                  # (N, 1, 28, 28) -> (N, 2 C, 7, 7)
        mean = self.c[:, None, None] + 1.5 * x[:, :, ::4, ::4]             # (N, C, 7, 7)
        return torch.cat([mean, torch.full_like(mean, math.log(4.0))], dim=1)


def test_fitted_latent_stats_are_the_posterior_samples_mean_and_inverse_std():
    vae = VAE(**SMALL_VAE).eval()
    vae.encoder = KnownPosterior()
    x = torch.randn(1200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    vae.fit_latent_stats(x[:1000])
    assert_close(vae.latent_mean, KnownPosterior.c, atol=0.05, rtol=0)     # 4 standard errors (0.011)
    assert float(vae.latent_scale) == pytest.approx(1 / 6.25 ** 0.5, abs=0.005)    # 1 / 2.5; s.e. 0.0007
    z = vae.encode(x[1000:], sample=True, generator=torch.Generator().manual_seed(5))  # a batch it has not seen
    assert abs(float(z.std()) - 1) < 0.05 and z.mean(dim=(0, 2, 3)).abs().max() < 0.05


def test_cross_attention_depends_on_the_query_and_on_the_context():
    torch.manual_seed(0)
    attn = CrossAttention(channels=16, context_dim=8, heads=2)
    x = torch.randn(2, 16, 4, 4)
    ctx = torch.randn(2, 5, 8)
    delta = attn(x, ctx) - x                                               # what attention adds, (2, 16, 4, 4)
    per_position = delta.flatten(2)                                        # (2, 16, 16 positions)
    assert (per_position - per_position[:, :, :1]).abs().max() > 1e-3     # different queries, different outputs
    other = attn(x, torch.randn(2, 5, 8)) - x
    assert (other - delta).abs().max() > 1e-3                             # and the context matters


def test_one_context_token_makes_cross_attention_ignore_its_query():
    # softmax over a single key is 1: every position receives the same W_o W_v c, a per-example bias.
    torch.manual_seed(0)
    attn = CrossAttention(channels=16, context_dim=8, heads=2)
    x, ctx = torch.randn(2, 16, 4, 4), torch.randn(2, 1, 8)
    delta = (attn(x, ctx) - x).flatten(2)                                  # (2, 16, 16)
    assert_close(delta, delta[:, :, :1].expand_as(delta))
    bias = attn.out(attn.kv(ctx)[..., 16:])                                # W_o W_v c, (2, 1, 16)
    assert_close(delta[:, :, 0], bias[:, 0])


def test_unet_shapes_skips_and_conditioning():
    unet = randomise(LatentUNet(**SMALL_UNET)).eval()
    z = torch.randn(1, 4, 7, 7).repeat(3, 1, 1, 1)
    out = unet(z, torch.tensor([500, 500, 10]), torch.tensor([2, 9, 2]))
    assert out.shape == (3, 4, 7, 7)
    assert (out[0] - out[1]).abs().mean() > 1e-4                          # the class changes the prediction
    assert (out[0] - out[2]).abs().mean() > 1e-4                          # and so does t
    assert ((out[0] - out[1]).abs().sum(0) > 0).all()                     # at every latent position
    with pytest.raises(ValueError, match=r"\(N, 4, 7, 7\)"):
        unet(torch.randn(2, 4, 8, 8), torch.tensor([1, 2]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="labels must be in 0..10"):
        unet(torch.randn(2, 4, 7, 7), torch.tensor([1, 2]), torch.tensor([0, 11]))


def test_untrained_unet_predicts_zero():
    unet = LatentUNet(**SMALL_UNET)
    assert unet(torch.randn(2, 4, 7, 7), torch.tensor([3, 900]), torch.tensor([1, 10])).abs().max() == 0


def test_latent_pipeline_checks_channels_and_trains():
    with pytest.raises(ValueError, match="latent channels"):
        LatentDiffusion(SMALL_VAE, {**SMALL_UNET, "latent_channels": 8})
    model = LatentDiffusion(SMALL_VAE, SMALL_UNET)
    vae_before = {k: v.clone() for k, v in model.vae.state_dict().items()}
    torch.manual_seed(0)
    z0 = torch.randn(1, 4, 7, 7).repeat(64, 1, 1, 1) * 0.5 + torch.linspace(-1, 1, 7)   # a learnable structure
    y = torch.arange(64) % 10
    schedule = NoiseSchedule(1000, "linear")

    def loss_fn(m, idx, gen):
        return diffusion_loss(m, schedule, z0[idx], y[idx], gen, prediction="eps")

    res = train(model, loss_fn, 64, TrainConfig(max_steps=60, batch_size=32, lr=2e-3, warmup_steps=5,
                                                 ema_decay=None, checkpoint_every=0, log_every=10), progress=False)
    assert res.history[-1][1] < 0.8 * res.history[0][1]
    for k, v in model.vae.state_dict().items():                           # the VAE stays frozen
        assert torch.equal(v, vae_before[k])


def test_vae_training_lowers_the_loss():
    torch.manual_seed(0)
    vae = VAE(**SMALL_VAE)
    protos = torch.nn.functional.interpolate(torch.rand(4, 1, 7, 7) * 2 - 1, size=28, mode="bilinear")
    x = protos.repeat(16, 1, 1, 1)                                          # 4 smooth images, 16 copies each

    def loss_fn(m, idx, gen):
        return m.loss(x[idx], gen)

    res = train(vae, loss_fn, 64, TrainConfig(max_steps=40, batch_size=32, lr=3e-3, warmup_steps=5, ema_decay=None,
                                               checkpoint_every=0, log_every=10), progress=False)
    assert res.history[-1][1] < 0.7 * res.history[0][1]


@needs_data
def test_the_kl_weight_sets_beta_in_the_vae_recipe_loss():
    """`train vae --kl-weight b` trains on reconstruction + b * KL: with the same noise, loss(b=1) - loss(b=0) is KL."""
    from fashiondiff.data import load
    from fashiondiff.recipes import RECIPES, vae_setup
    idx = torch.arange(16)
    x = load("train", 28)[0][idx].contiguous(memory_format=torch.channels_last)
    losses = {}
    for beta in (0.0, 1.0):
        torch.manual_seed(0)                                   # the same initial weights for both
        model, loss_fn, n = vae_setup(RECIPES["vae"], torch.device("cpu"), kl_weight=beta)
        assert model.beta == beta and model.config.beta == beta and n == 60000
        losses[beta] = loss_fn(model, idx, torch.Generator().manual_seed(1))
    _, mse, kl = model(x, torch.Generator().manual_seed(1))
    assert kl > 0
    assert_close(losses[1.0] - losses[0.0], kl)
    assert_close(losses[0.0], mse)


@needs_data
def test_bundled_latent_pipeline_reaches_conditional_accuracy():
    """Regression guard for the sampler and the weights: 500 samples at the defaults, the bundled classifier."""
    from fashiondiff.reports import evaluator, score_generator
    from fashiondiff.pipelines import load_model
    model = load_model("latent", device="cpu")
    r = score_generator(model, evaluator(load_model("classifier", device="cpu")), model.sampling, n=500, seed=0)
    assert r["cond_acc"] >= 0.90, r


def test_the_post_training_sweep_measures_the_default_setting_once(tmp_path, monkeypatch):
    """A sweep row that is the default sampler reuses the default's measurement (each samples n = 2000 images)."""
    import fashiondiff.reports as reports
    from fashiondiff.metrics import MEASURES
    from fashiondiff.recipes import RECIPES
    from fashiondiff.sampling import SamplingConfig
    recipe, calls = RECIPES["latent"], []

    def fake_score(model, evaluator, settings, n=2000, second=None, **kw):
        calls.append(settings)
        return {**dict.fromkeys(MEASURES, 0.0), "fid": float(len(calls)), "real_fid": 1.0, "ratio": float(len(calls)),
                "cond_acc": 0.9, "sample_seconds": 1.0, "cond_acc_per_class": {}}

    monkeypatch.setattr(reports, "score_generator", fake_score)
    monkeypatch.setattr(reports, "evaluators", lambda yardsticks, resolution=28: (None, None))
    model = torch.nn.Linear(1, 1)
    model.sampling, model.image_size = recipe.sampling, 28
    m = reports.sweep_report(recipe, model, tmp_path, yardsticks=lambda: (None, None))
    assert calls[0] == recipe.sampling and len(calls) == len(recipe.sweep)           # one sweep row is the default
    assert len(set(calls)) == len(calls)                                              # nothing measured twice
    (row,) = [r for r in m["sweep"] if SamplingConfig(**{k: r[k] for k in
              ("sampler", "steps", "guidance", "guidance_interval", "eta")}) == recipe.sampling]
    assert row["ratio"] == m["ratio"] == 1.0                                          # measured first, reused


def test_tanh_decoder_stays_in_the_pixel_range_and_unknown_outputs_are_refused():
    torch.manual_seed(0)
    vae = VAE(latent_channels=4, widths=(8, 16, 32), output="tanh")
    torch.nn.init.normal_(vae.decoder.conv_out.weight, std=5.0)       # drive the output far past +-1
    x_hat = vae.decoder(torch.randn(16, 4, 7, 7) * 10)
    assert x_hat.abs().max() <= 1 and x_hat.abs().max() > 0.99
    linear = VAE(latent_channels=4, widths=(8, 16, 32))
    assert linear.config.output == "linear" and linear.decoder(torch.randn(16, 4, 7, 7) * 10).abs().max() > 1
    with pytest.raises(ValueError, match="decoder output"):
        VAE(output="sigmoid")


def test_black_kept_counts_the_originals_black_pixels_that_stay_black():
    from fashiondiff.stats import black_kept, black_share
    x = torch.full((2, 1, 4, 4), -1.0)
    x[:, :, :2] = 0.5                                                  # half of each image is not black
    r = x.clone()
    r[0, 0, 3] = -1 + 3 / 255                                          # 4 of the 16 black pixels turn grey
    assert black_share(x) == 0.5 and black_kept(x, x) == 1.0
    assert black_kept(r, x) == 12 / 16 and black_share(r) == 12 / 32


def test_the_reconstruction_term_is_mse_or_l1_as_configured():
    torch.manual_seed(0)
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    for name, closed_form in (("mse", lambda a, b: ((a - b) ** 2).mean()), ("l1", lambda a, b: (a - b).abs().mean())):
        vae = VAE(latent_channels=4, widths=(8, 16, 32), reconstruction=name)
        x_hat, rec, kl = vae(x, torch.Generator().manual_seed(1))
        assert_close(rec, closed_form(x_hat, x))
        assert_close(vae.loss(x, torch.Generator().manual_seed(1)), rec + vae.beta * kl)
    with pytest.raises(ValueError, match="reconstruction loss"):
        VAE(reconstruction="huber")
