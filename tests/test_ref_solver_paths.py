"""The fast paths of the line-search solvers against the long way and a plain reference.

``stopping_test`` binds the stopper's settings and only updates its record
(the unresolved-step count, the smallest gradient norm) until some criterion
can fire; with a callback, a time limit or ftol it is ``stopped``, the full
``Stopper.check``. Both are fed the same sequences of iterations (cost,
gradient norm, step) and compared with the rules written out below in plain
Python from ``Stopper``'s documentation: the precision floor (three steps in
a row whose cost change is at most 4 eps max(|f_old|, |f|) and whose
gradient norm did not go down), gtol, maxiter, xtol (inclusive), each at its
threshold and just past it. Then the other fast paths: the measure computed
in the pass that proves the gradient finite, the count of non-finite costs,
the norm steepest descent hands to its search, the first trial of a search
after a step lost in rounding, and the descent safeguard of conjugate
gradients on a product.
"""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Product, Sphere, minimize
from spherenet.optim._loop import Recorder, Stopper
from spherenet.optim._problem import Problem
from spherenet.optim._solver import evaluate, stopped, stopping_test
from spherenet.optim.line_search import BacktrackingLineSearch
from spherenet.optim.sd import steepest_descent
from spherenet.strategies import Riemannian

EPS = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)
A = np.diag([1.0, 2.0, 4.0])
X = np.array([0.6, 0.0, 0.8])


def rayleigh(x):
    return float(-(x @ (A @ x)))


def rayleigh_egrad(x):
    return -2.0 * (A @ x)


def rayleigh_rgrad(x):
    g = rayleigh_egrad(x)
    return g - (x @ g) * x


def make_stopper(maxiter=100, gtol=0.0, xtol=0.0, maxtime=math.inf, callback=None):
    return Stopper(maxiter, gtol, 0.0, xtol, maxtime, callback)


def make_recorder(x):
    problem = Problem(rayleigh, Sphere(3), egrad=rayleigh_egrad)
    return Recorder(problem, Riemannian(Sphere(3)), ctol=1.0)


# --- the stopping test: a reference, and both paths -----------------------------------------


def reference_stop(rows, eps, gtol=0.0, maxiter=100, xtol=0.0):
    """``(it, status, unresolved_count, best_grad_norm)`` of the first stop, or of the last
    row when nothing stops (status None). rows[k] = (f, grad_norm, step) of iteration k."""
    count, best = 0, math.inf
    for it, (f, g, step) in enumerate(rows):
        if it > 0:
            f_old, g_old = rows[it - 1][0], rows[it - 1][1]
            noise = 4.0 * eps * max(abs(f_old), abs(f))
            lost = not g < g_old and abs(f_old - f) <= noise
            count = count + 1 if lost else 0
        best = min(best, g)
        status = None
        if g <= gtol:
            status = 0
        elif count >= 3:
            status = 6
        elif it >= maxiter:
            status = 1
        elif step is not None and step <= xtol:
            status = 6 if count >= 1 else 4
        if status is not None:
            return it, status, count, best
    return len(rows) - 1, None, count, best


def run_test(test, stopper, x, rows):
    """Feed rows to test(...) as a solver does; ``(it, status, count, best)`` as above."""
    for it, (f, g, step) in enumerate(rows):
        f_old, g_old = (None, None) if it == 0 else rows[it - 1][:2]
        res = test(it, x, f, f_old, g, g_old, step)
        if res is not None:
            assert res.nit == it and res.fun == f and res.grad_norm == g
            if res.status == 6:  # the message gives the smallest gradient norm seen
                assert f"below ~{stopper.best_grad_norm:.1e}" in res.message
            return it, res.status, stopper.unresolved_steps, stopper.best_grad_norm
    return len(rows) - 1, None, stopper.unresolved_steps, stopper.best_grad_norm


def _below(f, k):
    """f and the k floats just below it (one ulp apart)."""
    out = [f]
    for _ in range(k):
        out.append(float(np.nextafter(out[-1], -np.inf)))
    return out


