"""Riemannian steepest descent (``minimize(method="sd")``) step by step against a plain
NumPy transcription: x_{k+1} = R_{x_k}(-a_k grad f(x_k)) on the sphere, with the
projection retraction (x + u) / ||x + u||, grad f = P_x(egrad); the step a_k is the one
the line search returns, and the line search is handed d = -grad f(x_k), f(x_k) and the
slope <grad f, d> = -||grad f||^2."""

import numpy as np
import pytest

from spherenet import Sphere, minimize
from spherenet.optim.line_search import BacktrackingLineSearch

EPS = np.finfo(np.float64).eps
A = np.diag([1.0, 2.0, 3.0, 6.0])


def cost(x):
    return -(x @ (A @ x))


def rgrad(x):
    g = -2.0 * (A @ x)
    return g - (x @ g) * x


class Recording(BacktrackingLineSearch):
    """The default search, recording what the solver hands it and what it returns."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def search(self, problem, x, d, f0, df0):
        out = super().search(problem, x, d, f0, df0)
        self.calls.append((np.array(x), np.array(d), f0, df0, out[0], np.array(out[1])))
        return out


@pytest.mark.parametrize("retraction", ["projection", "exp"])
def test_each_search_gets_minus_the_gradient_at_the_last_iterate(retraction):
    x0 = np.array([0.5, 0.5, 0.5, 0.5])
    search = Recording()
    res = minimize(cost, Sphere(4, retraction=retraction), x0=x0, method="sd",
                   line_search=search, maxiter=6, gtol=0.0)
    assert res.nit == 6 and len(search.calls) == 6  # the given search, once per iteration
    x = x0
    for k, (xk, d, f0, df0, step, new_x) in enumerate(search.calls):
        np.testing.assert_allclose(xk, x, rtol=0, atol=4 * EPS)
        g = rgrad(x)
        np.testing.assert_allclose(d, -g, rtol=0, atol=16 * EPS)
        assert f0 == pytest.approx(cost(x), rel=4 * EPS)
        assert df0 == pytest.approx(-(g @ g), rel=16 * EPS)
        assert res.history["step_size"][k + 1] == step
        x = new_x
    np.testing.assert_allclose(res.x, x, rtol=0, atol=0)
    # the first step by hand: the default search tries the unit step first along
    # d / ||d||, which decreases the cost enough here (Armijo, c = 1e-4)
    g = rgrad(x0)
    u = -g / np.linalg.norm(g)
    first = (x0 + u) / np.linalg.norm(x0 + u) if retraction == "projection" else (
        np.cos(1.0) * x0 + np.sin(1.0) * u)
    np.testing.assert_allclose(search.calls[0][5], first, rtol=0, atol=8 * EPS)
    assert search.calls[0][4] == pytest.approx(1.0, rel=4 * EPS)


def test_a_run_without_a_line_search_uses_the_backtracking_search():
    x0 = np.array([0.5, 0.5, 0.5, 0.5])
    default = minimize(cost, Sphere(4), x0=x0, method="sd", maxiter=8, gtol=0.0)
    given = minimize(cost, Sphere(4), x0=x0, method="sd", maxiter=8, gtol=0.0,
                     line_search=Recording())
    np.testing.assert_array_equal(default.x, given.x)
    np.testing.assert_array_equal(default.history["step_size"], given.history["step_size"])


def test_a_step_below_xtol_stops_the_run():
    x0 = np.array([0.5, 0.5, 0.5, 0.5])
    res = minimize(cost, Sphere(4), x0=x0, method="sd", xtol=0.1, gtol=0.0)
    steps = res.history["step_size"]
    assert res.status == 4 and steps[-1] <= 0.1 and np.all(steps[1:-1] > 0.1)
    assert res.message == f"step size {steps[-1]:.3e} <= xtol 1.0e-01"


def test_telemetry_of_steepest_descent_steps():
    x0 = np.array([0.5, 0.5, 0.5, 0.5])
    res = minimize(cost, Sphere(4), x0=x0, method="sd", maxiter=4, gtol=0.0, telemetry=True)
    h = res.history
    assert np.all(h["tangency"][1:] <= 64 * EPS)  # the step is minus the Riemannian gradient
    np.testing.assert_allclose(h["chord"][1:], 2.0 * np.sin(h["angle"][1:] / 2.0), rtol=64 * EPS)
