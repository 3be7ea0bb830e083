"""The sphere's solver-facing helpers at the corners the other tests leave open: the line
search's curve (``_retr_line``) along a mostly normal direction of a matrix point, from a
point a little off the sphere, and along a direction whose squares overflow; each trial
point against the retraction written out in plain NumPy."""

import math
import warnings

import numpy as np
import pytest

from spherenet import Oblique, Sphere, minimize
from spherenet.optim.line_search import _line

EPS = np.finfo(np.float64).eps


def _pair(shape, seed, normal=0.0, scale=1.0):
    """A unit x and d = scale * (unit tangent + normal * x), plain NumPy."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    x /= np.linalg.norm(x)
    t = rng.standard_normal(shape)
    t -= np.sum(x * t) * x
    t /= np.linalg.norm(t)
    return x, scale * (t + normal * x)


def _retr(x, u, retraction):
    """R_x(u) from the formulas for a point x of any norm (x read as x/||x||): with
    r = u - <x, u>/<x, x> x, the projection (x + r)/||x + r|| or the exponential
    cos(||r||) x/||x|| + sin(||r||) r/||r||."""
    xx = np.sum(x * x)
    r = u - np.sum(x * u) / xx * x
    if retraction == "projection":
        y = x + r
        return y / np.sqrt(np.sum(y * y))
    s = np.sqrt(np.sum(r * r))
    return np.cos(s) * x / np.sqrt(xx) + np.sin(s) * r / s


@pytest.mark.parametrize("retraction", ["projection", "exp"])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 4)])
def test_the_line_of_a_mostly_normal_direction_keeps_the_shape(retraction, shape):
    # d = tangent + 1e9 x: rr from the sums has lost every digit, so the tangent part is
    # formed from the flattened arrays (and projected twice), then reshaped like x.
    x, d = _pair(shape, 1, normal=1e9)
    line = Sphere(*shape, retraction=retraction).unchecked._retr_line(x, d)
    assert line is not None
    for t in (3e-10, 2e-9):
        y = line(t)
        assert y.shape == shape and y.dtype == np.float64
        # entries of order 0.1-1; 8 eps covers the two roundings of each side
        np.testing.assert_allclose(y, _retr(x, t * d, retraction), rtol=0, atol=8 * EPS)
        assert abs(np.linalg.norm(y) - 1.0) <= 4 * EPS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("retraction", ["projection", "exp"])
@pytest.mark.parametrize("drift", [1e-6, -3e-7])
def test_the_line_from_a_point_off_the_sphere(retraction, drift, dtype):
    # A point whose norm drifted (the unchecked view takes it as the fused step does):
    # c = <x, d>/<x, x> and x/||x||, not <x, d> <x, x> or x ||x||, which differ from
    # them by the drift (1e3-1e4 eps), far beyond the 4 eps of the comparison. float32
    # has no curve of its own: the line search's fallback, retr(x, t d), worked in float64.
    x, d = _pair(30, 2, normal=0.3)       # a normal part, so that c = <x, d>/<x, x> is not 0
    x, d = (x * (1.0 + drift)).astype(dtype), d.astype(dtype)
    x64, d64 = x.astype(np.float64), d.astype(np.float64)
    geometry = Sphere(30, retraction=retraction).unchecked
    line = _line(geometry, x, d)
    assert (geometry._retr_line(x, d) is None) == (dtype == np.float32)
    eps = np.finfo(dtype).eps
    for t in (1e-3, 0.3, 2.0):
        y = line(t)
        assert y.dtype == dtype
        # float32: the float64 result rounded once (half an ulp) plus t d formed in float32
        np.testing.assert_allclose(y, _retr(x64, t * d64, retraction), rtol=0, atol=4 * eps)
        np.testing.assert_allclose(y, geometry.retr(x, dtype(t) * d), rtol=0, atol=4 * eps)
        assert abs(np.linalg.norm(y.astype(np.float64)) - 1.0) <= 4 * eps


@pytest.mark.parametrize("retraction", ["projection", "exp"])
def test_the_line_along_a_direction_whose_squares_overflow(retraction):
    # ||d|| = 1e160: <d, d> overflows, and t^2 <d, d> with t = 1e-163 is 0 * inf. The
    # trial point is still R_x(t d), t d of norm ~1 (the curve once raised "math domain
    # error" from cos(inf) with the exponential map and gave NaN with the projection).
    x, d = _pair(20, 3, scale=1e160)
    geometry = Sphere(20, retraction=retraction).unchecked
    with pytest.warns(RuntimeWarning, match="overflow"):   # <d, d> by np.dot, as retr's dots
        line = geometry._retr_line(x, d)
    quiet = geometry._retr_line(x, d, math.inf)   # the solvers pass <d, d> (inf) themselves
    for t in (1e-163, 1e-161, 3e-161, 2e-160):
        expected = _retr(x, (t * 1e160) * (d / 1e160), retraction)
        for y in (line(t), quiet(t)):
            assert np.all(np.isfinite(y))
            np.testing.assert_allclose(y, expected, rtol=0, atol=8 * EPS)


@pytest.mark.parametrize("method", ["sd", "cg"])
@pytest.mark.parametrize("retraction", ["projection", "exp"])
def test_a_solver_with_a_gradient_whose_squares_overflow_does_not_raise(method, retraction):
    # Its slope -||g||^2 is -inf, so Armijo's test cannot hold: the run ends with a
    # result (no decrease, or a tiny step), at a point of the sphere, not with an error.
    a = np.diag(np.arange(1.0, 11.0))
    x0 = Sphere(10).random_point(rng=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = minimize(lambda x: 1e160 * (x @ (a @ x)), Sphere(10, retraction=retraction),
                          x0=x0, method=method, grad=lambda x: 2e160 * (a @ x), maxiter=5)
    assert abs(np.linalg.norm(result.x) - 1.0) <= 4 * EPS
    assert result.fun <= 1e160 * (x0 @ (a @ x0))


# --- the fused evaluation of the solvers (_gradient_and_norm) ------------------------------

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape, axis", [((6, 2), 0), ((2, 5), 1)])
def test_the_fused_evaluation_of_two_factors(shape, axis, dtype):
    # Two factors: the one-factor shortcut (a single <x, g> over the whole array) would
    # project every column on the plane of the pair instead of its own sphere.
    manifold = Oblique(*shape, axis=axis)
    x = manifold.random_point(rng=5, dtype=dtype)
    egrad = (np.random.default_rng(6).standard_normal(shape) + 2.0 * x).astype(dtype)
    rgrad, norm, sq = manifold.unchecked._gradient_and_norm(x, egrad)
    assert rgrad.dtype == dtype
    x64, g64 = x.astype(np.float64), egrad.astype(np.float64)
    r = g64 - np.sum(x64 * g64, axis=axis, keepdims=True) * x64
    eps = np.finfo(dtype).eps
    # entries of order 1; a float32 result is rounded once from the float64 sums
    np.testing.assert_allclose(rgrad, r, rtol=0, atol=8 * eps)
    assert np.all(np.abs(np.sum(x64 * rgrad, axis=axis)) <= 8 * eps)   # tangent per factor
    assert abs(norm - np.sqrt(np.sum(r * r))) <= 16 * eps
    assert abs(sq - np.sum(r * r)) <= 32 * eps


_FUSED_MAPS = ("egrad2rgrad", "_egrad2rgrad", "_proj", "_finite_norm", "_norm", "inner",
               "_inner", "directional_derivative", "_directional_derivative",
               "_gradient_and_norm")


def _fresh_subclass(overridden=None):
    # a new class each time: the gate caches its answer per class (and a class of the
    # library already holds it), so a class made here is judged by the gate's own code
    namespace = {}
    if overridden is not None:
        namespace[overridden] = lambda self, *args: getattr(Sphere, overridden)(self, *args)
    return type("FreshSphere", (Sphere,), namespace)


def test_the_fused_gate_is_open_for_a_subclass_that_keeps_every_map():
    cls = _fresh_subclass()
    assert "_gradient_and_norm_ok_" not in cls.__dict__
    assert cls._gradient_and_norm_ok() is True
    assert cls.__dict__["_gradient_and_norm_ok_"] is True     # cached on that class only
    assert "_gradient_and_norm_ok_" not in _fresh_subclass().__dict__


@pytest.mark.parametrize("name", _FUSED_MAPS)
def test_the_fused_gate_closes_when_any_one_map_is_overridden(name):
    cls = _fresh_subclass(name)
    assert cls._gradient_and_norm_ok() is False
    assert cls._gradient_and_norm_ok() is False               # the cached answer too
    assert cls.__dict__["_gradient_and_norm_ok_"] is False


# --- the violation of one factor --------------------------------------------------------

@pytest.mark.parametrize("scale", [1e200, 1e-200, 1.0 + 1e-9])
def test_the_violation_at_any_scale(scale):
    # | ||x|| - 1 | "off the manifold by any amount": a sum of squares that overflows
    # (1e200) takes the rescaled norm, not sqrt(inf); one that underflows (1e-200) gives
    # 1 either way; a small drift, the one-factor sum itself.
    rng = np.random.default_rng(7)
    for shape in ((40,), (4, 5)):
        z = rng.standard_normal(shape)
        x = scale * (z / np.linalg.norm(z))
        # plain NumPy on the array divided by its largest entry (no under- or overflow)
        big = np.max(np.abs(x))
        expected = abs(big * np.sqrt(np.sum((x / big) ** 2)) - 1.0)
        got = Sphere(*shape).violation(x)
        # relative 4 eps of ||x|| (the norm's rounding), absolute in the drift case
        assert abs(got - expected) <= 4 * EPS * max(scale, 1.0)
        assert Sphere(*shape).unchecked.violation(x) == got
