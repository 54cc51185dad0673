"""The lessons' self-checks pass a right answer and fail the common wrong ones, without raising."""

import struct

import torch

from fashiondiff import attention, check, patches


def test_tweedie_check():
    assert check.tweedie(lambda x, ab, score: (x + (1 - ab) * score) / ab.sqrt())
    assert not check.tweedie(lambda x, ab, score: x + (1 - ab) * score)                 # forgot to rescale
    assert not check.tweedie(lambda x, ab, score: (x - (1 - ab) * score) / ab.sqrt())   # score's sign


def test_v_target_check():
    assert check.v_target(lambda x0, eps, ab: ab.sqrt() * eps - (1 - ab).sqrt() * x0)
    assert not check.v_target(lambda x0, eps, ab: ab.sqrt() * x0 - (1 - ab).sqrt() * eps)   # roles swapped
    assert not check.v_target(lambda x0, eps, ab: eps - x0)                                # the flow's target


def test_euler_step_check(capsys):
    assert check.euler_step(lambda x, v, t, t_next: x + (t_next - t) * v)
    assert not check.euler_step(lambda x, v, t, t_next: x + (t - t_next) * v)            # wrong direction
    assert "backwards" in capsys.readouterr().out
    assert not check.euler_step(lambda x, v, t, t_next: (x + (t_next - t) * v)[:1])      # wrong shape


def test_closest_classes_check(capsys):
    # the answer is computed from the training set, so this also pins the lesson's stated answer (notebook 00)
    assert check.closest_classes("Pullover", "Coat") and check.closest_classes(4, 2)
    assert not check.closest_classes("Shirt", "Pullover")                              # second closest
    assert not check.closest_classes("Coat", "Coat")                                   # the diagonal
    assert "diagonal" in capsys.readouterr().out


def test_most_aliased_class_check(capsys):
    # computed from the training set, so this also pins the lesson's stated answer (notebook 00)
    assert check.most_aliased_class("Pullover") and check.most_aliased_class(2)
    assert not check.most_aliased_class("Sneaker")                                    # the least aliased
    assert "largest" in capsys.readouterr().out


def _header(t, order=">"):
    return struct.pack(f"{order}4B{t.dim()}I", 0, 0, 0x08, t.dim(), *t.shape)


def test_idx_header_check(capsys):
    assert check.idx_header(_header)
    assert not check.idx_header(lambda t: _header(t, "<"))                                 # little-endian sizes
    assert "big-endian" in capsys.readouterr().out
    assert not check.idx_header(lambda t: struct.pack(f">4B{t.dim()}I", 0, 0, 0x0D, t.dim(), *t.shape))   # float type


def test_patchify_check():
    assert check.patchify(patches.patchify, patches.unpatchify)
    # tokens in column-major order: right shape, wrong patches
    assert not check.patchify(lambda x, p: patches.patchify(x.transpose(-2, -1), p))
    # a flat reshape without the permute: right shape, pixels of a row of patches mixed together
    assert not check.patchify(lambda x, p: x.reshape(x.shape[0], -1, x.shape[1] * p * p))
    assert not check.patchify(patches.patchify, lambda t, p: patches.unpatchify(t, p).transpose(-2, -1))


def _causal(q, k, v, running_normaliser=True):
    fq, fk = attention.elu_feature_map(q), attention.elu_feature_map(k)
    s = torch.cumsum(fk.unsqueeze(-1) * v.unsqueeze(-2), dim=-3)
    z = torch.cumsum(fk, dim=-2) if running_normaliser else fk.sum(-2, keepdim=True)
    return torch.einsum("...nd,...nde->...ne", fq, s) / (fq * z).sum(-1, keepdim=True)


def test_causal_linear_attention_check(capsys):
    assert check.causal_linear_attention(_causal)
    assert not check.causal_linear_attention(attention.linear_attention)                   # not causal
    assert "non-causal" in capsys.readouterr().out
    # normalised by the total sum instead of the running one
    assert not check.causal_linear_attention(lambda q, k, v: _causal(q, k, v, running_normaliser=False))


def test_linear_schedule_end_check():
    # the closed form: prod_t (1 - beta_t) = 1e-3 with beta linear from 0.01 has its root near 0.84 (notebook 03)
    assert check.linear_schedule_end(0.84)
    assert not check.linear_schedule_end(0.5)                                              # too little noise
    assert not check.linear_schedule_end(0.95)                                             # too much
    assert not check.linear_schedule_end(1.2)                                              # clipped


