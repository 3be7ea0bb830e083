"""Riemannian limited-memory BFGS with the cautious update (Huang, Gallivan & Absil 2015)."""

import math
import numbers

from .. import _tangent
from ._solver import advance, budgeted, start, stopped
from .line_search import BacktrackingLineSearch, check_line_search


class HintLineSearch(BacktrackingLineSearch):
    """Armijo backtracking that always starts from the full direction (step 1 along d).

    As Manopt's ``linesearch_hint`` with its default hint: the first trial
    is R_x(d) itself, so the scale of the direction (for L-BFGS, of its
    Hessian approximation) sets the step; then the step is multiplied by
    ``contraction`` until f(R_x(a d)) <= f_ref + c a <grad f, d>. ``f_ref``
    is f(x) (monotone Armijo) unless the caller passes a larger reference
    value (the nonmonotone search of :func:`barzilai_borwein`).

    Parameters
    ----------
    contraction : float
    sufficient_decrease : float
        Armijo constant c.
    max_trials : int

    Examples
    --------
    >>> from spherenet.optim.lbfgs import HintLineSearch
    >>> HintLineSearch().sufficient_decrease
    0.0001
    """

    def __init__(self, contraction=0.5, sufficient_decrease=1e-4, max_trials=25):
        super().__init__(contraction=contraction, sufficient_decrease=sufficient_decrease,
                         max_trials=max_trials, initial_step=1.0)

    def search(self, problem, x, d, f0, df0, f_ref=None):
        """Return ``(step_length, new_x, new_f)``; step 0 and x itself when no
        point with a cost <= ``f_ref`` (default f0) was found."""
        f_ref = f0 if f_ref is None else f_ref
        alpha, new_x, new_f, _ = self._backtrack(problem, x, d, f_ref, df0, 1.0)
        if not new_f <= f_ref:
            return 0.0, x, f0
        return alpha * problem.geometry.norm(x, d), new_x, new_f


def _check_positive(name, value, integer=False, allow_zero=False):
    kind = "an int" if integer else "a real number"
    bound = ">= 0" if allow_zero else "> 0"
    types = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, types):
        raise TypeError(f"{name} must be {kind} {bound}, got {type(value).__name__}")
    if not (value >= 0 if allow_zero else value > 0) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite {kind[3:] if integer else 'number'} "
                         f"{bound}, got {value!r}")
    return int(value) if integer else float(value)


def _displaced(geometry):
    """True when the step of a curvature pair must be the displacement ``new_x - x``.

    In a Riemannian geometry the retraction is inverted by ``inverse_retr``:
    the tangent step taken, moved by the transport, *is* the displacement,
    as the secant pair (s, y) needs. The projection strategy's "step, then
    normalize" geometry (``retraction == "normalize"``) is not: the step
    handed to the retraction has a radial part that the normalization
    removes, and the step's length is not the distance moved (a BB step of
    lambda_max = 1e3 moves by at most 2). There s is ``inverse_retr(x, new_x)``,
    the displacement in the ambient space (as in spectral projected gradient
    methods: Birgin, Martinez & Raydan 2000), so that s and y = grad f(x_+) -
    grad f(x) describe the same move.
    """
    return getattr(geometry, "retraction", None) == "normalize"


def two_loop(geometry, x, grad, pairs, scale):
    """The L-BFGS direction -H grad by the two-loop recursion (Nocedal & Wright, Alg. 7.4).

    ``pairs`` is a list of ``(s, y, rho)``, oldest first, all in T_x, with
    rho = 1 / <s, y>; H_0 = ``scale`` times the identity.
    """
    inner = geometry.inner
    q = grad
    coefficients = []
    for s, y, rho in reversed(pairs):
        a = rho * inner(x, s, q)
        coefficients.append(a)
        q = _tangent.lincomb(1.0, q, -a, y)
    r = _tangent.lincomb(scale, q)
    for (s, y, rho), a in zip(pairs, reversed(coefficients)):
        b = rho * inner(x, y, r)
        r = _tangent.lincomb(1.0, r, a - b, s)
    return _tangent.lincomb(-1.0, r)


def _scaled_gradient(geometry, x, grad, scale):
    """The fallback of an iteration: no pairs, the direction -H_0 grad f and its slope."""
    direction = _tangent.lincomb(-scale, grad)
    return [], direction, geometry.directional_derivative(x, grad, direction)


