"""The start and the end of a solver run, shared by every solver."""

import functools
import math

from .. import _tangent
from ._loop import EvaluationBudgetExhausted, nonfinite_message


def budgeted(solver):
    """Give ``solver(problem, x0, stopper, recorder, **options)`` the stopper's ``maxfev``.

    The problem refuses an evaluation beyond ``stopper.maxfev``; the run then
    ends at the last recorded iterate (where cost and gradient are known)
    with status 7.
    """
    @functools.wraps(solver)
    def run(problem, x0, stopper, recorder, *args, **options):
        problem.maxfev = stopper.maxfev
        try:
            return solver(problem, x0, stopper, recorder, *args, **options)
        except EvaluationBudgetExhausted:
            x, f, grad_norm, it = recorder.last
            return recorder.result(x, f, grad_norm, it, 7, stopper.maxfev_message())

    # The public name (the solvers are defined as _name and wrapped after).
    run.__name__ = run.__qualname__ = solver.__name__.lstrip("_")
    return run


def start(problem, recorder, x0):
    """Evaluate cost and gradient at x0, record iterate 0; raise if they are not finite.

    Returns f, egrad, rgrad and the stationarity measure (the gradient norm
    used by the stopping test and the history: see ``Strategy.measure``).
    """
    # Checked before the Riemannian gradient is formed from them: NaN/Inf
    # would only spread (with floating-point warnings) through egrad2rgrad.
    f, egrad = problem.cost_and_egrad(x0)
    if not math.isfinite(f):
        raise ValueError(f"the cost is {f} at the starting point")
    if not _tangent.all_finite(egrad):
        raise ValueError("the gradient has NaN or Inf entries at the starting point")
    rgrad = problem.geometry.egrad2rgrad(x0, egrad)
    grad_norm = problem.measure(x0, egrad, rgrad)
    recorder.record(0, x0, f, grad_norm)
    return f, egrad, rgrad, grad_norm


def evaluate(problem, x, f=None):
    """Cost and gradients at x, or None when any is not finite (``f``: the cost, if known)."""
    f, egrad = problem.cost_and_egrad(x, f)
    if not math.isfinite(f) or not _tangent.all_finite(egrad):
        return None
    rgrad = problem.geometry.egrad2rgrad(x, egrad)
    finite_norm = problem.finite_norm
    if finite_norm is not None:
        # The measure is the norm; the geometry tells in the same pass whether rgrad is finite.
        grad_norm = finite_norm(x, rgrad)
        return None if grad_norm is None else (f, egrad, rgrad, grad_norm)
    if not _tangent.all_finite(rgrad):
        return None
    return f, egrad, rgrad, problem.measure(x, egrad, rgrad)


def failed(recorder, x, f, grad_norm, it, what="gradient"):
    """The unsuccessful result at the last finite point, after iteration ``it`` failed.

    The failed iteration is recorded (no step: step size NaN) so that, as for
    every result, the history has ``nit + 1`` rows.
    """
    recorder.record(it, x, f, grad_norm, math.nan)
    return recorder.result(x, f, grad_norm, it, -1, nonfinite_message(what, it))


def no_decrease(recorder, x, f, grad_norm, it, stopper=None, f_old=None):
    """The result when the line search of iteration ``it`` found no decrease.

    After a step whose decrease (``f_old - f``) was already lost in rounding
    (see ``Stopper.unresolved``) this is the precision floor (status 6), else
    a failure of the line search (status 4).
    """
    recorder.record(it, x, f, grad_norm, 0.0)
    if stopper is not None and f_old is not None and stopper.unresolved(x, f_old, f):
        return recorder.result(x, f, grad_norm, it, 6, stopper.floor_message(x, grad_norm))
    return recorder.result(x, f, grad_norm, it, 4, "the line search found no decrease")


def step_taken(recorder, geometry, x, direction, step):
    """The tangent step of length ``step`` along ``direction``, when telemetry asks for it."""
    if not recorder.telemetry:
        return None
    return _tangent.lincomb(step / geometry.norm(x, direction), direction)


def stopped(stopper, recorder, it, x, f, f_old, grad_norm, grad_norm_old, step):
    """The result when a line-search solver stops before iteration ``it + 1``, else None.

    The precision-floor test (``Stopper.unresolved``) compares the last two
    costs and asks whether the gradient norm went down; before the first step
    there is nothing to compare.
    """
    unresolved = None if f_old is None else stopper.unresolved(
        x, f_old, f, 0.0, grad_norm < grad_norm_old)
    # The clock is read only when a time limit can stop the run.
    elapsed = recorder.elapsed() if stopper.maxtime != math.inf else 0.0
    stop = stopper.check(it, elapsed, grad_norm, f_old, f, step, x, unresolved)
    return recorder.result(x, f, grad_norm, it, *stop) if stop else None


def stopping_test(stopper, recorder):
    """``test(it, x, f, f_old, grad_norm, grad_norm_old, step)``: :func:`stopped` for one run.

    Without a callback, a time limit or ``ftol`` (the defaults), the test
    runs with the stopper's settings bound: when none of the tests that
    remain can stop the run it only updates the stopper's record (the
    smallest gradient norm, the count of unresolved steps) as
    ``Stopper.check`` does; otherwise, and always with a callback, a time
    limit or ftol, it is :func:`stopped`.
    """
    if stopper.callback is not None or stopper.maxtime != math.inf or stopper.ftol > 0:
        def test(it, x, f, f_old, grad_norm, grad_norm_old, step):
            return stopped(stopper, recorder, it, x, f, f_old, grad_norm, grad_norm_old, step)
        return test

    gtol, maxiter, xtol = stopper.gtol, stopper.maxiter, stopper.xtol
    patience, factor, eps_of = stopper.FLOOR_PATIENCE, stopper.FLOOR_FACTOR, stopper._eps_of

    def test(it, x, f, f_old, grad_norm, grad_norm_old, step):
        unresolved_steps = stopper.unresolved_steps
        if f_old is not None:
            # Stopper.unresolved with predicted = 0 (|0| <= noise whenever the change is).
            unresolved = not grad_norm < grad_norm_old and (
                abs(f_old - f) <= factor * eps_of(x) * max(abs(f_old), abs(f)))
            unresolved_steps = unresolved_steps + 1 if unresolved else 0
        if (grad_norm <= gtol or unresolved_steps >= patience or it >= maxiter
                or (step is not None and step <= xtol)):
            return stopped(stopper, recorder, it, x, f, f_old, grad_norm, grad_norm_old, step)
        stopper.unresolved_steps = unresolved_steps
        if grad_norm < stopper.best_grad_norm:  # min(), as check: grad_norm is not NaN here
            stopper.best_grad_norm = grad_norm
        return None

    return test


def advance(problem, recorder, stopper, x, f, f_old, grad_norm, it, direction, step, new_x, new_f):
    """What follows the line search of iteration ``it`` in every line-search solver.

    Returns ``(None, taken, new)`` to go on, with the telemetry step and
    ``(f, egrad, rgrad, measure)`` at ``new_x``; or ``(result, None, None)``
    when the search found no decrease (``step == 0``) or the gradient at
    ``new_x`` is not finite, the run then ending at ``x``.
    """
    if step == 0.0:
        return no_decrease(recorder, x, f, grad_norm, it, stopper, f_old), None, None
    taken = step_taken(recorder, problem.geometry, x, direction, step) if recorder.telemetry else None
    new = evaluate(problem, new_x, new_f)
    if new is None:
        return failed(recorder, x, f, grad_norm, it), None, None
    return None, taken, new
