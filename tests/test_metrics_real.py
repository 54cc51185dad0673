"""The yardstick on real data: the bundled classifier, FID against the test set, conditional accuracy."""
import pytest
import torch

from conftest import needs_data

pytestmark = needs_data


@pytest.fixture(scope="module")
def evaluator():
    from fashiondiff.reports import evaluator
    from fashiondiff.pipelines import load_model
    return evaluator(load_model("classifier", device="cpu"), resolution=28)


def test_real_vs_real_is_far_below_noise_and_class_means(evaluator):
    from fashiondiff.data import load
    x, y = load("train", 28)
    real = evaluator.real_fid(500, seed=1)
    noise = evaluator.fid(torch.rand(500, 1, 28, 28) * 2 - 1)
    means = torch.stack([x[y == c].mean(0) for c in range(10)])                  # (10, 1, 28, 28)
    class_means = evaluator.fid(means.repeat(50, 1, 1, 1))
    assert real < 0.05 * class_means < 0.05 * noise, (real, class_means, noise)


def test_conditional_accuracy_of_real_images_is_the_classifiers_accuracy(evaluator):
    from fashiondiff.data import load
    x, y = load("test", 28)
    acc, per_class = evaluator.accuracy(x[:1000], y[:1000])
    assert acc > 0.9 and len(per_class) == 10
    shuffled, _ = evaluator.accuracy(x[:1000], y[:1000].roll(1))                 # wrong labels: near chance
    assert shuffled < 0.3
