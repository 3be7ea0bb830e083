"""Interoperability: run other libraries' optimizers on spherenet's geometry.

:func:`to_pymanopt` wraps a spherenet manifold as a ``pymanopt`` manifold,
so that pymanopt's solvers (``SteepestDescent``, ``ConjugateGradient``,
``TrustRegions``, ...) run on spherenet's maps: its accurate ``dist``,
``exp`` and ``log``, its chosen retraction and transport.

The other way, :func:`from_pymanopt` turns a ``pymanopt.Problem`` into the
arguments of :func:`spherenet.minimize`, and :func:`from_pymanopt_options` a
pymanopt optimizer's settings into its options, so that a pymanopt script
runs on spherenet with one line::

    result = minimize(**from_pymanopt(problem), **from_pymanopt_options(optimizer))

pymanopt is an optional dependency: it is imported when these functions are
called, never when spherenet is imported.
"""

import functools
import inspect
import math
import warnings

import numpy as np

from .manifolds import Euclidean, Manifold, Oblique, Product, Sphere
from .manifolds.base import as_dtype, as_rng

__all__ = ["to_pymanopt", "from_pymanopt", "from_pymanopt_options"]

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


# -- from pymanopt ---------------------------------------------------------------------------

# pymanopt.Problem's identity preconditioner, which a user's replaces.
_DEFAULT_PRECONDITIONER = "Problem.__init__.<locals>.preconditioner"
_BETA_RULES = {"FletcherReeves": "FR", "PolakRibiere": "PR+", "HestenesStiefel": "HS",
               "HagerZhang": "HZ"}


def _qualname(obj):
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


def _manifold_from_pymanopt(manifold, retraction):
    """The spherenet manifold of a pymanopt Sphere, Oblique, Euclidean or Product."""
    import pymanopt.manifolds as pm

    if isinstance(manifold, _PymanoptMethods):  # a to_pymanopt adapter: unwrap it
        return manifold.spherenet_manifold
    kind = type(manifold)  # exact types: pymanopt's subclasses are other manifolds
    if kind is pm.Sphere:
        return Sphere(*manifold._shape, retraction=retraction)
    if kind is pm.Oblique:
        # pymanopt's Oblique(m, n) normalizes the columns of an m x n matrix (axis 0).
        return Oblique(manifold._m, manifold._n, axis=0, retraction=retraction)
    if kind is pm.Euclidean:
        return Euclidean(*manifold._shape)
    if kind is pm.Product:
        # (pymanopt refuses nested products.)
        return Product([_manifold_from_pymanopt(m, retraction) for m in manifold.manifolds])
    raise TypeError(
        "from_pymanopt takes a problem on pymanopt's Sphere, Oblique, Euclidean or a Product "
        f"of these, got a problem on {_qualname(manifold)} ({manifold})"
    )


def _given(function):
    """The function if the user gave it to the Problem, None if pymanopt derived it.

    pymanopt wraps a given function (a decorated ``Function``) with
    ``functools.wraps``; the derivatives it builds on demand (and caches on
    the problem) wrap backend operators or closures instead.
    """
    from pymanopt.autodiff import Function

    if function is not None and isinstance(inspect.unwrap(function), Function):
        return function
    return None


def _problem_functions(problem, is_product):
    """cost, grad, hess of a pymanopt Problem in spherenet's form (tuples for products)."""
    cost_fn = problem._original_cost
    backend = str(getattr(cost_fn, "_backend", "")).lower()
    egrad_fn, ehess_fn = _given(problem._euclidean_gradient), _given(problem._euclidean_hessian)
    rgrad_fn = _given(problem._riemannian_gradient)
    rhess_fn = _given(problem._riemannian_hessian)
    if rgrad_fn is not None or rhess_fn is not None:
        if rgrad_fn is None or rhess_fn is None or egrad_fn is not None or ehess_fn is not None:
            raise ValueError(
                "from_pymanopt takes a riemannian_gradient only with a riemannian_hessian and "
                "no Euclidean derivative: give euclidean_gradient (and euclidean_hessian), or "
                "let autograd differentiate the cost"
            )
        # On Sphere, Oblique and Euclidean factors egrad2rgrad(x, g) = g and
        # ehess2rhess(x, g, h, u) = h for tangent g and h: the Riemannian
        # gradient and Hessian pass unchanged as Euclidean ones.
        egrad_fn, ehess_fn = rgrad_fn, rhess_fn
    if backend in ("autograd", "numpy"):
        # Both backends call the decorated function unchanged: take it as it
        # is (autograd-traceable for the autograd backend).
        function = cost_fn._original_function
        cost = (lambda x: function(*x)) if is_product else function
    else:
        # Other backends (JAX, PyTorch, TensorFlow): go through the problem.
        cost = problem.cost
        if egrad_fn is None:
            egrad_fn = problem.euclidean_gradient
        if ehess_fn is None:
            ehess_fn = problem.euclidean_hessian
    if egrad_fn is None and backend == "numpy":
        raise ValueError(
            "the problem's cost uses pymanopt's NumPy backend and has no euclidean_gradient: "
            "give one, or decorate the cost with pymanopt.function.autograd"
        )
    grad = hess = None
    # The problem's own wrappers take pymanopt points (a tuple or list of
    # parts for a product) and return a list of parts for a product.
    if egrad_fn is not None:
        grad = (lambda x: tuple(egrad_fn(x))) if is_product else egrad_fn
    if ehess_fn is not None:
        hess = (lambda x, u: tuple(ehess_fn(x, u))) if is_product else ehess_fn
    elif backend == "numpy":
        def hess(x, u):
            raise ValueError(
                "the problem's cost uses pymanopt's NumPy backend and has no "
                "euclidean_hessian, which trust regions need: give one, or use "
                "method='cg' or 'sd'"
            )
    return cost, grad, hess


