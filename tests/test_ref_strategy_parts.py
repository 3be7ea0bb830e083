"""The parts of the strategies the optimizers and the history call directly
(``spherenet.strategies``): angles moved, options, the derivatives handed to the
solvers and their dtypes, and the "step, then normalize" geometry of the projection
strategy, one method at a time. References: plain NumPy per factor (normalize, the
angle atan2(||y - <x,y> x||, <x,y>), the penalty mu (||w||^2 - 1)^2 differentiated by
hand)."""

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.strategies import (NoConstraint, Penalty, Projection, ProjectionGeometry,
                                  Reparam, Riemannian, Strategy, get_strategy)

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)


def column_angle(a, b):
    x, y = a / np.linalg.norm(a), b / np.linalg.norm(b)
    c = x @ y
    return np.arctan2(np.linalg.norm(y - c * x), c)


# --- angles ----------------------------------------------------------------------------------


def test_angle_normalizes_each_factor_and_adds_the_squares():
    # Columns scaled to norms 0.5 .. 2 (a projection run with epsilon, or drift): the
    # angle is that of the normalized columns; the Euclidean block does not count.
    manifold = Product([Oblique(3, 4), Euclidean(2)])
    rng = np.random.default_rng(3)
    a = (Oblique(3, 4).random_point(rng=rng) * np.array([0.5, 1.0, 2.0, 1.5]), np.zeros(2))
    b = (Oblique(3, 4).random_point(rng=rng) * np.array([2.0, 0.7, 1.0, 0.5]), np.ones(2))
    expected = np.sqrt(sum(column_angle(a[0][:, j], b[0][:, j]) ** 2 for j in range(4)))
    got = Projection(manifold).angle(a, b)
    assert got == pytest.approx(expected, rel=16 * EPS64) and isinstance(got, float)
    assert Projection(manifold).angle(a, a) == pytest.approx(0.0, abs=1e-7)


def test_angle_of_a_single_factor_is_its_geodesic_distance():
    t = 0.7
    a = np.array([1.0, 0.0])
    b = np.array([np.cos(t), np.sin(t)])
    for strategy in (Riemannian(Sphere(2)), Projection(Sphere(2))):
        assert strategy.angle(a, b) == pytest.approx(t, rel=4 * EPS64)
    assert Projection(Sphere(2)).angle(0.5 * a, 3.0 * b) == pytest.approx(t, rel=4 * EPS64)


# --- options and construction --------------------------------------------------------------


def test_a_strategy_needs_a_manifold():
    with pytest.raises(TypeError, match="^a strategy needs a Manifold, got int$"):
        Riemannian(3)


def test_repr_names_the_strategy_and_the_manifold():
    assert repr(Penalty(Sphere(3))) == f"Penalty({Sphere(3)!r})"


def test_get_strategy_passes_options_and_refuses_them_with_an_instance():
    assert get_strategy("penalty", Sphere(3), mu=5.0).mu == 5.0
    assert get_strategy(Penalty, Sphere(3), mu=3.0).mu == 3.0
    with pytest.raises(TypeError, match="^options cannot be given with a Strategy instance$"):
        get_strategy(Penalty(Sphere(3)), Sphere(3), mu=2.0)
    assert Penalty(Sphere(3)).mu == 1.0  # the default


def test_riemannian_options_override_the_factors_choices():
    manifold = Product([Sphere(3), Euclidean(2)])
    only_transport = Riemannian(manifold, transport="parallel").geometry.manifolds[0]
    assert (only_transport.retraction, only_transport.transport) == ("exp", "parallel")
    only_retraction = Riemannian(Sphere(3), retraction="projection").geometry
    assert (only_retraction.retraction, only_retraction.transport) == ("projection", "projection")


def test_only_strategies_that_keep_the_weights_as_the_variable_take_a_user_hessian():
    assert Riemannian(Sphere(3)).supports_user_hessian()
    assert Projection(Sphere(3)).supports_user_hessian()
    assert not Reparam(Sphere(3)).supports_user_hessian()


def test_infeasible_advice():
    assert NoConstraint(Sphere(2)).infeasible_advice() == (
        "strategy 'none' ignores the constraint: use 'riemannian' to keep it")
    assert Penalty(Sphere(2), mu=4.0).infeasible_advice() == (
        "the penalty (mu=4) only pulls the weights towards the sphere, by about 1/mu: raise "
        "mu, or use strategy='riemannian' to keep them on it")
    assert Strategy(Sphere(2)).infeasible_advice() == (
        "the iterates drifted off the manifold; please report it, with the strategy, method "
        "and dtype")


