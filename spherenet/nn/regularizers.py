r"""Weight regularizers: terms added to the training loss, with Keras's names.

``Dense(..., kernel_regularizer=L2(1e-4))`` adds :math:`10^{-4}\sum w^2` to
the loss that ``fit`` differentiates (and that ``fit``/``evaluate`` report,
as Keras does). That is the *coupled* form of weight decay: its gradient
:math:`2\lambda w` goes through the optimizer like the data's, momentum and
all -- the same as ``RSGD(weight_decay=2 * lambda)``, which adds
:math:`\text{weight\_decay}\cdot w` to the gradient of every weight (PyTorch's
``SGD(weight_decay=...)``). Keras's optimizers' own ``weight_decay=`` is the
*decoupled* form (AdamW: :math:`w \leftarrow w - \eta\lambda w` before the
step): :class:`spherenet.optim.DecoupledWeightDecay`. On a kernel that lives on a
sphere, an L2 term is constant and does nothing; :class:`HypersphericalEnergy`
is the regularizer made for such kernels: it spreads their columns over the
sphere.
"""

import numbers

import autograd.numpy as anp
import numpy as np

from ..problems.thomson import riesz_energy
from ._normalize import l2_normalize
from ._registry import from_config

__all__ = ["Regularizer", "L1", "L2", "L1L2", "HypersphericalEnergy", "get"]


