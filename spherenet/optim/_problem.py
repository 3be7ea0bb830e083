"""A cost with its derivatives on a geometry, counted and checked."""

import math

import autograd
import numpy as np
from autograd.core import make_vjp as _core_make_vjp
from autograd.extend import vspace
from autograd.tracer import getval

from .. import _tangent
from ._loop import EvaluationBudgetExhausted


# vspace(f).ones() of a float64 cost, made once; read-only, so that a gradient
# that is a view of it (a vjp may reshape its cotangent) cannot be changed in place.
_ONE = np.ones(())
_ONE.flags.writeable = False


class CostError(ValueError):
    """The cost or one of its derivatives returned something unusable."""


def _as_dtype_of(x, g):
    """g cast to the dtype of x, part by part (no copy when it already has it)."""
    if _tangent.is_tuple(x):
        return tuple(_as_dtype_of(xi, gi) for xi, gi in zip(x, g))
    return np.asarray(g).astype(x.dtype, copy=False)


def check_cost_value(f):
    """Return ``f`` if it is a real scalar (also traced by autograd), else raise CostError.

    A real scalar is a Python or NumPy int/float or a 0-d real array; an
    array (even of shape (1,)), a complex number, a bool, a string or None
    is refused with a message that says what came.
    """
    value = getval(f)
    kind = "U" if isinstance(value, (str, bytes)) else np.asarray(value).dtype.kind
    if kind in "fiu" and not isinstance(value, (bool, np.bool_)):
        if np.ndim(value) != 0:
            raise CostError(
                f"the cost must return a scalar, got an array of shape {np.shape(value)}")
        return f
    what = type(value).__name__
    if isinstance(value, np.ndarray):
        what += f" of dtype {value.dtype}"
    raise CostError(f"the cost must return a real number (float), got {what}")


