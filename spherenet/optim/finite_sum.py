"""Finite-sum data: validation, slicing and the seeded sampler of mini-batches.

A finite-sum cost is :math:`f(x) = \\frac1n \\sum_{i=1}^n f_i(x)`, one term
per sample of a data set. spherenet takes it as ``cost(x, batch)``, the mean
of the terms over the samples of ``batch``, with ``data`` an array (or a
tuple of arrays, e.g. inputs and targets) whose leading axis is the sample
axis: ``batch`` is ``data[idx]`` (or the tuple of ``a[idx]``) for an index
array ``idx`` drawn by :class:`BatchSampler`, and ``cost(x, data)`` is the
full cost.
"""

import math
import numbers

import numpy as np

from ..manifolds.base import as_rng

__all__ = ["BatchSampler", "as_data", "take", "num_samples"]


def _check_array(a, what):
    try:
        a = np.asarray(a)
    except (ValueError, TypeError) as err:  # ragged nested lists
        raise ValueError(f"{what} must be a numeric array with a leading sample axis: {err}") \
            from None
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{what} must be a real numeric array (bool, int or float), "
                        f"got dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{what} must have a leading sample axis, got a scalar")
    if len(a) == 0:
        raise ValueError(f"{what} has no samples (shape {a.shape})")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a)
        if bad.any():
            first = int(np.argmax(bad.reshape(len(a), -1).any(axis=1)))
            raise ValueError(f"{what} has {int(bad.sum())} NaN or infinite value(s) "
                             f"(first in sample {first})")
    return a


def as_data(data):
    """``data`` checked: an array, or a tuple of arrays, with one common leading sample axis.

    Arrays are taken as they are (no copy, no cast: integer labels stay
    integers); a list (of numbers or nested lists) is read as one array, a
    tuple as several; a list of arrays is refused, as ambiguous.

    Parameters
    ----------
    data : array_like or tuple of array_like

    Returns
    -------
    ndarray or tuple of ndarray

    Raises
    ------
    TypeError
        A dtype that is not bool, int or float (complex, object, strings); a
        list of arrays (a tuple was likely meant).
    ValueError
        A scalar, no samples, NaN or Inf values (saying in which sample), an
        empty tuple, or arrays of a tuple with different numbers of samples.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.optim.finite_sum import as_data
    >>> X, y = as_data((np.zeros((5, 2)), np.arange(5)))
    >>> X.shape, y.dtype.kind
    ((5, 2), 'i')
    >>> as_data((np.zeros((5, 2)), np.arange(4)))
    Traceback (most recent call last):
    ...
    ValueError: data[1] has 4 samples but data[0] has 5: every array of data needs the same leading (sample) axis
    """
    if isinstance(data, tuple):
        if not data:
            raise ValueError("data is an empty tuple: give an array or a tuple of arrays")
        arrays = tuple(_check_array(a, f"data[{k}]") for k, a in enumerate(data))
        for k, a in enumerate(arrays[1:], start=1):
            if len(a) != len(arrays[0]):
                raise ValueError(
                    f"data[{k}] has {len(a)} samples but data[0] has {len(arrays[0])}: every "
                    "array of data needs the same leading (sample) axis")
        return arrays
    if data is None or isinstance(data, (str, bytes, dict, set)):
        raise TypeError(f"data must be an array or a tuple of arrays, got {type(data).__name__}")
    if isinstance(data, list) and data and all(isinstance(a, np.ndarray) and a.ndim >= 1
                                               for a in data):
        # np.asarray([X, y]) stacks X and y into len(data) "samples" (or fails on ragged
        # shapes): almost surely the tuple (X, y) was meant.
        raise TypeError(f"data is a list of {len(data)} arrays: give a tuple (X, y) for several "
                        "arrays of samples, or one array, e.g. np.asarray(data), if the list "
                        "holds the samples")
    return _check_array(data, "data")


def num_samples(data):
    """The number of samples n of checked ``data`` (the length of the leading axis)."""
    return len(data[0]) if isinstance(data, tuple) else len(data)


def take(data, idx):
    """The samples ``idx`` of ``data``: ``data[idx]``, or the tuple of ``a[idx]``."""
    if isinstance(data, tuple):
        return tuple(a[idx] for a in data)
    return data[idx]


def check_batch_size(batch_size, n):
    """``batch_size`` as an int in [1, n] (None: 1)."""
    if batch_size is None:
        return 1
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise TypeError(f"batch_size must be an int in [1, {n}] (the number of samples), "
                        f"got {type(batch_size).__name__}")
    if not 1 <= batch_size <= n:
        raise ValueError(f"batch_size must be an int in [1, {n}] (the number of samples), "
                         f"got {batch_size}")
    return int(batch_size)


class BatchSampler:
    """A seeded stream of mini-batches of sample indices.

    Parameters
    ----------
    n : int
        Number of samples.
    batch_size : int
        Samples per batch, 1 <= batch_size <= n.
    replace : bool, default False
        False: sampling without replacement, by passes over the data. Each
        pass draws one permutation ``rng.permutation(n)`` (when its first
        batch is asked for) and cuts it, in order, into
        ``ceil(n / batch_size)`` batches; the last one has the
        ``n - (ceil(n / batch_size) - 1) * batch_size`` samples left when
        batch_size does not divide n. Every sample is used exactly once per
        pass. True: sampling with replacement, every batch is
        ``rng.integers(0, n, size=batch_size)``, independent of the others.
    rng : None, int or numpy.random.Generator
        The only source of randomness; the draws above are the only calls
        made to it, in that order.

    Attributes
    ----------
    batches_per_epoch : int
        ``ceil(n / batch_size)``, with or without replacement: an epoch is
        one pass without replacement, and as many samples with it.

    Examples
    --------
    >>> import numpy as np
    >>> sampler = BatchSampler(5, 2, rng=0)
    >>> perm = np.random.default_rng(0).permutation(5)
    >>> batches = [sampler.next() for _ in range(3)]
    >>> [b.tolist() for b in batches] == [perm[:2].tolist(), perm[2:4].tolist(), perm[4:].tolist()]
    True
    >>> sampler.batches_per_epoch
    3
    """

    def __init__(self, n, batch_size, replace=False, rng=None):
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n must be an int >= 1, got {n!r}")
        self.n = int(n)
        self.batch_size = check_batch_size(batch_size, self.n)
        if not isinstance(replace, (bool, np.bool_)):
            raise TypeError(f"replace must be True or False, got {type(replace).__name__}")
        self.replace = bool(replace)
        self.rng = as_rng(rng)
        self.batches_per_epoch = math.ceil(self.n / self.batch_size)
        self._perm = None
        self._pos = 0

    def next(self):
        """The index array of the next batch (int64, length ``batch_size`` or less at a pass's end)."""
        if self.replace:
            return self.rng.integers(0, self.n, size=self.batch_size)
        if self._perm is None or self._pos >= self.n:
            self._perm = self.rng.permutation(self.n)
            self._pos = 0
        idx = self._perm[self._pos:self._pos + self.batch_size]
        self._pos += self.batch_size
        return idx
