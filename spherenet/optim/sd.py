"""Riemannian steepest descent with Armijo backtracking."""

from .. import _tangent
from ._solver import budgeted, evaluate, failed, no_decrease, start, step_taken
from .line_search import BacktrackingLineSearch


def _steepest_descent(problem, x0, stopper, recorder, line_search=None):
    """Minimize by steepest descent: x+ = R_x(-a grad f(x)), a from an Armijo search.

    Parameters
    ----------
    problem : spherenet.optim._problem.Problem
    x0 : point
    stopper, recorder : the shared stopping tests and history.
    line_search : object with a ``search`` method, optional
        Defaults to :class:`~spherenet.optim.line_search.BacktrackingLineSearch`.

    Returns
    -------
    OptimizeResult
    """
    line_search = BacktrackingLineSearch() if line_search is None else line_search
    x = x0
    f, _, rgrad, grad_norm = start(problem, recorder, x)
    it, f_old, grad_norm_old, step = 0, None, None, None
    while True:
        unresolved = None if f_old is None else stopper.unresolved(
            x, f_old, f, improved=grad_norm < grad_norm_old)
        stop = stopper.check(it, recorder.elapsed(), grad_norm, f_old, f, step, x, unresolved)
        if stop:
            return recorder.result(x, f, grad_norm, it, *stop)
        direction = _tangent.lincomb(-1.0, rgrad)
        slope = problem.geometry.directional_derivative(x, rgrad, direction)
        step, new_x, new_f = line_search.search(problem, x, direction, f, slope)
        it += 1
        if step == 0.0:
            return no_decrease(recorder, x, f, grad_norm, it, stopper, f_old)
        new = evaluate(problem, new_x, new_f)
        if new is None:
            return failed(recorder, x, f, grad_norm, it)
        f_old, grad_norm_old = f, grad_norm
        taken = step_taken(recorder, problem.geometry, x, direction, step)
        x, (f, _, rgrad, grad_norm) = new_x, new
        recorder.record(it, x, f, grad_norm, step, taken)


# Wrapped here rather than decorated, so that mutation testing reaches the body.
steepest_descent = budgeted(_steepest_descent)
