"""The public methods' input checks in one pass: the sum of squares decides, the slow path explains.

A point's finiteness and norm come from one pass (its per-factor sums of
squares), a vector's finiteness from one sum of squares; only a sum that is
NaN or Inf sends the array through the slow path, which either counts the
non-finite entries for the message or finds that the squares overflowed
(huge but finite entries, which the policy accepts for vectors). The
references here are plain NumPy (``np.isfinite``, ``np.linalg.norm``).
"""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere


def _point(manifold, dtype):
    return manifold.random_point(rng=0, dtype=dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("manifold", [Sphere(4, 3), Oblique(4, 3), Euclidean(4, 3)],
                         ids=repr)
@pytest.mark.parametrize("layout", ["contiguous", "fortran", "strided"])
def test_nonfinite_entries_are_counted_in_points_and_vectors(manifold, dtype, layout):
    x = _point(manifold, dtype)
    u = manifold.random_tangent(x, rng=1)

    def laid_out(a):
        if layout == "fortran":
            return np.asfortranarray(a)
        if layout == "strided":  # a view with gaps: no flat view of it exists
            wide = np.zeros((a.shape[0], 2 * a.shape[1]), dtype=a.dtype)
            wide[:, ::2] = a
            return wide[:, ::2]
        return a

    for which in ("x", "u"):
        bad = (x if which == "x" else u).copy()
        bad[0, 0], bad[1, 2], bad[3, 1] = np.nan, np.inf, -np.inf
        bad = laid_out(bad)
        assert int(np.size(bad) - np.count_nonzero(np.isfinite(bad))) == 3
        args = (bad, laid_out(u)) if which == "x" else (laid_out(x), bad)
        with pytest.raises(ValueError, match=rf"proj: {which} has 3 non-finite entries"):
            manifold.proj(*args)
    # The same arrays without the bad entries pass.
    np.testing.assert_allclose(manifold.proj(laid_out(x), laid_out(u)), manifold.proj(x, u))


@pytest.mark.parametrize("dtype, huge", [(np.float64, 1e200), (np.float32, 1e25)])
def test_vectors_whose_squares_overflow_are_finite_and_accepted(dtype, huge):
    # The sum of squares of u overflows (1e400 in float64; float32 BLAS accumulates
    # in float32, which overflows at 3.4e38): the slow path finds every entry finite.
    M = Oblique(4, 3)
    x = _point(M, dtype)
    u = (M.random_tangent(x, rng=1) * dtype(huge)).astype(dtype)
    assert np.all(np.isfinite(u))
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.dot(u.ravel(), u.ravel()))
    # The projection of a tangent vector is itself (to rounding of its size).
    np.testing.assert_allclose(M.proj(x, u), u, rtol=0,
                               atol=100 * np.finfo(dtype).eps * np.max(np.abs(u)))
    # A Euclidean point may be that large too.
    big = np.full((2, 2), dtype(huge), dtype=dtype)
    assert Euclidean(2, 2).check_point(big) is big


@pytest.mark.parametrize("manifold", [Sphere(3), Oblique(3, 2)], ids=repr)
def test_points_whose_squares_overflow_are_off_the_sphere_not_nonfinite(manifold):
    x = _point(manifold, np.float64)
    huge = x.copy()
    huge.flat[0] = 1e200  # finite, its square is not
    columns = huge.reshape(huge.shape[0], -1).T if huge.ndim > 1 else [huge]
    worst = max(abs(math.hypot(*column) - 1.0) for column in columns)  # hypot: no overflow
    assert worst == pytest.approx(1e200, rel=1e-12)
    with pytest.raises(ValueError, match=r"check_point: point is off .* by up to 1e\+200"):
        manifold.check_point(huge)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("manifold", [Sphere(5, 2), Oblique(5, 4)], ids=repr)
def test_the_norm_check_agrees_with_numpy_norms(manifold, dtype):
    # Scale each factor by 1 + delta around the tolerance: accepted exactly when
    # max | ||x_k|| - 1 | <= atol, with the norms from np.linalg.norm.
    atol = 1e-4
    x = _point(manifold, dtype)
    rng = np.random.default_rng(0)
    for delta in (0.5 * atol, 2 * atol, -0.5 * atol, -2 * atol, 0.0):
        if isinstance(manifold, Sphere):
            y = (x * (1 + delta)).astype(dtype)
            err = abs(np.linalg.norm(y.astype(np.float64)) - 1.0)
        else:
            scales = 1 + delta * rng.random(x.shape[1])
            y = (x * scales).astype(dtype)
            err = np.max(np.abs(np.linalg.norm(y.astype(np.float64), axis=0) - 1.0))
        if err <= atol:
            assert manifold.check_point(y, atol=atol) is y
        else:
            with pytest.raises(ValueError, match="norm off 1"):
                manifold.check_point(y, atol=atol)


def test_product_factors_are_checked_each_in_one_pass():
    M = Product([Sphere(3), Euclidean(2)])
    x = M.random_point(rng=0)
    bad = (x[0], np.array([np.nan, 1.0]))
    with pytest.raises(ValueError, match="has 1 non-finite entries"):
        M.check_point(bad)
    with pytest.raises(ValueError, match="norm off 1"):
        M.check_point((2 * x[0], x[1]))
