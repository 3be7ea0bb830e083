"""How the fused RSGD momentum step compiles its kernel, and its cancellation threshold.

``spherenet.optim._momentum`` compiles ``_lead_coefs`` and ``_momentum_lead``
with numba on first use (``_load``/``_jit``), once per process. Each test
here starts from an unloaded state (the module's ``_STATE`` and the two
plain functions restored by ``monkeypatch``), so that the loading runs in the
test itself, whatever ran before in the process.

The threshold: dd = <a,a> - c <x,a> cancels when the step direction a is
nearly normal to x; float64 data then recompute dd exactly (threshold
dd < aa / 2). The reference is the exponential map and the parallel transport
along the step's great circle, computed with mpmath at 40 digits from the
same float64 inputs.
"""

import sys

import mpmath
import numpy as np
import pytest

from spherenet import Oblique, Sphere
from spherenet.optim import _momentum

EPS64 = np.finfo(np.float64).eps


def _plain(f):
    return getattr(f, "py_func", f)


@pytest.fixture
def unloaded(monkeypatch):
    """The module as before its first step: no kernel, the two kernels as plain functions."""
    monkeypatch.setitem(_momentum._STATE, "kernel", None)
    monkeypatch.setattr(_momentum, "_lead_coefs", _plain(_momentum._lead_coefs))
    monkeypatch.setattr(_momentum, "_momentum_lead", _plain(_momentum._momentum_lead))
    return _momentum


def _caching(dispatcher):
    from numba.core.caching import NullCache

    return not isinstance(dispatcher._cache, NullCache)


def test_load_compiles_both_kernels_once_cached_nogil_with_numpy_errors(unloaded, monkeypatch):
    numba = pytest.importorskip("numba")
    from numba.core.registry import CPUDispatcher

    plain_coefs, plain_lead = unloaded._lead_coefs, unloaded._momentum_lead
    kernel = unloaded._load()
    assert isinstance(kernel, CPUDispatcher)
    assert kernel is unloaded._momentum_lead and kernel.py_func is plain_lead
    assert unloaded._STATE["kernel"] is kernel
    # _momentum_lead calls the global _lead_coefs: it must be compiled too, from the plain one.
    coefs = unloaded._lead_coefs
    assert isinstance(coefs, CPUDispatcher) and coefs.py_func is plain_coefs
    for d in (kernel, coefs):
        assert d.targetoptions["nogil"] is True
        assert d.targetoptions["error_model"] == "numpy"
        assert d.targetoptions["nopython"] is True
        assert _caching(d)
    # Loaded once: a second call does not compile again.
    monkeypatch.setattr(unloaded, "_jit", lambda: pytest.fail("compiled twice"))
    assert unloaded._load() is kernel
    assert numba is not None


def test_the_loaded_kernel_is_the_numpy_formulas(unloaded):
    pytest.importorskip("numba")
    kernel = unloaded._load()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3))
    x /= np.linalg.norm(x, axis=0)
    g, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    out, new_b = np.empty_like(x), np.empty_like(x)
    kernel(x, g, b, out, new_b, 0.3, 0.9, True, True, 0.5)
    m = Oblique(5, 3, axis=0, transport="parallel")
    ref_out, ref_b = unloaded._numpy_step(m, x, g, b, 0.3, 0.9, True, True, np.empty_like(x))
    # Same formulas, sums in another order: a few ulps of the O(1) entries.
    np.testing.assert_allclose(out, ref_out, rtol=0, atol=16 * EPS64)
    np.testing.assert_allclose(new_b, ref_b, rtol=0, atol=16 * EPS64)


def test_without_numba_there_is_no_kernel_and_the_numpy_path_runs(unloaded, monkeypatch):
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    assert unloaded._jit() is False
    assert unloaded._load() is None
    assert unloaded._STATE["kernel"] is False  # not tried again at every step
    x = np.array([[1.0, 0.0], [0.0, 1.0]])
    g = np.array([[0.0, 1.0], [1.0, 0.0]])
    out, new_b = unloaded.momentum_step(Oblique(2, 2, axis=0), x, g, None, 0.5, 0.9)
    # d = g (normal to x per column), t = 0.5: x+ = cos(t) x - sin(t) d/||d||.
    np.testing.assert_allclose(out, np.cos(0.5) * x - np.sin(0.5) * g, rtol=0, atol=4 * EPS64)