class Problem:
    """The cost, its Euclidean gradient and Hessian-vector products, on a geometry.

    Derivatives the user does not give come from HIPS autograd: the cost and
    the gradient from one forward and one backward pass (``autograd.make_vjp``,
    as ``value_and_grad`` does, with the scalar check in between), and cast to
    the dtype of the point; Hessian-vector products by
    reverse-over-reverse differentiation with the forward pass of the gradient
    cached at the current point (``autograd.make_vjp`` of the gradient).

    Parameters
    ----------
    cost : callable
        ``cost(x) -> float`` where x is an array or a tuple of arrays.
    geometry : Manifold
        Where the variable lives.
    egrad : callable, optional
        ``egrad(x)`` -> Euclidean gradient, same structure as x.
    ehess : callable, optional
        ``ehess(x, u)`` -> Euclidean Hessian-vector product.
    measure : callable, optional
        ``measure(x, egrad, rgrad)`` -> the gradient norm that the stopping
        test and the history use (default: the norm of rgrad).
    maxfev : int, optional
        Most cost evaluations (``nfev``); the one that would exceed it raises
        ``EvaluationBudgetExhausted`` instead of calling the cost. None: no limit.
    """

    def __init__(self, cost, geometry, egrad=None, ehess=None, measure=None, maxfev=None):
        if not callable(cost):
            raise TypeError(f"cost must be callable, got {type(cost).__name__}")
        for name, fun in (("grad", egrad), ("hess", ehess)):
            if fun is not None and not callable(fun):
                raise TypeError(f"{name} must be callable or None, got {type(fun).__name__}")
        self.cost_fn = cost
        self.geometry = geometry
        self._egrad = egrad
        self._ehess = ehess
        self._autograd = egrad is None
        self._grad_fn = None  # autograd.grad(cost), made when first needed (see _grad)
        self._measure = measure
        #: True when the stationarity measure is the norm of rgrad in the geometry.
        self.measure_is_norm = measure is None
        #: ``finite_norm(x, rgrad)``: the measure, or None when rgrad is not finite
        #: (a geometry's ``_finite_norm``, used when the measure is its norm), or None.
        self.finite_norm = getattr(geometry, "_finite_norm", None) if measure is None else None
        self.maxfev = maxfev
        self.nfev = 0
        self.ngev = 0
        self.nhev = 0
        self.nonfinite = 0  # evaluations whose cost was NaN or Inf

    @property
    def _grad(self):
        """``autograd.grad(cost)``: the gradient of the Hessian-vector products (no ehess)
        and of a trust-region proposal (no egrad); made on first use, so that the
        solvers that never ask for it (steepest descent and CG with the user's
        gradient) do not build it."""
        if self._grad_fn is None:
            self._grad_fn = autograd.grad(self.cost_fn)
        return self._grad_fn

    # -- checks -----------------------------------------------------------

    @staticmethod
    def _scalar(f):
        if f.__class__ is float or f.__class__ is np.float64:  # the usual case, checked at once
            return float(f)
        return float(check_cost_value(f))

    @staticmethod
    def _check_grad(x, g, what="gradient"):
        if (g.__class__ is np.ndarray and x.__class__ is np.ndarray and g.shape == x.shape
                and g.dtype == x.dtype):
            return g  # the usual case: passes every test below, and needs no cast
        if _tangent.is_tuple(x) != _tangent.is_tuple(g):
            kind = "a tuple of arrays" if _tangent.is_tuple(x) else "an array"
            raise CostError(f"the {what} must be {kind} shaped like the point "
                            f"{_tangent.shape_of(x)}, got {type(g).__name__}")
        for part in (g if _tangent.is_tuple(g) else (g,)):
            if not (isinstance(part, np.ndarray) and part.dtype.kind in "fiu"):
                got = type(part).__name__
                if isinstance(part, np.ndarray):
                    got += f" of dtype {part.dtype}"
                raise CostError(f"the {what} must be a real array (or a tuple of them for a "
                                f"Product) shaped like the point, got {got}")
        if not _tangent.same_structure(x, g):
            raise CostError(
                f"the {what} has shape {_tangent.shape_of(g)}, but the point has shape "
                f"{_tangent.shape_of(x)}"
            )
        # A cost with float64 data promotes the gradient of a float32 point;
        # cast back so that the iterates keep the dtype of x0.
        return _as_dtype_of(x, g)

    # -- evaluations ------------------------------------------------------

    def _count(self, f):
        if not math.isfinite(f):
            self.nonfinite += 1
        return f

    def _spend(self):
        """Count one cost evaluation, or refuse it beyond the budget."""
        if self.maxfev is not None and self.nfev >= self.maxfev:
            raise EvaluationBudgetExhausted
        self.nfev += 1

    def cost(self, x):
        # _spend and _count written out: this runs at every line-search trial.
        if self.maxfev is not None and self.nfev >= self.maxfev:
            raise EvaluationBudgetExhausted
        self.nfev += 1
        f = self._scalar(self.cost_fn(x))
        if not math.isfinite(f):
            self.nonfinite += 1
        return f

    def cost_and_egrad(self, x, f=None):
        """Cost and Euclidean gradient at x; a known cost ``f`` (from a line
        search) is reused when the gradient is the user's, saving a cost call."""
        if f is not None and self._egrad is not None:
            self.ngev += 1
            return f, self._check_grad(x, self._egrad(x))
        self._spend()
        self.ngev += 1
        if self._autograd:
            # autograd.value_and_grad, with the scalar check first: a cost that
            # returns an array is a ValueError that says so, not autograd's TypeError.
            # autograd.core.make_vjp: the same trace as autograd.make_vjp(cost)(x),
            # without the argument-wrapping layers (a few us a call on small costs).
            vjp, f = _core_make_vjp(self.cost_fn, x)
            self._scalar(f)
            g = vjp(_ONE if f.__class__ is np.float64 or f.__class__ is float else vspace(f).ones())
        else:
            f, g = self.cost_fn(x), self._egrad(x)
        return self._count(self._scalar(f)), self._check_grad(x, g)

    def cost_and_rgrad(self, x, f=None):
        f, g = self.cost_and_egrad(x, f)
        return f, g, self.geometry.egrad2rgrad(x, g)

    def measure(self, x, egrad, rgrad):
        """The stationarity measure: by default the norm of the gradient in the geometry."""
        if self._measure is None:
            return self.geometry.norm(x, rgrad)
        return self._measure(x, egrad, rgrad)

    def egrad_and_hessian(self, x):
        """The Euclidean gradient and ``H(u)`` at x from one pass where possible.

        With autograd for both, the forward pass of the gradient is traced
        once and serves the gradient and every Hessian-vector product.
        """
        if self._ehess is None and self._egrad is None:
            self.ngev += 1
            vjp, g = autograd.make_vjp(self._grad)(x)
            g = self._check_grad(x, _as_dtype_of(x, g))
            return g, self.hessian_at(x, g, vjp)
        self.ngev += 1
        g = self._egrad(x) if self._egrad is not None else self._grad(x)
        g = self._check_grad(x, _as_dtype_of(x, g))
        return g, self.hessian_at(x, g)

    def hessian_at(self, x, egrad, _vjp=None):
        """Return ``H(u)``, the Riemannian Hessian-vector product at x."""
        geometry = self.geometry
        if self._ehess is not None:
            def ehvp(u):
                return self._check_grad(x, self._ehess(x, u), "Hessian-vector product")
        else:
            vjp = _vjp if _vjp is not None else autograd.make_vjp(self._grad)(x)[0]

            def ehvp(u):
                return _as_dtype_of(x, vjp(u))

        def hvp(u):
            self.nhev += 1
            return geometry.ehess2rhess(x, egrad, ehvp(u), u)

        return hvp
