"""The numba kernel of the fused gradient step against the NumPy path and the methods."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("numba")

from spherenet import Oblique, Sphere  # noqa: E402
from spherenet.manifolds import _kernels  # noqa: E402

MANIFOLDS = {
    "Sphere(7)": lambda r: Sphere(7, retraction=r),
    "Sphere(5,6)": lambda r: Sphere(5, 6, retraction=r),
    "Oblique(5,6,axis=0)": lambda r: Oblique(5, 6, axis=0, retraction=r),
    "Oblique(5,6,axis=1)": lambda r: Oblique(5, 6, axis=1, retraction=r),
    "Oblique((2,3,4),axis=(0,1))": lambda r: Oblique(shape=(2, 3, 4), axis=(0, 1), retraction=r),
    # 7 rows: the four-row sweep and its remainder; 5000 columns: several
    # blocks of columns, the last one partial.
    "Oblique(7,5000)": lambda r: Oblique(7, 5000, retraction=r),
}
RETRACTIONS = ["exp", "projection"]
DTYPES = [np.float64, np.float32]
LR = 0.3


def eps(dtype):
    return float(np.finfo(dtype).eps)


def problem(M, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = M.random_point(rng, dtype=dtype)
    g = rng.standard_normal(M.shape).astype(dtype)
    return x, g


def kernel_step(M, x, g, lr, out=None):
    """The kernel's step; fails the test if the kernel declined the arrays."""
    out = np.empty_like(x) if out is None else out
    assert _kernels.gradient_step(M._red, M.retraction == "exp", x, g, lr, out)
    return out


def numpy_step(M, x, g, lr, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(_kernels, "gradient_step", lambda *args: False)
        return M.gradient_step(x, g, lr)


def factor_norms(M, a):
    return np.sqrt(M._red.dot(a, a))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_kernel_matches_numpy_path_and_methods(name, retraction, dtype, monkeypatch):
    M = MANIFOLDS[name](retraction)
    x, g = problem(M, dtype)
    got = kernel_step(M, x, g, LR)
    assert got.dtype == dtype
    # Errors of the float32 NumPy path scale with lr |g| (it forms g - c x in float32).
    tol = 30 * eps(dtype) * max(1.0, LR * float(np.max(np.abs(g))))
    np.testing.assert_allclose(got, numpy_step(M, x, g, LR, monkeypatch), rtol=0, atol=tol)
    by_methods = M.retr(x, -LR * M.egrad2rgrad(x, g))
    np.testing.assert_allclose(got, by_methods, rtol=0, atol=tol)
    np.testing.assert_allclose(factor_norms(M, got), 1.0, rtol=0, atol=4 * eps(dtype))
    # The public method takes the kernel too, with the same result; one small
    # float64 factor takes the Python-float path instead (same formulas).
    if M._small(x, g):
        np.testing.assert_allclose(M.gradient_step(x, g, LR), got, rtol=0, atol=4 * eps(dtype))
    else:
        np.testing.assert_array_equal(M.gradient_step(x, g, LR), got)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_in_place_equals_out_of_place(name, dtype):
    for retraction in RETRACTIONS:
        M = MANIFOLDS[name](retraction)
        x, g = problem(M, dtype, seed=1)
        expected = kernel_step(M, x, g, LR)
        y = x.copy()
        assert M.gradient_step(y, g, LR, out=y) is y
        np.testing.assert_array_equal(y, M.gradient_step(x, g, LR))
        y = x.copy()
        np.testing.assert_array_equal(kernel_step(M, y, g, LR, out=y), expected)
        # out may also be egrad itself.
        h = g.copy()
        np.testing.assert_array_equal(kernel_step(M, x, h, LR, out=h), expected)


def reference_step(M, x, g, lr):
    """The step in long double from the (rounded) data: an independent reference."""
    X, G = x.astype(np.longdouble), g.astype(np.longdouble)
    axes = M._red.axes
    xx = np.sum(X * X, axis=axes, keepdims=True)
    c = np.sum(X * G, axis=axes, keepdims=True) / xx
    R = G - c * X
    rr = np.sum(R * R, axis=axes, keepdims=True)
    if M.retraction == "exp":
        t = lr * np.sqrt(rr)
        safe = np.where(t > 0, t, 1)
        a, b = np.cos(t) / np.sqrt(xx), -lr * np.where(t > 0, np.sin(safe) / safe, 1)
    else:
        a = 1 / np.sqrt(xx + lr * lr * rr)
        b = -lr * a
    return a * X + b * R, R


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="needs an extended long double")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize(
    "name", ["Sphere(5,6)", "Oblique(5,6,axis=0)", "Oblique(5,6,axis=1)", "Oblique(7,5000)"]
)
def test_gradient_nearly_normal(name, retraction, dtype):
    # g = 100 x + 1e-9 u: the tangent part is 1e-11 of g, and gg - <x,g>^2/xx
    # cancels completely; the kernel must take the exact pass.
    M = MANIFOLDS[name](retraction)
    x, _ = problem(M, dtype, seed=2)
    # unchecked: x cast from float32 is off unit norm by ~1e-8 in float64.
    u = M.unchecked.random_tangent(x.astype(np.float64), rng=3)
    g = (100.0 * x + 1e-9 * u).astype(dtype)
    lr = 0.1
    got = kernel_step(M, x, g, lr)
    ref, tangent = reference_step(M, x, g, lr)
    # The move away from x is ~lr |tangent|; it must be right to the rounding
    # of the output (a few eps of |x|), far below the move itself in float64.
    move = got.astype(np.longdouble) - x
    ref_move = ref - x
    err = np.sqrt(np.sum((move - ref_move) ** 2))
    assert err <= 10 * eps(dtype) * np.sqrt(M.n_factors), (err, np.sqrt(np.sum(ref_move**2)))
    # lr |g| = 10 here: without the fused g - c x and the refined c (kept as
    # c + dc) the norms would be off by ~10 ulps.
    np.testing.assert_allclose(factor_norms(M, got), 1.0, rtol=0, atol=4 * eps(dtype))
    # And the Riemannian gradient the step used is the exact tangent part:
    # the displacement, up to the radial rescaling, is along it.
    if dtype == np.float64:
        along = np.sum(ref_move * tangent) / np.sqrt(np.sum(tangent**2) * np.sum(ref_move**2))
        assert along < -0.99


