"""Record a Keras 3 training run of a small CNN with unit-norm filters, as reference data.

The network: ``Conv2D(4, 3, strides=2, padding="same", activation="relu",
kernel_constraint=UnitNorm(axis=[0, 1, 2]))`` on 7x6 images of 2 channels
(TensorFlow's asymmetric "same" padding: (1, 1) rows, (0, 1) columns), then
``MaxPooling2D(2, padding="same")``, ``Flatten`` and ``Dense(3,
activation="softmax")``, trained by ``SGD(learning_rate=0.1, momentum=0.9)``
on sparse categorical cross-entropy, batches of 4, ``shuffle=False``, for
two epochs of 5 batches. The initial weights and the data come from NumPy
(seed 0); the initial kernel already has unit-norm filters. The file holds
the data, the initial weights and the weights after every step
(``step_<k>_<i>``, k = 1..10, i = kernel, bias, kernel, bias).

``tests/test_ref_keras_conv.py`` reproduces the run with spherenet.nn
(``strategy="projection"``, Keras's ``w / (1e-7 + ||w||)``) and compares
every step. Regenerate the file with Keras 3 and PyTorch installed::

    KERAS_BACKEND=torch python bench/keras_reference_conv.py tests/data/keras_conv2d_unit_norm.npz
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

SEED = 0
SAMPLES, HEIGHT, WIDTH, CHANNELS, FILTERS, CLASSES = 20, 7, 6, 2, 4, 3
BATCH, EPOCHS, LR, MOMENTUM = 4, 2, 0.1, 0.9


def initial_state(seed=SEED):
    """Data and initial weights, float32, from NumPy only."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((SAMPLES, HEIGHT, WIDTH, CHANNELS)).astype(np.float32)
    y = rng.integers(0, CLASSES, SAMPLES)
    kernel = rng.standard_normal((3, 3, CHANNELS, FILTERS))
    kernel /= np.sqrt(np.sum(kernel * kernel, axis=(0, 1, 2), keepdims=True))
    bias = 0.1 * rng.standard_normal(FILTERS)
    # (7, 6) --stride 2, same--> (4, 3) --pool 2, same--> (2, 2)
    dense_in = 2 * 2 * FILTERS
    dense = rng.uniform(-0.5, 0.5, (dense_in, CLASSES))
    dense_bias = 0.1 * rng.standard_normal(CLASSES)
    weights = [w.astype(np.float32) for w in (kernel, bias, dense, dense_bias)]
    return x, y, weights


def main(path):
    import keras

    x, y, weights = initial_state()
    model = keras.Sequential([
        keras.Input((HEIGHT, WIDTH, CHANNELS)),
        keras.layers.Conv2D(FILTERS, 3, strides=2, padding="same", activation="relu",
                            kernel_constraint=keras.constraints.UnitNorm(axis=[0, 1, 2])),
        keras.layers.MaxPooling2D(2, padding="same"),
        keras.layers.Flatten(),
        keras.layers.Dense(CLASSES, activation="softmax"),
    ])
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=LR, momentum=MOMENTUM),
                  loss="sparse_categorical_crossentropy")
    steps = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append([np.array(w, dtype=np.float32) for w in self.model.get_weights()])

    model.fit(x, y, batch_size=BATCH, epochs=EPOCHS, shuffle=False, verbose=0,
              callbacks=[Record()])
    arrays = {"x": x, "y": y}
    arrays.update({f"initial_{i}": w for i, w in enumerate(weights)})
    for k, ws in enumerate(steps, start=1):
        arrays.update({f"step_{k}_{i}": w for i, w in enumerate(ws)})
    arrays["versions"] = np.array(f"keras {keras.__version__}, backend {keras.backend.backend()}")
    tmp = f"{path}.tmp-{os.getpid()}.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)
    print(f"{path}: {len(steps)} steps, {arrays['versions']}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "keras_conv2d_unit_norm.npz")
