"""Sequential's training loop and layers against hand-written references.

* The epoch loss is Keras's: the mean over the epoch's batches of each
  batch's loss at the weights of that moment (before its step), weighted by
  the batch size, so a partial last batch counts for what it holds. It is
  pinned by a training loop written out in plain NumPy (forward, backward,
  SGD step, shuffling from the same seed), and, with a learning rate of 0,
  by ``evaluate`` at the (unmoving) weights for every batch size.
* Two ``fit`` calls continue one run: the optimizer's state (momentum
  buffers, Adam moments and step count, the position in a learning-rate
  schedule) is carried, bit for bit; ``set_weights`` starts afresh.
* ``strategy="projection"`` is Keras's ``unit_norm``: one step is pinned by
  hand, w <- v / (1e-7 + ||v||) per column with v = w - lr g.
* Dense, Activation and Dropout: outputs and gradients against NumPy
  formulas and central differences.
"""

import numpy as np
import pytest
from scipy import special

from spherenet.nn import Activation, Dense, Dropout, LambdaCallback, Sequential, unit_norm
from spherenet.nn._autodiff import value_and_grads
from spherenet.optim import RAdam, RSGD
from spherenet.optim.schedules import step_decay

DTYPES = [np.float64, np.float32]


def eps(dtype):
    return float(np.finfo(dtype).eps)


def data(n=23, features=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 > 0.3).astype(np.float64)
    return x, y


# --- the training loop in plain NumPy -----------------------------------------------------


def numpy_training(weights, x, y, epochs, batch_size, lr, seed):
    """SGD on tanh -> sigmoid with binary cross-entropy, as Keras trains it.

    Returns the per-epoch (loss, accuracy): batch means at the weights before
    each step, weighted by the batch sizes, and the final weights.
    """
    w1, b1, w2, b2 = (np.array(w, dtype=np.float64) for w in weights)
    y = y.reshape(-1, 1)
    rng = np.random.default_rng(seed)
    n = len(x)
    history = []
    for _ in range(epochs):
        order = rng.permutation(n)
        loss_sum = acc_sum = 0.0
        for lo in range(0, n, batch_size):
            idx = order[lo:lo + batch_size]
            xb, yb, m = x[idx], y[idx], len(idx)
            h = np.tanh(xb @ w1 + b1)
            z = h @ w2 + b2
            # log(1 + e^-z) for y = 1, log(1 + e^z) for y = 0
            batch_loss = np.mean(yb * np.logaddexp(0, -z) + (1 - yb) * np.logaddexp(0, z))
            p = 1 / (1 + np.exp(-z))
            loss_sum += batch_loss * m
            acc_sum += np.mean((p > 0.5) == (yb > 0.5)) * m
            dz = (p - yb) / m
            dw2, db2 = h.T @ dz, dz.sum(axis=0)
            da = (dz @ w2.T) * (1 - h * h)
            dw1, db1 = xb.T @ da, da.sum(axis=0)
            w1, b1, w2, b2 = w1 - lr * dw1, b1 - lr * db1, w2 - lr * dw2, b2 - lr * db2
        history.append((loss_sum / n, acc_sum / n))
    return history, [w1, b1, w2, b2]


def small_model(seed=0, dtype="float64", hidden=4, features=3):
    model = Sequential(seed=seed, dtype=dtype)
    model.add(Dense(hidden, input_dim=features, activation="tanh",
                    bias_initializer="glorot_uniform"))
    model.add(Dense(1, activation="sigmoid", bias_initializer="glorot_uniform"))
    return model


@pytest.mark.parametrize("batch_size", [1, 5, 8, 23, 40])
def test_fit_equals_a_numpy_training_loop(batch_size):
    # 23 samples: batches of 5 and 8 leave a last batch of 3 and 7.
    x, y = data()
    model = small_model()
    model.compile(optimizer=RSGD(lr=0.3), loss="binary_crossentropy", metrics=["accuracy"])
    start = model.get_weights()
    history = model.fit(x, y, epochs=3, batch_size=batch_size, verbose=0, seed=7).history
    expected, weights = numpy_training(start, x, y, 3, batch_size, 0.3, seed=7)
    np.testing.assert_allclose(history["loss"], [e[0] for e in expected], rtol=1e-13)
    np.testing.assert_allclose(history["accuracy"], [e[1] for e in expected], rtol=1e-15)
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    # the weights moved, so the epoch losses are not those of the final weights
    assert abs(history["loss"][-1] - model.evaluate(x, y)[0]) > 1e-6