# Notebook 13: each "which of three has the bug?" check passes its culprit and fails a right version, and the
# culprit is the one the notebook's diagnostic finds (on small stand-ins for the notebook's models).

import types

import pytest

from fashiondiff.classifier import FashionClassifier
from fashiondiff.metrics import Evaluator
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.transformer import TransformerDenoiser


@pytest.mark.parametrize("fn, right, wrong", [
    (check.abar_index_bug, "B", "A"), (check.label_dropout_bug, "C", "B"), (check.ema_bug, "A", "C"),
    (check.clamp_bug, "c", "A"), (check.train_mode_bug, "B", "C"), (check.data_range_bug, "A", "B"),
    (check.learning_rate_bug, "C", "A"), (check.fid_bug, "C", "B")])
def test_which_has_the_bug_checks(fn, right, wrong, capsys):
    assert fn(right) and not fn(wrong) and not fn("D")
    assert "A, B or C" in capsys.readouterr().out


class _Recorder(torch.nn.Module):
    """Stands in for a denoiser: records the t and y it is called with, predicts x0 = 0."""
    def __init__(self):
        super().__init__()
        self.schedule, self.label, self.seen = NoiseSchedule(10, "cosine"), types.SimpleNamespace(null=10), []
        self.label.drop = lambda y, p, g=None: torch.where(torch.rand(y.shape, generator=g) < p, 10, y)
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, t, y):
        self.seen.append((t[0].item(), y.clone()))
        return x * self.w


def test_abar_culprit_calls_the_network_one_step_early():
    for letter, fn in check.suspects("abar").items():
        rec = _Recorder()
        fn(rec, torch.zeros(4, dtype=torch.long), torch.Generator().manual_seed(0))
        assert ([t for t, _ in rec.seen] == list(range(9, -1, -1))) == (letter == "B"), letter


def test_dropout_culprit_never_shows_the_null_label():
    x0, y = torch.zeros(256, 1, 16, 16), torch.arange(256) % 10
    for letter, fn in check.suspects("dropout").items():
        rec = _Recorder()
        fn(rec, x0, y, torch.Generator().manual_seed(0))
        share = float((rec.seen[0][1] == 10).float().mean())
        assert (share == 0) == (letter == "C") and (letter == "C" or 0.05 < share < 0.15), (letter, share)


def test_ema_data_range_and_lr_culprits():
    result = types.SimpleNamespace(model=torch.nn.Linear(2, 2), ema=torch.nn.Linear(2, 2))
    assert [k for k, fn in check.suspects("ema").items() if fn(result) is result.model] == ["A"]
    images = torch.randint(0, 256, (8, 28, 28), dtype=torch.uint8)
    assert [k for k, fn in check.suspects("data_range").items() if fn(images).min() >= 0] == ["A"]
    jumps = {}
    for k, fn in check.suspects("lr").items():
        torch.manual_seed(0)
        net = torch.nn.Linear(4, 4)
        before = net.weight.detach().clone()
        opt = fn(net)
        net(torch.randn(8, 4)).square().mean().backward()
        opt.step()
        jumps[k] = float((net.weight.detach() - before).norm() / before.norm())
    assert max(jumps, key=jumps.get) == "C" and jumps["C"] > 20 * max(jumps["A"], jumps["B"])


def test_clamp_culprit_leaves_the_pixel_range():
    torch.manual_seed(0)
    model = TransformerDenoiser(dim=16, heads=2, layers=1, ff_dim=16, prediction="eps").eval()
    torch.nn.init.normal_(model.out.weight, std=0.1)                   # an untrained model with some error
    y = torch.arange(4)
    outside = {k: float((fn(model, y, torch.Generator().manual_seed(0)).abs() > 1).float().mean())
               for k, fn in check.suspects("clamp").items()}
    assert outside["A"] == outside["B"] == 0 and outside["C"] > 0.1, outside


def test_train_mode_and_fid_culprits():
    torch.manual_seed(0)
    net = FashionClassifier(width=4, feature_dim=8)
    with torch.no_grad():                                                # running statistics far from 0 and 1
        net.train()(torch.randn(64, 1, 28, 28) * 3 + 1)
    x = torch.randn(20, 1, 28, 28)
    gaps = {k: float((fn(x[:2]) - fn(x)[:2]).abs().max()) for k, fn in check.suspects("train_mode", net).items()}
    assert gaps["A"] < 1e-5 and gaps["C"] < 1e-5 and gaps["B"] > 1e-3, gaps
    assert net.training, "the suspects must not change the caller's classifier"
    wide = FashionClassifier(width=4, feature_dim=32).eval()             # 32 features: 64 images are few
    real = torch.randn(1000, 1, 28, 28)
    ev = Evaluator(wide, reference=real[:500], real=real[500:])
    floors = {k: fn(real[500:]) for k, fn in check.suspects("fid", ev).items()}
    assert floors["C"] > 2 * max(floors["A"], floors["B"]), floors


