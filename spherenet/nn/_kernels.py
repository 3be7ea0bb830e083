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

Two kernels run whole runs of a convolution's blocks in one call
(:func:`_patches_gemm_blocks`, :func:`_conv_grad_blocks`): the gather, the
matrix products and the bias and relu of every block, without taking the
GIL between them. Their matrix products call NumPy's own BLAS
(:func:`blas`), the same function with the same arguments as
``np.matmul`` on the same arrays, so they give its bits.
"""

import ctypes
import glob
import os
import threading
import warnings

import numpy as np

# numba, blas: None: not tried; False: unavailable. symbols: the BLAS functions registered
# under the names the compiled kernels call
_STATE = {"numba": None, "blas": None, "symbols": False}
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
    compiled = {name: jit(fun) for name, fun in _PLAIN.items()}
    # the blocks' kernels call these compiled ones and NumPy's BLAS functions by the names
    # blas() gives their addresses (a call by name: no ctypes object to type at each call,
    # and the kernels can be cached), read as globals when they compile
    globals().update({f"_{name}_compiled": compiled[name] for name in _PLAIN})
    globals().update(_external_blas(numba.types))
    for name, fun in _BLAS_CALLS.items():
        globals()[f"_{name}_compiled"] = jit(fun)
    compiled.update({name: jit(fun) for name, fun in _BLOCKS.items()})
    return compiled


def _external_blas(types):
    """The BLAS functions as numba external functions, by the names :func:`blas` registers.

    Pointers are declared as 64-bit integers (the same registers in the C
    calling convention), the integers of the ILP64 interface as int64.
    """
    enum, integer, pointer = types.int32, types.int64, types.intp
    functions = {}
    for letter, real in (("s", types.float32), ("d", types.float64)):
        functions[f"_{letter}gemm"] = types.ExternalFunction(
            f"spherenet_nn_{letter}gemm",
            types.void(enum, enum, enum, integer, integer, integer, real, pointer, integer,
                       pointer, integer, real, pointer, integer))
        functions[f"_{letter}gemv"] = types.ExternalFunction(
            f"spherenet_nn_{letter}gemv",
            types.void(enum, enum, integer, integer, real, pointer, integer, pointer, integer,
                       real, pointer, integer))
    return functions


# --- NumPy's BLAS -------------------------------------------------------------------------

#: CBLAS's enumerations
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

#: the names of the functions in the library that NumPy's wheels bundle (scipy-openblas, with
#: 64-bit integers): prefix, suffix
_BLAS_NAMES = ("scipy_cblas_", "64_")


def blas():
    """NumPy's own BLAS: ``{"gemm": {dtype: f}, "gemv": {dtype: f}}`` (ctypes functions), or False.

    The functions are those of the library NumPy has loaded (found among the
    libraries its wheel bundles, and opened only if already loaded), and
    are used only after they give the bits of ``np.matmul`` on products of
    each kind the kernels call: ``A @ B``, ``A.T @ B`` and ``v @ B``. With
    numba, their addresses are registered under the names the compiled
    kernels call. False when NumPy's BLAS is another (a build of NumPy
    against the system's BLAS, say): the convolution then runs its blocks
    one call at a time.

    Examples
    --------
    >>> functions = blas()
    >>> functions is False or sorted(functions) == ["gemm", "gemv"]
    True
    """
    if _STATE["blas"] is None:
        with _LOCK:
            if _STATE["blas"] is None:
                _STATE["blas"] = _find_blas()
    functions = _STATE["blas"]
    if functions and not _STATE.get("symbols") and load():
        from llvmlite import binding  # numba's own dependency

        with _LOCK:
            for kind, by_dtype in functions.items():
                for dtype, function in by_dtype.items():
                    letter = "s" if dtype == np.float32 else "d"
                    binding.add_symbol(f"spherenet_nn_{letter}{kind}",
                                       ctypes.cast(function, ctypes.c_void_p).value)
            _STATE["symbols"] = True
    return functions


def _find_blas():
    folder = os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs")
    prefix, suffix = _BLAS_NAMES
    enum, integer, pointer = ctypes.c_int, ctypes.c_int64, ctypes.c_void_p
    for path in sorted(glob.glob(os.path.join(folder, "*openblas*"))):
        try:  # RTLD_NOLOAD: only a library already loaded, NumPy's
            library = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
            functions = {kind: {np.dtype(dtype): getattr(library, f"{prefix}{letter}{kind}{suffix}")
                                for letter, dtype in (("s", np.float32), ("d", np.float64))}
                         for kind in ("gemm", "gemv")}
        except (OSError, AttributeError):
            continue
        for dtype, real in ((np.float32, ctypes.c_float), (np.float64, ctypes.c_double)):
            gemm, gemv = functions["gemm"][np.dtype(dtype)], functions["gemv"][np.dtype(dtype)]
            gemm.restype = gemv.restype = None
            gemm.argtypes = [enum, enum, enum, integer, integer, integer, real, pointer, integer,
                             pointer, integer, real, pointer, integer]
            gemv.argtypes = [enum, enum, integer, integer, real, pointer, integer, pointer,
                             integer, real, pointer, integer]
        if _same_as_matmul(functions):
            return functions
    return False


def _same_as_matmul(functions):
    """True when the functions give ``np.matmul``'s bits on the products the kernels compute."""
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        gemm, gemv = functions["gemm"][np.dtype(dtype)], functions["gemv"][np.dtype(dtype)]
        a, b = (rng.standard_normal(shape).astype(dtype) for shape in ((67, 45), (45, 19)))
        c, ones = rng.standard_normal((67, 19)).astype(dtype), np.ones(67, dtype=dtype)
        products = []
        for shape, call in (
                ((67, 19), lambda out: gemm(_ROW_MAJOR, _NO_TRANS, _NO_TRANS, 67, 19, 45, 1.0,
                                            a.ctypes.data, 45, b.ctypes.data, 19, 0.0,
                                            out.ctypes.data, 19)),
                ((45, 19), lambda out: gemm(_ROW_MAJOR, _TRANS, _NO_TRANS, 45, 19, 67, 1.0,
                                            a.ctypes.data, 45, c.ctypes.data, 19, 0.0,
                                            out.ctypes.data, 19)),
                ((19,), lambda out: gemv(_ROW_MAJOR, _TRANS, 67, 19, 1.0, c.ctypes.data, 19,
                                         ones.ctypes.data, 1, 0.0, out.ctypes.data, 1))):
            out = np.full(shape, np.nan, dtype=dtype)
            call(out)
            products.append(out)
        if not (np.array_equal(products[0], a @ b) and np.array_equal(products[1], a.T @ c)
                and np.array_equal(products[2], ones @ c)):
            return False
    return True


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


