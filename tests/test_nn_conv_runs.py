"""A thread's run of convolution blocks in one compiled call (``_kernels._conv_grad_blocks``, ...).

With numba and NumPy's own BLAS (``_kernels.blas``), each thread runs its
blocks of images in one call without the GIL: the gather, the matrix
products (NumPy's BLAS function, called with the arguments ``np.matmul``
passes it) and the bias, relu and mask. Checked here:

* ``blas()`` gives ``np.matmul``'s bits on products other than those it
  checks itself, and the products are right (against float64);
  when its self-check fails (another BLAS), it is False and the convolution
  runs its blocks one call at a time, with the same results;
* forward pass and the input's, kernel's and bias's gradients of the runs
  equal, bit for bit, those of the blocks one call at a time (with the
  kernels) and of the NumPy path (without them), on 1, 2 and 3 threads,
  float32 and float64, strided, dilated and padded, with and without the
  relu, with the gradients in all three, in the kernel and bias only (a
  first layer) and in the input only; the runs really ran (the test would
  otherwise compare a path with itself); and they equal a convolution
  written from the definition, and their gradients finite differences;
* products with a size 1 (one filter, one output pixel), which ``np.matmul``
  does not send to GEMM, and non-contiguous operands take the blocks one call
  at a time.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet.nn import _kernels, conv, get_num_threads, set_num_threads
from spherenet.nn._autodiff import value_and_grads

from test_nn_conv import keras_window, naive_conv2d

pytestmark = pytest.mark.skipif(not (_kernels.load() and _kernels.blas()),
                                reason="numba or NumPy's bundled OpenBLAS is missing")

CASES = [
    # x shape, kernel size, strides, padding, dilation
    ((9, 8, 8, 3), (3, 3), (1, 1), "same", (1, 1)),
    ((7, 7, 6, 2), (3, 2), (2, 1), "same", (1, 2)),
    ((5, 6, 5, 4), (2, 3), (1, 2), "valid", (1, 1)),
    ((6, 9, 8, 1), (3, 3), (2, 2), "same", (2, 1)),  # one channel: a first layer
]


@pytest.fixture
def threads():
    previous = get_num_threads()
    yield set_num_threads
    set_num_threads(previous)


@pytest.fixture
def spy(monkeypatch):
    """Counts the calls of the two run kernels (``{name: calls}``)."""
    kernels = _kernels.load()
    counts = {"patches_gemm_blocks": 0, "conv_grad_blocks": 0}
    for name in counts:
        def counted(*args, _run=kernels[name], _name=name):
            counts[_name] += 1
            return _run(*args)
        monkeypatch.setitem(kernels, name, counted)
    return counts


def pads_of(shape, ksize, strides, padding, dilation):
    return tuple(conv._window(shape[1 + a], ksize[a], strides[a], dilation[a], padding)[1:]
                 for a in (0, 1))


def value_and_gradients(x, k, b, strides, dilation, pads, relu, weights, wrt="xkb"):
    """The convolution's output and the gradients of sum(out * weights) in those of x, k, b
    named by ``wrt`` (``"kb"``: a network's first layer; ``"x"``: a layer whose kernel is
    constant)."""
    outs, operands = [], {"x": x, "k": k, "b": b}

    def loss(*args):
        given = dict(operands, **dict(zip(wrt, args)))
        out = conv._conv2d(given["x"], given["k"], given["b"], strides, dilation, pads, relu)
        outs.append(getattr(out, "_value", out))
        return anp.sum(out * weights)

    _, grads = value_and_grads(loss, [operands[name] for name in wrt])
    return [outs[0], *grads]


def operands(shape, ksize, strides, padding, dilation, dtype, filters=5, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    x[1] = 0  # a whole image at the relu's kink
    k = rng.standard_normal((*ksize, shape[3], filters)).astype(dtype)
    b = rng.standard_normal(filters).astype(dtype)
    ho = keras_window(shape[1], ksize[0], strides[0], dilation[0], padding)[0]
    wo = keras_window(shape[2], ksize[1], strides[1], dilation[1], padding)[0]
    weights = rng.standard_normal((shape[0], ho, wo, filters)).astype(dtype)
    return x, k, b, weights


def assert_same_bits(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("transposed", [False, True])
def test_blas_gives_matmuls_bits_and_the_product(dtype, transposed):
    functions = _kernels.blas()
    rng = np.random.default_rng(7)
    a = rng.standard_normal((131, 77)).astype(dtype)
    b = rng.standard_normal((131 if transposed else 77, 23)).astype(dtype)
    out = np.full((77 if transposed else 131, 23), np.nan, dtype=dtype)
    m, n, k = (77, 23, 131) if transposed else (131, 23, 77)
    functions["gemm"][np.dtype(dtype)](
        _kernels._ROW_MAJOR, _kernels._TRANS if transposed else _kernels._NO_TRANS,
        _kernels._NO_TRANS, m, n, k, 1.0, a.ctypes.data, 77, b.ctypes.data, 23, 0.0,
        out.ctypes.data, 23)
    left = a.T if transposed else a
    assert_same_bits(out, left @ b)
    want = left.astype(np.float64) @ b.astype(np.float64)
    # k products summed: k roundings of the partial sums at most, bounded by sum |a_i b_i|
    bound = np.abs(left.astype(np.float64)) @ np.abs(b.astype(np.float64))
    assert np.all(np.abs(out - want) <= k * np.finfo(dtype).eps * bound)
    v = rng.standard_normal(131).astype(dtype)
    column = rng.standard_normal((131, 23)).astype(dtype)
    sums = np.full(23, np.nan, dtype=dtype)
    functions["gemv"][np.dtype(dtype)](_kernels._ROW_MAJOR, _kernels._TRANS, 131, 23, 1.0,
                                       column.ctypes.data, 23, v.ctypes.data, 1, 0.0,
                                       sums.ctypes.data, 1)
    assert_same_bits(sums, v @ column)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("wrt", ["xkb", "kb", "x"])
@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES)
def test_runs_equal_the_blocks_one_call_at_a_time_and_numpy_on_1_2_3_threads(
        monkeypatch, threads, spy, shape, ksize, strides, padding, dilation, wrt, relu, dtype):
    x, k, b, weights = operands(shape, ksize, strides, padding, dilation, dtype)
    pads = pads_of(shape, ksize, strides, padding, dilation)
    monkeypatch.setattr(conv, "_BLOCK_IMAGES", 2)  # several blocks, split unevenly by threads

    def run(thread_count):
        threads(thread_count)
        return value_and_gradients(x, k, b, strides, dilation, pads, relu, weights, wrt)

    runs = {count: run(count) for count in (1, 2, 3)}
    assert spy["patches_gemm_blocks"] >= 3
    # the input's gradient of one channel is a product with one column, which np.matmul
    # does not send to GEMM: then the blocks run one call at a time
    assert (spy["conv_grad_blocks"] >= 3) == ("x" not in wrt or shape[3] > 1)
    with monkeypatch.context() as patch:
        patch.setattr(conv, "_WHOLE_RUNS", False)
        calls = dict(spy)
        one_at_a_time = run(2)
        assert spy == calls  # the runs are off
        patch.setitem(_kernels._STATE, "numba", False)
        numpy_path = run(1)
    for results in [*runs.values(), one_at_a_time]:
        for got, want in zip(results, numpy_path):
            assert_same_bits(got, want)
    # and the convolution, from its definition
    y = naive_conv2d(x.astype(np.float64), k.astype(np.float64), b.astype(np.float64), strides,
                     padding, dilation)
    if relu:
        y = np.maximum(y, 0)
    eps = np.finfo(dtype).eps
    terms = ksize[0] * ksize[1] * shape[3] + 1  # products summed per output, and the bias
    np.testing.assert_allclose(runs[2][0], y, rtol=0,
                               atol=terms * eps * (np.abs(y).max() + np.abs(b).max()))


@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES[:3])
def test_the_runs_gradients_are_the_finite_differences(spy, shape, ksize, strides, padding,
                                                       dilation):
    x, k, b, weights = operands(shape, ksize, strides, padding, dilation, np.float64, seed=11)
    x[1] = np.random.default_rng(12).standard_normal(x.shape[1:])  # away from the relu's kink
    pads = pads_of(shape, ksize, strides, padding, dilation)
    _, dx, dk, db = value_and_gradients(x, k, b, strides, dilation, pads, True, weights)
    assert spy["conv_grad_blocks"] >= 1
    rng = np.random.default_rng(13)
    step = 1e-6

    def loss(x, k, b):
        return np.sum(conv._conv2d(x, k, b, strides, dilation, pads, True) * weights)

    for which, grad in enumerate((dx, dk, db)):
        direction = rng.standard_normal(grad.shape)
        plus, minus = [x, k, b], [x, k, b]
        plus[which] = plus[which] + step * direction
        minus[which] = minus[which] - step * direction
        numeric = (loss(*plus) - loss(*minus)) / (2 * step)
        # central differences: O(step^2) error, plus the loss's rounding / step; a relu kink
        # crossed by the step would be off by O(1)
        assert abs(np.sum(grad * direction) - numeric) <= 1e-6 * max(1.0, abs(numeric))


@pytest.mark.parametrize("case", ["one filter", "one output pixel", "strided input"])
def test_products_of_size_one_and_strided_operands_take_the_blocks_one_call_at_a_time(
        monkeypatch, spy, case):
    shape, ksize, filters = (4, 5, 5, 3), (3, 3), 4
    if case == "one filter":
        filters = 1
    if case == "one output pixel":
        ksize = (5, 5)
    x, k, b, weights = operands(shape, ksize, (1, 1), "valid", (1, 1), np.float32,
                                filters=filters)
    if case == "strided input":
        x = np.asfortranarray(x)  # the kernels take C-contiguous arrays only
    pads = pads_of(shape, ksize, (1, 1), "valid", (1, 1))
    got = value_and_gradients(x, k, b, (1, 1), (1, 1), pads, True, weights)
    assert spy == {"patches_gemm_blocks": 0, "conv_grad_blocks": 0}
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    for a, want in zip(got, value_and_gradients(x, k, b, (1, 1), (1, 1), pads, True, weights)):
        assert_same_bits(a, want)


def test_without_numpys_blas_the_blocks_run_one_call_at_a_time(monkeypatch, spy):
    monkeypatch.setitem(_kernels._STATE, "blas", None)
    monkeypatch.setattr(_kernels, "_same_as_matmul", lambda functions: False)
    assert _kernels.blas() is False
    x, k, b, weights = operands(*CASES[0], np.float32)
    pads = pads_of(*CASES[0])
    got = value_and_gradients(x, k, b, CASES[0][2], CASES[0][4], pads, True, weights)
    assert spy == {"patches_gemm_blocks": 0, "conv_grad_blocks": 0}
    monkeypatch.undo()  # NumPy's BLAS again
    for a, want in zip(got, value_and_gradients(x, k, b, CASES[0][2], CASES[0][4], pads, True,
                                                weights)):
        assert_same_bits(a, want)
