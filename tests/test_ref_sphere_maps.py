"""Edge cases of the sphere maps against independent references.

Each test pins one corner of ``spherenet/manifolds/sphere.py`` that the
general tests of ``test_ref_manifolds.py`` do not reach: points a few
hundred ulps off the sphere (accepted by the default tolerance of 1000 eps,
and read through their norm), separations whose squared norm underflows,
exact boundaries of the tolerances of ``check_point``/``check_tangent``,
float32 data worked in float64, and the paths that only products of several
spheres or strided arrays take. The references are plain NumPy in float64
or long double, from the textbook formulas, or exact values of inputs built
from powers of two.
"""

import warnings

import numpy as np
import pytest

from conftest import eps, tol
from spherenet import Oblique, Sphere

LD = np.longdouble


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


def assert_allclose(actual, expected, rtol=0.0, atol=0.0):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


def strided(a):
    """A copy of ``a`` as a view that is neither C- nor F-contiguous (no compiled kernel)."""
    big = np.zeros(a.shape + (2,), dtype=a.dtype)
    big[..., 0] = a
    return big[..., 0]


def unit_columns(z):
    z = np.asarray(z, np.float64)
    return z / np.sqrt(np.sum(z * z, axis=0, keepdims=True))


def tangent_columns(x, z):
    """The tangent part of every column of z at the unit columns of x (projected twice)."""
    for _ in range(2):
        z = z - np.sum(x * z, axis=0, keepdims=True) * x
    return z


def parallel_reference(x, y, v):
    """Parallel transport of v from x to y / ||y|| along the geodesic, column by column.

    In long double, from the textbook formula P(v) = v + <e, v> ((cos t - 1) e - sin t x)
    with y / ||y|| = cos t x + sin t e.
    """
    x, y, v = (np.asarray(a, LD) for a in (x, y, v))
    y = y / np.sqrt(np.sum(y * y, axis=0, keepdims=True))
    c = np.sum(x * y, axis=0, keepdims=True)
    w = y - c * x
    s = np.sqrt(np.sum(w * w, axis=0, keepdims=True))
    e = w / s
    t = np.arctan2(s, c)
    k = np.sum(e * v, axis=0, keepdims=True)
    return v + k * ((np.cos(t) - 1) * e - np.sin(t) * x)


# --- parallel transport ---------------------------------------------------------------


def test_parallel_transport_reads_y_through_its_norm(rng):
    # y a few hundred ulps off the sphere (within the default tolerance of 1000 eps): the
    # transport is the one to y / ||y||, whose sine and cosine are normalized together.
    angles = np.array([0.3, 1.2, 2.6])
    x = unit_columns(rng.standard_normal((5, 3)))
    e = unit_columns(tangent_columns(x, rng.standard_normal((5, 3))))
    y = (np.cos(angles) * x + np.sin(angles) * e) * (1.0 + 400 * eps(np.float64))
    v = tangent_columns(x, rng.standard_normal((5, 3)))
    expected = parallel_reference(x, y, v).astype(np.float64)
    got = Oblique(5, 3, transport="parallel").transp(x, y, v)  # several factors: array coefficients
    assert_allclose(got, expected, atol=tol(np.float64, 16) * np.max(np.abs(v)))
    for j in range(3):  # one factor: Python-float coefficients
        got = Sphere(5, transport="parallel").transp(x[:, j], y[:, j], v[:, j])
        assert_allclose(got, expected[:, j], atol=tol(np.float64, 16) * np.max(np.abs(v)))


@pytest.mark.parametrize("manifold", [Sphere(3, transport="parallel"), Oblique(3, 2, transport="parallel")],
                         ids=["Sphere", "Oblique"])
