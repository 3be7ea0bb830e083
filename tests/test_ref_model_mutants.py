"""Sequential's arguments, defaults, bookkeeping and layer calls, on hand-built cases.

Each test pins one behaviour of ``spherenet/nn/model.py`` against values
worked out by hand or plain NumPy: a one-weight linear model with a
learning rate of 0 (the weights stay, so every batch loss is a squared
error known in advance) for the running loss a callback sees and the step
count of an overflow message; ``model(x)`` and ``layer(x)`` on a model's
layer against ``x @ kernel + bias``; dropout seeds and BatchNormalization's
moving statistics; the messages of ``compile``, ``fit`` and ``predict``
word for word; the validation loss against ``evaluate``.
"""

import warnings

import numpy as np
import pytest

from spherenet.nn import (BatchNormalization, CosineDense, Dense, Dropout, NonFiniteLossWarning, Sequential,
                          unit_norm)
from spherenet.nn.callbacks import Callback
from spherenet.optim import RSGD, StepRule


def line_model(weight, dtype="float64"):
    """y = weight * x, no bias."""
    model = Sequential([Dense(1, input_dim=1, use_bias=False)], dtype=dtype)
    model.build()
    model.set_weights([np.array([[weight]])])
    return model


class BatchLosses(Callback):
    def __init__(self):
        super().__init__()
        self.seen = []

    def on_train_batch_end(self, batch, logs=None):
        self.seen.append((batch, logs["loss"]))


def test_the_loss_after_each_batch_is_the_running_mean_over_the_samples_seen():
    # w = 2 stays (lr 0); x = 1: the squared errors are (2 - y)^2 = 1, 4, 9, 16, 0 for
    # y = 1, 0, -1, -2, 2; batches of 2, 2, 1 in order.
    model = line_model(2.0)
    model.compile(optimizer=RSGD(lr=lambda step: 0.0), loss="mse")
    record = BatchLosses()
    x, y = np.ones((5, 1)), np.array([1.0, 0.0, -1.0, -2.0, 2.0])
    history = model.fit(x, y, batch_size=2, shuffle=False, verbose=0, callbacks=[record])
    assert [b for b, _ in record.seen] == [0, 1, 2]
    np.testing.assert_allclose([v for _, v in record.seen], [5 / 2, 30 / 4, 30 / 5], rtol=4e-16)
    assert history.history["loss"] == [pytest.approx(6.0, rel=4e-16)]


def test_fit_runs_one_epoch_by_default():
    model = line_model(2.0)
    model.compile(optimizer=RSGD(lr=lambda step: 0.0), loss="mse")
    history = model.fit(np.ones((3, 1)), np.zeros(3), verbose=0)
    assert len(history.history["loss"]) == 1 and model.last_epoch == 0


def test_fit_refuses_callbacks_that_are_not_a_list():
    model = line_model(2.0)
    model.compile(loss="mse")
    with pytest.raises(TypeError, match="callbacks must be a list of Callback objects or callables, "
                                        "got BatchLosses"):
        model.fit(np.ones((3, 1)), np.zeros(3), verbose=0, callbacks=BatchLosses())


def test_the_overflow_message_counts_every_step_of_the_fit():
    # float32, lr 0, batches of 2: the fifth target (third batch) overflows the loss after
    # two steps; the second fit of the same model counts its own steps again from 0.
    model = line_model(1.0, dtype="float32")
    model.compile(optimizer=RSGD(lr=lambda step: 0.0), loss="mse")
    x, y = np.ones((5, 1)), np.array([0.0, 0.0, 0.0, 0.0, 1e30])
    for _ in range(2):
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("always")
            model.fit(x, y, batch_size=2, shuffle=False, verbose=0)
        assert [str(w.message) for w in record if w.category is NonFiniteLossWarning] == [
            "training stopped at epoch 1, batch 3: the loss became inf after 2 step(s) of this "
            "fit; the model keeps the weights of the last step with a finite loss (try a "
            "smaller learning rate)"]


def test_predict_batch_size():
    model = line_model(3.0)
    x = np.arange(5.0).reshape(5, 1)
    np.testing.assert_array_equal(model.predict(x, batch_size=1), 3.0 * x)  # one row per batch
    np.testing.assert_array_equal(model.predict(x, batch_size=2), 3.0 * x)
    for bad in (0, -1, 2.0, "8", True):
        with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got "):
            model.predict(x, batch_size=bad)


