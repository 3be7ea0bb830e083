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


# Bytes of an array per slice in FactorReducer.moments (and the NumPy gradient
# step): two slices, their float64 copies and a buffer fit in a 2 MB L2 cache.
CHUNK_BYTES = 256 * 1024


def _cast(a, buf):
    """``a`` cast to float64 into the leading rows of ``buf``."""
    view = buf[: a.shape[0]]
    np.copyto(view, a)
    return view


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

    def chunk_rows(self, a):
        """Length of the slices along axis 0 that :meth:`moments` and updates go by.

        A slice of a C-contiguous array is about ``CHUNK_BYTES`` of it, so that
        the slices of two arrays (and a buffer) stay in the core's cache while
        several operations go over them: the arrays are read once from memory
        instead of once per operation. Other layouts go in one piece.
        """
        if not a.flags.c_contiguous or a.ndim == 0:
            return max(1, self.shape[0])
        return max(1, CHUNK_BYTES // max(1, a.strides[0]))

    def moments(self, a, b):
        """Per-factor <a, a>, <a, b> and <b, b> (float64, keepdims), reading a and b once.

        The three sums go over slices of the arrays along axis 0 (see
        :meth:`chunk_rows`), each slice in cache for all three; partial sums
        over the slices are added up (axis 0 a factor axis) or fill their part
        of the result (axis 0 kept). float32 slices are cast to float64 into
        buffers first: einsum casting as it multiplies is slower than the cast
        and the float64 sums together. One factor uses BLAS dots (on float64
        data or copies). Arrays of one slice go as :meth:`dot` three times.

        Examples
        --------
        >>> import numpy as np
        >>> red = FactorReducer((3, 2), (0,))
        >>> a = np.array([[1.0, 0.0], [2.0, 1.0], [2.0, 0.0]])
        >>> [s.ravel().tolist() for s in red.moments(a, np.ones((3, 2)))]
        [[9.0, 1.0], [5.0, 1.0], [3.0, 3.0]]
        """
        n0 = self.shape[0]
        step = self.chunk_rows(a) if b.flags.c_contiguous else n0
        if step >= n0:  # one piece (small, or not C-contiguous): no buffers
            return self.dot(a, a), self.dot(a, b), self.dot(b, b)
        reduced0 = 0 in self.axes
        sums = [np.zeros(self.keep_shape) for _ in range(3)]
        cast = a.dtype != np.float64 or b.dtype != np.float64
        if cast:
            buf_a = np.empty((step,) + self.shape[1:])
            buf_b = np.empty((step,) + self.shape[1:])
        for i0 in range(0, n0, step):
            ac, bc = a[i0 : i0 + step], b[i0 : i0 + step]
            if cast:
                ac = _cast(ac, buf_a)
                bc = _cast(bc, buf_b)
            if self.n_factors == 1 and ac.flags.c_contiguous and bc.flags.c_contiguous:
                af, bf = ac.ravel(), bc.ravel()
                parts = (np.dot(af, af), np.dot(af, bf), np.dot(bf, bf))
            else:
                parts = (
                    _einsum(self._subscripts, ac, ac),
                    _einsum(self._subscripts, ac, bc),
                    _einsum(self._subscripts, bc, bc),
                )
            for total, part in zip(sums, parts):
                if reduced0 or self.n_factors == 1:
                    total += np.reshape(part, self.keep_shape)
                else:
                    total[i0 : i0 + step] = np.reshape(part, (-1,) + self.keep_shape[1:])
        return tuple(sums)

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
