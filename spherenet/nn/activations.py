r"""Activation functions, as autograd primitives that keep the input's dtype.

Stock autograd differentiates ``np.maximum`` through a ``balanced_eq`` mask
computed in float64, so a float32 network gets float64 gradients and its
backward matrix products run in mixed precision. Every activation here is a
primitive with its own vector-Jacobian product, written so that a float32
input gives a float32 value *and* a float32 gradient (constants are cast to
the array's dtype before they touch it).

``get(name)`` resolves the names Keras uses: ``"relu"``, ``"sigmoid"``,
``"tanh"``, ``"softmax"``, ``"linear"`` (or None), ``"gelu"``,
``"leaky_relu"``.
"""

import math

import numpy as np
from autograd.extend import defvjp, primitive
from scipy import special

__all__ = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "gelu", "linear", "get", "name_of"]


@primitive
def relu(x):
    """max(x, 0), elementwise.

    Examples
    --------
    >>> import numpy as np
    >>> relu(np.array([-1.0, 2.0], dtype=np.float32))
    array([0., 2.], dtype=float32)
    """
    return np.maximum(x, 0)


# The gradient at 0 is 0 (as TensorFlow and PyTorch choose).
defvjp(relu, lambda ans, x: lambda g: g * (ans > 0))


@primitive
def leaky_relu(x, negative_slope=0.2):
    """x for x > 0, ``negative_slope * x`` otherwise (Keras's default slope 0.2).

    Examples
    --------
    >>> import numpy as np
    >>> leaky_relu(np.array([-1.0, 2.0]))
    array([-0.2,  2. ])
    """
    slope = np.asarray(x).dtype.type(negative_slope)
    return np.where(x > 0, x, slope * x)


def _leaky_relu_vjp(ans, x, negative_slope=0.2):
    slope = x.dtype.type(negative_slope)
    return lambda g: np.where(x > 0, g, slope * g)


defvjp(leaky_relu, _leaky_relu_vjp)


@primitive
def sigmoid(x):
    """1 / (1 + exp(-x)), without overflow for large ``|x|`` (``scipy.special.expit``).

    Examples
    --------
    >>> import numpy as np
    >>> sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    array([0. , 0.5, 1. ])
    """
    return special.expit(x)


defvjp(sigmoid, lambda ans, x: lambda g: g * ans * (1 - ans))


@primitive
def tanh(x):
    """Hyperbolic tangent.

    Examples
    --------
    >>> import numpy as np
    >>> tanh(np.array([0.0]))
    array([0.])
    """
    return np.tanh(x)


defvjp(tanh, lambda ans, x: lambda g: g * (1 - ans * ans))


@primitive
def softmax(x, axis=-1):
    r"""exp(x) / sum(exp(x)) along ``axis``, with the maximum subtracted first.

    Its vector-Jacobian product is :math:`s \odot (g - \langle g, s\rangle)`.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    e = np.exp(x - _max_along(x, axis))
    e /= np.sum(e, axis=axis, keepdims=True)
    return e


def _max_along(x, axis=-1):
    """``np.max(x, axis=axis, keepdims=True)``, the same values.

    Along the last axis the maximum is read at ``np.argmax``: NumPy reduces
    a short last axis (the classes of a batch of logits) row by row, with a
    cost per row that one argmax and one gather pay once.
    """
    x = np.asarray(x)
    if x.ndim == 0 or x.shape[-1] == 0 or axis not in (-1, x.ndim - 1):
        return np.max(x, axis=axis, keepdims=True)
    flat = x.reshape(-1, x.shape[-1])
    top = flat[np.arange(flat.shape[0]), np.argmax(flat, axis=-1)]
    return top.reshape(x.shape[:-1] + (1,))


def _softmax_vjp(ans, x, axis=-1):
    return lambda g: ans * (g - np.sum(g * ans, axis=axis, keepdims=True))


defvjp(softmax, _softmax_vjp)


_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@primitive
def gelu(x):
    r"""Gaussian error linear unit :math:`x\,\Phi(x)` (exact, as Keras's default).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(gelu(np.array([-1.0, 0.0, 1.0])), 6)
    array([-0.158655,  0.      ,  0.841345])
    """
    return x * special.ndtr(x)


def _gelu_vjp(ans, x):
    # d/dx x Phi(x) = Phi(x) + x phi(x)
    c = x.dtype.type(_INV_SQRT_2PI)
    return lambda g: g * (special.ndtr(x) + x * (c * np.exp(x * x * x.dtype.type(-0.5))))


defvjp(gelu, _gelu_vjp)


def linear(x):
    """The identity (Keras's ``"linear"`` activation)."""
    return x


_ACTIVATIONS = {
    "linear": linear,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "sigmoid": sigmoid,
    "tanh": tanh,
    "softmax": softmax,
    "gelu": gelu,
}


def get(identifier):
    """The activation function for a name, None (linear) or a callable.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> get("relu") is relu, get(None) is linear
    (True, True)
    """
    if identifier is None:
        return linear
    if isinstance(identifier, str):
        try:
            return _ACTIVATIONS[identifier]
        except KeyError:
            raise ValueError(
                f"unknown activation {identifier!r}; choose one of {sorted(_ACTIVATIONS)}"
            ) from None
    if callable(identifier):
        return identifier
    raise ValueError(f"activation must be a name or a callable, got {identifier!r}")


def name_of(fun):
    """The registered name of an activation function, or None for a user's callable."""
    for name, known in _ACTIVATIONS.items():
        if fun is known:
            return name
    return None