class ZeroLR:
    """A learning-rate schedule that never moves the weights."""

    def __call__(self, step):
        return 0.0


def regression_case(seed=1):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((29, 4))
    return x, np.stack([np.sin(x[:, 0]), x[:, 1] * x[:, 2]], axis=1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "mse", "binary_crossentropy"])
def test_epoch_loss_equals_evaluate_when_the_weights_stand_still(loss, dtype):
    x, target = regression_case()
    if loss == "sparse_categorical_crossentropy":
        y, last, metric = (target[:, 0] > 0).astype(int) + (target[:, 1] > 0), "softmax", "accuracy"
        units = 3
    elif loss == "binary_crossentropy":
        y, last, metric, units = (target > 0).astype(float), "sigmoid", "accuracy", 2
    else:
        y, last, metric, units = target, "linear", "mse", 2
    for batch_size in (1, 4, 7, 29, 64):  # 29 = 4 * 7 + 1 = 7 * 4 + 1: a last batch of 1
        model = Sequential(seed=3, dtype=dtype)
        model.add(Dense(5, input_dim=4, activation="relu", kernel_constraint=unit_norm()))
        model.add(Dense(units, activation=last))
        # "none": x - 0 g is x exactly (a retraction or a normalization would round)
        model.compile(optimizer=RSGD(lr=ZeroLR()), loss=loss, metrics=[metric], strategy="none")
        before = model.get_weights()
        history = model.fit(x, y, epochs=2, batch_size=batch_size, shuffle=False, verbose=0,
                            seed=0).history
        for a, b in zip(model.get_weights(), before):
            np.testing.assert_array_equal(a, b)
        assert history["loss"][0] == history["loss"][1]
        check = Sequential(seed=3, dtype=dtype)
        check.add(Dense(5, input_dim=4, activation="relu", kernel_constraint=unit_norm()))
        check.add(Dense(units, activation=last))
        check.compile(optimizer="rsgd", loss=loss, metrics=[metric])
        check.build()
        check.set_weights(before)
        # same batches, same order: the same sum, bit for bit
        expected = check.evaluate(x, y, batch_size=batch_size)
        assert history["loss"][0] == expected[0], (batch_size, history["loss"][0], expected[0])
        assert history[metric][0] == expected[1]
        # one batch for all: the same mean to rounding (the sum is regrouped)
        whole = check.evaluate(x, y, batch_size=1024)
        tol = 8 * eps(np.dtype(dtype)) * abs(whole[0])
        assert abs(history["loss"][0] - whole[0]) <= tol, (batch_size, history["loss"][0], whole)
        np.testing.assert_allclose(history[metric][0], whole[1], rtol=8 * eps(np.dtype(dtype)))


def test_validation_logs_are_evaluate_at_the_end_of_epoch_weights():
    # val_loss / val_accuracy and the violation are taken at the weights after the
    # epoch's last step (unlike the training loss): pin them with weights captured
    # by a callback.
    x, y = data(n=30)
    xv, yv = data(n=11, seed=1)
    model = Sequential(seed=1, dtype="float64")
    model.add(Dense(5, input_dim=3, activation="tanh", kernel_constraint=unit_norm()))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=RSGD(lr=0.2, momentum=0.5), loss="binary_crossentropy",
                  metrics=["accuracy"])
    captured = []
    capture = LambdaCallback(on_epoch_end=lambda epoch, logs: captured.append(
        (model.get_weights(), dict(logs))))
    model.fit(x, y, epochs=3, batch_size=7, verbose=0, seed=0, validation_data=(xv, yv),
              callbacks=[capture])
    check = Sequential(seed=1, dtype="float64")
    check.add(Dense(5, input_dim=3, activation="tanh", kernel_constraint=unit_norm()))
    check.add(Dense(1, activation="sigmoid"))
    check.compile(optimizer="rsgd", loss="binary_crossentropy", metrics=["accuracy"])
    check.build()
    for weights, logs in captured:
        check.set_weights(weights)
        loss, accuracy = check.evaluate(xv, yv)
        assert logs["val_loss"] == loss and logs["val_accuracy"] == accuracy
        norms = np.linalg.norm(weights[0], axis=0)
        assert logs["dense/kernel_violation"] == pytest.approx(np.max(np.abs(norms - 1)),
                                                               abs=1e-17)
    assert len({logs["val_loss"] for _, logs in captured}) == 3  # the weights did move


