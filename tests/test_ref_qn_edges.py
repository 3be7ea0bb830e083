"""Edges of the Barzilai-Borwein and L-BFGS solvers (``minimize(method="bb" | "lbfgs")``):
the BB step at zero curvature, the first and last valid options and the exact messages of
the invalid ones, the number of backtracking trials, a start at a critical point, and the
telemetry of the steps. The references are closed forms and counts written out here."""

import numpy as np
import pytest

from spherenet import Sphere, minimize
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
