"""The samplers checked against closed forms: every iterate of an oracle denoiser, DDIM's noise, and guidance.

With data that is a point mass x0*, the ideal denoiser predicts x0* (or the noise that took x0* to x_t), so each
step t -> s of either sampler is linear in x_t: x_s = a x0* + b x_t + sigma z, z ~ N(0, I), with a, b, sigma
depending on abar alone (``transition``). Starting from x_T ~ N(0, I), every iterate is then Gaussian with a
mean and variance that follow m_s = a x0* + b m_t, v_s = b^2 v_t + sigma^2, and the last step returns x0*.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from fashiondiff.diffusion import predict, sample
from fashiondiff.sampling import SamplingConfig
from fashiondiff.schedule import NoiseSchedule

NULL = 10                                                            # the null label of every stub model
X0 = torch.tensor([[[-1.6, -0.5], [0.3, 1.3]]])                      # the data x0*, (1, 2, 2); two pixels beyond 1
N = 20_000                                                           # samples per check: 80,000 pixel values
SAMPLERS = {"ddpm": SamplingConfig("ddpm", 10), "ddim_eta0": SamplingConfig("ddim", 10, eta=0.0),
            "ddim_eta0.5": SamplingConfig("ddim", 10, eta=0.5), "ddim_eta1": SamplingConfig("ddim", 10, eta=1.0)}
SCHEDULES = [(1000, "linear", 10), (10, "cosine", 10), (10, "cosine", 3)]       # (T, kind, steps)


def transition(abar: torch.Tensor, t: int, s: int, settings: SamplingConfig) -> tuple[float, float, float]:
    """(a, b, sigma) of the step x_s = a x0 + b x_t + sigma z when the prediction is x0, from abar alone.

    ddpm:  q(x_s | x_t, x0) with A = abar_t / abar_s over the stride (DDPM eq. 6-7):
           a = sqrt(abar_s) (1 - A) / (1 - abar_t), b = sqrt(A) (1 - abar_s) / (1 - abar_t),
           sigma^2 = (1 - A) (1 - abar_s) / (1 - abar_t)
    ddim:  x_s = sqrt(abar_s) x0 + sqrt(1 - abar_s - sigma^2) eps_hat + sigma z, eps_hat = (x_t - sqrt(abar_t) x0)
           / sqrt(1 - abar_t), sigma = eta sqrt((1 - abar_s) / (1 - abar_t)) sqrt(1 - abar_t / abar_s) (Song eq. 12, 16)
    s = 0: the sampler returns x0.
    """
    ab_t, ab_s = float(abar[t]), float(abar[s])
    if s == 0:
        return 1.0, 0.0, 0.0
    if settings.sampler == "ddpm":
        A = ab_t / ab_s
        return (math.sqrt(ab_s) * (1 - A) / (1 - ab_t), math.sqrt(A) * (1 - ab_s) / (1 - ab_t),
                math.sqrt((1 - A) * (1 - ab_s) / (1 - ab_t)))
    sigma = settings.eta * math.sqrt((1 - ab_s) / (1 - ab_t)) * math.sqrt(1 - ab_t / ab_s)
    b = math.sqrt(1 - ab_s - sigma ** 2) / math.sqrt(1 - ab_t)
    return math.sqrt(ab_s) - b * math.sqrt(ab_t), b, sigma


def steps_of(schedule: NoiseSchedule, steps: int) -> list[tuple[int, int]]:
    """The (t, s) pairs a sampler visits: evenly strided from T down to 1, then to 0. Written out by hand for the
    schedules used here so that a change in the striding shows up."""
    ts = {(1000, 10): [1000, 889, 778, 667, 556, 445, 334, 223, 112, 1], (10, 10): list(range(10, 0, -1)),
          (10, 3): [10, 6, 1], (50, 50): list(range(50, 0, -1)), (50, 7): [50, 42, 34, 26, 17, 9, 1]}
    ts = ts[schedule.T, steps]
    assert schedule.timesteps(steps) == ts
    return list(zip(ts, ts[1:] + [0]))


class Oracle(torch.nn.Module):
    """The ideal denoiser for the point mass x0: it predicts x0, or the noise that took x0 to x_t,
    eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t), or the velocity sqrt(abar_t) eps - sqrt(1 - abar_t) x0,
    computed here in float64 (not by the package)."""

    label = SimpleNamespace(null=NULL)

    def __init__(self, schedule: NoiseSchedule, x0: torch.Tensor, prediction: str):
        super().__init__()
        self.abar, self.x0, self.prediction = schedule.abar, x0.double(), prediction

    def forward(self, x, t, y):
        assert (y != NULL).all(), "guidance 1 must call the conditional model only"
        if self.prediction == "x0":
            return self.x0.expand_as(x).to(x.dtype)
        ab = self.abar[t].reshape(-1, 1, 1, 1)
        eps = (x.double() - ab.sqrt() * self.x0) / (1 - ab).sqrt()
        if self.prediction == "v":                                   # Salimans & Ho 2022: v = sqrt(ab) eps - sqrt(1 - ab) x0
            return (ab.sqrt() * eps - (1 - ab).sqrt() * self.x0).to(x.dtype)
        return eps.to(x.dtype)


def oracle_trajectory(T, kind, steps, settings, prediction, clip, seed=0):
    schedule = NoiseSchedule(T, kind)
    settings = settings.replace(steps=steps)
    y = torch.zeros(N, dtype=torch.long)
    x, xs = sample(Oracle(schedule, X0, prediction), schedule, y, tuple(X0.shape), settings, prediction=prediction,
                   clip=clip, generator=torch.Generator().manual_seed(seed), trajectory=True)
    assert_close(x, xs[-1], rtol=0, atol=0)
    return schedule, settings, [z.double() for z in xs]


def check_iterates(schedule, settings, xs, x0):
    """Every iterate against its closed-form mean and variance, and every step against its transition.

    Tolerances are five standard errors of the estimates from n = N * 4 values: a mean per pixel, sqrt(v / N);
    a variance around the known mean, v sqrt(2 / n); the correlation of a step's noise with x_t, 1 / sqrt(n).
    A deterministic step (sigma = 0) must hold to float32 rounding: 1e-5 |x_t|, times sqrt(abar_s / abar_t) by which
    x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t) amplifies it when the model predicts eps (up to ~90 here).
    """
    pairs = steps_of(schedule, settings.steps)
    assert len(xs) == len(pairs) + 1
    x0 = x0.double()
    n = xs[0].numel()
    m, v = torch.zeros_like(x0), 1.0                                                  # x_T ~ N(0, I)
    for i, (t, s) in enumerate([(None, schedule.T)] + pairs):
        if t is not None:
            a, b, sigma = transition(schedule.abar, t, s, settings)
            m, v = a * x0 + b * m, b ** 2 * v + sigma ** 2
            # the step itself: the residual x_s - a x0 - b x_t is sigma z, z standard normal and independent of x_t
            r = xs[i] - a * x0 - b * xs[i - 1]
            if sigma == 0:
                amplified = math.sqrt(float(schedule.abar[s] / schedule.abar[t]))
                assert r.abs().max() < 1e-5 * max(1.0, float(xs[i - 1].abs().max())) * amplified, (t, s)
            else:
                assert abs(float(r.mean())) < 5 * sigma / math.sqrt(n), (t, s, "noise mean")
                assert abs(float(r.pow(2).mean()) / sigma ** 2 - 1) < 5 * math.sqrt(2 / n), (t, s, "noise variance")
                rc, xc = r - r.mean(0), xs[i - 1] - xs[i - 1].mean(0)
                corr = (rc * xc).mean() / (rc.pow(2).mean() * xc.pow(2).mean()).sqrt()
                assert abs(float(corr)) < 5 / math.sqrt(n), (t, s, "noise correlated with x_t")
        # the iterate: mean per pixel and variance (pooled over pixels, around the known mean)
        if v == 0:
            assert_close(xs[i], m.expand_as(xs[i]), rtol=0, atol=1e-5)
            continue
        assert ((xs[i].mean(0) - m).abs() < 5 * math.sqrt(v / len(xs[i])) + 1e-6).all(), (s, "mean")
        assert abs(float((xs[i] - m).pow(2).mean()) / v - 1) < 5 * math.sqrt(2 / n), (s, "variance")


@pytest.mark.parametrize("T,kind,steps", SCHEDULES, ids=lambda v: str(v))
@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_every_iterate_of_an_oracle_denoiser_follows_the_closed_form(T, kind, steps, sampler, prediction):
    """No clipping: the iterates follow x_s = a x0* + b x_t + sigma z with x0* itself, and end exactly at x0*."""
    schedule, settings, xs = oracle_trajectory(T, kind, steps, SAMPLERS[sampler], prediction, clip=None)
    check_iterates(schedule, settings, xs, X0)
    assert_close(xs[-1], X0.double().expand_as(xs[-1]), rtol=0, atol=1e-5)


@pytest.mark.parametrize("sampler", SAMPLERS)
@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_clipping_replaces_the_prediction_by_the_clipped_one_in_every_step(sampler, prediction):
    """With clip = 1 every step uses x0_hat = clamp(x0*, -1, 1), also DDIM's eps_hat (recomputed from it)."""
    schedule, settings, xs = oracle_trajectory(10, "cosine", 3, SAMPLERS[sampler], prediction, clip=1.0)
    check_iterates(schedule, settings, xs, X0.clamp(-1, 1))


