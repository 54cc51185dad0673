"""Self-checks for the lessons' exercises: call one on your own function, it prints what is right or wrong.

    from fashiondiff import check
    check.closest_classes("Pullover", "Shirt")     # notebook 00
    check.idx_header(my_header)                    # notebook 00
    check.most_aliased_class("Pullover")           # notebook 00
    check.patchify(my_patchify, my_unpatchify)     # notebook 01
    check.causal_linear_attention(my_causal)       # notebook 02
    check.attention_repairs(my_a, my_b)            # notebook 02
    check.linear_schedule_end(my_beta_10)          # notebook 03
    check.posterior_samples(my_x3, x0)             # notebook 03
    check.sampler_without_clamp(my_sampler, model) # notebook 04
    check.useful_at_small_n(my_choice)             # notebook 05
    check.latent_share_outside(my_share)           # notebook 07
    check.tweedie(my_tweedie)                      # notebook 10
    check.v_target(my_v)                           # notebook 11
    check.min_snr_weights(my_eps_w, my_v_w)        # notebook 11
    check.euler_step(my_step)                      # notebook 12
    check.abar_index_bug("B")                      # notebook 13, and the seven other "which of three has the bug?" checks
    check.classifier_shift(my_shift)               # notebook 17
    check.slerp(my_slerp)                          # notebook 17

Notebook 13's checks take a letter: ``suspects(failure, ...)`` hands out three versions of one piece of a
diffusion pipeline, two right and one with that failure's bug, and the learner finds the bug with the diagnostic
the notebook built.

Each compares your function with the course's on random inputs (several noise levels, several shapes), prints one
line per finding, and returns True when everything matches. It never raises on a wrong answer: a wrong answer is
what it is for. It does raise when your function crashes, so you see the traceback.
"""

from __future__ import annotations

import copy
import math
import struct

import torch
import torch.nn.functional as F

from . import attention, data, patches
from .diffusion import diffusion_loss, sample
from .sampling import SamplingConfig
from .schedule import NoiseSchedule
from .stats import frechet_distance, gaussian_stats

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


def _say(ok: bool, message: str) -> bool:
    print(f"{'✓' if ok else '✗'} {message}")
    return ok


def closest_classes(a: str | int, b: str | int) -> bool:
    """Your answer to "which two class means are closest?" (names or indices), checked against the training set's
    28x28 class means."""
    split = data.load_split("train")
    images, labels = split.images, split.labels                                 # (60000, 28, 28) uint8, (60000,)
    means = torch.stack([images[labels == c].float().mean(0) for c in range(10)]).flatten(1)   # (10, 784)
    d = torch.cdist(means, means).fill_diagonal_(float("inf"))                  # (10, 10)
    want = set(divmod(d.argmin().item(), 10))
    got = {data.class_index(a), data.class_index(b)}
    names = " and ".join(data.CLASSES[c] for c in sorted(want))
    if got == want:
        return _say(True, f"{names}: the closest pair of class means")
    if len(got) == 1:
        return _say(False, "a class and itself: fill the diagonal of the distance matrix with inf first.")
    i, j = sorted(got)
    return _say(False, f"{data.CLASSES[i]} and {data.CLASSES[j]} are {d[i, j]:.0f} apart; a closer pair is "
                       f"{d.min():.0f} apart. Take the argmin over the whole matrix, off the diagonal.")


def most_aliased_class(name: str | int) -> bool:
    """Your answer to "which class suffers most from aliasing?": the class whose 16x16 images differ most, on average
    (mean absolute difference in [-1, 1] units), between antialiased and plain bilinear downsampling of the training
    set."""
    split = data.load_split("train")
    plain = torch.nn.functional.interpolate(data.to_float(split.images), size=(16, 16), mode="bilinear",
                                            antialias=False)                    # (60000, 1, 16, 16), aliased
    gap = (data.to_float(split.images, 16) - plain).abs().mean(dim=(1, 2, 3))   # (60000,) per image
    per_class = torch.stack([gap[split.labels == c].mean() for c in range(10)])  # (10,)
    want, got = int(per_class.argmax()), data.class_index(name)
    if got == want:
        return _say(True, f"{data.CLASSES[want]}: mean gap {per_class[want]:.4f}, the largest of the ten classes")
    return _say(False, f"{data.CLASSES[got]}'s mean gap is {per_class[got]:.4f}; another class's is "
                       f"{per_class[want]:.4f}. Average the per-image gap over each class, then take the largest.")


