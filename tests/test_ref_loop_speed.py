"""The solvers' per-iteration shortcuts against plain NumPy and against the long way round:
the line search's curve along d (coefficients computed once per search), the norm that
also proves a gradient finite, the one-factor projection, b v - u for -u + b v, the
stopping test with the stopper's settings bound, the user's gradient without wrappers."""

import math

import numpy as np
import pytest

from spherenet import Oblique, Sphere, minimize
from spherenet import _tangent
from spherenet.optim import conjugate_gradient, steepest_descent
from spherenet.optim._loop import Recorder, Stopper
from spherenet.optim._problem import Problem
from spherenet.optim.line_search import _line
from spherenet.strategies import Riemannian

EPS = np.finfo(np.float64).eps


def _pair(n, seed, scale=1.0, normal=0.0):
    """A unit x and a direction d = scale * (tangent + normal * x), plain NumPy."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    x /= np.linalg.norm(x)
    t = rng.standard_normal(n)
    t -= (x @ t) * x
    t /= np.linalg.norm(t)
    return x, scale * (t + normal * x)


def _reference_retr(x, d, t, retraction):
    """R_x(t d) from the formulas, in plain NumPy: r = d - <x, d> x; the projection
    (x + t r)/||x + t r|| or the exponential cos(t||r||) x + sin(t||r||) r/||r||."""
    r = d - (x @ d) * x
    if retraction == "projection":
        y = x + t * r
        return y / np.linalg.norm(y)
    s = t * np.linalg.norm(r)
    return np.cos(s) * x + np.sin(s) * r / np.linalg.norm(r)


@pytest.mark.parametrize("retraction", ["projection", "exp"])
@pytest.mark.parametrize("t", [1e-9, 0.01, 0.7, 3.0])
def test_the_line_is_the_retraction_to_rounding(retraction, t):
    # Each trial point agrees with R_x(t d) written from the formula, and with
    # retr(x, t * d), to a few eps (t scales d after, not before, the inner products).
    x, d = _pair(100, 1, scale=0.8)
    geometry = Sphere(100, retraction=retraction).unchecked
    line = geometry._retr_line(x, d)
    assert line is not None
    y = line(t)
    np.testing.assert_allclose(y, _reference_retr(x, d, t, retraction), rtol=0, atol=8 * EPS)
    np.testing.assert_allclose(y, geometry.retr(x, t * d), rtol=0, atol=4 * EPS)
    assert abs(np.linalg.norm(y) - 1.0) <= 4 * EPS
    # The same map as the fused step of d with lr = -t (its coefficients applied to
    # x and d rather than to x and the tangent part of d: rounding apart).
    np.testing.assert_allclose(y, geometry._step(x, d, -t, retraction == "exp", None),
                               rtol=0, atol=4 * EPS)


@pytest.mark.parametrize("retraction", ["projection", "exp"])
def test_the_line_of_a_mostly_normal_direction_is_projected_twice(retraction):
    # d = 1e-9 tangent + x: one projection leaves a residue along x of ~eps,
    # comparable with the tangent part; the point must stay on the sphere.
    x, d = _pair(60, 2, normal=1e9)
    line = Sphere(60, retraction=retraction).unchecked._retr_line(x, d)
    y = line(2e-9)
    np.testing.assert_allclose(y, _reference_retr(x, d, 2e-9, retraction), rtol=0, atol=8 * EPS)
    assert abs(np.linalg.norm(y) - 1.0) <= 4 * EPS


def test_a_long_exp_step_on_the_line_takes_the_exponential_map():
    # t ||d|| beyond 2 pi: the exponential map's own extended-precision path.
    x, d = _pair(30, 3)
    geometry = Sphere(30).unchecked
    y = geometry._retr_line(x, d)(20.0)
    np.testing.assert_array_equal(y, geometry.exp(x, 20.0 * d))
    np.testing.assert_allclose(y, _reference_retr(x, d, 20.0, "exp"), rtol=0, atol=64 * EPS)


def test_a_zero_direction_gives_a_copy_of_x():
    x, _ = _pair(10, 4)
    for retraction in ("projection", "exp"):
        line = Sphere(10, retraction=retraction).unchecked._retr_line(x, np.zeros(10))
        y = line(1.0)
        assert y is not x
        np.testing.assert_array_equal(y, x)


def test_the_line_keeps_a_matrix_shape():
    geometry = Sphere(4, 5, retraction="projection").unchecked
    x = geometry.random_point(rng=5)
    d = geometry.random_tangent(x, rng=6)
    y = geometry._retr_line(x, d)(0.3)
    assert y.shape == (4, 5)
    np.testing.assert_allclose(y, geometry.retr(x, 0.3 * d), rtol=0, atol=4 * EPS)


class _OwnRetraction(Sphere):
    """A sphere whose retraction is a user's own (here: scaled by 1/2 first)."""

    def _retr(self, x, u):
        return super()._retr(x, 0.5 * u)


