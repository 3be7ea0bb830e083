"""Convergence plots of a grid: one figure per problem, a line per strategy label (and optimizer).

Each figure has three panels: the problem's measure (distance to the optimum
where known, else the cost gap, else the cost) against iterations and against
time, and the constraint violation against iterations (the largest so far),
on log scales. A line
is the median over the seeds and its band spans the seeds (min to max). A run
that stopped early (it converged) keeps its last value. Uses matplotlib's
object API (no pyplot): no global state, safe in threads and scripts.
"""

import warnings
from pathlib import Path

import numpy as np

from .._atomic import atomic_write
from ..strategies import STRATEGIES
from .results import slug

__all__ = ["plot_results", "plot_problem"]

#: Values at or below this are drawn at it on log scales (exact zeros, rounding).
FLOOR = 1e-17
_LABELS = {
    "distance": "distance to the optimum (rad)",
    "gap": "cost - optimal cost",
    "grad_norm": "gradient norm",
    "cost": "cost",
}
_STYLES = ("-", "--", ":", "-.")


def _colors(strategies):
    """A color per strategy label: a plain name keeps its own color in every figure
    (riemannian C0, projection C1, ...); a label with options, such as
    ``riemannian(retraction='projection')``, takes the next color no plain name uses."""
    names = list(STRATEGIES)
    spare = [f"C{i}" for i in range(10) if i >= len(names) and i != 7] + ["C7"]
    colors, extra = {}, 0
    for strategy in strategies:
        if strategy in names:
            colors[strategy] = f"C{names.index(strategy)}"
        else:
            colors[strategy] = spare[extra % len(spare)]
            extra += 1
    return colors


def _padded(runs, name):
    """Runs x iterations, each run held at its last value after it stopped."""
    length = max(len(run["columns"][name]) for run in runs)
    out = np.empty((len(runs), length))
    for row, run in zip(out, runs):
        values = run["columns"][name]
        row[:len(values)] = values
        row[len(values):] = values[-1]
    return out


def _on_time_grid(runs, name, points=256):
    """Runs x times on a common grid: each run's value is its last iterate's by then."""
    start = min(run["columns"]["time"][0] for run in runs)
    stop = max(run["columns"]["time"][-1] for run in runs)
    grid = np.linspace(start, max(stop, start + 1e-9), points)
    out = np.full((len(runs), points), np.nan)
    for row, run in zip(out, runs):
        index = np.searchsorted(run["columns"]["time"], grid, side="right") - 1
        known = index >= 0
        row[known] = run["columns"][name][index[known]]
    return grid, out


def _band(ax, x, values, log, **style):
    if log:
        values = np.maximum(np.abs(values), FLOOR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (before a run starts)
        median = np.nanmedian(values, axis=0)
        low, high = np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    (line,) = ax.plot(x, median, **style)
    if values.shape[0] > 1:
        ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15, linewidth=0)
    return line


def _predicted_line(ax, steps, median, rate, style):
    """The line v_s rate^(k - s) from the start s of the median curve's fit window."""
    from .rates import fit_rate

    # Runs that stopped are held at their last value: the flat tail is not convergence.
    moving = np.flatnonzero(np.diff(median) != 0)
    median = median[:moving[-1] + 2] if moving.size else median[:1]
    fit = fit_rate(median)
    stop = fit.stop if fit.stop > fit.start else median.size
    start = fit.start if fit.stop > fit.start else 0
    k = steps[start:stop]
    if k.size < 2 or not 0 < rate < 1:
        return  # a rate >= 1 predicts no convergence: nothing to draw over the curve
    ax.plot(k, median[start] * rate ** (k - k[0]), color=style["color"], linestyle=(0, (1, 1.5)),
            linewidth=2.4, alpha=0.8, label=f"predicted {rate:.3g}")