def from_pymanopt(problem, retraction="projection"):
    """The arguments of :func:`spherenet.minimize` for a ``pymanopt.Problem``.

    A pymanopt problem on ``Sphere``, ``Oblique``, ``Euclidean`` or a
    ``Product`` of these becomes a dict with the spherenet ``manifold``, the
    ``cost`` and, where the problem has them, the Euclidean gradient
    ``grad`` and Hessian-vector product ``hess``; ``minimize(**p)`` then
    solves it. With :func:`from_pymanopt_options` for the optimizer's
    settings, porting a pymanopt script is one line::

        result = minimize(**from_pymanopt(problem), **from_pymanopt_options(optimizer))

    Parameters
    ----------
    problem : pymanopt.Problem
        With a cost decorated by ``pymanopt.function.autograd(manifold)``,
        ``pymanopt.function.numpy(manifold)`` (then with a
        ``euclidean_gradient``) or another pymanopt backend.
    retraction : {"projection", "exp"}, default "projection"
        Retraction of the spheres. pymanopt's ``Sphere`` and ``Oblique``
        retract by projection, normalizing x + u, and so does the port by
        default, so that it takes pymanopt's steps; "exp" follows geodesics
        (spherenet's default). Transport is by projection, as in pymanopt.

    Returns
    -------
    dict
        ``manifold`` (:class:`~spherenet.Sphere`, :class:`~spherenet.Oblique`
        with ``axis=0``, :class:`~spherenet.Euclidean` or
        :class:`~spherenet.Product`), ``cost``, ``grad`` and ``hess`` (None
        where spherenet's autograd is to differentiate the cost).

    Raises
    ------
    ImportError
        If pymanopt is not installed.
    TypeError
        If ``problem`` is not a pymanopt Problem, or its manifold is not one
        of the four (``Stiefel``, ``Grassmann``, ``SphereSubspaceIntersection``,
        ``Symmetric``, ...): the message names it.
    ValueError
        A NumPy-backend cost without ``euclidean_gradient``; a Riemannian
        gradient without a Riemannian Hessian, or mixed with Euclidean ones.

    Warns
    -----
    UserWarning
        When the problem has a preconditioner: it is left out.

    See Also
    --------
    from_pymanopt_options : pymanopt optimizer settings as minimize's options.
    to_pymanopt : the other way, spherenet's geometry under pymanopt's solvers.

    Notes
    -----
    Translations. Manifolds: pymanopt's ``Sphere(*shape)`` is
    ``Sphere(*shape)`` (unit Frobenius norm), ``Oblique(m, n)`` -- whose
    *columns* have unit norm -- is ``Oblique(m, n, axis=0)``,
    ``Euclidean(*shape)`` is ``Euclidean(*shape)``, ``Product([...])`` is
    ``Product([...])``; a problem on a :func:`to_pymanopt` adapter gets the
    wrapped spherenet manifold back. Points: a pymanopt product point is a
    list of arrays, spherenet's a tuple; ``cost(u, v)`` of a product becomes
    ``cost((u, v))``, and an initial point ``x0=tuple(point)``.

    Derivatives: an autograd-backend cost is the decorated function itself,
    which spherenet's autograd differentiates (its gradient and
    Hessian-vector products) where the problem gives no
    ``euclidean_gradient``/``euclidean_hessian``; a NumPy-backend cost needs
    the ``euclidean_gradient`` (and ``euclidean_hessian`` for trust regions);
    other backends (JAX, PyTorch, TensorFlow) are called through the problem,
    which differentiates with the backend. A ``riemannian_gradient`` with a
    ``riemannian_hessian`` is used as is: on these manifolds, a tangent
    Euclidean gradient and Hessian-vector product are their own Riemannian
    ones. A ``preconditioner`` is not translated (spherenet's solvers take
    none): a warning says so.

    Examples
    --------
    The dominant eigenvector of a symmetric matrix, as in pymanopt's
    documentation, ported with one line:

    >>> import autograd.numpy as anp
    >>> import numpy as np
    >>> import pymanopt
    >>> from spherenet import minimize
    >>> from spherenet.interop import from_pymanopt
    >>> A = np.diag([1.0, 5.0, 2.0])
    >>> manifold = pymanopt.manifolds.Sphere(3)
    >>> @pymanopt.function.autograd(manifold)
    ... def cost(point):
    ...     return -point @ A @ point
    >>> problem = pymanopt.Problem(manifold, cost)
    >>> ported = from_pymanopt(problem)
    >>> ported["manifold"]
    Sphere(3, retraction='projection', transport='projection')
    >>> result = minimize(**ported, method="trust-regions", rng=0)
    >>> np.round(np.abs(result.x), 6) + 0.0
    array([0., 1., 0.])
    """
    _require_pymanopt()
    import pymanopt

    if not isinstance(problem, pymanopt.Problem):
        raise TypeError(f"from_pymanopt takes a pymanopt.Problem, got {_qualname(problem)}")
    manifold = _manifold_from_pymanopt(problem.manifold, retraction)
    cost, grad, hess = _problem_functions(problem, isinstance(manifold, Product))
    if getattr(problem.preconditioner, "__qualname__", "") != _DEFAULT_PRECONDITIONER:
        warnings.warn("the problem's preconditioner is not translated: spherenet's solvers "
                      "take none, and run unpreconditioned", stacklevel=2)
    return {"cost": cost, "manifold": manifold, "grad": grad, "hess": hess}


