r"""Losses: numerically stable, from logits or from probabilities, dtype-preserving.

Every loss is the mean over the batch (and, for the element-wise losses, over
the outputs), as in Keras. With ``sample_weight`` (one non-negative weight
:math:`w_i` per sample) it is Keras 3's ``"sum_over_batch_size"`` reduction,
:math:`\frac{1}{n} \sum_i w_i \ell_i` with :math:`\ell_i` the loss of
sample i: the weights scale the samples' terms and are *not* normalized by
their sum (weights all 1 give the unweighted loss, weights all 2 twice it). The cross-entropies from logits are primitives
with closed-form gradients,

.. math::

    \ell = \operatorname{lse}(z) - z_y, \quad \nabla_z \ell = \operatorname{softmax}(z) - e_y,
    \qquad
    \ell = \max(z, 0) - z t + \log(1 + e^{-|z|}), \quad \nabla_z \ell = \sigma(z) - t,

which never overflow (log-sum-exp with the maximum subtracted). From
probabilities they clip to [eps, 1 - eps] with Keras's eps = 1e-7.
:class:`~spherenet.nn.Sequential` trains a ``sigmoid`` (``softmax``) output
with a binary (categorical) cross-entropy through the logits path anyway, as
Keras does, so the default way of writing a classifier is the stable one.
"""

import numpy as np
from autograd.extend import defvjp, primitive
from autograd.tracer import getval
from scipy import special

from .._checks import check_flag
from ._data import as_sample_weight, as_targets
from .activations import _max_along
from ._registry import from_config

__all__ = [
    "Loss",
    "MeanSquaredError",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "SparseCategoricalCrossentropy",
    "get",
    "EPSILON",
]

EPSILON = 1e-7


# --- primitives ---------------------------------------------------------------


def _scale(g, n):
    """g / n as a scalar of g's dtype (g is the 0-d upstream gradient)."""
    g = np.asarray(g)
    return g.dtype.type(g / n)


def _rows(a):
    """The number of distributions in ``a``: its rows along the last axis, over all other axes."""
    return int(np.prod(a.shape[:-1]))


def _weigh(a, weights):
    """``a`` (samples along axis 0) times the sample weights, broadcast over the other axes.

    ``weights`` None: ``a`` itself. The weights are cast to ``a``'s dtype, so a
    float32 loss stays float32.
    """
    if weights is None:
        return a
    w = np.asarray(weights, dtype=a.dtype)
    return a * w.reshape(w.shape + (1,) * (a.ndim - 1))


@primitive
def mean_squared_error(pred, targets, weights=None):
    """mean((pred - targets)^2), each sample's terms times its weight."""
    d = pred - targets
    return np.mean(_weigh(d * d, weights))


defvjp(mean_squared_error,
       lambda ans, pred, targets, weights=None:
       lambda g: _weigh(pred - targets, weights) * _scale(g, pred.size / 2))


@primitive
def sigmoid_binary_crossentropy(logits, targets, weights=None):
    """Mean binary cross-entropy of sigmoid(logits) against targets in [0, 1]."""
    z = logits
    return np.mean(_weigh(np.maximum(z, 0) - z * targets + np.log1p(np.exp(-np.abs(z))), weights))


defvjp(sigmoid_binary_crossentropy,
       lambda ans, z, t, weights=None:
       lambda g: _weigh(special.expit(z) - t, weights) * _scale(g, z.size))


@primitive
def binary_crossentropy_probs(probs, targets, weights=None):
    """Mean binary cross-entropy of probabilities clipped to [eps, 1 - eps]."""
    p = np.clip(probs, EPSILON, 1 - EPSILON)
    return -np.mean(_weigh(targets * np.log(p) + (1 - targets) * np.log1p(-p), weights))


