"""End-to-end checks shared by L-BFGS and Barzilai-Borwein (``method="lbfgs" | "bb"``).

Known answers (extreme eigenvectors, the closest matrix with unit columns, a
product with a Euclidean block) under every strategy, dtype handling and the
refusal of bad options; the step-by-step reference tests of each method are
in ``test_ref_lbfgs.py`` and ``test_ref_bb.py``.
"""

import functools

import autograd.numpy as anp
import numpy as np
import pytest
from _qn_reference import A8, X8, rayleigh, symmetric

from spherenet import Euclidean, Oblique, Product, Sphere, minimize

METHODS = ["lbfgs", "bb"]


def path(method, cost, manifold, x0, iterations, **options):
    """The result and the iterates x_1..x_n of ``iterations`` steps (no stopping test)."""
    iterates = []
    res = minimize(cost, manifold, x0=x0, method=method, maxiter=iterations, gtol=0.0,
                   xtol=0.0, callback=lambda x: iterates.append(np.array(x)), **options)
    return res, iterates


# --- known answers ---------------------------------------------------------------------

A200 = symmetric(200, 7)
X200 = np.random.default_rng(2).standard_normal(200)
X200 /= np.linalg.norm(X200)


def rayleigh200(x):
    return x @ A200 @ x


def rayleigh200_egrad(x):
    return 2.0 * (A200 @ x)


@functools.lru_cache(maxsize=None)
def steepest_descent_iterations():
    res = minimize(rayleigh200, Sphere(200), x0=X200, method="sd", grad=rayleigh200_egrad,
                   gtol=1e-6, maxiter=5000)
    assert res.success
    return res.nit


# Measured: lbfgs 53 iterations, bb 66, sd 172 (gap w[1] - w[0] = 0.99 of spread 38.5).
@pytest.mark.parametrize("method, most, faster", [("lbfgs", 80, 3), ("bb", 100, 2)])
def test_rayleigh_quotient_converges_to_the_extreme_eigenvector_much_faster_than_sd(
        method, most, faster):
    w, V = np.linalg.eigh(A200)
    res = minimize(rayleigh200, Sphere(200), x0=X200, method=method, grad=rayleigh200_egrad,
                   gtol=1e-6, maxiter=5000)
    assert res.success
    assert res.fun == pytest.approx(w[0], abs=1e-11 * abs(w[0]) + 1e-12)
    assert abs(res.x @ V[:, 0]) == pytest.approx(1.0, abs=1e-9)
    assert res.nit <= most
    assert faster * res.nit <= steepest_descent_iterations()


A50 = symmetric(50, 0)


# Measured (iterations): lbfgs 33 / 286 / 39, bb 48 / 161 / 51 under riemannian / projection /
# reparam. Before the pairs took the displacement as s under projection: 1184, and bb
# stalled at the precision floor after 2870.
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
def test_rayleigh_quotient_under_each_strategy_that_keeps_the_constraint(method, strategy):
    w, V = np.linalg.eigh(A50)
    res = minimize(lambda x: x @ A50 @ x, Sphere(50), method=method, strategy=strategy, rng=1,
                   maxiter=1000)
    assert res.success and res.status == 0
    # gtol 1e-6 and the gap w[1] - w[0]: the eigenvector to ~1e-6 / gap, the value to its square.
    gap = w[1] - w[0]
    assert res.fun == pytest.approx(w[0], abs=1e-12 / gap + 1e-13 * abs(w[0]))
    assert abs(res.x @ V[:, 0]) == pytest.approx(1.0, abs=1e-11 / gap**2)


C57 = np.random.default_rng(0).standard_normal((5, 7))


def closest(X):
    return anp.sum((X - C57) ** 2)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
def test_unit_columns_closest_to_a_matrix_under_each_strategy(method, strategy):
    res = minimize(closest, Oblique(5, 7), method=method, strategy=strategy, rng=1, maxiter=500)
    assert res.success and res.status == 0
    # gtol 1e-6 on a cost of curvature ~2 ||C_j||: the point to ~1e-6.
    np.testing.assert_allclose(res.x, C57 / np.linalg.norm(C57, axis=0), atol=2e-6)


@pytest.mark.parametrize("method", METHODS)
def test_projection_strategy_solves_the_closest_unit_columns_in_two_steps(method):
    # ||X - C||^2 has ambient Hessian 2I, so y = 2 s exactly for s = x_1 - x_0: the first
    # pair gives H = I/2 (both BB steps are 1/2), the second step goes from x_1 to
    # normalize(x_1 - (x_1 - C)) = normalize(C), the answer. With the step handed to
    # the normalization as s instead, L-BFGS took 16 steps and BB 953.
    res = minimize(closest, Oblique(5, 7), method=method, strategy="projection", rng=1)
    assert res.success and res.nit == 2
    np.testing.assert_allclose(res.x, C57 / np.linalg.norm(C57, axis=0), rtol=0, atol=10 * 2.2e-16)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strategy", ["penalty", "none"])
