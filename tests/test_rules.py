"""spherenet.optim step rules (RSGD, RAdam), schedules and the Running wrapper."""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.optim import RAdam, RSGD, Running, schedules
from spherenet.strategies import Projection


def _column_dots(x, u):
    return np.sum(x * u, axis=0)


class SpyOblique(Oblique):
    """An Oblique manifold that records the tangent vectors handed to retr."""

    def __init__(self, *shape, **kwargs):
        super().__init__(*shape, **kwargs)
        self.seen = []

    def retr(self, x, u):
        self.seen.append(u)
        return super().retr(x, u)


GEOMETRIES = [
    pytest.param(lambda: Sphere(6), id="Sphere6-exp"),
    pytest.param(lambda: Sphere(6, retraction="projection"), id="Sphere6-projection"),
    pytest.param(lambda: Oblique(4, 5), id="Oblique4x5"),
    pytest.param(lambda: Oblique(4, 5, axis=1, retraction="projection"), id="Oblique4x5-rows"),
    pytest.param(lambda: Euclidean(3), id="Euclidean3"),
    pytest.param(lambda: Product([Oblique(3, 4), Euclidean(4)]), id="Product"),
]


def _gradient_like(M, rng):
    shapes = M.shape if isinstance(M, Product) else (M.shape,)
    g = tuple(rng.standard_normal(s) for s in shapes)
    return g if isinstance(M, Product) else g[0]


def _parts(x):
    return x if isinstance(x, tuple) else (x,)


# --- RSGD ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", GEOMETRIES)
def test_rsgd_without_momentum_is_one_retraction_of_the_gradient(make):
    M = make()
    rng = np.random.default_rng(0)
    x = M.random_point(rng)
    g = _gradient_like(M, rng)
    rule = RSGD(lr=0.3)
    new, state = rule.step(M, x, g, rule.init(M, x))
    scaled = tuple(-0.3 * r for r in _parts(M.egrad2rgrad(x, g)))
    expected = M.retr(x, scaled if isinstance(M, Product) else scaled[0])
    for a, b in zip(_parts(new), _parts(expected)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    for a, b in zip(_parts(new), _parts(M.gradient_step(x, g, 0.3))):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-15)
    assert state["step"] == 1 and state["momentum"] is None
    for xi in _parts(x):  # the input is not modified
        assert np.all(np.isfinite(xi))


def test_rsgd_keeps_float32():
    M = Oblique(3, 4)
    x = M.random_point(0, dtype=np.float32)
    new, _ = RSGD(lr=0.1, momentum=0.5).step(M, x, np.ones((3, 4), np.float32), {"step": 0,
                                                                              "momentum": None})
    assert new.dtype == np.float32


@pytest.mark.parametrize("transport", ["projection", "parallel"])
def test_momentum_buffer_is_transported_to_the_new_tangent_space(transport):
    M = Oblique(4, 6, transport=transport)
    rng = np.random.default_rng(1)
    x = M.random_point(rng)
    rule = RSGD(lr=0.2, momentum=0.9)
    state = rule.init(M, x)
    buffers = []
    for _ in range(4):
        g = rng.standard_normal(M.shape)
        old_x, old_buf = x, state["momentum"]
        x, state = rule.step(M, x, g, state)
        buf = state["momentum"]
        assert np.max(np.abs(_column_dots(x, buf))) < 1e-14
        # buf = T(0.9 * buf_old + rgrad) from old_x to x
        r = M.egrad2rgrad(old_x, g)
        expected = r if old_buf is None else 0.9 * old_buf + r
        np.testing.assert_allclose(buf, M.transp(old_x, x, expected), rtol=1e-13, atol=1e-15)
        buffers.append(buf)
    assert np.linalg.norm(buffers[-1]) > 0