def _factor(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            np.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Regularizer:
    """Base class: ``regularizer(w)`` is the term added to the loss (autograd-traceable)."""

    name = None

    def __call__(self, w):
        raise NotImplementedError

    def get_config(self):
        return {"name": self.name}

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"


class L1L2(Regularizer):
    r"""Keras's ``L1L2``: :math:`\text{l1}\sum|w| + \text{l2}\sum w^2`.

    Parameters
    ----------
    l1, l2 : float >= 0, default 0

    Examples
    --------
    >>> import numpy as np
    >>> float(L1L2(l1=0.5, l2=0.25)(np.array([1.0, -2.0])))
    2.75
    """

    name = "l1_l2"

    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = _factor("l1", l1), _factor("l2", l2)

    def __call__(self, w):
        dtype = w.dtype.type
        total = 0.0
        if self.l1:
            total = total + dtype(self.l1) * anp.sum(anp.abs(w))
        if self.l2:
            total = total + dtype(self.l2) * anp.sum(w * w)
        return total

    def get_config(self):
        return {"name": self.name, "l1": self.l1, "l2": self.l2}


class L1(L1L2):
    r"""Keras's ``L1``: :math:`\text{l1}\sum|w|`, default ``l1=0.01``.

    Examples
    --------
    >>> import numpy as np
    >>> float(L1(0.1)(np.array([1.0, -2.0])))
    0.30000000000000004
    """

    name = "l1"

    def __init__(self, l1=0.01):
        super().__init__(l1=l1)

    def get_config(self):
        return {"name": self.name, "l1": self.l1}


class L2(L1L2):
    r"""Keras's ``L2``: :math:`\text{l2}\sum w^2`, default ``l2=0.01``.

    Its gradient is :math:`2\,\text{l2}\,w`: ``L2(l2)`` on every weight is
    ``RSGD(weight_decay=2 * l2)``.

    Examples
    --------
    >>> import numpy as np
    >>> float(L2(0.1)(np.array([1.0, -2.0])))
    0.5
    """

    name = "l2"

    def __init__(self, l2=0.01):
        super().__init__(l2=l2)

    def get_config(self):
        return {"name": self.name, "l2": self.l2}


class HypersphericalEnergy(Regularizer):
    r"""Minimum hyperspherical energy (MHE): the Riesz energy of a kernel's unit columns.

    .. math::

        \text{factor}\sum_{i<j}\|\hat w_i - \hat w_j\|^{-s},
        \qquad \hat w_i = w_i / \|w_i\|,

    or :math:`\text{factor}\sum_{i<j}\log(1/\|\hat w_i - \hat w_j\|)` for
    ``power=0``, over the factors (columns of a Dense kernel) along
    ``axis``. For ``power=1`` and unit-norm columns it is the Thomson
    energy (:func:`spherenet.problems.riesz_energy`, whose formula it
    uses): minimizing it spreads the units' weight vectors over the sphere.
    The paper averages over the N(N-1) ordered pairs; this sums the
    unordered ones, so its ``factor`` is the paper's weight times
    2 / (N(N-1)).

    Parameters
    ----------
    factor : float >= 0, default 0.01
    power : float >= 0, default 1
        The exponent s (0: logarithmic energy).
    axis : int or tuple of int, default 0
        The axes of one factor, as for ``unit_norm(axis)``.

    Notes
    -----
    Memory grows as d * N^2 (see :func:`~spherenet.problems.riesz_energy`).

    References
    ----------
    W. Liu, R. Lin, Z. Liu, L. Liu, Z. Yu, B. Dai, L. Song, "Learning towards
    minimum hyperspherical energy", NeurIPS 2018.

    Examples
    --------
    Three unit vectors of the plane at 120 degrees are sqrt(3) apart:

    >>> import numpy as np
    >>> t = 2 * np.pi * np.arange(3) / 3
    >>> w = np.stack([np.cos(t), np.sin(t)])
    >>> round(float(HypersphericalEnergy(factor=1.0)(w)), 12), round(3 / 3 ** 0.5, 12)
    (1.732050807569, 1.732050807569)
    """

    name = "hyperspherical_energy"

    def __init__(self, factor=0.01, power=1.0, axis=0):
        self.factor = _factor("factor", factor)
        self.power = _factor("power", power)
        if isinstance(axis, list):
            axis = tuple(axis)
        axes = axis if isinstance(axis, tuple) else (axis,)
        if not axes or not all(isinstance(a, numbers.Integral) and not isinstance(a, bool)
                               for a in axes):
            raise TypeError(f"axis must be an int or a tuple of ints, got {axis!r}")
        self.axis = axis

    def _columns(self, w):
        """The factors of ``w`` as the columns of a matrix."""
        ndim = len(w.shape)
        given = self.axis if isinstance(self.axis, tuple) else (self.axis,)
        axes = tuple(sorted({a % ndim for a in given if -ndim <= a < ndim}))
        if len(axes) != len(given):
            raise ValueError(f"axis {self.axis!r} does not fit a weight of shape {w.shape}")
        rest = tuple(a for a in range(ndim) if a not in axes)
        d = int(np.prod([w.shape[a] for a in axes]))
        return anp.reshape(anp.transpose(w, axes + rest), (d, -1))

    def __call__(self, w):
        cols = self._columns(w)
        dtype = w.dtype.type
        unit = l2_normalize(cols, 0)  # Keras's: finite for a zero column
        if self.power == 0.0:
            n = unit.shape[1]
            diff = unit[:, :, None] - unit[:, None, :]
            r2 = anp.sum(diff * diff, axis=0) + np.eye(n, dtype=w.dtype)
            upper = np.triu(np.ones((n, n), dtype=w.dtype), k=1)
            energy = dtype(-0.5) * anp.sum(upper * anp.log(r2))
        else:
            energy = riesz_energy(unit, self.power)
        return dtype(self.factor) * energy

    def get_config(self):
        axis = list(self.axis) if isinstance(self.axis, tuple) else self.axis
        return {"name": self.name, "factor": self.factor, "power": self.power, "axis": axis}


_REGULARIZERS = {"l1": L1, "l2": L2, "l1_l2": L1L2, "l1l2": L1L2,
                 "hyperspherical_energy": HypersphericalEnergy, "mhe": HypersphericalEnergy}


def get(identifier):
    """A regularizer from None, a name (``"l2"``, ``"mhe"``, ...), a config dict or an instance.

    Raises
    ------
    ValueError
        For an unknown name.

    Examples
    --------
    >>> get("l2")
    L2(l2=0.01)
    >>> get({"name": "mhe", "factor": 0.1})
    HypersphericalEnergy(factor=0.1, power=1.0, axis=0)
    """
    if identifier is None or isinstance(identifier, Regularizer):
        return identifier
    return from_config(identifier, _REGULARIZERS, "regularizer")
