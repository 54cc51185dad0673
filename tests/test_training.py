"""The training loop: learning-rate schedules, weight decay, the EMA, and checkpoints a run resumes from exactly."""
import json
from dataclasses import replace

import pytest
import torch
import torch.nn as nn

from fashiondiff.checkpoint import load_tensors
from fashiondiff.diffusion import diffusion_loss
from fashiondiff.precision import bf16_supported
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.training import EMA, TrainConfig, lr_factor, param_groups, train
from fashiondiff.transformer import TransformerDenoiser


def small_model(**kw):
    return TransformerDenoiser(dim=32, heads=2, layers=2, ff_dim=64, **kw)


def test_lr_schedules():
    cfg = TrainConfig(max_steps=1500, warmup_steps=10, schedule="restarts", cycles=4)
    assert lr_factor(0, 1500, cfg) == pytest.approx(0.1)
    assert lr_factor(100, 1500, cfg) == pytest.approx(1.0)                 # cycle 2 starts at 1500/15
    assert lr_factor(99, 1500, cfg) < 0.01 and lr_factor(299, 1500, cfg) < 0.01   # cycles end at 100, 300, 700
    assert lr_factor(300, 1500, cfg) == pytest.approx(1.0) and lr_factor(1499, 1500, cfg) < 1e-4
    cos = TrainConfig(max_steps=100, warmup_steps=0, schedule="cosine")
    assert lr_factor(50, 100, cos) == pytest.approx(0.5)


def test_weight_decay_skips_norms_biases_and_embeddings():
    model = TransformerDenoiser()
    decay, no_decay = param_groups(model, 0.05)
    assert any(p is model.label.table.weight for p in no_decay["params"])
    assert any(p is model.blocks[0].attn.qkv.weight for p in decay["params"])
    assert not any(p.ndim == 1 for p in decay["params"])


def test_ema_is_the_closed_form_average():
    model = torch.nn.Linear(2, 2)
    ema = EMA(model, 0.9)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model)
    torch.testing.assert_close(ema.model.weight, 0.9 * w0 + 0.1 * (w0 + 1))


def test_ema_without_warm_up_keeps_decay_to_the_n_of_the_initial_weights_and_with_it_forgets_them():
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


def _toy_problem(n=512):
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(n, 1, 16, 16, generator=g) > 0.5).float() * 2 - 1
    y = torch.randint(0, 10, (n,), generator=g)
    schedule = NoiseSchedule(10, "cosine")
    return x, y, lambda m, idx, gen: diffusion_loss(m, schedule, x[idx], y[idx], gen)


def test_twenty_steps_lower_the_loss():
    x, y, loss_fn = _toy_problem()
    torch.manual_seed(0)
    cfg = TrainConfig(max_steps=20, batch_size=64, lr=3e-3, warmup_steps=2, schedule="constant", log_every=5)
    result = train(small_model(), loss_fn, len(x), cfg, progress=False)
    losses = [loss for _, loss in result.history]
    assert result.steps == 20 and losses[-1] < 0.8 * losses[0]


bf16 = pytest.param("bf16", marks=pytest.mark.skipif(not bf16_supported("cpu"), reason="no bf16 on this CPU"))