@pytest.mark.skipif(np.finfo(np.longdouble).eps > 1e-18, reason="needs an extended long double")
@pytest.mark.parametrize("axis", [0, 1])
def test_only_some_factors_nearly_normal(axis):
    # The exact pass must fix the flagged factors and leave the others alone.
    shape = (7, 3000) if axis == 0 else (3000, 7)
    M = Oblique(*shape, axis=axis, retraction="projection")
    x, g = problem(M, np.float64, seed=10)
    u = M.random_tangent(x, rng=11) * np.sqrt(M.n_factors)
    bad = [5, 1500, 2999]
    index = (slice(None), bad) if axis == 0 else (bad, slice(None))
    g[index] = 100.0 * x[index] + 1e-9 * u[index]
    got = kernel_step(M, x, g, 0.1)
    ref, _ = reference_step(M, x, g, 0.1)
    err = np.sqrt(np.sum((got - ref) ** 2, axis=axis))
    assert np.max(err) <= 10 * eps(np.float64), np.max(err)
    np.testing.assert_allclose(factor_norms(M, got), 1.0, rtol=0, atol=4 * eps(np.float64))


def test_exactly_normal_gradient_and_zero_steps():
    for M in (Sphere(5, 6), Oblique(5, 6), Oblique(5, 6, axis=1, retraction="projection")):
        for dtype in DTYPES:
            x, g = problem(M, dtype, seed=4)
            atol = 2 * eps(dtype)
            np.testing.assert_allclose(kernel_step(M, x, 3.0 * x, 0.5), x, rtol=0, atol=atol)
            zero = np.zeros_like(x)
            np.testing.assert_allclose(kernel_step(M, x, zero, 0.5), x, rtol=0, atol=atol)
            np.testing.assert_allclose(kernel_step(M, x, g, 0.0), x, rtol=0, atol=atol)
            # egrad, x and out all one array
            y = x.copy()
            np.testing.assert_allclose(kernel_step(M, y, y, 0.5, out=y), x, rtol=0, atol=atol)


def test_drifted_point_is_pulled_back():
    # x off the manifold by rounding drift: the step reads it radially projected.
    M = Oblique(6, 5)
    x, g = problem(M, np.float64, seed=5)
    x *= 1 + 1e-9
    np.testing.assert_allclose(factor_norms(M, kernel_step(M, x, g, LR)), 1.0, rtol=0, atol=4e-16)


def test_fortran_order_is_supported():
    M = Oblique(6, 5, axis=0)
    x, g = problem(M, np.float64, seed=6)
    xf, gf = np.asfortranarray(x), np.asfortranarray(g)
    out = np.empty_like(xf)  # Fortran order too
    expected = kernel_step(M, x, g, LR)
    np.testing.assert_allclose(kernel_step(M, xf, gf, LR, out=out), expected, atol=1e-15)


