"""Flow matching (fashiondiff/flow.py) against closed forms: the path, its velocity, the ODE samplers' order of
accuracy on Gaussian data, where the exact velocity field is known, and the model and command like the others."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from fashiondiff.flow import flow_loss, interpolate, logit_normal, sample, sigma, time_grid
from fashiondiff.generation import generate, network_calls
from fashiondiff.sampling import SamplingConfig

NULL = 10


def test_the_path_runs_from_data_to_noise_and_its_velocity_is_eps_minus_x0():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 1, 2, 2, generator=g), torch.randn(5, 1, 2, 2, generator=g)
    assert_close(interpolate(x0, eps, torch.zeros(5)), x0)
    assert_close(interpolate(x0, eps, torch.ones(5)), eps)
    t, h = (torch.rand(5, generator=g) * 0.8 + 0.1).double(), 1e-3
    dxdt = (interpolate(x0.double(), eps.double(), t + h) - interpolate(x0.double(), eps.double(), t - h)) / (2 * h)
    assert_close(dxdt, (eps - x0).double())


def test_logit_normal_times_are_a_sigmoid_of_a_standard_normal():
    """P(t < sigmoid(1)) = Phi(1) = 0.8413 and the median is 1/2 (5 standard errors on n = 100,000)."""
    t = logit_normal(100_000, torch.Generator().manual_seed(0))
    n, tol = len(t), 5 * math.sqrt(0.25 / len(t))
    assert abs(float((t < torch.sigmoid(torch.tensor(1.0))).float().mean()) - 0.8413) < tol
    assert abs(float((t < 0.5).float().mean()) - 0.5) < tol and 0 < float(t.min()) and float(t.max()) < 1


class Recorder(torch.nn.Module):
    label = SimpleNamespace(null=NULL)

    def __init__(self, out):
        super().__init__()
        self.out, self.seen = out, []

    def forward(self, x, t, y):
        self.seen.append((x.clone(), t.clone()))
        return self.out


def test_the_loss_is_the_mse_to_the_velocity_that_made_x_t():
    """From the (x_t, t) the model saw, eps = (x_t - (1 - t) x0) / t must be standard normal and the loss the
    mean of (out - (eps - x0))^2."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 1, 2, 2, generator=g) * 2 - 1
    out = torch.randn(x0.shape, generator=g)
    model = Recorder(out)
    loss = flow_loss(model, x0, torch.zeros(4000, dtype=torch.long), torch.Generator().manual_seed(1), p_uncond=0)
    (x_t, t), = model.seen
    t = t.double().reshape(-1, 1, 1, 1)
    eps = (x_t.double() - (1 - t) * x0.double()) / t
    n = eps.numel()
    assert abs(float(eps.mean())) < 5 / math.sqrt(n) and abs(float(eps.var()) - 1) < 5 * math.sqrt(2 / n)
    assert math.isclose(float(loss), float((out.double() - (eps - x0.double())).pow(2).mean()), rel_tol=1e-4)


class GaussianVelocity(torch.nn.Module):
    """The exact velocity E[eps - x0 | x_t] for data N(0, s^2) (per pixel), computed in float64:
    x_t ~ N(0, (1 - t)^2 s^2 + t^2) and cov(eps - x0, x_t) = t - (1 - t) s^2, so v = x_t (t - (1 - t) s^2) / var_t.
    Its ODE carries N(0, 1) at t = 1 to N(0, s^2) at t = 0 along x(t) = x(1) sqrt(var_t): x(0) = s x(1)."""
    label = SimpleNamespace(null=NULL)

    def __init__(self, s: float):
        super().__init__()
        self.s, self.calls = s, 0

    def forward(self, x, t, y):
        self.calls += 1
        t = t.double().reshape(-1, 1, 1, 1)
        var = (1 - t) ** 2 * self.s ** 2 + t ** 2
        return (x.double() * (t - (1 - t) * self.s ** 2) / var).to(x.dtype)


def ode_error(sampler: str, steps: int, s: float = 0.5) -> float:
    model = GaussianVelocity(s)
    gen = torch.Generator().manual_seed(0)
    x1 = torch.randn((64, 1, 2, 2), generator=torch.Generator().manual_seed(0))      # what sample draws first
    x0 = sample(model, torch.zeros(64, dtype=torch.long), (1, 2, 2), SamplingConfig(sampler, steps), gen)
    assert model.calls == network_calls(model, SamplingConfig(sampler, steps))
    return float((x0.double() - s * x1.double()).abs().max())


def test_euler_is_first_order_and_heun_second_order_on_the_exact_field():
    """Halving the step halves Euler's error and quarters Heun's (within 25%); both converge to s x(1)."""
    e = [ode_error("euler", k) for k in (20, 40)]
    h = [ode_error("heun", k) for k in (20, 40)]
    assert 1.6 < e[0] / e[1] < 2.5, e
    assert 3.0 < h[0] / h[1] < 5.0, h
    assert h[1] < e[1] / 10 and e[1] < 0.1


