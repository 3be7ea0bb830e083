"""The pieces every solver shares: stopping tests, history, printing, the result."""

import collections
import functools
import math
import numbers
import threading
import time
import weakref

import numpy as np
from scipy.optimize import OptimizeResult as _ScipyResult

from .. import _tangent
from ..manifolds.sphere import _Spheres
from ._batch import SphereBatch

HISTORY_FIELDS = ("cost", "grad_norm", "violation", "step_size", "angle", "time")
_SCALAR_FIELDS = ("cost", "grad_norm", "step_size", "time")  # the order of Recorder's tuples
TELEMETRY_FIELDS = ("tangency", "norm_drift", "chord", "retr_exp_gap", "transport_defect")


def telemetry(geometry, x_old, x_new, step):
    """Per-step geometric health numbers for the step ``step`` (tangent at x_old) to x_new.

    Returns a dict: ``tangency`` (||step - P(step)|| / ||step||: is the
    direction handed to the retraction tangent?), ``norm_drift`` (change of
    the constraint violation over the step), ``chord`` (||x_new - x_old||,
    to set against the geodesic ``angle``), ``retr_exp_gap``
    (dist(R_x(step), Exp_x(step)): how far the retraction is from the
    geodesic) and ``transport_defect`` (| ||T step|| - ||step|| | / ||step||:
    how far the vector transport is from an isometry).
    """
    size = geometry.norm(x_old, step)
    if not size > 0.0:
        return dict.fromkeys(TELEMETRY_FIELDS, 0.0)
    normal = _tangent.lincomb(1.0, step, -1.0, geometry.proj(x_old, step))
    moved = geometry.transp(x_old, x_new, step)
    chord = _tangent.lincomb(1.0, x_new, -1.0, x_old)
    return {
        "tangency": geometry.norm(x_old, normal) / size,
        "norm_drift": geometry.violation(x_new) - geometry.violation(x_old),
        "chord": float(np.sqrt(_sq(chord))),
        "retr_exp_gap": geometry.dist(geometry.retr(x_old, step), geometry.exp(x_old, step)),
        "transport_defect": abs(geometry.norm(x_new, moved) - size) / size,
    }


def _sq(u):
    if _tangent.is_tuple(u):
        return sum(_sq(ui) for ui in u)
    return float(np.sum(np.square(u, dtype=np.float64)))


def _batchable(strategy):
    """True when the violation and angle of the strategy's iterates can be batched:
    the riemannian or projection strategy (weights = variable, no extra fields)
    of a Sphere or an Oblique."""
    global _BATCHED_STRATEGIES
    if _BATCHED_STRATEGIES is None:  # strategies import the manifolds only: import at first use
        from ..strategies import Projection, Riemannian

        _BATCHED_STRATEGIES = (Riemannian, Projection)
    return (type(strategy) in _BATCHED_STRATEGIES and isinstance(strategy.manifold, _Spheres)
            and not strategy.extra_fields)


_BATCHED_STRATEGIES = None


_FILL_LOCK = threading.Lock()
# Histories not computed yet, oldest first (weakly); see History._deferred.
_PENDING = collections.deque()
_MAX_PENDING = 16


