"""Sequential's reports and bookkeeping, pinned to the letter on hand-built cases.

* A non-finite stop: the three messages (loss non-finite before any step,
  after some steps, weights overflowing), each naming the epoch and batch
  of a case built so that the overflow happens exactly there, and the
  warning pointing at the caller's line.
* ``evaluate(verbose=1)``'s line, ``summary`` of a model that is not
  compiled, the errors of ``evaluate``'s arguments.
* The optimizer signature written into saved files (resuming a saved run
  compares it): its exact fields.
"""

import os
import warnings

import numpy as np
import pytest

from spherenet.nn import Activation, Dense, NonFiniteLossWarning, Sequential, losses, unit_norm
from spherenet.optim import RAdam, RSGD
from spherenet.strategies import Penalty, Projection

#: Under the mutation runner (bench/mutation.py) every function of the mutated module is
#: called through a trampoline: one more frame, so a warning's stacklevel cannot be checked.
UNDER_MUTATION = "MUTANT_UNDER_TEST" in os.environ or "MUTMUT_DEPENDENCY_DEPTH" in os.environ


def line_model(weight, dtype="float32", use_bias=False):
    model = Sequential(dtype=dtype)
    model.add(Dense(1, input_dim=1, use_bias=use_bias, kernel_initializer="ones"))
    model.build()
    model.set_weights([np.array([[weight]])] + ([np.zeros(1)] if use_bias else []))
    return model


def fit_warning(model, x, y, **kwargs):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.fit(x, y, verbose=0, shuffle=False, **kwargs)
    found = [w for w in record if issubclass(w.category, NonFiniteLossWarning)]
    # one warning says it all: no NumPy overflow / invalid-value warnings on the way
    assert len(found) == len(record) == 1, [str(w.message) for w in record]
    # stacklevel: the warning points at the line that called fit
    assert UNDER_MUTATION or found[0].filename == __file__
    return str(found[0].message)


def test_loss_overflowing_before_any_step_names_the_batch_and_the_largest_input():
    # float32; the first batch holds the target 1e30: (1 - 1e30)^2 overflows at once
    model = line_model(1.0)
    model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    x, y = np.array([[2.0], [-3.0], [1.0]]), np.array([1e30, 0.0, 0.0])
    message = fit_warning(model, x, y, batch_size=2, epochs=1)
    assert message == (
        "training stopped at epoch 1, batch 1: the loss is inf at the weights training started "
        "from, before any step; the data or the weights overflow float32 (largest |x| in the "
        "batch: 3); scale the inputs or targets down, or use dtype='float64'. The weights are "
        "unchanged")
    np.testing.assert_array_equal(model.get_weights()[0], [[1.0]])


def test_loss_overflowing_after_steps_names_the_epoch_the_batch_and_the_steps():
    # batches of 2 with a learning rate of 0: the third sample, in the second batch,
    # overflows; one step was taken before it
    model = line_model(1.0)
    model.compile(optimizer=RSGD(lr=lambda step: 0.0), loss="mse")
    x, y = np.array([[1.0], [1.0], [1.0]]), np.array([0.0, 0.0, 1e30])
    message = fit_warning(model, x, y, batch_size=2, epochs=2)
    assert message == (
        "training stopped at epoch 1, batch 2: the loss became inf after 1 step(s) of this fit; "
        "the model keeps the weights of the last step with a finite loss (try a smaller "
        "learning rate)")


def test_weights_overflowing_name_the_last_batch():
    # one sample: loss (10 w)^2 = 100, gradient 200 w; w - 1e38 * 200 overflows float32
    model = line_model(1.0)
    model.compile(optimizer=RSGD(lr=1e38), loss="mse")
    message = fit_warning(model, np.array([[10.0]]), np.array([0.0]), batch_size=1, epochs=3)
    assert message == (
        "training stopped at epoch 1, batch 1: the weights became NaN or infinite; the model "
        "keeps the weights of the last step with a finite loss (try a smaller learning rate)")
    np.testing.assert_array_equal(model.get_weights()[0], [[1.0]])
    assert model.stop_reason == message
    # nothing of the diverged run is resumed: the next fit starts afresh from the kept
    # weights (and diverges the same way)
    assert fit_warning(model, np.array([[10.0]]), np.array([0.0]), batch_size=1,
                       epochs=1) == message
    np.testing.assert_array_equal(model.get_weights()[0], [[1.0]])


