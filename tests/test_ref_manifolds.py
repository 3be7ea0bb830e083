"""Single quantities of the manifolds against independent references.

Each test pins one map or property on a fixed input against a few lines of
plain NumPy (the textbook formula, in float64 or long double) or mpmath, with
tolerances a small stated factor of the dtype's eps. Where a map has a
compiled kernel (``exp`` and ``gradient_step`` of the sphere-like manifolds),
both paths are pinned: contiguous arrays take the kernel when numba is
installed, strided views always take the NumPy formulas.

Only valid inputs are used here; the errors raised for bad input are tested
in ``test_validation.py``.
"""

import copy
import pickle

import mpmath
import numpy as np
import pytest

from conftest import eps, tol
from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.manifolds._reduce import FactorReducer, hypot
from spherenet.manifolds.sphere import _sinc

DTYPES = [np.float32, np.float64]
DTYPE_IDS = ["float32", "float64"]
DPS = 40


# --- plain NumPy references ------------------------------------------------------


def assert_allclose(actual, expected, rtol=0.0, atol=0.0, err_msg=""):
    """``np.testing.assert_allclose`` with no default relative tolerance."""
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=err_msg)


def unit(z, axis=None):
    """z divided by its norm over ``axis`` (all axes if None), in float64."""
    z = np.asarray(z, np.float64)
    return z / np.sqrt(np.sum(z * z, axis=axis, keepdims=True))


def strided(a):
    """A copy of ``a`` as a view that is neither C- nor F-contiguous."""
    big = np.zeros(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = a
    view = big[..., 0]
    assert not view.flags.c_contiguous and not view.flags.f_contiguous
    return view


def layouts(a):
    return [a.copy(), strided(a)]


def sphere_exp(x, u):
    """cos(t) x + sin(t)/t u with t = ||u||, on one factor, float64."""
    t = np.linalg.norm(u)
    return np.cos(t) * x + (np.sin(t) / t) * u


def mp_angle(x, y):
    """The angle between x and y in mpmath: atan2(|x ^ y|, x . y)."""
    with mpmath.workdps(DPS):
        xs = [mpmath.mpf(float(v)) for v in np.ravel(x)]
        ys = [mpmath.mpf(float(v)) for v in np.ravel(y)]
        d = mpmath.fsum(a * b for a, b in zip(xs, ys))
        xx = mpmath.fsum(a * a for a in xs)
        yy = mpmath.fsum(b * b for b in ys)
        return float(mpmath.atan2(mpmath.sqrt(xx * yy - d * d), d))


def mp_exp(x, u):
    """cos(t) x + sin(t)/t u in mpmath, t = ||u||, for the float inputs as given.

    x is read as x / ||x|| and u through its tangent part u - <x, u>/<x, x> x
    (the identity on exact inputs).
    """
    with mpmath.workdps(DPS):
        xs = [mpmath.mpf(float(v)) for v in np.ravel(x)]
        us = [mpmath.mpf(float(v)) for v in np.ravel(u)]
        xx = mpmath.fsum(a * a for a in xs)
        c = mpmath.fsum(a * b for a, b in zip(xs, us)) / xx
        us = [b - c * a for a, b in zip(xs, us)]
        xs = [a / mpmath.sqrt(xx) for a in xs]
        t = mpmath.sqrt(mpmath.fsum(a * a for a in us))
        c, s = mpmath.cos(t), (mpmath.sin(t) / t if t else mpmath.mpf(1))
        return np.array([float(c * a + s * b) for a, b in zip(xs, us)]).reshape(np.shape(x))


def tangent_at(x, z):
    """The tangent part of z at the unit vector x (float64, projected twice)."""
    x = np.asarray(x, np.float64)
    for _ in range(2):
        z = z - np.sum(x * z) * x
    return z


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


# --- _reduce: FactorReducer and hypot -----------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize(
    "shape, axes",
    [((5,), (0,)), ((3, 4), (0,)), ((3, 2), (0,)), ((3, 4), (1,)), ((3, 4), (0, 1)), ((2, 3, 4), (0, 2)),
     ((2, 3, 4), (1,))],
)
def test_reducer_dot_is_the_per_factor_sum_of_products(rng, dtype, shape, axes):
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    red = FactorReducer(shape, axes)
    expected = np.sum(a.astype(np.float64) * b.astype(np.float64), axis=axes, keepdims=True)
    got = red.dot(a, b)
    assert got.dtype == np.float64
    assert got.shape == expected.shape == red.keep_shape
    # float32 products are exact in float64: the sums agree to a few float64 ulps.
    assert_allclose(got, expected, rtol=tol(np.float64, 16), atol=tol(np.float64, 16))
    assert red.factor_size == int(np.prod([shape[i] for i in axes]))
    assert red.n_factors == int(np.prod(shape)) // red.factor_size
    # mixed dtypes: the float32 operand is read exactly in float64
    mixed = red.dot(a, b.astype(np.float64))
    assert mixed.shape == red.keep_shape
    assert_allclose(mixed, expected, rtol=tol(np.float64, 16), atol=tol(np.float64, 16))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape, axes", [((5,), (0,)), ((3, 4), (0,)), ((2, 3, 4), (0, 2))])
def test_reducer_total_is_the_frobenius_product(rng, dtype, shape, axes):
    a = rng.standard_normal(shape).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    got = FactorReducer(shape, axes).total(a, b)
    assert type(got) is float
    expected = float(np.sum(a.astype(np.float64) * b.astype(np.float64)))
    assert got == pytest.approx(expected, rel=tol(np.float64, 16), abs=tol(np.float64, 16))


