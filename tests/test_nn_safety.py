"""spherenet.nn keeps what it is given and refuses what it cannot use, naming why.

Optimizer state survives ``save``/``load_model`` (a resumed run is the
uninterrupted one, bit for bit); weights move between float32 and float64;
data beyond the model dtype's range is refused before training; outputs
that cannot train warn at ``compile``; saving leaves no temporary files and
names the target in its errors; ``Layer.get_weights``/``set_weights`` work
as in Keras; and random malformed input gives an error or a correct answer,
never a silent wrong value or a changed model.
"""

import json
import math
import os
import re
import subprocess
import sys
import threading
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spherenet.nn import (Activation, Dense, Dropout, LambdaCallback, ModelCheckpoint,
                          NonFiniteLossWarning, Sequential, load_model, losses, unit_norm)
from spherenet.optim import RAdam, RSGD

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}
STRATEGIES = ["riemannian", "projection", "reparam", "penalty", "none"]
RULES = {
    "momentum": lambda: RSGD(lr=0.2, momentum=0.9),
    "nesterov": lambda: RSGD(lr=0.2, momentum=0.9, nesterov=True),
    "radam-factor": lambda: RAdam(lr=0.05),
    "radam-coordinate": lambda: RAdam(lr=0.05, adaptivity="coordinate"),
    "amsgrad-factor": lambda: RAdam(lr=0.05, amsgrad=True),
    "amsgrad-coordinate": lambda: RAdam(lr=0.05, amsgrad=True, adaptivity="coordinate"),
}


def toy_data(n=24, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3))
    return x, (x[:, 0] + 0.5 * x[:, 1] > 0).astype(np.float64)


def toy_model(rule=None, strategy="riemannian", dtype="float32", dropout=True, seed=0):
    model = Sequential(seed=seed, dtype=dtype)
    model.add(Dense(4, input_dim=3, activation="tanh", kernel_constraint=unit_norm()))
    if dropout:
        model.add(Dropout(0.25))
    model.add(Dense(1, activation="sigmoid"))
    model.compile(optimizer=rule if rule is not None else RSGD(lr=0.2, momentum=0.9),
                  loss="binary_crossentropy", strategy=strategy)
    return model


def assert_same_weights(a, b):
    for u, v in zip(a, b, strict=True):
        assert u.dtype == v.dtype
        np.testing.assert_array_equal(u, v)


def weights_differ(a, b):
    return any(not np.array_equal(u, v) for u, v in zip(a, b))


# --- 1. the optimizer's state is saved -------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("rule", sorted(RULES))
def test_fit_save_load_fit_is_the_uninterrupted_fit_bit_for_bit(tmp_path, rule, strategy, dtype):
    x, y = toy_data()
    whole = toy_model(RULES[rule](), strategy, dtype)
    whole.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=1)
    # in memory: a second fit without a seed continues the first (state, data order, dropout)
    twice = toy_model(RULES[rule](), strategy, dtype)
    twice.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    twice.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert_same_weights(whole.get_weights(), twice.get_weights())
    # through a file
    half = toy_model(RULES[rule](), strategy, dtype)
    half.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    half.save(tmp_path / "m.npz")
    resumed = load_model(tmp_path / "m.npz")
    resumed.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert_same_weights(whole.get_weights(), resumed.get_weights())
    assert resumed.get_weights()[0].dtype == np.dtype(dtype)


def test_a_checkpoint_of_every_epoch_resumes_the_run_bit_for_bit(tmp_path):
    x, y = toy_data()
    whole = toy_model(RAdam(lr=0.05), "reparam")
    whole.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=1,
              callbacks=[ModelCheckpoint(tmp_path / "ck-{epoch}.npz", monitor="loss")])
    for done in (1, 2, 3):
        resumed = load_model(tmp_path / f"ck-{done}.npz")
        resumed.fit(x, y, epochs=4 - done, batch_size=8, verbose=0)
        assert_same_weights(whole.get_weights(), resumed.get_weights())


def test_a_schedule_resumes_when_compiled_again_alike(tmp_path):
    """A Python schedule cannot be saved; compiling the loaded model alike resumes the run."""
    x, y = toy_data()

    def schedule(step):
        return 0.3 * 0.9**step

    whole = toy_model(RSGD(lr=schedule, momentum=0.9), "projection")
    whole.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=1)
    half = toy_model(RSGD(lr=schedule, momentum=0.9), "projection")
    half.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    half.save(tmp_path / "m.npz")
    resumed = load_model(tmp_path / "m.npz")
    assert resumed._compiled is None
    resumed.compile(optimizer=RSGD(lr=schedule, momentum=0.9), loss="binary_crossentropy",
                    strategy="projection")
    resumed.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert_same_weights(whole.get_weights(), resumed.get_weights())
    # compiled otherwise (another momentum, another strategy), the optimizer restarts
    for kwargs in ({"optimizer": RSGD(lr=schedule, momentum=0.5), "strategy": "projection"},
                   {"optimizer": RSGD(lr=schedule, momentum=0.9), "strategy": "riemannian"}):
        other = load_model(tmp_path / "m.npz")
        other.compile(loss="binary_crossentropy", **kwargs)
        other.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=3)
        fresh = toy_model(kwargs["optimizer"], kwargs["strategy"])
        fresh.set_weights(half.get_weights())
        fresh.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=3)
        assert_same_weights(fresh.get_weights(), other.get_weights())


