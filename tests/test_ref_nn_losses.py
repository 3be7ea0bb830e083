"""spherenet.nn losses and metrics against plain-NumPy references, over their whole domain.

Every loss value is compared with the formula written out in long double
from the (rounded) inputs, and every gradient with the derivative written
out by hand *and* with central finite differences in float64. The domain
includes the clip of the probability forms (Keras's eps = 1e-7, in the
input's dtype: 1 - eps is 1 - 2^-23 in float32): probabilities at 0 and 1,
just outside and just inside the clip, and exactly at its bounds, where the
gradient is kept (TensorFlow's ``clip_by_value`` passes it at the bounds);
several output columns, soft targets, large logits, an upstream gradient
other than 1, and both dtypes. Metrics are compared with Python loops.
"""

import math

import mpmath
import numpy as np
import pytest
from autograd import grad

from spherenet.nn import losses, metrics
from spherenet.nn._autodiff import value_and_grads

DTYPES = [np.float64, np.float32]
LD = np.longdouble


def eps(dtype):
    return float(np.finfo(dtype).eps)


def clip_bounds(dtype):
    """The clip interval as the code's dtype represents it: [fl(1e-7), fl(1 - fl(1e-7))]."""
    lo = dtype(1e-7)
    return LD(lo), LD(dtype(1) - lo)


# --- references (long double, written from the formulas) -------------------------------


def ref_mse(p, t):
    d = LD(1) * p - t
    return np.mean(d * d), 2 * d / d.size, 2 * (np.abs(p) + np.abs(t)) / d.size


def ref_bce_probs(p, t, dtype):
    lo, hi = clip_bounds(dtype)
    P, T = p.astype(LD), t.astype(LD)
    q = np.clip(P, lo, hi)
    value = -np.mean(T * np.log(q) + (1 - T) * np.log1p(-q))
    inside = (P >= lo) & (P <= hi)
    g = np.where(inside, (1 - T) / (1 - q) - T / q, 0) / P.size
    return value, g, np.abs(1 - T) / (1 - q) / P.size + T / q / P.size


def ref_bce_logits(z, t):
    Z, T = z.astype(LD), t.astype(LD)
    # t * log(1 + e^-z) + (1 - t) * log(1 + e^z), each term without overflow
    softplus = lambda u: np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))  # noqa: E731
    value = np.mean(T * softplus(-Z) + (1 - T) * softplus(Z))
    sigma = 1 / (1 + np.exp(-Z))
    return value, (sigma - T) / Z.size, (sigma + np.abs(T)) / Z.size


def ref_cce_logits(z, t):
    Z, T = z.astype(LD), t.astype(LD)
    m = np.max(Z, axis=1, keepdims=True)
    lse = m + np.log(np.sum(np.exp(Z - m), axis=1, keepdims=True))
    value = np.mean(np.sum(T * (lse - Z), axis=1))
    soft = np.exp(Z - lse)
    rows = np.sum(T, axis=1, keepdims=True)
    return value, (soft * rows - T) / Z.shape[0], (soft * rows + T) / Z.shape[0]


def ref_sparse_logits(z, labels):
    k = z.shape[1]
    return ref_cce_logits(z, np.eye(k)[labels])


def ref_cce_probs(p, t, dtype):
    lo, hi = clip_bounds(dtype)
    P, T = p.astype(LD), t.astype(LD)
    n = P.shape[0]
    s = np.sum(P, axis=1, keepdims=True)
    q = P / s
    value = -np.mean(np.sum(T * np.log(np.clip(q, lo, hi)), axis=1))
    # d/dq_i = -t_i / q_i inside the clip, 0 outside; q = p / s gives
    # dL/dp_j = sum_i dL/dq_i (delta_ij - q_i) / s.
    inside = (q >= lo) & (q <= hi)
    dq = np.where(inside, -T / np.clip(q, lo, hi), 0)
    g = (dq - np.sum(dq * q, axis=1, keepdims=True)) / s / n
    return value, g, (np.abs(dq) + np.sum(np.abs(dq) * q, axis=1, keepdims=True)) / s / n


