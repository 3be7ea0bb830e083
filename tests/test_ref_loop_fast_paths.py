"""The shortcuts of the solvers' per-iteration path give the numbers of the long way:
the gradient norm handed by steepest descent to its line search, the norm without a
floating-point error context, the one-reduction finiteness test, the difference of
``lincomb``. References are plain NumPy, not spherenet's helpers."""

import math
import warnings

import numpy as np
import pytest

from spherenet import Oblique, Sphere, minimize
from spherenet._tangent import all_finite, lincomb
from spherenet.optim.line_search import AdaptiveLineSearch, BacktrackingLineSearch

EPS = np.finfo(np.float64).eps


@pytest.mark.parametrize("manifold", [Sphere(100), Oblique(10, 20)], ids=repr)
def test_norm_is_the_square_root_of_the_plain_sum_of_squares_bit_for_bit(manifold):
    u = np.random.default_rng(1).standard_normal(manifold.shape)
    x = manifold.random_point(rng=2)
    assert manifold.unchecked.norm(x, u) == math.sqrt(np.dot(u.ravel(), u.ravel()))


@pytest.mark.parametrize("manifold", [Sphere(100), Oblique(10, 20)], ids=repr)
@pytest.mark.parametrize("scale", [1e160, 1e200])
def test_norm_of_a_huge_float64_vector_is_finite_and_silent(manifold, scale):
    # The sum of squares overflows: the rescaled path answers, and no overflow
    # warning escapes (the sum is taken without numpy's error check).
    u = np.random.default_rng(3).standard_normal(manifold.shape)
    x = manifold.random_point(rng=4)
    expected = scale * math.sqrt(float(np.sum(u * u)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = manifold.unchecked.norm(x, scale * u)
    assert got == pytest.approx(expected, rel=8 * EPS)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_finite_finds_every_nan_and_inf(dtype):
    base = np.ones((3, 4), dtype=dtype)
    assert all_finite(base) and all_finite(base[:, ::2]) and all_finite(base[:0])
    assert all_finite(np.full(5, np.finfo(dtype).max, dtype=dtype))  # sum would overflow
    for bad in (np.nan, np.inf, -np.inf):
        for index in ((0, 0), (2, 3), (1, 2)):
            u = base.copy()
            u[index] = bad
            assert not all_finite(u)
            assert not all_finite(u.T)
            assert not all_finite((base, u))
    assert all_finite((base, base.T))


@pytest.mark.parametrize("dtypes", [(np.float64, np.float64), (np.float32, np.float32),
                                    (np.float32, np.float64)])
def test_lincomb_difference_is_one_times_u_minus_one_times_v(dtypes):
    rng = np.random.default_rng(5)
    u = rng.standard_normal(7).astype(dtypes[0])
    v = rng.standard_normal(7).astype(dtypes[1])
    got = lincomb(1.0, u, -1.0, v)
    expected = dtypes[0](1.0) * u + dtypes[1](-1.0) * v
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert got is not u and got is not v


def _own_norm(base):
    """A subclass of the line search ``base`` whose search computes the norm of d
    itself (an override of ``search``: steepest descent then hands it nothing)."""

    def search(self, problem, x, d, f0, df0):
        self.norms.append(problem.geometry.norm(x, d))
        return base.search(self, problem, x, d, f0, df0)

    search_class = type("OwnNorm", (base,), {"search": search})
    line_search = search_class()
    line_search.norms = []
    return line_search


@pytest.mark.parametrize("manifold", [Sphere(30), Oblique(5, 8)], ids=repr)
@pytest.mark.parametrize("make", [BacktrackingLineSearch, AdaptiveLineSearch])
def test_sd_hands_the_gradient_norm_to_its_line_search_with_the_same_iterates(manifold, make):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((manifold.shape[0],) * 2)
    a = a + a.T

    def cost(x):
        return float(np.sum(x * (a @ x)))

    def grad(x):
        return 2.0 * (a @ x)

    x0 = manifold.random_point(rng=7)
    run = dict(x0=x0, method="sd", grad=grad, maxiter=25, gtol=0.0, xtol=0.0)
    fast = minimize(cost, manifold, line_search=make(), **run)
    slow_search = _own_norm(make)
    slow = minimize(cost, manifold, line_search=slow_search, **run)
    assert fast.nit == slow.nit == 25 and len(slow_search.norms) == 25
    np.testing.assert_array_equal(fast.x, slow.x)
    for name in ("cost", "grad_norm", "step_size"):
        np.testing.assert_array_equal(fast.history[name], slow.history[name])
    # The norm handed over is the gradient norm of the history, and the norm of d.
    np.testing.assert_array_equal(slow_search.norms, fast.history["grad_norm"][:-1])