def test_a_broken_numba_install_leaves_the_numpy_path(unloaded, monkeypatch):
    # Importing numba fails with something other than ImportError (e.g. a binary mismatch).
    class Broken:
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name == "numba":
                raise OSError("numba: undefined symbol")
            return None

    monkeypatch.delitem(sys.modules, "numba", raising=False)
    monkeypatch.setattr(sys, "meta_path", [Broken(), *sys.meta_path])
    assert unloaded._jit() is False
    assert unloaded._load() is None


def _njit_spy(monkeypatch, numba, fail):
    """Replace numba.njit: record the ``cache`` asked for, raise RuntimeError when ``fail(cache)``."""
    calls = []
    real = numba.njit

    def njit(*args, **options):
        calls.append(options.get("cache"))
        if fail(options.get("cache")):
            raise RuntimeError("cannot cache function: no locator available")
        return real(*args, **options)

    monkeypatch.setattr(numba, "njit", njit)
    return calls


def test_without_a_writable_cache_the_kernels_compile_uncached(unloaded, monkeypatch):
    numba = pytest.importorskip("numba")
    calls = _njit_spy(monkeypatch, numba, fail=lambda cache: cache)
    kernel = unloaded._jit()
    assert calls == [True, False, False]
    assert kernel is unloaded._momentum_lead
    assert kernel.py_func is _plain(kernel) and not _caching(kernel)
    assert not _caching(unloaded._lead_coefs)
    assert unloaded._lead_coefs.targetoptions["nogil"] is True


def test_when_nothing_compiles_the_plain_functions_stay(unloaded, monkeypatch):
    numba = pytest.importorskip("numba")
    plain_coefs, plain_lead = unloaded._lead_coefs, unloaded._momentum_lead
    calls = _njit_spy(monkeypatch, numba, fail=lambda cache: True)
    assert unloaded._jit() is False
    assert calls == [True, False]
    assert unloaded._lead_coefs is plain_coefs and unloaded._momentum_lead is plain_lead


# --- the cancellation threshold ----------------------------------------------------------


def _reference(x, g, lr):
    """exp_x(-lr d) and the parallel transport of d along it (mpmath, 40 digits), b = 0."""
    with mpmath.workdps(40):
        xm, gm = [mpmath.mpf(float(v)) for v in x], [mpmath.mpf(float(v)) for v in g]
        xx = mpmath.fsum(v * v for v in xm)
        c = mpmath.fsum(u * v for u, v in zip(xm, gm)) / xx
        d = [v - c * u for u, v in zip(xm, gm)]
        nd, nx = mpmath.sqrt(mpmath.fsum(v * v for v in d)), mpmath.sqrt(xx)
        t = lr * nd
        x_new = [mpmath.cos(t) * u / nx - mpmath.sin(t) * v / nd for u, v in zip(xm, d)]
        b_new = [mpmath.cos(t) * v + nd * mpmath.sin(t) * u / nx for u, v in zip(xm, d)]
        return np.array(x_new, dtype=np.float64), np.array(b_new, dtype=np.float64)


