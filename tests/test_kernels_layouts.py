"""The gradient-step kernel on every layout it accepts, against a long-double reference.

Each case names the layout the kernel must pick (``"lead"``: factors are
columns of the 2-D view, worked by blocks of columns; ``"trail"``: factors
are rows) and exercises an edge of it: one row, one column, fewer rows than
the four-row sweep, a block of columns that does not divide the width,
Fortran order (the transposed view), ``axis=1`` and tuple axes. The update
has two variants (with and without the refined coefficient dc of the exact
pass, see ``spherenet.manifolds._kernels``) and two copies (in place and out
of place); every case runs both copies, and the nearly normal cases mix
factors that take the exact pass with factors that do not, in several
blocks.

What is asserted is the kernels' documented accuracy: float32 results are
the correctly rounded exact step (each element worked in float64 and
rounded once), float64 results are within a few ulps of the factor's norm.
"""

import numpy as np
import pytest

pytest.importorskip("numba")

from spherenet import Oblique, Sphere  # noqa: E402
from spherenet.manifolds import _kernels  # noqa: E402

LD = np.longdouble
DTYPES = [np.float64, np.float32]
RETRACTIONS = ["exp", "projection"]
BLOCK = _kernels._BLOCK_COLS

pytestmark = pytest.mark.skipif(
    np.finfo(np.longdouble).eps > 1e-18, reason="the reference needs an extended long double"
)

# name: (builder(retraction), order, expected layout kind)
CASES = {
    "Oblique(1,9): one row, one-element factors": (
        lambda r: Oblique(1, 9, retraction=r), "C", "lead"),
    "Oblique(9,1): one column": (lambda r: Oblique(9, 1, retraction=r), "C", "trail"),
    "Oblique(3,B+6): rows < 4, partial block": (
        lambda r: Oblique(3, BLOCK + 6, retraction=r), "C", "lead"),
    "Oblique(6,2B+2): sweep + remainder, 3 blocks": (
        lambda r: Oblique(6, 2 * BLOCK + 2, retraction=r), "C", "lead"),
    "Oblique(1,7,axis=1): one row": (lambda r: Oblique(1, 7, axis=1, retraction=r), "C", "trail"),
    "Oblique(B+6,3,axis=1)": (lambda r: Oblique(BLOCK + 6, 3, axis=1, retraction=r), "C", "trail"),
    "Oblique(6,B+6) Fortran": (lambda r: Oblique(6, BLOCK + 6, retraction=r), "F", "trail"),
    "Oblique(B+6,6,axis=1) Fortran": (
        lambda r: Oblique(BLOCK + 6, 6, axis=1, retraction=r), "F", "lead"),
    "Oblique((3,5,4),axis=(0,1))": (
        lambda r: Oblique(shape=(3, 5, 4), axis=(0, 1), retraction=r), "C", "lead"),
    "Oblique((3,5,4),axis=(1,2))": (
        lambda r: Oblique(shape=(3, 5, 4), axis=(1, 2), retraction=r), "C", "trail"),
    "Oblique((3,5,4),axis=(0,1)) Fortran": (
        lambda r: Oblique(shape=(3, 5, 4), axis=(0, 1), retraction=r), "F", "trail"),
    "Oblique((3,5,4),axis=(1,2)) Fortran": (
        lambda r: Oblique(shape=(3, 5, 4), axis=(1, 2), retraction=r), "F", "lead"),
    "Sphere(1)": (lambda r: Sphere(1, retraction=r), "C", "lead"),
    "Sphere(3,B+1)": (lambda r: Sphere(3, BLOCK + 1, retraction=r), "C", "trail"),
}


def eps(dtype):
    return float(np.finfo(dtype).eps)


def build(name, retraction, dtype, seed, radial=3.0):
    """Manifold, point and gradient (with a radial part) in the case's memory order."""
    builder, order, kind = CASES[name]
    M = builder(retraction)
    rng = np.random.default_rng(seed)
    x = M.random_point(rng, dtype=dtype)
    g = (rng.standard_normal(M.shape) + radial * x).astype(dtype)
    x, g = np.asarray(x, order=order), np.asarray(g, order=order)
    assert _kernels._layout_of(M._red, x, g, x)[0] == kind
    return M, x, g


