"""How a unit-norm constraint is kept while an optimizer runs.

A *strategy* turns the constrained problem "minimize f(w) with w on the
manifold M" into something an optimizer can run, and every strategy exposes
the same interface, so that the same optimizer with the same hyper-parameters
runs under each and any difference in convergence is the strategy's alone:

``geometry``
    A :class:`~spherenet.Manifold` on which the optimizer's variable ``z``
    lives: M itself (riemannian), M's ambient space with "step, then
    normalize" as retraction (projection), or flat space (reparam, penalty,
    none).
``to_variable(w)`` / ``to_weights(z)``
    Between the weights and the optimizer's variable.
``cost(f)``, ``egrad(f, egrad)``
    The cost (and a user gradient) as functions of the variable.
``violation(z)``
    The constraint violation max_k | ||w_k|| - 1 | of the weights.

Only the sphere-like factors (:class:`~spherenet.Sphere`,
:class:`~spherenet.Oblique`) of a :class:`~spherenet.Product` are
constrained; Euclidean factors are left alone by every strategy.

.. list-table::
   :header-rows: 1

   * - strategy
     - what happens to a constrained block w
   * - ``riemannian``
     - gradient projected to T_w, step through the retraction (or exp),
       momentum moved by vector transport
   * - ``projection``
     - plain Euclidean step, then w <- w/||w|| (Keras ``unit_norm()``)
   * - ``reparam``
     - optimize an unconstrained v with w = v/||v|| (weight normalization)
   * - ``penalty``
     - unconstrained w, mu * sum_k (||w_k||^2 - 1)^2 added to the cost
   * - ``none``
     - the constraint is ignored (a baseline)
"""

import autograd.numpy as anp
import numpy as np

from .manifolds import Euclidean, Manifold, Product
from .manifolds.sphere import _Spheres

__all__ = [
    "Strategy",
    "Riemannian",
    "Projection",
    "Reparam",
    "Penalty",
    "NoConstraint",
    "ProjectionGeometry",
    "get_strategy",
    "STRATEGIES",
]


def _factors(manifold):
    return manifold.manifolds if isinstance(manifold, Product) else (manifold,)


def _join(manifold, parts):
    return tuple(parts) if isinstance(manifold, Product) else parts[0]


def _split(manifold, x):
    return tuple(x) if isinstance(manifold, Product) else (x,)


def _flat(manifold):
    """The flat space of the manifold's shape, unchecked (strategies validate at their entry)."""
    flats = [Euclidean(*m.shape) for m in _factors(manifold)]
    return (Product(flats) if isinstance(manifold, Product) else flats[0]).unchecked


def _normalize(m, w, epsilon=0.0):
    """w / (epsilon + ||w||) factor by factor (autograd-differentiable)."""
    norms = anp.sqrt(anp.sum(w * w, axis=m._axes, keepdims=True))
    return w / (epsilon + norms)


class Strategy:
    """Base class: the interface every strategy gives to the optimizers.

    Parameters
    ----------
    manifold : Manifold
        The constraint: a Sphere, an Oblique, a Euclidean or a Product of them.
    """

    name = None
    extra_fields = ()

    def __init__(self, manifold):
        if not isinstance(manifold, Manifold):
            raise TypeError(f"a strategy needs a Manifold, got {type(manifold).__name__}")
        self.manifold = manifold
        # The optimizers' hot loops call the geometry on iterates it produced
        # itself: the unchecked maps (the entry points validate x0 once).
        self.geometry = manifold.unchecked

    def __repr__(self):
        return f"{type(self).__name__}({self.manifold!r})"

    def _constrained(self):
        return [isinstance(m, _Spheres) for m in _factors(self.manifold)]

    def to_variable(self, w):
        """The optimizer's variable for the weights ``w``."""
        return w

    def to_weights(self, z):
        """The weights for the optimizer's variable ``z``."""
        return z

    def cost(self, f):
        """The cost as a function of the variable."""
        return f

    def egrad(self, f_egrad, z):
        """Euclidean gradient in the variable from the user's gradient in the weights."""
        return f_egrad(self.to_weights(z))

    def ehess(self, f_ehess, z, u):
        """Euclidean Hessian-vector product in the variable, from the user's (or None)."""
        return f_ehess(self.to_weights(z), u)

    def supports_user_hessian(self):
        return True

    def violation(self, z):
        """max_k | ||w_k|| - 1 | over the constrained factors of the weights."""
        if isinstance(self.manifold, _Spheres):  # one factor, constrained: the loop below
            return max(0.0, self.manifold.unchecked.violation(self.to_weights(z)))
        w = _split(self.manifold, self.to_weights(z))
        worst = 0.0
        for m, wi, constrained in zip(_factors(self.manifold), w, self._constrained()):
            if constrained:
                worst = max(worst, m.unchecked.violation(wi))
        return worst

    def angle(self, w_old, w_new):
        """Geodesic distance moved by the constrained weights (normalized first)."""
        return self._angle(w_old, w_new, normalize=True)

    def _angle(self, w_old, w_new, normalize):
        total = 0.0
        parts = zip(_factors(self.manifold), _split(self.manifold, w_old),
                    _split(self.manifold, w_new), self._constrained())
        for m, a, b, constrained in parts:
            if constrained:
                if normalize:
                    a = a / m._red.norms(a).astype(a.dtype)
                    b = b / m._red.norms(b).astype(b.dtype)
                total += m.unchecked.dist(a, b) ** 2
        return float(np.sqrt(total))

    def extras(self, z):
        return {}

    def infeasible_advice(self):
        """What to do when a run ends with the constraint violated beyond ``ctol``."""
        return ("the iterates drifted off the manifold; please report it, with the "
                "strategy, method and dtype")

    def measure(self, z, egrad, rgrad):
        """The gradient norm for stopping tests and histories.

        For riemannian, projection and reparam it is the same number, the
        norm of the Riemannian gradient of f at the weights, so that one
        ``gtol`` means one thing across them; penalty and none use the norm
        of the gradient of the cost they minimize.
        """
        return self.geometry.norm(z, rgrad)