def _strip_optimizer(src, dst):
    """The file as an older spherenet wrote it: no optimizer entries."""
    with np.load(src, allow_pickle=False) as f:
        entries = {k: f[k] for k in f.files if not k.startswith(("optimizer_", "variable_"))}
    config = json.loads(str(entries["architecture"][()]))
    del config["optimizer"]
    entries["architecture"] = np.array(json.dumps(config))
    np.savez(dst, **entries)


def test_saved_state_is_plain_arrays_and_json_and_holds_step_and_generators(tmp_path):
    x, y = toy_data()
    model = toy_model(RAdam(lr=0.05, amsgrad=True), strategy="reparam")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        config = json.loads(str(f["architecture"][()]))
        arrays = {k: f[k] for k in f.files}
    entry = config["optimizer"]
    assert entry["state"]["dict"]["step"] == 2 * 3  # 2 epochs of 3 batches: the schedule position
    assert entry["signature"] == {
        "rule": {"class_name": "RAdam", "betas": [0.9, 0.999], "eps": 1e-8, "amsgrad": True,
                 "adaptivity": "factor"},
        "strategy": "reparam", "strategy_options": {}}
    assert entry["sampler"]["bit_generator"] == "PCG64"
    assert [d is None for d in entry["dropout"]] == [True, False, True]
    # reparam's variable v is not the normalized kernel: it is saved beside the weights
    assert set(entry["variable"]) == {"0"}
    v = arrays[entry["variable"]["0"]]
    np.testing.assert_allclose(v / np.linalg.norm(v, axis=0), arrays["weight_000"],
                               rtol=8 * EPS[np.float32], atol=8 * EPS[np.float32])
    assert not np.allclose(np.linalg.norm(v, axis=0), 1.0)
    assert all(a.dtype == np.float32 for k, a in arrays.items() if k.startswith("optimizer_"))


def test_old_files_without_optimizer_state_load_and_restart_the_optimizer(tmp_path):
    x, y = toy_data()
    model = toy_model(dropout=False)
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    model.save(tmp_path / "new.npz")
    _strip_optimizer(tmp_path / "new.npz", tmp_path / "old.npz")
    old = load_model(tmp_path / "old.npz")
    assert_same_weights(model.get_weights(), old.get_weights())
    old.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=5)
    # the same weights trained from a fresh optimizer (zero momentum)
    fresh = toy_model(dropout=False)
    fresh.set_weights(model.get_weights())
    fresh.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=5)
    assert_same_weights(old.get_weights(), fresh.get_weights())
    # while the state saved with the new file carries the momentum on
    new = load_model(tmp_path / "new.npz")
    new.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=5)
    assert weights_differ(new.get_weights(), fresh.get_weights())


def test_set_weights_or_compile_restart_the_optimizer_and_nothing_is_saved_then(tmp_path):
    x, y = toy_data()
    model = toy_model(dropout=False)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    model.set_weights(model.get_weights())
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert "optimizer" not in json.loads(str(f["architecture"][()]))
        assert not [k for k in f.files if k.startswith(("optimizer_", "variable_"))]


def test_an_interrupted_fit_saves_no_stale_optimizer_state(tmp_path):
    x, y = toy_data()
    model = toy_model(dropout=False)

    def interrupt(batch, logs):
        if model.last_epoch == 0 and batch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=1,
                  callbacks=[LambdaCallback(on_train_batch_end=interrupt)])
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        assert "optimizer" not in json.loads(str(f["architecture"][()]))