# --- runs of a convolution's blocks, one call each: no GIL between the steps of a block ----

# the compiled kernels and BLAS functions these call: set by _import_and_jit before it
# compiles them
_im2col_compiled = _bias_relu_compiled = _relu_mask_compiled = None
_gemm_compiled = _gemv_transposed_compiled = None
_sgemm = _dgemm = _sgemv = _dgemv = None


def _gemm(single, trans_a, m, n, k, a, lda, b, ldb, c, ldc):
    """``c = op(a) @ b`` by NumPy's BLAS (``single``: float32), row major; pointers ``a, b, c``."""
    if single:
        _sgemm(_ROW_MAJOR, trans_a, _NO_TRANS, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc)
    else:
        _dgemm(_ROW_MAJOR, trans_a, _NO_TRANS, m, n, k, 1.0, a, lda, b, ldb, 0.0, c, ldc)


def _gemv_transposed(single, m, n, a, lda, x, y):
    """``y = x @ a`` (``a`` m x n, row major) by NumPy's BLAS, as ``np.matmul`` calls it."""
    if single:
        _sgemv(_ROW_MAJOR, _TRANS, m, n, 1.0, a, lda, x, 1, 0.0, y, 1)
    else:
        _dgemv(_ROW_MAJOR, _TRANS, m, n, 1.0, a, lda, x, 1, 0.0, y, 1)


