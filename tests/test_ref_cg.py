"""Reference tests of Riemannian nonlinear conjugate gradients: each beta rule
(Fletcher-Reeves, Polak-Ribiere+, Hestenes-Stiefel, Hager-Zhang) and Powell's
restart, as single quantities and as the first iterates of short runs, against
a plain NumPy transcription of pymanopt's ``ConjugateGradient`` / Manopt's
``conjugategradient`` (with Manopt's ``linesearch_adaptive`` reproduced too).

References: Hager & Zhang, "A survey of nonlinear conjugate gradient methods"
(2006); Hager & Zhang, SIAM J. Optim. 16 (2005), eq. (1.4) with the lower bound
eta_k = -1 / (||d_k|| min(eta, ||g_k||)), eta = 0.01; Powell, Math. Prog. 12
(1977) for the restart test |<g_{k+1}, g_k>| >= 0.1 ||g_{k+1}||^2.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Sphere, minimize
from spherenet.optim import AdaptiveLineSearch
from spherenet.optim.cg import _beta

EPS = np.finfo(np.float64).eps
RULES = ("FR", "PR+", "HS", "HZ")

# --- the reference -----------------------------------------------------------------------


def ref_beta(rule, g_new, g_old_t, d_t, g_old_sq):
    """beta from the new gradient, the transported old gradient and direction (plain NumPy)."""
    y = g_new - g_old_t
    if rule == "FR":
        return (g_new @ g_new) / g_old_sq
    if rule == "PR+":
        return max(0.0, (g_new @ y) / g_old_sq)
    dy = d_t @ y
    if dy == 0.0:
        return 0.0
    if rule == "HS":
        return max(0.0, (g_new @ y) / dy)
    beta = (y - 2.0 * (y @ y) / dy * d_t) @ g_new / dy
    eta = -1.0 / (np.sqrt(d_t @ d_t) * min(0.01, np.sqrt(g_old_sq)))
    return max(beta, eta)


def ref_backtrack(phi, f0, df0, alpha, contraction=0.5, c=0.5, max_trials=10):
    alphas, values = [alpha], [phi(alpha)]
    while values[-1] > f0 + c * alphas[-1] * df0 and len(alphas) <= max_trials:
        alphas.append(alphas[-1] * contraction)
        values.append(phi(alphas[-1]))
    return alphas, values


def ref_cg(f, rgrad, retr, transp, x0, rule, restart, n):
    """n iterations of Riemannian CG with Manopt's adaptive line search.

    Returns one dict per iteration: x, d (the search direction), slope,
    alpha, trials, new_x, beta (None after a restart) and restarted.
    """
    x, g = x0, rgrad(x0)
    d, memory, out = -g, None, []
    for _ in range(n):
        slope = g @ d
        if not slope < 0:
            d = -g
            slope = g @ d
        norm_d = np.sqrt(d @ d)
        alpha0 = 1.0 / norm_d if memory is None else memory
        alphas, values = ref_backtrack(lambda a: f(retr(x, a * d)), f(x), slope, alpha0)
        alpha = alphas[-1]
        memory = alpha if len(alphas) == 2 else 2.0 * alpha
        new_x = retr(x, alpha * d)
        g_new = rgrad(new_x)
        g_old_t = transp(x, new_x, g)
        restarted = restart is not None and abs(g_old_t @ g_new) >= restart * (g_new @ g_new)
        if restarted:
            beta, d_new = None, -g_new
        else:
            d_t = transp(x, new_x, d)
            beta = ref_beta(rule, g_new, g_old_t, d_t, g @ g)
            d_new = -g_new + beta * d_t
        out.append(dict(x=x, d=d, slope=slope, alpha=alpha, trials=len(alphas), new_x=new_x,
                        beta=beta, restarted=restarted))
        x, g, d = new_x, g_new, d_new
    return out


# --- the problems, written out -------------------------------------------------------------

N = 6
_rng = np.random.default_rng(11)
_Q = np.linalg.qr(_rng.standard_normal((N, N)))[0]
A_SPD = _Q @ np.diag([0.5, 1.0, 2.0, 4.0, 9.0, 20.0]) @ _Q.T
B_VEC = _rng.standard_normal(N)
A_SYM = (lambda C: (C + C.T) / 2)(_rng.standard_normal((N, N)))


def quartic(x):
    return 0.5 * x @ A_SPD @ x - B_VEC @ x + 0.25 * anp.sum(x**4)


def quartic_grad(x):
    return A_SPD @ x - B_VEC + x**3


def rayleigh(x):
    return x @ A_SYM @ x


def sphere_rgrad(x):
    g = 2.0 * A_SYM @ x
    return g - (x @ g) * x


def sphere_exp(x, u):
    t = np.sqrt(u @ u)
    return x if t == 0 else np.cos(t) * x + np.sin(t) / t * u


def proj_transport(x, y, v):
    return v - (y @ v) * y


def parallel_transport(x, y, v):
    return v - (y @ v) / (1.0 + x @ y) * (x + y)


CASES = {
    "euclidean": (Euclidean(N), quartic, quartic_grad, lambda x, u: x + u, lambda x, y, v: v,
                  np.zeros(N)),
    "sphere-projection": (Sphere(N), rayleigh, sphere_rgrad, sphere_exp, proj_transport,
                          np.ones(N) / np.sqrt(N)),
    "sphere-parallel": (Sphere(N, transport="parallel"), rayleigh, sphere_rgrad, sphere_exp,
                        parallel_transport, np.ones(N) / np.sqrt(N)),
}


class SpySearch(AdaptiveLineSearch):
    """The default line search, recording what it is handed and what it returns."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def search(self, problem, x, d, f0, df0):
        out = super().search(problem, x, d, f0, df0)
        self.calls.append(dict(x=np.array(x), d=np.array(d), f0=f0, slope=df0, step=out[0]))
        return out


