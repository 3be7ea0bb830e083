"""The fused gradient step's two passes: checks fused into pass 1, NumPy passes by slices.

* ``M.gradient_step`` (the public method) validates x and egrad from the
  per-factor sums of squares of the step's own first pass, before anything is
  written: the same errors as the separate checks, nothing written when it
  refuses, and the same bits as ``M.unchecked.gradient_step`` when it accepts.
* The NumPy path reads x and egrad once per pass: ``FactorReducer.moments``
  sums slice by slice along axis 0, and the update ``(a - b c) x + b g`` goes
  slice by slice too (``_reduce.CHUNK_BYTES`` is made small here, so that
  small arrays are cut into many slices, the last one partial).

References are plain NumPy: float64 (or long double) sums with ``np.sum``,
and the step written from its formulas in long double.
"""

import numpy as np
import pytest

from spherenet import Oblique, Sphere
from spherenet.manifolds import _kernels, _reduce, base
from spherenet.manifolds.sphere import _Spheres

LD = np.longdouble
DTYPES = [np.float64, np.float32]
EXTENDED = np.finfo(np.longdouble).eps < 1e-18

# Big enough not to take the small-sphere path (one float64 factor of <= 2048 entries).
MANIFOLDS = {
    "Sphere(37,70)": lambda r: Sphere(37, 70, retraction=r),  # one factor: BLAS dots by slice
    "Oblique(37,70)": lambda r: Oblique(37, 70, retraction=r),  # axis 0 summed over slices
    "Oblique(37,70,axis=1)": lambda r: Oblique(37, 70, axis=1, retraction=r),  # axis 0 kept
    "Oblique((9,5,60),axis=(0,2))": lambda r: Oblique(shape=(9, 5, 60), axis=(0, 2),
                                                      retraction=r),
    "Oblique((9,5,60),axis=(1,2))": lambda r: Oblique(shape=(9, 5, 60), axis=(1, 2),
                                                      retraction=r),
}
RETRACTIONS = ["exp", "projection"]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def ids(dtype):
    return np.dtype(dtype).name


@pytest.fixture
def small_slices(monkeypatch):
    """Slices of 3 rows of 70 float64 (or 6 of float32) entries: 13 slices of 37 rows."""
    monkeypatch.setattr(_reduce, "CHUNK_BYTES", 3 * 70 * 8)


@pytest.fixture(params=["kernel", "numpy"])
def path(request, monkeypatch):
    if request.param == "kernel":
        pytest.importorskip("numba")
        assert _kernels.available()
    else:
        monkeypatch.setitem(_kernels._STATE, "numba", False)
    return request.param


def plain_sum(M, a, b, dtype=np.float64):
    return np.sum(a.astype(dtype) * b.astype(dtype), axis=M._red.axes, keepdims=True)


def problem(M, dtype, seed=0, radial=0.5):
    """A point and a gradient whose tangent part is most of it (the two-pass NumPy branch)."""
    rng = np.random.default_rng(seed)
    x = M.random_point(rng, dtype=dtype)
    g = (rng.standard_normal(M.shape) + radial * x).astype(dtype)
    return x, g


def ref_step(M, x, g, lr):
    """retr_x(-lr r), r = g - <x, g>/<x, x> x, read at x/||x||, in long double."""
    X, G = x.astype(LD), g.astype(LD)
    xx = plain_sum(M, X, X, LD)
    R = G - plain_sum(M, X, G, LD) / xx * X
    rr = plain_sum(M, R, R, LD)
    if M.retraction == "exp":
        t, nr = lr * np.sqrt(rr), np.sqrt(rr)
        return np.cos(t) * X / np.sqrt(xx) - np.sin(t) * R / np.where(nr > 0, nr, 1)
    V = X - lr * R
    return V / np.sqrt(plain_sum(M, V, V, LD))


