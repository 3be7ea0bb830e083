"""Convolution, pooling and reshaping layers against plain NumPy references.

* Forward passes of ``conv2d``/``conv1d`` (strides, "valid"/"same"/"causal",
  dilation, even and odd kernels) against direct loops over the output
  positions written from the definition (Keras's padding rule spelled out
  here, not taken from spherenet), and against ``scipy.signal.correlate``.
* Gradients against central finite differences (float64) and against
  autograd differentiating a naive convolution built from ``np.pad`` and
  slices.
* Pooling forward and backward against loops over windows, with many ties
  (the gradient goes to the first maximum in row-major order), padded
  windows (max ignores them, the average divides by the entries covered).
* Output shapes against Keras's formulas, float32 kept throughout, the
  default initializer's fans, unit-norm filters kept by training, save/load
  bit for bit, and bad input refused with messages that say what was expected.
"""

import itertools
import os

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad
from scipy import signal

from spherenet import Oblique
from spherenet.nn import (AveragePooling2D, Conv1D, Conv2D, Dense, Flatten,
                          GlobalAveragePooling2D, MaxPooling2D, Reshape, Sequential, load_model,
                          unit_norm)
from spherenet.nn.conv import conv1d, conv2d
from spherenet.nn.pooling import average_pool2d, max_pool2d
from spherenet.optim import RSGD

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


# --- references written from the definitions ------------------------------------------------


def keras_window(size, k, stride, dilation, padding):
    """(outputs, pad before) by Keras/TensorFlow's rule."""
    span = (k - 1) * dilation + 1
    if padding == "valid":
        return (size - span) // stride + 1, 0
    if padding == "causal":
        return (size - 1) // stride + 1, span - 1
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2


def naive_conv2d(x, k, b, strides, padding, dilation):
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    ho, top = keras_window(h, kh, strides[0], dilation[0], padding)
    wo, left = keras_window(w, kw, strides[1], dilation[1], padding)
    y = np.zeros((n, ho, wo, f)) + b
    for p in range(ho):
        for q in range(wo):
            for i in range(kh):
                for j in range(kw):
                    r, s = p * strides[0] + i * dilation[0] - top, q * strides[1] + j * dilation[1] - left
                    if 0 <= r < h and 0 <= s < w:
                        y[:, p, q, :] += x[:, r, s, :] @ k[i, j]
    return y


def traced_conv2d(x, k, strides, padding, dilation):
    """A second, autograd-traced convolution: pad, then one shifted slice per kernel entry."""
    n, h, w, c = x.shape
    kh, kw, _, f = k.shape
    ho, top = keras_window(h, kh, strides[0], dilation[0], padding)
    wo, left = keras_window(w, kw, strides[1], dilation[1], padding)
    bottom = max((ho - 1) * strides[0] + (kh - 1) * dilation[0] + 1 - h - top, 0)
    right = max((wo - 1) * strides[1] + (kw - 1) * dilation[1] + 1 - w - left, 0)
    xp = anp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), mode="constant")
    y = 0.0
    for i in range(kh):
        for j in range(kw):
            r, s = i * dilation[0], j * dilation[1]
            part = xp[:, r:r + (ho - 1) * strides[0] + 1:strides[0],
                      s:s + (wo - 1) * strides[1] + 1:strides[1], :]
            y = y + anp.dot(part, k[i, j])
    return y


CONV_CASES = [
    case for case in itertools.product(
        [(7, 6), (5, 9)], [(3, 2), (1, 1), (2, 3), (4, 4)], [(1, 1), (2, 1), (3, 2)],
        ["valid", "same"], [(1, 1), (2, 1)])
    if case[3] == "same" or all(
        n >= (k - 1) * d + 1 for n, k, d in zip(case[0], case[1], case[4]))
]


@pytest.mark.parametrize("hw, ksize, strides, padding, dilation", CONV_CASES)
def test_conv2d_forward_equals_direct_loops(hw, ksize, strides, padding, dilation):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, *hw, 3))
    k = rng.standard_normal((*ksize, 3, 4))
    b = rng.standard_normal(4)
    got = conv2d(x, k, b, strides, padding, dilation)
    want = naive_conv2d(x, k, b, strides, padding, dilation)
    assert got.shape == want.shape
    # sums of up to 48 products of O(1) numbers
    np.testing.assert_allclose(got, want, rtol=0, atol=200 * EPS64)


