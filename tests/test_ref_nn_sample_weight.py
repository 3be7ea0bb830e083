"""Sample weights (Keras's ``sample_weight=`` / ``class_weight=``) against plain-NumPy references.

Keras 3 reduces a weighted loss with ``"sum_over_batch_size"``: the loss of a
batch of n samples is (1/n) sum_i w_i l_i, with l_i the loss of sample i (the
mean over its outputs for the element-wise losses), *not* divided by the sum
of the weights. Every loss is checked in both dtypes against that formula
written out per sample in long double, its gradient against the derivative
written out by hand and against central finite differences (float64), over
the same domain as the unweighted tests: clipped probabilities, logits,
several output columns, and weights 0, fractional and above 1.

In the model, the epoch loss is Keras's mean over the epoch of each batch's
loss weighted by the batch size, so with sample weights it is
(1/N) sum_i w_i l_i over the epoch: what ``evaluate(..., sample_weight=)``
reports when the weights stand still, whatever the batch size (a partial
last batch included). A training loop written out in NumPy pins the weighted
gradient step and the shuffling of the weights with the samples.
"""

import numpy as np
import pytest

from spherenet.nn import Dense, Sequential, losses, unit_norm
from spherenet.nn._autodiff import value_and_grads
from spherenet.optim import RSGD

DTYPES = [np.float64, np.float32]
LD = np.longdouble


def eps(dtype):
    return float(np.finfo(dtype).eps)


class ZeroLR:
    """A learning-rate schedule that never moves the weights."""

    def __call__(self, step):
        return 0.0


# --- per-sample references (long double, from the formulas) ------------------------------------


def clip_bounds(dtype):
    lo = dtype(1e-7)
    return LD(lo), LD(dtype(1) - lo)


def softplus(u):
    return np.maximum(u, 0) + np.log1p(np.exp(-np.abs(u)))


def per_sample(kind, p, t, dtype):
    """(l_i, dl_i/dp, magnitude of the terms of dl_i/dp) for every sample i (row of p)."""
    P = p.astype(LD)
    lo, hi = clip_bounds(dtype)
    if kind == "mse":
        T = t.astype(LD)
        k = P.shape[1]
        d = P - T
        return np.mean(d * d, axis=1), 2 * d / k, 2 * (np.abs(P) + np.abs(T)) / k
    if kind == "bce_probs":
        T = t.astype(LD)
        k = P.shape[1]
        q = np.clip(P, lo, hi)
        loss = -np.mean(T * np.log(q) + (1 - T) * np.log1p(-q), axis=1)
        inside = (P >= lo) & (P <= hi)
        g = np.where(inside, (1 - T) / (1 - q) - T / q, 0) / k
        return loss, g, (np.abs(1 - T) / (1 - q) + T / q) / k
    if kind == "bce_logits":
        T = t.astype(LD)
        k = P.shape[1]
        sigma = 1 / (1 + np.exp(-P))
        return (np.mean(T * softplus(-P) + (1 - T) * softplus(P), axis=1), (sigma - T) / k,
                (sigma + np.abs(T)) / k)
    if kind in ("cce_logits", "sparse_logits"):
        T = np.eye(P.shape[1], dtype=LD)[t] if kind == "sparse_logits" else t.astype(LD)
        m = np.max(P, axis=1, keepdims=True)
        lse = m + np.log(np.sum(np.exp(P - m), axis=1, keepdims=True))
        soft, rows = np.exp(P - lse), np.sum(T, axis=1, keepdims=True)
        return np.sum(T * (lse - P), axis=1), soft * rows - T, soft * rows + T
    if kind == "cce_probs":
        T = t.astype(LD)
        s = np.sum(P, axis=1, keepdims=True)
        q = P / s
        inside = (q >= lo) & (q <= hi)
        dq = np.where(inside, -T / np.clip(q, lo, hi), 0)
        g = (dq - np.sum(dq * q, axis=1, keepdims=True)) / s
        mag = (np.abs(dq) + np.sum(np.abs(dq) * q, axis=1, keepdims=True)) / s
        return -np.sum(T * np.log(np.clip(q, lo, hi)), axis=1), g, mag
    assert kind == "sparse_probs"
    loss, g = np.zeros(len(P), dtype=LD), np.zeros_like(P)
    for i, c in enumerate(t):  # a loop, not fancy indexing
        q = P[i, c]
        loss[i] = -np.log(min(max(q, lo), hi))
        if lo <= q <= hi:
            g[i, c] = -1 / q
    return loss, g, np.abs(g)