# --- FactorReducer.moments ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_moments_by_slices_against_float64_sums(name, dtype, small_slices):
    M = MANIFOLDS[name]("exp")
    rng = np.random.default_rng(1)
    a, b = (rng.standard_normal(M.shape).astype(dtype) for _ in range(2))
    assert M._red.chunk_rows(a) < M.shape[0]  # several slices
    got = M._red.moments(a, b)
    for value, (p, q) in zip(got, [(a, a), (a, b), (b, b)]):
        ref = plain_sum(M, p, q)
        assert value.dtype == np.float64 and value.shape == ref.shape
        # float64 sums of at most 4200 exact (float32) or rounded products, in another order;
        # <a, b> is compared relative to sqrt(<a, a> <b, b>), the scale of its rounding.
        scale = np.sqrt(plain_sum(M, p, p) * plain_sum(M, q, q))
        assert float(np.max(np.abs(value - ref) / scale)) <= 64 * eps(np.float64)


def test_moments_of_arrays_not_c_contiguous_go_in_one_piece(small_slices):
    M = Oblique(37, 70)
    rng = np.random.default_rng(2)
    a, b = (np.asfortranarray(rng.standard_normal(M.shape)) for _ in range(2))
    assert M._red.chunk_rows(a) == 37
    for value, (p, q) in zip(M._red.moments(a, b), [(a, a), (a, b), (b, b)]):
        np.testing.assert_array_equal(value, M._red.dot(p, q))


# --- the NumPy step by slices ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_numpy_step_by_slices_against_reference(name, retraction, dtype, small_slices,
                                                monkeypatch):
    if not EXTENDED:
        pytest.skip("the reference needs an extended long double")
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    M = MANIFOLDS[name](retraction)
    x, g = problem(M, dtype)
    copies = x.copy(), g.copy()
    calls = []
    update = _Spheres._update
    monkeypatch.setattr(_Spheres, "_update", lambda *a: calls.append(1) or update(*a))
    got = M.gradient_step(x, g, 0.3)
    assert calls, "the two-pass branch did not run"
    # Elementwise in the dtype: (a - b c) x and b g rounded, then their sum,
    # each term at most ~1 (unit factors, lr |g_i| ~ 1): a few eps.
    err = float(np.max(np.abs(got.astype(LD) - ref_step(M, x, g, 0.3))))
    assert got.dtype == dtype and err <= 4 * eps(dtype), err / eps(dtype)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(g, copies[1])
    # In place (out=x or out=egrad) and out of place: the same operations, the same bits.
    y, h = x.copy(), g.copy()
    assert M.gradient_step(y, g, 0.3, out=y) is y
    assert M.gradient_step(x, h, 0.3, out=h) is h
    np.testing.assert_array_equal(y, got)
    np.testing.assert_array_equal(h, got)


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", ["Oblique(37,70)", "Oblique(37,70,axis=1)"])
def test_numpy_step_by_slices_keeps_zero_step_factors_bit_for_bit(name, dtype, small_slices,
                                                                  monkeypatch):
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    M = MANIFOLDS[name]("projection")
    x, g = problem(M, dtype)
    # Factors 0, 3 and the last get a zero gradient and sit 3 eps off unit norm,
    # which a = 1/||x|| would correct: a zero step keeps them as they are.
    axis = M._red.axes[0]
    still = [0, 3, M.shape[1 - axis] - 1]
    index = (slice(None), still) if axis == 0 else (still, slice(None))
    x[index] *= dtype(1 + 3 * eps(dtype))
    g[index] = 0
    for out in (None, "x"):
        y = x.copy()
        got = M.unchecked.gradient_step(y, g, 0.3, out=y if out else None)
        np.testing.assert_array_equal(got[index], x[index])
        moved = np.ones(M.shape, bool)
        moved[index] = False
        assert np.all(got[moved] != x[moved])


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_numpy_step_by_slices_with_one_nearly_normal_factor(dtype, small_slices, monkeypatch):
    # One column's gradient is 100 x + 1e-9 u: the estimate ||g||^2 - <x, g>^2/||x||^2
    # cancels there, so the whole step takes the careful branch (r formed and projected
    # twice) with the sums of the slices; the other columns step as usual.
    if not EXTENDED:
        pytest.skip("the reference needs an extended long double")
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    M = Oblique(37, 70)
    x, g = problem(M, dtype)
    u = M.unchecked.random_tangent(x.astype(np.float64), rng=4)
    g[:, 5] = (100.0 * x[:, 5] + 1e-9 * u[:, 5]).astype(dtype)
    monkeypatch.setattr(_Spheres, "_update", None)  # the two-pass branch must not run
    got = M.gradient_step(x, g, 0.1)
    ref = ref_step(M, x, g, 0.1)
    move, ref_move = got.astype(LD) - x, ref - x
    per_factor = np.sqrt(plain_sum(M, move - ref_move, move - ref_move, LD))
    assert float(np.max(per_factor)) <= 8 * eps(dtype)