def test_evaluate_verbose_prints_one_line(capsys):
    model = line_model(2.0, dtype="float64")
    model.compile(loss="mse", metrics=["mse"])
    x, y = np.array([[1.0], [1.0]]), np.array([[1.0], [0.0]])  # squared errors 1 and 4
    assert model.evaluate(x, y, verbose=1) == [2.5, 2.5]
    assert capsys.readouterr().out == "loss: 2.5000 - mse: 2.5000\n"
    model.evaluate(x, y)
    assert capsys.readouterr().out == ""


def test_evaluate_arguments():
    model = line_model(2.0)
    model.compile(loss="mse")
    x, y = np.ones((3, 1)), np.zeros(3)
    with pytest.raises(ValueError, match=r"^batch_size must be an integer >= 1, got 0$"):
        model.evaluate(x, y, batch_size=0)
    # weights finite in float64 but beyond float32 are refused, not turned into an inf loss
    with pytest.raises(ValueError, match=r"^sample_weight has 1 value\(s\) finite in float64 but "
                                         r"beyond the range of the model's dtype float32"):
        model.evaluate(x, y, sample_weight=np.array([1.0, 1e39, 1.0]))
    with pytest.raises(ValueError, match=r"^sample_weight has 1 value\(s\) finite in float64"):
        model.fit(x, y, sample_weight=np.array([1.0, 1e39, 1.0]), verbose=0)


def test_summary_of_a_model_not_compiled_and_of_one_without_input_shape():
    model = Sequential([Dense(3, input_dim=2, kernel_constraint=unit_norm())], name="m")
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[0] == 'Model: "m"' and lines[-2] == "dtype: float32"
    model.compile(loss="mse", strategy="projection")
    lines = []
    model.summary(print_fn=lines.append)
    assert lines[-2] == "dtype: float32; constraints kept by strategy: projection"
    with pytest.raises(ValueError, match=r"^the model's input shape is unknown, so summary cannot "
                                         r"be done yet"):
        Sequential([Dense(3)]).summary()