@pytest.mark.parametrize("scale", [1e-170, 1e-155, 1e155, 1e200])
@pytest.mark.parametrize("shape, axes", [((4,), (0,)), ((4, 3), (0,)), ((3, 4), (1,)), ((2, 3, 2), (0, 2))])
def test_reducer_norms_of_tiny_and_huge_float64_keep_full_accuracy(rng, scale, shape, axes):
    a = rng.standard_normal(shape)
    expected = scale * np.sqrt(np.sum(a * a, axis=axes, keepdims=True))
    got = FactorReducer(shape, axes).norms(scale * a)
    assert np.all(np.isfinite(got)) and got.shape == expected.shape
    assert_allclose(got, expected, rtol=tol(np.float64, 8))


def test_reducer_norms_mix_zero_tiny_normal_and_huge_factors():
    # One column each: zero (the rescaling must not divide 0 by 0), tiny, normal, huge.
    a = np.array([[0.0, 3e-170, 3.0, 3e200], [0.0, 4e-170, 4.0, 4e200]])
    got = FactorReducer(a.shape, (0,)).norms(a)
    assert_allclose(got, [[0.0, 5e-170, 5.0, 5e200]], rtol=tol(np.float64, 4))


def test_reducer_norms_just_above_the_rescaling_threshold_are_plain():
    red = FactorReducer((2,), (0,))
    # _low = n tiny / eps; a sum of squares a little above it is summed directly, exactly.
    a = np.array([np.sqrt(red._low), 0.0]) * 2.0
    assert_allclose(red.norms(a), [2.0 * np.sqrt(red._low)], rtol=tol(np.float64, 2))
    assert red._low == pytest.approx(2 * np.finfo(np.float64).tiny / np.finfo(np.float64).eps, rel=1e-15)


def test_reducer_safe_thresholds():
    red = FactorReducer((3, 2), (0,))
    low = 3 * np.finfo(np.float64).tiny / np.finfo(np.float64).eps
    assert red.safe(np.array([[low, 1.0]]))
    assert not red.safe(np.array([[low / 2, 1.0]]))
    assert not red.safe(np.array([[1.0, low / 2]]))
    assert not red.safe(np.array([[np.inf, 1.0]]))
    assert not red.safe(np.array([[1.0, np.inf]]))
    one = FactorReducer((3,), (0,))
    assert one.safe(np.array([low]))
    assert not one.safe(np.array([low / 2]))
    assert not one.safe(np.array([np.inf]))
    assert one.safe(np.array([1e300]))


@pytest.mark.parametrize(
    "values, expected",
    [([3.0, 4.0], 5.0), ([3e300, 4e300], 5e300), ([3e-300, 4e-300], 5e-300), ([-2.5], 2.5),
     ([7.0], 7.0), ([], 0.0), ([0.0, 0.0], 0.0), ([1.0, np.inf], np.inf), ([1.0, 2.0, 2.0], 3.0)],
)
def test_hypot(values, expected):
    got = hypot(values)
    assert type(got) is float
    assert got == pytest.approx(expected, rel=tol(np.float64, 2))


def test_hypot_works_in_float64_whatever_the_input_dtype():
    # In float32, 1 + (1e-4)^2 rounds to 1; the float64 result keeps the 5e-9.
    values = np.array([1.0, 1e-4], dtype=np.float32)
    small = float(values[1])
    assert hypot(values) == pytest.approx(np.sqrt(1.0 + small * small), rel=tol(np.float64, 2))
    assert hypot(values) != 1.0


def test_sinc_is_sin_over_t_on_both_branches():
    t = np.array([0.0, 1e-8, 5e-4, 9.99e-4, 1e-3, 0.5, 3.0, -0.5, -5e-4])
    with mpmath.workdps(DPS):
        expected = np.array([1.0 if v == 0 else float(mpmath.sin(mpmath.mpf(v)) / mpmath.mpf(v)) for v in t])
    assert_allclose(_sinc(t), expected, rtol=tol(np.float64, 2))


# --- Euclidean ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_euclidean_maps_are_the_flat_ones(rng, dtype):
    M = Euclidean(3, 2)
    x, u, v, y = (rng.standard_normal((3, 2)).astype(dtype) for _ in range(4))
    assert M.shape == (3, 2) and M.dim == 6 and M.typical_dist == pytest.approx(np.sqrt(6.0), rel=1e-15)
    for name, args, expected in [
        ("proj", (x, u), u), ("egrad2rgrad", (x, u), u), ("ehess2rhess", (x, u, v, y), v),
        ("exp", (x, u), x + u), ("retr", (x, u), x + u), ("log", (x, y), y - x),
        ("inverse_retr", (x, y), y - x), ("transp", (x, y, v), v),
    ]:
        got = getattr(M, name)(*args)
        assert got.dtype == dtype, name
        np.testing.assert_array_equal(got, expected, err_msg=name)
    # proj, egrad2rgrad, ehess2rhess and transp return copies, never the input itself.
    assert not np.shares_memory(M.proj(x, u), u)
    assert not np.shares_memory(M.egrad2rgrad(x, u), u)
    assert not np.shares_memory(M.ehess2rhess(x, u, v, y), v)
    assert not np.shares_memory(M.transp(x, y, v), v)
    x64, u64, v64, y64 = (a.astype(np.float64) for a in (x, u, v, y))
    assert M.inner(x, u, v) == pytest.approx(float(np.sum(u64 * v64)), rel=tol(np.float64, 16))
    assert M.norm(x, u) == pytest.approx(float(np.sqrt(np.sum(u64**2))), rel=tol(np.float64, 8))
    assert M.dist(x, y) == pytest.approx(float(np.sqrt(np.sum((y - x).astype(np.float64) ** 2))), rel=tol(dtype, 4))
    assert M.violation(x) == 0.0
    assert M.zero_vector(x).dtype == dtype and not np.any(M.zero_vector(x))
    assert M.check_point(x) is x and M.check_tangent(x, u) is u


