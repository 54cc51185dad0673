"""Multi-head attention, softmax and linear.

Softmax attention (Vaswani et al. 2017): out_i = sum_j softmax_j(q_i . k_j / sqrt(d)) v_j, which costs
O(N^2 d) for N tokens. Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", eq. 4-6)
replaces exp(q . k) by a kernel phi(q) . phi(k) with phi(x) = elu(x) + 1 > 0, so that

    out_i = phi(q_i)^T (sum_j phi(k_j) v_j^T) / (phi(q_i)^T sum_j phi(k_j))

The two sums do not depend on i: compute them once, O(N d^2) in all. The denominator is what makes
the weights sum to one; without it (or with a softmax over the feature axis instead) the output's
scale grows with N and it is no longer an average of the values.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1, positive everywhere (Katharopoulos et al. 2020, eq. 7).

    elu(x) + 1 is x + 1 for x > 0 and exp(x) otherwise, that is (x - m) + exp(m) with m = min(x, 0): the same values
    and gradient. Under torch.compile the second spelling fuses into faster code (exp in place of expm1); run
    eagerly, torch's own elu kernel is the faster one."""
    if torch.compiler.is_compiling():
        m = x.clamp(max=0)
        return x - m + m.exp()
    return F.elu(x) + 1


def softmax_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(..., N, d) x3 -> (..., N, d), the explicit N x N form."""
    weights = (q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5).softmax(dim=-1)   # (..., N, N)
    return weights @ v                                                          # (..., N, d)


def linear_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(..., N, d) x3 -> (..., N, d) in O(N d^2): phi(Q) (phi(K)^T V) / (phi(Q) . sum_j phi(K_j))."""
    q, k = elu_feature_map(q), elu_feature_map(k)
    kv = k.transpose(-2, -1) @ v                                     # (..., d, d)   sum_j phi(k_j) v_j^T
    z = q @ k.sum(dim=-2).unsqueeze(-1)                              # (..., N, 1)   phi(q_i) . sum_j phi(k_j)
    return (q @ kv) / (z + eps)                                      # (..., N, d)


def linear_attention_explicit(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The same as ``linear_attention`` written with the N x N matrix of kernel weights (for checking)."""
    weights = elu_feature_map(q) @ elu_feature_map(k).transpose(-2, -1)         # (..., N, N)
    return (weights / weights.sum(dim=-1, keepdim=True)) @ v                    # (..., N, d)


class Attention(nn.Module):
    """Multi-head softmax self-attention: (N, T, dim) -> (N, T, dim). Uses torch's fused SDPA kernel."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        qkv = self.qkv(x).reshape(n, t, 3, self.heads, d // self.heads)          # (N, T, 3, H, d/H)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)                          # 3 x (N, H, T, d/H)
        out = self.attend(q, k, v)                                              # (N, H, T, d/H)
        return self.proj(out.transpose(1, 2).reshape(n, t, d))                  # (N, T, dim)


class LinearAttention(Attention):
    """Multi-head linear attention with the elu+1 feature map and its normaliser; same interface as ``Attention``."""

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return linear_attention(q, k, v)