def test_summary_line_length_widens_the_rules():
    model = line_model(1.0)
    lines = []
    model.summary(print_fn=lines.append, line_length=120)
    rules = [line for line in lines if set(line) in ({"_"}, {"="})]
    assert rules and all(len(line) == 120 for line in rules)
    narrow = []
    model.summary(print_fn=narrow.append)  # the table's own width, well below 120
    assert all(len(line) < 120 for line in narrow)


def test_config_before_the_input_shape_is_known():
    model = Sequential([Dense(2)], name="m")
    config = model.get_config()
    assert config["input_shape"] is None and config["name"] == "m"
    model.build((3,))
    assert model.get_config()["input_shape"] == [3]


class PlainDescent(StepRule):
    """x - 0.1 * egrad on Euclidean weights, with a state that counts no steps."""

    def init(self, geometry, x):
        self.started = (geometry, [np.array(xi) for xi in x])
        return {"calls": 0}

    def step(self, geometry, x, egrad, state):
        return tuple(xi - 0.1 * gi for xi, gi in zip(x, egrad)), {"calls": state["calls"] + 1}


def test_a_step_rule_whose_state_has_no_step_count_trains():
    # The learning rate shown to telemetry is read from state["step"] only when there is one.
    # w = 2, x = 1, y = 0: loss (w - 0)^2, gradient 2 w = 4, then 3.2.
    model = line_model(2.0)
    rule = PlainDescent()
    model.compile(optimizer=rule, loss="mse")
    model.fit(np.ones((1, 1)), np.zeros(1), batch_size=1, epochs=2, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], [[(2.0 - 0.4) - 0.32]], rtol=4e-16)
    # the rule started from the weights, on the model's manifold (riemannian: the weights')
    geometry, x = rule.started
    assert geometry == model.manifold
    np.testing.assert_array_equal(x[0], [[2.0]])


def test_fit_argument_messages_name_the_argument():
    model = line_model(2.0)
    model.compile(loss="mse")
    x, y = np.ones((3, 1)), np.zeros(3)
    with pytest.raises(TypeError, match=r"^shuffle must be True or False, got 'yes'$"):
        model.fit(x, y, verbose=0, shuffle="yes")
    with pytest.raises(ValueError,
                       match=r"^seed must be None, an int >= 0 or a numpy.random.Generator, got -1$"):
        model.fit(x, y, verbose=0, seed=-1)
    with pytest.raises(TypeError, match=r"^seed must be None, an int or a numpy.random.Generator, got str$"):
        model.fit(x, y, verbose=0, seed="1")
    np.testing.assert_array_equal(model.get_weights()[0], [[2.0]])  # nothing trained


def test_validation_loss_is_evaluate_on_the_validation_data_in_the_model_dtype():
    # The validation targets and weights are cast to the model's dtype like evaluate's:
    # the reported val_loss is evaluate's value bit for bit (float32 sums differ from float64
    # ones in the last bits).
    rng = np.random.default_rng(3)
    model = Sequential([Dense(3, input_dim=4, activation="tanh"), Dense(1)], seed=0)
    model.compile(optimizer=RSGD(lr=lambda step: 0.0), loss="mse")
    x, y = rng.standard_normal((8, 4)), rng.standard_normal(8)
    xv, yv, wv = rng.standard_normal((6, 4)), rng.standard_normal(6), rng.uniform(0.5, 2.0, 6)
    history = model.fit(x, y, verbose=0, validation_data=(xv, yv))
    assert history.history["val_loss"] == [model.evaluate(xv, yv)]
    history = model.fit(x, y, verbose=0, validation_data=(xv, yv, wv))
    assert history.history["val_loss"] == [model.evaluate(xv, yv, sample_weight=wv)]
    with pytest.raises(ValueError, match=r"^validation_data must be a pair \(x_val, y_val\) or a triple "
                                         r"\(x_val, y_val, sample_weight_val\)$"):
        model.fit(x, y, verbose=0, validation_data=(xv,))
    # 1e39 is finite in float64 but not in the model's float32: refused before training
    with pytest.raises(ValueError, match=r"^validation sample_weight has 1 value\(s\) finite in float64 but "
                                         r"beyond the range of the model's dtype float32"):
        model.fit(x, y, verbose=0, validation_data=(xv, yv, np.r_[wv[:-1], 1e39]))


