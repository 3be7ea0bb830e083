"""Reference tests of Riemannian L-BFGS (``minimize(method="lbfgs")``).

The reference is a plain NumPy transcription of Huang, Gallivan & Absil,
SIAM J. Optim. 25(3) (2015), as in Manopt's ``rlbfgs``: the inverse Hessian
approximation is built as a *dense matrix* by the BFGS update
H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T from H_0 = <s,y>/<y,y> I
(1/||grad f(x_0)|| before any pair), not by the two-loop recursion; every
stored pair is transported to the new point at every iteration; a pair is
stored only when <s,y>/<s,s> >= epsilon ||grad f(x_k)||^alpha (the cautious
update); the step comes from Armijo backtracking (c = 1e-4, factor 1/2) from
t = 1 along the direction. The sphere's maps are written out: projection
retraction (x + u)/||x + u|| or the exponential map, projection transport.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.optim.lbfgs import HintLineSearch, two_loop

EPS = np.finfo(np.float64).eps


# --- the reference -----------------------------------------------------------------------


def sphere_maps(retraction):
    def proj(x, u):
        return u - (x @ u) * x

    def retr(x, u):
        if retraction == "projection":
            v = x + u
            return v / np.linalg.norm(v)
        t = np.linalg.norm(u)
        return x if t == 0 else np.cos(t) * x + np.sin(t) * u / t

    def transp(x, y, v):
        return proj(y, v)

    return proj, retr, transp


def euclidean_maps():
    return (lambda x, u: u), (lambda x, u: x + u), (lambda x, y, v: v)


def dense_inverse_hessian(pairs, scale, n):
    H = scale * np.eye(n)
    for s, y, rho in pairs:
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


def ref_armijo(phi, f0, slope, c=1e-4, contraction=0.5, max_trials=25):
    t, value, trials = 1.0, phi(1.0), 1
    while not value <= f0 + c * t * slope and trials <= max_trials:
        t *= contraction
        value, trials = phi(t), trials + 1
    return t, value


def ref_lbfgs(f, egrad, maps, x0, iterations, memory=30, epsilon=1e-4, power=1.0):
    """``iterations`` steps of Riemannian L-BFGS; one dict per step."""
    proj, retr, transp = maps
    n = x0.size
    x = x0
    g = proj(x, egrad(x))
    scale, pairs, out = 1.0 / np.linalg.norm(g), [], []
    for _ in range(iterations):
        d = -dense_inverse_hessian(pairs, scale, n) @ g
        if not g @ d < 0 and pairs:
            pairs, d = [], -scale * g
        t, value = ref_armijo(lambda a: f(retr(x, a * d)), f(x), g @ d)
        assert value <= f(x)  # the reference never needs the fallback of a failed search
        new_x = retr(x, t * d)
        new_g = proj(new_x, egrad(new_x))
        s = transp(x, new_x, t * d)
        y = new_g - transp(x, new_x, g)
        # rho = 1/<s, y> stays the one computed when the pair was stored (as Manopt):
        # the projection transport is not an isometry, so <T s, T y> differs.
        pairs = [(transp(x, new_x, si), transp(x, new_x, yi), rho) for si, yi, rho in pairs]
        accepted = s @ y > 0 and (s @ y) / (s @ s) >= epsilon * np.linalg.norm(g) ** power
        if accepted:
            pairs = (pairs + [(s, y, 1.0 / (s @ y))])[-memory:] if memory > 0 else []
            scale = (s @ y) / (y @ y)
        out.append(dict(x=x, d=d, t=t, step=t * np.linalg.norm(d), new_x=new_x,
                        accepted=accepted, pairs=list(pairs), scale=scale))
        x, g = new_x, new_g
    return out


class Recording(HintLineSearch):
    """The default line search, also recording the direction and slope it was given."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def search(self, problem, x, d, f0, df0, f_ref=None):
        self.calls.append(dict(x=np.array(x), d=np.array(d), slope=df0))
        return super().search(problem, x, d, f0, df0, f_ref)


def run(cost, manifold, x0, iterations, **options):
    iterates = []
    search = Recording()
    res = minimize(cost, manifold, x0=x0, method="lbfgs", maxiter=iterations, gtol=0.0,
                   xtol=0.0, callback=lambda x: iterates.append(np.array(x)),
                   line_search=search, **options)
    return res, iterates, search.calls


def _symmetric(n, seed):
    b = np.random.default_rng(seed).standard_normal((n, n))
    return (b + b.T) / 2.0


