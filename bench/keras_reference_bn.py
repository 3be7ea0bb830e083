"""Keras's BatchNormalization and LayerNormalization on a tiny network, recorded for a parity test.

Builds, in Keras 3, the network

    Dense(5) -> BatchNormalization -> Activation("relu") -> Dense(4)
             -> LayerNormalization -> Dense(1)

on inputs of 3 features, with initial weights drawn by NumPy from a fixed
seed (random gamma, beta and moving statistics, so that inference mode is
not the identity), and records in ``tests/data/keras_bn_reference.npz``:

* ``x``, ``y``: 32 samples and targets;
* ``init_<k>``: the initial weights, in Keras's order (kernel, bias; gamma,
  beta, moving_mean, moving_variance; ...);
* ``out_inference``: ``model(x, training=False)``;
* ``out_training``: ``model(x, training=True)`` (batch statistics), and
  ``called_<k>``: the weights after that call, which updates the moving
  statistics as a training call does in Keras;
* ``step<s>_<k>``: the weights after each of the 8 SGD steps (lr 0.1, no
  momentum, mse loss, batch size 8, two epochs, ``shuffle=False``) of
  ``fit`` from the initial weights;
* ``loss``: the loss logged after each epoch;
* ``wd_step<s>_<k>``, ``wd_loss``: the same fit with the first Dense given
  ``kernel_regularizer=L2(0.01)`` and the optimizer
  ``SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.05)``: both kinds of
  weight decay, coupled (in the loss) and decoupled (in the optimizer).

``tests/test_nn_keras_parity.py`` reproduces all of it with spherenet.nn in
float32. To regenerate the data (needs Keras 3 with the torch backend)::

    KERAS_BACKEND=torch python bench/keras_reference_bn.py

run from the repository's root; it prints the file written.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import numpy as np  # noqa: E402

SEED = 20261127
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "tests", "data",
                   "keras_bn_reference.npz")


def initial_weights(rng):
    """Float32 weights in Keras's order for the network above."""
    f = np.float32
    w = []
    w += [rng.standard_normal((3, 5)).astype(f), (0.1 * rng.standard_normal(5)).astype(f)]
    w += [(1 + 0.2 * rng.standard_normal(5)).astype(f), (0.1 * rng.standard_normal(5)).astype(f),
          (0.3 * rng.standard_normal(5)).astype(f), rng.uniform(0.5, 2.0, 5).astype(f)]
    w += [rng.standard_normal((5, 4)).astype(f), (0.1 * rng.standard_normal(4)).astype(f)]
    w += [(1 + 0.2 * rng.standard_normal(4)).astype(f), (0.1 * rng.standard_normal(4)).astype(f)]
    w += [rng.standard_normal((4, 1)).astype(f), (0.1 * rng.standard_normal(1)).astype(f)]
    return w


def data(rng):
    x = (2.0 * rng.standard_normal((32, 3)) + 0.5).astype(np.float32)
    y = (np.sin(x[:, :1]) + 0.1 * x[:, 1:2]).astype(np.float32)
    return x, y


def main():
    import keras

    rng = np.random.default_rng(SEED)
    init = initial_weights(rng)
    x, y = data(rng)

    def build(regularizer=None):
        model = keras.Sequential([
            keras.Input((3,)),
            keras.layers.Dense(5, kernel_regularizer=regularizer),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("relu"),
            keras.layers.Dense(4),
            keras.layers.LayerNormalization(),
            keras.layers.Dense(1),
        ])
        model.set_weights(init)
        return model

    record = {"x": x, "y": y}
    record.update({f"init_{k}": w for k, w in enumerate(init)})
    model = build()
    record["out_inference"] = np.asarray(model(x, training=False).detach().cpu().numpy())
    record["out_training"] = np.asarray(model(x, training=True).detach().cpu().numpy())
    record.update({f"called_{k}": w for k, w in enumerate(model.get_weights())})

    def fit(model, optimizer, prefix):
        model.compile(optimizer=optimizer, loss="mse")
        steps = []

        class Record(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                steps.append([np.array(w) for w in self.model.get_weights()])

        history = model.fit(x, y, epochs=2, batch_size=8, shuffle=False, verbose=0,
                            callbacks=[Record()])
        for s, weights in enumerate(steps):
            record.update({f"{prefix}step{s}_{k}": w for k, w in enumerate(weights)})
        record[f"{prefix}loss"] = np.array(history.history["loss"], dtype=np.float64)
        return steps

    steps = fit(build(), keras.optimizers.SGD(learning_rate=0.1), "")
    fit(build(keras.regularizers.L2(0.01)),
        keras.optimizers.SGD(learning_rate=0.1, momentum=0.9, weight_decay=0.05), "wd_")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    np.savez(OUT, **record)
    print(f"wrote {os.path.normpath(OUT)}: {len(steps)} steps, keras {keras.__version__}, "
          f"backend {keras.backend.backend()}")


if __name__ == "__main__":
    main()
