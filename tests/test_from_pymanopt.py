"""spherenet.interop.from_pymanopt / from_pymanopt_options: pymanopt scripts on spherenet.

Each example is written as pymanopt's documentation writes it (a manifold, a
decorated cost, a ``pymanopt.Problem``, an optimizer), then ported with one
added line and checked against its known answer (eigh, svd, lstsq, a closed
form). With the projection retraction and the same settings, spherenet's
iterates are compared with pymanopt's own run on the same problem.
"""

import warnings

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.interop import from_pymanopt, from_pymanopt_options, to_pymanopt
from spherenet.optim import AdaptiveLineSearch, BacktrackingLineSearch

pymanopt = pytest.importorskip("pymanopt")
from pymanopt.autodiff import backend_decorator_factory  # noqa: E402
from pymanopt.autodiff.backends._autograd import AutogradBackend  # noqa: E402
from pymanopt.autodiff.backends._backend import Backend  # noqa: E402

pm = pymanopt.manifolds
po = pymanopt.optimizers
EPS = np.finfo(np.float64).eps


def _symmetric(n, seed=0):
    a = np.random.default_rng(seed).standard_normal((n, n))
    return (a + a.T) / 2


# --- the examples, written the pymanopt way -----------------------------------------------


def dominant_eigenvector_problem(A):
    """pymanopt's dominant eigenvector example (autograd backend)."""
    manifold = pm.Sphere(A.shape[0])

    @pymanopt.function.autograd(manifold)
    def cost(point):
        return -point @ A @ point

    return pymanopt.Problem(manifold, cost)


def dominant_eigenvector_riemannian_problem(A):
    """The same with the NumPy backend and a Riemannian gradient and Hessian."""
    manifold = pm.Sphere(A.shape[0])

    @pymanopt.function.numpy(manifold)
    def cost(point):
        return -point @ A @ point

    @pymanopt.function.numpy(manifold)
    def riemannian_gradient(point):
        egrad = -2 * A @ point
        return egrad - (point @ egrad) * point

    @pymanopt.function.numpy(manifold)
    def riemannian_hessian(point, vector):
        egrad, ehess = -2 * A @ point, -2 * A @ vector
        ehess = ehess - (point @ ehess) * point
        return ehess - (point @ egrad) * vector

    return pymanopt.Problem(manifold, cost, riemannian_gradient=riemannian_gradient,
                            riemannian_hessian=riemannian_hessian)


def rank_one_problem(A):
    """Best rank-one approximation s u v^T on Sphere x Sphere x Euclidean (autograd)."""
    m, n = A.shape
    manifold = pm.Product([pm.Sphere(m), pm.Sphere(n), pm.Euclidean(1)])

    @pymanopt.function.autograd(manifold)
    def cost(u, v, s):
        return anp.sum((A - s[0] * anp.outer(u, v)) ** 2)

    return pymanopt.Problem(manifold, cost)


def closest_unit_columns_problem(A):
    """Closest matrix with unit-norm columns (NumPy backend, gradient and Hessian given)."""
    manifold = pm.Oblique(*A.shape)

    @pymanopt.function.numpy(manifold)
    def cost(X):
        return np.sum((X - A) ** 2)

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(X):
        return 2 * (X - A)

    @pymanopt.function.numpy(manifold)
    def euclidean_hessian(X, U):
        return 2 * U

    return pymanopt.Problem(manifold, cost, euclidean_gradient=euclidean_gradient,
                            euclidean_hessian=euclidean_hessian)


def least_squares_problem(A, b):
    """pymanopt's linear regression example on Euclidean (NumPy backend)."""
    manifold = pm.Euclidean(A.shape[1])

    @pymanopt.function.numpy(manifold)
    def cost(x):
        return np.sum((A @ x - b) ** 2)

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(x):
        return 2 * A.T @ (A @ x - b)

    @pymanopt.function.numpy(manifold)
    def euclidean_hessian(x, u):
        return 2 * A.T @ (A @ u)

    return pymanopt.Problem(manifold, cost, euclidean_gradient=euclidean_gradient,
                            euclidean_hessian=euclidean_hessian)


def product_numpy_problem(A, b):
    """A NumPy-backend product cost f(u, w) = -u'Au + |w - b|^2 with gradient and Hessian."""
    manifold = pm.Product([pm.Sphere(A.shape[0]), pm.Euclidean(b.size)])

    @pymanopt.function.numpy(manifold)
    def cost(u, w):
        return -u @ A @ u + np.sum((w - b) ** 2)

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(u, w):
        return -2 * A @ u, 2 * (w - b)

    @pymanopt.function.numpy(manifold)
    def euclidean_hessian(u, w, du, dw):
        return -2 * A @ du, 2 * dw

    return pymanopt.Problem(manifold, cost, euclidean_gradient=euclidean_gradient,
                            euclidean_hessian=euclidean_hessian)


