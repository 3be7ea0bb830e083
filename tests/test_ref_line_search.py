"""Reference tests of the Armijo line searches: every trial step, the first-step
guesses, the contraction, the retry from the initial step, the trial limit and
the number of cost evaluations, against a plain NumPy transcription of Manopt's
``linesearch`` / ``linesearch_adaptive`` (pymanopt's ``BackTrackingLineSearcher``
and ``AdaptiveLineSearcher``: at most ``max_trials`` contractions, so at most
``max_trials + 1`` cost evaluations per backtracking pass).

The cost is a stand-in that records every point it is evaluated at, so the
trial steps are read off exactly: from x = 0 in Euclidean space the trial point
is alpha * d.
"""

import numpy as np
import pytest

from spherenet import Euclidean, Sphere
from spherenet.optim import AdaptiveLineSearch, BacktrackingLineSearch

EPS = np.finfo(np.float64).eps


class Recording:
    """A problem-like object: a geometry and a cost that logs its arguments."""

    def __init__(self, geometry, fun):
        self.geometry = geometry
        self.fun = fun
        self.points = []

    def cost(self, x):
        self.points.append(np.array(x, copy=True))
        return float(self.fun(x))

    @property
    def nfev(self):
        return len(self.points)


def ref_backtrack(phi, f0, df0, alpha, contraction, c, max_trials):
    """Armijo backtracking on phi(alpha) = f(R_x(alpha d)): the trial alphas and the last f."""
    alphas, values = [alpha], [phi(alpha)]
    while values[-1] > f0 + c * alphas[-1] * df0 and len(alphas) <= max_trials:
        alphas.append(alphas[-1] * contraction)
        values.append(phi(alphas[-1]))
    return alphas, values


def _quartic(x):
    # along d = (1, 1, 1)/sqrt(3)... any non-quadratic cost with a minimum on the line
    return float(np.sum((x - 0.3) ** 2) + np.sum(x**4))


D = np.array([1.0, 2.0, -0.5])
X0 = np.zeros(3)


def _phi(fun, d=D):
    return lambda a: fun(X0 + a * d)


def _slope(d=D):
    # gradient of _quartic at 0 is -0.6 * ones
    return float(-0.6 * np.sum(d))


# --- BacktrackingLineSearch ------------------------------------------------------------


@pytest.mark.parametrize("contraction, c, initial", [(0.5, 1e-4, 5.0), (0.3, 0.4, 7.0),
                                                     (0.7, 0.9, 3.0)])
def test_first_search_trials_are_the_reference_trials(contraction, c, initial):
    ls = BacktrackingLineSearch(contraction=contraction, sufficient_decrease=c,
                                initial_step=initial)
    prob = Recording(Euclidean(3), _quartic)
    f0, df0 = _quartic(X0), _slope()
    assert df0 < 0
    step, new_x, new_f = ls.search(prob, X0, D, f0, df0)
    norm_d = np.sqrt(D @ D)
    alphas, values = ref_backtrack(_phi(_quartic), f0, df0, initial / norm_d, contraction, c, 25)
    assert len(alphas) >= 3  # the case backtracks: contraction and Armijo constant matter
    trials = [p @ D / (D @ D) for p in prob.points]
    np.testing.assert_allclose(trials, alphas, rtol=4 * EPS)
    assert prob.nfev == len(alphas)
    assert step == pytest.approx(alphas[-1] * norm_d, rel=4 * EPS)
    np.testing.assert_allclose(new_x, alphas[-1] * D, rtol=4 * EPS)
    assert new_f == pytest.approx(values[-1], rel=4 * EPS)


