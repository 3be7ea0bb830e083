"""spherenet.nn.Sequential: training, strategies, dtypes, reproducibility, validation, callbacks."""

import math
import sys
import warnings

import numpy as np
import pytest

from spherenet import Sphere
from spherenet.nn import (Activation, Dense, Dropout, EarlyStopping, Flatten, LambdaCallback,
                          ModelCheckpoint, NonFiniteLossWarning, Sequential, UnitNorm, load_model,
                          unit_norm)
from spherenet.nn._autodiff import value_and_grads
from spherenet.experiments.networks import two_moons as _two_moons
from spherenet.optim import RAdam, RSGD


def two_moons(n=1000, noise=0.1, seed=0):
    """The two interleaved half circles, made with NumPy."""
    return _two_moons(n, noise, seed)


def seed_model(optimizer="rsgd", strategy="riemannian", seed=0, dtype="float32"):
    model = Sequential(seed=seed, dtype=dtype)
    model.add(Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"],
                  strategy=strategy)
    return model


def column_norm_error(kernel):
    return float(np.max(np.abs(np.linalg.norm(kernel.astype(np.float64), axis=0) - 1.0)))


# --- the seed model -------------------------------------------------------------------------


def test_the_issue_snippet_runs_as_written():
    x, y = two_moons(400)
    model = Sequential()
    model.add(Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer="rsgd", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, epochs=50, batch_size=32, validation_split=0.2, verbose=0)
    assert set(history.history) == {"loss", "accuracy", "val_loss", "val_accuracy",
                                    "dense/kernel_violation"}
    assert len(history.history["loss"]) == 50
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert column_norm_error(model.get_weights()[0]) <= 1e-6


def test_seed_model_learns_two_moons_with_unit_columns_in_float32():
    x, y = two_moons(1000)
    model = seed_model(optimizer=RSGD(lr=0.1, momentum=0.9))
    history = model.fit(x, y, epochs=30, batch_size=32, validation_split=0.2, verbose=0, seed=0)
    assert history.history["accuracy"][-1] >= 0.98
    assert history.history["val_accuracy"][-1] >= 0.98
    kernel = model.get_weights()[0]
    assert kernel.dtype == np.float32
    assert column_norm_error(kernel) <= 1e-6
    assert max(history.history["dense/kernel_violation"]) <= 1e-6
    x_test, y_test = two_moons(500, seed=1)
    loss, accuracy = model.evaluate(x_test, y_test)
    assert accuracy >= 0.98
    probs = model.predict(x_test)
    assert probs.shape == (500, 1) and probs.dtype == np.float32
    assert np.all((probs >= 0) & (probs <= 1))


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam", "penalty", "none"])
@pytest.mark.parametrize("optimizer", [RSGD(lr=0.1, momentum=0.9), RAdam(lr=0.01)],
                         ids=["rsgd", "radam"])
def test_every_strategy_trains(strategy, optimizer):
    x, y = two_moons(300)
    model = seed_model(optimizer=optimizer, strategy=strategy)
    history = model.fit(x, y, epochs=8, batch_size=32, verbose=0, seed=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]
    violation = history.history["dense/kernel_violation"][-1]
    if strategy == "riemannian":
        assert violation <= 1e-6
    elif strategy in ("projection", "reparam"):
        assert violation <= 1e-6  # projection: 1/(1 + 1e-7) off 1, plus float32 rounding
    elif strategy == "none":
        assert violation > 1e-3  # the constraint is ignored: the baseline drifts


def test_penalty_violation_shrinks_with_mu():
    # The penalty is stiff (curvature ~ 8 mu): the step must shrink as mu grows.
    x, y = two_moons(300)
    violations = []
    for mu in (0.1, 10.0):
        model = seed_model()
        model.compile(optimizer=RSGD(lr=0.01, momentum=0.9), loss="binary_crossentropy",
                      strategy="penalty", strategy_options={"mu": mu})
        history = model.fit(x, y, epochs=5, verbose=0, seed=0)
        violations.append(history.history["dense/kernel_violation"][-1])
    assert violations[1] < 0.5 * violations[0]


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam", "penalty", "none"])
def test_gradients_keep_float32_under_every_strategy(strategy):
    from spherenet.strategies import get_strategy

    model = seed_model(strategy=strategy)
    model.build()
    x, y = two_moons(20)
    xs, ys = model._prepare_x(x), y.reshape(-1, 1).astype(np.float32)
    chosen = get_strategy(strategy, model.manifold)
    cost = chosen.cost(lambda w: model._batch_loss(w, xs, ys, "fused")[0])
    value, grads = value_and_grads(lambda *z: cost(tuple(z)), chosen.to_variable(model._weights))
    assert np.asarray(value).dtype == np.float32
    assert [g.dtype for g in grads] == [np.float32] * 4