class History(dict):
    """Per-iteration records as a dict of NumPy arrays (one entry per iterate).

    Keys: ``cost``, ``grad_norm``, ``violation`` (max | ||w|| - 1 | over the
    constrained factors), ``step_size`` (norm of the tangent step; NaN at
    iterate 0), ``angle`` (geodesic distance moved by the constrained
    weights), ``time`` (seconds since the start), and strategy extras such as
    ``v_norm`` under ``reparam``.

    A solver's history is recorded during the run (the iterates' numbers, and
    a copy of each small iterate on a sphere), and its ``violation`` and
    ``angle`` columns are computed from the stacked iterates when the history
    is first read: a run whose history is never read does not pay for them.
    Reading it in any way (an item, ``keys()``, ``len``, iteration, ``==``,
    ``dict(h)``, ``json.dumps``, pickling) gives the complete dict.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere, minimize
    >>> A = np.diag([3.0, 2.0, 1.0])
    >>> res = minimize(lambda x: x @ A @ x, Sphere(3), x0=np.ones(3) / np.sqrt(3),
    ...                grad=lambda x: 2 * A @ x, gtol=1e-8)
    >>> h = res.history
    >>> sorted(h)
    ['angle', 'cost', 'grad_norm', 'step_size', 'time', 'violation']
    >>> len(h["cost"]) == res.nit + 1, bool(np.isnan(h["angle"][0]))
    (True, True)
    """

    # A callable () -> dict of the columns, while they are not computed yet (set on
    # the instance by _deferred; the class's None means "complete").
    _build = None

    @classmethod
    def _deferred(cls, build):
        """A history whose columns are ``build()``, computed when first read.

        At most ``_MAX_PENDING`` histories wait at a time: making one more
        computes the oldest one still alive (kept results hold their history
        in its final form, a stack of iterates only for a while; a result
        that is dropped unread never pays for it).
        """
        history = cls()
        history._build = build
        _PENDING.append(weakref.ref(history))
        while len(_PENDING) > _MAX_PENDING:
            try:
                oldest = _PENDING.popleft()()
            except IndexError:  # emptied by another thread meanwhile
                break
            if oldest is not None:
                try:
                    oldest._fill()
                except Exception:  # noqa: BLE001 - raised again when that history is read
                    pass
        return history

    def _fill(self):
        if self._build is not None:
            with _FILL_LOCK:  # two threads reading a new history build it once
                build = self.__dict__.get("_build")
                if build is not None:
                    dict.update(self, build())
                    del self.__dict__["_build"]
        return self

    @staticmethod
    def _filled(other):
        return other._fill() if isinstance(other, History) else other

    # Every way of reading or changing the dict completes it first.
    def __getitem__(self, key):
        return dict.__getitem__(self._fill(), key)

    def __contains__(self, key):
        return dict.__contains__(self._fill(), key)

    def __iter__(self):
        return dict.__iter__(self._fill())

    def __reversed__(self):
        return dict.__reversed__(self._fill())

    def __len__(self):
        return dict.__len__(self._fill())

    def __repr__(self):
        return dict.__repr__(self._fill())

    def __eq__(self, other):
        return dict.__eq__(self._fill(), self._filled(other))

    def __ne__(self, other):
        return dict.__ne__(self._fill(), self._filled(other))

    __hash__ = None

    def __or__(self, other):
        return dict.__or__(self._fill(), self._filled(other))

    def __ror__(self, other):
        return dict.__ror__(self._fill(), self._filled(other))

    def __ior__(self, other):
        return dict.__ior__(self._fill(), self._filled(other))

    def __setitem__(self, key, value):
        dict.__setitem__(self._fill(), key, value)

    def __delitem__(self, key):
        dict.__delitem__(self._fill(), key)

    def __reduce_ex__(self, protocol):
        return (type(self), (dict(self.items()),))

    def keys(self):
        return dict.keys(self._fill())

    def values(self):
        return dict.values(self._fill())

    def items(self):
        return dict.items(self._fill())

    def get(self, key, default=None):
        return dict.get(self._fill(), key, default)

    def pop(self, key, *default):
        return dict.pop(self._fill(), key, *default)

    def popitem(self):
        return dict.popitem(self._fill())

    def setdefault(self, key, default=None):
        return dict.setdefault(self._fill(), key, default)

    def update(self, *args, **kwargs):
        dict.update(self._fill(), *(self._filled(a) for a in args), **kwargs)

    def clear(self):
        dict.clear(self._fill())

    def copy(self):
        return type(self)(dict.items(self._fill()))

    def to_pandas(self):
        """The history as a ``pandas.DataFrame`` indexed by iteration."""
        try:
            import pandas as pd
        except ImportError as err:  # pragma: no cover - depends on the env
            raise ImportError("History.to_pandas needs pandas: pip install pandas") from err
        frame = pd.DataFrame(dict(self))
        frame.index.name = "iteration"
        return frame


