"""spherenet.strategies: the step-size identity between projection and Riemannian steps,
Keras semantics, the transformed gradients against finite differences, and Euclidean
factors left alone."""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.optim import RSGD
from spherenet.strategies import (STRATEGIES, NoConstraint, Penalty, Projection,
                                  ProjectionGeometry, Reparam, Riemannian, Strategy,
                                  get_strategy)


def _per_factor_dot(M, a, b):
    """<a, b> per sphere factor (keepdims), computed here, not by the manifold."""
    if isinstance(M, Sphere):
        return np.sum(a * b)
    return np.sum(a * b, axis=M.axis if isinstance(M.axis, tuple) else (M.axis,), keepdims=True)


SPHERE_LIKE = [
    pytest.param(lambda: Sphere(7), id="Sphere7"),
    pytest.param(lambda: Sphere(3, 4), id="Sphere3x4"),
    pytest.param(lambda: Oblique(5, 6), id="Oblique5x6"),
    pytest.param(lambda: Oblique(5, 6, axis=1), id="Oblique5x6-rows"),
]


TOL = 16 * np.finfo(np.float64).eps  # unit vectors: a few roundings per entry


# --- the step-size identity ----------------------------------------------------------


@pytest.mark.parametrize("make", SPHERE_LIKE)
def test_projection_step_is_a_rescaled_riemannian_step(make):
    M = make()
    R = M.with_options(retraction="projection")
    geometry = Projection(M).geometry
    rng = np.random.default_rng(0)
    for trial in range(20):
        x = M.random_point(rng)
        g = rng.standard_normal(M.shape) * 10.0 ** rng.uniform(-2, 1)
        xg = _per_factor_dot(M, x, g)
        # a step size with 1 - eta <x, g> > 0 in every factor
        eta = rng.uniform(0.01, 2.0)
        if np.any(1 - eta * xg <= 0):
            eta = 0.5 / np.max(xg)
        assert np.all(1 - eta * xg > 0)
        eta_prime = eta / (1 - eta * xg)
        projected = geometry.retr(x, -eta * g)
        riemannian = R.retr(x, -eta_prime * M.proj(x, g))
        np.testing.assert_allclose(projected, riemannian, rtol=0, atol=TOL)
        # and the same through the step rule, on a Sphere (one factor, one eta')
        if isinstance(M, Sphere):
            a, _ = RSGD(lr=eta).step(geometry, x, g, {"step": 0})
            b, _ = RSGD(lr=float(eta_prime)).step(R, x, g, {"step": 0})
            np.testing.assert_allclose(a, b, rtol=0, atol=TOL)


def test_the_identity_fails_with_momentum():
    M = Sphere(6, retraction="projection")
    geometry = Projection(M).geometry
    A = np.diag(np.arange(1.0, 7.0))

    def egrad(x):
        return -2 * A @ x

    def eta_prime(eta, x):
        return eta / (1 - eta * (x @ egrad(x)))

    x = M.random_point(3)
    eta, rule = 0.1, lambda lr: RSGD(lr=lr, momentum=0.9)
    # first step: identical with the rescaled step size
    p1, p_state = rule(eta).step(geometry, x, egrad(x), rule(eta).init(geometry, x))
    r1, r_state = rule(eta_prime(eta, x)).step(M, x, egrad(x), rule(eta).init(M, x))
    np.testing.assert_allclose(p1, r1, rtol=0, atol=TOL)
    # second step: the projection's momentum holds the normal part of the
    # first gradient, the Riemannian one a transported tangent vector: they
    # diverge although each step size is rescaled at the current point.
    p2, _ = rule(eta).step(geometry, p1, egrad(p1), p_state)
    r2, _ = rule(eta_prime(eta, r1)).step(M, r1, egrad(r1), r_state)
    assert np.linalg.norm(p2 - r2) > 1e-2
    assert abs(p_state["momentum"] @ p1) > 0.1  # not tangent
    assert abs(r_state["momentum"] @ r1) < 1e-15  # tangent


# --- Keras unit_norm semantics ----------------------------------------------------------


@pytest.mark.parametrize("axis", [0, 1])
def test_projection_with_epsilon_is_keras_unit_norm(axis):
    M = Oblique(4, 6, axis=axis)
    geometry = Projection(M, epsilon=1e-7).geometry
    rng = np.random.default_rng(1)
    x = M.random_point(rng)
    for scale in (1e-3, 1.0, 1e3):
        u = scale * rng.standard_normal(M.shape)
        w = x + u
        keras = w / (1e-7 + np.sqrt(np.sum(w * w, axis=axis, keepdims=True)))
        np.testing.assert_allclose(geometry.retr(x, u), keras, rtol=1e-15, atol=0)