def weighted_reference(kind, p, t, w, dtype):
    """Keras's sum_over_batch_size: ((1/n) sum_i w_i l_i, its gradient, term magnitudes)."""
    loss, g, mag = per_sample(kind, p, t, dtype)
    n, W = len(p), w.astype(dtype).astype(LD)
    return np.sum(W * loss) / n, W[:, None] * g / n, W[:, None] * mag / n


# --- cases: the domains of tests/test_ref_nn_losses.py -------------------------------------------


def binary_probabilities(dtype):
    """(5, 3) probabilities covering [0, 1]: both clip bounds and each side of them."""
    lo, hi = (dtype(b) for b in clip_bounds(dtype))
    values = [0.0, lo / 2, lo, 2 * lo, 1e-3, 0.3, 0.5, 0.9, 1 - 1e-3, 0.6, hi,
              np.nextafter(hi, dtype(1)), 1.0, 0.7, 1e-5]
    return np.array(values, dtype=dtype).reshape(5, 3)


def case(kind, dtype):
    """(loss object, predictions, targets) of ``kind``, 5 or 6 samples."""
    rng = np.random.default_rng(3)
    if kind == "mse":
        return (losses.MeanSquaredError(), rng.standard_normal((6, 3)).astype(dtype),
                rng.standard_normal((6, 3)).astype(dtype))
    if kind == "bce_probs":
        t = np.array([0, 1, 1, 0, 1, 0, 0.25, 1, 0, 1, 0, 1, 0, 1, 0.5], dtype=dtype)
        return losses.BinaryCrossentropy(), binary_probabilities(dtype), t.reshape(5, 3)
    z = 3 * rng.standard_normal((6, 4))
    z[0, 0], z[1, -1] = 40.0, -40.0  # saturated sigmoid / softmax
    z = z.astype(dtype)
    labels = np.array([1, 3, 0, 2, 2, 3])
    if kind == "bce_logits":
        t = rng.integers(0, 2, z.shape).astype(dtype)
        t[2, 0] = 0.3
        return losses.BinaryCrossentropy(from_logits=True), z, t
    if kind == "cce_logits":
        t = (0.75 * np.eye(4)[labels] + 0.025).astype(dtype)  # soft rows summing to 0.85
        return losses.CategoricalCrossentropy(from_logits=True), z, t
    if kind == "sparse_logits":
        return losses.SparseCategoricalCrossentropy(from_logits=True), z, labels
    p = np.array([[1.0, 0.0, 0.0, 0.0],
                  [0.0, 1.0, 0.0, 0.0],
                  [0.25, 0.25, 0.25, 0.25],
                  [0.7, 0.2, 0.1 - 3e-8, 3e-8],      # last entry outside the clip
                  [0.6, 0.3, 0.1 - 3e-7, 3e-7],      # last entry inside the clip
                  [2.0, 1.0, 0.5, 0.5]], dtype=dtype)
    labels = np.array([0, 0, 2, 3, 3, 1])
    if kind == "cce_probs":
        return losses.CategoricalCrossentropy(), p, (0.8 * np.eye(4)[labels] + 0.05).astype(dtype)
    assert kind == "sparse_probs"
    return losses.SparseCategoricalCrossentropy(), (p / p.sum(axis=1, keepdims=True)).astype(
        dtype), labels


KINDS = ["mse", "bce_probs", "bce_logits", "cce_logits", "sparse_logits", "cce_probs",
         "sparse_probs"]
WEIGHTS = np.array([0.0, 0.5, 1.0, 2.5, 3.0, 0.25])  # a zero, fractional, above one


def value_and_gradient(fun, pred):
    value, (g,) = value_and_grads(fun, [pred])
    return value, g


