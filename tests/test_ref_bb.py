"""Reference tests of the Riemannian Barzilai-Borwein method (``minimize(method="bb")``).

The reference, :func:`_qn_reference.ref_bb`, is a plain NumPy transcription
of Iannazzo & Porcelli, IMA J. Numer. Anal. 38(1) (2018), Algorithm 1, as in
Manopt's ``barzilaiborwein`` (max-type nonmonotone reference value), with
Zhang & Hager's averaged reference value as the alternative. The end-to-end
checks that L-BFGS shares are in ``test_ref_qn.py``.
"""

import autograd.numpy as anp
import numpy as np
import pytest
from _qn_reference import (X8, euclidean_maps, projection_maps, rayleigh, rayleigh_egrad,
                           ref_bb, sphere_maps, symmetric)

import spherenet.optim.bb as bb_module
from spherenet import Euclidean, Sphere, minimize
from spherenet.optim.lbfgs import HintLineSearch

EPS = np.finfo(np.float64).eps


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


def assert_path(ref, res, iterates, calls, tol):
    """x_k, d_k, the reference value, x_{k+1} and the step agree to ``tol`` (directions
    and steps on the scale of the first ones, or of their own when larger: they go to
    0 with the gradient, and up with lambda_k)."""
    assert res.nit == len(ref) == len(iterates) == len(calls)
    d_scale = np.linalg.norm(ref[0]["d"])
    for k, r in enumerate(ref):
        np.testing.assert_allclose(calls[k]["x"], r["x"], rtol=0, atol=tol, err_msg=f"x_{k}")
        np.testing.assert_allclose(calls[k]["d"], r["d"], rtol=0,
                                   atol=tol * max(d_scale, np.linalg.norm(r["d"])),
                                   err_msg=f"d_{k}")
        assert calls[k]["f_ref"] == pytest.approx(r["f_ref"], rel=0, abs=tol), k
        np.testing.assert_allclose(iterates[k], r["new_x"], rtol=0, atol=tol, err_msg=f"x_{k+1}")
    steps = [r["step"] for r in ref]
    np.testing.assert_allclose(res.history["step_size"][1:], steps, rtol=tol, atol=tol * steps[0])


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




# --- Zhang and Hager's averaged reference value -------------------------------------------


def zhang_hager(costs, eta):
    """C_0..C_{len-1} of Zhang & Hager (2004), from the accepted costs f_0, f_1, ...:
    C_{k+1} is the weighted mean sum_j eta^(k+1-j) f_j / sum_j eta^(k+1-j) (their Q_k
    recursion unrolled: an independent formula)."""
    out = []
    for k in range(len(costs)):
        weights = eta ** np.arange(k, -1, -1.0)
        out.append(float(weights @ costs[: k + 1] / weights.sum()))
    return out


A30 = symmetric(30, 2)
X30 = np.random.default_rng(5).standard_normal(30)
X30 /= np.linalg.norm(X30)


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_average_reference_on_the_sphere_matches_the_reference(recorded, retraction):
    eta = 0.3

    def cost(x):
        return x @ A30 @ x

    def egrad(x):
        return 2.0 * (A30 @ x)

    maps = sphere_maps(retraction)
    ref = ref_bb(cost, egrad, maps, X30, 12, reference="average", eta=eta)
    # On this path the line search backtracks, and where it stops depends on the rule.
    assert [r["t"] for r in ref] != [r["t"] for r in ref_bb(cost, egrad, maps, X30, 12)]
    res, iterates = run(cost, Sphere(30, retraction=retraction), X30, 12,
                        nonmonotone_rule="average", nonmonotone_eta=eta, grad=egrad)
    assert_path(ref, res, iterates, recorded, 1e3 * EPS)
    # C_k is the eta-weighted mean of the costs so far; steps went uphill at times (the
    # rule is nonmonotone) while f_k <= C_k and C_{k+1} <= C_k (Zhang & Hager, Lemma 1.1).
    costs = res.history["cost"]
    expected = zhang_hager(costs, eta)
    scale = 10 * EPS * np.max(np.abs(costs))
    np.testing.assert_allclose([c["f_ref"] for c in recorded], expected[:12], rtol=0, atol=scale)
    assert np.any(np.diff(costs) > 0)
    assert all(costs[k] <= expected[k] + scale for k in range(13))
    assert np.all(np.diff(expected) <= scale)


def test_average_reference_on_a_euclidean_problem_matches_the_reference(recorded):
    # f = sum(cos x) + 0.05 ||x||^2 from near the maximum 0 (negative curvature first).
    def cost(x):
        return anp.sum(anp.cos(x)) + 0.05 * anp.sum(x**2)

    def egrad(x):
        return -np.sin(x) + 0.1 * x

    x0 = np.array([0.1, -0.2, 0.05, 0.3])
    ref = ref_bb(cost, egrad, euclidean_maps(), x0, 12, reference="average", step_max=20.0)
    res, iterates = run(cost, Euclidean(4), x0, 12, nonmonotone_rule="average", step_max=20.0)
    assert_path(ref, res, iterates, recorded, 1e3 * EPS)
    # The reference value differs from the max-type one on this path.
    assert any(r["f_ref"] != m["f_ref"] for r, m in zip(
        ref, ref_bb(cost, egrad, euclidean_maps(), x0, 12, step_max=20.0)))
    np.testing.assert_allclose([c["f_ref"] for c in recorded],
                               zhang_hager(res.history["cost"], 0.85)[:12], rtol=0,
                               atol=10 * EPS * np.max(np.abs(res.history["cost"])))


def test_eta_zero_is_the_monotone_armijo_search(recorded):
    # eta = 0: C_k = f(x_k), the path of the max-type rule with M = 1.
    res, iterates = run(rayleigh, Sphere(8), X8, 20, nonmonotone_rule="average",
                        nonmonotone_eta=0.0)
    assert [c["f_ref"] for c in recorded] == list(res.history["cost"][:-1])
    mono, mono_iterates = run(rayleigh, Sphere(8), X8, 20, nonmonotone_memory=1)
    np.testing.assert_array_equal(iterates, mono_iterates)


# --- the projection strategy ---------------------------------------------------------------


@pytest.mark.parametrize("rule", ["alternate", "bb1"])
def test_projection_strategy_matches_the_reference_with_the_displacement_as_s(recorded, rule):
    # "Step, then normalize": s is x_{k+1} - x_k, not the step handed to the
    # normalization (whose radial part it removes): only then do s and y describe
    # the same move. With the step as s, lambda_1 and so d_1 already differ.
    A = symmetric(20, 1)
    x0 = np.random.default_rng(3).standard_normal(20)
    x0 /= np.linalg.norm(x0)
    ref = ref_bb(lambda x: x @ A @ x, lambda x: 2.0 * (A @ x), projection_maps(), x0, 12,
                 rule=rule)
    res, iterates = run(lambda x: x @ A @ x, Sphere(20), x0, 12, bb_rule=rule,
                        strategy="projection")
    assert_path(ref, res, iterates, recorded, 1e3 * EPS)