def test_euclidean_norm_and_dist_do_not_overflow():
    M = Euclidean(2)
    assert M.norm(np.zeros(2), np.array([3e200, 4e200])) == pytest.approx(5e200, rel=tol(np.float64, 4))
    assert M.dist(np.array([-1.5e200, 0.0]), np.array([1.5e200, 4e200])) == pytest.approx(5e200, rel=tol(np.float64, 4))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_euclidean_gradient_step(rng, dtype):
    M = Euclidean(4)
    x, g = rng.standard_normal(4).astype(dtype), rng.standard_normal(4).astype(dtype)
    expected = x - g * dtype(0.3)
    got = M.gradient_step(x, g, 0.3)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    out = np.empty_like(x)
    assert M.gradient_step(x, g, 0.3, out=out) is out
    np.testing.assert_array_equal(out, expected)
    x_before = x.copy()
    M.gradient_step(x, g, 0.3, out=x)
    np.testing.assert_array_equal(x, x_before - g * dtype(0.3))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_euclidean_sampling(dtype):
    M = Euclidean(3, 2)
    x = M.random_point(rng=5, dtype=dtype)
    assert x.dtype == dtype
    np.testing.assert_array_equal(x, np.random.default_rng(5).standard_normal((3, 2)).astype(dtype))
    u = M.random_tangent(x, rng=6)
    z = np.random.default_rng(6).standard_normal((3, 2))
    assert u.dtype == dtype
    assert_allclose(u, z / np.linalg.norm(z), rtol=tol(dtype, 4))


def test_euclidean_identity():
    assert repr(Euclidean(3, 2)) == "Euclidean(3, 2)"
    assert Euclidean(3, 2) == Euclidean(3, 2) and hash(Euclidean(3, 2)) == hash(Euclidean(3, 2))
    assert Euclidean(3, 2) != Euclidean(2, 3)
    assert Euclidean.retraction == "exp" and Euclidean.transport == "parallel"


# --- Sphere: properties, projections, metric ------------------------------------------


def test_sphere_and_oblique_properties():
    assert Sphere(5).dim == 4 and Sphere(3, 4).dim == 11
    assert Sphere(5).n_factors == 1 and Sphere(3, 4).shape == (3, 4)
    assert Sphere(5).typical_dist == pytest.approx(np.pi, rel=1e-15)
    M = Oblique(4, 6)
    assert M.n_factors == 6 and M.dim == 18 and M.axis == 0
    assert M.typical_dist == pytest.approx(np.pi * np.sqrt(6.0), rel=1e-15)
    R = Oblique(4, 6, axis=1)
    assert R.n_factors == 4 and R.dim == 20 and R.axis == 1
    assert Oblique(4, 6, axis=-1).axis == 1
    T = Oblique(shape=(2, 3, 4), axis=(2, 0))
    assert T.axis == (0, 2) and T.n_factors == 3 and T.dim == 24 - 3
    assert Oblique(4, 6, axis=-2).axis == 0 and Oblique(shape=(2, 3, 4), axis=(-3, -1)).axis == (0, 2)
    assert Oblique(shape=(2, 3, 4), axis=(-1,)).axis == 2


def test_reprs_and_equality():
    assert repr(Sphere(3, 4)) == "Sphere(3, 4, retraction='exp', transport='projection')"
    assert repr(Oblique(4, 6, axis=1, retraction="projection", transport="parallel")) == (
        "Oblique(shape=(4, 6), axis=1, retraction='projection', transport='parallel')"
    )
    assert Sphere(3) != Sphere(3, retraction="projection")
    assert Sphere(3) != Sphere(3, transport="parallel")
    assert Oblique(4, 6) != Oblique(4, 6, axis=1)
    assert Oblique(4, 6) == Oblique(shape=(4, 6), axis=0)
    assert repr(Product([Sphere(3), Euclidean(2)])) == (
        "Product([Sphere(3, retraction='exp', transport='projection'), Euclidean(2)])"
    )


def test_with_options_returns_a_changed_copy():
    M = Sphere(3)
    N = M.with_options(retraction="projection", transport="parallel")
    assert (N.retraction, N.transport) == ("projection", "parallel")
    assert (M.retraction, M.transport) == ("exp", "projection")
    assert M.with_options(transport="parallel").retraction == "exp"
    assert M.with_options(retraction="projection").transport == "projection"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("manifold, axis", [(Sphere(5), None), (Oblique(4, 3), 0), (Oblique(4, 3, axis=1), 1)])
