r"""Stochastic methods for finite-sum costs: mini-batch step rules, R-SVRG and R-SRG.

These are the loops behind :func:`spherenet.minimize` called with ``data=``.
The cost is :math:`f(x) = \frac1n\sum_{i=1}^n f_i(x)`, given as
``cost(x, batch)`` (the mean of the terms over the samples of ``batch``; see
:mod:`spherenet.optim.finite_sum`), and every method works in the geometry
of the chosen strategy, so that the same method runs under each.

One *iteration* is one step, computed from one mini-batch drawn by a
:class:`~spherenet.optim.finite_sum.BatchSampler` (with R-SRG, the first
step of an epoch uses the full gradient instead). Step sizes given as a
schedule ``lr(k)`` are called with the iteration count k = 0, 1, 2, ...
(over all epochs; ``step_decay(lr, every=iterations_per_epoch)`` decays once
an epoch).

* ``rsgd``, ``radam`` (or a :class:`~spherenet.optim.StepRule`): the step
  rule fed with the Euclidean gradient of the mini-batch cost. An epoch is
  ``ceil(n / batch_size)`` iterations: one pass over the data without
  replacement, as many samples with replacement.
* ``rsvrg`` (:class:`RSVRG`) and ``rsrg`` (:class:`RSRG`): an epoch is one
  outer iteration: a full gradient, then ``inner`` mini-batch steps (default
  ``ceil(n / batch_size)``, one pass).
"""

import math
import numbers

import numpy as np

from .. import _tangent
from ..strategies import Strategy
from ._loop import History, Recorder
from ._problem import Problem, check_cost_value
from ._solver import evaluate, start
from .finite_sum import BatchSampler, num_samples, take
from .schedules import resolve_lr, step_size

__all__ = ["RSVRG", "RSRG", "EPOCH_FIELDS"]

#: Columns of ``OptimizeResult.epoch_history``.
EPOCH_FIELDS = ("epoch", "iteration", "cost", "grad_norm", "samples", "time")


def _check_inner(inner):
    if inner is None:
        return None
    if isinstance(inner, bool) or not isinstance(inner, numbers.Integral) or inner < 1:
        raise ValueError(f"inner must be an int >= 1 or None (one pass over the data), "
                         f"got {inner!r}")
    return int(inner)


class VarianceReduced:
    """Base class of the variance-reduced methods: configuration only (``lr``, ``inner``)."""

    def __init__(self, lr=0.01, inner=None):
        self._schedule = resolve_lr(lr)
        self.lr = lr
        self.inner = _check_inner(inner)

    def lr_at(self, step):
        return step_size(self._schedule, step)


