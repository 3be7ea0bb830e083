"""The momentum buffer of the fused RSGD step (``spherenet.optim._momentum``) is its own
array: at the first step of a Euclidean factor it starts as a copy of the gradient, so a
caller that reuses its gradient buffer cannot change the state."""

import numpy as np

from spherenet import Euclidean, Product, Sphere
from spherenet.optim import _momentum


def test_the_first_euclidean_buffer_is_a_copy_of_the_gradient():
    g = np.array([1.0, -2.0])
    x = np.zeros(2)
    new_x, b = _momentum.momentum_step(Euclidean(2), x, g, None, 0.5, 0.9)
    assert not np.shares_memory(b, g)
    np.testing.assert_array_equal(b, [1.0, -2.0])
    np.testing.assert_array_equal(new_x, [-0.5, 1.0])
    g[:] = 7.0  # the caller reuses its gradient buffer
    np.testing.assert_array_equal(b, [1.0, -2.0])
    new_x, bp = _momentum.momentum_step(Product([Sphere(2), Euclidean(2)]),
                                        (np.array([1.0, 0.0]), x), (np.zeros(2), g), None,
                                        0.5, 0.9)
    assert not np.shares_memory(bp[1], g)