def _patches_gemm_blocks(source, lo, hi, size, top, left, step_h, step_w, sh, sw, dh, dw,
                         matrix, bias, relu, ho, wo, kh, kw, out):
    """The blocks of images lo, lo + size, ... < hi of ``out = im2col(source) @ matrix``.

    Each block is what the convolution's block-by-block NumPy path computes:
    its im2col matrix (:func:`_im2col`, into one block-sized buffer), its
    rows of ``out`` (N * Ho * Wo, F) by NumPy's GEMM (called as
    ``np.matmul`` calls it on C-contiguous operands), then ``bias`` (may be
    empty) and the relu in place (:func:`_bias_relu`).
    """
    c = source.shape[3]
    f = matrix.shape[1]
    rows, depth = ho * wo, kh * kw * c
    cols = np.empty((min(size, hi - lo), ho, wo, kh, kw, c), dtype=source.dtype)
    single = source.itemsize == 4
    for first in range(lo, hi, size):
        last = min(hi, first + size)
        block = cols[:last - first]
        _im2col_compiled(source[first:last], top, left, step_h, step_w, sh, sw, dh, dw, block)
        part = out[first * rows:last * rows]
        _gemm_compiled(single, _NO_TRANS, (last - first) * rows, f, depth, block.ctypes.data,
                       depth, matrix.ctypes.data, f, part.ctypes.data, f)
        if relu or bias.shape[0] > 0:
            _bias_relu_compiled(part, bias, relu)


def _conv_grad_blocks(lo, hi, size, g, ans, masked, x, h, w, c, top, left, sh, sw, dh, dw, kh,
                      kw, kernel_parts, bias_parts, ones, spread_top, spread_left, flipped, dx):
    """The blocks of images lo, lo + size, ... < hi of the convolution's backward pass.

    Block ``b`` (images ``b size`` .. ) does what the NumPy path's block
    does, in its order: ``masked = g * (ans > 0)`` on its images
    (:func:`_relu_mask`; ``ans`` empty: no relu, ``masked`` is ``g``); its
    im2col matrix ``P`` of ``x`` and ``kernel_parts[b] = P.T @ masked_b``
    (``kernel_parts`` empty: not asked for); ``bias_parts[b] = ones @
    masked_b`` (by GEMV, as ``np.matmul`` of a vector and a matrix;
    ``bias_parts`` empty: not asked for); the input's gradient, rows of
    ``dx`` (empty: not asked for), as the im2col matrix of ``masked`` spread
    by the strides and padded by ``spread_top``, ``spread_left``, times
    ``flipped`` (kh * kw * F, C). ``x`` is empty without the kernel's
    gradient: the input's shape is ``h, w, c``.
    """
    n, ho, wo, f = g.shape
    rows = ho * wo
    count = min(size, hi - lo)
    relu = ans.shape[0] > 0
    single = g.itemsize == 4
    cols = np.empty((count if kernel_parts.shape[0] > 0 else 0, ho, wo, kh, kw, c),
                    dtype=x.dtype)
    spread = np.empty((count if dx.shape[0] > 0 else 0, h, w, kh, kw, f), dtype=g.dtype)
    for first in range(lo, hi, size):
        last = min(hi, first + size)
        index = first // size
        if relu:
            _relu_mask_compiled(g[first:last], ans[first:last], masked[first:last])
        block_rows = masked[first:last].ctypes.data
        m = (last - first) * rows
        if kernel_parts.shape[0] > 0:
            block = cols[:last - first]
            _im2col_compiled(x[first:last], top, left, 1, 1, sh, sw, dh, dw, block)
            _gemm_compiled(single, _TRANS, kh * kw * c, f, m, block.ctypes.data, kh * kw * c,
                           block_rows, f, kernel_parts[index].ctypes.data, f)
        if bias_parts.shape[0] > 0:
            _gemv_transposed_compiled(single, m, f, block_rows, f, ones.ctypes.data,
                                      bias_parts[index].ctypes.data)
        if dx.shape[0] > 0:
            block = spread[:last - first]
            _im2col_compiled(masked[first:last], spread_top, spread_left, sh, sw, 1, 1, dh, dw,
                             block)
            part = dx[first * h * w:last * h * w]
            _gemm_compiled(single, _NO_TRANS, (last - first) * h * w, c, kh * kw * f,
                           block.ctypes.data, kh * kw * f, flipped.ctypes.data, c,
                           part.ctypes.data, c)


_BLAS_CALLS = {"gemm": _gemm, "gemv_transposed": _gemv_transposed}
_BLOCKS = {"patches_gemm_blocks": _patches_gemm_blocks, "conv_grad_blocks": _conv_grad_blocks}