def test_corrupted_optimizer_state_is_a_clear_error(tmp_path):
    x, y = toy_data()
    model = toy_model()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    model.save(tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as f:
        entries = {k: f[k] for k in f.files}
    key = sorted(k for k in entries if k.startswith("optimizer_"))[0]
    entries[key] = np.full_like(entries[key], np.nan)
    np.savez(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError, match="bad.npz: the saved optimizer state is corrupted"):
        load_model(tmp_path / "bad.npz")
    entries[key] = entries[key].astype(np.float64)
    np.savez(tmp_path / "bad64.npz", **entries)
    with pytest.raises(ValueError, match="has dtype float64, the model float32"):
        load_model(tmp_path / "bad64.npz")
    entries[key] = entries[key].astype(np.float32)
    config = json.loads(str(entries["architecture"][()]))
    for field, value in [("variable", ["variable_000"]), ("dropout", []),
                         ("sampler", {"bit_generator": "Unknown"}), ("state", {"x": 1, "y": 2})]:
        edited = json.loads(json.dumps(config))
        edited["optimizer"][field] = value
        np.savez(tmp_path / "edited.npz", **{**entries, "architecture": np.array(json.dumps(edited))})
        with pytest.raises(ValueError, match="the saved optimizer state is corrupted"):
            load_model(tmp_path / "edited.npz")


@pytest.mark.parametrize("strategy", ["penalty", "none"])
def test_models_trained_off_the_manifold_load_again(tmp_path, strategy):
    """Under penalty and none the kernel leaves its manifold; such a model must still load."""
    x, y = toy_data()
    model = toy_model(strategy=strategy, dropout=False)
    model.fit(x, y * 1.0, epochs=3, batch_size=8, verbose=0, seed=1)
    kernel = model.get_weights()[0]
    assert np.max(np.abs(np.linalg.norm(kernel.astype(np.float64), axis=0) - 1)) > 1e-3
    model.save(tmp_path / "m.npz")
    assert_same_weights(model.get_weights(), load_model(tmp_path / "m.npz").get_weights())
    # a riemannian model still refuses such a kernel
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        toy_model(dropout=False).load_weights(tmp_path / "m.npz")


def test_off_manifold_model_with_unsavable_compile_settings_loads_uncompiled(tmp_path):
    x, y = toy_data()
    model = toy_model(RSGD(lr=lambda step: 0.5 / (1 + step), momentum=0.9), "none", dropout=False)
    model.fit(x, y, epochs=3, batch_size=8, verbose=0, seed=1)
    assert model.constraint_violations()["dense/kernel"] > 1e-3
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    assert loaded._compiled is None  # a Python schedule cannot be written down
    assert_same_weights(model.get_weights(), loaded.get_weights())
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        toy_model(dropout=False).load_weights(tmp_path / "m.npz")
    uncompiled = Sequential(seed=0)
    uncompiled.add(Dense(4, input_dim=3, activation="tanh", kernel_constraint=unit_norm()))
    uncompiled.add(Dense(1, activation="sigmoid"))
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        uncompiled.load_weights(tmp_path / "m.npz")


def test_keras_projection_in_float64_loads_again(tmp_path):
    """w / (1e-7 + ||w||) has norm 1 - 1e-7: far outside float64's 2.2e-13, yet what was asked for."""
    x, y = toy_data()
    model = toy_model(strategy="projection", dtype="float64", dropout=False)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, seed=1)
    model.save(tmp_path / "m.npz")
    assert_same_weights(model.get_weights(), load_model(tmp_path / "m.npz").get_weights())


# --- 2. weights across dtypes ------------------------------------------------------------------


def _column_normalized(k):
    """x / ||x|| per column, with NumPy in the array's own dtype."""
    return k / np.linalg.norm(k, axis=0)


@pytest.mark.parametrize("source, target", [(np.float32, np.float64), (np.float64, np.float32)])
def test_set_weights_across_dtypes_puts_the_kernel_back_on_the_sphere(source, target):
    x, y = toy_data()
    trained = toy_model(dtype=source.__name__, dropout=False)
    trained.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    weights = trained.get_weights()
    other = toy_model(dtype=target.__name__, dropout=False)
    other.set_weights(weights)
    new = other.get_weights()
    assert [w.dtype for w in new] == [np.dtype(target)] * 4
    # the kernel: cast, then each column divided by its norm, in the target dtype; against
    # normalizing in float64 then rounding: four roundings of eps/2 at most
    expected = _column_normalized(weights[0].astype(np.float64)).astype(target)
    np.testing.assert_allclose(new[0], expected, rtol=4 * EPS[target], atol=4 * EPS[target])
    assert np.max(np.abs(np.linalg.norm(new[0].astype(np.float64), axis=0) - 1)) <= 4 * EPS[target]
    # biases are cast, nothing else
    np.testing.assert_array_equal(new[1], weights[1].astype(target))
    np.testing.assert_array_equal(new[3], weights[3].astype(target))


def test_load_weights_from_float32_into_float64(tmp_path):
    x, y = toy_data()
    trained = toy_model(dtype="float32", dropout=False)
    trained.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    trained.save(tmp_path / "m32.npz")
    model = toy_model(dtype="float64", dropout=False)
    model.load_weights(tmp_path / "m32.npz")
    kernel = model.get_weights()[0]
    assert kernel.dtype == np.float64
    assert np.max(np.abs(np.linalg.norm(kernel, axis=0) - 1)) <= 4 * EPS[np.float64]
    assert model.constraint_violations()["dense/kernel"] <= 4 * EPS[np.float64]