# (name, rows as (f, grad_norm, step), options); iteration 0 has no step
SEQUENCES = [
    # three steps in a row whose costs agree and whose gradient norm stays: the floor at
    # the third, not before (f != 0, so |f_old + f| would be far above the rounding)
    ("flat", [(-2.0, 1.0, None)] + [(-2.0, 1.0, 0.1)] * 3, {}),
    # the cost falls far, the gradient norm rises: no step is lost in rounding
    ("rising_gradient", [(5.0 - k, 1.0 + k, 0.1) for k in range(5)], {}),
    # the cost stays, the gradient norm falls: progress
    ("falling_gradient", [(-2.0, 5.0 - k, 0.1) for k in range(5)], {}),
    # a change of exactly 4 eps |f| counts as lost (at most), then two flat steps
    ("at_the_noise", [(1.0, 1.0, None), (1.0 - 4 * EPS, 1.0, 0.1), (1.0 - 4 * EPS, 1.0, 0.1),
                      (1.0 - 4 * EPS, 1.0, 0.1)], {}),
    # ... and 8 eps |f| does not, whatever the gradient norm
    ("past_the_noise", [(1.0 - 8 * k * EPS, 1.0, 0.1) for k in range(5)], {}),
    # the rounding scales with |f|: one-ulp steps of 1000 are lost (512 eps < 4000 eps)
    ("one_ulp_of_1000", [(f, 1.0, 0.1) for f in _below(1000.0, 3)], {}),
    # a resolved step resets the count to 0: lost, resolved, lost, lost is no floor
    ("reset", [(-2.0, 1.0, None), (-2.0, 1.0, 0.1), (-3.0, 1.0, 0.1), (-3.0, 1.0, 0.1),
               (-3.0, 1.0, 0.1)], {}),
    # two lost steps only
    ("two_lost", [(-2.0, 1.0, None), (-2.0, 1.0, 0.1), (-2.0, 1.0, 0.1), (-5.0, 1.0, 0.1)], {}),
    # a huge cost whose rounding exceeds 1, with a gradient norm that falls: progress
    ("huge_cost_improving", [(2e15, 5.0 - k, 0.1) for k in range(5)], {}),
    ("huge_cost_flat", [(2e15, 1.0, 0.1)] * 5, {}),
    # gtol, xtol and maxiter are inclusive
    ("gtol", [(3.0, 1.0, None), (2.0, 0.75, 0.1), (1.0, 0.5, 0.1)], {"gtol": 0.5}),
    ("above_gtol", [(3.0, 1.0, None), (2.0, 0.75, 0.1), (1.0, 0.5000000000000001, 0.1)],
     {"gtol": 0.5}),
    ("xtol", [(3.0, 1.0, None), (2.0, 1.0, 0.1), (1.0, 1.0, 1e-9)], {"xtol": 1e-9}),
    ("above_xtol", [(3.0, 1.0, None), (2.0, 1.0, 0.1), (1.0, 1.0, 1.0000000000000002e-9)],
     {"xtol": 1e-9}),
    ("xtol_after_a_lost_step", [(3.0, 1.0, None), (3.0, 1.0, 1e-9)], {"xtol": 1e-9}),
    ("maxiter", [(3.0 - k, 1.0, 0.1) for k in range(4)], {"maxiter": 2}),
]


def _path_stopper(path, options):
    if path == "fast":
        return make_stopper(**options)
    if path == "callback":
        return make_stopper(callback=lambda x: None, **options)
    return make_stopper(maxtime=1e9, **options)  # a time limit that a test never reaches


@pytest.mark.parametrize("path", ["fast", "callback", "maxtime"])
@pytest.mark.parametrize("name, rows, options", SEQUENCES, ids=[s[0] for s in SEQUENCES])
def test_stopping_test_follows_the_rules_on_every_path(path, name, rows, options):
    stopper = _path_stopper(path, options)
    recorder = make_recorder(X)
    got = run_test(stopping_test(stopper, recorder), stopper, X, rows)
    assert got == reference_stop(rows, EPS, **options)


def test_the_sequences_reach_every_outcome():
    # the reference itself: each status and the no-stop case are exercised above
    outcomes = {reference_stop(rows, EPS, **options)[1] for _, rows, options in SEQUENCES}
    assert outcomes == {None, 0, 1, 4, 6}
    flat = reference_stop(SEQUENCES[0][1], EPS)
    assert flat[:2] == (3, 6)


@pytest.mark.parametrize("path", ["fast", "callback"])
def test_the_rounding_of_a_float32_point_is_float32_eps(path):
    # 4 eps32 |f| is far above 4 eps64 |f|: lost in float32, resolved in float64
    rows = [(1.0, 1.0, None)] + [(1.0 - 4 * EPS32, 1.0, 0.1)] * 3
    for x, eps in ((X.astype(np.float32), EPS32), (X, EPS)):
        stopper = _path_stopper(path, {})
        got = run_test(stopping_test(stopper, make_recorder(x)), stopper, x, rows)
        assert got == reference_stop(rows, eps)
    assert reference_stop(rows, EPS32)[1] == 6 and reference_stop(rows, EPS)[1] is None


def test_stopped_counts_a_step_whose_gradient_norm_fell_as_progress_at_any_cost():
    # At |f| = 2e15 the rounding 4 eps |f| is 1.8: a falling gradient norm must still
    # make the step count as progress (it is the improved flag, not a predicted change).
    stopper, recorder = make_stopper(), make_recorder(X)
    for it in range(1, 6):
        assert stopped(stopper, recorder, it, X, 2e15, 2e15, 6.0 - it, 7.0 - it, 0.1) is None
        assert stopper.unresolved_steps == 0


