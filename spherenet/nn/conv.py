r"""Convolution layers (``Conv1D``, ``Conv2D``), channels last, as GEMMs on autograd.

A 2-D convolution of a batch ``x`` of shape (N, H, W, C) with a kernel of
shape (kh, kw, C, F) is, as in Keras (cross-correlation, no kernel flip),

.. math::

    y_{n,p,q,f} = b_f + \sum_{i,j,c} x_{n,\; p s_h + i d_h - t,\; q s_w + j d_w - l,\; c}
                  \, K_{i,j,c,f},

with strides :math:`s`, dilation :math:`d` and the padding :math:`t, l`
added on top and left (zeros outside the image). It runs as one matrix
product: the patches of ``x`` are gathered into a matrix of shape
(N * Ho * Wo, kh * kw * C) -- the *im2col* matrix, one copy of a strided
view, no Python loop over the data -- and multiplied by the kernel viewed as
(kh * kw * C, F). The convolution is one autograd primitive with
hand-written vector-Jacobian products: the kernel's gradient is
``patches.T @ g``, the bias's the sum of ``g``, and the input's a transposed
convolution, again im2col and GEMM (see :func:`_conv_backward`); all in the
data's dtype, and only those autograd asks for (not the input's for the
network's first layer). The batch is processed in blocks of images whose
patches fit in the cache (about 512 kB), each block copied and multiplied
while it is there. When the kernel is traced (training) and numba is
missing, the forward pass writes the blocks into one matrix of the whole
batch's patches, which the kernel's gradient uses rather than gather them
again (9 MB for 128 images of 8x8x32 and a 3x3 kernel); otherwise one
block-sized buffer serves every block, and with numba the backward pass
gathers each block's patches again from the input (one pass over a block,
in the cache: less than writing the 9 MB matrix and reading it back). A
``relu`` activation is applied by the convolution itself, in place
on each block, and its mask joins the convolution's backward pass, which
runs block by block too: each block masks its part of the output's
gradient, adds its share to the kernel's and the bias's gradients (partial
sums, added in the order of the blocks) and computes its rows of the
input's gradient, all while its data are in the cache (see
:func:`_conv_backward`). With several threads
(:func:`~spherenet.nn.set_num_threads`) the blocks are tasks the threads
share (one buffer per thread); the blocks depend on the shapes only and
every task is the serial path's own call, so the results are the same, bit
for bit. With numba (the extra ``fast``) three steps of a block run as
compiled kernels without the GIL (``spherenet.nn._kernels``): the im2col
gather, in one pass from the unpadded source rather than a padded copy
and a strided copy; the bias and the relu, in one pass over the block's
output; the relu's mask of the output's gradient. They copy and compute
the same values as the NumPy steps, so both give the same bits. (The GEMM
stays NumPy's: numba's ``np.dot`` calls SciPy's BLAS, another OpenBLAS
with its own threads, and two BLAS thread pools taking turns on the same
cores -- BLAS on more than one thread -- made an epoch many times slower.)
When NumPy's own BLAS can be called from the kernels (``_kernels.blas``:
NumPy's wheels bundle OpenBLAS), each thread runs its share of the blocks,
a contiguous run of them, in one compiled call: gather, GEMM (NumPy's
function, called with ``np.matmul``'s arguments: the same bits), bias,
relu and mask of every block without taking the GIL in between -- with
one call per step, two threads took turns at the GIL several times a
block. Products with a size 1 (which ``np.matmul`` does not send to GEMM)
run one call per step.

Padding follows Keras (TensorFlow's rule): ``"valid"`` uses no padding and
gives ``floor((n - k_eff) / s) + 1`` outputs, ``k_eff = (k - 1) d + 1``;
``"same"`` gives ``ceil(n / s)`` outputs and pads
``max((out - 1) s + k_eff - n, 0)`` zeros, the odd one at the bottom/right;
``"causal"`` (``Conv1D`` only) pads ``k_eff - 1`` zeros on the left.

The kernel is stored in Keras's shape, (kh, kw, C, F) for ``Conv2D`` and
(k, C, F) for ``Conv1D``, so weights move between Keras and spherenet as
they are. ``kernel_constraint=unit_norm(axis=[0, 1, 2])`` (``[0, 1]`` for
``Conv1D``) puts every output filter on its own unit sphere: the kernel is a
point of ``Oblique(shape=(kh, kw, C, F), axis=(0, 1, 2))``, a product of F
spheres of dimension kh * kw * C - 1. As in Keras, ``unit_norm()`` alone
means ``axis=0``, which normalizes along the kernel's first axis only.
"""

import numbers
import threading

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from . import _kernels, activations
from ._parallel import run_chunks, run_tasks
from .layers import LAYERS, _KernelLayer

__all__ = ["Conv1D", "Conv2D", "conv1d", "conv2d"]

_PADDINGS = ("valid", "same")


# --- geometry of a sliding window ---------------------------------------------------------