# --- the ports reach the known answers ---------------------------------------------------


@pytest.mark.parametrize("method, gtol", [("trust-regions", 1e-9), ("cg", 1e-7)])
@pytest.mark.parametrize("build", [dominant_eigenvector_problem,
                                   dominant_eigenvector_riemannian_problem])
def test_dominant_eigenvector_reaches_eighs_top_eigenvector(build, method, gtol):
    A = _symmetric(8)
    problem = build(A)
    result = minimize(**from_pymanopt(problem), method=method, rng=1, gtol=gtol)
    values, vectors = np.linalg.eigh(A)
    assert result.success
    # Cost error ~ gtol^2 / gap, angle ~ gtol / gap: both far below these bounds.
    np.testing.assert_allclose(-result.fun, values[-1], rtol=100 * EPS)
    assert abs(abs(result.x @ vectors[:, -1]) - 1.0) < 1e-12


def test_product_rank_one_approximation_reaches_the_top_singular_triple():
    A = np.random.default_rng(2).standard_normal((5, 4))
    ported = from_pymanopt(rank_one_problem(A))
    assert ported["manifold"] == Product([Sphere(5, retraction="projection"),
                                          Sphere(4, retraction="projection"), Euclidean(1)])
    result = minimize(**ported, rng=0, method="trust-regions", gtol=1e-9)
    u, v, s = result.x
    U, S, Vt = np.linalg.svd(A)
    assert result.success
    np.testing.assert_allclose(abs(s[0]), S[0], rtol=1e3 * EPS)
    np.testing.assert_allclose(s[0] * np.outer(u, v), S[0] * np.outer(U[:, 0], Vt[0]),
                               atol=1e-9)
    # The cost is the problem's own (cost(u, v, s) called with one tuple).
    np.testing.assert_allclose(result.fun, np.sum(S[1:] ** 2), rtol=1e3 * EPS)


def test_oblique_closest_unit_columns_is_the_normalized_matrix():
    A = np.random.default_rng(3).standard_normal((3, 6))
    ported = from_pymanopt(closest_unit_columns_problem(A))
    assert ported["manifold"] == Oblique(3, 6, axis=0, retraction="projection")
    for method in ("trust-regions", "cg"):
        result = minimize(**ported, method=method, rng=0, gtol=1e-10)
        # Unit columns, as pymanopt's Oblique(m, n): the columns of A normalized.
        np.testing.assert_allclose(result.x, A / np.linalg.norm(A, axis=0), atol=1e-10)


def test_euclidean_least_squares_reaches_lstsq():
    rng = np.random.default_rng(4)
    A, b = rng.standard_normal((10, 3)), rng.standard_normal(10)
    ported = from_pymanopt(least_squares_problem(A, b))
    assert ported["manifold"] == Euclidean(3)
    result = minimize(**ported, method="trust-regions", rng=0, gtol=1e-10)
    np.testing.assert_allclose(result.x, np.linalg.lstsq(A, b, rcond=None)[0], atol=1e-10)


def test_numpy_product_gradient_and_hessian_are_used_part_by_part():
    A, b = _symmetric(4, seed=5), np.array([1.0, -2.0])
    ported = from_pymanopt(product_numpy_problem(A, b))
    x = (np.array([0.5, 0.5, 0.5, 0.5]), np.array([0.0, 1.0]))
    u = (np.array([1.0, -1.0, 0.0, 0.0]), np.array([2.0, 3.0]))
    # Independent: the formulas of the example, written again.
    assert ported["cost"](x) == pytest.approx(-x[0] @ A @ x[0] + np.sum((x[1] - b) ** 2),
                                              rel=4 * EPS)
    for got, want in zip(ported["grad"](x), (-2 * A @ x[0], 2 * (x[1] - b))):
        np.testing.assert_allclose(got, want, rtol=4 * EPS)
    for got, want in zip(ported["hess"](x, u), (-2 * A @ u[0], 2 * u[1])):
        np.testing.assert_allclose(got, want, rtol=4 * EPS)
    result = minimize(**ported, method="trust-regions", rng=0, gtol=1e-10)
    # min of -u'Au is -lambda_max, of |w - b|^2 is 0.
    np.testing.assert_allclose(-result.fun, np.linalg.eigvalsh(A)[-1], rtol=1e3 * EPS)
    np.testing.assert_allclose(result.x[1], b, atol=1e-10)


