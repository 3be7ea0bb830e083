"""Per-factor reductions shared by the sphere-like manifolds.

A *factor* is one sphere of a product of spheres: the whole array for
:class:`~spherenet.Sphere`, one column for ``Oblique(m, n, axis=0)``. The
reductions return one float64 number per factor, shaped to broadcast against
the array (keepdims). float32 data are accumulated in float64, so a norm of a
float32 array with a million entries is still correct to float32 rounding.
"""

import string

import numpy as np

try:
    # What np.einsum calls when not asked to optimize, without its Python layers
    # (dispatch, argument parsing): a microsecond per call, several per iteration.
    from numpy._core._multiarray_umath import c_einsum as _einsum
except ImportError:  # pragma: no cover - numpy < 2 or a future layout
    _einsum = np.einsum


class FactorReducer:
    """Reduce arrays of a fixed shape over a fixed set of axes.

    Parameters
    ----------
    shape : tuple of int
        Shape of the arrays.
    axes : tuple of int
        The axes that span one factor (non-negative, sorted).
    """

    def __init__(self, shape, axes):
        self.shape = shape
        self.axes = axes
        letters = string.ascii_letters[: len(shape)]
        kept = "".join(c for i, c in enumerate(letters) if i not in axes)
        self._subscripts = f"{letters},{letters}->{kept}"
        self.keep_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
        self.factor_size = int(np.prod([shape[i] for i in axes]))
        self.n_factors = int(np.prod(self.keep_shape))
        tiny, eps = np.finfo(np.float64).tiny, np.finfo(np.float64).eps
        # Below this a float64 sum of squares may have lost relative accuracy
        # to underflow; above it (inf) it overflowed. Both are rare: rescale.
        self._low = self.factor_size * tiny / eps

    def dot(self, a, b):
        """Per-factor inner products <a, b> (float64, keepdims)."""
        if self.n_factors == 1 and a.dtype == np.float64 and b.dtype == np.float64:
            # One factor: BLAS dot, an order of magnitude cheaper than einsum on small arrays.
            return np.dot(a.ravel(), b.ravel()).reshape(self.keep_shape)
        return _einsum(self._subscripts, a, b, dtype=np.float64).reshape(self.keep_shape)

    def total(self, a, b):
        """sum over factors of <a, b>, as a float."""
        if a.dtype == np.float64 and b.dtype == np.float64:
            return float(np.dot(a.ravel(), b.ravel()))
        return float(np.sum(self.dot(a, b)))

    def safe(self, sq):
        """True when float64 sums of squares ``sq`` kept full relative accuracy."""
        if self.n_factors == 1:
            value = float(sq.flat[0])
            return self._low <= value < np.inf
        return bool(np.all((sq >= self._low) & (sq < np.inf)))

    def norms(self, a):
        """Per-factor norms ||a|| (float64, keepdims), safe from under/overflow."""
        if a.dtype == np.float64:
            # A sum of squares that overflows is expected here and handled below.
            with np.errstate(over="ignore"):
                sq = self.dot(a, a)
        else:
            sq = self.dot(a, a)
        if a.dtype == np.float64 and not self.safe(sq):
            # Rescale by the largest entry, so that tiny (1e-150) and huge
            # (1e200) vectors keep full relative accuracy.
            scale = np.max(np.abs(a), axis=self.axes, keepdims=True)
            safe = np.where(scale > 0, scale, 1.0)
            scaled = a / safe
            return safe * np.sqrt(self.dot(scaled, scaled))
        return np.sqrt(sq)


def hypot(values):
    """The Euclidean norm of an array of non-negative numbers, without overflow."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 1:
        return abs(float(values[0]))
    if values.size == 0:
        return 0.0
    scale = np.max(values)
    if not np.isfinite(scale) or scale == 0.0:
        return float(scale)
    return float(scale * np.sqrt(np.sum((values / scale) ** 2)))
