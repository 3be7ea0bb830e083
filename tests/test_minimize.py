"""spherenet.minimize: the result, the stopping rules, every method under every strategy,
and what happens with bad input."""

import numpy as np
import pytest
from scipy.linalg import eigh

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.minimize import METHODS
from spherenet.optim._loop import HISTORY_FIELDS
from spherenet.problems import rayleigh
from spherenet.strategies import STRATEGIES, Penalty

SOLVERS = ("sd", "cg", "trust-regions")
RULES = ("rsgd", "radam")
RULE_OPTIONS = {"rsgd": {"lr": 0.05}, "radam": {"lr": 0.05}}

N = 10
A = (lambda B: (B + B.T) / 2)(np.random.default_rng(0).standard_normal((N, N)))
EIGVALS, EIGVECS = eigh(A)
TOP = EIGVECS[:, -1]
GAP = EIGVALS[-1] - EIGVALS[-2]
M = Sphere(N)
X0 = M.random_point(1)


def cost(x):
    return -x @ A @ x


def _options(method):
    return dict(RULE_OPTIONS.get(method, {}))


def _angle_to_top(x):
    x = x / np.linalg.norm(x)
    return min(M.dist(x, TOP), M.dist(x, -TOP))


# --- the result ----------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_result_fields_and_history(method):
    res = minimize(cost, M, x0=X0, method=method, maxiter=3000, **_options(method))
    assert res.success and res.status == 0 and "gtol" in res.message
    assert isinstance(res.x, np.ndarray) and res.x.shape == (N,)
    assert res.fun == pytest.approx(cost(res.x), rel=1e-14)
    assert isinstance(res.nit, int) and res.nit > 0
    assert res.nfev >= res.nit + 1 and res.ngev >= res.nit + 1
    assert (res.nhev > 0) == (method == "trust-regions")
    assert 0.0 <= res.grad_norm <= 1e-6
    h = res.history
    assert set(HISTORY_FIELDS) <= set(h)
    for name in HISTORY_FIELDS:
        assert isinstance(h[name], np.ndarray) and h[name].shape == (res.nit + 1,), name
    assert h["cost"][0] == pytest.approx(cost(X0), rel=1e-14)
    assert h["cost"][-1] == res.fun and h["grad_norm"][-1] == res.grad_norm
    assert np.isnan(h["step_size"][0]) and np.isnan(h["angle"][0])
    assert np.all(np.diff(h["time"]) >= 0.0)
    assert np.nanmin(h["angle"]) >= 0.0


def test_angle_history_is_the_geodesic_step_under_the_exponential_map():
    res = minimize(cost, M, x0=X0, method="sd")
    h = res.history
    np.testing.assert_allclose(h["angle"][1:], h["step_size"][1:], rtol=1e-9)


def test_verbose_prints(capsys):
    minimize(cost, M, x0=X0, method="cg", maxiter=3, verbose=2)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 + 4 + 1  # header, iterates 0..3, summary
    assert "maximum number of iterations" in out[-1]


# --- stopping rules --------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_each_stopping_rule_says_so(method):
    opts = _options(method)

    res = minimize(cost, M, x0=X0, method=method, maxiter=3, **opts)
    assert (res.status, res.nit, res.success) == (1, 3, False)
    assert "maximum number of iterations (3)" in res.message

    res = minimize(cost, M, x0=X0, method=method, maxiter=0, **opts)
    assert res.nit == 0 and res.status == 1 and len(res.history["cost"]) == 1

    res = minimize(cost, M, x0=X0, method=method, maxtime=0.0, **opts)
    assert (res.status, res.nit, res.success) == (2, 0, False)
    assert "maximum time" in res.message

    res = minimize(cost, M, x0=X0, method=method, ftol=1e-3, **opts)
    assert res.status == 3 and res.success and "ftol" in res.message
    h = res.history["cost"]
    assert abs(h[-2] - h[-1]) <= 1e-3 * max(abs(h[-2]), abs(h[-1]), 1.0)
    assert res.grad_norm > 1e-6  # it did stop early

    res = minimize(cost, M, x0=X0, method=method, xtol=1.0, **opts)
    assert (res.status, res.success) == (4, False) and "xtol" in res.message
    assert res.history["step_size"][-1] <= 1.0

    res = minimize(cost, M, x0=X0, method=method, gtol=1e-3, maxiter=3000, **opts)
    assert res.status == 0 and "gtol" in res.message and res.grad_norm <= 1e-3


