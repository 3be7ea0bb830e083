"""Riemannian trust regions with truncated conjugate gradients
(Absil, Baker & Gallivan 2007; the tCG of Steihaug and Toint)."""

import math

import numpy as np

from .. import _tangent
from .._checks import check_real
from ._loop import _coarsest_dtype
from ._solver import budgeted, failed, start


def _eps(x):
    """Machine epsilon of the (coarsest) dtype of a point or tangent vector."""
    return float(np.finfo(_coarsest_dtype(x)).eps)


def truncated_cg(geometry, x, grad, hess, radius, theta=1.0, kappa=0.1, maxinner=None):
    """Approximately minimize the model m(e) = <g, e> + <H e, e>/2 over ||e|| <= radius.

    Returns
    -------
    eta, Heta : tangent vectors
        The step and its Hessian image.
    reason : str
        "negative curvature", "exceeded trust region", "converged" or "maxinner".
    inner_iterations : int
        0 when the gradient is zero (the step is then zero).

    Examples
    --------
    With a large radius and a tight tolerance tCG reaches the Newton step
    -H^{-1} g; with a small radius it stops on the boundary:

    >>> import numpy as np
    >>> from spherenet import Euclidean
    >>> from spherenet.optim import truncated_cg
    >>> H, g = np.diag([1.0, 4.0]), np.array([1.0, 1.0])
    >>> eta, Heta, reason, j = truncated_cg(Euclidean(2), np.zeros(2), g, lambda u: H @ u,
    ...                                     radius=10.0, kappa=1e-12)
    >>> np.round(eta, 12) + 0.0, reason, j
    (array([-1.  , -0.25]), 'converged', 2)
    >>> eta, Heta, reason, j = truncated_cg(Euclidean(2), np.zeros(2), g, lambda u: H @ u,
    ...                                     radius=0.5)
    >>> round(float(np.linalg.norm(eta)), 12), reason
    (0.5, 'exceeded trust region')
    """
    inner = geometry.inner
    maxinner = geometry.dim if maxinner is None else maxinner
    eta = geometry.zero_vector(x)
    heta = _tangent.copy(eta)
    # Projected once more: a mostly normal Euclidean gradient leaves a rounding
    # residue along x (eps ||egrad||, 2 % of ||grad|| near a float32 minimizer)
    # that no Hessian image can cancel; the residual then stalls and tCG runs
    # on rounding noise out to the boundary.
    r = geometry.proj(x, grad)
    r_r = inner(x, r, r)
    norm_r0 = math.sqrt(r_r)
    if r_r == 0.0:
        # The stopping test holds before any iteration (and the boundary step
        # along delta = -g = 0 would divide by zero).
        return eta, heta, "converged", 0
    target = norm_r0 * min(norm_r0**theta, kappa)
    delta = _tangent.lincomb(-1.0, r)
    e_pe, e_pd, d_pd = 0.0, 0.0, r_r
    for j in range(1, maxinner + 1):
        hdelta = hess(delta)
        d_hd = inner(x, delta, hdelta)
        alpha = r_r / d_hd if d_hd != 0.0 else math.inf
        e_pe_new = e_pe + 2.0 * alpha * e_pd + alpha * alpha * d_pd
        if d_hd <= 0.0 or e_pe_new >= radius * radius:
            # Go to the boundary of the trust region along delta.
            tau = (-e_pd + math.sqrt(max(e_pd * e_pd + d_pd * (radius * radius - e_pe), 0.0))) / d_pd
            eta = _tangent.lincomb(1.0, eta, tau, delta)
            heta = _tangent.lincomb(1.0, heta, tau, hdelta)
            return eta, heta, ("negative curvature" if d_hd <= 0.0 else "exceeded trust region"), j
        e_pe = e_pe_new
        eta = _tangent.lincomb(1.0, eta, alpha, delta)
        heta = _tangent.lincomb(1.0, heta, alpha, hdelta)
        r = _tangent.lincomb(1.0, r, alpha, hdelta)
        r_r_old, r_r = r_r, inner(x, r, r)
        norm_r = math.sqrt(r_r)
        if norm_r <= target:
            return eta, heta, "converged", j
        beta = r_r / r_r_old
        # Re-project: rounding would otherwise let delta drift off the tangent space.
        delta = geometry.proj(x, _tangent.lincomb(-1.0, r, beta, delta))
        e_pd = beta * (e_pd + alpha * d_pd)
        d_pd = r_r + beta * beta * d_pd
    return eta, heta, "maxinner", maxinner


