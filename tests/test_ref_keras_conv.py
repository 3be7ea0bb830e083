"""A Keras 3 training run of a small CNN with unit-norm filters, reproduced step by step.

``tests/data/keras_conv2d_unit_norm.npz`` was recorded by
``bench/keras_reference_conv.py`` (Keras 3 on the PyTorch backend): a
``Conv2D(4, 3, strides=2, padding="same", activation="relu",
kernel_constraint=UnitNorm(axis=[0, 1, 2]))`` on 7x6x2 images (asymmetric
"same" padding), ``MaxPooling2D(2, padding="same")``, ``Flatten``,
``Dense(3, softmax)``, ``SGD(0.1, momentum=0.9)``, batches of 4 without
shuffling, 10 steps. The same network in spherenet.nn under
``strategy="projection"`` (Keras's ``w / (1e-7 + ||w||)`` after each step)
follows it to float32 rounding at every step.
"""

import os

import numpy as np
import pytest

from spherenet.nn import Conv2D, Dense, Flatten, MaxPooling2D, Sequential, unit_norm
from spherenet.optim import RSGD

PATH = os.path.join(os.path.dirname(__file__), "data", "keras_conv2d_unit_norm.npz")
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture(scope="module")
def reference():
    with np.load(PATH, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def keras_model(weights):
    model = Sequential([
        Conv2D(4, 3, strides=2, padding="same", activation="relu",
               kernel_constraint=unit_norm(axis=[0, 1, 2]), input_shape=(7, 6, 2)),
        MaxPooling2D(2, padding="same"),
        Flatten(),
        Dense(3, activation="softmax"),
    ])
    model.set_weights(weights)
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="sparse_categorical_crossentropy",
                  strategy="projection")
    return model


def test_projection_reproduces_a_keras_run_step_by_step(reference):
    x, y = reference["x"], reference["y"]
    model = keras_model([reference[f"initial_{i}"] for i in range(4)])
    steps = sum(1 for k in reference if k.startswith("step_") and k.endswith("_0"))
    assert steps == 10
    for k in range(1, steps + 1):
        lo = (k - 1) % 5 * 4
        # one batch per fit: the optimizer's state (momentum) carries over between fits
        model.fit(x[lo:lo + 4], y[lo:lo + 4], epochs=1, batch_size=4, shuffle=False, verbose=0)
        for i, got in enumerate(model.get_weights()):
            want = reference[f"step_{k}_{i}"]
            assert got.dtype == np.float32
            # two float32 implementations of the same arithmetic, in different orders:
            # a few eps of the weights' scale, growing slowly with the steps
            np.testing.assert_allclose(got, want, rtol=0, atol=8 * EPS32 * np.max(np.abs(want)),
                                       err_msg=f"step {k}, weight {i}")
    # the filters moved far beyond that tolerance, and are (Keras's) unit vectors
    kernel = model.get_weights()[0].astype(np.float64)
    assert np.max(np.abs(kernel - reference["initial_0"])) > 0.05
    np.testing.assert_allclose(np.sqrt(np.sum(kernel ** 2, axis=(0, 1, 2))), 1.0 - 1e-7,
                               rtol=0, atol=2 * EPS32)


def test_one_fit_of_two_epochs_ends_where_keras_ended(reference):
    model = keras_model([reference[f"initial_{i}"] for i in range(4)])
    model.fit(reference["x"], reference["y"], epochs=2, batch_size=4, shuffle=False, verbose=0)
    for i, got in enumerate(model.get_weights()):
        want = reference[f"step_10_{i}"]
        np.testing.assert_allclose(got, want, rtol=0, atol=8 * EPS32 * np.max(np.abs(want)))