# --- derivatives --------------------------------------------------------------------------------


def test_user_hessian_is_evaluated_at_the_weights():
    x = np.array([0.6, 0.0, 0.8])
    u = np.array([0.0, 1.0, 0.0])
    ehess = lambda w, v: 12.0 * w**2 * v  # of sum(w^4)  # noqa: E731
    np.testing.assert_array_equal(Riemannian(Sphere(3)).ehess(ehess, x, u), ehess(x, u))
    calls = []

    def counted(w, v):
        calls.append(w.copy())
        return ehess(w, v)

    res = minimize(lambda w: np.sum(w**4), Sphere(3), x0=np.array([0.6, 0.0, 0.8]),
                   method="trust-regions", hess=counted, maxiter=3)
    assert calls and res.nhev == len(calls)
    assert all(abs(np.linalg.norm(w) - 1.0) <= 4 * EPS64 for w in calls)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_penalty_derivatives_by_hand_keep_the_dtype(dtype):
    mu = 3.0
    s = Penalty(Sphere(3), mu=mu)
    z = np.array([0.9, 0.3, 0.6], dtype=dtype)
    u = np.array([0.5, -1.0, 0.25], dtype=dtype)
    z64, u64 = z.astype(np.float64), u.astype(np.float64)
    gap = z64 @ z64 - 1.0
    g = s.egrad(lambda w: np.zeros_like(w), z)
    h = s.ehess(lambda w, v: np.zeros_like(v), z, u)
    assert g.dtype == dtype and h.dtype == dtype
    tol = 16 * np.finfo(dtype).eps
    np.testing.assert_allclose(g, 4 * mu * gap * z64, rtol=tol, atol=tol)
    np.testing.assert_allclose(h, 4 * mu * (gap * u64 + 2 * (z64 @ u64) * z64), rtol=tol,
                               atol=tol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reparam_gradient_keeps_the_dtype(dtype):
    s = Reparam(Sphere(3))
    v = np.array([0.0, 3.0, 4.0], dtype=dtype)  # ||v|| = 5, w = (0, 0.6, 0.8)
    g = s.egrad(lambda w: np.array([1.0, 1.0, 0.0], dtype=dtype), v)
    w = np.array([0.0, 0.6, 0.8])
    expected = (np.array([1.0, 1.0, 0.0]) - 0.6 * w) / 5.0  # P_w(g) / ||v||
    assert g.dtype == dtype
    tol = 8 * np.finfo(dtype).eps
    np.testing.assert_allclose(g, expected, rtol=tol, atol=tol)


# --- reparam -------------------------------------------------------------------------------------


def test_reparam_normalizes_along_the_manifolds_axis():
    s = Reparam(Oblique(3, 3, axis=1))  # square: a wrong axis would not even fail to broadcast
    v = np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [1.0, 1.0, 1.0]])
    w = s.to_weights(v)
    np.testing.assert_allclose(w, v / np.linalg.norm(v, axis=1, keepdims=True), rtol=4 * EPS64)


def test_reparam_variable_is_a_copy_of_the_weights():
    s = Reparam(Product([Sphere(2), Euclidean(1)]))
    w = (np.array([0.6, 0.8]), np.array([5.0]))
    z = s.to_variable(w)
    assert not any(np.shares_memory(a, b) for a, b in zip(z, w))
    np.testing.assert_array_equal(z[0], w[0])


def test_reparam_extras_without_a_sphere_factor_is_nan():
    assert np.isnan(Reparam(Euclidean(2)).extras(np.ones(2))["v_norm"])
    assert Reparam(Sphere(2)).extras(np.array([3.0, 4.0])) == {"v_norm": 5.0}


# --- the projection geometry ----------------------------------------------------------------