# --- the public method: checks from the sums of pass 1 -----------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", ["Sphere(37,70)", "Oblique(37,70)", "Oblique(37,70,axis=1)"])
def test_public_step_checks_from_its_own_sums(name, dtype, path, monkeypatch):
    M = MANIFOLDS[name]("exp")
    x, g = problem(M, dtype)
    expected = M.unchecked.gradient_step(x, g, 0.3)

    def separate_pass(*args):
        raise AssertionError("a separate pass over the data to check it")

    # Valid input never reaches the separate checks (two more passes over x and g).
    with monkeypatch.context() as patch:
        patch.setattr(base, "_check_finite_fast", separate_pass)
        patch.setattr(_Spheres, "_check_on", separate_pass)
        got = M.gradient_step(x, g, 0.3)
        y = x.copy()
        M.gradient_step(y, g, 0.3, out=y)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(y, expected)


def _bad_inputs(M, dtype):
    x, g = problem(M, dtype)
    nan_x = x.copy()
    nan_x[1, 2] = np.nan
    off_x = x * dtype(1.01)
    inf_g = g.copy()
    inf_g[0, 0], inf_g[5, 6] = np.inf, -np.inf
    return [
        (nan_x, g, 0.3, ValueError, r"gradient_step: x has 1 non-finite entries"),
        (off_x, g, 0.3, ValueError, r"gradient_step: x is off .*norm off 1 by up to 0.01"),
        (x, inf_g, 0.3, ValueError, r"gradient_step: egrad has 2 non-finite entries"),
        (x, g, float("nan"), ValueError, r"gradient_step: lr must be finite"),
        (x, g, "0.3", TypeError, r"gradient_step: lr must be a real number, got str"),
        # x is checked before lr, as by the separate checks
        (off_x, g, "0.3", ValueError, r"gradient_step: x is off"),
    ]


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", ["Sphere(37,70)", "Oblique(37,70)", "Oblique(37,70,axis=1)"])
def test_public_step_refuses_bad_input_and_writes_nothing(name, dtype, path):
    M = MANIFOLDS[name]("projection")
    for x, g, lr, error, message in _bad_inputs(M, dtype):
        before = x.copy(), g.copy()
        out = np.full(M.shape, 7, dtype=dtype)
        with pytest.raises(error, match=message):
            M.gradient_step(x, g, lr, out=out)
        assert np.all(out == 7)
        for target in (x, g):  # in place
            with pytest.raises(error, match=message):
                M.gradient_step(x, g, lr, out=target)
            np.testing.assert_array_equal(x, before[0])
            np.testing.assert_array_equal(g, before[1])


@pytest.mark.parametrize("name", ["Sphere(37,70)", "Oblique(37,70)"])
def test_public_step_accepts_finite_gradients_whose_squares_overflow(name, path):
    # ||g||^2 overflows float64 (entries 1e200): the sums say "not finite", the slow
    # check finds every entry finite and accepts, as the input policy says; the step
    # then goes on with the same sums as the unchecked step.
    M = MANIFOLDS[name]("projection")
    x, g = problem(M, np.float64)
    g *= 1e200
    with np.errstate(all="ignore"):
        expected = M.unchecked.gradient_step(x, g, 0.3)
        got = M.gradient_step(x, g, 0.3)
    np.testing.assert_array_equal(got, expected)