def _lbfgs(problem, x0, stopper, recorder, memory=30, cautious_epsilon=1e-4, cautious_alpha=1.0,
          line_search=None):
    """Minimize by Riemannian limited-memory BFGS with the cautious update.

    Each iteration computes the direction p = -H_k grad f(x_k) by the
    two-loop recursion over the stored pairs (s_i, y_i), with the initial
    scaling H_0 = <s, y> / <y, y> of the newest accepted pair (before any,
    1 / ||grad f(x_0)||, so that the first trial step has length 1), takes a
    step t_k from an Armijo backtracking search that starts at t = 1 (the
    direction's own scale), then forms

    .. math::

        s_k = T_{x_k \\to x_{k+1}}(t_k p_k), \\qquad
        y_k = \\operatorname{grad} f(x_{k+1}) - T_{x_k \\to x_{k+1}} \\operatorname{grad} f(x_k),

    and stores the pair only if the cautious test holds:
    <s_k, y_k> / <s_k, s_k> >= epsilon ||grad f(x_k)||^alpha. Every stored pair
    is moved by the vector transport to the new tangent space at every
    iteration (as Manopt's ``rlbfgs``), so the recursion always runs in
    T_{x_k}; each keeps the rho = 1 / <s, y> computed when it was stored
    (as Manopt: with a transport that is not an isometry, <T s, T y>
    differs). When p is not a descent direction (it always is with an
    isometric transport; it may not be in the projection strategy's ambient
    geometry) or the line search finds no decrease along it, the memory is
    cleared and the iteration is done along -H_0 grad f(x_k).

    Parameters
    ----------
    problem : spherenet.optim._problem.Problem
    x0 : point
    stopper, recorder : the shared stopping tests and history.
    memory : int, default 30
        Number of (s, y) pairs kept (Manopt's default). With 0 the direction
        is -H_0 grad f: steepest descent with the scaling <s, y> / <y, y> of
        the last step that passed the cautious test (a Barzilai-Borwein step).
    cautious_epsilon, cautious_alpha : float, default 1e-4 and 1
        The cautious update's epsilon and alpha (Li & Fukushima 2001;
        Huang, Gallivan & Absil 2015; Manopt's default
        ``strict_inc_func = 1e-4 t``).
    line_search : optional
        An object with ``search(problem, x, d, f0, slope)`` returning
        ``(step_length, new_x, new_f)``; defaults to :class:`HintLineSearch`
        (c = 1e-4, contraction 0.5, first trial step 1, as Manopt's
        ``linesearch_hint``).

    Returns
    -------
    OptimizeResult

    Raises
    ------
    ValueError, TypeError
        A memory that is not an int >= 0, or a cautious_epsilon /
        cautious_alpha that is not a finite number >= 0.

    Notes
    -----
    Under the projection strategy the gradient is the ambient one, the
    transport the identity, and s is the displacement x_{k+1} - x_k (the
    step handed to "step, then normalize" is not: see ``_displaced``).
    The pairs then measure the curvature of the cost in the ambient space,
    without the curvature of the sphere: for a Rayleigh quotient x'Ax it is
    that of 2A, indefinite. Pairs of negative curvature fail the cautious
    test, and the method falls back to scaled gradient steps: it converges,
    in several times the iterations of the riemannian strategy. The
    riemannian strategy is the one for which the method is made; reparam,
    penalty and none run it in their flat space.

    References
    ----------
    W. Huang, K. A. Gallivan and P.-A. Absil, "A Broyden class of quasi-Newton
    methods for Riemannian optimization", SIAM J. Optim. 25(3), 1660-1685, 2015.
    N. Boumal et al., Manopt, ``solvers/bfgs/rlbfgs.m``.
    J. Nocedal and S. J. Wright, *Numerical Optimization*, 2nd ed., Algorithm 7.4.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere, minimize
    >>> A = np.diag([1.0, 2.0, 5.0])
    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), method="lbfgs", memory=5, rng=0)
    >>> res.success, round(-res.fun, 8)
    (True, 5.0)
    """
    memory = _check_positive("memory", memory, integer=True, allow_zero=True)
    epsilon = _check_positive("cautious_epsilon", cautious_epsilon, allow_zero=True)
    alpha_power = _check_positive("cautious_alpha", cautious_alpha, allow_zero=True)
    line_search = HintLineSearch() if line_search is None else check_line_search(line_search)
    geometry = problem.geometry
    x = x0
    f, _, grad, grad_norm = start(problem, recorder, x)
    pairs = []  # (s, y, 1/<s, y>), oldest first, all in T_x
    norm = geometry.norm(x, grad)
    scale = 1.0 / norm if norm > 0.0 else 1.0  # Manopt's ls_initial_scale: a first step of 1
    it, f_old, grad_norm_old, step = 0, None, None, None
    while True:
        done = stopped(stopper, recorder, it, x, f, f_old, grad_norm, grad_norm_old, step)
        if done is not None:
            return done
        direction = two_loop(geometry, x, grad, pairs, scale)
        slope = geometry.directional_derivative(x, grad, direction)
        if not slope < 0.0 and pairs:
            pairs, direction, slope = _scaled_gradient(geometry, x, grad, scale)
        step, new_x, new_f = line_search.search(problem, x, direction, f, slope)
        if step == 0.0 and pairs:
            pairs, direction, slope = _scaled_gradient(geometry, x, grad, scale)
            step, new_x, new_f = line_search.search(problem, x, direction, f, slope)
        it += 1
        done, taken, new = advance(problem, recorder, stopper, x, f, f_old, grad_norm, it,
                                   direction, step, new_x, new_f)
        if done is not None:
            return done
        new_f, _, new_grad, new_grad_norm = new
        if _displaced(geometry):
            s = geometry.inverse_retr(x, new_x)
        else:
            tangent_step = _tangent.lincomb(step / geometry.norm(x, direction), direction)
            s = geometry.transp(x, new_x, tangent_step)
        y = _tangent.lincomb(1.0, new_grad, -1.0, geometry.transp(x, new_x, grad))
        pairs = [(geometry.transp(x, new_x, si), geometry.transp(x, new_x, yi), rho)
                 for si, yi, rho in pairs]
        sy, ss = geometry.inner(new_x, s, y), geometry.inner(new_x, s, s)
        if sy > 0.0 and sy / ss >= epsilon * geometry.norm(x, grad) ** alpha_power:
            if memory > 0:
                pairs.append((s, y, 1.0 / sy))
                del pairs[:-memory]
            scale = sy / geometry.inner(new_x, y, y)
        f_old, grad_norm_old = f, grad_norm
        x, f, grad, grad_norm = new_x, new_f, new_grad, new_grad_norm
        recorder.record(it, x, f, grad_norm, step, taken)


# Wrapped here rather than decorated, so that mutation testing reaches the body.
lbfgs = budgeted(_lbfgs)
