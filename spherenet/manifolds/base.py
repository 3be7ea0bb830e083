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

**Input policy.** Every public method validates its arguments at entry and refuses bad input
with an exception whose message names the method, the argument, what was
expected and what came; it never returns a silently wrong value.

1. **dtypes.** Arrays must be ``numpy.ndarray`` of dtype float32 or float64.
   Anything else -- integer, bool, float16, complex or object arrays, lists,
   scalars -- raises ``TypeError`` (convert first, e.g.
   ``x.astype(np.float64)``). All arrays of one call share one dtype (for a
   :class:`~spherenet.Product`, factor by factor), and results keep it.
2. **shapes.** Every array has exactly ``manifold.shape``: no broadcasting,
   no batches (``ValueError``). Points and vectors of a
   :class:`~spherenet.Product` are tuples (or lists) of exactly one array per
   factor; errors about a part are prefixed ``factor i (M_i):``.
3. **points.** A point is accepted when the norm of each of its sphere
   factors is within ``atol`` of 1, with the default
   ``atol = point_atol(dtype) = 1000 eps(dtype)`` (2.2e-13 in float64,
   1.2e-4 in float32), the same default as :meth:`Manifold.check_point`.
   Within that tolerance the methods treat the point as on the manifold
   (their results are accurate to O(atol)); farther off, ``ValueError`` says
   by how much and suggests :meth:`Manifold.project_point`. Entries that are
   NaN or infinite are refused in every argument (``ValueError``). Tangent
   vectors are not checked for tangency: ``exp`` and ``retr`` read ``u``
   through its tangent part, ``proj`` removes the normal part, and the other
   maps assume tangent input (use :meth:`Manifold.check_tangent` to check).
4. **zero steps.** ``exp(x, 0)``, ``retr(x, 0)`` and
   ``gradient_step(x, 0, lr)`` return ``x`` bit for bit, factor by factor: a
   factor whose tangent step is exactly zero stays exactly where it was
   (also when it is off unit norm within ``atol``) while the others move.
5. **hot paths.** The checks cost a pass or two over the data. Loops that
   call the maps many times on data they produced themselves use
   :attr:`Manifold.unchecked`, the same manifold with the checks removed:
   the strategies and optimizers of spherenet do, and validate once at their
   own entry.
"""

import abc
import copy
import math
import numbers

import numpy as np

__all__ = ["Manifold", "as_rng", "point_atol"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_POINT_ATOL = {dt: 1000.0 * float(np.finfo(dt).eps) for dt in _FLOAT_DTYPES}

# Roles of an argument: a point (norm checked), a tangent or ambient vector,
# an array checked for dtype/shape/finiteness only, an output buffer.
_POINT, _VECTOR, _ARRAY, _OUT = "point", "vector", "array", "out"
# An array checked for type, dtype and shape only (its data are checked later,
# by a method that fuses the check into its own pass: _checked_gradient_step).
_SHAPE_ONLY = "shape only"

#: The public methods that take arrays; each has a raw twin ``_name`` that
#: :attr:`Manifold.unchecked` binds to the public name.
CHECKED_METHODS = (
    "proj", "egrad2rgrad", "ehess2rhess", "inner", "norm", "directional_derivative",
    "dist", "exp", "log", "retr", "inverse_retr", "transp", "gradient_step",
    "violation", "random_tangent", "zero_vector", "project_point",
)


def point_atol(dtype):
    """The default tolerance on the norm of a point's factors: ``1000 * eps(dtype)``.

    Every public method of a manifold accepts a point whose sphere factors
    have norms within this distance of 1 (2.2e-13 in float64, 1.2e-4 in
    float32); :meth:`Manifold.check_point` uses it as its default ``atol``.

    Parameters
    ----------
    dtype : dtype-like
        float32 or float64.

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.manifolds import point_atol
    >>> point_atol(np.float64)
    2.220446049250313e-13
    >>> float(np.float32(point_atol(np.float32)))
    0.00011920928955078125
    """
    return _POINT_ATOL[as_dtype(dtype)]


def as_rng(rng, name="rng"):
    """Return a ``numpy.random.Generator`` from ``None``, an int or a Generator.

    Parameters
    ----------
    rng : None, int or numpy.random.Generator
        ``None`` gives a fresh, unseeded generator; an int >= 0 seeds one; a
        Generator is returned as is. The global NumPy random state is never
        used.
    name : str, default "rng"
        The argument's name in the error messages.

    Returns
    -------
    numpy.random.Generator

    Raises
    ------
    TypeError
        For anything else (a bool included).
    ValueError
        For a negative int.

    Examples
    --------
    >>> from spherenet.manifolds.base import as_rng
    >>> bool(as_rng(0).integers(10) == as_rng(0).integers(10))
    True
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)) and rng < 0:
        raise ValueError(f"{name} must be None, an int >= 0 or a numpy.random.Generator, "
                         f"got {rng}")
    # A bool is an Integral: True would seed 1 unseen.
    if rng is None or (isinstance(rng, (numbers.Integral, np.random.SeedSequence))
                       and not isinstance(rng, (bool, np.bool_))):
        return np.random.default_rng(rng)
    raise TypeError(
        f"{name} must be None, an int or a numpy.random.Generator, got {type(rng).__name__}"
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


def _check_ndarray(manifold, a, name, method):
    """Raise unless ``a`` is a float32/float64 ndarray of exactly ``manifold.shape``."""
    if not isinstance(a, np.ndarray):
        raise TypeError(
            f"{method}: {name} must be a numpy.ndarray, got {type(a).__name__}; expected a "
            f"float32 or float64 array of shape {manifold.shape}, e.g. "
            f"np.asarray({name}, dtype=np.float64)"
        )
    if a.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{method}: {name} must have dtype float32 or float64, got {a.dtype}; convert it, "
            f"e.g. {name}.astype(np.float64)"
        )
    if a.shape != manifold.shape:
        raise ValueError(
            f"{method}: {name} must have shape {manifold.shape}: expected shape "
            f"{manifold.shape} for {manifold!r}, got {a.shape} (no broadcasting, no batches)"
        )