class OptimizeResult(_ScipyResult):
    """The result of :func:`spherenet.minimize`, shaped like scipy's.

    Attributes
    ----------
    x : ndarray or tuple of ndarray
        The solution (the last finite iterate if the run failed).
    fun : float
        Cost at ``x``.
    nit, nfev, ngev, nhev : int
        Iterations, cost, gradient and Hessian-vector evaluations.
    grad_norm : float
        Norm of the Riemannian gradient at ``x``.
    violation : float
        max_k | ||x_k|| - 1 | over the constrained (sphere) factors of ``x``.
    success : bool
        True when the run converged (status 0 or 3) *and* ``violation <= ctol``:
        a point that is stationary for a penalized or unconstrained cost but
        off the sphere is not a solution of the constrained problem.
    message : str
        Why the run stopped; when ``violation > ctol`` it says so, by how
        much, and what to change.
    status : int
        Why the run stopped: 0 converged (gtol), 1 max iterations, 2 max time,
        3 cost tolerance, 4 step tolerance, 5 stopped by the callback,
        6 precision floor (see :class:`Stopper`), 7 maximum number of cost
        evaluations (``maxfev``), -1 failed (NaN/Inf).
    history : History
    """


def _coarsest_dtype(x):
    arrays = x if isinstance(x, tuple) else (x,)
    return max((np.asarray(a).dtype for a in arrays), key=lambda d: np.finfo(d).eps)


def default_ctol(x):
    """The default constraint tolerance: max(1e-6, 100 eps) of the point's (coarsest) dtype."""
    dtype = x.dtype if x.__class__ is np.ndarray else _coarsest_dtype(x)
    ctol = _CTOL.get(dtype)
    if ctol is None:
        ctol = _CTOL[dtype] = max(1e-6, 100.0 * float(np.finfo(dtype).eps))
    return ctol


_CTOL = {}  # default_ctol by dtype


class EvaluationBudgetExhausted(Exception):
    """Raised by ``Problem`` instead of a cost evaluation beyond ``maxfev``.

    Internal: solvers (through :func:`spherenet.optim._solver.budgeted`) and
    the step-rule loop turn it into the result at the last recorded iterate,
    with status 7.
    """


def check_maxfev(maxfev):
    """``maxfev`` as an int >= 1, or None for no limit; ValueError/TypeError otherwise."""
    if maxfev is None:
        return None
    if maxfev.__class__ is int and maxfev >= 1:
        return maxfev  # the usual case, without the abstract-class checks below
    if isinstance(maxfev, bool) or not isinstance(maxfev, (numbers.Integral, float)):
        raise TypeError(f"maxfev must be an int >= 1 or None, got {type(maxfev).__name__}")
    if maxfev == math.inf:
        return None
    if not maxfev >= 1 or (isinstance(maxfev, float) and not maxfev.is_integer()):
        raise ValueError(f"maxfev must be an int >= 1 or None, got {maxfev!r}")
    return int(maxfev)


def check_maxiter(maxiter):
    """``maxiter`` as an int >= 0 (an integral float such as 1e3 too), or inf."""
    if maxiter.__class__ is int and maxiter >= 0:
        return maxiter  # the usual case, without the abstract-class checks below
    if isinstance(maxiter, bool) or not isinstance(maxiter, (numbers.Integral, float)):
        raise TypeError(f"maxiter must be an int >= 0, got {type(maxiter).__name__}")
    if maxiter == math.inf:
        return math.inf
    if not maxiter >= 0 or (isinstance(maxiter, float) and not maxiter.is_integer()):
        raise ValueError(f"maxiter must be an int >= 0, got {maxiter!r}")
    return int(maxiter)


def check_tolerance(name, value):
    """A real number >= 0 (inf allowed) as a float; TypeError/ValueError otherwise."""
    if value.__class__ is float and value >= 0.0:
        return value  # the usual case, without the abstract-class checks below
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number >= 0, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


