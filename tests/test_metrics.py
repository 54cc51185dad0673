"""KID against its closed form on Gaussian features, precision/recall on sets with known answers, and what
``Evaluator.score`` and ``score_images`` report against the same measures computed by hand from the features (with
small untrained classifiers and fake images: no data set needed)."""
import pytest
import torch

import fashiondiff.metrics as metrics
import fashiondiff.reports as reports
import fashiondiff.stats as stats
from conftest import needs_data
from fashiondiff.stats import cubic_kernel, kid, knn_radii, mmd2_unbiased, precision_recall

D = 16


def expected_kernel(a: torch.Tensor, b: torch.Tensor) -> float:
    """E k(x, y) for the cubic kernel (x.y / d + 1)^3, x ~ N(a, I) and y ~ N(b, I) independent.

    s = x.y = sum_i x_i y_i; per coordinate t = x_i y_i has cumulants a_i b_i, a_i^2 + b_i^2 + 1 and 6 a_i b_i
    (from E t^2 = (a^2 + 1)(b^2 + 1), E t^3 = (a^3 + 3a)(b^3 + 3b)), so s has cumulants K1 = a.b,
    K2 = |a|^2 + |b|^2 + d, K3 = 6 a.b, and raw moments E s = K1, E s^2 = K2 + K1^2, E s^3 = K3 + 3 K1 K2 + K1^3.
    """
    a, b = a.double(), b.double()
    d = len(a)
    k1, k2 = float(a @ b), float(a @ a + b @ b) + d
    k3 = 6 * k1
    s1, s2, s3 = k1, k2 + k1 ** 2, k3 + 3 * k1 * k2 + k1 ** 3
    return s3 / d ** 3 + 3 * s2 / d ** 2 + 3 * s1 / d + 1


def population_mmd2(mu: torch.Tensor) -> float:
    """MMD^2 between N(0, I) and N(mu, I) with the cubic kernel: E k(x, x') + E k(y, y') - 2 E k(x, y)."""
    zero = torch.zeros_like(mu)
    return expected_kernel(zero, zero) + expected_kernel(mu, mu) - 2 * expected_kernel(zero, mu)


def biased_mmd2(x, y, kernel=cubic_kernel) -> float:
    """The V-statistic, diagonals included: what the tests must be able to tell apart from the unbiased one."""
    return float(kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean())


def gaussians(n: int, mu: torch.Tensor, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g), torch.randn(n, D, generator=g) + mu


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small matrices: one thread is faster, and on a busy machine two threads wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


SHIFT = torch.full((D,), 0.125)                                      # |mu|^2 = 0.25: MMD^2 = 0.0510


def test_closed_form_of_the_expected_kernel_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(D, generator=g, dtype=torch.float64), 0.5 * torch.randn(D, generator=g, dtype=torch.float64)
    x = torch.randn(200_000, D, generator=g, dtype=torch.float64) + a
    y = torch.randn(200_000, D, generator=g, dtype=torch.float64) + b
    k = ((x * y).sum(1) / D + 1) ** 3                                  # independent pairs (x_i, y_i)
    assert abs(float(k.mean()) - expected_kernel(a, b)) < 4 * float(k.std()) / len(k) ** 0.5
    # and the mean-shift MMD^2 in its own closed form: 3m/d + 3m^2/d^2 + (6m + 6m^2 + 3md + m^3)/d^3, m = |mu|^2
    m = float(SHIFT @ SHIFT)
    assert population_mmd2(SHIFT) == pytest.approx(3 * m / D + 3 * m ** 2 / D ** 2
                                                    + (6 * m + 6 * m ** 2 + 3 * m * D + m ** 3) / D ** 3)


def test_cubic_kernel_and_mmd2_on_a_small_case():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    y = torch.tensor([[1.0, 1.0], [0.0, 2.0], [1.0, -1.0]])
    expected = torch.tensor([[1.0, 1.0, 1.0], [8.0, 1.0, 8.0]], dtype=torch.float64)     # (x.y / 2 + 1)^3
    torch.testing.assert_close(cubic_kernel(x, y), expected)
    kxx, kyy, kxy = cubic_kernel(x, x), cubic_kernel(y, y), cubic_kernel(x, y)
    by_hand = kxx[0, 1] + (kyy.sum() - kyy.trace()) / 6 - 2 * kxy.mean()      # off-diagonal means
    assert mmd2_unbiased(x, y) == pytest.approx(float(by_hand))
    with pytest.raises(ValueError, match="at least 2"):
        mmd2_unbiased(x[:1], y)


