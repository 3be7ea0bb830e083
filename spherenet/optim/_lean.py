"""The default runs of steepest descent and CG, their loops written out.

Users run grids of thousands of small runs, where the solver's own layers
(the line-search object, the stopping test, ``evaluate``/``advance``, the
recorder) cost more than the cost and gradient evaluations. When a run is
the common one, the loops below do the work of the general loops of
:mod:`~spherenet.optim.sd` and :mod:`~spherenet.optim.cg` with those layers
written out inline:

* the point is an array on a sphere or an oblique manifold with its own
  maps (the geometry's ``_gradient_and_norm`` makes the evaluation), and the
  stationarity measure is the norm of the Riemannian gradient;
* the line search is the default one (``line_search=None``);
* no callback, no time limit, no ``ftol`` (the stopping test of
  :func:`~spherenet.optim._solver.stopping_test` with the stopper's settings bound);
* no telemetry and no printing per iteration.

They make the same calls on the geometry and the problem, with the same
arguments and in the same order, as the general loops: the iterates, the
history (but its times), the counts, the status and the message are the
same bit for bit (``tests/test_lean_paths.py`` runs both ways, the general
one by passing the default line search explicitly). The rare ends of a
run (no decrease, a non-finite gradient, the stop itself) go through the
shared functions of :mod:`~spherenet.optim._solver`.
"""

import math
import time

import numpy as np

from ..manifolds.sphere import _Spheres
from ._problem import Problem
from ._solver import failed, no_decrease, start, stopping_test
from .line_search import AdaptiveLineSearch, BacktrackingLineSearch, _line

_ndarray = np.ndarray
_isfinite = math.isfinite


def applies(problem, x0, stopper, recorder):
    """True when the run is one that the lean loops make (see the module's docstring)."""
    return (x0.__class__ is _ndarray and type(problem) is Problem
            and problem.finite_norm is not None and _fused(problem.geometry) is not None
            and stopper.callback is None and stopper.maxtime == math.inf
            and stopper.ftol == 0.0 and not recorder.telemetry and recorder.verbose < 2)


def _recorder_of(recorder):
    """``record(it, x, f, grad_norm, step)``: ``recorder.record`` without telemetry, its
    stack of iterates (``SphereBatch``) filled in place when the run has one."""
    batch = recorder._batch
    if batch is None:
        record = recorder.record

        def plain(it, x, f, grad_norm, step):
            record(it, x, f, grad_norm, step)

        return plain
    stack, rows, scalars = batch._stack, len(batch._stack), recorder._scalars
    clock, t0, flush = time.perf_counter, recorder.start, recorder._flush

    def stacked(it, x, f, grad_norm, step):
        # Recorder.record for an iterate of the run's shape and dtype (made by the
        # run's retraction from the first one): batch.add, the scalars, a full stack.
        recorder.last = (x, f, grad_norm, it)
        n = batch._n + 1
        batch._n = n
        stack[n] = x
        scalars.append((f, grad_norm, step, clock() - t0))
        if n + 1 == rows:
            flush()

    return stacked


class _Evaluations:
    """The solvers' ``evaluate`` as a closure over the problem's parts (same counts)."""

    def __init__(self, problem):
        self.problem = problem

    def evaluate(self):
        """``evaluate(x, f) -> (f, rgrad, grad_norm, sq) or None``: ``_solver.evaluate`` with
        the measure the geometry's norm, from the geometry's ``_gradient_and_norm`` (sq is
        <rgrad, rgrad>)."""
        problem = self.problem
        fused = _fused(problem.geometry)
        egrad_fn, check_grad = problem._egrad, problem._check_grad
        cost_and_egrad = problem.cost_and_egrad

        def evaluate(x, f):
            if egrad_fn is not None:
                # Problem.cost_and_egrad with the cost known: the user's gradient alone.
                problem.ngev += 1
                g = egrad_fn(x)
                if not (g.__class__ is _ndarray and g.shape == x.shape and g.dtype == x.dtype):
                    g = check_grad(x, g)
            else:
                f, g = cost_and_egrad(x, f)
            if not _isfinite(f):
                return None
            new = fused(x, g)
            return None if new is None else (f, *new)

        return evaluate


def _line_of(geometry, x0):
    """``line(x, d, dd=None)``: the line search's curve along d (``line_search._line``); the
    geometry's curve builder without its tests when they hold for x0, and so for every
    point of the run (same shape and dtype, made by the geometry's own maps)."""
    ok = getattr(geometry, "_small_line_ok", None)
    if ok is not None and ok(x0, x0):
        return geometry._small_line
    return lambda x, d, dd=None: _line(geometry, x, d, dd)


def _fused(geometry):
    """The geometry's ``_gradient_and_norm`` (egrad2rgrad, the finite norm and <rgrad, rgrad>
    in one call), when it has one for its own maps, else None."""
    fused = getattr(geometry, "_gradient_and_norm", None)
    if fused is None or not type(geometry)._gradient_and_norm_ok():
        return None
    return fused


