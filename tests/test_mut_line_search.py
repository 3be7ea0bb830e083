"""The Armijo backtracking search at the corners the reference tests leave open: the first
step guessed only from a downhill slope, and a search whose trials end at a cost equal to
f(x). Trial points are read off a cost that records them; from x = 0 in Euclidean space the
trial point is alpha d, so the steps are exact."""

import numpy as np
import pytest

from spherenet import Euclidean
from spherenet.optim import AdaptiveLineSearch, BacktrackingLineSearch


class Recording:
    """A problem-like object: a geometry and a cost that logs the points it is given."""

    def __init__(self, fun, n=3):
        self.geometry = Euclidean(n)
        self.fun = fun
        self.points = []

    def cost(self, x):
        self.points.append(np.array(x, copy=True))
        return float(self.fun(x))


D = np.array([1.0, 2.0, -2.0])      # norm 3


def _quadratic(x):
    return float(np.sum((x - 0.1) ** 2))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("df0", [0.0, 0.5])
def test_a_slope_that_is_not_downhill_guesses_from_the_initial_step(df0, dtype):
    # Manopt's guess 2 optimism (f0 - f_prev)/df0 is a step length only for df0 < 0 (a
    # decrease over a downhill slope); for df0 >= 0 it would be infinite or negative. The
    # first trial is then initial_step/||d|| along d.
    x, d = np.zeros(3, dtype=dtype), D.astype(dtype)
    search = BacktrackingLineSearch(initial_step=1.5)
    search.search(Recording(_quadratic), x, d, 2.0, -1.0)      # remembers f_prev = 2 > f0 below
    problem = Recording(_quadratic)
    search.search(problem, x, d, 1.0, df0)
    first = problem.points[0]
    assert first.dtype == dtype
    np.testing.assert_allclose(first, (1.5 / 3.0) * D, rtol=np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_downhill_slope_after_a_decrease_guesses_from_it(dtype):
    # The other side of the same test: f_prev = 2 > f0 = 1 and df0 = -4 give the first
    # trial 2 * optimism * (f0 - f_prev)/df0 = 2 * 2 * (-1)/(-4) = 1 (in units of d).
    x, d = np.zeros(3, dtype=dtype), D.astype(dtype)
    search = BacktrackingLineSearch(initial_step=1.5)
    search.search(Recording(_quadratic), x, d, 2.0, -1.0)
    problem = Recording(lambda y: -1.0)                      # accepted at once
    search.search(problem, x, d, 1.0, -4.0)
    np.testing.assert_allclose(problem.points[0], D, rtol=np.finfo(dtype).eps, atol=0)


@pytest.mark.parametrize("kind", ["backtracking", "adaptive"])
def test_trials_that_end_at_the_cost_of_x_keep_their_step(kind):
    # A flat cost: no trial passes Armijo's test f <= f0 + c alpha df0 (c alpha df0 < 0),
    # so the guessed step is contracted max_trials times; its last cost equals f0, which
    # is no increase: that step is returned (as Manopt), with no retry from the initial
    # step, after max_trials + 1 evaluations.
    if kind == "backtracking":
        search = BacktrackingLineSearch(initial_step=1.5)
        search.search(Recording(lambda y: 1.0), np.zeros(3), D, 2.0, -1.0)   # f_prev = 2
        guess = 2.0 * 2.0 * (1.0 - 2.0) / -1.0                              # 4 (units of d)
    else:
        search = AdaptiveLineSearch(initial_step=1.5)
        search.search(Recording(lambda y: 0.0), np.zeros(3), D, 2.0, -1.0)   # accepted at once
        guess = 2.0 * (1.5 / 3.0)                                         # its step, doubled
    problem = Recording(lambda y: 1.0)
    step, new_x, new_f = search.search(problem, np.zeros(3), D, 1.0, -1.0)
    alpha = guess * search.contraction ** search.max_trials
    assert len(problem.points) == search.max_trials + 1
    assert new_f == 1.0
    assert step == pytest.approx(alpha * 3.0, rel=4 * np.finfo(float).eps)
    np.testing.assert_allclose(new_x, alpha * D, rtol=4 * np.finfo(float).eps, atol=0)
