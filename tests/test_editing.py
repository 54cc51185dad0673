"""Editing checked against independent answers: stub generators whose ideal denoiser is known in closed form (data
that is one point, or Gaussian), ``generate`` itself, the forward process's and the DDPM posterior's closed forms,
and the toy's exact scores for classifier guidance."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from fashiondiff import editing
from fashiondiff.generation import generate
from fashiondiff.sampling import SamplingConfig
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.solvers import Level, diffusion_levels, flow_levels
from fashiondiff.toy import ExactDenoiser, GaussianMixture
from test_generation import small

NULL = 10
MU, S = 0.3, 0.5                                                     # the Gaussian stub's data: N(MU, S^2) per pixel


class Stub(torch.nn.Module):
    """A 1x4x4 "pixel" generator whose network is the ideal denoiser of known data, computed here in float64:
    ``x0_of(x, alpha, sigma_vp)`` is E[x0 | x]. A diffusion stub (``schedule``) predicts x0, eps or v, a flow stub
    (no schedule) the velocity (x - x0) / t."""
    label = SimpleNamespace(null=NULL)
    clip, sample_shape, image_size = None, (1, 4, 4), 4

    def __init__(self, x0_of, schedule=None, prediction="x0"):
        super().__init__()
        self.x0_of, self.schedule = x0_of, schedule
        self.process = "flow" if schedule is None else "diffusion"
        self.prediction = prediction if schedule is not None else "velocity"
        self.max_steps = 1000 if schedule is None else schedule.T
        self.anchor = torch.nn.Parameter(torch.zeros(()))            # so that the device is found

    def decode(self, x):
        return x

    def forward(self, x, t, y):
        dtype, x = x.dtype, x.double()
        if self.schedule is None:
            tt = t.double().reshape(-1, 1, 1, 1)
            return ((x - self.x0_of(x, 1 - tt, tt)) / tt).to(dtype)
        ab = self.schedule.abar[t].reshape(-1, 1, 1, 1)
        x0 = self.x0_of(x, ab.sqrt(), (1 - ab).sqrt())
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return {"x0": x0, "eps": eps, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[self.prediction].to(dtype)


def point_mass(x0_star):
    return lambda x, alpha, sigma_vp: x0_star.double().expand_as(x)


def gaussian(x, alpha, sigma_vp):
    return MU + alpha * S ** 2 * (x - alpha * MU) / (alpha ** 2 * S ** 2 + sigma_vp ** 2)


def gaussian_noise(x0, sigma):
    """x~ at sigma on the Gaussian data's probability-flow ODE through x0 (sigma = 0): the ODE dx~/dsigma =
    (x~ - E[x0 | x~]) / sigma keeps (x~ - MU) / sqrt(S^2 + sigma^2) fixed."""
    return MU + (x0 - MU) * math.sqrt((S ** 2 + sigma ** 2) / S ** 2)


def randomised(name):
    """A small generator of the recipe with every weight moved at random: an untrained one predicts constants
    (adaLN-Zero and zero-initialised outputs), against which nothing would be tested."""
    model = small(name)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dtype.is_floating_point:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def images_for(model, n=2, seed=1):
    return torch.rand(n, 1, model.image_size, model.image_size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def deterministic(model, steps=4):
    s = model.sampling.replace(steps=steps)
    return s.replace(eta=0.0) if s.sampler == "ddim" else s


# --- SDEdit -------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["transformer", "flow", "latent"])
def test_sdedit_at_strength_one_is_generate_from_the_same_noise(name):
    """The image is dropped and the deterministic sampler runs from generate's noise: the same numbers."""
    model = randomised(name)
    settings = deterministic(model)
    labels = torch.tensor([3, 7])
    edited = editing.sdedit(model, images_for(model), labels, settings, 1.0, seed=5)
    assert_close(edited, generate(model, labels, settings, seed=5), rtol=0, atol=1e-5)


