"""Products of manifolds: the weights of a whole network are one point here."""

import numpy as np

from ._reduce import hypot
from .base import Manifold, as_rng

__all__ = ["Product"]


class Product(Manifold):
    """The Cartesian product M1 x M2 x ... with the product metric.

    Points and tangent vectors are tuples with exactly one array per factor
    manifold (lists are accepted as input); every part follows its factor's
    input policy, and errors about a part name it (``factor i (M_i): ...``). Every map acts factor by factor; the inner
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
        """The raw map ``name`` of every factor on the factors' parts of ``args``."""
        return tuple(getattr(m, name)(*a) for m, *a in zip(self.manifolds, *args))

    def _proj(self, x, u):
        return self._map("_proj", x, u)

    def _egrad2rgrad(self, x, egrad):
        return self._map("_egrad2rgrad", x, egrad)

    def _ehess2rhess(self, x, egrad, ehess, u):
        return self._map("_ehess2rhess", x, egrad, ehess, u)

    def _inner(self, x, u, v):
        return float(sum(self._map("_inner", x, u, v)))

    def _norm(self, x, u):
        return hypot(self._map("_norm", x, u))

    def _directional_derivative(self, x, grad, d):
        return float(sum(self._map("_directional_derivative", x, grad, d)))

    def _dist(self, x, y):
        return hypot(self._map("_dist", x, y))

    def _violation(self, x):
        return max(self._map("_violation", x))

    def _project_point(self, x):
        parts = []
        for i, (m, xi) in enumerate(zip(self.manifolds, x)):
            try:
                parts.append(m._project_point(xi))
            except ValueError as err:
                raise ValueError(f"factor {i} ({m!r}): {err}") from None
        return tuple(parts)

    def _exp(self, x, u):
        return self._map("_exp", x, u)

    def _log(self, x, y):
        return self._map("_log", x, y)

    def _retr(self, x, u):
        return self._map("_retr", x, u)

    def _inverse_retr(self, x, y):
        return self._map("_inverse_retr", x, y)

    def _transp(self, x, y, v):
        return self._map("_transp", x, y, v)

    def _gradient_step(self, x, egrad, lr, out=None):
        if out is None:
            return tuple(
                m._gradient_step(xi, gi, lr) for m, xi, gi in zip(self.manifolds, x, egrad)
            )
        for m, xi, gi, oi in zip(self.manifolds, x, egrad, out):
            m._gradient_step(xi, gi, lr, out=oi)
        return out  # the very object given, as for the other manifolds

    def random_point(self, rng=None, dtype=None):
        rng = as_rng(rng)
        return tuple(m.random_point(rng, dtype) for m in self.manifolds)

    def _random_tangent(self, x, rng=None):
        rng = as_rng(rng)
        u = tuple(m._random_tangent(xi, rng) for m, xi in zip(self.manifolds, x))
        scale = 1.0 / np.sqrt(len(self.manifolds))
        return tuple(ui * ui.dtype.type(scale) for ui in u)

    def _zero_vector(self, x):
        return self._map("_zero_vector", x)

    # --- validation: the tuple, then each factor with its own rules -----------

    def _check_args(self, method, args, atol=None):
        n = len(self.manifolds)
        for name, a, role in args:
            if not isinstance(a, (tuple, list)):
                raise TypeError(
                    f"{method}: {name} must be a tuple of {n} arrays, got {type(a).__name__} "
                    f"(one array per factor of {self!r})"
                )
            if len(a) != n:
                raise ValueError(
                    f"{method}: {name} must have {n} parts, got {len(a)} (one array per "
                    f"factor of {self!r})"
                )
        for i, m in enumerate(self.manifolds):
            try:
                m._check_args(method, [(name, a[i], role) for name, a, role in args], atol)
            except (TypeError, ValueError) as err:
                raise type(err)(f"factor {i} ({m!r}): {err}") from None

    def _check_tangency(self, x, u, atol):
        for i, (m, xi, ui) in enumerate(zip(self.manifolds, x, u)):
            try:
                m._check_tangency(xi, ui, atol)
            except ValueError as err:
                raise ValueError(f"factor {i} ({m!r}): {err}") from None