@pytest.mark.parametrize("method", METHODS)
def test_callback_sees_every_iterate_and_can_stop(method):
    seen = []

    def callback(x):
        seen.append(x)
        return True if len(seen) == 3 else None

    res = minimize(cost, M, x0=X0, method=method, callback=callback, **_options(method))
    assert (res.status, res.success, res.nit) == (5, False, 3)
    assert "callback" in res.message
    assert len(seen) == 3 and seen[-1] is not X0
    np.testing.assert_array_equal(seen[-1], res.x)


def test_callback_gets_the_weights_under_reparam():
    norms = []
    minimize(cost, M, x0=X0, method="rsgd", strategy="reparam", lr=0.5, maxiter=20,
             callback=lambda w: norms.append(np.linalg.norm(w)))
    assert len(norms) == 20
    np.testing.assert_allclose(norms, 1.0, rtol=0, atol=1e-15)


# --- every method under every strategy -------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("strategy", ["riemannian", "reparam"])
def test_riemannian_and_reparam_reach_the_eigenvector(method, strategy):
    res = minimize(cost, M, x0=X0, method=method, strategy=strategy, maxiter=5000,
                   **_options(method))
    assert res.success, res.message
    assert _angle_to_top(res.x) < 1e-6 / GAP
    assert res.fun == pytest.approx(-EIGVALS[-1], rel=1e-11)


@pytest.mark.parametrize("method", RULES)
def test_projection_with_step_rules_reaches_the_eigenvector(method):
    res = minimize(cost, M, x0=X0, method=method, strategy="projection", maxiter=5000,
                   **_options(method))
    assert res.success, res.message
    assert _angle_to_top(res.x) < 1e-6 / GAP


@pytest.mark.parametrize("method", ["sd", "cg"])
def test_projection_with_line_searches_converges_on_the_rayleigh_quotient(method):
    # The projection geometry hands the solvers the whole Euclidean gradient
    # -2Ax as the direction; its normal part does no work along
    # t -> normalize(x + t d), so the Armijo slope must be <P_x g, d>, not
    # <g, d> (with the latter the steps shrink geometrically and the run
    # stops on the step tolerance far from the optimum).
    res = minimize(cost, M, x0=X0, method=method, strategy="projection", maxiter=5000)
    assert res.success, res.message
    assert _angle_to_top(res.x) < 1e-5 / GAP
    assert res.history["violation"].max() <= 1e-12


def test_projection_with_trust_regions_stalls_on_the_rayleigh_quotient():
    # Trust regions under projection model the cost with the Euclidean
    # gradient and Hessian, whose normal parts do no work after the
    # normalization: the model overestimates the decrease, the radius
    # shrinks and the run stops on the step tolerance far from the optimum.
    # The Riemannian version from the same start converges.
    res = minimize(cost, M, x0=X0, method="trust-regions", strategy="projection", maxiter=1000)
    assert not res.success and res.status == 4, res.message
    assert res.grad_norm > 0.1 and _angle_to_top(res.x) > 0.1
    assert res.history["violation"].max() <= 1e-12
    assert minimize(cost, M, x0=X0, method="trust-regions").success


def test_projection_with_solvers_works_when_the_gradient_is_tangent():
    # A scale-invariant cost f(x/||x||) has a tangent Euclidean gradient on
    # the sphere: then projection and Riemannian steps agree to first order.
    def invariant(x):
        return cost(x) / (x @ x)

    for method in SOLVERS:
        res = minimize(invariant, M, x0=X0, method=method, strategy="projection")
        assert res.success, (method, res.message)
        assert _angle_to_top(res.x) < 1e-6 / GAP


