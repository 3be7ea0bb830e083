"""spherenet.nn used carelessly: interrupted fits, truthy strings for flags, odd seeds.

An interrupted ``fit`` (Ctrl-C, or any error raised by a callback) leaves the
model at its last completed step: trainable weights and the moving
statistics of BatchNormalization together, never the one moved and the
other not. Flags (``shuffle``, ``center``, ``scale``, ``use_bias``,
``from_logits``, ``save_best_only``) are booleans: a string such as "no" is
refused rather than read as True. Seeds are ints >= 0 or Generators (True
is not seed 1); ``callbacks`` and ``metrics`` are lists, not one object or
one string read letter by letter.
"""

import numpy as np
import pytest

from spherenet.nn import (BatchNormalization, Dense, LambdaCallback, LayerNormalization,
                          ModelCheckpoint, Sequential, unit_norm)
from spherenet.nn.losses import BinaryCrossentropy
from spherenet.optim import RSGD


def _data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    return x, (x[:, 0] - 0.5 * x[:, 2] > 0).astype(np.float64)


def _bn_model(dtype, strategy="riemannian"):
    model = Sequential([Dense(4, input_dim=3, activation="tanh", kernel_constraint=unit_norm()),
                        BatchNormalization(momentum=0.5),
                        Dense(1, activation="sigmoid")], seed=3, dtype=dtype)
    model.compile(optimizer=RSGD(lr=0.3, momentum=0.9), loss="binary_crossentropy",
                  strategy=strategy)
    return model


def _interrupt_after(steps, error=KeyboardInterrupt):
    def on_batch_end(batch, logs):
        if batch == steps - 1:
            raise error("stop")
    return LambdaCallback(on_train_batch_end=on_batch_end)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strategy", ["riemannian", "reparam"])
@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
def test_an_interrupted_fit_keeps_its_last_completed_step(dtype, strategy, error):
    # Reference: the same model trained, uninterrupted, on exactly the batches the
    # interrupted fit completed (no shuffling: the first 2 batches of 8 samples).
    x, y = _data()
    reference = _bn_model(dtype, strategy)
    reference.fit(x[:16], y[:16], epochs=1, batch_size=8, shuffle=False, verbose=0)
    model = _bn_model(dtype, strategy)
    before = model.get_weights()
    with pytest.raises(error):
        model.fit(x, y, epochs=3, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[_interrupt_after(2, error)])
    after = model.get_weights()
    for name, got, want, old in zip(model.weight_names, after, reference.get_weights(), before):
        assert got.dtype == np.dtype(dtype), name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert not np.array_equal(got, old), name  # every weight moved in 2 steps


def test_an_interrupt_before_the_first_step_leaves_the_model_unchanged():
    x, y = _data()
    model = _bn_model("float32", "reparam")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    before = model.get_weights()

    def on_epoch_begin(epoch, logs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=2, batch_size=8, verbose=0,
                  callbacks=[LambdaCallback(on_epoch_begin=on_epoch_begin)])
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_an_interrupted_fit_then_fit_again_trains_from_the_last_step():
    x, y = _data()
    model = _bn_model("float64")
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                  callbacks=[_interrupt_after(1)])
    one_step = model.get_weights()
    reference = _bn_model("float64")
    reference.fit(x[:8], y[:8], epochs=1, batch_size=8, shuffle=False, verbose=0)
    for got, want in zip(one_step, reference.get_weights(), strict=True):
        np.testing.assert_array_equal(got, want)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=0)
    assert all(np.all(np.isfinite(w)) for w in model.get_weights())


@pytest.mark.parametrize("value", ["no", "False", 0, 1, None])
def test_fit_shuffle_must_be_a_bool(value):
    x, y = _data()
    model = _bn_model("float32")
    before = model.get_weights()
    with pytest.raises(TypeError, match=f"shuffle must be True or False, got {value!r}"):
        model.fit(x, y, epochs=1, shuffle=value, verbose=0)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("layer", [BatchNormalization, LayerNormalization])
@pytest.mark.parametrize("flag", ["center", "scale"])
@pytest.mark.parametrize("value", ["no", 0, None])
def test_normalization_flags_must_be_bools(layer, flag, value):
    with pytest.raises(TypeError, match=f"{flag} must be True or False, got {value!r}"):
        layer(**{flag: value})


@pytest.mark.parametrize("layer", [BatchNormalization, LayerNormalization])
def test_normalization_flags_take_numpy_bools(layer):
    assert layer(center=np.bool_(False), scale=np.True_).center is False


@pytest.mark.parametrize("seed, error, match", [
    (-1, ValueError, r"seed must be None, an int >= 0 or a numpy.random.Generator, got -1"),
    (True, TypeError, r"seed must be None, an int or a numpy.random.Generator, got bool"),
    ("0", TypeError, r"seed must be None, an int or a numpy.random.Generator, got str"),
    (1.5, TypeError, r"seed must be None, an int or a numpy.random.Generator, got float"),
])
def test_fit_seed_is_checked_before_anything_changes(seed, error, match):
    x, y = _data()
    model = _bn_model("float32")
    before = model.get_weights()
    with pytest.raises(error, match=match):
        model.fit(x, y, epochs=1, verbose=0, seed=seed)
    with pytest.raises(error, match=match):
        Sequential([Dense(2, input_dim=3)], seed=seed)
    with pytest.raises(error, match=match):
        Dense(2)(x, seed=seed)
    for got, want in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(got, want)


def test_a_bool_seed_is_not_seed_one():
    from spherenet import Sphere

    with pytest.raises(TypeError, match="got bool"):
        Sphere(3).random_point(rng=True)


@pytest.mark.parametrize("callbacks", [LambdaCallback(), "history", 3])
def test_fit_callbacks_must_be_a_list(callbacks):
    x, y = _data()
    model = _bn_model("float32")
    with pytest.raises(TypeError, match=r"callbacks must be a list of Callback objects or "
                                        rf"callables, got {type(callbacks).__name__}"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=callbacks)
    assert model.history is None  # refused before the fit began


@pytest.mark.parametrize("metrics", ["accuracy", b"accuracy"])
def test_compile_metrics_must_be_a_list_not_one_string(metrics):
    model = Sequential([Dense(2, input_dim=3, activation="softmax")])
    with pytest.raises(TypeError, match=r"metrics must be a list of metric names or functions, "
                                        r"e.g. \['accuracy'\], got"):
        model.compile(loss="sparse_categorical_crossentropy", metrics=metrics)


@pytest.mark.parametrize("seed, error", [(True, TypeError), (0.5, TypeError), ("1", TypeError),
                                         (-1, ValueError)])
def test_dropout_seed_must_be_an_int(seed, error):
    from spherenet.nn import Dropout

    with pytest.raises(error, match=r"Dropout seed must be None or an int >= 0, got"):
        Dropout(0.5, seed=seed)


@pytest.mark.parametrize("make, name", [
    (lambda v: Dense(2, use_bias=v), "use_bias"),
    (lambda v: BinaryCrossentropy(from_logits=v), "from_logits"),
    (lambda v: ModelCheckpoint("m.npz", save_best_only=v), "save_best_only"),
])
@pytest.mark.parametrize("value", ["no", "False", 0, None])
def test_flags_of_layers_losses_and_callbacks_must_be_bools(make, name, value):
    with pytest.raises(TypeError, match=f"{name} must be True or False, got {value!r}"):
        make(value)