def test_conv2d_equals_scipy_correlate():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 9, 8, 1))
    k = rng.standard_normal((3, 4, 1, 1))
    valid = signal.correlate(x[0, :, :, 0], k[:, :, 0, 0], mode="valid")
    np.testing.assert_allclose(conv2d(x, k)[0, :, :, 0], valid, rtol=0, atol=50 * EPS64)
    # "same" with an even kernel: TensorFlow puts the extra zero row/column at the bottom/right
    same = signal.correlate(np.pad(x[0, :, :, 0], ((1, 1), (1, 2))), k[:, :, 0, 0], mode="valid")
    np.testing.assert_allclose(conv2d(x, k, padding="same")[0, :, :, 0], same, rtol=0,
                               atol=50 * EPS64)


def test_same_padding_puts_the_odd_zero_at_the_bottom_right():
    # a 2x2 kernel picking the top-left entry of its window: with pads (0, 1), output (p, q)
    # reads x[p, q]; were the odd zero on top, it would read x[p - 1, q - 1]
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    k = np.zeros((2, 2, 1, 1))
    k[0, 0] = 1.0
    np.testing.assert_array_equal(conv2d(x, k, padding="same"), x)
    # stride 2 on 5 rows: 3 outputs, 2 padded rows split (1, 1); on 6 rows: 3 outputs, 1 pad, after
    x5 = np.arange(5.0).reshape(1, 5, 1, 1)
    k3 = np.zeros((3, 1, 1, 1))
    k3[1] = 1.0  # the window's centre
    np.testing.assert_array_equal(conv2d(x5, k3, strides=(2, 1), padding="same")[0, :, 0, 0],
                                  [0.0, 2.0, 4.0])
    x6 = np.arange(6.0).reshape(1, 6, 1, 1)
    np.testing.assert_array_equal(conv2d(x6, k3, strides=(2, 1), padding="same")[0, :, 0, 0],
                                  [1.0, 3.0, 5.0])


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), (3, 2)])
def test_conv1d_forward_equals_direct_loops(padding, stride, dilation):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 11, 2))
    k = rng.standard_normal((3, 2, 5))
    b = rng.standard_normal(5)
    lo, before = keras_window(11, 3, stride, dilation, padding)
    want = np.zeros((3, lo, 5)) + b
    for t in range(lo):
        for i in range(3):
            s = t * stride + i * dilation - before
            if 0 <= s < 11:
                want[:, t] += x[:, s] @ k[i]
    got = conv1d(x, k, b, stride, padding, dilation)
    np.testing.assert_allclose(got, want, rtol=0, atol=50 * EPS64)
    if padding == "causal":
        # output t never depends on inputs after t
        x2 = x.copy()
        x2[:, 6:] += 1.0
        changed = np.any(conv1d(x2, k, b, stride, padding, dilation) != got, axis=(0, 2))
        first = int(np.argmax(changed))
        assert first * stride >= 6 and not changed[:first].any()


GRAD_CASES = [
    ((7, 6), (3, 2), (2, 1), "same", (1, 1)),
    ((5, 9), (2, 3), (1, 1), "same", (2, 1)),
    ((7, 6), (3, 3), (3, 2), "valid", (1, 2)),
    ((5, 5), (1, 1), (2, 2), "valid", (1, 1)),
    ((4, 5), (1, 1), (1, 1), "same", (1, 1)),
    ((6, 6), (4, 4), (2, 2), "same", (1, 1)),
]


@pytest.mark.parametrize("hw, ksize, strides, padding, dilation", GRAD_CASES)
def test_conv2d_gradients_equal_autograd_of_the_naive_convolution(hw, ksize, strides, padding,
                                                                    dilation):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, *hw, 3))
    k = rng.standard_normal((*ksize, 3, 4))
    b = rng.standard_normal(4)
    out = conv2d(x, k, b, strides, padding, dilation)
    weights = rng.standard_normal(out.shape)

    def ours(x, k, b):
        return anp.sum(conv2d(x, k, b, strides, padding, dilation) * weights)

    def naive(x, k, b):
        return anp.sum((traced_conv2d(x, k, strides, padding, dilation) + b) * weights)

    for argnum in range(3):
        np.testing.assert_allclose(grad(ours, argnum)(x, k, b), grad(naive, argnum)(x, k, b),
                                   rtol=0, atol=500 * EPS64)