def _nearly_normal(n, seed, eps, normal=2.0):
    """A unit x and g = normal x + eps u (u a unit tangent): dd / aa = eps^2 / (normal^2 + eps^2)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    x /= np.linalg.norm(x)
    u = rng.standard_normal(n)
    u -= (u @ x) * x
    u /= np.linalg.norm(u)
    return x, normal * x + eps * u


@pytest.mark.parametrize("scale", [1.0, 4.0])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_float64_recomputes_a_cancelled_dd_exactly(layout, scale):
    # dd / aa = 2.25e-6: above the float32 threshold 4 * 2^-25 = 1.2e-7, below 1/2. The
    # subtraction <a,a> - c <x,a> loses about aa/dd * eps of dd: ~4e5 eps, which at t = 1
    # moves x+ by ~2e5 eps; recomputed, x+ carries only the rounding of pa a + px x with
    # |pa| ~ lr: a few lr ||a|| eps. The formulas take ||x|| != 1 (the correction of c is
    # <x, d> / <x, x>): scale 4 checks that too.
    eps = 3e-3
    x, g = _nearly_normal(4, 3, eps)
    x = x * scale
    lr = 1.0 / eps  # t = lr ||d|| = 1
    if layout == "strided":  # the NumPy path; contiguous is the compiled kernel (with numba)
        x, g = np.repeat(x, 2)[::2], np.repeat(g, 2)[::2]
    out, new_b = _momentum.momentum_step(Sphere(4, transport="parallel"), x, g, None, lr, 0.9)
    x_ref, b_ref = _reference(x, g, lr)
    assert out.dtype == new_b.dtype == np.float64
    np.testing.assert_allclose(out, x_ref, rtol=0, atol=4 * lr * np.linalg.norm(g) * EPS64)
    # b+ = qa a + qx x with |qa|, |qx| ~ 1: a few ||a|| eps.
    np.testing.assert_allclose(new_b, b_ref, rtol=0, atol=4 * np.linalg.norm(g) * EPS64)


def test_float64_recompute_is_per_factor_in_the_kernel():
    # Three factors (columns of a C-contiguous Oblique(4, 3, axis=0)), each with t = 1: only
    # the middle one cancels (dd / aa = 0.9, 2.25e-6, 0.5); each matches its own reference.
    cols = [_nearly_normal(4, s, 3e-3, c) for s, c in ((1, 1e-3), (2, 2.0), (5, 3e-3))]
    x = np.ascontiguousarray(np.stack([c[0] for c in cols], axis=1))
    g = np.ascontiguousarray(np.stack([c[1] for c in cols], axis=1))
    lr = 1.0 / 3e-3
    out, new_b = _momentum.momentum_step(Oblique(4, 3, axis=0, transport="parallel"),
                                         x, g, None, lr, 0.0)
    for j in range(3):
        x_ref, b_ref = _reference(x[:, j], g[:, j], lr)
        scale = np.linalg.norm(g[:, j])
        np.testing.assert_allclose(out[:, j], x_ref, rtol=0, atol=4 * lr * scale * EPS64)
        np.testing.assert_allclose(new_b[:, j], b_ref, rtol=0, atol=4 * scale * EPS64)


def test_float32_kernel_recomputes_below_its_own_threshold():
    # The compiled kernel sums float32 data in float64 and forms x+ in float64: one rounding
    # to float32 at the end. The subtraction <a,a> - c <x,a> loses ~aa/dd * eps64 of dd;
    # the float32 threshold (dd < rows 2^-25 aa = 1.2e-7 aa) recomputes below it. At
    # dd / aa = 2.5e-11 the subtraction would move x+ by ~4 float32 ulps; recomputed, x+ and
    # b+ are the reference rounded to float32 (within one ulp).
    pytest.importorskip("numba")  # the NumPy path forms x+ in float32: ~lr eps32 at lr = 1e5
    eps32 = np.finfo(np.float32).eps
    x, g = _nearly_normal(4, 3, 1e-5)
    x, g = x.astype(np.float32), g.astype(np.float32)
    with mpmath.workdps(40):  # lr = 1 / ||d||: t = 1
        xm, gm = [mpmath.mpf(float(v)) for v in x], [mpmath.mpf(float(v)) for v in g]
        c = mpmath.fsum(u * v for u, v in zip(xm, gm)) / mpmath.fsum(u * u for u in xm)
        nd = float(mpmath.sqrt(mpmath.fsum((v - c * u) ** 2 for u, v in zip(xm, gm))))
    assert 1e-11 < nd**2 / float(g.astype(np.float64) @ g) < 1e-10
    lr = 1.0 / nd
    out, new_b = _momentum.momentum_step(Sphere(4, transport="parallel"), x, g, None, lr, 0.9)
    x_ref, b_ref = _reference(x, g, lr)
    assert out.dtype == new_b.dtype == np.float32
    np.testing.assert_allclose(out, x_ref, rtol=0, atol=eps32)
    np.testing.assert_allclose(new_b, b_ref, rtol=0, atol=eps32 * nd)
