"""The public fused step checks its input inside the compiled kernel.

``M.gradient_step`` hands the kernel the tolerance on the norms of x's
factors; the kernel tests the per-factor sums of squares of its first pass
itself and calls back to Python only when a factor is in doubt (a norm off
by more than the tolerance, a sum that is not finite). These tests pin:

* the boundary of that test (|sqrt(<x, x>) - 1| <= 1000 eps, per factor) and
  its errors, the same on the kernel and on the NumPy path;
* the call-back contract of ``_kernels.gradient_step(..., check, tol)``;
* the arrays the kernel refuses (checked from ``ndarray.flags`` bits and data
  pointers): nothing written, and the NumPy path gives the step.

References are plain NumPy (float64 sums with ``np.sum``) or the NumPy path of
the same step, bit for bit.
"""

import numpy as np
import pytest

from spherenet import Oblique, Sphere
from spherenet.manifolds import _kernels

DTYPES = [np.float64, np.float32]
LR = 0.3


def ids(dtype):
    return np.dtype(dtype).name


def tol_of(dtype):
    return 1000.0 * float(np.finfo(dtype).eps)  # the documented point_atol


MANIFOLDS = {
    "Sphere(37,70)": lambda: Sphere(37, 70),
    "Oblique(37,70)": lambda: Oblique(37, 70),  # "lead" layout: factors are columns
    "Oblique(37,70,axis=1)": lambda: Oblique(37, 70, axis=1),  # "trail": rows
}


@pytest.fixture(params=["kernel", "numpy"])
def path(request, monkeypatch):
    if request.param == "kernel":
        pytest.importorskip("numba")
        assert _kernels.available()
    else:
        monkeypatch.setitem(_kernels._STATE, "numba", False)
    return request.param