class Stopper:
    """The stopping tests shared by all solvers.

    Besides the tolerances, it detects the *precision floor* of the dtype:
    near a minimizer the decrease a step can bring, about
    ||grad||^2 / (2 curvature), falls below the rounding of the cost,
    eps |f| (1.2e-7 |f| in float32), long before the gradient norm reaches a
    gtol chosen for float64. The cost can then no longer tell a better point
    from a worse one, and cost-based solvers stall: line searches find no
    decrease, trust-region ratios are rounding noise. A step is *unresolved*
    when the cost changed by at most ``FLOOR_FACTOR`` eps |f| (and, for trust
    regions, so did the model) and the gradient norm did not go down. After
    ``FLOOR_PATIENCE`` unresolved steps in a row, or a failed line search or
    a step below xtol right after one, the run stops with status 6 and a
    message giving the gradient norm reached and the smallest one seen.

    Status 6 is not a success: gtol was not met, and ``success`` says whether
    the requested tolerance was. But the point is as good as the dtype's
    cost can certify (its cost is the minimum to a few eps |f|); the
    remedies are float64 data or a gtol above the floor.

    ``maxfev`` bounds the number of cost evaluations, ``nfev`` of the
    result: every call of the cost, alone (line-search trials, trust-region
    proposals) or with its gradient (autograd's forward pass, or the cost
    beside a user's gradient); Hessian-vector products and gradients computed
    without the cost are not counted. The bound is exact: ``nfev <= maxfev``
    always. An evaluation that would be number ``maxfev + 1`` is not made;
    the run stops with status 7 and returns the last iterate at which the
    cost and the gradient are both known (the trial points of an unfinished
    line search are dropped). The first evaluation, at x0, is always made,
    so maxfev must be at least 1.
    """

    FLOOR_FACTOR = 4.0
    FLOOR_PATIENCE = 3

    def __init__(self, maxiter, gtol, ftol, xtol, maxtime, callback, maxfev=None):
        self.maxfev = check_maxfev(maxfev)
        self.maxiter = check_maxiter(maxiter)
        self.gtol = check_tolerance("gtol", gtol)
        self.ftol = check_tolerance("ftol", ftol)
        self.xtol = check_tolerance("xtol", xtol)
        self.maxtime = check_tolerance("maxtime", maxtime)
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable or None, got {type(callback).__name__}")
        self.callback = callback
        self.unresolved_steps = 0
        self.best_grad_norm = math.inf
        self._eps = {}  # eps of the coarsest dtype, by the point's dtype (arrays)

    def _eps_of(self, x):
        if x.__class__ is not np.ndarray:
            return float(np.finfo(_coarsest_dtype(x)).eps)
        eps = self._eps.get(x.dtype)
        if eps is None:
            eps = self._eps[x.dtype] = float(np.finfo(_coarsest_dtype(x)).eps)
        return eps

    def unresolved(self, x, f_old, f_new, predicted=0.0, improved=False):
        """True when a step made no progress the dtype of x can see: the change
        f_old - f_new (and the ``predicted`` one) is within ``FLOOR_FACTOR``
        eps |f|, rounding, and the gradient norm did not go down (``improved``)."""
        noise = self.FLOOR_FACTOR * self._eps_of(x) * max(abs(f_old), abs(f_new))
        return not improved and abs(f_old - f_new) <= noise and abs(predicted) <= noise

    def maxfev_message(self):
        """The message of a stop at the evaluation budget (status 7)."""
        return f"maximum number of cost evaluations (maxfev={self.maxfev}) reached"

    def floor_message(self, x, grad_norm):
        """The message of a stop at the precision floor (status 6)."""
        name = _coarsest_dtype(x).name
        remedy = "a gtol above the floor"
        if name != "float64":
            remedy = "float64, or " + remedy
        return (f"stopped at the {name} precision floor: the cost no longer resolves the "
                f"decrease of a step (<= {self.FLOOR_FACTOR:g} eps |f|); gradient norm "
                f"{grad_norm:.3e} cannot go below ~{self.best_grad_norm:.1e} in {name} "
                f"(gtol {self.gtol:.1e}: use {remedy})")

    def check(self, it, elapsed, grad_norm, f_old, f_new, step_size, x, unresolved=None):
        """Return (status, message) or None to go on.

        The callback sees the iterate of every iteration, not the starting
        point (as in scipy); a callback's stop request yields to convergence.
        ``unresolved`` says whether the last step was lost in rounding (see
        :meth:`unresolved`); None (step rules) leaves the floor test out.
        """
        stop_requested = it > 0 and self.callback is not None and self.callback(x) is True
        self.best_grad_norm = min(self.best_grad_norm, grad_norm)
        if unresolved is not None:
            self.unresolved_steps = self.unresolved_steps + 1 if unresolved else 0
        if grad_norm <= self.gtol:
            return 0, f"gradient norm {grad_norm:.3e} <= gtol {self.gtol:.1e}"
        if stop_requested:
            return 5, "stopped by the callback"
        if self.unresolved_steps >= self.FLOOR_PATIENCE:
            return 6, self.floor_message(x, grad_norm)
        if it >= self.maxiter:
            return 1, f"maximum number of iterations ({self.maxiter}) reached"
        if elapsed >= self.maxtime:
            return 2, f"maximum time ({self.maxtime:g} s) reached"
        if f_old is not None and self.ftol > 0:
            if abs(f_old - f_new) <= self.ftol * max(abs(f_old), abs(f_new), 1.0):
                return 3, f"relative cost decrease <= ftol {self.ftol:.1e}"
        if step_size is not None and step_size <= self.xtol:
            if self.unresolved_steps >= 1:  # a line search shrank the step into the rounding
                return 6, self.floor_message(x, grad_norm)
            return 4, f"step size {step_size:.3e} <= xtol {self.xtol:.1e}"
        return None


