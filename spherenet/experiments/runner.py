"""Grids of runs: problems x strategies x optimizers x seeds, on any executor, resumable."""

import concurrent.futures
import dataclasses
import math
import numbers
import traceback
import warnings

import numpy as np

from .. import _tangent
from ..strategies import ProjectionGeometry, get_strategy
from .executors import (SerialExecutor, deferred_sigint, make_executor, progress_bar,
                        stop_executor, stoppable_run)
from .problems import (OPTIMIZERS, PROBLEMS, accepted_options, build_problem, resolve,
                       resolve_strategy)
from .results import Results, RunStore
from .specs import Budget, OptimizerSpec, ProblemSpec, Run, StrategySpec

__all__ = ["compare", "build_grid", "execute", "GridInterrupted"]


class GridInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`compare`: a ``KeyboardInterrupt`` that says what was kept.

    Attributes
    ----------
    saved : int
        Finished runs of the grid stored in ``directory`` (read back by the
        next ``compare`` with the same ``out``); 0 without ``out``.
    total : int
        Runs in the grid.
    directory : pathlib.Path or None
        The folder of the run files, ``out/runs``.

    Examples
    --------
    >>> from pathlib import Path
    >>> stop = GridInterrupted(3, 8, Path("results") / "runs")
    >>> isinstance(stop, KeyboardInterrupt), str(stop)
    (True, 'interrupted: 3 of 8 runs saved in results/runs')
    """

    def __init__(self, saved, total, directory):
        super().__init__(f"interrupted: {saved} of {total} runs saved"
                         + (f" in {directory}" if directory is not None else ""))
        self.saved, self.total, self.directory = saved, total, directory


def _as_list(values, what):
    single = isinstance(values, (str, ProblemSpec, StrategySpec, OptimizerSpec)) or (
        isinstance(values, tuple) and len(values) == 2 and isinstance(values[1], dict))
    values = [values] if single else list(values)
    if not values:
        raise ValueError(f"give at least one {what}")
    return values


def _as_seeds(seeds):
    if isinstance(seeds, numbers.Integral) and not isinstance(seeds, bool):
        if seeds < 1:
            raise ValueError(f"seeds must be a positive number of seeds or a list of seeds, "
                             f"got {seeds}")
        return list(range(int(seeds)))
    if isinstance(seeds, (bool, np.bool_, str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a positive number of seeds or a list of seeds, got "
                        f"{type(seeds).__name__} {seeds!r}")
    seeds = list(seeds)
    if not seeds or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 0
                        for s in seeds):
        raise ValueError(f"seeds must be non-negative integers, got {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    return [int(s) for s in seeds]


def _as_lrs(lrs):
    """A checked list of step sizes: positive, finite, distinct numbers."""
    if isinstance(lrs, (str, bytes)) or not hasattr(lrs, "__iter__") or np.ndim(lrs) == 0:
        raise TypeError(f"lrs must be a list of step sizes, got {lrs!r}")
    lrs = list(lrs)
    if not lrs:
        raise ValueError("lrs must hold at least one step size, got []")
    for lr in lrs:
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise TypeError(f"lrs must be numbers, got {lr!r} in {lrs}")
        if not (lr > 0 and math.isfinite(lr)):
            raise ValueError(f"lrs must be positive and finite, got {lr!r} in {lrs}")
    lrs = [float(lr) for lr in lrs]
    if len(set(lrs)) != len(lrs):
        raise ValueError(f"lrs must be distinct, got {lrs}")
    return lrs


def _sweep(optimizers, lrs):
    """Each optimizer once per step size, as OptimizerSpec(name, lr=lr, **its options)."""
    swept = []
    for optimizer in optimizers:
        try:
            spec = OptimizerSpec.coerce(optimizer)
        except TypeError as err:
            raise ValueError(str(err)) from None
        if spec.name not in OPTIMIZERS:
            swept.append(spec)  # resolve() names the unknown optimizer
            continue
        if "lr" not in accepted_options(spec.name):
            takes = [name for name in OPTIMIZERS if "lr" in accepted_options(name)]
            raise ValueError(f"optimizer {spec.name!r} takes no step size lr, so lrs cannot "
                             f"sweep it; the optimizers with one are {takes}")
        if "lr" in spec.params:
            raise ValueError(f"optimizer {spec.label} already sets lr; give the step sizes "
                             "either in lrs or in the optimizer, not both")
        swept.extend(spec.with_params(lr=lr) for lr in lrs)
    return swept


def build_grid(problems, strategies, optimizers, seeds, budget=200, lrs=None):
    """The runs of a grid, validated; and the cells left out, with why.

    ``lrs`` (a list of step sizes) makes the step size a grid axis: every
    optimizer runs once per value, labeled e.g. ``rsgd(lr=0.1)``.

    Returns
    -------
    runs : list of Run
        In grid order: problem, strategy, optimizer, seed.
    skipped : list of str
        Cells that cannot run here: a network problem when :mod:`spherenet.nn`
        (or its data) is missing, a solver (cg, sd, trust-regions, lbfgs, bb) on a network.

    Raises
    ------
    ValueError
        An unknown problem, parameter, strategy, optimizer or option (the
        message names the accepted ones), bad seeds or budget, two problems,
        strategies or optimizers with the same label; ``lrs`` not a list of
        distinct positive numbers, or given with an optimizer that takes no
        step size or already sets one.
    TypeError
        ``lrs`` not a list of numbers.
    """
    problems = _as_list(problems, "problem")
    strategies = _as_list(strategies, "strategy")
    optimizers = _as_list(optimizers, "optimizer")
    if lrs is not None:
        optimizers = _sweep(optimizers, _as_lrs(lrs))
    seeds = _as_seeds(seeds)
    budget = Budget.coerce(budget)
    cells = [[[resolve(p, s, o) for o in optimizers] for s in strategies] for p in problems]
    strategies = [resolve_strategy(s) for s in strategies]  # checked by resolve already
    if len(set(strategies)) != len(strategies):
        raise ValueError(f"strategies must be distinct, got {[s.label for s in strategies]}")
    for what, labels in (("problem", [row[0][0][1] for row in cells]),
                         ("strategy", [s.label for s in strategies]),
                         ("optimizer", [r[3] for r in cells[0][0]])):
        if len(set(labels)) != len(labels):
            raise ValueError(f"two {what}s have the same label in {labels}")
    runs, skipped = [], []
    for row in cells:
        problem, label = row[0][0][0], row[0][0][1]
        entry = PROBLEMS[problem.name]
        available, why = entry.available()
        if not available:
            skipped.append(f"{label}: {why}")
            continue
        try:
            build_problem(problem)  # bad parameter values fail here, before any run starts
        except (TypeError, ValueError) as err:
            raise ValueError(f"problem {label}: {err}") from None
        for strategy, by_optimizer in zip(strategies, row):
            for _, _, optimizer, optimizer_label in by_optimizer:
                if optimizer.name not in entry.optimizers:
                    skipped.append(f"{label} with {optimizer_label}: networks are trained by step "
                                   f"rules ({', '.join(entry.optimizers)}), not by a solver")
                    continue
                runs.extend(Run(problem, label, strategy, optimizer, optimizer_label, seed, budget)
                            for seed in seeds)
    skipped = list(dict.fromkeys(skipped))
    return runs, skipped


# --- one run ------------------------------------------------------------------------------------


def _copy(w):
    return tuple(np.array(wi, copy=True) for wi in w) if _tangent.is_tuple(w) else np.array(w, copy=True)


def _distances(problem, iterates):
    """Distance of each iterate, normalized onto the manifold, to the optimal set (NaN: unknown)."""
    # Unchecked: the iterates of penalty/none runs are off the manifold (and
    # may be non-finite when a run diverged; their distance is then NaN).
    geometry = ProjectionGeometry(problem.manifold).unchecked
    distances = []
    for w in iterates:
        try:
            distances.append(problem.distance_to_optimum(geometry.retr(w, geometry.zero_vector(w))))
        except NotImplementedError:
            return [math.nan] * len(iterates)
    return [float(d) for d in distances]


def _minimize(problem, run):
    """An optimization problem: minimize from the seed's starting point, keep every iterate."""
    x0 = problem.x0(np.random.default_rng(run.seed))
    iterates = [_copy(x0)]
    budget = run.budget
    strategy = get_strategy(run.strategy.name, problem.manifold, **run.strategy.params)
    result = problem.minimize(method=run.optimizer.name, strategy=strategy, x0=x0,
                              maxiter=budget.maxiter, gtol=budget.gtol, maxtime=budget.maxtime,
                              callback=lambda w: iterates.append(_copy(w)), **run.optimizer.params)
    history = result.history
    n = len(history["cost"])
    # The callback sees every recorded iterate after the first, except the last one of
    # runs that end inside an iteration (a failed line search, a NaN): that one is result.x.
    iterates = iterates[:n] + [result.x] * (n - len(iterates))
    cost = np.asarray(history["cost"], dtype=float)
    optimum = problem.optimum
    columns = {
        "iteration": list(range(n)),
        "time": history["time"].tolist(),
        "cost": cost.tolist(),
        "grad_norm": history["grad_norm"].tolist(),
        "violation": history["violation"].tolist(),
        "distance": _distances(problem, iterates),
        "gap": (cost - optimum).tolist() if optimum is not None else [math.nan] * n,
        "accuracy": [math.nan] * n,
    }
    return columns, int(result.status), result.message