def dropout_model(dropout_seed):
    model = Sequential([Dense(64, input_dim=2, activation="tanh"), Dropout(0.5, seed=dropout_seed),
                        Dense(1)], dtype="float64", seed=0)
    model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    model.build()
    return model


def one_step(model, seed):
    model.fit(np.ones((1, 2)), np.ones(1), batch_size=1, shuffle=False, verbose=0, seed=seed)
    return model.get_weights()[0]


def test_a_seeded_dropout_layer_draws_its_masks_from_its_own_seed():
    # Same weights, same data (no shuffling): with Dropout(seed=7) the fit's seed changes nothing.
    np.testing.assert_array_equal(one_step(dropout_model(7), 1), one_step(dropout_model(7), 2))


def test_unseeded_dropout_layers_get_a_different_mask_stream_for_every_fit_seed():
    # The mask stream of an unseeded Dropout is seeded by a 63-bit draw from the fit's seed:
    # 40 fit seeds give 40 different masks over 64 units (each changes which kernel columns
    # the step moves), and the same fit seed gives the same step.
    steps = {one_step(dropout_model(None), seed).tobytes() for seed in range(40)}
    assert len(steps) == 40
    np.testing.assert_array_equal(one_step(dropout_model(None), 3), one_step(dropout_model(None), 3))


def test_a_run_that_turns_into_nan_warns_once():
    # float32, lr 1e38: the first step overflows the weight to -inf; the second sample is 0,
    # so its output is -inf * 0 = NaN (an invalid operation, silenced in fit): the loss is
    # NaN, and the NonFiniteLossWarning is the only warning.
    model = line_model(1.0, dtype="float32")
    model.compile(optimizer=RSGD(lr=1e38), loss="mse")
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(np.array([[10.0], [0.0]]), np.zeros(2), batch_size=1, shuffle=False, verbose=0)
    assert [(w.category, str(w.message)) for w in record] == [(
        NonFiniteLossWarning,
        "training stopped at epoch 1, batch 2: the loss became nan after 1 step(s) of this fit; "
        "the model keeps the weights of the last step with a finite loss (try a smaller "
        "learning rate)")]
    np.testing.assert_array_equal(model.get_weights()[0], [[1.0]])


# --- model(x) and layer(x) on a model's layer ------------------------------------------


def dense_by_hand(model, x, layer=0):
    """x @ kernel + bias of a Dense layer of ``model``, in float32, in plain NumPy."""
    kernel, bias = model.get_weights()[2 * layer: 2 * layer + 2]
    return x.astype(np.float32) @ kernel + bias


def test_model_call_builds_from_the_data_and_casts_it_to_the_model_dtype():
    x = np.random.default_rng(0).standard_normal((5, 3))  # float64 data, float32 model
    model = Sequential([Dense(2)], seed=0)
    out = model(x)
    assert model.input_shape == (3,) and out.dtype == np.float32 and out.shape == (5, 2)
    np.testing.assert_allclose(out, dense_by_hand(model, x), rtol=0, atol=4 * np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match=r"^x has 4 features, but the model expects 3 features$"):
        model(np.ones((2, 4)))
    with pytest.raises(TypeError, match=r"^training must be True or False, got 'yes'$"):
        model(x, training="yes")


def test_a_first_layer_called_before_the_input_shape_is_known_builds_the_model():
    x = np.random.default_rng(1).standard_normal((4, 3))
    model = Sequential([Dense(2), Dense(1)], seed=0)
    with pytest.raises(ValueError, match=r"^the model's input shape is unknown, so calling layer "
                                         r"'dense_1' cannot be done yet"):
        model.layers[1](np.ones((4, 2)))
    assert model.input_shape is None
    out = model.layers[0](x)
    assert model.input_shape == (3,) and out.dtype == np.float32
    np.testing.assert_allclose(out, dense_by_hand(model, x), rtol=0, atol=4 * np.finfo(np.float32).eps)
    h = model.layers[0](x)
    np.testing.assert_allclose(model.layers[1](h), dense_by_hand(model, h, 1), rtol=0,
                               atol=4 * np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match=r"^the input of layer 'dense_1' has 3 features, but the "
                                         r"model expects 2 features$"):
        model.layers[1](x)