def _bce_probs_vjp(ans, probs, targets, weights=None):
    def vjp(g):
        p = np.clip(probs, EPSILON, 1 - EPSILON)
        inside = (probs >= EPSILON) & (probs <= 1 - EPSILON)
        d = ((1 - targets) / (1 - p) - targets / p) * inside
        return _weigh(d, weights) * _scale(g, probs.size)
    return vjp


defvjp(binary_crossentropy_probs, _bce_probs_vjp)


def _shifted_logsumexp(z):
    """``(s, lse(s))`` with ``s = z - max(z)`` per row, lse(s) = log1p of the terms below the max.

    The loss of a row is then lse(s) - s_y: a sum of two non-negative terms,
    never a difference of two numbers of the size of ``z``. A confident row
    (z_y ahead by 30) has a loss of ~1e-13 that ``(max z + log sum e^s) - z_y``
    would round against |z_y| (an error of |z_y| eps), and ``log(sum e^s)``
    against 1 (an error of eps); splitting the largest term, e^0 = 1, off the
    sum keeps it to a few ulps of itself.
    """
    # the max read at the argmax (one pass, not np.max and np.argmax: two reductions along a
    # short axis, the slowest NumPy calls of a small batch's loss); the same values, bit for bit
    flat = z.reshape(-1, z.shape[-1])
    rows, top = np.arange(flat.shape[0]), np.argmax(flat, axis=-1)
    s = flat - flat[rows, top][:, None]
    e = np.exp(s)
    e[rows, top] = 0
    return s.reshape(z.shape), np.log1p(np.sum(e, axis=-1)).reshape(z.shape[:-1] + (1,))


def _softmax(z):
    e = np.exp(z - _max_along(z))
    e /= np.sum(e, axis=-1, keepdims=True)
    return e


@primitive
def softmax_crossentropy(logits, targets, weights=None):
    """Mean over rows of sum_c t_c (lse(z) - z_c), targets rows being distributions."""
    s, lse = _shifted_logsumexp(logits)
    return np.mean(_weigh(np.sum(targets * (lse - s), axis=-1), weights))


def _softmax_ce_vjp(ans, z, t, weights=None):
    return lambda g: _weigh(_softmax(z) * np.sum(t, axis=-1, keepdims=True) - t,
                            weights) * _scale(g, _rows(z))


defvjp(softmax_crossentropy, _softmax_ce_vjp)


@primitive
def sparse_softmax_crossentropy(logits, labels, weights=None):
    """Mean over rows of lse(z) - z_label."""
    rows = np.arange(logits.shape[0])
    s, lse = _shifted_logsumexp(logits)
    return np.mean(_weigh(lse[:, 0] - s[rows, labels], weights))


def _sparse_ce_vjp(ans, z, labels, weights=None):
    def vjp(g):
        p = _softmax(z)
        p[np.arange(z.shape[0]), labels] -= 1
        p *= _scale(g, z.shape[0])
        return _weigh(p, weights)
    return vjp


defvjp(sparse_softmax_crossentropy, _sparse_ce_vjp)


def _clipped_log(p):
    return np.log(np.clip(p, EPSILON, 1 - EPSILON))


@primitive
def categorical_crossentropy_probs(probs, targets, weights=None):
    """Keras's form: rows renormalized to sum 1, clipped, mean of -sum t log p."""
    q = probs / np.sum(probs, axis=-1, keepdims=True)
    return -np.mean(_weigh(np.sum(targets * _clipped_log(q), axis=-1), weights))


def _cce_probs_vjp(ans, probs, targets, weights=None):
    def vjp(g):
        s = np.sum(probs, axis=-1, keepdims=True)
        q = probs / s
        inside = (q >= EPSILON) & (q <= 1 - EPSILON)
        dq = -targets / np.clip(q, EPSILON, 1 - EPSILON) * inside
        # through q = p / s: dp = (dq - <dq, q>) / s
        dp = (dq - np.sum(dq * q, axis=-1, keepdims=True)) / s
        return _weigh(dp, weights) * _scale(g, _rows(probs))
    return vjp