def test_autograd_cost_is_the_decorated_function_and_derivatives_come_from_autograd():
    A = _symmetric(5)
    ported = from_pymanopt(dominant_eigenvector_problem(A))
    assert ported["grad"] is None and ported["hess"] is None
    x = np.arange(1.0, 6.0) / np.linalg.norm(np.arange(1.0, 6.0))
    assert ported["cost"](x) == pytest.approx(-x @ A @ x, rel=4 * EPS)


def test_a_to_pymanopt_adapter_ports_back_to_the_same_manifold():
    manifold = Product([Oblique(3, 4), Euclidean(2)])
    adapter = to_pymanopt(manifold)

    @pymanopt.function.autograd(adapter)
    def cost(X, w):
        return anp.sum(X[0] * w[0]) + anp.sum(w**2)

    assert from_pymanopt(pymanopt.Problem(adapter, cost))["manifold"] is manifold


@pytest.mark.parametrize("build", [closest_unit_columns_problem, rank_one_problem])
def test_float32_points_stay_float32(build):
    A = np.random.default_rng(10).standard_normal((3, 4))
    ported = from_pymanopt(build(A))
    x0 = ported["manifold"].random_point(np.random.default_rng(0), dtype=np.float32)
    result = minimize(**ported, x0=x0, method="cg", maxiter=20)
    for part in (result.x if isinstance(result.x, tuple) else (result.x,)):
        assert part.dtype == np.float32
    assert result.fun < ported["cost"](x0)


class _OtherBackend(AutogradBackend):
    """A backend that is neither autograd nor numpy by name: the port goes through
    the problem (as for JAX, PyTorch, TensorFlow), which differentiates with it."""

    def __init__(self):
        Backend.__init__(self, "Other")


def test_other_backends_are_called_through_the_problem():
    decorator = backend_decorator_factory(_OtherBackend)
    A, b = _symmetric(3, seed=11), np.array([0.5, -1.0])
    manifold = pm.Product([pm.Sphere(3), pm.Euclidean(2)])

    @decorator(manifold)
    def cost(u, w):
        return -u @ A @ u + anp.sum((w - b) ** 2)

    ported = from_pymanopt(pymanopt.Problem(manifold, cost))
    x = (np.array([0.0, 0.6, 0.8]), np.array([1.0, 1.0]))
    u = (np.array([1.0, 0.0, 0.0]), np.array([0.0, 2.0]))
    # Independent: the gradient and Hessian of the formula.
    for got, want in zip(ported["grad"](x), (-2 * A @ x[0], 2 * (x[1] - b))):
        np.testing.assert_allclose(got, want, rtol=4 * EPS)
    for got, want in zip(ported["hess"](x, u), (-2 * A @ u[0], 2 * u[1])):
        np.testing.assert_allclose(got, want, rtol=4 * EPS, atol=4 * EPS)
    result = minimize(**ported, method="trust-regions", rng=0, gtol=1e-10)
    np.testing.assert_allclose(-result.fun, np.linalg.eigvalsh(A)[-1], rtol=1e3 * EPS)


def test_a_preconditioner_is_left_out_with_a_warning():
    A = _symmetric(3)
    manifold = pm.Sphere(3)

    @pymanopt.function.autograd(manifold)
    def cost(point):
        return -point @ A @ point

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_pymanopt(pymanopt.Problem(manifold, cost))
    problem = pymanopt.Problem(manifold, cost, preconditioner=lambda x, u: 2 * u)
    with pytest.warns(UserWarning, match="preconditioner is not translated"):
        from_pymanopt(problem)


def test_retraction_exp_is_available():
    ported = from_pymanopt(dominant_eigenvector_problem(_symmetric(3)), retraction="exp")
    assert ported["manifold"] == Sphere(3)


# --- spherenet takes pymanopt's steps ------------------------------------------------------


def _pymanopt_iterates(optimizer, problem, x0):
    result = optimizer.run(problem, initial_point=x0)
    return [np.asarray(p) for p in result.log["iterations"]["point"]], result


@pytest.mark.parametrize("beta_rule", ["FletcherReeves", "PolakRibiere", "HestenesStiefel",
                                       "HagerZhang"])
