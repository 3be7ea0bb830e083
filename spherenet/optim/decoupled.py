r"""Decoupled weight decay (Keras's optimizers' ``weight_decay=``, AdamW's) around any step rule.

Two kinds of weight decay are in use, and they differ once there is
momentum or an adaptive step:

* *coupled* (L2): :math:`\lambda w` is added to the gradient and goes
  through the rule like the data's gradient -- ``RSGD(weight_decay=)``
  (PyTorch's ``SGD(weight_decay=)``), or a Keras ``kernel_regularizer=L2``
  term in the loss (:mod:`spherenet.nn.regularizers`);
* *decoupled*: before the step, :math:`w \leftarrow w - \eta\lambda w` with
  the current learning rate, and the rule steps from there with the
  gradient of the loss alone -- Keras 3's ``SGD(weight_decay=)``,
  ``Adam(weight_decay=)``, ``AdamW`` (Loshchilov & Hutter 2019). That is
  :class:`DecoupledWeightDecay`.
"""

import math
import numbers

from ..manifolds import Euclidean, Product
from ..strategies import ProjectionGeometry
from .rules import StepRule

__all__ = ["DecoupledWeightDecay"]


def _decayed(geometry, x, factor):
    """x with its flat factors multiplied by ``factor`` (sphere factors of a Riemannian run kept).

    Under the projection strategy every factor is decayed, as Keras decays a
    ``unit_norm`` kernel before its step and its constraint normalizes after.
    """
    if isinstance(geometry, ProjectionGeometry):
        manifolds = [Euclidean(1)] * (len(x) if isinstance(x, tuple) else 1)
    elif isinstance(geometry, Product):
        manifolds = geometry.manifolds
    else:
        manifolds = [geometry]
    if not isinstance(x, tuple):
        return x * x.dtype.type(factor) if isinstance(manifolds[0], Euclidean) else x
    return tuple(xi * xi.dtype.type(factor) if isinstance(m, Euclidean) else xi
                 for m, xi in zip(manifolds, x))


class DecoupledWeightDecay(StepRule):
    r"""A step rule with Keras's (AdamW's) decoupled weight decay: shrink, then step.

    One step from x with gradient g at x and learning rate :math:`\eta` of
    the wrapped rule's schedule:

    .. math::

        x' = (1 - \eta\lambda)\,x, \qquad x_+ = \text{rule.step}(x', g),

    applied to the Euclidean factors (biases, unconstrained kernels; a
    kernel on a sphere is left alone under the Riemannian strategy, where a
    decay means nothing, and decayed under ``"projection"``, as Keras decays
    a ``unit_norm`` kernel before normalizing it).

    Parameters
    ----------
    rule : StepRule
        E.g. ``RSGD(lr=0.1, momentum=0.9)`` (Keras's ``SGD(weight_decay=)``)
        or ``RAdam(...)`` (``AdamW``).
    weight_decay : float >= 0
        :math:`\lambda`.

    Notes
    -----
    A model compiled with this rule around ``RSGD`` or ``RAdam`` (with a
    constant learning rate) is saved with it: :func:`~spherenet.nn.load_model`
    compiles the loaded model with the same rule and decay, and its training
    resumes the saved optimizer state.

    References
    ----------
    I. Loshchilov, F. Hutter, "Decoupled weight decay regularization", ICLR 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Euclidean
    >>> from spherenet.optim import RSGD, DecoupledWeightDecay
    >>> rule, M = DecoupledWeightDecay(RSGD(lr=0.5), weight_decay=0.1), Euclidean(2)
    >>> x, _ = rule.step(M, np.array([1.0, 2.0]), np.array([1.0, 0.0]), rule.init(M, None))
    >>> x  # (1 - 0.05) x - 0.5 g
    array([0.45, 1.9 ])
    """

    def __init__(self, rule, weight_decay):
        if not isinstance(rule, StepRule):
            raise TypeError(f"rule must be a step rule such as RSGD(...), got {rule!r}")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real):
            raise TypeError(f"weight_decay must be a number, got {weight_decay!r}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        self.rule = rule
        self.weight_decay = float(weight_decay)
        self.lr = rule.lr
        self._schedule = rule._schedule

    def __repr__(self):
        return f"DecoupledWeightDecay({self.rule!r}, weight_decay={self.weight_decay})"

    def init(self, geometry, x):
        return self.rule.init(geometry, x)

    def step(self, geometry, x, egrad, state):
        if self.weight_decay:
            lr = self.rule.lr_at(state["step"])
            x = _decayed(geometry, x, 1.0 - lr * self.weight_decay)
        return self.rule.step(geometry, x, egrad, state)
