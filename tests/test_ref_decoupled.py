"""Reference tests of :class:`spherenet.optim.DecoupledWeightDecay`, step by step.

The decoupled decay of Loshchilov & Hutter (2019), as Keras 3's optimizers
apply it: before the step, w <- (1 - eta_k lambda) w with the learning rate
eta_k of the step, then the wrapped rule steps from there with the gradient
taken at the old w. The references below are written in plain NumPy: the
Euclidean momentum step buf <- mu buf + g, w <- w - eta_k buf; the sphere's
exponential map; the projection strategy's "step, then normalize" (every
column for an Oblique factor). Tolerances: a few roundings per step of
numbers of order 1, so 10 eps of the dtype per compared step.
"""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.optim import RAdam, RSGD, DecoupledWeightDecay
from spherenet.optim.rules import StepRule
from spherenet.strategies import get_strategy

EPS64 = np.finfo(np.float64).eps


def schedule(k):
    """A step size that changes at every step, so that a step read at the wrong count shows."""
    return 0.2 * 0.5 ** k


def exp_map(x, u):
    t = np.linalg.norm(u)
    return x if t == 0 else math.cos(t) * x + (math.sin(t) / t) * u


def proj(x, u):
    return u - (x @ u) * x


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_euclidean_array_with_momentum_and_a_schedule(dtype):
    """A single (non-tuple) Euclidean point: shrink by 1 - eta_k lambda, then the momentum step."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(5).astype(dtype)
    grads = [rng.standard_normal(5).astype(dtype) for _ in range(4)]
    wd, mu = 0.7, 0.5
    rule = DecoupledWeightDecay(RSGD(lr=schedule, momentum=mu), wd)
    M = Euclidean(5)
    x, state = x0, rule.init(M, x0)
    ref, buf = x0.astype(np.float64), np.zeros(5)
    for k, g in enumerate(grads):
        x, state = rule.step(M, x, g, state)
        buf = mu * buf + g.astype(np.float64)
        ref = (1.0 - schedule(k) * wd) * ref - schedule(k) * buf
        assert x.dtype == dtype
        eps = np.finfo(dtype).eps
        np.testing.assert_allclose(x, ref, rtol=0, atol=10 * (k + 1) * eps * np.abs(ref).max())


def test_zero_decay_is_the_wrapped_rule():
    """weight_decay = 0 is allowed and changes nothing (RAdam, three steps)."""
    rng = np.random.default_rng(1)
    M = Sphere(4)
    x0 = M.random_point(rng=2)
    grads = [rng.standard_normal(4) for _ in range(3)]
    plain, wrapped = RAdam(lr=0.1), DecoupledWeightDecay(RAdam(lr=0.1), 0.0)
    assert wrapped.weight_decay == 0.0
    a, sa = x0, plain.init(M, x0)
    b, sb = x0, wrapped.init(M, x0)
    for g in grads:
        a, sa = plain.step(M, a, g, sa)
        b, sb = wrapped.step(M, b, g, sb)
        np.testing.assert_array_equal(a, b)


def test_a_sphere_under_the_riemannian_strategy_is_not_decayed():
    """One Sphere point (not a tuple): the step is the plain exponential-map step."""
    M = Sphere(3)
    x = np.array([0.6, 0.8, 0.0])
    g = np.array([0.3, -0.2, 0.5])
    rule = DecoupledWeightDecay(RSGD(lr=0.4), 0.9)
    new, _ = rule.step(M, x, g, rule.init(M, x))
    np.testing.assert_allclose(new, exp_map(x, -0.4 * proj(x, g)), rtol=0, atol=4 * EPS64)


def test_a_product_under_the_riemannian_strategy_decays_its_euclidean_factor_only():
    M = Product([Oblique(3, 2), Euclidean(2), Sphere(3)])
    rng = np.random.default_rng(3)
    x = M.random_point(rng=4)
    g = tuple(rng.standard_normal(xi.shape) for xi in x)
    lr, wd = 0.3, 0.5
    rule = DecoupledWeightDecay(RSGD(lr=lr), wd)
    new, _ = rule.step(M, x, g, rule.init(M, x))
    for j in range(2):  # every column of the Oblique factor: its own exponential map
        W, G = x[0][:, j], g[0][:, j]
        np.testing.assert_allclose(new[0][:, j], exp_map(W, -lr * proj(W, G)), rtol=0,
                                   atol=4 * EPS64)
    np.testing.assert_allclose(new[1], (1 - lr * wd) * x[1] - lr * g[1], rtol=0, atol=4 * EPS64)
    np.testing.assert_allclose(new[2], exp_map(x[2], -lr * proj(x[2], g[2])), rtol=0,
                               atol=4 * EPS64)


def test_a_sphere_under_projection_is_decayed_then_normalized():
    """Keras decays a unit_norm kernel before its step and normalizes after."""
    geometry = get_strategy("projection", Sphere(3)).geometry
    x = np.array([0.6, 0.8, 0.0])
    g = np.array([0.3, -0.2, 0.5])
    lr, wd = 0.4, 0.9
    rule = DecoupledWeightDecay(RSGD(lr=lr), wd)
    new, _ = rule.step(geometry, x, g, rule.init(geometry, x))
    expected = (1 - lr * wd) * x - lr * g
    np.testing.assert_allclose(new, expected / np.linalg.norm(expected), rtol=0, atol=4 * EPS64)


def test_a_product_under_projection_decays_every_factor():
    M = Product([Oblique(3, 2), Euclidean(2)])
    geometry = get_strategy("projection", M).geometry
    rng = np.random.default_rng(5)
    x = M.random_point(rng=6)
    g = tuple(rng.standard_normal(xi.shape) for xi in x)
    lr, wd = 0.3, 0.5
    rule = DecoupledWeightDecay(RSGD(lr=lr), wd)
    new, _ = rule.step(geometry, x, g, rule.init(geometry, x))
    assert isinstance(new, tuple) and len(new) == 2
    W = (1 - lr * wd) * x[0] - lr * g[0]
    np.testing.assert_allclose(new[0], W / np.linalg.norm(W, axis=0), rtol=0, atol=4 * EPS64)
    np.testing.assert_allclose(new[1], (1 - lr * wd) * x[1] - lr * g[1], rtol=0, atol=4 * EPS64)


class _Recording(StepRule):
    """A rule that records what it is given and steps x - g."""

    def __init__(self):
        self._schedule = lambda k: 1.0
        self.lr = 1.0
        self.calls = []

    def init(self, geometry, x):
        self.calls.append(("init", geometry, x))
        return {"step": 0}

    def step(self, geometry, x, egrad, state):
        self.calls.append(("step", geometry, x))
        return x - egrad, {"step": state["step"] + 1}


def test_init_and_step_pass_the_geometry_and_point_through():
    inner = _Recording()
    rule = DecoupledWeightDecay(inner, 0.25)
    M, x = Euclidean(2), np.array([4.0, -8.0])
    state = rule.init(M, x)
    assert inner.calls[0][0] == "init" and inner.calls[0][1] is M and inner.calls[0][2] is x
    new, state = rule.step(M, x, np.array([1.0, 1.0]), state)
    # shrunk by 1 - 1.0 * 0.25 before the wrapped step
    assert inner.calls[1][1] is M
    np.testing.assert_array_equal(inner.calls[1][2], [3.0, -6.0])
    np.testing.assert_array_equal(new, [2.0, -7.0])
    assert state == {"step": 1}


def test_attributes_and_repr_mirror_the_wrapped_rule():
    inner = RSGD(lr=schedule, momentum=0.5)
    rule = DecoupledWeightDecay(inner, 1)
    assert rule.lr is schedule and rule.rule is inner
    assert rule.weight_decay == 1.0 and type(rule.weight_decay) is float
    assert [rule.lr_at(k) for k in range(3)] == [0.2, 0.1, 0.05]
    assert repr(DecoupledWeightDecay(RSGD(lr=0.1), 0.5)) == (
        "DecoupledWeightDecay(RSGD(lr=0.1, momentum=0.0, nesterov=False, weight_decay=0.0), "
        "weight_decay=0.5)")


@pytest.mark.parametrize("weight_decay, error, message", [
    (True, TypeError, r"weight_decay must be a number, got True"),
    ("0.1", TypeError, r"weight_decay must be a number, got '0.1'"),
    (None, TypeError, r"weight_decay must be a number, got None"),
    (-0.5, ValueError, r"weight_decay must be a finite number >= 0, got -0.5"),
    (math.inf, ValueError, r"weight_decay must be a finite number >= 0, got inf"),
    (math.nan, ValueError, r"weight_decay must be a finite number >= 0, got nan"),
])
def test_bad_weight_decay(weight_decay, error, message):
    with pytest.raises(error, match=message):
        DecoupledWeightDecay(RSGD(), weight_decay)


def test_a_rule_that_is_not_a_step_rule_is_refused():
    with pytest.raises(TypeError, match=r"rule must be a step rule such as RSGD\(...\), got 'sgd'"):
        DecoupledWeightDecay("sgd", 0.1)
