r"""Diagnostics: is this gradient right, is this Hessian right, is this a retraction?

The checks follow Manopt's ``checkgradient``, ``checkhessian`` and
``checkretraction``. Along a curve :math:`c(h)` on the manifold through
:math:`x = c(0)` with velocity :math:`d`, a first-order model of the cost has
an error :math:`O(h^2)` and a second-order model an error :math:`O(h^3)`.
Each check evaluates the error for step sizes :math:`h` in
``numpy.logspace(-8, 0, 51)``, fits the slope of :math:`\log E` against
:math:`\log h` on the piece of the curve that is most linear (Manopt's
``identify_linear_piece``: the window of 11 consecutive steps whose linear
fit has the smallest residual) and compares it with the slope a correct
implementation gives.

* :func:`check_gradient`: :math:`E(h) = |f(R_x(hd)) - f(x) - h\langle
  \operatorname{grad} f(x), d\rangle|`, slope 2 for any retraction (slope 1
  means the gradient is wrong).
* :func:`check_hessian`: :math:`E(h) = |f(\operatorname{Exp}_x(hd)) - f(x) -
  h\langle \operatorname{grad} f(x), d\rangle - \tfrac{h^2}{2}\langle
  \operatorname{Hess} f(x)[d], d\rangle|`, slope 3 (slope 2 means the Hessian
  is wrong). The curve is the exponential map by default, as in Manopt: along
  a retraction the slope is 3 only if the retraction is of second order.
* :func:`check_retraction`: :math:`E(h) = \operatorname{dist}(R_x(hu),
  \operatorname{Exp}_x(hu))`, slope 3 for a second-order retraction, 2 for a
  first-order one.

When the error is at rounding level for every step (the model is exact, e.g.
a quadratic cost on a Euclidean space, or a retraction that *is* the
exponential map) there is no slope to fit; the check reports the model as
exact and passes.

All checks run in float64, whatever the dtype of the point: with float32 the
error would reach rounding level (1e-7) already at :math:`h \approx 10^{-3}`
and leave almost no range to fit a slope. A float32 point is cast to float64
and mapped back onto the manifold with :math:`R_x(0)` (the identity on the
manifold; spherenet's retractions read ``x`` through its projection onto the
manifold, so this removes the float32 rounding), and the cost, gradient and
Hessian are then called with float64 arrays.

References
----------
.. [1] N. Boumal, B. Mishra, P.-A. Absil, R. Sepulchre, "Manopt, a Matlab
   toolbox for optimization on manifolds", JMLR 15, 2014 (``checkgradient``,
   ``checkhessian``, ``checkretraction``, ``identify_linear_piece``).
.. [2] N. Boumal, *An Introduction to Optimization on Smooth Manifolds*,
   Cambridge University Press, 2023, sections 4.8 and 6.8.
"""

import dataclasses
from typing import ClassVar

import numpy as np

from .manifolds import Product
from .manifolds.base import as_rng

__all__ = [
    "check_gradient",
    "check_hessian",
    "check_retraction",
    "GradientCheck",
    "HessianCheck",
    "RetractionCheck",
]

#: The step sizes h of every check, as in Manopt.
STEPS = np.logspace(-8, 0, 51)

_WINDOW = 11  # steps in a fitted window (Manopt's window_len = 10 intervals)
_EPS = float(np.finfo(np.float64).eps)
# An error below this many ulps of the terms that formed it is rounding, not
# model error: it is left out of the fit, and if every error is below it the
# model is exact.
_NOISE_ULPS = 10.0
# Relative residuals (tangency, symmetry) that a correct float64 implementation
# keeps near 1e-16; sqrt(eps) leaves room for large arrays and still catches
# an error in the formulas, which gives O(1).
_RESIDUAL_TOL = float(np.sqrt(_EPS))


# --- points and tangent vectors that may be tuples (Product manifolds) ----------


def _is_tuple(u):
    return isinstance(u, (tuple, list))


def _as_point(x, like):
    """A list becomes a tuple where a tuple is expected (points of a Product)."""
    return tuple(x) if isinstance(x, list) and _is_tuple(like) else x


def _map(func, *args):
    if _is_tuple(args[0]):
        return tuple(func(*parts) for parts in zip(*args))
    return func(*args)


def _to_float64(u):
    return _map(lambda a: np.asarray(a, dtype=np.float64), u)