def test_nesterov_second_step_is_pinned():
    # Written out on S^4 with the exponential map and the projection transport:
    # step 1 moves along rgrad + 0.9 rgrad; the buffer b1 = rgrad is transported;
    # step 2 moves along r2 + 0.9 (0.9 b1 + r2). Plain momentum moves along 0.9 b1 + r2.
    M = Sphere(5)
    rng = np.random.default_rng(2)
    x0 = M.random_point(rng)
    g1, g2 = rng.standard_normal(5), rng.standard_normal(5)

    def exp(x, u):
        t = np.linalg.norm(u)
        return np.cos(t) * x + np.sin(t) / t * u

    def proj(x, u):
        return u - (x @ u) * x

    expected = {}
    for nesterov, first in ((True, 1.9), (False, 1.0)):
        r1 = proj(x0, g1)
        x1 = exp(x0, -0.1 * first * r1)
        b1 = proj(x1, r1)
        r2 = proj(x1, g2)
        b2 = 0.9 * b1 + r2
        expected[nesterov] = exp(x1, -0.1 * (r2 + 0.9 * b2 if nesterov else b2))
    for nesterov in (True, False):
        rule = RSGD(lr=0.1, momentum=0.9, nesterov=nesterov)
        x, state = rule.step(M, x0, g1, rule.init(M, x0))
        x, state = rule.step(M, x, g2, state)
        np.testing.assert_allclose(x, expected[nesterov], rtol=0,
                                   atol=32 * np.finfo(np.float64).eps)
    assert np.linalg.norm(expected[True] - expected[False]) > 1e-2
    # first Nesterov step: direction rgrad + 0.9 * rgrad
    x1, _ = RSGD(lr=0.1, momentum=0.9, nesterov=True).step(M, x0, g1, {"step": 0,
                                                                      "momentum": None})
    np.testing.assert_allclose(x1, exp(x0, -0.19 * proj(x0, g1)), rtol=0,
                               atol=16 * np.finfo(np.float64).eps)


def test_weight_decay_acts_on_euclidean_factors_only():
    M = Product([Sphere(3), Euclidean(3)])
    rng = np.random.default_rng(3)
    x = M.random_point(rng)
    g = _gradient_like(M, rng)
    plain, _ = RSGD(lr=0.1).step(M, x, g, {"step": 0})
    decayed, _ = RSGD(lr=0.1, weight_decay=0.5).step(M, x, g, {"step": 0})
    np.testing.assert_allclose(decayed[0], plain[0], atol=1e-15)  # radial: projected out
    np.testing.assert_allclose(decayed[1], plain[1] - 0.1 * 0.5 * x[1], atol=1e-15)


def test_rsgd_uses_the_schedule():
    E = Euclidean(1)
    rule = RSGD(lr=schedules.step_decay(1.0, drop=0.5, every=2))
    run = rule.start(E, np.zeros(1))
    for _ in range(5):
        run.step(np.ones(1))
    # steps 0..4 use 1, 1, 0.5, 0.5, 0.25
    np.testing.assert_allclose(run.x, [-3.25], rtol=1e-15)
    assert run.state["step"] == 5


# --- RAdam -------------------------------------------------------------------------------


@pytest.mark.parametrize("adaptivity", ["factor", "coordinate"])
def test_radam_direction_is_tangent_at_the_current_point(adaptivity):
    M = SpyOblique(4, 6)
    rng = np.random.default_rng(4)
    x = M.random_point(rng)
    rule = RAdam(lr=0.05, adaptivity=adaptivity)
    state = rule.init(M, x)
    for _ in range(5):
        new, state = rule.step(M, x, rng.standard_normal(M.shape), state)
        u = M.seen[-1]
        assert np.max(np.abs(_column_dots(x, u))) < 1e-15 * max(1.0, np.max(np.abs(u)))
        assert np.max(np.abs(_column_dots(new, state["m"]))) < 1e-14  # m transported
        x = new


def test_radam_second_moment_shapes():
    M = Oblique(4, 6)
    x = M.random_point(0)
    g = np.random.default_rng(5).standard_normal((4, 6))
    _, state = RAdam(adaptivity="factor").step(M, x, g, RAdam().init(M, x))
    assert state["v"].shape == (1, 6)
    r = M.proj(x, g)
    np.testing.assert_allclose(state["v"], 0.001 * np.sum(r * r, axis=0, keepdims=True),
                               rtol=1e-14)
    _, state = RAdam(adaptivity="coordinate").step(M, x, g, RAdam().init(M, x))
    assert state["v"].shape == (4, 6)
    P = Product([Oblique(4, 6), Euclidean(3)])
    x = P.random_point(0)
    _, state = RAdam().step(P, x, (g, np.ones(3)), RAdam().init(P, x))
    assert state["v"][0].shape == (1, 6) and state["v"][1].shape == (3,)
    # under the projection strategy the sphere factors still have one scalar each
    G = Projection(M).geometry
    x = M.random_point(0)
    _, state = RAdam().step(G, x, g, RAdam().init(G, x))
    assert state["v"].shape == (1, 6)


