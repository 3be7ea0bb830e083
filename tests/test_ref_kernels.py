"""The compiled kernels and their NumPy twins against long-double references of the formulas.

Two fused steps have a numba kernel and a NumPy path: the Riemannian
gradient step (``spherenet.manifolds._kernels``, used by
``Sphere.gradient_step``/``Oblique.gradient_step``) and RSGD's momentum step
(``spherenet.optim._momentum``). numba is in the ``test`` extra, so CI runs
the kernels; the NumPy paths are run here with numba switched off inside the
test (the module's lazy-load state set to "unavailable"), so both paths run
in every CI job.

The references are written from the formulas in long double (x86-64: 64-bit
significand) from the rounded inputs. What can be guaranteed, and is tested:

* kernels, float32 data: every element is worked in float64 and rounded once,
  so each result is the correctly rounded value of the exact step: within
  half an ulp of float32 (plus 1e-14 for the float64 work, which only matters
  at a tie);
* kernels, float64 data: sums of R terms in float64, reordered (``reassoc``)
  in the "trail" layout, and fused multiply-adds: a few ulps of the factor's
  norm 1 (bound 4 eps for the sizes here), not bit-for-bit equal to NumPy;
* NumPy paths: the same formulas with float64 per-factor sums but elementwise
  arithmetic in the array's dtype: within 4 eps of the dtype (absolute, the
  factors having norm 1);
* in place (``out=x`` or ``out=egrad``) and out of place give the same bits
  on each path (the same operations in the same order), and out of place
  writes into no argument.
"""

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.manifolds import _kernels
from spherenet.optim import _momentum
from spherenet.strategies import Projection

LD = np.longdouble
DTYPES = [np.float64, np.float32]
EXTENDED = np.finfo(np.longdouble).eps < 1e-18

pytestmark = pytest.mark.skipif(not EXTENDED, reason="the references need an extended long double")

MANIFOLDS = {
    # "lead" layout: factors along the leading axes; 1100 columns span two blocks
    "Oblique(5,6)": lambda r, t="projection": Oblique(5, 6, retraction=r, transport=t),
    "Oblique(7,1100)": lambda r, t="projection": Oblique(7, 1100, retraction=r, transport=t),
    "Oblique((2,3,4),axis=(0,1))": lambda r, t="projection": Oblique(
        shape=(2, 3, 4), axis=(0, 1), retraction=r, transport=t),
    # "trail" layout: factors along the trailing axes, the sums reassociated
    "Sphere(7)": lambda r, t="projection": Sphere(7, retraction=r, transport=t),
    "Sphere(4,5)": lambda r, t="projection": Sphere(4, 5, retraction=r, transport=t),
    "Oblique(300,4,axis=1)": lambda r, t="projection": Oblique(300, 4, axis=1, retraction=r,
                                                               transport=t),
}
RETRACTIONS = ["exp", "projection"]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def ids(dtype):
    return np.dtype(dtype).name


@pytest.fixture
def numba_off(monkeypatch):
    """Switch the compiled kernels off: both modules then take their NumPy paths."""
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    monkeypatch.setitem(_momentum._STATE, "kernel", False)


def require_numba():
    pytest.importorskip("numba")
    assert _kernels.available()


def problem(M, dtype, seed=0, radial=3.0):
    """A point, and a gradient with a radial part as large as a network's kernels get."""
    rng = np.random.default_rng(seed)
    x = M.random_point(rng, dtype=dtype)
    g = (rng.standard_normal(M.shape) + radial * x).astype(dtype)
    return x, g


def dot(M, a, b):
    return np.sum(a * b, axis=M._red.axes, keepdims=True)


def assert_correctly_rounded(got, ref, slack=1e-14):
    """float32 results within half an ulp of the exact value (plus a float64 slack)."""
    assert got.dtype == np.float32
    ulp = np.spacing(np.abs(ref).astype(np.float32)).astype(LD)
    err = np.abs(got.astype(LD) - ref)
    assert np.all(err <= 0.5 * ulp + slack), float(np.max(err / ulp))


def assert_within(got, ref, dtype, factor, scale=1.0):
    err = float(np.max(np.abs(got.astype(LD) - ref)))
    assert got.dtype == dtype
    assert err <= factor * eps(dtype) * scale, (err / eps(dtype), factor)


# --- the gradient step ---------------------------------------------------------------------------


