"""Validation of the data given to a model, once, at the public boundary.

Everything here raises ``ValueError`` naming what was expected and what came,
before any weight changes; the training loop then trusts its inputs.
"""

import math
import numbers

import numpy as np

__all__ = ["as_inputs", "as_targets", "as_sample_weight", "class_sample_weight", "check_int",
           "split_validation"]


def _numeric(a, what):
    try:
        a = np.asarray(a)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{what} must be a numeric array: {err}") from None
    if a.dtype == np.bool_:
        return a.astype(np.int8)
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{what} must be a numeric array, got dtype {a.dtype}")
    return a


def _check_finite(a, what):
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argmax(bad.reshape(len(a), -1).any(axis=1))) if a.ndim else 0
            raise ValueError(
                f"{what} has {int(bad.sum())} NaN or infinite value(s) (first in sample {first})"
            )


def _cast(a, dtype, what):
    """``a`` as a C-contiguous array of ``dtype``, refusing values it cannot hold.

    Values finite in a wider dtype may overflow the model's (1e39 is finite in
    float64, infinite in float32): they are refused here, naming where, rather
    than becoming an infinite loss that looks like a too large learning rate.
    """
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.ascontiguousarray(a, dtype=dtype)
    if np.issubdtype(dtype, np.floating):
        bad = ~np.isfinite(out)
        if bad.any():
            first = np.unravel_index(int(np.argmax(bad)), bad.shape)
            at = f"sample {first[0]}" if len(first) == 1 else f"sample {first[0]}, feature " + (
                str(first[1]) if len(first) == 2 else str(tuple(int(i) for i in first[1:])))
            raise ValueError(
                f"{what} has {int(bad.sum())} value(s) finite in {a.dtype} but beyond the range "
                f"of the model's dtype {dtype.name} (|value| > {float(np.finfo(dtype).max):.4g}), "
                f"first at {at}: {a[first].item()!r}; scale the data or use dtype='float64'"
            )
    return out


def _describe(shape):
    return f"{shape[0]} features" if len(shape) == 1 else f"samples of shape {shape}"


def as_inputs(x, input_shape, dtype, what="x"):
    """``x`` as a C-contiguous array of ``dtype``, checked against the model's input shape."""
    x = _numeric(x, what)
    if x.ndim < 2:
        raise ValueError(
            f"{what} must have shape (samples, features...), got shape {x.shape}; "
            "for one feature use x.reshape(-1, 1)"
        )
    if len(x) == 0:
        raise ValueError(f"{what} has no samples")
    if input_shape is not None and x.shape[1:] != tuple(input_shape):
        raise ValueError(
            f"{what} has {_describe(x.shape[1:])}, but the model expects {_describe(tuple(input_shape))}"
        )
    _check_finite(x, what)
    return _cast(x, dtype, what)


def as_targets(y, n, target, units, dtype, what="y", x_what="x"):
    """``y`` checked against the loss's kind of target and cast once.

    Sparse labels become an integer vector; other targets the model's dtype,
    shaped (n, units).
    """
    y = _numeric(y, what)
    if y.ndim == 0 or len(y) != n:
        got = "a scalar" if y.ndim == 0 else f"{len(y)}"
        raise ValueError(f"{x_what} has {n} samples but {what} has {got}")
    _check_finite(y, what)
    if target == "sparse":
        if y.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"{what} must hold one integer label per sample, shape ({n},), got {y.shape}; "
                "for one-hot targets use loss='categorical_crossentropy'"
            )
        y = y.reshape(n)
        if np.issubdtype(y.dtype, np.floating) and np.any(y != np.round(y)):
            raise ValueError(f"{what} must hold integer labels, got non-integer values")
        bad = (y < 0) | (y >= units)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"{what} has labels out of range: they must be in [0, {units}) for a model with "
                f"{units} outputs, got {y[i].item()!r} at sample {i}"
            )
        return y.astype(np.intp)
    if y.ndim == 1 and units == 1:
        y = y.reshape(n, 1)
    if y.shape[1:] != (units,):
        raise ValueError(f"{what} must have shape ({n}, {units}) for this model, got {y.shape}")
    if target in ("binary", "categorical") and (y.min() < 0 or y.max() > 1):
        i = int(np.argmax(((y < 0) | (y > 1)).any(axis=1)))
        raise ValueError(f"{what} has targets out of range [0, 1] (first at sample {i})")
    if target == "categorical" and units == 1:
        raise ValueError("categorical_crossentropy needs at least two outputs")
    return _cast(y, dtype, what)