def test_cg_iterates_agree_with_pymanopts_own_run(beta_rule):
    A = _symmetric(10, seed=6)
    problem = dominant_eigenvector_problem(A)
    x0 = np.random.default_rng(7).standard_normal(10)
    x0 /= np.linalg.norm(x0)
    optimizer = po.ConjugateGradient(beta_rule=beta_rule, max_iterations=12, verbosity=0,
                                     log_verbosity=2, min_gradient_norm=1e-30)
    theirs, their_result = _pymanopt_iterates(optimizer, problem, x0)
    ported = from_pymanopt(problem)
    # The gradient pymanopt derived (and cached on the problem) during its run is not
    # taken for one the user gave: spherenet's autograd differentiates the cost.
    assert ported["grad"] is None and ported["hess"] is None
    ours = [x0]
    result = minimize(**ported, **from_pymanopt_options(optimizer), x0=x0,
                      callback=lambda x: ours.append(x.copy()))
    # pymanopt's CG counts x0 as iteration 1: max_iterations=12 is 11 steps.
    np.testing.assert_array_equal(their_result.point, theirs[-1])
    assert len(ours) == len(theirs) == 12 and result.nit == 11
    for k, (a, b) in enumerate(zip(ours, theirs)):
        # Rounding differences grow along the run; 1e-9 is far below a wrong beta's effect.
        np.testing.assert_allclose(a, b, atol=1e-9, err_msg=f"iterate {k}")
    assert result.fun == pytest.approx(their_result.cost, rel=1e-12)


def test_steepest_descent_iterates_agree_with_pymanopts_own_run():
    A = _symmetric(6, seed=8)
    problem = dominant_eigenvector_problem(A)
    x0 = np.ones(6) / np.sqrt(6)
    optimizer = po.SteepestDescent(max_iterations=8, verbosity=0, log_verbosity=2)
    theirs, their_result = _pymanopt_iterates(optimizer, problem, x0)
    ours = [x0]
    result = minimize(**from_pymanopt(problem), **from_pymanopt_options(optimizer), x0=x0,
                      callback=lambda x: ours.append(x.copy()))
    # pymanopt logs the iterates it starts an iteration from: all but the last.
    theirs.append(np.asarray(their_result.point))
    assert len(ours) == len(theirs) == 9 and result.nit == their_result.iterations
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b, atol=1e-12)


# --- options --------------------------------------------------------------------------------


def test_common_settings_and_line_searcher_are_translated():
    searcher = po.line_search.BackTrackingLineSearcher(
        contraction_factor=0.3, optimism=1.5, sufficient_decrease=1e-3, max_iterations=7,
        initial_step_size=0.5)
    optimizer = po.SteepestDescent(line_searcher=searcher, max_iterations=11, max_time=12.5,
                                   min_gradient_norm=1e-7, min_step_size=1e-9,
                                   max_cost_evaluations=99, verbosity=0)
    options = from_pymanopt_options(optimizer)
    line_search = options.pop("line_search")
    # pymanopt's steepest descent never tests max_cost_evaluations: no maxfev.
    assert options == dict(method="sd", maxiter=11, gtol=1e-7, xtol=1e-9, maxtime=12.5,
                           verbose=0)
    assert type(line_search) is BacktrackingLineSearch
    assert (line_search.contraction, line_search.optimism, line_search.sufficient_decrease,
            line_search.max_trials, line_search.initial_step) == (0.3, 1.5, 1e-3, 7, 0.5)


@pytest.mark.parametrize("theirs, ours", [("FletcherReeves", "FR"), ("PolakRibiere", "PR+"),
                                          ("HestenesStiefel", "HS"), ("HagerZhang", "HZ")])
def test_beta_rules_and_powells_restart_are_translated(theirs, ours):
    options = from_pymanopt_options(po.ConjugateGradient(beta_rule=theirs, orth_value=0.2,
                                                         verbosity=1))
    assert options["method"] == "cg" and options["beta_rule"] == ours
    assert options["restart"] == 0.2 and options["verbose"] == 1
    assert type(options["line_search"]) is AdaptiveLineSearch
    assert from_pymanopt_options(po.ConjugateGradient(beta_rule=theirs))["restart"] is None
    # Its CG counts x0 as iteration 1, and compares max_cost_evaluations with that count.
    assert options["maxiter"] == 999 and "maxfev" not in options
    short = po.ConjugateGradient(beta_rule=theirs, max_iterations=50, max_cost_evaluations=20)
    assert from_pymanopt_options(short)["maxiter"] == 19


