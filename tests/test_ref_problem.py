"""The cost wrapper of the solvers (``spherenet.optim._problem.Problem``) against closed
forms: the derivatives it hands out in each combination of user and autograd derivatives,
its exact evaluation counts, its budget, and the errors it raises for unusable costs.

The reference is the Rayleigh quotient f(x) = -x'Ax on the sphere, with egrad = -2Ax,
ehess[u] = -2Au and the Riemannian Hessian P_x(ehess[u]) - <x, egrad> u, written out in
NumPy.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Product, Euclidean, Sphere, minimize
from spherenet.optim._loop import EvaluationBudgetExhausted
from spherenet.optim._problem import CostError, Problem, _as_dtype_of

EPS = np.finfo(np.float64).eps
A = np.diag([1.0, 2.0, 5.0]) + 0.1 * np.ones((3, 3))


def cost(x):
    return -(x @ (A @ x))


def egrad(x):
    return -2.0 * (A @ x)


def ehess(x, u):
    return -2.0 * (A @ u)


def rhess(x, u):
    """The Riemannian Hessian of -x'Ax on the sphere at x along the tangent u."""
    h = ehess(x, u)
    return h - (x @ h) * x - (x @ egrad(x)) * u


X = np.array([0.6, 0.0, 0.8])
U = np.array([0.8, 0.3, -0.6])  # tangent at X: <X, U> = 0


# --- derivatives in every combination -------------------------------------------------------

@pytest.mark.parametrize("given", ["none", "grad", "hess", "both"])
def test_egrad_and_hessian_match_the_closed_form(given):
    problem = Problem(cost, Sphere(3), egrad=egrad if given in ("grad", "both") else None,
                      ehess=ehess if given in ("hess", "both") else None)
    g, hvp = problem.egrad_and_hessian(X)
    np.testing.assert_allclose(g, egrad(X), rtol=0, atol=8 * EPS)
    np.testing.assert_allclose(hvp(U), rhess(X, U), rtol=0, atol=16 * EPS)
    hvp(U)
    # One gradient pass for the gradient and every product; no cost evaluation.
    assert (problem.nfev, problem.ngev, problem.nhev) == (0, 1, 2)
    problem.egrad_and_hessian(-X)
    assert (problem.nfev, problem.ngev, problem.nhev) == (0, 2, 2)


@pytest.mark.parametrize("given", ["grad", "both"])
def test_the_users_gradient_is_the_one_handed_out(given):
    # A user gradient three times the true one (a deliberate mismatch): the problem
    # must return it as given, not autograd's.
    problem = Problem(cost, Sphere(3), egrad=lambda x: 3.0 * egrad(x),
                      ehess=ehess if given == "both" else None)
    g, _ = problem.egrad_and_hessian(X)
    np.testing.assert_array_equal(g, 3.0 * egrad(X))
    _, g = problem.cost_and_egrad(X)
    np.testing.assert_array_equal(g, 3.0 * egrad(X))


def test_the_users_hessian_is_the_one_handed_out():
    problem = Problem(cost, Sphere(3), ehess=lambda x, u: 3.0 * ehess(x, u))
    hvp = problem.hessian_at(X, egrad(X))
    h = 3.0 * ehess(X, U)
    np.testing.assert_allclose(hvp(U), h - (X @ h) * X - (X @ egrad(X)) * U, rtol=0,
                               atol=16 * EPS)


def test_hessian_at_a_new_point_traces_the_gradient_there():
    # hessian_at without a cached trace differentiates the gradient at its own x.
    problem = Problem(cost, Sphere(3))
    y = np.array([0.0, 1.0, 0.0])
    u = np.array([1.0, 0.0, 0.0])
    np.testing.assert_allclose(problem.hessian_at(y, egrad(y))(u), rhess(y, u), rtol=0,
                               atol=16 * EPS)


def test_trust_regions_with_a_closed_form_hessian_and_the_autograd_gradient():
    # hess without grad: the gradient at each proposal comes from autograd. This
    # crashed at the first accepted step (the autograd gradient was only built
    # without a user Hessian).
    res = minimize(cost, Sphere(3), x0=X, method="trust-regions", hess=ehess)
    both = minimize(cost, Sphere(3), x0=X, method="trust-regions", grad=egrad, hess=ehess)
    assert res.success and res.nit == both.nit and res.nhev == both.nhev
    np.testing.assert_allclose(res.x, both.x, rtol=0, atol=64 * EPS)
    assert -res.fun == pytest.approx(np.linalg.eigvalsh(A)[-1], rel=8 * EPS)


def test_cost_and_rgrad_projects_the_gradient_and_reuses_a_known_cost():
    calls = []

    def counted(x):
        calls.append(1)
        return cost(x)

    problem = Problem(counted, Sphere(3), egrad=egrad)
    f, g, r = problem.cost_and_rgrad(X, f=-7.0)  # the cost is known: not called again
    assert f == -7.0 and calls == [] and (problem.nfev, problem.ngev) == (0, 1)
    np.testing.assert_array_equal(g, egrad(X))
    np.testing.assert_allclose(r, egrad(X) - (X @ egrad(X)) * X, rtol=0, atol=8 * EPS)
    f, _, _ = problem.cost_and_rgrad(X)
    assert f == cost(X) and calls == [1] and (problem.nfev, problem.ngev) == (1, 2)


def test_measure_defaults_to_the_norm_of_the_riemannian_gradient():
    r = np.array([3.0, 4.0, 0.0])
    assert Problem(cost, Sphere(3)).measure(X, None, r) == 5.0
    seen = []
    custom = Problem(cost, Sphere(3), measure=lambda *a: seen.append(a) or 0.25)
    assert custom.measure(X, "e", r) == 0.25 and seen == [(X, "e", r)]