def _scale(h, u):
    return _map(lambda a: h * a, u)


def _sub(u, v):
    return _map(np.subtract, u, v)


def _dot(u, v):
    """Frobenius inner product of arrays or tuples of arrays."""
    if _is_tuple(u):
        return float(sum(_dot(a, b) for a, b in zip(u, v)))
    return float(np.vdot(u, v))


def _fro(u):
    """Frobenius norm of an array or a tuple of arrays, without overflow."""
    arrays = u if _is_tuple(u) else [u]
    return float(np.linalg.norm([np.linalg.norm(np.ravel(a)) for a in arrays]))


def _dtype_name(x):
    """'float64', or 'float32' if any part of the point is float32."""
    dtypes = {np.asarray(a).dtype for a in x} if _is_tuple(x) else {np.asarray(x).dtype}
    return "float32" if np.dtype(np.float32) in dtypes else "float64"


def _structure(u):
    return tuple(_structure(a) for a in u) if _is_tuple(u) else np.shape(u)


# --- validation ---------------------------------------------------------------------


def _check_curve(curve):
    if curve not in ("retr", "exp"):
        raise ValueError(f"curve must be 'retr' or 'exp', got {curve!r}")
    return curve


def _prepare(manifold, x, d, rng, what="d"):
    """Validate x and d at their own dtype; return float64 copies and the rng."""
    rng = as_rng(rng)
    if x is None:
        if d is not None:
            raise ValueError(f"{what} is given without x: a tangent vector needs its point")
        x = manifold.random_point(rng)
    x = _as_point(x, manifold.shape if isinstance(manifold, Product) else None)
    manifold.check_point(x)
    dtype = _dtype_name(x)
    x64 = _to_float64(x)
    if dtype != "float64":
        # x / ||x|| factor by factor: this removes the float32 rounding of x
        # (x cast to float64 is off unit norm by ~1e-8, which the maps refuse).
        x64 = manifold.project_point(x64)
        manifold.check_point(x64)
    if d is None:
        d64 = manifold.random_tangent(x64, rng)
    else:
        d = _as_point(d, x)
        manifold.check_tangent(x, d)
        d64 = manifold.proj(x64, _to_float64(d))
    if _fro(d64) == 0.0:
        raise ValueError(f"{what} is the zero vector: there is no curve to check along")
    return x64, d64, rng, dtype


def _cost_value(cost, point, where):
    """cost(point) as a float; ValueError if it is not a finite real scalar."""
    value = cost(point)
    arr = np.asarray(value)
    if arr.ndim != 0:
        raise ValueError(
            f"cost must return a scalar, got an array of shape {arr.shape} {where}"
        )
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"cost must return a real number, got {arr.dtype} {where}")
    value = float(arr)
    if not np.isfinite(value):
        raise ValueError(f"cost returned {value} {where}")
    return value


def _check_like(x, g, what):
    """Validate that g has the structure of x and finite entries; return it in float64."""
    g = _as_point(g, x) if _is_tuple(x) else np.asarray(g)
    if _structure(g) != _structure(x):
        raise ValueError(
            f"{what} must have the shape of the point, {_structure(x)}, got {_structure(g)}"
        )
    g = _to_float64(g)
    finite = all(np.all(np.isfinite(a)) for a in g) if _is_tuple(g) else np.all(np.isfinite(g))
    if not finite:
        raise ValueError(f"{what} has non-finite entries at the point")
    return g


def _autograd_failure(err):
    return TypeError(
        "could not differentiate cost with autograd "
        f"({type(err).__name__}: {err}); write cost with autograd.numpy "
        "(import autograd.numpy as np) or pass grad= (and hess=)"
    )


def _euclidean_gradient(cost, grad, x):
    if grad is not None:
        return _check_like(x, grad(x), "grad(x)")
    import autograd

    try:
        egrad = autograd.grad(cost)(x)
    except (TypeError, ValueError, AttributeError, NotImplementedError) as err:
        raise _autograd_failure(err) from err
    return _check_like(x, egrad, "autograd's gradient")