def test_epoch_loss_of_a_partial_last_batch_is_weighted_by_its_size():
    # Two batches, of 3 and 1 samples: the epoch loss is (3 L1 + L2) / 4, not (L1 + L2) / 2.
    x = np.array([[0.0], [0.0], [0.0], [10.0]])
    y = np.array([[0.0], [0.0], [0.0], [1.0]])
    model = Sequential(seed=0, dtype="float64")
    model.add(Dense(1, input_dim=1, kernel_initializer="ones", bias_initializer="zeros"))
    model.compile(optimizer=RSGD(lr=ZeroLR()), loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=3, shuffle=False, verbose=0)
    # batch 1: predictions 0, targets 0 -> 0; batch 2: (10 - 1)^2 = 81
    assert history.history["loss"] == [81.0 / 4]


# --- state carried across fit calls ------------------------------------------------------------


def configured(case, dtype):
    model = Sequential(seed=0, dtype=dtype)
    model.add(Dense(6, input_dim=3, activation="tanh", kernel_constraint=unit_norm()))
    model.add(Dense(1, activation="sigmoid"))
    strategy = "riemannian"
    if case == "rsgd-momentum-schedule":
        rule = RSGD(lr=step_decay(0.2, drop=0.5, every=4), momentum=0.9)
    elif case == "rsgd-nesterov-projection":
        rule, strategy = RSGD(lr=0.1, momentum=0.8, nesterov=True), "projection"
    elif case == "radam":
        rule = RAdam(lr=0.05)
    elif case == "radam-amsgrad-coordinate":
        rule = RAdam(lr=0.05, amsgrad=True, adaptivity="coordinate")
    elif case == "radam-reparam":
        rule, strategy = RAdam(lr=0.05), "reparam"
    else:
        rule, strategy = RSGD(lr=0.1, momentum=0.9), "penalty"
    model.compile(optimizer=rule, loss="binary_crossentropy", metrics=["accuracy"],
                  strategy=strategy)
    return model


CASES = ["rsgd-momentum-schedule", "rsgd-nesterov-projection", "radam",
         "radam-amsgrad-coordinate", "radam-reparam", "rsgd-momentum-penalty"]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", CASES)
