"""What a run costs before its first iteration: no generator made when x0 is given, a cost's
signature read once, autograd's gradient built only when a solver asks for it; the checks
these shortcuts stand beside still run."""

import sys

import numpy as np
import pytest

from spherenet import Sphere, minimize
from spherenet.optim._problem import Problem

minimize_module = sys.modules["spherenet.minimize"]  # the name spherenet.minimize is the function

A = np.diag([1.0, 2.0, 5.0])


def _cost(x):
    return -(x @ A @ x)


def _grad(x):
    return -2.0 * (A @ x)


X0 = np.array([0.6, 0.0, 0.8])


def test_no_generator_is_made_when_x0_is_given(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a generator was made")

    monkeypatch.setattr(np.random, "default_rng", refuse)
    res = minimize(_cost, Sphere(3), x0=X0, method="sd", grad=_grad, maxiter=3)
    assert res.nit == 3
    with pytest.raises(AssertionError, match="a generator was made"):
        minimize(_cost, Sphere(3), method="sd", grad=_grad, maxiter=3)  # x0 drawn: needed


@pytest.mark.parametrize("rng, error", [(-1, ValueError), (True, TypeError), ("0", TypeError)])
def test_a_bad_rng_is_refused_even_when_x0_is_given(rng, error):
    with pytest.raises(error, match="rng must be"):
        minimize(_cost, Sphere(3), x0=X0, method="sd", grad=_grad, rng=rng)


def test_a_given_rng_is_still_used_for_x0():
    a = minimize(_cost, Sphere(3), method="sd", grad=_grad, maxiter=0, rng=5)
    b = minimize(_cost, Sphere(3), method="sd", grad=_grad, maxiter=0,
                 rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.x, b.x)


def test_the_signature_is_read_again_when_the_function_changes():
    def cost(x, batch=None):
        return _cost(x)

    assert minimize_module._positional(cost) == (1, 2)
    assert minimize_module._positional(cost) == (1, 2)    # kept
    cost.__defaults__ = None                              # batch now required
    assert minimize_module._positional(cost) == (2, 2)
    with pytest.raises(TypeError, match="takes 2 required positional arguments"):
        minimize(cost, Sphere(3), x0=X0, method="sd", maxiter=1)


def test_a_callable_object_is_read_every_time():
    class Cost:
        def __call__(self, x, batch):
            return _cost(x)

    cost = Cost()
    assert minimize_module._positional(cost) == (2, 2)
    assert cost not in minimize_module._POSITIONAL


def test_unknown_options_are_still_refused():
    with pytest.raises(TypeError, match="unknown option"):
        minimize(_cost, Sphere(3), x0=X0, method="sd", grad=_grad, beta_rule="HS")


def test_autograds_gradient_is_built_only_when_asked_for():
    problem = Problem(_cost, Sphere(3).unchecked, egrad=_grad)
    problem.cost_and_egrad(X0)
    assert problem._grad_fn is None
    # The trust regions' Hessian-vector products of a cost without ehess need it.
    g, hvp = problem.egrad_and_hessian(X0)
    assert problem._grad_fn is not None
    u = np.array([0.8, 0.0, -0.6])                       # tangent at X0
    # Riemannian Hessian of -x'Ax on the sphere: P(-2Au) - <x, egrad> u.
    expected = -2.0 * (A @ u) - ((-2.0 * (A @ u)) @ X0) * X0 - (X0 @ g) * u
    np.testing.assert_allclose(hvp(u), expected, rtol=0, atol=1e-14)


def test_the_line_with_a_known_square_norm_is_the_same_curve():
    M = Sphere(50, retraction="projection").unchecked
    x = M.random_point(rng=1)
    d = -M.random_tangent(x, rng=2)
    dd = float(np.vdot(d, d))
    for t in (1e-3, 0.5, 4.0):
        np.testing.assert_array_equal(M._retr_line(x, d, dd)(t), M._retr_line(x, d)(t))
