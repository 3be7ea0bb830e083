"""Reference tests of the Riemannian Barzilai-Borwein method (``minimize(method="bb")``).

The reference is a plain NumPy transcription of Iannazzo & Porcelli, IMA J.
Numer. Anal. 38(1) (2018), Algorithm 1, as in Manopt's ``barzilaiborwein``:
d_k = -lambda_k grad f(x_k); backtracking t = 1, 1/2, ... until the max-type
(Grippo-Lampariello-Lucidi) nonmonotone Armijo condition
f(R(t d_k)) <= max(f_{k-M+1}, ..., f_k) + c t <grad f, d_k> holds; then, with
s = -t lambda_k T(grad f(x_k)) and y = grad f(x_{k+1}) - T(grad f(x_k)),
lambda_{k+1} = <s,s>/<s,y> (BB1) or <s,y>/<y,y> (BB2), BB1 after odd
iterations and BB2 after even ones for "alternate", clipped to
[lambda_min, lambda_max], lambda_max when <s,y> <= 0. The sphere's maps are
written out.
"""

import autograd.numpy as anp
import numpy as np
import pytest

import spherenet.optim.bb as bb_module
from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.optim.lbfgs import HintLineSearch

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

    return proj, retr, (lambda x, y, v: proj(y, v))


def euclidean_maps():
    return (lambda x, u: u), (lambda x, u: x + u), (lambda x, y, v: v)


def ref_bb(f, egrad, maps, x0, iterations, rule="alternate", memory=10, step_min=1e-3,
           step_max=1e3, c=1e-4):
    """``iterations`` steps of the RBB method; one dict per step."""
    proj, retr, transp = maps
    x = x0
    g = proj(x, egrad(x))
    lam, costs, out = 1.0 / np.linalg.norm(g), [f(x)], []
    for k in range(1, iterations + 1):
        d = -lam * g
        f_ref = max(costs[-memory:])
        t, trials = 1.0, 1
        while not f(retr(x, t * d)) <= f_ref + c * t * (g @ d) and trials <= 25:
            t, trials = t / 2, trials + 1
        new_x = retr(x, t * d)
        assert f(new_x) <= f_ref
        new_g = proj(new_x, egrad(new_x))
        moved = transp(x, new_x, g)
        s, y = -t * lam * moved, new_g - moved
        if not s @ y > 0:
            new_lam = step_max
        elif rule == "bb1" or (rule == "alternate" and k % 2 == 1):
            new_lam = min(step_max, max(step_min, (s @ s) / (s @ y)))
        else:
            new_lam = min(step_max, max(step_min, (s @ y) / (y @ y)))
        out.append(dict(x=x, d=d, lam=lam, t=t, f_ref=f_ref, step=t * np.linalg.norm(d),
                        new_x=new_x, s=s, y=y))
        costs.append(f(new_x))
        x, g, lam = new_x, new_g, new_lam
    return out


class Recording(HintLineSearch):
    calls = []

    def search(self, problem, x, d, f0, df0, f_ref=None):
        Recording.calls.append(dict(x=np.array(x), d=np.array(d), f_ref=f_ref))
        return super().search(problem, x, d, f0, df0, f_ref)


@pytest.fixture
def recorded(monkeypatch):
    """The line search of the BB solver, recording what it is given."""
    Recording.calls = []
    monkeypatch.setattr(bb_module, "HintLineSearch", Recording)
    return Recording.calls


def run(cost, manifold, x0, iterations, **options):
    iterates = []
    res = minimize(cost, manifold, x0=x0, method="bb", maxiter=iterations, gtol=0.0, xtol=0.0,
                   callback=lambda x: iterates.append(np.array(x)), **options)
    return res, iterates


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
    """x_k, d_k, the reference value, x_{k+1} and the step agree to ``tol`` (directions
    and steps on the scale of the first ones: they go to 0 with the gradient)."""
    assert res.nit == len(ref) == len(iterates) == len(calls)
    d_scale = np.linalg.norm(ref[0]["d"])
    for k, r in enumerate(ref):
        np.testing.assert_allclose(calls[k]["x"], r["x"], rtol=0, atol=tol, err_msg=f"x_{k}")
        np.testing.assert_allclose(calls[k]["d"], r["d"], rtol=0, atol=tol * d_scale,
                                   err_msg=f"d_{k}")
        assert calls[k]["f_ref"] == pytest.approx(r["f_ref"], rel=0, abs=tol), k
        np.testing.assert_allclose(iterates[k], r["new_x"], rtol=0, atol=tol, err_msg=f"x_{k+1}")
    steps = [r["step"] for r in ref]
    np.testing.assert_allclose(res.history["step_size"][1:], steps, rtol=0, atol=tol * steps[0])


