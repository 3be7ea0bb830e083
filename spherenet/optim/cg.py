"""Riemannian nonlinear conjugate gradients (Fletcher-Reeves, Polak-Ribiere+,
Hestenes-Stiefel, Hager-Zhang), with the previous direction moved by the
manifold's vector transport."""

from .. import _tangent
from . import _lean
from ._solver import advance, budgeted, start, stopping_test
from .line_search import AdaptiveLineSearch, check_line_search

BETA_RULES = ("FR", "PR+", "HS", "HZ")


def _beta(rule, geometry, new_x, grad_sq, new_grad, new_grad_sq, old_grad, direction):
    """The conjugacy coefficient, all vectors already in T_{new_x}."""
    inner = geometry.inner
    if rule == "FR":
        return new_grad_sq / grad_sq
    diff = _tangent.lincomb(1.0, new_grad, -1.0, old_grad)
    if rule == "PR+":
        return max(0.0, inner(new_x, new_grad, diff) / grad_sq)
    denominator = inner(new_x, direction, diff)
    if denominator == 0.0:
        return 0.0
    if rule == "HS":
        return max(0.0, inner(new_x, new_grad, diff) / denominator)
    # Hager & Zhang (2005), with their lower bound eta_k.
    numerator = inner(new_x, diff, new_grad) - 2.0 * inner(new_x, diff, diff) * inner(
        new_x, direction, new_grad
    ) / denominator
    bound = -1.0 / (geometry.norm(new_x, direction) * min(0.01, grad_sq**0.5))
    return max(numerator / denominator, bound)


def _conjugate_gradient(problem, x0, stopper, recorder, beta_rule="HS", restart=None,
                       line_search=None):
    """Minimize by nonlinear conjugate gradients on a manifold.

    Parameters
    ----------
    beta_rule : {"FR", "PR+", "HS", "HZ"}
        Fletcher-Reeves, Polak-Ribiere+, Hestenes-Stiefel (default, as Manopt
        and pymanopt) or Hager-Zhang.
    restart : float or None
        Powell's restart: the direction resets to -grad when successive
        gradients are far from orthogonal, ``|<g+, T g>| >= restart ||g+||^2``;
        None (default, as Manopt and pymanopt) disables it;
        0.1 is a common choice. A direction that is not a descent direction is
        always reset.
    line_search : optional
        Defaults to :class:`~spherenet.optim.line_search.AdaptiveLineSearch`.

    Returns
    -------
    OptimizeResult
    """
    if beta_rule not in BETA_RULES:
        raise ValueError(f"beta_rule must be one of {list(BETA_RULES)}, got {beta_rule!r}")
    if line_search is None and _lean.applies(problem, x0, stopper, recorder):
        return _lean.conjugate_gradient(problem, x0, stopper, recorder, beta_rule, restart)
    line_search = AdaptiveLineSearch() if line_search is None else check_line_search(line_search)
    geometry = problem.geometry
    needs_sq = restart is not None or beta_rule != "HS"
    x = x0
    f, _, grad, grad_norm = start(problem, recorder, x)
    grad_sq = geometry.inner(x, grad, grad) if needs_sq else None
    direction = _tangent.lincomb(-1.0, grad)
    # The loop's calls looked up once (bound methods, the stopping test with its settings).
    test, search, record = stopping_test(stopper, recorder), line_search.search, recorder.record
    directional_derivative, transp = geometry.directional_derivative, geometry.transp
    it, f_old, grad_norm_old, step = 0, None, None, None
    while True:
        done = test(it, x, f, f_old, grad_norm, grad_norm_old, step)
        if done is not None:
            return done
        slope = directional_derivative(x, grad, direction)
        if not slope < 0.0:
            direction = _tangent.lincomb(-1.0, grad)
            slope = directional_derivative(x, grad, direction)
        step, new_x, new_f = search(problem, x, direction, f, slope)
        it += 1
        done, taken, new = advance(problem, recorder, stopper, x, f, f_old, grad_norm, it,
                                   direction, step, new_x, new_f)
        if done is not None:
            return done
        new_f, _, new_grad, new_grad_norm = new
        old_grad = transp(x, new_x, grad)
        # ||g+||^2 only where it is read: Hestenes-Stiefel without restarts has no use for it.
        new_grad_sq = geometry.inner(new_x, new_grad, new_grad) if needs_sq else None
        if restart is not None and abs(geometry.inner(new_x, old_grad, new_grad)) >= restart * new_grad_sq:
            direction = _tangent.lincomb(-1.0, new_grad)
        else:
            direction = transp(x, new_x, direction)
            beta = _beta(beta_rule, geometry, new_x, grad_sq, new_grad, new_grad_sq,
                         old_grad, direction)
            direction = _tangent.lincomb(-1.0, new_grad, beta, direction)
        f_old, grad_norm_old = f, grad_norm
        x, f, grad, grad_norm, grad_sq = new_x, new_f, new_grad, new_grad_norm, new_grad_sq
        record(it, x, f, grad_norm, step, taken)


# Wrapped here rather than decorated, so that mutation testing reaches the body.
conjugate_gradient = budgeted(_conjugate_gradient)
