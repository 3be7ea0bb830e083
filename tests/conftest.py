"""Shared fixtures and helpers of the test suite.

* ``MANIFOLD_CASES``: factories of every manifold the conformance suite runs
  over (each sphere-like manifold with each retraction and transport), and
  the session fixtures ``manifold`` and ``dtype`` parametrized over them.
* ``tol(dtype, factor)``: tolerances come from the dtype, ``factor`` times
  its machine epsilon; the factor is stated where the tolerance is used.
* Tuple-aware arithmetic: points and tangent vectors of a ``Product`` are
  tuples of arrays, of the other manifolds arrays; ``add``, ``scale``,
  ``allclose``... accept both.
* References that do not call the code under test: the Frobenius inner
  product, per-factor norms of the sphere factors, flattening.

Helpers are imported by the test modules with ``from conftest import ...``.

Hypothesis runs derandomized by default, so that CI sees the same examples on
every run; ``HYPOTHESIS_PROFILE=explore`` draws fresh ones (with
``SPHERENET_TEST_EXAMPLES=N`` for more of them).
"""

import os

import numpy as np
import pytest
from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

from spherenet import Euclidean, Oblique, Product, Sphere

RETRACTIONS = ("exp", "projection")
TRANSPORTS = ("projection", "parallel")
DTYPES = (np.float32, np.float64)


def _sphere_cases():
    cases = []
    for shape in [(5,), (3, 4), (2,)]:
        for retraction in RETRACTIONS:
            for transport in TRANSPORTS:
                dims = "x".join(map(str, shape))
                cases.append(
                    pytest.param(
                        lambda s=shape, r=retraction, t=transport: Sphere(
                            *s, retraction=r, transport=t
                        ),
                        id=f"Sphere{dims}-{retraction}-{transport}",
                    )
                )
    return cases


#: Factories of the manifolds of the conformance suite, as ``pytest.param``
#: objects with readable ids.
MANIFOLD_CASES = _sphere_cases() + [
    pytest.param(lambda: Oblique(4, 6, axis=0), id="Oblique4x6-axis0"),
    pytest.param(lambda: Oblique(4, 6, axis=1), id="Oblique4x6-axis1"),
    pytest.param(
        lambda: Oblique(4, 6, axis=0, retraction="projection", transport="parallel"),
        id="Oblique4x6-axis0-projection-parallel",
    ),
    pytest.param(lambda: Oblique(shape=(2, 3, 4), axis=(0, 1)), id="Oblique2x3x4-axis01"),
    pytest.param(lambda: Euclidean(3, 2), id="Euclidean3x2"),
    pytest.param(lambda: Product([Oblique(3, 4), Euclidean(4)]), id="Product-Oblique3x4-Euclidean4"),
    pytest.param(
        lambda: Product([Sphere(3, retraction="projection", transport="parallel"), Euclidean(2)]),
        id="Product-Sphere3-projection-parallel-Euclidean2",
    ),
]


@pytest.fixture(scope="session", params=MANIFOLD_CASES)
def manifold(request):
    """Every manifold of ``MANIFOLD_CASES`` (session scope: manifolds are immutable)."""
    return request.param()