@pytest.mark.parametrize("geometry, dtype", [
    (Oblique(10, 20).unchecked, np.float64),   # several factors: the compiled step
    (Sphere(20).unchecked, np.float32),        # float32: widened in the step
    (Sphere(20), np.float64),                  # a checked manifold: retr validates
    (_OwnRetraction(20).unchecked, np.float64),
])
def test_the_line_falls_back_to_retr(geometry, dtype):
    x = geometry.random_point(rng=7, dtype=dtype)
    d = geometry.random_tangent(x, rng=8)
    assert geometry._retr_line(x, d) is None
    line = _line(geometry, x, d)
    np.testing.assert_array_equal(line(0.25), geometry.retr(x, _tangent.lincomb(0.25, d)))


def test_a_subclass_retraction_is_what_the_solvers_use():
    # The line search must not bypass an overridden retraction: the run's first
    # trial is R(x, 0.5 * a d), so its iterates differ from the plain sphere's.
    rng = np.random.default_rng(9)
    a = rng.standard_normal((12, 12))
    a = a + a.T
    x0 = Sphere(12).random_point(rng=10)
    runs = [minimize(lambda x: -(x @ (a @ x)), m, x0=x0, method="sd", maxiter=3,
                     grad=lambda x: -2.0 * (a @ x)) for m in (Sphere(12), _OwnRetraction(12))]
    assert not np.array_equal(runs[0].x, runs[1].x)


@pytest.mark.parametrize("shape", [(50,), (4, 6)])
def test_finite_norm_is_the_norm_bit_for_bit(shape):
    geometry = (Sphere(50) if len(shape) == 1 else Oblique(*shape)).unchecked
    x = geometry.random_point(rng=11)
    for scale in (1.0, 1e-160, 1e200):  # fast path; underflowed and overflowed sums rescaled
        u = scale * geometry.random_tangent(x, rng=12)
        got = geometry._finite_norm(x, u)
        assert got == geometry.norm(x, u)
        assert got == pytest.approx(scale * math.sqrt(np.sum(np.square(u / scale))),
                                    rel=4 * EPS)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_norm_says_none_for_a_non_finite_vector(bad, dtype):
    geometry = Oblique(3, 4).unchecked
    x = geometry.random_point(rng=13, dtype=dtype)
    u = geometry.random_tangent(x, rng=14)
    u[2, 1] = bad
    assert geometry._finite_norm(x, u) is None  # and no floating-point warning (errors here)


def test_finite_norm_of_float32_is_the_norm():
    geometry = Oblique(3, 4).unchecked
    x = geometry.random_point(rng=15, dtype=np.float32)
    u = geometry.random_tangent(x, rng=16)
    assert geometry._finite_norm(x, u) == geometry.norm(x, u)


def test_one_factor_projection_is_plain_numpy_bit_for_bit():
    rng = np.random.default_rng(17)
    for shape in ((100,), (5, 7)):
        x = Sphere(*shape).random_point(rng=rng)
        u = rng.standard_normal(shape)
        expected = u - np.sum(x * u) * x if len(shape) > 1 else u - np.dot(x, u) * x
        got = Sphere(*shape).unchecked.proj(x, u)
        if len(shape) == 1:
            np.testing.assert_array_equal(got, expected)
        else:  # np.sum and BLAS dot may add in another order
            np.testing.assert_allclose(got, expected, rtol=0, atol=8 * EPS)
        assert abs(np.sum(got * x)) <= 8 * EPS * np.linalg.norm(u)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_minus_u_plus_b_v_is_the_two_term_combination_bit_for_bit(dtype):
    rng = np.random.default_rng(18)
    u = rng.standard_normal(64).astype(dtype)
    v = rng.standard_normal(64).astype(dtype)
    u[:4] = [0.0, -0.0, 0.0, -0.0]
    v[:4] = [0.0, 0.0, -0.0, -0.0]
    for b in (0.37, 0.0, -2.5):
        got = _tangent.lincomb(-1.0, u, b, v)
        expected = dtype(-1.0) * u + dtype(b) * v
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(expected))


