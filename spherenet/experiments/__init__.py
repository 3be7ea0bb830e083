"""Experiments: grids of runs comparing how a unit-norm constraint is kept.

:func:`compare` runs problems x strategies x optimizers x seeds on any
``concurrent.futures.Executor`` (a process pool by default, a
``dask.distributed`` client's executor for a cluster), writes each finished
run at once so an interrupted grid resumes, and returns tidy
:class:`Results`: one row per run per iteration, with ``to_pandas()``,
``to_csv()``, ``summary()`` and ``plot()``.

Problems (:data:`PROBLEMS`) are the classic problems of
:mod:`spherenet.problems` with their known answers, and network training
(the seed model on two moons; digits) through :mod:`spherenet.nn`.

>>> from spherenet.experiments import compare
>>> results = compare("rayleigh", ["riemannian", "projection"], "rsgd", seeds=3, budget=200,
...                   executor="serial")
>>> summary = results.summary()  # tolerance: distance 1e-6 to the leading eigenvector
>>> [(row["strategy"], row["reached"]) for row in summary]
[('riemannian', 3), ('projection', 3)]
>>> a, b = (row["iterations_median"] for row in summary)
>>> bool(a < b)  # normalize-after-step takes shorter steps here
True

A strategy with options is a :class:`StrategySpec` (or a pair ``(name, {options})``),
labeled by its options in the table, e.g. the exp map against the projection retraction:
``compare("rayleigh", ["riemannian", StrategySpec("riemannian", retraction="projection")],
"rsgd", seeds=3)``.
"""

from .executors import EXECUTORS, SerialExecutor, make_executor
from .plots import plot_problem, plot_results
from .problems import OPTIMIZERS, PROBLEMS, STRATEGY_NAMES
from .results import COLUMNS, Results, RunStore
from .summary import Summary
from .runner import GridInterrupted, build_grid, compare, execute
from .specs import Budget, OptimizerSpec, ProblemSpec, Run, StrategySpec
from .rates import RateFit, fit_rate, paired_comparison
from .stability import plot_stability, stability
from .predict import predicted_limits, predicted_rates, rate_table

__all__ = [
    "compare",
    "build_grid",
    "execute",
    "GridInterrupted",
    "Results",
    "Summary",
    "RunStore",
    "COLUMNS",
    "PROBLEMS",
    "OPTIMIZERS",
    "STRATEGY_NAMES",
    "ProblemSpec",
    "StrategySpec",
    "OptimizerSpec",
    "Budget",
    "Run",
    "SerialExecutor",
    "make_executor",
    "EXECUTORS",
    "plot_results",
    "plot_problem",
    "fit_rate",
    "RateFit",
    "paired_comparison",
    "stability",
    "plot_stability",
    "predicted_rates",
    "predicted_limits",
    "rate_table",
]