A8 = _symmetric(8, 0)
X8 = Sphere(8).random_point(np.random.default_rng(1))


def rayleigh(x):
    return x @ A8 @ x


def rayleigh_egrad(x):
    return 2.0 * (A8 @ x)


def assert_path(ref, res, iterates, calls, tol):
    """x_k, the direction d_k, x_{k+1} and the step length agree to ``tol``.

    Directions and step lengths are compared on the scale of the first ones:
    they go to 0 and the gradient they come from carries an absolute
    rounding error.
    """
    assert res.nit == len(ref) == len(iterates)
    d_scale = np.linalg.norm(ref[0]["d"])
    for k, r in enumerate(ref):
        np.testing.assert_allclose(calls[k]["x"], r["x"], rtol=0, atol=tol, err_msg=f"x_{k}")
        np.testing.assert_allclose(calls[k]["d"], r["d"], rtol=0, atol=tol * d_scale,
                                   err_msg=f"d_{k}")
        np.testing.assert_allclose(iterates[k], r["new_x"], rtol=0, atol=tol, err_msg=f"x_{k+1}")
    steps = [r["step"] for r in ref]
    np.testing.assert_allclose(res.history["step_size"][1:], steps, rtol=0, atol=tol * steps[0])


# --- single pieces ------------------------------------------------------------------------


def test_two_loop_recursion_is_minus_the_dense_bfgs_inverse_hessian_times_the_gradient():
    # Pairs with <s, y> > 0 in R^6; the recursion and the dense update agree.
    rng = np.random.default_rng(0)
    n, manifold = 6, Euclidean(6)
    pairs = []
    for _ in range(4):
        s = rng.standard_normal(n)
        y = s + 0.3 * rng.standard_normal(n)
        assert s @ y > 0
        pairs.append((s, y, 1.0 / (s @ y)))
    g, x = rng.standard_normal(n), np.zeros(n)
    H = dense_inverse_hessian(pairs, 0.7, n)
    # A few hundred eps: the two paths round differently, with cond(H) of ~10.
    np.testing.assert_allclose(two_loop(manifold, x, g, pairs, 0.7), -H @ g, rtol=0,
                               atol=200 * EPS * np.linalg.norm(H @ g))
    # H satisfies the secant equation of the newest pair: H y = s.
    np.testing.assert_allclose(H @ pairs[-1][1], pairs[-1][0], atol=1e-12)


# --- whole iterations against the reference -----------------------------------------------


@pytest.mark.parametrize("retraction", ["projection", "exp"])
@pytest.mark.parametrize("memory", [2, 30])
def test_first_iterates_on_the_sphere_match_the_reference(retraction, memory):
    manifold = Sphere(8, retraction=retraction)
    ref = ref_lbfgs(rayleigh, rayleigh_egrad, sphere_maps(retraction), X8, 12, memory=memory)
    res, iterates, calls = run(rayleigh, manifold, X8, 12, memory=memory, grad=rayleigh_egrad)
    # Pairs stored and pairs dropped by the memory limit: both happen in these 12 steps.
    assert all(r["accepted"] for r in ref)
    assert max(len(r["pairs"]) for r in ref) == min(memory, 12)
    # Rounding grows along the path (the iterates converge, cond(H) grows): 1e3 eps.
    assert_path(ref, res, iterates, calls, 1e3 * EPS)


def test_cautious_update_rejects_pairs_of_negative_curvature():
    # f = sum(cos x) + 0.05 ||x||^2 from near its local maximum 0: the first steps
    # see <s, y> < 0 and must not be stored (storing them breaks positive definiteness).
    def cost(x):
        return anp.sum(anp.cos(x)) + 0.05 * anp.sum(x**2)

    def egrad(x):
        return -np.sin(x) + 0.1 * x

    x0 = np.array([0.1, -0.2, 0.05, 0.3])
    ref = ref_lbfgs(cost, egrad, euclidean_maps(), x0, 10)
    flags = [r["accepted"] for r in ref]
    assert not flags[0] and any(flags)  # both kinds of step in the first 10
    res, iterates, calls = run(cost, Euclidean(4), x0, 10)
    assert_path(ref, res, iterates, calls, 1e3 * EPS)