def problem(M, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = M.random_point(rng, dtype=dtype)
    g = (rng.standard_normal(M.shape) + 0.5 * x).astype(dtype)
    return x, g


def plain_sq(M, a):
    """Per-factor float64 sums of squares, flattened in C order of the kept axes."""
    a = a.astype(np.float64)
    return np.sum(a * a, axis=M._red.axes).ravel()


def scale_factor(M, x, k, scale):
    """x with factor k multiplied by ``scale`` (in float64, rounded once)."""
    y = x.astype(np.float64)
    if M.n_factors == 1:
        y *= scale
    elif M._red.axes == (0,):
        y[:, k] *= scale
    else:
        y[k] *= scale
    return y.astype(x.dtype)


# --- the tolerance of the fused test -----------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_norm_tolerance_boundary(name, dtype, path):
    # One factor's norm off 1 by 0.6 tol is accepted, by 1.6 tol refused, on both
    # paths. The norm of a random point is off by a few eps (<< 0.1 tol), so
    # the margins hold after rounding to float32. A test on <x, x> instead of
    # its square root (off by twice as much) or with another tolerance fails.
    M = MANIFOLDS[name]()
    x, g = problem(M, dtype)
    tol = tol_of(dtype)
    for k, (rel, accepted) in enumerate([(0.6, True), (1.6, False), (-0.6, True), (-1.6, False)]):
        y = scale_factor(M, x, 2 * k, 1.0 + rel * tol)
        worst = float(np.max(np.abs(np.sqrt(plain_sq(M, y)) - 1.0)))
        assert (worst <= tol) == accepted  # what the input policy says
        out = np.full(M.shape, 7, dtype=dtype)
        if accepted:
            got = M.gradient_step(y, g, LR, out=out)
            assert got is out
            np.testing.assert_array_equal(got, M.unchecked.gradient_step(y, g, LR))
        else:
            with pytest.raises(ValueError, match=r"gradient_step: x is off .* 1 of \d+ factor"):
                M.gradient_step(y, g, LR, out=out)
            assert np.all(out == 7)


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", ["Sphere(37,70)", "Oblique(37,70)"])
def test_errors_of_egrad_come_before_those_of_lr(name, dtype, path):
    M = MANIFOLDS[name]()
    x, g = problem(M, dtype)
    g_nan = g.copy()
    g_nan[3, 4] = np.nan
    for lr in (float("inf"), "0.1", True):
        with pytest.raises(ValueError, match="gradient_step: egrad has 1 non-finite entries"):
            M.gradient_step(x, g_nan, lr, out=x.copy())
    with pytest.raises(TypeError, match="lr must be a real number, got bool"):
        M.gradient_step(x, g, True)
    with pytest.raises(ValueError, match="egrad must have shape"):
        M.gradient_step(x, g[:, :-1], "0.1")
    # lr given as a NumPy scalar: the same step as the equal float.
    np.testing.assert_array_equal(M.gradient_step(x, g, np.float32(0.25)),
                                  M.gradient_step(x, g, 0.25))


@pytest.mark.parametrize("name", ["Sphere(37,70)", "Oblique(37,70)", "Oblique(37,70,axis=1)"])
def test_public_kernel_step_runs_no_python_check(name, monkeypatch):
    # Valid input: the kernel tests the sums itself; the Python checks (a few
    # microseconds warm, ~0.1 ms with the caches cold after a pass over a large
    # array) are not run at all, before or between the passes.
    pytest.importorskip("numba")
    M = MANIFOLDS[name]()
    x, g = problem(M, np.float64)
    expected = M.unchecked.gradient_step(x, g, LR)

    def no_python_checks(*args, **kwargs):
        raise AssertionError("Python checks on valid input")

    monkeypatch.setattr(M, "_check_args", no_python_checks)
    np.testing.assert_array_equal(M.gradient_step(x, g, LR), expected)
    y = x.copy()
    M.gradient_step(y, g, LR, out=y)
    np.testing.assert_array_equal(y, expected)


# --- the kernel's call-back contract -------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", ["Oblique(37,70)", "Oblique(37,70,axis=1)", "Sphere(37,70)"])
def test_kernel_calls_check_only_when_a_factor_is_in_doubt(name, dtype):
    pytest.importorskip("numba")
    M = MANIFOLDS[name]()
    x, g = problem(M, dtype)
    tol = tol_of(dtype)
    expected = np.empty_like(x)
    assert _kernels.gradient_step(M._red, True, x, g, LR, expected)
    calls = []

    def record(xx, gg):
        calls.append((xx.copy(), gg.copy()))

    out = np.empty_like(x)
    assert _kernels.gradient_step(M._red, True, x, g, LR, out, record, tol)
    assert calls == []
    np.testing.assert_array_equal(out, expected)
    # Norms off by 0.6 tol (in either direction) are not in doubt: the test is on
    # sqrt(<x, x>) (<x, x> is off by 1.2 tol there) and its tolerance is tol.
    for rel in (0.6, -0.6):
        near = scale_factor(M, x, 0, 1.0 + rel * tol)
        assert _kernels.gradient_step(M._red, True, near, g, LR, out, record, tol)
        assert calls == []

    def refuse(xx, gg):
        record(xx, gg)
        raise KeyError("refused")

    bad_g = g.copy()
    bad_g[0, 0] = np.inf
    nan_x = x.copy()
    nan_x[-1, -1] = np.nan
    cases = [(scale_factor(M, x, 1, 1.0 + 1.6 * tol), g), (scale_factor(M, x, 1, 1.0 - 1.6 * tol), g),
             (nan_x, g), (x, bad_g)]
    for xi, gi in cases:
        calls.clear()
        out = np.full(M.shape, 7, dtype=dtype)
        with pytest.raises(KeyError):
            _kernels.gradient_step(M._red, True, xi, gi, LR, out, refuse, tol)
        assert np.all(out == 7)
        (xx, gg), = calls
        np.testing.assert_allclose(xx, plain_sq(M, xi), rtol=64 * np.finfo(np.float64).eps,
                                   equal_nan=True)
        with np.errstate(over="ignore", invalid="ignore"):
            ref_gg = plain_sq(M, gi)
        finite = np.isfinite(ref_gg)
        assert np.array_equal(np.isfinite(gg), finite)
        np.testing.assert_allclose(gg[finite], ref_gg[finite], rtol=64 * np.finfo(np.float64).eps)
    # A check that returns lets the step go on with the same sums: the same bits as
    # the step without check.
    xi = cases[0][0]
    calls.clear()
    out = np.empty_like(x)
    assert _kernels.gradient_step(M._red, True, xi, g, LR, out, record, tol)
    assert len(calls) == 1
    plain = np.empty_like(x)
    assert _kernels.gradient_step(M._red, True, xi, g, LR, plain)
    np.testing.assert_array_equal(out, plain)


# --- arrays the kernel refuses ----------------------------------------------------------------


def _unaligned(a):
    buf = np.empty(a.nbytes + 1, dtype=np.uint8)
    view = buf[1:].view(a.dtype).reshape(a.shape)
    view[...] = a
    assert not view.flags.aligned
    return view


@pytest.mark.parametrize(
    "case",
    ["x unaligned", "egrad unaligned", "out unaligned", "x read-only", "out read-only",
     "egrad F, others C", "out overlaps egrad", "out overlaps x", "x overlaps egrad's end"],
)
def test_kernel_refuses_and_writes_nothing(case):
    pytest.importorskip("numba")
    M = Oblique(37, 70, retraction="projection")
    x, g = problem(M, np.float64, seed=3)
    out = np.full(M.shape, 7.0)
    if case == "x unaligned":
        x = _unaligned(x)
    elif case == "egrad unaligned":
        g = _unaligned(g)
    elif case == "out unaligned":
        out = _unaligned(out)
    elif case == "x read-only":
        x.flags.writeable = False
    elif case == "out read-only":
        out.flags.writeable = False
    elif case == "egrad F, others C":
        g = np.asfortranarray(g)
    else:
        # Two arrays in one buffer, one row apart.
        buf = np.full((38, 70), 7.0)
        first, second = buf[:37], buf[1:]
        if case == "out overlaps egrad":
            first[...] = g
            g, out = first, second
        elif case == "out overlaps x":
            second[...] = x
            x, out = second, first
        else:  # x and egrad overlap, out apart: allowed (both are only read)
            second[...] = x
            x, g = second, first
    before = out.copy()
    done = _kernels.gradient_step(M._red, False, x, g, LR, out)
    if case == "x overlaps egrad's end":
        assert done
        expected = M.unchecked.gradient_step(x.copy(), g.copy(), LR)
        np.testing.assert_array_equal(out, expected)
        return
    assert not done
    np.testing.assert_array_equal(out, before)


@pytest.mark.parametrize("case", ["x unaligned", "out overlaps egrad", "out overlaps x"])
def test_refused_arrays_take_the_numpy_path(case, monkeypatch):
    # The public step on arrays the kernel refuses: the NumPy step of the same
    # values, bit for bit (computed on fresh arrays with numba disabled).
    pytest.importorskip("numba")
    M = Oblique(37, 70)
    x, g = problem(M, np.float64, seed=4)
    with monkeypatch.context() as patch:
        patch.setitem(_kernels._STATE, "numba", False)
        expected = M.gradient_step(x.copy(), g.copy(), LR)
    if case == "x unaligned":
        got = M.gradient_step(_unaligned(x), g, LR)
    else:
        buf = np.empty((38, 70))
        first, second = buf[:37], buf[1:]
        if case == "out overlaps egrad":
            first[...] = g
            got = M.gradient_step(x, first, LR, out=second)
        else:
            second[...] = x
            got = M.gradient_step(second, g, LR, out=first)
    np.testing.assert_array_equal(got, expected)
