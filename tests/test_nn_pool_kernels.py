"""Max pooling's two paths, the numba kernels and NumPy, against window loops written here.

* Forward and backward of ``max_pool2d`` on each path equal the window loops
  of ``naive_pool`` (values with ties everywhere, padding, overlapping and
  tiled windows, float32 and float64): the max exactly, the gradient of a
  tiled pool exactly (one entry per window gets its g), of overlapping
  windows to the rounding of their few additions.
* Both paths give the same bits where there is one addition per entry, with
  1, 2 and 3 layer threads.
* A NaN in a window makes its max NaN and sends its gradient nowhere, on
  both paths; the -inf padding never wins.
* The kernels take only arrays of one float dtype, C-contiguous; anything
  else (a strided gradient) goes the NumPy path with the same result.
* Without numba (not installed) pooling runs on NumPy; ``import spherenet``
  does not import numba.
"""

import subprocess
import sys

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from spherenet.nn import _kernels, get_num_threads, pooling, set_num_threads
from spherenet.nn.pooling import max_pool2d

from test_nn_conv import naive_pool

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


@pytest.fixture(params=["numpy", "numba"])
def path(request, monkeypatch):
    """Run the test on one path: the NumPy loops, or the numba kernels (skipped without numba)."""
    if request.param == "numba":
        if not _kernels.load():
            pytest.skip("numba is not installed")
    else:
        monkeypatch.setitem(_kernels._STATE, "numba", False)
    return request.param


@pytest.fixture
def threads():
    previous = get_num_threads()
    yield set_num_threads
    set_num_threads(previous)