def test_optimizer_signature_fields():
    model = Sequential([Dense(2, input_dim=2)])
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01),
                  loss="mse", strategy="penalty", strategy_options={"mu": 2.0})
    assert model._optimizer_signature() == {
        "rule": {"class_name": "RSGD", "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
        "strategy": "penalty", "strategy_options": {"mu": 2.0}}
    model.compile(optimizer=RAdam(lr=0.1, betas=(0.8, 0.99), eps=1e-6, amsgrad=True,
                                  adaptivity="coordinate"), loss="mse")
    assert model._optimizer_signature() == {
        "rule": {"class_name": "RAdam", "betas": [0.8, 0.99], "eps": 1e-6, "amsgrad": True,
                 "adaptivity": "coordinate"},
        "strategy": "riemannian", "strategy_options": {}}


def test_optimizer_signature_of_a_strategy_class_and_of_options_it_cannot_write():
    model = Sequential([Dense(2, input_dim=2)])
    model.compile(optimizer=RSGD(lr=0.1), loss="mse", strategy=Penalty,
                  strategy_options={"mu": 3})
    assert model._optimizer_signature() == {
        "rule": {"class_name": "RSGD", "momentum": 0.0, "nesterov": False, "weight_decay": 0.0},
        "strategy": "penalty", "strategy_options": {"mu": 3}}

    class MyPenalty(Penalty):  # a subclass is not the registered strategy
        pass

    model.compile(optimizer=RSGD(lr=0.1), loss="mse", strategy=MyPenalty)
    assert model._optimizer_signature() is None
    for options in ({"mu": True}, {"mu": "2"}, {"mu": [1.0]}):
        model.compile(optimizer=RSGD(lr=0.1), loss="mse", strategy="penalty",
                      strategy_options=options)
        assert model._optimizer_signature() is None, options


def test_set_weights_takes_integer_arrays_and_refuses_ragged_ones():
    model = Sequential([Dense(2, input_dim=2, kernel_constraint=unit_norm())], seed=0)
    model.set_weights([np.array([[0, 1], [1, 0]]), np.array([3, -4])])
    kernel, bias = model.get_weights()
    assert kernel.dtype == np.float32 and bias.dtype == np.float32
    np.testing.assert_array_equal(kernel, [[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_array_equal(bias, [3.0, -4.0])
    with pytest.raises(TypeError, match=r"^dense/kernel must be a numeric array, got list: "):
        model.set_weights([[[1.0, 0.0], [1.0]], np.zeros(2)])
    np.testing.assert_array_equal(model.get_weights()[0], kernel)


def test_set_weights_tolerance_is_1e3_eps_of_the_dtype():
    # one input: every column of a unit_norm kernel is one entry, whose norm is its value
    eps = np.finfo(np.float64).eps
    model = Sequential([Dense(2, input_dim=1, use_bias=False, kernel_constraint=unit_norm())],
                       dtype="float64", seed=0)
    model.set_weights([np.array([[1 + 1000 * eps, -(1 - 1000 * eps)]])])
    with pytest.raises(ValueError, match=r"^dense/kernel must lie on Oblique"):
        model.set_weights([np.array([[1.0, 1 + 1001 * eps]])])


def test_constraint_slack_of_each_strategy():
    # how far set_weights (and loading a file saved under that strategy) lets a kernel be off
    model = Sequential([Dense(2, input_dim=2)])
    assert model._constraint_slack() == 0.0  # not compiled
    assert model._constraint_slack("projection", {}) == pytest.approx(1e-6, rel=1e-15)
    assert model._constraint_slack("projection", {"epsilon": 1e-3}) == pytest.approx(1e-2)
    assert model._constraint_slack("riemannian", {}) == 0.0
    assert model._constraint_slack("reparam", {"epsilon": 1.0}) == 0.0
    assert model._constraint_slack("penalty", {}) is None
    assert model._constraint_slack("none", {}) is None
    assert model._constraint_slack(Penalty, {}) is None
    # the class itself: its own default epsilon is 0
    assert model._constraint_slack(Projection, {}) == 0.0
    assert model._constraint_slack(Projection, {"epsilon": 1e-4}) == pytest.approx(1e-3)


def test_fit_defaults_batch_size_32_and_a_progress_bar(capsys):
    pytest.importorskip("tqdm")
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((70, 1)), rng.standard_normal(70)

    def trained(**kwargs):
        model = line_model(0.5, dtype="float64", use_bias=True)
        model.compile(optimizer=RSGD(lr=0.1), loss="mse")
        history = model.fit(x, y, epochs=1, shuffle=False, **kwargs)
        return history.history["loss"], model.get_weights()

    default, explicit = trained(batch_size=None), trained(batch_size=32, verbose=0)
    capsys.readouterr()
    assert default[0] == explicit[0]
    for a, b in zip(default[1], explicit[1]):
        np.testing.assert_array_equal(a, b)
    assert trained(batch_size=70, verbose=0)[0] != default[0]
    capsys.readouterr()
    trained()  # verbose=1: a tqdm bar on stderr, nothing on stdout
    out, err = capsys.readouterr()
    assert out == "" and "Epoch 1/1" in err
    trained(verbose=2)  # one plain line on stdout
    out, _ = capsys.readouterr()
    assert out.startswith("Epoch 1/1 - ")


def test_fit_takes_the_input_shape_from_the_data_in_the_model_dtype():
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((20, 3)), rng.standard_normal(20)
    models = []
    for input_dim in (None, 3):
        model = Sequential(seed=5)  # float32
        model.add(Dense(4, input_dim=input_dim, activation="tanh"))
        model.add(Dense(1))
        model.compile(optimizer=RSGD(lr=0.1), loss="mse")
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=0)
        assert all(w.dtype == np.float32 for w in model.get_weights())
        models.append(model)
    for a, b in zip(*(m.get_weights() for m in models)):
        np.testing.assert_array_equal(a, b)


def test_class_weight_beyond_float32_is_refused():
    model = Sequential([Dense(1, input_dim=1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy")
    with pytest.raises(ValueError, match=r"^class_weight has 2 value\(s\) finite in float64 but "
                                         r"beyond the range of the model's dtype float32"):
        model.fit(np.ones((3, 1)), np.array([0, 1, 1]), class_weight={1: 1e39}, verbose=0)


def test_history_params():
    model = line_model(1.0)
    model.compile(optimizer=RSGD(lr=0.1), loss="mse", strategy="none")
    history = model.fit(np.ones((10, 1)), np.zeros(10), epochs=3, batch_size=4, verbose=0,
                        validation_split=0.2)
    assert history.params == {"epochs": 3, "steps": 2, "samples": 8, "strategy": "none"}


# --- construction, compile and the output modes -------------------------------------------------


def test_a_fresh_model_has_not_trained():
    model = Sequential()
    assert (model.stop_training, model.stop_reason, model.last_epoch, model.log_keys,
            model.history) == (False, None, None, (), None)
    with pytest.raises(ValueError, match=r"^dtype must be float32 or float64, got int32$"):
        Sequential(dtype="int32")


def test_structure_messages():
    with pytest.raises(ValueError, match=r"^add\(\) takes a spherenet.nn layer, got 'x'$"):
        Sequential().add("x")
    built = Sequential([Dense(2, input_dim=3)]).build()
    with pytest.raises(ValueError, match=r"^cannot add a layer to a model whose weights exist; "
                                         r"build a new model$"):
        built.add(Dense(1))
    with pytest.raises(ValueError, match=r"^the model has no layers$"):
        Sequential().build((3,))
    with pytest.raises(ValueError, match=r"^the model's input shape is unknown, so build cannot "
                                         r"be done yet"):
        Sequential([Dense(2)]).build()
    with pytest.raises(ValueError, match=r"^the model expects inputs of shape \(3,\), got \(4,\)$"):
        Sequential([Dense(2, input_dim=3)]).build((4,))
    late = Sequential([Dense(2)]).build((3,))  # the input shape given to build
    assert late.input_shape == (3,) and late.get_weights()[0].shape == (3, 2)
    with pytest.raises(ValueError, match=r"^dense/kernel: its initializer gives a zero factor "
                                         r"\(column\), which has no direction to normalize; "
                                         r"use a random initializer$"):
        Sequential([Dense(2, input_dim=2, kernel_initializer="zeros",
                          kernel_constraint=unit_norm())]).build()
    # a column of norm exactly 1 is fine (and stays as it is)
    ones = Sequential([Dense(2, input_dim=1, kernel_initializer="ones",
                             kernel_constraint=unit_norm())], dtype="float64").build()
    np.testing.assert_array_equal(ones.get_weights()[0], [[1.0, 1.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_build_draws_the_initializer_in_the_model_dtype(dtype):
    from spherenet.nn.initializers import GlorotUniform

    model = Sequential([Dense(3, input_dim=4)], seed=7, dtype=np.dtype(dtype).name).build()
    rng = np.random.default_rng(7)
    kernel = GlorotUniform()((4, 3), dtype, rng)
    np.testing.assert_array_equal(model.get_weights()[0], kernel)


def test_compile_messages():
    model = Sequential([Dense(1, input_dim=2)])
    with pytest.raises(ValueError, match=r"^unknown optimizer 'adamw'; choose one of \['adam', "
                                         r"'radam', 'rsgd', 'sgd'\] or pass a step rule from "
                                         r"spherenet.optim, e.g. RSGD\(lr=0.05, momentum=0.9\)$"):
        model.compile(optimizer="adamw", loss="mse")
    for bad in (3, int, Penalty(Sequential([Dense(1, input_dim=1)]).build().manifold)):
        with pytest.raises(ValueError, match=r"^strategy must be a name or a Strategy subclass, "
                                             r"got "):
            model.compile(loss="mse", strategy=bad)


def compile_warning(layers, loss):
    call = lambda: Sequential(layers).compile(loss=loss)  # noqa: E731
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        call()
    assert len(record) == 1 and record[0].category is UserWarning
    # stacklevel: the line that called compile
    assert UNDER_MUTATION or (record[0].filename, record[0].lineno) == (
        __file__, call.__code__.co_firstlineno)
    return str(record[0].message)


def test_output_mismatch_warnings_word_for_word():
    assert compile_warning([Dense(1, input_dim=2, activation="softmax")],
                           "binary_crossentropy") == (
        "the output layer 'dense' is a softmax over 1 unit, which is always exactly 1: its "
        "gradient is zero, so the model cannot learn, and binary_crossentropy reports a "
        "meaningless loss; for two classes use Dense(1, activation='sigmoid') with "
        "loss='binary_crossentropy' (or Dense(2, activation='softmax') with "
        "'sparse_categorical_crossentropy')")
    assert compile_warning([Dense(3, input_dim=2, activation="sigmoid")],
                           "categorical_crossentropy") == (
        "the output layer 'dense' is a sigmoid over 3 units, but categorical_crossentropy "
        "expects a probability distribution over the classes: -log p(true class) never pushes "
        "the other classes down, so every output drifts to 1; use activation='softmax' (or "
        "loss='binary_crossentropy' for independent labels)")
    assert compile_warning([Dense(2, input_dim=2, activation="sigmoid")],
                           losses.BinaryCrossentropy(from_logits=True)) == (
        "the loss takes logits (from_logits=True), but the output layer 'dense' already "
        "applies a sigmoid: the loss would apply it a second time; remove the activation or "
        "use from_logits=False")


def test_the_three_output_modes_against_numpy():
    # One logistic unit, logits z = 3 x: 50 (target 0, saturated), 0.3 (target 1), -2 (target 0)
    x = np.array([[50.0 / 3], [0.1], [-2.0 / 3]])
    y = np.array([0.0, 1.0, 0.0])
    z = 3 * x[:, 0]
    exact = np.mean(np.logaddexp(0, z) * (1 - y) + np.logaddexp(0, -z) * y)
    p = np.clip(1 / (1 + np.exp(-z)), 1e-7, 1 - 1e-7)
    clipped = -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p))

    def evaluate(activation, loss, output=None):
        model = Sequential(dtype="float64")
        model.add(Dense(1, input_dim=1, use_bias=False, activation=activation))
        if output is not None:
            model.add(output)
        model.compile(loss=loss, metrics=["accuracy"])
        model.set_weights([np.array([[3.0]])])
        return model.evaluate(x, y)

    # sigmoid output + binary cross-entropy: trained and evaluated from the logits
    fused = evaluate("sigmoid", "binary_crossentropy")
    assert fused[0] == pytest.approx(exact, rel=1e-14) and fused[0] > 16.7
    # a loss from logits on a linear output: the same value; accuracy on sigmoid(z) > 0.5
    logits = evaluate(None, losses.BinaryCrossentropy(from_logits=True))
    assert logits[0] == pytest.approx(exact, rel=1e-14)
    # sigmoid(0.3) = 0.57 counts as class 1 (right), z = 50 is wrong: 2 of 3
    assert logits[1] == pytest.approx(2 / 3, rel=1e-15)
    # probabilities that do not come from a sigmoid layer: Keras's clipped form
    probs = evaluate(None, "binary_crossentropy", Activation(lambda a: 1 / (1 + np.exp(-a))))
    assert probs[0] == pytest.approx(clipped, rel=1e-12) and probs[0] < exact
    assert probs[1] == pytest.approx(2 / 3, rel=1e-15)  # on the probabilities as they are
