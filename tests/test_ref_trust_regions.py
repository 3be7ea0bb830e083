"""Reference tests of the Riemannian trust-region method: the truncated CG of
Steihaug and Toint on quadratics that stop inside the region, at its boundary
after several inner iterations and on negative curvature; the acceptance ratio
rho, the accept/reject decision and the radius update with its cap, against a
plain NumPy transcription of Absil, Baker & Gallivan (2007), Algorithms 1-2,
as Manopt's ``trustregions``/``tCG`` implement them.
"""

import importlib

import numpy as np
import pytest

from spherenet import Euclidean, Sphere, minimize
from spherenet.optim import truncated_cg

EPS = np.finfo(np.float64).eps
TR = importlib.import_module("spherenet.optim.trust_regions")


def ref_tcg(g, hess, radius, theta=1.0, kappa=0.1, maxinner=None, proj=lambda v: v):
    """Steihaug-Toint truncated CG for min <g, e> + <He, e>/2, ||e|| <= radius.

    Written with the vectors themselves (no recurrences for ||e||^2, <e, d>):
    the boundary step tau > 0 solves ||eta + tau delta||^2 = radius^2.
    """
    maxinner = g.size if maxinner is None else maxinner
    eta = np.zeros_like(g)
    r = g.copy()
    delta = -r
    r0 = np.sqrt(r @ r)
    for j in range(1, maxinner + 1):
        hd = hess(delta)
        curv = delta @ hd
        alpha = (r @ r) / curv if curv != 0 else np.inf
        trial = eta + alpha * delta
        if curv <= 0 or trial @ trial >= radius**2:
            a, b, c = delta @ delta, 2 * (eta @ delta), eta @ eta - radius**2
            tau = (-b + np.sqrt(b * b - 4 * a * c)) / (2 * a)
            eta = eta + tau * delta
            return eta, ("negative curvature" if curv <= 0 else "exceeded trust region"), j
        eta = trial
        r_new = r + alpha * hd
        if np.sqrt(r_new @ r_new) <= r0 * min(r0**theta, kappa):
            return eta, "converged", j
        beta = (r_new @ r_new) / (r @ r)
        delta = proj(-r_new + beta * delta)
        r = r_new
    return eta, "maxinner", maxinner


N = 8
_rng = np.random.default_rng(5)
_Q = np.linalg.qr(_rng.standard_normal((N, N)))[0]
H_SPD = _Q @ np.diag(np.geomspace(0.1, 10.0, N)) @ _Q.T
G = _rng.standard_normal(N)


def _check(eta, heta, reason, j, ref, hess, tol):
    ref_eta, ref_reason, ref_j = ref
    assert (reason, j) == (ref_reason, ref_j)
    scale = np.linalg.norm(ref_eta)
    np.testing.assert_allclose(eta, ref_eta, rtol=0, atol=tol * scale)
    ref_heta = hess(ref_eta)
    np.testing.assert_allclose(heta, ref_heta, rtol=0, atol=tol * np.linalg.norm(ref_heta))


def test_tcg_converges_inside_to_the_newton_step():
    # theta large and kappa tiny: tCG runs until the residual is at rounding level,
    # so eta is the Newton step -H^{-1} g (scipy-free: np.linalg.solve).
    E = Euclidean(N)
    hess = lambda u: H_SPD @ u  # noqa: E731
    newton = -np.linalg.solve(H_SPD, G)
    eta, heta, reason, j = truncated_cg(E, np.zeros(N), G, hess, radius=1e3, theta=5.0,
                                        kappa=1e-10, maxinner=40)
    # condition number 100, residual 1e-10: eta within ~1e-8 relative
    np.testing.assert_allclose(eta, newton, rtol=0, atol=1e-8 * np.linalg.norm(newton))
    _check(eta, heta, reason, j, ref_tcg(G, hess, 1e3, 5.0, 1e-10, 40), hess, 1e3 * EPS)
    assert reason == "converged" and np.linalg.norm(eta) < 1e3