class RSVRG(VarianceReduced):
    r"""Riemannian stochastic variance-reduced gradient (Zhang, Reddi & Sra 2016; Sato, Kasai & Mishra 2019).

    Every epoch (outer iteration) fixes a snapshot :math:`\tilde x` with its
    full Riemannian gradient :math:`\tilde g = \operatorname{grad} f(\tilde
    x)`; then each of ``inner`` iterations draws a mini-batch B and steps

    .. math::

       v_t = \operatorname{grad} f_B(x_t) - \mathcal T_{\tilde x \to x_t}
       \big(\operatorname{grad} f_B(\tilde x) - \tilde g\big), \qquad
       x_{t+1} = R_{x_t}(-\eta_k v_t),

    with the geometry's vector transport :math:`\mathcal T` (``transp``) and
    retraction R. :math:`v_t` is an unbiased estimate of
    :math:`\operatorname{grad} f(x_t)` whose variance vanishes as
    :math:`x_t` and :math:`\tilde x` approach a minimizer, so that a fixed
    step converges linearly (Zhang et al., Theorem 1, for geodesically
    strongly convex f; Sato et al. with retraction and vector transport).

    Parameters
    ----------
    lr : float or callable, default 0.01
        Step size, or a schedule ``lr(k)`` of the iteration count k.
    inner : int, optional
        Iterations per epoch (m); default ``ceil(n / batch_size)``, one pass
        over the data. An epoch then evaluates about 3n sample gradients
        (n for the snapshot, two per sample of each batch).
    snapshot : {"last", "random"}, default "last"
        The next snapshot: the last iterate of the epoch (option I of
        Johnson & Zhang 2013 and of Sato, Kasai & Mishra; the full gradient
        of the epoch's end then serves as the next snapshot's), or an
        iterate :math:`x_t` with t drawn uniformly from {0, ..., m-1} at the
        start of the epoch (``rng.integers(m)``, before the epoch's batches;
        option II, for which the convergence theorems are stated), its full
        gradient evaluated when it is reached. Either way the iterates go on
        from the last one, as in the authors' code.

    References
    ----------
    H. Zhang, S. J. Reddi, S. Sra, "Riemannian SVRG: fast stochastic
    optimization on Riemannian manifolds", NeurIPS 2016. H. Sato, H. Kasai,
    B. Mishra, "Riemannian stochastic variance reduced gradient algorithm
    with retraction and vector transport", SIAM J. Optim. 29 (2019).
    R. Johnson, T. Zhang, "Accelerating stochastic gradient descent using
    predictive variance reduction", NeurIPS 2013.

    Examples
    --------
    The leading eigenvector of a sample covariance, from its samples:

    >>> import numpy as np
    >>> import autograd.numpy as anp
    >>> from spherenet import Sphere, minimize
    >>> X = np.random.default_rng(0).standard_normal((200, 3)) * [3.0, 1.0, 0.5]
    >>> cost = lambda w, batch: -0.5 * anp.mean(anp.dot(batch, w) ** 2)
    >>> res = minimize(cost, Sphere(3), method="rsvrg", data=X, batch_size=10, lr=0.05,
    ...                epochs=30, rng=1)
    >>> top = np.linalg.eigh(X.T @ X / 200)[1][:, -1]
    >>> bool(abs(abs(res.x @ top) - 1.0) < 1e-10), res.status
    (True, 0)
    """

    def __init__(self, lr=0.01, inner=None, snapshot="last"):
        super().__init__(lr, inner)
        if snapshot not in ("last", "random"):
            raise ValueError(f"snapshot must be 'last' or 'random', got {snapshot!r}")
        self.snapshot = snapshot

    def __repr__(self):
        return f"RSVRG(lr={self.lr!r}, inner={self.inner}, snapshot={self.snapshot!r})"


class RSRG(VarianceReduced):
    r"""Riemannian stochastic recursive gradient, R-SRG (Kasai, Sato & Mishra 2018).

    The Riemannian SARAH: every epoch starts with a full-gradient step from
    :math:`x_0`, :math:`v_0 = \operatorname{grad} f(x_0)`,
    :math:`x_1 = R_{x_0}(-\eta v_0)`; then each of ``inner`` iterations draws
    a mini-batch B and updates the estimate recursively,

    .. math::

       v_t = \operatorname{grad} f_B(x_t) - \mathcal T_{x_{t-1} \to x_t}
       \big(\operatorname{grad} f_B(x_{t-1}) - v_{t-1}\big), \qquad
       x_{t+1} = R_{x_t}(-\eta_k v_t),

    with the geometry's vector transport. The next epoch starts from the last
    iterate. An epoch is ``1 + inner`` iterations.

    Parameters
    ----------
    lr : float or callable, default 0.01
        Step size, or a schedule ``lr(k)`` of the iteration count k.
    inner : int, optional
        Mini-batch iterations per epoch after the full-gradient step;
        default ``ceil(n / batch_size)``, one pass over the data.

    References
    ----------
    H. Kasai, H. Sato, B. Mishra, "Riemannian stochastic recursive gradient
    algorithm", ICML 2018 (Algorithm 1). L. M. Nguyen, J. Liu, K. Scheinberg,
    M. Takac, "SARAH: a novel method for machine learning problems using
    stochastic recursive gradient", ICML 2017.

    Examples
    --------
    >>> import numpy as np
    >>> import autograd.numpy as anp
    >>> from spherenet import Sphere, minimize
    >>> X = np.random.default_rng(0).standard_normal((200, 3)) * [3.0, 1.0, 0.5]
    >>> cost = lambda w, batch: -0.5 * anp.mean(anp.dot(batch, w) ** 2)
    >>> res = minimize(cost, Sphere(3), method="rsrg", data=X, batch_size=10, lr=0.05,
    ...                epochs=30, rng=1)
    >>> res.success, len(res.epoch_history["cost"]) - 1 == res.nepoch
    (True, True)
    """

    def __repr__(self):
        return f"RSRG(lr={self.lr!r}, inner={self.inner})"


