"""Interoperability: run other libraries' optimizers on spherenet's geometry.

:func:`to_pymanopt` wraps a spherenet manifold as a ``pymanopt`` manifold,
so that pymanopt's solvers (``SteepestDescent``, ``ConjugateGradient``,
``TrustRegions``, ...) run on spherenet's maps: its accurate ``dist``,
``exp`` and ``log``, its chosen retraction and transport.

pymanopt is an optional dependency: it is imported when :func:`to_pymanopt`
is called, never when spherenet is imported.
"""

import functools

import numpy as np

from .manifolds import Manifold, Product
from .manifolds.base import as_dtype, as_rng

__all__ = ["to_pymanopt"]

# The adapter classes derive from pymanopt's classes, so they are built on
# first use; module-level __getattr__ resolves their names, which lets pickle
# find them in a fresh process.
_ADAPTER_NAMES = ("_SubmanifoldAdapter", "_ProductAdapter")


def _require_pymanopt():
    try:
        import pymanopt  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "to_pymanopt needs the optional dependency pymanopt (2.2 or later): "
            "pip install pymanopt"
        ) from err


class _PymanoptMethods:
    """pymanopt's method names, each delegating to the wrapped spherenet manifold.

    Points and tangent vectors go through ``_point``/``_tangent``: the
    identity for arrays, lists and ``_ProductTangentVector`` for products.
    """

    def _init_adapter(self, manifold, rng, dtype):
        self.spherenet_manifold = manifold
        # pymanopt's solvers hand back the points our maps produced, and its
        # own code (line searches, float32 casts) lets them drift by more than
        # the checked maps accept: the adapter calls the unchecked maps.
        self._maps = manifold.unchecked
        self._rng = rng
        self._dtype = dtype

    def __repr__(self):
        return f"to_pymanopt({self.spherenet_manifold!r})"

    @staticmethod
    def _point(x):
        return x

    @staticmethod
    def _tangent(u):
        return u

    @property
    def typical_dist(self):
        return self.spherenet_manifold.typical_dist

    def inner_product(self, point, tangent_vector_a, tangent_vector_b):
        return self._maps.inner(point, tangent_vector_a, tangent_vector_b)

    def norm(self, point, tangent_vector):
        return self._maps.norm(point, tangent_vector)

    def dist(self, point_a, point_b):
        return self._maps.dist(point_a, point_b)

    def projection(self, point, vector):
        return self._tangent(self._maps.proj(point, vector))

    to_tangent_space = projection

    def euclidean_to_riemannian_gradient(self, point, euclidean_gradient):
        return self._tangent(self._maps.egrad2rgrad(point, euclidean_gradient))

    def euclidean_to_riemannian_hessian(
        self, point, euclidean_gradient, euclidean_hessian, tangent_vector
    ):
        return self._tangent(
            self._maps.ehess2rhess(
                point, euclidean_gradient, euclidean_hessian, tangent_vector
            )
        )

    def exp(self, point, tangent_vector):
        return self._point(self._maps.exp(point, tangent_vector))

    def retraction(self, point, tangent_vector):
        return self._point(self._maps.retr(point, tangent_vector))

    def log(self, point_a, point_b):
        return self._tangent(self._maps.log(point_a, point_b))

    def transport(self, point_a, point_b, tangent_vector_a):
        return self._tangent(self._maps.transp(point_a, point_b, tangent_vector_a))

    def pair_mean(self, point_a, point_b):
        # The geodesic midpoint, from spherenet's accurate log and exp.
        half = 0.5 * self.log(point_a, point_b)
        return self.exp(point_a, half)

    def random_point(self):
        return self._point(self.spherenet_manifold.random_point(rng=self._rng, dtype=self._dtype))

    def random_tangent_vector(self, point):
        return self._tangent(self._maps.random_tangent(point, rng=self._rng))

    def zero_vector(self, point):
        return self._tangent(self._maps.zero_vector(point))


@functools.lru_cache(maxsize=None)
def _adapter_classes():
    from pymanopt.manifolds.manifold import RiemannianSubmanifold
    from pymanopt.manifolds.product import Product as PymanoptProduct
    from pymanopt.manifolds.product import _ProductTangentVector

    class _SubmanifoldAdapter(_PymanoptMethods, RiemannianSubmanifold):
        def __init__(self, manifold, rng, dtype):
            self._init_adapter(manifold, rng, dtype)
            super().__init__(f"{manifold!r} (spherenet)", int(manifold.dim))

        def weingarten(self, point, tangent_vector, normal_vector):
            # For a Riemannian submanifold, Hess f(x)[u] = P_x(ehess) + W_x(u, P_x^perp egrad),
            # so the Weingarten map is ehess2rhess with a zero Euclidean Hessian.
            return self._maps.ehess2rhess(
                point, normal_vector, np.zeros_like(tangent_vector), tangent_vector
            )

    class _ProductAdapter(_PymanoptMethods, PymanoptProduct):
        def __init__(self, manifold, rng, dtype):
            self._init_adapter(manifold, rng, dtype)
            # pymanopt's Product sets the name, dimension and point layout from
            # the factors; every method then acts through spherenet's Product.
            super().__init__([_SubmanifoldAdapter(m, rng, dtype) for m in manifold.manifolds])

        @staticmethod
        def _point(x):
            return list(x)

        @staticmethod
        def _tangent(u):
            return _ProductTangentVector(u)

    classes = {"_SubmanifoldAdapter": _SubmanifoldAdapter, "_ProductAdapter": _ProductAdapter}
    for name, cls in classes.items():
        cls.__module__ = __name__
        cls.__qualname__ = name
    return classes