# --- losses: value and gradient ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
def test_weighted_loss_and_gradient_against_the_formula(kind, dtype):
    loss, p, t = case(kind, dtype)
    w = WEIGHTS[:len(p)]
    value, g = value_and_gradient(lambda q: loss(t, q, sample_weight=w), p)
    ref_value, ref_g, mag = weighted_reference(kind, p, t, w, dtype)
    # value: a few eps per term of the mean, relative to the largest weighted term
    assert value.dtype == dtype and g.dtype == dtype
    terms = np.abs(per_sample(kind, p, t, dtype)[0]) * w.astype(LD)
    tol = (4 + p.size) * eps(dtype) * max(float(np.max(terms)) / len(p), float(abs(ref_value)))
    assert abs(float(value) - float(ref_value)) <= tol, (float(value), float(ref_value), tol)
    # gradient: elementwise within 16 eps of the magnitude of its terms
    scale = np.asarray(mag, dtype=np.float64) + eps(dtype) * float(np.max(mag))
    err = np.abs(g.astype(np.float64) - np.asarray(ref_g, dtype=np.float64))
    assert np.all(err <= 16 * eps(dtype) * scale), np.max(err / scale) / eps(dtype)
    # a sample of weight 0 has no gradient; the others have the unweighted one times w_i
    assert np.all(g[0] == 0)
    _, plain = value_and_gradient(lambda q: loss(t, q), p)
    np.testing.assert_allclose(g[1:], plain[1:] * w[1:, None].astype(dtype),
                               rtol=4 * eps(dtype), atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kind", KINDS)
def test_unit_weights_are_the_unweighted_loss_and_weights_scale_it(kind, dtype):
    loss, p, t = case(kind, dtype)
    ones = np.ones(len(p))
    plain, g_plain = value_and_gradient(lambda q: loss(t, q), p)
    value, g = value_and_gradient(lambda q: loss(t, q, sample_weight=ones), p)
    assert value == plain and np.array_equal(g, g_plain)  # times 1.0: bit for bit
    # not normalized by the sum of the weights: all weights 2 give twice the loss
    double, g2 = value_and_gradient(lambda q: loss(t, q, sample_weight=2 * ones), p)
    assert double == 2 * plain and np.array_equal(g2, 2 * g_plain)


def central_differences(fun, p, steps):
    """d fun / d p_i by (f(p + h e_i) - f(p - h e_i)) / (the step actually taken)."""
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


@pytest.mark.parametrize("kind", KINDS)
def test_weighted_gradient_matches_finite_differences(kind):
    # float64. The weighted loss of one sample (its row, with its weight, as a batch of
    # one) is differenced, so that the rounding of the other rows does not swamp a small
    # slope; the batch of n gives 1/n of it. Steps stay within half the distance to the
    # nearest clip bound (of p, or of q = p / s for the categorical form): each
    # quotient sees one smooth piece, 0 outside the clip, the slope inside.
    loss, p, t = case(kind, np.float64)
    n, w = len(p), WEIGHTS[:len(p)]
    lo, hi = (float(b) for b in clip_bounds(np.float64))
    _, g = value_and_gradient(lambda q: loss(t, q, sample_weight=w), p)
    for i in range(n):
        row = p[i:i + 1]
        if kind in ("mse", "bce_logits", "cce_logits", "sparse_logits"):
            steps = np.full(row.shape, 1e-6)
        else:
            s = row.sum() if kind == "cce_probs" else 1.0
            d = np.minimum(np.abs(row - lo * s), np.abs(row - hi * s))
            # (and a small fraction of the distance to 0 and 1 where the log curves; an
            # entry below the clip of the categorical form still moves the row sum s)
            if kind == "cce_probs":
                steps = np.minimum(np.minimum(1e-6, 0.5 * d),
                                   np.where(row >= lo * s, 1e-3 * row, 1.0))
            else:
                steps = np.minimum(0.5 * d, 1e-4 * np.minimum(np.maximum(row, lo),
                                                              np.maximum(1 - row, lo)))
            steps[d < 1e3 * np.spacing(row)] = 0.0  # at a bound: checked against the formula
        f = lambda q, i=i: loss(t[i:i + 1], q, sample_weight=w[i:i + 1])  # noqa: E731
        fd = central_differences(f, row, steps)[0] / n
        checked = steps[0] > 0
        np.testing.assert_allclose(g[i][checked], fd[checked], rtol=2e-6,
                                   atol=1e-7 * np.max(np.abs(g[i])) + 1e-300)
    if kind in ("mse", "bce_logits", "cce_logits", "sparse_logits"):
        # smooth everywhere: the whole batch at once, each entry moved by 1e-6
        fd = central_differences(lambda q: loss(t, q, sample_weight=w), p,
                                 np.full(p.shape, 1e-6))
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-9)