def idx_header(fn) -> bool:
    """``fn(tensor) -> bytes``: the IDX header of a uint8 tensor: two zero bytes, the type code 0x08, the number of
    dimensions, then each size as a big-endian 32-bit integer (LeCun et al., the MNIST file format)."""
    ok = True
    for shape in ((3, 28, 28), (10,), (2, 5, 300)):
        want = struct.pack(f">4B{len(shape)}I", 0, 0, 0x08, len(shape), *shape)
        got = bytes(fn(torch.zeros(shape, dtype=torch.uint8)))
        if got == want:
            ok &= _say(True, f"header of a {shape} tensor")
        elif len(got) == len(want) and got[4:] == struct.pack(f"<{len(shape)}I", *shape):
            ok &= _say(False, f"header of a {shape} tensor: the sizes are little-endian; IDX is big-endian ('>').")
        else:
            ok &= _say(False, f"header of a {shape} tensor: {got.hex()} but expected {want.hex()}.")
    return bool(ok)


def patchify(fn, inverse=None) -> bool:
    """``fn(x, p) -> tokens``: (N, C, H, W) -> (N, (H/p)(W/p), C p p), patches in row-major order, each flattened as
    (C, p, p); ``inverse(tokens, p) -> x`` (optional, one channel) must give the images back."""
    g = torch.Generator().manual_seed(3)
    ok = True
    for c, p in ((1, 2), (1, 4), (1, 8), (3, 4)):
        x = torch.randn(2, c, 16, 16, generator=g)
        ok &= _report(f"patchify, {c} channel(s), p = {p}", fn(x, p), patches.patchify(x, p),
                      "Reshape to (N, C, H/p, p, W/p, p), then bring the two grid axes to the front.")
        if inverse is not None and c == 1:
            ok &= _report(f"unpatchify, p = {p}", inverse(patches.patchify(x, p), p), x,
                          "Undo the same reshape and permute in reverse order.")
    return bool(ok)


def causal_linear_attention(fn) -> bool:
    """``fn(q, k, v) -> out``, all (..., N, d): token i attends to j <= i with the elu+1 kernel, normalised over
    those j (Katharopoulos et al. 2020, sec. 3.3)."""
    g = torch.Generator().manual_seed(4)
    ok = True
    for shape in ((1, 5, 4), (2, 3, 9, 8)):
        q, k, v = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(3))
        n = shape[-2]
        w = attention.elu_feature_map(q) @ attention.elu_feature_map(k).transpose(-2, -1)  # (..., N, N)
        w = w * torch.ones(n, n, dtype=w.dtype).tril()                                    # j > i: 0
        want = (w / w.sum(-1, keepdim=True)) @ v                                          # (..., N, d)
        got = torch.as_tensor(fn(q, k, v))
        if got.shape == want.shape and torch.allclose(got.double(), attention.linear_attention(q, k, v), atol=1e-6):
            ok &= _say(False, f"{shape}: this is the non-causal result: every token sees every other.")
            continue
        ok &= _report(f"causal linear attention, {shape}", got, want,
                      "Running sums (torch.cumsum over the token axis) for both S and z; the first token sees "
                      "only itself.")
    return bool(ok)


def attention_repairs(normalised, tokens_softmax) -> bool:
    """Notebook 02's two repairs of ``unnormalised_attention``, each ``fn(q, k, v) -> out`` (..., N, d): (a) with the
    normaliser softmax(q_i) . sum_j softmax(k_j), (b) no normaliser but k's softmax over the tokens (dim=-2)."""
    g = torch.Generator().manual_seed(5)
    ok = True
    for name, fn, want_fn in (
            ("(a) with the normaliser", normalised,
             lambda q, k, v: (q.softmax(-1) @ (k.softmax(-1).transpose(-2, -1) @ v))
             / (q.softmax(-1) @ k.softmax(-1).sum(-2).unsqueeze(-1))),
            ("(b) softmax over tokens", tokens_softmax,
             lambda q, k, v: q.softmax(-1) @ (k.softmax(-2).transpose(-2, -1) @ v))):
        for n in (16, 256):
            q, k, v = torch.randn(3, 1, 4, n, 32, generator=g, dtype=torch.float64).unbind(0)
            threes = torch.full_like(v, 3.0)
            avg = float(torch.as_tensor(fn(q, k, threes)).double().mean())
            if abs(avg - 3) > 1e-6:
                ok &= _say(False, f"{name}, N = {n}: values all 3 give {avg:.3g}, not 3: the weights of a row do not "
                                  f"sum to one, so this is not an average.")
                continue
            ok &= _report(f"{name}, N = {n}", fn(q, k, v), want_fn(q, k, v),
                          "An average, but of other weights: (a) softmax over features (dim=-1) for q and k; (b) "
                          "softmax over features for q, over tokens (dim=-2) for k.")
    return bool(ok)