def dropout_pair(layer_seed):
    model = Sequential([Dense(16, input_dim=3), Dropout(0.5, seed=layer_seed)], seed=0)
    model.build()
    return model, model.layers[1]


def test_a_dropout_layer_called_in_training_draws_from_its_seed_or_the_call_seed():
    h = np.ones((4, 16), dtype=np.float32)
    model, drop = dropout_pair(3)
    first = drop(h, training=True)
    assert np.any(first == 0) and np.any(first != 0)  # a mask was applied
    np.testing.assert_array_equal(drop(h, training=True), first)  # the layer's seed, each time
    np.testing.assert_array_equal(drop(h), h)  # inference: the identity
    by_call = drop(h, training=True, seed=5)
    np.testing.assert_array_equal(drop(h, training=True, seed=5), by_call)  # the call's seed wins
    assert not np.array_equal(by_call, first)
    assert not np.array_equal(drop(h, training=True, seed=6), by_call)
    with pytest.raises(TypeError, match=r"^seed must be None, an int or a numpy.random.Generator, got str$"):
        drop(h, training=True, seed="5")
    # the whole model in training: each Dropout draws from its own seed
    x = np.ones((4, 3))
    np.testing.assert_array_equal(model(x, training=True), model(x, training=True))
    assert not np.array_equal(model(x, training=True), model(x))


