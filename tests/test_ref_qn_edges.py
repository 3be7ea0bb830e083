"""Edges of the Barzilai-Borwein and L-BFGS solvers (``minimize(method="bb" | "lbfgs")``):
the BB step at zero curvature, the first and last valid options and the exact messages of
the invalid ones, the number of backtracking trials, a start at a critical point, and the
telemetry of the steps. The references are closed forms and counts written out here."""

import numpy as np
import pytest

from spherenet import Euclidean, Sphere, minimize
from spherenet.optim.bb import bb_step

EPS = np.finfo(np.float64).eps
A = np.diag([1.0, 2.0, 5.0])
E1, E2, E3 = np.eye(3)


def rayleigh(x):
    return -(x @ (A @ x))


# --- the BB step -----------------------------------------------------------------------------


@pytest.mark.parametrize("rule", ["bb1", "bb2", "alternate"])
def test_bb_step_without_positive_curvature_is_the_largest_step(rule):
    for sy in (0.0, -1e-300, -2.0):
        assert bb_step(rule, 2, 1.0, sy, 1.0, 1e-3, 1e3) == 1e3


def test_bb_step_values_and_clipping():
    ss, sy, yy = 4.0, 2.0, 8.0
    assert bb_step("bb1", 2, ss, sy, yy, 1e-3, 1e3) == 2.0  # <s,s>/<s,y>
    assert bb_step("bb2", 1, ss, sy, yy, 1e-3, 1e3) == 0.25  # <s,y>/<y,y>
    assert bb_step("alternate", 1, ss, sy, yy, 1e-3, 1e3) == 2.0  # odd: bb1
    assert bb_step("alternate", 2, ss, sy, yy, 1e-3, 1e3) == 0.25  # even: bb2
    assert bb_step("bb1", 2, ss, sy, yy, 1e-3, 1.5) == 1.5
    assert bb_step("bb2", 2, ss, sy, yy, 0.5, 1e3) == 0.5


# --- options -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options, error, message", [
    ({"step0": 0.0}, ValueError, "step0 must be a finite number > 0, got 0.0"),
    ({"step_min": -1.0}, ValueError, "step_min must be a finite number > 0, got -1.0"),
    ({"step_max": float("inf")}, ValueError, "step_max must be a finite number > 0, got inf"),
    ({"max_trials": 0}, ValueError, "max_trials must be a finite int > 0, got 0"),
    ({"max_trials": 3.0}, TypeError, "max_trials must be an int > 0, got float"),
    ({"contraction": 0.0}, ValueError, "contraction must be a finite number > 0, got 0.0"),
    ({"contraction": "0.5"}, TypeError, "contraction must be a real number > 0, got str"),
    ({"sufficient_decrease": -0.1}, ValueError,
     "sufficient_decrease must be a finite number >= 0, got -0.1"),
    ({"sufficient_decrease": None}, TypeError,
     "sufficient_decrease must be a real number >= 0, got NoneType"),
    ({"nonmonotone_memory": 2.0}, TypeError, "nonmonotone_memory must be an int > 0, got float"),
])
def test_bb_bad_options_are_refused_with_their_name(options, error, message):
    with pytest.raises(error, match="^" + message.replace("(", r"\(").replace(")", r"\)") + "$"):
        minimize(rayleigh, Sphere(3), x0=E1, method="bb", **options)


def test_bb_accepts_the_boundary_options():
    x0 = np.array([0.6, 0.0, 0.8])
    # a fixed step per unit gradient (step_min = step_max) and the plain Armijo-free search
    res = minimize(rayleigh, Sphere(3), x0=x0, method="bb", step_min=0.1, step_max=0.1,
                   sufficient_decrease=0.0)
    assert res.success and -res.fun == pytest.approx(5.0, rel=8 * EPS)


def _wall(x):
    """0 at E1 exactly, 1 anywhere else: no trial point ever decreases the cost."""
    return 0.0 if np.array_equal(x, E1) else 1.0


def _e2(x):
    return E2.copy()  # a (false) gradient: the search goes along -e2 and finds a wall


