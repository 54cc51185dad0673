"""Patches, attention, schedule, metrics and samplers checked against their mathematics."""
import math

import pytest
import torch

from fashiondiff.attention import (Attention, LinearAttention, elu_feature_map, linear_attention, linear_attention_explicit,
                                   softmax_attention)
from fashiondiff.diffusion import sample
from fashiondiff.metrics import frechet_distance, gaussian_stats
from fashiondiff.patches import PatchEmbedding, PositionalEncoding, patchify, sincos_2d, unpatchify
from fashiondiff.schedule import NoiseSchedule


# --- patches -------------------------------------------------------------------------------------

def test_patchify_round_trip_and_patch_content():
    x = torch.randn(3, 1, 16, 16)
    tokens = patchify(x, 2)
    assert tokens.shape == (3, 64, 4)
    assert torch.equal(tokens[0, 9], x[0, 0, 2:4, 2:4].flatten())     # token 9 = row 1, column 1
    assert torch.equal(unpatchify(tokens, 2, 1), x)


def test_patch_embedding_is_a_linear_map_of_each_patch():
    emb = PatchEmbedding(1, 8, 2)
    x = torch.randn(2, 1, 16, 16)
    by_hand = patchify(x, 2) @ emb.proj.weight.reshape(8, 4).T + emb.proj.bias
    torch.testing.assert_close(emb(x), by_hand)


def test_sincos_positions_are_distinct_and_neighbours_similar():
    pos = sincos_2d(8, 64)
    sim = torch.nn.functional.normalize(pos, dim=1) @ torch.nn.functional.normalize(pos, dim=1).T
    assert sim.diag().allclose(torch.ones(64))
    assert (sim - torch.eye(64)).max() < 0.999
    assert sim[0, 1] > sim[0, 7]                                      # a neighbour is more alike than a far cell
    assert PositionalEncoding(64, 16, "learned").pos.requires_grad


# --- attention -----------------------------------------------------------------------------------

@pytest.mark.parametrize("compiled", [False, True])
def test_feature_map_is_elu_plus_one_with_its_gradient_and_finite_everywhere(compiled):
    """Eager and compiled spellings of phi are elu(x) + 1, with elu's gradient (1 at x = 0), and stay finite."""
    phi_fn = torch.compile(elu_feature_map) if compiled else elu_feature_map
    x = torch.cat([torch.linspace(-30, 30, 2001), torch.tensor([-1e4, -100.0, 0.0, 100.0, 1e4])]).double().requires_grad_()
    phi = phi_fn(x)
    grad, = torch.autograd.grad(phi.sum(), x)
    y = x.detach().clone().requires_grad_()
    ref = torch.nn.functional.elu(y) + 1
    ref_grad, = torch.autograd.grad(ref.sum(), y)
    torch.testing.assert_close(phi, ref)
    torch.testing.assert_close(grad, ref_grad)
    assert (phi >= 0).all() and (phi[x > -50] > 0).all() and torch.isfinite(grad).all()   # exp underflows at -1e4


def test_linear_attention_equals_explicit_kernel_form():
    q, k, v = torch.randn(3, 2, 4, 50, 16, dtype=torch.float64).unbind(0)
    torch.testing.assert_close(linear_attention(q, k, v, eps=0), linear_attention_explicit(q, k, v))


def test_linear_attention_outputs_are_convex_combinations_of_values():
    q, k = torch.randn(2, 1, 30, 8).unbind(0)
    v = torch.rand(1, 30, 8)
    out = linear_attention(q, k, v)
    assert (out >= v.min(dim=1).values - 1e-5).all() and (out <= v.max(dim=1).values + 1e-5).all()
    const = torch.full((1, 30, 8), 3.0)                               # averaging a constant gives the constant
    torch.testing.assert_close(linear_attention(q, k, const), const)


def test_softmax_attention_matches_torch_sdpa_and_modules_share_interface():
    q, k, v = torch.randn(3, 2, 4, 20, 8).unbind(0)
    torch.testing.assert_close(softmax_attention(q, k, v), torch.nn.functional.scaled_dot_product_attention(q, k, v))
    x = torch.randn(2, 64, 32)
    a, b = Attention(32, 4), LinearAttention(32, 4)
    b.load_state_dict(a.state_dict())
    assert a(x).shape == b(x).shape == x.shape


def test_attention_is_permutation_equivariant():
    x = torch.randn(1, 10, 16)
    perm = torch.randperm(10)
    m = LinearAttention(16, 2)
    torch.testing.assert_close(m(x)[:, perm], m(x[:, perm]))


# --- schedule ------------------------------------------------------------------------------------

@pytest.mark.parametrize("T,kind", [(10, "cosine"), (10, "linear"), (1000, "linear"), (1000, "cosine")])
def test_abar_is_monotone_and_starts_at_one(T, kind):
    s = NoiseSchedule(T, kind)
    assert s.abar[0] == 1 and (s.abar[1:] < s.abar[:-1]).all() and (s.abar > 0).all()
    assert torch.allclose(s.abar, torch.cumprod(1 - s.betas, 0))


def test_cosine_reaches_noise_and_linear_ddpm_values():
    assert NoiseSchedule(10, "cosine").abar[-1] < 1e-3
    s = NoiseSchedule(1000, "linear")
    assert math.isclose(float(s.betas[1]), 1e-4) and math.isclose(float(s.betas[1000]), 0.02)
    assert float(s.abar[-1]) < 1e-4
    # The trap notebook 03 shows: scaled to T = 10, the linear schedule spends most steps on pure noise.
    assert (NoiseSchedule(10, "linear").abar[1:] < 0.02).sum() >= 5
    assert (NoiseSchedule(10, "cosine").abar[1:] < 0.02).sum() == 1