def test_strength_maps_to_the_last_ceil_s_steps():
    assert [editing.start_index(10, s) for s in (1.0, 0.95, 0.9, 0.6, 0.55, 0.1, 1e-6)] == [0, 0, 1, 4, 4, 9, 9]
    for bad in (0.0, -0.1, 1.01):
        with pytest.raises(ValueError, match="strength"):
            editing.start_index(10, bad)


@pytest.mark.parametrize("process", ["diffusion", "flow"])
def test_sdedit_at_tiny_strength_returns_the_input_within_the_last_levels_noise(process):
    """One step from the grid's least noisy level: the output is E[x0 | x0 + sigma eps] of Gaussian data, which
    differs from the input by less than sigma^2 / S^2 |x0 - MU| + sigma |eps|: within 5 sigma here (the largest
    of 4,096 draws of |eps| is about 4); on the flow's grid, whose least noisy t is 1 / steps, the distance falls
    in proportion to it (ratio 10 between 100 and 1000 steps, to 30%)."""
    schedule = NoiseSchedule(1000, "linear") if process == "diffusion" else None
    model = Stub(gaussian, schedule, "eps" if schedule else "x0")
    x = images_for(model, n=256)
    y = torch.zeros(256, dtype=torch.long)
    errors = {}
    for steps in (100, 1000):
        settings = SamplingConfig("ddim" if schedule else "euler", steps, eta=0.0 if schedule else None)
        low = editing.levels(model, steps)[-2]
        errors[steps] = float((editing.sdedit(model, x, y, settings, 1e-6) - x).abs().max())
        assert errors[steps] < 5 * low.sigma, (steps, errors[steps], low.sigma)
    if schedule is None:
        assert 7 < errors[100] / errors[1000] < 13, errors
    else:                                                    # the least noisy level is t = 1 whatever the steps
        assert errors[100] == pytest.approx(errors[1000], rel=1e-4)


# --- inpainting ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["transformer", "flow", "latent"])
def test_inpainting_with_a_full_mask_returns_the_input_and_an_empty_one_is_sampling(name):
    """Keep everything: the input, for every kind. Keep nothing, at eta = 0: the generator's own sampler from
    generate's noise (replacement never touches the image, and the noise is drawn first, as generate does)."""
    model = randomised(name)
    settings = deterministic(model)
    x, labels = images_for(model), torch.tensor([2, 9])
    ones = torch.ones(1, 1, model.image_size, model.image_size)
    assert_close(editing.inpaint(model, x, ones, labels, settings, resample=2), x, rtol=0, atol=0)
    assert_close(editing.inpaint(model, x, 0 * ones, labels, settings), generate(model, labels, settings, seed=0),
                 rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["transformer", "latent"])
