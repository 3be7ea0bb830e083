"""Saving and loading spherenet.nn models: round trips, atomic writes, clear errors."""

import json
import os
import zipfile

import numpy as np
import pytest

from spherenet import Sphere
from spherenet.nn import Dense, Dropout, Flatten, Sequential, load_model, losses, unit_norm
from spherenet.optim import RAdam, RSGD


def small_model(seed=0, compiled=True, **compile_kwargs):
    model = Sequential(seed=seed, name="small")
    model.add(Flatten(input_shape=(2, 2)))
    model.add(Dense(5, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dropout(0.25, seed=3))
    model.add(Dense(4, activation="tanh", kernel_manifold=Sphere(5, 4, retraction="projection")))
    model.add(Dense(3, activation="softmax", use_bias=False))
    if compiled:
        model.compile(**{"optimizer": RSGD(lr=0.05, momentum=0.9),
                         "loss": "sparse_categorical_crossentropy", "metrics": ["accuracy"],
                         **compile_kwargs})
    return model


def data(n=30):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 2, 2)), rng.integers(0, 3, n)


def test_round_trip_keeps_architecture_weights_and_compile(tmp_path):
    x, y = data()
    model = small_model()
    model.fit(x, y, epochs=2, verbose=0, seed=0)
    path = tmp_path / "model.npz"
    model.save(path)
    loaded = load_model(path)
    assert [type(a) for a in loaded.layers] == [type(a) for a in model.layers]
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.predict(x), loaded.predict(x))
    assert loaded.loss.name == "sparse_categorical_crossentropy"
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    loaded.fit(x, y, epochs=1, verbose=0, seed=0)  # compiled as saved: trains at once
    assert loaded.layers[3].params[0].manifold == Sphere(5, 4, retraction="projection")


def test_round_trip_of_other_compile_settings(tmp_path):
    model = small_model(optimizer=RAdam(lr=0.01, amsgrad=True), strategy="penalty",
                        strategy_options={"mu": 3.0},
                        loss=losses.SparseCategoricalCrossentropy(from_logits=False))
    model.save(tmp_path / "m.npz")
    loaded = load_model(tmp_path / "m.npz")
    compiled = loaded._compiled
    assert isinstance(compiled["rule"], RAdam) and compiled["rule"].amsgrad
    assert compiled["strategy"] == "penalty" and compiled["strategy_options"] == {"mu": 3.0}
    uncompiled = small_model(compiled=False)
    uncompiled.save(tmp_path / "u.npz")
    assert load_model(tmp_path / "u.npz")._compiled is None


def test_file_is_plain_npz_without_pickles(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    with np.load(path, allow_pickle=False) as f:
        assert "architecture" in f.files and "weight_000" in f.files
        config = json.loads(str(f["architecture"][()]))
    assert config["model"]["layers"][1]["kernel_constraint"] == {"name": "unit_norm", "axis": 0}
    assert [w["name"] for w in config["weights"]][:2] == ["dense/kernel", "dense/bias"]


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    model = small_model()
    model.save(path)
    before = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        small_model(seed=1).save(path)
    assert path.read_bytes() == before  # the old file is untouched
    assert os.listdir(tmp_path) == ["m.npz"]  # and no temporary file is left behind


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    raw = path.read_bytes()
    for size in (len(raw) // 2, 100, 0):
        cut = tmp_path / f"cut{size}.npz"
        cut.write_bytes(raw[:size])
        with pytest.raises(ValueError, match="cannot read .*cut"):
            load_model(cut)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.npz")


def test_missing_entries_are_clear_errors(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    with np.load(path) as f:
        entries = {k: f[k] for k in f.files}
    no_weight = {k: v for k, v in entries.items() if k != "weight_002"}
    np.savez(tmp_path / "no_weight.npz", **no_weight)
    with pytest.raises(ValueError, match=r"missing the weight entries \['weight_002'\]"):
        load_model(tmp_path / "no_weight.npz")
    np.savez(tmp_path / "no_arch.npz", **{k: v for k, v in entries.items() if k != "architecture"})
    with pytest.raises(ValueError, match="no 'architecture' entry"):
        load_model(tmp_path / "no_arch.npz")
    np.savez(tmp_path / "pickled.npz", architecture=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="cannot read"):
        load_model(tmp_path / "pickled.npz")


def test_incompatible_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    other = Sequential([Flatten(input_shape=(2, 2)), Dense(6, kernel_constraint=unit_norm()),
                        Dense(3, activation="softmax")])
    with pytest.raises(ValueError, match="incompatible architecture"):
        other.load_weights(path)
    same = small_model(seed=5)
    same.load_weights(path)
    for a, b in zip(same.get_weights(), load_model(path).get_weights()):
        np.testing.assert_array_equal(a, b)
    # a file whose constrained kernel was edited off its manifold
    with np.load(path) as f:
        entries = {k: f[k] for k in f.files}
    entries["weight_000"] = entries["weight_000"] * 3
    np.savez(tmp_path / "off.npz", **entries)
    with pytest.raises(ValueError, match="dense/kernel must lie on Oblique"):
        load_model(tmp_path / "off.npz")
    entries["weight_000"] = entries["weight_000"][:, :2]
    np.savez(tmp_path / "shape.npz", **entries)
    with pytest.raises(ValueError, match="has shape"):
        load_model(tmp_path / "shape.npz")


def test_unsavable_callables_are_reported(tmp_path):
    model = Sequential([Dense(2, input_dim=2, activation=lambda x: x)])
    with pytest.raises(ValueError, match="cannot be saved"):
        model.save(tmp_path / "m.npz")
    assert not any(p.suffix == ".npz" for p in tmp_path.iterdir())


def test_saved_file_is_a_zip_of_npy(tmp_path):
    path = tmp_path / "m.npz"
    small_model().save(path)
    assert zipfile.is_zipfile(path)
