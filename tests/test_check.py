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
