"""Classifier-free guidance (Ho & Salimans 2022), for any conditional denoiser ``model(x, t, y)``.

    pred = pred_uncond + w (pred_cond - pred_uncond)

w = 0 is the unconditional model (label = the null class), w = 1 the plain conditional one, w > 1 pushes away from
the unconditional prediction. Ho & Salimans write (1 + w') eps_c - w' eps_u: this w is their w' + 1. The same
combination applies whatever the network predicts (x0, eps, or a flow's velocity), because each is an affine
function of the other two at a fixed x_t and t.
"""

from __future__ import annotations

import torch


def full_precision(out: torch.Tensor) -> torch.Tensor:
    """A network's answer in fp32 if autocast made it bf16 or fp16; fp32 and fp64 answers as they are."""
    return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out


def predict(model, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor, guidance: float = 1.0) -> torch.Tensor:
    """The model's prediction with classifier-free guidance w = ``guidance`` (one batched call when w != 0, 1), in
    fp32: under bf16 autocast (``fashiondiff.precision``) the network answers in bf16, and the difference of two
    nearly equal predictions, scaled by w, is where bf16's 3 significant digits would show."""
    if guidance == 1.0:
        return full_precision(model(x_t, t, y))                                       # (N, C, H, W)
    null = torch.full_like(y, model.label.null)                                       # (N,)
    if guidance == 0.0:
        return full_precision(model(x_t, t, null))
    out = full_precision(model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])))  # (2N, C, H, W)
    cond, uncond = out.chunk(2)                                                        # 2 x (N, C, H, W)
    return uncond + guidance * (cond - uncond)
