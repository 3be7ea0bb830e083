"""Optional compiled kernels (numba) for the fused gradient step (and, at the end,
the reduction of a history's stack of iterates: :func:`history_batch`).

numba is the optional extra ``fast``: it is imported the first time a kernel
is needed, never at ``import spherenet``, and when it is missing (or the
array layout is one the kernels do not handle) :func:`gradient_step` returns
False and the caller runs its NumPy path. Both evaluate the same formulas;
the kernels work every element in float64 (float32 data included) and, when
the gradient is nearly normal, refine the projection (the NumPy path does
neither, so there the two differ by more than rounding).

The array is viewed, without copying, as a 2-D C-contiguous array in one of
two layouts:

* ``"lead"`` (R, F): the factor axes are the leading axes, e.g.
  ``Oblique(m, n, axis=0)``. Rows are reduced with one float64 accumulator
  per column, so the loops vectorize over columns in the order of the plain
  sum (no reassociation; each product fused into its addition, which for
  float32 data rounds exactly as a multiply and an add, the product being
  exact). Rows stream through memory in order, up to 1024 columns at a
  time; when R is small (``Oblique(3, 10**6)``) such a block of ``x`` and
  ``egrad`` is still in cache for the final pass.
* ``"trail"`` (F, R): the factor axes are the trailing axes, e.g.
  ``Sphere`` (F = 1) or ``Oblique(m, n, axis=1)``. The reduction runs along
  contiguous memory; only the three sums of pass 1 are compiled with
  fastmath flags, ``reassoc`` and ``contract`` (nothing else: no ``nnan``,
  ``ninf``...), which let LLVM split each into vector lanes -- partial sums
  that are, if anything, more accurate than one running sum -- and fuse each
  product into its addition, as in the "lead" layout (float32 data: the same
  rounding as a multiply and an add; a tenth fewer cycles an element).

The public ``gradient_step`` passes a ``check`` and a tolerance: the kernel
then runs pass 1 (the sums below) over all factors first and tests the sums
of squares itself (every norm sqrt(xx) within the tolerance of 1, every gg
finite); only when a factor is in doubt does it return, nothing written, for
the check (in Python) to raise, or to accept (finite entries whose squares
overflowed), after which the step goes on with the same sums. The checks cost
no pass of their own, and no Python runs between the two passes.

F-contiguous arrays are handled as the C-contiguous transpose. Factor axes in
the middle (``axis=1`` of a 3-D array), strided or unaligned views, and an
``out`` that partly overlaps ``x`` or ``egrad`` fall back to NumPy.

Per factor, with g the Euclidean gradient and every sum accumulated in
float64 (float32 data included):

1. xx = <x, x>, xg = <x, g>, gg = <g, g>; c = xg / xx;
   rr = gg - c xg, the squared norm of the Riemannian gradient r = g - c x.
2. Only if rr < rho gg (g nearly normal: the subtraction cancels) is rr
   recomputed exactly as sum((g - c x)^2), in a second pass, which also
   refines c by dc = <x, g - c x>/xx (see ``_refine``); then r = g - c x - dc x.
3. exp: t = |lr| sqrt(rr), a = cos(t) / sqrt(xx), b = -lr sinc(t);
   projection: s = 1 / sqrt(xx + lr^2 rr), a = s, b = -lr s.
4. out = a x + b r, per element in float64 with r = g - c x (- dc x) formed
   by fused multiply-adds (see ``_fma``; the term in dc only where the exact
   pass ran: elsewhere dc = 0 and it would round nothing), rounded once to
   the dtype. x and g of an element are read before out of that element is written, so
   ``out`` may be ``x`` (or ``egrad``).
5. A factor whose step is zero (|lr| sqrt(rr) == 0) is copied from x bit
   for bit, even when x is a few ulps off unit norm (which a = 1/||x||
   would otherwise correct).

Choice of rho. The first-order error of rr = gg - xg^2/xx is at most
4 gamma gg, where gamma bounds the relative error of a float64 sum of R
terms (gamma <= R u64, u64 = 2^-53): sums of squares are off by gamma gg, and
|xg| <= sqrt(xx gg) turns the errors of xg and xx into at most 3 gamma gg.
Accepting rr >= rho gg thus bounds its relative error by 4 gamma / rho.

* float64 data: rho = 1/2 -- the estimate is then within a factor 8 of the
  error bound of the exact pass itself (gamma).
* float32 data: every product of two float32 numbers is exact in float64
  (24 + 24 significand bits <= 53), and the result only needs float32
  accuracy: rr enters the output through a norm-like scale (its relative
  error delta moves the output by delta/2), so delta <= u32/4 (u32 = 2^-24)
  is plenty, which 4 R u64 / rho <= u32/4 gives for rho = R 2^-25 (capped at
  1/2). For R = 4096 the exact pass runs only when g is within 0.6 degrees
  of the normal direction.
"""

import threading
import warnings

import numpy as np