def test_projection_geometry_steps_in_the_ambient_space_then_normalizes():
    geometry = ProjectionGeometry(Oblique(2, 3), epsilon=0.5)
    x = np.array([[1.0, 0.6, 0.0], [0.0, 0.8, 1.0]])
    u = np.array([[0.0, 0.4, 3.0], [1.0, 0.2, -1.0]])
    y = x + u
    expected = y / (0.5 + np.linalg.norm(y, axis=0))
    np.testing.assert_allclose(geometry.retr(x, u), expected, rtol=4 * EPS64)
    np.testing.assert_allclose(geometry.exp(x, u), expected, rtol=4 * EPS64)
    np.testing.assert_array_equal(geometry.log(x, y), y - x)  # the flat log
    np.testing.assert_array_equal(geometry.inverse_retr(x, y), y - x)
    out = np.empty_like(x)
    assert geometry.gradient_step(x, -u, 1.0, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=4 * EPS64)


def test_projection_geometry_gradient_step_into_a_product_buffer():
    geometry = ProjectionGeometry(Product([Sphere(2), Euclidean(1)]))
    x = (np.array([1.0, 0.0]), np.array([2.0]))
    g = (np.array([0.0, -1.0]), np.array([1.0]))
    out = (np.empty(2), np.empty(1))
    assert geometry.gradient_step(x, g, 1.0, out=out) is out
    np.testing.assert_allclose(out[0], np.array([1.0, 1.0]) / np.sqrt(2.0), rtol=4 * EPS64)
    np.testing.assert_array_equal(out[1], [1.0])


def test_projection_geometry_keeps_float32():
    geometry = ProjectionGeometry(Sphere(3))
    x = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    u = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    y = geometry.retr(x, u)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, np.array([1.0, 1.0, 0.0]) / np.sqrt(2.0), rtol=2 * EPS32)


def test_projection_geometry_delegates_sampling_and_checks():
    sphere = Sphere(4)
    geometry = ProjectionGeometry(sphere)
    x = geometry.random_point(rng=5, dtype=np.float32)
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, sphere.random_point(rng=5, dtype=np.float32))
    v = geometry.random_tangent(x, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(
        v, Euclidean(4).random_tangent(x, rng=np.random.default_rng(2)))
    zero = geometry.zero_vector(x)
    assert zero.dtype == np.float32 and zero.shape == (4,) and not np.any(zero)
    assert geometry.violation(2.0 * x.astype(np.float64)) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(geometry.project_point(np.array([0.0, 3.0, 0.0, 4.0])),
                               [0.0, 0.6, 0.0, 0.8], rtol=4 * EPS64)
    assert geometry.check_point(x) is x
    with pytest.raises(ValueError, match="x0 is off"):
        geometry.check_point(2.0 * x, name="x0")
    with pytest.raises(ValueError, match="x0 is off"):
        geometry.check_point(1.01 * x, atol=1e-3, name="x0")
    geometry.check_point(1.001 * x, atol=1e-2)  # within the tolerance given, not the default
    with pytest.raises(ValueError, match="check_point: point is off"):
        geometry.check_point(2.0 * x)
    u = np.ones(4, np.float32)  # any ambient vector is a tangent vector here
    assert geometry.check_tangent(x, u) is u
    with pytest.raises(ValueError, match="finite"):
        geometry.check_tangent(x, np.full(4, np.nan, np.float32))
    with pytest.raises(TypeError, match="exp: u has dtype float64 but x has float32"):
        geometry.exp(x, np.ones(4))


def test_the_base_measure_is_the_norm_of_the_riemannian_gradient():
    rgrad = np.array([[3.0, 0.0], [4.0, 12.0]])
    z = np.array([[0.0, 1.0], [1.0, 0.0]])
    for strategy in (Riemannian(Oblique(2, 2)), NoConstraint(Oblique(2, 2))):
        assert strategy.measure(z, None, rgrad) == pytest.approx(13.0, rel=4 * EPS64)


def test_angle_adds_the_squares_over_every_sphere_factor():
    manifold = Product([Sphere(2), Euclidean(1), Sphere(3)])
    s, t = 0.3, 0.4
    a = (np.array([1.0, 0.0]), np.zeros(1), np.array([0.0, 0.0, 1.0]))
    b = (np.array([np.cos(s), np.sin(s)]), np.ones(1), np.array([np.sin(t), 0.0, np.cos(t)]))
    expected = np.hypot(s, t)
    assert Riemannian(manifold).angle(a, b) == pytest.approx(expected, rel=4 * EPS64)
    assert Projection(manifold).angle(a, b) == pytest.approx(expected, rel=4 * EPS64)