def test_inpainting_keeps_the_known_pixels_and_fills_the_others(name):
    model = randomised(name)
    x, labels = images_for(model, n=1), torch.tensor([4])
    mask = torch.ones(1, 1, model.image_size, model.image_size)
    mask[..., : model.image_size // 2, :] = 0                                          # fill the top half
    out = editing.inpaint(model, x, mask, labels, deterministic(model), resample=2)
    assert_close(out * mask, x * mask, rtol=0, atol=0)
    assert (out - x)[..., : model.image_size // 2, :].abs().mean() > 0.05


@pytest.mark.parametrize("name", ["transformer", "latent"])
def test_inpaintings_trace_sees_every_step_and_its_last_estimate_pasted_is_the_output(name):
    """The trace changes nothing (same seed, same numbers); it is called once a step, after the step's last round,
    with x at levels[i] and the x0 estimate, in the model's space; at the last step x is that estimate."""
    model = randomised(name)
    settings = deterministic(model).replace(eta=1.0) if model.process == "diffusion" else deterministic(model)
    x, labels = images_for(model, n=2), torch.tensor([1, 5])
    mask = torch.ones(1, 1, model.image_size, model.image_size)
    mask[..., model.image_size // 2:] = 0
    seen = []
    out = editing.inpaint(model, x, mask, labels, settings, resample=3, seed=4,
                          trace=lambda i, xi, d: seen.append((i, xi.clone(), d.clone())))
    assert_close(out, editing.inpaint(model, x, mask, labels, settings, resample=3, seed=4), rtol=0, atol=0)
    assert [i for i, _, _ in seen] == list(range(1, settings.steps + 1))
    assert all(xi.shape == d.shape == (2, *model.sample_shape) for _, xi, d in seen)
    assert_close(seen[-1][1], seen[-1][2], rtol=0, atol=0)
    assert_close(editing.paste(model, x, mask, editing.encode(model, x), seen[-1][2]), out, rtol=0, atol=0)


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_inpainting_data_that_is_one_point_returns_that_point(prediction):
    """Every step's x0 is x0*, so whatever the mask, eta or rounds the last step lands on it; the known region
    is x0* too (it is the input)."""
    x0_star = images_for(Stub(None), n=1)
    model = Stub(point_mass(x0_star), NoiseSchedule(10, "cosine"), prediction)
    mask = (torch.rand(1, 1, 4, 4, generator=torch.Generator().manual_seed(2)) > 0.5).float()
    for eta, resample in ((0.0, 1), (1.0, 3)):
        out = editing.inpaint(model, x0_star, mask, torch.zeros(1, dtype=torch.long),
                              SamplingConfig("ddim", 5, eta=eta), resample=resample)
        assert_close(out, x0_star, rtol=0, atol=1e-5)


def test_repaints_network_calls_are_r_per_step_but_the_last():
    """r (S - 1) + 1 evaluations per image, doubled by guidance outside w = 0, 1, counted on the network."""
    class Counter(Stub):
        calls = 0

        def forward(self, x, t, y):
            Counter.calls += len(x)
            return super().forward(x, t, y)

    model = Counter(gaussian, NoiseSchedule(10, "cosine"), "x0")
    x, labels, mask = images_for(model, n=3), torch.zeros(3, dtype=torch.long), torch.ones(1, 1, 4, 4)
    mask[..., 0] = 0
    for steps, r, w, expected in ((5, 1, 1.0, 5), (5, 4, 1.0, 4 * 4 + 1), (10, 3, 2.0, 2 * (3 * 9 + 1))):
        settings = SamplingConfig("ddim", steps, guidance=w, eta=1.0)
        Counter.calls = 0
        editing.inpaint(model, x, mask, labels, settings, resample=r)
        assert Counter.calls == 3 * expected == 3 * editing.inpainting_calls(model, settings, r)


@pytest.mark.parametrize("grid", ["diffusion", "flow"])
def test_renoising_composes_with_the_forward_process(grid):
    """q(x_there | x_here) after q(x_here | x0) is q(x_there | x0): mean alpha' x0, variance sigma_vp'^2 (five
    standard errors of 100,000 draws); from a flow's t = 1 level it is pure noise."""
    lv = (diffusion_levels(NoiseSchedule(1000, "linear"), [900, 400, 50]) if grid == "diffusion"
          else flow_levels([1.0, 0.7, 0.2]))
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((100_000, 1), 0.8, dtype=torch.float64)
    for here, there in ((lv[1], lv[0]), (lv[2], lv[1]), (lv[2], lv[0])):
        x = editing.renoise(editing.noised(x0, here, torch.randn(x0.shape, generator=g, dtype=torch.float64)),
                            here, there, g)
        n = len(x)
        assert abs(float(x.mean()) - there.alpha * 0.8) < 5 * there.sigma_vp / math.sqrt(n)
        assert abs(float(x.var()) / there.sigma_vp ** 2 - 1) < 5 * math.sqrt(2 / n)


def test_ddim_at_eta_one_steps_to_the_ddpm_posterior():
    """From x_t with the x0 estimate d, eta = 1 draws from q(x_s | x_t, d) (DDPM eq. 6-7, ``posterior``)."""
    schedule = NoiseSchedule(1000, "linear")
    here, there = diffusion_levels(schedule, [700, 300])[:2]
    g = torch.Generator().manual_seed(0)
    x_t, d = torch.full((200_000, 1), 0.4, dtype=torch.float64), torch.full((200_000, 1), -0.5, dtype=torch.float64)
    x_s = editing.ddim_eta_step(x_t, d, here, there, 1.0, g)
    mean, var = schedule.posterior(d[:1], x_t[:1], torch.tensor([700]), torch.tensor([300]))
    n = len(x_s)
    assert abs(float(x_s.mean() - mean)) < 5 * math.sqrt(float(var) / n)
    assert abs(float(x_s.var() / var) - 1) < 5 * math.sqrt(2 / n)


# --- inversion and slerp ------------------------------------------------------------------------------------------

def constant_noise(eps_star):
    """The denoiser of a model whose noise prediction is eps* wherever it looks: x0 = (x - sigma_vp eps*) / alpha."""
    return lambda x, alpha, sigma_vp: (x - sigma_vp * eps_star.double()) / alpha


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_inverting_a_model_of_constant_noise_is_exact(prediction):
    """Where the model's eps is one constant eps*, the ODE dx~/dsigma = eps* is a straight line, x~ = x0 + sigma eps*,
    which DDIM's steps follow exactly both ways: the noise is alpha_0 (x0 + sigma_0 eps*) and sampling from it
    returns x0, to 1e-6 (float64), whatever the network predicts."""
    eps_star = images_for(Stub(None), n=2, seed=3).double()
    x0 = images_for(Stub(None), n=2).double()
    model = Stub(constant_noise(eps_star), NoiseSchedule(10, "cosine"), prediction)
    settings = SamplingConfig("ddim", 8, eta=0.0)
    labels = torch.zeros(2, dtype=torch.long)
    top = editing.levels(model, 8)[0]
    noise = editing.invert(model, x0, labels, settings)
    assert_close(noise, top.alpha * (x0 + top.sigma * eps_star), rtol=0, atol=1e-6)
    assert_close(editing.reconstruct(model, noise, labels, settings), x0, rtol=0, atol=1e-6)


def test_the_step_to_a_flows_pure_noise_solves_the_samplers_first_step():
    """At a flow's t = 1 the model's eps is x itself, so the inverse step there solves the sampler's first step,
    x_here = alpha_here d + sigma_vp_here x_there, for x_there: stepping that x_there down again returns x_here."""
    g = torch.Generator().manual_seed(0)
    x_top, d = torch.randn(2, 3, 1, 4, 4, generator=g, dtype=torch.float64)
    top, here = flow_levels([1.0, 0.8])
    x_here = here.alpha * d + here.sigma_vp * x_top                                   # the flow's Euler step from t = 1
    assert_close(editing.inverse_ddim_step(x_here, d, here, top), x_top)


@pytest.mark.parametrize("process", ["diffusion", "flow"])
def test_inverting_gaussian_data_approaches_the_exact_ode_as_the_steps_grow(process):
    """Against the closed-form ODE (``gaussian_noise``): the inverted noise and the round trip's error fall as the
    steps grow, by more than 3 from 100 to 1000 steps (measured: 6 to 10; not quite the 10 of a first-order method
    throughout, as each step reads the model at the current point, whose offset from the next level's point weighs
    most where sigma is small), and at 1000 steps are below 0.03 and 0.02 (measured: 0.0022 and 0.0043 for the
    diffusion model, 0.018 and 0.011 for the flow)."""
    schedule = NoiseSchedule(1000, "linear") if process == "diffusion" else None
    model = Stub(gaussian, schedule, "v" if schedule else "x0")
    x = images_for(model, n=64)
    y = torch.zeros(64, dtype=torch.long)
    noise_error, round_trip = {}, {}
    for steps in (10, 100, 1000):
        settings = SamplingConfig("ddim", steps, eta=0.0) if schedule else SamplingConfig("euler", steps)
        top = editing.levels(model, steps)[0]
        noise = editing.invert(model, x, y, settings).double()
        # x = alpha x~ at the top; at a flow's t = 1 (alpha = 0, sigma_vp = 1) that is the limit (x0 - MU) / S
        exact = (x - MU) / S if math.isinf(top.sigma) else top.alpha * gaussian_noise(x, top.sigma)
        noise_error[steps] = float((noise - exact).abs().max())
        round_trip[steps] = float((editing.reconstruct(model, noise.float(), y, settings) - x).abs().max())
    assert noise_error[10] > noise_error[100] > 3 * noise_error[1000], noise_error
    assert round_trip[10] > round_trip[100] > 3 * round_trip[1000], round_trip
    assert noise_error[1000] < 0.03 and round_trip[1000] < 0.02, (noise_error, round_trip)


def test_inversion_of_a_real_model_reconstructs_better_with_more_steps():
    """The bundled flow (a real model) inverts its own samples and samples back: the mean error falls by more than
    1.25 with each doubling of the steps and is below 0.05 in pixels of [-1, 1] at 64 steps. Measured: 0.076, 0.058,
    0.041 at 16, 32, 64 steps, on to 0.026 and 0.016 at 128 and 256 (the step that solves the sampler's update for
    its start gave 0.13, 0.080, 0.044 and 0.013 at 256: it converges faster, from a far worse start on a coarse
    grid)."""
    from fashiondiff.pipelines import load_model
    model = load_model("flow", device="cpu")
    settings = model.sampling.replace(steps=32, guidance=1.0)
    labels = torch.tensor([0, 7])
    x = generate(model, labels, settings, seed=0)
    errors = {}
    for steps in (16, 32, 64):
        s = settings.replace(steps=steps)
        noise = editing.invert(model, x, labels, s)
        errors[steps] = float((editing.reconstruct(model, noise, labels, s) - x).abs().mean())
    assert errors[16] > 1.25 * errors[32] > 1.25 ** 2 * errors[64] and errors[64] < 0.05, errors


def test_slerp_ends_at_its_endpoints_keeps_the_norm_and_turns_evenly():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 1, 8, 8, generator=g), torch.randn(3, 1, 8, 8, generator=g)
    b = b * (a.flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1)).reshape(-1, 1, 1, 1)   # equal norms
    assert_close(editing.slerp(a, b, 0.0), a) and assert_close(editing.slerp(a, b, 1.0), b)
    theta = torch.arccos((a.flatten(1) * b.flatten(1)).sum(1) / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1)))
    for t in (0.25, 0.5, 0.8):
        c = editing.slerp(a, b, t).flatten(1)
        assert_close(c.norm(dim=1), a.flatten(1).norm(dim=1), rtol=1e-5, atol=0)
        angle = torch.arccos((a.flatten(1) * c).sum(1) / (a.flatten(1).norm(dim=1) * c.norm(dim=1)))
        assert_close(angle, t * theta, rtol=1e-4, atol=1e-4)
    e1, e2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]])                   # orthogonal: a quarter turn
    assert_close(editing.slerp(e1, e2, 0.5), torch.tensor([[1.0, 1.0]]) / math.sqrt(2))
    assert_close(editing.slerp(e1, 2 * e1, 0.5), 1.5 * e1)                              # parallel: linear


