"""``minimize``: one scipy-like entry point to every solver, step rule and strategy."""

import math

from . import _tangent
from .manifolds import Manifold
from .manifolds.base import as_rng
from .optim._loop import OptimizeResult, Recorder, Stopper, default_ctol
from .optim._problem import Problem
from .optim._solver import budgeted, evaluate, failed, start
from .optim.cg import conjugate_gradient
from .optim.rules import RAdam, RSGD, StepRule
from .optim.sd import steepest_descent
from .optim.trust_regions import trust_regions
from .strategies import get_strategy

__all__ = ["minimize", "OptimizeResult", "METHODS"]

_SOLVERS = {"sd": steepest_descent, "cg": conjugate_gradient, "trust-regions": trust_regions}
_RULES = {"rsgd": RSGD, "radam": RAdam}
METHODS = tuple(_SOLVERS) + tuple(_RULES)


@budgeted
def _run_rule(problem, x0, stopper, recorder, rule):
    """Full-batch iterations of a step rule, with the shared stopping tests and history."""
    geometry = problem.geometry
    x = x0
    f, egrad, _, grad_norm = start(problem, recorder, x)
    state = rule.init(geometry, x)
    it, f_old, step = 0, None, None
    while True:
        stop = stopper.check(it, recorder.elapsed(), grad_norm, f_old, f, step, x)
        if stop:
            return recorder.result(x, f, grad_norm, it, *stop)
        new_x, state = rule.step(geometry, x, egrad, state)
        it += 1
        if not _tangent.all_finite(new_x):
            return failed(recorder, x, f, grad_norm, it, "point")
        new = evaluate(problem, new_x)
        if new is None:
            return failed(recorder, x, f, grad_norm, it, "cost or gradient")
        step = geometry.dist(x, new_x)
        f_old = f
        taken = geometry.inverse_retr(x, new_x) if recorder.telemetry else None
        x, (f, egrad, _, grad_norm) = new_x, new
        recorder.record(it, x, f, grad_norm, step, taken)