def test_flat_strategies_run_to_their_own_stationary_point(method, strategy):
    res = minimize(closest, Oblique(5, 7), method=method, strategy=strategy, rng=1, maxiter=500)
    assert res.status == 0  # gtol met in the strategy's own geometry; off the sphere
    if strategy == "none":
        np.testing.assert_allclose(res.x, C57, atol=1e-6)
    else:
        # The penalized stationary point, column by column: w = r u with u = C_j/||C_j||
        # and 2 (r - ||C_j||) + 4 mu (r^2 - 1) r = 0 (mu = 1), the root near 1.
        norms = np.linalg.norm(C57, axis=0)
        radii = [max(np.roots([4.0, 0.0, -2.0, -2.0 * c]).real) for c in norms]
        np.testing.assert_allclose(res.x, C57 / norms * radii, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
def test_product_of_a_sphere_and_a_euclidean_block(method, strategy):
    D = np.diag([1.0, 2.0, 3.0])

    def cost(p):
        return -p[0] @ D @ p[0] + anp.sum((p[1] - 2.0) ** 2)

    res = minimize(cost, Product([Sphere(3), Euclidean(2)]), method=method, strategy=strategy,
                   rng=0)
    assert res.success
    assert abs(res.x[0][2]) == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(res.x[1], [2.0, 2.0], atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_float32_keeps_its_dtype_and_follows_the_float64_path(method):
    x32 = X8.astype(np.float32)
    x64 = x32.astype(np.float64)
    res32, it32 = path(method, rayleigh, Sphere(8), x32, 4)
    res64, it64 = path(method, rayleigh, Sphere(8), x64 / np.linalg.norm(x64), 4)
    assert res32.x.dtype == np.float32 and all(x.dtype == np.float32 for x in it32)
    # Four steps of float32 rounding (eps 1.2e-7), amplified by cond(H): 1e3 eps32.
    for a, b in zip(it32, it64):
        np.testing.assert_allclose(a, b, atol=1e3 * np.finfo(np.float32).eps)
    full = minimize(rayleigh, Sphere(8), x0=x32, method=method, gtol=1e-3)
    assert full.x.dtype == np.float32 and full.success
    assert full.fun == pytest.approx(np.linalg.eigvalsh(A8)[0], rel=1e-5)


# --- input -------------------------------------------------------------------------------


@pytest.mark.parametrize("method, options, error, words", [
    ("lbfgs", {"memory": -1}, ValueError, "memory must be"),
    ("lbfgs", {"memory": 2.5}, TypeError, "memory must be an int"),
    ("lbfgs", {"memory": True}, TypeError, "got bool"),
    ("lbfgs", {"cautious_epsilon": -1e-4}, ValueError, "cautious_epsilon"),
    ("lbfgs", {"cautious_epsilon": float("nan")}, ValueError, "cautious_epsilon"),
    ("lbfgs", {"cautious_alpha": "1"}, TypeError, "cautious_alpha"),
    ("lbfgs", {"memroy": 5}, TypeError, "unknown option"),
    ("bb", {"bb_rule": "BB1"}, ValueError, "bb_rule must be one of"),
    ("bb", {"step0": 0.0}, ValueError, "step0"),
    ("bb", {"step_min": -1.0}, ValueError, "step_min"),
    ("bb", {"step_min": 2.0, "step_max": 1.0}, ValueError, "step_min must be <= step_max"),
    ("bb", {"step_max": float("inf")}, ValueError, "step_max"),
    ("bb", {"nonmonotone_memory": 0}, ValueError, "nonmonotone_memory"),
    ("bb", {"nonmonotone_memory": 2.0}, TypeError, "nonmonotone_memory must be an int"),
    ("bb", {"contraction": 1.0}, ValueError, r"contraction must be in \(0, 1\)"),
    ("bb", {"sufficient_decrease": 1.0}, ValueError, "sufficient_decrease"),
    ("bb", {"max_trials": 0}, ValueError, "max_trials"),
    ("bb", {"nonmonotone_rule": "zhang-hager"}, ValueError,
     r"nonmonotone_rule must be one of \['max', 'average'\], got 'zhang-hager'"),
    ("bb", {"nonmonotone_rule": None}, ValueError, "nonmonotone_rule must be one of"),
    ("bb", {"nonmonotone_eta": 1.5}, ValueError, r"nonmonotone_eta must be in \[0, 1\], got 1.5"),
    ("bb", {"nonmonotone_eta": -0.1}, ValueError, "nonmonotone_eta"),
    ("bb", {"nonmonotone_eta": "0.5"}, TypeError, "nonmonotone_eta must be a real number"),
    ("bb", {"memory": 5}, TypeError, "unknown option"),
])
def test_bad_options_are_refused_before_any_evaluation(method, options, error, words):
    calls = []

    def cost(x):
        calls.append(1)
        return x @ A8 @ x

    with pytest.raises(error, match=words):
        minimize(cost, Sphere(8), x0=X8, method=method, **options)
    assert not calls
