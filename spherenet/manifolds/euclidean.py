"""Euclidean space: the trivial geometry, for unconstrained blocks such as biases."""

import numpy as np

from ._reduce import FactorReducer, hypot
from .base import Manifold, _check_array, _check_shape, as_dtype, as_rng

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
    def proj(self, x, u):
        return u.copy()

    def egrad2rgrad(self, x, egrad):
        return egrad.copy()

    def ehess2rhess(self, x, egrad, ehess, u):
        return ehess.copy()

    def inner(self, x, u, v):
        return self._red.total(u, v)

    def norm(self, x, u):
        return hypot(self._red.norms(u))

    def dist(self, x, y):
        return hypot(self._red.norms(y - x))

    def violation(self, x):
        """Always 0: there is no constraint."""
        return 0.0

    def exp(self, x, u):
        return x + u

    retr = exp

    def log(self, x, y):
        return y - x

    inverse_retr = log

    def transp(self, x, y, v):
        return v.copy()

    def gradient_step(self, x, egrad, lr, out=None):
        step = egrad * x.dtype.type(lr)
        return np.subtract(x, step, out=step if out is None else out)

    def random_point(self, rng=None, dtype=None):
        return as_rng(rng).standard_normal(self._shape).astype(as_dtype(dtype))

    def random_tangent(self, x, rng=None):
        u = as_rng(rng).standard_normal(self._shape)
        return (u / np.linalg.norm(u)).astype(x.dtype)

    def zero_vector(self, x):
        return np.zeros_like(x)

    def check_point(self, x, atol=None):
        _check_array(self, x, "point")
        return x

    def check_tangent(self, x, u, atol=None):
        _check_array(self, x, "point")
        _check_array(self, u, "tangent vector")
        if u.dtype != x.dtype:
            raise TypeError(f"tangent vector has dtype {u.dtype} but the point has {x.dtype}")
        return u
