"""Reference tests of Riemannian L-BFGS (``minimize(method="lbfgs")``).

The reference, :func:`_qn_reference.ref_lbfgs`, is a plain NumPy
transcription of Huang, Gallivan & Absil, SIAM J. Optim. 25(3) (2015), as in
Manopt's ``rlbfgs``, with the inverse Hessian approximation built as a dense
matrix by the BFGS update rather than by the two-loop recursion. The
end-to-end checks that Barzilai-Borwein shares are in ``test_ref_qn.py``.
"""

import sys

import autograd.numpy as anp
import numpy as np
import pytest
from _qn_reference import (A8, X8, dense_inverse_hessian, euclidean_maps, projection_maps,
                           rayleigh, rayleigh_egrad, ref_lbfgs, sphere_maps, symmetric)

from spherenet import Euclidean, Sphere, minimize
from spherenet.optim.lbfgs import HintLineSearch, two_loop

# The module (``spherenet.optim.lbfgs`` the attribute is the solver function).
lbfgs_module = sys.modules["spherenet.optim.lbfgs"]
EPS = np.finfo(np.float64).eps


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


# --- the projection strategy and the fallback ----------------------------------------------


def test_projection_strategy_matches_the_reference_with_the_displacement_as_s():
    # "Step, then normalize": s is x_{k+1} - x_k, not the step handed to the
    # normalization (whose radial part it removes): only then do s and y describe
    # the same move. Pairs stored and rejected (ambient curvature 2A is indefinite),
    # and uphill two-loop directions replaced by -H_0 grad, all happen on this path.
    A = symmetric(20, 1)
    x0 = np.random.default_rng(3).standard_normal(20)
    x0 /= np.linalg.norm(x0)
    ref = ref_lbfgs(lambda x: x @ A @ x, lambda x: 2.0 * (A @ x), projection_maps(), x0, 12)
    flags = [r["accepted"] for r in ref]
    assert any(flags) and not all(flags)
    assert any(r["fallback"] for r in ref)
    res, iterates, calls = run(lambda x: x @ A @ x, Sphere(20), x0, 12, strategy="projection")
    assert_path(ref, res, iterates, calls, 1e3 * EPS)


def test_a_direction_that_is_not_a_descent_direction_falls_back_to_the_scaled_gradient(
        monkeypatch):
    # Under the projection strategy the gradient is the ambient one (egrad of x'Ax,
    # Hessian 2A indefinite) and the slope <P_x egrad, d> only sees its tangent part:
    # here the two-loop directions of iterations 4, 7 and 9 go uphill. The line search
    # must only ever see descent directions, and those are replaced by -H_0 egrad.
    A = symmetric(20, 1)
    raw = []

    def recording_two_loop(geometry, x, grad, pairs, scale):
        direction = two_loop(geometry, x, grad, pairs, scale)
        raw.append(dict(d=direction, scale=scale, pairs=len(pairs)))
        return direction

    monkeypatch.setattr(lbfgs_module, "two_loop", recording_two_loop)
    search = Recording()
    minimize(lambda x: x @ A @ x, Sphere(20), method="lbfgs", strategy="projection", rng=1,
             maxiter=12, line_search=search)
    assert len(search.calls) == len(raw) == 12
    uphill = []
    for k, (c, r) in enumerate(zip(search.calls, raw)):
        g = 2.0 * (A @ c["x"])
        assert c["slope"] < 0
        if (g - (c["x"] @ g) * c["x"]) @ r["d"] >= 0:
            uphill.append(k)
            assert r["pairs"] > 0
            np.testing.assert_allclose(c["d"], -r["scale"] * g, rtol=0,
                                       atol=10 * EPS * r["scale"] * np.linalg.norm(g))
        else:
            np.testing.assert_array_equal(c["d"], r["d"])
    assert uphill == [4, 7, 9]


def test_memory_zero_is_steepest_descent_with_the_bb2_scaling():
    # As Manopt: no pair is kept, but H_0 = <s, y>/<y, y> still follows each accepted step.
    ref = ref_lbfgs(rayleigh, rayleigh_egrad, sphere_maps("exp"), X8, 6, memory=0)
    res, iterates, calls = run(rayleigh, Sphere(8), X8, 6, memory=0)
    assert not any(r["pairs"] for r in ref) and len({r["scale"] for r in ref}) == 6
    assert_path(ref, res, iterates, calls, 1e3 * EPS)