def linear_schedule_end(beta_last: float, beta_first: float = 0.01, steps: int = 10, target: float = 1e-3) -> bool:
    """Your beta_T for a linear schedule from beta_1 = 0.01 over T = 10 steps: abar_T within 5% of 1e-3, with every
    beta below the 0.999 clip."""
    betas = torch.linspace(beta_first, float(beta_last), steps, dtype=torch.float64)      # (T,)
    abar = torch.prod(1 - betas).item()
    if not 0 < beta_last < 0.999:
        return _say(False, f"beta_T = {beta_last} would be clipped at 0.999 (or is not a variance).")
    if abs(abar / target - 1) > 0.05:
        more = "larger" if abar > target else "smaller"
        return _say(False, f"abar_T = {abar:.2e}, not {target:.0e}: make beta_T {more}.")
    return _say(True, f"beta_T = {beta_last:.4g} gives abar_T = {abar:.3e} with nothing clipped")


def posterior_samples(x3: torch.Tensor, x0: torch.Tensor) -> bool:
    """Your samples x_3 ~ q(x_3 | x_8, x_0) with x_8 ~ q(x_8 | x_0), (M, 1, 16, 16) for M copies of one image ``x0``
    (notebook 03, cosine schedule, T = 10): their per-pixel mean and variance must be those of q(x_3 | x_0),
    within 5 standard errors at the worst of the pixels."""
    x3 = torch.as_tensor(x3).double()
    x0 = torch.as_tensor(x0).double().reshape(-1, *x3.shape[1:])[0]                     # one image
    m = len(x3)
    if m < 100:
        return _say(False, f"{m} samples are too few to measure a variance: draw a few thousand.")
    ab3 = NoiseSchedule(10, "cosine").abar[3].item()
    se_mean, se_var = ((1 - ab3) / m) ** 0.5, (1 - ab3) * (2 / (m - 1)) ** 0.5
    worst_mean = float((x3.mean(0) - ab3 ** 0.5 * x0).abs().max() / se_mean)
    var = x3.var(0)
    worst_var = float((var - (1 - ab3)).abs().max() / se_var)
    if worst_mean > 5:
        return _say(False, f"the mean is off sqrt(abar_3) x0 by up to {worst_mean:.0f} standard errors: pass s = 3 to "
                           f"posterior (without it, s = t - 1 = 7).")
    if worst_var > 5:
        more = "too little" if float(var.mean()) < 1 - ab3 else "too much"
        return _say(False, f"{more} spread: variance {float(var.mean()):.3f} per pixel, q(x_3 | x_0) has "
                           f"{1 - ab3:.3f}. Add var.sqrt() times fresh noise: the standard deviation, not the variance.")
    return _say(True, f"mean and variance of q(x_3 | x_0) within {max(worst_mean, worst_var):.1f} standard errors "
                      f"at the worst of {x3[0].numel()} pixels")


@torch.no_grad()
def _ancestral_unclamped(model, y, g):
    s, x = model.schedule, torch.randn((len(y), 1, 16, 16), generator=g)
    for t in range(s.T, 0, -1):
        tt = torch.full((len(y),), t)
        x0 = model(x, tt, y)
        if t == 1:
            return x0
        mean, var = s.posterior(x0, x, tt)
        x = mean + var.sqrt() * torch.randn(x.shape, generator=g)


def sampler_without_clamp(fn, model) -> bool:
    """``fn(model, y, generator) -> images``: notebook 04's ``sample_by_hand`` without the clamp on x0_hat, run on
    ``model`` (an x0-predictor) for the ten classes twice from seed 3."""
    y = torch.arange(10).repeat(2)
    with torch.no_grad():
        got = torch.as_tensor(fn(model, y, torch.Generator().manual_seed(3)))
    want = _ancestral_unclamped(model, y, torch.Generator().manual_seed(3))
    outside = float((want.abs() > 1).float().mean())
    if got.shape == want.shape and outside > 0 and bool((got.abs() <= 1).all()):
        return _say(False, f"no pixel outside [-1, 1], but without the clamp {outside:.1%} are: the clamp is "
                           f"still there (inside the loop or at the end).")
    ok = _report("sampler without the clamp", got, want,
                 "Copy sample_by_hand, drop only .clamp(-1, 1), and draw all noise from g in the same order.")
    if ok:
        print(f"  share of the final pixels outside [-1, 1]: {outside:.3f}")
    return ok