_WARMED = set()


def _warm_up(problem, run):
    """A throwaway two-iteration run, once per process and (problem, strategy, optimizer):
    the first call of a code path pays for imports and JIT compilation, which would
    otherwise be charged to whichever seed happens to run first."""
    key = (run.problem, run.strategy, run.optimizer)
    if key in _WARMED:
        return
    _WARMED.add(key)
    short = dataclasses.replace(run, budget=Budget(maxiter=2, epochs=1))
    try:
        _run(problem, short)
    except Exception:  # noqa: BLE001 - the real run reports errors
        pass


def _run(problem, run):
    if PROBLEMS[run.problem.name].kind == "network":
        return problem.run(run.strategy.name, run.optimizer.name, run.optimizer.params, run.seed,
                           run.budget, strategy_options=run.strategy.params)
    return _minimize(problem, run)


def execute(run):
    """Run one :class:`~spherenet.experiments.specs.Run`; returns its record, a JSON-able dict.

    A top-level function of plain data, so process pools and dask can ship
    it. The record holds ``key``, ``run`` (the run's description),
    ``status``, ``message`` and ``columns`` (the measures of every iteration);
    if the run raised, ``error`` and ``traceback`` instead of ``columns``.
    The first run of each (problem, strategy, optimizer) in a process is
    preceded by a short throwaway run, so that no seed's time includes
    one-off start-up costs.
    """
    record = {"key": run.key(), "run": run.describe()}
    try:
        problem = build_problem(run.problem)
        with stoppable_run(), np.errstate(all="ignore"), warnings.catch_warnings():
            # Divergent baselines (penalty with a large step, none) overflow on purpose;
            # the run's status and message say so.
            warnings.simplefilter("ignore", RuntimeWarning)
            _warm_up(problem, run)
            columns, status, message = _run(problem, run)
    except Exception as err:  # noqa: BLE001 - reported in the record, the grid goes on
        record["error"] = f"{type(err).__name__}: {err}"
        record["traceback"] = traceback.format_exc()
        return record
    record.update(status=status, message=message, columns=columns)
    return record