_STATE = {"numba": None, "error": None}  # numba: None = not tried, False = unavailable
_LOCK = threading.Lock()
_LAYOUTS = {}
# Columns per block in the "lead" layout: its per-column float64 sums and
# coefficients (8 x 8 bytes a column, 64 kB) stay in L1/L2 while rows stream
# by; wider blocks measured slower for few rows, no faster for many.
_BLOCK_COLS = 1024
_TINY_T = 1e-3  # below this, sinc(t) = 1 - t^2/6 (1 - t^2/20) exactly to rounding
_NO_SUMS = np.empty((3, 0))  # the kernels compute their sums themselves
# How a kernel gets the sums of pass 1: it computes them factor by factor
# (block by block), or all first and tests them against tol, or they are given.
_COMPUTE, _TEST, _GIVEN = 0, 1, 2
# What it returns: step done; a factor in doubt (nothing written); out partly
# overlaps x or egrad (nothing written: the NumPy path handles it).
_DONE, _DOUBT, _OVERLAP = 0, 1, 2
# Bits of ndarray.flags.num (NPY_ARRAY_*): one integer read per array.
_C_CONTIGUOUS, _F_CONTIGUOUS, _ALIGNED, _WRITEABLE = 0x1, 0x2, 0x100, 0x400
_F64, _F32 = np.dtype(np.float64), np.dtype(np.float32)


def gradient_step(reducer, use_exp, x, egrad, lr, out, check=None, tol=None):
    """One fused Riemannian gradient step in place into ``out``, if a kernel can.

    Parameters
    ----------
    reducer : FactorReducer
        Shape and factor axes of the arrays.
    use_exp : bool
        Exponential map (True) or metric projection (False) as retraction.
    x, egrad, out : ndarray
        Point, Euclidean gradient and output (``out`` may be ``x``).
    lr : float
        Step size (a finite real number; converted with ``float``).
    check : callable, optional
        ``check(xx, gg)`` with the float64 per-factor sums of squares of x
        and egrad (1-D, in the kernel's order of the factors), called after
        the pass that computes them and before anything is written: the
        public method validates its inputs there, raising to stop the step,
        instead of reading the arrays once more for that. The step then
        reuses the sums (the same numbers it computes without ``check``).
    tol : float, optional
        With ``check``: the kernel itself tests the sums, and calls ``check``
        only if some factor has |sqrt(xx) - 1| > tol (or NaN) or a ``gg``
        that is not finite. Without ``tol``, ``check`` is always called.

    Returns
    -------
    bool
        True when the step was computed into ``out``; False when numba is
        missing, the arrays are not in a supported layout, ``out`` partly
        overlaps ``x`` or ``egrad``, or x is read-only (nothing written,
        ``check`` not called).

    Notes
    -----
    The whole step, validity test included, is one call of a compiled
    function: Python code run between the two passes over the data finds
    its own code and objects evicted from the core's caches by the first
    pass, and measured about 0.1 ms (a few percent of a 32 MB step) where
    it costs microseconds when warm. The aliasing of ``out`` with ``x`` and
    ``egrad`` is settled in the kernel from the data pointers for the same
    reason.
    """
    layout = _layout_of(reducer, x, egrad, out)
    if layout is None:
        return False
    kernels = _load()
    if not kernels:
        return False
    kind, transpose, rows, cols = layout
    if transpose:
        x, egrad, out = x.T, egrad.T, out.T
    if x.ndim != 2 or x.shape[0] != rows:
        x = x.reshape(rows, cols)
        egrad = egrad.reshape(rows, cols)
        out = out.reshape(rows, cols)
    step = kernels[kind]
    lr = float(lr)
    use_exp = bool(use_exp)
    if check is None:
        return step(x, egrad, out, lr, use_exp, _BLOCK_COLS, _COMPUTE, 0.0, _NO_SUMS) == _DONE
    tol = -1.0 if tol is None else float(tol)  # -1: every factor is in doubt
    status = step(x, egrad, out, lr, use_exp, _BLOCK_COLS, _TEST, tol, _NO_SUMS)
    if status != _DOUBT:
        return status == _DONE
    # Some factor is in doubt (nothing written): the caller's check sees the
    # sums (computed again, the same numbers) and raises, or the step goes on.
    sums = np.empty((3, cols if kind == "lead" else rows))
    kernels[kind + "_sums"](x, egrad, sums, _BLOCK_COLS)
    check(sums[0], sums[2])
    return step(x, egrad, out, lr, use_exp, _BLOCK_COLS, _GIVEN, 0.0, sums) == _DONE


def available():
    """True when numba can be imported (imports it on first call)."""
    return bool(_load())


# --- layouts ------------------------------------------------------------------


