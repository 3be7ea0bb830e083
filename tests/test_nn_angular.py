"""AngularTelemetry and the equilibrium angular update of SGD on scale-invariant weights.

The angles are checked against arccos of consecutive normalized kernels
computed in NumPy from the weights after each step; the equilibrium
sqrt(2 eta lambda / (1 + mu)) (Wan et al. 2021) against its closed form and
a short training run.
"""

import math

import numpy as np
import pytest

from spherenet.nn import (Activation, AngularTelemetry, BatchNormalization, Dense, Sequential,
                          equilibrium_angular_update, unit_norm)
from spherenet.optim import RSGD

EPS64 = np.finfo(np.float64).eps


def bn_net(constraint=None):
    return Sequential([Dense(6, input_dim=4, use_bias=False, kernel_constraint=constraint),
                       BatchNormalization(), Activation("relu"), Dense(2, activation="softmax")],
                      dtype="float64", seed=0)


def data():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 4))
    return x, (x[:, 0] * x[:, 1] > 0).astype(int)


def stepwise(model, telemetry, steps, batch=8):
    """Fit one batch at a time; the kernel of the first layer before and after every step."""
    x, y = data()
    kernels = [model.get_weights()[0]]
    for step in range(steps):
        lo = (step * batch) % len(x)
        model.fit(x[lo:lo + batch], y[lo:lo + batch], epochs=1, batch_size=batch, verbose=0,
                  callbacks=[telemetry])
        kernels.append(model.get_weights()[0])
    return kernels


def arccos_angles(a, b):
    ua, ub = a / np.linalg.norm(a, axis=0), b / np.linalg.norm(b, axis=0)
    return np.arccos(np.clip(np.sum(ua * ub, axis=0), -1.0, 1.0))


@pytest.mark.parametrize("strategy", ["none", "riemannian", "projection"])
def test_angles_norms_and_effective_lr_match_numpy(strategy):
    model = bn_net(None if strategy == "none" else unit_norm())
    model.compile(optimizer=RSGD(lr=0.3, momentum=0.5, weight_decay=0.01),
                  loss="sparse_categorical_crossentropy", strategy=strategy)
    telemetry = AngularTelemetry(layers=["dense"])
    kernels = stepwise(model, telemetry, 6)
    assert list(telemetry.angles) == ["dense/kernel"]
    angles = telemetry.angles["dense/kernel"]
    assert angles.shape == (6, 6)
    for step in range(6):
        expected = arccos_angles(kernels[step], kernels[step + 1])
        # arccos loses digits for small angles: its error is about eps / angle
        np.testing.assert_allclose(angles[step], expected, rtol=0, atol=1e-7)
    assert np.all(angles > 1e-4)  # the steps did move the kernel
    norms = np.array([np.linalg.norm(k, axis=0) for k in kernels[1:]])
    np.testing.assert_allclose(telemetry.norms["dense/kernel"], norms, rtol=10 * EPS64)
    np.testing.assert_array_equal(telemetry.lr, np.full(6, 0.3))
    np.testing.assert_allclose(telemetry.effective_lr["dense/kernel"], 0.3 / norms ** 2,
                               rtol=20 * EPS64)
    if strategy == "riemannian":
        np.testing.assert_allclose(norms, 1.0, atol=1e-14)
    elif strategy == "projection":  # Keras's w / (1e-7 + |w|)
        np.testing.assert_allclose(norms, 1.0 - 1e-7, atol=1e-14)


def test_reparam_measures_the_unnormalized_variable():
    model = bn_net(unit_norm())
    model.compile(optimizer=RSGD(lr=0.5), loss="sparse_categorical_crossentropy",
                  strategy="reparam")
    telemetry = AngularTelemetry(layers=["dense"])
    x, y = data()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[telemetry], seed=0)
    norms = telemetry.norms["dense/kernel"]
    # the gradient of w = v/|v| is orthogonal to v, so |v| only grows: |v|^2 gains lr^2 |g|^2
    assert np.all(np.diff(norms, axis=0) >= -1e-15) and np.all(norms[-1] > 1.0)
    np.testing.assert_allclose(np.linalg.norm(model.get_weights()[0], axis=0), 1.0, atol=1e-14)