def _run(case, rule, restart, n):
    M, f, _, _, _, x0 = CASES[case]
    spy, iterates = SpySearch(), []
    res = minimize(f, M, x0=x0, method="cg", beta_rule=rule, restart=restart, maxiter=n,
                   gtol=0.0, xtol=0.0, line_search=spy, callback=lambda x: iterates.append(x))
    return res, spy, iterates


# --- whole runs against the reference loop ----------------------------------------------------

N_ITER = 6


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("rule", RULES)
def test_first_iterates_match_the_reference(case, rule):
    _, f, rgrad, retr, transp, x0 = CASES[case]
    ref = ref_cg(f, rgrad, retr, transp, x0, rule, None, N_ITER)
    res, spy, iterates = _run(case, rule, None, N_ITER)
    assert res.nit == N_ITER and len(spy.calls) == N_ITER
    # Rounding grows along the run (the line search amplifies it a little): 1e3 eps.
    tol = 1e3 * EPS
    for k, (r, c) in enumerate(zip(ref, spy.calls)):
        scale = np.sqrt(r["d"] @ r["d"])
        np.testing.assert_allclose(c["x"], r["x"], rtol=0, atol=tol, err_msg=f"x_{k}")
        np.testing.assert_allclose(c["d"], r["d"], rtol=0, atol=tol * scale, err_msg=f"d_{k}")
        assert c["slope"] == pytest.approx(r["slope"], rel=tol, abs=tol * scale**2)
        assert c["step"] == pytest.approx(r["alpha"] * scale, rel=tol)
        np.testing.assert_allclose(iterates[k], r["new_x"], rtol=0, atol=tol)
    np.testing.assert_allclose(res.history["step_size"][1:],
                               [r["alpha"] * np.sqrt(r["d"] @ r["d"]) for r in ref], rtol=tol)
    # a CG run, not steepest descent: some beta is far from 0
    assert max(abs(r["beta"]) for r in ref) > 0.05
    # every cost evaluation counted: x0 (with its gradient), each trial, each new gradient
    assert res.nfev == 1 + sum(r["trials"] for r in ref) + N_ITER


def test_the_rules_give_different_runs():
    # The reference runs themselves differ, so the runs above tell the rules apart.
    _, f, rgrad, retr, transp, x0 = CASES["euclidean"]
    finals = [ref_cg(f, rgrad, retr, transp, x0, rule, None, N_ITER)[-1]["new_x"] for rule in RULES]
    for i in range(len(RULES)):
        for j in range(i):
            assert np.linalg.norm(finals[i] - finals[j]) > 1e-6


# (with the projection transport <g+, T g> = <g+, g>; the parallel one tells them apart)
@pytest.mark.parametrize("case, restart", [("euclidean", 0.1), ("euclidean", 0.5),
                                           ("sphere-projection", 0.8), ("sphere-parallel", 0.8)])