# --- classifier guidance ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 0.0, 2.5])
def test_classifier_guidance_is_the_score_of_the_tilted_density_on_the_toy(scale):
    """With the toy's exact p_t(y | x) as the noise-aware classifier and its exact unconditional denoiser, the
    guided prediction is that of p_t(x) p_t(y | x)^s, whose score is (1 - s) grad log p_t(x) + s grad log
    p_t(x | y) (p_t(y | x) = p_t(x | y) p(y) / p_t(x)), computed from the toy's closed forms. Checked in eps
    (Alg. 2's form) and as the x0 the samplers take (Tweedie); at s = 1, p_t(x | y)'s own."""
    mixture = GaussianMixture.ring(k=8, n_classes=2)
    schedule = NoiseSchedule(1000, "linear")
    model = ExactDenoiser(mixture, schedule)
    model.process, model.prediction, model.clip = "diffusion", "eps", None                # as a generator says
    clf = lambda x, level: mixture.class_posterior(x, level.alpha ** 2).log()          # noqa: E731
    x = 2.5 * torch.randn(50, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.randint(0, 2, (50,), generator=torch.Generator().manual_seed(1))
    uncond = SamplingConfig("ddim", 10, guidance=0.0, eta=0.0)
    for level in diffusion_levels(schedule, [900, 500, 100, 10])[:-1]:
        abar = level.alpha ** 2
        tilted = (1 - scale) * mixture.score(x, abar) + scale * mixture.score(x, abar, y)   # (50, 2)
        grad = editing.classifier_gradient(clf, x, level, y)
        assert_close(editing.guide_eps(mixture.eps(x, abar), grad, level, scale), -level.sigma_vp * tilted)
        guided = editing.classifier_guided(editing.denoiser(model, y, uncond), clf, y, scale)
        assert_close(guided(x, level), (x + level.sigma_vp ** 2 * tilted) / level.alpha)
        if scale == 1.0:
            assert_close(guided(x, level), mixture.posterior_mean(x, level.alpha, level.sigma_vp, y))


def noisy_classifier():
    """A small noise-aware classifier with every weight moved at random (its head starts at zero otherwise)."""
    from fashiondiff.classifier import NoisyClassifier
    clf = NoisyClassifier(width=8, emb_dim=16)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for p in clf.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    return clf.eval()


@pytest.mark.parametrize("name", ["transformer", "flow"])
def test_classifier_sample_at_scale_zero_is_generate_and_the_gradient_moves_it(name):
    """Scale 0 adds nothing: generate's sample from the same noise with the deterministic sampler. A positive scale
    changes the sample."""
    model, clf = randomised(name), noisy_classifier()
    settings, labels = deterministic(model), torch.tensor([3, 7])
    plain = editing.classifier_sample(model, clf, labels, settings, 0.0, seed=5)
    assert_close(plain, generate(model, labels, settings, seed=5), rtol=0, atol=1e-5)
    guided = editing.classifier_sample(model, clf, labels, settings, 50.0, seed=5)
    assert (guided - plain).abs().max() > 1e-3


def test_the_classifier_reads_a_diffusion_and_a_flow_x_t_at_one_sigma_alike():
    """alpha (x0 + sigma eps) for a diffusion level (alpha^2 + sigma_vp^2 = 1) and a flow's (alpha = 1 - t) at the
    same sigma reach the network as the same (x0 + sigma eps) / sqrt(1 + sigma^2) with the same sigma."""
    seen = []
    read = editing.noisy_classifier(lambda x, s: seen.append((x, s)) or torch.zeros(len(x), 10))
    x0, eps = torch.randn(2, 4, 1, 16, 16, generator=torch.Generator().manual_seed(0)).double()
    for sigma in (0.3, 2.0, 9.0):
        a = 1 / math.sqrt(1 + sigma ** 2)
        diffusion = Level(a, a * sigma, 0)
        flow = Level(1 - sigma / (1 + sigma), sigma / (1 + sigma), sigma / (1 + sigma))
        for level in (diffusion, flow):
            read(level.alpha * (x0 + sigma * eps), level)
        (xd, sd), (xf, sf) = seen[-2:]
        assert_close(xd, xf)
        assert_close(xd, (x0 + sigma * eps) / math.sqrt(1 + sigma ** 2))
        assert_close(sd, torch.full((4,), sigma))
        assert_close(sf, torch.full((4,), sigma))


def test_noisy_accuracy_is_chance_for_a_constant_guess_and_one_for_the_labels_own_pixels():
    """A classifier that always says class 0 scores the share of 0s at every sigma; one that reads the label
    written into the image scores 1 at low noise and falls towards chance as sigma grows."""
    y = torch.arange(200) % 10
    x0 = (y.float()[:, None, None, None] / 4.5 - 1).expand(200, 1, 16, 16).contiguous()   # (200, 1, 16, 16)
    constant = editing.noisy_accuracy(lambda x, s: torch.eye(10)[[0] * len(x)], x0, y)
    assert set(constant.values()) == {0.1}
    reader = lambda x, s: -((x.mean((1, 2, 3)) * (1 + s * s).sqrt() + 1) * 4.5 - torch.arange(10.)[:, None]).T.abs()  # noqa: E731
    acc = editing.noisy_accuracy(reader, x0, y, sigmas=(0.1, 10.0, 100.0))
    assert acc["0.1"] == 1.0 and acc["100.0"] < 0.5


# --- the edit command ---------------------------------------------------------------------------------------------

def write_inputs(folder):
    """A 28x28 garment-like image, its RGB and 56x56 copies, a 28x28 mask (top half to fill), a 20x20 mask, and a
    file that is not an image."""
    import numpy as np
    from PIL import Image
    a = np.zeros((28, 28), np.uint8)
    a[6:22, 8:20] = 200
    Image.fromarray(a).save(folder / "in.png")
    Image.fromarray(np.stack([a] * 3, -1)).save(folder / "rgb.png")
    Image.fromarray(np.kron(a, np.ones((2, 2), np.uint8))).save(folder / "big.png")
    m = np.full((28, 28), 255, np.uint8)
    m[:14] = 0
    Image.fromarray(m).save(folder / "mask.png")
    Image.fromarray(np.kron(m, np.ones((2, 2), np.uint8))).save(folder / "big_mask.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(folder / "mask20.png")
    (folder / "text.png").write_text("not an image")
    return sorted(p.name for p in folder.iterdir())


def edit(folder, capsys, *args):
    from fashiondiff.cli import main
    import os
    here = os.getcwd()
    os.chdir(folder)
    try:
        code = main(["edit", *args])
    finally:
        os.chdir(here)
    return code, capsys.readouterr()


@pytest.mark.parametrize("args, message", [
    (["--input", "none.png", "--to-class", "Dress"], "--input none.png: no such file"),
    (["--input", "text.png", "--to-class", "Dress"], "--input text.png: not an image"),
    (["--input", "in.png", "--mask", "mask20.png"], "the mask is 20x20, the input 28x28"),
    (["--input", "in.png", "--to-class", "Dres"], "did you mean 'Dress'"),
    (["--input", "in.png", "--to-class", "Dress", "--strength", "0"], "--strength must be in (0, 1]"),
    (["--input", "in.png", "--to-class", "Dress", "--strength", "1.5"], "--strength must be in (0, 1]"),
    (["--input", "in.png", "--to-class", "Dress", "--out", "out.jpg"], "unknown extension '.jpg'"),
    (["--input", "in.png", "--to-class", "Dress", "--out", "no/such/out.png"], "does not exist"),
    (["--input", "in.png"], "--to-class is needed without a mask"),
    (["--input", "in.png", "--mask", "mask.png", "--strength", "0.5"], "--strength applies to SDEdit"),
    (["--input", "in.png", "--mask-box", "0,0,40,10"], "--mask-box 0,0,40,10: needs 0 <= x0 < x1 <= 28"),
    (["--input", "in.png", "--to-class", "Dress", "--steps", "11"], "--steps must be between 1 and 10"),
])
def test_edit_refuses_bad_input_with_one_line_and_writes_nothing(tmp_path, capsys, args, message):
    before = write_inputs(tmp_path)
    out = [] if "--out" in args else ["--out", "out.png"]
    code, captured = edit(tmp_path, capsys, "transformer", *args, *out, "--precision", "fp32")
    assert code == 2 and message in captured.err, captured.err
    assert len(captured.err.strip().splitlines()) == 1 and "Traceback" not in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == before, "nothing may be written"


@pytest.mark.parametrize("name, args", [
    ("transformer", ["--input", "in.png", "--to-class", "Dress", "--strength", "0.5"]),
    ("flow", ["--input", "rgb.png", "--mask-box", "0,0,28,10", "--to-class", "T-shirt", "--resample", "2",
              "--steps", "4"]),
    ("latent", ["--input", "big.png", "--mask", "big_mask.png", "--steps", "5"]),
])
def test_edit_writes_a_png_for_every_kind(tmp_path, capsys, name, args):
    """SDEdit on the transformer, RePaint on the flow (an RGB input), inpainting on the latent model (a 56x56
    input and mask, resized): the bundled weights, a few steps."""
    write_inputs(tmp_path)
    code, captured = edit(tmp_path, capsys, name, *args, "--precision", "fp32", "--out", "out.png")
    assert code == 0, captured.err
    assert (tmp_path / "out.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