# --- validation -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, message", [
    (np.array([1.0, -0.5, 1.0]), r"^sample_weight must be >= 0, got -0\.5 at sample 1$"),
    (np.array([1.0, 1.0, np.nan]), r"^sample_weight has 1 NaN or infinite value\(s\) \(first in sample 2\)$"),
    (np.array([np.inf, 1.0, 1.0]), r"^sample_weight has 1 NaN or infinite value\(s\) \(first in sample 0\)$"),
    (np.ones(4), r"^y_pred has 3 samples but sample_weight has 4$"),
    (np.ones((3, 1)), r"^sample_weight must hold one weight per sample, shape \(3,\), got shape \(3, 1\)$"),
    (2.0, r"^sample_weight must hold one weight per sample, shape \(3,\), got shape \(\)$"),
    (np.array(["a", "b", "c"]), r"^sample_weight must be a numeric array, got dtype <U1$"),
])
def test_loss_refuses_bad_sample_weights(bad, message):
    loss = losses.MeanSquaredError()
    with pytest.raises(ValueError, match=message):
        loss(np.zeros((3, 2)), np.ones((3, 2)), sample_weight=bad)


def linear_model(dtype="float64", units=1, activation=None, seed=0):
    model = Sequential(seed=seed, dtype=dtype)
    model.add(Dense(units, input_dim=2, activation=activation))
    return model


def test_fit_and_evaluate_refuse_bad_weights_before_any_change():
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((8, 2)), rng.integers(0, 3, 8)
    model = linear_model(units=3, activation="softmax")
    model.compile(optimizer=RSGD(lr=0.1), loss="sparse_categorical_crossentropy")
    before = model.get_weights()
    bad_cases = [
        (dict(sample_weight=-np.ones(8)), ValueError, r"^sample_weight must be >= 0, got -1\.0 at sample 0$"),
        (dict(sample_weight=np.ones(7)), ValueError, r"^x has 8 samples but sample_weight has 7$"),
        (dict(sample_weight=np.ones(8), class_weight={0: 2.0}), ValueError,
         r"^give sample_weight or class_weight, not both$"),
        (dict(class_weight={3: 2.0}), ValueError,
         r"^class_weight keys must be class indices in \[0, 3\), got 3$"),
        (dict(class_weight={True: 2.0}), ValueError,
         r"^class_weight keys must be class indices in \[0, 3\), got True$"),
        (dict(class_weight={1: -1.0}), ValueError,
         r"^class_weight\[1\] must be a finite number >= 0, got -1\.0$"),
        (dict(class_weight={1: float("nan")}), ValueError,
         r"^class_weight\[1\] must be a finite number >= 0, got nan$"),
        (dict(class_weight=[1.0, 2.0, 3.0]), TypeError,
         r"^class_weight must be a dict \{class: weight\}, got list$"),
        (dict(validation_data=(x, labels, np.ones(3))), ValueError,
         r"^validation x has 8 samples but validation sample_weight has 3$"),
        (dict(validation_data=(x,)), ValueError, r"^validation_data must be a pair"),
    ]
    for kwargs, exc, message in bad_cases:
        with pytest.raises(exc, match=message):
            model.fit(x, labels, epochs=1, verbose=0, **kwargs)
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        assert model.history is None
    with pytest.raises(ValueError, match=r"^sample_weight has 1 NaN or infinite value\(s\)"):
        model.evaluate(x, labels, sample_weight=np.r_[np.ones(7), np.nan])
    binary = linear_model(activation="sigmoid")
    binary.compile(loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"^class_weight keys must be class indices in \[0, 2\), "
                                         r"got 2$"):
        binary.fit(x, labels > 0, class_weight={2: 1.0}, verbose=0)
    regression = linear_model()
    regression.compile(loss="mse")
    with pytest.raises(ValueError, match=r"^class_weight needs a classification loss, got "
                                         r"targets of kind 'regression'$"):
        regression.fit(x, x[:, 0], class_weight={0: 1.0}, verbose=0)