def _int_tuple(name, value, rank):
    """``value`` (an int or ``rank`` ints) as a tuple of ``rank`` positive ints."""
    given = value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,) * rank
    if not isinstance(value, (tuple, list)) or len(value) != rank or any(
            isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in value):
        raise ValueError(f"{name} must be a positive integer or a tuple of {rank} positive "
                         f"integers, got {given!r}")
    return tuple(int(v) for v in value)


def _check_padding(padding, allowed=_PADDINGS):
    if not isinstance(padding, str) or padding.lower() not in allowed:
        raise ValueError(f"padding must be one of {', '.join(map(repr, allowed))}, got {padding!r}")
    return padding.lower()


def _window(size, kernel, stride, dilation, padding, what="input"):
    """``(outputs, pad_before, pad_after)`` along one axis, by Keras's rules.

    Raises
    ------
    ValueError
        With ``padding="valid"``, if the (dilated) kernel is larger than the input.

    Examples
    --------
    >>> _window(8, 3, 2, 1, "same"), _window(8, 3, 2, 1, "valid"), _window(5, 3, 1, 1, "causal")
    ((4, 0, 1), (3, 0, 0), (5, 2, 0))
    """
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        if size < span:
            raise ValueError(
                f"the {what} has size {size}, smaller than the kernel's span {span} (kernel size "
                f"{kernel}, dilation {dilation}) with padding='valid'; use padding='same' or a "
                "smaller kernel")
        return (size - span) // stride + 1, 0, 0
    if padding == "causal":
        return (size - 1) // stride + 1, span - 1, 0
    out = -(-size // stride)
    total = max((out - 1) * stride + span - size, 0)
    return out, total // 2, total - total // 2


# --- im2col, and the convolution as one autograd primitive -------------------------------


def _padded(x, pads, value):
    """An empty array for ``x`` (N, H, W, C) padded by ``pads``, and ``fill(lo, hi)`` that writes
    images lo..hi into it with ``value`` around; ``(x, None)`` without padding."""
    (top, bottom), (left, right) = pads
    if not (top or bottom or left or right):
        return x, None
    n, h, w, c = x.shape
    out = np.empty((n, h + top + bottom, w + left + right, c), dtype=x.dtype)

    def fill(lo, hi):
        part = out[lo:hi]
        part[:, :top] = value
        part[:, top + h:] = value
        part[:, top:top + h, :left] = value
        part[:, top:top + h, left + w:] = value
        part[:, top:top + h, left:left + w] = x[lo:hi]

    return out, fill


def _pad(x, pads, value):
    """``x`` (N, H, W, C) with ``pads = ((top, bottom), (left, right))`` of ``value`` around."""
    out, fill = _padded(x, pads, value)
    if fill is not None:
        run_chunks(fill, x.shape[0])
    return out


def _slices(padded_shape, window, strides, dilation):
    """The output size and, per window position (i, j), the slices of the padded input it reads."""
    (kh, kw), (sh, sw), (dh, dw) = window, strides, dilation
    ho = (padded_shape[1] - (kh - 1) * dh - 1) // sh + 1
    wo = (padded_shape[2] - (kw - 1) * dw - 1) // sw + 1
    cuts = [(i, j, (slice(None), slice(i * dh, i * dh + (ho - 1) * sh + 1, sh),
                    slice(j * dw, j * dw + (wo - 1) * sw + 1, sw)))
            for i in range(kh) for j in range(kw)]
    return ho, wo, cuts


def _windows(xp, window, strides, dilation):
    """The windows of a padded batch ``xp`` (N, H, W, C) as a read-only view (N, Ho, Wo, kh, kw, C).

    Entry (n, p, q, i, j, c) is ``xp[n, p s_h + i d_h, q s_w + j d_w, c]``;
    what ``sliding_window_view`` gives, without its per-call overhead. Every
    index stays inside ``xp``. Copied, the view is the im2col matrix: its
    inner axes (j, c) are contiguous in memory when the dilation is 1, which
    keeps the copy near memory speed.
    """
    (kh, kw), (sh, sw), (dh, dw) = window, strides, dilation
    xp = np.ascontiguousarray(xp)
    n, c = xp.shape[0], xp.shape[3]
    ho = (xp.shape[1] - (kh - 1) * dh - 1) // sh + 1
    wo = (xp.shape[2] - (kw - 1) * dw - 1) // sw + 1
    s0, s1, s2, s3 = xp.strides
    view = np.ndarray((n, ho, wo, kh, kw, c), dtype=xp.dtype, buffer=xp,
                      strides=(s0, sh * s1, sw * s2, dh * s1, dw * s2, s3))
    view.flags.writeable = False
    return view


#: The patches are gathered and multiplied block by block of images, each block's im2col
#: matrix about this many bytes: small enough to stay in the cache between its copy and its
#: GEMM (a whole batch's, 9 MB for 128 images of 8x8x32 and a 3x3 kernel, would make two
#: trips through memory), large enough for efficient GEMMs. A block of the backward pass
#: holds two such matrices (the input's patches and the output gradient's) in a 2 MB L2:
#: 512 kB measured 5-10 % faster a training epoch than 1 MB, 256 kB no faster.
_BLOCK_BYTES = 1 << 19

#: ... and of at most this many images, so that a batch of 128 has blocks for several threads
#: to share (:func:`~spherenet.nn.set_num_threads`) even when its patches are few, as those of
#: a first layer on one channel. The blocks do not depend on the number of threads.
_BLOCK_IMAGES = 32


def _block_images(count, image_bytes):
    """How many images a block holds: about ``_BLOCK_BYTES`` of ``image_bytes`` each, at most
    ``_BLOCK_IMAGES`` (and ``count``), at least one. Never depends on the number of threads."""
    return max(1, min(_BLOCK_IMAGES, count, _BLOCK_BYTES // max(1, image_bytes)))


def _windows_shape(shape, pads, step, window, strides, dilation):
    """The shape (N, Ho, Wo, kh, kw, C) of the windows of ``shape`` (N, H, W, C) spread by
    ``step`` and padded by ``pads`` (see :func:`_patches_gemm`)."""
    n, h, w, c = shape
    (top, bottom), (left, right) = pads
    (kh, kw), (sh, sw), (dh, dw) = window, strides, dilation
    hp = top + (h - 1) * step[0] + 1 + bottom
    wp = left + (w - 1) * step[1] + 1 + right
    return n, (hp - (kh - 1) * dh - 1) // sh + 1, (wp - (kw - 1) * dw - 1) // sw + 1, kh, kw, c


#: With the kernels, the kernel's gradient gathers the patches again from the input, block by
#: block, rather than keep the whole batch's (False); True only to compare the two.
_KEEP_PATCHES = False


def _patches_gemm(source, pads, step, window, strides, dilation, matrix, out, kept=None,
                  bias=None, relu=False, prepare=None, size=None):
    """``out = im2col(source) @ matrix`` (+ ``bias``, then max(., 0) if ``relu``), block by block.

    The windows (:func:`_windows`) are those of ``source`` (N, H, W, C)
    spread by ``step`` (``s - 1`` zeros between neighbouring rows or
    columns: the input's gradient of a strided convolution) and padded by
    ``pads`` ((top, bottom), (left, right)) of zeros; ``out`` has shape
    (N * Ho * Wo, F). Each block of ``size`` images (by default
    :func:`_block_images` of the im2col bytes of an image) is written into a
    block-sized padded array of its thread -- only its images: the zeros
    around them were written once, when the array was made --, copied to a
    contiguous im2col block and multiplied while it is in the cache; the
    im2col blocks go into ``kept`` (an array of the windows' shape, then the
    whole batch's patches) or else into a block-sized buffer of the thread.
    With several threads (:func:`~spherenet.nn.set_num_threads`) the blocks
    are tasks that the threads share, each the same computation as on one
    thread. ``prepare(lo, hi)``, if given, is called first in the block of
    images lo..hi (it may write those images of ``source``).
    """
    n, ho, wo, kh, kw, c = _windows_shape(source.shape, pads, step, window, strides, dilation)
    rows, depth = ho * wo, kh * kw * c
    if size is None:
        size = _block_images(n, rows * depth * source.itemsize)
    (top, bottom), (left, right) = pads
    padding = bool(top or bottom or left or right or step != (1, 1))
    # with numba: the im2col block gathered in one pass straight from source, the bias and
    # relu in one pass over the block's output, both without the GIL (see _kernels)
    kernels = _kernels.load() if _kernels.takes(source) else False
    fused = (kernels and (bias is not None or relu)
             and _kernels.takes(out, *(() if bias is None else (bias,))))
    no_bias = np.empty(0, dtype=out.dtype)
    if (kernels and prepare is None and kept is None and _whole_runs(rows, depth, matrix.shape[1])
            and _kernels.takes(source, matrix, out, *(() if bias is None else (bias,)))):
        # a thread's run of blocks in one compiled call: no GIL between its steps
        run = kernels["patches_gemm_blocks"]
        bias = no_bias if bias is None else bias

        def blocks(lo, hi):
            run(source, lo, hi, size, top, left, *step, *strides, *dilation, matrix, bias, relu,
                ho, wo, kh, kw, out)

        run_chunks(blocks, n, size)
        return
    whole = None if padding or kernels else _windows(source, window, strides, dilation)
    hs, ws = (source.shape[1] - 1) * step[0] + 1, (source.shape[2] - 1) * step[1] + 1
    buffers = threading.local()  # per thread: a padded block and its windows, an im2col block

    def block(lo):
        hi = min(n, lo + size)
        if prepare is not None:
            prepare(lo, hi)
        if kept is not None:
            cols = kept[lo:hi]
        else:
            cols = getattr(buffers, "cols", None)
            if cols is None:
                cols = buffers.cols = np.empty((min(size, n), ho, wo, kh, kw, c),
                                               dtype=source.dtype)
            cols = cols[:hi - lo]
        if kernels:
            kernels["im2col"](source[lo:hi], top, left, *step, *strides, *dilation, cols)
        else:
            if padding:
                windows = getattr(buffers, "windows", None)
                if windows is None:
                    padded = buffers.padded = np.zeros(
                        (min(size, n), top + hs + bottom, left + ws + right, c),
                        dtype=source.dtype)
                    windows = buffers.windows = _windows(padded, window, strides, dilation)
                buffers.padded[:hi - lo, top:top + hs:step[0], left:left + ws:step[1]] = \
                    source[lo:hi]
                view = windows[:hi - lo]
            else:
                view = whole[lo:hi]
            np.copyto(cols, view)
        rows_out = out[lo * rows:hi * rows]
        np.matmul(cols.reshape(-1, depth), matrix, out=rows_out)
        if fused:
            kernels["bias_relu"](rows_out, no_bias if bias is None else bias, relu)
            return
        if bias is not None:
            rows_out += bias
        if relu:
            np.maximum(rows_out, 0, out=rows_out)

    run_tasks([lambda lo=lo: block(lo) for lo in range(0, n, size)])


#: A thread runs its blocks in one compiled call (``_kernels._patches_gemm_blocks``,
#: ``_kernels._conv_grad_blocks``) when numba and NumPy's BLAS are there (True); False: one
#: call per step of a block, only to compare the two.
_WHOLE_RUNS = True


def _whole_runs(*sizes):
    """True when the blocks can run as whole runs: the kernels and NumPy's BLAS are there, and
    every matrix product has sizes > 1 (np.matmul calls GEMM for those, other BLAS functions
    for a vector)."""
    return _WHOLE_RUNS and min(sizes) > 1 and bool(_kernels.load()) and bool(_kernels.blas())


def _is_pointwise(window, strides, pads, x):
    """A 1x1 kernel, stride 1, no padding, C-contiguous x: x itself is the im2col matrix."""
    return (window == (1, 1) and strides == (1, 1) and not any(pads[0] + pads[1])
            and x.flags.c_contiguous)


@primitive
def _conv_gemm(x, kernel, bias, strides, dilation, pads, relu, kept):
    """``im2col(x) @ kernel + bias`` shaped (N, Ho, Wo, F), then max(., 0) if ``relu``.

    With ``kept`` a list, the whole batch's im2col matrix is appended to it,
    for the kernel's vector-Jacobian product (``patches.T @ g``) to use
    rather than gather the patches again -- unless the kernels can gather
    them again (numba, ``_KEEP_PATCHES`` False): then, as with None, one
    block-sized buffer serves every block (see :func:`_patches_gemm`).
    """
    kh, kw, c, f = kernel.shape
    n = x.shape[0]
    matrix = kernel.reshape(kh * kw * c, f)
    dtype = np.result_type(x.dtype, kernel.dtype)
    if _is_pointwise((kh, kw), strides, pads, x):
        cols = x.reshape(-1, c)
        out = cols @ matrix
        if bias is not None:
            out += bias
        if relu:
            np.maximum(out, 0, out=out)
        if kept is not None:
            kept.append(cols)
        return out.reshape(n, x.shape[1], x.shape[2], f)
    shape = _windows_shape(x.shape, pads, (1, 1), (kh, kw), strides, dilation)
    ho, wo = shape[1:3]
    out = np.empty((n * ho * wo, f), dtype=dtype)
    if kept is not None and not _KEEP_PATCHES and _kernels.takes(x) and _kernels.load():
        kept = None  # the backward pass gathers them again (see _conv_backward)
    patches = None if kept is None else np.empty(shape, dtype=x.dtype)
    _patches_gemm(x, pads, (1, 1), (kh, kw), strides, dilation, matrix, out, patches, bias, relu)
    if kept is not None:
        kept.append(patches.reshape(n * ho * wo, kh * kw * c))
    return out.reshape(n, ho, wo, f)


def _ordered_sum(parts):
    """``parts[0] + parts[1] + ...``, added in this order (the same bits for any thread count)."""
    total = parts[0]
    for part in parts[1:]:
        total += part
    return total


def _conv_backward(g, ans, kernel, x_shape, strides, dilation, pads, patches, input_grad,
                   bias_grad, x=None):
    r"""The gradients of the convolution, block by block of images: ``(dx, dkernel, dbias)``.

    ``g`` (N, Ho, Wo, F) is the output's gradient; with ``ans`` (the
    output of the fused relu) it is first masked, ``g * (ans > 0)``: the
    gradient of max(., 0) at 0 is 0, as in TensorFlow and PyTorch. Each block
    of images masks its own part of ``g`` and, while it is in the cache,

    * adds its share to the kernel's gradient, ``patches_b^T g_b`` (when
      ``patches``, the forward pass's im2col matrix, is given, or ``x``,
      the forward pass's input, whose block of patches the im2col kernel
      gathers again: the same values), and to the
      bias's, ``1^T g_b`` (if ``bias_grad``): one partial sum per block,
      added in the order of the blocks once all are done;
    * computes its rows of the input's gradient (if ``input_grad``), a
      transposed convolution: with :math:`s - 1` zeros spread between the
      entries of ``g`` and the kernel's span less the forward padding around
      them, it is the correlation of that array with the kernel flipped in
      space and its channel axes swapped -- im2col and GEMM as the forward
      pass, rather than a scatter (col2im) of kh * kw strided additions,
      which runs at a fraction of memory speed for few channels.

    The blocks are tasks the threads share (:func:`~spherenet.nn.set_num_threads`);
    they depend on the shapes only, so the results are the same, bit for
    bit, for any number of threads. Gradients not asked for are None.
    """
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x_shape
    ho, wo = g.shape[1], g.shape[2]
    rows = ho * wo
    if ans is None:
        masked = g
    else:
        # the mask is written as 1.0 / 0.0 straight into the output: a third faster than
        # multiplying by a boolean array, which NumPy casts in small buffers; the same values
        masked = np.empty(g.shape, dtype=g.dtype)
    masked_rows = masked.reshape(-1, f)
    dtype = np.result_type(g.dtype, kernel.dtype)
    pointwise = input_grad and _is_pointwise((kh, kw), strides, pads, masked)
    if input_grad and not pointwise:
        (top, _), (left, _) = pads
        before_h, before_w = (kh - 1) * dilation[0] - top, (kw - 1) * dilation[1] - left
        after_h = h + top - ((ho - 1) * strides[0] + 1)
        after_w = w + left - ((wo - 1) * strides[1] + 1)
        spread_pads = ((before_h, after_h), (before_w, after_w))
        image_bytes = h * w * kh * kw * f * g.itemsize
    elif patches is not None or x is not None:  # a block of patches: the same blocks either way
        image_bytes = rows * kh * kw * c * (x if patches is None else patches).itemsize
    else:
        image_bytes = rows * f * g.itemsize
    size = _block_images(n, image_bytes)
    kernel_wanted = patches is not None or x is not None
    if (patches is None and not pointwise
            and _whole_runs(rows, f, kh * kw * c, *((h * w, c) if input_grad else ()))
            and _kernels.takes(g, kernel, masked, *((ans,) if ans is not None else ()),
                               *((x,) if kernel_wanted else ()))):
        return _conv_backward_runs(g, ans, masked, kernel, x_shape, x if kernel_wanted else None,
                                   strides, dilation, pads, size, input_grad, bias_grad,
                                   spread_pads if input_grad else None)
    kernel_parts, bias_parts = [], []
    gather = None
    if patches is None and x is not None:  # the forward's patches gathered again, per block
        kernels = _kernels.load()
        if kernels and _kernels.takes(x):
            gather = kernels["im2col"]
            (top, _), (left, _) = pads
            gathered = threading.local()
        else:  # the kernels were turned off since the forward pass: all patches at once
            patches = np.ascontiguousarray(
                _windows(_pad(x, pads, 0), (kh, kw), strides, dilation)).reshape(n * rows, -1)
    if patches is not None or gather is not None:
        kernel_parts = [None] * -(-n // size)
    if bias_grad:
        bias_parts = [None] * -(-n // size)
        # a matrix-vector product: ten times faster than np.sum over the long axis 0
        ones = np.ones(size * rows, dtype=g.dtype)

    mask_kernel = ans is not None and _kernels.takes(g, ans, masked) and _kernels.load()

    def prepare(lo, hi):
        if mask_kernel:  # one pass without the GIL
            mask_kernel["relu_mask"](g[lo:hi], ans[lo:hi], masked[lo:hi])
        elif ans is not None:
            part = masked[lo:hi]
            np.greater(ans[lo:hi], 0, out=part, casting="unsafe")
            np.multiply(g[lo:hi], part, out=part)
        block_rows = masked_rows[lo * rows:hi * rows]
        if patches is not None:
            kernel_parts[lo // size] = patches[lo * rows:hi * rows].T @ block_rows
        elif gather is not None:
            cols = getattr(gathered, "cols", None)
            if cols is None:
                cols = gathered.cols = np.empty((min(size, n), ho, wo, kh, kw, c), dtype=x.dtype)
            cols = cols[:hi - lo]
            gather(x[lo:hi], top, left, 1, 1, *strides, *dilation, cols)
            kernel_parts[lo // size] = cols.reshape(-1, kh * kw * c).T @ block_rows
        if bias_grad:
            bias_parts[lo // size] = ones[:len(block_rows)] @ block_rows

    dx = np.empty((n * h * w, c), dtype=dtype) if input_grad else None
    if input_grad and not pointwise:
        flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))
        _patches_gemm(masked, spread_pads, strides, (kh, kw), (1, 1), dilation,
                      flipped.reshape(kh * kw * f, c), dx, prepare=prepare, size=size)
    else:
        transposed = kernel.reshape(c, f).T if pointwise else None

        def block(lo):
            hi = min(n, lo + size)
            prepare(lo, hi)
            if pointwise:  # the input is its own im2col matrix
                np.matmul(masked_rows[lo * rows:hi * rows], transposed,
                          out=dx[lo * rows:hi * rows])

        run_tasks([lambda lo=lo: block(lo) for lo in range(0, n, size)])
    kernel_grad = bias_grad_value = None
    if patches is not None or gather is not None:  # no blocks (an empty batch): zeros
        kernel_grad = (_ordered_sum(kernel_parts) if kernel_parts else np.zeros(
            (kh * kw * c, f), dtype=np.result_type(x if patches is None else patches, g)))
        kernel_grad = kernel_grad.reshape(kernel.shape)
    if bias_grad:
        bias_grad_value = _ordered_sum(bias_parts) if bias_parts else np.zeros(f, dtype=g.dtype)
    return None if dx is None else dx.reshape(x_shape), kernel_grad, bias_grad_value


def _conv_backward_runs(g, ans, masked, kernel, x_shape, x, strides, dilation, pads, size,
                        input_grad, bias_grad, spread_pads):
    """:func:`_conv_backward`'s blocks, a thread's run of them in one compiled call.

    ``_kernels._conv_grad_blocks`` does each block's steps in the NumPy
    path's order, with NumPy's BLAS called as ``np.matmul`` calls it: the
    same partial sums, added here in the order of the blocks, so the same
    bits as the NumPy path, for any number of threads.
    """
    kh, kw, c, f = kernel.shape
    n, h, w, _ = x_shape
    dtype = g.dtype
    blocks = -(-n // size)
    def none(ndim):  # an empty array for what is not asked for
        return np.empty((0,) * ndim, dtype=dtype)

    kernel_parts = (np.empty((blocks, kh * kw * c, f), dtype=dtype) if x is not None
                    else none(3))
    bias_parts = np.empty((blocks, f), dtype=dtype) if bias_grad else none(2)
    ones = np.ones(size * g.shape[1] * g.shape[2] if bias_grad else 0, dtype=dtype)
    (top, _), (left, _) = pads
    if input_grad:
        (spread_top, _), (spread_left, _) = spread_pads
        flipped = np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2)).reshape(
            kh * kw * f, c)
        dx = np.empty((n * h * w, c), dtype=dtype)
    else:
        spread_top = spread_left = 0
        flipped, dx = none(2), none(2)
    source = none(4) if x is None else x
    relu_ans = none(4) if ans is None else ans
    run = _kernels.load()["conv_grad_blocks"]

    def run_blocks(lo, hi):
        run(lo, hi, size, g, relu_ans, masked, source, h, w, c, top, left, *strides, *dilation,
            kh, kw, kernel_parts, bias_parts, ones, spread_top, spread_left, flipped, dx)

    run_chunks(run_blocks, n, size)
    kernel_grad = bias_grad_value = None
    if x is not None:
        kernel_grad = (_ordered_sum(list(kernel_parts)) if blocks else np.zeros(
            (kh * kw * c, f), dtype=dtype)).reshape(kernel.shape)
    if bias_grad:
        bias_grad_value = _ordered_sum(list(bias_parts)) if blocks else np.zeros(f, dtype=dtype)
    return None if not input_grad else dx.reshape(x_shape), kernel_grad, bias_grad_value


def _conv_gemm_vjp(argnums, ans, args, kwargs):
    x, kernel, bias, strides, dilation, pads, relu, kept = args

    def vjp(g):
        # kept: the kernel is traced whenever its gradient is asked for (see _conv2d)
        wanted = 1 in argnums
        grads = _conv_backward(g, ans if relu else None, kernel, x.shape, strides, dilation,
                               pads, kept[0] if wanted and kept else None, 0 in argnums,
                               2 in argnums, x if wanted and not kept else None)
        return [grads[argnum] for argnum in argnums]
    return vjp


defvjp_argnums(_conv_gemm, _conv_gemm_vjp)


# --- the convolutions ---------------------------------------------------------------


def _shape_of(a):
    return tuple(getattr(a, "shape", np.shape(a)))


def _conv2d(x, kernel, bias, strides, dilation, pads, relu=False):
    """The convolution with explicit pads, unchecked (the layers' hot path).

    When the kernel is traced by autograd (training), the backward pass
    needs the im2col matrix: kept by the forward pass, or gathered again
    (see :func:`_conv_gemm`); not otherwise (inference).
    """
    return _conv_gemm(x, kernel, bias, strides, dilation, pads, relu,
                      [] if isbox(kernel) else None)


def _check_operands(x, kernel, bias, rank):
    xs, ks = _shape_of(x), _shape_of(kernel)
    names = {1: "(batch, steps, channels)", 2: "(batch, height, width, channels)"}[rank]
    knames = {1: "(kernel_size, in_channels, filters)",
              2: "(kernel_height, kernel_width, in_channels, filters)"}[rank]
    if len(xs) != rank + 2:
        raise ValueError(f"x must have shape {names}, got shape {xs}")
    if len(ks) != rank + 2:
        raise ValueError(f"kernel must have shape {knames}, got shape {ks}")
    if ks[-2] != xs[-1]:
        raise ValueError(f"x has {xs[-1]} channels, but the kernel expects {ks[-2]} "
                         f"(kernel shape {ks})")
    if bias is not None and _shape_of(bias) != (ks[-1],):
        raise ValueError(f"bias must have shape ({ks[-1]},), got {_shape_of(bias)}")
    for name, a in (("x", x), ("kernel", kernel)):
        dtype = getattr(a, "dtype", None)
        if dtype is None or not np.issubdtype(dtype, np.floating):
            raise TypeError(f"{name} must be a floating-point array, got dtype {dtype}")


def conv2d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1):
    """2-D convolution (cross-correlation) of a channels-last batch, Keras's ``Conv2D`` without activation.

    Differentiable with autograd in ``x``, ``kernel`` and ``bias``; the
    backward pass is hand-written (see the module's notes) and keeps the
    dtype.

    Parameters
    ----------
    x : ndarray, shape (N, H, W, C)
    kernel : ndarray, shape (kh, kw, C, F)
    bias : ndarray of shape (F,), optional
    strides, dilation_rate : int or (int, int), default 1
    padding : {"valid", "same"}, default "valid"

    Returns
    -------
    ndarray, shape (N, Ho, Wo, F)
        Ho is ``floor((H - (kh - 1) d - 1) / s) + 1`` for ``"valid"`` and
        ``ceil(H / s)`` for ``"same"``; likewise Wo.

    Raises
    ------
    ValueError
        Wrong ranks, channels that do not match the kernel, a bias of the
        wrong shape, an unknown padding, or a kernel larger than the input
        with ``"valid"``.
    TypeError
        For arrays that are not floating point.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.0).reshape(1, 4, 4, 1)
    >>> conv2d(x, np.ones((2, 2, 1, 1)), strides=2)[0, :, :, 0]
    array([[10., 18.],
           [42., 50.]])
    >>> conv2d(x, np.ones((3, 3, 1, 1)), padding="same").shape
    (1, 4, 4, 1)
    """
    _check_operands(x, kernel, bias, 2)
    strides = _int_tuple("strides", strides, 2)
    dilation = _int_tuple("dilation_rate", dilation_rate, 2)
    padding = _check_padding(padding)
    _, h, w, _ = _shape_of(x)
    kh, kw = _shape_of(kernel)[:2]
    _, top, bottom = _window(h, kh, strides[0], dilation[0], padding, "input height")
    _, left, right = _window(w, kw, strides[1], dilation[1], padding, "input width")
    return _conv2d(x, kernel, bias, strides, dilation, ((top, bottom), (left, right)))


def _conv1d(x, kernel, bias, stride, dilation, pads, relu=False):
    n, steps, c = x.shape
    k, _, f = kernel.shape
    out = _conv2d(anp.reshape(x, (n, 1, steps, c)), anp.reshape(kernel, (1, k, c, f)), bias,
                  (1, stride), (1, dilation), ((0, 0), pads), relu)
    return anp.reshape(out, (n, out.shape[2], f))


def conv1d(x, kernel, bias=None, strides=1, padding="valid", dilation_rate=1):
    """1-D convolution of a channels-last batch, Keras's ``Conv1D`` without activation.

    Parameters
    ----------
    x : ndarray, shape (N, L, C)
    kernel : ndarray, shape (k, C, F)
    bias : ndarray of shape (F,), optional
    strides, dilation_rate : int, default 1
    padding : {"valid", "same", "causal"}, default "valid"
        ``"causal"`` pads ``(k - 1) * dilation_rate`` zeros on the left, so
        that output t sees inputs up to t only.

    Returns
    -------
    ndarray, shape (N, Lo, F)

    Raises
    ------
    ValueError, TypeError
        As :func:`conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(5.0).reshape(1, 5, 1)
    >>> conv1d(x, np.ones((2, 1, 1)))[0, :, 0]
    array([1., 3., 5., 7.])
    >>> conv1d(x, np.ones((2, 1, 1)), padding="causal")[0, :, 0]
    array([0., 1., 3., 5., 7.])
    """
    _check_operands(x, kernel, bias, 1)
    (stride,) = _int_tuple("strides", strides, 1)
    (dilation,) = _int_tuple("dilation_rate", dilation_rate, 1)
    padding = _check_padding(padding, _PADDINGS + ("causal",))
    _, before, after = _window(_shape_of(x)[1], _shape_of(kernel)[0], stride, dilation, padding)
    return _conv1d(x, kernel, bias, stride, dilation, (before, after))


# --- the layers -----------------------------------------------------------------------


class _Conv(_KernelLayer):
    """What Conv1D and Conv2D share: Keras's arguments, the kernel's manifold, the config."""

    rank = None
    _paddings = _PADDINGS

    def __init__(self, filters, kernel_size, strides=1, padding="valid", data_format=None,
                 dilation_rate=1, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_constraint=None, kernel_manifold=None, kernel_regularizer=None,
                 bias_regularizer=None, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if isinstance(filters, bool) or not isinstance(filters, numbers.Integral) or filters < 1:
            raise ValueError(f"filters must be a positive integer, got {filters!r}")
        self.filters = int(filters)
        self.kernel_size = _int_tuple("kernel_size", kernel_size, self.rank)
        self.strides = _int_tuple("strides", strides, self.rank)
        self.padding = _check_padding(padding, self._paddings)
        if data_format not in (None, "channels_last"):
            raise ValueError(f"data_format must be 'channels_last' (or None), got {data_format!r}; "
                             "channels-first data can be transposed with np.moveaxis(x, 1, -1)")
        self.dilation_rate = _int_tuple("dilation_rate", dilation_rate, self.rank)
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                 kernel_constraint, kernel_manifold, kernel_regularizer,
                                 bias_regularizer)
        self._pads = None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        cls = type(self).__name__
        layout = {1: "(steps, channels)", 2: "(height, width, channels)"}[self.rank]
        if len(input_shape) != self.rank + 1:
            raise ValueError(
                f"layer {self.name!r} ({cls}) expects samples of shape {layout}, got "
                f"{input_shape}; add a channel axis (x[..., None]) or a Reshape layer")
        what = ("steps",) if self.rank == 1 else ("height", "width")
        sizes, pads = [], []
        for size, k, s, d, axis in zip(input_shape[:-1], self.kernel_size, self.strides,
                                       self.dilation_rate, what):
            try:
                out, before, after = _window(size, k, s, d, self.padding, f"input {axis}")
            except ValueError as err:
                raise ValueError(f"layer {self.name!r} ({cls}): {err}") from None
            sizes.append(out)
            pads.append((before, after))
        self.params = self._kernel_params(
            (*self.kernel_size, input_shape[-1], self.filters), self.filters)
        self._pads = tuple(pads)
        self.output_shape = (*sizes, self.filters)
        return self.output_shape

    def pre_activation(self, params, x):
        """The convolution plus bias, before the activation."""
        return self._convolve(params, x, False)

    def apply(self, params, x, training=False, rng=None):
        # relu is applied by the convolution itself, in place and block by block while its
        # output is in the cache, and its gradient mask joins the convolution's backward pass
        if self.activation is activations.relu:
            return self._convolve(params, x, True)
        return self.activation(self.pre_activation(params, x))

    def _shape_config(self):
        return {"filters": self.filters, "kernel_size": list(self.kernel_size),
                "strides": list(self.strides), "padding": self.padding,
                "dilation_rate": list(self.dilation_rate)}


class Conv2D(_Conv):
    """2-D convolution layer over channels-last images: ``activation(conv2d(x, kernel) + bias)``.

    Keras's ``Conv2D``: inputs (batch, height, width, channels), kernel
    (kernel_height, kernel_width, channels, filters), cross-correlation (no
    flip), ``"same"`` padding with the odd zero at the bottom/right.

    Parameters
    ----------
    filters : int
    kernel_size : int or (int, int)
    strides : int or (int, int), default 1
    padding : {"valid", "same"}, default "valid"
    data_format : {None, "channels_last"}
        Only channels last.
    dilation_rate : int or (int, int), default 1
        May be combined with strides > 1 (which Keras refuses).
    activation : str or callable, optional
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str, dict or Initializer
        Default ``"glorot_uniform"`` (fans ``kh * kw * channels`` and
        ``kh * kw * filters``, as Keras) and ``"zeros"``.
    kernel_constraint : {None, "unit_norm"} or Constraint
        ``unit_norm(axis=[0, 1, 2])``: every output filter has norm 1; the
        kernel is a point of ``Oblique(shape=(kh, kw, channels, filters),
        axis=(0, 1, 2))``. The axis means what it means in Keras:
        ``unit_norm()`` (``axis=0``) normalizes along the kernel's first axis.
    kernel_manifold : Manifold, optional
        Any manifold of the kernel's shape instead (not with a constraint).
    kernel_regularizer, bias_regularizer : str, dict or Regularizer, optional
        A term added to the loss, e.g. ``L2(1e-4)`` or
        ``HypersphericalEnergy(0.01, axis=(0, 1, 2))`` (see :mod:`spherenet.nn.regularizers`).
    name, input_shape
        As for :class:`~spherenet.nn.layers.Layer`.

    Examples
    --------
    >>> from spherenet.nn import Conv2D, unit_norm
    >>> layer = Conv2D(16, 3, padding="same", kernel_constraint=unit_norm(axis=[0, 1, 2]))
    >>> layer.build((8, 8, 1))
    (8, 8, 16)
    >>> layer.params[0]
    Param('kernel', (3, 3, 1, 16), Oblique(shape=(3, 3, 1, 16), axis=(0, 1, 2), retraction='exp', transport='projection'))
    """

    rank = 2

    def _convolve(self, params, x, relu):
        return _conv2d(x, params[0], params[1] if self.use_bias else None, self.strides,
                       self.dilation_rate, self._pads, relu)


class Conv1D(_Conv):
    """1-D convolution layer over channels-last sequences: ``activation(conv1d(x, kernel) + bias)``.

    Keras's ``Conv1D``: inputs (batch, steps, channels), kernel
    (kernel_size, channels, filters). Arguments as :class:`Conv2D`, with
    single integers and one more padding, ``"causal"`` (zeros on the left
    only). ``kernel_constraint=unit_norm(axis=[0, 1])`` puts every filter on
    its sphere.

    Examples
    --------
    >>> from spherenet.nn import Conv1D
    >>> Conv1D(4, 3, strides=2, padding="same").build((10, 2))
    (5, 4)
    """

    rank = 1
    _paddings = _PADDINGS + ("causal",)

    def _convolve(self, params, x, relu):
        return _conv1d(x, params[0], params[1] if self.use_bias else None, self.strides[0],
                       self.dilation_rate[0], self._pads[0], relu)


LAYERS.update({cls.__name__: cls for cls in (Conv1D, Conv2D)})
