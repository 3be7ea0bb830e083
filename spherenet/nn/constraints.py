r"""Weight constraints, read as manifolds.

In Keras a constraint is a function applied to the weights after each
optimizer step: ``unit_norm(axis=0)`` rescales every column of a kernel to
unit norm. In spherenet the same line says *where the kernel lives*: on the
oblique manifold of matrices with unit columns. The model then keeps it there
with the strategy given to ``compile`` -- Riemannian steps by default, or
Keras's "step, then normalize" (``strategy="projection"``, which applies
exactly :meth:`UnitNorm.__call__` after every step), reparametrization or a
penalty.
"""

import numpy as np

from ..manifolds import Oblique
from ._registry import from_config

__all__ = ["Constraint", "UnitNorm", "unit_norm", "get"]


class Constraint:
    """Base class: a constraint names the manifold of the weights it constrains."""

    name = None

    def manifold(self, shape):
        """The manifold of weights of ``shape`` that satisfy the constraint."""
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}


class UnitNorm(Constraint):
    r"""Unit-norm weight vectors along ``axis``, with Keras's meaning of ``axis``.

    ``axis=0`` (default): for a Dense kernel of shape (input_dim, units),
    every column -- the weight vector into one unit -- has norm 1; the kernel
    is a point of ``Oblique(input_dim, units, axis=0)``. ``axis=1``: every
    row. A tuple spans several axes (e.g. a whole convolution filter).

    Parameters
    ----------
    axis : int or tuple of int, default 0

    Examples
    --------
    >>> from spherenet.nn import unit_norm
    >>> unit_norm().manifold((2, 500))
    Oblique(shape=(2, 500), axis=0, retraction='exp', transport='projection')
    """

    name = "unit_norm"
    #: Keras's ``backend.epsilon()``, added to the norm by :meth:`__call__`.
    epsilon = 1e-7

    def __init__(self, axis=0):
        if isinstance(axis, list):
            axis = tuple(axis)
        self.axis = axis

    def __repr__(self):
        return f"UnitNorm(axis={self.axis!r})"

    def manifold(self, shape):
        return Oblique(shape=tuple(shape), axis=self.axis)

    def __call__(self, w):
        r"""Keras's projection :math:`w / (\epsilon + \|w\|)` along ``axis``.

        Examples
        --------
        >>> import numpy as np
        >>> UnitNorm()(np.array([[3.0], [4.0]])).ravel().round(6)
        array([0.6, 0.8])
        """
        norms = np.sqrt(np.sum(w * w, axis=self.axis, keepdims=True))
        return w / (w.dtype.type(self.epsilon) + norms)

    def get_config(self):
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {"name": self.name, "axis": axis}


#: Keras spells the constraint both ways; ``unit_norm()`` is ``UnitNorm()``.
unit_norm = UnitNorm

_CONSTRAINTS = {"unit_norm": UnitNorm}


def get(identifier):
    """A constraint from None, a name, a config dict or an instance.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    if identifier is None or isinstance(identifier, Constraint):
        return identifier
    return from_config(identifier, _CONSTRAINTS, "constraint")
