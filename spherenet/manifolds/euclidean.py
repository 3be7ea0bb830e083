"""Euclidean space: the trivial geometry, for unconstrained blocks such as biases."""

import numpy as np

from ._reduce import FactorReducer, hypot
from .base import Manifold, _check_shape, as_dtype, as_rng

__all__ = ["Euclidean"]


class Euclidean(Manifold):
    """The vector space R^shape with the Frobenius inner product.

    Every map is the flat one: ``exp(x, u) = retr(x, u) = x + u``,
    ``log(x, y) = y - x``, ``transp(x, y, v) = v``.

    Parameters
    ----------
    *shape : int
        Shape of a point.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Euclidean
    >>> E = Euclidean(2)
    >>> E.dist(np.zeros(2), np.array([3.0, 4.0]))
    5.0
    """

    retraction = "exp"
    transport = "parallel"

    def __init__(self, *shape):
        self._shape = _check_shape(shape)
        self._red = FactorReducer(self._shape, tuple(range(len(self._shape))))

    def _key(self):
        return (self._shape,)

    def _repr_args(self):
        return "(" + ", ".join(map(str, self._shape)) + ")"

    @property
    def shape(self):
        """Shape of a point."""
        return self._shape

    @property
    def dim(self):
        return int(np.prod(self._shape))

    @property
    def typical_dist(self):
        return float(np.sqrt(self.dim))

    # Copies, never the input itself: a caller may update the result in place.
    def _proj(self, x, u):
        return u.copy()

    def _egrad2rgrad(self, x, egrad):
        return egrad.copy()

    def _ehess2rhess(self, x, egrad, ehess, u):
        return ehess.copy()

    def _inner(self, x, u, v):
        return self._red.total(u, v)

    def _norm(self, x, u):
        return hypot(self._red.norms(u))

    def _dist(self, x, y):
        return hypot(self._red.norms(y - x))

    def _violation(self, x):
        return 0.0

    def _project_point(self, x):
        return x.copy()

    def _exp(self, x, u):
        return x + u

    _retr = _exp

    def _log(self, x, y):
        return y - x

    _inverse_retr = _log

    def _transp(self, x, y, v):
        return v.copy()

    def _gradient_step(self, x, egrad, lr, out=None):
        # x - lr g: with g = 0 the subtracted zero leaves x bit for bit.
        step = egrad * x.dtype.type(lr)
        return np.subtract(x, step, out=step if out is None else out)

    def random_point(self, rng=None, dtype=None):
        return as_rng(rng).standard_normal(self._shape).astype(as_dtype(dtype))

    def _random_tangent(self, x, rng=None):
        u = as_rng(rng).standard_normal(self._shape)
        return (u / np.linalg.norm(u)).astype(x.dtype)

    def _zero_vector(self, x):
        return np.zeros_like(x)