def test_two_fits_continue_one_run_bit_for_bit(case, dtype):
    x, y = data(n=21)  # batches of 4: a last batch of 1
    # One generator for both calls: the shuffles continue as they would in one call.
    rng = np.random.default_rng(5)
    split = configured(case, dtype)
    first = split.fit(x, y, epochs=2, batch_size=4, verbose=0, seed=rng).history
    second = split.fit(x, y, epochs=3, batch_size=4, verbose=0, seed=rng).history
    whole = configured(case, dtype)
    history = whole.fit(x, y, epochs=5, batch_size=4, verbose=0,
                        seed=np.random.default_rng(5)).history
    for a, b in zip(split.get_weights(), whole.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert first["loss"] + second["loss"] == history["loss"]
    assert first["accuracy"] + second["accuracy"] == history["accuracy"]


def test_set_weights_starts_the_optimizer_afresh():
    x, y = data(n=16)
    a = configured("radam", "float64")
    a.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    w = a.get_weights()
    continued = configured("radam", "float64")
    continued.fit(x, y, epochs=2, batch_size=4, shuffle=False, verbose=0)
    continued.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    a.set_weights(w)
    a.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    fresh = configured("radam", "float64")
    fresh.build()
    fresh.set_weights(w)
    fresh.fit(x, y, epochs=1, batch_size=4, shuffle=False, verbose=0)
    for got, want in zip(a.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(got, want)
    # and the carried state does matter: continuing differs from restarting
    assert not all(np.array_equal(p, q) for p, q in zip(a.get_weights(), continued.get_weights()))


# --- the projection strategy: one step by hand ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_projection_step_is_keras_unit_norm_by_hand(dtype):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((10, 4))
    labels = rng.integers(0, 3, 10)
    lr = 0.5
    model = Sequential(seed=2, dtype=np.dtype(dtype).name)
    model.add(Dense(3, input_dim=4, activation="tanh", kernel_constraint=unit_norm()))
    model.add(Dense(3, activation="softmax"))
    model.compile(optimizer=RSGD(lr=lr), loss="sparse_categorical_crossentropy",
                  strategy="projection")
    w1, b1, w2, b2 = (w.astype(np.float64) for w in model.get_weights())
    model.fit(x, labels, epochs=1, batch_size=10, shuffle=False, verbose=0)
    # plain NumPy: forward, softmax cross-entropy, backward
    xs = x.astype(dtype).astype(np.float64)
    h = np.tanh(xs @ w1 + b1)
    z = h @ w2 + b2
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    dz = (p - np.eye(3)[labels]) / 10
    dw2, db2 = h.T @ dz, dz.sum(axis=0)
    da = (dz @ w2.T) * (1 - h * h)
    dw1, db1 = xs.T @ da, da.sum(axis=0)
    v = w1 - lr * dw1
    norms = np.linalg.norm(v, axis=0)
    expected = [v / (1e-7 + norms), b1 - lr * db1, w2 - lr * dw2, b2 - lr * db2]
    tol = 1e-13 if dtype == np.float64 else 64 * eps(np.float32)
    for got, want in zip(model.get_weights(), expected):
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    if dtype == np.float64:
        # Keras's epsilon leaves each column short of 1 by 1e-7 / ||v||: not exactly normalized
        got_norms = np.linalg.norm(model.get_weights()[0], axis=0)
        np.testing.assert_allclose(1 - got_norms, 1e-7 / (1e-7 + norms), rtol=1e-6)


# --- layers ---------------------------------------------------------------------------------


ACTIVATION_REFS = {
    "linear": (lambda a: a, lambda a: np.ones_like(a)),
    "relu": (lambda a: np.where(a > 0, a, 0.0), lambda a: (a > 0) * 1.0),
    "leaky_relu": (lambda a: np.where(a > 0, a, 0.2 * a), lambda a: np.where(a > 0, 1.0, 0.2)),
    "sigmoid": (lambda a: 1 / (1 + np.exp(-a)), lambda a: np.exp(-a) / (1 + np.exp(-a)) ** 2),
    "tanh": (np.tanh, lambda a: 1 / np.cosh(a) ** 2),
    "gelu": (lambda a: 0.5 * a * (1 + special.erf(a / np.sqrt(2))),
             lambda a: 0.5 * (1 + special.erf(a / np.sqrt(2)))
             + a * np.exp(-a * a / 2) / np.sqrt(2 * np.pi)),
}


def softmax_ref(a):
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def dense_case(dtype, use_bias=True, seed=5):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((6, 4)).astype(dtype)
    kernel = rng.standard_normal((4, 3)).astype(dtype)
    bias = rng.standard_normal(3).astype(dtype) if use_bias else None
    upstream = rng.standard_normal((6, 3)).astype(dtype)
    return x, kernel, bias, upstream


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(ACTIVATION_REFS) + ["softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_forward_and_gradients(name, dtype, use_bias):
    layer = Dense(3, input_dim=4, activation=name, use_bias=use_bias)
    layer.build((4,))
    x, kernel, bias, w = dense_case(dtype, use_bias)
    params = (kernel, bias) if use_bias else (kernel,)
    X, K, W = (a.astype(np.float64) for a in (x, kernel, w))
    a = X @ K + (bias.astype(np.float64) if use_bias else 0)
    if name == "softmax":
        out = softmax_ref(a)
        da = out * (W - np.sum(W * out, axis=1, keepdims=True))  # J^T w, row by row
    else:
        f, df = ACTIVATION_REFS[name]
        out, da = f(a), W * df(a)
    got = layer.apply(params, x)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, out, rtol=0, atol=16 * eps(dtype) * max(1, np.max(np.abs(a))))
    # d/d(x, kernel, bias) of sum(w * out), i.e. the vjp with upstream w
    _, grads = value_and_grads(lambda xv, *p: (layer.apply(p, xv) * w).sum(), [x, *params])
    expected = [da @ K.T, X.T @ da] + ([da.sum(axis=0)] if use_bias else [])
    for got_g, want in zip(grads, expected):
        assert got_g.dtype == dtype
        scale = np.max(np.abs(want)) + 1
        np.testing.assert_allclose(got_g, want, rtol=0, atol=32 * eps(dtype) * scale)


@pytest.mark.parametrize("name", list(ACTIVATION_REFS) + ["softmax"])
def test_dense_gradients_match_finite_differences(name):
    layer = Dense(3, input_dim=4, activation=name)
    layer.build((4,))
    x, kernel, bias, w = dense_case(np.float64, seed=6)
    x[0, 0] = 0.0  # relu's kink only where a = 0 exactly, which random data avoid
    f = lambda xv, k, b: (layer.apply((k, b), xv) * w).sum()  # noqa: E731
    _, grads = value_and_grads(f, [x, kernel, bias])
    args = [x, kernel, bias]
    h = 1e-6
    for i, g in enumerate(grads):
        fd = np.zeros_like(g)
        for j in np.ndindex(g.shape):
            plus = [a.copy() for a in args]
            minus = [a.copy() for a in args]
            plus[i][j] += h
            minus[i][j] -= h
            fd[j] = (f(*plus) - f(*minus)) / (2 * h)
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_activation_layer_is_the_function(dtype):
    x = np.random.default_rng(8).standard_normal((5, 4)).astype(dtype)
    for name, (f, df) in ACTIVATION_REFS.items():
        got = Activation(name).apply((), x)
        assert got.dtype == dtype
        np.testing.assert_allclose(got, f(x.astype(np.float64)), rtol=0, atol=8 * eps(dtype) * 4)
        _, (g,) = value_and_grads(lambda v: Activation(name).apply((), v).sum(), [x])
        assert g.dtype == dtype
        np.testing.assert_allclose(g, df(x.astype(np.float64)), rtol=0, atol=8 * eps(dtype))
    got = Activation("softmax").apply((), x)
    np.testing.assert_allclose(got, softmax_ref(x.astype(np.float64)), rtol=0, atol=4 * eps(dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_dropout_forward_and_gradient(dtype):
    rate = 0.3
    layer = Dropout(rate)
    x = (np.random.default_rng(9).random((200, 500)) + 0.5).astype(dtype)  # no zeros in x
    assert layer.apply((), x) is x  # inference: the identity
    assert Dropout(0.0).apply((), x, training=True, rng=np.random.default_rng(0)) is x
    out = layer.apply((), x, training=True, rng=np.random.default_rng(10))
    assert out.dtype == dtype
    kept = out != 0
    scale = dtype(1 / (1 - rate))
    # kept entries are scaled by 1 / (1 - rate) (one rounding), the others are exactly 0
    np.testing.assert_array_equal(out[kept], x[kept] * scale)
    # the dropped fraction: rate, within 5 standard deviations of a binomial count
    n = x.size
    assert abs((n - kept.sum()) - rate * n) <= 5 * np.sqrt(n * rate * (1 - rate))
    # the gradient is the same mask and scale; the masks differ between draws
    w = np.random.default_rng(11).standard_normal(x.shape).astype(dtype)
    _, (g,) = value_and_grads(
        lambda v: (layer.apply((), v, training=True, rng=np.random.default_rng(10)) * w).sum(), [x])
    assert g.dtype == dtype
    np.testing.assert_array_equal(g, np.where(kept, w * scale, 0))
    other = layer.apply((), x, training=True, rng=np.random.default_rng(12))
    assert not np.array_equal(other != 0, kept)
