"""Patches, attention, schedule, metrics and samplers checked against their mathematics."""
import math

import pytest
import torch
from torch.testing import assert_close

from fashiondiff.attention import (Attention, LinearAttention, elu_feature_map, linear_attention, linear_attention_explicit,
                                   softmax_attention)
from fashiondiff.diffusion import diffusion_loss, loss_weight, to_x0
from fashiondiff.stats import frechet_distance, gaussian_stats
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


@pytest.mark.parametrize("T", [10, 1000])
def test_cosine_abar_is_its_closed_form_and_the_last_step_is_clipped(T):
    """abar_t = f(t) / f(0), f(t) = cos^2(((t/T + s) / (1 + s)) pi/2), s = 0.008 (Nichol & Dhariwal 2021, eq. 17), for
    t < T; at t = T, f(T) = 0 makes beta_T = 1, clipped to 0.999: abar_T = abar_{T-1} / 1000."""
    def f(t):
        return math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2
    expected = [f(t) / f(0) for t in range(T)] + [f(T - 1) / f(0) / 1000]
    assert_close(NoiseSchedule(T, "cosine").abar, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=0)


@pytest.mark.parametrize("T", [10, 1000])
def test_linear_abar_is_the_product_of_ddpm_alphas(T):
    """beta_t = (1e-4 + (t - 1) (0.02 - 1e-4) / (T - 1)) 1000 / T, clipped at 0.999, and abar_t = prod_{s<=t} (1 - beta_s);
    at T = 1000 (DDPM's schedule) abar_T = 4.036e-5, as in DDPM's reference code."""
    betas = [min(0.999, (1e-4 + (t - 1) * (0.02 - 1e-4) / (T - 1)) * 1000 / T) for t in range(1, T + 1)]
    expected = [math.prod(1 - b for b in betas[:t]) for t in range(T + 1)]
    assert_close(NoiseSchedule(T, "linear").abar, torch.tensor(expected, dtype=torch.float64), rtol=1e-9, atol=0)
    if T == 1000:
        assert float(NoiseSchedule(T, "linear").abar[T]) == pytest.approx(4.0358e-5, rel=1e-4)


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


def cosine_betas_by_hand(T: int, s: float = 0.008) -> list[float]:
    """Nichol & Dhariwal 2021 eq. 17: abar_t = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2), so
    beta_t = 1 - abar_t/abar_{t-1} = 1 - f(t)/f(t-1), clipped at 0.999; entry 0 is t = 0 (beta 0)."""
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    return [0.0] + [min(1 - f[t] / f[t - 1], 0.999) for t in range(1, T + 1)]


def linear_betas_by_hand(T: int) -> list[float]:
    """Ho et al. 2020: beta_t linear from 1e-4 (t = 1) to 0.02 (t = T = 1000); for other T times 1000/T,
    clipped at 0.999; entry 0 is t = 0 (beta 0)."""
    return [0.0] + [min((1e-4 + (0.02 - 1e-4) * (t - 1) / (T - 1)) * 1000 / T, 0.999) for t in range(1, T + 1)]