class Riemannian(Strategy):
    """Optimize on the manifold: Riemannian gradient, retraction, transport.

    Parameters
    ----------
    manifold : Manifold
    retraction : {"exp", "projection"}, optional
        Overrides the sphere factors' retraction.
    transport : {"projection", "parallel"}, optional
        Overrides the sphere factors' transport.

    Examples
    --------
    >>> from spherenet import Oblique
    >>> from spherenet.strategies import Riemannian
    >>> Riemannian(Oblique(3, 4), retraction="projection").geometry.retraction
    'projection'
    """

    name = "riemannian"

    def __init__(self, manifold, retraction=None, transport=None):
        super().__init__(manifold)
        if retraction is not None or transport is not None:
            def make():
                parts = [
                    m.with_options(retraction=retraction, transport=transport)
                    if isinstance(m, _Spheres) else m
                    for m in _factors(manifold)
                ]
                return (Product(parts) if isinstance(manifold, Product) else parts[0]).unchecked

            if all(o is None or o.__class__ is str for o in (retraction, transport)):
                # The same geometry for every strategy made with these options (a grid of
                # runs makes one per run): kept on the manifold, built once.
                self.geometry = manifold._memo(("riemannian", retraction, transport), make)
            else:
                self.geometry = make()  # with_options names what is wrong

    def angle(self, w_old, w_new):
        # The iterates are on the manifold: no normalization needed.
        return self._angle(w_old, w_new, normalize=False)


class ProjectionGeometry(Manifold):
    """The "step, then normalize" geometry of Keras ``unit_norm()``, as a manifold-like object.

    The gradient is used as is (``egrad2rgrad`` is the identity), a step
    moves in the ambient space and then each sphere factor is normalized,
    w <- w / (epsilon + ||w||); momentum is not transported (it is a plain
    ambient vector). With this object the same optimizer code runs the
    projection strategy.

    Parameters
    ----------
    manifold : Manifold
    epsilon : float
        Keras adds ``backend.epsilon()`` (1e-7) to the norm; 0 (default)
        normalizes exactly.
    """

    retraction = "normalize"
    transport = "identity"

    def __init__(self, manifold, epsilon=0.0):
        self.manifold = manifold
        self.epsilon = float(epsilon)
        self._flat = _flat(manifold)

    def _key(self):
        return (self.manifold, self.epsilon)

    def _repr_args(self):
        return f"({self.manifold!r}, epsilon={self.epsilon})"

    @property
    def shape(self):
        return self.manifold.shape

    @property
    def dim(self):
        return self._flat.dim

    @property
    def typical_dist(self):
        return self.manifold.typical_dist

    def _normalize(self, z):
        parts = []
        for m, zi in zip(_factors(self.manifold), _split(self.manifold, z)):
            if isinstance(m, _Spheres):
                scale = 1.0 / (self.epsilon + m._red.norms(zi))
                zi = zi * scale.astype(zi.dtype)
            parts.append(zi)
        return _join(self.manifold, parts)

    # Public methods validate as the flat space does (dtype, shape, finite
    # values; a point need not have unit norm: with epsilon > 0 it never has).
    def _check_args(self, method, args, atol=None):
        self._flat._check_args(method, args, atol)

    def _proj(self, x, u):
        return u

    def _egrad2rgrad(self, x, egrad):
        return egrad

    def _ehess2rhess(self, x, egrad, ehess, u):
        return ehess

    def _inner(self, x, u, v):
        return self._flat.inner(x, u, v)

    def _directional_derivative(self, x, grad, d):
        # t -> normalize(x + t d) moves x by P_x d to first order, so the
        # slope is <P_x grad, d>: the radial part of the gradient does no work.
        return self.manifold._inner(x, self.manifold._proj(x, grad), d)

    def _norm(self, x, u):
        return self._flat.norm(x, u)

    def _dist(self, x, y):
        return self.manifold._dist(x, y)

    def _exp(self, x, u):
        return self._retr(x, u)

    def _log(self, x, y):
        return self._flat.log(x, y)

    def _retr(self, x, u):
        return self._normalize(self._flat.retr(x, u))

    def _inverse_retr(self, x, y):
        return self._flat.log(x, y)

    def _transp(self, x, y, v):
        return v

    def _violation(self, x):
        return self.manifold._violation(x)

    def _project_point(self, x):
        return self.manifold._project_point(x)

    def _gradient_step(self, x, egrad, lr, out=None):
        new = self._retr(x, _scaled(egrad, -lr))
        if out is None:
            return new
        for o, n in zip(_split(self.manifold, out), _split(self.manifold, new)):
            np.copyto(o, n)
        return out

    def random_point(self, rng=None, dtype=None):
        return self.manifold.random_point(rng, dtype)

    def _random_tangent(self, x, rng=None):
        return self._flat.random_tangent(x, rng)

    def _zero_vector(self, x):
        return self._flat.zero_vector(x)

    def check_point(self, x, atol=None, name="point"):
        return self.manifold.check_point(x, atol, name)

    def check_tangent(self, x, u, atol=None):
        return self._flat.check_tangent(x, u, atol)