@pytest.mark.parametrize(
    "case", ["middle axis", "strided", "mixed dtypes", "mixed orders", "partial overlap", "list"]
)
def test_unsupported_layouts_fall_back(case, monkeypatch):
    M = Oblique(5, 6)
    x, g = problem(M, np.float64, seed=7)
    out = None
    if case == "middle axis":
        M = Oblique(shape=(2, 3, 4), axis=1)
        x, g = problem(M, np.float64, seed=7)
    elif case == "strided":
        x = np.repeat(x, 2, axis=1)[:, ::2]
    elif case == "mixed dtypes":
        x = x.astype(np.float32)
    elif case == "mixed orders":
        g = np.asfortranarray(g)
    elif case == "partial overlap":
        buf = np.concatenate([x.ravel(), [0.0]])
        x, out = buf[1:].reshape(5, 6), buf[:-1].reshape(5, 6)
        x[...] = M.random_point(rng=7)
    elif case == "list":
        g = g.tolist()
    target = np.empty(M.shape, x.dtype) if out is None else out
    assert not _kernels.gradient_step(M._red, True, x, g, LR, target)
    expected = M.retr(x, -LR * M.egrad2rgrad(x, np.asarray(g, x.dtype)))
    if case == "mixed dtypes":  # refused at the public entry, computed by the raw step
        with pytest.raises(TypeError, match="egrad has dtype float64 but x has float32"):
            M.gradient_step(x, np.asarray(g), LR)
    got = M.unchecked.gradient_step(x.copy() if out is not None else x, np.asarray(g), LR)
    assert got.dtype == x.dtype
    np.testing.assert_allclose(got, expected, atol=30 * eps(x.dtype))


def test_without_numba_everything_still_works(monkeypatch):
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    M = Oblique(5, 6)
    x, g = problem(M, np.float64, seed=8)
    assert not _kernels.gradient_step(M._red, True, x, g, LR, np.empty_like(x))
    assert not _kernels.available()
    expected = M.retr(x, -LR * M.egrad2rgrad(x, g))
    np.testing.assert_allclose(M.gradient_step(x, g, LR), expected, atol=1e-15)


def test_import_does_not_import_numba():
    code = "import sys, spherenet; assert 'numba' not in sys.modules, 'numba imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_negative_lr_gives_exp(name, dtype):
    # exp(x, u) reads u through its tangent part: it is the exp step with
    # g = u and lr = -1, which is how exp can use the kernel.
    M = MANIFOLDS[name]("exp")
    x, u = problem(M, dtype, seed=9)
    u *= dtype(0.7 / np.sqrt(M.n_factors))
    expected = M.exp(x, u)
    np.testing.assert_allclose(kernel_step(M, x, u, -1.0), expected, rtol=0, atol=10 * eps(dtype))


@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2048,)])
def test_small_float64_sphere_step_against_the_array_path(shape, retraction, monkeypatch):
    """One small float64 factor is stepped with Python floats (_step_small): the
    same formulas as the array NumPy path to 4 eps, in place or not, with x
    kept bit for bit by a zero step, and on a strided output."""
    from spherenet.manifolds import sphere as sphere_module

    M = Sphere(*shape, retraction=retraction)
    x, g = problem(M, np.float64, seed=3)
    assert M._small(x, g)
    small = M.gradient_step(x, g, LR)
    with monkeypatch.context() as patch:
        patch.setattr(sphere_module, "_SMALL", 0)
        patch.setattr(_kernels, "gradient_step", lambda *args: False)
        array_path = M.gradient_step(x, g, LR)
        exp_array = M.exp(x, -LR * M.proj(x, g))
    np.testing.assert_allclose(small, array_path, rtol=0, atol=4 * eps(np.float64))
    np.testing.assert_allclose(M.exp(x, -LR * M.proj(x, g)), exp_array, rtol=0,
                               atol=4 * eps(np.float64))
    assert abs(np.linalg.norm(small) - 1.0) <= 4 * eps(np.float64)
    # in place, into x or into g
    y = x.copy()
    assert M.gradient_step(y, g, LR, out=y) is y
    np.testing.assert_array_equal(y, small)
    h = g.copy()
    assert M.gradient_step(x, h, LR, out=h) is h
    np.testing.assert_array_equal(h, small)
    # a strided output
    wide = np.zeros(shape[:-1] + (2 * shape[-1],))
    view = wide[..., ::2]
    M.gradient_step(x, g, LR, out=view)
    np.testing.assert_array_equal(view, small)
    # a zero step keeps x bit for bit
    np.testing.assert_array_equal(M.gradient_step(x, np.zeros_like(x), LR), x)
    np.testing.assert_array_equal(M.retr(x, np.zeros_like(x)), x)
