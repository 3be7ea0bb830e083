"""Optional compiled kernels (numba) for the pooling and convolution layers.

numba is the optional extra ``fast``: it is imported the first time a kernel
is needed, never at ``import spherenet``; without it (or for arrays the
kernels do not take: another dtype than float32/float64, a layout that is not
C-contiguous) :func:`load` returns False and the layers run their NumPy
paths. Every kernel is compiled with ``nogil=True``: with several layer
threads (:func:`~spherenet.nn.set_num_threads`) the blocks of a batch run
at once, where NumPy's many small calls per block would take turns at the
GIL between their loops. Each kernel computes what the NumPy path computes
(see each one), in the arrays' dtype; the loops run over the channels
innermost, contiguous in memory, which LLVM vectorizes.
"""

import threading
import warnings

import numpy as np

_STATE = {"numba": None}  # None: not tried; False: unavailable; else the kernels
_LOCK = threading.Lock()


def load():
    """The compiled kernels (a dict of dispatchers), or False without numba.

    Examples
    --------
    >>> kernels = load()
    >>> kernels is False or "max_pool" in kernels
    True
    """
    if _STATE["numba"] is None:
        with _LOCK:
            if _STATE["numba"] is None:
                _STATE["numba"] = _import_and_jit()
    return _STATE["numba"]


def takes(*arrays):
    """True when the kernels take these arrays: one dtype, float32 or float64, C-contiguous."""
    dtype = arrays[0].dtype
    if dtype != np.float32 and dtype != np.float64:
        return False
    return all(a.dtype == dtype and a.flags.c_contiguous for a in arrays)


def _import_and_jit():
    try:
        import numba
    except ImportError:
        return False
    except Exception as err:  # a broken install: say so once, then use NumPy
        warnings.warn(f"numba failed to import ({err!r}); using the NumPy paths", stacklevel=4)
        return False
    jit = numba.njit(nogil=True, cache=True)
    return {name: jit(fun) for name, fun in _PLAIN.items()}


# --- the plain functions, compiled by _import_and_jit ----------------------------------


def _max_pool(xp, ph, pw, sh, sw, out):
    """``out[n, p, q] = max over the window (p sh + i, q sw + j) of xp[n]``, as ``np.maximum``.

    ``xp`` (n, Hp, Wp, C) is the padded input (padding -inf), ``out`` (n, Ho,
    Wo, C). A NaN in a window makes its maximum NaN, as ``np.maximum`` folded
    over the window does.
    """
    n, ho, wo, c = out.shape
    for b in range(n):
        for p in range(ho):
            for q in range(wo):
                top, left = p * sh, q * sw
                for k in range(c):
                    out[b, p, q, k] = xp[b, top, left, k]
                for i in range(ph):
                    for j in range(pw):
                        if i == 0 and j == 0:
                            continue
                        for k in range(c):
                            v = xp[b, top + i, left + j, k]
                            m = out[b, p, q, k]
                            # np.maximum: a NaN on either side wins
                            out[b, p, q, k] = v if (v > m or v != v) else m


def _max_pool_grad(xp, ans, g, ph, pw, sh, sw, tiled, dxp):
    """The gradient of the max pool: ``g`` of each window sent to its first maximal entry.

    The first entry of the window, in row-major order, equal to the
    window's maximum ``ans`` gets the window's ``g``; the others get
    nothing (a NaN window, equal to nothing, gets nothing). With ``tiled``
    (windows that cover every entry of ``xp`` once) every entry of ``dxp``
    is written; otherwise ``dxp`` must hold zeros and overlapping windows
    add.
    """
    n, ho, wo, c = ans.shape
    rest = np.empty(c, dtype=g.dtype)  # per channel: the window's g until its first max is met
    for b in range(n):
        for p in range(ho):
            for q in range(wo):
                top, left = p * sh, q * sw
                for k in range(c):
                    rest[k] = g[b, p, q, k]
                for i in range(ph):
                    for j in range(pw):
                        for k in range(c):
                            hit = xp[b, top + i, left + j, k] == ans[b, p, q, k]
                            share = rest[k] if hit else 0.0
                            if tiled:
                                dxp[b, top + i, left + j, k] = share
                            else:
                                dxp[b, top + i, left + j, k] += share
                            if hit:
                                rest[k] = 0.0