def ref_gradient_step(M, x, g, lr):
    """retr_x(-lr r), r = g - <x, g>/<x, x> x, read at x/||x||, in long double."""
    X, G = x.astype(LD), g.astype(LD)
    xx = dot(M, X, X)
    R = G - dot(M, X, G) / xx * X
    rr = dot(M, R, R)
    if M.retraction == "exp":
        # exp at x/||x|| along -lr r: cos(t) x/||x|| - sin(t) r/||r||, t = lr ||r||
        t, nr = lr * np.sqrt(rr), np.sqrt(rr)
        return np.cos(t) * X / np.sqrt(xx) - np.sin(t) * R / np.where(nr > 0, nr, 1)
    V = X - lr * R
    return V / np.sqrt(dot(M, V, V))


def kernel_step(M, x, g, lr, out=None):
    out = np.empty_like(x) if out is None else out
    assert _kernels.gradient_step(M._red, M.retraction == "exp", x, g, lr, out), "kernel declined"
    return out


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_gradient_step_kernel_against_reference(name, retraction, dtype):
    require_numba()
    M = MANIFOLDS[name](retraction)
    x, g = problem(M, dtype)
    copies = x.copy(), g.copy()
    got = kernel_step(M, x, g, 0.3)
    ref = ref_gradient_step(M, x, g, 0.3)
    if dtype == np.float32:
        assert_correctly_rounded(got, ref)
    else:
        assert_within(got, ref, dtype, 4)
    np.testing.assert_array_equal(x, copies[0])  # out of place: nothing else written
    np.testing.assert_array_equal(g, copies[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_gradient_step_numpy_path_against_reference(name, retraction, dtype, numba_off):
    M = MANIFOLDS[name](retraction)
    x, g = problem(M, dtype)
    copies = x.copy(), g.copy()
    assert not _kernels.gradient_step(M._red, retraction == "exp", x, g, 0.3, np.empty_like(x))
    got = M.gradient_step(x, g, 0.3)
    assert_within(got, ref_gradient_step(M, x, g, 0.3), dtype, 4)
    np.testing.assert_array_equal(x, copies[0])
    np.testing.assert_array_equal(g, copies[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_gradient_step_kernel_against_its_numpy_twin(name, retraction, dtype, monkeypatch):
    require_numba()
    M = MANIFOLDS[name](retraction)
    x, g = problem(M, dtype, seed=1)
    compiled = M.gradient_step(x, g, 0.3)
    with monkeypatch.context() as patch:
        patch.setitem(_kernels._STATE, "numba", False)
        plain = M.gradient_step(x, g, 0.3)
    if M._small(x, g):
        # one small float64 factor: the public step takes the Python-float path
        # with or without numba; compare the kernel itself with it
        compiled = kernel_step(M, x, g, 0.3)
    else:
        np.testing.assert_array_equal(kernel_step(M, x, g, 0.3), compiled)  # the kernel ran
    # both within their bounds of the exact step: 4 eps each (float32: 0.5 ulp + 4 eps)
    np.testing.assert_allclose(compiled, plain, rtol=0, atol=8 * eps(dtype))


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("name", list(MANIFOLDS))
def test_gradient_step_in_place_equals_out_of_place(name, dtype, compiled, monkeypatch):
    if compiled:
        require_numba()
    else:
        monkeypatch.setitem(_kernels._STATE, "numba", False)
    for retraction in RETRACTIONS:
        M = MANIFOLDS[name](retraction)
        x, g = problem(M, dtype, seed=2)
        expected = M.gradient_step(x, g, 0.3)
        given = np.empty_like(x)
        assert M.gradient_step(x, g, 0.3, out=given) is given
        np.testing.assert_array_equal(given, expected)
        y = x.copy()
        assert M.gradient_step(y, g, 0.3, out=y) is y
        np.testing.assert_array_equal(y, expected)
        h = g.copy()
        assert M.gradient_step(x, h, 0.3, out=h) is h
        np.testing.assert_array_equal(h, expected)
        if compiled and x.ndim == 2:  # Fortran order: the transposed layout
            xf, gf = np.asfortranarray(x), np.asfortranarray(g)
            yf = xf.copy(order="F")
            assert M.gradient_step(yf, gf, 0.3, out=yf) is yf
            np.testing.assert_array_equal(yf, M.gradient_step(xf, gf, 0.3))
            tol = 0.5 * np.spacing(np.float32(1)) if dtype == np.float32 else 4 * eps(dtype)
            np.testing.assert_allclose(yf, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", ["Oblique(5,6)", "Oblique(7,1100)", "Sphere(4,5)",
                                  "Oblique(300,4,axis=1)"])
def test_gradient_step_numpy_path_with_a_nearly_normal_gradient(name, retraction, dtype,
                                                                 numba_off):
    # g = 100 x + 1e-9 u: <g, g> - <x, g>^2/<x, x> cancels completely and r = g - c x
    # keeps a residue along x of ~ eps |g|; the NumPy path must project it out again.
    M = MANIFOLDS[name](retraction)
    x, _ = problem(M, dtype, seed=3)
    u = M.unchecked.random_tangent(x.astype(np.float64), rng=4)
    g = (100.0 * x + 1e-9 * u).astype(dtype)
    got = M.gradient_step(x, g, 0.1)
    ref = ref_gradient_step(M, x, g, 0.1)
    move, ref_move = got.astype(LD) - x, ref - x
    per_factor = np.sqrt(dot(M, move - ref_move, move - ref_move))
    assert float(np.max(per_factor)) <= 8 * eps(dtype)
    norms = np.sqrt(dot(M, got.astype(LD), got.astype(LD)))
    assert float(np.max(np.abs(norms - 1))) <= 2 * eps(dtype)


# --- the momentum step -------------------------------------------------------------------------


def ref_momentum(M, x, g, b, lr, mu):
    """(x+, b+) of RSGD with momentum from the definitions, in long double.

    a = mu b + g; d = a - <x, a>/<x, x> x; x+ = retr(x/||x||, -lr d); b+ is d moved
    to x+ by the manifold's transport (projection onto T_{x+}, or parallel along the
    geodesic: v - <y, v>/(1 + <x, y>) (x + y)). Euclidean: b+ = a, x+ = x - lr b+.
    """
    X, G = x.astype(LD), g.astype(LD)
    B = np.zeros_like(X) if b is None else b.astype(LD)
    A = mu * B + G
    if isinstance(M, Euclidean):
        return X - lr * A, A
    xx = dot(M, X, X)
    xh = X / np.sqrt(xx)
    D = A - dot(M, X, A) / xx * X
    nd = np.sqrt(dot(M, D, D))
    if M.retraction == "exp":
        t = lr * nd
        Y = np.cos(t) * xh - np.sin(t) * D / np.where(nd > 0, nd, 1)
    else:
        V = X - lr * D
        Y = V / np.sqrt(dot(M, V, V))
    if M.transport == "projection":
        return Y, D - dot(M, Y, D) * Y
    return Y, D - dot(M, Y, D) / (1 + dot(M, xh, Y)) * (xh + Y)


MOMENTUM_MANIFOLDS = {  # the kernel takes factors along the leading axes
    "Oblique(30,7)": (lambda r, t: Oblique(30, 7, retraction=r, transport=t), True),
    "Oblique(5,300)": (lambda r, t: Oblique(5, 300, retraction=r, transport=t), True),
    "Sphere(4,5)": (lambda r, t: Sphere(4, 5, retraction=r, transport=t), True),
    "Oblique(6,4,axis=1)": (lambda r, t: Oblique(6, 4, axis=1, retraction=r, transport=t), False),
}
TRANSPORTS = ["projection", "parallel"]


def momentum_problem(M, dtype, seed=0, first=False):
    x, g = problem(M, dtype, seed)
    if first:
        return x, g, None
    rng = np.random.default_rng(seed + 100)
    b = (M.unchecked.random_tangent(x.astype(np.float64), rng) * np.sqrt(M.n_factors)).astype(dtype)
    return x, g, b


def momentum(M, x, g, b, compiled, lr=0.1, mu=0.9):
    zeros = np.zeros_like(x) if b is None else b
    assert (_momentum._kernel_for(M, x, g, zeros) is not None) == compiled
    copies = [a.copy() for a in (x, g, zeros)]
    new_x, new_b = _momentum.momentum_step(M, x, g, b, lr, mu)
    for a, c in zip((x, g, zeros), copies):  # no argument is written into
        np.testing.assert_array_equal(a, c)
    assert new_x.dtype == new_b.dtype == x.dtype
    return new_x, new_b


@pytest.mark.parametrize("first", [False, True], ids=["buffer", "first-step"])
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", [n for n, (_, k) in MOMENTUM_MANIFOLDS.items() if k])
def test_momentum_kernel_against_reference(name, retraction, transport, dtype, first):
    require_numba()
    M = MOMENTUM_MANIFOLDS[name][0](retraction, transport)
    x, g, b = momentum_problem(M, dtype, first=first)
    new_x, new_b = momentum(M, x, g, b, compiled=True)
    ref_x, ref_b = ref_momentum(M, x, g, b, 0.1, 0.9)
    if dtype == np.float32:
        assert_correctly_rounded(new_x, ref_x)
        assert_correctly_rounded(new_b, ref_b)
    else:
        assert_within(new_x, ref_x, dtype, 4)
        assert_within(new_b, ref_b, dtype, 4, scale=float(np.max(np.abs(ref_b))))


@pytest.mark.parametrize("first", [False, True], ids=["buffer", "first-step"])
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", list(MOMENTUM_MANIFOLDS))
def test_momentum_numpy_path_against_reference(name, retraction, transport, dtype, first,
                                               numba_off):
    M = MOMENTUM_MANIFOLDS[name][0](retraction, transport)
    x, g, b = momentum_problem(M, dtype, seed=1, first=first)
    new_x, new_b = momentum(M, x, g, b, compiled=False)
    ref_x, ref_b = ref_momentum(M, x, g, b, 0.1, 0.9)
    assert_within(new_x, ref_x, dtype, 4)
    assert_within(new_b, ref_b, dtype, 4, scale=float(np.max(np.abs(ref_b))))


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", [n for n, (_, k) in MOMENTUM_MANIFOLDS.items() if k])
def test_momentum_kernel_against_its_numpy_twin(name, retraction, transport, dtype,
                                                monkeypatch):
    require_numba()
    M = MOMENTUM_MANIFOLDS[name][0](retraction, transport)
    x, g, b = momentum_problem(M, dtype, seed=2)
    kx, kb = momentum(M, x, g, b, compiled=True)
    with monkeypatch.context() as patch:
        patch.setitem(_momentum._STATE, "kernel", False)
        nx, nb = momentum(M, x, g, b, compiled=False)
    # each within 4 eps of the exact step (the kernel, float32: within half an ulp)
    np.testing.assert_allclose(kx, nx, rtol=0, atol=8 * eps(dtype))
    np.testing.assert_allclose(kb, nb, rtol=0, atol=8 * eps(dtype) * float(np.max(np.abs(kb))))


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_momentum_with_a_nearly_normal_direction(retraction, dtype, compiled, monkeypatch):
    # a = mu b + g nearly normal: <a, a> - <x, a>^2/<x, x> cancels; both paths must
    # recompute <d, d> exactly, else the step is off by far more than rounding.
    if compiled:
        require_numba()
    else:
        monkeypatch.setitem(_momentum._STATE, "kernel", False)
    M = Oblique(30, 7, retraction=retraction, transport="parallel")
    x, _ = problem(M, dtype, seed=5)
    u = M.unchecked.random_tangent(x.astype(np.float64), rng=6)
    g = (100.0 * x + 1e-9 * u).astype(dtype)
    b = (1e-9 * M.unchecked.random_tangent(x.astype(np.float64), rng=7)).astype(dtype)
    new_x, new_b = momentum(M, x, g, b, compiled)
    ref_x, ref_b = ref_momentum(M, x, g, b, 0.1, 0.9)
    move, ref_move = new_x.astype(LD) - x, ref_x - x
    per_factor = np.sqrt(dot(M, move - ref_move, move - ref_move))
    assert float(np.max(per_factor)) <= 8 * eps(dtype)
    # The new buffer (~1e-9) is the difference a - c x of two vectors of size ~100:
    # c is one float64 (or a is summed in float32 on the NumPy path), so it is
    # right to a few eps of |a|, not of itself.
    a = 0.9 * b.astype(np.float64) + g
    assert_within(new_b, ref_b, dtype, 4, scale=float(np.max(np.abs(a))))


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_momentum_on_a_product_and_its_euclidean_factors(dtype, compiled, monkeypatch):
    if compiled:
        require_numba()
    else:
        monkeypatch.setitem(_momentum._STATE, "kernel", False)
    sphere = Oblique(8, 5, retraction="exp", transport="parallel")
    M = Product([sphere, Euclidean(5), Euclidean(2, 3)])
    rng = np.random.default_rng(8)
    x = M.random_point(rng, dtype=dtype)
    g = tuple(rng.standard_normal(xi.shape).astype(dtype) for xi in x)
    b = (sphere.random_tangent(x[0], rng).astype(dtype),
         rng.standard_normal(5).astype(dtype), rng.standard_normal((2, 3)).astype(dtype))
    copies = [a.copy() for a in (*x, *g, *b)]
    lr, mu = 0.1, 0.9
    new_x, new_b = _momentum.momentum_step(M, x, g, b, lr, mu)
    for a, c in zip((*x, *g, *b), copies):
        np.testing.assert_array_equal(a, c)
    ref_x, ref_b = ref_momentum(sphere, x[0], g[0], b[0], lr, mu)
    assert_within(new_x[0], ref_x, dtype, 4)
    assert_within(new_b[0], ref_b, dtype, 4, scale=float(np.max(np.abs(ref_b))))
    # Euclidean factors: b+ = mu b + g, x+ = x - lr b+, each rounded in the dtype, bit for bit
    for xi, gi, bi, nx, nb in zip(x[1:], g[1:], b[1:], new_x[1:], new_b[1:]):
        expected_b = bi * dtype(mu) + gi
        np.testing.assert_array_equal(nb, expected_b)
        np.testing.assert_array_equal(nx, xi - dtype(lr) * expected_b)
    # first step: no buffer, b+ = g
    new_x, new_b = _momentum.momentum_step(M, x, g, None, lr, mu)
    np.testing.assert_array_equal(new_b[1], g[1])
    np.testing.assert_array_equal(new_x[1], x[1] - dtype(lr) * g[1])


@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
def test_momentum_under_the_projection_strategy_is_keras_unit_norm(dtype):
    # Keras: v <- mu v + g (ambient), w <- w - lr v, then w / (1e-7 + ||w||) per column.
    manifold = Product([Oblique(6, 4), Euclidean(4)])
    geometry = Projection(manifold, epsilon=1e-7).geometry
    rng = np.random.default_rng(9)
    x = manifold.random_point(rng, dtype=dtype)
    g = tuple(rng.standard_normal(xi.shape).astype(dtype) for xi in x)
    b = tuple(rng.standard_normal(xi.shape).astype(dtype) for xi in x)
    lr, mu = 0.2, 0.9
    new_x, new_b = _momentum.momentum_step(geometry, x, g, b, lr, mu)
    v = [mu * bi.astype(LD) + gi for bi, gi in zip(b, g)]
    w = [xi - lr * vi for xi, vi in zip(x, v)]
    kernel = w[0] / (1e-7 + np.sqrt(np.sum(w[0] * w[0], axis=0, keepdims=True)))
    for got, want in zip((*new_x, *new_b), (kernel, w[1], *v)):
        assert got.dtype == dtype
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=0,
                                   atol=4 * eps(dtype) * max(1.0, float(np.max(np.abs(want)))))
    # the momentum buffer is the plain ambient one: not projected, not transported
    assert float(np.max(np.abs(np.sum(new_b[0].astype(LD) * new_x[0], axis=0)))) > 0.01


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "numpy"])
@pytest.mark.parametrize("dtype", DTYPES, ids=ids)
@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("retraction", RETRACTIONS)
def test_steps_from_a_drifted_point(retraction, transport, dtype, compiled, monkeypatch):
    # Columns off the sphere by 1e-3 either way (drift): every step reads x as
    # x/||x||, and lands on the sphere.
    if compiled:
        require_numba()
    else:
        monkeypatch.setitem(_kernels._STATE, "numba", False)
        monkeypatch.setitem(_momentum._STATE, "kernel", False)
    M = Oblique(30, 7, retraction=retraction, transport=transport)
    x, g, b = momentum_problem(M, dtype, seed=11)
    x = (x * np.array([1.001, 0.999, 1.0, 1.002, 0.998, 1.0005, 0.9995])).astype(dtype)
    new_x, new_b = momentum(M, x, g, b, compiled)
    ref_x, ref_b = ref_momentum(M, x, g, b, 0.1, 0.9)
    assert_within(new_x, ref_x, dtype, 4)
    assert_within(new_b, ref_b, dtype, 4, scale=float(np.max(np.abs(ref_b))))
    # x is off the sphere by up to 2e-3 on purpose: the raw step (the public one refuses it).
    got = M.unchecked.gradient_step(x, g, 0.3)
    assert_within(got, ref_gradient_step(M, x, g, 0.3), dtype, 4)