def test_powell_restart_matches_the_reference(case, restart):
    _, f, rgrad, retr, transp, x0 = CASES[case]
    ref = ref_cg(f, rgrad, retr, transp, x0, "HS", restart, N_ITER)
    flags = [r["restarted"] for r in ref]
    assert any(flags) and not all(flags[:-1])  # both branches are exercised
    res, spy, _ = _run(case, "HS", restart, N_ITER)
    for k, (r, c) in enumerate(zip(ref, spy.calls)):
        np.testing.assert_allclose(c["x"], r["x"], rtol=0, atol=1e3 * EPS, err_msg=f"x_{k}")
        np.testing.assert_allclose(c["d"], r["d"], rtol=0,
                                   atol=1e3 * EPS * np.sqrt(r["d"] @ r["d"]), err_msg=f"d_{k}")
    # after a restart the next direction is exactly -grad
    for r, c in zip(ref[:-1], spy.calls[1:]):
        if r["restarted"]:
            np.testing.assert_allclose(c["d"], -rgrad(c["x"]), rtol=0, atol=1e3 * EPS)


class OvershootSearch:
    """Steps 2.5 times past the exact minimizer along d of a quadratic 0.5 x'Hx."""

    def __init__(self, hess):
        self.hess = hess
        self.calls = []

    def search(self, problem, x, d, f0, df0):
        self.calls.append(dict(x=np.array(x), d=np.array(d), slope=df0))
        alpha = -2.5 * df0 / (d @ self.hess @ d)
        new_x = x + alpha * d
        return alpha * np.sqrt(d @ d), new_x, problem.cost(new_x)


def test_a_non_descent_direction_is_reset_to_minus_the_gradient():
    # With the step 2.5x past the minimizer, <g1, d0> = 1.5 ||g0||^2 and the FR
    # direction -g1 + (||g1||^2/||g0||^2) d0 has slope +0.5 ||g1||^2: an ascent
    # direction, which the solver must replace by -g1.
    hess = np.diag([1.0, 10.0])
    x0 = np.array([1.0, 0.3])
    spy = OvershootSearch(hess)
    minimize(lambda x: 0.5 * x @ hess @ x, Euclidean(2), x0=x0, method="cg", beta_rule="FR",
             maxiter=2, gtol=0.0, xtol=0.0, line_search=spy)
    g0 = hess @ x0
    d0 = -g0
    x1 = x0 - 2.5 * (g0 @ g0) / (g0 @ hess @ g0) * g0
    g1 = hess @ x1
    fr_direction = -g1 + (g1 @ g1) / (g0 @ g0) * d0
    assert g1 @ fr_direction == pytest.approx(0.5 * (g1 @ g1), rel=1e-12)  # ascent
    np.testing.assert_allclose(spy.calls[0]["d"], d0, rtol=4 * EPS)
    np.testing.assert_allclose(spy.calls[1]["x"], x1, rtol=16 * EPS)
    np.testing.assert_allclose(spy.calls[1]["d"], -g1, rtol=16 * EPS)
    assert spy.calls[1]["slope"] == pytest.approx(-(g1 @ g1), rel=16 * EPS)


# --- single quantities -----------------------------------------------------------------------


def _random_tangents(M, x, rng, k):
    return [M.proj(x, rng.standard_normal(x.shape)) for _ in range(k)]


@pytest.mark.parametrize("rule", RULES)
@pytest.mark.parametrize("seed", range(4))
def test_beta_of_random_vectors_on_the_sphere(rule, seed):
    rng = np.random.default_rng(seed)
    M = Sphere(7)
    x = M.random_point(rng)
    g_new, g_old, d = _random_tangents(M, x, rng, 3)
    d = d * rng.uniform(0.1, 10)
    g_old_sq = float(rng.uniform(0.1, 3.0))  # the old gradient's norm^2 (at the old point)
    got = _beta(rule, M, x, g_old_sq, g_new, g_new @ g_new, g_old, d)
    want = ref_beta(rule, g_new, g_old, d, g_old_sq)
    assert got == pytest.approx(want, rel=16 * EPS, abs=16 * EPS * abs(want) + 1e-300)


