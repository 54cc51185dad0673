"""The pixel-track denoiser, the bundled weights, and the second yardstick (the ResNet classifier recipe)."""
import pytest
import torch

from fashiondiff.training import TrainConfig, train
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


@needs_data
def test_bundled_model_reaches_class_accuracy_at_its_defaults():
    """Regression guard for the sampler and the weights: 500 samples, the bundled classifier."""
    from fashiondiff.reports import evaluator, score_generator
    from fashiondiff.pipelines import load_model
    model = load_model("transformer", device="cpu")
    r = score_generator(model, evaluator(load_model("classifier", device="cpu"), resolution=16), model.sampling,
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
