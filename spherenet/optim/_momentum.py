r"""The fused momentum step of :class:`~spherenet.optim.RSGD` (no Nesterov).

On a sphere factor with point x, Euclidean gradient g and momentum buffer b
(tangent at x, already transported), RSGD computes

    a = mu b + g,  d = a - c x  with  c = <x, a>/<x, x>   (= mu b + grad f(x)),
    x+ = alpha x + beta d                                     (the retraction),
    b+ = transp_{x -> x+}(d).

With dd = ||d||^2 (and <x, d> = 0), both retractions give a point of unit
norm and both transports are combinations of d and x:

* exp: alpha = cos(t)/||x||, beta = -lr sinc(t), t = lr ||d||;
  projection: alpha = s, beta = -lr s, s = 1/sqrt(<x,x> + lr^2 dd);
* projection transport: b+ = d - <x+, d> x+ = (1 - beta^2 dd) d - alpha beta dd x;
* parallel transport: b+ = d - kappa (x/||x|| + x+), kappa = beta dd / (1 + alpha ||x||);
  with the exp retraction this is b+ = cos(t) d + ||d|| sin(t) x/||x|| (the velocity
  of the step's great circle), which is how it is computed: 1 + cos t cancels
  as t -> pi.

So one step is two passes over memory: the per-factor sums <x,x>, <x,a>,
<a,a> (float64 accumulators; dd = <a,a> - c <x,a>, recomputed exactly in a
third pass when that subtraction cancels), then x+ and b+ as combinations of
a and x, element by element, into new arrays (neither the point nor the state
passed in is changed). The compiled kernel (numba, the optional ``fast`` extra) handles factors along the leading axis of a C-contiguous array, e.g.
``Oblique(m, n, axis=0)``; other factors and NumPy-only installs run the same
formulas with whole-array NumPy operations. Euclidean factors take the plain
momentum step, b+ = mu b + g, x+ = x - lr b+; so does the projection strategy
(Keras's ``unit_norm``), whose sphere factors are then normalized.
"""

import threading

import numpy as np

from ..manifolds import Euclidean, Product
from ..manifolds.sphere import _sinc, _Spheres
from ..strategies import ProjectionGeometry

__all__ = ["momentum_step"]

_STATE = {"kernel": None}
_LOCK = threading.Lock()
_TINY_T = 1e-3


def momentum_step(geometry, x, egrad, buf, lr, mu):
    """``(x+, b+)`` of one RSGD momentum step, or None when ``geometry`` is not supported.

    Supported: Sphere, Oblique, Euclidean and Products of them (the
    riemannian and none strategies), and the projection strategy's geometry. ``buf`` is None at the first step. No
    argument is written into.
    """
    if isinstance(geometry, ProjectionGeometry):
        # Keras's unit_norm: the plain momentum step in the ambient space, then normalize.
        flat = momentum_step(geometry._flat, x, egrad, buf, lr, mu)
        return geometry._normalize(flat[0]), flat[1]
    if isinstance(geometry, Product):
        if not all(isinstance(m, (_Spheres, Euclidean)) for m in geometry.manifolds):
            return None
        bufs = (None,) * len(x) if buf is None else buf
        pairs = [_factor_step(m, xi, gi, bi, lr, mu)
                 for m, xi, gi, bi in zip(geometry.manifolds, x, egrad, bufs)]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    if isinstance(geometry, (_Spheres, Euclidean)):
        return _factor_step(geometry, x, egrad, buf, lr, mu)
    return None


def _factor_step(manifold, x, g, b, lr, mu):
    dtype = x.dtype
    if isinstance(manifold, Euclidean):
        if b is None:
            b = np.array(g, copy=True)
        else:
            b = np.multiply(b, dtype.type(mu))
            np.add(b, g, out=b)
        new = np.multiply(b, dtype.type(-lr))
        np.add(new, x, out=new)
        return new, b
    if b is None:
        b = np.zeros_like(x)
    exp = manifold.retraction == "exp"
    parallel = manifold.transport == "parallel"
    out = np.empty_like(x)
    kernel = _kernel_for(manifold, x, g, b)
    if kernel is not None:
        new_b = np.empty_like(x)
        rows = manifold._red.factor_size
        rho = 0.5 if dtype == np.float64 else min(0.5, rows * 2.0**-25)
        kernel(x.reshape(rows, -1), g.reshape(rows, -1), b.reshape(rows, -1),
               out.reshape(rows, -1), new_b.reshape(rows, -1), float(lr), float(mu), exp,
               parallel, rho)
        return out, new_b
    return _numpy_step(manifold, x, g, b, lr, mu, exp, parallel, out)


def _numpy_step(manifold, x, g, b, lr, mu, exp, parallel, out):
    red, dtype = manifold._red, x.dtype
    a = np.multiply(b, dtype.type(mu))  # a = mu b + g; b+ is written over it at the end
    np.add(a, g, out=a)
    xx, xa, aa = red.dot(x, x), red.dot(x, a), red.dot(a, a)
    c = xa / xx
    dd = aa - c * xa
    rho = 0.5 if dtype == np.float64 else min(0.5, red.factor_size * 2.0**-25)
    if np.any(dd < rho * aa):  # the subtraction cancelled: recompute exactly
        d = a - c.astype(dtype) * x
        c = c + red.dot(x, d) / xx
        d = a - c.astype(dtype) * x
        dd = red.dot(d, d)
    dd = np.maximum(dd, 0.0)
    pa, px, qa, qx = _coefs(lr, xx, c, dd, exp, parallel)
    np.multiply(x, px.astype(dtype), out=out)
    out += pa.astype(dtype) * a
    tmp = qx.astype(dtype) * x
    np.multiply(a, qa.astype(dtype), out=a)
    a += tmp
    return out, a


