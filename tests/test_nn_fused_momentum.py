"""The fused momentum step of RSGD (spherenet.optim._momentum) against the generic step.

RSGD with momentum (no Nesterov) on Sphere, Oblique and Euclidean factors runs
in two passes over memory; it must give the generic step's iterates (egrad2rgrad,
retr, transp called one by one) to rounding, for every retraction, transport and
dtype, on the compiled (numba) and the NumPy path alike.
"""

import numpy as np
import pytest

import spherenet.optim.rules as rules
from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.optim import RSGD, _momentum


def trajectory(manifold, dtype, fused, steps=40, lr=0.05, momentum=0.9):
    rng = np.random.default_rng(0)
    x = manifold.random_point(1, dtype=dtype)
    directions = [rng.standard_normal(xi.shape).astype(dtype) for xi in x]
    rule = RSGD(lr, momentum=momentum)
    state = rule.init(manifold, x)
    for k in range(steps):
        # a gradient with a large radial part, as a network's kernels get
        g = tuple(d * dtype(1 + np.sin(0.3 * k)) + dtype(3) * xi for d, xi in zip(directions, x))
        old_x, copies = x, [a.copy() for a in (*x, *g)]
        if fused:
            new = _momentum.momentum_step(manifold, x, g, state["momentum"], lr, momentum)
            assert new is not None
            x, state = new[0], {"step": k + 1, "momentum": new[1]}
        else:
            x, state = generic_step(rule, manifold, x, g, state)
        # neither the point nor the gradient is written into
        assert all(np.array_equal(a, b) for a, b in zip(copies, (*old_x, *g)))
    return x


def generic_step(rule, manifold, x, g, state):
    saved = rules._momentum.momentum_step
    rules._momentum.momentum_step = lambda *args: None
    try:
        return rule.step(manifold, x, g, state)
    finally:
        rules._momentum.momentum_step = saved


def product(retraction, transport):
    kw = {"retraction": retraction, "transport": transport}
    return Product([Oblique(30, 7, **kw), Euclidean(7), Sphere(3, 4, **kw),
                    Oblique(4, 6, axis=1, **kw)])


@pytest.mark.parametrize("retraction", ["exp", "projection"])
@pytest.mark.parametrize("transport", ["projection", "parallel"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("compiled", [True, False], ids=["kernel", "numpy"])
def test_fused_step_equals_generic_step(retraction, transport, dtype, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setattr(_momentum, "_kernel_for", lambda *args: None)
    manifold = product(retraction, transport)
    fused = trajectory(manifold, dtype, True)
    generic = trajectory(manifold, dtype, False)
    eps = np.finfo(dtype).eps
    for a, b in zip(fused, generic):
        np.testing.assert_allclose(a, b, rtol=0, atol=2000 * eps)
    assert manifold.violation(fused) <= 4 * eps


def test_rsgd_uses_the_fused_step_and_keeps_the_point_on_the_manifold():
    manifold = Product([Oblique(50, 20), Euclidean(20)])
    rule = RSGD(0.1, momentum=0.9)
    x = manifold.random_point(0, dtype=np.float32)
    state = rule.init(manifold, x)
    rng = np.random.default_rng(1)
    for _ in range(200):
        old = [a.copy() for a in x]
        g = tuple(rng.standard_normal(a.shape).astype(np.float32) + 5 * a for a in x)
        new, state = rule.step(manifold, x, g, state)
        assert all(np.array_equal(a, b) for a, b in zip(old, x))  # x is not written into
        x = new
    assert all(a.dtype == np.float32 for a in (*x, *state["momentum"]))
    assert manifold.violation(x) <= 2e-7


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_step_under_the_projection_strategy(dtype):
    from spherenet.strategies import Projection

    geometry = Projection(product("exp", "projection"), epsilon=1e-7).geometry
    fused = trajectory(geometry, dtype, True)
    generic = trajectory(geometry, dtype, False)
    for a, b in zip(fused, generic):
        np.testing.assert_array_equal(a, b)


def test_unsupported_geometries_fall_back_to_the_generic_step():
    # any other geometry (a user's manifold, say) is left to the generic code
    assert _momentum.momentum_step(object(), None, None, None, 0.1, 0.9) is None
    new, state = RSGD(0.1, momentum=0.9, nesterov=True).step(
        Sphere(3), np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]), {"step": 0, "momentum": None})
    np.testing.assert_allclose(np.linalg.norm(new), 1.0, rtol=1e-15)