def _euclidean_hvp(cost, hess, x):
    """A function u -> D^2 f(x)[u] (hess, or autograd reverse-over-reverse)."""
    if hess is not None:
        return lambda u: _check_like(x, hess(x, u), "hess(x, u)")
    import autograd

    try:
        # Reverse-over-reverse: the VJP of the gradient is the Hessian-vector
        # product (the Hessian is symmetric); the forward pass is shared by
        # every product at x.
        vjp, _ = autograd.make_hvp(cost)(x)
    except (TypeError, ValueError, AttributeError, NotImplementedError) as err:
        raise _autograd_failure(err) from err

    def hvp(u):
        try:
            ehess = vjp(u)
        except (TypeError, ValueError, AttributeError, NotImplementedError) as err:
            raise _autograd_failure(err) from err
        return _check_like(x, ehess, "autograd's Hessian-vector product")

    return hvp


def _relative(residual, scale):
    return residual / scale if scale > 0.0 else 0.0


# --- the slope fit --------------------------------------------------------------------


def _fit_slope(steps, errors, noise):
    """Slope of log10(errors) against log10(steps) on the most linear piece.

    Errors at or below ``noise`` (rounding) are left out: a window is
    fitted only where every error is above it. Returns ``(slope,
    fit_range, exact)``; ``exact`` when the errors are at rounding level
    (no run of 3 consecutive errors above it).
    """
    valid = errors > noise
    if not np.any(valid):
        return float("nan"), slice(0, 0), True
    logh = np.log10(steps)
    loge = np.log10(np.where(valid, errors, 1.0))

    def fit(start, stop):
        coef = np.polyfit(logh[start:stop], loge[start:stop], 1)
        residual = float(np.linalg.norm(np.polyval(coef, logh[start:stop]) - loge[start:stop]))
        return residual, float(coef[0]), slice(start, stop)

    fits = [
        fit(start, start + _WINDOW)
        for start in range(len(steps) - _WINDOW + 1)
        if np.all(valid[start : start + _WINDOW])
    ]
    if not fits:
        # No full window above rounding: fit the longest run, if there is one.
        start, length, best = 0, 0, (0, 0)
        for i, ok in enumerate(np.append(valid, False)):
            if ok:
                length += 1
            else:
                if length > best[1] - best[0]:
                    best = (start, start + length)
                start, length = i + 1, 0
        if best[1] - best[0] < 3:
            return float("nan"), slice(0, 0), True
        fits = [fit(*best)]
    _, slope, fit_range = min(fits, key=lambda f: f[0])
    return slope, fit_range, False