@pytest.mark.parametrize("epsilon", [5.0, 1e12])
def test_the_cautious_threshold_on_the_sphere(epsilon):
    # epsilon = 5 rejects some pairs and keeps others (checked on the reference);
    # 1e12 rejects all: L-BFGS is then steepest descent scaled by 1/||grad f(x_0)||.
    ref = ref_lbfgs(rayleigh, rayleigh_egrad, sphere_maps("exp"), X8, 10, epsilon=epsilon)
    flags = [r["accepted"] for r in ref]
    if epsilon == 5.0:
        assert any(flags) and not all(flags)
    else:
        assert not any(flags)
        g0 = np.linalg.norm(Sphere(8).egrad2rgrad(X8, rayleigh_egrad(X8)))
        for r in ref:
            g = rayleigh_egrad(r["x"]) - 2.0 * rayleigh(r["x"]) * r["x"]
            # g carries an absolute rounding error of a few eps ||2 A||.
            np.testing.assert_allclose(r["d"], -g / g0, rtol=0,
                                       atol=10 * EPS * 2 * np.linalg.norm(A8, 2) / g0)
    res, iterates, calls = run(rayleigh, Sphere(8), X8, 10, cautious_epsilon=epsilon)
    assert_path(ref, res, iterates, calls, 1e3 * EPS)


def test_euclidean_quadratic_matches_the_reference_and_reaches_the_minimizer():
    rng = np.random.default_rng(4)
    n = 6
    B = rng.standard_normal((n, n))
    Q = B @ B.T + n * np.eye(n)
    b = rng.standard_normal(n)

    def cost(x):
        return 0.5 * x @ Q @ x - b @ x

    def egrad(x):
        return Q @ x - b

    x0 = np.zeros(n)
    ref = ref_lbfgs(cost, egrad, euclidean_maps(), x0, 8, memory=n)
    res, iterates, calls = run(cost, Euclidean(n), x0, 8, memory=n, grad=egrad)
    assert_path(ref, res, iterates, calls, 1e3 * EPS)
    # On a quadratic y = Q s exactly: every pair satisfies the secant equation of Q.
    for r in ref:
        for s, y, _ in r["pairs"]:
            np.testing.assert_allclose(y, Q @ s, atol=100 * EPS * np.linalg.norm(y))
    full = minimize(cost, Euclidean(n), x0=x0, method="lbfgs", memory=n, grad=egrad, gtol=1e-8)
    assert full.success
    # gtol 1e-8 and the smallest eigenvalue of Q >= n: the point to 1e-8 / n.
    np.testing.assert_allclose(full.x, np.linalg.solve(Q, b), rtol=0, atol=1e-8 / n)
    # Measured: 14 iterations (Armijo steps, not exact ones: no n-step termination).
    assert full.nit <= 3 * n


# --- known answers ---------------------------------------------------------------------


def test_rayleigh_quotient_converges_to_the_extreme_eigenvector_much_faster_than_sd():
    n = 200
    A = _symmetric(n, 7)
    w, V = np.linalg.eigh(A)
    x0 = Sphere(n).random_point(np.random.default_rng(2))

    def cost(x):
        return x @ A @ x

    def egrad(x):
        return 2.0 * (A @ x)

    lb = minimize(cost, Sphere(n), x0=x0, method="lbfgs", grad=egrad, gtol=1e-6, maxiter=5000)
    sd = minimize(cost, Sphere(n), x0=x0, method="sd", grad=egrad, gtol=1e-6, maxiter=5000)
    assert lb.success and sd.success
    assert lb.fun == pytest.approx(w[0], abs=1e-11 * abs(w[0]) + 1e-12)
    assert abs(lb.x @ V[:, 0]) == pytest.approx(1.0, abs=1e-9)
    # Measured: lbfgs 53 iterations, sd 246 (gap w[1] - w[0] = 0.99 of spread 38.5).
    assert lb.nit <= 80
    assert 3 * lb.nit <= sd.nit


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
def test_unit_columns_closest_to_a_matrix_under_each_strategy(strategy):
    C = np.random.default_rng(0).standard_normal((5, 7))

    def cost(X):
        return anp.sum((X - C) ** 2)

    res = minimize(cost, Oblique(5, 7), method="lbfgs", strategy=strategy, rng=1, maxiter=500)
    assert res.success and res.status == 0
    # gtol 1e-6 on a cost of curvature ~2 ||C_j||: the point to ~1e-6.
    np.testing.assert_allclose(res.x, C / np.linalg.norm(C, axis=0), atol=2e-6)