def test_weights_really_off_the_manifold_are_refused_in_any_dtype():
    model64 = toy_model(dtype="float64", dropout=False)
    model32 = toy_model(dtype="float32", dropout=False)
    before64, before32 = model64.get_weights(), model32.get_weights()
    off = [w.astype(np.float32) for w in before64]
    off[0] = off[0] * np.float32(1 + 1e-3)  # far beyond float32's rounding
    with pytest.raises(ValueError, match=r"dense/kernel must lie on Oblique.*off 1 by up to 0\.001"):
        model64.set_weights(off)
    off64 = [w.astype(np.float64) for w in before32]
    off64[0] = off64[0] * (1 + 1e-3)
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        model32.set_weights(off64)
    off64[0] = before32[0].astype(np.float64) * (1 + 1e-9)
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        model64.set_weights(off64)  # beyond float64's tolerance, in a float64 model
    assert_same_weights(before64, model64.get_weights())
    assert_same_weights(before32, model32.get_weights())
    # but for a float32 model, 1e-9 is below what float32 can tell: accepted, renormalized
    model32.set_weights(off64)
    kernel = model32.get_weights()[0].astype(np.float64)
    assert np.max(np.abs(np.linalg.norm(kernel, axis=0) - 1)) <= 4 * EPS[np.float32]


def test_same_dtype_weights_are_taken_bit_for_bit_and_none_strategy_only_casts():
    model = toy_model(dtype="float64", dropout=False)
    weights = model.get_weights()
    weights[0] = weights[0] * (1 + 100 * EPS[np.float64])  # within float64's tolerance
    model.set_weights(weights)
    assert_same_weights(weights, model.get_weights())
    loose = toy_model(dtype="float64", dropout=False, strategy="none")
    off = [w.astype(np.float32) for w in weights]
    off[0] *= np.float32(3.0)
    loose.set_weights(off)
    np.testing.assert_array_equal(loose.get_weights()[0], off[0].astype(np.float64))


# --- 3. data beyond the model's dtype; History when training stops --------------------------------