@pytest.mark.parametrize("precision", ["fp32", bf16])
def test_checkpoint_round_trip_and_exact_resume(tmp_path, precision, monkeypatch):
    x, y, loss_fn = _toy_problem()
    cfg = TrainConfig(max_steps=12, batch_size=64, lr=1e-3, warmup_steps=2, checkpoint_every=6, log_every=3,
                      precision=precision)
    torch.manual_seed(0)
    full = train(small_model(), loss_fn, len(x), cfg, out=tmp_path / "full", name="transformer", progress=False)
    # Crash in step 7, after the checkpoint at step 6; then resume to 12: identical weights.
    calls = []

    def crashing(m, idx, gen):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("simulated crash")
        return loss_fn(m, idx, gen)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(small_model(), crashing, len(x), cfg, out=tmp_path / "part", name="transformer", progress=False)
    state = json.loads((tmp_path / "part" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6 and state["precision"] == precision == full.precision
    torch.manual_seed(123)                                               # resume must not depend on this
    # resumed as "auto" on a host that would now measure fp32 faster: the run keeps the checkpoint's precision
    monkeypatch.setattr("fashiondiff.precision.bf16_is_faster", lambda device: False)
    resumed = train(small_model(), loss_fn, len(x), replace(cfg, precision="auto"), out=tmp_path / "part",
                    name="transformer", resume=True, progress=False)
    assert resumed.precision == precision
    for a, b in zip(full.model.parameters(), resumed.model.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(full.ema.parameters(), resumed.ema.parameters()):
        torch.testing.assert_close(a, b)
    # The saved weights rebuild a model with identical outputs.
    from fashiondiff.pipelines import load_model
    loaded = load_model("transformer", tmp_path / "full", device="cpu")
    xt, t, lab = torch.randn(3, 1, 16, 16), torch.tensor([1, 5, 10]), torch.tensor([0, 4, 10])
    torch.testing.assert_close(loaded(xt, t, lab), full.ema(xt, t, lab))
    assert not list((tmp_path / "full").rglob("*.tmp"))                  # nothing half-written left behind
    assert set(load_tensors(tmp_path / "full" / "model.safetensors")) == set(full.ema.state_dict())


@pytest.mark.skipif(not bf16_supported("cpu"), reason="no bf16 on this CPU")
def test_bf16_runs_the_forward_pass_in_bf16_and_keeps_weights_optimizer_and_ema_in_fp32():
    x, y, loss_fn = _toy_problem()
    seen = []

    def watching(m, idx, gen):
        loss = loss_fn(m, idx, gen)
        seen.append((torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else None, loss.dtype))
        return loss
    cfg = TrainConfig(max_steps=4, batch_size=64, lr=1e-3, warmup_steps=2, log_every=2)
    runs = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        runs[precision] = train(small_model(), watching, len(x), replace(cfg, precision=precision), progress=False)
    assert seen == [(None, torch.float32)] * 4 + [(torch.bfloat16, torch.float32)] * 4   # the loss reduced in fp32
    bf = runs["bf16"]
    assert all(p.dtype == torch.float32 for p in [*bf.model.parameters(), *bf.ema.parameters()])
    # the same start, batches and noise: the runs differ only by bf16's rounding, by more than fp32's and by less
    # than a learning step's size (lr 1e-3 over 4 steps)
    diff = max((a - b).abs().max().item() for a, b in zip(runs["fp32"].model.parameters(), bf.model.parameters()))
    assert 1e-6 < diff < 4e-3


def _probing(monkeypatch, choice: bool):
    """Replaces the bf16 measurement by one call of its probe that answers ``choice``; returns the probes' log."""
    calls = []

    def measure(device, run=None):
        calls.append(run)
        run()
        return choice
    monkeypatch.setattr("fashiondiff.precision.bf16_is_faster", measure)
    return calls


def test_auto_times_a_training_step_and_leaves_the_model_and_random_streams_as_they_were(monkeypatch):
    from fashiondiff.training import _precision
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(), nn.LazyLinear(1))
    data = torch.randn(32, 1, 6, 6)
    model(data[:2]).sum()                                # the lazy layer takes its shape
    model.eval()
    backward = []
    model[0].weight.register_hook(lambda g: backward.append(1))
    seen = []

    def loss_fn(m, idx, gen):
        seen.append((m is model, m.training, torch.is_grad_enabled()))
        return m(data[idx] + torch.randn(data[idx].shape, generator=gen)).square().mean()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    calls = _probing(monkeypatch, True)
    cfg = TrainConfig(batch_size=16, precision="auto")
    assert _precision(cfg, model, model, loss_fn, torch.device("cpu"), 1, resume=False) == "bf16"
    assert len(calls) == 1 and seen == [(True, True, True)] and backward    # a training step: train mode, backward
    assert not model.training and all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)       # dropout's draws were forked
    for k, v in model.state_dict().items():              # BatchNorm's running statistics put back
        assert torch.equal(v, before[k]), k
    assert _precision(replace(cfg, precision="fp32"), model, model, loss_fn, torch.device("cpu"), 1, False) == "fp32"
    assert len(calls) == 1                               # a precision given is not measured


def test_auto_probes_the_compiled_forward_the_loop_trains_with(monkeypatch):
    data = torch.randn(64, 8)
    seen = []

    def loss_fn(model, idx, gen):
        seen.append(model)
        return (model(data[idx]) - data[idx]).square().mean()
    calls = _probing(monkeypatch, False)
    cfg = TrainConfig(max_steps=1, batch_size=16, warmup_steps=1, precision="auto", compile=True)
    result = train(nn.Linear(8, 8), loss_fn, len(data), cfg, progress=False)
    assert len(calls) == 1 and result.precision == "fp32"
    assert len(seen) == 2 and seen[0] is seen[1] and isinstance(seen[0], torch._dynamo.eval_frame.OptimizedModule)


@pytest.mark.parametrize("steps, saved", [(12, [6, 12]), (13, [6, 12, 13])])
def test_each_checkpoint_is_written_once(tmp_path, monkeypatch, steps, saved):
    import fashiondiff.training as training
    written, save_tensors = [], training.save_tensors

    def counting(path, tensors, meta=None):
        if path.name == "state.safetensors":
            written.append(meta["step"])
        save_tensors(path, tensors, meta)
    monkeypatch.setattr(training, "save_tensors", counting)
    data = torch.randn(64, 8)

    def loss_fn(model, idx, gen):
        return (model(data[idx]) - data[idx]).square().mean()
    cfg = TrainConfig(max_steps=steps, batch_size=16, warmup_steps=1, checkpoint_every=6)
    train(nn.Linear(8, 8), loss_fn, len(data), cfg, out=tmp_path, progress=False)
    assert written == saved                              # the last step of a 12-step run is saved by the loop only
