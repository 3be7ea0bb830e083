"""spherenet.nn: a CosFace margin checked at compile, AngularTelemetry's layer names checked,
DecoupledWeightDecay saved and loaded with the model."""

import json
import zipfile

import numpy as np
import pytest

from spherenet.nn import (AngularTelemetry, BatchNormalization, CosineDense, Dense, Sequential,
                          load_model)
from spherenet.nn.losses import (BinaryCrossentropy, CategoricalCrossentropy,
                                 SparseCategoricalCrossentropy)
from spherenet.optim import DecoupledWeightDecay, RAdam, RSGD

EPS64 = np.finfo(np.float64).eps


# --- CosineDense with a margin: refused at compile unless the loss sees its logits ---------------

MARGIN_NEEDS = "has a margin \\(0.3\\), which lowers the true class's logit: it needs a categorical"


@pytest.mark.parametrize("activation,loss,shown", [
    (None, "sparse_categorical_crossentropy", "sparse_categorical_crossentropy (from_logits=False) "
                                              "with activation 'linear'"),
    (None, "categorical_crossentropy", "(from_logits=False) with activation 'linear'"),
    ("softmax", SparseCategoricalCrossentropy(from_logits=True),
     "(from_logits=True) with activation 'softmax'"),
    (None, "mse", "mean_squared_error (from_logits=False)"),
    (None, BinaryCrossentropy(from_logits=True), "binary_crossentropy (from_logits=True)"),
    ("softmax", "binary_crossentropy", "binary_crossentropy (from_logits=False) with activation "
                                       "'softmax'"),
])
def test_a_margin_with_a_loss_that_does_not_see_logits_is_refused_at_compile(activation, loss,
                                                                              shown):
    model = Sequential([Dense(4, input_dim=3),
                        CosineDense(2, margin=0.3, activation=activation, name="cos")], seed=0)
    fine = SparseCategoricalCrossentropy(from_logits=activation is None)
    model.compile(optimizer=RSGD(lr=0.1), loss=fine)
    before = model.loss
    with pytest.raises(ValueError, match=f"layer 'cos' {MARGIN_NEEDS}") as info:
        model.compile(optimizer=RSGD(lr=0.5), loss=loss)
    assert shown in str(info.value)
    assert model.loss is before  # the earlier compile stands: nothing half-updated


@pytest.mark.parametrize("activation,loss", [
    ("softmax", "sparse_categorical_crossentropy"),
    ("softmax", "categorical_crossentropy"),
    (None, SparseCategoricalCrossentropy(from_logits=True)),
    (None, CategoricalCrossentropy(from_logits=True)),
])
def test_a_margin_with_a_cross_entropy_on_its_logits_compiles_and_trains(activation, loss):
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((6, 3)), np.array([0, 1, 1, 0, 1, 0])
    y = labels if loss in ("sparse_categorical_crossentropy",) or isinstance(
        loss, SparseCategoricalCrossentropy) else np.eye(2)[labels]
    model = Sequential([CosineDense(2, input_dim=3, margin=0.3, activation=activation)],
                       dtype="float64", seed=0)
    model.compile(optimizer=RSGD(lr=0.1), loss=loss)
    history = model.fit(x, y, epochs=1, batch_size=6, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_without_a_margin_any_loss_is_accepted():
    model = Sequential([CosineDense(1, input_dim=3)], seed=0)
    model.compile(loss="mse")
    assert model.loss.name == "mean_squared_error"


def test_a_margin_layer_added_after_compile_is_still_refused_before_any_step():
    x, y = np.ones((2, 3)), np.array([0, 1])
    model = Sequential(seed=0)
    model.compile(loss="sparse_categorical_crossentropy")  # no layer yet: nothing to check
    model.add(CosineDense(2, input_dim=3, margin=0.3))
    before = model.get_weights()
    with pytest.raises(ValueError, match="has a margin, which acts on logits"):
        model.fit(x, y, verbose=0)
    np.testing.assert_array_equal(model.get_weights()[0], before[0])


# --- AngularTelemetry: the layers to follow must exist and have a kernel --------------------------


def _bn_model():
    model = Sequential([Dense(4, input_dim=3), BatchNormalization(), Dense(1)], seed=0)
    model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    return model


def test_telemetry_refuses_an_empty_list_of_layers():
    with pytest.raises(ValueError, match=r"layers must name at least one layer with a kernel, "
                                         r"got \[\]; leave it out \(None\)"):
        AngularTelemetry(layers=[])
    with pytest.raises(TypeError, match="layers must be a list of layer names, got 3"):
        AngularTelemetry(layers=3)


@pytest.mark.parametrize("layers,message", [
    (["dense", "nope"], r"no layer named \['nope'\] in the model; its layers are \['dense', "
                        r"'batch_normalization', 'dense_1'\], those with a kernel \['dense', "
                        r"'dense_1'\]"),
    (["batch_normalization"], r"the layers \['batch_normalization'\] have no kernel to follow; "
                              r"the layers with one are \['dense', 'dense_1'\]"),
])
def test_telemetry_refuses_layers_it_cannot_follow_before_the_first_step(layers, message):
    model = _bn_model()
    x = np.random.default_rng(0).standard_normal((16, 3))
    before = model.get_weights()
    telemetry = AngularTelemetry(layers=layers)
    with pytest.raises(ValueError, match=message):
        model.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0, callbacks=[telemetry])
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    assert telemetry.angles == {}