def _check_finite(a, name, method):
    """Raise ``ValueError`` counting the NaN/Inf entries of ``a``; else return max |a|."""
    # max and min propagate NaN and never overflow: two cheap passes, no temporary.
    high, low = float(a.max()), float(a.min())
    if not (math.isfinite(high) and math.isfinite(low)):
        bad = int(a.size - np.count_nonzero(np.isfinite(a)))
        raise ValueError(f"{method}: {name} has {bad} non-finite entries (NaN or Inf)")
    return max(high, -low)


def _check_finite_fast(a, name, method):
    """Raise ``ValueError`` counting the NaN/Inf entries of ``a``, in one pass when all are finite.

    A sum of squares is finite exactly when every entry is (a NaN entry makes
    it NaN, an infinite one +inf, and squares cannot cancel), unless it
    overflowed: entries beyond ~1e154 in float64, ~1e19 in float32 (BLAS
    accumulates in the array's dtype). Only a sum that is not finite sends the
    array through :func:`_check_finite` (max and min, then the count of the
    error message).
    """
    if a.flags.c_contiguous or a.flags.f_contiguous:
        flat = a.ravel(order="K")  # a view: no copy
        with np.errstate(over="ignore", invalid="ignore"):
            total = float(np.dot(flat, flat))
        if math.isfinite(total):
            return
    _check_finite(a, name, method)


def _check_atol(atol):
    if atol is None:
        return None
    if isinstance(atol, bool) or not isinstance(atol, numbers.Real) or not atol >= 0:
        raise ValueError(f"atol must be a non-negative number or None, got {atol!r}")
    return float(atol)


def _check_lr(lr):
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"gradient_step: lr must be a real number, got {type(lr).__name__}")
    if not math.isfinite(lr):
        raise ValueError(f"gradient_step: lr must be finite, got {lr!r}")