def test_values_finite_in_float64_but_not_in_float32_are_refused_before_training():
    x, y = toy_data()
    model = toy_model(dropout=False)
    before = model.get_weights()
    big = x.copy()
    big[3, 1] = 1e39
    message = (r"x has 1 value\(s\) finite in float64 but beyond the range of the model's dtype "
               r"float32 .*first at sample 3, feature 1: 1e\+39")
    with pytest.raises(ValueError, match=message):
        model.fit(big, y, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.predict(big)
    with pytest.raises(ValueError, match=message):
        model.evaluate(big, y)
    with pytest.raises(ValueError, match=r"validation x has 1 value\(s\) .* float32"):
        model.fit(x, y, verbose=0, validation_data=(big, y))
    regression = Sequential([Dense(1, input_dim=3)], seed=0)
    regression.compile(loss="mse")
    with pytest.raises(ValueError, match=r"y has 3 value\(s\) finite in float64 .*sample 0"):
        regression.fit(x, np.where(np.arange(24) % 10 == 0, -1e300, 0.0), verbose=0)
    assert_same_weights(before, model.get_weights())
    # float64 holds them
    wide = toy_model(dtype="float64", dropout=False)
    assert np.all(np.isfinite(wide.predict(big)))


def test_nan_stop_keeps_history_keys_and_blames_the_learning_rate_only_after_steps():
    x, y = toy_data(64)
    model = Sequential(seed=0)
    model.add(Dense(8, input_dim=3, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(1))
    model.compile(optimizer=RSGD(lr=1e18), loss="mse", metrics=["mse"], strategy="none")
    with pytest.warns(NonFiniteLossWarning, match=r"after \d+ step\(s\).*smaller learning rate"):
        history = model.fit(x, y * 1e3, epochs=3, batch_size=8, verbose=0, seed=0,
                            validation_split=0.25)
    assert history.history == {"loss": [], "mse": [], "val_loss": [], "val_mse": [],
                               "dense/kernel_violation": []}
    assert history.history["loss"] == []


def test_loss_overflowing_before_any_step_is_not_blamed_on_the_learning_rate():
    x, y = toy_data()
    model = Sequential([Dense(1, input_dim=3)], seed=0)
    model.compile(optimizer=RSGD(lr=1e-6), loss="mse")
    before = model.get_weights()
    with pytest.warns(NonFiniteLossWarning) as record:
        history = model.fit(x, np.full(24, 1e30), epochs=2, batch_size=8, verbose=0, seed=0)
    message = str(record[0].message)
    assert "before any step" in message and "overflow float32" in message
    assert "learning rate" not in message
    assert history.history == {"loss": []} and history.stop_reason == message
    assert_same_weights(before, model.get_weights())


def test_history_of_a_stop_after_some_epochs_has_one_value_per_completed_epoch():
    x, y = toy_data(64)
    model = toy_model(dropout=False)
    history = model.fit(x, y, epochs=3, verbose=0, seed=0,
                        callbacks=[lambda epoch, logs: epoch == 1])
    assert {k: len(v) for k, v in history.history.items()} == {
        "loss": 2, "dense/kernel_violation": 2}


# --- 4. an output that cannot train warns at compile -------------------------------------------


def _compile(layers, loss):
    model = Sequential(layers)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model.compile(optimizer="rsgd", loss=loss)
    return [str(w.message) for w in record if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize("layers, loss, match", [
    (lambda: [Dense(1, input_dim=2, activation="softmax")], "binary_crossentropy",
     "softmax over 1 unit, which is always exactly 1.*activation='sigmoid'"),
    (lambda: [Dense(1, input_dim=2), Activation("softmax"), Dropout(0.1)], "binary_crossentropy",
     "'activation' is a softmax over 1 unit"),
    (lambda: [Dense(4, input_dim=2), Dense(1, activation="softmax")], "categorical_crossentropy",
     "softmax over 1 unit"),
    (lambda: [Dense(1, input_dim=2, activation="softmax")], "mse", "softmax over 1 unit"),
    (lambda: [Dense(3, input_dim=2, activation="sigmoid")], "categorical_crossentropy",
     "sigmoid over 3 units.*use activation='softmax'"),
    (lambda: [Dense(3, input_dim=2, activation="sigmoid")], "sparse_categorical_crossentropy",
     "sigmoid over 3 units"),
    (lambda: [Dense(3, input_dim=2, activation="softmax")],
     losses.CategoricalCrossentropy(from_logits=True), "apply it a second time"),
])
def test_outputs_that_cannot_train_warn_at_compile(layers, loss, match):
    messages = _compile(layers(), loss)
    assert len(messages) == 1
    assert re.search(match, messages[0]), messages[0]


@pytest.mark.parametrize("layers, loss", [
    (lambda: [Dense(1, input_dim=2, activation="sigmoid")], "binary_crossentropy"),
    (lambda: [Dense(3, input_dim=2, activation="softmax")], "categorical_crossentropy"),
    (lambda: [Dense(3, input_dim=2, activation="sigmoid")], "binary_crossentropy"),
    (lambda: [Dense(3, input_dim=2, activation="softmax")], "binary_crossentropy"),
    (lambda: [Dense(3, input_dim=2)], losses.SparseCategoricalCrossentropy(from_logits=True)),
    (lambda: [Dense(1, input_dim=2, activation="softmax"), Dense(1, activation="sigmoid")],
     "binary_crossentropy"),
])
def test_sound_outputs_do_not_warn(layers, loss):
    assert _compile(layers(), loss) == []


def test_a_one_unit_softmax_indeed_cannot_learn():
    """Why item 4 warns: the output is 1 whatever the weights, so training changes nothing."""
    x, y = toy_data()
    with pytest.warns(UserWarning, match="softmax over 1 unit"):
        model = Sequential([Dense(1, input_dim=3, activation="softmax")], seed=0)
        model.compile(optimizer=RSGD(lr=0.5), loss="binary_crossentropy")
    before = model.get_weights()
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    np.testing.assert_array_equal(model.predict(x), np.ones((24, 1), np.float32))
    assert_same_weights(before, model.get_weights())


# --- 5. temporary files and messages of save and load --------------------------------------------


_KILLED_SAVE = """
import os, sys
import numpy as np
from spherenet.nn import Sequential, Dense, unit_norm
model = Sequential([Dense(300, input_dim=40, kernel_constraint=unit_norm())], seed=0)
os.replace = lambda *args: os._exit(9)  # killed between writing and moving into place
model.save(sys.argv[1])
"""


def test_a_save_killed_midway_leaves_a_temporary_file_that_the_next_save_removes(tmp_path):
    target = tmp_path / "m.npz"
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([sys.executable, "-c", _KILLED_SAVE, str(target)], env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr.decode()
    (orphan,) = os.listdir(tmp_path)
    assert orphan.startswith(".m.npz.tmp-") and orphan.endswith(".npz")
    assert os.path.getsize(tmp_path / orphan) > 300 * 40 * 4  # the model's size
    dead_pid = orphan.split("-")[1]
    keep = [f".other.npz.tmp-{dead_pid}-abc123.npz",  # another target's
            f".m.npz.tmp-{os.getpid()}-abc123.npz",  # a live process's (this one)
            f".m.npz.tmp-{dead_pid}-abc123.npy",  # not our pattern
            "m.npz.bak"]
    for name in keep:
        (tmp_path / name).write_bytes(b"x")
    Sequential([Dense(2, input_dim=2)], seed=0).save(target)
    assert sorted(os.listdir(tmp_path)) == sorted(keep + ["m.npz"])
    assert load_model(target).get_weights()[0].shape == (2, 2)


def test_temporary_names_are_unique_per_save_and_concurrent_saves_do_not_collide(tmp_path):
    target = tmp_path / "m.npz"
    seen, real_replace = [], os.replace

    def spy(src, dst):
        seen.append(os.path.basename(src))
        real_replace(src, dst)

    models = [toy_model(seed=s, dropout=False) for s in range(3)]
    errors = []

    def save_many(model):
        try:
            for _ in range(5):
                model.save(target)
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    os.replace = spy
    try:
        threads = [threading.Thread(target=save_many, args=(m,)) for m in models]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        os.replace = real_replace
    assert errors == []
    assert len(seen) == 15 and len(set(seen)) == 15
    assert all(name.startswith(f".m.npz.tmp-{os.getpid()}-") for name in seen)
    assert os.listdir(tmp_path) == ["m.npz"]
    loaded = load_model(target).get_weights()
    assert any(not weights_differ(loaded, m.get_weights()) for m in models)


def test_save_errors_name_the_target_not_the_temporary_file(tmp_path, monkeypatch):
    model = toy_model(dropout=False)
    missing = tmp_path / "no" / "such" / "folder" / "m.npz"
    with pytest.raises(FileNotFoundError) as info:
        model.save(missing)
    assert info.value.filename == str(missing) and ".tmp-" not in str(info.value)
    assert "cannot save the model" in str(info.value)

    def read_only(src, dst):
        raise PermissionError(13, "Permission denied", src)

    monkeypatch.setattr(os, "replace", read_only)
    with pytest.raises(PermissionError) as info:
        model.save(tmp_path / "m.npz")
    assert info.value.filename == str(tmp_path / "m.npz") and ".tmp-" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_loading_something_else_says_what_a_model_file_is(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(3.0))
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "pickle.npz").write_bytes(b"\x80\x04\x95" + bytes(40))
    np.savez(tmp_path / "objects.npz", architecture=np.array([{"a": 1}], dtype=object))
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object))
    (tmp_path / "folder.npz").mkdir()
    for name, what in [("a.npy", r"a single NumPy array \(\.npy\)"),
                       ("objects.npy", r"a single NumPy array \(\.npy\)"),
                       ("noise.npz", "not a zip archive"), ("pickle.npz", "not a zip archive"),
                       ("objects.npz", "holds Python objects"), ("folder.npz", "a directory")]:
        with pytest.raises(ValueError) as info:
            load_model(tmp_path / name)
        message = str(info.value)
        assert f"cannot read {tmp_path / name}" in message
        assert "expected a spherenet model file (a .npz archive written by Sequential.save)" in message
        assert re.search(what, message), message
        assert "allow_pickle" not in message


# --- 6. Layer.get_weights / set_weights ------------------------------------------------------------


def test_layer_get_and_set_weights_as_in_keras():
    model = toy_model()
    dense, dropout, out = model.layers
    kernel, bias, kernel2, bias2 = model.get_weights()
    assert_same_weights(dense.get_weights(), [kernel, bias])
    assert_same_weights(out.get_weights(), [kernel2, bias2])
    assert dropout.get_weights() == []
    new_kernel = _column_normalized(np.arange(1.0, 13.0).reshape(3, 4)).astype(np.float32)
    dense.set_weights([new_kernel, bias + 1])
    assert_same_weights(model.get_weights(), [new_kernel, bias + 1, kernel2, bias2])
    dense.get_weights()[0][:] = 0  # copies
    assert_same_weights(dense.get_weights(), [new_kernel, bias + 1])
    dropout.set_weights([])


def test_layer_weights_errors_change_nothing():
    model = toy_model()
    dense, dropout, out = model.layers
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"layer 'dense' has 2 weight arrays \(kernel, bias\), got 1"):
        dense.set_weights([before[0]])
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        dense.set_weights([before[0] * 2, before[1]])
    with pytest.raises(ValueError, match=r"dense_1/bias has 1 NaN or infinite"):
        out.set_weights([before[2], np.array([np.nan], np.float32)])
    with pytest.raises(ValueError, match=r"dense_1/kernel has shape \(4, 1\), got \(1, 4\)"):
        out.set_weights([before[2].T, before[3]])
    with pytest.raises(TypeError, match="must be an array of floats.*got dtype complex64"):
        out.set_weights([before[2] + 0j, before[3]])
    with pytest.raises(TypeError, match="takes a list of arrays, got ndarray"):
        out.set_weights(before[2])
    with pytest.raises(TypeError, match=r"takes a list of arrays \(kernel, bias, ...\), got ndarray"):
        model.set_weights(np.zeros(4))
    model.set_weights(iter(before))  # any iterable of arrays, as before
    with pytest.raises(ValueError, match="layer 'dropout' has no weights"):
        dropout.set_weights([before[3]])
    with pytest.raises(ValueError, match="they live in the model; add the layer"):
        Dense(2).get_weights()
    assert_same_weights(before, model.get_weights())