@pytest.mark.parametrize("block_bytes", [1, 5000])
def test_blocks_of_images_give_the_whole_batch_result(monkeypatch, block_bytes):
    # one image per block, or two (7 images: a shorter last block): as the naive convolution
    from spherenet.nn import conv

    monkeypatch.setattr(conv, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(11)
    x = rng.standard_normal((7, 6, 5, 3))
    k = rng.standard_normal((3, 2, 3, 4))
    b = rng.standard_normal(4)
    strides, padding, dilation = (2, 1), "same", (1, 2)
    out = conv2d(x, k, b, strides, padding, dilation)
    np.testing.assert_allclose(out, naive_conv2d(x, k, b, strides, padding, dilation),
                               rtol=0, atol=200 * EPS64)
    weights = rng.standard_normal(out.shape)
    for argnum in range(3):
        got = grad(lambda *a: anp.sum(conv2d(*a, strides, padding, dilation) * weights),
                   argnum)(x, k, b)
        want = grad(lambda x, k, b: anp.sum(
            (traced_conv2d(x, k, strides, padding, dilation) + b) * weights), argnum)(x, k, b)
        np.testing.assert_allclose(got, want, rtol=0, atol=500 * EPS64)


def central_difference(fun, a, direction, step=1e-5):
    return (fun(a + step * direction) - fun(a - step * direction)) / (2 * step)


@pytest.mark.parametrize("hw, ksize, strides, padding, dilation", GRAD_CASES)
def test_conv2d_gradients_equal_finite_differences(hw, ksize, strides, padding, dilation):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, *hw, 3))
    k = rng.standard_normal((*ksize, 3, 4))
    b = rng.standard_normal(4)
    weights = rng.standard_normal(conv2d(x, k, b, strides, padding, dilation).shape)
    args = [x, k, b]
    for argnum in range(3):
        def fun(a):
            full = list(args)
            full[argnum] = a
            return float(np.sum(conv2d(*full, strides, padding, dilation) * weights))

        g = grad(lambda *a: anp.sum(conv2d(*a, strides, padding, dilation) * weights),
                 argnum)(x, k, b)
        v = rng.standard_normal(args[argnum].shape)
        # the function is linear in each argument: central differences are exact up to
        # rounding of O(size) sums divided by the step
        np.testing.assert_allclose(np.sum(g * v), central_difference(fun, args[argnum], v),
                                   rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("padding", ["valid", "same", "causal"])
def test_conv1d_gradients_equal_finite_differences(padding):
    rng = np.random.default_rng(5)
    x, k, b = rng.standard_normal((2, 9, 3)), rng.standard_normal((3, 3, 2)), rng.standard_normal(2)
    weights = rng.standard_normal(conv1d(x, k, b, 2, padding, 2).shape)
    args = [x, k, b]
    for argnum in range(3):
        def fun(a):
            full = list(args)
            full[argnum] = a
            return float(np.sum(conv1d(*full, 2, padding, 2) * weights))

        g = grad(lambda *a: anp.sum(conv1d(*a, 2, padding, 2) * weights), argnum)(x, k, b)
        v = rng.standard_normal(args[argnum].shape)
        np.testing.assert_allclose(np.sum(g * v), central_difference(fun, args[argnum], v),
                                   rtol=1e-8, atol=1e-8)


ALL_AT_ONCE_CASES = [
    ((7, 6), (3, 2), (2, 1), "same", (1, 1)),
    ((7, 6), (3, 3), (3, 2), "valid", (1, 2)),
    ((4, 5), (1, 1), (1, 1), "same", (1, 1)),  # 1x1, stride 1: the input is the im2col matrix
    ((5, 5), (1, 1), (2, 2), "valid", (1, 1)),
]


@pytest.mark.parametrize("block_bytes", [None, 1])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("hw, ksize, strides, padding, dilation", ALL_AT_ONCE_CASES)
def test_all_three_gradients_at_once_equal_the_naive_convolution(monkeypatch, hw, ksize, strides,
                                                                  padding, dilation, relu,
                                                                  block_bytes):
    # as a model asks for them: input, kernel and bias traced together, the kernel's gradient
    # from the patches the forward pass kept; with relu fused into the convolution or not, the
    # whole batch in one block or one image per block
    from spherenet.nn import conv
    from spherenet.nn._autodiff import value_and_grads

    if block_bytes is not None:
        monkeypatch.setattr(conv, "_BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, *hw, 3))
    k = rng.standard_normal((*ksize, 3, 4))
    b = rng.standard_normal(4)
    _, top, bottom = conv._window(hw[0], ksize[0], strides[0], dilation[0], padding)
    _, left, right = conv._window(hw[1], ksize[1], strides[1], dilation[1], padding)
    pads = ((top, bottom), (left, right))
    ho, _ = keras_window(hw[0], ksize[0], strides[0], dilation[0], padding)
    wo, _ = keras_window(hw[1], ksize[1], strides[1], dilation[1], padding)
    weights = rng.standard_normal((3, ho, wo, 4))

    def ours(x, k, b):
        return anp.sum(conv._conv2d(x, k, b, strides, dilation, pads, relu) * weights)

    def naive(x, k, b):
        y = traced_conv2d(x, k, strides, padding, dilation) + b
        return anp.sum((anp.where(y > 0, y, 0.0) if relu else y) * weights)

    value, grads = value_and_grads(ours, [x, k, b])
    want_value, want = value_and_grads(naive, [x, k, b])
    np.testing.assert_allclose(value, want_value, rtol=0, atol=2000 * EPS64)
    for got, ref in zip(grads, want):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=0, atol=500 * EPS64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_fused_into_the_layer_changes_nothing_and_has_gradient_zero_at_zero(dtype):
    # Conv2D(activation="relu") applies relu inside the convolution; a callable that is not
    # spherenet's relu goes the unfused way. Same values and gradients, bit for bit. Two of the
    # four images are zero and the bias is zero there, so those outputs sit exactly at the kink:
    # their gradient must be 0 (as TensorFlow and PyTorch), not 1 or 1/2.
    from spherenet.nn import activations
    from spherenet.nn._autodiff import value_and_grads

    rng = np.random.default_rng(13)
    fused = Conv2D(4, 3, padding="same", activation="relu")
    unfused = Conv2D(4, 3, padding="same", activation=lambda t: activations.relu(t))
    for layer in (fused, unfused):
        layer.build((5, 6, 2))
    x = rng.standard_normal((4, 5, 6, 2)).astype(dtype)
    x[1::2] = 0.0
    k = rng.standard_normal((3, 3, 2, 4)).astype(dtype)
    b = np.zeros(4, dtype=dtype)
    weights = rng.standard_normal((4, 5, 6, 4)).astype(dtype)
    results = [value_and_grads(lambda *a, layer=layer: anp.sum(layer.apply(a[1:], a[0]) * weights),
                               [x, k, b]) for layer in (fused, unfused)]
    (value, grads), (value_ref, grads_ref) = results
    assert value == value_ref
    for got, ref in zip(grads, grads_ref):
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, ref)
    dx, dk, db = grads
    np.testing.assert_array_equal(dx[1::2], 0.0)
    # the zero images add nothing to the kernel's and the bias's gradients
    _, (_, dk_half, db_half) = value_and_grads(
        lambda x, k, b: anp.sum(fused.apply((k, b), x) * weights[::2]), [x[::2], k, b])
    np.testing.assert_allclose(dk, dk_half, rtol=0, atol=50 * float(np.finfo(dtype).eps))
    np.testing.assert_allclose(db, db_half, rtol=0, atol=50 * float(np.finfo(dtype).eps))
    # and Conv1D likewise
    fused1 = Conv1D(3, 2, padding="causal", activation="relu")
    unfused1 = Conv1D(3, 2, padding="causal", activation=lambda t: activations.relu(t))
    for layer in (fused1, unfused1):
        layer.build((6, 2))
    x1, k1 = x[:, 0, :, :], k[0, :2, :, :3]
    w1 = weights[:, 0, :, :3]
    got, want = (value_and_grads(lambda *a, layer=layer: anp.sum(layer.apply(a[1:], a[0]) * w1),
                                 [x1, k1, b[:3]]) for layer in (fused1, unfused1))
    assert got[0] == want[0]
    for g, ref in zip(got[1], want[1]):
        np.testing.assert_array_equal(g, ref)


# --- pooling --------------------------------------------------------------------------


def naive_pool(x, pool, strides, padding, op, g):
    """Pooled values and the input gradient for output weights ``g``, window by window."""
    n, h, w, c = x.shape
    ho, top = keras_window(h, pool[0], strides[0], 1, padding)
    wo, left = keras_window(w, pool[1], strides[1], 1, padding)
    y, gx = np.zeros((n, ho, wo, c)), np.zeros_like(x)
    for a, p, q, ch in itertools.product(range(n), range(ho), range(wo), range(c)):
        cells = [(r, s) for r in range(p * strides[0] - top, p * strides[0] - top + pool[0])
                 for s in range(q * strides[1] - left, q * strides[1] - left + pool[1])
                 if 0 <= r < h and 0 <= s < w]  # row-major order within the window
        values = [x[a, r, s, ch] for r, s in cells]
        if op == "max":
            y[a, p, q, ch] = max(values)
            r, s = cells[values.index(max(values))]  # the first maximum
            gx[a, r, s, ch] += g[a, p, q, ch]
        else:
            y[a, p, q, ch] = sum(values) / len(values)
            for r, s in cells:
                gx[a, r, s, ch] += g[a, p, q, ch] / len(cells)
    return y, gx


POOL_CASES = list(itertools.product([(7, 6), (4, 4)], [(2, 2), (3, 2)], [None, (1, 1), (2, 3)],
                                    ["valid", "same"]))


@pytest.mark.parametrize("hw, pool, strides, padding", POOL_CASES)
@pytest.mark.parametrize("op", ["max", "average"])
def test_pooling_forward_and_backward_equal_window_loops(hw, pool, strides, padding, op):
    rng = np.random.default_rng(6)
    x = rng.integers(-1, 2, (2, *hw, 3)).astype(np.float64)  # three values: ties everywhere
    fn = max_pool2d if op == "max" else average_pool2d
    out = fn(x, pool, strides, padding)
    g = rng.standard_normal(out.shape)
    want, want_grad = naive_pool(x, pool, strides or pool, padding, op, g)
    np.testing.assert_allclose(out, want, rtol=4 * EPS64, atol=0)
    got_grad = grad(lambda a: anp.sum(fn(a, pool, strides, padding) * g))(x)
    np.testing.assert_allclose(got_grad, want_grad, rtol=4 * EPS64, atol=4 * EPS64)


def test_max_pooling_gives_a_tie_to_the_first_entry_in_row_major_order():
    x = np.zeros((1, 2, 2, 1))
    x[0, 0, 1, 0] = x[0, 1, 0, 0] = 3.0  # (0, 1) comes before (1, 0)
    g = grad(lambda a: anp.sum(max_pool2d(a)))(x)
    np.testing.assert_array_equal(g[0, :, :, 0], [[0.0, 1.0], [0.0, 0.0]])
    # a window of equal values: its first entry
    g = grad(lambda a: anp.sum(max_pool2d(a)))(np.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(g[0, :, :, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_padding_never_wins_a_max_nor_counts_in_an_average():
    x = -np.ones((1, 3, 3, 1))
    np.testing.assert_array_equal(max_pool2d(x, 2, padding="same"), -np.ones((1, 2, 2, 1)))
    x = np.arange(9.0).reshape(1, 3, 3, 1)
    # windows (0, 1, 3, 4), (2, 5), (6, 7), (8)
    np.testing.assert_array_equal(average_pool2d(x, 2, padding="same")[0, :, :, 0],
                                  [[2.0, 3.5], [6.5, 8.0]])


def test_global_average_pooling_and_reshape():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 4, 5, 2))
    pool = GlobalAveragePooling2D()
    assert pool.build((4, 5, 2)) == (2,)
    np.testing.assert_allclose(pool.apply((), x), x.mean(axis=(1, 2)), rtol=4 * EPS64)
    keep = GlobalAveragePooling2D(keepdims=True)
    assert keep.build((4, 5, 2)) == (1, 1, 2)
    assert keep.apply((), x).shape == (3, 1, 1, 2)
    g = rng.standard_normal((3, 2))
    got = grad(lambda a: anp.sum(pool.apply((), a) * g))(x)
    np.testing.assert_allclose(got, np.broadcast_to(g[:, None, None, :] / 20, x.shape),
                               rtol=4 * EPS64)
    reshape = Reshape((-1, 5))
    assert reshape.build((4, 5, 2)) == (8, 5)
    np.testing.assert_array_equal(reshape.apply((), x), x.reshape(3, 8, 5))
    g = rng.standard_normal((3, 8, 5))
    np.testing.assert_array_equal(grad(lambda a: anp.sum(reshape.apply((), a) * g))(x),
                                  g.reshape(x.shape))


# --- dtypes, shapes, initialization ------------------------------------------------------


def test_float32_stays_float32_in_values_and_gradients():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)

    def loss(x, k, b):
        h = conv2d(x, k, b, 2, "same")
        h = max_pool2d(h, 2, padding="same") + average_pool2d(h, 2, padding="same")
        return anp.sum(h * h)

    assert conv2d(x, k, b, 2, "same").dtype == np.float32
    for argnum in range(3):
        assert grad(loss, argnum)(x, k, b).dtype == np.float32
    x1, k1 = x[:, 0], k[0]
    assert conv1d(x1, k1, b, padding="causal").dtype == np.float32
    assert grad(lambda a: anp.sum(conv1d(a, k1, b) ** 2))(x1).dtype == np.float32
    pool = GlobalAveragePooling2D()
    assert grad(lambda a: anp.sum(pool.apply((), a) ** 2))(x).dtype == np.float32
    # and float32 results agree with float64 to float32 rounding
    ref = conv2d(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64), 2, "same")
    np.testing.assert_allclose(conv2d(x, k, b, 2, "same"), ref, rtol=0,
                               atol=30 * EPS32 * np.max(np.abs(ref)))