@pytest.mark.parametrize("mu", [torch.zeros(D), SHIFT], ids=["same", "shift"])
def test_unbiased_mmd2_averages_to_the_population_value_even_at_small_n(mu):
    """200 independent draws of 50 vs 50 points: the mean estimate is within 4 standard errors of the closed form,
    while the biased estimator (diagonals included) is many standard errors too high at this n."""
    g = torch.Generator().manual_seed(1)
    unbiased, biased = [], []
    for _ in range(200):
        x, y = torch.randn(50, D, generator=g), torch.randn(50, D, generator=g) + mu
        unbiased.append(mmd2_unbiased(x, y))
        biased.append(biased_mmd2(x, y))
    unbiased, biased = torch.tensor(unbiased), torch.tensor(biased)
    truth, se = population_mmd2(mu), float(unbiased.std()) / 200 ** 0.5
    assert abs(float(unbiased.mean()) - truth) < 4 * se, (float(unbiased.mean()), truth, se)
    assert float(biased.mean()) - truth > 20 * se                                      # the test has power


def kid_error(mu, n=1000, subset_size=200):
    """|KID - population MMD^2| in units of KID's standard error, estimated as the subset std x sqrt(m / n)
    (the mean over many overlapping subsets is about the full-sample U-statistic; checked against 60
    independent replicates: slightly conservative)."""
    x, y = gaussians(n, mu, seed=2)
    mean, std = kid(x, y, subsets=50, subset_size=subset_size)
    return abs(mean - population_mmd2(mu)) / (std * (subset_size / n) ** 0.5)


@pytest.mark.parametrize("mu", [torch.zeros(D), SHIFT], ids=["same", "shift"])
def test_kid_agrees_with_the_closed_form(mu):
    assert kid_error(mu) < 4


@pytest.mark.parametrize("mu", [torch.zeros(D), SHIFT], ids=["same", "shift"])
def test_kid_test_would_catch_a_biased_estimator(mu, monkeypatch):
    monkeypatch.setattr(stats, "mmd2_unbiased", biased_mmd2)
    assert kid_error(mu) > 4 * 1.5


def test_kid_is_reproducible_and_uses_at_most_n_points_per_subset():
    x, y = gaussians(300, SHIFT, seed=3)
    assert kid(x, y, subsets=5) == kid(x, y, subsets=5)                              # subset_size 1000 > n: m = 300
    assert kid(x, y, subsets=5) != kid(x, y, subsets=5, generator=torch.Generator().manual_seed(1))
    one = kid(x, y, subsets=1, subset_size=300)
    assert one[0] == pytest.approx(mmd2_unbiased(x, y)) and one[1] == 0                # all of both sets, any order
    with pytest.raises(ValueError):
        kid(x[:1], y)