_SMALL_N = {"kid": (True, "KID is unbiased at any n: at n = 100 it is only noisier, and its error bar says so."),
            "fid": (False, "FID is biased upwards at small n: it falls as n grows although the model is the same."),
            "real_fid": (False, "the real baseline is FID's bias itself: it grows fast once n is below the 128 "
                                "feature dimensions, whatever the model."),
            "ratio": (False, "fid / real_fid compresses toward 1 at small n whatever the model: a poor model can "
                             "look as good as real data.")}


def useful_at_small_n(answer: str) -> bool:
    """Your answer to notebook 05's "which of the numbers is still useful at n = 100 or 200?": one of ``"fid"``,
    ``"real_fid"``, ``"ratio"`` (fid / real_fid) or ``"kid"``."""
    key = str(answer).strip().lower().replace(" ", "").replace("fid/real_fid", "ratio").replace("realfid", "real_fid")
    if key not in _SMALL_N:
        return _say(False, f"answer with one of {', '.join(_SMALL_N)} (got {answer!r}).")
    right, why = _SMALL_N[key]
    return _say(right, why if right else f"{why} Which measure does not depend on n on average?")


def latent_share_outside(share: float) -> bool:
    """Your share of a real scaled latent's values outside [-1, 1] (notebook 07): posterior samples of the bundled
    VAE for the first 2,000 training images, scaled to unit variance; within 0.02."""
    from .pipelines import load_model                                   # loads weights: only when asked
    vae = load_model("vae", device="cpu")
    with torch.no_grad():
        mean, logvar = vae.posterior(data.load("train", 28)[0][:2000])
        z = vae.sample_posterior(mean, logvar, torch.Generator().manual_seed(0))    # (2000, 8, 7, 7), unscaled
    want, raw = float((vae.scale(z).abs() > 1).float().mean()), float((z.abs() > 1).float().mean())
    share = float(share)
    if abs(share - want) <= 0.02:
        return _say(True, f"{want:.2f} of a scaled latent's values lie outside [-1, 1]: a clamp to [-1, 1] changes "
                          f"every one of them.")
    if share == 0:
        return _say(False, "0 is the share after the clamp: measure real latents, vae.scale(sample_posterior(...)).")
    if abs(share - (1 - want)) <= 0.02:
        return _say(False, f"{share:.2f} is the share inside [-1, 1]; count |z| > 1.")
    if abs(share - raw) <= 0.02 and abs(raw - want) > 0.02:
        return _say(False, f"{share:.2f} is the share of unscaled latents: scale them with vae.scale first.")
    return _say(False, f"{share:.2f}, but {want:.2f} of the scaled latents' values lie outside [-1, 1]. Scaled "
                       f"latents have unit variance: what share of a standard normal lies beyond 1?")


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


def min_snr_weights(eps_weight, v_weight, gamma: float = 5.0) -> bool:
    """``eps_weight(snr)`` and ``v_weight(snr)``: the min-SNR-gamma weights on the eps-loss and the v-loss, from the
    SNR alone (Hang et al. 2023), so that each weights the x0 error by min(SNR, gamma)."""
    snr = torch.logspace(-4, 4, 33, dtype=torch.float64)                                # both sides of the cap
    ok = _report("min-SNR weight on the eps-loss", eps_weight(snr.clone()), snr.clamp(max=gamma) / snr,
                 "The eps-loss already weights the x0 error by SNR: divide min(SNR, 5) by it.")
    ok &= _report("min-SNR weight on the v-loss", v_weight(snr.clone()), snr.clamp(max=gamma) / (snr + 1),
                  "The v-loss already weights the x0 error by SNR + 1, not SNR: divide min(SNR, 5) by that.")
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


# Notebook 13, the debugging clinic: for each failure three suspects, one of them with the bug, at a fixed letter.