@pytest.mark.parametrize("size, k, s, d, padding", [
    (7, 3, 2, 1, "same"), (7, 3, 2, 1, "valid"), (8, 3, 2, 1, "same"), (8, 2, 3, 1, "same"),
    (9, 3, 1, 2, "valid"), (9, 3, 1, 3, "same"), (5, 5, 1, 1, "valid"), (1, 3, 1, 1, "same"),
])
def test_output_shapes_follow_keras(size, k, s, d, padding):
    # Keras: "valid" floor((n - (k - 1) d - 1) / s) + 1, "same" ceil(n / s)
    expected = (size - (k - 1) * d - 1) // s + 1 if padding == "valid" else -(-size // s)
    layer = Conv2D(2, (k, 1), strides=(s, 1), padding=padding, dilation_rate=(d, 1))
    assert layer.build((size, 3, 1)) == (expected, 3, 2)
    x = np.zeros((1, size, 3, 1))
    assert layer.pre_activation([np.zeros((k, 1, 1, 2)), np.zeros(2)], x).shape == (1, expected, 3, 2)
    pool = MaxPooling2D((k, 1), strides=(s, 1), padding=padding)
    if d == 1:
        assert pool.build((size, 3, 1)) == (expected, 3, 1)
        assert pool.apply((), x).shape == (1, expected, 3, 1)
    assert Conv1D(2, k, strides=s, padding=padding, dilation_rate=d).build((size, 4)) == (expected, 2)


