"""Unit spheres: the sphere of arrays of unit Frobenius norm, and the shared maths
of products of spheres (:class:`~spherenet.Oblique` is a product of spheres
that reuses every formula here, factor by factor)."""

import copy
import math

import numpy as np

from .. import _tangent
from . import _kernels
from ._reduce import FactorReducer, hypot
from .base import (_OUT, _POINT_ATOL, _SHAPE_ONLY, Manifold, _check_choice, _check_finite,
                   _check_lr, _check_shape, as_dtype, as_rng, point_atol)

__all__ = ["Sphere"]

_RETRACTIONS = ("exp", "projection")
# Whether long double carries more digits than double (x86-64: 64-bit significand,
# aarch64 Linux: 113); where it does not, long steps keep float64 accuracy.
_EXTENDED = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
_WRAP = 2.0 * np.pi
_TRANSPORTS = ("projection", "parallel")
# One float64 factor up to this many entries is stepped with Python-float
# coefficients (_Spheres._step_small): the fixed costs dominate there.
_SMALL = 2048
# The dot of two 1-D arrays: np.vdot's BLAS call (bit for bit), without its argument
# layer; unlike np.vdot it warns on overflow and invalid values, as np.dot does.
_ndarray_dot = np.ndarray.dot


def _sinc(t):
    """sin(t)/t, exact near 0 (never divides by a tiny t); even in t.

    Arrays elementwise; a Python float with Python floats (no array overhead).
    """
    if isinstance(t, float):
        t2 = t * t
        return 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0) if abs(t) < 1e-3 else math.sin(t) / t
    small = np.abs(t) < 1e-3
    safe = np.where(small, 1.0, t)
    t2 = t * t
    return np.where(small, 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0), np.sin(safe) / safe)


def _parallel_coefs(cosine, ss, a, sv, scale, near):
    """Per-factor (alpha, beta) of the parallel transport P(v) = v + alpha s + beta x.

    From cosine = <x, y>, ss = ||s||^2, a = <x, s>, sv = <s, v> with s = y -+ x
    divided by ``scale``: sine = ||s - a x|| (in units of scale), e = (s - a x)/sine,
    <e, v> = sv/sine, and sin/cos of the angle normalized together (y may be
    a few ulps off the sphere). Where sine = 0 (y = +-x exactly) both are 0.
    """
    sine = np.sqrt(np.maximum(ss - a * a, 0.0))
    has_dir = sine > 0.0
    k = np.divide(sv, sine, out=np.zeros_like(sine), where=has_dir)  # <e, v>
    sin_t = sine * scale
    radius = np.hypot(sin_t, cosine)
    sin_t /= radius
    cos_t = cosine / radius
    # cos - 1 = -sin^2/(1 + cos) on the near side: no cancellation.
    cos_m1 = np.where(near, -sin_t * sin_t / (1.0 + np.abs(cos_t)), cos_t - 1.0)
    alpha = np.divide(k * cos_m1, sine, out=np.zeros_like(sine), where=has_dir)
    return alpha, -(alpha * a + k * sin_t)