# pymanopt's Optimizer settings and minimize's options of the same meaning.
_COMMON_SETTINGS = (
    ("_max_iterations", "maxiter"),
    ("_min_gradient_norm", "gtol"),
    ("_min_step_size", "xtol"),
    ("_max_time", "maxtime"),
)


def _line_search_from_pymanopt(searcher, optimizer_name):
    from pymanopt.optimizers.line_search import AdaptiveLineSearcher, BackTrackingLineSearcher

    from .optim.line_search import AdaptiveLineSearch, BacktrackingLineSearch

    if type(searcher) is BackTrackingLineSearcher:
        return BacktrackingLineSearch(
            contraction=searcher.contraction_factor, optimism=searcher.optimism,
            sufficient_decrease=searcher.sufficient_decrease,
            max_trials=searcher.max_iterations, initial_step=searcher.initial_step_size)
    if type(searcher) is AdaptiveLineSearcher:
        return AdaptiveLineSearch(
            contraction=searcher._contraction_factor,
            sufficient_decrease=searcher._sufficient_decrease,
            max_trials=searcher._max_iterations, initial_step=searcher._initial_step_size)
    raise TypeError(
        f"from_pymanopt_options translates pymanopt's BackTrackingLineSearcher and "
        f"AdaptiveLineSearcher, got {_qualname(searcher)} in {optimizer_name}"
    )