def steepest_descent(problem, x0, stopper, recorder):
    """:func:`~spherenet.optim.sd._steepest_descent` with the default line search, written out."""
    search = BacktrackingLineSearch()
    optimism, initial = search.optimism, search.initial_step
    geometry = problem.geometry
    parts = _Evaluations(problem)
    evaluate, test = parts.evaluate(), stopping_test(stopper, recorder)

    def backtrack(line, f0, df0, alpha):  # the search's Armijo loop along the run's curve
        return search._backtrack(problem, x, None, f0, df0, alpha, line)
    line_of = _line_of(geometry, x0)
    x = x0
    f, _, rgrad, grad_norm = start(problem, recorder, x)
    # sq = <rgrad, rgrad> (then from the fused evaluation): the slope <rgrad, -rgrad> is
    # -sq and <d, d> of the line along d = -rgrad is sq, bit for bit.
    sq = geometry._inner(x, rgrad, rgrad)
    record = _recorder_of(recorder)
    it, f_old, grad_norm_old, step, f_prev = 0, None, None, None, None
    while True:
        done = test(it, x, f, f_old, grad_norm, grad_norm_old, step)
        if done is not None:
            return done
        direction = -rgrad
        slope = -sq
        # BacktrackingLineSearch.search with norm_d = grad_norm (sd passes it).
        fresh = initial / grad_norm
        if f_prev is not None and slope < 0 and f_prev > f:
            guess = float(optimism * 2.0 * (f - f_prev) / slope)
        else:
            guess = fresh
        line = line_of(x, direction, sq)
        alpha, new_x, new_f, _ = backtrack(line, f, slope, guess)
        if not new_f <= f and guess != fresh:
            alpha, new_x, new_f, _ = backtrack(line, f, slope, fresh)
        f_prev = f
        step = alpha * grad_norm if new_f <= f else 0.0
        it += 1
        if step == 0.0:
            return no_decrease(recorder, x, f, grad_norm, it, stopper, f_old)
        new = evaluate(new_x, new_f)
        if new is None:
            return failed(recorder, x, f, grad_norm, it)
        f_old, grad_norm_old = f, grad_norm
        x, (f, rgrad, grad_norm, sq) = new_x, new
        record(it, x, f, grad_norm, step)


def conjugate_gradient(problem, x0, stopper, recorder, beta_rule="HS", restart=None):
    """:func:`~spherenet.optim.cg._conjugate_gradient` with the default line search, written
    out (``beta_rule`` and ``restart`` as there, already checked)."""
    from .cg import _beta  # cg imports this module

    search = AdaptiveLineSearch()
    initial = search.initial_step
    geometry = problem.geometry
    # The geometry's own maps (checked by _gradient_and_norm_ok): the raw ones they call,
    # and the norm of the direction with its square (<d, d> of the line).
    directional_derivative = inner = geometry._inner
    norm_and_sq, transp = geometry._norm_and_sq, geometry.transp
    if type(geometry)._transp is _Spheres._transp and geometry.transport == "projection":
        proj = geometry._proj

        def transp(x, y, v):  # _Spheres._transp with the projection transport
            return proj(y, v)

    line_of = _line_of(geometry, x0)
    parts = _Evaluations(problem)
    evaluate, test = parts.evaluate(), stopping_test(stopper, recorder)

    def backtrack(line, f0, df0, alpha):  # the search's Armijo loop along the run's curve
        return search._backtrack(problem, x, None, f0, df0, alpha, line)
    x = x0
    f, _, grad, grad_norm = start(problem, recorder, x)
    # <g, g>, then from the fused evaluation (cg computes it only where a rule reads it).
    grad_sq = inner(x, grad, grad)
    direction = -grad
    record = _recorder_of(recorder)
    it, f_old, grad_norm_old, step, alpha_prev = 0, None, None, None, None
    while True:
        done = test(it, x, f, f_old, grad_norm, grad_norm_old, step)
        if done is not None:
            return done
        slope = directional_derivative(x, grad, direction)
        if not slope < 0.0:
            direction = -grad
            slope = directional_derivative(x, grad, direction)
        # AdaptiveLineSearch.search.
        norm_d, dd = norm_and_sq(x, direction)
        fresh = initial / norm_d
        guess = fresh if alpha_prev is None else float(alpha_prev)
        line = line_of(x, direction, dd)
        alpha, new_x, new_f, trials = backtrack(line, f, slope, guess)
        if not new_f <= f and guess != fresh:
            alpha, new_x, new_f, trials = backtrack(line, f, slope, fresh)
        alpha_prev = alpha if trials == 2 else 2.0 * alpha
        step = alpha * norm_d if new_f <= f else 0.0
        it += 1
        if step == 0.0:
            return no_decrease(recorder, x, f, grad_norm, it, stopper, f_old)
        new = evaluate(new_x, new_f)
        if new is None:
            return failed(recorder, x, f, grad_norm, it)
        new_f, new_grad, new_grad_norm, new_grad_sq = new
        old_grad = transp(x, new_x, grad)
        if restart is not None and abs(inner(new_x, old_grad, new_grad)) >= restart * new_grad_sq:
            direction = -new_grad
        else:
            direction = transp(x, new_x, direction)
            if beta_rule == "HS":  # _beta's Hestenes-Stiefel, an array's case
                diff = new_grad - old_grad
                denominator = inner(new_x, direction, diff)
                beta = 0.0 if denominator == 0.0 else max(
                    0.0, inner(new_x, new_grad, diff) / denominator)
            else:
                beta = _beta(beta_rule, geometry, new_x, grad_sq, new_grad, new_grad_sq,
                             old_grad, direction)
            # _tangent.lincomb(-1.0, new_grad, beta, direction), an array's case.
            direction = direction.dtype.type(beta) * direction - new_grad
        f_old, grad_norm_old = f, grad_norm
        x, f, grad, grad_norm, grad_sq = new_x, new_f, new_grad, new_grad_norm, new_grad_sq
        record(it, x, f, grad_norm, step)
