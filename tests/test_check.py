"""The lessons' self-checks pass a right answer and fail the common wrong ones, without raising."""

from fashiondiff import check


def test_tweedie_check():
    assert check.tweedie(lambda x, ab, score: (x + (1 - ab) * score) / ab.sqrt())
    assert not check.tweedie(lambda x, ab, score: x + (1 - ab) * score)                 # forgot to rescale
    assert not check.tweedie(lambda x, ab, score: (x - (1 - ab) * score) / ab.sqrt())   # score's sign


def test_v_target_check():
    assert check.v_target(lambda x0, eps, ab: ab.sqrt() * eps - (1 - ab).sqrt() * x0)
    assert not check.v_target(lambda x0, eps, ab: ab.sqrt() * x0 - (1 - ab).sqrt() * eps)   # roles swapped
    assert not check.v_target(lambda x0, eps, ab: eps - x0)                                # the flow's target


def test_euler_step_check(capsys):
    assert check.euler_step(lambda x, v, t, t_next: x + (t_next - t) * v)
    assert not check.euler_step(lambda x, v, t, t_next: x + (t - t_next) * v)            # wrong direction
    assert "backwards" in capsys.readouterr().out
    assert not check.euler_step(lambda x, v, t, t_next: (x + (t_next - t) * v)[:1])      # wrong shape
