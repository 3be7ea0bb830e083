"""The history's constraint violation and angle for many iterates of spheres at once.

Per iterate, ``Strategy.violation`` and ``Strategy.angle`` (a geodesic
distance) cost some fifteen NumPy calls on small arrays: on a problem of a
hundred unknowns, more than the cost and its gradient. The same formulas
applied to a stack of iterates cost the same calls once per batch. The
iterates are copied into a preallocated stack (one NumPy call each: step
rules may reuse a point's buffer) and reduced when the stack is full or the
history is read. On an Oblique whose factor axes lead (``Oblique(m, n)``), the
reduction is one compiled pass per sum over each pair of iterates
(:func:`spherenet.manifolds._kernels.history_batch`, with numba; the NumPy
formulas make some ten passes over stack-sized temporaries).
"""

import math

import numpy as np

from ..manifolds import _kernels
from ..manifolds._reduce import _einsum

__all__ = ["SphereBatch"]

_TINY = np.finfo(np.float64).tiny
_EPS = np.finfo(np.float64).eps


class SphereBatch:
    """Violation and angle of the iterates of a run on a Sphere or an Oblique.

    The formulas are those of the manifold (``violation``: max over the
    factors of | ||x_k|| - 1 |; ``dist``: per factor the angle
    atan2(sine, cosine) from the tangential part of y - x, or of y + x for
    nearly antipodal points, then the root sum of squares), on a stack of
    iterates; values agree with the per-iterate calls to rounding (the sums
    are taken in another order). A batch in which a float64 sum of squares
    may have underflowed (iterates a few 1e-146 apart, not 0) is handed back
    to the per-iterate calls, which rescale.

    Parameters
    ----------
    manifold : Sphere or Oblique
    like : ndarray
        The first iterate: shape and dtype of all.
    normalize : bool
        Normalize each factor before the angle (the projection strategy's
        iterates are on the sphere only to rounding; the riemannian ones are
        taken as they are).
    fallback : callable
        ``fallback(x_old, x_new) -> (violation of x_new, angle)``, the
        per-iterate computation; ``x_old`` is None for the first iterate.
    max_bytes : int
        Memory of the stack; see :meth:`fits`.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.optim._batch import SphereBatch
    >>> x, y = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    >>> batch = SphereBatch(Sphere(2), x, normalize=False, fallback=None)
    >>> batch.add(x), batch.add(y)
    (True, True)
    >>> violations, angles = batch.flush()
    >>> violations, bool(angles[1] == np.pi / 2)
    ([0.0, 0.0], True)
    """

    MAX_BYTES = 1 << 19
    MIN_ROWS = 16

    def __init__(self, manifold, like, normalize, fallback, max_bytes=MAX_BYTES, max_rows=128):
        self.shape, self.dtype = like.shape, like.dtype
        self.normalize = normalize
        self.fallback = fallback
        # The stack's axis 0 is the iterate; a factor spans the manifold's axes, one further.
        self.axes = tuple(a + 1 for a in manifold._axes)
        self.factor_size = math.prod(self.shape[a] for a in manifold._axes)
        self._subscripts = None  # einsum's, made at the first reduction
        self._view = None  # the stack seen by the compiled reduction (_view3)
        rows = int(max(2, min(max_rows, max_bytes // max(like.nbytes, 1))))
        self._stack = np.empty((rows + 1,) + self.shape, dtype=self.dtype)
        self._n = 0  # pending iterates, in rows 1 .. n; row 0 is the previous iterate
        self._has_previous = False

    @classmethod
    def fits(cls, x):
        """True when batching pays: x is a small array (at least ``MIN_ROWS`` iterates fit
        in ``MAX_BYTES``); for large points the per-iterate calls cost little beside
        the work, and a stack would only take memory."""
        return x.__class__ is np.ndarray and x.nbytes * cls.MIN_ROWS <= cls.MAX_BYTES

    def add(self, x):
        """Stack the iterate x; False (nothing stored) when x is not of the run's kind."""
        if x.__class__ is not np.ndarray or x.shape != self.shape or x.dtype != self.dtype:
            return False
        self._n += 1
        self._stack[self._n] = x
        return True

    @property
    def full(self):
        return self._n + 1 == len(self._stack)

    @property
    def pending(self):
        return self._n

    def _dot(self, a, b):
        """Per-factor inner products of stacked iterates, float64 (float32 data widened
        first, as the manifold's einsum with dtype=float64 does: exact products)."""
        if a.dtype != np.float64:
            a, b = a.astype(np.float64), b.astype(np.float64)
        # einsum sums the products as it makes them: no stack-sized temporary, and
        # half the time of np.add.reduce(a * b) on a stack of Oblique(10, 200) iterates.
        subscripts = self._subscripts
        if subscripts is None:
            letters = "abcdefghijklmnopqrstuvwxyz"[: len(self.shape) + 1]
            kept = "".join(c for i, c in enumerate(letters) if i not in self.axes)
            subscripts = self._subscripts = f"{letters},{letters}->{kept}"
        return _einsum(subscripts, a, b)

    def _expand(self, c):
        """Per-factor numbers shaped to broadcast against the stack, in the dtype of the data."""
        shape = tuple(1 if i in self.axes else n for i, n in enumerate((c.shape[0],) + self.shape))
        return c.reshape(shape).astype(self.dtype, copy=False)

    def _view3(self):
        """The stack as (rows, L, K), C-contiguous -- K > 1 factors of L numbers along
        axis 1: the factor axes lead, as in ``Oblique(m, n)`` -- for the compiled
        reduction; else None (one factor, or factor axes last or in the middle: the
        NumPy path, as fast there or nearly)."""
        view = self._view
        if view is None:
            stack, axes = self._stack, self.axes
            others = math.prod(self.shape) // self.factor_size
            view = False
            if others > 1 and axes == tuple(range(1, len(axes) + 1)):
                view = stack.reshape(stack.shape[0], self.factor_size, others)
            self._view = view
        return view if view is not False else None

    def flush(self):
        """Violations and angles of the pending iterates (lists of floats, NaN angle first)."""
        n = self._n
        if n == 0:
            return [], []
        stack = self._stack
        low = self.factor_size * _TINY / _EPS
        view = self._view3()
        compiled = None if view is None else _kernels.history_batch(
            view, n, self._has_previous, self.normalize, low)
        if compiled is not None:
            violations, angles, ok = compiled
        else:
            violations, angles, ok = self._reduce(n, low)
        result = (violations.tolist(), angles) if ok else self._one_by_one(n)
        stack[0] = stack[n]
        self._has_previous = True
        self._n = 0
        return result

    def _reduce(self, n, low):
        """The NumPy path of :meth:`flush`: (violations, angles, ok) of the pending iterates,
        ok False when a sum is outside the safe range (then the others are None)."""
        stack = self._stack
        new = stack[1:n + 1]
        sq = self._dot(new, new)
        if not bool(np.all((sq >= low) & (sq < np.inf))):
            return None, None, False
        norms = np.sqrt(sq)
        violations = np.max(np.abs(norms - 1.0).reshape(n, -1), axis=1)
        old = stack[0:n] if self._has_previous else stack[1:n]
        cur = stack[1:n + 1] if self._has_previous else stack[2:n + 1]
        angles, ok = self._angles(old, cur, norms)
        if ok and not self._has_previous:
            angles = np.concatenate(([np.nan], angles))
        return violations, angles, ok

    def _angles(self, x, y, norms_y):
        if len(x) == 0:
            return np.empty(0), True
        if self.normalize:
            if self._has_previous:
                norms_x = np.sqrt(self._dot(x, x))
                x = x / self._expand(norms_x)
                y = y / self._expand(norms_y)
            else:
                x = x / self._expand(norms_y[:-1])
                y = y / self._expand(norms_y[1:])
        # As Sphere.dist: the tangential part of y - x (near) or y + x (antipodal).
        near = self._dot(x, y) >= 0.0
        w = y + self._expand(np.where(near, -1.0, 1.0)) * x
        a = self._dot(x, w)
        v = w - self._expand(a) * x
        sine_sq = self._dot(v, v)
        low = self.factor_size * _TINY / _EPS
        if not bool(np.all(((sine_sq >= low) | (sine_sq == 0.0)) & (sine_sq < np.inf))):
            return None, False
        theta = np.arctan2(np.sqrt(sine_sq), np.where(near, 1.0 + a, a - 1.0))
        theta = theta.reshape(len(theta), -1)
        # Root sum of squares, scaled: angles below 1e-154 would underflow when squared.
        scale = np.max(theta, axis=1, keepdims=True)
        safe = np.where(scale > 0.0, scale, 1.0)
        return (safe * np.sqrt(np.sum((theta / safe) ** 2, axis=1, keepdims=True))).ravel(), True

    def _one_by_one(self, n):
        stack = self._stack
        violations, angles = [], []
        for i in range(1, n + 1):
            old = stack[i - 1] if (i > 1 or self._has_previous) else None
            violation, angle = self.fallback(old, stack[i])
            violations.append(violation)
            angles.append(angle)
        return violations, np.asarray(angles, dtype=np.float64)