def plot_problem(results, problem, measure=None, figure=None, predicted=None):
    """Draw the three panels of ``problem`` on a matplotlib Figure (a new one by default).

    ``predicted`` maps a strategy label, or a pair (strategy, optimizer), to a
    predicted rate per iteration (:mod:`spherenet.theory`); each is drawn as
    a dotted line over the measured median, from the start of the window
    where :func:`~spherenet.experiments.rates.fit_rate` fits the measured rate
    (a rate >= 1, no local convergence, is not drawn).
    """
    from matplotlib.figure import Figure

    runs = [run for run in results.runs if run["problem"] == problem]
    if not runs:
        raise ValueError(f"no runs of problem {problem!r}; the problems are {results.problems}")
    measure = measure or results.measure_for(problem)
    measured = np.concatenate([run["columns"][measure] for run in runs])
    log = measure != "cost" or bool(np.all(measured[np.isfinite(measured)] > 0))
    figure = figure or Figure(figsize=(16, 4.8), layout="constrained")
    ax_iter, ax_time, ax_violation = figure.subplots(1, 3)
    groups = {}
    for run in runs:
        groups.setdefault((run["strategy"], run["optimizer"]), []).append(run)
    optimizers = list(dict.fromkeys(optimizer for _, optimizer in groups))
    colors = _colors(dict.fromkeys(strategy for strategy, _ in groups))
    seeds = sorted({len(g) for g in groups.values()})
    for (strategy, optimizer), group in groups.items():
        label = strategy if len(optimizers) == 1 else f"{optimizer} / {strategy}"
        style = dict(color=colors[strategy], linestyle=_STYLES[optimizers.index(optimizer) % 4],
                     label=label, linewidth=1.6)
        steps = np.arange(max(len(run["columns"]["iteration"]) for run in group))
        _band(ax_iter, steps, _padded(group, measure), log, **style)
        rate = (predicted or {}).get((strategy, optimizer), (predicted or {}).get(strategy))
        if rate is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                median = np.nanmedian(np.abs(_padded(group, measure)), axis=0)
            _predicted_line(ax_iter, steps, median, rate, style)
        _band(ax_time, *_on_time_grid(group, measure), log, **style)
        # The largest violation so far: drift shows, rounding noise at 1e-16 does not flicker.
        worst = np.fmax.accumulate(_padded(group, "violation"), axis=1)
        _band(ax_violation, steps, worst, True, **style)
    is_network = all(np.isnan(run["columns"]["grad_norm"]).all() for run in runs)
    unit = "epoch" if is_network else "iteration"
    for ax, xlabel, ylabel in (
        (ax_iter, unit, _LABELS[measure]),
        (ax_time, "time (s)" + (", training only" if is_network else ""), _LABELS[measure]),
        (ax_violation, unit, "violation max | ||w|| - 1 |, largest so far"),
    ):
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="major", alpha=0.3)
        if log or ax is ax_violation:
            ax.set_yscale("log")
    ax_iter.legend(fontsize="small")
    count = "/".join(map(str, seeds))
    figure.suptitle(f"{problem}: median over {count} seed{'s' if seeds != [1] else ''}, "
                    f"band from the best to the worst seed (log scales: values <= {FLOOR:.0e} "
                    "drawn at it)")
    return figure


def plot_results(results, directory, formats=("png", "svg"), measure=None, predicted=None):
    """Save one figure per problem under ``directory`` as ``<problem>.<format>``.

    Parameters
    ----------
    results : Results
    directory : path
        Created if needed.
    formats : sequence of str, default ("png", "svg")
    measure : str, optional
        ``"distance"``, ``"gap"``, ``"grad_norm"`` or ``"cost"``; default
        :meth:`Results.measure_for` each problem.
    predicted : dict, optional
        Problem label -> the ``predicted`` rates of :func:`plot_problem`.

    Returns
    -------
    list of pathlib.Path
        The files written, problem by problem, in the order of ``formats``.

    Raises
    ------
    ImportError
        Without matplotlib (``pip install spherenet[plot]``).
    """
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError("plots need matplotlib: pip install spherenet[plot]") from err
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for problem in results.problems:
        figure = plot_problem(results, problem, measure, predicted=(predicted or {}).get(problem))
        for fmt in formats:
            path = directory / f"{slug(problem)}.{fmt}"
            # Never a half-written figure under the final name, even with two writers.
            atomic_write(path, lambda handle: figure.savefig(handle, format=fmt, dpi=110))
            paths.append(path)
    return paths