def _rayleigh(n, seed, gap=1.0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    a = (q * np.linspace(0.0, gap, n)) @ q.T
    return a, (lambda x: -(x @ (a @ x))), (lambda x: -2.0 * (a @ x))


def _run(solver, cost, grad, x0, callback=None, **stop):
    options = dict(maxiter=1000, gtol=1e-6, ftol=0.0, xtol=1e-10, maxtime=math.inf)
    options.update(stop)
    strategy = Riemannian(Sphere(x0.size), retraction="projection")
    problem = Problem(cost, strategy.geometry, grad)
    stopper = Stopper(callback=callback, **options)
    return solver(problem, x0, stopper, Recorder(problem, strategy))


@pytest.mark.parametrize("solver", [steepest_descent, conjugate_gradient])
@pytest.mark.parametrize("stop, status", [
    (dict(), 0),                         # gtol
    (dict(maxiter=7), 1),                # maxiter
    (dict(gtol=0.0, xtol=0.0), 6),       # the precision floor
    (dict(gtol=0.0, xtol=1e-3), 4),      # xtol
])
def test_the_bound_stopping_test_decides_as_the_stopper(solver, stop, status):
    # A callback that never asks to stop sends every test through Stopper.check:
    # the runs must agree in everything, the stopper's record included.
    _, cost, grad = _rayleigh(30, 19, gap=3.0)
    x0 = Sphere(30).random_point(rng=20)
    fast = _run(solver, cost, grad, x0, **stop)
    slow = _run(solver, cost, grad, x0, callback=lambda x: None, **stop)
    assert fast.status == slow.status == status
    assert fast.message == slow.message and fast.nit == slow.nit
    np.testing.assert_array_equal(fast.x, slow.x)
    for key in ("cost", "grad_norm", "step_size"):
        np.testing.assert_array_equal(fast.history[key], slow.history[key])


def test_the_floor_count_restarts_after_a_resolved_step():
    # The stopper's record after a run stopped at the floor by the bound test
    # is the one Stopper.check keeps: three unresolved steps in a row, and the
    # smallest gradient norm seen, which the message quotes.
    _, cost, grad = _rayleigh(30, 21, gap=3.0)
    x0 = Sphere(30).random_point(rng=22)
    res = _run(steepest_descent, cost, grad, x0, gtol=0.0, xtol=0.0)
    assert res.status == 6
    best = float(np.min(res.history["grad_norm"]))
    assert f"~{best:.1e}" in res.message


def test_a_user_gradient_reaches_the_problem_unwrapped():
    # Under the riemannian and projection strategies the variable is the weights:
    # the gradient is called with the iterate itself, once per gradient evaluation.
    a, cost, grad = _rayleigh(20, 23)
    seen = []

    def counted(x):
        seen.append(x)
        return grad(x)

    for strategy in ("riemannian", "projection"):
        seen.clear()
        res = minimize(cost, Sphere(20), x0=Sphere(20).random_point(rng=24), method="cg",
                       strategy=strategy, grad=counted, maxiter=20)
        assert len(seen) == res.ngev
        assert seen[-1] is not None and seen[-1].shape == (20,)


def test_history_columns_are_separate_float64_arrays_in_field_order():
    # The recorder keeps cost, gradient norm, step and time as one tuple per iterate
    # and makes the columns once: each its own contiguous float64 array.
    from spherenet.optim._loop import HISTORY_FIELDS

    a, cost, grad = _rayleigh(15, 25)
    x0 = Sphere(15).random_point(rng=26)
    res = minimize(cost, Sphere(15), x0=x0, method="sd", grad=grad, maxiter=6, gtol=0.0)
    history = res.history
    assert tuple(history)[:len(HISTORY_FIELDS)] == HISTORY_FIELDS
    for values in history.values():
        assert values.dtype == np.float64 and values.shape == (res.nit + 1,)
        assert values.flags.c_contiguous
    assert history["cost"][-1] == res.fun and history["grad_norm"][-1] == res.grad_norm
    assert np.isnan(history["step_size"][0]) and np.all(np.diff(history["time"]) >= 0.0)
    before = history["grad_norm"].copy()
    history["cost"][:] = 0.0
    np.testing.assert_array_equal(history["grad_norm"], before)


@pytest.mark.parametrize("values", [
    [1.0, -2.0, 3e-300], [1.0, np.nan], [np.inf, 1.0], [-np.inf], [1e200, -1e300, 5.0],
    [1e300, np.nan], [],
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite_is_the_entrywise_test(values, dtype):
    # Through the sum of squares for float64 (finite squares: finite entries;
    # otherwise, huge finite entries included, entry by entry), without warnings.
    with np.errstate(over="ignore"):
        u = np.array(values, dtype=dtype)
    strided = np.repeat(u, 2)[::2]
    for array in (u, strided, u.reshape(-1, 1)):
        assert _tangent.all_finite(array) is bool(np.all(np.isfinite(array)))


_LINE_MAPS = ("retr", "exp", "_retr", "_exp", "_retr_projection", "_step", "_step_small")


def _fresh_subclass(overridden=None):
    # a new class each time: the gate caches its answer per class, so a class
    # made here is judged by the gate's own code, not by a cached answer
    namespace = {}
    if overridden is not None:
        namespace[overridden] = lambda self, *args: getattr(Sphere, overridden)(self, *args)
    return type("FreshSphere", (Sphere,), namespace)


def test_the_line_gate_is_open_for_a_subclass_that_keeps_every_map():
    cls = _fresh_subclass()
    assert "_retr_line_ok_" not in cls.__dict__
    assert cls._retr_line_ok() is True
    assert cls.__dict__["_retr_line_ok_"] is True      # cached on that class only
    geometry = cls(30).unchecked
    x = geometry.random_point(rng=1)
    d = geometry.random_tangent(x, rng=2)
    line = geometry._retr_line(x, d)
    assert line is not None
    np.testing.assert_allclose(line(0.4), geometry.retr(x, 0.4 * d), rtol=0, atol=4 * EPS)


@pytest.mark.parametrize("name", _LINE_MAPS)
def test_the_line_gate_closes_when_any_one_map_is_overridden(name):
    cls = _fresh_subclass(name)
    assert cls._retr_line_ok() is False
    assert cls._retr_line_ok() is False                # the cached answer too
    geometry = cls(30).unchecked
    x = geometry.random_point(rng=3)
    d = geometry.random_tangent(x, rng=4)
    assert geometry._retr_line(x, d) is None


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_the_line_at_an_angle_of_exactly_one(retraction):
    # t ||r|| = 1.0 exactly: only t ||r|| = 0 is the point itself
    geometry = Sphere(8, retraction=retraction).unchecked
    x, d = np.zeros(8), np.zeros(8)
    x[0], d[1] = 1.0, 1.0
    y = _line(geometry, x, d)(1.0)
    expected = np.zeros(8)
    if retraction == "exp":
        expected[0], expected[1] = np.cos(1.0), np.sin(1.0)
    else:
        expected[0] = expected[1] = 1.0 / np.sqrt(2.0)
    np.testing.assert_allclose(y, expected, rtol=0, atol=2 * EPS)


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_the_line_of_a_mostly_normal_direction_stays_on_the_sphere(retraction):
    # d = 1e6 x + a unit tangent: after one projection r keeps a normal part of
    # ~1e6 eps; the second projection removes it, else the trial point leaves the
    # sphere by ~t <x, r> and moves off the exact curve
    geometry = Sphere(20, retraction=retraction).unchecked
    x = geometry.random_point(rng=21)
    rng = np.random.default_rng(22)
    v = rng.standard_normal(20)
    v -= (v @ x) * x
    v /= np.linalg.norm(v)
    d = 1e6 * x + v
    y = _line(geometry, x, d)(1.0)
    # measured 1e-14 (the normal part left is rounding of a 1e6-sized sum); a
    # normal part of ~1e6 eps left in r would move the norm by ~1e-10
    assert abs(np.linalg.norm(y) - 1.0) <= 1e3 * EPS
    X, V = x.astype(np.longdouble), v.astype(np.longdouble)   # r is v exactly
    if retraction == "exp":
        ref = np.cos(np.longdouble(1.0)) * X + np.sin(np.longdouble(1.0)) * V
    else:
        ref = (X + V) / np.sqrt(np.longdouble(2.0))
    # d's tangent part is v only to d's rounding, ~1e6 eps
    assert float(np.max(np.abs(y - ref))) <= 1e7 * EPS
