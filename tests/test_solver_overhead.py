"""The solvers' cheap paths against plain NumPy: the batched history (violation and
angle of stacked iterates), the fast checks of arrays, the autograd value and gradient."""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Oblique, Sphere, minimize
from spherenet import _tangent
from spherenet.optim._batch import SphereBatch
from spherenet.optim._loop import Stopper
from spherenet.optim._problem import Problem
from spherenet.strategies import Riemannian


def _columns(x, axis):
    """x as a 2-D array whose columns are the unit-norm factors (plain NumPy)."""
    if axis is None:
        return x.reshape(-1, 1)
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _reference(points, axis, normalize):
    """Violation max_k | ||x_k|| - 1 | and angle sqrt(sum_k theta_k^2) between successive
    points, theta_k = atan2(||x_k ^ y_k||, <x_k, y_k>) of the normalized factors, in
    float64 from the formulas (not from spherenet)."""
    violations, angles = [], [np.nan]
    for p in points:
        cols = _columns(p.astype(np.float64), axis)
        violations.append(np.max(np.abs(np.linalg.norm(cols, axis=0) - 1.0)))
    for a, b in zip(points[:-1], points[1:]):
        x, y = _columns(a.astype(np.float64), axis), _columns(b.astype(np.float64), axis)
        if normalize:
            x, y = x / np.linalg.norm(x, axis=0), y / np.linalg.norm(y, axis=0)
        cos = np.sum(x * y, axis=0)
        sin = np.linalg.norm(y - cos * x, axis=0)  # the part of y orthogonal to x
        angles.append(np.sqrt(np.sum(np.arctan2(sin, cos) ** 2)))
    return np.array(violations), np.array(angles)


def _walk(manifold, n, dtype, rng, step=0.3, antipodal_at=None, off_norm=0.0):
    """n points: a random walk by the exponential map, with a jump to the antipode and
    rescaled factors (projection-strategy iterates are on the sphere only to rounding)."""
    rng = np.random.default_rng(rng)
    x = manifold.random_point(rng=rng)
    points = [x]
    for i in range(1, n):
        u = manifold.random_tangent(x, rng=rng)
        x = manifold.exp(x, step * u / manifold.norm(x, u))
        if i == antipodal_at:
            x = -x
        points.append(x)
    if off_norm:
        points = [p * (1.0 + off_norm * rng.standard_normal()) for p in points]
    return [p.astype(dtype) for p in points]


