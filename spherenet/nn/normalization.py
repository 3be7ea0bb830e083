r"""Normalization layers with Keras's names, defaults and weights: BatchNormalization, LayerNormalization.

Batch normalization makes the kernel before it *scale-invariant*: the output
does not change when a column w of that kernel is multiplied by c > 0, so the
gradient is orthogonal to w and shrinks as 1/||w||. Plain SGD on such a
kernel is secretly a motion of w/||w|| on the sphere, with the effective
step size :math:`\eta/\|w\|^2` (Salimans & Kingma 2016; Arora, Li & Lyu
2019). :class:`~spherenet.nn.AngularTelemetry` measures it; the gallery page
"three ways to train a BN network" compares it with Riemannian steps on the
sphere.
"""

import numbers

import autograd.numpy as anp
import numpy as np
from autograd.tracer import getval

from ..manifolds import Euclidean
from .._checks import check_flag
from . import initializers
from .layers import LAYERS, Layer, Param, _initializer_config

__all__ = ["BatchNormalization", "LayerNormalization"]


def _check_epsilon(epsilon):
    if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
        raise TypeError(f"epsilon must be a positive number, got {epsilon!r}")
    if not (np.isfinite(epsilon) and epsilon > 0):
        raise ValueError(f"epsilon must be a finite number > 0, got {epsilon!r}")
    return float(epsilon)


def _check_axes(axis, what):
    """``axis`` as given (int or tuple of ints), refusing anything else with a TypeError."""
    if isinstance(axis, list):
        axis = tuple(axis)
    axes = axis if isinstance(axis, tuple) else (axis,)
    if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                           for a in axes):
        raise TypeError(f"{what} axis must be an int or a tuple of ints, got {axis!r}")
    return tuple(int(a) for a in axis) if isinstance(axis, tuple) else int(axis)


def _mean(x, axes, keepdims=False):
    """anp.mean, whose gradient would be float64 for float32 input (autograd divides by an int64)."""
    count = int(np.prod([x.shape[a] for a in axes]))
    return anp.sum(x, axis=axes, keepdims=keepdims) * x.dtype.type(1.0 / count)


def _resolve_axes(axis, rank, layer):
    """Axes counted with the batch axis (Keras's convention) as sorted non-negative ints."""
    given = axis if isinstance(axis, tuple) else (axis,)
    axes = sorted({a % rank for a in given if -rank <= a < rank})
    if len(axes) != len(given):
        raise ValueError(
            f"layer {layer.name!r}: axis {axis!r} does not fit inputs of shape (batch, "
            f"{', '.join(map(str, layer._shape))}) (rank {rank}); axis counts the batch axis, "
            "as in Keras: -1 or a value in 1..rank-1"
        )
    if 0 in axes:
        raise ValueError(
            f"layer {layer.name!r}: axis {axis!r} is the batch axis; {type(layer).__name__} "
            "normalizes over the batch, not along it (axis=-1: the features)")
    return axes


def _affine_config(layer, config):
    config.update(
        axis=list(layer.axis) if isinstance(layer.axis, tuple) else layer.axis,
        epsilon=layer.epsilon, center=layer.center, scale=layer.scale,
        beta_initializer=_initializer_config(layer.beta_initializer, layer),
        gamma_initializer=_initializer_config(layer.gamma_initializer, layer),
    )
    return config


