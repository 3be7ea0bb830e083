"""``maxfev``: the limit on cost evaluations, for every solver and step rule.

The count is checked twice: against ``nfev`` of the result and against an
independent count of the calls of the user's cost. The point returned at the
budget is pinned to the iterate of an unlimited run with the same start.
"""

import functools
import math

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Oblique, Sphere, minimize

A = np.diag(np.linspace(1.0, 10.0, 12))
METHODS = {
    "sd": {},
    "cg": {},
    "trust-regions": {},
    "lbfgs": {},
    "bb": {},
    "rsgd": {"lr": 0.02},
    "radam": {"lr": 0.02},
}


class CountedCost:
    """-x'Ax with its gradient and Hessian, counting the calls of the cost alone."""

    def __init__(self):
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return -(x @ (A @ x))

    @staticmethod
    def grad(x):
        return -2.0 * (A @ x)

    @staticmethod
    def hess(x, u):
        return -2.0 * (A @ u)


def _run(method, maxfev, dtype=np.float64, **extra):
    cost = CountedCost()
    x0 = Sphere(12).random_point(np.random.default_rng(3), dtype=dtype)
    result = minimize(cost, Sphere(12), x0=x0, method=method, grad=cost.grad, hess=cost.hess,
                      maxfev=maxfev, maxiter=200, **METHODS[method], **extra)
    return result, cost.calls


@functools.lru_cache(maxsize=None)
def _unlimited(method):
    return _run(method, None)[0]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("maxfev", [1, 2, 3, 4, 7, 12])
def test_nfev_never_exceeds_maxfev_and_counts_every_call_of_the_cost(method, maxfev):
    result, calls = _run(method, maxfev)
    assert result.nfev <= maxfev
    # With the gradient and Hessian given, every call of the cost is counted.
    assert calls == result.nfev
    full = _unlimited(method)
    if full.nfev > maxfev:  # the unlimited run needs more: the budget stops this one
        assert result.status == 7 and not result.success
        assert f"maxfev={maxfev}" in result.message
    else:
        assert result.status == full.status and result.nfev == full.nfev
    assert len(result.history["cost"]) == result.nit + 1


@pytest.mark.parametrize("method", METHODS)
def test_the_result_at_the_budget_is_the_unlimited_runs_iterate(method):
    full = _unlimited(method)
    assert full.status != 7
    for maxfev in (3, 6, 10):
        limited, _ = _run(method, maxfev)
        if limited.status != 7:
            continue
        # The same path, cut short: the last iterate whose cost and gradient are known.
        assert limited.nit <= full.nit
        assert limited.fun == full.history["cost"][limited.nit]
        assert limited.grad_norm == full.history["grad_norm"][limited.nit]
        np.testing.assert_array_equal(limited.history["cost"],
                                      full.history["cost"][: limited.nit + 1])


@pytest.mark.parametrize("method", ["sd", "cg", "trust-regions", "lbfgs", "bb"])
def test_a_budget_equal_to_the_runs_own_count_changes_nothing(method):
    full = _unlimited(method)
    exact, _ = _run(method, full.nfev)
    assert exact.status == full.status and exact.nit == full.nit
    np.testing.assert_array_equal(exact.x, full.x)
    # One evaluation less and the run stops at the budget, not exceeding it.
    short, _ = _run(method, full.nfev - 1)
    assert short.status == 7 and short.nfev == full.nfev - 1


@pytest.mark.parametrize("method", METHODS)
def test_autograd_costs_on_a_product_of_spheres_keep_the_budget_in_float32(method):
    manifold = Oblique(4, 6)
    B = np.random.default_rng(0).standard_normal((4, 4))
    B = (B + B.T).astype(np.float32)
    x0 = manifold.random_point(np.random.default_rng(1), dtype=np.float32)
    calls = []

    def cost(x):
        calls.append(1)
        return -anp.sum(x * anp.dot(B, x))

    for maxfev in (1, 5, 9):
        calls.clear()
        result = minimize(cost, manifold, x0=x0, method=method, maxfev=maxfev,
                          **METHODS[method])
        assert result.nfev <= maxfev
        assert result.x.dtype == np.float32
        if method != "trust-regions":  # trust regions also trace the cost for the Hessian
            assert len(calls) == result.nfev


def test_maxfev_inf_or_none_is_no_limit():
    a, _ = _run("cg", None)
    b, _ = _run("cg", math.inf)
    assert a.nfev == b.nfev and a.status == b.status == 0


@pytest.mark.parametrize("bad, error", [
    (0, ValueError), (-3, ValueError), (2.5, ValueError), (math.nan, ValueError),
    (True, TypeError), ("10", TypeError), ([5], TypeError),
])
def test_bad_maxfev_is_refused_with_a_message(bad, error):
    cost = CountedCost()
    with pytest.raises(error, match="maxfev must be an int >= 1 or None, got"):
        minimize(cost, Sphere(12), rng=0, maxfev=bad)
    assert cost.calls == 0