# --- the grid -----------------------------------------------------------------------------------


def compare(problems, strategies, optimizers, seeds, budget=200, executor=None, *, out=None,
            progress=None, workers=None, lrs=None):
    """Run every problem x strategy x optimizer x seed and gather the tidy results.

    Every run of a seed starts from the same point, whatever its strategy and
    optimizer: the problem's ``x0`` drawn from ``numpy.random.default_rng(seed)``
    (for networks, the initial weights of ``Sequential(seed=seed)`` and the
    same shuffling), so the differences between strategies are theirs alone.

    Parameters
    ----------
    problems : str, ProblemSpec, (name, params) or a list of them
        Names from :data:`~spherenet.experiments.PROBLEMS`, e.g. ``"rayleigh"``
        or ``ProblemSpec("rayleigh", n=100)``.
    strategies : str, StrategySpec, (name, options) or a list of them
        From ``"riemannian"``, ``"projection"``, ``"reparam"``, ``"penalty"``,
        ``"none"``, with the options of :mod:`spherenet.strategies`: e.g.
        ``StrategySpec("riemannian", retraction="projection")`` or
        ``("penalty", {"mu": 10.0})``. A strategy given by name runs with its
        defaults and keeps its name as label; one with options is labeled
        ``riemannian(retraction='projection')`` in the table, summaries and plots.
    optimizers : str, OptimizerSpec, (name, options) or a list of them
        ``"rsgd"``, ``"radam"`` (full-batch step rules; epochs of mini-batches
        on networks), ``"cg"``, ``"sd"``, ``"trust-regions"``, ``"lbfgs"``, ``"bb"``; e.g.
        ``OptimizerSpec("rsgd", lr=0.1, momentum=0.9)``. Options left out take
        the problem's defaults (a step size that works on it).
    seeds : int or list of int
        A number n of seeds (0, ..., n-1) or the seeds themselves.
    budget : int, dict or Budget, default 200
        Iterations, or :class:`~spherenet.experiments.Budget` fields
        (``maxiter, epochs, maxtime, gtol``).
    executor : None, {"serial", "threads", "processes"} or concurrent.futures.Executor
        Where runs execute; None is a process pool for more than one run (on
        more than one CPU). ``dask.distributed.Client(...).get_executor()``
        runs the grid on a dask cluster. An executor passed in is not shut down.
    out : path, optional
        Directory where each finished run is written at once, atomically, as
        ``out/runs/<run>.json``. Runs already there (same problem, parameters,
        options, seed and budget) are read back, not run again: an
        interrupted grid resumes where it stopped.
    progress : bool, optional
        A progress bar over the grid (tqdm, on stderr); default when stderr is
        a terminal.
    workers : int, optional
        Size of the pool created for ``"processes"`` or ``"threads"``.
    lrs : list of float, optional
        A step-size sweep: every optimizer runs once per step size, labeled
        ``rsgd(lr=0.1)`` and so on (the optimizers must take ``lr`` and not set
        it themselves). :func:`~spherenet.experiments.plot_stability` draws
        iterations to tolerance against the step size.

    Returns
    -------
    Results
        In grid order; ``executed`` and ``reused`` count the runs run now and
        read back; ``skipped`` lists cells that cannot run here; ``failed``
        the runs that raised (with their error).

    Raises
    ------
    ValueError
        Unknown names or options (the message lists the accepted ones); a
        grid with nothing to run.

    Examples
    --------
    >>> from spherenet.experiments import compare
    >>> results = compare("rayleigh", ["riemannian", "projection"], "rsgd", seeds=2,
    ...                   budget=50, executor="serial")
    >>> len(results.runs), results.columns[:5]
    (4, ('problem', 'strategy', 'optimizer', 'seed', 'iteration'))

    The exp map against the projection retraction, and the projection strategy:

    >>> from spherenet.experiments import StrategySpec
    >>> exp_vs_projection = ["riemannian", StrategySpec("riemannian", retraction="projection"),
    ...                      "projection"]
    >>> results = compare("rayleigh", exp_vs_projection, "rsgd", seeds=1, budget=20,
    ...                   executor="serial")
    >>> results.strategies
    ['riemannian', "riemannian(retraction='projection')", 'projection']

    A step-size sweep:

    >>> results = compare("rayleigh", "riemannian", "rsgd", seeds=1, budget=20,
    ...                   executor="serial", lrs=[0.1, 1.0])
    >>> results.optimizers
    ['rsgd(lr=0.1)', 'rsgd(lr=1.0)']
    """
    runs, skipped = build_grid(problems, strategies, optimizers, seeds, budget, lrs)
    for reason in skipped:
        warnings.warn(f"skipped {reason}", stacklevel=2)
    if not runs:
        raise ValueError("nothing to run: " + "; ".join(skipped))
    store = None if out is None else RunStore(out)
    records = [None] * len(runs)
    todo = []
    for i, run in enumerate(runs):
        records[i] = None if store is None else store.load(run)
        if records[i] is None:
            todo.append(i)
    if todo:
        try:
            _run_all(runs, todo, records, store, executor, progress, workers)
        except KeyboardInterrupt:
            # Counted on disk: a run file appears whole (os.replace) or not at all.
            saved = 0 if store is None else sum(store.path(run).exists() for run in runs)
            raise GridInterrupted(saved, len(runs),
                                  None if store is None else store.directory) from None
    failed = [(record["run"], record["error"]) for record in records if "error" in record]
    if failed:
        warnings.warn(f"{len(failed)} of {len(runs)} runs raised; the first: {failed[0][1]} "
                      f"(see Results.failed)", stacklevel=2)
    results = Results.from_records([record for record in records if "columns" in record])
    results.executed, results.reused = len(todo), len(runs) - len(todo)
    results.skipped, results.failed = skipped, failed
    return results