def test_parallel_transport_to_the_same_point_scaled_by_a_power_of_two_is_the_identity(manifold):
    # y = (1 + 2^-45) x exactly: y - x is exactly along x, so there is no direction to
    # turn v in, and the transport to y / ||y|| = x is v itself, bit for bit.
    x = np.zeros(manifold.shape)
    x[0] = 1.0
    y = x * (1.0 + 2.0**-45)
    v = np.zeros(manifold.shape)
    v[1] = 0.75
    v[2] = -0.5
    np.testing.assert_array_equal(manifold.transp(x, y, v), v)
    np.testing.assert_array_equal(manifold.transp(x, -y, v), v)  # the antipode, exactly radial as well


def test_parallel_transport_of_an_underflowing_step_next_to_a_long_one():
    # Column 0 moves by 1e-170 rad (||y - x||^2 underflows to 0), column 1 by pi/2. The
    # tiny separation is rescaled per factor, not by the largest one of the product:
    # the transport of e2 along e2 is cos(t) e2 - sin(t) e1, whose e1 entry is -1e-170.
    x = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    y = np.array([[1.0, 0.0], [1e-170, 1.0], [0.0, 0.0]])
    v = np.array([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    expected = np.array([[-1e-170, -1.0], [1.0, 0.0], [0.0, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning either (e.g. NumPy's on uninitialized output)
        got = Oblique(3, 2, transport="parallel").transp(x, y, v)
    assert_allclose(got, expected, rtol=tol(np.float64, 4))


def test_parallel_transport_of_float32_data_is_worked_in_float64_and_rounded_once(rng):
    # The float32 result is the float64 transport of the same values, rounded once: bit
    # for bit, on both paths (several factors: array coefficients; one: Python floats).
    angles = np.array([0.4, 1.9, 3.0, 2.2])
    x = unit_columns(rng.standard_normal((6, 4)))
    e = unit_columns(tangent_columns(x, rng.standard_normal((6, 4))))
    y = np.cos(angles) * x + np.sin(angles) * e
    v = tangent_columns(x, rng.standard_normal((6, 4)))
    x32, y32, v32 = (a.astype(np.float32) for a in (x, y, v))
    for M, args in ((Oblique(6, 4, transport="parallel"), (x32, y32, v32)),
                    (Sphere(6, transport="parallel"), (x32[:, 0], y32[:, 0], v32[:, 0]))):
        got = M.transp(*args)
        assert got.dtype == np.float32
        # (the raw map: float32 values are off the sphere by the float64 tolerance)
        wide = M.unchecked.transp(*(a.astype(np.float64) for a in args))
        np.testing.assert_array_equal(got, wide.astype(np.float32))


# --- exp and gradient steps from a point off the sphere ----------------------------------


def test_oblique_exp_reads_x_through_its_norm_and_u_through_its_tangent_part(rng):
    # Strided arrays of several factors take the NumPy formula (no compiled kernel, no
    # one-factor shortcut): x 1e-9 off the sphere is read as x / ||x||, and u through
    # u - <x, u>/<x, x> x, here with a large normal part.
    x = unit_columns(rng.standard_normal((5, 2)))
    v = 0.7 * unit_columns(tangent_columns(x, rng.standard_normal((5, 2))))
    xs = x * np.array([1.0 + 1e-9, 1.0 - 2e-9])
    u = v + 3.0 * xs
    t = np.sqrt(np.sum(v * v, axis=0))
    expected = np.cos(t) * x + np.sin(t) / t * v
    got = Oblique(5, 2).unchecked.exp(strided(xs), strided(u))  # 1e-9 off: the raw map
    assert_allclose(got, expected, atol=tol(np.float64, 8))


def test_exp_of_a_long_step_from_a_point_off_the_sphere(rng):
    # A float64 step longer than 2 pi is worked in long double: from x 200 ulps off the
    # sphere, the new point is cos(t) x/||x|| + sin(t) u/||u||, on the sphere to rounding.
    x = unit_columns(rng.standard_normal((4, 1)))[:, 0]
    u = 9.0 * unit_columns(tangent_columns(x[:, None], rng.standard_normal((4, 1))))[:, 0]
    xs = x * (1.0 + 200 * eps(np.float64))
    xl, ul = x.astype(LD), u.astype(LD)
    t = np.sqrt(np.sum(ul * ul))
    expected = (np.cos(t) * xl + np.sin(t) / t * ul).astype(np.float64)
    got = Sphere(4).exp(xs, u)
    assert_allclose(got, expected, atol=tol(np.float64, 8))


def test_gradient_step_of_one_small_factor_from_a_drifted_point(rng):
    # One small float64 factor (the Python-float path): a mostly normal gradient from a
    # point 1e-3 off the sphere is projected twice with <x, r>/<x, x>, and the new point
    # has unit norm to rounding.
    x = unit_columns(rng.standard_normal((6, 1)))[:, 0] * 1.001
    xn = x / np.linalg.norm(x)
    g = 1e6 * x + unit_columns(tangent_columns(xn[:, None], rng.standard_normal((6, 1))))[:, 0]
    for retraction in ("exp", "projection"):
        got = Sphere(6, retraction=retraction).unchecked.gradient_step(x, g, 0.4)
        assert abs(np.linalg.norm(got) - 1.0) < tol(np.float64, 4)


# --- norm ---------------------------------------------------------------------------------


def test_norm_of_float32_vectors_is_summed_in_float64(rng):
    # The norm of float32 data is a float64 sum of the (exact) float64 squares: a float32
    # accumulation would be off by ~1e-8 of the norm over a few thousand entries.
    M = Sphere(3000)
    x = M.random_point(rng, dtype=np.float32)
    u = M.random_tangent(x, rng) * np.float32(40.0)
    expected = np.sqrt(np.sum(u.astype(np.float64) ** 2))
    assert M.norm(x, u) == pytest.approx(expected, rel=tol(np.float64, 8))


# --- validation boundaries ------------------------------------------------------------


def test_check_point_checks_every_factor_of_a_product():
    M = Oblique(3, 2)
    good = np.array([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    M.check_point(good)
    for j in range(2):
        bad = good.copy()
        bad[0, j] = 1.01
        with pytest.raises(ValueError, match="1 of 2 factor"):
            M.check_point(bad)


def test_check_point_tolerance_is_inclusive_and_counts_the_factors_beyond_it():
    # Columns of norm 1, 1 + 2^-20 and 1 + 2^-10 exactly (their squares and square roots are
    # exact in float64): the defects are 0, 2^-20 and 2^-10.
    x = np.zeros((3, 3))
    x[0] = [1.0, 1.0 + 2.0**-20, 1.0 + 2.0**-10]
    M = Oblique(3, 3)
    M.check_point(x, atol=2.0**-10)  # a defect equal to atol is accepted
    with pytest.raises(ValueError, match=r"1 of 3 factor\(s\) have norm off 1 by up to 0\.000977") as info:
        M.check_point(x, atol=2.0**-20)
    assert str(info.value).endswith("M.project_point(point) gives the nearest point")
    with pytest.raises(ValueError, match=r"2 of 3 factor\(s\)"):
        M.check_point(x, atol=2.0**-21)


def test_check_tangent_tolerance_is_inclusive_and_scales_with_the_vector_beyond_unit_norm():
    # x = e1: the normal component of u is its first entry, exactly.
    M = Sphere(3)
    x = np.array([1.0, 0.0, 0.0])
    atol = 2.0**-30
    M.check_tangent(x, np.array([atol, 1.0, 0.0]), atol=atol)  # equal to the tolerance: accepted
    M.check_tangent(x, np.array([3 * atol, 4.0, 0.0]), atol=atol)  # 3 atol <= atol * ||u|| = 4 atol
    for u in (np.array([1.5 * atol, 0.5, 0.0]), np.array([1.5 * atol, 1.0, 0.0])):
        with pytest.raises(ValueError, match="not tangent"):  # ||u|| <= 1: the tolerance is atol itself
            M.check_tangent(x, u, atol=atol)