# --- results --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class _TaylorCheck:
    """Shared fields and behaviour of the check results (not public)."""

    manifold: str
    steps: np.ndarray
    errors: np.ndarray
    slope: float
    expected_slope: float
    fit_range: slice
    exact: bool
    curve: str
    dtype: str

    #: The fitted slope may fall short of the expected one by this much.
    slope_tol: ClassVar[float] = 0.1
    #: What is checked: "gradient", "Hessian" or "retraction".
    kind: ClassVar[str] = "check"

    def __post_init__(self):
        for name in ("steps", "errors"):
            array = np.array(getattr(self, name), dtype=np.float64)
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def slope_ok(self):
        """True if the model is exact or the slope is at least the expected one."""
        return bool(self.exact or self.slope >= self.expected_slope - self.slope_tol)

    @property
    def passed(self):
        """True if the check found nothing wrong."""
        return self.slope_ok

    def _details(self):
        return []

    def __str__(self):
        if self.exact:
            fit = "slope n/a: errors at rounding level for every h (model exact)"
        else:
            h = self.steps[self.fit_range]
            fit = (
                f"slope {self.slope:.2f} (expected {self.expected_slope:g}) "
                f"on h in [{h[0]:.0e}, {h[-1]:.0e}]"
            )
        cast = ", float32 point checked in float64" if self.dtype != "float64" else ""
        parts = [fit, *self._details()]
        verdict = "passed" if self.passed else "FAILED"
        return f"{self.kind} check on {self.manifold} {self._curve_text()}{cast}: " + (
            ", ".join(parts) + f": {verdict}"
        )

    def _curve_text(self):
        return f"along {self.curve}"

    def __repr__(self):
        return f"<{type(self).__name__}: {self}>"

    def plot(self, ax=None):
        """Draw the error against the step size on log-log axes.

        Draws the errors, the line fitted on the linear piece and a reference
        line of the expected slope through the middle of that piece.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw; a new figure is made if not given.

        Returns
        -------
        matplotlib.axes.Axes

        Raises
        ------
        ImportError
            If matplotlib is not installed (``pip install spherenet[plot]``).
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError as err:
            raise ImportError(
                "plotting needs matplotlib: pip install spherenet[plot]"
            ) from err
        if ax is None:
            _, ax = plt.subplots()
        steps, errors = self.steps, self.errors
        positive = errors > 0
        ax.loglog(steps[positive], errors[positive], ".-", label="error E(h)")
        if self.exact:
            anchor_h, anchor_e = steps[-1], max(float(np.max(errors)), _EPS)
        else:
            h, e = steps[self.fit_range], errors[self.fit_range]
            coef = np.polyfit(np.log10(h), np.log10(e), 1)
            ax.loglog(h, 10.0 ** np.polyval(coef, np.log10(h)), "-", linewidth=3,
                      alpha=0.6, label=f"fit, slope {self.slope:.2f}")
            mid = len(h) // 2
            anchor_h, anchor_e = h[mid], e[mid]
        ref = anchor_e * (steps / anchor_h) ** self.expected_slope
        # Keep the reference line within the range of the errors drawn.
        low = float(np.min(errors[positive])) if np.any(positive) else _EPS * anchor_e
        shown = (ref >= 0.1 * low) & (ref <= 10.0 * max(float(np.max(errors)), anchor_e))
        ax.loglog(steps[shown], ref[shown], "--", color="gray",
                  label=f"slope {self.expected_slope:g} (expected)")
        ax.set_xlabel("step size h")
        ax.set_ylabel("error")
        ax.set_title(f"{self.kind} check {self._curve_text()}")
        ax.legend()
        return ax


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class GradientCheck(_TaylorCheck):
    r"""The result of :func:`check_gradient`.

    Attributes
    ----------
    manifold : str
        The manifold's repr.
    steps : ndarray
        The step sizes h (read-only).
    errors : ndarray
        The errors E(h) of the first-order model (read-only).
    slope : float
        The slope of log E against log h on the fitted piece; NaN if the
        model is exact.
    expected_slope : float
        2.
    fit_range : slice
        The steps of the fitted piece: ``steps[fit_range]``.
    exact : bool
        True if every error is at rounding level.
    curve : str
        ``"retr"`` or ``"exp"``: the curve along which the cost was evaluated
        (for :class:`RetractionCheck`, the name of the retraction checked).
    dtype : str
        The dtype of the point given (the check itself runs in float64).
    tangency_residual : float
        :math:`\|g - P_x(g)\| / \|g\|` for the Riemannian gradient g: 0 up
        to rounding when ``egrad2rgrad`` returns a tangent vector.
    passed : bool
        The slope is at least ``expected_slope - 0.1`` (or the model is
        exact) and the tangency residual is below sqrt(eps).

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.diagnostics import check_gradient
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> check = check_gradient(Sphere(3), lambda x: x @ A @ x, rng=0)
    >>> check.passed, check.expected_slope
    (True, 2.0)
    >>> h = check.steps[check.fit_range]  # the piece the slope was fitted on
    """

    tangency_residual: float
    kind: ClassVar[str] = "gradient"

    @property
    def passed(self):
        return self.slope_ok and self.tangency_residual <= _RESIDUAL_TOL

    def _details(self):
        return [f"tangency residual {self.tangency_residual:.1e}"]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class HessianCheck(_TaylorCheck):
    r"""The result of :func:`check_hessian`.

    Has the attributes of :class:`GradientCheck` (with ``expected_slope`` 3,
    ``errors`` those of the second-order model), where ``tangency_residual``
    is that of :math:`H[d]`, :math:`\|H[d] - P_x(H[d])\| / \|H[d]\|`, and:

    Attributes
    ----------
    symmetry_defect : float
        :math:`|\langle H[d_1], d_2\rangle - \langle d_1, H[d_2]\rangle| /
        (\|H[d_1]\|\|d_2\| + \|d_1\|\|H[d_2]\|)` for two tangent vectors:
        0 up to rounding for a Hessian, which is symmetric.
    passed : bool
        The slope is at least ``expected_slope - 0.1`` (or the model is
        exact), and both residuals are below sqrt(eps).

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.diagnostics import check_hessian
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> check = check_hessian(Sphere(3), lambda x: x @ A @ x, rng=0)
    >>> check.passed, check.expected_slope
    (True, 3.0)
    """

    tangency_residual: float
    symmetry_defect: float
    kind: ClassVar[str] = "Hessian"

    @property
    def passed(self):
        return (
            self.slope_ok
            and self.tangency_residual <= _RESIDUAL_TOL
            and self.symmetry_defect <= _RESIDUAL_TOL
        )

    def _details(self):
        return [
            f"tangency residual {self.tangency_residual:.1e}",
            f"symmetry defect {self.symmetry_defect:.1e}",
        ]


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class RetractionCheck(_TaylorCheck):
    """The result of :func:`check_retraction`.

    Has the attributes of :class:`GradientCheck` but ``tangency_residual``;
    ``errors`` are the distances dist(R_x(hu), Exp_x(hu)), ``expected_slope``
    is the order of the retraction plus one, ``curve`` is the retraction's
    name, and:

    Attributes
    ----------
    on_manifold : bool
        Every retracted point passed ``manifold.check_point``.
    passed : bool
        The slope is at least ``expected_slope - 0.1`` (or the retraction
        agrees with the exponential map to rounding) and every retracted
        point is on the manifold.

    Examples
    --------
    >>> from spherenet import Sphere
    >>> from spherenet.diagnostics import check_retraction
    >>> check = check_retraction(Sphere(3, retraction="projection"), rng=0)
    >>> check.passed, round(check.slope)
    (True, 3)
    """

    on_manifold: bool
    kind: ClassVar[str] = "retraction"

    @property
    def passed(self):
        return self.slope_ok and self.on_manifold

    def _details(self):
        return [] if self.on_manifold else ["retracted points are OFF the manifold"]

    def _curve_text(self):
        return f"({self.curve} vs exp)"


# --- the checks -----------------------------------------------------------------------


def _curve_values(manifold, cost, x, d, curve):
    # x and d were validated once by _prepare; the curve is sampled unchecked.
    fast = manifold.unchecked
    step = fast.retr if curve == "retr" else fast.exp
    return np.array(
        [_cost_value(cost, step(x, _scale(h, d)), f"at the step h = {h:.1e}") for h in STEPS]
    )


def check_gradient(manifold, cost, grad=None, x=None, d=None, rng=None, *, curve="retr"):
    r"""Check a gradient by the Taylor slope of the first-order model.

    For the curve :math:`c(h) = R_x(hd)`, the error
    :math:`E(h) = |f(c(h)) - f(x) - h\langle \operatorname{grad} f(x), d\rangle|`
    is :math:`O(h^2)` exactly when the gradient is right: its slope on a
    log-log plot is 2 (1 if the gradient is wrong).

    Parameters
    ----------
    manifold : Manifold
        The manifold, e.g. ``Sphere(3)``.
    cost : callable
        ``cost(x) -> float`` of a point (a tuple of arrays for a
        :class:`~spherenet.Product`).
    grad : callable, optional
        ``grad(x)`` returns the *Euclidean* gradient of ``cost``, converted
        with ``manifold.egrad2rgrad``. By default autograd differentiates
        ``cost`` (write it with ``autograd.numpy``).
    x : ndarray or tuple, optional
        The point; a random one by default.
    d : ndarray or tuple, optional
        A tangent vector at ``x``; a random unit one by default.
    rng : None, int or numpy.random.Generator, optional
        Seeds the random point and direction.
    curve : {"retr", "exp"}, default "retr"
        Step along the manifold's retraction (what optimizers do) or the
        exponential map.

    Returns
    -------
    GradientCheck
        Steps, errors, fitted slope, tangency residual of the Riemannian
        gradient, ``passed``, ``plot()``.

    Raises
    ------
    ValueError
        If ``x`` is not a point or ``d`` not tangent (as the manifold's
        ``check_point``/``check_tangent`` say), if ``cost`` returns a
        non-scalar or a NaN, or if the gradient has the wrong shape.
    TypeError
        If autograd cannot differentiate ``cost``.

    See Also
    --------
    check_hessian, check_retraction

    Notes
    -----
    The check runs in float64 (see the module's notes on float32 points).
    As in Manopt, the model is called exact, and the check passes, when
    every error is at rounding level: then there is no slope to fit.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.diagnostics import check_gradient
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> cost = lambda x: x @ A @ x
    >>> check_gradient(Sphere(3), cost, rng=0).passed  # autograd's gradient
    True
    >>> wrong = check_gradient(Sphere(3), cost, grad=lambda x: A @ x, rng=0)
    >>> wrong.passed, round(wrong.slope)
    (False, 1)
    """
    _check_curve(curve)
    x, d, _, dtype = _prepare(manifold, x, d, rng)
    f0 = _cost_value(cost, x, "at x")
    egrad = _euclidean_gradient(cost, grad, x)
    rgrad = manifold.egrad2rgrad(x, egrad)
    tangency = _relative(_fro(_sub(rgrad, manifold.proj(x, rgrad))), _fro(rgrad))
    slope0 = manifold.inner(x, rgrad, d)

    values = _curve_values(manifold, cost, x, d, curve)
    model = f0 + STEPS * slope0
    errors = np.abs(values - model)
    noise = _NOISE_ULPS * _EPS * (np.abs(values) + abs(f0) + STEPS * abs(slope0))
    slope, fit_range, exact = _fit_slope(STEPS, errors, noise)
    return GradientCheck(
        manifold=repr(manifold), steps=STEPS, errors=errors, slope=slope, expected_slope=2.0,
        fit_range=fit_range, exact=exact, curve=curve, dtype=dtype,
        tangency_residual=tangency,
    )


def check_hessian(manifold, cost, grad=None, hess=None, x=None, d=None, rng=None, *, curve="exp"):
    r"""Check a Hessian by the Taylor slope of the second-order model.

    Along :math:`c(h) = \operatorname{Exp}_x(hd)` the error

    .. math::

        E(h) = \left|f(c(h)) - f(x) - h\langle \operatorname{grad} f(x), d\rangle
               - \tfrac{h^2}{2}\langle \operatorname{Hess} f(x)[d], d\rangle\right|

    is :math:`O(h^3)` when gradient and Hessian are right: slope 3 (2 if the
    Hessian is wrong, 1 if the gradient is).

    Parameters
    ----------
    manifold : Manifold
        The manifold.
    cost : callable
        ``cost(x) -> float``.
    grad : callable, optional
        ``grad(x)``: the Euclidean gradient; autograd by default.
    hess : callable, optional
        ``hess(x, u)``: the Euclidean Hessian-vector product
        :math:`\nabla^2 f(x)[u]`; by default autograd's (reverse over
        reverse) product of ``cost``. The Riemannian Hessian is
        ``manifold.ehess2rhess(x, egrad, hess(x, d), d)``.
    x : ndarray or tuple, optional
        The point; a random one by default.
    d : ndarray or tuple, optional
        A tangent vector at ``x``; a random unit one by default.
    rng : None, int or numpy.random.Generator, optional
        Seeds the random point and directions (a second direction is drawn
        for the symmetry test).
    curve : {"exp", "retr"}, default "exp"
        The exponential map, as Manopt does, so that the check tests the
        Hessian and not the retraction; along ``"retr"`` the slope is 3 only
        for a second-order retraction (both of the sphere's are).

    Returns
    -------
    HessianCheck
        Steps, errors, fitted slope, tangency residual of Hess[d], symmetry
        defect, ``passed``, ``plot()``.

    Raises
    ------
    ValueError
        As :func:`check_gradient`, and if ``hess`` returns the wrong shape.
    TypeError
        If autograd cannot differentiate ``cost``.

    See Also
    --------
    check_gradient, check_retraction

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.diagnostics import check_hessian
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> cost, egrad = (lambda x: x @ A @ x), (lambda x: 2 * A @ x)
    >>> check_hessian(Sphere(3), cost, egrad, lambda x, u: 2 * A @ u, rng=0).passed
    True
    >>> check_hessian(Sphere(3), cost, egrad, lambda x, u: A @ u, rng=0).passed
    False
    """
    _check_curve(curve)
    x, d, rng, dtype = _prepare(manifold, x, d, rng)
    f0 = _cost_value(cost, x, "at x")
    egrad = _euclidean_gradient(cost, grad, x)
    ehvp = _euclidean_hvp(cost, hess, x)
    rgrad = manifold.egrad2rgrad(x, egrad)

    hess_d = manifold.ehess2rhess(x, egrad, ehvp(d), d)
    tangency = _relative(_fro(_sub(hess_d, manifold.proj(x, hess_d))), _fro(hess_d))
    d2 = manifold.random_tangent(x, rng)
    hess_d2 = manifold.ehess2rhess(x, egrad, ehvp(d2), d2)
    symmetry = _relative(
        abs(manifold.inner(x, hess_d, d2) - manifold.inner(x, d, hess_d2)),
        _fro(hess_d) * _fro(d2) + _fro(d) * _fro(hess_d2),
    )

    slope1 = manifold.inner(x, rgrad, d)
    curvature = manifold.inner(x, hess_d, d)
    values = _curve_values(manifold, cost, x, d, curve)
    model = f0 + STEPS * slope1 + 0.5 * STEPS**2 * curvature
    errors = np.abs(values - model)
    noise = _NOISE_ULPS * _EPS * (
        np.abs(values) + abs(f0) + STEPS * abs(slope1) + 0.5 * STEPS**2 * abs(curvature)
    )
    slope, fit_range, exact = _fit_slope(STEPS, errors, noise)
    return HessianCheck(
        manifold=repr(manifold), steps=STEPS, errors=errors, slope=slope, expected_slope=3.0,
        fit_range=fit_range, exact=exact, curve=curve, dtype=dtype,
        tangency_residual=tangency, symmetry_defect=symmetry,
    )


def check_retraction(manifold, x=None, u=None, rng=None, *, order=2):
    r"""Check a retraction against the exponential map.

    A retraction of order k agrees with the exponential map to order k:
    :math:`\operatorname{dist}(R_x(hu), \operatorname{Exp}_x(hu)) =
    O(h^{k+1})`, slope k + 1 on a log-log plot (3 for a second-order
    retraction, 2 for a first-order one; a map that is not a retraction gives
    1 or less).

    Parameters
    ----------
    manifold : Manifold
        The manifold; ``manifold.retr`` is checked against ``manifold.exp``.
    x : ndarray or tuple, optional
        The point; a random one by default.
    u : ndarray or tuple, optional
        A tangent vector at ``x``; a random unit one by default.
    rng : None, int or numpy.random.Generator, optional
        Seeds the random point and direction.
    order : {2, 1}, default 2
        The order the retraction claims: every retraction of spherenet's
        manifolds is of second order (the metric projection of a Riemannian
        submanifold is). Pass 1 to check only that a map is a retraction.

    Returns
    -------
    RetractionCheck
        Steps, distances, fitted slope, ``on_manifold``, ``passed``,
        ``plot()``.

    Raises
    ------
    ValueError
        If ``x`` is not a point or ``u`` not tangent, or ``order`` is not
        1 or 2.

    See Also
    --------
    check_gradient, check_hessian

    Notes
    -----
    The projection retraction of the sphere moves along the geodesic but
    reaches the angle :math:`\arctan h` instead of :math:`h`, so the error is
    :math:`h - \arctan h \approx h^3/3`: slope 3. The exponential map checked
    against itself gives errors 0: the check reports it as exact.

    Examples
    --------
    >>> from spherenet import Oblique
    >>> from spherenet.diagnostics import check_retraction
    >>> check_retraction(Oblique(3, 4, retraction="projection"), rng=0).passed
    True
    >>> check_retraction(Oblique(3, 4, retraction="exp"), rng=0).exact
    True
    """
    if order not in (1, 2):
        raise ValueError(f"order must be 1 or 2, got {order!r}")
    x, u, _, dtype = _prepare(manifold, x, u, rng, what="u")
    errors = np.empty_like(STEPS)
    on_manifold = True
    # Unchecked maps: a retraction under test may leave the manifold, and
    # dist must still measure how far (check_point below says whether it did).
    fast = manifold.unchecked
    for i, h in enumerate(STEPS):
        hu = _scale(h, u)
        y = fast.retr(x, hu)
        errors[i] = fast.dist(y, fast.exp(x, hu))
        try:
            manifold.check_point(y)
        except ValueError:
            on_manifold = False
    # dist is accurate to a few ulps of the size of the points compared.
    noise = _NOISE_ULPS * _EPS * (_fro(x) + STEPS * _fro(u))
    slope, fit_range, exact = _fit_slope(STEPS, errors, noise)
    retraction = manifold.retraction
    name = "/".join(retraction) if isinstance(retraction, tuple) else str(retraction)
    return RetractionCheck(
        manifold=repr(manifold), steps=STEPS, errors=errors, slope=slope,
        expected_slope=float(order + 1), fit_range=fit_range, exact=exact,
        curve=name, dtype=dtype, on_manifold=on_manifold,
    )
