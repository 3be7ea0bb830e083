r"""Pooling and reshaping layers: ``MaxPooling2D``, ``AveragePooling2D``, ``GlobalAveragePooling2D``, ``Reshape``.

Channels last, Keras's names, arguments and output shapes (``strides``
defaults to ``pool_size``; ``"same"`` pads as for :class:`~spherenet.nn.Conv2D`,
the odd row/column at the bottom/right). Padded positions never count:
max pooling ignores them (as if they were :math:`-\infty`), average pooling
divides each window's sum by the number of *input* entries it covers, as
TensorFlow does.

Both pools are autograd primitives with hand-written vector-Jacobian
products that loop over the ph * pw positions of the window (never over the
data) and keep the dtype. With numba (the extra ``fast``), max pooling and
its gradient run as compiled kernels instead (``spherenet.nn._kernels``):
one pass over the whole batch on the calling thread (as fast as handing
half of it to a layer thread would be); they compute the same values (the
max, and each window's gradient on its first maximal entry). The gradient
of a max goes to one entry per window: the *first* maximal entry in row-major order within the window (row
by row, then column by column), as TensorFlow's ``MaxPoolGrad`` does; ties
are not split. Overlapping windows (strides smaller than the pool) add
their gradients.
"""

import math
import numbers

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp, primitive

from . import _kernels
from ._parallel import run_chunks
from .conv import _check_padding, _int_tuple, _pad, _slices, _window
from .layers import LAYERS, Layer, _as_shape

__all__ = ["MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D", "Reshape",
           "max_pool2d", "average_pool2d"]


def _crop(out, x_shape, pads):
    (top, bottom), (left, right) = pads
    if top or bottom or left or right:
        h, w = x_shape[1], x_shape[2]
        return np.ascontiguousarray(out[:, top:top + h, left:left + w])
    return out