# The exercises of notebooks 02, 03, 04, 05, 07 and 11: each check passes the right answer and fails a common wrong one.

def test_attention_repairs_check(capsys):
    def a(q, k, v):
        fq, fk = q.softmax(-1), k.softmax(-1)
        return (fq @ (fk.transpose(-2, -1) @ v)) / (fq @ fk.sum(-2).unsqueeze(-1))

    def b(q, k, v):
        return q.softmax(-1) @ (k.softmax(-2).transpose(-2, -1) @ v)

    def mistake(q, k, v):                                            # notebook 02's unnormalised_attention
        return q.softmax(-1) @ (k.softmax(-1).transpose(-2, -1) @ v)

    assert check.attention_repairs(a, b)
    assert not check.attention_repairs(a, mistake)                    # (b) with k's softmax still over features
    assert "not an average" in capsys.readouterr().out
    assert not check.attention_repairs(b, b)                          # (b) passed as (a): an average, other weights


def _posterior_x3(x0, m=4000, s=3, std=True, seed=0):
    sched, g = NoiseSchedule(10, "cosine"), torch.Generator().manual_seed(seed)
    x0_many = x0.expand(m, -1, -1, -1)
    x8 = sched.q_sample(x0_many, torch.full((m,), 8), torch.randn(x0_many.shape, generator=g))
    mean, var = sched.posterior(x0_many, x8, torch.full((m,), 8), None if s is None else torch.full((m,), s))
    return mean + (var.sqrt() if std else var) * torch.randn(x8.shape, generator=g)


def test_posterior_samples_check(capsys):
    x0 = torch.rand(1, 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    assert check.posterior_samples(_posterior_x3(x0), x0) and check.posterior_samples(_posterior_x3(x0, seed=1), x0[0])
    assert not check.posterior_samples(_posterior_x3(x0, std=False), x0)          # the variance used as the std
    assert "standard deviation" in capsys.readouterr().out
    assert not check.posterior_samples(_posterior_x3(x0, s=None), x0)             # s left out: x_7, not x_3
    assert "s = 3" in capsys.readouterr().out
    assert not check.posterior_samples(_posterior_x3(x0, m=50), x0)               # too few to tell


def test_sampler_without_clamp_check(capsys):
    torch.manual_seed(0)
    model = TransformerDenoiser(dim=16, heads=2, layers=1, ff_dim=16).eval()
    torch.nn.init.normal_(model.out.weight, std=1.0)                   # an untrained model that overshoots [-1, 1]

    @torch.no_grad()
    def by_hand(model, y, g, clamp=False):
        s, x = model.schedule, torch.randn((len(y), 1, 16, 16), generator=g)
        for t in range(s.T, 0, -1):
            tt = torch.full((len(y),), t)
            x0 = model(x, tt, y)
            x0 = x0.clamp(-1, 1) if clamp else x0
            if t == 1:
                return x0
            mean, var = s.posterior(x0, x, tt)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=g)

    assert check.sampler_without_clamp(by_hand, model)
    assert "outside [-1, 1]" in capsys.readouterr().out
    assert not check.sampler_without_clamp(lambda m, y, g: by_hand(m, y, g, clamp=True), model)   # clamp kept
    assert "still there" in capsys.readouterr().out
    assert not check.sampler_without_clamp(lambda m, y, g: by_hand(m, y, g).clamp(-1, 1), model)  # clamped at the end


def test_useful_at_small_n_check(capsys):
    assert check.useful_at_small_n("kid") and check.useful_at_small_n(" KID ")
    assert not check.useful_at_small_n("fid / real_fid")                 # the ratio looks best exactly when it lies
    assert not check.useful_at_small_n("fid") and not check.useful_at_small_n("real_fid")
    assert not check.useful_at_small_n("precision")
    assert "answer with one of" in capsys.readouterr().out


def test_latent_share_outside_check(capsys):
    # computed from the bundled VAE, so this also pins the lesson's stored answer (notebook 07: 0.31)
    assert check.latent_share_outside(0.31)
    assert not check.latent_share_outside(0.0)                           # measured after the clamp
    assert not check.latent_share_outside(0.69)                          # the share inside
    assert "inside" in capsys.readouterr().out