def _layout_of(reducer, x, egrad, out):
    """(kind, transpose, rows, cols) for arrays the kernels can handle, else None.

    Aliasing is not looked at here: the kernels refuse an ``out`` that partly
    overlaps ``x`` or ``egrad``.
    """
    if not (isinstance(x, np.ndarray) and isinstance(egrad, np.ndarray)
            and isinstance(out, np.ndarray)):
        return None
    dtype = x.dtype
    # Equal to the native float64 or float32: a byte-swapped dtype compares unequal.
    if dtype != _F64 and dtype != _F32:
        return None
    if egrad.dtype != dtype or out.dtype != dtype:
        return None
    shape = reducer.shape
    if x.shape != shape or egrad.shape != shape or out.shape != shape:
        return None
    x_flags = x.flags.num
    out_flags = x_flags if out is x else out.flags.num
    # x writeable too: numba types the kernel's in-place branch, which writes
    # x, for any call, and refuses a read-only array there (a memory map opened
    # read-only, a broadcast view); the NumPy path takes those.
    if not x_flags & out_flags & _WRITEABLE:
        return None
    common = x_flags & egrad.flags.num & out_flags
    if common & (_C_CONTIGUOUS | _ALIGNED) == _C_CONTIGUOUS | _ALIGNED:
        return _layout(shape, reducer.axes, False)
    if common & (_F_CONTIGUOUS | _ALIGNED) == _F_CONTIGUOUS | _ALIGNED:
        return _layout(shape, reducer.axes, True)
    return None


def _same_view(a, b):
    """True if a and b view the same elements in the same order."""
    if a is b:
        return True
    return (
        a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
        and a.shape == b.shape
        and a.strides == b.strides
    )


def _disjoint_or_same(a, b):
    """True if a and b are the very same view, or cannot overlap in memory."""
    return a is b or not np.may_share_memory(a, b) or _same_view(a, b)


def _layout(shape, axes, transpose):
    key = (shape, axes, transpose)
    if key not in _LAYOUTS:
        _LAYOUTS[key] = _find_layout(shape, axes, transpose)
    return _LAYOUTS[key]


