"""The pixel-track denoiser, its training loop and checkpoints, and the bundled weights."""
import json

import pytest
import torch

from fashiondiff.checkpoint import load_tensors
from fashiondiff.diffusion import diffusion_loss
from fashiondiff.schedule import NoiseSchedule
from fashiondiff.training import EMA, TrainConfig, lr_factor, param_groups, train
from fashiondiff.transformer import TransformerDenoiser
from conftest import needs_data


def small_model(**kw):
    return TransformerDenoiser(dim=32, heads=2, layers=2, ff_dim=64, **kw)


def randomise_gates(model):
    """adaLN-Zero starts every block as the identity; give the gates weights so conditioning can act."""
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "ada" in name or name.startswith("out."):
            torch.nn.init.normal_(p, std=0.05)
    return model


def test_output_shape_and_conditioning_reaches_the_output():
    model = randomise_gates(TransformerDenoiser())
    x = torch.randn(1, 1, 16, 16).repeat(3, 1, 1, 1)
    out = model(x, torch.tensor([5, 5, 5]), torch.tensor([0, 7, 10]))
    assert out.shape == (3, 1, 16, 16)
    assert (out[0] - out[1]).abs().mean() > 1e-3 and (out[1] - out[2]).abs().mean() > 1e-3   # the class matters
    t_out = model(x[:2], torch.tensor([1, 10]), torch.tensor([3, 3]))
    assert (t_out[0] - t_out[1]).abs().mean() > 1e-3                                         # so does t


def test_every_token_sees_the_class():
    # Changing only the label changes the prediction in every 2x2 patch, not just in one token.
    model = randomise_gates(TransformerDenoiser())
    x = torch.randn(1, 1, 16, 16).repeat(2, 1, 1, 1)
    out = model(x, torch.tensor([4, 4]), torch.tensor([1, 8]))
    diff = (out[0] - out[1]).abs().reshape(8, 2, 8, 2).sum(dim=(1, 3))                     # per patch
    assert (diff > 0).all()


def test_zero_init_makes_the_untrained_model_predict_zero():
    model = TransformerDenoiser()
    assert model(torch.randn(2, 1, 16, 16), torch.tensor([1, 2]), torch.tensor([0, 1])).abs().max() == 0


@pytest.mark.parametrize("bad", ["shape", "label", "t"])
def test_wrong_inputs_raise_value_error_with_the_expected_shape(bad):
    model = small_model()
    x, t, y = torch.randn(2, 1, 16, 16), torch.tensor([1, 2]), torch.tensor([0, 1])
    if bad == "shape":
        x = torch.randn(2, 1, 28, 28)
    elif bad == "label":
        y = torch.tensor([0, 11])
    else:
        t = torch.tensor([1])
    with pytest.raises(ValueError, match=r"expected|labels must be in 0\.\.10"):
        model(x, t, y)


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


def test_checkpoint_round_trip_and_exact_resume(tmp_path):
    x, y, loss_fn = _toy_problem()
    cfg = TrainConfig(max_steps=12, batch_size=64, lr=1e-3, warmup_steps=2, checkpoint_every=6, log_every=3)
    torch.manual_seed(0)
    full = train(small_model(), loss_fn, len(x), cfg, out=tmp_path / "full", kind="transformer", progress=False)
    # Crash in step 7, after the checkpoint at step 6; then resume to 12: identical weights.
    calls = []

    def crashing(m, idx, gen):
        calls.append(1)
        if len(calls) == 7:
            raise RuntimeError("simulated crash")
        return loss_fn(m, idx, gen)
    torch.manual_seed(0)
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(small_model(), crashing, len(x), cfg, out=tmp_path / "part", kind="transformer", progress=False)
    state = json.loads((tmp_path / "part" / "checkpoint" / "state.json").read_text())
    assert state["step"] == 6
    torch.manual_seed(123)                                               # resume must not depend on this
    resumed = train(small_model(), loss_fn, len(x), cfg, out=tmp_path / "part", kind="transformer",
                    resume=True, progress=False)
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


@needs_data
def test_bundled_model_reaches_class_accuracy_at_its_defaults():
    """Regression guard for the sampler and the weights: 500 samples, the bundled classifier."""
    from fashiondiff.metrics import Evaluator, score_generator
    from fashiondiff.pipelines import load_model
    model = load_model("transformer", device="cpu")
    r = score_generator(model, Evaluator(load_model("classifier", device="cpu"), resolution=16), model.sampling,
                        n=500, seed=0)
    assert r["cond_acc"] >= 0.85, r


@needs_data
def test_the_second_yardstick_recipe_trains_and_its_features_fit_the_evaluator():
    from fashiondiff.recipes import RECIPES
    recipe = RECIPES["resnet"]
    torch.manual_seed(0)
    model, loss_fn, n = recipe.setup(recipe, torch.device("cpu"))
    res = train(model, loss_fn, n, TrainConfig(max_steps=30, batch_size=64, lr=2e-3, warmup_steps=5, ema_decay=None,
                                               log_every=10), progress=False)
    assert res.history[-1][1] < 0.9 * res.history[0][1]                 # from ln 10 = 2.3 down
    x = torch.rand(3, 1, 16, 16) * 2 - 1                              # any size: prepared to 28x28 like the first
    assert model.eval().features(x).shape == (3, 128) and model(x).shape == (3, 10)