# --- whole iterations against the reference -----------------------------------------------


@pytest.mark.parametrize("rule", ["alternate", "bb1", "bb2"])
@pytest.mark.parametrize("retraction, memory", [("exp", 10), ("projection", 3)])
def test_first_iterates_on_the_sphere_match_the_reference(recorded, rule, retraction, memory):
    ref = ref_bb(rayleigh, rayleigh_egrad, sphere_maps(retraction), X8, 15, rule=rule,
                 memory=memory)
    res, iterates = run(rayleigh, Sphere(8, retraction=retraction), X8, 15, bb_rule=rule,
                        nonmonotone_memory=memory, grad=rayleigh_egrad)
    # Rounding grows along the path: 1e3 eps on the unit-norm iterates.
    assert_path(ref, res, iterates, recorded, 1e3 * EPS)


def test_nonmonotone_steps_are_taken_and_the_reference_value_bounds_them(recorded):
    # alternate BB on the Rayleigh quotient goes uphill at times: the max-type rule
    # accepts it; every accepted cost is below max(last M costs) + c t <g, d>.
    res, _ = run(rayleigh, Sphere(8), X8, 30, nonmonotone_memory=10)
    costs = res.history["cost"]
    assert np.any(np.diff(costs) > 0)
    for k in range(30):
        g = Sphere(8).egrad2rgrad(recorded[k]["x"], rayleigh_egrad(recorded[k]["x"]))
        t = res.history["step_size"][k + 1] / np.linalg.norm(recorded[k]["d"])
        assert recorded[k]["f_ref"] == max(costs[max(0, k - 9): k + 1])
        assert costs[k + 1] <= recorded[k]["f_ref"] + 1e-4 * t * (g @ recorded[k]["d"])
    # With M = 1 the search is the monotone Armijo search.
    mono, _ = run(rayleigh, Sphere(8), X8, 30, nonmonotone_memory=1)
    assert np.all(np.diff(mono.history["cost"]) <= 0)


@pytest.mark.parametrize("rule", ["bb1", "bb2"])
def test_bb_steps_on_a_quadratic_are_inverse_rayleigh_quotients_of_its_hessian(recorded, rule):
    # On f = x'Qx/2 - b'x, y = Q s: BB1 = s's / s'Qs and BB2 = s'Qs / s'QQs, closed forms
    # from two successive iterates (no gradient differences).
    rng = np.random.default_rng(4)
    n = 6
    B = rng.standard_normal((n, n))
    Q = B @ B.T + np.eye(n)
    b = rng.standard_normal(n)
    res, iterates = run(lambda x: 0.5 * x @ Q @ x - b @ x, Euclidean(n), np.zeros(n), 12,
                        bb_rule=rule, grad=lambda x: Q @ x - b, step_min=1e-8, step_max=1e8)
    xs = [np.zeros(n)] + iterates
    for k in range(1, 12):
        s = xs[k] - xs[k - 1]
        expected = (s @ s) / (s @ Q @ s) if rule == "bb1" else (s @ Q @ s) / (s @ Q @ Q @ s)
        lam = np.linalg.norm(recorded[k]["d"]) / np.linalg.norm(Q @ xs[k] - b)
        assert lam == pytest.approx(expected, rel=1e-9), k
    ref = ref_bb(lambda x: 0.5 * x @ Q @ x - b @ x, lambda x: Q @ x - b, euclidean_maps(),
                 np.zeros(n), 12, rule=rule, step_min=1e-8, step_max=1e8)
    np.testing.assert_allclose(iterates, [r["new_x"] for r in ref], rtol=0,
                               atol=1e3 * EPS * np.linalg.norm(np.linalg.solve(Q, b)))


def test_steps_are_clipped_to_the_interval(recorded):
    # Unclipped, lambda_1..11 range over 0.094..0.39 here: [0.1, 0.2] cuts both ends.
    ref = ref_bb(rayleigh, rayleigh_egrad, sphere_maps("exp"), X8, 12, step_min=0.1,
                 step_max=0.2)
    res, iterates = run(rayleigh, Sphere(8), X8, 12, step_min=0.1, step_max=0.2)
    lams = [r["lam"] for r in ref[1:]]
    assert min(lams) == 0.1 and max(lams) == 0.2  # both bounds are hit
    assert_path(ref, res, iterates, recorded, 1e3 * EPS)


def test_negative_curvature_takes_the_largest_step(recorded):
    # f = sum(cos x) near its maximum 0: <s, y> < 0, so lambda_1 = step_max.
    def cost(x):
        return anp.sum(anp.cos(x))

    x0 = np.array([0.1, -0.2, 0.05])
    ref = ref_bb(cost, lambda x: -np.sin(x), euclidean_maps(), x0, 4, step_max=2.0)
    assert ref[0]["s"] @ ref[0]["y"] < 0 and ref[1]["lam"] == 2.0
    res, iterates = run(cost, Euclidean(3), x0, 4, step_max=2.0)
    assert_path(ref, res, iterates, recorded, 1e3 * EPS)