defvjp(categorical_crossentropy_probs, _cce_probs_vjp)


@primitive
def sparse_crossentropy_probs(probs, labels, weights=None):
    """Mean of -log(clip(p_label))."""
    return -np.mean(_weigh(_clipped_log(probs[np.arange(probs.shape[0]), labels]), weights))


def _sparse_probs_vjp(ans, probs, labels, weights=None):
    def vjp(g):
        rows = np.arange(probs.shape[0])
        p = probs[rows, labels]
        inside = (p >= EPSILON) & (p <= 1 - EPSILON)
        out = np.zeros_like(probs)
        d = _weigh(inside / np.clip(p, EPSILON, 1 - EPSILON), weights)
        out[rows, labels] = d * -_scale(g, probs.shape[0])
        return out
    return vjp


defvjp(sparse_crossentropy_probs, _sparse_probs_vjp)


# --- loss objects ---------------------------------------------------------------


class Loss:
    r"""Base class: a loss is ``loss(y_true, y_pred, sample_weight=None) -> mean loss``.

    Plus what the model needs (the attributes below). ``sample_weight``, one
    finite weight >= 0 per sample (shape ``(n,)``), scales each sample's
    term of the mean: Keras 3's ``"sum_over_batch_size"``,
    :math:`\frac{1}{n} \sum_i w_i \ell_i`.

    Attributes
    ----------
    name : str
        The Keras name, used in saved architectures.
    target : {"regression", "binary", "categorical", "sparse"}
        What ``y`` must look like (the model validates it).
    output_activation : str or None
        The final activation whose logits this loss can take directly
        (``"sigmoid"`` or ``"softmax"``): the model then trains from logits.
    from_logits : bool
        Whether ``y_pred`` are logits.
    """

    name = None
    target = "regression"
    output_activation = None

    def __init__(self, from_logits=False):
        self.from_logits = check_flag(from_logits, "from_logits")

    def __repr__(self):
        return f"{type(self).__name__}(from_logits={self.from_logits})"

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The mean loss of the batch, optionally weighted per sample.

        Raises
        ------
        ValueError
            For a ``sample_weight`` that is not one finite weight >= 0 per
            sample (shape ``(len(y_pred),)``).

        Examples
        --------
        >>> import numpy as np
        >>> loss = MeanSquaredError()
        >>> y, pred = np.zeros((2, 1)), np.array([[1.0], [3.0]])
        >>> float(loss(y, pred)), float(loss(y, pred, sample_weight=np.array([1.0, 0.0])))
        (5.0, 0.5)
        """
        if sample_weight is not None:
            pred = getval(y_pred)
            sample_weight = as_sample_weight(sample_weight, len(pred), pred.dtype, "sample_weight",
                                             "y_pred")
        if self.from_logits:
            return self.logits_loss(y_true, y_pred, sample_weight)
        return self.probs_loss(y_true, y_pred, sample_weight)

    def logits_loss(self, y_true, logits, sample_weight=None):
        """The loss of ``logits`` (``sample_weight`` trusted: validated by the caller)."""
        raise NotImplementedError(f"{self.name} has no logits form")

    def probs_loss(self, y_true, probs, sample_weight=None):
        """The loss of ``probs`` (``sample_weight`` trusted: validated by the caller)."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name, "from_logits": self.from_logits}


class MeanSquaredError(Loss):
    """mean((y_pred - y_true)^2) over batch and outputs (``"mse"``)."""

    name = "mean_squared_error"

    def __init__(self):
        super().__init__(False)

    def probs_loss(self, y_true, y_pred, sample_weight=None):
        return mean_squared_error(y_pred, y_true, sample_weight)

    def get_config(self):
        return {"name": self.name}