def _im2col(source, top, left, step_h, step_w, sh, sw, dh, dw, cols):
    """The im2col block ``cols`` (n, Ho, Wo, kh, kw, C) of ``source`` (n, H, W, C), in one pass.

    ``cols[b, p, q, i, j]`` is row ``(p sh + i dh - top) / step_h``, column
    ``(q sw + j dw - left) / step_w`` of ``source[b]`` when both are whole
    numbers inside the image, and zeros otherwise: the windows of
    ``source`` spread by ``step`` (``step - 1`` zeros between neighbours)
    and padded by ``top``, ``left`` (and whatever the bottom and right
    need), which the NumPy path writes into a padded array and copies
    from. The same values, copied, not computed.
    """
    n, ho, wo, kh, kw, c = cols.shape
    h, w = source.shape[1], source.shape[2]
    hs, ws = (h - 1) * step_h + 1, (w - 1) * step_w + 1
    # per window row and column: the source's row / column, or -1 for a zero (padding or
    # a spread zero); the divisions once per call, not once per element
    rows = np.empty((ho, kh), dtype=np.int64)
    for p in range(ho):
        for i in range(kh):
            t = p * sh + i * dh - top
            rows[p, i] = t // step_h if 0 <= t < hs and t % step_h == 0 else -1
    columns = np.empty((wo, kw), dtype=np.int64)
    for q in range(wo):
        for j in range(kw):
            u = q * sw + j * dw - left
            columns[q, j] = u // step_w if 0 <= u < ws and u % step_w == 0 else -1
    for b in range(n):
        for p in range(ho):
            for q in range(wo):
                for i in range(kh):
                    r = rows[p, i]
                    for j in range(kw):
                        s = columns[q, j]
                        if c == 1:  # a first layer's single channel: no inner loop
                            cols[b, p, q, i, j, 0] = source[b, r, s, 0] if r >= 0 and s >= 0 \
                                else 0.0
                        elif r >= 0 and s >= 0:
                            for k in range(c):
                                cols[b, p, q, i, j, k] = source[b, r, s, k]
                        else:
                            for k in range(c):
                                cols[b, p, q, i, j, k] = 0.0


def _bias_relu(rows, bias, relu):
    """``rows += bias`` (``bias`` may be empty: none), then ``max(rows, 0)`` if ``relu``, in place.

    The same bits as ``rows += bias; np.maximum(rows, 0, out=rows)``:
    ``np.maximum`` keeps a NaN and turns -0.0 into 0.0.
    """
    m, f = rows.shape
    with_bias = bias.shape[0] > 0
    for r in range(m):
        for k in range(f):
            v = rows[r, k] + bias[k] if with_bias else rows[r, k]
            if relu and not (v > 0.0 or v != v):
                v = 0.0
            rows[r, k] = v


def _relu_mask(g, ans, out):
    """``out = g * (ans > 0)``, the gradient through a relu whose output is ``ans``.

    The same bits as multiplying by the 1.0 / 0.0 mask, as the NumPy path
    does (0 * inf is NaN there too).
    """
    flat_g, flat_ans, flat_out = g.reshape(-1), ans.reshape(-1), out.reshape(-1)
    for e in range(flat_out.shape[0]):
        flat_out[e] = flat_g[e] * (1.0 if flat_ans[e] > 0.0 else 0.0)


_PLAIN = {"max_pool": _max_pool, "max_pool_grad": _max_pool_grad, "im2col": _im2col,
          "bias_relu": _bias_relu, "relu_mask": _relu_mask}
