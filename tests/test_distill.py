"""Few-step distillation (fashiondiff.distill) and the consistency sampler, against closed forms.

The teacher's iterates are moved to the flow's coordinates by x / (alpha + sigma_vp): checked on x = alpha x0 +
sigma_vp eps with known x0 and eps. The loss's placement of x_t is checked with students that know the answer: a
student returning the line's velocity z - x, or (x_t - x) / t for the x_t and t it is given, scores zero only where
the route puts x_t where the docstring says.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from torch.testing import assert_close

from fashiondiff import distill, flow, solvers
from fashiondiff.generation import generate
from fashiondiff.recipes import RECIPES
from fashiondiff.sampling import SamplingConfig

NULL = 10


def test_to_flow_keeps_x0_and_eps_and_puts_the_time_where_sigma_says():
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    for alpha, sigma_vp in ((0.9, math.sqrt(1 - 0.81)), (0.3, 0.2), (1.0, 0.0)):
        x_flow, t = distill.to_flow(alpha * x0 + sigma_vp * eps, solvers.Level(alpha, sigma_vp, 0))
        assert_close(x_flow, (1 - t) * x0 + t * eps)
        assert math.isclose(t / (1 - t), sigma_vp / alpha)                  # the same noise level sigma


def pair_batch(n=6, k=5, seed=1):
    """Trajectories (n, k, 1, 2, 2): random points between z and x at times 1 > ... > 0."""
    g = torch.Generator().manual_seed(seed)
    paths = torch.randn(n, k, 1, 2, 2, generator=g)
    times = torch.tensor([1.0, 0.7, 0.45, 0.2, 0.0])[:k]
    return paths, times, torch.arange(n) % 3


def test_reflow_puts_x_t_on_the_straight_line_and_asks_for_its_velocity():
    paths, times, y = pair_batch()
    z, x = paths[:, 0], paths[:, -1]
    line = lambda x_t, t, y: z - x                                           # noqa: E731  the line's velocity
    knows_x = lambda x_t, t, y: (x_t - x) / t.reshape(-1, 1, 1, 1)           # noqa: E731  any point with end x
    for student in (line, knows_x):
        assert float(distill.distill_loss(student, paths, times, y, torch.Generator().manual_seed(0), "reflow")) < 1e-10
    wrong = lambda x_t, t, y: x - z                                          # noqa: E731  the opposite direction
    assert float(distill.distill_loss(wrong, paths, times, y, torch.Generator().manual_seed(0), "reflow")) > 1


def test_the_trajectory_route_uses_the_teachers_iterates_at_their_times():
    paths, times, y = pair_batch()
    x = paths[:, -1]
    seen = []

    def knows_path(x_t, t, y):
        k = [int((times - ti).abs().argmin()) for ti in t]                   # the level of each time given
        seen.extend(k)
        assert_close(x_t, paths[torch.arange(len(x)), k])                    # x_t is that level's iterate
        return (x_t - x) / t.reshape(-1, 1, 1, 1)

    loss = distill.distill_loss(knows_path, paths, times, y, torch.Generator().manual_seed(0), "trajectory")
    assert float(loss) < 1e-10 and 0 not in [times[k] for k in seen]         # never the end itself (t = 0)
    with pytest.raises(ValueError, match="route"):
        distill.distill_loss(knows_path, paths, times, y, torch.Generator(), "shortcut")


def test_straightness_is_zero_for_a_straight_path_and_the_squared_bend_otherwise():
    times = torch.linspace(1, 0, 5)
    z, x = torch.tensor([[2.0, -1.0]]), torch.tensor([[0.5, 0.5]])
    straight = torch.stack([flow.interpolate(x, z, t.expand(1)) for t in times], dim=1)     # (1, 5, 2)
    assert float(distill.straightness(straight, times)) < 1e-12
    bent = straight.clone()
    bent[0, 2] += torch.tensor([0.25, 0.0])                                  # one point moved off the line by d
    # the two steps through it change velocity by +-d / dt = +-1 in one pixel of two: 2 steps of 4, mean 1/2 each
    assert_close(distill.straightness(bent, times), torch.tensor([2 / 4 * 1 / 2]))


class PointMass(torch.nn.Module):
    """A flow whose data is the single image MU: its ideal velocity is (x_t - MU) / t."""
    label = SimpleNamespace(null=NULL)
    process, prediction, clip, schedule, sample_shape = "flow", "velocity", None, None, (1, 2, 2)
    MU = torch.tensor([[[0.5, -0.3], [0.9, 0.0]]])

    def forward(self, x, t, y):
        return (x - self.MU) / t.reshape(-1, 1, 1, 1)


def test_the_consistency_sampler_renoises_each_estimate_to_the_next_time():
    """With D = MU everywhere, the iterate at time t' is (1 - t') MU + t' eps': mean (1 - t') MU, std t'."""
    y = torch.zeros(20_000, dtype=torch.long)
    settings = SamplingConfig("consistency", steps=4)
    x, xs = flow.sample(PointMass(), y, (1, 2, 2), settings, torch.Generator().manual_seed(0), trajectory=True)
    assert_close(x, PointMass.MU.expand_as(x))
    for t, xt in zip(flow.time_grid(4)[1:-1], xs[1:-1]):
        assert_close(xt.mean(0), (1 - t) * PointMass.MU, atol=0.02, rtol=0)
        assert_close(xt.std(0), torch.full((1, 2, 2), t), atol=0.02, rtol=0)


def test_one_consistency_step_is_one_euler_step():
    model = RECIPES["fewstep"].build().eval()
    y = torch.arange(4)
    a = generate(model, y, SamplingConfig("consistency", steps=1), seed=3)
    b = generate(model, y, SamplingConfig("euler", steps=1), seed=3)
    assert_close(a, b)


def test_teacher_paths_end_where_the_teachers_sampler_ends_and_start_at_its_noise():
    teacher = RECIPES["transformer"].build(layers=1, dim=32, ff_dim=32, heads=2).eval()
    settings = SamplingConfig("ddim", steps=4, guidance=2.0, eta=0.0)
    y = torch.arange(5)
    paths, times = distill.teacher_paths(teacher, y, settings, seed=7, batch_size=2)
    assert paths.shape == (5, 5, 1, 16, 16) and times[0] == 1 and times[-1] == 0
    assert_close(paths[:, -1], generate(teacher, y, settings, seed=7, batch_size=2))
    g = torch.Generator().manual_seed(7)
    noise = torch.cat([torch.randn((n, 1, 16, 16), generator=g) for n in (2, 2, 1)])
    assert_close(paths[:, 0], noise)
    with pytest.raises(ValueError, match="deterministic"):
        distill.teacher_paths(teacher, y, SamplingConfig("ddim", steps=4, eta=1.0))


def test_a_pairs_file_is_reused_only_for_the_same_trajectories(tmp_path):
    from fashiondiff.recipes import teacher_data
    path, cpu = tmp_path / "pairs.safetensors", torch.device("cpu")
    made = teacher_data(cpu, 20, path, progress=False)
    assert made["paths"].shape == (20, 11, 1, 16, 16) and made["paths"].dtype == torch.float16
    again = teacher_data(cpu, 20, path, progress=False)
    assert torch.equal(again["paths"], made["paths"]) and again["meta"] == made["meta"]
    with pytest.raises(ValueError, match="holds other trajectories"):
        teacher_data(cpu, 30, path, progress=False)
    assert torch.equal(teacher_data(cpu, 20, path, progress=False)["paths"], made["paths"])     # nothing lost


@pytest.mark.parametrize("route", ["reflow", "trajectory"])
def test_the_loss_takes_points_as_well_as_images(route):
    """(B, K, 2) trajectories of the 2-D toy: the target keeps the batch's shape (no broadcasting across examples)."""
    g = torch.Generator().manual_seed(0)
    paths, times = torch.randn(6, 5, 2, generator=g), torch.tensor([1.0, 0.7, 0.45, 0.2, 0.0])
    x = paths[:, -1]
    knows_x = lambda x_t, t, y: (x_t - x) / t.reshape(-1, 1)                 # noqa: E731
    assert float(distill.distill_loss(knows_x, paths, times, torch.zeros(6, dtype=torch.long), g, route)) < 1e-10