@pytest.mark.parametrize("strategy", ["penalty", "none"])
def test_flat_strategies_run_to_their_own_stationary_point(strategy):
    C = np.random.default_rng(0).standard_normal((5, 7))

    def cost(X):
        return anp.sum((X - C) ** 2)

    res = minimize(cost, Oblique(5, 7), method="lbfgs", strategy=strategy, rng=1, maxiter=500)
    assert res.status == 0  # gtol met in the strategy's own geometry; off the sphere
    if strategy == "none":
        np.testing.assert_allclose(res.x, C, atol=1e-6)


def test_a_direction_that_is_not_a_descent_direction_falls_back_to_the_scaled_gradient():
    # Under the projection strategy the gradient is the ambient one (egrad of x'Ax,
    # Hessian 2A indefinite) and the slope <P_x egrad, d> only sees its tangent part:
    # here the two-loop direction of iteration 6 goes uphill. The line search must
    # only ever see descent directions, and that one is replaced by -H_0 egrad.
    A = _symmetric(20, 0)
    search = Recording()
    minimize(lambda x: x @ A @ x, Sphere(20), method="lbfgs", strategy="projection", rng=1,
             maxiter=12, line_search=search)
    assert len(search.calls) == 12
    assert all(c["slope"] < 0 for c in search.calls)
    c = search.calls[6]
    g = 2.0 * (A @ c["x"])
    cosine = (c["d"] @ g) / (np.linalg.norm(c["d"]) * np.linalg.norm(g))
    assert cosine == pytest.approx(-1.0, abs=10 * EPS)


def test_product_of_a_sphere_and_a_euclidean_block():
    D = np.diag([1.0, 2.0, 3.0])

    def cost(p):
        return -p[0] @ D @ p[0] + anp.sum((p[1] - 2.0) ** 2)

    res = minimize(cost, Product([Sphere(3), Euclidean(2)]), method="lbfgs", rng=0)
    assert res.success
    assert abs(res.x[0][2]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.x[1], [2.0, 2.0], atol=1e-6)


def test_float32_keeps_its_dtype_and_follows_the_float64_path():
    x32 = X8.astype(np.float32)
    res32, it32, _ = run(rayleigh, Sphere(8), x32, 4)
    x64 = x32.astype(np.float64)
    res64, it64, _ = run(rayleigh, Sphere(8), x64 / np.linalg.norm(x64), 4)
    assert res32.x.dtype == np.float32 and all(x.dtype == np.float32 for x in it32)
    # Four steps of float32 rounding (eps 1.2e-7), amplified by cond(H): 1e3 eps32.
    for a, b in zip(it32, it64):
        np.testing.assert_allclose(a, b, atol=1e3 * np.finfo(np.float32).eps)
    full = minimize(rayleigh, Sphere(8), x0=x32, method="lbfgs", gtol=1e-3)
    assert full.x.dtype == np.float32 and full.success
    assert full.fun == pytest.approx(np.linalg.eigvalsh(A8)[0], rel=1e-5)


def test_memory_zero_is_steepest_descent_with_the_bb2_scaling():
    # As Manopt: no pair is kept, but H_0 = <s, y>/<y, y> still follows each accepted step.
    ref = ref_lbfgs(rayleigh, rayleigh_egrad, sphere_maps("exp"), X8, 6, memory=0)
    res, iterates, calls = run(rayleigh, Sphere(8), X8, 6, memory=0)
    assert not any(r["pairs"] for r in ref) and len({r["scale"] for r in ref}) == 6
    assert_path(ref, res, iterates, calls, 1e3 * EPS)


# --- input -------------------------------------------------------------------------------


@pytest.mark.parametrize("options, error, words", [
    ({"memory": -1}, ValueError, "memory must be"),
    ({"memory": 2.5}, TypeError, "memory must be an int"),
    ({"memory": True}, TypeError, "got bool"),
    ({"cautious_epsilon": -1e-4}, ValueError, "cautious_epsilon"),
    ({"cautious_epsilon": float("nan")}, ValueError, "cautious_epsilon"),
    ({"cautious_alpha": "1"}, TypeError, "cautious_alpha"),
    ({"memroy": 5}, TypeError, "unknown option"),
])
def test_bad_options_are_refused_before_any_evaluation(options, error, words):
    calls = []

    def cost(x):
        calls.append(1)
        return x @ A8 @ x

    with pytest.raises(error, match=words):
        minimize(cost, Sphere(8), x0=X8, method="lbfgs", **options)
    assert not calls
