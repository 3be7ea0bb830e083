"""Metrics: plain NumPy functions of (y_true, y_pred) on a batch, never differentiated.

``y_pred`` are the model's outputs (probabilities for a classifier). A fit
logs the mean of a metric over the epoch's batches, weighted by batch size,
as Keras does.
"""

import numpy as np

__all__ = [
    "binary_accuracy",
    "categorical_accuracy",
    "sparse_categorical_accuracy",
    "mean_squared_error",
    "get",
]


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """Fraction of outputs on the right side of ``threshold``.

    Examples
    --------
    >>> import numpy as np
    >>> binary_accuracy(np.array([[1.0], [0.0]]), np.array([[0.9], [0.6]]))
    0.5
    """
    return float(np.mean((y_pred > threshold) == (y_true > 0.5)))


def categorical_accuracy(y_true, y_pred):
    """Fraction of rows whose largest output is the largest target (one-hot targets).

    Examples
    --------
    >>> import numpy as np
    >>> categorical_accuracy(np.eye(2), np.array([[0.8, 0.2], [0.7, 0.3]]))
    0.5
    """
    return float(np.mean(np.argmax(y_true, axis=-1) == np.argmax(y_pred, axis=-1)))


def sparse_categorical_accuracy(y_true, y_pred):
    """Fraction of rows whose largest output is at the integer label.

    Examples
    --------
    >>> import numpy as np
    >>> sparse_categorical_accuracy(np.array([0, 0]), np.array([[0.8, 0.2], [0.3, 0.7]]))
    0.5
    """
    return float(np.mean(np.reshape(y_true, -1) == np.argmax(y_pred, axis=-1)))


def mean_squared_error(y_true, y_pred):
    """mean((y_pred - y_true)^2).

    Examples
    --------
    >>> import numpy as np
    >>> mean_squared_error(np.zeros(2), np.array([1.0, 3.0]))
    5.0
    """
    d = np.asarray(y_pred, dtype=np.float64) - y_true
    return float(np.mean(d * d))


_METRICS = {
    "binary_accuracy": binary_accuracy,
    "categorical_accuracy": categorical_accuracy,
    "sparse_categorical_accuracy": sparse_categorical_accuracy,
    "mean_squared_error": mean_squared_error,
    "mse": mean_squared_error,
}
_ACCURACY_FOR_TARGET = {
    "binary": binary_accuracy,
    "categorical": categorical_accuracy,
    "sparse": sparse_categorical_accuracy,
}


def get(identifier, target="regression", units=1):
    """``(name, function)`` for a metric name or a callable.

    ``"accuracy"`` (or ``"acc"``) becomes the accuracy that fits the loss's
    targets, as in Keras: binary, categorical or sparse categorical (for a
    regression loss, binary with one output, categorical with several).

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> get("accuracy", target="sparse")[1] is sparse_categorical_accuracy
    True
    """
    if isinstance(identifier, str):
        if identifier in ("accuracy", "acc"):
            fn = _ACCURACY_FOR_TARGET.get(target)
            if fn is None:
                fn = binary_accuracy if units == 1 else categorical_accuracy
            return identifier, fn
        try:
            return identifier, _METRICS[identifier]
        except KeyError:
            known = sorted(_METRICS) + ["accuracy"]
            raise ValueError(f"unknown metric {identifier!r}; choose one of {known}") from None
    if callable(identifier):
        return getattr(identifier, "__name__", "metric"), identifier
    raise ValueError(f"a metric must be a name or a callable, got {identifier!r}")


def name_of(fn):
    """The registered name of a metric function, or None."""
    for name, known in _METRICS.items():
        if fn is known:
            return name
    return None
