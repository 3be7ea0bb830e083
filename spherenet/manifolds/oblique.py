"""The oblique manifold: arrays whose every column (or slice) has unit norm."""

import numbers

from .base import _check_shape
from .sphere import _Spheres

__all__ = ["Oblique"]


class Oblique(_Spheres):
    r"""A product of unit spheres: every slice of an array along ``axis`` has unit norm.

    ``Oblique(m, n)`` is the set of m-by-n matrices whose *columns* have unit
    norm, the same convention as Keras ``unit_norm(axis=0)`` and pymanopt's
    ``Oblique(m, n)``: a kernel of shape (input_dim, units) whose weight
    vector into every unit lies on the sphere S^{m-1}.

    Parameters
    ----------
    *shape : int
        Shape of a point, e.g. ``Oblique(m, n)``; or give ``shape=``.
    axis : int or tuple of int, default 0
        The axes spanned by one sphere factor. ``axis=0`` normalizes columns,
        ``axis=1`` rows; ``axis=(0, 1, 2)`` on a (kh, kw, c_in, c_out)
        convolution kernel normalizes each output filter.
    retraction : {"exp", "projection"}, default "exp"
    transport : {"projection", "parallel"}, default "projection"
        As for :class:`Sphere`, applied factor by factor.
    shape : tuple of int, optional
        Alternative to the positional shape.

    Notes
    -----
    The geometry is the product geometry: every map of :class:`Sphere` acts
    on each factor, the metric is the sum of the factors' metrics, and the
    distance is the root sum of squares of the factors' angles. All factors
    are handled at once by whole-array operations.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Oblique
    >>> M = Oblique(3, 5)
    >>> x = M.random_point(rng=0)
    >>> np.allclose(np.linalg.norm(x, axis=0), 1.0)
    True
    >>> M.dim
    10
    """

    def __init__(self, *shape, axis=0, retraction="exp", transport="projection", **kwargs):
        if "shape" in kwargs:
            if shape:
                raise TypeError("give the shape either positionally or as shape=, not both")
            shape = (kwargs.pop("shape"),)
        if kwargs:
            raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(kwargs))}")
        shape = _check_shape(shape)
        axes = axis if isinstance(axis, tuple) else (axis,)
        if not axes or any(isinstance(a, bool) or not isinstance(a, numbers.Integral) for a in axes):
            raise TypeError(f"axis must be an int or a non-empty tuple of ints, got {axis!r}")
        ndim = len(shape)
        if any(not -ndim <= a < ndim for a in axes):
            raise ValueError(f"axis {axis!r} is out of range for shape {shape}")
        norm_axes = tuple(sorted(int(a) % ndim for a in axes))
        if len(set(norm_axes)) != len(norm_axes):
            raise ValueError(f"axis {axis!r} repeats an axis")
        super().__init__(shape, norm_axes, retraction, transport)

    @property
    def axis(self):
        """The axes spanned by one sphere factor."""
        return self._axes[0] if len(self._axes) == 1 else self._axes

    def _repr_args(self):
        return (
            f"(shape={self._shape}, axis={self.axis!r}, retraction={self.retraction!r}, "
            f"transport={self.transport!r})"
        )