def test_telemetry_follows_exactly_the_named_kernel():
    model = _bn_model()
    x = np.random.default_rng(0).standard_normal((16, 3))
    telemetry = AngularTelemetry(layers=["dense_1"])
    model.fit(x, x[:, :1], epochs=1, batch_size=8, verbose=0, callbacks=[telemetry], seed=0)
    assert list(telemetry.angles) == ["dense_1/kernel"]
    assert telemetry.angles["dense_1/kernel"].shape == (2, 1)


# --- DecoupledWeightDecay is saved with the model ------------------------------------------------


def _architecture(path):
    with zipfile.ZipFile(path) as archive, archive.open("architecture.npy") as handle:
        return json.loads(str(np.lib.format.read_array(handle, allow_pickle=False)))


def test_decoupled_weight_decay_round_trips_and_training_resumes_as_numpy_says(tmp_path):
    # Keras 3 SGD with weight_decay, in plain NumPy: w <- (1 - lr wd) w; m <- mu m + g(w_old);
    # w <- w - lr m; two full-batch steps with a save and a load between them.
    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    lr, mu, wd = 0.1, 0.9, 0.3
    model = Sequential([Dense(1, input_dim=3)], dtype="float64", seed=0)
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=lr, momentum=mu), wd), loss="mse")
    w, b = model.get_weights()
    buf_w, buf_b = np.zeros_like(w), np.zeros_like(b)
    for _ in range(2):
        r = x @ w + b - y
        gw, gb = 2 / r.size * x.T @ r, 2 / r.size * r.sum(0)
        buf_w, buf_b = mu * buf_w + gw, mu * buf_b + gb
        w, b = (1 - lr * wd) * w - lr * buf_w, (1 - lr * wd) * b - lr * buf_b
    model.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path)
    assert _architecture(path)["compile"]["optimizer"] == {
        "class_name": "DecoupledWeightDecay", "weight_decay": wd,
        "rule": {"class_name": "RSGD", "lr": lr, "momentum": mu, "nesterov": False,
                 "weight_decay": 0.0}}
    loaded = load_model(path)
    rule = loaded._compiled["rule"]
    assert type(rule) is DecoupledWeightDecay and rule.weight_decay == wd
    assert (type(rule.rule), rule.rule.lr, rule.rule.momentum) == (RSGD, lr, mu)
    loaded.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
    # the second step needs the first one's momentum: a restarted optimizer misses it by far
    np.testing.assert_allclose(loaded.get_weights()[0], w, rtol=0, atol=20 * EPS64)
    np.testing.assert_allclose(loaded.get_weights()[1], b, rtol=0, atol=20 * EPS64)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_decoupled_radam_training_continues_bit_for_bit_after_a_reload(tmp_path, dtype):
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((24, 3)).astype(dtype), rng.standard_normal((24, 2)).astype(dtype)
    model = Sequential([Dense(4, input_dim=3, activation="tanh", kernel_constraint="unit_norm"),
                        Dense(2)], dtype=dtype, seed=0)
    model.compile(optimizer=DecoupledWeightDecay(RAdam(lr=0.01, amsgrad=True), 0.05),
                  loss="mse", strategy="projection")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert repr(loaded._compiled["rule"]) == repr(model._compiled["rule"])
    assert loaded._compiled["strategy"] == "projection"
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    loaded.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)


def test_decoupled_weight_decay_with_a_schedule_resumes_once_compiled_again(tmp_path):
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))

    def schedule(step):
        return 0.1 / (1.0 + step)

    model = Sequential([Dense(1, input_dim=3)], dtype="float64", seed=0)
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=schedule, momentum=0.9), 0.2),
                  loss="mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert loaded._compiled is None  # a Python schedule cannot be written down
    loaded.compile(optimizer=DecoupledWeightDecay(RSGD(lr=schedule, momentum=0.9), 0.2),
                   loss="mse")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    loaded.fit(x, y, epochs=1, batch_size=4, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_an_unknown_saved_step_rule_is_a_clear_error(tmp_path):
    model = Sequential([Dense(1, input_dim=3)], seed=0)
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=0.1), 0.2), loss="mse")
    path = tmp_path / "model.npz"
    model.save(path)
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads(str(arrays["architecture"]))
    config["compile"]["optimizer"]["rule"]["class_name"] = "Lion"
    arrays["architecture"] = np.array(json.dumps(config))
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"model.npz: cannot rebuild the saved step rule: "
                                         r"unknown step rule 'Lion'"):
        load_model(path)