def test_default_kernel_initializer_is_glorot_uniform_over_keras_fans():
    # fans of a (3, 3, 8, 16) kernel: 9 * 8 in, 9 * 16 out; limit sqrt(6 / (72 + 144))
    model = Sequential([Conv2D(16, 3, input_shape=(5, 5, 8))], seed=0, dtype="float64")
    kernel, bias = model.get_weights()
    limit = np.sqrt(6.0 / (72 + 144))
    assert np.max(np.abs(kernel)) <= limit
    assert np.max(np.abs(kernel)) > 0.99 * limit  # 1152 draws reach the edge
    np.testing.assert_allclose(np.var(kernel), limit ** 2 / 3, rtol=0.1)
    np.testing.assert_array_equal(bias, 0.0)


def test_a_unit_norm_kernel_is_a_point_of_the_oblique_manifold_of_filters():
    layer = Conv2D(5, (3, 2), kernel_constraint=unit_norm(axis=[0, 1, 2]))
    layer.build((6, 6, 4))
    assert layer.params[0].manifold == Oblique(shape=(3, 2, 4, 5), axis=(0, 1, 2))
    layer = Conv1D(5, 3, kernel_constraint=unit_norm(axis=[0, 1]))
    layer.build((6, 4))
    assert layer.params[0].manifold == Oblique(shape=(3, 4, 5), axis=(0, 1))
    assert layer.count_params() == 3 * 4 * 5 + 5