def _scaled(u, a):
    if isinstance(u, (tuple, list)):
        return tuple(ui * ui.dtype.type(a) for ui in u)
    return u * u.dtype.type(a)


class Projection(Strategy):
    """Euclidean step, then normalize each constrained factor (Keras ``unit_norm()``).

    Parameters
    ----------
    manifold : Manifold
    epsilon : float, default 0.0
        Keras's ``w / (epsilon + ||w||)``; use 1e-7 to reproduce Keras exactly.

    Notes
    -----
    For plain gradient descent this is the Riemannian projection-retraction
    step with a rescaled step size: normalize(x - eta g) equals
    R_x(-eta' P_x g) with eta' = eta / (1 - eta <x, g>) whenever
    1 - eta <x, g> > 0. Momentum or Adam state, kept in the ambient space,
    breaks the identity.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.strategies import Projection
    >>> s = Projection(Sphere(2))
    >>> s.geometry.retr(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    array([0.70710678, 0.70710678])
    """

    name = "projection"

    def __init__(self, manifold, epsilon=0.0):
        super().__init__(manifold)
        self.geometry = ProjectionGeometry(manifold, epsilon).unchecked

    def measure(self, z, egrad, rgrad):
        # z is normalized (to 1/(1 + epsilon)): the unchecked maps.
        fast = self.manifold.unchecked
        return fast.norm(z, fast.egrad2rgrad(z, egrad))


class _Unconstrained(Strategy):
    def __init__(self, manifold):
        super().__init__(manifold)
        self.geometry = _flat(manifold)


class Reparam(_Unconstrained):
    """Optimize an unconstrained v; the weights are w = v / ||v|| (weight normalization).

    The history records ``v_norm``, the largest ||v_k||: the gradient in v is
    P_w(g)/||v||, orthogonal to v, so every step grows ||v|| and slows the
    next steps down (Salimans & Kingma 2016).

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.strategies import Reparam
    >>> s = Reparam(Sphere(2))
    >>> s.to_weights(np.array([3.0, 4.0]))
    array([0.6, 0.8])
    """

    name = "reparam"
    extra_fields = ("v_norm",)

    def to_weights(self, z):
        parts = [
            _normalize(m, zi) if c else zi
            for m, zi, c in zip(_factors(self.manifold), _split(self.manifold, z), self._constrained())
        ]
        return _join(self.manifold, parts)

    def to_variable(self, w):
        return _join(self.manifold, [np.array(wi, copy=True) for wi in _split(self.manifold, w)])

    def cost(self, f):
        return lambda z: f(self.to_weights(z))

    def egrad(self, f_egrad, z):
        w = self.to_weights(z)
        g = _split(self.manifold, f_egrad(w))
        parts = []
        for m, zi, wi, gi, c in zip(_factors(self.manifold), _split(self.manifold, z),
                                    _split(self.manifold, w), g, self._constrained()):
            if c:
                # d/dv f(v/||v||) = P_w(g) / ||v||
                gi = m._proj(wi, gi) * (1.0 / m._red.norms(zi)).astype(gi.dtype)
            parts.append(gi)
        return _join(self.manifold, parts)

    def supports_user_hessian(self):
        return False

    def measure(self, z, egrad, rgrad):
        # grad_v = P_w(g) / ||v|| factor by factor: undo the 1/||v||.
        parts = [
            gi * m._red.norms(zi).astype(gi.dtype) if c else gi
            for m, zi, gi, c in zip(_factors(self.manifold), _split(self.manifold, z),
                                    _split(self.manifold, egrad), self._constrained())
        ]
        return self.geometry.norm(z, _join(self.manifold, parts))

    def extras(self, z):
        norms = [float(np.max(m._red.norms(zi)))
                 for m, zi, c in zip(_factors(self.manifold), _split(self.manifold, z), self._constrained())
                 if c]
        return {"v_norm": max(norms) if norms else float("nan")}