def test_a_batchnorm_layer_of_a_model_called_in_training_updates_the_model_states():
    # Keras: moving_mean <- 0.99 m + 0.01 mean(h), moving_variance <- 0.99 v + 0.01 var(h) (biased)
    h = np.random.default_rng(2).standard_normal((8, 3)).astype(np.float32)
    model = Sequential([Dense(3, input_dim=2), BatchNormalization()], dtype="float32", seed=0)
    model.build()
    bn = model.layers[1]
    bn(h)  # inference: no update
    np.testing.assert_array_equal(model.get_weights()[4:], [np.zeros(3), np.ones(3)])
    bn(h, training=True)
    mean, var = model.get_weights()[4:]
    h64 = h.astype(np.float64)
    np.testing.assert_allclose(mean, 0.01 * h64.mean(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(var, 0.99 + 0.01 * h64.var(0), rtol=1e-6)


def test_accuracy_of_a_regression_output_is_chosen_by_its_units():
    # mse with "accuracy": one unit, the output thresholded at 0.5 against the target ...
    model = line_model(1.0)
    model.compile(loss="mse", metrics=["accuracy"])
    loss, acc = model.evaluate(np.array([[0.9], [0.2]]), np.array([1.0, 1.0]))
    assert acc == 0.5
    # ... several units, the argmax of the output against the target's (outputs x and -x)
    model = Sequential([Dense(2, input_dim=1, use_bias=False)], dtype="float64")
    model.build()
    model.set_weights([np.array([[1.0, -1.0]])])
    model.compile(loss="mse", metrics=["accuracy"])
    loss, acc = model.evaluate(np.array([[1.0], [-1.0]]), np.array([[1.0, 1.0], [1.0, 0.0]]))
    assert acc == 0.5  # argmax: 0 = 0, then 1 != 0 (thresholds elementwise would give 1/4)


# --- messages and warnings -------------------------------------------------------------


def test_training_or_evaluating_before_compile_is_refused():
    model = line_model(1.0)
    for call in (lambda: model.fit(np.ones((1, 1)), np.ones(1), verbose=0),
                 lambda: model.evaluate(np.ones((1, 1)), np.ones(1))):
        with pytest.raises(RuntimeError, match=r"^compile the model before training or evaluating it$"):
            call()


def test_a_margin_on_probabilities_is_refused_word_for_word():
    x, y = np.ones((4, 3)), np.array([0, 1, 0, 1])
    # compile refuses this loss for a margin layer it sees; a margin layer added
    # after compile is refused by fit, with its own message
    model = Sequential([Dense(3, input_dim=3)], seed=0)
    model.compile(loss="sparse_categorical_crossentropy")
    model.add(CosineDense(2, margin=0.3, name="cos"))
    with pytest.raises(ValueError) as info:
        model.fit(x, y, verbose=0)
    assert str(info.value) == (
        "layer 'cos' has a margin, which acts on logits: give it activation='softmax' with a "
        "cross-entropy loss, or use a loss with from_logits=True")


@pytest.mark.parametrize("units, loss, warns", [
    (1, "sparse_categorical_crossentropy", False),  # one sigmoid unit: not a distribution to sum
    (2, "categorical_crossentropy", True),
    (2, "sparse_categorical_crossentropy", True),
    (2, "binary_crossentropy", False),
])
def test_a_sigmoid_output_with_a_categorical_loss_warns_from_two_units(units, loss, warns):
    model = Sequential([Dense(units, input_dim=3, activation="sigmoid")])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.compile(loss=loss)
    messages = [str(w.message) for w in record if w.category is UserWarning]
    assert messages == ([f"the output layer 'dense' is a sigmoid over {units} units, but {loss} "
                         "expects a probability distribution over the classes: -log p(true class) "
                         "never pushes the other classes down, so every output drifts to 1; use "
                         "activation='softmax' (or loss='binary_crossentropy' for independent "
                         "labels)"] if warns else [])


def test_compile_argument_messages():
    model = line_model(1.0)
    with pytest.raises(ValueError, match=r"^compile needs a loss, e.g. loss='binary_crossentropy'$"):
        model.compile()
    for metrics, got in (("accuracy", "str 'accuracy'"), (5, "int 5")):
        with pytest.raises(TypeError) as info:
            model.compile(loss="mse", metrics=metrics)
        assert str(info.value) == ("metrics must be a list of metric names or functions, e.g. "
                                   f"['accuracy'], got {got}")
    assert model.loss is None  # nothing compiled


def test_random_moving_statistics_initializers_follow_the_model_seed():
    def states(seed):
        model = Sequential([Dense(2, input_dim=2), BatchNormalization(
            moving_mean_initializer="random_normal")], seed=seed)
        return model.get_weights()[4]
    np.testing.assert_array_equal(states(3), states(3))
    assert not np.array_equal(states(3), states(4))


def test_a_constrained_layer_called_alone_in_float32_joins_a_float64_model_on_the_sphere():
    # The layer's own float32 kernel is cast to float64 and every column divided by its norm
    # in float64: unit columns to float64 rounding, the float32 values to float32 rounding.
    layer = Dense(4, kernel_constraint=unit_norm(), name="d")
    layer(np.ones((2, 3), dtype=np.float32))
    own = np.array(layer._own_weights[0], dtype=np.float64)
    model = Sequential([layer], dtype="float64")
    kernel = model.get_weights()[0]
    assert kernel.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(kernel, axis=0), 1.0, rtol=0, atol=4 * np.finfo(np.float64).eps)
    np.testing.assert_allclose(kernel, own / np.linalg.norm(own, axis=0), rtol=0,
                               atol=4 * np.finfo(np.float64).eps)


def test_what_needs_the_input_shape_says_so():
    model = Sequential([Dense(2)])
    with pytest.raises(ValueError) as info:
        model.manifold
    assert str(info.value) == (
        "the model's input shape is unknown, so this cannot be done yet: give input_dim (or "
        "input_shape) to the first layer, or call build() or fit() first")


def test_a_later_layer_called_alone_brings_its_weights_and_states_into_the_model():
    bn = BatchNormalization(moving_mean_initializer="random_normal", name="bn")
    bn(np.ones((2, 3), dtype=np.float32), training=True)  # its own gamma, beta and moved states
    own = [np.array(w) for w in bn._own_weights]
    model = Sequential([Dense(3, input_dim=2, name="first"), bn], seed=0)
    weights = model.get_weights()
    assert model.weight_names == ["first/kernel", "first/bias", "bn/gamma", "bn/beta",
                                  "bn/moving_mean", "bn/moving_variance"]
    for got, expected in zip(weights[2:], own):
        np.testing.assert_array_equal(got, expected)
    model.compile(optimizer=RSGD(lr=lambda step: 0.0), loss="mse")
    model.fit(np.ones((4, 2)), np.zeros((4, 3)), verbose=0)  # trains the 4 weights it holds
    assert [w.shape for w in model.get_weights()] == [w.shape for w in weights]