def test_projection_geometry_contract():
    M = Sphere(3)
    G = ProjectionGeometry(M)
    x = np.array([1.0, 0.0, 0.0])
    u = np.array([1.0, 2.0, 3.0])
    assert G.egrad2rgrad(x, u) is u and G.proj(x, u) is u and G.transp(x, x, u) is u
    assert G.norm(x, u) == pytest.approx(np.sqrt(14), rel=1e-15)
    assert G.dim == 3 and G.shape == (3,)
    np.testing.assert_allclose(G.retr(x, u), (x + u) / np.linalg.norm(x + u), rtol=1e-15)


# --- transformed gradients against finite differences ---------------------------------


def _directional_fd(f, z, u, h=1e-5):
    def shift(t):
        if isinstance(z, tuple):
            return tuple(zi + t * ui for zi, ui in zip(z, u))
        return z + t * u
    return (f(shift(h)) - f(shift(-h))) / (2 * h)


def _inner(a, b):
    if isinstance(a, tuple):
        return sum(np.sum(ai * bi) for ai, bi in zip(a, b))
    return np.sum(a * b)


MANIFOLDS = [
    pytest.param(lambda: Sphere(5), id="Sphere5"),
    pytest.param(lambda: Oblique(4, 3), id="Oblique4x3"),
    pytest.param(lambda: Product([Oblique(3, 4), Euclidean(2)]), id="Product"),
]


def _test_function(M, seed):
    """A non-quadratic cost of the weights with its gradient and Hessian-vector product."""
    rng = np.random.default_rng(seed)
    parts = M.manifolds if isinstance(M, Product) else (M,)
    mats = [rng.standard_normal(m.shape) for m in parts]

    def per_part(w, C):
        s = anp.sum(w * C)
        return s + 0.1 * s**3 + 0.5 * anp.sum(w**4)

    def f(w):
        w = w if isinstance(w, tuple) else (w,)
        return sum(per_part(wi, C) for wi, C in zip(w, mats))

    def grad(w):
        ws = w if isinstance(w, tuple) else (w,)
        out = tuple(C * (1 + 0.3 * np.sum(wi * C) ** 2) + 2 * wi**3 for wi, C in zip(ws, mats))
        return out if isinstance(w, tuple) else out[0]

    def hess(w, u):
        ws, us = (w, u) if isinstance(w, tuple) else ((w,), (u,))
        out = tuple(0.6 * np.sum(wi * C) * np.sum(ui * C) * C + 6 * wi**2 * ui
                    for wi, ui, C in zip(ws, us, mats))
        return out if isinstance(w, tuple) else out[0]

    return f, grad, hess


def _random_variable(M, rng, scale=2.3):
    """An unconstrained variable: sphere factors scaled off the sphere."""
    x = M.random_point(rng)
    if isinstance(x, tuple):
        return tuple(xi * scale for xi in x)
    return x * scale


def _random_direction(M, rng):
    shapes = M.shape if isinstance(M, Product) else (M.shape,)
    u = tuple(rng.standard_normal(s) for s in shapes)
    return u if isinstance(M, Product) else u[0]


