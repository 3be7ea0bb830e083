r"""Angular telemetry: how far each kernel factor turns per step, its norm and effective step size.

A kernel followed by batch normalization is scale-invariant, column by
column: only the direction :math:`\hat w = w/\|w\|` of each column matters.
Plain SGD on it is then a motion of :math:`\hat w` on the sphere with the
effective step size :math:`\eta/\|w\|^2`; with weight decay, the norm
settles where the decay's shrinking balances the gradient's growth, and the
angle turned per step settles at

.. math::

    \Delta_\infty = \sqrt{\frac{2\eta\lambda}{1 + \mu}}

for SGD with learning rate :math:`\eta`, momentum :math:`\mu` and weight
decay :math:`\lambda` (added to the gradient, as ``RSGD(weight_decay=)``;
Wan et al. 2021). :class:`AngularTelemetry` measures the angle;
:func:`equilibrium_angular_update` gives the prediction.
"""

import math
import numbers

import numpy as np

from ..manifolds import Oblique, Sphere
from .callbacks import Callback

__all__ = ["AngularTelemetry", "equilibrium_angular_update"]


def equilibrium_angular_update(lr, weight_decay, momentum=0.0):
    r"""The angle per step at which SGD settles on a scale-invariant weight: :math:`\sqrt{2\eta\lambda/(1+\mu)}`.

    Parameters
    ----------
    lr : float > 0
        :math:`\eta`.
    weight_decay : float >= 0
        :math:`\lambda`, added to the gradient as ``lambda * w``: the
        ``weight_decay`` of :class:`~spherenet.optim.RSGD` (PyTorch's), or
        twice the ``l2`` of a Keras ``L2`` kernel regularizer.
    momentum : float in [0, 1), default 0

    Returns
    -------
    float
        In radians.

    Notes
    -----
    Without momentum, at equilibrium the norm does not change:
    :math:`\|(1-\eta\lambda)w - \eta g\|^2 = \|w\|^2` with :math:`g \perp w`
    (scale invariance), so :math:`\eta^2\|g\|^2 \approx 2\eta\lambda\|w\|^2`
    and the angle :math:`\eta\|g\|/\|w\|` is :math:`\sqrt{2\eta\lambda}`.
    Momentum makes the step :math:`1/(1-\mu)` times the gradient and the
    decay likewise; the balance gives the factor :math:`1/(1+\mu)`.

    References
    ----------
    R. Wan, Z. Zhu, X. Zhang, J. Sun, "Spherical motion dynamics: learning
    dynamics of normalized neural network using SGD and weight decay",
    NeurIPS 2021. S. Arora, Z. Li, K. Lyu, "Theoretical analysis of auto
    rate-tuning by batch normalization", ICLR 2019.

    Examples
    --------
    >>> round(equilibrium_angular_update(0.1, 5e-4, momentum=0.9), 6)
    0.007255
    """
    values = {"lr": lr, "weight_decay": weight_decay, "momentum": momentum}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise TypeError(f"{key} must be a finite number, got {value!r}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    return math.sqrt(2.0 * lr * weight_decay / (1.0 + momentum))


def _factor_axes(manifold, shape, axis):
    """The axes reduced over for one factor of a weight of ``shape``."""
    if isinstance(manifold, Oblique):
        axis = manifold.axis
    elif isinstance(manifold, Sphere):
        return tuple(range(len(shape)))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return tuple(a % len(shape) for a in axes)


def _norms(w, axes):
    return np.sqrt(np.sum(np.square(w, dtype=np.float64), axis=axes))


def _angles(a, b, axes):
    """Per factor, the angle between a and b: 2 arcsin(|a/|a| - b/|b||/2), accurate when small."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ua = a / np.expand_dims(_norms(a, axes), axes)
    ub = b / np.expand_dims(_norms(b, axes), axes)
    chord = np.sqrt(np.sum((ua - ub) ** 2, axis=axes))
    return 2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0))


class AngularTelemetry(Callback):
    r"""Records, per kernel and training step, the angle each factor turned, its norm and effective lr.

    A *factor* is one column of a Dense kernel (the weight vector into one
    unit, which batch normalization makes scale-invariant), or the factor of
    the kernel's manifold (a whole ``Sphere`` kernel). What is measured is
    the optimizer's variable: the kernel itself under ``"riemannian"``,
    ``"projection"`` and ``"none"``, the unnormalized v under ``"reparam"``.

    Parameters
    ----------
    layers : list of str, optional
        Names of the layers whose kernels to follow (at least one); all
        layers with a kernel by default.
    axis : int or tuple of int, default 0
        The axes of one factor of an unconstrained kernel (an ``Oblique``
        kernel uses its own).

    Raises
    ------
    TypeError
        ``layers`` not a list of names, ``axis`` not an int or tuple of ints.
    ValueError
        ``layers=[]``; and when training starts, a name that is not a layer
        of the model or a layer without a kernel (the message names the
        layers with one).

    Attributes
    ----------
    angles, norms, effective_lr : dict of str to ndarray, shape (steps, factors)
        Keyed by ``"<layer>/kernel"``: the angle (radians) between the
        factor's direction before and after each step, its norm after the
        step, and :math:`\eta/\|w\|^2` (the step size of the motion on the
        sphere; :math:`\eta` itself on a unit-norm kernel).
    lr : ndarray, shape (steps,)
        The learning rate of each step.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.nn import Sequential, Dense, BatchNormalization, AngularTelemetry
    >>> from spherenet.optim import RSGD
    >>> model = Sequential([Dense(4, input_dim=3), BatchNormalization(), Dense(1)], seed=0)
    >>> model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    >>> telemetry = AngularTelemetry()
    >>> x = np.random.default_rng(0).standard_normal((32, 3))
    >>> _ = model.fit(x, x[:, :1], epochs=2, batch_size=8, verbose=0, callbacks=[telemetry], seed=0)
    >>> telemetry.angles["dense/kernel"].shape, telemetry.lr.shape
    ((8, 4), (8,))
    """

    def __init__(self, layers=None, axis=0):
        if layers is not None:
            if (isinstance(layers, str) or not hasattr(layers, "__iter__")
                    or not all(isinstance(n, str) for n in layers)):
                raise TypeError(f"layers must be a list of layer names, got {layers!r}")
            layers = list(layers)
            if not layers:
                raise ValueError("layers must name at least one layer with a kernel, got []; "
                                 "leave it out (None) to follow every kernel")
        self.layers = layers
        axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                               for a in axes):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        self.axis = axes if isinstance(axis, (tuple, list)) else int(axis)
        self._angles, self._norms, self._lr = {}, {}, []
        self._tracked, self._previous = [], None

    def on_train_begin(self, logs=None):
        model = self.model
        with_kernel = [layer.name for layer, p in model._params if p.name == "kernel"]
        if self.layers is not None:
            names = [layer.name for layer in model.layers]
            unknown = [n for n in self.layers if n not in names]
            if unknown:
                raise ValueError(f"AngularTelemetry: no layer named {unknown} in the model; "
                                 f"its layers are {names}, those with a kernel {with_kernel}")
            kernelless = [n for n in self.layers if n not in with_kernel]
            if kernelless:
                raise ValueError(f"AngularTelemetry: the layers {kernelless} have no kernel to "
                                 f"follow; the layers with one are {with_kernel}")
        self._tracked = []
        for i, (layer, p) in enumerate(model._params):
            if p.name != "kernel" or (self.layers is not None and layer.name not in self.layers):
                continue
            key = f"{layer.name}/kernel"
            self._tracked.append((i, key, _factor_axes(p.manifold, p.shape, self.axis)))
            self._angles.setdefault(key, [])
            self._norms.setdefault(key, [])
        variable = model._live["variable"]
        self._previous = [np.array(variable[i], copy=True) for i, _, _ in self._tracked]

    def on_train_batch_end(self, batch, logs=None):
        live = self.model._live
        lr = math.nan if live["lr"] is None else float(live["lr"])
        self._lr.append(lr)
        for k, (i, key, axes) in enumerate(self._tracked):
            new = live["variable"][i]
            self._angles[key].append(_angles(self._previous[k], new, axes))
            self._norms[key].append(_norms(new, axes))
            self._previous[k] = np.array(new, copy=True)

    @property
    def angles(self):
        return {k: np.array(v).reshape(len(v), -1) for k, v in self._angles.items()}

    @property
    def norms(self):
        return {k: np.array(v).reshape(len(v), -1) for k, v in self._norms.items()}

    @property
    def effective_lr(self):
        lr = self.lr[:, None]
        return {k: lr / n ** 2 for k, n in self.norms.items()}

    @property
    def lr(self):
        return np.array(self._lr, dtype=np.float64)