CASES = [
    # height, width, pool, strides, padding
    ((8, 8), (2, 2), None, "valid"),  # tiled: every entry in one window
    ((7, 6), (2, 2), None, "same"),  # tiled once padded
    ((7, 6), (3, 2), (2, 3), "valid"),  # gaps between windows
    ((7, 6), (3, 3), (2, 1), "same"),  # overlapping windows, padding
    ((4, 4), (2, 3), (1, 1), "valid"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("hw, pool, strides, padding", CASES)
def test_max_pool_and_its_gradient_equal_window_loops(path, hw, pool, strides, padding, dtype):
    rng = np.random.default_rng(11)
    x = rng.integers(-1, 2, (3, *hw, 4)).astype(dtype)  # three values: ties everywhere
    out = max_pool2d(x, pool, strides, padding)
    g = rng.standard_normal(out.shape).astype(dtype)
    want, want_grad = naive_pool(x.astype(np.float64), pool, strides or pool, padding, "max",
                                 g.astype(np.float64))
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, want)  # a max is exact
    got = grad(lambda a: anp.sum(max_pool2d(a, pool, strides, padding) * g))(x)
    assert got.dtype == dtype
    # an entry collects the g of each window whose first max it is: at most
    # (3/1) * (3/1) = 9 windows here, 9 roundings of the dtype
    np.testing.assert_allclose(got, want_grad, rtol=0, atol=9 * EPS[dtype] * np.abs(g).max())
    if (strides or pool) == pool:  # one window per entry: exactly g or 0
        np.testing.assert_array_equal(got, want_grad)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_both_paths_and_all_thread_counts_give_the_same_bits(monkeypatch, threads, dtype):
    rng = np.random.default_rng(12)
    # a relu's output: many zeros, so many windows of ties
    x = np.maximum(rng.standard_normal((37, 8, 8, 5)), 0).astype(dtype)
    g = rng.standard_normal((37, 4, 4, 5)).astype(dtype)
    results = []
    for numba_path in ([False, True] if _kernels.load() else [False]):
        for n in (1, 2, 3):
            threads(n)
            state = _kernels._STATE["numba"] if numba_path else False
            with monkeypatch.context() as patch:
                patch.setitem(_kernels._STATE, "numba", state)
                out = max_pool2d(x)
                dx = grad(lambda a: anp.sum(max_pool2d(a) * g))(x)
            results.append((out, dx))
    for out, dx in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(dx, results[0][1])
    # and the values themselves: every window's g on its first max, every other entry 0
    dx = results[0][1]
    windows = x.reshape(37, 4, 2, 4, 2, 5).transpose(0, 1, 3, 5, 2, 4).reshape(37, 4, 4, 5, 4)
    first = windows.argmax(-1)  # argmax: the first maximum in row-major order
    picked = dx.reshape(37, 4, 2, 4, 2, 5).transpose(0, 1, 3, 5, 2, 4).reshape(37, 4, 4, 5, 4)
    np.testing.assert_array_equal(np.take_along_axis(picked, first[..., None], -1)[..., 0], g)
    assert np.count_nonzero(picked) == np.count_nonzero(g)


def test_a_nan_window_is_nan_and_its_gradient_goes_nowhere(path):
    x = np.arange(32.0).reshape(1, 4, 4, 2)
    x[0, 1, 1, 0] = np.nan  # last entry of the window (0, 0) of channel 0
    x[0, 2, 2, 1] = np.nan  # first entry of the window (1, 1) of channel 1
    out = max_pool2d(x)
    assert np.isnan(out[0, 0, 0, 0]) and np.isnan(out[0, 1, 1, 1])
    assert np.count_nonzero(np.isnan(out)) == 2
    g = np.ones_like(out)
    dx = grad(lambda a: anp.sum(max_pool2d(a) * g))(x)
    assert not np.isnan(dx).any()
    np.testing.assert_array_equal(dx[0, :2, :2, 0], 0.0)  # the NaN window: nothing
    np.testing.assert_array_equal(dx[0, 2:, 2:, 1], 0.0)
    assert dx.sum() == 8 - 2  # the other windows: one entry each


def test_the_padding_never_wins_a_max(path):
    x = np.full((1, 3, 3, 1), -1e30, dtype=np.float32)
    out = max_pool2d(x, 2, padding="same")  # windows into the bottom and right padding
    np.testing.assert_array_equal(out, np.full((1, 2, 2, 1), -1e30, dtype=np.float32))
    dx = grad(lambda a: anp.sum(max_pool2d(a, 2, padding="same")))(x)
    np.testing.assert_array_equal(dx[0, :, :, 0], [[1, 0, 1], [0, 0, 0], [1, 0, 1]])


def test_the_kernels_take_one_float_dtype_c_contiguous():
    a32, a64 = np.zeros((2, 4, 4, 3), np.float32), np.zeros((2, 4, 4, 3))
    assert _kernels.takes(a32, a32) and _kernels.takes(a64)
    assert not _kernels.takes(a32, a64)  # mixed dtypes
    assert not _kernels.takes(a32.astype(np.float16))
    assert not _kernels.takes(a64[:, :, ::2])  # strided
    assert not _kernels.takes(a64, np.asfortranarray(a64))


def test_a_strided_gradient_takes_the_numpy_path_with_the_same_result(monkeypatch):
    rng = np.random.default_rng(13)
    x = rng.standard_normal((3, 6, 6, 2))
    ans = pooling._max_pool(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    wide = np.zeros((3, 3, 6, 2))
    wide[:, :, ::2] = rng.standard_normal(ans.shape)
    strided = wide[:, :, ::2]
    vjp = pooling._max_pool_vjp(ans, x, (2, 2), (2, 2), ((0, 0), (0, 0)))
    got = vjp(strided)

    def refuse(*args):
        raise AssertionError("a kernel was called for a strided gradient")

    monkeypatch.setitem(_kernels._STATE, "numba", {"max_pool": refuse, "max_pool_grad": refuse})
    np.testing.assert_array_equal(vjp(strided), got)
    monkeypatch.setitem(_kernels._STATE, "numba", False)
    np.testing.assert_array_equal(vjp(np.ascontiguousarray(strided)), got)


def test_without_numba_pooling_runs_on_numpy(monkeypatch):
    monkeypatch.setitem(_kernels._STATE, "numba", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba raises ImportError
    assert _kernels.load() is False
    x = np.arange(16.0).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(max_pool2d(x)[0, :, :, 0], [[5.0, 7.0], [13.0, 15.0]])


def test_import_does_not_import_numba():
    code = ("import sys, spherenet, spherenet.nn; "
            "assert 'numba' not in sys.modules, 'numba imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