def test_proj_ehess_inner_norm_violation(rng, dtype, manifold, axis):
    shape = manifold.shape
    x = unit(rng.standard_normal(shape), axis).astype(dtype)
    u, g, h = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    x64, u64, g64, h64 = (a.astype(np.float64) for a in (x, u, g, h))
    proj = u64 - np.sum(x64 * u64, axis=axis, keepdims=True) * x64
    for name, got in [("proj", manifold.proj(x, u)), ("egrad2rgrad", manifold.egrad2rgrad(x, u))]:
        assert got.dtype == dtype
        assert_allclose(got, proj, atol=tol(dtype, 16), err_msg=name)
    rhess = (h64 - np.sum(x64 * h64, axis=axis, keepdims=True) * x64) - np.sum(x64 * g64, axis=axis, keepdims=True) * u64
    got = manifold.ehess2rhess(x, g, h, u)
    assert got.dtype == dtype
    assert_allclose(got, rhess, atol=tol(dtype, 32))
    assert manifold.inner(x, u, g) == pytest.approx(float(np.sum(u64 * g64)), rel=tol(np.float64, 16))
    assert manifold.norm(x, u) == pytest.approx(float(np.sqrt(np.sum(u64 * u64))), rel=tol(np.float64, 16))
    y = (x64 * np.linspace(0.5, 1.5, x.size).reshape(shape)).astype(dtype)
    norms = np.sqrt(np.sum(y.astype(np.float64) ** 2, axis=axis))
    assert manifold.violation(y) == pytest.approx(float(np.max(np.abs(norms - 1.0))), rel=tol(np.float64, 16))
    assert manifold.check_point(x) is x
    t = manifold.proj(x, u)
    assert manifold.check_tangent(x, t) is t
    assert manifold.zero_vector(x).dtype == dtype and not np.any(manifold.zero_vector(x))


@pytest.mark.parametrize("scale", [1e-170, 1e-300, 1e200])
def test_sphere_norm_of_tiny_and_huge_float64_vectors(rng, scale):
    M = Oblique(3, 4)
    u = rng.standard_normal((3, 4))
    x = M.random_point(rng=0)  # the norm does not look at x; it must be a valid point
    assert M.norm(x, scale * u) == pytest.approx(scale * np.sqrt(np.sum(u * u)), rel=tol(np.float64, 8))


# --- Sphere: geodesics ---------------------------------------------------------------


def _pair(rng, angle, n=5):
    """Unit x, y at the given angle (float64), and the unit tangent v from x to y."""
    x = unit(rng.standard_normal(n))
    v = unit(tangent_at(x, rng.standard_normal(n)))
    return x, np.cos(angle) * x + np.sin(angle) * v, v


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("angle", [0.0, 1e-9, 1e-3, 1.0, 2.5, np.pi - 1e-6, np.pi - 1e-9])
def test_sphere_dist_against_mpmath(rng, dtype, angle):
    x, y, _ = _pair(rng, angle)
    x, y = x.astype(dtype), y.astype(dtype)
    expected = mp_angle(x, y)
    # the angle of the rounded inputs, to a few ulps of pi (absolute: the angle is a difference)
    assert Sphere(5).dist(x, y) == pytest.approx(expected, rel=tol(dtype, 8), abs=tol(dtype, 8))


