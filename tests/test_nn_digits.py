"""scikit-learn's digits (ships with scikit-learn, offline): a 64-256-256-10 network with
unit-norm hidden kernels reaches >= 97% test accuracy, with every column still of norm 1."""

import time

import numpy as np
import pytest

from spherenet.nn import Dense, Sequential, unit_norm
from spherenet.optim import RSGD

datasets = pytest.importorskip("sklearn.datasets")


def digits_split(seed=0, test_fraction=0.25):
    digits = datasets.load_digits()
    x, y = digits.data / 16.0, digits.target
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train = int(round(len(x) * (1 - test_fraction)))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def digits_model(strategy="riemannian"):
    model = Sequential(seed=0)
    model.add(Dense(256, input_dim=64, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(256, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], strategy=strategy)
    return model


def test_digits_64_256_256_10_reaches_97_percent():
    (x_train, y_train), (x_test, y_test) = digits_split()
    model = digits_model()
    start = time.perf_counter()
    history = model.fit(x_train, y_train, epochs=10, batch_size=32, verbose=0, seed=0)
    seconds = time.perf_counter() - start
    loss, accuracy = model.evaluate(x_test, y_test)
    print(f"digits: test accuracy {accuracy:.4f} after {seconds:.1f} s of training")
    assert accuracy >= 0.97
    for name in ("dense/kernel", "dense_1/kernel"):
        assert history.history[f"{name}_violation"][-1] <= 1e-6
    for kernel in model.get_weights()[0:4:2]:
        norms = np.linalg.norm(kernel.astype(np.float64), axis=0)
        assert np.max(np.abs(norms - 1.0)) <= 1e-6