@pytest.mark.parametrize("method", ["bb", "lbfgs"])
@pytest.mark.parametrize("max_trials", [None, 3])
def test_a_failed_search_tries_max_trials_contractions_after_the_first_step(method, max_trials):
    options = {} if max_trials is None else {"max_trials": max_trials}
    if method == "lbfgs" and max_trials is not None:
        from spherenet.optim.lbfgs import HintLineSearch
        options = {"line_search": HintLineSearch(max_trials=max_trials)}
    res = minimize(_wall, Sphere(3), x0=E1, method=method, grad=_e2, **options)
    assert res.status == 4 and res.nit == 1 and res.message == "the line search found no decrease"
    trials = 1 + (25 if max_trials is None else max_trials)
    assert res.nfev == 1 + trials  # the start, then every trial point of the search


@pytest.mark.parametrize("method", ["bb", "lbfgs"])
def test_a_start_at_a_critical_point_converges_at_once(method):
    # grad f(e3) = P(-10 e3) = 0 exactly: no first step length 1/||grad|| to take
    res = minimize(rayleigh, Sphere(3), x0=E3, method=method, gtol=0.0)
    assert res.success and res.status == 0 and res.nit == 0 and res.nfev == 1


@pytest.mark.parametrize("method", ["bb", "lbfgs"])
def test_telemetry_sees_every_step(method):
    x0 = np.array([0.6, 0.0, 0.8])
    res = minimize(rayleigh, Sphere(3), x0=x0, method=method, maxiter=4, gtol=0.0,
                   telemetry=True)
    h = res.history
    assert res.nit == 4 and np.isnan(h["tangency"][0])
    # the steps are tangent and the chord is that of the step taken
    assert np.all(h["tangency"][1:] <= 64 * EPS)
    np.testing.assert_allclose(h["chord"][1:], 2.0 * np.sin(h["angle"][1:] / 2.0), rtol=64 * EPS)
    assert np.all(h["chord"][1:] > 0.0)


# --- the precision floor reached by a failed search ---------------------------------------------


def _floor_case():
    """A cost that is 1 at x0 = e1 and at x1 = Exp_x0(-e2) (the first trial point of every
    solver: a step of length 1 along minus the gradient) and 2 anywhere else, with a
    gradient whose norm is 1 at x0 and grows along the way (never "improved")."""
    x1 = np.cos(1.0) * E1 - np.sin(1.0) * E2

    def cost(x):
        near = min(np.linalg.norm(x - E1), np.linalg.norm(x - x1))
        return 1.0 if near < 1e-13 else 2.0

    def grad(x):
        return E2 * (1.0 + 10.0 * abs(x[1]))

    return cost, grad, x1


@pytest.mark.parametrize("method", ["sd", "cg", "bb", "lbfgs"])
def test_a_failed_search_right_after_an_unresolved_step_is_the_precision_floor(method):
    # Step 1 goes from x0 to x1 at an unchanged cost (accepted: no sufficient decrease is
    # asked) and the gradient norm grows: an unresolved step. Step 2 finds no point at
    # cost <= 1 (its trials stay >= 1e-10 from x1): the cost cannot resolve the decrease
    # any more, status 6; the same failure after a resolved step is status 4.
    from spherenet.optim.lbfgs import HintLineSearch
    from spherenet.optim.line_search import AdaptiveLineSearch, BacktrackingLineSearch

    cost, grad, x1 = _floor_case()
    options = {
        "sd": {"line_search": BacktrackingLineSearch(sufficient_decrease=0.0)},
        "cg": {"line_search": AdaptiveLineSearch(sufficient_decrease=0.0)},
        "bb": {"sufficient_decrease": 0.0, "step0": 1.0},
        "lbfgs": {"line_search": HintLineSearch(sufficient_decrease=0.0)},
    }[method]
    res = minimize(cost, Sphere(3), x0=E1, method=method, grad=grad, **options)
    assert res.nit == 2 and res.status == 6, res.message
    assert "precision floor" in res.message and not res.success
    np.testing.assert_allclose(res.x, x1, rtol=0, atol=1e-13)
    assert res.history["step_size"].tolist()[1:] == [pytest.approx(1.0, rel=4 * EPS), 0.0]


