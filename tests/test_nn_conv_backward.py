"""The convolution's backward pass, block by block, against plain NumPy written here.

* ``_patches_gemm`` with a step (the zeros spread between the entries of
  the output's gradient for a strided convolution) and padding, block by
  block in buffers used again: against ``np.zeros``, one strided assignment,
  an im2col written from the definition and a float64 product; ``prepare``
  runs in each block before its images are read.
* ``_conv_backward``: the kernel's and the bias's gradients are the sums of
  one partial product per block of images, added in the order of the blocks
  -- bit for bit the same as those products and additions done here with an
  im2col written from the definition; the input's gradient against a
  scatter loop in float64 (strides, dilation, padding, 1x1 kernels); the
  relu mask (gradient 0 where the output is 0); gradients not asked for
  are not computed; a non-contiguous output gradient; an empty batch (zero
  kernel and bias gradients); dtypes kept.
* A training step of a conv layer with relu runs its backward pass as one
  parallel region: masking, kernel, bias and input gradients in the same
  tasks.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet.nn import _parallel, conv
from spherenet.nn._autodiff import value_and_grads

from test_nn_conv import keras_window

EPS32 = float(np.finfo(np.float32).eps)
EPS64 = float(np.finfo(np.float64).eps)


def im2col(x, ksize, strides, dilation, pads):
    """(N * Ho * Wo, kh * kw * C), rows in (n, p, q) order, columns in (i, j, c) order: loops."""
    n, h, w, c = x.shape
    (kh, kw), (sh, sw), (dh, dw), ((top, bottom), (left, right)) = ksize, strides, dilation, pads
    ho = (h + top + bottom - (kh - 1) * dh - 1) // sh + 1
    wo = (w + left + right - (kw - 1) * dw - 1) // sw + 1
    cols = np.zeros((n, ho, wo, kh, kw, c), dtype=x.dtype)
    for p in range(ho):
        for q in range(wo):
            for i in range(kh):
                for j in range(kw):
                    r, s = p * sh + i * dh - top, q * sw + j * dw - left
                    if 0 <= r < h and 0 <= s < w:
                        cols[:, p, q, i, j] = x[:, r, s]
    return cols.reshape(n * ho * wo, kh * kw * c)


def input_grad_by_scatter(g, k, x_shape, strides, dilation, pads):
    """dL/dx: every output gradient sent back along the kernel, in float64."""
    g, k = g.astype(np.float64), k.astype(np.float64)
    (sh, sw), (dh, dw), ((top, _), (left, _)) = strides, dilation, pads
    n, h, w, _ = x_shape
    dx = np.zeros(x_shape)
    for p in range(g.shape[1]):
        for q in range(g.shape[2]):
            for i in range(k.shape[0]):
                for j in range(k.shape[1]):
                    r, s = p * sh + i * dh - top, q * sw + j * dw - left
                    if 0 <= r < h and 0 <= s < w:
                        dx[:, r, s] += g[:, p, q] @ k[i, j].T
    return dx


@pytest.mark.parametrize("kept", [False, True])
@pytest.mark.parametrize("step, pads, strides, dilation", [
    ((2, 3), ((1, 0), (2, 1)), (1, 1), (1, 1)),
    ((3, 1), ((0, 0), (0, 0)), (1, 2), (2, 1)),
    ((1, 1), ((2, 1), (0, 3)), (2, 1), (1, 2)),
    ((1, 1), ((0, 0), (0, 0)), (1, 1), (1, 1)),
])
def test_patches_of_the_spread_and_padded_source_block_by_block(monkeypatch, step, pads, strides,
                                                                dilation, kept):
    rng = np.random.default_rng(0)
    given = rng.standard_normal((7, 3, 4, 2))
    source = np.full(given.shape, np.nan)  # written by prepare, block by block
    (top, bottom), (left, right) = pads
    hs, ws = (3 - 1) * step[0] + 1, (4 - 1) * step[1] + 1
    spread = np.zeros((7, top + hs + bottom, left + ws + right, 2))
    spread[:, top:top + hs:step[0], left:left + ws:step[1]] = given
    want_cols = im2col(spread, (2, 2), strides, dilation, ((0, 0), (0, 0)))
    matrix = rng.standard_normal((8, 3))
    shape = conv._windows_shape(given.shape, pads, step, (2, 2), strides, dilation)
    assert shape[1] * shape[2] * 7 == len(want_cols)
    out = np.empty((len(want_cols), 3))
    patches = np.empty(shape) if kept else None
    calls = []

    def prepare(lo, hi):
        calls.append((lo, hi))
        source[lo:hi] = given[lo:hi]

    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 3)  # blocks of 3, 3 and 1 images
    conv._patches_gemm(source, pads, step, (2, 2), strides, dilation, matrix, out, patches,
                       prepare=prepare)
    assert calls == [(0, 3), (3, 6), (6, 7)]
    np.testing.assert_allclose(out, want_cols @ matrix, rtol=0,
                               atol=20 * EPS64 * np.abs(want_cols).sum(1).max())
    if kept:
        np.testing.assert_array_equal(patches.reshape(want_cols.shape), want_cols)


CASES = [
    # x shape, kernel size, strides, padding, dilation
    ((7, 6, 5, 3), (3, 3), (1, 1), "same", (1, 1)),
    ((5, 7, 6, 2), (3, 2), (2, 3), "same", (1, 2)),
    ((6, 6, 7, 2), (2, 3), (2, 1), "valid", (2, 1)),
    ((5, 4, 4, 3), (1, 1), (1, 1), "valid", (1, 1)),  # the input is its own im2col matrix
]


def setup(shape, ksize, strides, padding, dilation, dtype, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal((*ksize, shape[3], 4)).astype(dtype)
    (ho, top), (wo, left) = (keras_window(shape[1 + a], ksize[a], strides[a], dilation[a], padding)
                             for a in (0, 1))
    bottom = max((ho - 1) * strides[0] + (ksize[0] - 1) * dilation[0] + 1 - shape[1] - top, 0)
    right = max((wo - 1) * strides[1] + (ksize[1] - 1) * dilation[1] + 1 - shape[2] - left, 0)
    pads = ((top, bottom), (left, right))
    g = rng.standard_normal((shape[0], ho, wo, 4)).astype(dtype)
    # a relu's output: zeros (its kink, where the gradient is 0) and positive values
    ans = np.maximum(rng.standard_normal((shape[0], ho, wo, 4)), 0).astype(dtype)
    return x, k, pads, g, ans


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("images_per_block", [1, 2, 100])
@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES)
def test_kernel_and_bias_gradients_are_the_blocks_partial_sums_in_order(
        monkeypatch, shape, ksize, strides, padding, dilation, images_per_block, relu, dtype):
    x, k, pads, g, ans = setup(shape, ksize, strides, padding, dilation, dtype)
    patches = im2col(x, ksize, strides, dilation, pads)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", images_per_block)
    dx, dk, db = conv._conv_backward(g, ans if relu else None, k, x.shape, strides, dilation,
                                     pads, patches, True, True)
    masked = g * (ans > 0) if relu else g
    rows = masked.reshape(len(patches), -1)
    per_image = len(patches) // shape[0]
    want_k = want_b = None
    for lo in range(0, shape[0], images_per_block):  # the blocks' partial sums, in order
        block = slice(lo * per_image, min(shape[0], lo + images_per_block) * per_image)
        part_k = patches[block].T @ rows[block]
        part_b = np.ones(block.stop - block.start, dtype=dtype) @ rows[block]
        want_k = part_k if want_k is None else want_k + part_k
        want_b = part_b if want_b is None else want_b + part_b
    assert dx.dtype == dk.dtype == db.dtype == dtype
    np.testing.assert_array_equal(dk, want_k.reshape(k.shape))
    np.testing.assert_array_equal(db, want_b)
    # and they are the gradients: against float64 sums
    exact_k = patches.astype(np.float64).T @ rows.astype(np.float64)
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(dk.reshape(exact_k.shape), exact_k, rtol=0,
                               atol=50 * eps * np.abs(patches).max() * np.abs(rows).sum(0).max())
    np.testing.assert_allclose(db, rows.astype(np.float64).sum(0), rtol=0,
                               atol=50 * eps * np.abs(rows).sum(0).max())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("images_per_block", [1, 3, 100])
@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES)
def test_the_input_gradient_is_the_scatter_of_the_output_gradient(
        monkeypatch, shape, ksize, strides, padding, dilation, images_per_block, relu, dtype):
    x, k, pads, g, ans = setup(shape, ksize, strides, padding, dilation, dtype, seed=2)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", images_per_block)
    dx, dk, db = conv._conv_backward(g, ans if relu else None, k, x.shape, strides, dilation,
                                     pads, None, True, False)
    assert dk is None and db is None
    want = input_grad_by_scatter(g * (ans > 0) if relu else g, k, x.shape, strides, dilation, pads)
    assert dx.dtype == dtype and dx.shape == x.shape
    # each entry sums at most kh * kw * F products of entries below 5 in size
    np.testing.assert_allclose(dx, want, rtol=0,
                               atol=200 * np.finfo(dtype).eps * np.abs(want).max())


def test_the_kernel_gradient_alone_masks_and_sums_without_an_input_gradient(monkeypatch):
    # the network's first layer: x is data, only the kernel and bias are traced
    x, k, pads, g, ans = setup((9, 8, 8, 1), (3, 3), (1, 1), "same", (1, 1), np.float32)
    patches = im2col(x, (3, 3), (1, 1), (1, 1), pads)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 4)  # 3 blocks: 4, 4 and 1 images
    dx, dk, db = conv._conv_backward(g, ans, k, x.shape, (1, 1), (1, 1), pads, patches, False,
                                     True)
    assert dx is None
    rows = (g * (ans > 0)).reshape(-1, 4).astype(np.float64)
    np.testing.assert_allclose(dk.reshape(9, 4), patches.astype(np.float64).T @ rows, rtol=0,
                               atol=50 * EPS32 * np.abs(rows).sum(0).max())
    np.testing.assert_allclose(db, rows.sum(0), rtol=0, atol=50 * EPS32 * np.abs(rows).sum(0).max())


def test_a_non_contiguous_output_gradient(monkeypatch):
    x, k, pads, g, _ = setup((4, 5, 5, 2), (1, 1), (1, 1), "valid", (1, 1), np.float64)
    patches = im2col(x, (1, 1), (1, 1), (1, 1), pads)
    wide = np.zeros((4, 5, 10, 4))
    wide[:, :, ::2] = g
    strided = wide[:, :, ::2]  # the same values, not contiguous: not its own im2col matrix
    assert not strided.flags.c_contiguous
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 3)
    got = conv._conv_backward(strided, None, k, x.shape, (1, 1), (1, 1), pads, patches, True, True)
    want = conv._conv_backward(g, None, k, x.shape, (1, 1), (1, 1), pads, patches, True, True)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(got[0], input_grad_by_scatter(g, k, x.shape, (1, 1), (1, 1), pads),
                               rtol=0, atol=20 * EPS64 * np.abs(g).max() * np.abs(k).sum())


def test_a_relu_layers_backward_pass_is_one_parallel_region(monkeypatch):
    regions = []
    real = _parallel.run_tasks

    def counting(tasks):
        tasks = list(tasks)
        regions.append(len(tasks))
        real(tasks)

    monkeypatch.setattr(conv, "run_tasks", counting)
    monkeypatch.setattr(_parallel, "run_tasks", counting)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 2)
    previous = _parallel.set_num_threads(2)
    try:
        x, k, pads, _, _ = setup((6, 8, 8, 3), (3, 3), (1, 1), "same", (1, 1), np.float32)
        b = np.zeros(4, dtype=np.float32)
        weights = np.random.default_rng(3).standard_normal((6, 8, 8, 4)).astype(np.float32)

        def loss(x, k, b):
            return anp.sum(conv._conv2d(x, k, b, (1, 1), (1, 1), pads, True) * weights)

        value, (dx, dk, db) = value_and_grads(loss, [x, k, b])
    finally:
        _parallel.set_num_threads(previous)
    # forward: one region of 3 blocks; backward: one more (mask, kernel, bias and input
    # gradients of each block in one task), nothing else split; with numba and NumPy's BLAS
    # a task is a thread's run of blocks: 2 tasks of 2 and 1 blocks
    assert regions == ([2, 2] if conv._whole_runs(2) else [3, 3])
    reference = [np.asarray(v) for v in value_and_grads(
        lambda x, k, b: anp.sum(conv._conv2d(x, k, b, (1, 1), (1, 1), pads, True) * weights),
        [x, k, b])[1]]
    for got, want in zip((dx, dk, db), reference):
        np.testing.assert_array_equal(got, want)


def test_an_empty_batch_has_zero_kernel_and_bias_gradients():
    x, k, pads, g, ans = setup((3, 5, 5, 2), (3, 3), (1, 1), "same", (1, 1), np.float32)
    patches = im2col(x, (3, 3), (1, 1), (1, 1), pads)[:0]
    dx, dk, db = conv._conv_backward(g[:0], ans[:0], k, (0, 5, 5, 2), (1, 1), (1, 1), pads,
                                     patches, True, True)
    assert dx.shape == (0, 5, 5, 2) and dx.dtype == np.float32
    np.testing.assert_array_equal(dk, np.zeros(k.shape, dtype=np.float32))
    np.testing.assert_array_equal(db, np.zeros(4, dtype=np.float32))
    assert dk.dtype == db.dtype == np.float32
