"""``l2_normalize`` as one autograd primitive whose gradient keeps the input's dtype.

Written with ``anp.maximum`` (or ``anp.where``) the backward pass of Keras's
``x / sqrt(max(sum x^2, 1e-12))`` comes out in float64 for float32 input.
"""

import numpy as np
from autograd.extend import defvjp, primitive

__all__ = ["l2_normalize"]

_TINY = 1e-12  # Keras's l2_normalize epsilon, on the squared norm


def _norms(x, axis):
    sq = np.sum(x * x, axis=axis, keepdims=True)
    tiny = x.dtype.type(_TINY)
    return np.sqrt(np.maximum(sq, tiny)), sq >= tiny


@primitive
def l2_normalize(x, axis):
    """``x / sqrt(max(sum(x^2, axis), 1e-12))``: unit vectors along ``axis``, finite for 0.

    Examples
    --------
    >>> import numpy as np
    >>> l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]), 1)
    array([[0.6, 0.8],
           [0. , 0. ]])
    """
    norms, _ = _norms(x, axis)
    return x / norms


def _l2_normalize_vjp(ans, x, axis):
    norms, free = _norms(x, axis)

    def vjp(g):
        # d(x/|x|) = (g - y <g, y>) / |x|; where the norm is clipped it is a constant
        radial = np.sum(g * ans, axis=axis, keepdims=True) * free.astype(ans.dtype)
        return (g - ans * radial) / norms

    return vjp


defvjp(l2_normalize, _l2_normalize_vjp)