def test_kernel_manifold_sphere_keeps_unit_frobenius_norm():
    x, y = two_moons(200)
    model = Sequential(seed=0)
    model.add(Dense(16, input_dim=2, activation="tanh", kernel_manifold=Sphere(2, 16)))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="binary_crossentropy")
    model.fit(x, y, epochs=3, verbose=0, seed=0)
    kernel = model.get_weights()[0].astype(np.float64)
    assert abs(np.linalg.norm(kernel) - 1.0) <= 1e-6


# --- Keras unit_norm semantics under the projection strategy -----------------------------


def test_projection_strategy_reproduces_keras_sgd_with_unit_norm():
    # Keras: v <- mu v - lr g; w <- w + v; w <- w / (1e-7 + ||w||) (UnitNorm, axis 0).
    x, y = two_moons(64)
    lr, mu = 0.3, 0.9
    model = Sequential(seed=0, dtype="float64")
    model.add(Dense(8, input_dim=2, activation="tanh", kernel_constraint=unit_norm()))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=RSGD(lr=lr, momentum=mu), loss="binary_crossentropy",
                  strategy="projection")
    w = model.get_weights()
    velocity = [np.zeros_like(a) for a in w]
    xs, ys = model._prepare_x(x), y.reshape(-1, 1).astype(np.float64)
    for _ in range(3):
        _, grads = value_and_grads(
            lambda *ws: model._batch_loss(ws, xs, ys, model._output_mode())[0], w)
        velocity = [mu * v - lr * g for v, g in zip(velocity, grads)]
        w = [a + v for a, v in zip(w, velocity)]
        w[0] = UnitNorm()(w[0])
    model.fit(x, y, epochs=3, batch_size=64, shuffle=False, verbose=0)
    for got, expected in zip(model.get_weights(), w):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    # Keras's epsilon: the columns end a little short of 1, ||w|| / (1e-7 + ||w||)
    norms = np.linalg.norm(w[0], axis=0)
    assert np.all(norms < 1.0) and np.all(norms > 1.0 - 1e-6)


# --- dtypes and gradients --------------------------------------------------------------------


def _every_activation_model(dtype, loss):
    model = Sequential(seed=0, dtype=dtype)
    model.add(Flatten(input_shape=(2, 3)))
    model.add(Dense(7, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(7, activation="leaky_relu", kernel_constraint=unit_norm(axis=1)))
    model.add(Dropout(0.2, seed=1))
    model.add(Dense(7, activation="gelu", kernel_manifold=Sphere(7, 7)))
    model.add(Dense(7, activation="tanh"))
    model.add(Dense(7, activation="sigmoid", use_bias=False))
    model.add(Dense(4, activation="linear"))
    last = {"binary_crossentropy": "sigmoid", "mse": "linear"}.get(loss, "softmax")
    model.add(Activation(last))
    model.compile(optimizer="rsgd", loss=loss)
    return model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                  "binary_crossentropy", "mse"])
def test_every_gradient_keeps_its_parameters_dtype(dtype, loss):
    model = _every_activation_model(dtype, loss)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 2, 3)).astype(dtype)
    labels = rng.integers(0, 4, 10)
    y = labels if loss.startswith("sparse") else np.eye(4, dtype=dtype)[labels]
    model.build()
    for mode in {model._output_mode(), "probs"}:
        value, grads = value_and_grads(
            lambda *w: model._batch_loss(w, x, y, mode, True, [np.random.default_rng(0)] * 9)[0],
            model._weights)
        assert np.asarray(value).dtype == np.dtype(dtype)
        for w, g, name in zip(model._weights, grads, model.weight_names):
            assert w.dtype == np.dtype(dtype), name
            assert g.dtype == w.dtype, f"{name}: gradient {g.dtype}, parameter {w.dtype}"
            assert np.all(np.isfinite(g)) and np.any(g != 0), name