def _abar_suspects():
    @torch.no_grad()
    def a(model, y, g):                                             # notebook 04's loop
        s, x = model.schedule, torch.randn((len(y), 1, 16, 16), generator=g)
        for t in range(s.T, 0, -1):
            tt = torch.full((len(y),), t)
            x0 = model(x, tt, y).clamp(-1, 1)
            if t == 1:
                return x0
            mean, var = s.posterior(x0, x, tt)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=g)

    @torch.no_grad()
    def b(model, y, g):                                             # counts i = 0..T-1 and takes t = T - 1 - i
        s, x = model.schedule, torch.randn((len(y), 1, 16, 16), generator=g)
        for i in range(s.T):
            tt = torch.full((len(y),), s.T - 1 - i)
            x0 = model(x, tt, y).clamp(-1, 1)
            if i == s.T - 1:
                return x0
            mean, var = s.posterior(x0, x, tt)
            x = mean + var.sqrt() * torch.randn(x.shape, generator=g)

    @torch.no_grad()
    def c(model, y, g):                                             # the package's sampler, eta = 1 DDIM
        return sample(model, model.schedule, y, (1, 16, 16), SamplingConfig("ddim", steps=model.schedule.T, eta=1.0),
                      generator=g)
    return {"A": a, "B": b, "C": c}


def _dropout_suspects():
    def a(model, x0, y, g):                                         # the package's loss, p_uncond = 0.1
        return diffusion_loss(model, model.schedule, x0, y, g)

    def b(model, x0, y, g):                                         # by hand, as in notebook 04
        s = model.schedule
        t = torch.randint(1, s.T + 1, (len(x0),), generator=g)
        x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        y = torch.where(torch.rand(len(y), generator=g) < 0.1, torch.full_like(y, model.label.null), y)
        return F.mse_loss(model(x_t, t, y), x0)

    def c(model, x0, y, g):                                         # drops the labels, and throws the result away
        s = model.schedule
        t = torch.randint(1, s.T + 1, (len(x0),), generator=g)
        x_t = s.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        model.label.drop(y, 0.1, g)
        return F.mse_loss(model(x_t, t, y), x0)
    return {"A": a, "B": b, "C": c}


def _ema_suspects():
    return {"A": lambda result: result.model,                      # what the loop trained last: the raw weights
            "B": lambda result: result.ema,
            "C": lambda result: copy.deepcopy(result.ema).eval()}


def _clamp_suspects():
    def run(clip, sampler="ddpm"):
        def fn(model, y, g):
            return sample(model, model.schedule, y, (1, 16, 16), SamplingConfig(sampler, steps=model.schedule.T),
                          prediction=model.prediction, clip=clip, generator=g)
        return fn
    return {"A": run(1.0), "B": run(1.0, "ddim"), "C": run(None)}


def _train_mode_suspects(classifier):
    evaluated = copy.deepcopy(classifier).eval()
    training = copy.deepcopy(classifier).train()

    def a(x):
        with torch.no_grad():
            return evaluated.features(x)

    def b(x):                                                        # batch norm with the batch's own statistics
        with torch.no_grad():
            return training.features(x)

    def c(x):
        return data.map_batches(evaluated.features, x, 1000)
    return {"A": a, "B": b, "C": c}


def _data_range_suspects():
    return {"A": lambda images: images[:, None].float() / 255,      # [0, 1]
            "B": lambda images: data.to_float(images),
            "C": lambda images: images[:, None].float() / 127.5 - 1}


def _lr_suspects():
    return {"A": lambda model: torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05),
            "B": lambda model: torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0),
            "C": lambda model: torch.optim.AdamW(model.parameters(), lr=0.1, weight_decay=0.05)}


def _fid_suspects(evaluator):
    return {"A": lambda x: evaluator.fid(x),
            "B": lambda x: frechet_distance(*gaussian_stats(evaluator.features(x)), evaluator.ref_mu, evaluator.ref_cov),
            "C": lambda x: evaluator.fid(x[:64])}                   # only the first 64 images


_SUSPECTS = {"abar": _abar_suspects, "dropout": _dropout_suspects, "ema": _ema_suspects, "clamp": _clamp_suspects,
             "train_mode": _train_mode_suspects, "data_range": _data_range_suspects, "lr": _lr_suspects,
             "fid": _fid_suspects}
