"""The cross-entropies from logits: the shifted log-sum-exp they share, against NumPy written here.

* ``lse(s)`` with ``s = z - max z`` per row is computed as ``log1p`` of the
  terms below the first maximum: the same bits as that formula written
  with ``np.max``, ``np.argmax`` and ``np.put_along_axis`` (ties, where the
  second maximal term must stay in the sum; 2-D and 3-D logits; float32
  and float64, whose dtype is kept).
* The sparse and the dense loss equal the mean over rows of ``lse - s_y``
  computed in float64 to float32's rounding, and are differentiated as
  ``softmax - one_hot`` over the rows (finite differences in float64).
* A NaN logit makes its row's loss NaN.
* The row maximum read at the argmax (softmax, the loss gradient) is
  ``np.max``, bit for bit: ties, -inf rows, NaN, signed zeros, other axes.
"""

import numpy as np
import pytest
from autograd import grad

from spherenet.nn import activations, losses

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


def reference_shifted_lse(z):
    """The formula with the textbook reductions: max, argmax, the max's term set to 0."""
    s = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(s)
    np.put_along_axis(e, np.argmax(z, axis=-1)[..., None], 0, axis=-1)
    return s, np.log1p(np.sum(e, axis=-1, keepdims=True))


def logits(dtype, shape, seed=0):
    rng = np.random.default_rng(seed)
    z = (4 * rng.standard_normal(shape)).astype(dtype)
    flat = z.reshape(-1, shape[-1])
    if flat.size == 0 or shape[-1] < 3:
        return z
    flat[::3, 2] = flat[::3].max(axis=-1)  # a tie for the max in every third row
    flat[1::5, 0] = flat[1::5, 1] = flat[1::5].max(axis=-1) + 1  # the two first entries tie
    return z


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(128, 10), (7, 5, 3), (1, 1), (0, 4)])
def test_shifted_logsumexp_equals_the_formula_bit_for_bit(dtype, shape):
    z = logits(dtype, shape)
    s, lse = losses._shifted_logsumexp(z)
    s_ref, lse_ref = reference_shifted_lse(z)
    assert s.shape == z.shape and lse.shape == z.shape[:-1] + (1,)
    assert s.dtype == dtype and lse.dtype == dtype
    assert np.array_equal(s, s_ref) and np.array_equal(lse, lse_ref)
    # the tie's second maximal term stays in the sum: e^0 = 1 counted once, log1p(1 + ...) > log 2
    if z.size and shape[-1] > 2:
        assert np.all(lse.reshape(-1)[1::5] >= np.log(dtype(2)) * (1 - 4 * EPS[dtype]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_and_dense_losses_against_float64(dtype):
    z = logits(dtype, (128, 10), seed=1)
    labels = np.random.default_rng(2).integers(0, 10, 128)
    z64 = z.astype(np.float64)
    lse = np.log(np.sum(np.exp(z64 - z64.max(axis=1, keepdims=True)), axis=1))
    expected = np.mean(lse - (z64[np.arange(128), labels] - z64.max(axis=1)))
    sparse = losses.sparse_softmax_crossentropy(z, labels)
    dense = losses.softmax_crossentropy(z, np.eye(10, dtype=dtype)[labels])
    for value in (sparse, dense):
        assert np.asarray(value).dtype == dtype
        # each row's loss to a few eps of itself (|loss| ~ 5), the mean adds log2(128) roundings
        np.testing.assert_allclose(value, expected, rtol=32 * EPS[dtype])
    assert sparse == dense or abs(sparse - dense) <= 8 * EPS[dtype] * abs(expected)


def test_sparse_loss_gradient_is_softmax_minus_one_hot_and_matches_differences():
    z = logits(np.float64, (16, 6), seed=3)
    labels = np.random.default_rng(4).integers(0, 6, 16)
    g = grad(lambda z: losses.sparse_softmax_crossentropy(z, labels))(z)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    p[np.arange(16), labels] -= 1
    np.testing.assert_allclose(g, p / 16, rtol=0, atol=16 * EPS[np.float64])
    direction = np.random.default_rng(5).standard_normal(z.shape)
    h = 1e-6
    fd = (losses.sparse_softmax_crossentropy(z + h * direction, labels)
          - losses.sparse_softmax_crossentropy(z - h * direction, labels)) / (2 * h)
    # central differences of a smooth function of size ~5: truncation h^2, rounding eps * 5 / h
    np.testing.assert_allclose(np.sum(g * direction), fd, rtol=1e-7, atol=1e-8)
    # the dense loss with one-hot targets: the same gradient
    gd = grad(lambda z: losses.softmax_crossentropy(z, np.eye(6)[labels]))(z)
    np.testing.assert_allclose(gd, g, rtol=0, atol=16 * EPS[np.float64])


def test_a_nan_logit_makes_the_loss_nan():
    z = logits(np.float32, (4, 3))
    z[2, 1] = np.nan
    assert np.isnan(losses.sparse_softmax_crossentropy(z, np.array([0, 1, 2, 0])))
    s, lse = losses._shifted_logsumexp(z)
    assert np.all(np.isnan(s[2])) and np.isnan(lse[2, 0]) and np.all(np.isfinite(lse[[0, 1, 3]]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, axis", [((128, 10), -1), ((7, 5, 3), 2), ((7, 5, 3), 1),
                                         ((4,), -1), ((), -1), ((3, 0), 0)])
def test_the_max_along_the_last_axis_is_np_max(dtype, shape, axis):
    x = logits(dtype, shape, seed=6) if len(shape) > 1 and 0 not in shape else \
        np.asarray(np.random.default_rng(6).standard_normal(shape), dtype=dtype)
    if x.ndim == 2 and x.size:
        x[0, :] = -np.inf  # a row of -inf: its max is -inf
        x[1, 3] = np.nan  # a NaN wins its row, as in np.max
        x[2, :2] = [-0.0, 0.0]
    got = activations._max_along(x, axis)
    expected = np.max(x, axis=axis, keepdims=True)
    assert got.dtype == dtype and got.shape == expected.shape
    assert np.array_equal(got, expected, equal_nan=True)


def test_softmax_is_the_formula_with_np_max():
    x = logits(np.float32, (6, 4, 5), seed=7)
    x[0, 0, 2] = np.nan
    expected = np.exp(x - np.max(x, axis=-1, keepdims=True))
    expected /= np.sum(expected, axis=-1, keepdims=True)
    assert np.array_equal(activations.softmax(x), expected, equal_nan=True)
    assert np.array_equal(losses._softmax(x), expected, equal_nan=True)
    # another axis: the reduction of NumPy itself
    axis0 = np.exp(x - np.max(x, axis=0, keepdims=True))
    axis0 /= np.sum(axis0, axis=0, keepdims=True)
    assert np.array_equal(activations.softmax(x, axis=0), axis0, equal_nan=True)