# --- L-BFGS options and fallbacks ------------------------------------------------------------


class Scripted:
    """A line search that records what it is given and delegates to HintLineSearch, but
    reports no decrease at the calls numbered in ``fail`` (0-based)."""

    def __init__(self, fail=(), **options):
        from spherenet.optim.lbfgs import HintLineSearch

        self.inner = HintLineSearch(**options)
        self.fail = set(fail)
        self.calls = []

    def search(self, problem, x, d, f0, df0):
        self.calls.append(dict(x=np.array(x), d=np.array(d), slope=df0))
        if len(self.calls) - 1 in self.fail:
            return 0.0, x, f0
        return self.inner.search(problem, x, d, f0, df0)


@pytest.mark.parametrize("message, options, error", [
    ("cautious_epsilon must be a finite number >= 0, got -0.0001", {"cautious_epsilon": -1e-4},
     ValueError),
    ("cautious_alpha must be a finite number >= 0, got inf", {"cautious_alpha": np.inf},
     ValueError),
    ("memory must be a finite int >= 0, got -1", {"memory": -1}, ValueError),
    ("memory must be an int >= 0, got float", {"memory": 3.0}, TypeError),
])
def test_lbfgs_bad_options_are_refused_with_their_name(message, options, error):
    with pytest.raises(error, match="^" + message + "$"):
        minimize(rayleigh, Sphere(3), x0=E1, method="lbfgs", **options)


def test_lbfgs_with_an_unreachable_cautious_threshold_is_scaled_steepest_descent():
    # cautious_alpha = 0: the threshold is epsilon itself; no pair on this cost has a
    # curvature <s, y>/<s, s> of 1e3, so none is stored and H_0 stays 1/||grad f(x_0)||.
    x0 = np.array([0.6, 0.0, 0.8])
    search = Scripted()
    minimize(rayleigh, Sphere(3), x0=x0, method="lbfgs", cautious_epsilon=1e3,
             cautious_alpha=0.0, maxiter=5, gtol=0.0, line_search=search)
    g0 = -2.0 * (A @ x0)
    scale = 1.0 / np.linalg.norm(g0 - (x0 @ g0) * x0)
    for c in search.calls:
        g = -2.0 * (A @ c["x"])
        np.testing.assert_allclose(c["d"], -scale * (g - (c["x"] @ g) * c["x"]), rtol=0,
                                   atol=16 * EPS)
    # epsilon = 0 (and alpha = 0): every pair of positive curvature is stored
    res = minimize(rayleigh, Sphere(3), x0=x0, method="lbfgs", cautious_epsilon=0.0,
                   cautious_alpha=0.0)
    assert res.success


def test_lbfgs_with_one_pair_takes_the_one_update_bfgs_direction():
    # Euclidean quadratic f = x'Bx/2 - b'x: transport is the identity, so with memory 1 the
    # third direction is -H g with H = V' H0 V + rho s s', V = I - rho y s' (the last pair).
    B = np.diag([1.0, 3.0, 7.0])
    b = np.array([1.0, -2.0, 0.5])
    search = Scripted()
    minimize(lambda x: 0.5 * x @ B @ x - b @ x, Euclidean(3), x0=np.zeros(3), method="lbfgs",
             grad=lambda x: B @ x - b, memory=1, maxiter=3, gtol=0.0, line_search=search)
    x1, x2 = search.calls[1]["x"], search.calls[2]["x"]
    s, y = x2 - x1, B @ (x2 - x1)
    rho = 1.0 / (s @ y)
    V = np.eye(3) - rho * np.outer(y, s)
    H = (s @ y) / (y @ y) * V.T @ V + rho * np.outer(s, s)
    np.testing.assert_allclose(search.calls[2]["d"], -H @ (B @ x2 - b), rtol=1e-13)