# -- the finite-sum cost, a batch at a time ---------------------------------------------


class FiniteSumCost:
    """``cost(x, batch)`` (and ``grad(x, batch)``) through a strategy, on a chosen batch.

    One :class:`~spherenet.optim._problem.Problem` serves every batch: its
    cost reads the current batch, set by :meth:`evaluate`; it counts the
    evaluations (``nfev``), checks the values and casts gradients to the
    point's dtype as for full-batch runs. ``nsamples`` counts the sample
    gradients evaluated (n for a full gradient).
    """

    def __init__(self, cost, grad, strategy, data):
        self.data = data
        self.n = num_samples(data)
        self.batch = data
        self.nsamples = 0

        def batch_cost(w):
            return cost(w, self.batch)

        strategy_cost = strategy.cost(batch_cost)
        if strategy_cost is not batch_cost:
            strategy_cost = strategy.cost(lambda w: check_cost_value(cost(w, self.batch)))
        egrad = None
        if grad is not None:
            egrad = lambda z: strategy.egrad(lambda w: grad(w, self.batch), z)  # noqa: E731
        measure = None if type(strategy).measure is Strategy.measure else strategy.measure
        self.problem = Problem(strategy_cost, strategy.geometry, egrad, None, measure=measure)

    def evaluate(self, x, idx=None):
        """``(f, egrad, rgrad, measure)`` at x on the samples idx (None: all), or None
        when a value is not finite."""
        if idx is None:
            self.batch, size = self.data, self.n
        else:
            self.batch, size = take(self.data, idx), len(idx)
        self.nsamples += size
        try:
            return evaluate(self.problem, x)
        finally:
            self.batch = self.data


# -- the run: recording and stopping, shared by the methods -------------------------------


