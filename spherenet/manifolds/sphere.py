"""Unit spheres: the sphere of arrays of unit Frobenius norm, and the shared maths
of products of spheres (:class:`~spherenet.Oblique` is a product of spheres
that reuses every formula here, factor by factor)."""

import copy
import math

import numpy as np

from . import _kernels
from ._reduce import FactorReducer, hypot
from .base import Manifold, _check_array, _check_choice, _check_shape, as_dtype, as_rng

__all__ = ["Sphere"]

_RETRACTIONS = ("exp", "projection")
# Whether long double carries more digits than double (x86-64: 64-bit significand,
# aarch64 Linux: 113); where it does not, long steps keep float64 accuracy.
_EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
_WRAP = 2.0 * np.pi
_TRANSPORTS = ("projection", "parallel")


def _sinc(t):
    """sin(t)/t, exact near 0 (never divides by a tiny t); even in t."""
    small = np.abs(t) < 1e-3
    safe = np.where(small, 1.0, t)
    t2 = t * t
    return np.where(small, 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0), np.sin(safe) / safe)


class _Spheres(Manifold):
    """A product of unit spheres, one per factor; the factor spans ``axes``.

    Every method works on all factors at once with whole-array NumPy
    operations; per-factor scalars (inner products, norms, angles) are
    computed in float64 and cast back to the array's dtype before they
    multiply an array, so float32 stays float32.
    """

    def __init__(self, shape, axes, retraction, transport):
        self._shape = shape
        self._axes = axes
        self.retraction = _check_choice("retraction", retraction, _RETRACTIONS)
        self.transport = _check_choice("transport", transport, _TRANSPORTS)
        self._red = FactorReducer(shape, axes)

    def _key(self):
        return (self._shape, self._axes, self.retraction, self.transport)

    @property
    def shape(self):
        """Shape of a point."""
        return self._shape

    @property
    def n_factors(self):
        """Number of unit spheres in the product (1 for a Sphere)."""
        return self._red.n_factors

    @property
    def dim(self):
        return int(np.prod(self._shape)) - self._red.n_factors

    @property
    def typical_dist(self):
        return float(np.pi * np.sqrt(self._red.n_factors))

    # --- tangent spaces and metric ---------------------------------------

    def _coef(self, c, like):
        """A per-factor float64 scalar array cast to ``like``'s dtype."""
        return c.astype(like.dtype, copy=False)

    def proj(self, x, u):
        # One fresh array, updated in place: each full-size temporary costs page faults.
        out = np.multiply(x, -self._coef(self._red.dot(x, u), x))
        out += u
        return out

    def ehess2rhess(self, x, egrad, ehess, u):
        # Hess f(x)[u] = P_x(D^2 f(x)[u]) - <x, egrad> u   (Absil et al. 2013)
        normal = self._coef(self._red.dot(x, egrad), x)
        return self.proj(x, ehess) - normal * u

    def inner(self, x, u, v):
        return self._red.total(u, v)

    def norm(self, x, u):
        if u.dtype == np.float64:
            with np.errstate(over="ignore"):  # an overflow (inf) takes the safe path below
                sq = self._red.total(u, u)
            if self._red.n_factors * self._red._low <= sq < np.inf:
                return math.sqrt(sq)
        return hypot(self._red.norms(u))

    def with_options(self, retraction=None, transport=None):
        """The same manifold with another retraction and/or transport."""
        new = copy.copy(self)
        if retraction is not None:
            new.retraction = _check_choice("retraction", retraction, _RETRACTIONS)
        if transport is not None:
            new.transport = _check_choice("transport", transport, _TRANSPORTS)
        return new

    def violation(self, x):
        """Largest constraint violation max_k | ||x_k|| - 1 | over the factors."""
        return float(np.max(np.abs(self._red.norms(x) - 1.0)))

    # --- geodesics ---------------------------------------------------------

    def _angles(self, x, y):
        """Per-factor angles between x and y, and the tangential part of y at x.

        The tangential part is taken from y - x for near points and from
        y + x for nearly antipodal ones, so that both the sine (its norm) and
        the cosine (the radial part) keep full relative accuracy; the angle
        is atan2(sin, cos), never arccos of an inner product.
        """
        near = self._red.dot(x, y) >= 0.0
        sign = self._coef(np.where(near, -1.0, 1.0), x)
        w = y + sign * x
        a = self._red.dot(x, w)
        v = w - self._coef(a, x) * x
        sine = self._red.norms(v)
        cosine = np.where(near, 1.0 + a, a - 1.0)
        return np.arctan2(sine, cosine), v, sine

    def dist(self, x, y):
        theta, _, _ = self._angles(x, y)
        return hypot(theta)

    def exp(self, x, u):
        # A step of t rad moves the point by the error of t: float64 sums give
        # t to a relative eps, i.e. t ulps. Steps that wrap around the sphere
        # (t > 2 pi, float64 data) are worked in extended precision so that the
        # result stays a few ulps off; shorter ones cost a few ulps at most.
        long_step = (
            u.dtype == np.float64 and _EXTENDED
            and float(np.max(self._red.dot(u, u))) > _WRAP * _WRAP
        )
        # The compiled kernel (numba extra) evaluates the same formula in one
        # call: gradient_step with g = u, lr = -1 retracts u's tangent part.
        out = np.empty_like(x)
        if not long_step and u.dtype == x.dtype and _kernels.gradient_step(
            self._red, True, x, u, -1.0, out
        ):
            return out
        # float32 data are worked in float64 and rounded once: forming the
        # tangent part in float32 would move ||u|| by an ulp of ||u||, i.e.
        # 6e-5 rad for a step of 1e3. Long float64 steps likewise in long double.
        dtype, work = x.dtype, np.longdouble if long_step else np.float64
        x, u = x.astype(work, copy=False), u.astype(work, copy=False)
        # x is read through x/||x|| and u through its tangent part u - <x,u>/<x,x> x,
        # both the identity on exact inputs. Without this, the rounding residue
        # of a projected gradient with a large normal part (|| g || eps), times
        # a long step, moves the point off the sphere, and drift accumulates.
        if long_step:
            def dot(a, b):
                return np.sum(a * b, axis=self._axes, keepdims=True)
        else:
            dot = self._red.dot
        xx = dot(x, x)
        u = u - (dot(x, u) / xx) * x
        t = np.sqrt(dot(u, u)) if long_step else self._red.norms(u)
        y = (np.cos(t) / np.sqrt(xx)) * x + _sinc(t) * u
        return y.astype(dtype, copy=False)

    def log(self, x, y):
        theta, v, sine = self._angles(x, y)
        # For identical points v = 0 and any finite factor gives 0; for exactly
        # antipodal points the log is not defined and 0 is returned.
        factor = np.where(sine > 0.0, theta / np.where(sine > 0.0, sine, 1.0), 0.0)
        return self._coef(factor, x) * v

    def _retr_projection(self, x, u):
        w = x + u
        w *= self._coef(1.0 / self._red.norms(w), x)
        return w

    def _inverse_retr_projection(self, x, y):
        # u = y/<x,y> - x, written as P_x(y - x)/<x,y>: accurate for near points.
        w = y - x
        a = self._red.dot(x, w)
        cosine = 1.0 + a
        if np.any(cosine <= 0.0):
            raise ValueError(
                "inverse_retr of the projection retraction needs <x, y> > 0 in every "
                f"factor, got min <x, y> = {float(np.min(cosine)):.3g}"
            )
        return (w - self._coef(a, x) * x) * self._coef(1.0 / cosine, x)

    def retr(self, x, u):
        if self.retraction == "exp":
            return self.exp(x, u)
        return self._retr_projection(x, u)

    def inverse_retr(self, x, y):
        if self.retraction == "exp":
            return self.log(x, y)
        return self._inverse_retr_projection(x, y)

    def _transp_parallel(self, x, y, v):
        # Parallel transport along the minimizing geodesic from x to y:
        # v - <y, v>/(1 + <x, y>) (x + y), with 1 + <x, y> = ||x + y||^2 / 2.
        s = x + y
        half = 0.5 * self._red.dot(s, s)
        coef = self._red.dot(y, v) / np.where(half > 0.0, half, np.inf)
        return v - self._coef(coef, x) * s

    def transp(self, x, y, v):
        if self.transport == "parallel":
            return self._transp_parallel(x, y, v)
        return self.proj(y, v)

    def gradient_step(self, x, egrad, lr, out=None):
        """One step ``retr(x, -lr * egrad2rgrad(x, egrad))`` in one call.

        With the optional ``numba`` extra installed this runs as a compiled
        kernel in two or three passes over memory with no full-size temporary;
        otherwise in NumPy. Both evaluate the same formulas: with
        c = <x, g>/<x, x> and r = g - c x (the Riemannian gradient),

        * exp: x+ = cos(t)/||x|| x - lr sinc(t) r, t = lr ||r||;
        * projection: x+ = (x - lr r) / sqrt(<x, x> + lr^2 ||r||^2),

        so the new point has unit norm to rounding whatever the drift of x.

        Parameters
        ----------
        x, egrad : ndarray
            Point and Euclidean gradient (same shape and dtype).
        lr : float
            Step size.
        out : ndarray, optional
            Output array (may be ``x``).

        Returns
        -------
        ndarray

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet import Oblique
        >>> M = Oblique(3, 4)
        >>> x = M.random_point(rng=0)
        >>> y = M.gradient_step(x, np.ones((3, 4)), 0.1)
        >>> bool(np.allclose(np.linalg.norm(y, axis=0), 1.0))
        True
        """
        if out is None:
            out = np.empty_like(x)
        if _kernels.gradient_step(self._red, self.retraction == "exp", x, egrad, float(lr), out):
            return out
        xx = self._red.dot(x, x)
        c = self._red.dot(x, egrad) / xx
        r = egrad - self._coef(c, x) * x
        rr = self._red.dot(r, r)
        if np.any(c * c * xx > rr):
            # Mostly normal gradient: r keeps a rounding residue along x of
            # about eps ||g||, large next to ||r||; project once more (as the
            # compiled kernel refines its coefficient), else the step moves
            # the point off the sphere by ~ lr ||g|| eps.
            r -= self._coef(self._red.dot(x, r) / xx, x) * x
            rr = self._red.dot(r, r)
        if self.retraction == "exp":
            t = abs(lr) * np.sqrt(rr)
            a, b = np.cos(t) / np.sqrt(xx), -lr * _sinc(t)
        else:
            scale = 1.0 / np.sqrt(xx + lr * lr * rr)
            a, b = scale, -lr * scale
        np.multiply(r, self._coef(b, x), out=r)
        np.multiply(x, self._coef(a, x), out=out)
        np.add(out, r, out=out)
        return out

    # --- sampling ------------------------------------------------------------

    def random_point(self, rng=None, dtype=None):
        rng = as_rng(rng)
        z = rng.standard_normal(self._shape)
        return (z / self._red.norms(z)).astype(as_dtype(dtype))

    def random_tangent(self, x, rng=None):
        rng = as_rng(rng)
        x64 = x.astype(np.float64)
        # Project twice: a nearly normal draw leaves a rounding residue along x
        # that the normalization below would blow up ("twice is enough").
        u = self.proj(x64, self.proj(x64, rng.standard_normal(self._shape)))
        size = hypot(self._red.norms(u))
        if size == 0.0:  # every factor is a 0-dimensional sphere (a pair of points)
            return np.zeros_like(x)
        return (u / size).astype(x.dtype)

    def zero_vector(self, x):
        return np.zeros_like(x)

    # --- validation ------------------------------------------------------

    @staticmethod
    def _atol(dtype, atol):
        return 100 * float(np.finfo(dtype).eps) if atol is None else float(atol)

    def check_point(self, x, atol=None):
        _check_array(self, x, "point")
        err = np.abs(self._red.norms(x) - 1.0)
        tol = self._atol(x.dtype, atol)
        if np.max(err) > tol:
            bad = int(np.sum(err > tol))
            raise ValueError(
                f"point is off {self!r}: {bad} of {err.size} factor(s) have norm off 1 by up "
                f"to {float(np.max(err)):.3g} (tolerance {tol:.3g})"
            )
        return x

    def check_tangent(self, x, u, atol=None):
        self.check_point(x, atol)
        _check_array(self, u, "tangent vector")
        if u.dtype != x.dtype:
            raise TypeError(f"tangent vector has dtype {u.dtype} but the point has {x.dtype}")
        normal = np.abs(self._red.dot(x, u))
        tol = self._atol(x.dtype, atol) * max(1.0, float(np.max(self._red.norms(u))))
        if np.max(normal) > tol:
            raise ValueError(
                f"vector is not tangent: its component along the point is up to "
                f"{float(np.max(normal)):.3g} (tolerance {tol:.3g})"
            )
        return u