def _find_layout(shape, axes, transpose):
    if transpose:
        axes = tuple(len(shape) - 1 - a for a in axes)
        shape = shape[::-1]
    # Axes of length 1 are ignored: they do not change the order in memory.
    is_factor = [i in axes for i, n in enumerate(shape) if n > 1]
    size = int(np.prod(shape))
    factor_size = int(np.prod([n for i, n in enumerate(shape) if i in axes]))
    k = sum(is_factor)
    if k == 0 or all(is_factor[:k]):  # leading axes (k == 0: one-element factors)
        if k == len(is_factor) and k > 0:
            return ("trail", transpose, 1, size)
        return ("lead", transpose, factor_size, size // factor_size)
    if all(is_factor[-k:]):
        return ("trail", transpose, size // factor_size, factor_size)
    return None


# --- lazy compilation ------------------------------------------------------------


def _load():
    """The compiled kernels ({"lead": ..., "trail": ...}), or False without numba."""
    if _STATE["numba"] is None:
        with _LOCK:
            if _STATE["numba"] is None:
                _STATE["numba"] = _import_and_jit()
    return _STATE["numba"]


def _import_and_jit():
    try:
        import numba
    except ImportError:
        return False
    except Exception as err:  # a broken install: say so once, then use NumPy
        _STATE["error"] = err
        warnings.warn(f"numba failed to import ({err!r}); using the NumPy paths", stacklevel=4)
        return False
    return _jit_all(numba)


def _jit_all(numba):
    """Replace the plain functions below by numba dispatchers, callees first.

    They live at module level (not in a closure) so that ``cache=True`` can
    find them again; numba falls back to a per-user cache directory when the
    package directory is not writable, and to no cache when none is.
    """
    namespace = globals()
    namespace["_fma"] = _fma_intrinsic(numba)
    fast_sum = {"reassoc"}
    fused_sum = {"reassoc", "contract"}
    plan = [
        ("_coefs", {}),
        ("_row_moments", {"fastmath": fused_sum}),
        ("_row_residual", {"fastmath": fast_sum}),
        ("_refine", {}),
        ("_overlap", {}),
        ("_doubtful", {}),
        ("_lead_sums", {}),
        ("_lead_exact", {}),
        ("_lead_all_sums", {}),
        ("_trail_all_sums", {}),
        ("_trail_update", {}),
        ("_trail_update_inplace", {}),
        ("_lead_update", {}),
        ("_lead_update_inplace", {}),
        ("_step_trail", {}),
        ("_step_lead", {}),
        ("_angle", {}),
        ("_history_rows", {}),
    ]
    for name, options in plan:
        func = namespace[name]
        try:
            jitted = numba.njit(cache=True, nogil=True, error_model="numpy", **options)(func)
        except RuntimeError:  # no writable cache location
            jitted = numba.njit(cache=False, nogil=True, error_model="numpy", **options)(func)
        namespace[name] = jitted
    return {
        "lead": namespace["_step_lead"],
        "trail": namespace["_step_trail"],
        "lead_sums": namespace["_lead_all_sums"],
        "trail_sums": namespace["_trail_all_sums"],
        "history": namespace["_history_rows"],
    }


def _fma_intrinsic(numba):
    """fma(a, b, c) = a b + c with one rounding (llvm.fma.f64; vectorizes)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def fma(typingctx, a, b, c):
        sig = types.float64(types.float64, types.float64, types.float64)

        def codegen(context, builder, signature, args):
            fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType()] * 3)
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.fma.f64")
            return builder.call(fn, args)

        return sig, codegen

    return fma


# --- the kernels (plain Python until _jit_all compiles them) -------------------


def _fma(a, b, c):
    """a b + c rounded once (replaced by the llvm.fma intrinsic when compiled).

    It forms r = g - c x as fma(-c, x, g): with g nearly normal, |g| is much
    larger than |r|, and rounding c x first would cost an ulp of |g| per
    element, which lr |g| then carries into the step (10 ulps of the norm
    for lr |g| = 10); with one rounding the error is an ulp of |r|.
    """
    return a * b + c


def _coefs(use_exp, lr, xx, rr):
    """Coefficients (a, b) of out = a x + b r for one factor."""
    if use_exp:
        # |lr|: a negative lr steps along +r, so that exp(x, u) is the step
        # with g = u and lr = -1 (sinc is even).
        t = abs(lr) * np.sqrt(rr)
        if t < _TINY_T:
            t2 = t * t
            sinc = 1.0 - t2 / 6.0 * (1.0 - t2 / 20.0)
        else:
            sinc = np.sin(t) / t
        return np.cos(t) / np.sqrt(xx), -lr * sinc
    s = 1.0 / np.sqrt(xx + lr * lr * rr)
    return s, -lr * s


def _row_moments(x, g, f):
    xx = 0.0
    xg = 0.0
    gg = 0.0
    for j in range(x.shape[1]):
        xv = np.float64(x[f, j])
        gv = np.float64(g[f, j])
        xx += xv * xv
        xg += xv * gv
        gg += gv * gv
    return xx, xg, gg


def _row_residual(x, g, f, c):
    rr = 0.0
    xr = 0.0
    for j in range(x.shape[1]):
        xv = np.float64(x[f, j])
        r = _fma(-c, xv, np.float64(g[f, j]))
        rr += r * r
        xr += xv * r
    return rr, xr


def _refine(xx, rr, xr):
    """One step of iterative refinement of c = <x, g>/<x, x>: (dc, ||g - (c + dc) x||^2).

    When g is nearly normal, c carries the rounding error of the large <x, g>
    and r = g - c x keeps a normal component dc x, dc = <x, r>/<x, x>, of the
    size of that error. Removing it leaves the tangent part (Pythagoras gives
    its squared norm), so that the step keeps the norm to rounding. c + dc is
    kept as the unevaluated pair (c, dc): rounded to one float64 it would be
    off by an ulp of c, and lr c ulp(c) would move the norm again.
    """
    dc = xr / xx
    return dc, max(rr - dc * xr, 0.0)


def _trail_all_sums(x, g, sums, block):
    """sums[:, f] = (xx, xg, gg) of every row f (the pass 1 of :func:`_step_trail`)."""
    for f in range(x.shape[0]):
        sums[0, f], sums[1, f], sums[2, f] = _row_moments(x, g, f)


def _overlap(x, g, out):
    """(refused, inplace): out partly overlaps x or g; out is x.

    The three are C-contiguous arrays of one shape: equal data pointers mean
    the same view, and disjoint byte ranges mean no overlap.
    """
    size = x.nbytes
    px, pg, po = x.ctypes.data, g.ctypes.data, out.ctypes.data
    refused = (po != px and po < px + size and px < po + size) or (
        po != pg and po < pg + size and pg < po + size
    )
    return refused, po == px


def _doubtful(sums, tol):
    """True if a factor's norm sqrt(xx) is off 1 by more than tol (or NaN), or gg is not finite."""
    for f in range(sums.shape[1]):
        if not abs(np.sqrt(sums[0, f]) - 1.0) <= tol or not np.isfinite(sums[2, f]):
            return True
    return False


def _step_trail(x, g, out, lr, use_exp, block, mode, tol, sums):
    """(F, R) layout: factor f is the contiguous row x[f]; returns a status (``_DONE``...).

    ``mode``: the sums of pass 1 are computed row by row (``_COMPUTE``), or
    all first (see :func:`_trail_all_sums`) and tested against ``tol``
    (``_TEST``, see :func:`_doubtful`), or read from ``sums`` (``_GIVEN``);
    they are the same numbers. ``block`` is not used (the "lead" signature).
    """
    refused, inplace = _overlap(x, g, out)
    if refused:
        return _OVERLAP
    rho = 0.5 if x.itemsize == 8 else min(0.5, x.shape[1] * 2.0**-25)
    if mode == _TEST:
        sums = np.empty((3, x.shape[0]))
        _trail_all_sums(x, g, sums, block)
        if _doubtful(sums, tol):
            return _DOUBT
    for f in range(x.shape[0]):
        if mode == _COMPUTE:
            xx, xg, gg = _row_moments(x, g, f)
        else:
            xx, xg, gg = sums[0, f], sums[1, f], sums[2, f]
        c = xg / xx
        rr = gg - c * xg
        dc = 0.0
        if rr < rho * gg:
            rr, xr = _row_residual(x, g, f, c)
            dc, rr = _refine(xx, rr, xr)
        if abs(lr) * np.sqrt(rr) == 0.0:
            # A zero step keeps the factor bit for bit (also a few ulps off unit norm).
            if not inplace:
                for j in range(x.shape[1]):
                    out[f, j] = x[f, j]
            continue
        a, b = _coefs(use_exp, lr, xx, rr)
        if inplace:
            _trail_update_inplace(x, g, f, a, b, c, dc)
        else:
            _trail_update(x, g, out, f, a, b, c, dc)
    return _DONE


def _trail_update(x, g, out, f, a, b, c, dc):
    """out[f] = a x[f] + b (g[f] - c x[f] - dc x[f]), each element in float64.

    r = fma(-dc, x, fma(-c, x, g)); with dc = 0 (the exact pass did not run)
    the fma with dc is skipped: it would add a zero and round nothing, so the
    result is the same and the loop does one operation an element less.
    Two copies of the update (this one and ``_trail_update_inplace``): with
    out is x, LLVM's runtime overlap check between x and out would fail and
    leave the loop unvectorized.
    """
    if dc == 0.0:
        for j in range(x.shape[1]):
            xv = np.float64(x[f, j])
            out[f, j] = a * xv + b * _fma(-c, xv, np.float64(g[f, j]))
    else:
        for j in range(x.shape[1]):
            xv = np.float64(x[f, j])
            out[f, j] = a * xv + b * _fma(-dc, xv, _fma(-c, xv, np.float64(g[f, j])))


def _trail_update_inplace(x, g, f, a, b, c, dc):
    """:func:`_trail_update` with out = x."""
    if dc == 0.0:
        for j in range(x.shape[1]):
            xv = np.float64(x[f, j])
            x[f, j] = a * xv + b * _fma(-c, xv, np.float64(g[f, j]))
    else:
        for j in range(x.shape[1]):
            xv = np.float64(x[f, j])
            x[f, j] = a * xv + b * _fma(-dc, xv, _fma(-c, xv, np.float64(g[f, j])))


def _lead_all_sums(x, g, sums, block):
    """sums[:, j] = (xx, xg, gg) of every column j (the pass 1 of :func:`_step_lead`).

    Each block is summed into three contiguous 1-D arrays, as in
    :func:`_step_lead` (the same compiled loop, the same numbers), then copied.
    """
    cols = x.shape[1]
    block = min(block, cols)
    xx = np.empty(block)
    xg = np.empty(block)
    gg = np.empty(block)
    for j0 in range(0, cols, block):
        w = min(block, cols - j0)
        xx[:] = 0.0
        xg[:] = 0.0
        gg[:] = 0.0
        _lead_sums(x, g, j0, w, xx, xg, gg)
        sums[0, j0 : j0 + w] = xx[:w]
        sums[1, j0 : j0 + w] = xg[:w]
        sums[2, j0 : j0 + w] = gg[:w]


def _step_lead(x, g, out, lr, use_exp, block, mode, tol, sums):
    """(R, F) layout: factor j is the column x[:, j]; columns go by blocks.

    Rows are streamed in order (``block`` columns at a time), with float64
    sums and coefficients per column that stay in cache; the inner loops run
    over 1-D row views and vectorize over columns, so each sum keeps its
    order. When R is small a block of x and g also stays in cache for the
    final pass. ``mode`` as in :func:`_step_trail` (1 and 2: the sums of all
    columns first, see :func:`_lead_all_sums`: the same numbers).
    """
    refused, inplace = _overlap(x, g, out)
    if refused:
        return _OVERLAP
    rows, cols = x.shape
    rho = 0.5 if x.itemsize == 8 else min(0.5, rows * 2.0**-25)
    block = min(block, cols)
    if mode == _TEST:
        sums = np.empty((3, cols))
        _lead_all_sums(x, g, sums, block)
        if _doubtful(sums, tol):
            return _DOUBT
    have_sums = mode != _COMPUTE
    xx = np.empty(block)
    xg = np.empty(block)
    gg = np.empty(block)
    c = np.empty(block)
    dc = np.empty(block)
    rr = np.empty(block)
    a = np.empty(block)
    b = np.empty(block)
    still = np.zeros(block, dtype=np.bool_)
    for j0 in range(0, cols, block):
        w = min(block, cols - j0)
        if have_sums:
            xx[:w] = sums[0, j0 : j0 + w]
            xg[:w] = sums[1, j0 : j0 + w]
            gg[:w] = sums[2, j0 : j0 + w]
        else:
            xx[:] = 0.0
            xg[:] = 0.0
            gg[:] = 0.0
            _lead_sums(x, g, j0, w, xx, xg, gg)
        exact = False
        dc[:] = 0.0
        for k in range(w):
            c[k] = xg[k] / xx[k]
            rr[k] = gg[k] - c[k] * xg[k]
            exact |= rr[k] < rho * gg[k]
        if exact:
            _lead_exact(x, g, j0, w, xx, c, dc, rr, gg, rho)
        n_still = 0
        for k in range(w):
            still[k] = abs(lr) * np.sqrt(rr[k]) == 0.0
            n_still += still[k]
        # Factors with a zero step are put back from x afterwards (rare: a copy
        # of the block when the update is in place), keeping the loops below lean.
        saved = x[:, j0 : j0 + w].copy() if n_still > 0 and inplace else x[:1, :1]
        if use_exp:
            for k in range(w):
                a[k], b[k] = _coefs(True, lr, xx[k], rr[k])
        else:  # branch-free, so that it vectorizes (many small factors)
            for k in range(w):
                a[k] = 1.0 / np.sqrt(xx[k] + lr * lr * rr[k])
                b[k] = -lr * a[k]
        if inplace:
            _lead_update_inplace(x, g, j0, w, a, b, c, dc, exact)
        else:
            _lead_update(x, g, out, j0, w, a, b, c, dc, exact)
        if n_still > 0:
            for i in range(rows):
                for k in range(w):
                    if still[k]:
                        out[i, j0 + k] = saved[i, k] if inplace else x[i, j0 + k]
    return _DONE


def _lead_update(x, g, out, j0, w, a, b, c, dc, exact):
    """Columns j0 .. j0 + w - 1 of out = a x + b (g - c x - dc x), as in :func:`_trail_update`.

    dc is all zeros unless ``exact`` (the exact pass ran for the block). One
    row at a time: with two, LLVM's overlap checks between the rows of out
    and those of x and g measured slower than the loads of the coefficients
    they save (compare :func:`_lead_update_inplace`).
    """
    for i in range(x.shape[0]):
        xi = x[i, j0 : j0 + w]
        gi = g[i, j0 : j0 + w]
        oi = out[i, j0 : j0 + w]
        if exact:
            for k in range(w):
                xv = np.float64(xi[k])
                r = _fma(-dc[k], xv, _fma(-c[k], xv, np.float64(gi[k])))
                oi[k] = a[k] * xv + b[k] * r
        else:
            for k in range(w):
                xv = np.float64(xi[k])
                oi[k] = a[k] * xv + b[k] * _fma(-c[k], xv, np.float64(gi[k]))


def _lead_update_inplace(x, g, j0, w, a, b, c, dc, exact):
    """:func:`_lead_update` with out = x.

    Without ``exact``, float64 rows go four at a time, so that each column's
    coefficients are loaded once for four elements (as in :func:`_lead_sums`).
    float32 rows go one at a time: measured in the same runs on (4096, 1024),
    four rows made the float32 step about 8 % slower (2.4x against 2.25x the
    ``np.add`` floor) and the float64 step about 4 % faster.
    """
    rows = x.shape[0]
    i = 0
    if not exact and x.itemsize == 8:
        while i + 4 <= rows:
            x0, x1 = x[i, j0 : j0 + w], x[i + 1, j0 : j0 + w]
            x2, x3 = x[i + 2, j0 : j0 + w], x[i + 3, j0 : j0 + w]
            g0, g1 = g[i, j0 : j0 + w], g[i + 1, j0 : j0 + w]
            g2, g3 = g[i + 2, j0 : j0 + w], g[i + 3, j0 : j0 + w]
            for k in range(w):
                ak, bk, mc = a[k], b[k], -c[k]
                u0, u1 = np.float64(x0[k]), np.float64(x1[k])
                u2, u3 = np.float64(x2[k]), np.float64(x3[k])
                r0 = _fma(mc, u0, np.float64(g0[k]))
                r1 = _fma(mc, u1, np.float64(g1[k]))
                r2 = _fma(mc, u2, np.float64(g2[k]))
                r3 = _fma(mc, u3, np.float64(g3[k]))
                x0[k] = ak * u0 + bk * r0
                x1[k] = ak * u1 + bk * r1
                x2[k] = ak * u2 + bk * r2
                x3[k] = ak * u3 + bk * r3
            i += 4
    while i < rows:
        xi = x[i, j0 : j0 + w]
        gi = g[i, j0 : j0 + w]
        if exact:
            for k in range(w):
                xv = np.float64(xi[k])
                r = _fma(-dc[k], xv, _fma(-c[k], xv, np.float64(gi[k])))
                xi[k] = a[k] * xv + b[k] * r
        else:
            for k in range(w):
                xv = np.float64(xi[k])
                xi[k] = a[k] * xv + b[k] * _fma(-c[k], xv, np.float64(gi[k]))
        i += 1


def _lead_sums(x, g, j0, w, xx, xg, gg):
    """Add the rows of columns j0 .. j0 + w - 1 into xx, xg, gg.

    Eight rows per sweep (then four, then one): each sum still adds its
    terms in row order, but it is loaded and stored once per eight rows,
    which keeps the loop fed from memory (measured on (4096, 1024) float64:
    1.04x the ``np.add`` floor against 1.08x with four rows a sweep; float32
    the same, 1.2x). Each product is fused
    into its addition (``_fma``): one rounding a term instead of two, in half
    the operations; for float32 data the product is exact in float64, so
    this rounds exactly as a multiply and an add.
    """
    rows = x.shape[0]
    i = 0
    while i + 8 <= rows:
        # Row views indexed from 0 (not x[i + r, j0 + k]: an index that might
        # be negative, for all numba knows, keeps LLVM from vectorizing).
        x0, x1 = x[i, j0 : j0 + w], x[i + 1, j0 : j0 + w]
        x2, x3 = x[i + 2, j0 : j0 + w], x[i + 3, j0 : j0 + w]
        x4, x5 = x[i + 4, j0 : j0 + w], x[i + 5, j0 : j0 + w]
        x6, x7 = x[i + 6, j0 : j0 + w], x[i + 7, j0 : j0 + w]
        g0, g1 = g[i, j0 : j0 + w], g[i + 1, j0 : j0 + w]
        g2, g3 = g[i + 2, j0 : j0 + w], g[i + 3, j0 : j0 + w]
        g4, g5 = g[i + 4, j0 : j0 + w], g[i + 5, j0 : j0 + w]
        g6, g7 = g[i + 6, j0 : j0 + w], g[i + 7, j0 : j0 + w]
        for k in range(w):
            a0, a1 = np.float64(x0[k]), np.float64(x1[k])
            a2, a3 = np.float64(x2[k]), np.float64(x3[k])
            a4, a5 = np.float64(x4[k]), np.float64(x5[k])
            a6, a7 = np.float64(x6[k]), np.float64(x7[k])
            b0, b1 = np.float64(g0[k]), np.float64(g1[k])
            b2, b3 = np.float64(g2[k]), np.float64(g3[k])
            b4, b5 = np.float64(g4[k]), np.float64(g5[k])
            b6, b7 = np.float64(g6[k]), np.float64(g7[k])
            s = _fma(a3, a3, _fma(a2, a2, _fma(a1, a1, _fma(a0, a0, xx[k]))))
            xx[k] = _fma(a7, a7, _fma(a6, a6, _fma(a5, a5, _fma(a4, a4, s))))
            s = _fma(a3, b3, _fma(a2, b2, _fma(a1, b1, _fma(a0, b0, xg[k]))))
            xg[k] = _fma(a7, b7, _fma(a6, b6, _fma(a5, b5, _fma(a4, b4, s))))
            s = _fma(b3, b3, _fma(b2, b2, _fma(b1, b1, _fma(b0, b0, gg[k]))))
            gg[k] = _fma(b7, b7, _fma(b6, b6, _fma(b5, b5, _fma(b4, b4, s))))
        i += 8
    while i + 4 <= rows:
        x0, x1 = x[i, j0 : j0 + w], x[i + 1, j0 : j0 + w]
        x2, x3 = x[i + 2, j0 : j0 + w], x[i + 3, j0 : j0 + w]
        g0, g1 = g[i, j0 : j0 + w], g[i + 1, j0 : j0 + w]
        g2, g3 = g[i + 2, j0 : j0 + w], g[i + 3, j0 : j0 + w]
        for k in range(w):
            a0, a1 = np.float64(x0[k]), np.float64(x1[k])
            a2, a3 = np.float64(x2[k]), np.float64(x3[k])
            b0, b1 = np.float64(g0[k]), np.float64(g1[k])
            b2, b3 = np.float64(g2[k]), np.float64(g3[k])
            xx[k] = _fma(a3, a3, _fma(a2, a2, _fma(a1, a1, _fma(a0, a0, xx[k]))))
            xg[k] = _fma(a3, b3, _fma(a2, b2, _fma(a1, b1, _fma(a0, b0, xg[k]))))
            gg[k] = _fma(b3, b3, _fma(b2, b2, _fma(b1, b1, _fma(b0, b0, gg[k]))))
        i += 4
    while i < rows:
        xi = x[i, j0 : j0 + w]
        gi = g[i, j0 : j0 + w]
        for k in range(w):
            a0 = np.float64(xi[k])
            b0 = np.float64(gi[k])
            xx[k] = _fma(a0, a0, xx[k])
            xg[k] = _fma(a0, b0, xg[k])
            gg[k] = _fma(b0, b0, gg[k])
        i += 1


def _lead_exact(x, g, j0, w, xx, c, dc, rr, gg, rho):
    """Exact c and rr for the columns of a block whose estimate may have cancelled."""
    rr_exact = np.zeros(w)
    xr = np.zeros(w)
    for i in range(x.shape[0]):
        xi = x[i, j0 : j0 + w]
        gi = g[i, j0 : j0 + w]
        for k in range(w):
            xv = np.float64(xi[k])
            r = _fma(-c[k], xv, np.float64(gi[k]))
            rr_exact[k] += r * r
            xr[k] += xv * r
    for k in range(w):
        if rr[k] < rho * gg[k]:
            dc[k], rr[k] = _refine(xx[k], rr_exact[k], xr[k])


# --- the history's batch (optim._batch.SphereBatch) -------------------------------


def history_batch(stack, n, has_previous, normalize, low):
    """Violation and angle of the pending iterates of a history's stack, if a kernel can.

    ``stack`` is a (rows, L, K) float32 or float64 array (any strides): row 0
    the previous iterate (when ``has_previous``), rows 1..n the pending ones,
    each with K factors of L numbers along axis 1. The formulas, the float64
    sums (float32 data widened) and the arithmetic in the data's dtype are
    those of ``SphereBatch``'s NumPy path, per factor:

    * violation: max_k | sqrt(<y_k, y_k>) - 1 |;
    * angle: (x and y divided by their norms first when ``normalize``)
      near = <x, y> >= 0, w = y -/+ x, a = <x, w>, v = w - a x, theta =
      atan2(||v||, 1 + a or a - 1); then the scaled root sum of squares over
      the factors;

    in one pass per sum over the pair of iterates, with no temporaries (the
    NumPy path makes some ten passes over stack-sized arrays). The sums are
    taken in another order, so the two agree to rounding.

    Returns ``(violations, angles, ok)`` (float64 arrays of n, the first
    angle NaN without a previous iterate; ``ok`` False when a sum of squares
    is outside [low, inf) or a sine squared in (0, low): the caller then
    computes iterate by iterate), or None without numba.
    """
    kernels = _load()
    if not kernels:
        return None
    rows, L, K = stack.shape
    viol, angles = np.empty(n), np.empty(n)
    sq = np.empty((rows, K))
    scratch = np.empty((4, K))
    coefs = np.empty((4, K), dtype=stack.dtype)  # per-factor numbers in the data's dtype
    ok = kernels["history"](stack, n, has_previous, normalize, low, viol, angles, sq, scratch,
                            coefs)
    return viol, angles, ok


def _angle(sine, cosine):
    """atan2(sine, cosine) (sine >= 0); for a small ratio t = sine / cosine > 0, the
    series of atan(t) to t^11, whose next term is below 2^-60 of t for t < 0.04 (a
    libm atan2 call costs a factor of iterates' worth of the other work)."""
    if cosine > 0.0:
        t = sine / cosine
        if t < 0.04:
            t2 = t * t
            return t * (1.0 - t2 * (1.0 / 3.0 - t2 * (0.2 - t2 * (1.0 / 7.0 - t2 * (
                1.0 / 9.0 - t2 * (1.0 / 11.0))))))
    return np.arctan2(sine, cosine)


def _history_rows(s, n, has_previous, normalize, low, viol, angles, sq, scratch, coefs):
    """history_batch's work (see there); False when a sum is out of the safe range."""
    L, K = s.shape[1], s.shape[2]
    first = 0 if has_previous else 1
    for r in range(first, n + 1):
        for k in range(K):
            sq[r, k] = 0.0
        for i in range(L):
            for k in range(K):
                v = np.float64(s[r, i, k])
                sq[r, k] += v * v
    for r in range(1, n + 1):
        worst = 0.0
        for k in range(K):
            q = sq[r, k]
            if not (q >= low and q < np.inf):
                return False
            d = abs(np.sqrt(q) - 1.0)
            if d > worst:
                worst = d
        viol[r - 1] = worst
    if not has_previous:
        angles[0] = np.nan
    xy, a, ss, theta = scratch[0], scratch[1], scratch[2], scratch[3]
    # Per-factor numbers in the data's dtype (stored into coefs, so rounded to it as
    # NumPy's casts do): the norms, the sign of w = y + sign x, and a.
    nx, ny, sign, ca = coefs[0], coefs[1], coefs[2], coefs[3]
    for r in range(first, n):
        x, y = s[r], s[r + 1]
        for k in range(K):
            xy[k] = 0.0
            a[k] = 0.0
            ss[k] = 0.0
        # The two branches differ only by the divisions: a division in the loops, even by
        # 1.0, halved the kernel's speed (12 against 5.5 us an Oblique(10, 200) iterate).
        if normalize:  # x / ||x|| and y / ||y|| per factor, in the data's dtype
            for k in range(K):
                nx[k] = np.sqrt(sq[r, k])
                ny[k] = np.sqrt(sq[r + 1, k])
            for i in range(L):
                for k in range(K):
                    xy[k] += np.float64(x[i, k] / nx[k]) * np.float64(y[i, k] / ny[k])
            for k in range(K):
                sign[k] = -1.0 if xy[k] >= 0.0 else 1.0
            for i in range(L):
                for k in range(K):
                    xv, yv = x[i, k] / nx[k], y[i, k] / ny[k]
                    a[k] += np.float64(xv) * np.float64(yv + sign[k] * xv)
            for k in range(K):
                ca[k] = a[k]
            for i in range(L):
                for k in range(K):
                    xv, yv = x[i, k] / nx[k], y[i, k] / ny[k]
                    v = (yv + sign[k] * xv) - ca[k] * xv
                    ss[k] += np.float64(v) * np.float64(v)
        else:
            for i in range(L):
                for k in range(K):
                    xy[k] += np.float64(x[i, k]) * np.float64(y[i, k])
            for k in range(K):
                sign[k] = -1.0 if xy[k] >= 0.0 else 1.0
            for i in range(L):
                for k in range(K):
                    xv = x[i, k]
                    a[k] += np.float64(xv) * np.float64(y[i, k] + sign[k] * xv)
            for k in range(K):
                ca[k] = a[k]
            for i in range(L):
                for k in range(K):
                    xv = x[i, k]
                    v = (y[i, k] + sign[k] * xv) - ca[k] * xv
                    ss[k] += np.float64(v) * np.float64(v)
        scale = 0.0
        for k in range(K):
            q = ss[k]
            if not ((q >= low or q == 0.0) and q < np.inf):
                return False
            t = _angle(np.sqrt(q), 1.0 + a[k] if xy[k] >= 0.0 else a[k] - 1.0)
            theta[k] = t
            if t > scale:
                scale = t
        safe = scale if scale > 0.0 else 1.0
        total = 0.0
        for k in range(K):
            q = theta[k] / safe
            total += q * q
        angles[r] = safe * np.sqrt(total)
    return True
