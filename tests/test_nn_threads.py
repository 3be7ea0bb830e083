"""The threaded path of the convolution and pooling layers (``spherenet.nn.set_num_threads``).

* The chunks really run on several threads, errors in any chunk reach the
  caller after every chunk has stopped, and a chunk never splits again.
* Convolutions (forward, and the input's, kernel's and bias's gradients,
  with and without the fused relu) and pooling give the same arrays, bit for
  bit, with 1, 2 and 3 threads: every thread runs some of the serial path's
  own blocks, the same calls on the same data. The threaded result is also
  checked against the naive convolution.
* Training steps of a CNN end at the same weights, bit for bit, with 1 and
  2 threads.
* The setting refuses what is not a positive integer, from the API and
  from the environment variable ``SPHERENET_NN_THREADS``.
"""

import os
import threading

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet.nn import (Conv2D, Dense, Flatten, MaxPooling2D, Sequential, get_num_threads,
                          set_num_threads, unit_norm)
from spherenet.nn import _parallel, conv
from spherenet.nn._autodiff import value_and_grads
from spherenet.nn.pooling import average_pool2d, max_pool2d
from spherenet.optim import RSGD

from test_nn_conv import keras_window, traced_conv2d


@pytest.fixture
def threads():
    """Set the number of threads inside a test; the previous setting comes back afterwards."""
    previous = get_num_threads()
    yield set_num_threads
    set_num_threads(previous)


def test_chunks_cover_the_range_once_on_distinct_threads(threads):
    threads(3)
    seen, lock = [], threading.Lock()
    barrier = threading.Barrier(3, timeout=10)  # passes only if three chunks run at once

    def fn(lo, hi):
        barrier.wait()
        with lock:
            seen.append((lo, hi, threading.get_ident()))

    _parallel.run_chunks(fn, 10, align=2)
    spans = sorted((lo, hi) for lo, hi, _ in seen)
    assert spans[0][0] == 0 and spans[-1][1] == 10
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, no overlap
    assert all(lo % 2 == 0 for lo, _ in spans)  # chunk boundaries on whole blocks
    assert len({ident for *_, ident in seen}) == 3
    assert threading.get_ident() in {ident for *_, ident in seen}  # the caller takes a chunk


def test_one_thread_runs_one_chunk_in_the_caller(threads):
    threads(1)
    seen = []
    _parallel.run_chunks(lambda lo, hi: seen.append((lo, hi, threading.get_ident())), 7)
    assert seen == [(0, 7, threading.get_ident())]


def test_an_error_in_a_worker_chunk_reaches_the_caller_after_all_chunks_stopped(threads):
    threads(2)
    done = []

    def fn(lo, hi):
        if lo > 0:
            raise RuntimeError(f"chunk {lo}")
        threading.Event().wait(0.05)  # the caller's chunk ends after the worker's failure
        done.append(lo)

    with pytest.raises(RuntimeError, match="chunk 5"):
        _parallel.run_chunks(fn, 10)
    assert done == [0]