def ref_sparse_probs(p, labels, dtype):
    lo, hi = clip_bounds(dtype)
    P = p.astype(LD)
    n = P.shape[0]
    value, g = LD(0), np.zeros_like(P)
    for i, c in enumerate(labels):  # a loop, not fancy indexing
        q = P[i, c]
        value += -np.log(min(max(q, lo), hi)) / n
        if lo <= q <= hi:
            g[i, c] = -1 / (q * n)
    return value, g, np.abs(g)


# --- cases ------------------------------------------------------------------------------


def binary_probabilities(dtype):
    """(n, 3) probabilities covering [0, 1]: both clip bounds and each side of them."""
    lo, hi = clip_bounds(dtype)
    lo, hi = dtype(lo), dtype(hi)
    below_hi = dtype(1 - 2e-7) if dtype == np.float64 else dtype(1 - 2.0**-21)  # hi - 6 ulps
    values = [0.0, lo / 2, lo, 2 * lo, 1e-3, 0.3, 0.5, 0.9, 1 - 1e-3, below_hi, hi,
              np.nextafter(hi, dtype(1)), 1.0, 0.7, 1e-5]
    return np.array(values, dtype=dtype).reshape(5, 3)


def binary_targets(dtype):
    t = np.array([0, 1, 1, 0, 1, 0, 0.25, 1, 0, 1, 0, 1, 0, 1, 0.5], dtype=dtype)
    return t.reshape(5, 3)


def categorical_case(dtype, soft=False):
    """(p, t, labels): rows with zeros, a one, a tiny entry below the clip, ordinary rows."""
    p = np.array([[1.0, 0.0, 0.0, 0.0],
                  [0.0, 1.0, 0.0, 0.0],
                  [0.25, 0.25, 0.25, 0.25],
                  [0.7, 0.2, 0.1 - 3e-8, 3e-8],      # last entry outside the clip
                  [0.6, 0.3, 0.1 - 3e-7, 3e-7],      # last entry inside the clip
                  [2.0, 1.0, 0.5, 0.5]],              # rows need not sum to 1
                 dtype=dtype)
    labels = np.array([0, 0, 2, 3, 3, 1])
    t = np.eye(4, dtype=dtype)[labels]
    if soft:
        t = (0.8 * t + 0.05).astype(dtype)
    return p, t, labels


def logits_case(dtype, k):
    rng = np.random.default_rng(7 + k)
    z = 3 * rng.standard_normal((6, k))
    z[0, 0], z[1, -1] = 40.0, -40.0  # saturated sigmoid / softmax
    return z.astype(dtype)


# --- helpers ------------------------------------------------------------------------------


def value_and_gradient(fun, pred):
    value, (g,) = value_and_grads(fun, [pred])
    return value, g


def central_differences(fun, p, steps):
    """d fun / d p_i by (f(p + h e_i) - f(p - h e_i)) / (the step actually taken), per element."""
    g = np.zeros_like(p, dtype=np.float64)
    for i in np.ndindex(p.shape):
        h = steps[i]
        if h == 0:
            continue
        plus, minus = p.copy(), p.copy()
        plus[i] += h
        minus[i] -= h
        g[i] = (float(fun(plus)) - float(fun(minus))) / (plus[i] - minus[i])
    return g


def assert_value(got, ref, dtype, terms):
    """|got - ref| within rounding: a few eps per term of the mean, relative to |ref|."""
    assert np.asarray(got).dtype == dtype
    tol = (4 + terms) * eps(dtype) * max(1.0, float(abs(ref)))
    assert abs(float(got) - float(ref)) <= tol, (float(got), float(ref), tol)


def assert_gradient(got, ref, dtype, factor=8):
    """Elementwise within factor eps of the magnitude of the terms that make each entry.

    ``ref = (value, gradient, magnitude)``: a gradient such as sigma(z) - t cancels
    when sigma(z) is close to t; its rounding error is relative to sigma(z) + |t|,
    not to the difference.
    """
    assert got.dtype == dtype
    g, mag = np.asarray(ref[1], dtype=np.float64), np.asarray(ref[2], dtype=np.float64)
    scale = mag + eps(dtype) * np.max(mag)
    err = np.abs(got.astype(np.float64) - g)
    assert np.all(err <= factor * eps(dtype) * scale), np.max(err / scale) / eps(dtype)