def _parallel_coefs_scalar(cosine, ss, a, sv, scale):
    """:func:`_parallel_coefs` for one factor, in Python floats."""
    sine = math.sqrt(max(ss - a * a, 0.0))
    if sine == 0.0:
        return 0.0, 0.0
    k = sv / sine
    sin_t = sine * scale
    radius = math.hypot(sin_t, cosine)
    sin_t, cos_t = sin_t / radius, cosine / radius
    cos_m1 = -sin_t * sin_t / (1.0 + cos_t) if cos_t >= 0.0 else cos_t - 1.0
    alpha = k * cos_m1 / sine
    return alpha, -(alpha * a + k * sin_t)


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

    def with_options(self, retraction=None, transport=None):
        """The same manifold with another retraction and/or transport."""
        new = copy.copy(self)
        if retraction is not None:
            new.retraction = _check_choice("retraction", retraction, _RETRACTIONS)
        if transport is not None:
            new.transport = _check_choice("transport", transport, _TRANSPORTS)
        return new

    # --- tangent spaces and metric ---------------------------------------

    def _coef(self, c, like):
        """A per-factor float64 scalar array cast to ``like``'s dtype."""
        return c.astype(like.dtype, copy=False)

    def _proj(self, x, u):
        if self._red.n_factors == 1 and x.dtype == np.float64 and u.dtype == np.float64:
            # One float64 factor: the coefficient as a Python float (the same
            # product as with a one-element array, without building one).
            # (np.vdot: np.dot of the ravels, bit for bit on contiguous arrays.)
            out = np.multiply(x, -float(x.dot(u) if x.ndim == 1 else np.vdot(x, u)))
        else:
            # One fresh array, updated in place: each full-size temporary costs page faults.
            out = np.multiply(x, -self._coef(self._red.dot(x, u), x))
        out += u
        return out

    def _ehess2rhess(self, x, egrad, ehess, u):
        # Hess f(x)[u] = P_x(D^2 f(x)[u]) - <x, egrad> u   (Absil et al. 2013)
        normal = self._coef(self._red.dot(x, egrad), x)
        return self._proj(x, ehess) - normal * u

    def _inner(self, x, u, v):
        if u.dtype == np.float64 and v.dtype == np.float64:
            # FactorReducer.total's dot of the ravels (bit for bit on contiguous arrays).
            return float(u.dot(v) if u.ndim == 1 else np.vdot(u, v))
        return self._red.total(u, v)

    def _norm(self, x, u):
        if u.dtype == np.float64:
            # np.vdot: the BLAS dot of np.dot (same sum, bit for bit), without the
            # floating-point error check, so an overflow (inf, taken by the safe
            # path below) needs no np.errstate, which costs more than the sum.
            sq = float(np.vdot(u, u))
            if self._red.n_factors * self._red._low <= sq < np.inf:
                return math.sqrt(sq)
        return hypot(self._red.norms(u))

    def _norm_and_sq(self, x, u):
        """``(norm(x, u), sq)``: sq is the float64 sum of squares ``np.vdot(u, u)`` that
        the norm was taken from (float64 data, a safe sum), else None."""
        if u.dtype == np.float64:
            sq = float(np.vdot(u, u))  # as _norm
            if self._red.n_factors * self._red._low <= sq < np.inf:
                return math.sqrt(sq), sq
        return self._norm(x, u), None

    def _finite_norm(self, x, u):
        """``norm(x, u)`` when every entry of u is finite, else None.

        For the solvers' evaluations: a float64 sum of squares that is
        finite (and not small enough to have underflowed) both proves the
        entries finite and gives the norm, in one pass; other cases take
        the finiteness test, then :meth:`_norm`.
        """
        if u.dtype == np.float64:
            sq = float(np.vdot(u, u))
            if self._red.n_factors * self._red._low <= sq < np.inf:
                return math.sqrt(sq)  # as _norm, bit for bit
        if not np.isfinite(u).all():
            return None
        return self._norm(x, u)

    def _gradient_and_norm(self, x, egrad):
        """``(rgrad, norm, sq)`` from the Euclidean gradient at x, or None when it is not finite.

        For the solvers' evaluations: ``rgrad = egrad2rgrad(x, egrad)``,
        ``norm = _finite_norm(x, rgrad)`` and ``sq = inner(x, rgrad, rgrad)``,
        bit for bit, and None exactly when egrad or rgrad has a NaN or Inf
        entry (where those calls, after ``_tangent.all_finite(egrad)``, find
        one). On one float64 factor in fewer passes: <x, egrad>, which the
        projection needs, is finite only when every x_i egrad_i is (x is on
        the sphere), so it stands for the test of egrad; the squared norm
        that proves rgrad finite is ``sq`` and gives ``norm``. A caller may
        use ``-sq`` as the slope <rgrad, -rgrad> of steepest descent (the
        same sum of the same products, negated) and ``sq`` as <d, d> of
        ``d = -rgrad`` in :meth:`_retr_line`.
        """
        red = self._red
        if red.n_factors == 1 and x.dtype == np.float64 and egrad.dtype == np.float64:
            # np.vdot, not ndarray.dot: no floating-point warning on NaN/Inf, which are expected.
            vdot = np.vdot
            c = float(vdot(x, egrad))
            if not math.isfinite(c):
                return None
            rgrad = np.multiply(x, -c)  # _proj, bit for bit
            rgrad += egrad
            sq = float(vdot(rgrad, rgrad))
            if red._low <= sq < np.inf:
                return rgrad, math.sqrt(sq), sq
        else:
            if not _tangent.all_finite(egrad):
                return None
            rgrad = self._egrad2rgrad(x, egrad)
        norm = self._finite_norm(x, rgrad)
        if norm is None:
            return None
        if rgrad.dtype == np.float64:  # _inner's sum (np.vdot: an overflow is inf, quietly)
            return rgrad, norm, float(np.vdot(rgrad, rgrad))
        return rgrad, norm, self._inner(x, rgrad, rgrad)

    @classmethod
    def _gradient_and_norm_ok(cls):
        """True when the maps :meth:`_gradient_and_norm` stands for are _Spheres' own."""
        ok = cls.__dict__.get("_gradient_and_norm_ok_")
        if ok is None:
            ok = all(getattr(cls, name) is getattr(_Spheres, name) for name in (
                "egrad2rgrad", "_egrad2rgrad", "_proj", "_finite_norm", "_norm", "inner",
                "_inner", "directional_derivative", "_directional_derivative",
                "_gradient_and_norm"))
            setattr(cls, "_gradient_and_norm_ok_", ok)
        return ok

    def _violation(self, x):
        if self._red.n_factors == 1 and x.dtype == np.float64:
            # One factor: its norm from a float64 sum of squares, as _red.norms takes it
            # when the sum is safe (np.vdot: no floating-point warning if it is not).
            sq = float(np.vdot(x, x))
            if self._red._low <= sq < np.inf:
                return abs(math.sqrt(sq) - 1.0)
        return float(np.max(np.abs(self._red.norms(x) - 1.0)))

    def _project_point(self, x):
        norms = self._red.norms(x)
        zero = int(np.count_nonzero(norms == 0.0))
        if zero:
            raise ValueError(
                f"project_point: x has {zero} of {norms.size} factor(s) of norm 0, which have "
                "no nearest point on the sphere"
            )
        if x.dtype == np.float64:
            return x / norms
        # float32: divide in float64 and round once (half an ulp per entry).
        return (x.astype(np.float64) / norms).astype(x.dtype)

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

    def _dist(self, x, y):
        theta, _, _ = self._angles(x, y)
        return hypot(theta)

    def _exp(self, x, u):
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
        if not long_step and self._small(x, u):
            return self._step_small(x, u, -1.0, True, None)
        out = np.empty_like(x)
        if not long_step and u.dtype == x.dtype and _kernels.gradient_step(
            self._red, True, x, u, -1.0, out
        ):
            return out
        # float32 data are worked in float64 and rounded once: forming the
        # tangent part in float32 would move ||u|| by an ulp of ||u||, i.e.
        # 6e-5 rad for a step of 1e3. Long float64 steps likewise in long double.
        point = x
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
        y = ((np.cos(t) / np.sqrt(xx)) * x + _sinc(t) * u).astype(dtype, copy=False)
        return _keep_still(y, point, t == 0.0)

    def _log(self, x, y):
        theta, v, sine = self._angles(x, y)
        # For identical points v = 0 and any finite factor gives 0; for exactly
        # antipodal points the log is not defined and 0 is returned.
        factor = np.where(sine > 0.0, theta / np.where(sine > 0.0, sine, 1.0), 0.0)
        return self._coef(factor, x) * v

    def _retr_projection(self, x, u):
        # (x + r) / ||x + r|| with r the tangent part of u: the fused step with
        # g = u and lr = -1, which also keeps x exactly where r = 0.
        return self._step(x, u, -1.0, False, None)

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

    def _retr(self, x, u):
        if self.retraction == "exp":
            return self._exp(x, u)
        return self._retr_projection(x, u)

    def _retr_line(self, x, d, dd=None):
        """The curve ``t -> retr(x, t d)`` of a line search, or None.

        On one small float64 factor (see :meth:`_small`) the coefficients
        that do not depend on t are computed once per search: <x, x>, <x, d>
        and <d, d> (``dd``, when the caller knows it: ``np.vdot(d, d)``, bit
        for bit), from which c = <x, d>/<x, x> and the squared norm
        rr = <d, d> - c <x, d> of the tangent part r = d - c x of d. A trial
        point is then ``(a - b c) x + b d``, which is ``a x + b r`` with the
        coefficients a, b of :meth:`_step_small` (the same map as
        ``retr(x, t * d)``; the two differ by rounding): three array
        operations and no temporary beyond the point. When d is mostly
        normal (rr < <d, d>/2, where rr from the sums loses accuracy), r is
        formed and projected once more, as :meth:`_step_small` does. A d
        whose <d, d> overflows (||d|| beyond ~1e154) gets ``t -> retr(x, t * d)``
        itself (t d is formed before any sum). None
        elsewhere (several factors: the compiled step is one call; per-factor
        coefficient arrays cost more than it), on a checked manifold, and
        for a subclass with a retraction of its own: the caller then uses
        ``retr``.
        """
        if not self._small_line_ok(x, d):
            return None
        return self._small_line(x, d, dd)

    def _small_line_ok(self, x, d):
        """Whether :meth:`_retr_line` has a curve for x and d (else it returns None)."""
        return bool(self.__dict__.get("_is_unchecked") and self._small(x, d)
                    and type(self)._retr_line_ok())

    def _small_line(self, x, d, dd=None):
        """:meth:`_retr_line` without its tests, for a caller that made them (a solver,
        once per run: its points keep the first one's shape and dtype)."""
        # ndarray.dot of 1-D arrays is np.vdot, bit for bit (the same BLAS call), cheaper;
        # like np.dot it warns on overflow, as the tangent part's dots did.
        vdot = _ndarray_dot if x.ndim == 1 else np.vdot
        xx = float(vdot(x, x))
        xd = float(vdot(x, d))
        if dd is None:
            dd = float(vdot(d, d))
        if dd == math.inf:
            # ||d|| beyond ~1e154: <d, d> overflowed, and so would rr and t ||r|| (a NaN
            # point, or math.cos(inf) raising); retr scales d by t before its sums.
            retr = self._retr
            return lambda t: retr(x, t * d)
        c = xd / xx
        rr = dd - c * xd
        if not rr >= 0.5 * dd:  # mostly normal d (or NaN): r formed, as _step_small
            xf = x.reshape(-1)
            r = d.reshape(-1) - c * xf
            rr = float(np.dot(r, r))
            if c * c * xx > rr:
                r -= (float(np.dot(xf, r)) / xx) * xf
                rr = float(np.dot(r, r))
            d, c = r.reshape(x.shape), 0.0
        norm_r = math.sqrt(rr)
        use_exp = self.retraction == "exp"
        if use_exp:
            norm_x = math.sqrt(xx)

        def point(t):
            if use_exp and t * t * dd > _WRAP * _WRAP:
                return self._exp(x, t * d)  # a step around the sphere: _exp's long-step path
            s = t * norm_r
            if s == 0.0:
                return x.copy()
            if use_exp:
                a, b = math.cos(s) / norm_x, t * _sinc(s)
            else:
                scale = 1.0 / math.sqrt(xx + t * t * rr)
                a, b = scale, t * scale
            out = np.multiply(x, a - b * c)
            out += d * b
            return out

        return point

    @classmethod
    def _retr_line_ok(cls):
        """True when retr is _Spheres' own (the curve of :meth:`_retr_line` is then retr's)."""
        ok = cls.__dict__.get("_retr_line_ok_")
        if ok is None:
            ok = all(getattr(cls, name) is getattr(_Spheres, name) for name in (
                "retr", "exp", "_retr", "_exp", "_retr_projection", "_step", "_step_small"))
            setattr(cls, "_retr_line_ok_", ok)
        return ok

    def _inverse_retr(self, x, y):
        if self.retraction == "exp":
            return self._log(x, y)
        return self._inverse_retr_projection(x, y)

    def _transp_parallel(self, x, y, v):
        # Along the geodesic cos(t) x + sin(t) e from x to y = cos(theta) x + sin(theta) e:
        #   P(v) = v + <e, v> ((cos theta - 1) e - sin theta x).
        # The direction e and sin theta come from the tangential part of
        # s = y - x (near points) or s = y + x (nearly antipodal ones), as in
        # _angles: with a = <x, s>, ||s - a x||^2 = ||s||^2 - a^2 has no
        # cancellation (a^2 << ||s||^2), and a radial error of a few ulps in x
        # or y does not turn e. Never 1 + <x, y>, which cancels near the
        # antipode: v - <y, v>/(1 + <x, y>) (x + y) lost 3e-8 of ||v|| in
        # float64 and all of it in float32 at an angle of pi - 1e-8.
        # cos theta - 1 = -sin^2/(1 + cos) on the near side. float32 data are
        # worked in float64 and rounded once.
        dtype, red = v.dtype, self._red
        # Full-size temporaries cost page faults: the float64 copies of float32
        # data are reused as work space, y's for s and v's for beta x.
        own = dtype != np.float64
        if own:
            x, y, v = x.astype(np.float64), y.astype(np.float64), v.astype(np.float64)
        cosine = red.dot(x, y)
        near = cosine >= 0.0
        if near.all():
            s = np.subtract(y, x, out=y if own else None)
        elif not near.any():
            s = np.add(y, x, out=y if own else None)
        else:
            s = np.multiply(x, np.where(near, -1.0, 1.0))
            s += y
        ss = red.dot(s, s)
        scale = 1.0
        if not red.safe(ss):  # ||s|| below ~1e-146: rescale, as FactorReducer.norms
            scale = np.max(np.abs(s), axis=self._axes, keepdims=True)
            scale[scale == 0.0] = 1.0
            s /= scale
            ss = red.dot(s, s)
        a = red.dot(x, s)
        sv = red.dot(s, v)
        if red.n_factors == 1:  # Python floats: a tenth of the time of 1-element arrays
            alpha, beta = _parallel_coefs_scalar(
                cosine.item(), ss.item(), a.item(), sv.item(), float(np.max(scale))
            )
        else:
            alpha, beta = _parallel_coefs(cosine, ss, a, sv, scale, near)
        np.multiply(s, alpha, out=s)
        s += v
        s += np.multiply(x, beta, out=v if own else None)
        return s.astype(dtype, copy=False)

    def _transp(self, x, y, v):
        if self.transport == "parallel":
            return self._transp_parallel(x, y, v)
        return self._proj(y, v)

    def _gradient_step(self, x, egrad, lr, out=None):
        return self._step(x, egrad, float(lr), self.retraction == "exp", out)

    def _checked_gradient_step(self, args, x, egrad, lr, out):
        # The step's first pass computes the per-factor sums of squares of x
        # and egrad, which are what the checks of x (finite, norm near 1) and
        # egrad (finite) look at: they are made from those sums, between the
        # two passes (in the compiled kernel when it runs), instead of by two
        # more passes over the arrays. Any doubt (a sum that is not finite, a
        # norm off) sends the arguments through the usual checks, which raise
        # with their messages (or accept finite entries whose squares
        # overflowed). One small factor: as usual (its step has no pass to
        # share). lr is checked first, but its error comes after those of x
        # and egrad, as with the separate checks.
        if isinstance(x, np.ndarray) and isinstance(egrad, np.ndarray) and self._small(x, egrad):
            return super()._checked_gradient_step(args, x, egrad, lr, out)
        if type(lr) is not float or not math.isfinite(lr):  # a finite float needs no more
            try:
                _check_lr(lr)
            except (TypeError, ValueError) as err:
                lr_error = err
            else:
                lr_error = None
            if lr_error is not None:
                self._check_args("gradient_step", args)
                raise lr_error
            lr = float(lr)
        use_exp = self.retraction == "exp"
        tol = _POINT_ATOL.get(x.dtype) if isinstance(x, np.ndarray) else None

        def check(xx, gg):
            self._check_args("gradient_step", args)

        target = out
        if tol is not None:
            if target is None:
                target = np.empty_like(x)
            # The kernel takes only ndarrays of the manifold's shape and one
            # float dtype, with a writeable out: the checks of types, dtypes
            # and shapes pass whenever it runs.
            if _kernels.gradient_step(self._red, use_exp, x, egrad, lr, target, check, tol):
                return target
        self._check_args("gradient_step", [
            (name, a, _OUT if role == _OUT else _SHAPE_ONLY) for name, a, role in args
        ])
        return self._step(x, egrad, lr, use_exp, target, check, tol)

    def _step(self, x, egrad, lr, use_exp, out, check=None, tol=None):
        """retr(x, -lr * P_x(egrad)) with the exp or projection retraction, into ``out``.

        With the optional ``numba`` extra installed this runs as a compiled
        kernel in two or three passes over memory with no full-size temporary;
        otherwise in NumPy, also in two passes when the gradient is not
        mostly normal (see :meth:`_update`). Both evaluate the same formulas:
        with c = <x, g>/<x, x> and r = g - c x (the Riemannian gradient),

        * exp: x+ = cos(t)/||x|| x - lr sinc(t) r, t = |lr| ||r||;
        * projection: x+ = (x - lr r) / sqrt(<x, x> + lr^2 ||r||^2),

        so the new point has unit norm to rounding whatever the drift of x;
        factors with t = 0 are copied from x unchanged. ``check(xx, gg)``, if
        given (with ``tol``), is called with the per-factor sums of squares of
        x and egrad before anything is written, if some factor has a norm
        sqrt(xx) off 1 by more than ``tol`` or a ``gg`` that is not finite (it
        validates, raising to stop the step). ``lr`` is a float.
        """
        if self._small(x, egrad):
            return self._step_small(x, egrad, float(lr), use_exp, out)
        if out is None:
            out = np.empty_like(x)
        if _kernels.gradient_step(self._red, use_exp, x, egrad, lr, out, check, tol):
            return out
        xx, xg, gg = self._red.moments(x, egrad)
        # Sums of squares are >= 0, inf or NaN: sqrt, abs and the comparisons
        # are quiet on them (no errstate needed).
        if check is not None and not (
            np.all(np.abs(np.sqrt(xx) - 1.0) <= tol) and np.all(np.isfinite(gg))
        ):
            check(xx, gg)
        c = xg / xx
        # rr from the sums, ||g||^2 - <x, g>^2/||x||^2, is accurate when the
        # tangent part is at least half of g (see _kernels: rho = 1/2), and
        # the update a x + b (g - c x) = (a - b c) x + b g has no cancellation
        # then; otherwise r is formed and projected once more below.
        rr = gg - c * xg
        if np.all(rr >= 0.5 * gg) and np.all(np.isfinite(gg)):
            return self._update(x, egrad, lr, use_exp, out, xx, c, rr)
        r = egrad - self._coef(c, x) * x
        rr = self._red.dot(r, r)
        if np.any(c * c * xx > rr):
            # Mostly normal gradient: r keeps a rounding residue along x of
            # about eps ||g||, large next to ||r||; project once more (as the
            # compiled kernel refines its coefficient), else the step moves
            # the point off the sphere by ~ lr ||g|| eps.
            r -= self._coef(self._red.dot(x, r) / xx, x) * x
            rr = self._red.dot(r, r)
        a, b, still = self._coefs(lr, use_exp, xx, rr)
        # x itself when out is x and some factor stays: it is overwritten below.
        point = x.copy() if np.any(still) and np.may_share_memory(out, x) else x
        np.multiply(r, self._coef(b, x), out=r)
        np.multiply(x, self._coef(a, x), out=out)
        np.add(out, r, out=out)
        return _keep_still(out, point, still)

    @staticmethod
    def _coefs(lr, use_exp, xx, rr):
        """Per-factor (a, b, still) of x+ = a x + b r; still where the step is zero."""
        t = abs(lr) * np.sqrt(rr)
        if use_exp:
            a, b = np.cos(t) / np.sqrt(xx), -lr * _sinc(t)
        else:
            scale = 1.0 / np.sqrt(xx + lr * lr * rr)
            a, b = scale, -lr * scale
        return a, b, t == 0.0

    def _update(self, x, g, lr, use_exp, out, xx, c, rr):
        """out = (a - b c) x + b g, slice by slice along axis 0 (the NumPy step's pass 2).

        A slice of x, g and out and a buffer for b g stay in cache between
        the three operations on them, so that the arrays are read once from
        memory (see ``FactorReducer.chunk_rows``); out may be x or g, each
        element being read before it is written. Other overlaps go in one piece.
        """
        a, b, still = self._coefs(lr, use_exp, xx, rr)
        coef_x, coef_g = self._coef(a - b * c, x), self._coef(b, x)
        point = x.copy() if np.any(still) and np.may_share_memory(out, x) else x
        n0 = self._shape[0]
        step = self._red.chunk_rows(x)
        if not (g.flags.c_contiguous and out.flags.c_contiguous
                and _kernels._disjoint_or_same(out, x) and _kernels._disjoint_or_same(out, g)):
            step = n0
        per_row = coef_x.shape[0] > 1  # axis 0 is not a factor axis: coefficients by slice
        buf = np.empty((min(step, n0),) + self._shape[1:], dtype=x.dtype)
        for i0 in range(0, n0, step):
            rows = slice(i0, i0 + step)
            cx, cg = (coef_x[rows], coef_g[rows]) if per_row else (coef_x, coef_g)
            part = buf[: min(step, n0 - i0)]
            np.multiply(g[rows], cg, out=part)
            np.multiply(x[rows], cx, out=out[rows])
            np.add(out[rows], part, out=out[rows])
        return _keep_still(out, point, still)

    def _small(self, x, g):
        """Whether the step is best done by _step_small: one float64 factor of a few KB.

        There the compiled kernel's set-up (layout and aliasing checks) and the
        per-factor arrays of the NumPy path cost more than the arithmetic:
        optimizers on Sphere(100) spend most of an iteration there otherwise.
        """
        return (self._red.n_factors == 1 and x.size <= _SMALL and x.dtype == np.float64
                and g.dtype == np.float64)

    def _step_small(self, x, g, lr, use_exp, out):
        """The NumPy step of :meth:`_step` for one small float64 factor, with Python floats.

        Same formulas: c = <x, g>/<x, x>, r = g - c x (projected once more when
        g is mostly normal), then a x + b r with the exp or projection
        coefficients; a zero step copies x. (``_exp`` sends steps longer than
        2 pi to its long-double path first.)
        """
        xf, gf = x.reshape(-1), g.reshape(-1)
        xx = float(np.dot(xf, xf))
        c = float(np.dot(xf, gf)) / xx
        r = gf - c * xf
        rr = float(np.dot(r, r))
        if c * c * xx > rr:
            r -= (float(np.dot(xf, r)) / xx) * xf
            rr = float(np.dot(r, r))
        t = abs(lr) * math.sqrt(rr)
        if out is None:
            out = np.empty_like(x)
        if t == 0.0:
            if out is not x:
                np.copyto(out, x)
            return out
        if use_exp:
            a, b = math.cos(t) / math.sqrt(xx), -lr * _sinc(t)
        else:
            scale = 1.0 / math.sqrt(xx + lr * lr * rr)
            a, b = scale, -lr * scale
        r *= b
        flat = out.reshape(-1) if out.flags.c_contiguous else None
        if flat is None:
            np.copyto(out, (a * xf + r).reshape(x.shape))
        else:
            np.multiply(xf, a, out=flat)
            flat += r
        return out

    # --- sampling ------------------------------------------------------------

    def random_point(self, rng=None, dtype=None):
        rng = as_rng(rng)
        z = rng.standard_normal(self._shape)
        return (z / self._red.norms(z)).astype(as_dtype(dtype))

    def _random_tangent(self, x, rng=None):
        rng = as_rng(rng)
        x64 = x.astype(np.float64)
        # Project twice: a nearly normal draw leaves a rounding residue along x
        # that the normalization below would blow up ("twice is enough").
        u = self._proj(x64, self._proj(x64, rng.standard_normal(self._shape)))
        size = hypot(self._red.norms(u))
        if size == 0.0:  # every factor is a 0-dimensional sphere (a pair of points)
            return np.zeros_like(x)
        return (u / size).astype(x.dtype)

    def _zero_vector(self, x):
        return np.zeros_like(x)

    # --- validation ------------------------------------------------------

    def _check_on(self, x, name, method, atol):
        tol = _POINT_ATOL[x.dtype] if atol is None else atol
        # One pass: the per-factor sums of squares are all finite exactly when
        # the entries are, unless they overflowed (entries beyond ~1e154); and
        # without overflow they tell whether a norm is near 1 (an underflow
        # only hides entries far below 1). NaN/Inf or overflow: the slow path,
        # which counts the non-finite entries for the message, or rescales.
        one = self._red.n_factors == 1
        if one and x.dtype == np.float64:
            value = float(np.vdot(x, x))  # BLAS: no floating-point warning, no errstate needed
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                sq = self._red.dot(x, x)
            value = float(sq.flat[0]) if one else None
        if one:
            if math.isfinite(value):
                worst = abs(math.sqrt(value) - 1.0)
                if worst <= tol:
                    return
                err = np.array([worst])
            else:
                err = self._slow_norm_error(x, name, method)
        elif np.all(np.isfinite(sq)):
            err = np.abs(np.sqrt(sq) - 1.0)
        else:
            err = self._slow_norm_error(x, name, method)
        worst = float(np.max(err))
        if worst > tol:
            bad = int(np.count_nonzero(err > tol))
            raise ValueError(
                f"{method}: {name} is off {self!r}: {bad} of {err.size} factor(s) have norm off 1 "
                f"by up to {worst:.3g} (tolerance {tol:.3g}); M.project_point({name}) gives the "
                "nearest point"
            )

    def _slow_norm_error(self, x, name, method):
        """| ||x_k|| - 1 | per factor when the sums of squares were not all finite."""
        _check_finite(x, name, method)  # raises, counting the NaN/Inf entries
        return np.abs(self._red.norms(x) - 1.0)  # finite entries whose squares overflowed

    def _check_tangency(self, x, u, atol):
        normal = np.abs(self._red.dot(x, u))
        tol = point_atol(x.dtype) if atol is None else atol
        tol *= max(1.0, float(np.max(self._red.norms(u))))
        if np.max(normal) > tol:
            raise ValueError(
                f"check_tangent: vector is not tangent: its component along the point is up to "
                f"{float(np.max(normal)):.3g} (tolerance {tol:.3g}); M.proj(x, u) removes it"
            )


def _keep_still(out, point, still):
    """``out`` with the factors where ``still`` (keepdims) copied from ``point`` bit for bit."""
    if still.any():
        np.copyto(out, point, where=np.broadcast_to(still, out.shape))
    return out


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
    parallel transport of :math:`v \in T_x` to :math:`T_y` along the
    minimizing geodesic, with :math:`\operatorname{Log}_x(y) = \theta e`,
    :math:`\|e\| = 1`, is

    .. math::

        P_{x \to y}(v) = v + \langle e, v\rangle
        \bigl((\cos\theta - 1)\, e - \sin\theta\, x\bigr),

    with :math:`e`, :math:`\sin\theta` and :math:`\cos\theta` formed from
    the same difference or sum as the distance (never from
    :math:`1 + \langle x, y\rangle`, which cancels near the antipode): the
    norm and the tangency of :math:`P(v)` hold to a few ulps at any angle,
    :math:`\pi - 10^{-8}` included. At exactly antipodal points the geodesic
    is not unique (``log`` returns 0 there) and ``transp`` returns ``v``
    unchanged, which lies in :math:`T_{-x} = T_x`.

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
