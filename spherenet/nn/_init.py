"""Initial weights: drawn by a parameter's initializer, then put on its manifold.

Shared by :class:`~spherenet.nn.Sequential` and by layers called on their own.
"""

import numpy as np

from ..manifolds import Euclidean
from ..manifolds.base import point_atol
from ..manifolds.sphere import _Spheres

__all__ = ["onto", "initial_weights", "as_weight"]


def onto(param, w, rng, where):
    """Put an initialized weight on its manifold: normalize every sphere factor."""
    manifold = param.manifold
    if isinstance(manifold, Euclidean):
        return w
    if isinstance(manifold, _Spheres):
        norms = manifold._red.norms(w)
        if np.any(norms == 0):
            raise ValueError(
                f"{where}: its initializer gives a zero factor (column), which has no direction "
                "to normalize; use a random initializer"
            )
        return (w / norms).astype(w.dtype)
    try:
        return manifold.check_point(w)
    except (TypeError, ValueError):
        return manifold.random_point(rng, w.dtype)


def initial_weights(pairs, dtype, rng):
    """The initial arrays of ``pairs`` = [(layer, Param), ...], each on its manifold."""
    weights = []
    for layer, p in pairs:
        w = np.asarray(p.initializer(p.shape, dtype, rng), dtype=dtype)
        if w.shape != p.shape:
            raise ValueError(f"{layer.name}/{p.name}: the initializer gave shape {w.shape}, "
                             f"expected {p.shape}")
        weights.append(onto(p, w, rng, f"{layer.name}/{p.name}"))
    return tuple(weights)


def as_weight(param, w, dtype, where, slack=0.0):
    """``w`` as a new array of ``dtype`` for ``param``, or a ValueError/TypeError.

    ``slack``: extra tolerance on the constraint, or None not to check it.
    """
    try:
        src = np.asarray(w)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where} must be a numeric array, got {type(w).__name__}: {err}") from None
    if src.dtype == np.bool_ or not (np.issubdtype(src.dtype, np.floating)
                                     or np.issubdtype(src.dtype, np.integer)):
        raise TypeError(f"{where} must be an array of floats (the model's dtype is {dtype.name}), "
                        f"got dtype {src.dtype}")
    if src.shape != param.shape:
        raise ValueError(f"{where} has shape {param.shape}, got {src.shape}")
    if np.issubdtype(src.dtype, np.floating) and not np.all(np.isfinite(src)):
        raise ValueError(f"{where} has {int(np.sum(~np.isfinite(src)))} NaN or infinite value(s)")
    with np.errstate(over="ignore"):
        out = np.array(src, dtype=dtype, copy=True)
    if not np.all(np.isfinite(out)):
        raise ValueError(
            f"{where} has {int(np.sum(~np.isfinite(out)))} value(s) beyond the range of the "
            f"model's dtype {dtype.name} (|value| > {float(np.finfo(dtype).max):.4g})"
        )
    if not param.constrained or slack is None:
        return out
    manifold = param.manifold
    other = np.issubdtype(src.dtype, np.floating) and src.dtype != dtype
    # Checked at the coarser of the two precisions (a float32 kernel is on the sphere to
    # ~1e-7, far off at float64's tolerance; float64 weights off by 1e-9 are on the sphere
    # as far as float32 can tell), then, if they came in another float dtype, normalized
    # factor by factor in the model's dtype: the cast alone leaves the old rounding.
    ref = src if other else out
    coarse = max(float(np.finfo(src.dtype).eps) if other else 0.0, float(np.finfo(dtype).eps))
    atol = max(min(1e3 * coarse, 1e-2), slack)
    if ref.dtype not in (np.float32, np.float64):  # float16, longdouble: checked in float64
        ref = ref.astype(np.float64)
    try:
        manifold.check_point(ref, atol=atol)
    except ValueError as err:
        raise ValueError(f"{where} must lie on {manifold!r}: {err}") from None
    if other and isinstance(manifold, _Spheres):
        out = out / manifold._red.norms(out).astype(dtype)
    elif other:
        try:
            manifold.check_point(out, atol=max(point_atol(dtype), slack))
        except ValueError as err:
            raise ValueError(f"{where} must lie on {manifold!r}: {err}") from None
    return out