def from_pymanopt_options(optimizer, **run_options):
    """The options of :func:`spherenet.minimize` that match a pymanopt optimizer's settings.

    Parameters
    ----------
    optimizer : pymanopt.optimizers.SteepestDescent, ConjugateGradient or TrustRegions
    **run_options
        For ``TrustRegions``, the options that pymanopt takes in ``run()``:
        ``Delta_bar``, ``Delta0``, ``maxinner``, ``mininner`` (only 1).

    Returns
    -------
    dict
        ``method`` ("sd", "cg" or "trust-regions"), ``maxiter``, ``gtol``,
        ``xtol``, ``maxtime``, ``verbose``, and per method:
        ``line_search`` (sd, cg), ``beta_rule`` and ``restart`` (cg),
        ``max_radius``, ``radius``, ``kappa``, ``theta``, ``rho_prime``,
        ``rho_regularization``, ``maxinner`` (trust regions).

    Raises
    ------
    TypeError
        Another optimizer (``NelderMead``, ``ParticleSwarm``, ...), another
        line searcher, or an unknown run option.
    ValueError
        A setting spherenet has no equivalent for: the ``LiuStorey`` beta
        rule, ``use_rand=True`` or ``mininner`` other than 1 for trust regions.

    Warns
    -----
    UserWarning
        ``TrustRegions(miniter=...)`` other than 0 or 1: spherenet's trust
        regions have no minimum number of iterations (pymanopt's default,
        3, only matters when x0 is already stationary); the setting is left out.

    Notes
    -----
    The options reproduce what pymanopt 2.2 does, which is not always what
    its names say. ``min_gradient_norm`` = ``gtol``, ``min_step_size`` =
    ``xtol``, ``max_time`` = ``maxtime``, ``verbosity`` = ``verbose``
    (capped at 2); pymanopt's tests are strict (``<``) where spherenet's are
    ``<=``, which differs only on ties. ``max_iterations`` = ``maxiter`` for
    ``SteepestDescent`` and ``TrustRegions``, which take that many steps; its
    ``ConjugateGradient`` counts the starting point as iteration 1 and takes
    one step less, and tests ``max_cost_evaluations`` against that same
    iteration count, so ``maxiter = min(max_iterations,
    max_cost_evaluations) - 1``. ``SteepestDescent`` and ``TrustRegions``
    never test ``max_cost_evaluations``: it is left out (give ``maxfev=``
    for a limit on cost evaluations). The
    line searchers map to :class:`~spherenet.optim.BacktrackingLineSearch`
    and :class:`~spherenet.optim.AdaptiveLineSearch` with the same constants.
    Beta rules: ``FletcherReeves`` = "FR", ``PolakRibiere`` = "PR+",
    ``HestenesStiefel`` = "HS", ``HagerZhang`` = "HZ"; ``orth_value`` (Powell's
    restart) = ``restart`` (infinite: None). Trust regions: ``Delta_bar`` =
    ``max_radius``, ``Delta0`` = ``radius``; ``kappa``, ``theta``,
    ``rho_prime``, ``rho_regularization`` and ``maxinner`` keep their names.

    Examples
    --------
    >>> import pymanopt
    >>> from spherenet.interop import from_pymanopt_options
    >>> options = from_pymanopt_options(pymanopt.optimizers.ConjugateGradient(
    ...     beta_rule="PolakRibiere", max_iterations=300, verbosity=0))
    >>> options["method"], options["beta_rule"], options["maxiter"]
    ('cg', 'PR+', 299)
    """
    _require_pymanopt()
    from pymanopt.optimizers import ConjugateGradient, SteepestDescent, TrustRegions

    kind = type(optimizer)
    if kind not in (SteepestDescent, ConjugateGradient, TrustRegions):
        raise TypeError(
            "from_pymanopt_options translates pymanopt's SteepestDescent, ConjugateGradient "
            f"and TrustRegions, got {_qualname(optimizer)}"
        )
    name = kind.__name__
    allowed = ("Delta_bar", "Delta0", "maxinner", "mininner") if kind is TrustRegions else ()
    unknown = sorted(set(run_options) - set(allowed))
    if unknown:
        raise TypeError(
            f"from_pymanopt_options takes the run() options {list(allowed)} for {name}, "
            f"got {unknown}"
        )
    options = {key: getattr(optimizer, attribute) for attribute, key in _COMMON_SETTINGS}
    options["verbose"] = min(int(optimizer._verbosity), 2)
    if kind is SteepestDescent:
        options["method"] = "sd"
        options["line_search"] = _line_search_from_pymanopt(optimizer._line_searcher, name)
    elif kind is ConjugateGradient:
        options["method"] = "cg"
        # pymanopt's CG stops when its 1-based iteration count (which it also
        # passes as the number of cost evaluations) reaches either bound.
        options["maxiter"] = max(
            0, min(optimizer._max_iterations, optimizer._max_cost_evaluations) - 1)
        if optimizer._beta_rule not in _BETA_RULES:
            raise ValueError(
                f"spherenet's conjugate gradients have the beta rules {list(_BETA_RULES)}, "
                f"got {optimizer._beta_rule!r}"
            )
        options["beta_rule"] = _BETA_RULES[optimizer._beta_rule]
        orth = float(optimizer._orth_value)
        options["restart"] = None if orth == math.inf else orth
        options["line_search"] = _line_search_from_pymanopt(optimizer._line_searcher, name)
    else:
        options["method"] = "trust-regions"
        if optimizer.use_rand:
            raise ValueError("spherenet's trust regions start tCG at 0: use_rand=True has no "
                             "equivalent, got use_rand=True")
        if run_options.get("mininner", 1) != 1:
            raise ValueError("spherenet's truncated CG has no minimum of inner iterations: "
                             f"mininner must be 1, got {run_options['mininner']!r}")
        if optimizer.miniter not in (0, 1):
            warnings.warn(
                f"TrustRegions(miniter={optimizer.miniter}) has no equivalent in spherenet "
                "(which stops as soon as a test holds); it is left out", stacklevel=2)
        delta_bar, delta0 = run_options.get("Delta_bar"), run_options.get("Delta0")
        # As pymanopt: Delta0 defaults to Delta_bar / 8, and so does spherenet's radius.
        options["max_radius"] = delta_bar
        options["radius"] = delta0
        options["maxinner"] = run_options.get("maxinner")
        for key in ("kappa", "theta", "rho_prime", "rho_regularization"):
            options[key] = getattr(optimizer, key)
    return options