# --- the model: evaluate, the epoch loss, one training loop in NumPy ------------------------------


def test_evaluate_with_weights_is_the_weighted_mean_whatever_the_batch_size():
    # mse of a fixed linear model: (1/n) sum_i w_i mean_j (x_i W + b - y_i)_j^2
    rng = np.random.default_rng(1)
    x, y, w = rng.standard_normal((11, 2)), rng.standard_normal((11, 2)), rng.uniform(0, 3, 11)
    model = linear_model(units=2)
    model.compile(loss="mse")
    kernel, bias = model.get_weights()
    expected = np.sum(w * np.mean((x @ kernel + bias - y) ** 2, axis=1)) / 11
    for batch_size in (1, 3, 4, 11, 100):  # 11 = 3 * 3 + 2 = 2 * 4 + 3: partial last batches
        got = model.evaluate(x, y, batch_size=batch_size, sample_weight=w)
        assert got == pytest.approx(expected, rel=16 * eps(np.float64))
    assert model.evaluate(x, y, sample_weight=np.ones(11)) == model.evaluate(x, y)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", ["mse", "sparse_categorical_crossentropy", "binary_crossentropy",
                                  "logits"])
def test_weighted_epoch_loss_equals_weighted_evaluate(loss, dtype):
    # The weights stand still (learning rate 0, strategy "none": x - 0 g is x exactly),
    # the samples are shuffled and 29 = 4 * 7 + 1 leaves a last batch of 1: the epoch
    # loss, (1/N) sum over batches of m_b times the batch loss, is (1/N) sum_i w_i l_i,
    # which is evaluate(sample_weight=) -- only if each weight follows its sample.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((29, 2))
    w = rng.uniform(0, 2, 29)
    w[[3, 17]] = 0.0
    model = Sequential(seed=3, dtype=dtype)
    model.add(Dense(5, input_dim=2, activation="tanh", kernel_constraint=unit_norm()))
    if loss == "mse":
        y, last, loss_obj = np.stack([np.sin(x[:, 0]), x[:, 0] * x[:, 1]], axis=1), None, loss
    elif loss == "sparse_categorical_crossentropy":  # softmax output: trained from its logits
        y, last, loss_obj = (x[:, 0] > 0) + (x[:, 1] > 0.5), "softmax", loss
    elif loss == "binary_crossentropy":
        y, last, loss_obj = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1) * 1.0, "sigmoid", loss
    else:  # a loss that takes logits, on a linear output
        y, last = (x[:, 0] > 0) + (x[:, 1] > 0.5), None
        loss_obj = losses.SparseCategoricalCrossentropy(from_logits=True)
    model.add(Dense(3 if y.ndim == 1 else 2, activation=last))
    model.compile(optimizer=RSGD(lr=ZeroLR()), loss=loss_obj, metrics=["accuracy"],
                  strategy="none")
    for batch_size in (4, 7):
        history = model.fit(x, y, epochs=1, batch_size=batch_size, verbose=0, seed=batch_size,
                            sample_weight=w).history
        whole = model.evaluate(x, y, batch_size=1024, sample_weight=w, return_dict=True)
        tol = 16 * eps(np.dtype(dtype)) * whole["loss"]
        assert abs(history["loss"][0] - whole["loss"]) <= tol, (history["loss"], whole)
        # the metrics stay unweighted (Keras's `metrics`, not `weighted_metrics`)
        assert history["accuracy"][0] == pytest.approx(model.evaluate(x, y, return_dict=True)[
            "accuracy"], rel=8 * eps(np.dtype(dtype)))
        # and the weights do matter: the unweighted loss differs
        assert abs(model.evaluate(x, y) [0] - whole["loss"]) > 1e-3