# ||G|| = 1.6: the scales make ||g||^theta the smaller term in some cases, and
# in those the number of inner iterations differs from that of theta = 1.
@pytest.mark.parametrize("scale, theta, kappa", [(0.3, 1.0, 0.1), (0.3, 2.0, 0.3),
                                                 (0.03, 0.5, 0.3), (0.01, 2.0, 0.01)])
def test_tcg_stopping_rule_matches_the_reference(scale, theta, kappa):
    E = Euclidean(N)
    hess = lambda u: H_SPD @ u  # noqa: E731
    g = scale * G
    eta, heta, reason, j = truncated_cg(E, np.zeros(N), g, hess, 1e3, theta, kappa)
    ref = ref_tcg(g, hess, 1e3, theta, kappa)
    assert ref[1] == "converged" and 1 < ref[2] <= N
    _check(eta, heta, reason, j, ref, hess, 1e3 * EPS)


def test_tcg_stops_at_the_boundary_after_several_inner_iterations():
    E = Euclidean(N)
    hess = lambda u: H_SPD @ u  # noqa: E731
    newton = np.linalg.solve(H_SPD, G)
    radius = 0.7 * np.linalg.norm(newton)
    eta, heta, reason, j = truncated_cg(E, np.zeros(N), G, hess, radius, kappa=1e-12)
    ref = ref_tcg(G, hess, radius, kappa=1e-12)
    assert ref[1] == "exceeded trust region" and ref[2] >= 3
    _check(eta, heta, reason, j, ref, hess, 1e3 * EPS)
    assert np.linalg.norm(eta) == pytest.approx(radius, rel=16 * EPS)