class BinaryCrossentropy(Loss):
    """Binary cross-entropy of targets in [0, 1]; ``from_logits`` as in Keras.

    Examples
    --------
    >>> import numpy as np
    >>> loss = BinaryCrossentropy(from_logits=True)
    >>> float(loss(np.array([[1.0]]), np.array([[1000.0]])))
    0.0
    """

    name = "binary_crossentropy"
    target = "binary"
    output_activation = "sigmoid"

    def logits_loss(self, y_true, logits, sample_weight=None):
        return sigmoid_binary_crossentropy(logits, y_true, sample_weight)

    def probs_loss(self, y_true, probs, sample_weight=None):
        return binary_crossentropy_probs(probs, y_true, sample_weight)


class CategoricalCrossentropy(Loss):
    """Cross-entropy against one-hot (or probability) targets of shape (n, classes).

    Arrays of shape (n, ..., classes) hold one distribution per row along the
    last axis; the loss is the mean over all of them.
    """

    name = "categorical_crossentropy"
    target = "categorical"
    output_activation = "softmax"

    def logits_loss(self, y_true, logits, sample_weight=None):
        return softmax_crossentropy(logits, y_true, sample_weight)

    def probs_loss(self, y_true, probs, sample_weight=None):
        return categorical_crossentropy_probs(probs, y_true, sample_weight)


class SparseCategoricalCrossentropy(Loss):
    """Cross-entropy against integer labels 0 .. classes - 1.

    Examples
    --------
    >>> import numpy as np
    >>> loss = SparseCategoricalCrossentropy(from_logits=True)
    >>> round(float(loss(np.array([0]), np.array([[0.0, 0.0]]))), 6)
    0.693147
    """

    name = "sparse_categorical_crossentropy"
    target = "sparse"
    output_activation = "softmax"

    def __call__(self, y_true, y_pred, sample_weight=None):
        """The mean loss of the batch; ``y_true`` one integer label per row of ``y_pred``.

        Raises
        ------
        ValueError
            For ``y_pred`` not of shape ``(n, classes)``, or labels that are not
            one integer in ``[0, classes)`` per sample (a negative label would
            otherwise silently pick a class from the end).

        Examples
        --------
        >>> import numpy as np
        >>> loss = SparseCategoricalCrossentropy()
        >>> round(float(loss(np.array([1]), np.array([[0.25, 0.75]]))), 6)
        0.287682
        >>> loss(np.array([2]), np.array([[0.25, 0.75]]))
        Traceback (most recent call last):
        ...
        ValueError: y_true has labels out of range: they must be in [0, 2) for a model with 2 outputs, got 2 at sample 0
        """
        pred = getval(y_pred)
        shape = np.shape(pred)
        if len(shape) != 2:
            raise ValueError(
                f"y_pred must have shape (samples, classes) for {self.name}, got shape {shape}; "
                "for one-hot targets of other shapes use CategoricalCrossentropy"
            )
        y_true = as_targets(y_true, shape[0], "sparse", shape[1], None, "y_true", "y_pred")
        return super().__call__(y_true, y_pred, sample_weight)

    def logits_loss(self, y_true, logits, sample_weight=None):
        return sparse_softmax_crossentropy(logits, y_true, sample_weight)

    def probs_loss(self, y_true, probs, sample_weight=None):
        return sparse_crossentropy_probs(probs, y_true, sample_weight)


_LOSSES = {
    "mean_squared_error": MeanSquaredError,
    "mse": MeanSquaredError,
    "binary_crossentropy": BinaryCrossentropy,
    "categorical_crossentropy": CategoricalCrossentropy,
    "sparse_categorical_crossentropy": SparseCategoricalCrossentropy,
}


def get(identifier):
    """A :class:`Loss` from a Keras name, a config dict or an instance.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> get("mse")
    MeanSquaredError(from_logits=False)
    """
    if isinstance(identifier, Loss):
        return identifier
    if isinstance(identifier, (dict, str)):
        return from_config(identifier, _LOSSES, "loss")
    raise ValueError(
        f"loss must be one of {sorted(_LOSSES)} or a spherenet.nn.losses.Loss, got {identifier!r}"
    )