def test_a_chunk_does_not_split_again(threads):
    threads(2)
    inner = []

    def fn(lo, hi):
        _parallel.run_chunks(lambda a, b: inner.append((lo, a, b)), hi - lo)

    _parallel.run_chunks(fn, 8)
    assert sorted(inner) == [(0, 0, 4), (4, 0, 4)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_its_chunks_on_threads_of_its_own(threads):
    threads(2)
    _parallel.run_chunks(lambda lo, hi: None, 4)  # the parent's pool exists
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a pool copied from the parent would never run the chunk
        try:
            seen = []
            call = threading.Thread(target=_parallel.run_chunks,
                                    args=(lambda lo, hi: seen.append(lo), 4), daemon=True)
            call.start()
            call.join(10)
            os.write(write, b"ok" if not call.is_alive() and sorted(seen) == [0, 2] else b"hung")
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    assert answer == b"ok"


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2", None])
def test_the_setting_refuses_what_is_not_a_positive_integer(bad, threads):
    before = get_num_threads()
    with pytest.raises(ValueError, match="positive integer"):
        threads(bad)
    assert get_num_threads() == before


def test_the_environment_variable_sets_the_default(monkeypatch):
    monkeypatch.setenv("SPHERENET_NN_THREADS", "3")
    assert _parallel._from_environment() == 3
    monkeypatch.setenv("SPHERENET_NN_THREADS", "")
    assert _parallel._from_environment() == 1
    for bad in ("0", "two", "1.5"):
        monkeypatch.setenv("SPHERENET_NN_THREADS", bad)
        with pytest.raises(ValueError, match=f"SPHERENET_NN_THREADS.*{bad!r}"):
            _parallel._from_environment()


def test_set_num_threads_returns_the_previous_setting(threads):
    threads(1)
    assert threads(4) == 1
    assert get_num_threads() == 4


CASES = [
    # shape of x, kernel size, strides, padding, dilation
    ((9, 8, 8, 3), (3, 3), (1, 1), "same", (1, 1)),
    ((7, 7, 6, 2), (3, 2), (2, 1), "same", (1, 2)),
    ((5, 6, 5, 4), (2, 3), (1, 2), "valid", (1, 1)),
    ((6, 5, 5, 3), (1, 1), (1, 1), "valid", (1, 1)),  # pointwise: x is the im2col matrix
]


def conv_value_and_grads(x, k, b, strides, padding, dilation, relu, weights):
    _, top, bottom = conv._window(x.shape[1], k.shape[0], strides[0], dilation[0], padding)
    _, left, right = conv._window(x.shape[2], k.shape[1], strides[1], dilation[1], padding)
    pads = ((top, bottom), (left, right))

    def loss(x, k, b):
        out = conv._conv2d(x, k, b, strides, dilation, pads, relu)
        return anp.sum(out * weights), out

    outs = []
    value, grads = value_and_grads(lambda *a: _record(loss(*a), outs), [x, k, b])
    return outs[0], grads


def _record(pair, outs):
    value, out = pair
    outs.append(getattr(out, "_value", out))
    return value


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape, ksize, strides, padding, dilation", CASES)
def test_convolution_is_the_same_on_one_two_and_three_threads(monkeypatch, threads, shape, ksize,
                                                              strides, padding, dilation, relu,
                                                              dtype):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    x[1] = 0  # an image at the relu's kink: gradient 0 there, with any number of threads
    k = rng.standard_normal((*ksize, shape[3], 5)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    b[0] = 0
    ho, _ = keras_window(shape[1], ksize[0], strides[0], dilation[0], padding)
    wo, _ = keras_window(shape[2], ksize[1], strides[1], dilation[1], padding)
    weights = rng.standard_normal((shape[0], ho, wo, 5)).astype(dtype)
    # blocks of two images: the 9-image batch makes 5 blocks, split unevenly between threads
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 2 * ho * wo * ksize[0] * ksize[1] * shape[3]
                        * np.dtype(dtype).itemsize)
    results = {}
    for n in (1, 2, 3):
        threads(n)
        results[n] = conv_value_and_grads(x, k, b, strides, padding, dilation, relu, weights)
    out1, (dx1, dk1, db1) = results[1]
    eps = np.finfo(dtype).eps
    for n in (2, 3):
        out, (dx, dk, db) = results[n]
        assert out.dtype == dx.dtype == dk.dtype == db.dtype == dtype
        np.testing.assert_array_equal(out, out1)
        np.testing.assert_array_equal(dx, dx1)
        np.testing.assert_array_equal(db, db1)
        np.testing.assert_array_equal(dk, dk1)
    # and the threaded result is the convolution (against one written from slices)
    y = traced_conv2d(x.astype(np.float64), k.astype(np.float64), strides, padding,
                      dilation) + b
    if relu:
        y = np.maximum(y, 0)
    np.testing.assert_allclose(results[3][0], y, rtol=0, atol=200 * eps * np.max(np.abs(y)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pool, strides, padding", [((2, 2), None, "valid"),
                                                   ((3, 3), (2, 2), "same"),
                                                   ((2, 3), (1, 2), "valid")])
@pytest.mark.parametrize("op", [max_pool2d, average_pool2d])
def test_pooling_is_the_same_on_one_and_three_threads(threads, op, pool, strides, padding, dtype):
    rng = np.random.default_rng(4)
    # few distinct values: many ties, whose gradient goes to the first maximum of a window
    x = rng.integers(0, 3, (7, 6, 7, 3)).astype(dtype)
    weights = rng.standard_normal(op(x, pool, strides, padding).shape).astype(dtype)
    results = []
    for n in (1, 3):
        threads(n)
        value, (dx,) = value_and_grads(
            lambda x: anp.sum(op(x, pool, strides, padding) * weights), [x])
        results.append((op(x, pool, strides, padding), dx))
    for a, b in zip(*results):
        assert b.dtype == dtype
        np.testing.assert_array_equal(b, a)


def test_training_steps_end_at_the_same_weights_on_one_and_two_threads(threads, monkeypatch):
    monkeypatch.setattr(conv, "_BLOCK_BYTES", 1 << 14)  # several blocks per batch
    rng = np.random.default_rng(5)
    # batches of 68 images: the first layer's kernel gradient, (4352 x 9).T @ (4352 x 32), is
    # a product whose rows OpenBLAS does not compute alike when asked for part of them
    x = rng.random((136, 8, 8, 1)).astype(np.float32)
    y = rng.integers(0, 10, 136)
    weights = []
    for n in (1, 2):
        threads(n)
        model = Sequential([
            Conv2D(32, 3, padding="same", activation="relu",
                   kernel_constraint=unit_norm(axis=[0, 1, 2]), input_shape=(8, 8, 1)),
            Conv2D(8, 3, padding="same", activation="relu"),
            MaxPooling2D(2),
            Flatten(),
            Dense(10, activation="softmax"),
        ], seed=0)
        model.compile(optimizer=RSGD(lr=0.1, momentum=0.9),
                      loss="sparse_categorical_crossentropy")
        start = model.get_weights()
        model.fit(x, y, epochs=2, batch_size=68, shuffle=False, verbose=0)
        weights.append(model.get_weights())
        assert np.max(np.abs(weights[-1][0] - start[0])) > 1e-3  # training moved the filters
    for a, b in zip(*weights):
        np.testing.assert_array_equal(b, a)