@pytest.mark.parametrize("method", METHODS)
def test_penalty_reaches_the_penalized_minimizer(method):
    # grad of -x^T A x + mu (||x||^2 - 1)^2 vanishes at eigenvectors with
    # ||x||^2 = 1 + lambda / (2 mu); the minimizer is the top one.
    mu = 2.0  # the penalty's curvature grows like 8 mu: keep lr * 8 mu below 2
    res = minimize(cost, M, x0=X0, method=method, strategy=Penalty(M, mu=mu), maxiter=5000,
                   **_options(method))
    # Converged on the penalized cost, but off the sphere: not a success.
    assert res.status == 0 and not res.success, res.message
    norm = np.sqrt(1 + EIGVALS[-1] / (2 * mu))
    np.testing.assert_allclose(np.linalg.norm(res.x), norm, rtol=1e-7)
    assert _angle_to_top(res.x) < 1e-5
    np.testing.assert_allclose(res.history["violation"][-1], norm - 1, rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_none_ignores_the_constraint(method):
    b = 2.0 * np.random.default_rng(3).standard_normal(N) / np.sqrt(N)

    def distance(x):
        return np.sum((x - b) ** 2)

    res = minimize(distance, M, x0=X0, method=method, strategy="none", maxiter=5000,
                   **_options(method))
    assert res.status == 0 and not res.success, res.message
    assert "strategy 'none' ignores the constraint" in res.message
    np.testing.assert_allclose(res.x, b, atol=1e-6)
    np.testing.assert_allclose(res.history["violation"][-1], abs(np.linalg.norm(b) - 1),
                               atol=1e-6)
    # and on the sphere the same problem has the answer b / ||b||
    res = minimize(distance, M, x0=X0, method=method, maxiter=5000, **_options(method))
    np.testing.assert_allclose(res.x, b / np.linalg.norm(b), atol=1e-6)


# --- success means feasible ------------------------------------------------------------


@pytest.mark.parametrize("method", ["cg", "trust-regions", "rsgd"])
def test_penalty_with_a_small_mu_is_not_a_success_and_says_why(method):
    mu = 1.0
    res = minimize(cost, M, x0=X0, method=method, strategy=Penalty(M, mu=mu), maxiter=3000,
                   **_options(method))
    # The penalized minimizer: ||x||^2 = 1 + lambda_max / (2 mu).
    violation = np.sqrt(1 + EIGVALS[-1] / (2 * mu)) - 1
    assert res.status == 0 and "gtol" in res.message  # it did converge ...
    assert res.success is False  # ... to a point off the sphere
    assert res.violation == pytest.approx(violation, rel=1e-6)
    assert f"off the sphere by up to {violation:.3g}" in res.message
    assert "ctol 1.0e-06" in res.message and "raise mu" in res.message


@pytest.mark.parametrize("strategy, dtype", [
    ("riemannian", np.float64), ("projection", np.float64), ("reparam", np.float64),
    ("riemannian", np.float32)])
def test_strategies_that_keep_the_constraint_succeed(strategy, dtype):
    res = minimize(cost, M, x0=X0.astype(dtype), strategy=strategy, gtol=1e-3)
    assert res.success is True and res.status == 0, res.message
    assert res.violation <= 100 * np.finfo(dtype).eps
    assert "off the sphere" not in res.message


def test_ctol_decides_success_and_is_checked():
    mu = 1.0
    violation = np.sqrt(1 + EIGVALS[-1] / (2 * mu)) - 1
    loose = minimize(cost, M, x0=X0, strategy=Penalty(M, mu=mu), ctol=1.01 * violation)
    assert loose.success and loose.status == 0 and "off the sphere" not in loose.message
    tight = minimize(cost, M, x0=X0, strategy=Penalty(M, mu=mu), ctol=0.99 * violation)
    assert not tight.success and tight.status == 0
    # an unsuccessful status stays unsuccessful, and still reports the violation
    stopped = minimize(cost, M, x0=X0, strategy="none", maxiter=2)
    assert stopped.status == 1 and not stopped.success and "off the sphere" in stopped.message
    with pytest.raises(ValueError, match="ctol must be >= 0, got -1"):
        minimize(cost, M, x0=X0, ctol=-1.0)


def test_default_ctol_follows_the_dtype():
    """max(1e-6, 100 eps): a float32 penalty run off by 1e-5 succeeds, float64 does not."""
    from spherenet.optim._loop import default_ctol

    assert default_ctol(X0) == 1e-6
    assert default_ctol(X0.astype(np.float32)) == 100 * float(np.finfo(np.float32).eps)
    assert default_ctol((X0, X0.astype(np.float32))) == 100 * float(np.finfo(np.float32).eps)


def test_strategies_report_one_gradient_norm_at_the_start_and_later():
    norms = [minimize(cost, M, x0=X0, strategy=s, maxiter=0).history["grad_norm"][0]
             for s in ("riemannian", "projection", "reparam")]
    np.testing.assert_allclose(norms, norms[0], rtol=1e-14)
    assert norms[0] == pytest.approx(np.linalg.norm(M.proj(X0, -2 * A @ X0)), rel=1e-14)
    # and after 30 steps, where ||v|| != 1 under reparam: ||P_w(-2 A w)|| at the weights
    for s in ("riemannian", "projection", "reparam"):
        res = minimize(cost, M, x0=X0, method="rsgd", lr=0.05, strategy=s, maxiter=30)
        w = res.x / np.linalg.norm(res.x)
        g = -2 * A @ w
        # measure ~0.15 from an egrad of norm ~7: rounding ~50 eps relative; 256 eps
        assert res.grad_norm == pytest.approx(np.linalg.norm(g - (w @ g) * w),
                                              rel=256 * np.finfo(float).eps)
    assert res.history["v_norm"][-1] > 1.01


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
@pytest.mark.parametrize("method", ["cg", "rsgd"])
def test_violation_stays_at_rounding(method, strategy):
    res = minimize(cost, M, x0=X0, method=method, strategy=strategy, maxiter=300,
                   **_options(method))
    assert res.history["violation"].max() <= 1e-12


def test_penalty_violation_shrinks_as_mu_grows():
    final = []
    for mu in (1.0, 10.0, 100.0):
        res = minimize(cost, M, x0=X0, method="trust-regions", strategy=Penalty(M, mu=mu))
        assert res.status == 0, res.message
        final.append(res.history["violation"][-1])
    assert final[0] > final[1] > final[2] > 0
    # ||x||^2 = 1 + lambda / (2 mu) at the minimizer: violation ~ lambda / (4 mu)
    expected = [np.sqrt(1 + EIGVALS[-1] / (2 * mu)) - 1 for mu in (1.0, 10.0, 100.0)]
    np.testing.assert_allclose(final, expected, rtol=1e-6)
    assert final[1] / final[2] > 9


def test_reparam_records_a_growing_v_norm_under_sgd():
    res = minimize(cost, M, x0=X0, method="rsgd", strategy="reparam", lr=0.1, maxiter=200)
    v_norm = res.history["v_norm"]
    assert v_norm.shape == (res.nit + 1,) and v_norm[0] == pytest.approx(1.0, rel=1e-15)
    # the gradient in v is orthogonal to v: ||v - lr g||^2 = ||v||^2 + lr^2 ||g||^2
    assert np.all(np.diff(v_norm) >= 0.0)
    assert v_norm[-1] > 1.1


# --- derivatives given by the user ---------------------------------------------------


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam", "penalty"])
def test_user_gradient_and_hessian_agree_with_autograd(strategy):
    P = rayleigh(A)
    for method in ("cg", "trust-regions"):
        auto = minimize(cost, M, x0=X0, method=method, strategy=strategy, maxiter=60)
        given = minimize(cost, M, x0=X0, method=method, strategy=strategy, maxiter=60,
                         grad=P.egrad, hess=P.ehess)
        assert given.nit == auto.nit and given.status == auto.status
        np.testing.assert_allclose(given.x, auto.x, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(given.history["cost"], auto.history["cost"], rtol=1e-10)


def test_user_gradient_on_a_product():
    Mp = Product([Oblique(3, 4), Euclidean(2)])
    C = np.random.default_rng(4).standard_normal((3, 4))
    c = np.array([1.0, -2.0])

    def f(x):
        W, b = x
        return -np.sum(W * C) + np.sum((b - c) ** 2)

    def g(x):
        W, b = x
        return -C, 2 * (b - c)

    res = minimize(f, Mp, method="cg", grad=g, rng=0)
    assert res.success
    # gtol 1e-6 over a curvature of min_j ||C_j|| (about 0.3)
    np.testing.assert_allclose(res.x[0], C / np.linalg.norm(C, axis=0), atol=1e-5)
    np.testing.assert_allclose(res.x[1], c, atol=1e-5)


# --- bad input --------------------------------------------------------------------------


def test_unknown_method_and_strategy_name_the_options():
    with pytest.raises(ValueError) as err:
        minimize(cost, M, method="newton")
    assert all(m in str(err.value) for m in METHODS) and "newton" in str(err.value)
    with pytest.raises(ValueError) as err:
        minimize(cost, M, strategy="magic")
    assert all(s in str(err.value) for s in STRATEGIES) and "magic" in str(err.value)


def test_bad_inputs_raise_value_errors():
    with pytest.raises(ValueError, match="off"):
        minimize(cost, M, x0=1.1 * X0)
    with pytest.raises(ValueError, match="shape"):
        minimize(cost, M, x0=np.ones(3) / np.sqrt(3))
    with pytest.raises(ValueError, match="scalar"):
        minimize(lambda x: x * 2.0, M, x0=X0)
    with pytest.raises(ValueError, match="shape"):
        minimize(cost, M, x0=X0, grad=lambda x: np.ones(N + 1))
    with pytest.raises(ValueError, match="shape"):
        minimize(cost, M, x0=X0, method="trust-regions", hess=lambda x, u: np.ones(3))
    with pytest.raises(ValueError, match="starting point"):
        minimize(lambda x: np.nan * x[0], M, x0=X0)
    with pytest.raises(ValueError, match="maxiter"):
        minimize(cost, M, x0=X0, maxiter=-1)
    with pytest.raises(TypeError):
        minimize(cost, "sphere")


@pytest.mark.parametrize("method", METHODS)
def test_cost_turning_nan_gives_an_unsuccessful_finite_result(method):
    D = np.diag([5.0, 4.0, 3.0, 2.0, 1.0])
    S = Sphere(5)

    def cliff(x):
        # the descent heads for +-e_0, but the cost is NaN past |x[0]| = 0.9 (both
        # sides: a nonmonotone method may jump to -e_0)
        return np.nan * x[0] if abs(x[0]) > 0.9 else -x @ D @ x

    x0 = np.array([0.6, 0.8, 0.0, 0.0, 0.0])
    res = minimize(cliff, S, x0=x0, method=method, maxiter=500, **_options(method))
    assert not res.success
    assert "NaN" in res.message
    assert np.all(np.isfinite(res.x)) and abs(res.x[0]) <= 0.9
    S.check_point(res.x)
    assert np.isfinite(res.fun) and res.fun == cliff(res.x)
    for name in HISTORY_FIELDS:
        assert res.history[name].shape == (res.nit + 1,), name
    if method in RULES:
        # a step rule cannot back off: it stops where the step went wrong
        assert res.status == -1 and f"iteration {res.nit}" in res.message
    else:
        # line searches and trust regions reject NaN trial points and creep
        # up to the cliff, then stop on the step tolerance and say why
        assert res.status == 4 and "trial point" in res.message
        assert abs(res.x[0]) == pytest.approx(0.9, abs=1e-6)


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam", "penalty"])
@pytest.mark.parametrize("method", METHODS)
def test_float32_in_float32_out(method, strategy):
    x0 = X0.astype(np.float32)  # A stays float64: the gradient is promoted, then cast back
    res = minimize(cost, M, x0=x0, method=method, strategy=strategy, gtol=1e-2, maxiter=300,
                   **_options(method))
    assert res.x.dtype == np.float32
    if strategy != "penalty":
        assert abs(np.linalg.norm(res.x.astype(np.float64)) - 1) <= 10 * np.finfo(np.float32).eps


# --- the precision floor of the dtype ----------------------------------------------------

# float32 Rayleigh quotients: the cost -x^T A x rounds at eps32 |f| ~ 1e-6, so a
# gradient norm of gtol = 1e-6 is out of reach of cost-based steps.
FLOOR_N = 50
FLOOR_A = (lambda B: (B + B.T) / 2)(np.random.default_rng(10).standard_normal((FLOOR_N, FLOOR_N)))
FLOOR_EIGVALS, FLOOR_EIGVECS = eigh(FLOOR_A)
FLOOR_X0 = Sphere(FLOOR_N).random_point(1)
EPS32 = float(np.finfo(np.float32).eps)


def _floor_run(method, dtype, **options):
    A = FLOOR_A.astype(dtype)
    return minimize(lambda x: -x @ A @ x, Sphere(FLOOR_N), x0=FLOOR_X0.astype(dtype),
                    method=method, maxiter=1000, **options)


def _float64_quality(x):
    """Cost gap to -lambda_max and angle to the top eigenvector, in float64."""
    x = x.astype(np.float64) / np.linalg.norm(x.astype(np.float64))
    gap = FLOOR_EIGVALS[-1] - x @ FLOOR_A @ x
    return gap, float(np.arccos(min(1.0, abs(x @ FLOOR_EIGVECS[:, -1]))))


def test_float32_trust_regions_stop_at_the_precision_floor_as_good_as_float64():
    """It ran to maxiter (rho is rounding noise once float64's eps regularized a
    float32 ratio), at an angle of 1e-4 from the eigenvector; now it stops early."""
    res = _floor_run("trust-regions", np.float32, gtol=0.0)
    assert res.status == 6 and not res.success and res.nit < 100, res.message
    assert "float32 precision floor" in res.message
    assert f"gradient norm {res.grad_norm:.3e} cannot go below" in res.message
    assert res.x.dtype == np.float32
    ref = _floor_run("trust-regions", np.float64)
    assert ref.success
    gap, angle = _float64_quality(res.x)
    # The cost at x is the float64 optimum to float32 rounding (eps32 |f|) ...
    assert 0.0 <= gap <= 2 * EPS32 * FLOOR_EIGVALS[-1]
    # ... and so is the point: the angle is a few eps32 (float64's is ~1e-8).
    assert angle <= 20 * EPS32, angle
    assert res.grad_norm <= 100 * EPS32 * FLOOR_EIGVALS[-1]


def test_float32_trust_regions_reach_a_gtol_above_the_floor():
    """3e-6, a little above the floor (~1.5e-6 here): the floor test does not cut it short."""
    res = _floor_run("trust-regions", np.float32, gtol=3e-6)
    assert res.success and res.status == 0, res.message


@pytest.mark.parametrize("method", ["sd", "cg"])
def test_float32_line_search_solvers_report_the_precision_floor(method):
    """sd and cg stopped there with 'the line search found no decrease' (status 4)."""
    res = _floor_run(method, np.float32)
    assert res.status == 6 and not res.success and res.nit < 300, res.message
    assert "float32 precision floor" in res.message
    gap, _ = _float64_quality(res.x)
    assert gap <= 16 * EPS32 * FLOOR_EIGVALS[-1]  # the cost cannot tell better points apart


@pytest.mark.parametrize("method", ["sd", "cg", "trust-regions"])
def test_float64_runs_reach_gtol_without_a_floor_stop(method):
    res = _floor_run(method, np.float64)
    assert res.success and res.status == 0, res.message


def test_a_failed_line_search_far_from_the_floor_is_not_the_floor():
    """A wrong gradient: the line search fails after large decreases: status 4."""
    A = FLOOR_A
    res = minimize(lambda x: -x @ A @ x, Sphere(FLOOR_N), x0=FLOOR_X0, method="sd",
                   grad=lambda x: 2 * A @ x)  # sign flipped: an ascent direction
    assert res.status == 4 and "no decrease" in res.message


def test_unresolved_steps_are_measured_in_the_dtype():
    from spherenet.optim._loop import Stopper

    stopper = Stopper(10, 0.0, 0.0, 0.0, np.inf, None)
    x32, x64 = np.ones(2, np.float32), np.ones(2)
    change = 3.9 * EPS32 * 10.0  # below 4 eps32 |f| at f = 10
    assert stopper.unresolved(x32, 10.0, 10.0 - change)
    assert not stopper.unresolved(x64, 10.0, 10.0 - change)
    assert not stopper.unresolved(x32, 10.0, 10.0 - change, improved=True)
    assert not stopper.unresolved(x32, 10.0, 10.0, predicted=1e-3)
    # three in a row stop the run with status 6
    for it in range(3):
        assert stopper.check(it, 0.0, 1.0, 10.0, 10.0, 1.0, x32, unresolved=True) is None or it == 2
    assert stopper.check(3, 0.0, 1.0, 10.0, 10.0, 1.0, x32, unresolved=True)[0] == 6


def test_line_search_solvers_count_a_step_toward_the_floor_only_if_the_gradient_did_not_drop():
    """``stopped``: an unchanged cost is rounding only when the gradient norm did not go down."""
    import math

    from spherenet.optim._loop import Stopper
    from spherenet.optim._solver import stopped

    class Recorder:
        def elapsed(self):
            return 0.0

        def result(self, x, f, grad_norm, it, status, message):
            return status, message

    x = np.ones(3)
    stopper = Stopper(100, 0.0, 0.0, 0.0, math.inf, None)
    rec = Recorder()
    assert stopped(stopper, rec, 0, x, -1.0, None, 1.0, None, None) is None  # nothing to compare
    for it in range(1, 6):  # the same cost, a smaller gradient norm each time: progress
        assert stopped(stopper, rec, it, x, -1.0, -1.0, 1.0 / (it + 1), 1.0 / it, 0.1) is None
    for it in range(6, 8):  # the same cost and gradient norm: unresolved, twice
        assert stopped(stopper, rec, it, x, -1.0, -1.0, 0.5, 0.5, 0.1) is None
    status, message = stopped(stopper, rec, 8, x, -1.0, -1.0, 0.5, 0.5, 0.1)
    assert status == 6 and "precision floor" in message