def minimize(cost, manifold, x0=None, method="cg", strategy="riemannian", grad=None, hess=None,
             maxiter=1000, gtol=1e-6, ftol=0.0, xtol=1e-10, maxtime=math.inf, callback=None,
             verbose=0, rng=None, telemetry=False, ctol=None, maxfev=None, **method_options):
    """Minimize ``cost`` over ``manifold``, in the manner of ``scipy.optimize.minimize``.

    Parameters
    ----------
    cost : callable
        ``cost(x) -> float``; x is an array (a tuple of arrays on a
        :class:`~spherenet.Product`). Written with ``autograd.numpy`` when
        gradients are left to autograd.
    manifold : Manifold
        The constraint set.
    x0 : array or tuple, optional
        Starting point on the manifold (checked); random from ``rng`` if None.
        Its dtype is kept.
    method : {"cg", "sd", "trust-regions", "rsgd", "radam"} or StepRule
        Conjugate gradients, steepest descent, Riemannian trust regions, or
        full-batch iterations of a step rule (``lr=`` and the rule's other
        options go in ``method_options``), or a step rule instance.
    strategy : str or Strategy, default "riemannian"
        How the constraint is kept: "riemannian", "projection", "reparam",
        "penalty", "none" (see :mod:`spherenet.strategies`), or an instance
        such as ``Penalty(manifold, mu=100)``.
    grad : callable, optional
        Euclidean gradient ``grad(x)``; autograd when None.
    hess : callable, optional
        Euclidean Hessian-vector product ``hess(x, u)``; autograd when None.
    maxiter : int, default 1000
    gtol : float, default 1e-6
        Stop when the gradient norm (in the strategy's geometry) is <= gtol.
        Below some level the dtype's rounding of the cost hides all progress
        (in float32, often above 1e-6): cost-based solvers (sd, cg,
        trust-regions) then stop at this *precision floor* with status 6,
        ``success=False`` and a message giving the gradient norm reached
        (see ``Stopper`` in ``spherenet.optim._loop``).
    ftol : float, default 0
        Stop when ``|f_k - f_{k+1}| <= ftol * max(|f_k|, |f_{k+1}|, 1)``.
    xtol : float, default 1e-10
        Stop when the step length is <= xtol.
    maxtime : float, default inf
        Seconds.
    maxfev : int, optional
        Most cost evaluations: ``nfev <= maxfev`` exactly. The evaluation
        that would exceed it is not made; the run stops with status 7 and
        returns the last iterate at which the cost and gradient are known
        (an unfinished line search is dropped). Counted as ``nfev``: every
        call of the cost, alone or with its gradient; Hessian-vector products
        and trust regions' gradient-only evaluations are not. At least 1 (the
        evaluation at x0); None (default): no limit.
    ctol : float, optional
        Constraint tolerance of a successful result: ``success`` is True only
        when the run converged (gtol or ftol) *and* every constrained factor
        of ``x`` has | ||x_k|| - 1 | <= ctol, whatever the strategy. Default
        max(1e-6, 100 eps of the dtype): 1e-6 for float64, 1.2e-5 for
        float32. The riemannian, projection and reparam strategies meet it to
        rounding; penalty (whose minimizer is off the sphere by about 1/mu)
        and none usually do not, and then report ``success=False`` with a
        message giving the violation and what to change (raise mu, or keep
        the constraint with strategy="riemannian"), even when the gradient
        test passed (``status`` 0 still says that it did).
    callback : callable, optional
        ``callback(x)`` after every iteration with the current weights;
        returning True stops the run.
    verbose : int, default 0
        1 prints a summary, 2 a line per iteration.
    rng : None, int or numpy.random.Generator
        Seeds the random starting point.
    telemetry : bool, default False
        Also record, per step, the geometric health numbers of
        :func:`spherenet.optim.telemetry`: tangency residual of the step,
        norm drift, chordal step length, retraction-versus-exp gap and
        transport isometry defect. Off, they cost nothing.
    **method_options
        Passed to the solver (e.g. ``beta_rule="PR+"`` for cg, ``radius=`` for
        trust regions) or to the step rule (``lr=``, ``momentum=``, ...).

    Returns
    -------
    OptimizeResult
        ``x, fun, nit, nfev, ngev, nhev, grad_norm, violation, success,
        status, message, history``. If the cost or gradient becomes NaN or
        Inf the result is unsuccessful, says where, and holds the last finite
        point.

    Raises
    ------
    ValueError
        Unknown method or strategy, a negative ctol, x0 off the manifold, a
        cost that is not a scalar or is not finite at x0, a gradient of the
        wrong shape.
    TypeError
        A manifold or a callable of the wrong type.

    Examples
    --------
    The leading eigenvector of a symmetric matrix, on the sphere:

    >>> import numpy as np
    >>> from spherenet import Sphere, minimize
    >>> A = np.diag([1.0, 2.0, 5.0])
    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), rng=0)
    >>> res.success, round(-res.fun, 8)
    (True, 5.0)

    A penalty keeps the weights only near the sphere (here at
    ||x|| = sqrt(1 + 5/2), the penalized minimizer), and says so:

    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), strategy="penalty", rng=0)
    >>> res.status, res.success, round(res.violation, 4)
    (0, False, 0.8708)
    >>> print(res.message)  # doctest: +ELLIPSIS
    gradient norm ... <= gtol 1.0e-06; but the weights are off the sphere by up to 0.871 ...raise mu...
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"manifold must be a spherenet Manifold, got {type(manifold).__name__}")
    if isinstance(method, StepRule):
        rule, solver = method, None
        if method_options:
            raise TypeError("method options cannot be given with a StepRule instance")
    elif method in _RULES:
        rule, solver = _RULES[method](**method_options), None
    elif method in _SOLVERS:
        rule, solver = None, _SOLVERS[method]
    else:
        raise ValueError(f"method must be one of {list(METHODS)} or a StepRule, got {method!r}")
    strat = get_strategy(strategy, manifold)
    if x0 is None:
        x0 = manifold.random_point(as_rng(rng))
    else:
        manifold.check_point(x0)
    stopper = Stopper(maxiter, gtol, ftol, xtol, maxtime,
                      None if callback is None else (lambda z: callback(strat.to_weights(z))),
                      maxfev=maxfev)
    egrad = None if grad is None else (lambda z: strat.egrad(grad, z))
    ehess = None
    if hess is not None and strat.supports_user_hessian():
        ehess = lambda z, u: strat.ehess(hess, z, u)  # noqa: E731
    problem = Problem(strat.cost(cost), strat.geometry, egrad, ehess, measure=strat.measure)
    recorder = Recorder(problem, strat, verbose, telemetry,
                        default_ctol(x0) if ctol is None else ctol)
    z0 = strat.to_variable(x0)
    if solver is not None:
        return solver(problem, z0, stopper, recorder, **method_options)
    return _run_rule(problem, z0, stopper, recorder, rule)
