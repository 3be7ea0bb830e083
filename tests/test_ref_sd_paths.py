"""Steepest descent and CG loops: failure exit, telemetry, products, custom line searches.

The failure exit at a non-finite gradient and the direction the loops form
for a product (a tuple gradient) are pinned here against plain NumPy: a
product of two flat spaces is the flat space of the concatenation, so a run
there must make the same iterates as on Euclidean(5).
"""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Product, minimize

TARGET = np.array([1.0, -2.0, 0.5, 3.0, -1.5])
WEIGHTS = np.array([1.0, 3.0, 0.5, 2.0, 4.0])


def flat_cost(z):
    return float(np.sum(WEIGHTS * (z - TARGET) ** 2))


def flat_grad(z):
    return 2.0 * WEIGHTS * (z - TARGET)


def test_a_product_makes_the_iterates_of_its_flat_space():
    M = Product([Euclidean(3), Euclidean(2)])
    runs = []
    for maxiter in (1, 2, 5):
        flat = minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method="sd", maxiter=maxiter,
                        grad=flat_grad)
        prod = minimize(lambda p: flat_cost(np.concatenate(p)), M,
                        x0=(np.zeros(3), np.zeros(2)), method="sd", maxiter=maxiter,
                        grad=lambda p: tuple(np.split(flat_grad(np.concatenate(p)), [3])))
        runs.append((flat, prod))
        assert prod.nit == flat.nit == maxiter
        # the same steps on the same numbers; the product sums its squares in two parts
        np.testing.assert_allclose(np.concatenate(prod.x), flat.x, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(prod.history["step_size"], flat.history["step_size"],
                                   rtol=1e-13)
    first = runs[0][1]
    assert first.fun < flat_cost(np.zeros(5))  # a descent step, not an ascent


def test_a_nonfinite_gradient_ends_at_the_last_finite_point():
    calls = []

    def grad(z):
        calls.append(1)
        return flat_grad(z) if len(calls) < 3 else np.full(5, np.nan)

    one = minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method="sd", maxiter=1, grad=flat_grad)
    res = minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method="sd", maxiter=10, grad=grad)
    assert res.status == -1 and not res.success
    assert res.nit == 2
    np.testing.assert_array_equal(res.x, one.x)           # the last finite point
    assert res.fun == one.fun == flat_cost(one.x)
    assert res.grad_norm == one.grad_norm == math.sqrt(float(np.sum(flat_grad(one.x) ** 2)))
    history = res.history
    assert len(history["cost"]) == res.nit + 1
    assert history["cost"][-1] == one.fun and history["grad_norm"][-1] == one.grad_norm
    assert math.isnan(history["step_size"][-1])
    assert "iteration 2" in res.message


def test_telemetry_changes_neither_iterates_nor_evaluation_counts():
    # with telemetry advance() also forms the step taken; it is handed
    # the cost the line search found: no second evaluation of it
    runs, points = [], []
    for telemetry in (False, True):
        seen = []
        points.append(seen)

        def cost(z, seen=seen):
            seen.append(z.tobytes())
            return flat_cost(z)

        runs.append(minimize(cost, Euclidean(5), x0=np.zeros(5), method="sd", maxiter=6,
                             grad=flat_grad, telemetry=telemetry))
    for run, seen in zip(runs, points):
        assert len(set(seen)) == len(seen) == run.nfev   # no point's cost asked for twice
    assert runs[0].nfev == runs[1].nfev and runs[0].ngev == runs[1].ngev
    np.testing.assert_array_equal(runs[0].x, runs[1].x)
    np.testing.assert_array_equal(runs[0].history["cost"], runs[1].history["cost"])


class _FunctionSearch:
    """A line search whose ``search`` is a plain function attribute (no ``__func__``)."""

    def __init__(self):
        def search(problem, x, d, f0, df0):
            y = x + 0.1 * d
            return 0.1, y, problem.cost(y)
        self.search = search


def test_a_line_search_given_as_a_function_attribute():
    res = minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method="sd", maxiter=3,
                   grad=flat_grad, line_search=_FunctionSearch())
    z = np.zeros(5)
    for _ in range(3):                       # fixed steps of 0.1 along -grad, in plain NumPy
        z = z - 0.1 * flat_grad(z)
    np.testing.assert_allclose(res.x, z, rtol=1e-15, atol=1e-15)


def test_conjugate_gradients_on_a_product_make_the_iterates_of_its_flat_space():
    M = Product([Euclidean(3), Euclidean(2)])
    for rule, restart in [("FR", None), ("PR+", None), ("HS", None), ("HZ", None),
                          ("HS", 0.1)]:
        flat = minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method="cg", maxiter=4,
                        grad=flat_grad, beta_rule=rule, restart=restart)
        prod = minimize(lambda p: flat_cost(np.concatenate(p)), M,
                        x0=(np.zeros(3), np.zeros(2)), method="cg", maxiter=4, beta_rule=rule,
                        restart=restart,
                        grad=lambda p: tuple(np.split(flat_grad(np.concatenate(p)), [3])))
        assert prod.nit == flat.nit
        np.testing.assert_allclose(np.concatenate(prod.x), flat.x, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(prod.history["cost"], flat.history["cost"], rtol=1e-12)


def test_conjugate_gradients_telemetry_changes_no_evaluation_count():
    runs = [minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method="cg", maxiter=6,
                     grad=flat_grad, telemetry=telemetry) for telemetry in (False, True)]
    assert runs[0].nfev == runs[1].nfev and runs[0].ngev == runs[1].ngev
    np.testing.assert_array_equal(runs[0].x, runs[1].x)


class _NoSearch:
    def __repr__(self):
        return "_NoSearch()"


@pytest.mark.parametrize("method", ["sd", "cg", "lbfgs"])
@pytest.mark.parametrize("bad", [_NoSearch(), "backtracking"], ids=["object", "string"])
def test_a_line_search_without_a_search_method_is_refused_word_for_word(method, bad):
    with pytest.raises(TypeError) as info:
        minimize(flat_cost, Euclidean(5), x0=np.zeros(5), method=method, maxiter=2,
                 grad=flat_grad, line_search=bad)
    assert str(info.value) == (
        "line_search must be None or an object with a method search(problem, x, d, f0, df0) "
        f"such as BacktrackingLineSearch(), got {bad!r}")