CASES = [
    (Sphere(7), None),
    (Oblique(3, 5), 0),
    (Oblique(4, 3, axis=1), 1),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("manifold, axis", CASES)
@pytest.mark.parametrize("normalize", [False, True])
def test_batched_violation_and_angle_match_the_formulas(manifold, axis, normalize, dtype):
    points = _walk(manifold, 11, dtype, rng=3, antipodal_at=6, off_norm=1e-3 if normalize else 0)
    batch = SphereBatch(manifold, points[0], normalize, fallback=None, max_rows=4)
    violations, angles = [], []
    for p in points:  # 11 points through a stack of 4: flushes when full, and at the end
        assert batch.add(p)
        if batch.full:
            v, a = batch.flush()
            violations += v
            angles += list(a)
    v, a = batch.flush()
    violations, angles = np.array(violations + v), np.array(angles + list(a))
    ref_v, ref_a = _reference(points, axis, normalize)
    # Norms are reduced in float64 (exact products of float32 data); the tangential part
    # of y is formed in the data's dtype, as the manifold's dist does: a few eps of it.
    np.testing.assert_allclose(violations, ref_v, rtol=0, atol=8 * np.finfo(np.float64).eps)
    assert np.isnan(angles[0]) and np.isnan(ref_a[0])
    np.testing.assert_allclose(angles[1:], ref_a[1:], rtol=8 * np.finfo(dtype).eps, atol=0)
    assert angles[6] > 2.5  # the jump to the antipode


def test_batched_angle_of_identical_points_is_zero_and_mismatches_are_refused():
    x = Oblique(3, 4).random_point(rng=0)
    batch = SphereBatch(Oblique(3, 4), x, False, fallback=None)
    assert batch.add(x) and batch.add(x.copy())
    assert not batch.add(x.astype(np.float32))  # another dtype: not stacked
    assert not batch.add(x[:, :3])  # another shape
    assert not batch.add((x,))  # not an array
    _, angles = batch.flush()
    assert angles[1] == 0.0
    assert not SphereBatch.fits(np.zeros(SphereBatch.MAX_BYTES // 8))  # a large point


def test_batched_history_falls_back_when_a_sum_of_squares_underflows():
    # Points 1e-150 apart: their tangential part squared underflows in float64; the
    # batch hands them to the per-iterate computation, which rescales.
    x = np.array([1.0, 0.0, 0.0])
    y = np.array([np.sqrt(1.0 - 1e-300), 1e-150, 0.0])
    calls = []

    def fallback(old, new):
        calls.append(new)
        return 0.0, (np.nan if old is None else Sphere(3).dist(old, new))

    batch = SphereBatch(Sphere(3), x, False, fallback=fallback)
    batch.add(x), batch.add(y)
    _, angles = batch.flush()
    assert len(calls) == 2
    np.testing.assert_allclose(angles[1], 1e-150, rtol=4 * np.finfo(float).eps)


@pytest.mark.parametrize("strategy", ["riemannian", "projection"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_history_of_a_long_run_matches_the_iterates(strategy, dtype):
    """Over 300 iterations (three stacks) the history's angle and violation are those of
    the iterates the callback saw; momentum's reused buffers do not leak in."""
    a = np.diag(np.linspace(1.0, 3.0, 20))
    manifold = Oblique(4, 5)
    seen = []
    x0 = manifold.random_point(rng=5).astype(dtype)
    res = minimize(lambda x: -anp.sum(x.reshape(-1) @ a * x.reshape(-1)), manifold, x0=x0,
                   method="rsgd", lr=1e-3, momentum=0.9, strategy=strategy, maxiter=300,
                   gtol=0.0, callback=lambda x: seen.append(np.array(x, copy=True)))
    assert res.nit == 300
    points = [x0] + seen
    ref_v, ref_a = _reference(points, 0, normalize=strategy == "projection")
    h = res.history
    np.testing.assert_allclose(h["violation"], ref_v, rtol=0, atol=8 * np.finfo(np.float64).eps)
    # Steps of 1e-3 rad: the difference of two points is exact to an absolute eps of the
    # dtype, a large relative error of a small angle.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(h["angle"][1:], ref_a[1:], rtol=4 * eps, atol=4 * eps)


def test_history_is_per_iterate_when_printing(capsys):
    res = minimize(lambda x: -x[0], Sphere(3), rng=0, method="sd", verbose=2, maxiter=5)
    lines = capsys.readouterr().out.splitlines()[1:1 + res.nit + 1]
    printed = [float(line.split()[3]) for line in lines]
    np.testing.assert_allclose(printed, res.history["violation"], atol=1e-12)


def test_strategies_without_batching_record_the_same_fields():
    # reparam has an extra field and weights != variable: the per-iterate path.
    res = minimize(lambda x: -x[0], Sphere(3), rng=0, method="cg", strategy="reparam")
    h = res.history
    assert {"violation", "angle", "v_norm"} <= set(h)
    assert all(len(h[k]) == res.nit + 1 for k in h)


# -- fast checks of arrays ---------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite_with_overflowing_sums_and_non_finite_entries(dtype):
    big = np.finfo(dtype).max
    assert _tangent.all_finite(np.array([big, big, big], dtype=dtype))  # the sum overflows
    assert _tangent.all_finite(np.array([-big, -big], dtype=dtype))
    assert _tangent.all_finite(np.zeros((0, 3), dtype=dtype))
    for bad in (np.nan, np.inf, -np.inf):
        u = np.ones((3, 4), dtype=dtype)
        u[2, 1] = bad
        assert not _tangent.all_finite(u)
    u = np.array([np.inf, -np.inf], dtype=dtype)  # sums to NaN: still not finite
    assert not _tangent.all_finite(u)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lincomb_of_an_array_keeps_the_dtype_and_negates_exactly(dtype):
    u = np.array([1.5, -2.25, 3e-30], dtype=dtype)
    v = np.array([0.5, 0.25, 1.0], dtype=dtype)
    neg = _tangent.lincomb(-1.0, u)
    assert neg.dtype == dtype and neg is not u
    np.testing.assert_array_equal(neg, np.array([-1.5, 2.25, -3e-30], dtype=dtype))
    out = _tangent.lincomb(2.0, u, -4.0, v)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.array([1.0, -5.5, -4.0], dtype=dtype))


def test_stopper_floor_test_uses_the_eps_of_each_point_dtype():
    stopper = Stopper(10, 0.0, 0.0, 0.0, np.inf, None)
    f_old, f_new = 1.0, 1.0 - 1e-7  # 0.84 eps32, 4.5e8 eps64
    assert stopper.unresolved(np.zeros(2, np.float32), f_old, f_new)
    assert not stopper.unresolved(np.zeros(2, np.float64), f_old, f_new)
    assert stopper.unresolved(np.zeros(2, np.float32), f_old, f_new)  # cached, still right
    mixed = (np.zeros(2, np.float64), np.zeros(2, np.float32))  # the coarser decides
    assert stopper.unresolved(mixed, f_old, f_new)


# -- autograd ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_autograd_value_and_gradient_against_the_closed_form(dtype):
    a = np.arange(1.0, 10.0).reshape(3, 3)
    a = a + a.T
    x = Sphere(3).random_point(rng=2).astype(dtype)
    problem = Problem(lambda z: -(z @ (a @ z)), Sphere(3))
    f, g = problem.cost_and_egrad(x)
    x64 = x.astype(np.float64)
    assert f == pytest.approx(-(x64 @ a @ x64), rel=2 * np.finfo(np.float64).eps)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, -2.0 * (a @ x64), rtol=8 * np.finfo(dtype).eps)
    assert (problem.nfev, problem.ngev) == (1, 1)


def test_autograd_gradients_do_not_share_memory_across_calls():
    # d sum(x) / dx is the cotangent broadcast: changing one gradient in place (when
    # writable) must not change the next one.
    problem = Problem(lambda z: anp.sum(z), Sphere(4))
    x = Sphere(4).random_point(rng=0)
    _, g1 = problem.cost_and_egrad(x)
    if g1.flags.writeable:
        g1 *= 7.0
    _, g2 = problem.cost_and_egrad(x)
    np.testing.assert_array_equal(g2, np.ones(4))


def test_autograd_solver_asks_one_gradient_per_accepted_point():
    # Line-search trials are plain cost calls; one value-and-gradient pass per iterate.
    a = np.diag(np.arange(1.0, 11.0))
    res = minimize(lambda x: -(x @ (a @ x)), Sphere(10), rng=1, method="cg")
    assert res.ngev == res.nit + 1
    trials = res.nfev - res.ngev  # the cost calls outside the gradient passes
    assert res.nit <= trials <= 11 * res.nit


def test_recorder_goes_on_per_iterate_when_an_iterate_does_not_fit_the_stack():
    from spherenet.optim._loop import Recorder

    manifold = Oblique(3, 4)
    strategy = Riemannian(manifold)
    points = _walk(manifold, 5, np.float64, rng=9)
    points[3] = points[3].astype(np.float32)  # not of the stack's dtype: per iterate from here

    class _Problem:
        geometry = strategy.geometry

    recorder = Recorder(_Problem(), strategy)
    for i, p in enumerate(points):
        recorder.record(i, p, 0.0, 1.0)
    h = recorder.history()
    ref_v, ref_a = _reference(points, 0, normalize=False)
    np.testing.assert_allclose(h["violation"], ref_v, rtol=0, atol=1e-7)
    np.testing.assert_allclose(h["angle"][1:], ref_a[1:], rtol=1e-6)
    assert all(len(h[k]) == 5 for k in h)