def _run_all(runs, todo, records, store, executor, progress, workers):
    pool, owned = make_executor(executor, len(todo), workers)
    bar = progress_bar(len(todo), progress)
    try:
        if isinstance(pool, SerialExecutor):
            _run_serially(pool, runs, todo, records, store, bar)
        else:
            _run_pooled(pool, owned, runs, todo, records, store, bar)
    finally:
        bar.close()


def _run_serially(pool, runs, todo, records, store, bar):
    # A serial executor runs at submit time, in this thread: Ctrl-C stops the run where
    # it is (a run file being written is removed, see atomic_open), and each run is
    # written (and the bar moves) as soon as it is done.
    for i in todo:
        records[i] = pool.submit(execute, runs[i]).result()
        if store is not None:
            store.save(runs[i], records[i])
        bar.update(1)


def _run_pooled(pool, owned, runs, todo, records, store, bar):
    """Runs on a pool; Ctrl-C is taken at safe points only (see deferred_sigint): the
    runs not started are cancelled, those in flight stopped, the finished ones saved."""
    pending = {}
    with deferred_sigint() as sigint:
        try:
            for i in todo:
                if sigint.pending:
                    raise KeyboardInterrupt
                pending[pool.submit(execute, runs[i])] = i
            while pending:
                if sigint.pending:
                    raise KeyboardInterrupt
                done, _ = concurrent.futures.wait(
                    pending, timeout=0.1 if sigint.installed else None,
                    return_when=concurrent.futures.FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    # RunStopped (a KeyboardInterrupt) if Ctrl-C reached the worker first.
                    records[i] = future.result()
                    if store is not None:
                        store.save(runs[i], records[i])
                    bar.update(1)
        except KeyboardInterrupt:
            stop_executor(pool, pending, owned)
            _save_finished(pending, runs, records, store)
            raise
        except BaseException:
            stop_executor(pool, pending, owned)
            raise
        if owned:
            pool.shutdown(wait=True)
        if sigint.pending:  # Ctrl-C after the last result: every run is saved, but it was pressed
            raise KeyboardInterrupt


def _save_finished(pending, runs, records, store):
    """After Ctrl-C: keep the runs that finished while the pool stopped."""
    for future, i in pending.items():
        if future.done() and not future.cancelled() and future.exception() is None:
            records[i] = future.result()
            if store is not None:
                store.save(runs[i], records[i])