# --- probability forms: value and gradient over the clip ---------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_binary_crossentropy_probabilities_over_the_whole_interval(dtype):
    p, t = binary_probabilities(dtype), binary_targets(dtype)
    value, g = value_and_gradient(lambda q: losses.BinaryCrossentropy()(t, q), p)
    ref = ref_bce_probs(p, t, dtype)
    assert_value(value, ref[0], dtype, p.size)
    assert_gradient(g, ref, dtype)
    # outside the clip (0, lo/2, just above hi, 1) the loss is flat: exactly 0
    lo, hi = clip_bounds(dtype)
    outside = (p < lo) | (p > hi)
    assert outside.sum() == 4 and np.all(g[outside] == 0)
    assert np.all(g[~outside] != 0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("soft", [False, True], ids=["one-hot", "soft"])
def test_categorical_crossentropy_probabilities(dtype, soft):
    p, t, _ = categorical_case(dtype, soft)
    value, g = value_and_gradient(lambda q: losses.CategoricalCrossentropy()(t, q), p)
    ref = ref_cce_probs(p, t, dtype)
    assert_value(value, ref[0], dtype, p.size)
    # q = p / s, clip, log, and the row sum <dq, q>: a few more roundings
    assert_gradient(g, ref, dtype, factor=16)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_crossentropy_probabilities(dtype):
    p, _, labels = categorical_case(dtype)
    p = p / p.sum(axis=1, keepdims=True)  # the sparse form does not renormalize
    value, g = value_and_gradient(lambda q: losses.SparseCategoricalCrossentropy()(labels, q), p)
    ref = ref_sparse_probs(p, labels, dtype)
    assert_value(value, ref[0], dtype, len(labels))
    assert_gradient(g, ref, dtype)
    # rows 0 (p_label = 1, above the clip), 1 (p_label = 0) and 3 (p_label = 3e-8, below
    # the clip) have no gradient at all; the others only at their label
    assert np.all(g[[0, 1, 3]] == 0)
    assert np.count_nonzero(g) == len(labels) - 3


def test_probability_gradients_match_finite_differences():
    # float64. The loss of one row (one element for the binary form) is differenced, so
    # that the rounding of the other rows' terms does not swamp a small slope; the mean
    # over N terms gives 1/N of it. Steps stay below half the distance to the nearest
    # clip bound: each quotient sees one smooth piece, 0 outside the clip, the slope inside.
    lo, hi = (float(b) for b in clip_bounds(np.float64))

    def step_for(v):
        d = min(abs(v - lo), abs(v - hi))
        if d < 1e3 * np.spacing(v):  # at or next to a bound: no room for a difference
            return 0.0
        return min(0.5 * d, 1e-4 * max(v, lo), 1e-4 * max(1 - v, lo))

    p, t = binary_probabilities(np.float64), binary_targets(np.float64)
    _, g = value_and_gradient(lambda q: losses.BinaryCrossentropy()(t, q), p)
    checked = 0
    for i in np.ndindex(p.shape):
        h = step_for(p[i])
        if h == 0:  # the bounds and their neighbours: checked against the formula above
            continue
        f = lambda q, i=i: losses.BinaryCrossentropy()(t[i].reshape(1, 1), q)  # noqa: E731
        fd = central_differences(f, p[i].reshape(1, 1), np.array([[h]]))[0, 0] / p.size
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-300), (i, p[i])
        checked += 1
    assert checked == p.size - 3

    p, t, labels = categorical_case(np.float64, soft=True)
    n = len(p)
    _, g = value_and_gradient(lambda q: losses.CategoricalCrossentropy()(t, q), p)
    for i in range(n):
        # q = p / s moves with every entry of the row; steps of at most half the
        # distance of p_j to the clip bound lo s keep each q on its side
        f = lambda q, i=i: losses.CategoricalCrossentropy()(t[i:i + 1], q)  # noqa: E731
        # (and at most 1e-3 p_j inside the clip, where -log q_j curves)
        row = p[i:i + 1]
        steps = np.minimum(np.minimum(1e-6, 0.5 * np.abs(row - lo * row.sum())),
                           np.where(row >= lo * row.sum(), 1e-3 * row, 1.0))
        fd = central_differences(f, p[i:i + 1], steps)[0] / n
        np.testing.assert_allclose(g[i], fd, rtol=1e-5, atol=1e-6 * np.max(np.abs(g[i])) + 1e-300)

    p = p / p.sum(axis=1, keepdims=True)
    _, g = value_and_gradient(lambda q: losses.SparseCategoricalCrossentropy()(labels, q), p)
    for i in range(n):
        f = lambda q, i=i: losses.SparseCategoricalCrossentropy()(labels[i:i + 1], q)  # noqa: E731
        steps = np.array([[step_for(v) for v in p[i]]])
        fd = central_differences(f, p[i:i + 1], steps)[0] / n
        np.testing.assert_allclose(g[i], fd, rtol=1e-6, atol=1e-300)