def test_model_set_weights_is_all_or_nothing_and_checks_dtype():
    model = toy_model(dtype="float64", dropout=False)
    before = model.get_weights()
    new = [w + 0.5 for w in before]
    new[0] = _column_normalized(new[0])
    for bad_index, bad, error, match in [
        (3, np.array(["a"]), TypeError, "dense_1/bias must be an array of floats.*<U1"),
        (3, np.array([True]), TypeError, "dense_1/bias must be an array of floats.*bool"),
        (2, np.full((4, 1), 1e39, np.float64), None, None),  # finite in float64: fine
        (3, np.array([np.inf]), ValueError, "dense_1/bias has 1 NaN or infinite"),
        (0, new[0] * 1.01, ValueError, "dense/kernel must lie on Oblique"),
    ]:
        trial = list(new)
        trial[bad_index] = bad
        if error is None:
            continue
        with pytest.raises(error, match=match):
            model.set_weights(trial)
        assert_same_weights(before, model.get_weights())
    narrow = toy_model(dtype="float32", dropout=False)
    trial = narrow.get_weights()
    trial[3] = np.array([1e39])
    with pytest.raises(ValueError, match=r"dense_1/bias has 1 value\(s\) beyond the range of the "
                                         r"model's dtype float32"):
        narrow.set_weights(trial)
    model.set_weights(new)
    assert_same_weights(new, model.get_weights())