@pytest.mark.parametrize("make", MANIFOLDS)
def test_reparam_egrad_matches_finite_differences(make):
    M = make()
    f, grad, _ = _test_function(M, 0)
    s = Reparam(M)
    rng = np.random.default_rng(2)
    for trial in range(5):
        v = _random_variable(M, rng)
        u = _random_direction(M, rng)
        expected = _directional_fd(s.cost(f), v, u)
        np.testing.assert_allclose(_inner(s.egrad(grad, v), u), expected, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("make", MANIFOLDS)
def test_penalty_egrad_and_ehess_match_finite_differences(make):
    M = make()
    f, grad, hess = _test_function(M, 1)
    s = Penalty(M, mu=3.0)
    rng = np.random.default_rng(3)
    for trial in range(5):
        z = _random_variable(M, rng, scale=1.2)
        u = _random_direction(M, rng)
        expected = _directional_fd(s.cost(f), z, u)
        np.testing.assert_allclose(_inner(s.egrad(grad, z), u), expected, rtol=1e-7)
        # d/dt egrad(z + t u) = ehess(z, u), tested against every direction w
        w = _random_direction(M, rng)
        hess_fd = _directional_fd(lambda y: _inner(s.egrad(grad, y), w), z, u)
        np.testing.assert_allclose(_inner(s.ehess(hess, z, u), w), hess_fd, rtol=1e-6)


def test_penalty_value():
    s = Penalty(Oblique(2, 3), mu=2.0)
    z = np.array([[2.0, 0.0, 1.0], [0.0, 0.5, 0.0]])
    # (4 - 1)^2 + (0.25 - 1)^2 + 0 = 9.5625, times mu
    assert s.cost(lambda w: 1.0)(z) == pytest.approx(1.0 + 2.0 * 9.5625, rel=1e-15)
    assert s.violation(z) == pytest.approx(1.0, rel=1e-15)


def test_reparam_weights_and_v_norm():
    s = Reparam(Oblique(2, 2))
    v = np.array([[3.0, 0.0], [4.0, -2.0]])
    np.testing.assert_allclose(s.to_weights(v), [[0.6, 0.0], [0.8, -1.0]], rtol=1e-15)
    assert s.extras(v) == {"v_norm": 5.0}
    assert s.violation(v) <= 1e-15


# --- get_strategy ---------------------------------------------------------------------------


def test_get_strategy_by_name_class_and_instance():
    M = Sphere(3)
    for name, cls in STRATEGIES.items():
        s = get_strategy(name, M)
        assert type(s) is cls and s.name == name and s.manifold is M
        assert type(get_strategy(cls, M)) is cls
    p = Penalty(M, mu=7.0)
    assert get_strategy(p, M) is p
    assert get_strategy("riemannian", M, retraction="projection").geometry.retraction == "projection"
    assert get_strategy("projection", M, epsilon=1e-7).geometry.epsilon == 1e-7


def test_get_strategy_errors():
    M = Sphere(3)
    with pytest.raises(ValueError) as err:
        get_strategy("keras", M)
    assert all(name in str(err.value) for name in STRATEGIES)
    with pytest.raises(ValueError):
        get_strategy(None, M)
    with pytest.raises(TypeError):
        get_strategy(Penalty(M), M, mu=2.0)
    with pytest.raises(TypeError):
        get_strategy("penalty", M, nonsense=1)
    with pytest.raises(ValueError, match="mu"):
        get_strategy("penalty", M, mu=0.0)
    with pytest.raises(TypeError):
        Strategy("not a manifold")


# --- Euclidean factors are left alone ------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_strategies_leave_euclidean_factors_alone(name):
    M = Product([Oblique(3, 4), Euclidean(5)])
    s = get_strategy(name, M)
    rng = np.random.default_rng(4)
    W, b = M.random_point(rng)
    b = 100.0 * b  # far from any unit sphere
    z = s.to_variable((W, b))
    np.testing.assert_array_equal(z[1], b)
    np.testing.assert_array_equal(s.to_weights(z)[1], b)
    g = (rng.standard_normal((3, 4)), rng.standard_normal(5))
    np.testing.assert_array_equal(s.egrad(lambda w: g, z)[1], g[1])
    u = (rng.standard_normal((3, 4)), rng.standard_normal(5))
    if s.supports_user_hessian():
        np.testing.assert_array_equal(s.ehess(lambda w, v: v, z, u)[1], u[1])
    # the geometry moves the Euclidean part by plain addition
    moved = s.geometry.retr(z, (0.0 * g[0], g[1]))
    np.testing.assert_allclose(moved[1], b + g[1], rtol=1e-15)
    # and the violation ignores it
    assert s.violation(z) <= 1e-14
    if isinstance(s, Penalty):
        assert s.cost(lambda w: 0.0)(z) <= 1e-12


def test_riemannian_overrides_apply_to_sphere_factors_only():
    M = Product([Oblique(3, 4), Euclidean(5)])
    s = Riemannian(M, retraction="projection", transport="parallel")
    assert s.geometry.manifolds[0].retraction == "projection"
    assert s.geometry.manifolds[0].transport == "parallel"
    assert s.geometry.manifolds[1] == Euclidean(5)
    assert M.manifolds[0].retraction == "exp"  # the original is untouched


def test_unconstrained_geometries_are_flat():
    M = Product([Oblique(3, 4), Euclidean(5)])
    for cls in (Reparam, Penalty, NoConstraint):
        G = cls(M).geometry
        assert G == Product([Euclidean(3, 4), Euclidean(5)])