# --- logits forms and mse ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("columns", [1, 3])
def test_binary_crossentropy_from_logits(dtype, columns):
    z = logits_case(dtype, columns)
    t = (np.random.default_rng(columns).integers(0, 2, z.shape) * 1.0).astype(dtype)
    t[2, 0] = 0.3  # a soft target
    value, g = value_and_gradient(lambda u: losses.BinaryCrossentropy(from_logits=True)(t, u), z)
    ref = ref_bce_logits(z, t)
    assert_value(value, ref[0], dtype, z.size)
    assert_gradient(g, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("soft", [False, True], ids=["one-hot", "soft"])
def test_categorical_crossentropy_from_logits(dtype, soft):
    z = logits_case(dtype, 4)
    labels = np.array([0, 3, 1, 2, 2, 0])
    t = np.eye(4, dtype=dtype)[labels]
    if soft:  # rows summing to 0.85: the softmax term is scaled by the row sum
        t = (0.75 * t + 0.025).astype(dtype)
    value, g = value_and_gradient(lambda u: losses.CategoricalCrossentropy(True)(t, u), z)
    ref = ref_cce_logits(z, t)
    assert_value(value, ref[0], dtype, z.size)
    assert_gradient(g, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_crossentropy_from_logits(dtype):
    z = logits_case(dtype, 4)
    labels = np.array([1, 3, 0, 2, 2, 3])  # row 0 saturated away from its label
    loss = losses.SparseCategoricalCrossentropy(from_logits=True)
    value, g = value_and_gradient(lambda u: loss(labels, u), z)
    ref = ref_sparse_logits(z, labels)
    assert_value(value, ref[0], dtype, z.size)
    assert_gradient(g, ref, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_mean_squared_error(dtype):
    rng = np.random.default_rng(11)
    p, t = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal((5, 3)).astype(dtype)
    value, g = value_and_gradient(lambda u: losses.MeanSquaredError()(t, u), p)
    ref = ref_mse(p, t)
    assert_value(value, ref[0], dtype, p.size)
    assert_gradient(g, ref, dtype, factor=4)


def test_logit_gradients_match_finite_differences():
    rng = np.random.default_rng(12)
    z = rng.standard_normal((5, 3))
    t = rng.integers(0, 2, (5, 3)) * 1.0
    labels = np.array([0, 2, 1, 1, 0])
    soft = np.eye(3)[labels] * 0.6 + 0.1
    cases = [
        (losses.BinaryCrossentropy(True), t),
        (losses.CategoricalCrossentropy(True), soft),
        (losses.SparseCategoricalCrossentropy(True), labels),
        (losses.MeanSquaredError(), rng.standard_normal((5, 3))),
    ]
    for loss, target in cases:
        f = lambda u, loss=loss, target=target: loss(target, u)  # noqa: E731
        _, g = value_and_gradient(f, z)
        fd = central_differences(f, z, np.full(z.shape, 1e-6))
        np.testing.assert_allclose(g, fd, rtol=1e-7, atol=1e-10, err_msg=repr(loss))


def test_large_logits_do_not_overflow():
    # |z| = 1e4: e^z overflows float64; the references work in long double.
    for dtype in DTYPES:
        z = np.array([[1e4, -1e4, 0.0], [-1e4, 1e4, 5.0]], dtype=dtype)
        t = np.array([[0.0, 1.0, 0.5], [1.0, 1.0, 0.0]], dtype=dtype)
        value, g = value_and_gradient(lambda u: losses.BinaryCrossentropy(True)(t, u), z)
        ref = ref_bce_logits(z, t)
        assert_value(value, ref[0], dtype, z.size)
        assert_gradient(g, ref, dtype)
        labels = np.array([1, 2])
        value, g = value_and_gradient(
            lambda u: losses.SparseCategoricalCrossentropy(True)(labels, u), z)
        ref = ref_sparse_logits(z, labels)
        assert_value(value, ref[0], dtype, z.size)
        assert np.all(np.isfinite(g))
        assert_gradient(g, ref, dtype)


# --- the upstream gradient ------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_gradient_scales_with_the_upstream_gradient(dtype):
    # Inside a model the loss is one term of a larger expression: its vjp gets g != 1.
    p, t = binary_probabilities(dtype), binary_targets(dtype)
    pc, tc, labels = categorical_case(dtype)
    z = logits_case(dtype, 3)
    cases = [
        (losses.BinaryCrossentropy(), t, p),
        (losses.BinaryCrossentropy(True), t, z[:5]),
        (losses.CategoricalCrossentropy(), tc, pc),
        (losses.CategoricalCrossentropy(True), tc[:, :3], z),
        (losses.SparseCategoricalCrossentropy(), labels, pc),
        (losses.SparseCategoricalCrossentropy(True), labels % 3, z),
        (losses.MeanSquaredError(), t, p),
    ]
    for loss, target, pred in cases:
        _, base = value_and_gradient(lambda u: loss(target, u), pred)
        scaled = grad(lambda u: -2.5 * loss(target, u))(pred)
        # -2.5 g is exact in binary up to one rounding of each entry
        np.testing.assert_allclose(scaled, -2.5 * base.astype(np.float64), rtol=2 * eps(dtype),
                                   atol=0, err_msg=repr(loss))


def test_loss_inside_a_sum_of_batches():
    # The mean over the batch: a loss of a batch of 2n equals the mean of two halves,
    # and so does its gradient.
    rng = np.random.default_rng(13)
    z = rng.standard_normal((8, 3))
    labels = rng.integers(0, 3, 8)
    loss = losses.SparseCategoricalCrossentropy(True)
    whole, g = value_and_gradient(lambda u: loss(labels, u), z)
    halves = lambda u: 0.5 * (loss(labels[:4], u[:4]) + loss(labels[4:], u[4:]))  # noqa: E731
    half_value, half_g = value_and_gradient(halves, z)
    np.testing.assert_allclose(whole, half_value, rtol=4 * eps(np.float64))
    np.testing.assert_allclose(g, half_g, rtol=4 * eps(np.float64), atol=0)


# --- metrics ---------------------------------------------------------------------------------


def loop_mean(values):
    values = list(values)
    return math.fsum(values) / len(values)


def test_metrics_against_python_loops():
    rng = np.random.default_rng(14)
    n, k = 23, 4
    probs = rng.random((n, k)).astype(np.float32)
    probs[3] = [0.5, 0.5, 0.1, 0.2]  # a tie: argmax takes the first
    labels = rng.integers(0, k, n)
    onehot = np.eye(k, dtype=np.float32)[labels]
    bin_true = rng.integers(0, 2, (n, 3)).astype(np.float32)
    bin_pred = rng.random((n, 3)).astype(np.float32)
    bin_pred[0, 0] = 0.5  # exactly at the threshold: predicted 0, as Keras (> threshold)

    def argmax(row):
        best = 0
        for j in range(1, len(row)):
            if row[j] > row[best]:
                best = j
        return best

    expected = loop_mean(float(argmax(p) == c) for p, c in zip(probs, labels))
    assert metrics.sparse_categorical_accuracy(labels, probs) == pytest.approx(expected, abs=1e-15)
    assert metrics.sparse_categorical_accuracy(labels.reshape(-1, 1), probs) == pytest.approx(
        expected, abs=1e-15)
    assert metrics.categorical_accuracy(onehot, probs) == pytest.approx(expected, abs=1e-15)
    assert 0 < expected < 1

    for threshold in (0.5, 0.3):
        expected = loop_mean(float((p > threshold) == (t == 1))
                             for p, t in zip(bin_pred.ravel(), bin_true.ravel()))
        got = metrics.binary_accuracy(bin_true, bin_pred, threshold=threshold)
        assert got == pytest.approx(expected, abs=1e-15)
    assert metrics.binary_accuracy(np.array([[0.0]]), np.array([[0.5]])) == 1.0

    a = rng.standard_normal((n, 3)).astype(np.float32)
    b = rng.standard_normal((n, 3)).astype(np.float32)
    expected = loop_mean((float(u) - float(v)) ** 2 for u, v in zip(a.ravel(), b.ravel()))
    got = metrics.mean_squared_error(b, a)
    assert isinstance(got, float)
    assert abs(got - expected) <= 4 * eps(np.float64) * expected  # worked in float64


def test_accuracy_name_resolves_by_target_and_units():
    assert metrics.get("accuracy", "binary")[1] is metrics.binary_accuracy
    assert metrics.get("acc", "categorical")[1] is metrics.categorical_accuracy
    assert metrics.get("accuracy", "sparse")[1] is metrics.sparse_categorical_accuracy
    assert metrics.get("accuracy", "regression", 1)[1] is metrics.binary_accuracy
    assert metrics.get("accuracy", "regression", 3)[1] is metrics.categorical_accuracy
    with pytest.raises(ValueError, match="unknown metric 'f1'"):
        metrics.get("f1")


def test_loss_objects_use_the_documented_primitives():
    # The dispatch from_logits / probabilities is part of the contract of each class.
    t = np.array([[1.0], [0.0]])
    z = np.array([[2.0], [-1.0]])
    bce_logits = ref_bce_logits(z, t)[0]
    bce_probs = ref_bce_probs(z, t, np.float64)[0]  # z read as probabilities: clipped
    assert float(losses.BinaryCrossentropy(True)(t, z)) == pytest.approx(float(bce_logits))
    assert float(losses.BinaryCrossentropy(False)(t, z)) == pytest.approx(float(bce_probs))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_confident_rows_keep_their_small_loss_to_relative_accuracy(dtype):
    # A well-trained classifier: the label's logit leads by 12..30, the loss of a row
    # is log(1 + sum_{c != y} e^{z_c - z_y}) ~ 1e-5 .. 1e-13. Formed as
    # (m + log sum e^{z - m}) - z_y it would lose |z_y| eps to rounding: 1e-6 absolute
    # in float32 (8% of a 1.2e-5 loss), 4e-15 in float64 (2% of 1.9e-13).
    lead = 12.0 if dtype == np.float32 else 30.0
    z = np.array([[lead, 0.0, 0.0], [1.0, 1.0 + lead, -3.0], [-50.0, -50.0, lead - 50.0]],
                 dtype=dtype)
    labels = np.array([0, 1, 2])
    onehot = np.eye(3, dtype=dtype)[labels]
    # the reference in 50 digits: log sum_c e^{z_c} - z_y, no cancellation to fear
    with mpmath.workdps(50):
        rows = [mpmath.log(sum(mpmath.exp(mpmath.mpf(float(v))) for v in row))
                - mpmath.mpf(float(row[c])) for row, c in zip(z, labels)]
        ref = float(sum(rows) / len(rows))
    for loss, target in ((losses.SparseCategoricalCrossentropy(True), labels),
                         (losses.CategoricalCrossentropy(True), onehot)):
        got = loss(target, z)
        assert np.asarray(got).dtype == dtype
        assert abs(float(got) - ref) <= 8 * eps(dtype) * ref, (float(got), ref)