def small_cnn(strategy="riemannian", dtype="float32"):
    un = unit_norm(axis=[0, 1, 2])
    model = Sequential([
        Conv2D(4, 3, padding="same", activation="relu", kernel_constraint=un,
               input_shape=(6, 6, 2)),
        MaxPooling2D(2),
        Conv2D(3, 2, strides=2, activation="tanh", kernel_constraint=un),
        Flatten(),
        Dense(2, activation="softmax"),
    ], seed=0, dtype=dtype)
    model.compile(optimizer=RSGD(lr=0.5, momentum=0.9), loss="sparse_categorical_crossentropy",
                  strategy=strategy)
    return model


def test_unit_norm_filters_stay_on_their_spheres_under_riemannian_training():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 6, 6, 2))
    y = (x[:, :3, :, 0].sum(axis=(1, 2)) > 0).astype(int)
    model = small_cnn()
    start = model.get_weights()
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=0)
    for i in (0, 2):
        kernel = model.get_weights()[i]
        assert kernel.dtype == np.float32
        assert np.max(np.abs(kernel - start[i])) > 0.05  # it moved
        norms = np.sqrt(np.sum(kernel.astype(np.float64) ** 2, axis=(0, 1, 2)))
        np.testing.assert_allclose(norms, 1.0, rtol=0, atol=4 * EPS32)