class Penalty(_Unconstrained):
    """Unconstrained weights with mu * sum_k (||w_k||^2 - 1)^2 added to the cost.

    Parameters
    ----------
    manifold : Manifold
    mu : float, default 1.0
        Weight of the penalty. The minimizer is only approximately on the
        sphere; the violation shrinks like 1/mu.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.strategies import Penalty
    >>> s = Penalty(Sphere(2), mu=10.0)
    >>> float(s.cost(lambda w: 0.0)(np.array([2.0, 0.0])))
    90.0
    """

    name = "penalty"

    def __init__(self, manifold, mu=1.0):
        super().__init__(manifold)
        if not mu > 0:
            raise ValueError(f"mu must be positive, got {mu}")
        self.mu = float(mu)

    def _penalty(self, z):
        total = 0.0
        for m, zi, c in zip(_factors(self.manifold), _split(self.manifold, z), self._constrained()):
            if c:
                sq = anp.sum(zi * zi, axis=m._axes)
                total = total + anp.sum((sq - 1.0) ** 2)
        return self.mu * total

    def cost(self, f):
        return lambda z: f(z) + self._penalty(z)

    def infeasible_advice(self):
        return (f"the penalty (mu={self.mu:g}) only pulls the weights towards the sphere, "
                "by about 1/mu: raise mu, or use strategy='riemannian' to keep them on it")

    def egrad(self, f_egrad, z):
        g = _split(self.manifold, f_egrad(z))
        parts = []
        for m, zi, gi, c in zip(_factors(self.manifold), _split(self.manifold, z), g, self._constrained()):
            if c:
                gap = (m._red.dot(zi, zi) - 1.0).astype(zi.dtype)
                gi = gi + zi.dtype.type(4.0 * self.mu) * gap * zi
            parts.append(gi)
        return _join(self.manifold, parts)

    def ehess(self, f_ehess, z, u):
        h = _split(self.manifold, f_ehess(z, u))
        parts = []
        for m, zi, ui, hi, c in zip(_factors(self.manifold), _split(self.manifold, z),
                                    _split(self.manifold, u), h, self._constrained()):
            if c:
                gap = (m._red.dot(zi, zi) - 1.0).astype(zi.dtype)
                zu = m._red.dot(zi, ui).astype(zi.dtype)
                mu4 = zi.dtype.type(4.0 * self.mu)
                hi = hi + mu4 * (gap * ui + 2 * zu * zi)
            parts.append(hi)
        return _join(self.manifold, parts)


class NoConstraint(_Unconstrained):
    """Ignore the constraint: plain Euclidean optimization (a baseline).

    Examples
    --------
    >>> from spherenet import Sphere
    >>> from spherenet.strategies import NoConstraint
    >>> NoConstraint(Sphere(3)).geometry
    Euclidean(3)
    """

    name = "none"

    def infeasible_advice(self):
        return "strategy 'none' ignores the constraint: use 'riemannian' to keep it"


STRATEGIES = {
    "riemannian": Riemannian,
    "projection": Projection,
    "reparam": Reparam,
    "penalty": Penalty,
    "none": NoConstraint,
}


def get_strategy(strategy, manifold, **options):
    """A strategy for ``manifold`` from a name, a Strategy class or an instance.

    Parameters
    ----------
    strategy : str, Strategy subclass or Strategy
        One of ``"riemannian"``, ``"projection"``, ``"reparam"``,
        ``"penalty"``, ``"none"``.
    manifold : Manifold
    **options
        Passed to the strategy (e.g. ``mu=`` for penalty, ``retraction=``
        for riemannian, ``epsilon=`` for projection).

    Examples
    --------
    >>> from spherenet import Sphere
    >>> from spherenet.strategies import get_strategy
    >>> get_strategy("penalty", Sphere(3), mu=10.0).mu
    10.0
    """
    if isinstance(strategy, Strategy):
        if options:
            raise TypeError("options cannot be given with a Strategy instance")
        return strategy
    if isinstance(strategy, type) and issubclass(strategy, Strategy):
        return strategy(manifold, **options)
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {sorted(STRATEGIES)}, got {strategy!r}")
    return STRATEGIES[strategy](manifold, **options)
