"""The start and the exits every line-search solver shares (``spherenet.optim._solver``),
one call at a time, with a real Problem, Stopper and Recorder: what is recorded (one
history row per iterate, with the step size the exit stands for), the status, the
message and the numbers of the result."""

import math

import numpy as np
import pytest

from spherenet import Sphere, minimize
from spherenet.optim._loop import Recorder, Stopper
from spherenet.optim._problem import Problem
from spherenet.optim._solver import (advance, budgeted, evaluate, failed, no_decrease, start,
                                     step_taken, stopped)
from spherenet.optim.sd import steepest_descent
from spherenet.strategies import Riemannian

EPS = np.finfo(np.float64).eps
A = np.diag([1.0, 2.0, 4.0])
X = np.array([0.6, 0.0, 0.8])
Y = np.array([0.0, 0.6, 0.8])


def cost(x):
    return -(x @ (A @ x))


def egrad(x):
    return -2.0 * (A @ x)


def rgrad(x):
    g = egrad(x)
    return g - (x @ g) * x


def setup(f=cost, g=egrad, telemetry=False):
    problem = Problem(f, Sphere(3), egrad=g)
    return problem, Recorder(problem, Riemannian(Sphere(3)), telemetry=telemetry)


def stopper(**options):
    kw = dict(maxiter=100, gtol=0.0, ftol=0.0, xtol=0.0, maxtime=np.inf, callback=None)
    kw.update(options)
    return Stopper(**kw)


# --- start and evaluate ---------------------------------------------------------------------


def test_start_evaluates_and_records_iterate_zero():
    problem, recorder = setup()
    f, e, r, measure = start(problem, recorder, X)
    assert f == cost(X) and (problem.nfev, problem.ngev) == (1, 1)
    np.testing.assert_array_equal(e, egrad(X))
    np.testing.assert_allclose(r, rgrad(X), rtol=0, atol=8 * EPS)
    assert measure == pytest.approx(np.linalg.norm(rgrad(X)), rel=4 * EPS)
    assert recorder.last == (X, f, measure, 0)
    h = recorder.history()
    assert h["cost"].tolist() == [f] and h["grad_norm"].tolist() == [measure]
    assert np.isnan(h["step_size"][0])


def test_start_refuses_a_starting_point_without_finite_cost_or_gradient():
    problem, recorder = setup(f=lambda x: math.inf)
    with pytest.raises(ValueError, match="^the cost is inf at the starting point$"):
        start(problem, recorder, X)
    problem, recorder = setup(g=lambda x: np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="^the gradient has NaN or Inf entries at the "
                                         "starting point$"):
        start(problem, recorder, X)
    assert recorder.history()["cost"].size == 0  # nothing recorded


def test_evaluate_reuses_a_known_cost_and_rejects_non_finite_values():
    problem, _ = setup()
    f, e, r, measure = evaluate(problem, Y, -9.0)  # the known cost is passed through
    assert f == -9.0 and problem.nfev == 0 and problem.ngev == 1
    np.testing.assert_allclose(r, rgrad(Y), rtol=0, atol=8 * EPS)
    assert measure == pytest.approx(np.linalg.norm(rgrad(Y)), rel=4 * EPS)
    assert evaluate(setup(f=lambda x: math.nan)[0], Y) is None
    assert evaluate(setup(g=lambda x: np.array([np.inf, 0.0, 0.0]))[0], Y) is None
    # a finite Euclidean gradient whose projection overflows: <x, g> x - g is not finite
    huge = np.array([1.0, -1.0, 1.0]) * np.finfo(np.float64).max
    with np.errstate(over="ignore", invalid="ignore"):
        assert evaluate(setup(g=lambda x: huge)[0], np.ones(3) / np.sqrt(3.0)) is None


# --- the exits ------------------------------------------------------------------------------


def test_failed_records_the_failed_iteration_and_returns_the_last_finite_point():
    problem, recorder = setup()
    start(problem, recorder, X)
    res = failed(recorder, X, -1.5, 0.25, 1)
    assert (res.status, res.nit, res.fun, res.grad_norm, res.success) == (-1, 1, -1.5, 0.25, False)
    assert res.message == ("the gradient became NaN or Inf at iteration 1; "
                           "returning the last finite point")
    np.testing.assert_array_equal(res.x, X)
    h = res.history
    assert h["cost"].tolist() == [cost(X), -1.5] and h["grad_norm"][1] == 0.25
    assert np.isnan(h["step_size"][1])  # no step was taken
    assert recorder.last == (X, -1.5, 0.25, 1)


def test_failed_names_what_failed():
    problem, recorder = setup()
    res = failed(recorder, X, 0.0, 1.0, 4, what="cost")
    assert res.message.startswith("the cost became NaN or Inf at iteration 4;")