def test_save_and_load_round_trip_bit_for_bit(tmp_path):
    rng = np.random.default_rng(10)
    model = Sequential([
        Reshape((6, 6, 2), input_shape=(72,)),
        Conv2D(4, 3, padding="same", dilation_rate=2, activation="relu",
               kernel_constraint=unit_norm(axis=[0, 1, 2])),
        AveragePooling2D(2, strides=1, padding="same"),
        MaxPooling2D(3, strides=2, padding="same"),
        Conv2D(3, 2, use_bias=False, kernel_initializer="he_normal"),
        GlobalAveragePooling2D(),
        Dense(2, activation="softmax"),
    ], seed=1)
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    x = rng.standard_normal((16, 72))
    y = rng.integers(0, 2, 16)
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)
    path = os.path.join(tmp_path, "cnn.npz")
    model.save(path)
    again = load_model(path)
    assert [layer.get_config() for layer in again.layers] == \
        [layer.get_config() for layer in model.layers]
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    assert model.predict(x).tobytes() == again.predict(x).tobytes()
    # and training resumes identically
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    again.fit(x, y, epochs=1, batch_size=4, verbose=0)
    for a, b in zip(model.get_weights(), again.get_weights()):
        assert a.tobytes() == b.tobytes()

    seq = Sequential([
        Conv1D(3, 3, padding="causal", dilation_rate=2, kernel_constraint=unit_norm(axis=[0, 1]),
               input_shape=(10, 2)),
        Conv1D(2, 2, strides=2, padding="same", activation="relu"),
        Reshape((10,)),
        Dense(1, activation="sigmoid"),
    ], seed=2, dtype="float64")
    path = os.path.join(tmp_path, "seq.npz")
    seq.save(path)
    again = load_model(path)
    assert again.dtype == np.float64
    xs = rng.standard_normal((5, 10, 2))
    for a, b in zip(seq.get_weights(), again.get_weights()):
        assert a.tobytes() == b.tobytes()
    assert seq.predict(xs).tobytes() == again.predict(xs).tobytes()


def test_default_names_follow_keras():
    model = Sequential([Conv2D(2, 3, input_shape=(8, 8, 1)), Conv2D(2, 3), MaxPooling2D(),
                        AveragePooling2D(), GlobalAveragePooling2D()])
    assert [layer.name for layer in model.layers] == [
        "conv2d", "conv2d_1", "max_pooling2d", "average_pooling2d", "global_average_pooling2d"]
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Oblique" not in text and "(None, 2, 2, 2)" in text
    assert model.count_params() == (3 * 3 * 1 * 2 + 2) + (3 * 3 * 2 * 2 + 2)


# --- bad input -------------------------------------------------------------------------