def test_telemetry_follows_every_kernel_by_default_and_refuses_unknown_layers():
    model = bn_net()
    model.compile(optimizer=RSGD(lr=0.1), loss="sparse_categorical_crossentropy")
    telemetry = AngularTelemetry()
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=10, verbose=0, callbacks=[telemetry])
    assert sorted(telemetry.angles) == ["dense/kernel", "dense_1/kernel"]
    assert telemetry.angles["dense_1/kernel"].shape == (4, 2)
    with pytest.raises(ValueError, match=r"no layer named \['nonesuch'\]"):
        model.fit(x, y, verbose=0, callbacks=[AngularTelemetry(layers=["nonesuch"])])
    with pytest.raises(TypeError, match="list of layer names"):
        AngularTelemetry(layers="dense")
    with pytest.raises(TypeError, match="axis must be an int or a tuple of ints"):
        AngularTelemetry(axis="columns")


def test_rows_as_factors_with_axis_1():
    model = bn_net()
    model.compile(optimizer=RSGD(lr=0.2), loss="sparse_categorical_crossentropy")
    telemetry = AngularTelemetry(layers=["dense"], axis=1)
    kernels = stepwise(model, telemetry, 2)
    assert telemetry.angles["dense/kernel"].shape == (2, 4)  # one angle per row
    np.testing.assert_allclose(telemetry.angles["dense/kernel"][1],
                               arccos_angles(kernels[1].T, kernels[2].T), rtol=0, atol=1e-7)


def test_equilibrium_formula_and_its_input_checks():
    assert equilibrium_angular_update(0.1, 5e-4) == pytest.approx(math.sqrt(1e-4), rel=EPS64)
    assert equilibrium_angular_update(0.2, 1e-3, 0.9) == pytest.approx(math.sqrt(4e-4 / 1.9),
                                                                       rel=EPS64)
    assert equilibrium_angular_update(0.2, 0.0) == 0.0
    with pytest.raises(ValueError, match=r"momentum must be in \[0, 1\)"):
        equilibrium_angular_update(0.1, 1e-3, 1.0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        equilibrium_angular_update(0.0, 1e-3)
    with pytest.raises(ValueError, match="weight_decay must be >= 0"):
        equilibrium_angular_update(0.1, -1e-3)
    with pytest.raises(TypeError, match="lr must be a finite number"):
        equilibrium_angular_update(None, 1e-3)


def test_sgd_with_weight_decay_settles_at_the_predicted_angular_update():
    # 640 steps of a 8-16(BN)-2 network, long enough (time scale (1 - mu) / (2 eta lambda)
    # = 100 steps) for the kernel norms to reach equilibrium; the measured RMS angle of the
    # last 200 steps is then within 10% of the prediction (it was 0.95 of it when written)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((256, 8))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    model = Sequential([Dense(16, input_dim=8, use_bias=False), BatchNormalization(),
                        Activation("relu"), Dense(2, activation="softmax")], seed=0)
    lr, wd, mu = 0.1, 5e-3, 0.9
    model.compile(optimizer=RSGD(lr=lr, momentum=mu, weight_decay=wd),
                  loss="sparse_categorical_crossentropy", strategy="none")
    telemetry = AngularTelemetry(layers=["dense"])
    model.fit(x, y, epochs=40, batch_size=16, verbose=0, callbacks=[telemetry], seed=0)
    angles = telemetry.angles["dense/kernel"]
    measured = math.sqrt(np.mean(angles[-200:] ** 2))
    predicted = equilibrium_angular_update(lr, wd, mu)
    assert 0.9 < measured / predicted < 1.1
    # and it is an equilibrium of the norm, not of the angle alone: the norm stopped moving
    norms = telemetry.norms["dense/kernel"].mean(axis=1)
    assert abs(norms[-1] / norms[-200] - 1) < 0.1