def test_second_search_guesses_from_the_previous_decrease():
    # Manopt: alpha = optimism * 2 (f0 - f_prev) / df0, f_prev the cost at the previous call.
    ls = BacktrackingLineSearch(optimism=1.5)
    E = Euclidean(3)
    prob = Recording(E, _quartic)
    f_prev = 2.0
    ls.search(prob, X0, D, f_prev, -4.0)  # the first call only sets the memory
    prob.points.clear()
    f0, df0 = _quartic(X0), _slope()
    ls.search(prob, X0, D, f0, df0)
    guess = 1.5 * 2.0 * (f0 - f_prev) / df0
    alphas, _ = ref_backtrack(_phi(_quartic), f0, df0, guess, 0.5, 1e-4, 25)
    trials = [p @ D / (D @ D) for p in prob.points]
    np.testing.assert_allclose(trials, alphas, rtol=4 * EPS)
    assert len(alphas) >= 2


def test_guess_falls_back_to_the_initial_step_without_a_decrease():
    # The previous cost is below f0 (no decrease to learn from): the a-priori step.
    ls = BacktrackingLineSearch(initial_step=0.25)
    prob = Recording(Euclidean(3), _quartic)
    f0, df0 = _quartic(X0), _slope()
    ls.search(prob, X0, D, f0 - 1.0, df0)
    prob.points.clear()
    ls.search(prob, X0, D, f0, df0)
    assert prob.points[0] @ D / (D @ D) == pytest.approx(0.25 / np.sqrt(D @ D), rel=4 * EPS)


def test_failed_guess_retries_from_the_initial_step_with_exact_nfev():
    # The guess from a huge previous decrease overshoots so far that max_trials
    # contractions never come back: a second pass from initial_step / ||d||.
    max_trials = 3
    ls = BacktrackingLineSearch(max_trials=max_trials)
    prob = Recording(Euclidean(3), _quartic)
    f0, df0 = _quartic(X0), _slope()
    ls.search(prob, X0, D, f0 + 1e6, df0)
    prob.points.clear()
    step, new_x, new_f = ls.search(prob, X0, D, f0, df0)
    guess = 2.0 * 2.0 * (f0 - (f0 + 1e6)) / df0
    first, vals1 = ref_backtrack(_phi(_quartic), f0, df0, guess, 0.5, 1e-4, max_trials)
    assert len(first) == max_trials + 1 and vals1[-1] > f0  # the guess pass fails
    second, vals2 = ref_backtrack(_phi(_quartic), f0, df0, 1.0 / np.sqrt(D @ D), 0.5, 1e-4,
                                  max_trials)
    trials = [p @ D / (D @ D) for p in prob.points]
    np.testing.assert_allclose(trials, first + second, rtol=4 * EPS)
    assert prob.nfev == len(first) + len(second)
    assert step == pytest.approx(second[-1] * np.sqrt(D @ D), rel=4 * EPS)
    assert new_f == pytest.approx(vals2[-1], rel=4 * EPS)


@pytest.mark.parametrize("max_trials", [0, 1, 4])
def test_no_decrease_stops_after_max_trials_contractions(max_trials):
    # An ascent direction: never a decrease. max_trials + 1 evaluations, step 0, x unchanged.
    ls = BacktrackingLineSearch(max_trials=max_trials, contraction=0.25)
    prob = Recording(Euclidean(3), _quartic)
    f0 = _quartic(X0)
    step, new_x, new_f = ls.search(prob, X0, -D, f0, -_slope())
    assert prob.nfev == max_trials + 1
    trials = [-(p @ D) / (D @ D) for p in prob.points]
    np.testing.assert_allclose(trials, [0.25**k / np.sqrt(D @ D) for k in range(max_trials + 1)],
                               rtol=4 * EPS)
    assert step == 0.0 and new_x is X0 and new_f == f0


def test_nonfinite_cost_is_no_decrease():
    ls = BacktrackingLineSearch()
    fun = lambda x: np.nan if np.linalg.norm(x) > 0.1 else _quartic(x)  # noqa: E731
    prob = Recording(Euclidean(3), fun)
    f0, df0 = _quartic(X0), _slope()
    step, new_x, _ = ls.search(prob, X0, D, f0, df0)
    alphas = [p @ D / (D @ D) for p in prob.points]
    assert np.linalg.norm(alphas[-2] * D) > 0.1 >= np.linalg.norm(alphas[-1] * D)
    assert step == pytest.approx(alphas[-1] * np.sqrt(D @ D), rel=4 * EPS)