# --- DDIM's noise ---------------------------------------------------------------------------------

@pytest.mark.parametrize("steps", [1000, 10, 3])
def test_ddim_at_eta_one_is_the_posterior_mean_and_variance(steps):
    """Song et al. eq. 16 at eta = 1: sigma^2 = (1 - abar_s)/(1 - abar_t) (1 - abar_t/abar_s) is the variance of
    q(x_s | x_t, x0), and its mean coefficients sqrt(abar_s) - b sqrt(abar_t) and b are the posterior's c0, ct."""
    s = NoiseSchedule(1000, "linear")
    ts = s.timesteps(steps)
    t, sp = torch.tensor(ts[:-1]), torch.tensor(ts[1:])
    ab_t, ab_s = s.abar[t], s.abar[sp]
    sigma2 = (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
    b = (1 - ab_s - sigma2).sqrt() / (1 - ab_t).sqrt()
    ones, zeros = torch.ones(len(t), 1, dtype=torch.float64), torch.zeros(len(t), 1, dtype=torch.float64)
    c0, var = s.posterior(ones, zeros, t, sp)                           # mean = c0 x0 + ct x_t at x0 = 1, x_t = 0
    ct, _ = s.posterior(zeros, ones, t, sp)
    assert_close(var.flatten(), sigma2, rtol=1e-9, atol=1e-12)
    assert_close(c0.flatten(), ab_s.sqrt() - b * ab_t.sqrt(), rtol=1e-9, atol=1e-12)
    assert_close(ct.flatten(), b, rtol=1e-9, atol=1e-12)


class Nonlinear(torch.nn.Module):
    """A deterministic stand-in for a network: nonlinear in x_t, and depending on t and y."""

    label = SimpleNamespace(null=NULL)

    def forward(self, x, t, y):
        return torch.tanh(1.3 * x.flip(-1) + 0.05 * y.view(-1, 1, 1, 1) - 0.01 * t.view(-1, 1, 1, 1))


@pytest.mark.parametrize("steps", [50, 7])
@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_ddim_with_eta_one_is_ddpm(prediction, steps):
    """DDIM's step at eta = 1 is the posterior step (previous test), over all steps or strided, and it draws its
    noise like DDPM: the same seed gives the same samples, for any denoiser. eta = 0 does not."""
    s = NoiseSchedule(50, "linear")
    y = torch.tensor([1, 4, 10])
    steps_of(s, steps)                                                  # the strides are the expected ones
    run = lambda settings: sample(Nonlinear(), s, y, (2, 3, 3), settings, prediction=prediction,  # noqa: E731
                                  clip=None, generator=torch.Generator().manual_seed(3))
    ddpm = run(SamplingConfig("ddpm", steps))
    assert_close(run(SamplingConfig("ddim", steps, eta=1.0)), ddpm, atol=1e-4, rtol=1e-4)
    assert (run(SamplingConfig("ddim", steps, eta=0.0)) - ddpm).abs().max() > 1e-2


def test_out_of_range_settings_are_refused():
    """eta outside [0, 1], other than 1 for ddpm or 0 for the ODE samplers, negative guidance, an unknown prediction, more steps than T."""
    for bad in (dict(sampler="ddim", eta=1.5), dict(sampler="ddim", eta=-0.1), dict(sampler="ddpm", eta=0.5),
                dict(sampler="euler", eta=0.5), dict(sampler="heun", eta=1.0)):
        with pytest.raises(ValueError, match="eta"):
            SamplingConfig(**bad)
    with pytest.raises(ValueError, match="guidance"):
        SamplingConfig(guidance=-1.0)
    with pytest.raises(ValueError, match="prediction"):
        sample(Nonlinear(), NoiseSchedule(10), torch.tensor([1]), (1, 2, 2), SamplingConfig(), prediction="velocity")
    with pytest.raises(ValueError, match="steps"):
        sample(Nonlinear(), NoiseSchedule(10), torch.tensor([1]), (1, 2, 2), SamplingConfig(steps=11))
    with pytest.raises(ValueError, match="implements ddpm and ddim, not 'euler'"):   # a loop refuses other rows
        sample(Nonlinear(), NoiseSchedule(10), torch.tensor([1]), (1, 2, 2), SamplingConfig("euler", 2))
    for bad in ((-0.1, 1.0), (2.0, 1.0), ("a", 1), (1.0,)):
        with pytest.raises(ValueError, match="guidance_interval"):
            SamplingConfig(guidance_interval=bad)


# --- classifier-free guidance ---------------------------------------------------------------------

def cond_out(x, t, y):
    """The stub's conditional prediction: it depends on x_t, t and the label."""
    return 0.5 * x + 0.1 * (y.view(-1, 1, 1, 1) + 1) + 0.01 * t.view(-1, 1, 1, 1)


def uncond_out(x, t):
    """The stub's unconditional prediction: different from every conditional one."""
    return -0.3 * x - 0.2 - 0.002 * t.view(-1, 1, 1, 1)


class TwoModels(torch.nn.Module):
    """cond_out for real labels and uncond_out for the null label, row by row; records (t, y) of every call."""

    label = SimpleNamespace(null=NULL)

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x, t, y):
        self.calls.append((t.tolist(), y.tolist()))
        return torch.where((y == NULL).view(-1, 1, 1, 1), uncond_out(x, t), cond_out(x, t, y))


