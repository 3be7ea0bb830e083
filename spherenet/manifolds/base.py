"""The manifold contract: every manifold of spherenet implements these methods.

A manifold is a small object of pure methods on NumPy arrays. It holds its
shape and its chosen retraction and transport, nothing that changes, and its
methods never modify their arguments. Points and tangent vectors are
``numpy.ndarray`` (tuples of them for :class:`~spherenet.Product`), and every
method keeps the dtype of its input: float32 in, float32 out.

Which optimizer needs which method:

* first-order solvers and step rules: ``egrad2rgrad``, ``inner``/``norm``,
  ``retr``, ``transp`` (momentum, conjugate directions);
* trust regions: additionally ``ehess2rhess`` and ``typical_dist``;
* Karcher means, diagnostics and distances to a known optimum: ``exp``,
  ``log``, ``dist``;
* everything that starts from nothing: ``random_point``, ``random_tangent``,
  ``zero_vector``.

``check_point`` and ``check_tangent`` validate at the public boundary; the
other methods trust their inputs, as hot paths should.
"""

import abc
import numbers

import numpy as np

__all__ = ["Manifold", "as_rng"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_rng(rng):
    """Return a ``numpy.random.Generator`` from ``None``, an int or a Generator.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        ``None`` gives a fresh, unseeded generator; an int seeds one; a
        Generator is returned as is. The global NumPy random state is never
        used.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        For anything else.

    Examples
    --------
    >>> from spherenet.manifolds.base import as_rng
    >>> bool(as_rng(0).integers(10) == as_rng(0).integers(10))
    True
    """
    if rng is None or isinstance(rng, (numbers.Integral, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(
        f"rng must be None, an int or a numpy.random.Generator, got {type(rng).__name__}"
    )


def as_dtype(dtype):
    """Return ``dtype`` as a float32/float64 ``numpy.dtype`` (default float64)."""
    dt = np.dtype(np.float64 if dtype is None else dtype)
    if dt not in _FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value


def _check_shape(shape, what="shape"):
    """Validate a shape given as ints; returns it as a tuple of ints."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    if len(shape) == 0:
        raise TypeError(f"{what} needs at least one dimension, got none")
    for n in shape:
        if isinstance(n, bool) or not isinstance(n, numbers.Integral):
            raise TypeError(f"{what} must be given as ints, got {shape!r}")
        if n < 1:
            raise ValueError(f"{what} must have positive sizes, got {tuple(shape)!r}")
    return tuple(int(n) for n in shape)


def _check_array(manifold, a, what):
    """Raise unless ``a`` is a finite float32/float64 ndarray of ``manifold.shape``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{what} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{what} must have dtype float32 or float64, got {a.dtype}")
    if a.shape != manifold.shape:
        raise ValueError(f"{what} must have shape {manifold.shape} for {manifold!r}, got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} has {int(np.sum(~np.isfinite(a)))} non-finite entries")


class Manifold(abc.ABC):
    """Abstract base class of spherenet's manifolds: the whole contract.

    Subclasses implement the abstract methods below with the vocabulary of
    Manopt and of Absil, Mahony & Sepulchre (2008) and Boumal (2023).

    Attributes
    ----------
    shape : tuple of int
        Shape of a point (for :class:`~spherenet.Product`, a tuple of shapes).
    dim : int
        Dimension of the manifold (of each tangent space).
    typical_dist : float
        A typical distance between points; trust regions use it for their
        default radii.
    retraction : str
        Name of the retraction used by :meth:`retr`.
    transport : str
        Name of the vector transport used by :meth:`transp`.

    Notes
    -----
    All spherenet manifolds are Riemannian submanifolds of a Euclidean space
    (or products of them) with the metric inherited from the Frobenius inner
    product, so :meth:`inner` is the Frobenius inner product of the ambient
    arrays.

    References
    ----------
    .. [1] P.-A. Absil, R. Mahony, R. Sepulchre, *Optimization Algorithms on
       Matrix Manifolds*, Princeton University Press, 2008.
    .. [2] N. Boumal, *An Introduction to Optimization on Smooth Manifolds*,
       Cambridge University Press, 2023.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> M = Sphere(3)
    >>> x = M.random_point(rng=0)
    >>> u = M.proj(x, np.array([1.0, 2.0, 3.0]))
    >>> bool(abs(M.inner(x, x, u)) < 1e-15)
    True
    """

    retraction = None
    transport = None

    def __repr__(self):
        return f"{type(self).__name__}{self._repr_args()}"

    def _repr_args(self):  # pragma: no cover - overridden
        return "()"

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def _key(self):  # pragma: no cover - overridden
        return ()

    # --- properties -------------------------------------------------------

    @property
    @abc.abstractmethod
    def dim(self):
        """Dimension of the manifold."""

    @property
    @abc.abstractmethod
    def typical_dist(self):
        """A typical distance between two points."""

    # --- tangent spaces and metric ---------------------------------------

    @abc.abstractmethod
    def proj(self, x, u):
        """Orthogonal projection of an ambient vector ``u`` onto T_x."""

    def egrad2rgrad(self, x, egrad):
        """Riemannian gradient at ``x`` from the Euclidean gradient ``egrad``.

        For a Riemannian submanifold it is the tangent projection of the
        Euclidean gradient.
        """
        return self.proj(x, egrad)

    @abc.abstractmethod
    def ehess2rhess(self, x, egrad, ehess, u):
        """Riemannian Hessian along ``u`` from the Euclidean gradient and Hessian.

        ``ehess`` is the Euclidean Hessian-vector product ∇²f(x)[u].
        """

    @abc.abstractmethod
    def inner(self, x, u, v):
        """Riemannian inner product of tangent vectors ``u``, ``v`` at ``x``."""

    def directional_derivative(self, x, grad, d):
        """d/dt f(retr(x, t d)) at t = 0, from the gradient ``grad`` of f in this geometry.

        For a manifold it is <grad, d>; a geometry whose gradient is not
        Riemannian (the projection strategy's) overrides it. Line searches
        use it as the slope of their Armijo test.
        """
        return self.inner(x, grad, d)

    def norm(self, x, u):
        """Riemannian norm of the tangent vector ``u`` at ``x``."""
        return float(np.sqrt(self.inner(x, u, u)))

    @abc.abstractmethod
    def dist(self, x, y):
        """Geodesic distance between points ``x`` and ``y``."""

    # --- maps ---------------------------------------------------------------

    @abc.abstractmethod
    def exp(self, x, u):
        """Exponential map: the point reached at time 1 along the geodesic from ``x`` with velocity ``u``."""

    @abc.abstractmethod
    def log(self, x, y):
        """Logarithmic map: the tangent vector at ``x`` whose exponential is ``y``."""

    @abc.abstractmethod
    def retr(self, x, u):
        """The manifold's chosen retraction of the tangent vector ``u`` at ``x``."""

    @abc.abstractmethod
    def inverse_retr(self, x, y):
        """Inverse of :meth:`retr`: the ``u`` in T_x with ``retr(x, u) == y``."""

    @abc.abstractmethod
    def transp(self, x, y, v):
        """The manifold's chosen vector transport of ``v`` in T_x to T_y."""

    def violation(self, x):
        """How far ``x`` is off the manifold: max over the factors of ``| ||x_k|| - 1 |``.

        0 for unconstrained (Euclidean) manifolds. Histories of optimizers
        record it after every step.
        """
        raise NotImplementedError(f"{type(self).__name__} does not define violation")

    # --- sampling -------------------------------------------------------------

    @abc.abstractmethod
    def random_point(self, rng=None, dtype=None):
        """A random point, seeded by ``rng`` (None, an int or a Generator)."""

    @abc.abstractmethod
    def random_tangent(self, x, rng=None):
        """A random unit-norm tangent vector at ``x``, of ``x``'s dtype."""

    @abc.abstractmethod
    def zero_vector(self, x):
        """The zero tangent vector at ``x``."""

    # --- validation -------------------------------------------------------

    @abc.abstractmethod
    def check_point(self, x, atol=None):
        """Raise ``TypeError``/``ValueError`` unless ``x`` is a point of the manifold.

        The message names what was expected and what came (shape, dtype, or
        by how much the constraint is violated). Returns ``x`` unchanged.
        """

    @abc.abstractmethod
    def check_tangent(self, x, u, atol=None):
        """Raise ``TypeError``/``ValueError`` unless ``u`` is tangent at the point ``x``.

        Returns ``u`` unchanged.
        """

    # --- the fused gradient step --------------------------------------------

    def gradient_step(self, x, egrad, lr, out=None):
        """One Riemannian gradient step ``retr(x, -lr * egrad2rgrad(x, egrad))``.

        Subclasses may implement it in one pass with no full-size temporary
        (the step rules of :mod:`spherenet.optim` use it); this default calls
        the methods one by one.

        Parameters
        ----------
        x : array_like
            The current point.
        egrad : array_like
            The Euclidean gradient at ``x``.
        lr : float
            The step size.
        out : ndarray, optional
            Where to write the new point; may be ``x`` itself.

        Returns
        -------
        ndarray
            The new point (``out`` if given).
        """
        new = self.retr(x, -lr * self.egrad2rgrad(x, egrad))
        if out is None:
            return new
        np.copyto(out, new)
        return out