@pytest.mark.parametrize("T", [10, 100, 1000])
@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_schedule_constants_are_the_papers(kind, T):
    """betas as the papers define them, alpha_t = 1 - beta_t and abar_t = prod_{s<=t} alpha_s, to 1e-12."""
    betas = (linear_betas_by_hand if kind == "linear" else cosine_betas_by_hand)(T)
    abar = [1.0]
    for b in betas[1:]:
        abar.append(abar[-1] * (1 - b))
    s = NoiseSchedule(T, kind)
    assert s.betas.dtype == s.alphas.dtype == s.abar.dtype == torch.float64 and s.abar.shape == (T + 1,)
    torch.testing.assert_close(s.betas, torch.tensor(betas, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(s.alphas, 1 - torch.tensor(betas, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(s.abar, torch.tensor(abar, dtype=torch.float64), rtol=1e-12, atol=1e-15)
    if kind == "cosine":                       # before the one clipped step (t = T), abar_t is f(t)/f(0) itself
        f = [math.cos((t / T + 0.008) / 1.008 * math.pi / 2) ** 2 for t in range(T)]
        torch.testing.assert_close(s.abar[:T], torch.tensor(f, dtype=torch.float64) / f[0], rtol=1e-12, atol=1e-15)
        assert s.betas[T] == 0.999 and (s.betas[:T] < 0.999).all()


def test_ddpm_linear_schedule_ends_where_ddpm_does():
    # DDPM's T = 1000 schedule keeps abar_T = 4.036e-5 of the signal variance (its alphas_cumprod[-1]).
    assert math.isclose(float(NoiseSchedule(1000, "linear").abar[-1]), 4.0358e-5, rel_tol=1e-4)


@pytest.mark.parametrize("T,kind", [(10, "cosine"), (1000, "linear")])
def test_conversions_between_x0_eps_and_x_t(T, kind):
    """x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (DDPM eq. 4) and its two inverses,
    eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) and x0 = (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t);
    SNR(t) = abar_t / (1 - abar_t). In float64 the package must agree to 1e-12, in float32 to float32 precision."""
    s = NoiseSchedule(T, kind)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(1, T + 1)
    x0, eps, x_t = torch.randn(3, T, 2, 3, 3, generator=g, dtype=torch.float64).unbind(0)
    ab = s.abar[1:].reshape(-1, 1, 1, 1)
    exact = dict(rtol=1e-12, atol=1e-12)
    # closed forms on unrelated x0, eps, x_t
    torch.testing.assert_close(s.q_sample(x0, t, eps), ab.sqrt() * x0 + (1 - ab).sqrt() * eps, **exact)
    torch.testing.assert_close(s.eps_from_x0(x_t, t, x0), (x_t - ab.sqrt() * x0) / (1 - ab).sqrt(), **exact)
    torch.testing.assert_close(s.x0_from_eps(x_t, t, eps), (x_t - (1 - ab).sqrt() * eps) / ab.sqrt(), **exact)
    torch.testing.assert_close(s.snr(t), s.abar[1:] / (1 - s.abar[1:]), **exact)
    assert (s.snr(t)[1:] < s.snr(t)[:-1]).all()
    # round trips: the noise that made x_t, and the x0 it came from
    xt = s.q_sample(x0, t, eps)
    torch.testing.assert_close(s.eps_from_x0(xt, t, x0), eps, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s.x0_from_eps(xt, t, eps), x0, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(s.q_sample(x0, torch.zeros_like(t), eps), x0, rtol=0, atol=0)    # t = 0 is clean
    # float32 inputs are computed in float32 (abar cast per call)
    x0f, epsf = x0.float(), eps.float()
    xtf = s.q_sample(x0f, t, epsf)
    assert xtf.dtype == torch.float32
    torch.testing.assert_close(xtf, xt.float())
    torch.testing.assert_close(s.eps_from_x0(xtf, t, x0f), epsf, rtol=1e-3, atol=1e-3)


# --- training loss -------------------------------------------------------------------------------

class Recorder(torch.nn.Module):
    """A stand-in denoiser: returns ``out`` (zeros if None) and records each call's (x_t, t)."""

    def __init__(self, out: torch.Tensor | None = None):
        super().__init__()
        self.out, self.seen = out, []

    def forward(self, x, t, y):
        self.seen.append((x.clone(), t.clone()))
        return torch.zeros_like(x) if self.out is None else self.out


@pytest.mark.parametrize("T", [10, 1000])
def test_the_loss_draws_t_uniformly_from_1_to_T_per_example(T):
    """t ~ U{1, ..., T}, one per example. Over n = 40,000 draws: 1 and T occur, nothing outside them, and Pearson's
    chi^2 = sum_t (count_t - n/T)^2 / (n/T) (T - 1 degrees of freedom: mean T - 1, sd sqrt(2 (T - 1))) stays
    below its mean + 6 sd."""
    s, model = NoiseSchedule(T, "cosine"), Recorder()
    g = torch.Generator().manual_seed(0)
    x0, y = torch.zeros(1000, 1), torch.zeros(1000, dtype=torch.long)
    for _ in range(40):
        diffusion_loss(model, s, x0, y, g, p_uncond=0)
    ts = [t for _, t in model.seen]
    assert all(t.dtype == torch.long and t.shape == (1000,) and len(t.unique()) > 1 for t in ts)   # per example
    t = torch.cat(ts)
    assert t.min() == 1 and t.max() == T
    e = len(t) / T
    chi2 = float(((torch.bincount(t, minlength=T + 1)[1:] - e) ** 2 / e).sum())
    assert chi2 < T - 1 + 6 * math.sqrt(2 * (T - 1)), chi2


@pytest.mark.parametrize("prediction", ["x0", "eps", "v"])
def test_the_loss_is_the_mse_to_x0_or_to_the_noise_that_made_x_t(prediction):
    """From the (x_t, t) the model saw, eps = (x_t - sqrt(abar_t) x0) / sqrt(1 - abar_t) must be standard normal
    noise, independent of x0 (5 standard errors on n = 16,000 values), and the loss mean (out - target)^2 with
    target x0 (prediction "x0"), that eps ("eps") or v = sqrt(abar_t) eps - sqrt(1 - abar_t) x0 ("v")."""
    s = NoiseSchedule(1000, "linear")
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(4000, 1, 2, 2, generator=g) * 2 - 1
    out = torch.randn(x0.shape, generator=g)
    model = Recorder(out)
    loss = diffusion_loss(model, s, x0, torch.zeros(4000, dtype=torch.long), torch.Generator().manual_seed(1),
                          prediction=prediction, p_uncond=0)
    (x_t, t), = model.seen
    ab = s.abar[t].reshape(-1, 1, 1, 1)
    eps = (x_t.double() - ab.sqrt() * x0.double()) / (1 - ab).sqrt()
    n = eps.numel()
    assert abs(float(eps.mean())) < 5 / math.sqrt(n) and abs(float(eps.var()) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float(torch.corrcoef(torch.stack([eps.flatten(), x0.double().flatten()]))[0, 1])) < 5 / math.sqrt(n)
    target = {"x0": x0.double(), "eps": eps, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0.double()}[prediction]
    assert math.isclose(float(loss), float((out.double() - target).pow(2).mean()), rel_tol=1e-4)


@pytest.mark.parametrize("T,kind", [(10, "cosine"), (1000, "linear")])
def test_the_three_errors_weigh_one_x0_error_by_snr_and_min_snr_evens_them(T, kind):
    """At one x_t, an error d in x0_hat is an error -sqrt(SNR) d in eps_hat and -sqrt(SNR + 1) d in v_hat: the
    eps-MSE is SNR times the x0-MSE, the v-MSE (SNR + 1) times (Salimans & Ho 2022). Each target's min-SNR weight
    (Hang et al. 2023) turns its own MSE into min(SNR, 5) times the x0-MSE."""
    s = NoiseSchedule(T, kind)
    g = torch.Generator().manual_seed(0)
    t = torch.arange(1, T + 1)
    x0 = torch.randn(T, 1, 2, 2, generator=g, dtype=torch.float64)
    x0_hat = x0 + 0.1 * torch.randn(x0.shape, generator=g, dtype=torch.float64)
    noise = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    x_t = s.q_sample(x0, t, noise)
    ab = s.abar[t].reshape(-1, 1, 1, 1)
    eps_hat = (x_t - ab.sqrt() * x0_hat) / (1 - ab).sqrt()                             # the same guess, as eps
    v_hat = ab.sqrt() * eps_hat - (1 - ab).sqrt() * x0_hat                             # and as v
    mse = lambda a, b: (a - b).pow(2).flatten(1).mean(1)                               # noqa: E731
    err = {"x0": mse(x0_hat, x0), "eps": mse(eps_hat, noise), "v": mse(v_hat, s.v_from(x0, noise, t))}
    snr = s.snr(t)
    assert_close(err["eps"], snr * err["x0"])
    assert_close(err["v"], (snr + 1) * err["x0"])
    for prediction, e in err.items():
        assert_close(loss_weight(s, t, prediction, "none").double() * e, e)
        assert_close(loss_weight(s, t, prediction, "min-snr").double() * e, snr.clamp(max=5) * err["x0"], rtol=1e-5, atol=1e-12)
        assert_close(to_x0(s, x_t, t, {"x0": x0, "eps": noise, "v": s.v_from(x0, noise, t)}[prediction], prediction), x0)


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