class Manifold(abc.ABC):
    """Abstract base class of spherenet's manifolds: the whole contract.

    Subclasses implement the raw maps ``_proj``, ``_exp``, ... with the
    vocabulary of Manopt and of Absil, Mahony & Sepulchre (2008) and Boumal
    (2023); this class gives each its public, validated twin (see the input
    policy in ``spherenet.manifolds.base``) and the :attr:`unchecked` view.

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
    >>> M.proj(x, [1.0, 2.0, 3.0])
    Traceback (most recent call last):
    ...
    TypeError: proj: u must be a numpy.ndarray, got list; expected a float32 or float64 array of shape (3,), e.g. np.asarray(u, dtype=np.float64)
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

    # --- the unchecked view ---------------------------------------------------

    def _plain_state(self):
        """The instance dict without the unchecked view's bindings and cache."""
        return {
            k: v for k, v in self.__dict__.items()
            if k not in CHECKED_METHODS and k not in ("_unchecked_view", "_is_unchecked", "_memos")
        }

    def _memo(self, key, make):
        """``make()``, made once per hashable ``key`` for this instance (not copied, not
        pickled): derived objects that callers would otherwise rebuild per run."""
        memo = self.__dict__.get("_memos")
        if memo is None:
            memo = self.__dict__["_memos"] = {}
        value = memo.get(key)
        if value is None:
            value = memo[key] = make()
        return value

    def __copy__(self):
        # A copy is a checked manifold with no cached view (with_options
        # copies, then changes the retraction: a stale view would keep the old one).
        new = object.__new__(type(self))
        new.__dict__.update(self._plain_state())
        return new

    def __getstate__(self):
        return {"state": self._plain_state(), "unchecked": bool(self.__dict__.get("_is_unchecked"))}

    def __setstate__(self, state):
        self.__dict__.update(state["state"])
        if state["unchecked"]:
            self._bind_raw()

    @classmethod
    def _raw_names(cls):
        """The checked methods that the class leaves as Manifold's (cached on the class).

        A subclass that overrides a public method (say, a user's own retr)
        keeps its override in the unchecked view: only the validating
        wrappers are bypassed.
        """
        names = cls.__dict__.get("_raw_names_")
        if names is None:
            names = tuple(name for name in CHECKED_METHODS
                          if getattr(cls, name) is getattr(Manifold, name))
            setattr(cls, "_raw_names_", names)
        return names

    def _bind_raw(self):
        state = self.__dict__
        for name in type(self)._raw_names():
            state[name] = getattr(self, "_" + name)
        self.__dict__["_is_unchecked"] = True
        self.__dict__["_unchecked_view"] = self

    @property
    def unchecked(self):
        """This manifold without input validation, for hot loops only.

        A cached shallow copy of the manifold (an instance of the same class,
        equal to it) whose methods :meth:`proj`, :meth:`exp`, :meth:`retr`,
        :meth:`gradient_step`, ... are the raw maps: same results bit for bit
        on valid input, but nothing is checked -- a wrong shape may broadcast
        into a wrong answer, an integer array gives garbage. Use it where the
        inputs were validated once and are produced by the maps themselves
        (optimizer loops, strategies); everywhere else use the manifold. A
        subclass that overrides a public method keeps its override here.

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet import Sphere
        >>> M = Sphere(3)
        >>> x = np.array([1.0, 0.0, 0.0])
        >>> fast = M.unchecked
        >>> isinstance(fast, Sphere) and fast == M and fast.unchecked is fast
        True
        >>> isinstance(M.unchecked.dist(2 * x, x), float)  # not refused: the caller's problem
        True
        """
        view = self.__dict__.get("_unchecked_view")
        if view is None:
            view = copy.copy(self)
            view._bind_raw()
            self.__dict__["_unchecked_view"] = view
        return view

    # --- validation ------------------------------------------------------------

    def _check_args(self, method, args, atol=None):
        """Validate ``args``, a sequence of ``(name, value, role)``, for ``method``.

        Arrays first (type, dtype, shape, one dtype for all), then points
        (finite, on the manifold within ``atol``) and the others (finite;
        output buffers writeable).
        """
        dtype = first = None
        for name, a, role in args:
            _check_ndarray(self, a, name, method)
            if dtype is None:
                dtype, first = a.dtype, name
            elif a.dtype != dtype:
                raise TypeError(
                    f"{method}: {name} has dtype {a.dtype} but {first} has {dtype}; give all "
                    f"arrays of one call one dtype, e.g. {name}.astype(np.{dtype})"
                )
        for name, a, role in args:
            if role == _OUT:
                if not a.flags.writeable:
                    raise ValueError(f"{method}: {name} must be a writeable array, got a read-only one")
                continue
            if role == _SHAPE_ONLY:
                continue
            if role == _POINT:
                self._check_on(a, name, method, atol)
            else:
                _check_finite_fast(a, name, method)

    def _check_on(self, x, name, method, atol):
        """Raise ``ValueError`` if ``x`` has NaN/Inf entries or is off by more than atol.

        The finiteness check belongs here so that a manifold can fuse it with
        its own pass over the point (the sphere's sums of squares).
        """
        _check_finite_fast(x, name, method)

    # --- properties -------------------------------------------------------

    @property
    @abc.abstractmethod
    def dim(self):
        """Dimension of the manifold."""

    @property
    @abc.abstractmethod
    def typical_dist(self):
        """A typical distance between two points."""

    # --- tangent spaces and metric: public, validated -----------------------

    def proj(self, x, u):
        """Orthogonal projection of an ambient vector ``u`` onto T_x.

        Parameters
        ----------
        x : ndarray
            A point (see the input policy of ``spherenet.manifolds.base``).
        u : ndarray
            Any ambient vector of the same shape and dtype.

        Returns
        -------
        ndarray
            A new array of ``x``'s dtype.

        Raises
        ------
        TypeError, ValueError
            For input outside the policy.
        """
        self._check_args("proj", (("x", x, _POINT), ("u", u, _VECTOR)))
        return self._proj(x, u)

    def egrad2rgrad(self, x, egrad):
        """Riemannian gradient at ``x`` from the Euclidean gradient ``egrad``.

        For a Riemannian submanifold it is the tangent projection of the
        Euclidean gradient. Arguments as for :meth:`proj`.
        """
        self._check_args("egrad2rgrad", (("x", x, _POINT), ("egrad", egrad, _VECTOR)))
        return self._egrad2rgrad(x, egrad)

    def ehess2rhess(self, x, egrad, ehess, u):
        """Riemannian Hessian along ``u`` from the Euclidean gradient and Hessian.

        ``ehess`` is the Euclidean Hessian-vector product ∇²f(x)[u]; ``u`` is
        assumed tangent (not checked). Arguments validated as for :meth:`proj`.
        """
        self._check_args("ehess2rhess", (
            ("x", x, _POINT), ("egrad", egrad, _VECTOR), ("ehess", ehess, _VECTOR), ("u", u, _VECTOR),
        ))
        return self._ehess2rhess(x, egrad, ehess, u)

    def inner(self, x, u, v):
        """Riemannian inner product (a float) of tangent vectors ``u``, ``v`` at ``x``."""
        self._check_args("inner", (("x", x, _POINT), ("u", u, _VECTOR), ("v", v, _VECTOR)))
        return self._inner(x, u, v)

    def norm(self, x, u):
        """Riemannian norm (a float) of the tangent vector ``u`` at ``x``."""
        self._check_args("norm", (("x", x, _POINT), ("u", u, _VECTOR)))
        return self._norm(x, u)

    def directional_derivative(self, x, grad, d):
        """d/dt f(retr(x, t d)) at t = 0, from the gradient ``grad`` of f in this geometry.

        For a manifold it is <grad, d>; a geometry whose gradient is not
        Riemannian (the projection strategy's) overrides it. Line searches
        use it as the slope of their Armijo test.
        """
        self._check_args("directional_derivative", (
            ("x", x, _POINT), ("grad", grad, _VECTOR), ("d", d, _VECTOR),
        ))
        return self._directional_derivative(x, grad, d)

    def dist(self, x, y):
        """Geodesic distance (a float) between the points ``x`` and ``y``."""
        self._check_args("dist", (("x", x, _POINT), ("y", y, _POINT)))
        return self._dist(x, y)

    # --- maps: public, validated ------------------------------------------------

    def exp(self, x, u):
        """Exponential map: the point reached at time 1 along the geodesic from ``x`` with velocity ``u``.

        ``u`` is read through its tangent part; ``exp(x, 0)`` is ``x`` bit
        for bit.
        """
        self._check_args("exp", (("x", x, _POINT), ("u", u, _VECTOR)))
        return self._exp(x, u)

    def log(self, x, y):
        """Logarithmic map: the tangent vector at ``x`` whose exponential is ``y``."""
        self._check_args("log", (("x", x, _POINT), ("y", y, _POINT)))
        return self._log(x, y)

    def retr(self, x, u):
        """The manifold's chosen retraction of the tangent vector ``u`` at ``x``.

        ``u`` is read through its tangent part; ``retr(x, 0)`` is ``x`` bit
        for bit.
        """
        self._check_args("retr", (("x", x, _POINT), ("u", u, _VECTOR)))
        return self._retr(x, u)

    def inverse_retr(self, x, y):
        """Inverse of :meth:`retr`: the ``u`` in T_x with ``retr(x, u) == y``."""
        self._check_args("inverse_retr", (("x", x, _POINT), ("y", y, _POINT)))
        return self._inverse_retr(x, y)

    def transp(self, x, y, v):
        """The manifold's chosen vector transport of ``v`` in T_x to T_y."""
        self._check_args("transp", (("x", x, _POINT), ("y", y, _POINT), ("v", v, _VECTOR)))
        return self._transp(x, y, v)

    def violation(self, x):
        """How far ``x`` is off the manifold: max over the factors of ``| ||x_k|| - 1 |``.

        0 for unconstrained (Euclidean) manifolds. Histories of optimizers
        record it after every step. ``x`` may be off the manifold by any
        amount (its dtype, shape and finiteness are checked).
        """
        self._check_args("violation", (("x", x, _ARRAY),))
        return self._violation(x)

    def project_point(self, x):
        """The nearest point of the manifold: ``x / ||x||`` factor by factor.

        The way to bring a point that drifted off the manifold (or an
        arbitrary nonzero array) back onto it before calling the other
        methods. The identity (a copy) for Euclidean factors; float32 stays
        float32.

        Parameters
        ----------
        x : ndarray (tuple of ndarrays for a Product)
            Any finite array of the manifold's shape whose sphere factors are
            all nonzero.

        Returns
        -------
        ndarray
            A new array.

        Raises
        ------
        TypeError, ValueError
            Wrong type, dtype or shape; non-finite entries; a sphere factor of
            norm 0.

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet import Oblique
        >>> Oblique(2, 2).project_point(np.array([[3.0, 0.0], [4.0, -2.0]]))
        array([[ 0.6,  0. ],
               [ 0.8, -1. ]])
        """
        self._check_args("project_point", (("x", x, _ARRAY),))
        return self._project_point(x)

    # --- sampling -------------------------------------------------------------

    @abc.abstractmethod
    def random_point(self, rng=None, dtype=None):
        """A random point, seeded by ``rng`` (None, an int or a Generator)."""

    def random_tangent(self, x, rng=None):
        """A random unit-norm tangent vector at the point ``x``, of ``x``'s dtype."""
        self._check_args("random_tangent", (("x", x, _POINT),))
        return self._random_tangent(x, rng)

    def zero_vector(self, x):
        """The zero tangent vector at the point ``x``, of ``x``'s dtype."""
        self._check_args("zero_vector", (("x", x, _POINT),))
        return self._zero_vector(x)

    # --- validation -------------------------------------------------------

    def check_point(self, x, atol=None, name="point"):
        """Raise ``TypeError``/``ValueError`` unless ``x`` is a point of the manifold.

        The message names what was expected and what came (type, shape,
        dtype, non-finite entries, or by how much the constraint is
        violated). Returns ``x`` unchanged.

        Parameters
        ----------
        x : ndarray (tuple of ndarrays for a Product)
        atol : float, optional
            Tolerance on the norm of each sphere factor; default
            :func:`point_atol` of ``x``'s dtype (1000 eps), the tolerance
            every method applies.
        name : str, default "point"
            How the messages call ``x`` (e.g. ``"x0"``).

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet import Sphere
        >>> Sphere(2).check_point(np.array([0.6, 0.8]))
        array([0.6, 0.8])
        >>> Sphere(2).check_point(np.array([3.0, 4.0]), name="x0")
        Traceback (most recent call last):
        ...
        ValueError: check_point: x0 is off Sphere(2, retraction='exp', transport='projection'): 1 of 1 factor(s) have norm off 1 by up to 4 (tolerance 2.22e-13); M.project_point(x0) gives the nearest point
        """
        self._check_args("check_point", ((name, x, _POINT),), _check_atol(atol))
        return x

    def check_tangent(self, x, u, atol=None):
        """Raise ``TypeError``/``ValueError`` unless ``u`` is tangent at the point ``x``.

        ``atol`` bounds the norm defect of ``x`` (as in :meth:`check_point`)
        and, relative to max(1, the largest factor norm of ``u``), the normal
        component of ``u``. Returns ``u`` unchanged.
        """
        atol = _check_atol(atol)
        self._check_args("check_tangent", (("point", x, _POINT), ("tangent vector", u, _VECTOR)), atol)
        self._check_tangency(x, u, atol)
        return u

    def _check_tangency(self, x, u, atol):
        """Raise ``ValueError`` if ``u`` (validated) is not tangent at ``x``."""

    # --- the fused gradient step --------------------------------------------

    def gradient_step(self, x, egrad, lr, out=None):
        """One Riemannian gradient step ``retr(x, -lr * egrad2rgrad(x, egrad))``.

        Sphere-like manifolds run it in one pass with no full-size temporary
        (compiled with the optional ``numba`` extra); the step rules of
        :mod:`spherenet.optim` use it. ``gradient_step(x, 0, lr)`` is ``x``
        bit for bit.

        Parameters
        ----------
        x : ndarray
            The current point.
        egrad : ndarray
            The Euclidean gradient at ``x`` (same shape and dtype).
        lr : float
            The step size (a finite real number).
        out : ndarray, optional
            Where to write the new point (same shape and dtype); may be ``x``
            itself.

        Returns
        -------
        ndarray
            The new point (``out`` if given).

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet import Oblique
        >>> M = Oblique(3, 4)
        >>> x = M.random_point(rng=0)
        >>> y = M.gradient_step(x, np.ones((3, 4)), 0.1)
        >>> bool(np.allclose(np.linalg.norm(y, axis=0), 1.0))
        True
        >>> bool(np.array_equal(M.gradient_step(x, np.zeros((3, 4)), 0.1), x))
        True
        """
        args = [("x", x, _POINT), ("egrad", egrad, _VECTOR)]
        if out is not None:
            args.append(("out", out, _OUT))
        return self._checked_gradient_step(args, x, egrad, lr, out)

    def _checked_gradient_step(self, args, x, egrad, lr, out):
        """Validate ``args`` (as made by :meth:`gradient_step`) and ``lr``, then step.

        A manifold whose step reads the arrays anyway may override this to
        fuse the checks into its own pass (same errors, same results).
        """
        self._check_args("gradient_step", args)
        _check_lr(lr)
        return self._gradient_step(x, egrad, lr, out)

    # --- raw maps: implemented by subclasses, called unchecked ------------------

    @abc.abstractmethod
    def _proj(self, x, u):
        """Raw :meth:`proj`."""

    def _egrad2rgrad(self, x, egrad):
        return self._proj(x, egrad)

    @abc.abstractmethod
    def _ehess2rhess(self, x, egrad, ehess, u):
        """Raw :meth:`ehess2rhess`."""

    @abc.abstractmethod
    def _inner(self, x, u, v):
        """Raw :meth:`inner`."""

    def _norm(self, x, u):
        return float(np.sqrt(self._inner(x, u, u)))

    def _directional_derivative(self, x, grad, d):
        return self._inner(x, grad, d)

    @abc.abstractmethod
    def _dist(self, x, y):
        """Raw :meth:`dist`."""

    @abc.abstractmethod
    def _exp(self, x, u):
        """Raw :meth:`exp`."""

    @abc.abstractmethod
    def _log(self, x, y):
        """Raw :meth:`log`."""

    @abc.abstractmethod
    def _retr(self, x, u):
        """Raw :meth:`retr`."""

    @abc.abstractmethod
    def _inverse_retr(self, x, y):
        """Raw :meth:`inverse_retr`."""

    @abc.abstractmethod
    def _transp(self, x, y, v):
        """Raw :meth:`transp`."""

    def _violation(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define violation")

    def _project_point(self, x):
        raise NotImplementedError(f"{type(self).__name__} does not define project_point")

    @abc.abstractmethod
    def _random_tangent(self, x, rng=None):
        """Raw :meth:`random_tangent`."""

    @abc.abstractmethod
    def _zero_vector(self, x):
        """Raw :meth:`zero_vector`."""

    def _gradient_step(self, x, egrad, lr, out=None):
        new = self._retr(x, -lr * self._egrad2rgrad(x, egrad))
        if out is None:
            return new
        np.copyto(out, new)
        return out