def test_sphere_trials_follow_the_exponential_map():
    S = Sphere(3)
    x = np.array([0.0, 0.0, 1.0])
    d = np.array([2.0, -1.0, 0.0])  # tangent at x
    a_mat = np.diag([1.0, 2.0, 5.0])
    fun = lambda y: float(y @ a_mat @ y)  # noqa: E731
    n = np.linalg.norm(d)
    phi = lambda a: fun(np.cos(a * n) * x + np.sin(a * n) / n * d)  # noqa: E731
    f0 = fun(x)
    df0 = -1.0  # the true slope is 0 at this critical point; any negative number serves
    ls = BacktrackingLineSearch(contraction=0.95, sufficient_decrease=0.5, initial_step=3.1)
    prob = Recording(S, fun)
    step, new_x, new_f = ls.search(prob, x, d, f0, df0)
    alphas, values = ref_backtrack(phi, f0, df0, 3.1 / n, 0.95, 0.5, 25)
    assert len(alphas) >= 3
    expected_points = [np.cos(a * n) * x + np.sin(a * n) / n * d for a in alphas]
    np.testing.assert_allclose(np.array(prob.points), np.array(expected_points), atol=8 * EPS)
    assert step == pytest.approx(alphas[-1] * n, rel=4 * EPS)
    assert new_f == pytest.approx(values[-1], rel=8 * EPS)


# --- AdaptiveLineSearch ----------------------------------------------------------------


def ref_adaptive(calls, contraction=0.5, c=0.5, max_trials=10, initial=1.0):
    """Manopt's linesearch_adaptive over successive calls (phi, f0, df0, norm_d)."""
    memory, out = None, []
    for phi, f0, df0, norm_d in calls:
        alpha = initial / norm_d if memory is None else memory
        alphas, values = ref_backtrack(phi, f0, df0, alpha, contraction, c, max_trials)
        memory = alphas[-1] if len(alphas) == 2 else 2.0 * alphas[-1]
        out.append((alphas, values))
    return out


def test_adaptive_guess_is_the_last_step_doubled_unless_two_trials():
    # Successive calls with the same line and different scalings of d: the
    # memory (alpha if two trials, 2 alpha otherwise) is exercised with 1, 2 and
    # more trials.
    ls = AdaptiveLineSearch()
    scales = [0.2, 0.2, 0.2, 0.2, 3.0, 3.0, 3.0]
    calls, got = [], []
    for s in scales:
        d = s * D
        prob = Recording(Euclidean(3), _quartic)
        f0, df0 = _quartic(X0), _slope(d)
        ls.search(prob, X0, d, f0, df0)
        got.append([p @ d / (d @ d) for p in prob.points])
        calls.append((_phi(_quartic, d), f0, df0, np.sqrt(d @ d)))
    ref = ref_adaptive(calls)
    counts = [len(a) for a, _ in ref]
    assert 1 in counts and 2 in counts and max(counts) >= 3  # every branch of the memory
    for trials, (alphas, _) in zip(got, ref):
        np.testing.assert_allclose(trials, alphas, rtol=8 * EPS)


def test_adaptive_defaults_and_trial_limit():
    ls = AdaptiveLineSearch(contraction=0.3, max_trials=2)
    assert (ls.contraction, ls.sufficient_decrease, ls.max_trials) == (0.3, 0.5, 2)
    prob = Recording(Euclidean(3), _quartic)
    f0 = _quartic(X0)
    step, new_x, new_f = ls.search(prob, X0, -D, f0, -_slope())  # ascent: no decrease
    assert prob.nfev == 3 and step == 0.0 and new_x is X0 and new_f == f0
    trials = [-(p @ D) / (D @ D) for p in prob.points]
    np.testing.assert_allclose(trials, [0.3**k / np.sqrt(D @ D) for k in range(3)], rtol=4 * EPS)