def __getattr__(name):
    if name in _ADAPTER_NAMES:
        _require_pymanopt()
        return _adapter_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_pymanopt(manifold, rng=None, dtype=None):
    """Wrap a spherenet manifold as a pymanopt manifold.

    The result is a ``pymanopt.manifolds.manifold.Manifold`` (a
    ``RiemannianSubmanifold`` for :class:`~spherenet.Sphere`,
    :class:`~spherenet.Oblique` and :class:`~spherenet.Euclidean`, a
    ``pymanopt.manifolds.Product`` for :class:`~spherenet.Product`) whose
    methods, under pymanopt's names, call the spherenet manifold's: pymanopt's
    optimizers then run on spherenet's geometry.

    Parameters
    ----------
    manifold : spherenet.Manifold
        The manifold to wrap.
    rng : None, int or numpy.random.Generator, optional
        Seeds ``random_point()`` and ``random_tangent_vector(point)``, which
        take no generator in pymanopt's API; the adapter holds it (the factors
        of a product share it). The global NumPy random state is never used.
    dtype : {None, numpy.float32, numpy.float64}, optional
        dtype of the points made by ``random_point()`` (default float64).
        Every other method keeps the dtype of its inputs.

    Returns
    -------
    pymanopt.manifolds.manifold.Manifold
        The adapter; the wrapped manifold is its ``spherenet_manifold``.

    Raises
    ------
    ImportError
        If pymanopt is not installed.
    TypeError
        If ``manifold`` is not a spherenet manifold, or ``rng`` or ``dtype``
        is not valid.

    See Also
    --------
    spherenet.Manifold : the contract the adapter translates.

    Notes
    -----
    Names are translated as follows: ``inner_product`` = ``inner``,
    ``projection`` = ``to_tangent_space`` = ``proj``,
    ``euclidean_to_riemannian_gradient`` = ``egrad2rgrad``,
    ``euclidean_to_riemannian_hessian`` = ``ehess2rhess``, ``retraction`` =
    ``retr``, ``transport`` = ``transp``, ``random_tangent_vector`` =
    ``random_tangent`` (a unit tangent vector, as in pymanopt); ``norm``,
    ``dist``, ``exp``, ``log``, ``zero_vector``, ``dim`` and
    ``typical_dist`` keep their names. ``pair_mean`` is the geodesic midpoint
    ``exp(a, log(a, b) / 2)``, and ``weingarten(x, u, n)`` is
    ``ehess2rhess(x, n, 0, u)``.

    The retraction and the transport are the spherenet manifold's choices:
    ``Sphere(n)`` retracts by the exponential map, whereas pymanopt's
    ``Sphere(n)`` retracts by projection; build ``Sphere(n,
    retraction="projection")`` to reproduce pymanopt's maps exactly.
    Transport is by projection unless the manifold was built with
    ``transport="parallel"``.

    As in pymanopt's ``Product``, points of a product are lists of arrays
    and tangent vectors are pymanopt's ``_ProductTangentVector``, which
    supports the arithmetic the optimizers do (``u + v``, ``t * u``).

    Examples
    --------
    >>> import numpy as np
    >>> import pymanopt
    >>> from spherenet import Sphere
    >>> from spherenet.interop import to_pymanopt
    >>> A = np.diag([3.0, 1.0, 2.0])
    >>> manifold = to_pymanopt(Sphere(3), rng=0)
    >>> @pymanopt.function.autograd(manifold)
    ... def cost(x):
    ...     return -x @ A @ x
    >>> problem = pymanopt.Problem(manifold, cost)
    >>> result = pymanopt.optimizers.TrustRegions(verbosity=0).run(problem)
    >>> np.round(np.abs(result.point), 6) + 0.0
    array([1., 0., 0.])
    """
    _require_pymanopt()
    if not isinstance(manifold, Manifold):
        raise TypeError(
            "to_pymanopt takes a spherenet manifold (Sphere, Oblique, Euclidean, Product), "
            f"got {type(manifold).__module__}.{type(manifold).__qualname__}"
        )
    rng = as_rng(rng)
    dtype = as_dtype(dtype)
    classes = _adapter_classes()
    cls = classes["_ProductAdapter" if isinstance(manifold, Product) else "_SubmanifoldAdapter"]
    return cls(manifold, rng, dtype)