_CULPRITS = {"abar": ("B", "it calls the network at t = 9..0 and reads abar one step early: x holds noise of level t + 1."),
             "dropout": ("C", "label.drop returns new labels; without `y = ...` the null label never reaches the model."),
             "ema": ("A", "result.model is the raw weights of the last step; result.ema is the average to sample from."),
             "clamp": ("C", "clip=None: an eps-model's x0_hat at t = T is its noise error times 1/sqrt(abar_T) = 200."),
             "train_mode": ("B", "the copy in train mode normalises each batch by its own statistics: a feature "
                                 "depends on the rest of the batch."),
             "data_range": ("A", "x / 255 is in [0, 1]; the model and the sampler's clamp expect [-1, 1]."),
             "lr": ("C", "lr = 0.1: Adam moves every weight by about lr a step, whatever the gradient's size."),
             "fid": ("C", "it scores only the first 64 images: at n = 64 the floor of real images is itself large.")}


def suspects(failure: str, *inputs) -> dict:
    """Three versions ("A", "B", "C") of one piece of a diffusion pipeline for notebook 13's ``failure`` (one of
    abar, dropout, ema, clamp, train_mode, data_range, lr, fid), one with the bug. ``train_mode`` takes the
    classifier and ``fid`` an ``Evaluator``."""
    if failure not in _SUSPECTS:
        raise ValueError(f"unknown failure {failure!r} (allowed: {', '.join(_SUSPECTS)})")
    return _SUSPECTS[failure](*inputs)


def _culprit(failure: str, answer: str) -> bool:
    want, why = _CULPRITS[failure]
    got = str(answer).strip().upper()
    if got == want:
        return _say(True, f"{want} has the bug: {why}")
    if got not in ("A", "B", "C"):
        return _say(False, f"answer with a letter, A, B or C (got {answer!r}).")
    return _say(False, f"{got} is one of the two right versions. Run the diagnostic on all three and compare.")


def abar_index_bug(answer: str) -> bool:
    """Which of ``suspects("abar")`` (samplers ``fn(model, y, generator)``) has abar's index off by one?
    Diagnostic: record the t each one passes to the network."""
    return _culprit("abar", answer)


def label_dropout_bug(answer: str) -> bool:
    """Which of ``suspects("dropout")`` (losses ``fn(model, x0, y, generator)``) never shows the model the null
    label? Diagnostic: count the labels a recording model receives."""
    return _culprit("dropout", answer)


def ema_bug(answer: str) -> bool:
    """Which of ``suspects("ema")`` (``fn(result) -> model to sample``) returns the raw weights? Diagnostic: the
    held-out loss at fixed noise, or the weights' distance to ``result.ema``."""
    return _culprit("ema", answer)


def clamp_bug(answer: str) -> bool:
    """Which of ``suspects("clamp")`` (samplers ``fn(model, y, generator)``) does not clamp x0_hat? Diagnostic:
    the share of pixels outside [-1, 1]."""
    return _culprit("clamp", answer)


def train_mode_bug(answer: str) -> bool:
    """Which of ``suspects("train_mode", classifier)`` (``features(x)``) runs the yardstick in train mode?
    Diagnostic: an image's features alone and inside a batch."""
    return _culprit("train_mode", answer)


def data_range_bug(answer: str) -> bool:
    """Which of ``suspects("data_range")`` (``fn(uint8 images) -> floats``) does not give [-1, 1]? Diagnostic:
    the minimum, maximum and mean of a batch."""
    return _culprit("data_range", answer)


def learning_rate_bug(answer: str) -> bool:
    """Which of ``suspects("lr")`` (``fn(model) -> optimizer``) has a learning rate far too high? Diagnostic: the
    size of one step's update relative to the weights."""
    return _culprit("lr", answer)


def fid_bug(answer: str) -> bool:
    """Which of ``suspects("fid", evaluator)`` (``fn(images) -> FID``) measures at a tiny n? Diagnostic: the same
    function on real images, the floor."""
    return _culprit("fid", answer)


# ----------------------------------------------------------------------------------------------------------------
# Notebooks 08 and 09: guided_calls (08, exercise 2) and hardest_class (09, exercise 1).