def _trust_regions(problem, x0, stopper, recorder, radius=None, max_radius=None, rho_prime=0.1,
                  theta=1.0, kappa=0.1, maxinner=None, rho_regularization=1e3):
    """Minimize with the Riemannian trust-region method.

    Parameters
    ----------
    radius, max_radius : float, optional
        Initial and largest trust-region radius; default ``typical_dist/8``
        and ``typical_dist`` of the geometry.
    rho_prime : float
        Accept a step when the ratio of actual to predicted decrease exceeds it.
    theta, kappa : float
        tCG stops when ||r|| <= ||r0|| min(||r0||^theta, kappa): superlinear
        (quadratic with theta=1) local convergence.
    maxinner : int, optional
        Most tCG iterations per outer step (default: the dimension).
    rho_regularization : float
        Guards the ratio against rounding when both decreases are tiny.

    Returns
    -------
    OptimizeResult

    References
    ----------
    P.-A. Absil, C. G. Baker, K. A. Gallivan, "Trust-region methods on
    Riemannian manifolds", Found. Comput. Math. 7 (2007) 303-330.
    """
    geometry = problem.geometry
    max_radius = (geometry.typical_dist if max_radius is None
                  else check_real(max_radius, "max_radius"))
    radius = max_radius / 8.0 if radius is None else check_real(radius, "radius")
    if not (0.0 < radius < math.inf and 0.0 < max_radius < math.inf):
        raise ValueError("trust regions need a finite radius > 0 and max_radius > 0, got "
                         f"radius {radius} and max_radius {max_radius}")
    x = x0
    f, egrad, grad, grad_norm = start(problem, recorder, x)
    hess = problem.hessian_at(x, egrad)
    it, f_old, step, unresolved = 0, None, None, None
    # The rounding of the cost in the data's dtype: with float64's eps on
    # float32 data the ratio below was rounding noise near a minimizer.
    eps = _eps(x)
    while True:
        stop = stopper.check(it, recorder.elapsed(), grad_norm, f_old, f, step, x, unresolved)
        if stop:
            return recorder.result(x, f, grad_norm, it, *stop)
        eta, heta, reason, _ = truncated_cg(geometry, x, grad, hess, radius, theta, kappa, maxinner)
        x_prop = geometry.retr(x, eta)
        f_prop = problem.cost(x_prop)
        model_decrease = -geometry.inner(x, grad, eta) - 0.5 * geometry.inner(x, eta, heta)
        reg = max(1.0, abs(f)) * eps * rho_regularization
        rho = (f - f_prop + reg) / (model_decrease + reg)
        # As Manopt: a step whose model decrease is negative beyond rounding is
        # never accepted, and it shrinks the radius (else the same step would
        # be proposed again and again).
        model_decreased = model_decrease + reg >= 0.0
        accept = math.isfinite(f_prop) and model_decreased and rho > rho_prime
        # At the precision floor both decreases are rounding and the ratio says
        # nothing; steps are taken as before (a move along a flat direction can
        # precede the Newton step that converges), but one that does not lower
        # the gradient norm counts towards the floor stop (see Stopper).
        unresolved = math.isfinite(f_prop) and stopper.unresolved(x, f, f_prop, model_decrease)
        if accept:
            # One traced gradient serves the gradient and the next tCG's
            # Hessian-vector products; the cost is f_prop already.
            new_egrad, new_hess = problem.egrad_and_hessian(x_prop)
            new_grad = geometry.egrad2rgrad(x_prop, new_egrad)
            if not _tangent.all_finite(new_grad):
                return failed(recorder, x, f, grad_norm, it + 1)
            new_grad_norm = problem.measure(x_prop, new_egrad, new_grad)
            unresolved = unresolved and not new_grad_norm < grad_norm
        if not accept or rho < 0.25:
            radius /= 4.0
        elif rho > 0.75 and reason in ("negative curvature", "exceeded trust region"):
            radius = min(2.0 * radius, max_radius)
        it += 1
        if accept:
            step = geometry.norm(x, eta)
            f_old = f
            x, f, egrad, grad, hess = x_prop, f_prop, new_egrad, new_grad, new_hess
            grad_norm = new_grad_norm
            recorder.record(it, x, f, grad_norm, step, eta)
        else:
            step = None  # rejected: the step-size test does not apply
            recorder.record(it, x, f, grad_norm, math.nan, None)


# Wrapped here rather than decorated, so that mutation testing reaches the body.
trust_regions = budgeted(_trust_regions)
