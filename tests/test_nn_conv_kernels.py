"""The convolution's numba kernels against its NumPy path and loops written here.

With numba the convolution gathers each im2col block in one pass straight
from the (unpadded, unspread) source, adds the bias and applies the relu in
one pass over the block's output, and masks the output's gradient by the
relu in one pass; the kernels copy and compute the same values as the NumPy
path, so the two give the same bits:

* ``_patches_gemm``: the im2col blocks (kept) equal an im2col written from
  the definition, for spread (a strided convolution's input gradient),
  padded, strided and dilated windows; the products, with and without bias
  and relu, are the NumPy path's bit for bit, float32 and float64.
* ``_conv_backward``: the input's, kernel's and bias's gradients of both
  paths bit for bit, with and without the relu mask.
* The single-pass kernels keep NumPy's special values: ``np.maximum``'s
  NaN and 0.0 for -0.0, the mask's ``0 * inf = NaN``.
* The kernel's gradient from the patches gathered again from the input,
  block by block (the default with the kernels), is the one from the
  whole batch's patches kept by the forward pass, bit for bit, and so is the
  fallback when the kernels are turned off between the two passes.
* Training a small CNN for a few steps ends at the same weights, bit for
  bit, with the kernels or without, on 1 or 2 threads.
"""

import numpy as np
import pytest

from spherenet.nn import (Conv2D, Dense, Flatten, MaxPooling2D, Sequential, _kernels, conv,
                          get_num_threads, set_num_threads)
from spherenet.nn._autodiff import value_and_grads
from spherenet.optim import RSGD

from test_nn_conv_backward import CASES, im2col, setup

pytestmark = pytest.mark.skipif(not _kernels.load(), reason="numba is not installed")


def on_both_paths(monkeypatch, fn):
    """``(fn() with the kernels, fn() on NumPy)``."""
    with_kernels = fn()
    with monkeypatch.context() as patch:
        patch.setitem(_kernels._STATE, "numba", False)
        without = fn()
    return with_kernels, without


def assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias, relu", [(False, False), (True, False), (False, True),
                                        (True, True)])
@pytest.mark.parametrize("step, pads, strides, dilation", [
    ((2, 3), ((1, 0), (2, 1)), (1, 1), (1, 1)),
    ((3, 1), ((0, 0), (0, 0)), (1, 2), (2, 1)),
    ((1, 1), ((2, 1), (0, 3)), (2, 1), (1, 2)),
    ((1, 1), ((1, 1), (1, 1)), (1, 1), (1, 1)),
    ((1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1)),
])
@pytest.mark.parametrize("channels", [1, 2])  # one channel: a loop of its own in the kernel
def test_patches_and_products_equal_the_numpy_path_and_the_definition(
        monkeypatch, step, pads, strides, dilation, bias, relu, dtype, channels):
    rng = np.random.default_rng(3)
    source = rng.standard_normal((7, 3, 4, channels)).astype(dtype)
    (top, bottom), (left, right) = pads
    hs, ws = (3 - 1) * step[0] + 1, (4 - 1) * step[1] + 1
    spread = np.zeros((7, top + hs + bottom, left + ws + right, channels), dtype=dtype)
    spread[:, top:top + hs:step[0], left:left + ws:step[1]] = source
    want_cols = im2col(spread, (2, 2), strides, dilation, ((0, 0), (0, 0)))
    matrix = rng.standard_normal((4 * channels, 3)).astype(dtype)
    b = rng.standard_normal(3).astype(dtype) if bias else None
    shape = conv._windows_shape(source.shape, pads, step, (2, 2), strides, dilation)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 3)  # blocks of 3, 3 and 1 images

    def run(keep):
        out = np.empty((len(want_cols), 3), dtype=dtype)
        kept = np.full(shape, np.nan, dtype=dtype) if keep else None
        conv._patches_gemm(source, pads, step, (2, 2), strides, dilation, matrix, out, kept,
                           bias=b, relu=relu)
        return out, kept

    (out, kept), (numpy_out, numpy_kept) = on_both_paths(monkeypatch, lambda: run(True))
    assert_same_bits(kept.reshape(want_cols.shape), want_cols)  # copies: exact
    assert_same_bits(kept, numpy_kept)
    want = want_cols.astype(np.float64) @ matrix.astype(np.float64)
    if bias:
        want += b
    if relu:
        want = np.maximum(want, 0)
    eps = float(np.finfo(dtype).eps)
    # 4 or 8 products summed, and the bias: a few roundings of the largest partial sum
    atol = 20 * eps * (np.abs(want_cols).sum(1).max() * np.abs(matrix).max()
                       + (np.abs(b).max() if bias else 0))
    assert_same_bits(out, numpy_out)
    # and without keeping the patches (one block-sized buffer reused)
    assert_same_bits(run(False)[0], numpy_out)
    np.testing.assert_allclose(out, want, rtol=0, atol=atol)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES)
def test_the_gradients_equal_the_numpy_path_bit_for_bit(monkeypatch, shape, ksize, strides,
                                                         padding, dilation, relu, dtype):
    x, k, pads, g, ans = setup(shape, ksize, strides, padding, dilation, dtype, seed=4)
    patches = im2col(x, ksize, strides, dilation, pads)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 2)
    (dx, dk, db), (numpy_dx, numpy_dk, numpy_db) = on_both_paths(
        monkeypatch, lambda: conv._conv_backward(g, ans if relu else None, k, x.shape, strides,
                                                 dilation, pads, patches, True, True))
    assert_same_bits(dk, numpy_dk)
    assert_same_bits(db, numpy_db)
    assert_same_bits(dx, numpy_dx)