def test_the_time_limit_reads_the_clock_and_is_inclusive():
    stopper, recorder = make_stopper(maxtime=2.0), make_recorder(X)
    clock = iter([0.5, 1.999, 2.0])
    recorder.elapsed = lambda: next(clock)
    test = stopping_test(stopper, recorder)
    assert test(0, X, 3.0, None, 1.0, None, None) is None
    assert test(1, X, 2.0, 3.0, 1.0, 1.0, 0.1) is None
    res = test(2, X, 1.0, 2.0, 1.0, 1.0, 0.1)
    assert (res.status, res.nit, res.message) == (2, 2, "maximum time (2 s) reached")


# --- evaluate: the measure and the finiteness test in one pass ------------------------------


def inf_norm_measure(x, egrad, rgrad):
    return float(np.max(np.abs(rgrad)))


def test_evaluate_returns_the_given_measure_not_the_norm_on_a_sphere():
    y = np.array([0.0, 0.6, 0.8])
    problem = Problem(rayleigh, Sphere(3), egrad=rayleigh_egrad, measure=inf_norm_measure)
    f, egrad, rgrad, measure = evaluate(problem, y)
    want = rayleigh_rgrad(y)
    np.testing.assert_allclose(rgrad, want, rtol=0, atol=8 * EPS)
    assert measure == inf_norm_measure(y, egrad, rgrad)
    assert measure != pytest.approx(np.linalg.norm(want), rel=1e-3)  # the two differ here
    # a gradient with a NaN is refused before the measure is asked
    problem = Problem(rayleigh, Sphere(3), egrad=lambda x: np.array([np.nan, 1.0, 0.0]),
                      measure=inf_norm_measure)
    assert evaluate(problem, y) is None


@pytest.mark.parametrize("dtype, scale", [(np.float64, 1.0), (np.float64, 1e-160),
                                          (np.float64, 1e160), (np.float32, 1.0),
                                          (np.float32, 1e-30), (np.float32, 1e30)])
def test_evaluate_one_pass_norm_is_the_norm_of_the_long_way(dtype, scale):
    # the geometry's finite norm against the finiteness test then the norm: the same
    # number (tiny and huge gradients, whose squares leave the range, take the
    # rescaled norm both ways)
    y = np.array([0.0, 0.6, 0.8], dtype=dtype)
    problem = Problem(lambda x: scale * rayleigh(x), Sphere(3),
                      egrad=lambda x: (scale * rayleigh_egrad(x)).astype(x.dtype))
    assert problem.finite_norm is not None
    fast = evaluate(problem, y)
    problem.finite_norm = None
    slow = evaluate(problem, y)
    assert fast[3] == slow[3] and fast[0] == slow[0]
    want = scale * np.linalg.norm(rayleigh_rgrad(y.astype(np.float64)))
    assert fast[3] == pytest.approx(want, rel=16 * float(np.finfo(dtype).eps))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_evaluate_one_pass_refuses_a_non_finite_gradient_as_the_long_way(bad):
    problem = Problem(rayleigh, Sphere(3), egrad=lambda x: np.array([0.0, bad, 1.0]))
    assert evaluate(problem, X) is None
    problem.finite_norm = None
    assert evaluate(problem, X) is None


def test_every_non_finite_cost_is_counted():
    values = iter([math.nan, 1.0, math.inf, -math.inf, 2.0])
    problem = Problem(lambda x: next(values), Euclidean(2))
    got = [problem.cost(np.zeros(2)) for _ in range(5)]
    assert got[1::3] == [1.0, 2.0]
    assert problem.nonfinite == 3 and problem.nfev == 5


def test_a_run_says_how_many_trial_costs_were_not_finite():
    # every trial beyond the first step is NaN: the line search rejects them all
    def cost(x):
        return rayleigh(x) if abs(x[0] - 0.6) < 1e-12 else math.nan

    res = minimize(cost, Sphere(3), x0=X, method="sd", grad=rayleigh_egrad, maxiter=3)
    trials = res.nfev - 1  # the first evaluation, at x0, is finite
    assert res.status == 4 and trials >= 2
    assert f"the cost was NaN or Inf at {trials} trial point(s)" in res.message


# --- steepest descent hands its search the direction's norm, never the measure --------------


def _exp(x, v):
    t = np.linalg.norm(v)
    return math.cos(t) * x + math.sin(t) / t * v