def test_bad_input_is_refused_with_what_was_expected():
    with pytest.raises(ValueError, match=r"expects samples of shape \(height, width, channels\), got \(8, 8\)"):
        Sequential([Conv2D(2, 3, input_shape=(8, 8))]).build()
    with pytest.raises(ValueError, match=r"expects samples of shape \(steps, channels\)"):
        Sequential([Conv1D(2, 3, input_shape=(8, 8, 1))]).build()
    with pytest.raises(ValueError, match=r"input height has size 2, smaller than the kernel's span 3"):
        Sequential([Conv2D(2, 3, input_shape=(2, 8, 1))]).build()
    with pytest.raises(ValueError, match=r"input width has size 3, smaller than the kernel's span 5 "
                                         r"\(kernel size 3, dilation 2\)"):
        Sequential([Conv2D(2, 3, dilation_rate=2, input_shape=(8, 3, 1))]).build()
    with pytest.raises(ValueError, match=r"smaller than the kernel's span 3"):
        Sequential([MaxPooling2D(3, input_shape=(2, 8, 1))]).build()
    with pytest.raises(ValueError, match=r"padding must be one of 'valid', 'same', got 'full'"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"padding must be one of 'valid', 'same', got 'causal'"):
        Conv2D(2, 3, padding="causal")
    with pytest.raises(ValueError, match=r"padding must be one of 'valid', 'same', got 'causal'"):
        MaxPooling2D(padding="causal")
    with pytest.raises(ValueError, match=r"kernel_size must be a positive integer or a tuple of 2"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match=r"strides must be a positive integer .* got 0"):
        Conv2D(2, 3, strides=0)
    with pytest.raises(ValueError, match=r"filters must be a positive integer, got 2.5"):
        Conv2D(2.5, 3)
    with pytest.raises(ValueError, match=r"data_format must be 'channels_last'"):
        Conv2D(2, 3, data_format="channels_first")
    with pytest.raises(ValueError, match=r"cannot reshape samples of shape \(10,\) .* to \(3, 3\)"):
        Sequential([Reshape((3, 3), input_shape=(10,))]).build()
    with pytest.raises(ValueError, match=r"at most one -1"):
        Reshape((-1, -1))
    # the functions check their operands
    x, k = np.zeros((1, 5, 5, 3)), np.zeros((3, 3, 2, 4))
    with pytest.raises(ValueError, match=r"x has 3 channels, but the kernel expects 2"):
        conv2d(x, k)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, height, width, channels\), "
                                         r"got shape \(5, 5, 3\)"):
        conv2d(x[0], k)
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\), got \(3,\)"):
        conv2d(x, np.zeros((3, 3, 3, 4)), np.zeros(3))
    with pytest.raises(TypeError, match=r"x must be a floating-point array, got dtype int64"):
        conv2d(np.zeros((1, 5, 5, 3), dtype=np.int64), np.zeros((3, 3, 3, 4)))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, height, width, channels\)"):
        max_pool2d(np.zeros((5, 5, 3)))
    # and a model fed samples of the wrong shape says so, before any weight changes
    model = small_cnn()
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"samples of shape \(6, 6, 3\), but the model expects "
                                         r"samples of shape \(6, 6, 2\)"):
        model.fit(np.zeros((4, 6, 6, 3)), np.zeros(4, dtype=int), verbose=0)
    for a, b in zip(before, model.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_conv_kernel_regularizer_adds_the_hyperspherical_energy_of_its_filters():
    # Conv2D takes Keras's kernel_regularizer; the MHE term of its unit-norm filters is the
    # Riesz s-energy sum_{i<j} 1/||w_i - w_j||^s of the flattened filters, written out here.
    from spherenet.nn import Conv2D, Flatten, HypersphericalEnergy, Sequential
    from spherenet.nn.layers import layer_from_config
    from spherenet.nn import unit_norm as un
    strength = 0.01
    model = Sequential([
        Conv2D(3, 2, input_shape=(4, 4, 1), kernel_constraint=un(axis=[0, 1, 2]),
               kernel_regularizer=HypersphericalEnergy(strength, axis=(0, 1, 2))),
        Flatten()], dtype="float64", seed=3)
    model.compile(optimizer="rsgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(5, 4, 4, 1))
    y = np.zeros((5, 27))
    kernel = model.get_weights()[0]
    w = kernel.reshape(-1, 3)
    energy = sum(1.0 / np.linalg.norm(w[:, i] - w[:, j])
                 for i in range(3) for j in range(i + 1, 3))
    data_loss = np.mean((model.predict(x) - y) ** 2)
    assert model.evaluate(x, y) == pytest.approx(data_loss + strength * energy, rel=1e-12)
    config = model.layers[0].get_config()
    assert config["kernel_regularizer"]["name"] == "hyperspherical_energy"
    assert list(config)[:7] == ["class_name", "name", "input_shape", "filters", "kernel_size",
                                "strides", "padding"]
    again = layer_from_config(config)
    assert again.kernel_regularizer.get_config() == model.layers[0].kernel_regularizer.get_config()
