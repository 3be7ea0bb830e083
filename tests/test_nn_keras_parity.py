"""BatchNormalization and LayerNormalization against Keras 3, from data Keras recorded.

``tests/data/keras_bn_reference.npz`` was written by
``bench/keras_reference_bn.py`` (Keras 3, torch backend; its docstring says
how to regenerate it): a Dense-BN-ReLU-Dense-LN-Dense network with given
float32 weights, its outputs in inference and training mode, the weights
(moving statistics included) after a training call, and after each of 8
SGD steps of ``fit``. spherenet reproduces all of it to float32 rounding.
"""

import os

import numpy as np
import pytest

from spherenet.nn import Activation, BatchNormalization, Dense, LayerNormalization, Sequential
from spherenet.optim import RSGD

EPS32 = float(np.finfo(np.float32).eps)
DATA = os.path.join(os.path.dirname(__file__), "data", "keras_bn_reference.npz")


@pytest.fixture(scope="module")
def ref():
    with np.load(DATA) as data:
        return {k: data[k] for k in data.files}


def build(ref):
    model = Sequential([Dense(5, input_dim=3), BatchNormalization(), Activation("relu"), Dense(4),
                        LayerNormalization(), Dense(1)])
    model.set_weights([ref[f"init_{k}"] for k in range(12)])
    return model


def assert_weights_close(actual, ref, prefix, factor):
    """Each weight to ``factor`` float32 eps, relative to max(1, its largest entry)."""
    for k, a in enumerate(actual):
        expected = ref[f"{prefix}_{k}"]
        assert a.dtype == np.float32 and a.shape == expected.shape
        scale = max(1.0, float(np.abs(expected).max()))
        np.testing.assert_allclose(a, expected, rtol=0, atol=factor * EPS32 * scale,
                                   err_msg=f"{prefix}, weight {k}")


def test_inference_and_training_outputs_match_keras(ref):
    model = build(ref)
    x = ref["x"]
    out = model(x, training=False)
    assert out.dtype == np.float32
    scale = float(np.abs(ref["out_inference"]).max())
    # a few roundings in each of 6 layers: 8 eps of the largest output
    np.testing.assert_allclose(out, ref["out_inference"], rtol=0, atol=8 * EPS32 * scale)
    # the training call uses the batch's statistics and moves the moving ones, as Keras's
    out = model(x, training=True)
    np.testing.assert_allclose(out, ref["out_training"], rtol=0,
                               atol=8 * EPS32 * float(np.abs(ref["out_training"]).max()))
    assert_weights_close(model.get_weights(), ref, "called", 2)
    # and the moving statistics did move (the test would not see a missing update otherwise)
    assert np.max(np.abs(ref["called_4"] - ref["init_4"])) > 1e-3


def test_sgd_steps_match_keras_weights_and_moving_statistics(ref):
    model = build(ref)
    model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    x, y = ref["x"], ref["y"]
    losses = []
    for step in range(8):
        lo = (step % 4) * 8  # fit(epochs=2, batch_size=8, shuffle=False), one batch at a time
        history = model.fit(x[lo:lo + 8], y[lo:lo + 8], epochs=1, batch_size=8, shuffle=False,
                            verbose=0)
        losses.append(history.history["loss"][0])
        # rounding grows a little with every step: 4 eps of max(1, |w|) after 8 steps
        assert_weights_close(model.get_weights(), ref, f"step{step}", 4)
    np.testing.assert_allclose([np.mean(losses[:4]), np.mean(losses[4:])], ref["loss"],
                               rtol=20 * EPS32)


def test_both_kinds_of_weight_decay_match_keras(ref):
    # Keras: Dense(5, kernel_regularizer=L2(0.01)) (coupled, in the loss) and
    # SGD(0.1, momentum=0.9, weight_decay=0.05) (decoupled, every trainable weight)
    from spherenet.nn import L2
    from spherenet.optim import DecoupledWeightDecay

    model = Sequential([Dense(5, input_dim=3, kernel_regularizer=L2(0.01)), BatchNormalization(),
                        Activation("relu"), Dense(4), LayerNormalization(), Dense(1)])
    model.set_weights([ref[f"init_{k}"] for k in range(12)])
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=0.1, momentum=0.9), 0.05), loss="mse")
    x, y = ref["x"], ref["y"]
    losses = []
    for step in range(8):
        lo = (step % 4) * 8
        history = model.fit(x[lo:lo + 8], y[lo:lo + 8], epochs=1, batch_size=8, shuffle=False,
                            verbose=0)
        losses.append(history.history["loss"][0])
        assert_weights_close(model.get_weights(), ref, f"wd_step{step}", 8)
    # the regularization term is part of the logged loss, as in Keras
    np.testing.assert_allclose([np.mean(losses[:4]), np.mean(losses[4:])], ref["wd_loss"],
                               rtol=20 * EPS32)