def test_sd_first_trial_is_one_over_the_direction_norm_also_with_a_measure():
    seen = []

    def cost(x):
        seen.append(np.array(x))
        return rayleigh(x)

    problem = Problem(cost, Sphere(3), egrad=rayleigh_egrad, measure=inf_norm_measure)
    recorder = Recorder(problem, Riemannian(Sphere(3)))
    res = steepest_descent(problem, X, make_stopper(maxiter=1), recorder)
    d = -rayleigh_rgrad(X)
    norm_d = np.linalg.norm(d)
    assert inf_norm_measure(X, None, d) != pytest.approx(norm_d, rel=1e-3)
    # the Armijo search of the reference: from 1/||d||, halving
    alpha, want = 1.0 / norm_d, []
    while True:
        trial = _exp(X, alpha * d)
        want.append(trial)
        if rayleigh(trial) <= rayleigh(X) + 1e-4 * alpha * -(norm_d ** 2):
            break
        alpha *= 0.5
    assert len(seen) == 1 + len(want)  # x0 then the trials
    for got, ref in zip(seen[1:], want):
        np.testing.assert_allclose(got, ref, rtol=0, atol=16 * EPS)
    np.testing.assert_allclose(res.x, want[-1], rtol=0, atol=16 * EPS)
    assert res.history["step_size"][1] == pytest.approx(alpha * norm_d, rel=16 * EPS)
    assert res.grad_norm == inf_norm_measure(res.x, None, rayleigh_rgrad(res.x))


# --- the first trial after a step whose decrease was lost in rounding -----------------------


def test_backtracking_restarts_from_the_initial_step_when_the_cost_did_not_change():
    # The quadratic-model guess 2 (f0 - f_prev) / df0 is 0 when the previous cost equals
    # f0: the search must start from initial_step / ||d|| again, not from a zero step.
    target = np.array([1.0, -2.0, 0.5])
    seen = []

    def cost(x):
        seen.append(np.array(x))
        return float(np.sum((x - target) ** 2))

    problem = Problem(cost, Euclidean(3), egrad=lambda x: 2.0 * (x - target))
    search = BacktrackingLineSearch()
    x = np.zeros(3)
    d = np.array([0.5, -1.0, 0.25])
    f0, df0 = cost(x), float(2.0 * (x - target) @ d)
    seen.clear()
    for _ in range(2):
        step, new_x, new_f = search.search(problem, x, d, f0, df0)
        first = seen[0]
        seen.clear()
        np.testing.assert_allclose(first, x + d / np.linalg.norm(d), rtol=0, atol=4 * EPS)
        assert step > 0.0 and new_f < f0


# --- conjugate gradients: the descent safeguard on a product --------------------------------


HESS = np.diag([1.0, 10.0])


class ProductOvershoot:
    """On Product([Euclidean(1), Euclidean(1)]): steps 2.5 times past the minimizer of the
    quadratic along d (in the flat coordinates of the concatenation); records its calls."""

    def __init__(self):
        self.calls = []

    def search(self, problem, x, d, f0, df0):
        flat_x, flat_d = np.concatenate(x), np.concatenate(d)
        self.calls.append(dict(x=flat_x, d=flat_d, slope=df0))
        alpha = -2.5 * df0 / (flat_d @ HESS @ flat_d)
        new_x = tuple(xi + alpha * di for xi, di in zip(x, d))
        return alpha * np.sqrt(flat_d @ flat_d), new_x, problem.cost(new_x)


def test_cg_resets_an_uphill_direction_on_a_product():
    # After a step 2.5x past the minimizer the Fletcher-Reeves direction has slope
    # +0.5 ||g1||^2: the solver replaces it by -g1, whose slope it computes on the product.
    M = Product([Euclidean(1), Euclidean(1)])
    spy = ProductOvershoot()
    res = minimize(lambda p: 0.5 * np.concatenate(p) @ HESS @ np.concatenate(p), M,
                   x0=(np.array([1.0]), np.array([0.3])), method="cg", beta_rule="FR",
                   maxiter=2, gtol=0.0, xtol=0.0, line_search=spy)
    x0 = np.array([1.0, 0.3])
    g0 = HESS @ x0
    x1 = x0 - 2.5 * (g0 @ g0) / (g0 @ HESS @ g0) * g0
    g1 = HESS @ x1
    assert g1 @ (-g1 + (g1 @ g1) / (g0 @ g0) * -g0) > 0.0  # the FR direction is uphill
    x2 = x1 - 2.5 * (g1 @ g1) / (g1 @ HESS @ g1) * g1
    assert len(spy.calls) == 2
    np.testing.assert_allclose(spy.calls[1]["x"], x1, rtol=16 * EPS)
    np.testing.assert_allclose(spy.calls[1]["d"], -g1, rtol=16 * EPS)
    assert spy.calls[1]["slope"] == pytest.approx(-(g1 @ g1), rel=16 * EPS)
    np.testing.assert_allclose(np.concatenate(res.x), x2, rtol=32 * EPS)
    assert res.nit == 2