class Recorder:
    """Records the history of a run and prints it when asked.

    On a Sphere or an Oblique of up to 4096 float64 numbers under the
    riemannian or projection strategy, the violation and angle of the
    iterates are computed a stack of iterates at a time (see :class:`~spherenet.optim._batch.SphereBatch`)
    when the history is read or the stack is full; elsewhere, and when
    printing every iteration, at every iterate.
    """

    def __init__(self, problem, strategy, verbose=0, telemetry=False, ctol=1e-6):
        self.problem = problem
        self.strategy = strategy
        self.ctol = check_tolerance("ctol", ctol)
        if verbose.__class__ is not int and not isinstance(verbose, numbers.Integral):
            raise TypeError(f"verbose must be an int (0, 1 or 2), got {type(verbose).__name__}")
        if verbose < 0:
            raise ValueError(f"verbose must be an int (0, 1 or 2), got {verbose!r}")
        self.verbose = int(verbose)
        if not isinstance(telemetry, (bool, np.bool_)):
            raise TypeError(f"telemetry must be True or False, got {type(telemetry).__name__}")
        self.telemetry = bool(telemetry)
        self.start = time.perf_counter()
        fields = HISTORY_FIELDS + tuple(strategy.extra_fields)
        fields += TELEMETRY_FIELDS if self.telemetry else ()
        self._fields = fields
        # cost, grad_norm, step_size and time: one tuple per iterate, made arrays once
        # by history(); the other fields are lists of floats.
        self._scalars = []
        self.rows = {name: [] for name in fields if name not in _SCALAR_FIELDS}
        self._weights = None
        self._x = None
        self._batch = None
        self._batchable = self.verbose < 2 and _batchable(strategy)
        self.last = None  # (x, f, grad_norm, it) of the last recorded iterate
        if self.verbose >= 2:
            print(f"{'iter':>6} {'cost':>22} {'grad norm':>12} {'violation':>10} {'step':>10}")

    def elapsed(self):
        return time.perf_counter() - self.start

    def _violation_and_angle(self, x_old, x_new):
        """The per-iterate computation: violation at x_new, angle moved from x_old (or NaN)."""
        return _violation_and_angle(self.strategy, x_old, x_new)

    def _flush(self):
        _flush(self._batch, self.rows)

    def _stop_batching(self):
        """Flush, and go on one iterate at a time from the last stacked one."""
        batch = self._batch
        self._flush()
        if batch._has_previous:
            self._weights = self.strategy.to_weights(batch._stack[0].copy())
        self._batch, self._batchable = None, False

    def record(self, it, x, f, grad_norm, step_size=math.nan, step=None):
        """Append one iterate; ``step`` is the tangent vector retracted to reach
        x (only read when telemetry is on; NaN telemetry when it is None)."""
        self.last = (x, f, grad_norm, it)
        rows = self.rows
        batch = self._batch
        if batch is None and self._batchable:
            self._batchable = SphereBatch.fits(x)
            if self._batchable:
                batch = self._batch = SphereBatch(
                    self.strategy.manifold, x, self.strategy.name == "projection",
                    functools.partial(_violation_and_angle, self.strategy))
        if batch is not None and not batch.add(x):
            self._stop_batching()
            batch = None
        if batch is None:
            weights = self.strategy.to_weights(x)
            angle = math.nan if self._weights is None else self.strategy.angle(self._weights, weights)
            self._weights = weights
            violation = float(self.strategy.violation(x))
            rows["violation"].append(violation)
            rows["angle"].append(float(angle))
            for name, value in self.strategy.extras(x).items():
                rows[name].append(float(value))
        self._scalars.append((f, grad_norm, step_size, time.perf_counter() - self.start))
        if self.telemetry:
            if step is None or self._x is None:
                values = dict.fromkeys(TELEMETRY_FIELDS, math.nan)
            else:
                values = telemetry(self.problem.geometry, self._x, x, step)
            for name, value in values.items():
                rows[name].append(float(value))
            self._x = x
        if batch is not None and batch.full:
            self._flush()
        if self.verbose >= 2:
            print(
                f"{it:6d} {f:+22.15e} {grad_norm:12.5e} {violation:10.2e} "
                f"{step_size:10.3e}"
            )

    def history(self):
        return History(self._columns()())

    def _columns(self):
        """``() -> dict`` of the history's columns: what the recorder has, without the
        recorder (a result's history keeps neither the problem nor the user's functions)."""
        return functools.partial(_columns, self._fields, self._scalars, self.rows, self._batch)

    def result(self, x, f, grad_norm, nit, status, message):
        problem = self.problem
        if status not in (0, 3, -1) and getattr(problem, "nonfinite", 0):
            # Line searches and trust regions treat a NaN/Inf cost at a trial
            # point as "no decrease" and go on; say so when the run then fails.
            message += (f"; the cost was NaN or Inf at {problem.nonfinite} trial point(s), "
                        "which were rejected")
        violation = self.strategy.violation(x)
        feasible = violation <= self.ctol
        if not feasible:
            message += (f"; but the weights are off the sphere by up to {violation:.3g} "
                        f"(> ctol {self.ctol:.1e}): {self.strategy.infeasible_advice()}")
        if self.verbose >= 1:
            print(f"{message} after {nit} iterations: cost {f:.10e}, gradient norm {grad_norm:.3e}")
        return OptimizeResult(
            x=self.strategy.to_weights(x),
            fun=f,
            nit=nit,
            nfev=problem.nfev,
            ngev=problem.ngev,
            nhev=problem.nhev,
            grad_norm=grad_norm,
            violation=violation,
            success=status in (0, 3) and feasible,
            status=status,
            message=message,
            history=History._deferred(self._columns()),
        )


def _violation_and_angle(strategy, x_old, x_new):
    """The per-iterate computation: violation at x_new, angle moved from x_old (or NaN)."""
    weights = strategy.to_weights(x_new)
    angle = math.nan if x_old is None else strategy.angle(strategy.to_weights(x_old), weights)
    return strategy.violation(x_new), angle


def _flush(batch, rows):
    """Violation and angle of the iterates pending in ``batch`` (if any) onto ``rows``."""
    if batch is not None and batch.pending:
        violations, angles = batch.flush()
        rows["violation"].extend(violations)
        rows["angle"].extend(angles.tolist())


def _columns(fields, scalars, rows, batch):
    """The history's columns from a recorder's parts (``Recorder.history``)."""
    _flush(batch, rows)
    scalars = np.array(scalars, dtype=np.float64).reshape(-1, len(_SCALAR_FIELDS))
    columns = dict(zip(_SCALAR_FIELDS, scalars.T.copy()))
    return {name: columns[name] if name in columns else np.asarray(rows[name])
            for name in fields}


def nonfinite_message(what, it):
    return f"the {what} became NaN or Inf at iteration {it}; returning the last finite point"