def guided_calls(fn) -> bool:
    """``fn(settings, schedule) -> int``: network calls per sample of a diffusion sampler with ``settings`` (a
    ``SamplingConfig``) on ``schedule``: one at each of ``schedule.timesteps(settings.steps)``, two where the guidance
    scale there (``settings.guidance_at(schedule.sigma(t))``) is neither 0 nor 1 and needs both predictions."""
    latent, pixel = NoiseSchedule(1000, "linear"), NoiseSchedule(10, "cosine")
    cases = ((latent, SamplingConfig("ddim", steps=25, guidance=2.0)),
             (latent, SamplingConfig("ddim", steps=50, guidance=1.0)),
             (latent, SamplingConfig("ddim", steps=25, guidance=3.0, guidance_interval=(0.0, 2.0))),
             (latent, SamplingConfig("ddim", steps=25, guidance=0.0)),
             (pixel, SamplingConfig("ddim", steps=10, guidance=2.5, guidance_interval=(0.5, 2.0))))
    ok = True
    for schedule, settings in cases:
        ts = schedule.timesteps(settings.steps)
        want = sum(settings.calls_at(schedule.sigma(t)) for t in ts)
        got = fn(settings, schedule)
        name = f"{settings} (T = {schedule.T})"
        if got == want:
            ok &= _say(True, f"{name}: {want} calls")
        elif settings.guidance_interval is not None and got == 2 * len(ts):
            ok &= _say(False, f"{name}: {got}, expected {want}. Guidance doubles only the steps whose sigma is inside "
                              f"the interval; elsewhere w = 1 and one call does.")
        elif got == len(ts) and want != got:
            ok &= _say(False, f"{name}: {got}, expected {want}. A guided step needs the conditional and the "
                              f"unconditional prediction: two calls.")
        else:
            ok &= _say(False, f"{name}: {got}, expected {want}. Add settings.calls_at(schedule.sigma(t)) over "
                              f"schedule.timesteps(settings.steps).")
    return bool(ok)


_CONFUSIONS: dict = {}


def _confusions() -> dict:
    """Notebook 09's two per-class accuracies: the samples of the generator with the lower KID at its default sampler
    (50 per class, seed 1) and the classifier on the 10,000 test images at the samples' size. Computed once."""
    if not _CONFUSIONS:
        from .generation import generate                              # the pipeline's layer: imported when needed
        from .metrics import predict
        from .pipelines import load_model, record
        best = min(("transformer", "latent"), key=lambda kind: record(kind)["metrics"]["kid"])
        model = load_model(best, device="cpu")
        yardstick = copy.deepcopy(load_model("classifier", device="cpu")).eval().to(memory_format=torch.channels_last)
        labels = torch.arange(500) % 10                                                   # (500,)
        samples = generate(model, labels, model.sampling, seed=1)                         # (500, 1, H, W)
        test_x, test_y = data.load("test", model.image_size)
        for key, x, y in (("samples", samples, labels), ("real", test_x, test_y)):
            hit = (predict(yardstick, x) == y).float()                                    # (N,)
            _CONFUSIONS[key] = torch.stack([hit[y == c].mean() for c in range(10)])       # (10,) per-class accuracy
        _CONFUSIONS["model"] = best
    return _CONFUSIONS


def hardest_class(samples_class: str | int, real_class: str | int) -> bool:
    """Your answer to notebook 09's "which class is hardest?": the class the best generator's samples are most often
    classified wrongly in (the smallest diagonal entry of ``conf_gen``), and the class the classifier gets wrong most
    often on real test images (of ``conf_real``); names or indices. Generates the notebook's 500 samples (seed 1)
    once: a few seconds."""
    acc = _confusions()
    ok, found = True, []
    for key, answer, what in (("samples", samples_class, f"{acc['model']} samples"), ("real", real_class, "real images")):
        per_class, got = acc[key], data.class_index(answer)
        worst = (per_class == per_class.min()).nonzero()[:, 0].tolist()                  # ties: any of them
        if got in worst:
            found.append(f"{data.CLASSES[got]} for the {what} ({per_class[got]:.2f})")
            continue
        ok = False
        hint = ("that is the easiest class: take the argmin of the diagonal, not the argmax"
                if per_class[got] == per_class.max() else
                "look at the diagonal (asked = predicted), the share each class gets right, not at an off-diagonal cell")
        found.append(f"not {data.CLASSES[got]} for the {what} ({per_class[got]:.2f} right; "
                     f"{data.CLASSES[worst[0]]} has {per_class[worst[0]]:.2f}): {hint}")
    return _say(ok, "; ".join(found))


# ----------------------------------------------------------------------------------------------------------------
# Part 4: notebooks 14 and 15