def test_the_kernels_keep_numpys_special_values(monkeypatch):
    # the relu of np.maximum keeps NaN and turns -0.0 into 0.0; the mask makes 0 * inf a NaN,
    # as NumPy does
    x = np.zeros((1, 1, 6, 1), dtype=np.float32)
    kernel = np.ones((1, 1, 1, 1), dtype=np.float32)
    bias = np.full(1, -0.0, dtype=np.float32)  # -0.0 + -0.0 is -0.0 before the relu
    x[0, 0, :, 0] = [-0.0, np.nan, -1.0, 2.0, np.inf, -np.inf]
    out = np.empty((6, 1), dtype=np.float32)

    def forward():
        conv._patches_gemm(x, ((0, 0), (0, 0)), (1, 1), (1, 1), (1, 1), (1, 1),
                           np.ones((1, 1), dtype=np.float32), out, bias=bias, relu=True)
        return out.copy()

    fused, plain = on_both_paths(monkeypatch, forward)
    assert_same_bits(fused, plain)
    assert fused[0, 0] == 0.0 and not np.signbit(fused[0, 0]) and np.isnan(fused[1, 0])
    assert fused[2, 0] == 0.0 and fused[3, 0] == 2.0 and fused[4, 0] == np.inf
    g = np.array([np.inf, 1.0, -2.0, np.nan, -0.0, 3.0], dtype=np.float32).reshape(1, 1, 6, 1)
    ans = np.array([0.0, 1.0, -1.0, 2.0, 5.0, 0.0], dtype=np.float32).reshape(1, 1, 6, 1)
    with np.errstate(invalid="ignore"):  # inf * 0
        got, want = on_both_paths(monkeypatch, lambda: conv._conv_backward(
            g, ans, kernel, x.shape, (1, 1), (1, 1), ((0, 0), (0, 0)), None, True, False)[0])
    assert_same_bits(got, want)
    assert np.isnan(got[0, 0, 0, 0])  # inf * 0
    assert np.isnan(got[0, 0, 3, 0])  # a NaN gradient where the relu is active
    assert got[0, 0, 2, 0] == 0.0 and got[0, 0, 1, 0] == 1.0


def train(steps=3):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 8, 8, 2)).astype(np.float32)
    y = rng.integers(0, 3, 40)
    model = Sequential([
        Conv2D(4, 3, padding="same", activation="relu", input_shape=(8, 8, 2)),
        Conv2D(5, 3, strides=2, padding="same", activation="relu"),
        MaxPooling2D(2),
        Flatten(),
        Dense(3, activation="softmax"),
    ], seed=0)
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=40 // steps + 1, verbose=0, shuffle=False)
    return model.get_weights()


@pytest.mark.parametrize("threads", [1, 2])
def test_training_ends_at_the_same_weights_with_or_without_the_kernels(monkeypatch, threads):
    previous = set_num_threads(threads)
    try:
        got, want = on_both_paths(monkeypatch, train)
    finally:
        set_num_threads(previous)
    assert get_num_threads() == previous
    for a, b in zip(got, want):
        assert_same_bits(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("input_traced", [False, True])
@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES)
def test_patches_gathered_again_give_the_kept_patches_gradients(
        monkeypatch, shape, ksize, strides, padding, dilation, input_traced, relu, dtype):
    # training: the kernel's gradient from the patches gathered again block by block (the
    # default with the kernels), from the whole batch's patches kept by the forward pass, and
    # with the kernels turned off between the forward and the backward pass
    x, k, pads, _, _ = setup(shape, ksize, strides, padding, dilation, dtype, seed=6)
    b = np.linspace(-1, 1, k.shape[3]).astype(dtype)
    weights = np.random.default_rng(7).standard_normal(
        conv._conv2d(x, k, b, strides, dilation, pads).shape).astype(dtype)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 2)

    def gradients(keep, off_after_forward=False):
        monkeypatch.setattr(conv, "_KEEP_PATCHES", keep)

        def loss(*args):
            xs, ks, bs = args if input_traced else (x, *args)
            out = conv._conv2d(xs, ks, bs, strides, dilation, pads, relu)
            if off_after_forward:
                monkeypatch.setitem(_kernels._STATE, "numba", False)
            return (out * weights).sum()

        with monkeypatch.context() as patch:
            patch.setitem(_kernels._STATE, "numba", _kernels.load())
            return value_and_grads(loss, [x, k, b] if input_traced else [k, b])

    gathered, kept, turned_off = gradients(False), gradients(True), gradients(False, True)
    assert gathered[0] == kept[0] == turned_off[0]
    for got, want, fallback in zip(gathered[1], kept[1], turned_off[1]):
        assert_same_bits(got, want)
        assert_same_bits(fallback, want)
    # and the kernel's gradient is the patches' product: against float64
    patches = im2col(x, ksize, strides, dilation, pads).astype(np.float64)
    out = patches @ k.reshape(-1, k.shape[3]).astype(np.float64) + b
    g = weights.reshape(out.shape).astype(np.float64) * ((out > 0) if relu else 1)
    dk = gathered[1][1 if input_traced else 0]
    np.testing.assert_allclose(dk.reshape(-1, k.shape[3]), patches.T @ g, rtol=0,
                               atol=100 * float(np.finfo(dtype).eps) * np.abs(patches).sum(0).max()
                               * np.abs(g).max())