class _Run:
    def __init__(self, fs, stopper, recorder, sampler, epochs, full_cost):
        self.fs = fs
        self.problem = fs.problem
        self.geometry = fs.problem.geometry
        self.stopper = stopper
        self.recorder = recorder
        self.sampler = sampler
        self.epochs = epochs
        self.full_cost = full_cost
        self.it = 0
        self.epoch = 0
        self.rows = {name: [] for name in EPOCH_FIELDS}
        self.full_f = None  # the last full cost, for ftol
        self.full_at = None  # (x, (f, egrad, rgrad, measure)) at the last epoch's end
        self.epoch_start = None  # the iterate at the last epoch's end, for xtol

    def _epoch_row(self, f, grad_norm):
        for name, value in zip(EPOCH_FIELDS, (self.epoch, self.it, f, grad_norm,
                                              self.fs.nsamples, self.recorder.elapsed())):
            self.rows[name].append(value)

    def begin(self, x0):
        """Full cost and gradient at x0 (ValueError if not finite), row 0 of both histories."""
        self.fs.nsamples += self.fs.n
        try:
            f, egrad, rgrad, grad_norm = start(self.problem, self.recorder, x0)
        except Exception as err:
            # Samples on the wrong axis (transposed, 1-D) fail inside the user's cost, with
            # NumPy's words: say what the cost was called with.
            if hasattr(err, "add_note"):  # Python >= 3.11
                data = self.fs.data
                shape = (tuple(np.shape(a) for a in data) if isinstance(data, tuple)
                         else np.shape(data))
                err.add_note(
                    f"raised by cost(x0, data): x0 of shape {_tangent.shape_of(x0)}, data of "
                    f"shape {shape} (samples on the leading axis: {self.fs.n} samples); "
                    "cost(x, batch) must take a batch of rows of data")
            raise
        self.full_f = f
        self.full_at = (x0, (f, egrad, rgrad, grad_norm))
        self.epoch_start = x0
        self._epoch_row(f, grad_norm)
        stop = self.stopper.check(0, self.recorder.elapsed(), grad_norm, None, f, None, x0)
        if stop is None and self.epochs is not None and self.epochs <= 0:
            stop = 1, f"maximum number of epochs ({self.epochs}) reached"
        return self.finish(x0, *stop, known=(f, grad_norm)) if stop else None

    def lr(self, method):
        return method.lr_at(self.it)

    def batch(self, x, idx):
        return self.fs.evaluate(x, idx)

    def failed(self, x, what):
        """The unsuccessful result at x, after the evaluations of iteration it + 1 failed."""
        self.it += 1
        self.recorder.record(self.it, x, math.nan, math.nan, math.nan)
        message = (f"the {what} became NaN or Inf at iteration {self.it}; returning the last "
                   "finite point")
        return self.finish(x, -1, message)

    def after_step(self, x, new_x, f_batch, grad_norm_batch, epoch_end, need_full):
        """Record the step x -> new_x; at an epoch's end evaluate the full cost (when asked,
        or ``need_full``) and test it. Returns the result when the run stops, else None."""
        self.it += 1
        if not _tangent.all_finite(new_x):
            self.it -= 1
            return self.failed(x, "point")
        geometry, recorder = self.geometry, self.recorder
        step = geometry.dist(x, new_x)
        taken = geometry.inverse_retr(x, new_x) if recorder.telemetry else None
        recorder.record(self.it, new_x, f_batch, grad_norm_batch, step, taken)
        # No xtol test here: a mini-batch step's length says nothing of stationarity
        # (the estimates of R-SRG may nearly vanish within an epoch); see _epoch_check.
        it_stop = self.stopper.check(self.it, recorder.elapsed(), math.inf, None, None, None,
                                     new_x)
        epoch_stop, known = None, None
        if epoch_end:
            self.epoch += 1
            f = grad_norm = math.nan
            if self.full_cost or need_full:
                full = self.fs.evaluate(new_x)
                if full is None:
                    self._epoch_row(math.nan, math.nan)  # the epoch counts: its row, NaN
                    message = (f"the full cost or gradient became NaN or Inf at the end of "
                               f"epoch {self.epoch} (iteration {self.it})")
                    return self.finish(new_x, -1, message, known=(math.nan, math.nan))
                f, grad_norm = full[0], full[3]
                self.full_at = (new_x, full)
                known = (f, grad_norm)
            self._epoch_row(f, grad_norm)
            moved = geometry.dist(self.epoch_start, new_x)
            self.epoch_start = new_x
            epoch_stop = self._epoch_check(f, grad_norm, moved)
        stop = epoch_stop if epoch_stop and epoch_stop[0] in (0, 3) else (it_stop or epoch_stop)
        return self.finish(new_x, *stop, known=known) if stop else None

    def _epoch_check(self, f, grad_norm, moved):
        stopper = self.stopper
        f_old, self.full_f = self.full_f, (f if math.isfinite(f) else self.full_f)
        if grad_norm <= stopper.gtol:
            return 0, f"full gradient norm {grad_norm:.3e} <= gtol {stopper.gtol:.1e}"
        if stopper.ftol > 0 and f_old is not None and math.isfinite(f):
            if abs(f_old - f) <= stopper.ftol * max(abs(f_old), abs(f), 1.0):
                return 3, f"relative decrease of the full cost over an epoch <= ftol {stopper.ftol:.1e}"
        if self.epochs is not None and self.epoch >= self.epochs:
            return 1, f"maximum number of epochs ({self.epochs}) reached"
        if moved <= stopper.xtol:
            return 4, f"distance moved over an epoch {moved:.3e} <= xtol {stopper.xtol:.1e}"
        return None

    def finish(self, x, status, message, known=None):
        """The result at x: ``fun`` and ``grad_norm`` are the full cost and gradient norm
        there (evaluated now unless ``known``)."""
        if known is None:
            full = self.fs.evaluate(x)
            known = (math.nan, math.nan) if full is None else (full[0], full[3])
        result = self.recorder.result(x, known[0], known[1], self.it, status, message)
        result.epoch_history = History({name: np.asarray(values, dtype=np.float64)
                                        for name, values in self.rows.items()})
        result.nepoch = self.epoch
        result.nsamples = self.fs.nsamples
        return result


# -- the methods ---------------------------------------------------------------------------