def test_trust_region_settings_and_run_options_are_translated():
    optimizer = po.TrustRegions(miniter=1, kappa=0.05, theta=0.5, rho_prime=0.2,
                                rho_regularization=10.0, verbosity=5)
    options = from_pymanopt_options(optimizer, Delta_bar=2.0, Delta0=0.1, maxinner=4)
    assert options == dict(method="trust-regions", maxiter=1000, gtol=1e-6, xtol=1e-10,
                           maxtime=1000, verbose=2, max_radius=2.0, radius=0.1,
                           maxinner=4, kappa=0.05, theta=0.5, rho_prime=0.2,
                           rho_regularization=10.0)


def test_trust_regions_reach_the_eigenvector_with_translated_options():
    A = _symmetric(6, seed=9)
    problem = dominant_eigenvector_problem(A)
    with pytest.warns(UserWarning, match="miniter=3"):
        options = from_pymanopt_options(po.TrustRegions(verbosity=0), Delta_bar=1.0)
    result = minimize(**from_pymanopt(problem), **options, rng=0)
    assert result.success
    np.testing.assert_allclose(-result.fun, np.linalg.eigvalsh(A)[-1], rtol=100 * EPS)


# --- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("manifold, name", [
    (pm.Stiefel(4, 2), "Stiefel"),
    (pm.Grassmann(4, 2), "Grassmann"),
    (pm.SphereSubspaceIntersection(np.eye(4)[:, :2]), "SphereSubspaceIntersection"),
    (pm.Symmetric(3), "Symmetric"),
    (pm.Product([pm.Sphere(3), pm.Stiefel(3, 2)]), "Stiefel"),
])
def test_unsupported_manifolds_are_refused_by_name(manifold, name):
    @pymanopt.function.autograd(manifold)
    def cost(*x):
        return 0.0

    with pytest.raises(TypeError, match=f"Sphere, Oblique, Euclidean.*{name}"):
        from_pymanopt(pymanopt.Problem(manifold, cost))


def test_non_problems_are_refused():
    with pytest.raises(TypeError, match="pymanopt.Problem, got builtins.dict"):
        from_pymanopt({"manifold": Sphere(3)})


def test_a_numpy_cost_without_gradient_is_refused():
    manifold = pm.Sphere(3)

    @pymanopt.function.numpy(manifold)
    def cost(x):
        return x[0]

    with pytest.raises(ValueError, match="NumPy backend and has no euclidean_gradient"):
        from_pymanopt(pymanopt.Problem(manifold, cost))


def test_a_numpy_cost_without_hessian_says_so_in_trust_regions():
    manifold = pm.Sphere(3)

    @pymanopt.function.numpy(manifold)
    def cost(x):
        return -x[0]

    @pymanopt.function.numpy(manifold)
    def euclidean_gradient(x):
        return np.array([-1.0, 0.0, 0.0])

    ported = from_pymanopt(pymanopt.Problem(manifold, cost,
                                            euclidean_gradient=euclidean_gradient))
    assert minimize(**ported, method="cg", rng=0).success
    with pytest.raises(ValueError, match="no euclidean_hessian, which trust regions need"):
        minimize(**ported, method="trust-regions", rng=0)


def test_a_riemannian_gradient_without_hessian_is_refused():
    manifold = pm.Sphere(3)

    @pymanopt.function.numpy(manifold)
    def cost(x):
        return -x[0]

    @pymanopt.function.numpy(manifold)
    def riemannian_gradient(x):
        return np.array([-1.0, 0.0, 0.0]) + x[0] * x

    problem = pymanopt.Problem(manifold, cost, riemannian_gradient=riemannian_gradient)
    with pytest.raises(ValueError, match="riemannian_gradient only with a riemannian_hessian"):
        from_pymanopt(problem)


@pytest.mark.parametrize("optimizer", [po.NelderMead(), po.ParticleSwarm()])
def test_other_optimizers_are_refused_by_name(optimizer):
    with pytest.raises(TypeError, match=type(optimizer).__name__):
        from_pymanopt_options(optimizer)


def test_settings_without_equivalent_are_refused_or_warned():
    with pytest.raises(ValueError, match="LiuStorey"):
        from_pymanopt_options(po.ConjugateGradient(beta_rule="LiuStorey"))
    with pytest.raises(ValueError, match="use_rand"):
        from_pymanopt_options(po.TrustRegions(use_rand=True, miniter=0))
    with pytest.raises(ValueError, match="mininner must be 1, got 3"):
        from_pymanopt_options(po.TrustRegions(miniter=0), mininner=3)
    with pytest.raises(TypeError, match=r"run\(\) options .* got \['Delta_bar'\]"):
        from_pymanopt_options(po.ConjugateGradient(), Delta_bar=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_pymanopt_options(po.TrustRegions(miniter=1))
