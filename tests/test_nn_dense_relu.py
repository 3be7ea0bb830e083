"""A dense layer with a relu as one autograd node (``layers.affine_relu``).

* Forward and gradients equal, bit for bit, the two nodes they replace,
  ``relu(affine(x, kernel, bias))`` (float32 and float64, with and without a
  bias, with the input traced or not, pre-activations exactly 0 included),
  and the NumPy products of the backward pass written here; in float64 the
  gradients match central finite differences.
* ``Dense(activation="relu")`` takes it; a subclass with its own
  ``pre_activation`` keeps its own.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet.nn import Dense, activations
from spherenet.nn._autodiff import value_and_grads
from spherenet.nn.layers import affine, affine_relu


def problem(dtype, bias=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((32, 12)).astype(dtype)
    w = rng.standard_normal((12, 9)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype) if bias else None
    x[:, 0] = 0
    w[1:, 0] = 0  # column 0's pre-activations are b[0] (or 0 without a bias) in every row
    if bias:
        b[0] = 0  # exactly 0: relu's gradient there is 0
    c = rng.standard_normal((32, 9)).astype(dtype)
    return x, w, b, c


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("traced_input", [True, False])
def test_equals_relu_of_affine_bit_for_bit_and_the_numpy_products(dtype, bias, traced_input):
    x, w, b, c = problem(dtype, bias)
    args = [x, w] + ([b] if bias else [])

    def fused(*a):
        xx, ww, bb = (a if traced_input else (x,) + a)[:3] + ((None,) if not bias else ())
        return anp.sum(affine_relu(xx, ww, bb) * c)

    def separate(*a):
        xx, ww, bb = (a if traced_input else (x,) + a)[:3] + ((None,) if not bias else ())
        return anp.sum(activations.relu(affine(xx, ww, bb)) * c)

    traced = args if traced_input else args[1:]
    value, grads = value_and_grads(fused, traced)
    value_ref, grads_ref = value_and_grads(separate, traced)
    assert value == value_ref and len(grads) == len(traced)
    for got, ref in zip(grads, grads_ref):
        assert got.dtype == dtype and np.array_equal(got, ref)
    # the products written out: pre-activation a, mask a > 0
    a = x @ w + (b if bias else 0)
    out = np.maximum(a, 0)
    assert np.array_equal(affine_relu(x, w, b), out)
    masked = c * (a > 0)
    expected = [masked @ w.T, x.T @ masked] + ([masked.sum(axis=0)] if bias else [])
    for got, ref in zip(grads, expected if traced_input else expected[1:]):
        assert np.array_equal(got, ref)
    kernel_grad = grads[1 if traced_input else 0]
    assert np.all(kernel_grad[:, 0] == 0)  # the column at exactly 0 gets nothing


def test_gradients_match_finite_differences():
    x, w, b, c = problem(np.float64, seed=1)
    b[0] = 0.5  # away from the kink, where differences are smooth
    f = lambda x, w, b: anp.sum(affine_relu(x, w, b) * c)  # noqa: E731
    grads = value_and_grads(f, [x, w, b])[1]
    rng = np.random.default_rng(2)
    h = 1e-7
    for i, g in enumerate(grads):
        direction = rng.standard_normal(g.shape)
        plus, minus = [x, w, b], [x, w, b]
        plus[i], minus[i] = plus[i] + h * direction, minus[i] - h * direction
        fd = (f(*plus) - f(*minus)) / (2 * h)
        # piecewise linear: exact unless a pre-activation crosses 0 within h (none here, the
        # smallest |pre-activation| is far above h |direction|); rounding ~ eps |f| / h
        np.testing.assert_allclose(np.sum(g * direction), fd, rtol=1e-6, atol=1e-6)


def test_dense_with_relu_takes_the_fused_node_and_a_subclass_keeps_its_own():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((5, 4))
    layer = Dense(3, activation="relu")
    layer.build((4,))
    w, b = rng.standard_normal((4, 3)), rng.standard_normal(3)
    calls = []
    f_raw = affine_relu.__closure__[affine_relu.__code__.co_freevars.index("f_raw")]
    raw = f_raw.cell_contents
    f_raw.cell_contents = lambda *a: calls.append(1) or raw(*a)
    try:
        out = layer.apply([w, b], x)
        shifted = Shifted(3, activation="relu")
        shifted.build((4,))
        shifted_out = shifted.apply([w, b], x)
    finally:
        f_raw.cell_contents = raw
    assert calls == [1]  # the Dense, not the subclass
    assert np.array_equal(out, np.maximum(x @ w + b, 0))
    assert np.array_equal(shifted_out, np.maximum(x @ w + b + 10, 0))


class Shifted(Dense):
    """A dense layer whose pre-activation is shifted by 10: its own, which the fused node skips."""

    def pre_activation(self, params, x):
        return super().pre_activation(params, x) + 10