def test_lbfgs_default_memory_is_thirty_pairs():
    # A Euclidean quadratic in 60 dimensions takes more than 30 accepted steps: the
    # default run is the one with memory=30, and not the one with 31.
    rng = np.random.default_rng(0)
    B = np.diag(np.geomspace(1.0, 1e3, 60))
    b = rng.standard_normal(60)

    def run(**options):
        return minimize(lambda x: 0.5 * x @ B @ x - b @ x, Euclidean(60), x0=np.zeros(60),
                        method="lbfgs", grad=lambda x: B @ x - b, maxiter=45, gtol=0.0,
                        **options)

    default, thirty, more = run(), run(memory=30), run(memory=31)
    np.testing.assert_array_equal(default.x, thirty.x)
    assert not np.array_equal(default.x, more.x)


@pytest.mark.parametrize("strategy, sign", [("riemannian", -1.0), ("projection", 1.0)])
def test_lbfgs_retries_along_the_scaled_gradient_after_a_failed_search(strategy, sign):
    # The search along the two-loop direction of iteration 4 finds no decrease (scripted):
    # the memory is cleared and the iteration is done along -H_0 grad f, which succeeds.
    # (Under projection the cost is +x'Ax: its ambient curvature 2A is positive, so pairs
    # are stored; for -x'Ax they would all fail the cautious test.)
    x0 = np.array([0.48, 0.6, 0.64])  # off every coordinate plane: a 2-D path
    search = Scripted(fail={3})
    res = minimize(lambda x: sign * (x @ (A @ x)), Sphere(3), x0=x0, method="lbfgs",
                   strategy=strategy, line_search=search, maxiter=6, gtol=0.0)
    assert res.nit == 6 and len(search.calls) == 7
    failed, retry = search.calls[3], search.calls[4]
    np.testing.assert_array_equal(failed["x"], retry["x"])
    x = retry["x"]
    g = sign * 2.0 * (A @ x)
    if strategy == "riemannian":
        g = g - (x @ g) * x
    cosine = (retry["d"] @ g) / (np.linalg.norm(retry["d"]) * np.linalg.norm(g))
    assert cosine == pytest.approx(-1.0, abs=16 * EPS) and retry["slope"] < 0.0
    tangent = g - (x @ g) * x  # the slope only sees the tangent part of the gradient
    assert retry["slope"] == pytest.approx(tangent @ retry["d"], rel=16 * EPS)
    # the failed direction was not the scaled gradient: the memory was in use
    cosine = (failed["d"] @ g) / (np.linalg.norm(failed["d"]) * np.linalg.norm(g))
    assert cosine > -1.0 + 1e-6


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_lbfgs_replaces_an_uphill_direction_whatever_the_scale_of_the_cost(scale):
    # The projection strategy's ambient gradient makes an uphill two-loop direction (see
    # test_ref_lbfgs); scaling the cost scales its slope, here below 1: still replaced.
    # the matrix of test_ref_lbfgs's fallback test, whose path has uphill directions
    b = np.random.default_rng(1).standard_normal((20, 20))
    A20 = scale * (b + b.T) / 2.0
    search = Scripted()
    minimize(lambda x: x @ A20 @ x, Sphere(20), method="lbfgs", strategy="projection", rng=1,
             maxiter=12, line_search=search)
    assert all(c["slope"] < 0 for c in search.calls)
    cosines = [(c["d"] @ (2.0 * A20 @ c["x"])) / (np.linalg.norm(c["d"])
               * np.linalg.norm(2.0 * A20 @ c["x"])) for c in search.calls[1:]]
    assert min(cosines) == pytest.approx(-1.0, abs=16 * EPS)  # a reset happened


def test_bb_contraction_sets_the_backtracking_factor():
    trials = []

    def wall(x):
        trials.append(np.array(x))
        return _wall(x)

    res = minimize(wall, Sphere(3), x0=E1, method="bb", grad=_e2, contraction=0.25,
                   max_trials=3)
    assert res.nfev == 1 + 4 and res.status == 4
    # trial k moves 0.25^k along the great circle (a first step of length 1)
    angles = [np.arccos(np.clip(t @ E1, -1.0, 1.0)) for t in trials[1:]]
    np.testing.assert_allclose(angles, [1.0, 0.25, 0.0625, 0.015625], rtol=1e-7)