def test_min_snr_weights_check(capsys):
    assert check.min_snr_weights(lambda snr: snr.clamp(max=5) / snr, lambda snr: snr.clamp(max=5) / (snr + 1))
    assert not check.min_snr_weights(lambda snr: snr.clamp(max=5), lambda snr: snr.clamp(max=5) / (snr + 1))
    assert "already weights the x0 error by SNR:" in capsys.readouterr().out       # the weight on ||d||^2 itself
    assert not check.min_snr_weights(lambda snr: snr.clamp(max=5) / snr, lambda snr: snr.clamp(max=5) / snr)
    assert "SNR + 1" in capsys.readouterr().out                                     # v treated like eps


# ----------------------------------------------------------------------------------------------------------------
# Notebooks 08 and 09: guided_calls (08, exercise 2) and hardest_class (09, exercise 1).

def test_guided_calls_check(capsys):
    assert check.guided_calls(lambda st, sc: sum(st.calls_at(sc.sigma(t)) for t in sc.timesteps(st.steps)))
    # two calls at every step whenever w != 1: ignores the interval (and w = 0's single call)
    assert not check.guided_calls(lambda st, sc: st.steps * (1 if st.guidance == 1 else 2))
    assert "inside the interval" in capsys.readouterr().out
    assert not check.guided_calls(lambda st, sc: st.steps)                                # one call per step
    assert "two calls" in capsys.readouterr().out


def test_hardest_class_check(capsys):
    # computed from the bundled generator's samples and the test set, so this also pins notebook 09's stated answer
    assert check.hardest_class("T-shirt/top", "Shirt") and check.hardest_class(0, 6)
    assert not check.hardest_class("T-shirt/top", "T-shirt/top")     # the predicted class of the biggest mix-up
    assert "diagonal" in capsys.readouterr().out
    assert not check.hardest_class("Trouser", "Shirt")               # the argmax: the easiest class
    assert "argmin" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------
# Part 4: edm_preconditioning (notebook 14) and dpm_2m_step (notebook 15).

def test_edm_preconditioning_check(capsys):
    def right(s, sd):
        return sd ** 2 / (s ** 2 + sd ** 2), s * sd / (s ** 2 + sd ** 2).sqrt(), 1 / (s ** 2 + sd ** 2).sqrt()
    assert check.edm_preconditioning(right)
    # c_out without sigma_data: right only for sigma_data = 1
    assert not check.edm_preconditioning(lambda s, sd: (right(s, sd)[0], s / (s ** 2 + sd ** 2).sqrt(), right(s, sd)[2]))
    assert "c_out" in capsys.readouterr().out


def test_dpm_2m_step_check(capsys):
    import math

    def step(x, d, d_prev, sp, s, sn, ratio):
        r = ratio(sp, s, sn)
        return (sn / s) * x + (1 - sn / s) * ((1 + 1 / (2 * r)) * d - 1 / (2 * r) * d_prev)
    assert check.dpm_2m_step(lambda *a: step(*a, lambda sp, s, sn: math.log(sp / s) / math.log(s / sn)))
    # r measured in sigma instead of lambda = -log sigma
    assert not check.dpm_2m_step(lambda *a: step(*a, lambda sp, s, sn: (sp - s) / (s - sn)))
    assert "lambda" in capsys.readouterr().out


# Part 5: classifier_shift and slerp (notebook 17), against the package's own functions and a common wrong answer.

def test_classifier_shift_check(capsys):
    from fashiondiff import editing
    from fashiondiff.solvers import Level
    right = lambda x0, g, a, s, w: editing.guide_x0(x0, g, Level(a, s, 0), w)             # noqa: E731
    assert check.classifier_shift(right)
    assert not check.classifier_shift(lambda x0, g, a, s, w: x0 + w * s * g)               # eps's scale, not x0's
    assert not check.classifier_shift(lambda x0, g, a, s, w: x0 + w * s ** 2 * g)          # alpha forgotten
    assert "Tweedie" in capsys.readouterr().out


def test_slerp_check(capsys):
    from fashiondiff import editing
    assert check.slerp(editing.slerp)
    assert not check.slerp(lambda a, b, t: (1 - t) * a + t * b)                           # a straight line
    theta = lambda a, b: torch.arccos((a * b).sum() / (a.norm() * b.norm()))              # noqa: E731 one angle for all
    assert not check.slerp(lambda a, b, t: (((1 - t) * theta(a, b)).sin() * a + (t * theta(a, b)).sin() * b)
                           / theta(a, b).sin())
    assert "angle" in capsys.readouterr().out