# --- a whole steepest-descent run: the line search's memory across iterations -----------------


def _quartic_grad(x):
    return 2 * (x - 0.3) + 4 * x**3


def test_steepest_descent_run_matches_the_reference_with_exact_nfev():
    # Manopt's steepestdescent with linesearch (optimism 2, c = 1e-4, contraction 0.5,
    # the guess from the previous decrease); every trial counted.
    from spherenet import minimize

    x = np.array([1.5, -2.0, 0.7])
    f_prev, xs, trials = None, [], 0
    for _ in range(8):
        g = _quartic_grad(x)
        f0, df0, norm_d = _quartic(x), -(g @ g), np.sqrt(g @ g)
        fresh = 1.0 / norm_d
        guess = fresh if f_prev is None or not f_prev > f0 else 2.0 * 2.0 * (f0 - f_prev) / df0
        phi = lambda a, x=x, g=g: _quartic(x - a * g)  # noqa: E731
        alphas, values = ref_backtrack(phi, f0, df0, guess, 0.5, 1e-4, 25)
        trials += len(alphas)
        if values[-1] > f0 and guess != fresh:
            alphas, values = ref_backtrack(phi, f0, df0, fresh, 0.5, 1e-4, 25)
            trials += len(alphas)
        f_prev = f0
        x = x - alphas[-1] * g
        xs.append(x)
    iterates = []
    res = minimize(_quartic, Euclidean(3), x0=np.array([1.5, -2.0, 0.7]), method="sd",
                   grad=_quartic_grad, maxiter=8, gtol=0.0, xtol=0.0,
                   callback=lambda z: iterates.append(z))
    assert res.nit == 8
    np.testing.assert_allclose(np.array(iterates), np.array(xs), rtol=0, atol=64 * EPS)
    # the cost at x0, then every trial; with the user's gradient the accepted
    # trial's cost is reused, not evaluated again. One gradient at x0 and per iterate.
    assert res.nfev == 1 + trials and res.ngev == 1 + 8


def test_adaptive_retries_from_the_initial_step_when_the_remembered_step_fails():
    # The remembered step (in units of a short d) is far too long for a long d:
    # max_trials contractions do not come back, so a second pass starts from
    # initial_step / ||d||; the memory then follows the second pass.
    ls = AdaptiveLineSearch(max_trials=2)
    prob = Recording(Euclidean(3), _quartic)
    f0 = _quartic(X0)
    ls.search(prob, X0, 0.01 * D, f0, _slope(0.01 * D))
    first_trials = [p @ D / (0.01 * (D @ D)) for p in prob.points]
    memory = first_trials[-1] if len(first_trials) == 2 else 2 * first_trials[-1]
    d = 10.0 * D
    prob = Recording(Euclidean(3), _quartic)
    step, _, new_f = ls.search(prob, X0, d, f0, _slope(d))
    phi = _phi(_quartic, d)
    a1, v1 = ref_backtrack(phi, f0, _slope(d), memory, 0.5, 0.5, 2)
    assert len(a1) == 3 and v1[-1] > f0
    a2, v2 = ref_backtrack(phi, f0, _slope(d), 1.0 / np.sqrt(d @ d), 0.5, 0.5, 2)
    assert v2[-1] <= f0
    np.testing.assert_allclose([p @ d / (d @ d) for p in prob.points], a1 + a2, rtol=8 * EPS)
    assert step == pytest.approx(a2[-1] * np.sqrt(d @ d), rel=4 * EPS)
    assert new_f == pytest.approx(v2[-1], rel=4 * EPS)
    # next call: the memory from the second pass
    prob = Recording(Euclidean(3), _quartic)
    ls.search(prob, X0, d, f0, _slope(d))
    expected = a2[-1] if len(a2) == 2 else 2 * a2[-1]
    assert prob.points[0] @ d / (d @ d) == pytest.approx(expected, rel=8 * EPS)
