"""Products of manifolds: the weights of a whole network are one point here."""

import numpy as np

from ._reduce import hypot
from .base import Manifold, as_rng

__all__ = ["Product"]


class Product(Manifold):
    """The Cartesian product M1 x M2 x ... with the product metric.

    Points and tangent vectors are tuples with one array per factor manifold
    (lists are accepted as input). Every map acts factor by factor; the inner
    product is the sum of the factors' inner products and the distance the
    root sum of squares of the factors' distances.

    Parameters
    ----------
    manifolds : sequence of Manifold
        The factors; nested products are flattened into one.

    Examples
    --------
    >>> from spherenet import Euclidean, Oblique, Product
    >>> M = Product([Oblique(2, 500), Euclidean(500)])
    >>> w, b = M.random_point(rng=0)
    >>> w.shape, b.shape, M.dim
    ((2, 500), (500,), 1000)
    """

    def __init__(self, manifolds):
        try:
            manifolds = list(manifolds)
        except TypeError:
            raise TypeError(
                f"Product takes a sequence of manifolds, got {type(manifolds).__name__}"
            ) from None
        if not manifolds:
            raise ValueError("Product needs at least one manifold, got none")
        flat = []
        for m in manifolds:
            if not isinstance(m, Manifold):
                raise TypeError(f"Product factors must be Manifolds, got {type(m).__name__}")
            flat.extend(m.manifolds if isinstance(m, Product) else [m])
        self.manifolds = tuple(flat)

    def _key(self):
        return self.manifolds

    def _repr_args(self):
        return "([" + ", ".join(map(repr, self.manifolds)) + "])"

    def __len__(self):
        return len(self.manifolds)

    @property
    def shape(self):
        """Tuple of the factors' shapes."""
        return tuple(m.shape for m in self.manifolds)

    @property
    def retraction(self):
        return tuple(m.retraction for m in self.manifolds)

    @property
    def transport(self):
        return tuple(m.transport for m in self.manifolds)

    @property
    def dim(self):
        return sum(m.dim for m in self.manifolds)

    @property
    def typical_dist(self):
        return hypot([m.typical_dist for m in self.manifolds])

    def _map(self, name, *args):
        return tuple(getattr(m, name)(*a) for m, *a in zip(self.manifolds, *args))

    def proj(self, x, u):
        return self._map("proj", x, u)

    def egrad2rgrad(self, x, egrad):
        return self._map("egrad2rgrad", x, egrad)

    def ehess2rhess(self, x, egrad, ehess, u):
        return self._map("ehess2rhess", x, egrad, ehess, u)

    def inner(self, x, u, v):
        return float(sum(self._map("inner", x, u, v)))

    def norm(self, x, u):
        return hypot(self._map("norm", x, u))

    def dist(self, x, y):
        return hypot(self._map("dist", x, y))

    def violation(self, x):
        """Largest constraint violation over the factors."""
        return max(m.violation(xi) for m, xi in zip(self.manifolds, x))

    def exp(self, x, u):
        return self._map("exp", x, u)

    def log(self, x, y):
        return self._map("log", x, y)

    def retr(self, x, u):
        return self._map("retr", x, u)

    def inverse_retr(self, x, y):
        return self._map("inverse_retr", x, y)

    def transp(self, x, y, v):
        return self._map("transp", x, y, v)

    def gradient_step(self, x, egrad, lr, out=None):
        if out is None:
            out = (None,) * len(self.manifolds)
        return tuple(
            m.gradient_step(xi, gi, lr, out=oi)
            for m, xi, gi, oi in zip(self.manifolds, x, egrad, out)
        )

    def random_point(self, rng=None, dtype=None):
        rng = as_rng(rng)
        return tuple(m.random_point(rng, dtype) for m in self.manifolds)

    def random_tangent(self, x, rng=None):
        rng = as_rng(rng)
        u = tuple(m.random_tangent(xi, rng) for m, xi in zip(self.manifolds, x))
        scale = 1.0 / np.sqrt(len(self.manifolds))
        return tuple(ui * ui.dtype.type(scale) for ui in u)

    def zero_vector(self, x):
        return self._map("zero_vector", x)

    def _check_tuple(self, x, what):
        if not isinstance(x, (tuple, list)):
            raise TypeError(
                f"a {what} of {self!r} must be a tuple of {len(self.manifolds)} arrays, "
                f"got {type(x).__name__}"
            )
        if len(x) != len(self.manifolds):
            raise ValueError(
                f"a {what} of {self!r} must have {len(self.manifolds)} parts, got {len(x)}"
            )

    def check_point(self, x, atol=None):
        self._check_tuple(x, "point")
        for i, (m, xi) in enumerate(zip(self.manifolds, x)):
            try:
                m.check_point(xi, atol)
            except (TypeError, ValueError) as err:
                raise type(err)(f"factor {i} ({m!r}): {err}") from None
        return x

    def check_tangent(self, x, u, atol=None):
        self._check_tuple(x, "point")
        self._check_tuple(u, "tangent vector")
        for i, (m, xi, ui) in enumerate(zip(self.manifolds, x, u)):
            try:
                m.check_tangent(xi, ui, atol)
            except (TypeError, ValueError) as err:
                raise type(err)(f"factor {i} ({m!r}): {err}") from None
        return u
