"""Self-checks for the lessons' exercises: call one on your own function, it prints what is right or wrong.

    from fashiondiff import check
    check.tweedie(my_tweedie)          # notebook 09
    check.v_target(my_v)               # notebook 10
    check.euler_step(my_step)          # notebook 11

Each compares your function with the course's on random inputs (several noise levels, several shapes), prints one
line per finding, and returns True when everything matches. It never raises on a wrong answer: a wrong answer is
what it is for. It does raise when your function crashes, so you see the traceback.
"""

from __future__ import annotations

import torch

from .schedule import NoiseSchedule

TOLERANCE = 1e-4


def _report(name: str, got: torch.Tensor, want: torch.Tensor, hint: str) -> bool:
    got = torch.as_tensor(got)
    if got.shape != want.shape:
        print(f"✗ {name}: shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        return False
    err = float((got.double() - want.double()).abs().max())
    if err <= TOLERANCE * (1 + float(want.abs().max())):
        print(f"✓ {name}: matches (largest difference {err:.1e})")
        return True
    print(f"✗ {name}: off by up to {err:.3g}. {hint}")
    return False


def tweedie(fn) -> bool:
    """``fn(x_t, abar, score) -> x0_hat``: Tweedie's E[x_0 | x_t] = (x_t + (1 - abar) score) / sqrt(abar),
    x_t and score (N, 2), abar (N, 1)."""
    g = torch.Generator().manual_seed(0)
    ok = True
    for abar in (0.9, 0.5, 0.05):
        x = torch.randn(6, 2, generator=g, dtype=torch.float64)
        score = torch.randn(6, 2, generator=g, dtype=torch.float64)
        ab = torch.full((6, 1), abar, dtype=torch.float64)
        want = (x + (1 - ab) * score) / ab.sqrt()
        ok &= _report(f"tweedie at abar = {abar}", fn(x, ab, score), want,
                      "Start from x_t = sqrt(abar) x0 + sqrt(1 - abar) eps and eps_hat = -sqrt(1 - abar) score.")
    return bool(ok)


def v_target(fn) -> bool:
    """``fn(x0, eps, abar) -> v``: v = sqrt(abar) eps - sqrt(1 - abar) x0 (Salimans & Ho 2022), abar broadcastable."""
    g = torch.Generator().manual_seed(1)
    s = NoiseSchedule(10, "cosine")
    ok = True
    for t in (1, 5, 9):
        x0 = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1
        eps = torch.randn(x0.shape, generator=g)
        ab = s.at(s.abar, torch.full((3,), t), x0)
        want = s.v_from(x0, eps, torch.full((3,), t))
        ok &= _report(f"v at t = {t}", fn(x0, eps, ab), want,
                      "v is the velocity of x_t = cos(phi) x0 + sin(phi) eps in phi: d x_t / d phi.")
    return bool(ok)


def euler_step(fn) -> bool:
    """``fn(x, v, t, t_next) -> x_next``: one Euler step of dx/dt = v from t to t_next (t_next < t)."""
    g = torch.Generator().manual_seed(2)
    ok = True
    for t, t_next in ((1.0, 0.75), (0.5, 0.4), (0.1, 0.0)):
        x = torch.randn(4, 1, 3, 3, generator=g)
        v = torch.randn(x.shape, generator=g)
        ok &= _report(f"Euler step {t} -> {t_next}", fn(x, v, t, t_next), x + (t_next - t) * v,
                      "Time runs backwards here: the step is (t_next - t), a negative number, times v.")
    return bool(ok)