def test_knn_radius_excludes_the_point_itself():
    points = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    torch.testing.assert_close(knn_radii(points, k=1), torch.tensor([1.0, 1.0, 2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(knn_radii(points, k=2, chunk=3), torch.tensor([3.0, 2.0, 3.0, 6.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="more than 3"):
        knn_radii(points[:3], k=3)


def test_precision_recall_on_points_on_a_line_by_hand():
    """k = 1 on a line. Real 0, 1, 3, 7 have radii 1, 1, 2, 4; fake 0.5, 1.5, 11, 12, 30 have radii 1, 1, 1, 1, 18.
    Precision: 0.5 (from 0) and 1.5 (from 1) are inside, 11 is on the edge of 7's ball (4 away: inside, the balls
    are closed), 12 and 30 are outside: 3/5. Recall: 0 and 1 are inside (0.5 away), 3 and 7 are not (no ball of radius 1
    reaches them, and 30's, of radius 18, is 27 and 23 away): 2/4."""
    real = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    fake = torch.tensor([[0.5], [1.5], [11.0], [12.0], [30.0]])
    assert precision_recall(real, fake, k=1) == (3 / 5, 2 / 4)


def test_mode_collapse_has_high_precision_and_low_recall():
    real, _ = gaussians(1000, SHIFT, seed=5)
    fake = real[7].repeat(500, 1)                                     # every sample the same real point
    precision, recall = precision_recall(real, fake)
    assert precision > 0.9 and recall < 0.1, (precision, recall)


def test_samples_far_from_the_data_have_no_precision():
    real, fake = gaussians(1000, torch.full((D,), 100.0), seed=6)
    assert precision_recall(real, fake[:500]) == (0.0, 0.0)


def test_precision_recall_of_two_samples_of_one_distribution_and_of_half_the_modes():
    real, fake = gaussians(1000, torch.zeros(D), seed=7)
    precision, recall = precision_recall(real, fake)
    assert 0.6 < precision < 0.95 and 0.6 < recall < 0.95, (precision, recall)
    half = real[real[:, 0] > 0]                                        # a generator that only makes one half
    jitter = 0.01 * torch.randn(half.shape, generator=torch.Generator().manual_seed(0))
    precision, recall = precision_recall(real, half + jitter)
    assert precision > 0.95 and recall < 0.85, (precision, recall)


def test_precision_recall_does_not_depend_on_the_chunk_size():
    real, fake = gaussians(300, SHIFT, seed=8)
    assert precision_recall(real, fake, chunk=7) == precision_recall(real, fake, chunk=1000)
    assert precision_recall(real, fake, real_radii=knn_radii(real)) == precision_recall(real, fake)


N_FAKE = 60          # fake reference and training sets as large as the samples: KID's subsets are then whole sets


def fake_load(split="train", size=28, *args, **kwargs):
    """Random 'test' and 'train' sets of N_FAKE images each in place of Fashion-MNIST: no data set needed."""
    g = torch.Generator().manual_seed({"test": 0, "train": 1}[split])
    return torch.rand(N_FAKE, 1, size, size, generator=g) * 2 - 1, torch.arange(N_FAKE) % 10


@pytest.fixture
def fake_data(monkeypatch):
    monkeypatch.setattr(reports, "load", fake_load)


def small_evaluator(seed: int = 0) -> metrics.Evaluator:
    """An Evaluator with an untrained small classifier (16 features), on the fake sets."""
    from fashiondiff.classifier import FashionClassifier
    torch.manual_seed(seed)
    return metrics.Evaluator(FashionClassifier(width=4, feature_dim=16), fake_load("test")[0], fake_load("train")[0],
                             resolution=28, batch_size=128)


@pytest.fixture
def fake_evaluator(fake_data):
    return small_evaluator()


def scores_by_hand(evaluator: metrics.Evaluator, x: torch.Tensor, k: int = 3) -> dict:
    """What ``score`` must report for samples x when samples, reference and training set all have N_FAKE images,
    computed from the features without the package's metric functions: FID with tr (S_1 S_2)^(1/2) from the
    eigenvalues of the (non-symmetric) product S_1 S_2; KID as the unbiased MMD^2 of the whole sets (every subset
    of N_FAKE rows out of N_FAKE is the whole set, so the subsets' spread is 0); precision and recall from sorted
    distance matrices."""
    ref = evaluator.ref_features.double()
    fake = evaluator.features(x).double()
    real = evaluator.features(evaluator.real).double()                          # all of it, in any order

    def fid(a, b):
        sa, sb = torch.cov(a.T), torch.cov(b.T)
        root_eigenvalues = torch.linalg.eigvals(sa @ sb).real.clamp(min=0).sqrt()
        return float((a.mean(0) - b.mean(0)).square().sum() + sa.trace() + sb.trace() - 2 * root_eigenvalues.sum())

    def cubic(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    def mmd2(a, b):
        def off_diagonal_mean(kernel):
            return (kernel.sum() - kernel.trace()) / (len(kernel) * (len(kernel) - 1))
        return float(off_diagonal_mean(cubic(a, a)) + off_diagonal_mean(cubic(b, b)) - 2 * cubic(a, b).mean())

    def radii(a):                                                              # column 0 is the point itself
        return torch.cdist(a, a).sort(dim=1).values[:, k]

    d = torch.cdist(ref, fake)                                                 # (N_ref, N_fake)
    return {"fid": fid(fake, ref), "real_fid": fid(real, ref), "ratio": fid(fake, ref) / fid(real, ref),
            "kid": 1e3 * mmd2(fake, ref), "kid_std": 0.0, "real_kid": 1e3 * mmd2(real, ref),
            "precision": float((d <= radii(ref)[:, None]).any(0).double().mean()),
            "recall": float((d <= radii(fake)[None]).any(1).double().mean())}


def samples(n: int, seed: int) -> torch.Tensor:
    """n random images in [-0.9, 1], a little lighter than the fake data sets: partly inside their manifold."""
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 1.9 - 0.9


def test_score_reports_fid_kid_and_precision_recall_by_hand(fake_evaluator, monkeypatch):
    x = samples(N_FAKE, seed=2)
    expected = scores_by_hand(fake_evaluator, x)
    calls = []
    features = fake_evaluator.features
    monkeypatch.setattr(fake_evaluator, "features", lambda x: calls.append(len(x)) or features(x))
    scores = fake_evaluator.score(x, torch.arange(N_FAKE) % 10, seed=3)
    assert calls == [N_FAKE, N_FAKE], "the samples' and the training images' features, once each"
    assert {"fid", "real_fid", "ratio", "kid", "kid_std", "real_kid", "precision", "recall", "cond_acc",
            "n"} <= set(scores)
    assert fake_evaluator.ref_features.shape == (N_FAKE, 16)
    assert {key: scores[key] for key in expected} == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert fake_evaluator.score(x, torch.arange(N_FAKE) % 10, seed=3) == scores                  # reproducible


def test_score_works_down_to_two_samples(fake_evaluator):
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    scores = fake_evaluator.score(x, torch.arange(2))
    assert scores["n"] == 2 and 0 <= scores["precision"] <= 1                      # k = 1 nearest neighbour


@pytest.fixture(scope="module")
def evaluator():
    from fashiondiff.pipelines import load_model
    return reports.evaluator(load_model("classifier", device="cpu"), resolution=28)


@needs_data
def test_training_images_score_kid_about_zero_and_class_means_collapse(evaluator):
    from fashiondiff.data import load
    x, y = load("train", 28)
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(11))[:500]
    real = evaluator.score(x[idx], y[idx], seed=1)                 # training images as "samples"
    # KID in these features is noisy (kernel values ~7 +- 10): about 0 means within one subset std
    assert abs(real["kid"]) < real["kid_std"] and abs(real["real_kid"]) < real["kid_std"], real
    assert real["precision"] > 0.7 and real["recall"] > 0.7, real
    means = torch.stack([x[y == c].mean(0) for c in range(10)]).repeat(50, 1, 1, 1)     # 10 images, 50 times each
    collapsed = evaluator.score(means, torch.arange(500) % 10, seed=1)
    assert collapsed["kid"] > 5 * collapsed["kid_std"] and collapsed["recall"] < 0.05, collapsed
    assert collapsed["precision"] > 0.5, collapsed


def test_pixel_stats_count_black_pixels_and_blur_lowers_sharpness():
    from fashiondiff.stats import pixel_stats
    x = torch.full((4, 1, 8, 8), -1.0)
    x[:, :, 2:6, 2:6] = 1.0                                                     # a white square on black
    s = pixel_stats(x)
    assert s["black_share"] == pytest.approx(48 / 64) and s["mean"] == pytest.approx(16 / 64)
    blurred = torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), value=-1.0), 3, stride=1)
    assert pixel_stats(blurred)["sharpness"] < 0.5 * s["sharpness"]
    assert pixel_stats(torch.full((2, 1, 8, 8), 0.3))["sharpness"] == 0                  # flat: no edges


def test_score_images_reports_the_second_yardstick_in_its_own_features(fake_data):
    from fashiondiff.reports import score_images
    SECOND_KEYS = ("fid", "real_fid", "kid", "kid_std", "real_kid", "precision", "recall", "cond_acc")
    first, second = small_evaluator(seed=0), small_evaluator(seed=1)               # two different classifiers
    x = samples(N_FAKE, seed=2)
    scores = score_images(x, torch.arange(N_FAKE) % 10, first, second=second, seed=3)
    assert set(scores["second"]) == set(SECOND_KEYS)
    for evaluator, reported in ((first, scores), (second, scores["second"])):
        expected = scores_by_hand(evaluator, x)
        assert {key: reported[key] for key in SECOND_KEYS if key in expected} == pytest.approx(
            {key: expected[key] for key in SECOND_KEYS if key in expected}, rel=1e-6, abs=1e-9)
    assert scores["second"]["kid"] != pytest.approx(scores["kid"], rel=0.01)       # the test can tell them apart


@needs_data
def test_score_images_reports_pixels_next_to_real_images(evaluator):
    from fashiondiff.data import load
    from fashiondiff.reports import score_images
    x, y = load("train", 28)
    scores = score_images(x[:200], y[:200], evaluator, seed=2)
    assert scores["pixels"]["black_share"] == pytest.approx(scores["real_pixels"]["black_share"], abs=0.05)
    assert "second" not in scores