def as_sample_weight(w, n, dtype, what="sample_weight", x_what="x"):
    """``w`` as one finite weight >= 0 per sample, shape ``(n,)``, cast to ``dtype``.

    None stays None (every sample weighs 1).

    Examples
    --------
    >>> as_sample_weight([1, 0.5], 2, np.float32)
    array([1. , 0.5], dtype=float32)
    >>> as_sample_weight([1.0, -1.0], 2, np.float32)
    Traceback (most recent call last):
    ...
    ValueError: sample_weight must be >= 0, got -1.0 at sample 1
    """
    if w is None:
        return None
    w = _numeric(w, what)
    if w.ndim == 1 and len(w) != n:
        raise ValueError(f"{x_what} has {n} samples but {what} has {len(w)}")
    if w.shape != (n,):
        raise ValueError(f"{what} must hold one weight per sample, shape ({n},), got shape {w.shape}")
    _check_finite(w, what)
    negative = w < 0
    if negative.any():
        i = int(np.argmax(negative))
        raise ValueError(f"{what} must be >= 0, got {w[i].item()!r} at sample {i}")
    return _cast(w, dtype, what)


def class_sample_weight(class_weight, y, target, units, dtype):
    """Keras's ``class_weight``: the weight of every sample of the checked targets ``y``.

    A sample's class is its label (sparse targets), the argmax of its row
    (several outputs) or its rounded target (one output); it weighs
    ``class_weight[class]``, or 1 for a class not in the dict.

    Examples
    --------
    >>> class_sample_weight({1: 3.0}, np.array([0, 1, 1]), "sparse", 2, np.float64)
    array([1., 3., 3.])
    """
    if not isinstance(class_weight, dict):
        raise TypeError(f"class_weight must be a dict {{class: weight}}, got {type(class_weight).__name__}")
    if target not in ("binary", "categorical", "sparse"):
        raise ValueError(f"class_weight needs a classification loss, got targets of kind {target!r}")
    classes = max(units, 2)
    table = np.ones(classes, dtype=np.float64)
    for key, value in class_weight.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, numbers.Integral) \
                or not 0 <= key < classes:
            raise ValueError(f"class_weight keys must be class indices in [0, {classes}), got {key!r}")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) \
                or not (math.isfinite(value) and value >= 0):
            raise ValueError(f"class_weight[{key}] must be a finite number >= 0, got {value!r}")
        table[int(key)] = value
    if y.ndim == 1:
        labels = y
    elif y.shape[-1] != 1:
        labels = np.argmax(y, axis=-1)
    else:
        labels = np.round(y[:, 0])
    return _cast(table[labels.astype(np.intp)], dtype, "class_weight")


def check_int(name, value, low):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def split_validation(x, y, fraction):
    """Keras's validation_split: the *last* fraction of the samples, before shuffling."""
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 <= fraction < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {fraction!r}")
    n = len(x)
    split = int(np.floor(n * (1.0 - fraction)))
    if fraction > 0 and (split == 0 or split == n):
        raise ValueError(
            f"validation_split={fraction} leaves {split} training and {n - split} validation "
            f"samples of {n}; both must be at least one"
        )
    return (x[:split], y[:split]), (x[split:], y[split:])