def test_with_a_point_mass_the_paths_are_straight_and_one_euler_step_lands_on_the_data():
    """Data x0*: the exact velocity is (x_t - x0*) / t, constant along each straight path, so Euler from t = 1 to 0
    in one step returns x0* exactly (what rectified flow's straight paths buy)."""
    x_star = torch.tensor([[[-0.7, 0.2], [0.9, -1.0]]])

    class PointMass(torch.nn.Module):
        label = SimpleNamespace(null=NULL)

        def forward(self, x, t, y):
            return (x - x_star) / t.reshape(-1, 1, 1, 1)

    y = torch.zeros(8, dtype=torch.long)
    for settings in (SamplingConfig("euler", 1), SamplingConfig("heun", 3)):
        x0 = sample(PointMass(), y, (1, 2, 2), settings, torch.Generator().manual_seed(0))
        assert_close(x0, x_star.expand_as(x0))


def test_the_grid_and_evaluations():
    """Euler evaluates once per step, Heun twice but in the last (NFE = 2 steps - 1); guidance doubles each."""
    assert time_grid(4) == [1.0, 0.75, 0.5, 0.25, 0.0]
    field = GaussianVelocity(0.5)
    assert [network_calls(field, SamplingConfig("euler", k)) for k in (1, 10)] == [1, 10]
    assert [network_calls(field, SamplingConfig("heun", k)) for k in (1, 5)] == [1, 9]
    assert network_calls(field, SamplingConfig("heun", 5, guidance=2.0)) == 18


def test_the_noise_level_is_t_over_one_minus_t():
    """x_t = (1 - t) x0 + t eps = (1 - t) (x0 + sigma eps) with sigma = t / (1 - t)."""
    x0, eps = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 3, dtype=torch.float64)
    for t in (0.0, 0.1, 0.5, 0.9):
        assert_close(interpolate(x0, eps, torch.full((5,), t)), (1 - t) * (x0 + sigma(t) * eps))
    assert sigma(1.0) == math.inf


def test_guidance_interval_is_read_in_sigma():
    """w applies where sigma = t / (1 - t) is in lo..hi: with steps of 0.25 (sigma inf, 3, 1, 1/3) and interval
    (0.5, 3) at t = 0.75 and 0.5 only."""
    seen = []

    class Spy(torch.nn.Module):
        label = SimpleNamespace(null=NULL)

        def forward(self, x, t, y):
            seen.append((round(float(t[0]), 2), bool((y == NULL).any())))
            return torch.zeros_like(x)

    sample(Spy(), torch.zeros(2, dtype=torch.long), (1, 2, 2), SamplingConfig("euler", 4, 2.0, (0.5, 3.0)),
           torch.Generator().manual_seed(0))
    assert seen == [(1.0, False), (0.75, True), (0.5, True), (0.25, False)]


def test_flow_model_generates_and_refuses_diffusion_samplers():
    from fashiondiff.recipes import RECIPES
    model = RECIPES["flow"].build().eval()
    images, xs = generate(model, torch.arange(3), model.sampling.replace(steps=2), trajectory=True)
    assert images.shape == (3, 1, 16, 16) and len(xs) == 3
    with pytest.raises(ValueError, match="samples with euler or heun"):
        generate(model, torch.arange(3), SamplingConfig("ddim", 2))
    assert SamplingConfig("ddim", 10, eta=0.5).replace(sampler="heun").eta == 0.0


@pytest.mark.parametrize("settings", [SamplingConfig("euler", 4, 2.0, (0.4, 4.0)), SamplingConfig("heun", 4, 2.0, (0.4, 4.0)),
                                      SamplingConfig("heun", 3, 1.0), SamplingConfig("euler", 5, 0.0),
                                      SamplingConfig("ddim", 5, 2.0, (0.5, 2.0), eta=0.0), SamplingConfig("ddpm", 10, 3.0)])
def test_network_calls_counts_what_the_samplers_do(settings):
    """Each guided evaluation runs the conditional and unconditional halves as one batch of 2N: count examples seen."""
    from fashiondiff.sampling import SAMPLERS
    from fashiondiff.schedule import NoiseSchedule
    seen = []

    class Counter(torch.nn.Module):
        label = SimpleNamespace(null=NULL)
        schedule, prediction, clip, sample_shape = NoiseSchedule(10, "cosine"), "x0", 1.0, (1, 2, 2)

        def forward(self, x, t, y):
            seen.append(len(x))
            return torch.zeros_like(x)

    SAMPLERS[settings.sampler].loop(Counter(), torch.zeros(3, dtype=torch.long), settings, torch.Generator().manual_seed(0))
    assert sum(seen) == 3 * network_calls(Counter(), settings)