def test_no_decrease_is_a_failed_line_search_unless_the_last_step_was_lost_in_rounding():
    problem, recorder = setup()
    res = no_decrease(recorder, X, -2.0, 0.5, 3)
    assert (res.status, res.nit, res.fun, res.grad_norm) == (4, 3, -2.0, 0.5)
    assert res.message == "the line search found no decrease"
    assert res.history["step_size"].tolist() == [0.0] and recorder.last == (X, -2.0, 0.5, 3)
    # f_old - f = 1e-13 is above 4 eps |f|: a real failure of the line search
    res = no_decrease(setup()[1], X, -2.0, 0.5, 3, stopper(), f_old=-2.0 + 1e-13)
    assert res.status == 4
    # f_old - f = 2 eps |f|: the precision floor
    res = no_decrease(setup()[1], X, -2.0, 0.5, 3, stopper(), f_old=-2.0 + 4 * EPS)
    assert res.status == 6 and "precision floor" in res.message
    assert (res.nit, res.fun, res.grad_norm) == (3, -2.0, 0.5)
    # without the cost before (no step yet), or without a stopper: status 4
    assert no_decrease(setup()[1], X, -2.0, 0.5, 3, stopper(), None).status == 4
    assert no_decrease(setup()[1], X, -2.0, 0.5, 3, None, -2.0).status == 4


def test_step_taken_is_the_tangent_step_of_the_given_length_only_with_telemetry():
    d = np.array([0.0, 2.0, 0.0])  # tangent at X, norm 2
    assert step_taken(setup()[1], Sphere(3), X, d, 0.5) is None
    taken = step_taken(setup(telemetry=True)[1], Sphere(3), X, d, 0.5)
    np.testing.assert_array_equal(taken, [0.0, 0.5, 0.0])


def test_stopped_goes_on_then_reports_the_stopper_status_with_the_iterate():
    problem, recorder = setup()
    s = stopper(maxiter=2)
    assert stopped(s, recorder, 0, X, -1.0, None, 3.0, None, None) is None
    assert stopped(s, recorder, 1, X, -1.5, -1.0, 2.0, 3.0, 0.1) is None
    res = stopped(s, recorder, 2, Y, -1.75, -1.5, 1.5, 2.0, 0.1)
    assert (res.status, res.nit, res.fun, res.grad_norm) == (1, 2, -1.75, 1.5)
    np.testing.assert_array_equal(res.x, Y)


def test_stopped_counts_an_unresolved_step_toward_the_floor():
    # Three steps in a row whose costs agree to rounding and whose gradient norm did not
    # drop: the precision floor (status 6) at the third, not before.
    problem, recorder = setup()
    s = stopper()
    f = -2.0
    for it in (1, 2):
        assert stopped(s, recorder, it, X, f, f, 1.0, 1.0, 0.1) is None
    assert stopped(s, recorder, 3, X, f, f, 1.0, 1.0, 0.1).status == 6


def test_advance_goes_on_with_the_values_at_the_new_point():
    problem, recorder = setup(telemetry=True)
    d = np.array([0.0, 1.0, 0.0])
    done, taken, new = advance(problem, recorder, stopper(), X, cost(X), None, 1.0, 1, d, 0.25,
                               Y, -7.0)
    assert done is None
    np.testing.assert_array_equal(taken, [0.0, 0.25, 0.0])
    f, e, r, measure = new
    assert f == -7.0 and problem.nfev == 0  # the line search's cost is reused
    np.testing.assert_allclose(r, rgrad(Y), rtol=0, atol=8 * EPS)


def test_advance_ends_at_the_old_point_after_no_decrease_or_a_non_finite_gradient():
    problem, recorder = setup()
    d = np.array([0.0, 1.0, 0.0])
    done, taken, new = advance(problem, recorder, stopper(), X, -1.0, None, 0.5, 2, d, 0.0,
                               X, -1.0)
    assert (taken, new, done.status, done.nit, done.fun) == (None, None, 4, 2, -1.0)
    np.testing.assert_array_equal(done.x, X)
    problem, recorder = setup(g=lambda x: np.full(3, np.nan))
    done, taken, new = advance(problem, recorder, stopper(), X, -1.0, None, 0.5, 2, d, 0.25,
                               Y, -2.0)
    assert (taken, new, done.status, done.nit, done.fun, done.grad_norm) == (
        None, None, -1, 2, -1.0, 0.5)
    np.testing.assert_array_equal(done.x, X)


# --- the evaluation budget -------------------------------------------------------------------


def test_budgeted_solver_ends_at_the_last_recorded_iterate_with_status_7():
    assert steepest_descent.__name__ == steepest_descent.__qualname__ == "steepest_descent"
    res = minimize(cost, Sphere(3), x0=X, method="sd", maxfev=4, gtol=0.0)
    assert res.status == 7 and res.nfev == 4 and not res.success
    assert res.message.startswith("maximum number of cost evaluations (maxfev=4) reached")
    assert len(res.history["cost"]) == res.nit + 1
    assert res.fun == res.history["cost"][-1] == cost(res.x)


def test_budgeted_passes_the_options_and_the_result_through():
    seen = {}

    def solver(problem, x0, stopper_, recorder, *args, **options):
        seen.update(args=args, options=options, maxfev=problem.maxfev)
        return "result"

    wrapped = budgeted(solver)
    problem, recorder = setup()
    assert wrapped(problem, X, stopper(maxfev=5), recorder, 1, k=2) == "result"
    assert seen == {"args": (1,), "options": {"k": 2}, "maxfev": 5}
    assert wrapped.__name__ == "solver"
    # the public name drops the leading underscores only
    solver.__name__ = "_X_solver_"
    assert budgeted(solver).__name__ == budgeted(solver).__qualname__ == "X_solver_"
