"""Network training as a problem of the harness: a thin adapter over :mod:`spherenet.nn`.

Only this module knows the network API (``Sequential``, ``Dense``,
``unit_norm``, ``compile``, ``evaluate``, ``fit`` with a callable callback,
``constraint_violations``). A row of the tidy table is an epoch: the loss and
accuracy on the whole training set at the epoch's end (so they are comparable
across strategies and include the starting point, epoch 0), the largest
constraint violation of the unit-norm kernels, and the training time (the
evaluations are not counted). Gradient norm and distance to an optimum are
NaN: no optimum is known.
"""

import math
import time
import warnings

import numpy as np

__all__ = ["NETWORKS", "network_available", "two_moons", "SeedNetwork", "Digits"]


def network_available(name=None):
    """``(True, "")`` or ``(False, reason)`` for the network problem ``name``."""
    try:
        import spherenet.nn  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any failure means "not available yet"
        return False, f"spherenet.nn is not importable ({type(err).__name__}: {err})"
    if name == "digits":
        try:
            import sklearn.datasets  # noqa: F401
        except ImportError:
            return False, "the digits data comes with scikit-learn: pip install scikit-learn"
    return True, ""


def two_moons(n, noise, rng):
    """Two interleaved half circles in the plane, labels 0 and 1."""
    rng = np.random.default_rng(rng)
    t = rng.uniform(0.0, np.pi, n)
    label = rng.integers(0, 2, n)
    upper = np.c_[np.cos(t), np.sin(t)]
    lower = np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)]
    x = np.where(label[:, None] == 0, upper, lower) + noise * rng.standard_normal((n, 2))
    return x, label


class _NetworkTask:
    """Data plus an architecture; :meth:`run` trains one model and returns its rows."""

    loss = None
    units = None
    output = None

    def __init__(self, hidden, batch_size, epochs, dtype, instance):
        self.hidden, self.batch_size, self.epochs = int(hidden), int(batch_size), int(epochs)
        self.dtype = np.dtype(dtype)
        self.x, self.y = self.data(np.random.default_rng(instance))

    def data(self, rng):
        raise NotImplementedError

    def model(self, seed):
        from ..nn import Dense, Sequential, unit_norm

        model = Sequential(seed=seed, dtype=self.dtype.name)
        model.add(Dense(self.hidden, input_dim=self.x.shape[1], activation="relu",
                        kernel_constraint=unit_norm()))
        model.add(Dense(self.units, activation=self.output))
        return model

    def run(self, strategy, optimizer, options, seed, budget, strategy_options=None):
        """Train from the seed's initial weights; returns (columns, status, message).

        ``strategy`` is a strategy name and ``strategy_options`` its options
        (``compile(strategy=..., strategy_options=...)``).
        """
        from ..optim.rules import RAdam, RSGD

        rule = {"rsgd": RSGD, "radam": RAdam}[optimizer](**options)
        model = self.model(seed)
        model.compile(optimizer=rule, loss=self.loss, metrics=["accuracy"], strategy=strategy,
                      strategy_options=dict(strategy_options or {}))
        epochs = self.epochs if budget.epochs is None else budget.epochs
        rows = {name: [] for name in ("time", "cost", "violation", "accuracy")}
        clock = {"evaluating": 0.0}

        def record(train_time):
            started = time.perf_counter()
            loss, accuracy = model.evaluate(self.x, self.y, batch_size=1024)
            violations = model.constraint_violations()
            for name, value in (("time", train_time), ("cost", loss), ("accuracy", accuracy),
                                ("violation", max(violations.values(), default=0.0))):
                rows[name].append(float(value))
            clock["evaluating"] += time.perf_counter() - started

        def after_epoch(epoch, logs):
            train_time = time.perf_counter() - clock["start"] - clock["evaluating"]
            record(train_time)
            return train_time >= budget.maxtime

        record(0.0)
        clock["start"] = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(self.x, self.y, epochs=epochs, batch_size=self.batch_size, verbose=0,
                      shuffle=True, seed=seed, callbacks=[after_epoch])
        done = len(rows["cost"]) - 1
        if model.stop_reason and "callback" not in model.stop_reason:
            status, message = -1, model.stop_reason
        elif done < epochs:
            status, message = 2, f"maximum time ({budget.maxtime:g} s) reached"
        else:
            status, message = 1, f"trained for {epochs} epochs"
        n = len(rows["cost"])
        columns = {"iteration": list(range(n)), **rows,
                   "grad_norm": [math.nan] * n, "distance": [math.nan] * n, "gap": [math.nan] * n}
        return columns, status, message


class SeedNetwork(_NetworkTask):
    """The seed model of the design: ``Dense(hidden, input_dim=2, relu, unit_norm())`` and a
    sigmoid output, on two moons, with binary cross-entropy."""

    loss, units, output = "binary_crossentropy", 1, "sigmoid"

    def __init__(self, n_samples, noise, hidden, batch_size, epochs, dtype, instance):
        self.n_samples, self.noise = int(n_samples), float(noise)
        super().__init__(hidden, batch_size, epochs, dtype, instance)

    def data(self, rng):
        return two_moons(self.n_samples, self.noise, rng)


class Digits(_NetworkTask):
    """The 8x8 digits of scikit-learn (1797 samples, 10 classes), pixels scaled to [0, 1]."""

    loss, units, output = "sparse_categorical_crossentropy", 10, "softmax"

    def data(self, rng):
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = rng.permutation(len(digits.target))
        return digits.data[order] / 16.0, digits.target[order]


NETWORKS = {"seed_network": SeedNetwork, "digits": Digits}
