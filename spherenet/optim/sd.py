"""Riemannian steepest descent with Armijo backtracking."""

from .. import _tangent
from numpy import ndarray

from . import _lean
from ._solver import advance, budgeted, start, stopping_test
from .line_search import BacktrackingLineSearch, check_line_search


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
    if line_search is None and _lean.applies(problem, x0, stopper, recorder):
        return _lean.steepest_descent(problem, x0, stopper, recorder)
    line_search = (BacktrackingLineSearch() if line_search is None
                   else check_line_search(line_search))
    # When the gradient norm is the measure, it is also the norm of the direction
    # -rgrad (bit for bit: a sum of the same squares); our line searches take it.
    pass_norm = problem.measure_is_norm and (
        getattr(line_search.search, "__func__", None) is BacktrackingLineSearch.search)
    x = x0
    f, _, rgrad, grad_norm = start(problem, recorder, x)
    # The loop's calls looked up once (bound methods, the stopping test with its settings).
    test, search, record = stopping_test(stopper, recorder), line_search.search, recorder.record
    directional_derivative = problem.geometry.directional_derivative
    it, f_old, grad_norm_old, step = 0, None, None, None
    while True:
        done = test(it, x, f, f_old, grad_norm, grad_norm_old, step)
        if done is not None:
            return done
        direction = -rgrad if rgrad.__class__ is ndarray else _tangent.lincomb(-1.0, rgrad)
        slope = directional_derivative(x, rgrad, direction)
        if pass_norm:
            step, new_x, new_f = search(problem, x, direction, f, slope, grad_norm)
        else:
            step, new_x, new_f = search(problem, x, direction, f, slope)
        it += 1
        done, taken, new = advance(problem, recorder, stopper, x, f, f_old, grad_norm, it,
                                   direction, step, new_x, new_f)
        if done is not None:
            return done
        f_old, grad_norm_old = f, grad_norm
        x, (f, _, rgrad, grad_norm) = new_x, new
        record(it, x, f, grad_norm, step, taken)


# Wrapped here rather than decorated, so that mutation testing reaches the body.
steepest_descent = budgeted(_steepest_descent)