def test_q_sample_moments():
    s = NoiseSchedule(10, "cosine")
    x0 = torch.full((200_000, 1), 0.6)
    t = torch.full((200_000,), 4)
    xt = s.q_sample(x0, t, torch.randn_like(x0))
    ab = float(s.abar[4])
    assert abs(xt.mean() - math.sqrt(ab) * 0.6) < 0.01
    assert abs(xt.var() - (1 - ab)) < 0.01


def test_posterior_matches_ddpm_formula():
    s = NoiseSchedule(10, "cosine")
    x0, xt = torch.randn(5, 3), torch.randn(5, 3)
    t = torch.tensor([2, 3, 5, 7, 10])
    mean, var = s.posterior(x0, xt, t)
    b, a, ab, ab_prev = s.betas[t], s.alphas[t], s.abar[t], s.abar[t - 1]
    mean_ref = (ab_prev.sqrt() * b / (1 - ab))[:, None] * x0 + (a.sqrt() * (1 - ab_prev) / (1 - ab))[:, None] * xt
    torch.testing.assert_close(mean, mean_ref.float())
    torch.testing.assert_close(var.squeeze(1), ((1 - ab_prev) / (1 - ab) * b).float())


def test_posterior_is_consistent_with_the_forward_process():
    # If x_t ~ q(x_t|x_0) and x_s ~ q(x_s|x_t,x_0) then x_s ~ q(x_s|x_0): check mean and variance.
    s = NoiseSchedule(10, "cosine")
    x0 = torch.full((400_000, 1), -0.3)
    t, sprev = torch.full((400_000,), 8), torch.full((400_000,), 3)
    xt = s.q_sample(x0, t, torch.randn_like(x0))
    mean, var = s.posterior(x0, xt, t, sprev)
    xs = mean + var.sqrt() * torch.randn_like(xt)
    ab = float(s.abar[3])
    assert abs(xs.mean() - math.sqrt(ab) * -0.3) < 0.01 and abs(xs.var() - (1 - ab)) < 0.01


def test_timesteps_strided():
    s = NoiseSchedule(1000, "linear")
    assert s.timesteps(4) == [1000, 667, 334, 1]
    assert s.timesteps() == list(range(1000, 0, -1))
    with pytest.raises(ValueError):
        s.timesteps(0)


def test_samplers_with_an_oracle_denoiser_recover_the_data():
    # A "model" that knows x0 exactly: both samplers must land on x0.
    target = torch.rand(4, 1, 4, 4) * 2 - 1

    class Oracle(torch.nn.Module):
        label = type("L", (), {"null": 10})()

        def forward(self, x, t, y):
            return target
    s = NoiseSchedule(10, "cosine")
    for sampler in ("ddpm", "ddim"):
        out = sample(Oracle(), s, torch.zeros(4, dtype=torch.long), (1, 4, 4), sampler=sampler,
                     generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(out, target)


# --- metrics -------------------------------------------------------------------------------------

def test_frechet_distance_closed_form():
    # Diagonal covariances: d^2 = |mu1-mu2|^2 + sum (sqrt(a_i) - sqrt(b_i))^2
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 9.0]), torch.tensor([4.0, 1.0, 1.0])
    expected = 1 + 4 + (1 + 1 + 4)
    assert math.isclose(frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)), expected, rel_tol=1e-9)
    # A rotation of both covariances changes nothing.
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    d = frechet_distance(q @ mu1.double(), q @ torch.diag(a).double() @ q.T, q @ mu2.double(), q @ torch.diag(b).double() @ q.T)
    assert math.isclose(d, expected, rel_tol=1e-7)


def test_frechet_distance_of_a_set_to_itself_is_zero_and_sampling_estimates_converge():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(5000, 8, generator=g)
    assert frechet_distance(*gaussian_stats(f), *gaussian_stats(f)) < 1e-8
    shifted = torch.randn(5000, 8, generator=g) * 2 + 0.5
    est = frechet_distance(*gaussian_stats(f), *gaussian_stats(shifted))
    exact = 8 * 0.25 + 8 * (1 - 2) ** 2                                # |mu|^2 + sum (1 - 2)^2
    assert abs(est - exact) / exact < 0.1


def test_patch_embedding_linear_path_equals_its_convolution():
    emb = PatchEmbedding(1, 16, 2)
    x = torch.randn(3, 1, 16, 16)
    torch.testing.assert_close(emb(x), emb.conv_forward(x))


def test_ema_without_warm_up_keeps_decay_to_the_n_of_the_initial_weights_and_with_it_forgets_them():
    import torch.nn as nn
    from fashiondiff.training import EMA
    model = nn.Linear(4, 4)
    nn.init.zeros_(model.weight)                                    # like a zero-initialised output layer
    plain, warm = EMA(model, 0.9995), EMA(model, 0.9995)
    nn.init.ones_(model.weight)                                     # the trained weights, held fixed
    for step in range(200):
        plain.update(model)
        warm.update(model, step)
    expected = 1 - 0.9995 ** 200                                    # closed form: 0.0952 of the way to the weights
    torch.testing.assert_close(plain.model.weight, torch.full((4, 4), expected), rtol=1e-4, atol=1e-5)
    assert (warm.model.weight > 0.999).all()                        # prod (1+n)/(10+n) over 200 steps ~ 1e-19