class BatchNormalization(Layer):
    r"""Keras's ``BatchNormalization``: normalize each channel by the batch's statistics.

    While training (in ``fit``, or ``layer(x, training=True)``), with the
    mean :math:`\mu_B` and the *biased* variance :math:`\sigma_B^2` of the
    batch over every axis but ``axis``,

    .. math::

        y = \gamma\,\frac{x - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} + \beta,
        \qquad m \leftarrow \text{momentum}\cdot m + (1 - \text{momentum})\,\mu_B,
        \quad v \leftarrow \text{momentum}\cdot v + (1 - \text{momentum})\,\sigma_B^2,

    and at inference (``predict``, ``evaluate``, ``layer(x)``) the moving
    statistics m and v replace the batch's. As in Keras the moving variance
    is updated with the biased batch variance (PyTorch uses the unbiased one).

    Parameters
    ----------
    axis : int, default -1
        The channel axis, counting the batch axis as Keras does.
    momentum : float in [0, 1), default 0.99
    epsilon : float > 0, default 1e-3
    center, scale : bool, default True
        Learn beta (an offset) and gamma (a scale).
    beta_initializer, gamma_initializer, moving_mean_initializer, moving_variance_initializer
        Default ``"zeros"``, ``"ones"``, ``"zeros"``, ``"ones"``.
    name, input_shape
        As for :class:`~spherenet.nn.Layer`.

    Notes
    -----
    ``get_weights()`` gives Keras's order: gamma, beta, moving_mean,
    moving_variance (gamma and beta only if ``scale``/``center``). The moving
    statistics are the layer's *states*: saved and loaded with the weights,
    but never seen by the optimizer or the strategy.

    References
    ----------
    S. Ioffe, C. Szegedy, "Batch normalization: accelerating deep network
    training by reducing internal covariate shift", ICML 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.nn import BatchNormalization
    >>> bn = BatchNormalization()
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> np.round(bn(x, training=True), 4)
    array([[-0.9995, -1.    ],
           [ 0.9995,  1.    ]])
    >>> [np.round(w, 4) for w in bn.get_weights()[2:]]
    [array([0.02, 0.2 ]), array([1.  , 1.99])]
    """

    _has_weights = True

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.axis = _check_axes(axis, "BatchNormalization")
        if isinstance(self.axis, tuple):
            raise TypeError(f"BatchNormalization axis must be an int, got {axis!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, numbers.Real):
            raise TypeError(f"momentum must be a number in [0, 1), got {momentum!r}")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)
        self.epsilon = _check_epsilon(epsilon)
        self.center, self.scale = check_flag(center, "center"), check_flag(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)

    def build(self, input_shape):
        self._shape = tuple(input_shape)
        rank = len(self._shape) + 1
        (a,) = _resolve_axes(self.axis, rank, self)
        self._axis = a
        channels = self._shape[a - 1]
        self._reduce = tuple(k for k in range(rank) if k != a)
        self._bshape = tuple(channels if k == a else 1 for k in range(rank))
        shape = (channels,)
        params = []
        if self.scale:
            params.append(Param("gamma", shape, Euclidean(channels), self.gamma_initializer))
        if self.center:
            params.append(Param("beta", shape, Euclidean(channels), self.beta_initializer))
        self.params = tuple(params)
        self.states = (Param("moving_mean", shape, Euclidean(channels), self.moving_mean_initializer),
                       Param("moving_variance", shape, Euclidean(channels),
                             self.moving_variance_initializer))
        self.output_shape = self._shape
        return self.output_shape

    def _normalize(self, params, x, mean, variance):
        """gamma (x - mean) / sqrt(variance + eps) + beta, as Keras: x * inv + (beta - mean * inv)."""
        dtype = x.dtype.type
        inv = dtype(1.0) / anp.sqrt(variance + dtype(self.epsilon))
        k = 0
        if self.scale:
            inv = inv * params[0]
            k = 1
        shift = -mean * inv
        if self.center:
            shift = shift + params[k]
        return x * anp.reshape(inv, self._bshape) + anp.reshape(shift, self._bshape)

    def apply_with_state(self, params, states, x, training=False, rng=None):
        moving_mean, moving_variance = states
        if not training:
            return self._normalize(params, x, moving_mean, moving_variance), states
        mean = _mean(x, self._reduce)
        centered = x - anp.reshape(mean, self._bshape)
        variance = _mean(centered * centered, self._reduce)  # biased, as Keras
        out = self._normalize(params, x, mean, variance)
        dtype = x.dtype.type
        m, c = dtype(self.momentum), dtype(1.0 - self.momentum)
        new = (moving_mean * m + getval(mean) * c, moving_variance * m + getval(variance) * c)
        return out, new

    def apply(self, params, x, training=False, rng=None):
        raise TypeError(f"layer {self.name!r} (BatchNormalization) has moving statistics: "
                        "call apply_with_state(params, states, x, training)")

    def get_config(self):
        config = _affine_config(self, super().get_config())
        config.update(
            momentum=self.momentum,
            moving_mean_initializer=_initializer_config(self.moving_mean_initializer, self),
            moving_variance_initializer=_initializer_config(self.moving_variance_initializer, self),
        )
        return config


class LayerNormalization(Layer):
    r"""Keras's ``LayerNormalization``: normalize each sample over ``axis``.

    .. math::

        y = \gamma\,\frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta,

    with the mean and biased variance of each sample over ``axis``; the same
    in training and at inference (no moving statistics). Like batch
    normalization, it makes the kernel before it scale-invariant -- here the
    whole kernel, not each column.

    Parameters
    ----------
    axis : int or tuple of int, default -1
        Counting the batch axis, as in Keras; gamma and beta have the shape
        of these axes.
    epsilon : float > 0, default 1e-3
    center, scale : bool, default True
    beta_initializer, gamma_initializer
        Default ``"zeros"`` and ``"ones"``.
    name, input_shape
        As for :class:`~spherenet.nn.Layer`.

    References
    ----------
    J. L. Ba, J. R. Kiros, G. E. Hinton, "Layer normalization", arXiv:1607.06450 (2016).

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.nn import LayerNormalization
    >>> np.round(LayerNormalization(epsilon=1e-9)(np.array([[1.0, 2.0, 3.0]])), 4)
    array([[-1.2247,  0.    ,  1.2247]])
    """

    _has_weights = True

    def __init__(self, axis=-1, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.axis = _check_axes(axis, "LayerNormalization")
        self.epsilon = _check_epsilon(epsilon)
        self.center, self.scale = check_flag(center, "center"), check_flag(scale, "scale")
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)

    def build(self, input_shape):
        self._shape = tuple(input_shape)
        rank = len(self._shape) + 1
        axes = _resolve_axes(self.axis, rank, self)
        self._reduce = tuple(axes)
        shape = tuple(self._shape[a - 1] for a in axes)
        self._bshape = tuple(self._shape[k - 1] if k in axes else 1 for k in range(rank))
        params = []
        if self.scale:
            params.append(Param("gamma", shape, Euclidean(*shape), self.gamma_initializer))
        if self.center:
            params.append(Param("beta", shape, Euclidean(*shape), self.beta_initializer))
        self.params = tuple(params)
        self.output_shape = self._shape
        return self.output_shape

    def apply(self, params, x, training=False, rng=None):
        dtype = x.dtype.type
        mean = _mean(x, self._reduce, keepdims=True)
        centered = x - mean
        variance = _mean(centered * centered, self._reduce, keepdims=True)
        inv = dtype(1.0) / anp.sqrt(variance + dtype(self.epsilon))
        out = centered * inv
        k = 0
        if self.scale:
            out = out * anp.reshape(params[0], self._bshape)
            k = 1
        if self.center:
            out = out + anp.reshape(params[k], self._bshape)
        return out

    def get_config(self):
        return _affine_config(self, super().get_config())


LAYERS.update({cls.__name__: cls for cls in (BatchNormalization, LayerNormalization)})