# --- known answers ---------------------------------------------------------------------


def test_rayleigh_quotient_converges_to_the_extreme_eigenvalue():
    n = 200
    A = _symmetric(n, 7)
    w, V = np.linalg.eigh(A)
    x0 = Sphere(n).random_point(np.random.default_rng(2))
    res = minimize(lambda x: x @ A @ x, Sphere(n), x0=x0, method="bb",
                   grad=lambda x: 2.0 * (A @ x), maxiter=2000)
    assert res.success
    assert res.fun == pytest.approx(w[0], abs=1e-11 * abs(w[0]) + 1e-12)
    assert abs(res.x @ V[:, 0]) == pytest.approx(1.0, abs=1e-9)
    # Measured: 66 iterations (sd: 246).
    assert res.nit <= 100


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
def test_unit_columns_closest_to_a_matrix_under_each_strategy(strategy):
    C = np.random.default_rng(0).standard_normal((5, 7))

    def cost(X):
        return anp.sum((X - C) ** 2)

    res = minimize(cost, Oblique(5, 7), method="bb", strategy=strategy, rng=1, maxiter=2000)
    assert res.success and res.status == 0
    np.testing.assert_allclose(res.x, C / np.linalg.norm(C, axis=0), atol=2e-6)


@pytest.mark.parametrize("strategy", ["penalty", "none"])
def test_flat_strategies_run_to_their_own_stationary_point(strategy):
    C = np.random.default_rng(0).standard_normal((5, 7))

    def cost(X):
        return anp.sum((X - C) ** 2)

    res = minimize(cost, Oblique(5, 7), method="bb", strategy=strategy, rng=1, maxiter=500)
    assert res.status == 0
    if strategy == "none":
        np.testing.assert_allclose(res.x, C, atol=1e-6)


def test_product_of_a_sphere_and_a_euclidean_block():
    D = np.diag([1.0, 2.0, 3.0])

    def cost(p):
        return -p[0] @ D @ p[0] + anp.sum((p[1] - 2.0) ** 2)

    res = minimize(cost, Product([Sphere(3), Euclidean(2)]), method="bb", rng=0)
    assert res.success
    assert abs(res.x[0][2]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.x[1], [2.0, 2.0], atol=1e-6)


def test_float32_keeps_its_dtype_and_follows_the_float64_path():
    x32 = X8.astype(np.float32)
    x64 = x32.astype(np.float64)
    res32, it32 = run(rayleigh, Sphere(8), x32, 4)
    res64, it64 = run(rayleigh, Sphere(8), x64 / np.linalg.norm(x64), 4)
    assert res32.x.dtype == np.float32 and all(x.dtype == np.float32 for x in it32)
    for a, b in zip(it32, it64):  # four steps of float32 rounding: 1e3 eps32
        np.testing.assert_allclose(a, b, atol=1e3 * np.finfo(np.float32).eps)
    full = minimize(rayleigh, Sphere(8), x0=x32, method="bb", gtol=1e-3)
    assert full.x.dtype == np.float32 and full.success
    assert full.fun == pytest.approx(np.linalg.eigvalsh(A8)[0], rel=1e-5)


# --- input -------------------------------------------------------------------------------


@pytest.mark.parametrize("options, error, words", [
    ({"bb_rule": "BB1"}, ValueError, "bb_rule must be one of"),
    ({"step0": 0.0}, ValueError, "step0"),
    ({"step_min": -1.0}, ValueError, "step_min"),
    ({"step_min": 2.0, "step_max": 1.0}, ValueError, "step_min must be <= step_max"),
    ({"step_max": float("inf")}, ValueError, "step_max"),
    ({"nonmonotone_memory": 0}, ValueError, "nonmonotone_memory"),
    ({"nonmonotone_memory": 2.0}, TypeError, "nonmonotone_memory must be an int"),
    ({"contraction": 1.0}, ValueError, r"contraction must be in \(0, 1\)"),
    ({"sufficient_decrease": 1.0}, ValueError, "sufficient_decrease"),
    ({"max_trials": 0}, ValueError, "max_trials"),
    ({"memory": 5}, TypeError, "unknown option"),
])
def test_bad_options_are_refused_before_any_evaluation(options, error, words):
    calls = []

    def cost(x):
        calls.append(1)
        return x @ A8 @ x

    with pytest.raises(error, match=words):
        minimize(cost, Sphere(8), x0=X8, method="bb", **options)
    assert not calls