# --- 7. random malformed input: an error with a message, or the right answer -----------------------


def _reference_forward(weights, x):
    """The toy model (no dropout) in plain float64 NumPy: logits of the output."""
    k, b, k2, b2 = (np.asarray(w, np.float64) for w in weights)
    return np.tanh(np.asarray(x, np.float64) @ k + b) @ k2 + b2


def _reference_bce(weights, x, y):
    z = _reference_forward(weights, x)[:, 0]
    return float(np.mean(np.logaddexp(0.0, z) - z * np.asarray(y, np.float64).reshape(-1)))


_MODELS = {}


def _fresh(dtype):
    """A compiled toy model (no dropout) with fixed weights, cheap to copy."""
    if dtype not in _MODELS:
        _MODELS[dtype] = toy_model(dtype=dtype, dropout=False).get_weights()
    model = toy_model(dtype=dtype, dropout=False)
    model.set_weights(_MODELS[dtype])
    return model


@st.composite
def _arrays(draw, shape, base=None):
    """An array meant to be of ``shape`` (a valid base, then maybe one malformation)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    a = rng.standard_normal(shape) if base is None else np.array(base, np.float64)
    kind = draw(st.sampled_from(["valid", "float32", "float16", "int", "bool", "complex", "str",
                                 "object", "nan", "inf", "huge", "huge64", "empty", "shape",
                                 "axis", "list", "scalar"]))
    if kind == "float32":
        a = a.astype(np.float32)
    elif kind == "float16":
        a = a.astype(np.float16)
    elif kind == "int":
        a = np.round(a * 3).astype(np.int64)
    elif kind == "bool":
        a = a > 0
    elif kind == "complex":
        a = a + 1j
    elif kind == "str":
        a = a.astype(str)
    elif kind == "object":
        a = a.astype(object)
    elif kind in ("nan", "inf", "huge", "huge64") and a.size:
        a = a.copy()
        a.flat[draw(st.integers(0, a.size - 1))] = {
            "nan": np.nan, "inf": -np.inf, "huge": 1e39, "huge64": 1e308}[kind]
    elif kind == "empty":
        a = a[:0]
    elif kind == "shape":
        a = rng.standard_normal(tuple(n + draw(st.integers(1, 2)) for n in shape))
    elif kind == "axis":
        a = a.reshape(shape + (1,))
    elif kind == "list":
        a = a.tolist()
    elif kind == "scalar":
        a = np.float64(1.5)
    return a


def _refused_cleanly(call, model, before):
    """Run ``call``: True if it raised ValueError/TypeError with a message, weights intact."""
    try:
        call()
    except (ValueError, TypeError) as err:
        assert str(err), "an error without a message"
        assert_same_weights(before, model.get_weights())
        return True
    return False


@pytest.mark.parametrize("op", ["predict", "evaluate", "fit", "set_weights", "load_weights"])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dtype=st.sampled_from(["float32", "float64"]), data=st.data())
def test_malformed_input_is_refused_with_a_message_or_answered_correctly(tmp_path_factory, dtype,
                                                                          op, data):
    model = _fresh(dtype)
    before = model.get_weights()
    eps = EPS[np.dtype(dtype).type]
    n = data.draw(st.integers(1, 6))
    if op in ("predict", "evaluate", "fit"):
        x = data.draw(_arrays((n, 3)))
        y = data.draw(_arrays((n,))) if op != "predict" else None
        if isinstance(y, np.ndarray) and y.dtype.kind == "f":
            y = np.where(np.isfinite(y), y > 0, y)  # targets in range, unless malformed
        with warnings.catch_warnings():
            warnings.simplefilter("error", NonFiniteLossWarning)
            if op == "predict":
                call = lambda: model.predict(x)  # noqa: E731
            elif op == "evaluate":
                call = lambda: model.evaluate(x, y)  # noqa: E731
            else:
                call = lambda: model.fit(x, y, epochs=1, batch_size=4, verbose=0, seed=0)  # noqa: E731
            try:
                refused = _refused_cleanly(call, model, before)
            except NonFiniteLossWarning:
                raise AssertionError("accepted data whose loss is not finite") from None
        if refused:
            return
        xs = np.asarray(x, dtype=np.float64)
        assert xs.shape == (n, 3) and np.all(np.isfinite(xs.astype(dtype)))
        if op == "predict":
            z = _reference_forward(before, xs)
            expected = 1.0 / (1.0 + np.exp(-z))
            np.testing.assert_allclose(model.predict(x), expected, rtol=50 * eps, atol=50 * eps)
        elif op == "evaluate":
            # the data as the model holds it: x and y cast to its dtype
            xd, yd = xs.astype(dtype), np.asarray(y).astype(dtype)
            assert np.all((yd >= 0) & (yd <= 1))
            expected = _reference_bce(before, xd, yd)
            assert math.isclose(model.evaluate(x, y), expected, rel_tol=200 * eps,
                                abs_tol=200 * eps)
        else:
            weights = model.get_weights()
            assert all(w.dtype == np.dtype(dtype) and np.all(np.isfinite(w)) for w in weights)
            assert model.constraint_violations()["dense/kernel"] <= 10 * eps
        return
    # weights: one array of the four malformed, maybe a kernel off the sphere
    index = data.draw(st.integers(0, 3))
    weights = list(before)
    base = before[index].astype(np.float64)
    if index == 0:
        base = _column_normalized(base)  # on the sphere at float64's precision
    candidate = data.draw(_arrays(before[index].shape, base))
    if index == 0 and data.draw(st.booleans()):
        candidate = base * data.draw(st.sampled_from([1 + 1e-3, 0.5, 1e-300, 1e300]))
    weights[index] = candidate
    if op == "set_weights":
        if _refused_cleanly(lambda: model.set_weights(weights), model, before):
            return
        new = model.get_weights()
        path = tmp_path_factory.mktemp("s") / "m.npz"
        model.save(path)  # what was accepted is saved and loaded bit for bit
        assert_same_weights(new, load_model(path).get_weights())
    else:
        path = tmp_path_factory.mktemp("w") / "m.npz"
        arrays = {f"weight_{i:03d}": np.asarray(w) for i, w in enumerate(weights)
                  if not (isinstance(w, np.ndarray) and w.dtype == object)}
        if len(arrays) < 4 or any(a.dtype.kind in "OU" for a in arrays.values()):
            return  # not writable as a model file
        spec = {"format": "spherenet.nn.Sequential/1", "model": model.get_config(),
                "weights": [{"name": name, "shape": list(np.shape(w))}
                            for name, w in zip(model.weight_names, weights)], "compile": None}
        arrays["architecture"] = np.array(json.dumps(spec))
        np.savez(path, **arrays)
        raw = path.read_bytes()
        refused = _refused_cleanly(lambda: model.load_weights(path), model, before)
        assert path.read_bytes() == raw
        try:  # load_model decides alike
            whole = load_model(path).get_weights()
        except (ValueError, TypeError) as err:
            assert refused and str(err)
        else:
            assert not refused
            assert_same_weights(whole, model.get_weights())
        assert path.read_bytes() == raw
        if refused:
            return
        new = model.get_weights()
    # accepted: every array is the given one, cast (the kernel, if its dtype changed,
    # renormalized); the kernel is on its manifold
    given_arrays = [np.asarray(w) for w in weights]
    for got, sent in zip(new, given_arrays):
        assert got.dtype == np.dtype(dtype) and got.shape == sent.shape
        # accepted kernels are within 1e3 eps of the sphere at the coarser precision
        # (renormalizing moves them that much at most); everything else is only rounded
        coarse = max(eps, float(np.finfo(sent.dtype).eps) if sent.dtype.kind == "f" else 0.0)
        np.testing.assert_allclose(got, sent.astype(np.float64), rtol=2e3 * coarse,
                                   atol=2e3 * coarse)
    assert model.constraint_violations()["dense/kernel"] <= 4 * eps
