"""Edges of the trust-region solver and its truncated CG (``spherenet.optim.trust_regions``):
zero and unit curvature, the reason given for a boundary step, the default tolerance
exponent theta, the bound on inner iterations, the radius checks and the exit after a
non-finite gradient. The reference CG is written out here in NumPy (Steihaug-Toint)."""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Sphere, minimize
from spherenet.optim import truncated_cg

EPS = np.finfo(np.float64).eps


def reference_cg_iterations(H, g, theta, kappa):
    """Inner iterations of plain CG on H e = -g until ||r|| <= ||r0|| min(||r0||^theta, kappa)
    (no boundary: the radius is taken large)."""
    r = g.copy()
    target = np.linalg.norm(r) * min(np.linalg.norm(r) ** theta, kappa)
    d = -r
    e = np.zeros_like(g)
    for j in range(1, len(g) + 1):
        hd = H @ d
        alpha = (r @ r) / (d @ hd)
        e = e + alpha * d
        r_new = r + alpha * hd
        if np.linalg.norm(r_new) <= target:
            return j, e
        d = -r_new + (r_new @ r_new) / (r @ r) * d
        r = r_new
    return len(g), e


def test_zero_curvature_goes_to_the_boundary_along_minus_the_gradient():
    g = np.array([3.0, 4.0])
    eta, heta, reason, j = truncated_cg(Euclidean(2), np.zeros(2), g, lambda u: 0.0 * u,
                                        radius=2.0)
    assert (reason, j) == ("negative curvature", 1)
    np.testing.assert_allclose(eta, -2.0 * g / 5.0, rtol=4 * EPS)
    np.testing.assert_array_equal(heta, np.zeros(2))


def test_unit_curvature_takes_the_newton_step_inside_the_region():
    # H = I, ||g|| = 1: <d, H d> = 1 and the first CG step is the Newton step -g.
    g = np.array([0.6, 0.8])
    eta, heta, reason, j = truncated_cg(Euclidean(2), np.zeros(2), g, lambda u: u, radius=10.0)
    assert (reason, j) == ("converged", 1)
    np.testing.assert_allclose(eta, -g, rtol=4 * EPS)
    np.testing.assert_allclose(heta, -g, rtol=4 * EPS)


def test_a_boundary_step_with_small_positive_curvature_exceeded_the_region():
    H = np.diag([0.1, 0.4])  # <d, H d> = 0.5 for d = -g
    g = np.array([1.0, 1.0])
    eta, _, reason, j = truncated_cg(Euclidean(2), np.zeros(2), g, lambda u: H @ u, radius=0.5)
    assert (reason, j) == ("exceeded trust region", 1)
    assert np.linalg.norm(eta) == pytest.approx(0.5, rel=4 * EPS)


@pytest.mark.parametrize("scale, iterations", [(0.05, 8), (3.0, 7)])
def test_the_default_tolerance_is_quadratic(scale, iterations):
    # theta = 1: tCG stops at ||r|| <= ||r0|| min(||r0||, kappa). For ||r0|| = 0.05 below
    # kappa = 0.1 that is ||r0||^2 (8 CG iterations here; theta = 2 would take 11); for
    # ||r0|| = 3 the kappa part (7 iterations).
    H = np.diag(np.linspace(1.0, 30.0, 12))
    v = np.linspace(1.0, 2.0, 12)
    g = scale * v / np.linalg.norm(v)
    eta, _, reason, j = truncated_cg(Euclidean(12), np.zeros(12), g, lambda u: H @ u,
                                     radius=1e6)
    ref_j, ref_eta = reference_cg_iterations(H, g, theta=1.0, kappa=0.1)
    assert reason == "converged" and j == ref_j == iterations
    np.testing.assert_allclose(eta, ref_eta, rtol=1e-10, atol=1e-14)


A = np.diag(np.linspace(1.0, 10.0, 10))
X0 = np.ones(10) / np.sqrt(10.0)


def rayleigh(x):
    return -(x @ (A @ x))


def test_maxinner_bounds_the_inner_iterations():
    res = minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", maxinner=1, maxiter=5,
                   gtol=0.0)
    assert res.nit == 5 and res.nhev <= 5  # one product per tCG
    free = minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", maxiter=5, gtol=0.0)
    assert free.nhev > 5


@pytest.mark.parametrize("options", [{"radius": 0.0}, {"radius": math.inf},
                                     {"max_radius": 0.0}, {"max_radius": math.inf},
                                     {"radius": -1.0, "max_radius": 1.0},
                                     {"radius": 0.1, "max_radius": 0.0},
                                     {"radius": 0.1, "max_radius": math.inf}])
def test_radius_must_be_positive_and_finite(options):
    radius = options.get("radius", Sphere(10).typical_dist / 8.0 if "max_radius" not in options
                         else options["max_radius"] / 8.0)
    max_radius = options.get("max_radius", Sphere(10).typical_dist)
    message = (f"trust regions need a finite radius > 0 and max_radius > 0, got radius "
               f"{float(radius)} and max_radius {float(max_radius)}")
    with pytest.raises(ValueError, match="^" + message + "$"):
        minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", **options)


def test_a_max_radius_below_one_is_valid():
    res = minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", max_radius=0.5)
    assert res.success and -res.fun == pytest.approx(10.0, rel=8 * EPS)


def test_a_non_finite_gradient_at_an_accepted_proposal_ends_at_the_last_point():
    f0 = rayleigh(X0)

    def grad(x):
        return -2.0 * (A @ x) if np.array_equal(x, X0) else np.full(10, np.nan)

    res = minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", grad=grad,
                   hess=lambda x, u: -2.0 * (A @ u))
    assert (res.status, res.nit, res.fun) == (-1, 1, f0) and not res.success
    assert res.message == ("the gradient became NaN or Inf at iteration 1; returning the last "
                           "finite point")
    np.testing.assert_array_equal(res.x, X0)
    g = -2.0 * (A @ X0)
    assert res.grad_norm == pytest.approx(np.linalg.norm(g - (X0 @ g) * X0), rel=8 * EPS)
    assert res.history["cost"].tolist() == [f0, f0] and np.isnan(res.history["step_size"][1])


def test_the_budget_running_out_after_a_rejected_step_ends_at_that_iterate():
    # radius 3 on the sphere: the first proposal overshoots and is rejected (one cost
    # evaluation, iterate 1 recorded at x0); the second proposal would be evaluation 3.
    free = minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", radius=3.0,
                    max_radius=3.0)
    assert np.isnan(free.history["step_size"][1])  # iteration 1 was rejected
    res = minimize(rayleigh, Sphere(10), x0=X0, method="trust-regions", radius=3.0,
                   max_radius=3.0, maxfev=2)
    assert (res.status, res.nit, res.nfev) == (7, 1, 2)
    np.testing.assert_array_equal(res.x, X0)
    assert res.fun == rayleigh(X0) and len(res.history["cost"]) == 2