# --- the kernel's check hook -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("axis", [0, 1])
def test_kernel_hands_its_sums_to_check_before_writing(axis, dtype):
    pytest.importorskip("numba")
    M = Oblique(37, 1100, axis=axis)  # axis 0: two blocks of columns
    x, g = problem(M, dtype)
    seen = []

    def check(xx, gg):
        seen.append((xx.copy(), gg.copy()))
        raise KeyError("refused")

    out = np.full(M.shape, 7, dtype=dtype)
    with pytest.raises(KeyError):
        _kernels.gradient_step(M._red, True, x, g, 0.3, out, check)
    assert np.all(out == 7)
    (xx, gg), = seen
    # In the kernel's order of the factors: columns (axis 0) or rows (axis 1), C order.
    for got, a in ((xx, x), (gg, g)):
        ref = plain_sum(M, a, a).ravel()
        np.testing.assert_allclose(got, ref, rtol=64 * eps(np.float64), atol=0)
    # A check that returns lets the step run, with the same result as without it.
    kept = []
    assert _kernels.gradient_step(M._red, True, x, g, 0.3, out, lambda *s: kept.append(s))
    expected = np.empty_like(x)
    assert _kernels.gradient_step(M._red, True, x, g, 0.3, expected)
    assert len(kept) == 1
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("shifted", ["egrad", "x"])
def test_numpy_step_into_an_out_that_partly_overlaps_an_input(shifted, small_slices, monkeypatch):
    # out is the input shifted by one row in the same buffer: slice by slice, the
    # rows written would be the rows the next slice still has to read; the step
    # must go in one piece and give what a separate out gets.
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    M = Oblique(37, 70).unchecked
    x, g = problem(M, np.float64, seed=5)
    assert M._red.chunk_rows(x) < 37  # several slices if slicing were allowed
    expected = M.gradient_step(x, g, 0.3, out=np.empty_like(x))
    buf = np.empty((38, 70))
    buf[:37] = g if shifted == "egrad" else x
    args = (x, buf[:37]) if shifted == "egrad" else (buf[:37], g)
    got = M.gradient_step(*args, 0.3, out=buf[1:])
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rows", [2, 3])
def test_numpy_step_by_slices_of_rows_that_are_factors(rows, small_slices, monkeypatch):
    # unit rows: each slice of rows takes its own rows' coefficients; a factor
    # is one sphere, so each row steps as Sphere(700) would step it alone
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    M = Oblique(shape=(rows, 700), axis=1).unchecked
    x, g = problem(M, np.float64, seed=6)
    assert M._red.chunk_rows(x) < rows  # several slices
    got = M.gradient_step(x, g, 0.3)
    S = Sphere(700).unchecked
    expected = np.stack([S.gradient_step(x[i], g[i], 0.3) for i in range(rows)])
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * eps(np.float64))


@pytest.mark.parametrize("public", [True, False], ids=["public", "unchecked"])
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", ["oblique", "sphere"])
def test_a_read_only_point_and_gradient_step_as_writeable_ones(name, retraction, public):
    # numba types the in-place branch (which writes x) for every call and refused
    # a read-only x there (a read-only memory map, a broadcast view): a TypingError
    # from gradient_step(x, g, lr) although nothing is written into x
    M = Oblique(64, 64, retraction=retraction) if name == "oblique" else Sphere(64, 64, retraction=retraction)
    M = M if public else M.unchecked
    x, g = problem(M, np.float64, seed=8)
    expected = M.gradient_step(x, g, 0.3)
    x.flags.writeable = False
    g.flags.writeable = False
    got = M.gradient_step(x, g, 0.3)
    np.testing.assert_allclose(got, expected, rtol=0, atol=4 * eps(np.float64))
    out = np.empty_like(x)
    assert M.gradient_step(x, g, 0.3, out=out) is out
    np.testing.assert_array_equal(out, got)