def _coefs(lr, xx, c, dd, exp, parallel):
    """Per-factor coefficients of x+ = pa a + px x and b+ = qa a + qx x (NumPy, vectorized)."""
    norm_x = np.sqrt(xx)
    if exp:
        t = lr * np.sqrt(dd)
        alpha, beta = np.cos(t) / norm_x, -lr * _sinc(t)
    else:
        s = 1.0 / np.sqrt(xx + lr * lr * dd)
        alpha, beta = s, -lr * s
    if parallel and exp:
        # Along the step's own great circle: cos(t) d + ||d|| sin(t) x/||x||,
        # without 1 + cos t (which cancels as t -> pi and is 0 at t = pi).
        ka, kx = alpha * norm_x, -beta * dd / norm_x
    elif parallel:  # 1 + alpha ||x|| >= 1 for the projection retraction
        kappa = beta * dd / (1.0 + alpha * norm_x)
        ka, kx = 1.0 - kappa * beta, -kappa * (1.0 / norm_x + alpha)
    else:
        ka, kx = 1.0 - beta * beta * dd, -alpha * beta * dd
    # d = a - c x
    return beta, alpha - beta * c, ka, kx - ka * c


# --- the compiled kernel ---------------------------------------------------------------


def _kernel_for(manifold, x, g, b):
    """The numba kernel when the factors span the leading axes of C-contiguous arrays."""
    red = manifold._red
    if red.axes != tuple(range(len(red.axes))) or x.dtype not in (np.float32, np.float64):
        return None
    for a in (x, g, b):
        if a.dtype != x.dtype or a.shape != x.shape or not a.flags.c_contiguous:
            return None
    return _load()


def _load():
    if _STATE["kernel"] is None:
        with _LOCK:
            if _STATE["kernel"] is None:
                _STATE["kernel"] = _jit()
    return _STATE["kernel"] or None


def _jit():
    try:
        import numba
    except ImportError:
        return False
    except Exception:  # a broken numba install: the NumPy path is exact too
        return False
    global _lead_coefs, _momentum_lead
    options = {"nogil": True, "error_model": "numpy"}
    plain = (_lead_coefs, _momentum_lead)
    for cache in (True, False):
        try:
            _lead_coefs = numba.njit(cache=cache, **options)(plain[0])
            _momentum_lead = numba.njit(cache=cache, **options)(plain[1])
            return _momentum_lead
        except RuntimeError:  # no writable cache directory: compile without one
            _lead_coefs, _momentum_lead = plain
    return False


def _lead_coefs(lr, xx, c, dd, exp, parallel):
    norm_x = np.sqrt(xx)
    if exp:
        t = lr * np.sqrt(dd)
        if t < _TINY_T:
            t2 = t * t
            sinc = 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0)
        else:
            sinc = np.sin(t) / t
        alpha, beta = np.cos(t) / norm_x, -lr * sinc
    else:
        s = 1.0 / np.sqrt(xx + lr * lr * dd)
        alpha, beta = s, -lr * s
    if parallel and exp:  # as in _coefs
        ka, kx = alpha * norm_x, -beta * dd / norm_x
    elif parallel:
        kappa = beta * dd / (1.0 + alpha * norm_x)
        ka, kx = 1.0 - kappa * beta, -kappa * (1.0 / norm_x + alpha)
    else:
        ka, kx = 1.0 - beta * beta * dd, -alpha * beta * dd
    return beta, alpha - beta * c, ka, kx - ka * c


def _momentum_lead(x, g, b, out, new_b, lr, mu, exp, parallel, rho):
    """x, g, b, out, new_b: (R, F) C-contiguous; one factor per column."""
    rows, cols = x.shape
    xx = np.zeros(cols)
    xa = np.zeros(cols)
    aa = np.zeros(cols)
    for i in range(rows):
        for j in range(cols):
            xv = np.float64(x[i, j])
            av = mu * np.float64(b[i, j]) + np.float64(g[i, j])
            xx[j] += xv * xv
            xa[j] += xv * av
            aa[j] += av * av
    c = xa / xx
    dd = aa - c * xa
    exact = False
    for j in range(cols):
        if dd[j] < rho * aa[j]:
            exact = True
    if exact:  # the subtraction cancelled in some column: recompute those exactly
        xd = np.zeros(cols)
        for i in range(rows):
            for j in range(cols):
                xv = np.float64(x[i, j])
                xd[j] += xv * (mu * np.float64(b[i, j]) + np.float64(g[i, j]) - c[j] * xv)
        for j in range(cols):
            c[j] += xd[j] / xx[j]
        dd2 = np.zeros(cols)
        for i in range(rows):
            for j in range(cols):
                xv = np.float64(x[i, j])
                d = mu * np.float64(b[i, j]) + np.float64(g[i, j]) - c[j] * xv
                dd2[j] += d * d
        for j in range(cols):
            if dd[j] < rho * aa[j]:
                dd[j] = dd2[j]
    pa = np.empty(cols)
    px = np.empty(cols)
    qa = np.empty(cols)
    qx = np.empty(cols)
    for j in range(cols):
        pa[j], px[j], qa[j], qx[j] = _lead_coefs(lr, xx[j], c[j], max(dd[j], 0.0), exp, parallel)
    for i in range(rows):
        for j in range(cols):
            xv = np.float64(x[i, j])
            av = mu * np.float64(b[i, j]) + np.float64(g[i, j])
            out[i, j] = pa[j] * av + px[j] * xv
            new_b[i, j] = qa[j] * av + qx[j] * xv