def test_beta_clipping_and_hz_lower_bound():
    E = Euclidean(3)
    x = np.zeros(3)
    g_new = np.array([1.0, 0.0, 0.0])
    g_old = np.array([3.0, 0.0, 0.0])  # y = g_new - g_old = (-2, 0, 0): <g_new, y> < 0
    d = np.array([-1.0, 0.5, 0.0])
    for rule in ("PR+", "HS"):
        assert ref_beta(rule, g_new, g_old, d, 9.0) == 0.0
        assert _beta(rule, E, x, 9.0, g_new, 1.0, g_old, d) == 0.0
    # HZ's own value is below eta_k = -1/(||d|| min(0.01, ||g_old||)) here: the bound is returned
    # (with g = e1, y = (y0, 0, 0), d = (d0, 0, d2) HZ's value is -1/d0)
    g_old_small = np.array([1.0 + 1e-3, 0.0, 0.0])
    d = np.array([1e-4, 0.0, 1.0])
    assert ref_beta("HZ", g_new, g_old_small, d, 1e-10) == pytest.approx(-1e4, rel=1e-9)
    # ||g_old|| = 1e-3 < 0.01: eta_k = -1/(||d|| 1e-3), above -1/d0
    want = ref_beta("HZ", g_new, g_old_small, d, 1e-6)
    assert want == pytest.approx(-1.0 / (np.linalg.norm(d) * 1e-3), rel=1e-15)
    got = _beta("HZ", E, x, 1e-6, g_new, 1.0, g_old_small, d)
    assert got == pytest.approx(want, rel=4 * EPS)
    # a zero denominator <d, y> gives beta = 0 for HS and HZ
    d_orth = np.array([0.0, 1.0, 0.0])
    for rule in ("HS", "HZ"):
        assert _beta(rule, E, x, 9.0, g_new, 1.0, g_old, d_orth) == 0.0


def test_float32_run_stays_float32_and_near_the_float64_reference():
    M, f, rgrad, retr, transp, x0 = CASES["sphere-projection"]
    ref = ref_cg(f, rgrad, retr, transp, x0, "HS", None, 3)
    iterates = []
    res = minimize(f, M, x0=x0.astype(np.float32), method="cg", maxiter=3, gtol=0.0, xtol=0.0,
                   callback=lambda x: iterates.append(x))
    assert res.x.dtype == np.float32
    # float32 rounding (6e-8) amplified by three line searches: 1e4 eps32
    for it, r in zip(iterates, ref):
        np.testing.assert_allclose(it, r["new_x"], rtol=0, atol=1e4 * np.finfo(np.float32).eps)


# --- the exits of a run: no decrease, a non-finite gradient ----------------------------------


def test_cg_without_decrease_stops_at_the_start_and_says_so():
    """A gradient of the wrong sign: -grad is an ascent direction, no trial decreases f."""
    D = np.diag([5.0, 4.0, 3.0, 2.0, 1.0])
    S = Sphere(5)
    x0 = S.random_point(rng=4)
    res = minimize(lambda x: x @ D @ x, S, x0=x0, method="cg", grad=lambda x: -2 * D @ x,
                   maxiter=50)
    assert res.status == 4 and not res.success and "no decrease" in res.message
    assert res.nit == 1 and res.history["cost"].shape == (2,)
    np.testing.assert_array_equal(res.x, x0)
    assert res.fun == x0 @ D @ x0
    g = 2 * D @ x0
    assert res.grad_norm == pytest.approx(np.linalg.norm(g - (x0 @ g) * x0), rel=1e-14)


def test_cg_with_a_gradient_turning_nan_returns_the_last_finite_iterate():
    """The cost stays finite, the gradient is NaN past x[0] = 0.95: the run ends at the
    last point whose cost and gradient are known, with its values."""
    D = np.diag([5.0, 4.0, 3.0, 2.0, 1.0])
    S = Sphere(5)
    seen = []

    def grad(x):
        g = -2 * D @ x
        if x[0] > 0.95:
            return np.full(5, np.nan)
        seen.append((x.copy(), float(np.linalg.norm(g - (x @ g) * x))))
        return g

    x0 = np.array([0.6, 0.8, 0.0, 0.0, 0.0])
    res = minimize(lambda x: -x @ D @ x, S, x0=x0, method="cg", grad=grad, maxiter=200)
    assert res.status == -1 and not res.success and "NaN" in res.message
    last_x, last_norm = seen[-1]
    np.testing.assert_array_equal(res.x, last_x)
    assert res.fun == -last_x @ D @ last_x
    assert res.grad_norm == pytest.approx(last_norm, rel=1e-14)
    assert res.history["cost"].shape == (res.nit + 1,)
    assert f"iteration {res.nit}" in res.message