def _run_rule(run, x, rule):
    geometry, sampler = run.geometry, run.sampler
    state = rule.init(geometry, x)
    per_epoch = sampler.batches_per_epoch
    while True:
        new = run.batch(x, sampler.next())
        if new is None:
            return run.failed(x, "mini-batch cost or gradient")
        f, egrad, _, grad_norm = new
        new_x, state = rule.step(geometry, x, egrad, state)
        done = run.after_step(x, new_x, f, grad_norm, (run.it + 1) % per_epoch == 0, False)
        if done is not None:
            return done
        x = new_x


def _run_rsvrg(run, x, method):
    geometry, sampler = run.geometry, run.sampler
    m = method.inner or sampler.batches_per_epoch
    snap_x, (_, _, snap_g, _) = run.full_at
    while True:
        keep = int(sampler.rng.integers(m)) if method.snapshot == "random" else None
        for t in range(m):
            if t == keep:
                kept = x
            idx = sampler.next()
            new, at_snapshot = run.batch(x, idx), run.batch(snap_x, idx)
            if new is None or at_snapshot is None:
                return run.failed(x, "mini-batch cost or gradient")
            correction = _tangent.lincomb(1.0, at_snapshot[2], -1.0, snap_g)
            v = _tangent.lincomb(1.0, new[2], -1.0, geometry.transp(snap_x, x, correction))
            new_x = geometry.retr(x, _tangent.lincomb(-run.lr(method), v))
            done = run.after_step(x, new_x, new[0], geometry.norm(x, v), t == m - 1,
                                  method.snapshot == "last")
            if done is not None:
                return done
            x = new_x
        if keep is None:
            snap_x, snap_g = run.full_at[0], run.full_at[1][2]
        else:
            full = run.fs.evaluate(kept)
            if full is None:
                return run.finish(x, -1, "the full cost or gradient became NaN or Inf at the "
                                  f"snapshot of epoch {run.epoch}")
            snap_x, snap_g = kept, full[2]


def _run_rsrg(run, x, method):
    geometry, sampler = run.geometry, run.sampler
    inner = method.inner or sampler.batches_per_epoch
    f, _, v, _ = run.full_at[1]
    while True:
        # The full-gradient step of the epoch.
        new_x = geometry.retr(x, _tangent.lincomb(-run.lr(method), v))
        done = run.after_step(x, new_x, f, geometry.norm(x, v), False, True)
        if done is not None:
            return done
        x_prev, x = x, new_x
        for t in range(inner):
            idx = sampler.next()
            new, before = run.batch(x, idx), run.batch(x_prev, idx)
            if new is None or before is None:
                return run.failed(x, "mini-batch cost or gradient")
            correction = _tangent.lincomb(1.0, before[2], -1.0, v)
            v = _tangent.lincomb(1.0, new[2], -1.0, geometry.transp(x_prev, x, correction))
            new_x = geometry.retr(x, _tangent.lincomb(-run.lr(method), v))
            done = run.after_step(x, new_x, new[0], geometry.norm(x, v), t == inner - 1, True)
            if done is not None:
                return done
            x_prev, x = x, new_x
        f, _, v, _ = run.full_at[1]


def run_finite_sum(cost, grad, strategy, data, z0, stopper, method, rng, batch_size,
                   replace=False, epochs=None, full_cost=True, verbose=0, telemetry=False,
                   ctol=1e-6):
    """Run a stochastic method on the finite sum; the loop of ``minimize(..., data=...)``.

    ``data`` is checked (:func:`~spherenet.optim.finite_sum.as_data`), z0 is
    the strategy's variable, ``method`` a StepRule, :class:`RSVRG` or
    :class:`RSRG`, ``rng`` the sampler's generator.
    """
    fs = FiniteSumCost(cost, grad, strategy, data)
    sampler = BatchSampler(fs.n, batch_size, replace, rng)
    recorder = Recorder(fs.problem, strategy, verbose, telemetry, ctol)
    run = _Run(fs, stopper, recorder, sampler, epochs, bool(full_cost))
    done = run.begin(z0)
    if done is not None:
        return done
    if isinstance(method, RSVRG):
        return _run_rsvrg(run, z0, method)
    if isinstance(method, RSRG):
        return _run_rsrg(run, z0, method)
    return _run_rule(run, z0, method)