# --- counts and budget ------------------------------------------------------------------


def test_counts_start_at_zero_and_grow_by_one_per_evaluation():
    problem = Problem(cost, Sphere(3))
    assert (problem.nfev, problem.ngev, problem.nhev, problem.nonfinite) == (0, 0, 0, 0)
    problem.cost(X)
    assert (problem.nfev, problem.ngev) == (1, 0)
    problem.cost_and_egrad(X)  # autograd: one forward pass, counted as a cost evaluation
    assert (problem.nfev, problem.ngev) == (2, 1)
    problem.cost_and_egrad(X, f=1.0)  # autograd recomputes the cost with the gradient
    assert (problem.nfev, problem.ngev) == (3, 2)
    assert problem.nonfinite == 0


def test_nonfinite_costs_are_counted_one_by_one():
    problem = Problem(lambda x: np.nan if x[0] > 0 else 1.0, Sphere(3), egrad=egrad)
    assert np.isnan(problem.cost(X))
    assert problem.nonfinite == 1
    problem.cost(-X)
    assert problem.nonfinite == 1
    problem.cost_and_egrad(X)
    assert problem.nonfinite == 2 and problem.nfev == 3


def test_the_evaluation_budget_refuses_the_evaluation_beyond_it():
    calls = []
    problem = Problem(lambda x: calls.append(1) or cost(x), Sphere(3), egrad=egrad, maxfev=2)
    problem.cost(X)
    problem.cost_and_egrad(X)
    with pytest.raises(EvaluationBudgetExhausted):
        problem.cost(X)
    with pytest.raises(EvaluationBudgetExhausted):
        problem.cost_and_egrad(X)
    assert problem.nfev == 2 and len(calls) == 2
    problem.cost_and_egrad(X, f=0.0)  # a known cost with the user's gradient: free
    assert problem.nfev == 2 and problem.ngev == 2


# --- dtypes --------------------------------------------------------------------------------


def test_gradients_take_the_dtype_of_the_point_part_by_part():
    x32 = X.astype(np.float32)
    problem = Problem(lambda x: -(x @ (A @ x)), Sphere(3))  # float64 data promote
    _, g = problem.cost_and_egrad(x32)
    assert g.dtype == np.float32
    np.testing.assert_allclose(g, egrad(X), rtol=4 * np.finfo(np.float32).eps)
    point = (x32, np.zeros(2))
    cast = _as_dtype_of(point, (egrad(X), np.ones(2, dtype=np.float32)))
    assert [c.dtype for c in cast] == [np.float32, np.float64]
    same = np.ones(3, dtype=np.float32)
    assert _as_dtype_of(x32, same) is same  # no copy when the dtype is already right


# --- errors --------------------------------------------------------------------------------


def test_non_callables_are_refused_with_their_type():
    with pytest.raises(TypeError, match="^cost must be callable, got int$"):
        Problem(3, Sphere(3))
    with pytest.raises(TypeError, match="^grad must be callable or None, got str$"):
        Problem(cost, Sphere(3), egrad="g")
    with pytest.raises(TypeError, match="^hess must be callable or None, got float$"):
        Problem(cost, Sphere(3), ehess=1.0)


def test_a_cost_that_is_not_a_scalar_is_refused():
    with pytest.raises(CostError, match=r"^the cost must return a scalar, got an array of "
                                        r"shape \(1,\)$"):
        Problem(lambda x: x[:1], Sphere(3)).cost(X)
    with pytest.raises(CostError, match=r"^the cost must return a real number \(float\), got str$"):
        Problem(lambda x: "f", Sphere(3)).cost(X)
    with pytest.raises(CostError, match=r"^the cost must return a real number \(float\), got "
                                        r"ndarray of dtype complex128$"):
        Problem(lambda x: np.array(1j), Sphere(3)).cost(X)


def test_a_derivative_of_the_wrong_shape_is_refused_with_both_shapes():
    with pytest.raises(CostError, match=r"^the gradient has shape \(4,\), but the point has "
                                        r"shape \(3,\)$"):
        Problem(cost, Sphere(3), egrad=lambda x: np.ones(4)).cost_and_egrad(X)
    hvp = Problem(cost, Sphere(3), ehess=lambda x, u: np.ones((3, 1))).hessian_at(X, egrad(X))
    with pytest.raises(CostError, match=r"^the Hessian-vector product has shape \(3, 1\), "
                                        r"but the point has shape \(3,\)$"):
        hvp(U)


def test_a_derivative_of_the_wrong_kind_is_refused():
    product = Product([Sphere(3), Euclidean(2)])
    point = (X, np.zeros(2))
    with pytest.raises(CostError, match=r"^the gradient must be a tuple of arrays shaped like "
                                        r"the point \(\(3,\), \(2,\)\), got ndarray$"):
        Problem(lambda p: anp.sum(p[1]), product, egrad=lambda p: np.ones(3)).cost_and_egrad(point)
    with pytest.raises(CostError, match=r"^the gradient must be an array shaped like the point "
                                        r"\(3,\), got tuple$"):
        Problem(cost, Sphere(3), egrad=lambda x: (x, x)).cost_and_egrad(X)
    real = "the gradient must be a real array (or a tuple of them for a Product) shaped like "
    with pytest.raises(CostError) as err:
        Problem(cost, Sphere(3), egrad=lambda x: x + 1j).cost_and_egrad(X)
    assert str(err.value) == real + "the point, got ndarray of dtype complex128"
    with pytest.raises(CostError) as err:
        Problem(lambda p: anp.sum(p[1]), product, egrad=lambda p: (p[0], [0.0, 0.0])).cost_and_egrad(point)
    assert str(err.value) == real + "the point, got list"