def test_amsgrad_keeps_the_running_maximum():
    M = Oblique(3, 5)
    rng = np.random.default_rng(6)
    x = M.random_point(rng)
    rule = RAdam(lr=0.01, betas=(0.9, 0.5), amsgrad=True)  # a short memory for v
    state = rule.init(M, x)
    previous = None
    for k in range(12):
        g = rng.standard_normal((3, 5)) * (3.0 if k == 2 else 0.1)  # one large gradient
        x, state = rule.step(M, x, g, state)
        assert np.all(state["v_max"] >= state["v"])
        if previous is not None:
            assert np.all(state["v_max"] >= previous)
        previous = state["v_max"].copy()
    assert np.any(state["v_max"] > 2 * state["v"])  # v decayed, v_max did not


def test_first_radam_step_moves_every_column_by_lr():
    # m_hat = r and v_hat = ||r_j||^2: the first direction has unit norm per column,
    # and the exponential map moves each column by exactly that angle.
    M = Oblique(5, 7)
    rng = np.random.default_rng(7)
    x = M.random_point(rng)
    g = rng.standard_normal((5, 7)) * np.logspace(-2, 2, 7)  # very different scales
    new, _ = RAdam(lr=0.05).step(M, x, g, RAdam().init(M, x))
    angles = [Sphere(5).dist(x[:, j], new[:, j]) for j in range(7)]
    # exactly lr ||r_j|| / (||r_j|| + eps): eps = 1e-8 shortens the small columns' steps
    r = g - np.sum(x * g, axis=0) * x
    norms = np.linalg.norm(r, axis=0)
    np.testing.assert_allclose(angles, 0.05 * norms / (norms + 1e-8), rtol=64 * np.finfo(float).eps)


def test_radam_on_euclidean_is_adam():
    E = Euclidean(4)
    g = np.array([3.0, -0.01, 2e3, -5.0])
    for adaptivity in ("factor", "coordinate"):
        new, _ = RAdam(lr=0.1, adaptivity=adaptivity).step(E, np.zeros(4), g, RAdam().init(E, 0))
        # Adam's first step is lr * g / (|g| + eps), i.e. about -lr sign(g)
        np.testing.assert_allclose(new, -0.1 * g / (np.abs(g) + 1e-8), rtol=1e-15)


# --- schedules and the wrapper ---------------------------------------------------------------


def test_schedules():
    assert schedules.constant(0.1)(10**6) == 0.1
    s = schedules.step_decay(1.0, drop=0.1, every=3)
    assert [s(k) for k in (0, 2, 3, 6)] == pytest.approx([1.0, 1.0, 0.1, 0.01], rel=1e-15)
    e = schedules.exponential_decay(2.0, gamma=0.9)
    assert e(0) == 2.0 and e(10) == pytest.approx(2.0 * 0.9**10, rel=1e-15)
    c = schedules.cosine_decay(1.0, 100, lr_min=0.1)
    assert c(0) == 1.0 and c(100) == pytest.approx(0.1) and c(1000) == pytest.approx(0.1)
    assert c(25) == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)), rel=1e-15)
    assert schedules.resolve_lr(0.5)(7) == 0.5
    assert schedules.resolve_lr(c) is c


def test_running_wrapper_matches_the_functional_steps():
    M = Oblique(3, 4)
    rng = np.random.default_rng(8)
    x0 = M.random_point(rng)
    grads = [rng.standard_normal((3, 4)) for _ in range(4)]
    rule = RAdam(lr=0.02, amsgrad=True)
    run = rule.start(M, x0)
    assert isinstance(run, Running) and run.x is x0
    x, state = x0, rule.init(M, x0)
    for g in grads:
        x, state = rule.step(M, x, g, state)
        assert run.step(g) is run.x
        np.testing.assert_array_equal(run.x, x)
    assert run.state["step"] == 4


def test_bad_hyper_parameters():
    for kwargs in ({"lr": 0.0}, {"lr": -1.0}, {"momentum": 1.0}, {"momentum": -0.1},
                   {"nesterov": True}, {"weight_decay": -1e-3}):
        with pytest.raises(ValueError):
            RSGD(**kwargs)
    for kwargs in ({"lr": 0.0}, {"betas": (1.0, 0.999)}, {"betas": (0.9, -0.1)}, {"eps": 0.0},
                   {"adaptivity": "row"}):
        with pytest.raises(ValueError):
            RAdam(**kwargs)
    with pytest.raises(ValueError):
        schedules.step_decay(1.0, every=0)
    with pytest.raises(ValueError):
        schedules.cosine_decay(1.0, total_steps=0)