def reference(M, x, g, lr):
    """retr_x(-lr r), r = g - <x, g>/<x, x> x, read at x/||x||, in long double (plain NumPy)."""
    axes = M._red.axes
    X, G = x.astype(LD), g.astype(LD)

    def dot(a, b):
        return np.sum(a * b, axis=axes, keepdims=True)

    xx = dot(X, X)
    R = G - dot(X, G) / xx * X
    rr = dot(R, R)
    if M.retraction == "exp":
        t, nr = lr * np.sqrt(rr), np.sqrt(rr)
        return np.cos(t) * X / np.sqrt(xx) - np.sin(t) * R / np.where(nr > 0, nr, 1)
    V = X - lr * R
    return V / np.sqrt(dot(V, V))


def both_copies(M, x, g, lr):
    """The kernel's step out of place and in place (out=x), checked to be the same bits."""
    use_exp = M.retraction == "exp"
    out = np.empty_like(x)  # same memory order as x
    assert _kernels.gradient_step(M._red, use_exp, x, g, lr, out), "kernel declined"
    y = x.copy(order="A")
    assert _kernels.gradient_step(M._red, use_exp, y, g, lr, y), "kernel declined in place"
    np.testing.assert_array_equal(y, out)
    return out


def assert_accurate(got, ref, dtype, factor):
    err = np.abs(got.astype(LD) - ref)
    if dtype == np.float32:  # correctly rounded: half an ulp, plus a float64 slack for ties
        ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(LD)
        assert np.all(err <= 0.5 * ulp + 1e-14), float(np.max(err / ulp))
    else:
        assert float(np.max(err)) <= factor * eps(dtype), float(np.max(err)) / eps(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(CASES))
def test_every_layout_against_reference(name, retraction, dtype):
    M, x, g = build(name, retraction, dtype, seed=0)
    got = both_copies(M, x, g, 0.3)
    assert got.dtype == dtype and got.shape == x.shape
    assert_accurate(got, reference(M, x, g, 0.3), dtype, 4)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize(
    "name",
    [
        "Oblique(6,2B+2): sweep + remainder, 3 blocks",
        "Oblique(3,B+6): rows < 4, partial block",
        "Oblique(B+6,3,axis=1)",
        "Oblique(B+6,6,axis=1) Fortran",
    ],
)
def test_some_factors_nearly_normal(name, dtype):
    # g = 100 x + 1e-9 u on a few factors (in different blocks of columns):
    # they take the exact pass and the refined coefficient dc; the others,
    # in the same blocks and in a block without any, take the update without
    # dc. Each must be right to rounding (lr |g| = 10: a dc dropped or
    # applied to the wrong factors moves the result by ~10 ulps).
    M, x, g = build(name, "projection", dtype, seed=1)
    factor_axis = M._red.axes[0]
    n = x.shape[1 - factor_axis]
    bad = sorted({0, 5 % n, (BLOCK + 1) % n})
    u = M.unchecked.random_tangent(x.astype(np.float64), rng=2) * np.sqrt(M.n_factors)
    index = (slice(None), bad) if factor_axis == 0 else (bad, slice(None))
    g[index] = (100.0 * x[index].astype(np.float64) + 1e-9 * u[index]).astype(dtype)
    got = both_copies(M, x, g, 0.1)
    ref = reference(M, x, g, 0.1)
    # float64: the existing bound for nearly normal gradients (10 ulps of the norm).
    assert_accurate(got, ref, dtype, 10)
    norms = np.sqrt(np.sum(got.astype(np.float64) ** 2, axis=factor_axis))
    np.testing.assert_allclose(norms, 1.0, rtol=0, atol=4 * eps(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_zero_step_factors_copied_bit_for_bit_in_every_block(dtype):
    # Factors whose step is zero (g along x) are x's bits, also when x is a
    # few ulps off unit norm and the update of the block runs in place.
    M = Oblique(5, 2 * BLOCK + 3, retraction="exp")
    rng = np.random.default_rng(3)
    x = (M.random_point(rng, dtype=dtype).astype(np.float64) * (1 + 3e-7)).astype(dtype)
    g = rng.standard_normal(M.shape).astype(dtype)
    still = [1, BLOCK + 2, 2 * BLOCK + 2]
    g[:, still] = 2 * x[:, still]
    for out in (np.empty_like(x), None):
        y = x.copy()
        target = y if out is None else out
        assert _kernels.gradient_step(M._red, True, y, g, 0.3, target)
        np.testing.assert_array_equal(target[:, still], x[:, still])
        moving = np.setdiff1d(np.arange(M.shape[1]), still)
        assert np.all(np.any(target[:, moving] != x[:, moving], axis=0))