def edm_preconditioning(fn, sigma_data: float = 0.5) -> bool:
    """``fn(sigma, sigma_data) -> (c_skip, c_out, c_in)``, EDM's preconditioning (Karras et al. 2022, Table 1):
    c_skip = sd^2 / (s^2 + sd^2), c_out = s sd / sqrt(s^2 + sd^2), c_in = 1 / sqrt(s^2 + sd^2)."""
    sigma = torch.logspace(-2, 2, 9, dtype=torch.float64)
    c_skip, c_out, c_in = fn(sigma.clone(), sigma_data)
    total = sigma ** 2 + sigma_data ** 2
    ok = _report("c_skip", c_skip, sigma_data ** 2 / total,
                 "c_skip is the share of x~ that the best linear guess of x0 keeps: sigma_data^2 / (sigma^2 + sigma_data^2).")
    ok &= _report("c_out", c_out, sigma * sigma_data / total.sqrt(),
                  "c_out is the standard deviation of what is left to predict, x0 - c_skip x~: sigma sigma_data / sqrt(...).")
    ok &= _report("c_in", c_in, 1 / total.sqrt(), "c_in scales x~ = x0 + sigma eps, of variance sigma^2 + sigma_data^2, to unit variance.")
    return bool(ok)


def dpm_2m_step(fn) -> bool:
    """``fn(x, d, d_prev, sigma_prev, sigma, sigma_next) -> x_next``: one DPM-Solver++(2M) step in x~ = x0 + sigma
    eps (alpha = 1): h = log(sigma / sigma_next), r = log(sigma_prev / sigma) / h, D = (1 + 1/(2r)) d - 1/(2r) d_prev,
    x_next = (sigma_next / sigma) x + (1 - sigma_next / sigma) D (Lu et al. 2022, Algorithm 2)."""
    g = torch.Generator().manual_seed(3)
    ok = True
    for sp, s, sn in ((20.0, 10.0, 4.0), (2.0, 1.0, 0.8), (1.0, 0.3, 0.01)):
        x, d, d_prev = (torch.randn(5, 2, generator=g, dtype=torch.float64) for _ in range(3))
        r = math.log(sp / s) / math.log(s / sn)
        big_d = (1 + 1 / (2 * r)) * d - 1 / (2 * r) * d_prev
        ok &= _report(f"2M step {s} -> {sn}", fn(x, d, d_prev, sp, s, sn), (sn / s) * x + (1 - sn / s) * big_d,
                      "r is measured in lambda = -log sigma, not in sigma: r = log(sigma_prev / sigma) / "
                      "log(sigma / sigma_next), and the correction weighs d_prev by 1 / (2r).")
    return bool(ok)


# ----------------------------------------------------------------------------------------------------------------
# Part 5: notebook 17


def classifier_shift(fn) -> bool:
    """``fn(x0, grad, alpha, sigma_vp, scale) -> x0'``: the x0 prediction with classifier guidance of ``scale``
    added, x0 + scale sigma_vp^2 / alpha grad (Tweedie's formula with the guided score; Dhariwal & Nichol 2021)."""
    g = torch.Generator().manual_seed(4)
    ok = True
    for abar, scale in ((0.9, 1.0), (0.3, 2.5), (0.01, 4.0)):
        alpha, sigma_vp = math.sqrt(abar), math.sqrt(1 - abar)
        x0, grad = (torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64) for _ in range(2))
        ok &= _report(f"abar {abar}, scale {scale}", fn(x0.clone(), grad.clone(), alpha, sigma_vp, scale),
                      x0 + scale * sigma_vp ** 2 / alpha * grad,
                      "Tweedie: x0 = (x_t + sigma_vp^2 score) / alpha, so adding s grad log p(y | x_t) to the score "
                      "moves x0 by s sigma_vp^2 / alpha grad.")
    return bool(ok)


def slerp(fn) -> bool:
    """``fn(a, b, t) -> c`` for noises a, b (N, D): spherical interpolation, sin((1 - t) theta) / sin(theta) a +
    sin(t theta) / sin(theta) b, theta the angle between a and b (per row)."""
    g = torch.Generator().manual_seed(5)
    a, b = (torch.randn(4, 256, generator=g, dtype=torch.float64) for _ in range(2))
    theta = torch.arccos((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)))[:, None]           # (4, 1)
    ok = True
    for t in (0.0, 0.3, 0.5, 1.0):
        want = (((1 - t) * theta).sin() * a + (t * theta).sin() * b) / theta.sin()
        ok &= _report(f"t = {t}", fn(a.clone(), b.clone(), t), want,
                      "the weights are sin((1 - t) theta) / sin(theta) and sin(t theta) / sin(theta), with theta "
                      "the angle between the two rows (arccos of their cosine), one angle per row.")
    return bool(ok)