def test_model_gradient_matches_finite_differences():
    model = _every_activation_model("float64", "sparse_categorical_crossentropy")
    model.layers[3].rate = 0.0  # no dropout: a deterministic function
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, 2, 3))
    y = rng.integers(0, 4, 6)
    model.build()
    w = list(model._weights)

    def f(*ws):
        return model._batch_loss(ws, x, y, model._output_mode())[0]

    _, grads = value_and_grads(f, w)
    h = 1e-6
    for i in range(len(w)):
        v = rng.standard_normal(w[i].shape)
        plus, minus = list(w), list(w)
        plus[i], minus[i] = w[i] + h * v, w[i] - h * v
        fd = (f(*plus) - f(*minus)) / (2 * h)
        np.testing.assert_allclose(np.sum(grads[i] * v), fd, rtol=1e-6, atol=1e-9)


def test_inputs_are_cast_once_to_the_model_dtype():
    x, y = two_moons(100)
    model = seed_model()
    model.fit(x.astype(np.float64), y, epochs=1, verbose=0, seed=0)
    assert all(w.dtype == np.float32 for w in model.get_weights())
    model64 = seed_model(dtype="float64")
    model64.fit(x.astype(np.float32), y, epochs=1, verbose=0, seed=0)
    assert all(w.dtype == np.float64 for w in model64.get_weights())
    from spherenet.nn._data import as_inputs

    x32 = np.ascontiguousarray(x, dtype=np.float32)
    assert as_inputs(x32, (2,), np.float32) is x32  # no copy when nothing is to be done


# --- reproducibility --------------------------------------------------------------------------


def _dropout_model():
    model = Sequential()
    model.add(Dense(32, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dropout(0.3))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="binary_crossentropy",
                  metrics=["accuracy"])
    return model


def test_same_seed_gives_bit_identical_runs():
    x, y = two_moons(200)
    runs = []
    for seed in (7, 7, 8):
        model = _dropout_model()
        history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, seed=seed,
                            validation_split=0.1)
        runs.append((model.get_weights(), history.history))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    assert not all(np.array_equal(a, b) for a, b in zip(runs[0][0], runs[2][0]))


# --- validation before any weight changes -------------------------------------------------------