def test_sphere_dist_of_identical_and_antipodal_points():
    x = unit(np.arange(1.0, 6.0))
    assert Sphere(5).dist(x, x) == 0.0
    assert Sphere(5).dist(x, -x) == pytest.approx(np.pi, rel=tol(np.float64, 2))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_oblique_dist_is_the_root_sum_of_column_angles(rng, dtype):
    angles = [0.3, 1e-4, 2.9, 1.2]
    cols = [_pair(rng, a, 3) for a in angles]
    x = np.stack([c[0] for c in cols], axis=1).astype(dtype)
    y = np.stack([c[1] for c in cols], axis=1).astype(dtype)
    each = [mp_angle(x[:, j], y[:, j]) for j in range(4)]
    assert Oblique(3, 4).dist(x, y) == pytest.approx(float(np.sqrt(np.sum(np.square(each)))), rel=tol(dtype, 8))
    assert Oblique(4, 3, axis=1).dist(x.T.copy(), y.T.copy()) == pytest.approx(
        float(np.sqrt(np.sum(np.square(each)))), rel=tol(dtype, 8)
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("t", [0.0, 1e-7, 5e-4, 0.8, 3.0, 7.5, 40.0, 1000.0])
def test_sphere_exp_against_mpmath(rng, dtype, t):
    x = unit(rng.standard_normal(5)).astype(dtype)
    u = (t * unit(tangent_at(x, rng.standard_normal(5)))).astype(dtype)
    expected = mp_exp(x, u)
    # float32 data are worked in float64; long float64 steps in long double: a few ulps of
    # the unit point, plus t ulps for float64 steps when long double is plain double.
    ulps = 8 + (t if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps else 0)
    for xl, ul in zip(layouts(x), layouts(u)):
        got = Sphere(5).exp(xl, ul)
        assert got.dtype == dtype
        assert_allclose(got, expected, atol=tol(dtype, ulps))
        assert_allclose(Sphere(5).retr(xl, ul), expected, atol=tol(dtype, ulps))


def test_sphere_exp_reads_x_through_its_norm_and_u_through_its_tangent_part(rng):
    # Off-sphere by 1e-9 and a normal component in u: the NumPy path normalizes x and
    # drops <x, u>/<x, x> x before stepping.
    x = unit(rng.standard_normal(5))
    v = 0.7 * unit(tangent_at(x, rng.standard_normal(5)))
    xs = x * (1 + 1e-9)
    u = v + 0.25 * x
    got = Sphere(5).unchecked.exp(strided(xs), strided(u))  # 1e-9 off: the raw map
    assert_allclose(got, sphere_exp(x, v), atol=tol(np.float64, 8))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_oblique_exp_acts_column_by_column(rng, dtype):
    x = unit(rng.standard_normal((3, 4)), 0)
    u = np.stack([s * unit(tangent_at(x[:, j], rng.standard_normal(3))) for j, s in enumerate([0.1, 1.0, 2.0, 1e-5])], 1)
    expected = np.stack([sphere_exp(x[:, j], u[:, j]) for j in range(4)], 1)
    for xl, ul in zip(layouts(x.astype(dtype)), layouts(u.astype(dtype))):
        got = Oblique(3, 4).exp(xl, ul)
        assert got.dtype == dtype
        assert_allclose(got, expected, atol=tol(dtype, 8))
        gotT = Oblique(4, 3, axis=1).exp(np.ascontiguousarray(xl.T), np.ascontiguousarray(ul.T))
        assert_allclose(gotT, expected.T, atol=tol(dtype, 8))


def test_oblique_long_steps_wrap_around_each_column(rng):
    # Columns moved by 9.5, 0.3 and 2000 rad: float64 steps beyond 2 pi are worked per column
    # in extended precision, and the short column in the same call is not disturbed.
    x = unit(rng.standard_normal((4, 3)), 0)
    u = np.stack([s * unit(tangent_at(x[:, j], rng.standard_normal(4))) for j, s in enumerate([9.5, 0.3, 2000.0])], 1)
    expected = np.stack([mp_exp(x[:, j], u[:, j]) for j in range(3)], 1)
    ulps = 8 + (2000 if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps else 0)
    for xl, ul in zip(layouts(x), layouts(u)):
        assert_allclose(Oblique(4, 3).exp(xl, ul), expected, atol=tol(np.float64, ulps))
        assert_allclose(
            Oblique(3, 4, axis=1).exp(np.ascontiguousarray(xl.T), np.ascontiguousarray(ul.T)), expected.T,
            atol=tol(np.float64, ulps),
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("angle", [1e-6, 0.4, 2.0, np.pi - 1e-4])
def test_sphere_log_is_angle_times_the_unit_direction(rng, dtype, angle):
    x, y, _ = _pair(rng, angle)
    x, y = x.astype(dtype), y.astype(dtype)
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    direction = unit(y64 - np.sum(x64 * y64) * x64)
    expected = mp_angle(x, y) * direction
    # The direction is formed from a tangent part of norm sin(angle): conditioned by 1/sin.
    atol = tol(dtype, 16) / np.sin(angle)
    got = Sphere(5).log(x, y)
    assert got.dtype == dtype
    assert_allclose(got, expected, atol=atol)
    assert_allclose(Sphere(5).inverse_retr(x, y), expected, atol=atol)


def test_sphere_log_of_identical_and_antipodal_points_is_zero():
    x = unit(np.arange(1.0, 6.0))
    np.testing.assert_array_equal(Sphere(5).log(x, x), np.zeros(5))
    np.testing.assert_array_equal(Sphere(5).log(x, -x), np.zeros(5))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_projection_retraction_and_its_inverse(rng, dtype):
    M = Oblique(3, 4, retraction="projection")
    x = unit(rng.standard_normal((3, 4)), 0)
    u = np.stack([tangent_at(x[:, j], rng.standard_normal(3)) for j in range(4)], 1)
    x, u = x.astype(dtype), u.astype(dtype)
    x64, u64 = x.astype(np.float64), u.astype(np.float64)
    y = M.retr(x, u)
    assert y.dtype == dtype
    assert_allclose(y, unit(x64 + u64, 0), atol=tol(dtype, 8))
    y64 = y.astype(np.float64)
    # u = y / <x, y> - x
    expected = y64 / np.sum(x64 * y64, axis=0, keepdims=True) - x64
    got = M.inverse_retr(x, y)
    assert got.dtype == dtype
    assert_allclose(got, expected, rtol=tol(dtype, 64), atol=tol(dtype, 64))


def test_projection_inverse_retraction_needs_positive_inner_products():
    M = Sphere(3, retraction="projection")
    x = np.array([1.0, 0.0, 0.0])
    for y in (np.array([-1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), np.array([-0.6, 0.8, 0.0])):
        with pytest.raises(ValueError, match=r"^inverse_retr of the projection retraction needs <x, y> > 0 in every factor"):
            M.inverse_retr(x, y)
    assert_allclose(M.inverse_retr(x, np.array([0.6, 0.8, 0.0])), [0.0, 0.8 / 0.6, 0.0], rtol=tol(np.float64, 4))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("angle", [1e-5, 0.7, 2.8])
def test_transports(rng, dtype, angle):
    x, y, _ = _pair(rng, angle)
    v = tangent_at(x, rng.standard_normal(5))
    x, y, v = x.astype(dtype), y.astype(dtype), v.astype(dtype)
    x64, y64, v64 = (a.astype(np.float64) for a in (x, y, v))
    parallel = v64 - np.sum(y64 * v64) / (1.0 + np.sum(x64 * y64)) * (x64 + y64)
    projection = v64 - np.sum(y64 * v64) * y64
    cond = 1.0 / (1.0 + np.cos(angle))  # the parallel formula divides by 1 + <x, y>
    got = Sphere(5, transport="parallel").transp(x, y, v)
    assert got.dtype == dtype
    assert_allclose(got, parallel, atol=tol(dtype, 16) * cond)
    got = Sphere(5, transport="projection").transp(x, y, v)
    assert got.dtype == dtype
    assert_allclose(got, projection, atol=tol(dtype, 16))


def test_parallel_transport_to_an_antipode_is_finite():
    x = np.array([1.0, 0.0, 0.0])
    v = np.array([0.0, 1.0, 0.0])
    np.testing.assert_array_equal(Sphere(3, transport="parallel").transp(x, -x, v), v)


# --- Sphere: fused gradient step and sampling ------------------------------------------------


def _step_reference(x, g, lr, use_exp, axis):
    """retr(x, -lr P_x(g)) in long double, from the textbook formulas.

    x is read as x / ||x|| (a float point is a few ulps off the sphere, and the
    normal part of a large gradient would magnify that).
    """
    x, g = np.asarray(x, np.longdouble), np.asarray(g, np.longdouble)
    xx = np.sum(x * x, axis=axis, keepdims=True)
    r = g - np.sum(x * g, axis=axis, keepdims=True) / xx * x
    r = r - np.sum(x * r, axis=axis, keepdims=True) / xx * x
    u = -np.longdouble(lr) * r
    if use_exp:
        t = np.sqrt(np.sum(u * u, axis=axis, keepdims=True))
        s = np.where(t > 0, np.sin(t) / np.where(t > 0, t, 1), 1)
        return np.cos(t) / np.sqrt(xx) * x + s * u
    w = x + u
    return w / np.sqrt(np.sum(w * w, axis=axis, keepdims=True))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("retraction", ["exp", "projection"])
@pytest.mark.parametrize("lr", [0.05, 2.0, -0.3])
def test_gradient_step_against_the_formula(rng, dtype, retraction, lr):
    M = Oblique(4, 3, retraction=retraction)
    x = unit(rng.standard_normal((4, 3)), 0).astype(dtype)
    g = rng.standard_normal((4, 3)).astype(dtype)
    expected = _step_reference(x, g, lr, retraction == "exp", 0).astype(np.float64)
    for xl, gl in zip(layouts(x), layouts(g)):
        got = M.gradient_step(xl, gl, lr)
        assert got.dtype == dtype
        assert_allclose(got, expected, atol=tol(dtype, 16))
        out = np.empty_like(xl)
        assert M.gradient_step(xl, gl, lr, out=out) is out
        assert_allclose(out, expected, atol=tol(dtype, 16))
        inplace = xl.copy() if xl.flags.c_contiguous else strided(xl)
        M.gradient_step(inplace, gl, lr, out=inplace)
        assert_allclose(inplace, expected, atol=tol(dtype, 16))


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_gradient_step_with_a_mostly_normal_gradient_stays_on_the_sphere(rng, retraction):
    # g = 1e8 x + a unit tangent: one projection leaves a residue ~ 1e8 eps along x.
    x = unit(rng.standard_normal(6))
    v = unit(tangent_at(x, rng.standard_normal(6)))
    g = 1e8 * x + v
    expected = _step_reference(x, g, 0.5, retraction == "exp", None).astype(np.float64)
    for xl, gl in zip(layouts(x), layouts(g)):
        got = Sphere(6, retraction=retraction).gradient_step(xl, gl, 0.5)
        # The tangent part of g is itself only known to ~ ||g|| eps: the step is that far
        # off, but the new point is on the sphere to a few ulps.
        assert_allclose(got, expected, atol=0.5 * 1e8 * tol(np.float64, 16))
        assert abs(np.linalg.norm(got) - 1.0) < tol(np.float64, 4)


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_gradient_step_from_a_drifted_point_lands_on_the_sphere(rng, retraction):
    # x is 1e-3 off the sphere: it is read as x / ||x||, and a mostly normal gradient is
    # projected with <x, g> / <x, x>, so the new point has unit norm to rounding.
    x = unit(rng.standard_normal((5, 2)), 0) * np.array([1.001, 0.998])
    g = 1e6 * x + np.stack([unit(tangent_at(unit(x[:, j]), rng.standard_normal(5))) for j in range(2)], 1)
    expected = _step_reference(x, g, 0.4, retraction == "exp", 0).astype(np.float64)
    for xl, gl in zip(layouts(x), layouts(g)):
        # x is off the sphere on purpose: the raw step (the public one refuses it)
        got = Oblique(5, 2, retraction=retraction).unchecked.gradient_step(xl, gl, 0.4)
        assert_allclose(got, expected, atol=1e6 * tol(np.float64, 16))
        assert_allclose(np.linalg.norm(got, axis=0), 1.0, atol=tol(np.float64, 4))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_random_point_and_tangent_from_the_seed(dtype):
    M = Oblique(3, 4)
    x = M.random_point(rng=11, dtype=dtype)
    assert x.dtype == dtype
    assert_allclose(x, unit(np.random.default_rng(11).standard_normal((3, 4)), 0), rtol=tol(dtype, 4))
    S = Sphere(3, 4)
    assert_allclose(
        S.random_point(rng=11), unit(np.random.default_rng(11).standard_normal((3, 4))), rtol=tol(np.float64, 4)
    )
    x64 = x.astype(np.float64)
    z = np.random.default_rng(12).standard_normal((3, 4))
    for _ in range(2):
        z = z - np.sum(x64 * z, axis=0, keepdims=True) * x64
    u = M.random_tangent(x, rng=12)
    assert u.dtype == dtype
    assert_allclose(u, z / np.linalg.norm(z), atol=tol(dtype, 8))


def test_random_tangent_of_zero_dimensional_spheres_is_zero():
    M = Oblique(1, 3)  # every column a point of S^0 = {-1, 1}: no tangent direction
    x = M.random_point(rng=0)
    u = M.random_tangent(x, rng=0)
    np.testing.assert_array_equal(u, np.zeros((1, 3)))


# --- Product -----------------------------------------------------------------------------------


def _product(rng, dtype):
    M = Product([Oblique(3, 2), Product([Euclidean(2), Sphere(4, retraction="projection", transport="parallel")])])
    x = (unit(rng.standard_normal((3, 2)), 0).astype(dtype), rng.standard_normal(2).astype(dtype),
         unit(rng.standard_normal(4)).astype(dtype))
    return M, x


def test_product_structure():
    M, _ = _product(np.random.default_rng(0), np.float64)
    assert len(M) == 3 and M.shape == ((3, 2), (2,), (4,))
    assert M.retraction == ("exp", "exp", "projection")
    assert M.transport == ("projection", "parallel", "parallel")
    assert M.dim == 4 + 2 + 3
    assert M.typical_dist == pytest.approx(np.sqrt((np.pi**2) * 2 + 2 + np.pi**2), rel=tol(np.float64, 4))
    assert M == Product([Oblique(3, 2), Euclidean(2), Sphere(4, retraction="projection", transport="parallel")])


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_product_metric_is_the_sum_over_factors(rng, dtype):
    M, x = _product(rng, dtype)
    u = M.proj(x, tuple(rng.standard_normal(a.shape).astype(dtype) for a in x))
    v = M.proj(x, tuple(rng.standard_normal(a.shape).astype(dtype) for a in x))
    flat = lambda t: np.concatenate([np.asarray(a, np.float64).ravel() for a in t])  # noqa: E731
    assert type(M.inner(x, u, v)) is float
    assert M.inner(x, u, v) == pytest.approx(float(flat(u) @ flat(v)), rel=tol(np.float64, 16))
    assert M.norm(x, u) == pytest.approx(float(np.linalg.norm(flat(u))), rel=tol(np.float64, 16))
    y = M.retr(x, u)
    d = [mp_angle(x[0][:, j], y[0][:, j]) for j in range(2)]
    d += [float(np.linalg.norm(y[1].astype(np.float64) - x[1])), mp_angle(x[2], y[2])]
    assert M.dist(x, y) == pytest.approx(float(np.sqrt(np.sum(np.square(d)))), rel=tol(dtype, 16))
    off = (x[0] * dtype(1.25), x[1], x[2] * dtype(0.9))
    assert M.violation(off) == pytest.approx(0.25, rel=tol(dtype, 4))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_product_maps_act_factor_by_factor(rng, dtype):
    M, x = _product(rng, dtype)
    factors = (Oblique(3, 2), Euclidean(2), Sphere(4, retraction="projection", transport="parallel"))
    z = tuple(rng.standard_normal(a.shape).astype(dtype) for a in x)
    h = tuple(rng.standard_normal(a.shape).astype(dtype) for a in x)
    u = M.proj(x, z)
    y = M.retr(x, u)
    for name, args in [("proj", (x, z)), ("egrad2rgrad", (x, z)), ("ehess2rhess", (x, z, h, u)),
                       ("exp", (x, u)), ("retr", (x, u)), ("log", (x, y)), ("inverse_retr", (x, y)),
                       ("transp", (x, y, u)), ("zero_vector", (x,))]:
        got = getattr(M, name)(*args)
        assert isinstance(got, tuple) and len(got) == 3, name
        for i, f in enumerate(factors):
            expected = getattr(f, name)(*(a[i] for a in args))
            assert got[i].dtype == dtype, name
            np.testing.assert_array_equal(got[i], expected, err_msg=f"{name} factor {i}")
    out = tuple(np.empty_like(a) for a in x)
    res = M.gradient_step(x, z, 0.1, out=out)
    assert all(r is o for r, o in zip(res, out))
    for i, f in enumerate(factors):
        np.testing.assert_array_equal(res[i], f.gradient_step(x[i], z[i], 0.1))
        np.testing.assert_array_equal(M.gradient_step(x, z, 0.1)[i], f.gradient_step(x[i], z[i], 0.1))
    assert M.check_point(x) is x and M.check_tangent(x, u) is u


def test_checks_accept_valid_inputs_within_a_given_tolerance(rng):
    S = Sphere(3)
    x = unit(rng.standard_normal(3))
    off = x * (1 + 1e-6)  # valid for atol=1e-5, not for the default 100 eps
    assert S.check_point(off, atol=1e-5) is off
    # a long tangent vector: its normal residue ~ eps ||u|| is allowed, relative to ||u||
    u = 1e6 * tangent_at(x, rng.standard_normal(3)) + 1e6 * 20 * eps(np.float64) * x
    assert S.check_tangent(x, u) is u
    # a normal component of 1e-7: tangent for atol=1e-5, whatever the default
    w = tangent_at(x, rng.standard_normal(3)) + 1e-7 * x
    assert S.check_tangent(x, w, atol=1e-5) is w
    assert Oblique(3, 1).check_tangent(x[:, None], w[:, None], atol=1e-5) is not None
    M = Product([Sphere(3), Euclidean(2)])
    b = rng.standard_normal(2)
    point, vector = (off, b), (tangent_at(x, rng.standard_normal(3)), b)
    assert M.check_point(point, atol=1e-5) is point
    assert M.check_tangent(point, vector, atol=1e-5) is vector
    # the atol reaches the factors' tangency test: a normal component of 1e-7 passes
    assert M.check_tangent(point, (w, b), atol=1e-5)[0] is w
    with pytest.raises(ValueError, match=r"^factor 0 "):
        M.check_tangent((x, b), (w, b))
    assert M.check_point([x, b]) is not None  # lists are accepted as tuples


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_product_sampling(dtype):
    M = Product([Oblique(3, 2), Euclidean(2)])
    x = M.random_point(rng=3, dtype=dtype)
    r = np.random.default_rng(3)
    assert_allclose(x[0], unit(r.standard_normal((3, 2)), 0), rtol=tol(dtype, 4))
    assert_allclose(x[1], r.standard_normal(2), rtol=tol(dtype, 4))
    assert all(a.dtype == dtype for a in x)
    u = M.random_tangent(x, rng=4)
    again = M.random_tangent(x, rng=np.random.default_rng(4))
    for a, b in zip(u, again):  # one generator, drawn factor after factor
        np.testing.assert_array_equal(a, b)
    r = np.random.default_rng(4)
    np.testing.assert_array_equal(u[0], Oblique(3, 2).random_tangent(x[0], r) * dtype(1 / np.sqrt(2)))
    np.testing.assert_array_equal(u[1], Euclidean(2).random_tangent(x[1], r) * dtype(1 / np.sqrt(2)))
    # each factor's unit tangent scaled by 1/sqrt(2): a unit tangent of the product
    for a in u:
        assert a.dtype == dtype
        assert np.linalg.norm(a.astype(np.float64)) == pytest.approx(1 / np.sqrt(2), rel=tol(dtype, 8))
    assert abs(float(np.sum(x[0].astype(np.float64) * u[0]))) < tol(dtype, 8)


# --- the base class: hashing, copies of the unchecked view ------------------------------


def test_hash_follows_the_class_and_the_options():
    # equal manifolds hash alike; these unequal ones differ (a Sphere(3, 4) and an
    # Oblique over both axes have the same key, not the same class)
    assert hash(Sphere(3, 4)) == hash(Sphere(3, 4))
    distinct = [Sphere(3, 4), Oblique(shape=(3, 4), axis=(0, 1)), Sphere(4), Euclidean(4),
                Sphere(3, 4, retraction="projection")]
    assert len({hash(m) for m in distinct}) == len(distinct)
    assert len(set(distinct)) == len(distinct)


def test_a_copy_of_the_unchecked_view_is_checked_also_after_pickling():
    M = Sphere(3, 4)
    x = M.random_point(rng=0)
    assert isinstance(M.unchecked.dist(2 * x, x), float)  # the view checks nothing
    for other in (copy.copy(M.unchecked), pickle.loads(pickle.dumps(copy.copy(M.unchecked)))):
        assert other == M
        with pytest.raises(ValueError, match=r"^dist: x is off Sphere"):
            other.dist(2 * x, x)
    view = pickle.loads(pickle.dumps(M.unchecked))  # the view itself stays a view
    assert isinstance(view.dist(2 * x, x), float)


def test_oblique_parallel_transport_over_short_and_zero_moves():
    # Per column, the transport along the minimizing geodesic is
    # v - <y, v> / (1 + <x, y>) (x + y): written in long double from the float64 inputs.
    # Moves of 1e-4 rad: cos - 1 computed as such would lose 8 digits of the correction.
    M = Oblique(3, 6, transport="parallel")
    t = np.array([1e-4, 3e-5, 2e-4, 0.0, 1e-4, 0.0])
    x = np.zeros((3, 6))
    x[0] = 1.0
    y = np.stack([np.cos(t), np.sin(t), np.zeros(6)])
    v = np.array([[0.0] * 6, [1.0, -2.0, 0.5, 1.0, 0.0, 3.0], [0.5, 1.0, -1.0, 2.0, 1.0, 0.0]])
    got = M.transp(x, y, v)
    X, Y, V = (a.astype(np.longdouble) for a in (x, y, v))
    expected = V - np.sum(Y * V, axis=0) / (1 + np.sum(X * Y, axis=0)) * (X + Y)
    assert_allclose(got, expected.astype(np.float64), rtol=0, atol=8 * eps(np.float64))
    # where y = x exactly the vector comes back bit for bit
    np.testing.assert_array_equal(got[:, t == 0], v[:, t == 0])


def test_project_point_refuses_a_zero_factor_naming_it():
    with pytest.raises(ValueError, match=r"^project_point: x has 1 of 2 factor\(s\) of norm 0, "
                                         r"which have no nearest point on the sphere"):
        Oblique(3, 2).project_point(np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 0.0]]))


def test_sinc_of_a_python_float_on_the_series_branch():
    # |t| < 1e-3 takes 1 - t^2/6 (1 - t^2/20): within an ulp of sin(t)/t (mpmath)
    for t in (9.99e-4, -7e-4, 5e-4, 1e-4, 1e-8, 0.0, 1e-3, 0.5):
        got = _sinc(t)
        assert isinstance(got, float)
        ref = mpmath.sin(mpmath.mpf(t)) / mpmath.mpf(t) if t else mpmath.mpf(1)
        assert abs(got - float(ref)) <= eps(np.float64), (t, got, float(ref))