def numpy_weighted_training(weights, x, y, w, epochs, batch_size, lr, seed):
    """SGD on tanh -> sigmoid with weighted binary cross-entropy, Keras's reduction.

    Per batch of m samples: loss (1/m) sum_i w_i l_i; the epoch loss is the sum over
    batches of m times that, over n.
    """
    w1, b1, w2, b2 = (np.array(a, dtype=np.float64) for a in weights)
    y = y.reshape(-1, 1)
    rng = np.random.default_rng(seed)
    n, history = len(x), []
    for _ in range(epochs):
        order = rng.permutation(n)
        loss_sum = 0.0
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            xb, yb, wb, m = x[idx], y[idx], w[idx, None], len(idx)
            h = np.tanh(xb @ w1 + b1)
            z = h @ w2 + b2
            per_sample = yb * np.logaddexp(0, -z) + (1 - yb) * np.logaddexp(0, z)
            loss_sum += np.sum(wb * per_sample)
            dz = wb * (1 / (1 + np.exp(-z)) - yb) / m
            dw2, db2 = h.T @ dz, dz.sum(axis=0)
            da = (dz @ w2.T) * (1 - h * h)
            dw1, db1 = xb.T @ da, da.sum(axis=0)
            w1, b1, w2, b2 = w1 - lr * dw1, b1 - lr * db1, w2 - lr * dw2, b2 - lr * db2
        history.append(loss_sum / n)
    return history, [w1, b1, w2, b2]


@pytest.mark.parametrize("batch_size", [5, 23])
def test_weighted_fit_equals_a_numpy_training_loop(batch_size):
    # 23 samples in batches of 5: a last batch of 3; shuffled, so each weight must
    # travel with its sample.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((23, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.3).astype(np.float64)
    w = rng.uniform(0, 3, 23)
    model = Sequential(seed=0, dtype="float64")
    model.add(Dense(4, input_dim=3, activation="tanh", bias_initializer="glorot_uniform"))
    model.add(Dense(1, activation="sigmoid", bias_initializer="glorot_uniform"))
    model.compile(optimizer=RSGD(lr=0.3), loss="binary_crossentropy")
    start = model.get_weights()
    history = model.fit(x, y, epochs=3, batch_size=batch_size, verbose=0, seed=7,
                        sample_weight=w).history
    expected, weights = numpy_weighted_training(start, x, y, w, 3, batch_size, 0.3, seed=7)
    np.testing.assert_allclose(history["loss"], expected, rtol=1e-13)
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


def test_validation_split_takes_the_last_weights_and_validation_data_a_triple():
    rng = np.random.default_rng(5)
    x, y, w = rng.standard_normal((20, 2)), rng.standard_normal((20, 1)), rng.uniform(0, 2, 20)
    model = linear_model()
    model.compile(optimizer=RSGD(lr=ZeroLR()), loss="mse", strategy="none")
    logs = model.fit(x, y, epochs=1, batch_size=6, verbose=0, validation_split=0.25,
                     sample_weight=w, shuffle=False).history
    # 15 training samples (batches 6, 6, 3), the last 5 held out with their weights
    head = model.evaluate(x[:15], y[:15], sample_weight=w[:15], batch_size=6)
    tail = model.evaluate(x[15:], y[15:], sample_weight=w[15:])
    assert logs["loss"] == [head] and logs["val_loss"] == [tail]
    triple = model.fit(x[:15], y[:15], epochs=1, verbose=0, sample_weight=w[:15],
                       validation_data=(x[15:], y[15:], w[15:])).history
    assert triple["val_loss"] == [tail]
    pair = model.fit(x[:15], y[:15], epochs=1, verbose=0, validation_data=(x[15:], y[15:]))
    assert pair.history["val_loss"] == [model.evaluate(x[15:], y[15:])] != [tail]