def test_guidance_zero_is_unconditional_one_conditional_and_w_extrapolates():
    """pred = u + w (c - u): w = 0 calls the unconditional model only, w = 1 the conditional only, and any other w
    calls both in one batch [y, null] and combines them."""
    g = torch.Generator().manual_seed(0)
    x, t, y = torch.randn(3, 1, 2, 2, generator=g), torch.tensor([1, 5, 9]), torch.tensor([0, 3, 7])
    c, u = cond_out(x, t, y), uncond_out(x, t)
    assert (c - u).abs().min() > 0.05                                   # the two models differ everywhere
    for w, expected, labels in ((0.0, u, [NULL] * 3), (1.0, c, [0, 3, 7]),
                                (2.5, 2.5 * c - 1.5 * u, [0, 3, 7] + [NULL] * 3),
                                (0.4, 0.4 * c + 0.6 * u, [0, 3, 7] + [NULL] * 3)):
        model = TwoModels()
        assert_close(predict(model, x, t, y, w), expected, rtol=1e-6, atol=1e-6)
        assert model.calls == [(t.tolist() * (len(labels) // 3), labels)], w


@pytest.mark.parametrize("kind", ["transformer", "unet"])
def test_guidance_with_a_real_denoiser_equals_two_separate_calls(kind):
    """The one batched call [y, null] made for w != 0, 1 gives what two separate calls give: u + w (c - u)."""
    if kind == "transformer":
        from fashiondiff.transformer import TransformerDenoiser
        model, shape = TransformerDenoiser(dim=32, heads=2, layers=2, ff_dim=64), (1, 16, 16)
    else:
        from fashiondiff.unet import LatentUNet
        model, shape = LatentUNet(widths=(16, 32, 32), emb_dim=32, context_tokens=3, context_dim=16, heads=2), (4, 7, 7)
    torch.manual_seed(0)
    for p in model.parameters():                       # zero-initialised output layers would give c = u = 0
        torch.nn.init.normal_(p, std=0.1)
    model.eval()
    x, t, y = torch.randn(3, *shape), torch.tensor([1, 5, 9]), torch.tensor([0, 3, 7])
    with torch.no_grad():
        c, u = model(x, t, y), model(x, t, torch.full_like(y, model.label.null))
        assert (c - u).abs().mean() > 1e-3                               # 100 times the tolerance below
        assert_close(predict(model, x, t, y, 0.0), u)
        assert_close(predict(model, x, t, y, 1.0), c)
        assert_close(predict(model, x, t, y, 2.5), u + 2.5 * (c - u), rtol=1e-5, atol=1e-5)


def test_sampling_at_guidance_zero_is_sampling_the_unconditional_model():
    """Both samplers at w = 0 with labels y draw exactly what they draw at w = 1 with null labels (same seed)."""
    s, shape, y = NoiseSchedule(10, "cosine"), (1, 2, 2), torch.tensor([2, 5])
    run = lambda w, labels, settings=SamplingConfig("ddim", 5, eta=0.5): sample(  # noqa: E731
        TwoModels(), s, labels, shape, settings.replace(guidance=w), generator=torch.Generator().manual_seed(0))
    null = torch.full_like(y, NULL)
    assert_close(run(0.0, y), run(1.0, null), rtol=0, atol=0)
    assert (run(0.0, y) - run(1.0, y)).abs().max() > 1e-2
    ddpm = SamplingConfig("ddpm", 5)
    assert_close(run(0.0, y, ddpm), run(1.0, null, ddpm), rtol=0, atol=0)


def test_guidance_interval_applies_guidance_only_inside_it():
    """w = 3 where lo <= sigma_t <= hi (bounds included), sigma_t = sqrt((1 - abar_t) / abar_t), and w = 1
    elsewhere: the model sees [y, null] inside and y outside, and each DDIM (eta = 0) step is x_s = a x0_hat + b x_t
    with x0_hat = u + w_t (c - u)."""
    s, shape, y = NoiseSchedule(1000, "linear"), (1, 2, 2), torch.tensor([2, 5])
    sigma = lambda t: math.sqrt((1 - float(s.abar[t])) / float(s.abar[t]))          # noqa: E731
    middle = (sigma(334), sigma(667))                                                # of the 10 steps: 667..334
    settings = SamplingConfig("ddim", 10, guidance=3.0, guidance_interval=middle, eta=0.0)
    model = TwoModels()
    _, xs = sample(model, s, y, shape, settings, clip=None, generator=torch.Generator().manual_seed(0), trajectory=True)
    inside = [667, 556, 445, 334]
    pairs = steps_of(s, 10)
    assert [call[0][0] for call in model.calls] == [t for t, _ in pairs]
    for (t, _), (ts, labels) in zip(pairs, model.calls):
        assert labels == ([2, 5, NULL, NULL] if t in inside else [2, 5]) and set(ts) == {t}, t
    for i, (t, sp) in enumerate(pairs):
        x_t, tt = xs[i].double(), torch.full((2,), t)
        c, u = cond_out(x_t, tt, y), uncond_out(x_t, tt)
        w = 3.0 if t in inside else 1.0
        a, b, _ = transition(s.abar, t, sp, settings)
        assert_close(xs[i + 1].double(), a * (u + w * (c - u)) + b * x_t, rtol=1e-5, atol=1e-5)

    run = lambda w, interval: sample(TwoModels(), s, y, shape, settings.replace(guidance=w,  # noqa: E731
                                     guidance_interval=interval), clip=None, generator=torch.Generator().manual_seed(0))
    assert_close(run(3.0, (0, math.inf)), run(3.0, None), rtol=0, atol=0)         # the whole range: plain guidance
    assert_close(run(3.0, (1e3, 1e4)), run(1.0, None), rtol=0, atol=0)            # never inside: the conditional model
    assert (run(3.0, middle) - run(3.0, None)).abs().max() > 1e-3
    assert (run(3.0, middle) - run(1.0, None)).abs().max() > 1e-3


# ----------------------------------------------------------------------------------------------------------------
# Second-order solvers (part 4): against the probability-flow ODE of Gaussian data, solved in closed form.
#
# With data x0 ~ N(MU, S^2) per coordinate, x = alpha (x0 + sigma eps) has E[x0 | x] = MU + alpha S^2 (x - alpha MU) /
# (alpha^2 S^2 + sigma_vp^2), and the ODE dx~/dsigma = (x~ - D) / sigma of x~ = x / alpha is linear:
# x~(sigma') - MU = (x~(sigma) - MU) sqrt((S^2 + sigma'^2) / (S^2 + sigma^2)).

from fashiondiff import solvers
from fashiondiff.sampling import SAMPLERS as TABLE

MU, S = 0.7, 0.5


def gaussian_x0(x, alpha, sigma_vp):
    return MU + alpha * S ** 2 * (x - alpha * MU) / (alpha ** 2 * S ** 2 + sigma_vp ** 2)


def exact_ode(x_tilde, sigma, sigma_end):
    """x~ at sigma_end from x~ at sigma along the Gaussian data's probability-flow ODE."""
    return MU + (x_tilde - MU) * math.sqrt((S ** 2 + sigma_end ** 2) / (S ** 2 + sigma ** 2))


def solve_gaussian(solver, n, scale="ve", sigma_max=80.0, sigma_min=0.05):
    """The solver's x~ at sigma_min from 7 starts at sigma_max, on n steps even in log sigma, in the coordinates
    ``scale``: "ve" (alpha = 1), "vp" (alpha = 1 / sqrt(1 + sigma^2)) or "flow" (alpha = 1 / (1 + sigma))."""
    sigmas = torch.logspace(math.log10(sigma_max), math.log10(sigma_min), n + 1, dtype=torch.float64).tolist()
    alpha = {"ve": lambda s: 1.0, "vp": lambda s: 1 / math.sqrt(1 + s * s), "flow": lambda s: 1 / (1 + s)}[scale]
    levels = [solvers.Level(alpha(s), alpha(s) * s, 0) for s in sigmas]
    x_tilde = torch.linspace(-3, 3, 7, dtype=torch.float64) * sigma_max
    x = solvers.solve(lambda x, lv: gaussian_x0(x, lv.alpha, lv.sigma_vp), levels[0].alpha * x_tilde, levels, solver)
    return x / levels[-1].alpha, exact_ode(x_tilde, sigma_max, sigma_min)


@pytest.mark.parametrize("solver,order", [("ddim", 1), ("heun", 2), ("dpm++2m", 2)])
def test_doubling_the_steps_divides_the_error_by_two_for_first_order_and_four_for_second(solver, order):
    """The global error against the closed form falls as h^order: a wrong coefficient in a correction leaves a
    first-order method (ratio 2), a wrong step is not consistent at all."""
    errors = [float((x - exact).abs().max()) for x, exact in (solve_gaussian(solver, n) for n in (32, 64))]
    assert 2 ** order * 0.85 < errors[0] / errors[1] < 2 ** order * 1.15, errors
    assert errors[1] < (0.05 if order == 1 else 0.003)


@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_a_solver_takes_the_same_steps_whatever_the_scale_alpha(solver):
    """x = alpha (x0 + sigma eps): DDPM's alpha, a flow's alpha and none give one x~ trajectory."""
    ve, _ = solve_gaussian(solver, 10, "ve")
    for scale in ("vp", "flow"):
        assert_close(solve_gaussian(solver, 10, scale)[0], ve, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("solver", solvers.SOLVERS)
def test_every_solver_is_exact_for_a_point_mass(solver):
    """D = x0* at every level: x~ - x0* shrinks in proportion to sigma, which ddim's update does exactly."""
    levels = [solvers.Level(1.0, s, 0) for s in (50.0, 7.0, 2.0, 0.3, 0.0)]
    x = solvers.solve(lambda x, lv: torch.full_like(x, 0.4), torch.tensor([50.0, -20.0], dtype=torch.float64),
                      levels, solver, trajectory=True)[1]
    for lv, xi in zip(levels, x):
        assert_close(xi, 0.4 + (x[0] - 0.4) * lv.sigma / 50.0, rtol=0, atol=1e-12)


def test_the_karras_grid_is_even_in_sigma_to_the_one_over_rho():
    s = solvers.karras_sigmas(5, 0.002, 80.0)
    assert_close(torch.tensor(s[0]), torch.tensor(80.0)) and assert_close(torch.tensor(s[-1]), torch.tensor(0.002))
    steps = torch.tensor(s).pow(1 / 7).diff()
    assert_close(steps, steps[:1].expand_as(steps))


class GaussianDenoiser(torch.nn.Module):
    """The ideal denoiser of Gaussian data for a diffusion schedule, predicting x0, eps or v; or, with no schedule,
    a flow's ideal velocity eps - x0 = (x_t - x0_hat) / t."""
    label = SimpleNamespace(null=NULL)
    clip, sample_shape = None, (1, 4, 4)

    def __init__(self, schedule=None, prediction="x0"):
        super().__init__()
        self.schedule, self.prediction = schedule, prediction
        self.process = "flow" if schedule is None else "diffusion"

    def forward(self, x, t, y):
        x = x.double()
        if self.schedule is None:
            tt = t.double().reshape(-1, 1, 1, 1)
            return ((x - gaussian_x0(x, 1 - tt, tt)) / tt).float()
        ab = self.schedule.abar[t].reshape(-1, 1, 1, 1)
        x0 = gaussian_x0(x, ab.sqrt(), (1 - ab).sqrt())
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return {"x0": x0, "eps": eps, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[self.prediction].float()


def run_row(model, settings):
    y = torch.zeros(64, dtype=torch.long)
    x, xs = TABLE[settings.sampler].loop(model, y, settings, torch.Generator().manual_seed(0), trajectory=True)
    return x.double(), xs[0].double()


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_the_diffusion_rows_follow_the_gaussian_ode_to_first_and_second_order(prediction):
    """Through the loops' conversions of each prediction, on DDIM's timesteps of T = 1000: against the closed form
    from x_T to sigma = 0, ten times the steps cut ddim's error about 10x and dpm++2m's about 100x; edm-heun's last
    step (Euler from sigma(1) = 0.01 to 0) leaves it a floor, below ddim's error."""
    schedule = NoiseSchedule(1000, "linear")
    model = GaussianDenoiser(schedule, prediction)
    alpha_T, sigma_T = math.sqrt(float(schedule.abar[1000])), schedule.sigma(1000)
    errors = {}
    for sampler in ("ddim", "edm-heun", "dpm++2m"):
        for steps in (100, 1000):
            x, x_T = run_row(model, SamplingConfig(sampler, steps, eta=0.0))
            errors[sampler, steps] = float((x - exact_ode(x_T / alpha_T, sigma_T, 0.0)).abs().max())
    assert 7 < errors["ddim", 100] / errors["ddim", 1000] < 13, errors
    assert errors["dpm++2m", 100] / errors["dpm++2m", 1000] > 70 and errors["dpm++2m", 100] < errors["ddim", 100], errors
    assert errors["edm-heun", 1000] < errors["ddim", 1000] / 10, errors


def test_the_solvers_rows_run_the_solver_on_ddims_timesteps():
    """The loop is ``solvers.solve`` on ``NoiseSchedule.timesteps`` with the model's x0: the same numbers, computed
    again from the float64 closed form (an eps-model's conversion included). ``loguniform_timesteps``, the other
    grid notebook 15 compares, is even in log sigma."""
    schedule = NoiseSchedule(1000, "linear")
    ts = solvers.loguniform_timesteps(schedule, 6)
    logs = torch.tensor([math.log(schedule.sigma(t)) for t in ts])
    assert len(set(ts)) == 6 and ts[0] == 1000 and ts[-1] == 1 and logs.diff().sub(logs.diff().mean()).abs().max() < 0.01
    assert solvers.loguniform_timesteps(NoiseSchedule(10, "cosine"), 10) == list(range(10, 0, -1))
    x, x_T = run_row(GaussianDenoiser(schedule, "eps"), SamplingConfig("dpm++2m", 6))
    levels = solvers.diffusion_levels(schedule, schedule.timesteps(6))
    expected = solvers.solve(lambda z, lv: gaussian_x0(z, lv.alpha, lv.sigma_vp), x_T, levels, "dpm++2m")
    assert_close(x, expected, rtol=1e-4, atol=1e-4)


def test_dpm_solver_at_two_steps_is_ddim_and_the_flows_at_three_is_euler():
    """Its first step has no previous x0, its last ends at sigma = 0, and a flow's second follows sigma = inf: each
    is the first-order (ddim) update, which for a flow is Euler's step."""
    model = GaussianDenoiser(NoiseSchedule(10, "cosine"), "eps")         # 2 steps: timesteps 10 and 1 for both
    assert_close(run_row(model, SamplingConfig("dpm++2m", 2))[0], run_row(model, SamplingConfig("ddim", 2, eta=0.0))[0],
                 rtol=1e-5, atol=1e-5)
    flow_model = GaussianDenoiser()
    assert_close(run_row(flow_model, SamplingConfig("dpm++2m-flow", 3))[0],
                 run_row(flow_model, SamplingConfig("euler", 3))[0], rtol=1e-5, atol=1e-5)
    errors = []
    for sampler in ("euler", "dpm++2m-flow"):        # from sigma = inf, where x~ / sigma is the noise x_1: MU + S x_1
        x, x_1 = run_row(flow_model, SamplingConfig(sampler, 10))
        errors.append(float((x - (MU + S * x_1)).abs().max()))
    assert errors[1] < errors[0] / 5, errors


@pytest.mark.parametrize("settings", [SamplingConfig("edm-heun", 4, 2.0, (0.5, 2.0)), SamplingConfig("dpm++2m", 5, 2.0, (0.5, 2.0)),
                                      SamplingConfig("edm-heun", 3, 1.0), SamplingConfig("dpm++2m-flow", 4, 2.0, (0.4, 4.0))])
def test_network_calls_counts_what_the_new_rows_do(settings):
    """Guided evaluations run the two halves as one batch of 2N: count examples seen against ``network_calls``."""
    from fashiondiff.generation import network_calls
    seen = []

    class Counter(GaussianDenoiser):
        def forward(self, x, t, y):
            seen.append(len(x))
            return torch.zeros_like(x)

    model = Counter(None if TABLE[settings.sampler].process == "flow" else NoiseSchedule(10, "cosine"), "x0")
    TABLE[settings.sampler].loop(model, torch.zeros(3, dtype=torch.long), settings, torch.Generator().manual_seed(0))
    assert sum(seen) == 3 * network_calls(model, settings)
