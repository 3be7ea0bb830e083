"""Arithmetic on points and tangent vectors that may be tuples (Product manifolds)."""

import math

import numpy as np

_all = np.logical_and.reduce
_FLOAT64 = np.dtype(np.float64)


def is_tuple(u):
    return isinstance(u, (tuple, list))


def lincomb(a, u, b=0.0, v=None):
    """a*u + b*v for arrays or tuples of arrays, keeping each array's dtype."""
    if u.__class__ is np.ndarray:  # the common case first: one array, no tuple tests
        if v is None:
            return -u if a == -1.0 else u.dtype.type(a) * u
        if a == 1.0 and b == -1.0:  # the same numbers as 1*u + (-1)*v, in one operation
            return u - v
        if a == -1.0:  # (-u) + b v is b v - u bit for bit: negation is exact
            return v.dtype.type(b) * v - u
        return u.dtype.type(a) * u + v.dtype.type(b) * v
    if is_tuple(u):
        if v is None:
            return tuple(lincomb(a, ui) for ui in u)
        return tuple(lincomb(a, ui, b, vi) for ui, vi in zip(u, v))
    a = u.dtype.type(a)
    if v is None:
        return a * u
    return a * u + v.dtype.type(b) * v


def copy(u):
    if is_tuple(u):
        return tuple(np.array(ui, copy=True) for ui in u)
    return np.array(u, copy=True)


def all_finite(u):
    if u.__class__ is np.ndarray:
        # A finite float64 sum of squares proves every entry finite, in one BLAS
        # pass without a boolean temporary (np.vdot raises no floating-point
        # warning on NaN/Inf); otherwise (NaN, Inf, or finite entries whose
        # squares overflow) the entries are tested one by one.
        if u.dtype == _FLOAT64 and math.isfinite(np.vdot(u, u)):
            return True
        return bool(_all(np.isfinite(u), axis=None))  # ndarray.all adds a Python layer
    if is_tuple(u):
        return all(all_finite(ui) for ui in u)
    return bool(np.isfinite(u).all())


def same_structure(a, b):
    """True when a and b are arrays (or tuples of arrays) of equal shapes."""
    if is_tuple(a) or is_tuple(b):
        return is_tuple(a) and is_tuple(b) and len(a) == len(b) and all(
            same_structure(ai, bi) for ai, bi in zip(a, b)
        )
    return np.shape(a) == np.shape(b)


def shape_of(a):
    if is_tuple(a):
        return tuple(shape_of(ai) for ai in a)
    return np.shape(a)
