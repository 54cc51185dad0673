"""Mixed precision (fashiondiff.precision): the automatic choice follows the measurement, bf16 sampling stays within
bf16's rounding of fp32 while the yardsticks measure in fp32, and the guided prediction is combined in fp32."""
import time

import pytest
import torch

import fashiondiff.precision as precision
from conftest import needs_data
from fashiondiff.guidance import predict
from fashiondiff.training import TrainConfig

needs_bf16 = pytest.mark.skipif(not precision.bf16_supported("cpu"), reason="no bf16 on this CPU")


def test_bad_precisions_are_refused_with_their_name():
    with pytest.raises(ValueError, match="fp16"):
        TrainConfig(precision="fp16")
    with pytest.raises(ValueError, match="fp16"):
        precision.resolve("fp16", "cpu")


def test_auto_follows_the_measurement_and_bf16_needs_support(monkeypatch):
    monkeypatch.setattr(precision, "bf16_is_faster", lambda device, run=None: True)
    assert precision.resolve("auto", "cpu") == "bf16" and precision.resolve("fp32", "cpu") == "fp32"
    monkeypatch.setattr(precision, "bf16_is_faster", lambda device, run=None: False)
    assert precision.resolve("auto", "cpu") == "fp32"
    assert isinstance(precision.autocast("auto", "cpu"), type(precision.autocast("fp32", "cpu")))
    monkeypatch.setattr(precision, "bf16_supported", lambda device: False)
    with pytest.raises(ValueError, match="bf16 is not supported"):
        precision.resolve("bf16", "cpu")


@needs_bf16
@pytest.mark.parametrize("fp32_s, bf16_s, faster", [(0.02, 0.01, True), (0.01, 0.01, False), (0.01, 0.02, False),
                                                    (0.012, 0.01, False)])
def test_bf16_is_faster_compares_the_probe_in_both_precisions(fp32_s, bf16_s, faster):
    def probe():                                   # as slow as the case says, in whichever precision it runs
        time.sleep(bf16_s if torch.is_autocast_enabled("cpu") else fp32_s)
    assert precision.bf16_is_faster("cpu", probe) is faster      # 1.2x is below SPEED_UP_NEEDED (1.3)


class Linear3(torch.nn.Module):
    """A class-conditional 'denoiser' of one linear layer, enough for guidance's arithmetic."""
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Linear(3, 3)
        self.label = torch.nn.Module()
        self.label.null = 10

    def forward(self, x, t, y):
        return self.net(x + y[:, None])                      # bf16 under autocast


@needs_bf16
def test_the_guided_prediction_is_fp32_under_bf16_autocast():
    model, x = Linear3(), torch.randn(4, 3)
    t, y = torch.zeros(4), torch.arange(4)
    with precision.autocast("bf16", "cpu"):
        assert model(x, t, y).dtype == torch.bfloat16          # the network answers in bf16 ...
        for w in (0.0, 1.0, 3.0):
            assert predict(model, x, t, y, w).dtype == torch.float32   # ... the sampler gets fp32


@needs_bf16
def test_a_yardstick_measures_in_fp32_inside_bf16_autocast():
    from fashiondiff.classifier import FashionClassifier
    from fashiondiff.metrics import Evaluator
    torch.manual_seed(0)
    images = torch.rand(40, 1, 28, 28) * 2 - 1
    ev = Evaluator(FashionClassifier(width=8, feature_dim=16), images[:20], images[20:])
    plain = ev.features(images)
    with precision.autocast("bf16", "cpu"):
        inside = ev.features(images)
        predicted = ev.predict(images)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, plain, rtol=0, atol=0)
    assert torch.equal(predicted, ev.predict(images))


@needs_data
@needs_bf16
@pytest.mark.parametrize("name", ["transformer", "flow"])
def test_bf16_samples_stay_within_bf16_rounding_of_the_fp32_ones(name):
    """The same seed through fp32 and bf16: the images differ (bf16 was used) by little, in pixels of [-1, 1]."""
    from fashiondiff.generation import generate
    from fashiondiff.pipelines import load_model
    model = load_model(name, device="cpu")
    labels = torch.arange(64) % 10
    fp32 = generate(model, labels, model.sampling, seed=0)
    with precision.autocast("bf16", "cpu"):
        bf16 = generate(model, labels, model.sampling, seed=0)
    diff = (fp32 - bf16).abs()
    assert bf16.dtype == torch.float32 and diff.max() > 0
    assert diff.mean() < 0.005 and diff.max() < 0.15
