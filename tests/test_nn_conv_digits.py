"""scikit-learn's 8x8 digits (offline): a small CNN whose filters are unit vectors reaches
>= 98.5% test accuracy under the riemannian and the projection strategies, in seconds.

Conv2D(32, 3, same, relu) -> Conv2D(32, 3, same, relu) -> MaxPooling2D(2) -> Flatten ->
Dense(128, relu) -> Dense(10, softmax); every convolution filter on its sphere
(``unit_norm(axis=[0, 1, 2])``), every column of the hidden Dense kernel too;
RSGD(momentum 0.9) with a cosine-decayed learning rate, 10 epochs of batches of 32.
Over 5 initialization seeds x 3 splits this network scored 98.7% to 99.6% under
both strategies (mean 99.1%); the test runs one of them.
"""

import numpy as np
import pytest

from spherenet.nn import Conv2D, Dense, Flatten, MaxPooling2D, Sequential, unit_norm
from spherenet.optim import RSGD
from spherenet.optim.schedules import cosine_decay

datasets = pytest.importorskip("sklearn.datasets")
threadpoolctl = pytest.importorskip("threadpoolctl")  # a dependency of scikit-learn

EPOCHS, BATCH = 10, 32


def digits_images(seed=0, test_fraction=0.25):
    digits = datasets.load_digits()
    x, y = digits.images[..., None] / 16.0, digits.target
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    n_train = int(round(len(x) * (1 - test_fraction)))
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


def digits_cnn(strategy, steps, seed=0):
    filters = unit_norm(axis=[0, 1, 2])
    model = Sequential([
        Conv2D(32, 3, padding="same", activation="relu", kernel_constraint=filters,
               input_shape=(8, 8, 1)),
        Conv2D(32, 3, padding="same", activation="relu", kernel_constraint=filters),
        MaxPooling2D(2),
        Flatten(),
        Dense(128, activation="relu", kernel_constraint=unit_norm()),
        Dense(10, activation="softmax"),
    ], seed=seed)
    model.compile(optimizer=RSGD(lr=cosine_decay(0.05, steps), momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"], strategy=strategy)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["riemannian", "projection"])
def test_digits_cnn_with_unit_norm_filters_reaches_98_5_percent(strategy):
    (x_train, y_train), (x_test, y_test) = digits_images()
    steps = EPOCHS * -(-len(x_train) // BATCH)
    model = digits_cnn(strategy, steps)
    # One BLAS thread: these GEMMs are small (2048 x 288 by 288 x 32), and on a busy machine
    # threads that wait for a second core make the run ten times slower, not faster.
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        history = model.fit(x_train, y_train, epochs=EPOCHS, batch_size=BATCH, verbose=0, seed=0)
    _, accuracy = model.evaluate(x_test, y_test)
    assert accuracy >= 0.985
    kernels = model.get_weights()
    for kernel in kernels[0:4:2]:
        norms = np.sqrt(np.sum(kernel.astype(np.float64) ** 2, axis=(0, 1, 2)))
        # riemannian: on the sphere to float32 rounding; projection: Keras's 1 / (1 + 1e-7)
        target = 1.0 if strategy == "riemannian" else 1.0 - 1e-7
        np.testing.assert_allclose(norms, target, rtol=0, atol=4e-7)
    assert history.history["conv2d/kernel_violation"][-1] <= 4e-7
