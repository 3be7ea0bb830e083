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


def test_the_signature_is_read_again_when_signature_or_wrapped_is_set():
    import functools
    import inspect

    def cost(x):
        return _cost(x)

    assert minimize_module._positional(cost) == (1, 1)
    cost.__signature__ = inspect.Signature(
        [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ("x", "batch")])
    assert minimize_module._positional(cost) == (2, 2)        # read again, not the kept (1, 1)
    del cost.__signature__

    def inner(x, batch, more):
        return 0.0

    @functools.wraps(inner)
    def wrapper(*args):
        return inner(*args)

    # inspect.signature follows __wrapped__ (set in the function's __dict__ by wraps).
    assert minimize_module._positional(wrapper) == (3, 3)
    del wrapper.__wrapped__
    assert minimize_module._positional(wrapper) == (0, None)  # *args: read again


def test_strategies_with_the_same_options_share_one_geometry_kept_on_the_manifold():
    import copy
    import pickle

    from spherenet.strategies import Riemannian

    M = Sphere(4)
    a, b = Riemannian(M, retraction="exp"), Riemannian(M, retraction="exp")
    c = Riemannian(M, retraction="projection")
    assert a.geometry is b.geometry and a.geometry is not c.geometry
    assert (a.geometry.retraction, c.geometry.retraction) == ("exp", "projection")
    assert Riemannian(Sphere(4), retraction="exp").geometry is not a.geometry  # per instance
    # Not carried by copies or pickles (they would share a view of another instance).
    for other in (copy.copy(M), pickle.loads(pickle.dumps(M))):
        assert "_memos" not in other.__dict__
        assert Riemannian(other, retraction="exp").geometry is not a.geometry
    # A bad option is still named, each time (nothing kept from a failed build).
    for _ in range(2):
        with pytest.raises(ValueError, match="retraction"):
            Riemannian(M, retraction="bogus")
    with pytest.raises((TypeError, ValueError), match="retraction"):
        Riemannian(M, retraction=["exp"])  # unhashable: not kept, checked as before


@pytest.mark.parametrize("value, error", [(-1, ValueError), (True, TypeError), (1.5, ValueError),
                                          ("3", TypeError), (None, TypeError)])
def test_maxiter_checks_behind_the_int_shortcut(value, error):
    from spherenet.optim._loop import check_maxiter

    assert check_maxiter(7) == 7 and check_maxiter(7.0) == 7 and check_maxiter(0) == 0
    with pytest.raises(error, match="maxiter"):
        check_maxiter(value)


@pytest.mark.parametrize("value, error", [(-1e-9, ValueError), (float("nan"), ValueError),
                                          (True, TypeError), ("1e-6", TypeError)])
def test_tolerance_checks_behind_the_float_shortcut(value, error):
    from spherenet.optim._loop import check_tolerance

    assert check_tolerance("gtol", 1e-6) == 1e-6 and check_tolerance("gtol", 0.0) == 0.0
    assert check_tolerance("gtol", float("inf")) == float("inf")
    assert type(check_tolerance("gtol", np.float32(0.5))) is float
    with pytest.raises(error, match="gtol"):
        check_tolerance("gtol", value)


@pytest.mark.parametrize("value, error", [(0, ValueError), (-3, ValueError), (True, TypeError),
                                          (2.5, ValueError)])
def test_maxfev_checks_behind_the_int_shortcut(value, error):
    from spherenet.optim._loop import check_maxfev

    assert check_maxfev(5) == 5 and check_maxfev(None) is None and check_maxfev(5.0) == 5
    with pytest.raises(error, match="maxfev"):
        check_maxfev(value)


def test_default_ctol_by_dtype():
    from spherenet.optim._loop import default_ctol

    eps32 = float(np.finfo(np.float32).eps)
    assert default_ctol(np.zeros(3)) == 1e-6
    assert default_ctol(np.zeros(3, np.float32)) == 100 * eps32
    assert default_ctol((np.zeros(3), np.zeros(2, np.float32))) == 100 * eps32
    assert default_ctol((np.zeros(3), np.zeros(2))) == 1e-6


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "penalty"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_results_violation_is_the_distance_of_its_norm_to_one(strategy, dtype):
    # |‖x‖ - 1| of the returned point, from NumPy in float64 (the result's own shortcut for
    # one-factor strategies, the strategy's violation for the others).
    res = minimize(_cost, Sphere(3), x0=X0.astype(dtype), method="cg", grad=_grad,
                   strategy=strategy, maxiter=5)
    expected = abs(np.linalg.norm(np.asarray(res.x, dtype=np.float64)) - 1.0)
    assert abs(res.violation - expected) <= 4 * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x0, match", [
    (np.array([1e200, 0.0, 0.0]), "norm off 1"),
    (np.array([np.nan, 0.0, 1.0]), "NaN"),
    (np.array([np.inf, 0.0, 0.0]), "Inf"),
    (np.array([1e-200, 0.0, 0.0]), "norm off 1"),
    (np.array([0.6, 0.0, 0.8 + 1e-3]), "norm off 1"),
])
def test_an_off_sphere_x0_is_named_without_floating_point_warnings(x0, match, dtype):
    # pytest turns spherenet's RuntimeWarnings into errors: the one-factor check must not warn.
    if dtype == np.float32 and abs(x0[0]) == 1e200:
        x0 = np.array([1e30, 0.0, 0.0])
    with pytest.raises(ValueError, match=match):
        minimize(_cost, Sphere(3), x0=x0.astype(dtype), method="cg", grad=_grad, maxiter=1)
    Sphere(3).check_point(np.array([0.6, 0.0, 0.8], dtype=dtype))  # on the sphere: no error