class Sphere(_Spheres):
    r"""The unit sphere {X : ||X||_F = 1} of arrays of a given shape.

    Parameters
    ----------
    *shape : int
        Shape of a point: ``Sphere(n)`` is the sphere S^{n-1} in R^n,
        ``Sphere(m, n)`` the matrices of unit Frobenius norm.
    retraction : {"exp", "projection"}, default "exp"
        ``retr`` is the exponential map or the metric projection
        (x + u)/||x + u||. On the sphere both cost one pass.
    transport : {"projection", "parallel"}, default "projection"
        ``transp`` projects onto the new tangent space, or is the exact
        parallel transport along the minimizing geodesic.

    Notes
    -----
    With :math:`t = \|u\|`,

    .. math::

        \operatorname{Exp}_x(u) = \cos(t)\,x + \frac{\sin t}{t}\,u, \qquad
        d(x, y) = \operatorname{atan2}(\|P_x(y)\|, \langle x, y\rangle),

    where the sine and cosine of the angle are both formed from the
    difference ``y - x`` (near points) or the sum ``y + x`` (nearly antipodal
    points), so that the distance is accurate to a few ulps everywhere. The
    parallel transport of :math:`v \in T_x` to :math:`T_y` is
    :math:`v - \frac{\langle y, v\rangle}{1 + \langle x, y\rangle}(x + y)`.

    References
    ----------
    .. [1] P.-A. Absil, R. Mahony, J. Trumpf, "An extrinsic look at the
       Riemannian Hessian", GSI 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> M = Sphere(3)
    >>> x = np.array([1.0, 0.0, 0.0])
    >>> y = M.exp(x, np.array([0.0, np.pi / 2, 0.0]))
    >>> np.round(y, 12) + 0.0
    array([0., 1., 0.])
    >>> round(M.dist(x, y), 12)
    1.570796326795
    """

    def __init__(self, *shape, retraction="exp", transport="projection"):
        shape = _check_shape(shape)
        super().__init__(shape, tuple(range(len(shape))), retraction, transport)

    def _repr_args(self):
        dims = ", ".join(map(str, self._shape))
        return f"({dims}, retraction={self.retraction!r}, transport={self.transport!r})"