@primitive
def _max_pool(x, window, strides, pads):
    xp = _pad(x, pads, -np.inf)
    ho, wo, cuts = _slices(xp.shape, window, strides, (1, 1))
    out = np.empty((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    kernels = _kernels.load() if _kernels.takes(xp) else False

    def chunk(lo, hi):
        part, images = out[lo:hi], xp[lo:hi]
        if kernels:
            kernels["max_pool"](images, *window, *strides, part)
            return
        np.copyto(part, images[cuts[0][2]])
        for _, _, cut in cuts[1:]:
            np.maximum(part, images[cut], out=part)

    if kernels:  # one pass over the batch takes about what waking a layer thread takes
        chunk(0, x.shape[0])
    else:
        run_chunks(chunk, x.shape[0])
    return out


def _max_pool_vjp(ans, x, window, strides, pads):
    (top, bottom), (left, right) = pads
    padded = (x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3])
    # windows that tile the input exactly write every entry once: no zero fill, no additions
    tiled = (strides == window and padded == x.shape
             and padded[1] == ans.shape[1] * window[0] and padded[2] == ans.shape[2] * window[1])

    def vjp(g):
        xp = _pad(x, pads, -np.inf)
        _, _, cuts = _slices(padded, window, strides, (1, 1))
        dxp = np.empty(padded, dtype=g.dtype)
        kernels = _kernels.load() if _kernels.takes(xp, ans, g) else False

        def chunk(lo, hi):
            images, grads, out = xp[lo:hi], g[lo:hi], dxp[lo:hi]
            if not tiled:
                out.fill(0)
            if kernels:
                kernels["max_pool_grad"](images, ans[lo:hi], grads, *window, *strides, tiled, out)
                return
            free = np.ones(grads.shape, dtype=bool)  # windows whose first max is still to be found
            for _, _, cut in cuts:
                hit = np.equal(images[cut], ans[lo:hi])
                hit &= free
                free ^= hit
                if tiled:
                    np.multiply(grads, hit, out=out[cut])
                else:
                    out[cut] += grads * hit

        if kernels:  # as the forward pass: one call on this thread
            chunk(0, x.shape[0])
        else:
            run_chunks(chunk, x.shape[0])
        return _crop(dxp, x.shape, pads)
    return vjp


defvjp(_max_pool, _max_pool_vjp)


def _counts(shape, window, strides, pads, dtype):
    """How many input entries each window covers, (Ho, Wo, 1), or a scalar without padding."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return dtype.type(window[0] * window[1])
    ones = _pad(np.ones((1, shape[1], shape[2], 1), dtype=dtype), pads, 0)
    _, _, cuts = _slices(ones.shape, window, strides, (1, 1))
    return sum(ones[cut] for _, _, cut in cuts)[0]


@primitive
def _average_pool(x, window, strides, pads):
    xp = _pad(x, pads, 0)
    ho, wo, cuts = _slices(xp.shape, window, strides, (1, 1))
    out = np.empty((x.shape[0], ho, wo, x.shape[3]), dtype=x.dtype)
    counts = _counts(x.shape, window, strides, pads, x.dtype)

    def chunk(lo, hi):
        part, images = out[lo:hi], xp[lo:hi]
        np.copyto(part, images[cuts[0][2]])
        for _, _, cut in cuts[1:]:
            part += images[cut]
        part /= counts

    run_chunks(chunk, x.shape[0])
    return out


def _average_pool_vjp(ans, x, window, strides, pads):
    def vjp(g):
        counts = _counts(x.shape, window, strides, pads, g.dtype)
        (top, bottom), (left, right) = pads
        padded = (x.shape[0], x.shape[1] + top + bottom, x.shape[2] + left + right, x.shape[3])
        _, _, cuts = _slices(padded, window, strides, (1, 1))
        dxp = np.empty(padded, dtype=g.dtype)

        def chunk(lo, hi):
            share, out = g[lo:hi] / counts, dxp[lo:hi]
            out.fill(0)
            for _, _, cut in cuts:
                out[cut] += share

        run_chunks(chunk, x.shape[0])
        return _crop(dxp, x.shape, pads)
    return vjp


defvjp(_average_pool, _average_pool_vjp)


def _pool_args(x, pool_size, strides, padding):
    shape = tuple(getattr(x, "shape", np.shape(x)))
    if len(shape) != 4:
        raise ValueError(f"x must have shape (batch, height, width, channels), got shape {shape}")
    dtype = getattr(x, "dtype", None)
    if dtype is None or not np.issubdtype(dtype, np.floating):
        raise TypeError(f"x must be a floating-point array, got dtype {dtype}")
    window = _int_tuple("pool_size", pool_size, 2)
    strides = window if strides is None else _int_tuple("strides", strides, 2)
    padding = _check_padding(padding)
    _, top, bottom = _window(shape[1], window[0], strides[0], 1, padding, "input height")
    _, left, right = _window(shape[2], window[1], strides[1], 1, padding, "input width")
    return window, strides, ((top, bottom), (left, right))


def max_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Max over windows of a channels-last batch (N, H, W, C), as Keras's ``MaxPooling2D``.

    The gradient goes to the first maximal entry of each window in
    row-major order (see the module's notes).

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    pool_size : int or (int, int), default 2
    strides : int or (int, int), optional
        Default ``pool_size``.
    padding : {"valid", "same"}, default "valid"

    Returns
    -------
    ndarray, shape (N, Ho, Wo, C)

    Raises
    ------
    ValueError
        For a wrong rank, an unknown padding, or a window larger than the
        input with ``"valid"``.
    TypeError
        For an array that is not floating point.

    Examples
    --------
    >>> import numpy as np
    >>> max_pool2d(np.arange(16.0).reshape(1, 4, 4, 1))[0, :, :, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    window, strides, pads = _pool_args(x, pool_size, strides, padding)
    return _max_pool(x, window, strides, pads)


def average_pool2d(x, pool_size=2, strides=None, padding="valid"):
    """Mean over windows of a channels-last batch, as Keras's ``AveragePooling2D``.

    With ``"same"``, a window that overlaps the padding averages the input
    entries it covers only.

    Parameters and errors as :func:`max_pool2d`.

    Examples
    --------
    >>> import numpy as np
    >>> average_pool2d(np.arange(9.0).reshape(1, 3, 3, 1), padding="same")[0, :, :, 0]
    array([[2. , 3.5],
           [6.5, 8. ]])
    """
    window, strides, pads = _pool_args(x, pool_size, strides, padding)
    return _average_pool(x, window, strides, pads)


class _Pooling2D(Layer):
    _pool = None

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None,
                 name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.pool_size = _int_tuple("pool_size", pool_size, 2)
        self.strides = self.pool_size if strides is None else _int_tuple("strides", strides, 2)
        self.padding = _check_padding(padding)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"data_format must be 'channels_last' (or None), got {data_format!r}")
        self._pads = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        cls = type(self).__name__
        if len(input_shape) != 3:
            raise ValueError(
                f"layer {self.name!r} ({cls}) expects samples of shape (height, width, channels), "
                f"got {input_shape}")
        sizes, pads = [], []
        for size, k, s, axis in zip(input_shape[:2], self.pool_size, self.strides,
                                    ("height", "width")):
            try:
                out, before, after = _window(size, k, s, 1, self.padding, f"input {axis}")
            except ValueError as err:
                raise ValueError(f"layer {self.name!r} ({cls}): {err}") from None
            sizes.append(out)
            pads.append((before, after))
        self._pads = tuple(pads)
        self.output_shape = (*sizes, input_shape[2])
        return self.output_shape

    def apply(self, params, x, training=False, rng=None):
        return type(self)._pool(x, self.pool_size, self.strides, self._pads)

    def get_config(self):
        config = super().get_config()
        config.update(pool_size=list(self.pool_size), strides=list(self.strides),
                      padding=self.padding)
        return config


class MaxPooling2D(_Pooling2D):
    """Max pooling over windows of channels-last images (Keras's ``MaxPooling2D``).

    Parameters
    ----------
    pool_size : int or (int, int), default (2, 2)
    strides : int or (int, int), optional
        Default ``pool_size``.
    padding : {"valid", "same"}, default "valid"
    data_format : {None, "channels_last"}
    name, input_shape
        As for :class:`~spherenet.nn.layers.Layer`.

    Notes
    -----
    The gradient of each window goes to its first maximal entry in
    row-major order, as in TensorFlow.

    Examples
    --------
    >>> MaxPooling2D(pool_size=3, strides=2, padding="same").build((7, 5, 4))
    (4, 3, 4)
    """

    _pool = _max_pool


class AveragePooling2D(_Pooling2D):
    """Average pooling over windows of channels-last images (Keras's ``AveragePooling2D``).

    Arguments as :class:`MaxPooling2D`. With ``"same"``, windows that reach
    into the padding average only the input entries they cover.

    Examples
    --------
    >>> AveragePooling2D(2).build((7, 5, 4))
    (3, 2, 4)
    """

    _pool = _average_pool


class GlobalAveragePooling2D(Layer):
    """The mean over height and width: (N, H, W, C) -> (N, C) (Keras's ``GlobalAveragePooling2D``).

    Parameters
    ----------
    data_format : {None, "channels_last"}
    keepdims : bool, default False
        Keep the spatial axes as size 1: (N, 1, 1, C).
    name, input_shape
        As for :class:`~spherenet.nn.layers.Layer`.

    Examples
    --------
    >>> import numpy as np
    >>> layer = GlobalAveragePooling2D()
    >>> layer.build((2, 2, 3))
    (3,)
    >>> layer.apply((), np.ones((1, 2, 2, 3)))
    array([[1., 1., 1.]])
    """

    def __init__(self, data_format=None, keepdims=False, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"data_format must be 'channels_last' (or None), got {data_format!r}")
        self.keepdims = bool(keepdims)

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != 3:
            raise ValueError(
                f"layer {self.name!r} (GlobalAveragePooling2D) expects samples of shape "
                f"(height, width, channels), got {input_shape}")
        self.output_shape = (1, 1, input_shape[2]) if self.keepdims else (input_shape[2],)
        return self.output_shape

    def apply(self, params, x, training=False, rng=None):
        return _spatial_mean(x, self.keepdims)

    def get_config(self):
        config = super().get_config()
        config["keepdims"] = self.keepdims
        return config


@primitive
def _spatial_mean(x, keepdims):
    out = np.mean(x, axis=(1, 2), keepdims=True, dtype=x.dtype)
    return out if keepdims else out[:, 0, 0, :]


def _spatial_mean_vjp(ans, x, keepdims):
    scale = x.dtype.type(1.0 / (x.shape[1] * x.shape[2]))

    def vjp(g):
        g = g.reshape(g.shape[0], 1, 1, g.shape[-1])
        return np.broadcast_to(g * scale, x.shape).copy()
    return vjp


defvjp(_spatial_mean, _spatial_mean_vjp)


class Reshape(Layer):
    """Reshape each sample to ``target_shape`` (Keras's ``Reshape``; the batch axis is kept).

    Parameters
    ----------
    target_shape : tuple of int
        Without the batch axis; one entry may be -1, inferred from the size.
    name, input_shape
        As for :class:`~spherenet.nn.layers.Layer`.

    Raises
    ------
    ValueError
        For a target of another size than the input, or more than one -1.

    Examples
    --------
    >>> layer = Reshape((8, 8, 1))
    >>> layer.build((64,))
    (8, 8, 1)
    >>> Reshape((-1, 2)).build((3, 4))
    (6, 2)
    """

    def __init__(self, target_shape, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if isinstance(target_shape, numbers.Integral):
            target_shape = (target_shape,)
        if not isinstance(target_shape, (tuple, list)) or not target_shape or any(
                isinstance(n, bool) or not isinstance(n, numbers.Integral)
                or (n < 1 and n != -1) for n in target_shape):
            raise ValueError(f"target_shape must be a tuple of positive integers (one may be -1), "
                             f"got {target_shape!r}")
        if sum(1 for n in target_shape if n == -1) > 1:
            raise ValueError(f"target_shape may have at most one -1, got {tuple(target_shape)}")
        self.target_shape = tuple(int(n) for n in target_shape)

    def build(self, input_shape):
        input_shape = _as_shape(input_shape)
        size = math.prod(input_shape)
        known = math.prod(n for n in self.target_shape if n != -1)
        if -1 in self.target_shape:
            if size % known:
                raise ValueError(
                    f"layer {self.name!r} (Reshape): cannot reshape samples of shape "
                    f"{input_shape} ({size} values) to {self.target_shape}: {size} is not a "
                    f"multiple of {known}")
            shape = tuple(size // known if n == -1 else n for n in self.target_shape)
        else:
            if known != size:
                raise ValueError(
                    f"layer {self.name!r} (Reshape): cannot reshape samples of shape "
                    f"{input_shape} ({size} values) to {self.target_shape} ({known} values)")
            shape = self.target_shape
        self.output_shape = shape
        return shape

    def apply(self, params, x, training=False, rng=None):
        return anp.reshape(x, (x.shape[0], *self.output_shape))

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = list(self.target_shape)
        return config


LAYERS.update({cls.__name__: cls for cls in (MaxPooling2D, AveragePooling2D,
                                             GlobalAveragePooling2D, Reshape)})