def test_tcg_follows_negative_curvature_to_the_boundary():
    # H has negative eigenvalues, g has components along them; the first
    # direction -g has positive curvature, a later one has not.
    E = Euclidean(N)
    h = _Q @ np.diag([-0.5, -0.1, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) @ _Q.T
    g = _Q @ np.array([0.05, 0.02, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    hess = lambda u: h @ u  # noqa: E731
    assert g @ h @ g > 0
    radius = 50.0
    eta, heta, reason, j = truncated_cg(E, np.zeros(N), g, hess, radius, kappa=1e-12)
    ref = ref_tcg(g, hess, radius, kappa=1e-12)
    assert ref[1] == "negative curvature" and ref[2] >= 2
    _check(eta, heta, reason, j, ref, hess, 1e4 * EPS)
    assert np.linalg.norm(eta) == pytest.approx(radius, rel=64 * EPS)
    # the model decreases
    assert g @ eta + 0.5 * eta @ h @ eta < 0


def test_tcg_maxinner():
    E = Euclidean(N)
    hess = lambda u: H_SPD @ u  # noqa: E731
    eta, heta, reason, j = truncated_cg(E, np.zeros(N), G, hess, 1e3, kappa=1e-12, maxinner=3)
    _check(eta, heta, reason, j, ref_tcg(G, hess, 1e3, kappa=1e-12, maxinner=3), hess, 1e3 * EPS)
    assert (reason, j) == ("maxinner", 3)


def test_tcg_on_the_sphere_with_the_riemannian_hessian():
    # f = x'Ax on S^{n-1}: Hess f(x)[u] = P_x(2Au) - 2<x, Ax> u (Absil, Mahony, Trumpf 2013).
    S = Sphere(N)
    a = (lambda B: (B + B.T) / 2)(_rng.standard_normal((N, N)))
    x = S.random_point(3)
    proj = lambda v: v - (x @ v) * x  # noqa: E731
    grad = proj(2 * a @ x)
    hess = lambda u: proj(2 * a @ u) - 2 * (x @ a @ x) * u  # noqa: E731
    for radius in (0.05, 0.5, 5.0):
        got = truncated_cg(S, x, grad, hess, radius, kappa=1e-12)
        ref = ref_tcg(grad, hess, radius, kappa=1e-12, proj=proj)
        _check(*got, ref, hess, 1e4 * EPS)
        assert abs(x @ got[0]) < 16 * EPS * np.linalg.norm(got[0])


# --- the outer loop: rho, acceptance, radius ---------------------------------------------------


def _sphere_problem():
    a = (lambda B: (B + B.T) / 2)(np.random.default_rng(9).standard_normal((N, N)))

    def f(x):
        return x @ a @ x

    def rgrad(x):
        g = 2 * a @ x
        return g - (x @ g) * x

    def rhess(x):
        return lambda u: (lambda v: v - (x @ v) * x)(2 * a @ u) - 2 * (x @ a @ x) * u

    def exp(x, u):
        t = np.linalg.norm(u)
        return np.cos(t) * x + np.sin(t) / t * u

    return f, rgrad, rhess, exp


def ref_trust_regions(f, rgrad, rhess, retr, x0, radius, max_radius, n, rho_prime=0.1,
                      rho_reg=1e3):
    """n outer iterations; per iteration the radius used, rho, accepted, and x after it."""
    x, out = x0, []
    for _ in range(n):
        g, hess = rgrad(x), rhess(x)
        eta, reason, _ = ref_tcg(g, hess, radius, proj=lambda v, x=x: v - (x @ v) * x)
        x_prop = retr(x, eta)
        fx, fp = f(x), f(x_prop)
        model = -(g @ eta) - 0.5 * (eta @ hess(eta))
        reg = max(1.0, abs(fx)) * EPS * rho_reg
        rho = (fx - fp + reg) / (model + reg)
        used = radius
        if model + reg < 0 or rho < 0.25:
            radius = radius / 4
        elif rho > 0.75 and reason in ("negative curvature", "exceeded trust region"):
            radius = min(2 * radius, max_radius)
        accepted = model + reg >= 0 and rho > rho_prime
        if accepted:
            x = x_prop
        out.append(dict(radius=used, rho=rho, accepted=accepted, x=x, reason=reason))
    return out


@pytest.mark.parametrize("radius, max_radius, event", [(1.5, 2.0, "reject"), (0.3, 1.1, "cap")])
def test_outer_loop_radius_and_acceptance_match_the_reference(monkeypatch, radius, max_radius,
                                                               event):
    f, rgrad, rhess, exp = _sphere_problem()
    x0 = np.ones(N) / np.sqrt(N)
    n = 10
    ref = ref_trust_regions(f, rgrad, rhess, exp, x0, radius, max_radius, n)
    radii = [r["radius"] for r in ref]
    # each run exercises its branch (both shrink the radius at some point)
    assert min(radii) < radius and any(r["accepted"] for r in ref)
    if event == "reject":
        assert not all(r["accepted"] for r in ref)
    else:  # a doubling capped at max_radius, then a shrink of an accepted step
        assert any(r1 < 2 * r0 and r1 == max_radius for r0, r1 in zip(radii, radii[1:]))
        assert any(r1 < r0 and r["accepted"] for r0, r1, r in zip(radii, radii[1:], ref))

    seen = []

    def spy(geometry, x, grad, hess, radius, *args):
        seen.append(radius)
        return truncated_cg(geometry, x, grad, hess, radius, *args)

    monkeypatch.setattr(TR, "truncated_cg", spy)
    iterates = []
    res = minimize(f, Sphere(N), x0=x0, method="trust-regions", radius=radius,
                   max_radius=max_radius, maxiter=n, gtol=0.0, xtol=0.0,
                   callback=lambda x: iterates.append(x))
    assert res.nit == n
    np.testing.assert_allclose(seen, radii, rtol=1e-15)
    accepted = ~np.isnan(res.history["step_size"][1:])
    np.testing.assert_array_equal(accepted, [r["accepted"] for r in ref])
    for k, (it, r) in enumerate(zip(iterates, ref)):
        np.testing.assert_allclose(it, r["x"], rtol=0, atol=1e4 * EPS, err_msg=f"x_{k}")
    np.testing.assert_allclose(res.history["cost"][1:], [f(r["x"]) for r in ref],
                               rtol=1e4 * EPS)


def test_default_radius_is_an_eighth_of_the_cap(monkeypatch):
    # Manopt: Delta_bar = typical_dist, Delta0 = Delta_bar / 8.
    seen = []

    def spy(geometry, x, grad, hess, radius, *args):
        seen.append(radius)
        return truncated_cg(geometry, x, grad, hess, radius, *args)

    monkeypatch.setattr(TR, "truncated_cg", spy)
    f, _, _, _ = _sphere_problem()
    minimize(f, Sphere(N), x0=np.ones(N) / np.sqrt(N), method="trust-regions", maxiter=1)
    assert seen == [np.pi / 8]
    minimize(f, Sphere(N), x0=np.ones(N) / np.sqrt(N), method="trust-regions", maxiter=1,
             max_radius=2.0)
    assert seen[-1] == 0.25


def test_rho_prime_decides_acceptance(monkeypatch):
    # A step with 0.1 < rho < 0.25 is accepted with rho_prime = 0.1 (and shrinks the
    # radius); with rho_prime = 0.25 it is rejected. Pin rho with a one-step run.
    f, rgrad, rhess, exp = _sphere_problem()
    x0 = np.ones(N) / np.sqrt(N)
    for radius in np.linspace(0.2, 3.0, 57):
        r = ref_trust_regions(f, rgrad, rhess, exp, x0, radius, 10.0, 1)[0]
        if 0.1 < r["rho"] < 0.25:
            break
    else:
        pytest.fail("no radius gives 0.1 < rho < 0.25")
    for rho_prime, expected in ((0.1, True), (0.25, False)):
        res = minimize(f, Sphere(N), x0=x0, method="trust-regions", radius=radius,
                       max_radius=10.0, maxiter=1, gtol=0.0, xtol=0.0, rho_prime=rho_prime)
        assert (not np.isnan(res.history["step_size"][1])) == expected
        if expected:
            np.testing.assert_allclose(res.x, r["x"], rtol=0, atol=1e3 * EPS)
        else:
            np.testing.assert_array_equal(res.x, x0)


@pytest.mark.parametrize("radius", [0.3, 5.0])
def test_tcg_float32_keeps_the_dtype_and_follows_the_float64_reference(radius):
    E = Euclidean(N)
    h32 = H_SPD.astype(np.float32)
    g32 = G.astype(np.float32)
    eta, heta, reason, j = truncated_cg(E, np.zeros(N, np.float32), g32, lambda u: h32 @ u,
                                        radius)
    assert eta.dtype == heta.dtype == np.float32
    # the reference in float64 on the float32 data; one to three inner iterations
    # of float32 rounding: 16 eps32. (Runs to convergence are not compared: at
    # condition number 100, float32 CG itself drifts by ~1e3 eps32 from float64.)
    ref_eta, ref_reason, ref_j = ref_tcg(g32.astype(np.float64), lambda u: h32 @ u, radius)
    assert (reason, j) == (ref_reason, ref_j)
    np.testing.assert_allclose(eta, ref_eta, rtol=0,
                               atol=16 * np.finfo(np.float32).eps * np.linalg.norm(ref_eta))


@pytest.mark.parametrize("curvature", [1.0, -1.0])
def test_tcg_with_a_zero_gradient_returns_the_zero_step(curvature):
    # r0 = 0 meets the stopping test ||r|| <= ||r0|| min(||r0||^theta, kappa) before
    # any inner iteration (Steihaug's first direction -g is zero): eta = H eta = 0.
    for geometry, x in ((Euclidean(3), np.zeros(3)), (Sphere(3), np.array([0.0, 0.0, 1.0]))):
        eta, heta, reason, j = truncated_cg(geometry, x, np.zeros(3),
                                            lambda u: curvature * u, 1.0)
        assert (reason, j) == ("converged", 0)
        np.testing.assert_array_equal(eta, np.zeros(3))
        np.testing.assert_array_equal(heta, np.zeros(3))