def _digits_like_model():
    model = Sequential(seed=0)
    model.add(Dense(8, input_dim=64, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="rsgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


X64 = np.random.default_rng(0).standard_normal((20, 64))
Y10 = np.arange(20) % 10


@pytest.mark.parametrize("x, y, kwargs, message", [
    (X64, Y10[:19], {}, "x has 20 samples but y has 19"),
    (X64[:, :10], Y10, {}, "x has 10 features, but the model expects 64"),
    (np.where(np.arange(64) == 3, np.nan, X64), Y10, {}, r"x has 20 NaN or infinite value\(s\) \(first in sample 0\)"),
    (X64, np.where(np.arange(20) == 5, 10, Y10), {}, r"labels out of range: they must be in \[0, 10\).*got 10 at sample 5"),
    (X64, np.where(np.arange(20) == 5, -1, Y10), {}, "labels out of range"),
    (X64, Y10 + 0.5, {}, "integer labels"),
    (X64, np.where(np.arange(20) == 2, np.inf, Y10), {}, "y has 1 NaN or infinite value"),
    (X64, np.eye(10)[Y10], {}, "one integer label per sample"),
    (X64[0], Y10, {}, r"x must have shape \(samples, features...\)"),
    (np.array([["a"] * 64] * 20), Y10, {}, "x must be a numeric array"),
    (X64, Y10, {"batch_size": 0}, "batch_size must be an integer >= 1"),
    (X64, Y10, {"epochs": -1}, "epochs must be an integer >= 0"),
    (X64, Y10, {"validation_split": 1.5}, r"validation_split must be in \[0, 1\)"),
    (X64, Y10, {"validation_data": (X64[:, :3], Y10)}, "validation x has 3 features"),
    (X64, Y10, {"validation_data": (X64, Y10[:3])}, "validation x has 20 samples but validation y has 3"),
    (X64, Y10, {"callbacks": [EarlyStopping()]}, "EarlyStopping monitors 'val_loss'.*validation_split"),
    (X64, Y10, {"verbose": 3}, "verbose must be 0, 1 or 2"),
])
def test_bad_input_raises_before_any_weight_changes(x, y, kwargs, message):
    kwargs = dict(kwargs)  # a copy: the parametrized dict is shared by every run of the test
    model = _digits_like_model()
    before = model.get_weights()
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, epochs=kwargs.pop("epochs", 2), verbose=kwargs.pop("verbose", 0), **kwargs)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_target_checks_for_binary_and_categorical_losses():
    model = seed_model()
    x, _ = two_moons(10)
    with pytest.raises(ValueError, match=r"targets out of range \[0, 1\]"):
        model.fit(x, np.full(10, 2.0), verbose=0)
    with pytest.raises(ValueError, match=r"must have shape \(10, 1\)"):
        model.fit(x, np.zeros((10, 3)), verbose=0)
    cat = Sequential([Dense(3, input_dim=2, activation="softmax")])
    cat.compile(loss="categorical_crossentropy")
    with pytest.raises(ValueError, match=r"must have shape \(10, 3\)"):
        cat.fit(x, np.arange(10) % 3, verbose=0)


@pytest.mark.parametrize("kwargs, message", [
    ({"optimizer": "adamw", "loss": "mse"}, "unknown optimizer 'adamw'"),
    ({"loss": "huber"}, "unknown loss 'huber'"),
    ({"loss": "mse", "metrics": ["f1"]}, "unknown metric 'f1'"),
    ({"loss": "mse", "strategy": "lagrange"}, "unknown strategy 'lagrange'"),
    ({}, "compile needs a loss"),
])
def test_unknown_names_in_compile(kwargs, message):
    with pytest.raises(ValueError, match=message):
        seed_model().compile(**kwargs)


def test_fit_before_compile_and_unknown_input_shape():
    model = Sequential([Dense(3)])
    with pytest.raises(RuntimeError, match="compile"):
        model.fit(X64, Y10)
    with pytest.raises(ValueError, match="input shape is unknown"):
        model.summary()
    model.compile(loss="sparse_categorical_crossentropy")
    model.fit(X64, Y10 % 3, epochs=1, verbose=0, seed=0)  # the shape comes from x
    assert model.input_shape == (64,)


# --- NaN in training -----------------------------------------------------------------------------


def test_nan_stops_fit_and_keeps_the_last_finite_weights():
    x, y = two_moons(200)
    model = Sequential(seed=0)
    model.add(Dense(16, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(1))
    model.compile(optimizer=RSGD(lr=1e18), loss="mse", strategy="none")
    seen = []
    with pytest.warns(NonFiniteLossWarning, match="training stopped at epoch 1, batch"):
        history = model.fit(x, y * 1e3, epochs=5, batch_size=20, verbose=0, seed=0,
                            callbacks=[lambda epoch, logs: seen.append(epoch)])
    assert "last step with a finite loss" in history.stop_reason
    assert seen == []  # stopped inside the first epoch
    weights = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)
    assert math.isfinite(model.evaluate(x, y * 1e3))


# --- callbacks and history -------------------------------------------------------------------------


def test_early_stopping_and_restore_best_weights():
    x, y = two_moons(200)
    model = seed_model(optimizer=RSGD(lr=0.1, momentum=0.9))
    stopper = EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    history = model.fit(x, y, epochs=20, verbose=0, seed=0, callbacks=[stopper])
    assert len(history.epoch) == 2 and stopper.stopped_epoch == 1
    assert "EarlyStopping" in history.stop_reason

    model = seed_model(optimizer=RSGD(lr=0.1, momentum=0.9))
    best = {}

    def remember(epoch, logs):
        best.setdefault("loss", np.inf)
        if logs["val_accuracy"] > best.get("acc", -1):
            best["acc"], best["weights"] = logs["val_accuracy"], model.get_weights()

    stopper = EarlyStopping(monitor="val_accuracy", patience=2, restore_best_weights=True)
    model.fit(x, y, epochs=12, verbose=0, seed=0, validation_split=0.3,
              callbacks=[remember, stopper])
    assert stopper.mode == "max"
    for a, b in zip(model.get_weights(), best["weights"]):
        np.testing.assert_array_equal(a, b)


def test_model_checkpoint_saves_loadable_models(tmp_path):
    x, y = two_moons(200)
    model = seed_model(optimizer=RSGD(lr=0.1, momentum=0.9))
    every = ModelCheckpoint(tmp_path / "m-{epoch:02d}-{loss:.3f}.npz", monitor="loss")
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    model.fit(x, y, epochs=3, verbose=0, seed=0, validation_split=0.2, callbacks=[every, best])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 4 and names[0] == "best.npz" and names[1].startswith("m-01-")
    loaded = load_model(tmp_path / names[-1])
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_callable_hook_and_lambda_callback():
    x, y = two_moons(100)
    model = seed_model()
    calls = []

    def hook(epoch, logs):
        calls.append((epoch, sorted(logs)))
        return epoch == 1

    ends = []
    history = model.fit(x, y, epochs=5, verbose=0, seed=0,
                        callbacks=[hook, LambdaCallback(on_train_end=lambda logs: ends.append(1))])
    assert [c[0] for c in calls] == [0, 1] and len(history.epoch) == 2
    assert calls[0][1] == ["accuracy", "dense/kernel_violation", "loss"]
    assert ends == [1]
    with pytest.raises(ValueError, match="a callback must be"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[42])


def test_progress_lines(capsys, monkeypatch):
    x, y = two_moons(100)
    model = seed_model()
    model.fit(x, y, epochs=3, verbose=0, seed=0)
    assert capsys.readouterr() == ("", "")
    model.fit(x, y, epochs=3, verbose=2, seed=0, validation_split=0.2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("Epoch 1/3")
    assert all(k in lines[-1] for k in ("loss:", "accuracy:", "val_loss:", "val_accuracy:",
                                        "violation:"))
    monkeypatch.setitem(sys.modules, "tqdm", None)  # tqdm is optional: plain lines without it
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    model.fit(x, y, epochs=2, verbose=1, seed=0)
    out = capsys.readouterr().out
    assert out.count("Epoch") == 2 and "accuracy:" in out


def test_progress_bar_with_tqdm(capsys):
    pytest.importorskip("tqdm")
    x, y = two_moons(100)
    seed_model().fit(x, y, epochs=2, verbose=1, seed=0)
    err = capsys.readouterr().err
    assert "Epoch 1/2" in err and "Epoch 2/2" in err and "accuracy:" in err


# --- weights, summary, prediction ---------------------------------------------------------------


def test_get_set_weights_and_errors():
    model = seed_model()
    weights = model.get_weights()
    assert [w.shape for w in weights] == [(2, 500), (500,), (500, 1), (1,)]
    assert column_norm_error(weights[0]) <= 1e-6
    weights[1] += 1.0
    model.set_weights(weights)
    np.testing.assert_array_equal(model.get_weights()[1], weights[1])
    with pytest.raises(ValueError, match="has 4 weight arrays, got 3"):
        model.set_weights(weights[:3])
    bad = [w.copy() for w in weights]
    bad[0] *= 2.0
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        model.set_weights(bad)
    bad[0] = np.zeros((3, 500))
    with pytest.raises(ValueError, match=r"dense/kernel has shape \(2, 500\)"):
        model.set_weights(bad)


def test_summary_table(capsys):
    seed_model().summary()
    out = capsys.readouterr().out
    assert 'Model: "sequential"' in out
    assert "dense (Dense)" in out and "dense_1 (Dense)" in out
    assert "(None, 500)" in out and "1,500" in out and "501" in out
    assert "Oblique(2x500, columns)" in out and "Euclidean" in out
    assert "Total params: 2,001" in out and "Params on spheres: 1,000" in out
    assert "strategy: riemannian" in out


def test_evaluate_and_predict_shapes():
    x, y = two_moons(50)
    model = seed_model()
    result = model.evaluate(x, y, return_dict=True)
    assert set(result) == {"loss", "accuracy"}
    assert model.predict(x, batch_size=7).shape == (50, 1)
    np.testing.assert_allclose(model.predict(x, batch_size=7), model.predict(x), rtol=1e-6)
    with pytest.raises(ValueError, match="x has 3 features, but the model expects 2"):
        model.predict(np.zeros((4, 3)))


def test_duplicate_layer_names_and_auto_names():
    model = Sequential([Dense(2, input_dim=3), Dense(2), Dropout(0.1), Dense(1)])
    assert [layer.name for layer in model.layers] == ["dense", "dense_1", "dropout", "dense_2"]
    with pytest.raises(ValueError, match="already in the model"):
        model.add(Dense(1, name="dense"))


def test_training_continues_across_fits():
    x, y = two_moons(200)
    model = seed_model(optimizer=RSGD(lr=0.1, momentum=0.9))
    first = model.fit(x, y, epochs=2, verbose=0, seed=0).history["loss"]
    second = model.fit(x, y, epochs=2, verbose=0, seed=1).history["loss"]
    assert second[-1] < first[0]


def test_no_warnings_in_a_normal_fit():
    x, y = two_moons(100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        seed_model().fit(x, y, epochs=2, verbose=0, seed=0, validation_split=0.2)