@pytest.fixture(scope="session", params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    """float32 and float64."""
    return np.dtype(request.param)


# --- tolerances ------------------------------------------------------------------


def eps(dtype):
    """Machine epsilon of ``dtype`` as a Python float."""
    return float(np.finfo(dtype).eps)


def tol(dtype, factor):
    """``factor`` times the machine epsilon of ``dtype``."""
    return factor * eps(dtype)


# --- tuple-aware arithmetic --------------------------------------------------------


def parts(x):
    """The arrays of a point or tangent vector: a tuple for every manifold."""
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


def _rebuild(like, arrays):
    return tuple(arrays) if isinstance(like, (tuple, list)) else arrays[0]


def add(x, y):
    """x + y, part by part."""
    return _rebuild(x, [a + b for a, b in zip(parts(x), parts(y))])


def sub(x, y):
    """x - y, part by part."""
    return _rebuild(x, [a - b for a, b in zip(parts(x), parts(y))])


def scale(c, x):
    """c * x with the scalar cast to each part's dtype (float32 stays float32)."""
    return _rebuild(x, [a * a.dtype.type(c) for a in parts(x)])


def lincomb(a, u, b, v):
    """a * u + b * v."""
    return add(scale(a, u), scale(b, v))


def copy(x):
    """A deep copy of the arrays."""
    return _rebuild(x, [np.array(a, copy=True) for a in parts(x)])


def astype(x, dtype):
    return _rebuild(x, [np.asarray(a).astype(dtype) for a in parts(x)])


def dtypes(x):
    return [a.dtype for a in parts(x)]


def allclose(x, y, rtol=0.0, atol=0.0):
    """True when every part of x is close to the same part of y."""
    px, py = parts(x), parts(y)
    return len(px) == len(py) and all(
        a.shape == b.shape and np.allclose(a, b, rtol=rtol, atol=atol) for a, b in zip(px, py)
    )


def assert_close(actual, expected, rtol=0.0, atol=0.0, err_msg=""):
    """``np.testing.assert_allclose`` part by part (compared in float64)."""
    pa, pe = parts(actual), parts(expected)
    assert len(pa) == len(pe), f"{len(pa)} parts != {len(pe)} parts. {err_msg}"
    for i, (a, e) in enumerate(zip(pa, pe)):
        np.testing.assert_allclose(
            np.asarray(a, dtype=np.float64),
            np.asarray(e, dtype=np.float64),
            rtol=rtol,
            atol=atol,
            err_msg=f"part {i}. {err_msg}",
        )


def assert_equal(actual, expected):
    pa, pe = parts(actual), parts(expected)
    assert len(pa) == len(pe)
    for a, e in zip(pa, pe):
        np.testing.assert_array_equal(a, e)


# --- independent references ----------------------------------------------------


def frobenius(u, v):
    """The Frobenius inner product, summed over the parts, in float64."""
    return float(
        sum(np.sum(np.asarray(a, np.float64) * np.asarray(b, np.float64)) for a, b in zip(parts(u), parts(v)))
    )


def fnorm(u):
    """The Frobenius norm, over all parts, in float64."""
    return float(np.sqrt(sum(np.sum(np.asarray(a, np.float64) ** 2) for a in parts(u))))


def factors(manifold):
    """The non-product factors of a manifold."""
    return manifold.manifolds if isinstance(manifold, Product) else (manifold,)


def sphere_axes(m):
    """The axes spanned by one unit sphere of ``m``, or None for a flat factor."""
    if isinstance(m, Sphere):
        return tuple(range(len(m.shape)))
    if isinstance(m, Oblique):
        return m.axis if isinstance(m.axis, tuple) else (m.axis,)
    if isinstance(m, Euclidean):
        return None
    raise TypeError(f"unknown factor {m!r}")


def sphere_factor_norms(manifold, u):
    """Norms (float64) of ``u`` over every unit-sphere factor of ``manifold``, as one flat array."""
    out = []
    for m, a in zip(factors(manifold), parts(u)):
        axes = sphere_axes(m)
        if axes is not None:
            out.append(np.sqrt(np.sum(np.asarray(a, np.float64) ** 2, axis=axes)).ravel())
    return np.concatenate(out) if out else np.zeros(0)


def cap_sphere_factors(manifold, u, cap):
    """``u`` rescaled (as a whole) so that no sphere factor has norm above ``cap``."""
    norms = sphere_factor_norms(manifold, u)
    largest = float(np.max(norms)) if norms.size else 0.0
    return scale(cap / largest, u) if largest > cap else u


def is_parallel(manifold):
    """True if every factor's transport is the parallel transport."""
    return all(m.transport == "parallel" for m in factors(manifold))


def size(manifold):
    """Number of entries of a point."""
    return sum(int(np.prod(m.shape)) for m in factors(manifold))


def flatten(x):
    """All entries of all parts, as one float64 vector."""
    return np.concatenate([np.asarray(a, np.float64).ravel() for a in parts(x)])


def unflatten(manifold, vec, dtype):
    """The inverse of :func:`flatten` for the point structure of ``manifold``."""
    arrays, start = [], 0
    for m in factors(manifold):
        n = int(np.prod(m.shape))
        arrays.append(np.asarray(vec[start : start + n]).reshape(m.shape).astype(dtype))
        start += n
    return tuple(arrays) if isinstance(manifold, Product) else arrays[0]


def random_ambient(manifold, rng, dtype):
    """A standard normal array (tuple for products) of the manifold's shape."""
    return unflatten(manifold, rng.standard_normal(size(manifold)), dtype)


def tangent(manifold, x, rng, norm=1.0):
    """A random tangent vector at x of the given norm and x's dtype.

    The projection of a Gaussian, projected a second time in float64: one
    projection leaves a normal residue of ~eps ||z||, which normalizing a
    nearly normal draw z would blow up. Made without ``random_tangent``,
    which has its own test.
    """
    x64 = astype(x, np.float64)
    z = random_ambient(manifold, rng, np.float64)
    # unchecked: x cast from float32 is off unit norm by ~1e-8 in float64.
    fast = manifold.unchecked
    p = fast.proj(x64, fast.proj(x64, z))
    return astype(scale(norm / fnorm(p), p), dtypes(x)[0])


class Quadratic:
    """f(x) = <a, x> + 1/2 <x, A x> on the flattened point, A symmetric.

    Its Euclidean gradient a + A x and Hessian-vector product A u are exact;
    f is evaluated in float64 whatever the dtype of the point.
    """

    def __init__(self, manifold, rng):
        n = size(manifold)
        self.manifold = manifold
        self.a = rng.standard_normal(n)
        b = rng.standard_normal((n, n)) / np.sqrt(n)
        self.A = 0.5 * (b + b.T)

    def __call__(self, x):
        v = flatten(x)
        return float(self.a @ v + 0.5 * v @ (self.A @ v))

    def egrad(self, x, dtype):
        return unflatten(self.manifold, self.a + self.A @ flatten(x), dtype)

    def ehess(self, u, dtype):
        return unflatten(self.manifold, self.A @ flatten(u), dtype)