@pytest.mark.parametrize("target", ["sparse", "categorical", "binary"])
def test_class_weight_is_the_sample_weight_of_each_class(target):
    # Keras's rule: the class of a sample is its label, the argmax of its one-hot row,
    # or its rounded 0/1 target; a class missing from the dict weighs 1.
    rng = np.random.default_rng(6)
    x = rng.standard_normal((17, 2))
    labels = rng.integers(0, 3 if target != "binary" else 2, 17)
    if target == "sparse":
        y, units, act, loss, cw = labels, 3, "softmax", "sparse_categorical_crossentropy", {
            0: 0.5, 2: 4.0}
    elif target == "categorical":
        y, units, act, loss, cw = np.eye(3)[labels], 3, "softmax", "categorical_crossentropy", {
            1: 2.0, 2: 0.0}
    else:
        y, units, act, loss, cw = labels * 1.0, 1, "sigmoid", "binary_crossentropy", {1: 3.0}
    by_hand = np.array([cw.get(int(c), 1.0) for c in labels])

    def trained(**weighting):
        model = linear_model(units=units, activation=act, seed=1)
        model.compile(optimizer=RSGD(lr=0.5), loss=loss)
        history = model.fit(x, y, epochs=2, batch_size=5, verbose=0, seed=0, **weighting)
        return history.history["loss"], model.get_weights()

    loss_cw, weights_cw = trained(class_weight=cw)
    loss_sw, weights_sw = trained(sample_weight=by_hand)
    loss_plain, _ = trained()
    assert loss_cw == loss_sw and loss_cw != loss_plain
    for a, b in zip(weights_cw, weights_sw):
        np.testing.assert_array_equal(a, b)


def test_float32_model_keeps_float32_with_float64_weights():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 1))
    model = linear_model(dtype="float32")
    model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    w = rng.uniform(0, 2, 6)  # float64
    model.fit(x, y, epochs=1, verbose=0, sample_weight=w)
    assert all(a.dtype == np.float32 for a in model.get_weights())
    kernel, bias = (a.astype(np.float64) for a in model.get_weights())
    x32, y32, w32 = (a.astype(np.float32).astype(np.float64) for a in (x, y, w))
    expected = np.sum(w32 * ((x32 @ kernel + bias - y32) ** 2)[:, 0]) / 6
    got = model.evaluate(x, y, sample_weight=w)
    assert got == pytest.approx(expected, rel=32 * eps(np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_sparse_probability_form_keeps_the_gradient_at_the_clip_bounds(dtype):
    # p exactly at eps and at 1 - eps: inside the clip, as
    # TensorFlow's clip_by_value passes the gradient at its bounds; weights 2 and 0.5
    lo = dtype(1e-7)
    hi = dtype(1) - lo
    p = np.array([[lo, hi], [hi, lo]], dtype=dtype)
    assert np.all(p.sum(axis=1) == 1)
    w = np.array([2.0, 0.5])
    labels = np.array([0, 0])
    _, g = value_and_gradient(
        lambda q: losses.SparseCategoricalCrossentropy()(labels, q, sample_weight=w), p)
    expected = np.array([[-2 / lo, 0], [-0.5 / hi, 0]]) / 2
    np.testing.assert_allclose(g, expected.astype(dtype), rtol=4 * eps(dtype))


def test_loss_reprs_messages_and_weights_beyond_the_dtype():
    assert repr(losses.BinaryCrossentropy(True)) == "BinaryCrossentropy(from_logits=True)"
    assert losses.MeanSquaredError().from_logits is False
    with pytest.raises(ValueError, match=r"^loss must be one of \[.*'mse'.*\] or a "
                                         r"spherenet.nn.losses.Loss, got 3$"):
        losses.get(3)
    pred = np.ones((2, 1), dtype=np.float32)
    with pytest.raises(ValueError, match=r"^sample_weight has 1 value\(s\) finite in float64 but "
                                         r"beyond the range of the model's dtype float32"):
        losses.MeanSquaredError()(np.zeros((2, 1)), pred, sample_weight=np.array([1.0, 1e39]))
