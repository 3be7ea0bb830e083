"""Step-size sweeps: iterations to tolerance (or divergence) against the step size.

A grid run with ``compare(..., lrs=[...])`` labels its optimizers
``rsgd(lr=0.1)``, ``rsgd(lr=0.1, momentum=0.9)``, ...; :func:`stability`
reads the step size back from the label and gathers, per strategy and
optimizer (its label without the step size), the iterations to tolerance at
each step size; :func:`plot_stability` draws them, one line per strategy,
with the predicted stability limits of :mod:`spherenet.theory` marked.
"""

import math
import re
import warnings

import numpy as np

from .._checks import check_real

from .plots import _colors
from .summary import run_stats

__all__ = ["stability", "plot_stability", "split_lr"]

_LR = re.compile(r"(?<=[(\s,])lr=([^,)]+)")


def split_lr(label):
    """``"rsgd(lr=0.1, momentum=0.9)"`` -> ``(0.1, "rsgd(momentum=0.9)")``; ``(None, label)``
    when the label sets no step size.

    >>> split_lr("rsgd(lr=0.1, momentum=0.9)")
    (0.1, 'rsgd(momentum=0.9)')
    >>> split_lr("rsgd(lr=1.0)"), split_lr("cg")
    ((1.0, 'rsgd'), (None, 'cg'))
    """
    match = _LR.search(label)
    if match is None:
        return None, label
    try:
        lr = float(match.group(1))
    except ValueError:
        return None, label
    rest = label[:match.start()] + label[match.end():]
    rest = rest.replace("(, ", "(").replace(", )", ")").replace(", ,", ",").replace("()", "")
    return lr, rest


def _diverged(columns, measure):
    """Unstable: the measure or cost went non-finite, or the run did not even halve its
    measure, the largest value of its last quarter against that of its first quarter (on a
    sphere the distance is bounded: an unstable run wanders instead of growing)."""
    values, cost = columns[measure], columns["cost"]
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(cost))):
        return True
    quarter = max(values.size // 4, 1)
    return bool(np.max(values[-quarter:]) >= 0.5 * np.max(values[:quarter]))


def stability(results, problem=None, tol=None, measure=None):
    """Iterations to tolerance against step size, per strategy and optimizer.

    Parameters
    ----------
    results : Results
        From ``compare(..., lrs=[...])`` (runs whose optimizer label sets no
        ``lr`` are left out).
    problem : str, optional
        A problem label; required when the results hold several.
    tol, measure : optional
        As for :meth:`Results.summary`.

    Returns
    -------
    list of dict
        One per (strategy, optimizer without lr, lr), sorted by step size:
        ``strategy, optimizer, lr, runs, iterations_median, iterations_min,
        iterations_max`` (``inf`` for runs that never reached the
        tolerance), ``diverged`` (runs that never reached it and are
        unstable: the measure or cost went non-finite, or the largest value of
        the last quarter of the run is at least half the largest of the first
        quarter) and ``reached``.

    Raises
    ------
    ValueError
        No run with a step size in its label; several problems and no
        ``problem``; a negative or non-finite ``tol``.
    TypeError
        A ``tol`` that is not a number (a string, a bool).

    Examples
    --------
    >>> from spherenet.experiments import compare, stability
    >>> results = compare("rayleigh", ["riemannian", "projection"], "rsgd", seeds=2, budget=200,
    ...                   executor="serial", lrs=[0.5, 3.0])
    >>> [(row["strategy"], row["lr"], row["reached"], row["diverged"])
    ...  for row in stability(results)]  # 3.0 is past riemannian's limit 2/L = 1.01
    [('riemannian', 0.5, 2, 0), ('projection', 0.5, 2, 0), ('riemannian', 3.0, 0, 2), ('projection', 3.0, 2, 0)]
    """
    from .problems import check_tol, default_tol
    from .results import TOLERANCE_MEASURES

    problems = results.problems
    if problem is None:
        if len(problems) != 1:
            raise ValueError(f"the results hold the problems {problems}: choose one with problem=")
        problem = problems[0]
    elif problem not in problems:
        raise ValueError(f"no runs of problem {problem!r}; the problems are {problems}")
    measure = measure or results.measure_for(problem)
    if measure not in TOLERANCE_MEASURES:
        raise ValueError(f"measure must be one of {list(TOLERANCE_MEASURES)}, got {measure!r}")
    tol = default_tol(problem) if tol is None else check_tol(tol)
    groups = {}
    for run in results.runs:
        if run["problem"] != problem:
            continue
        lr, optimizer = split_lr(run["optimizer"])
        if lr is not None:
            groups.setdefault((run["strategy"], optimizer, lr), []).append(run)
    if not groups:
        raise ValueError(f"no run of {problem!r} has a step size in its optimizer label: run the "
                         "grid with compare(..., lrs=[...])")
    rows = []
    for (strategy, optimizer, lr), runs in groups.items():
        iterations = np.array([run_stats(run["columns"], measure, tol)["iterations"]
                               for run in runs])
        rows.append({"strategy": strategy, "optimizer": optimizer, "lr": lr, "runs": len(runs),
                     "iterations_median": float(np.median(iterations)),
                     "iterations_min": float(np.min(iterations)),
                     "iterations_max": float(np.max(iterations)),
                     "reached": int(np.sum(np.isfinite(iterations))),
                     "diverged": sum(not math.isfinite(i) and _diverged(run["columns"], measure)
                                     for i, run in zip(iterations, runs))})
    rows.sort(key=lambda row: (row["lr"],))
    return rows


def plot_stability(results, problem=None, limits=None, tol=None, measure=None, figure=None):
    """Iterations to tolerance against step size, a line per strategy (and optimizer).

    Parameters
    ----------
    results : Results
        From ``compare(..., lrs=[...])``.
    problem : str, optional
        Required when the results hold several problems.
    limits : dict, optional
        Strategy label -> predicted largest stable step size (e.g. from
        :func:`spherenet.theory.gd_lr_limit`), drawn as a vertical dashed
        line in the strategy's color; ``inf`` is named in the legend ("no
        limit") and not drawn.
    tol, measure : optional
        As for :meth:`Results.summary`.
    figure : matplotlib Figure, optional

    Returns
    -------
    matplotlib.figure.Figure
        Log-log axes; the median over the seeds with a band from the best to
        the worst seed; a step size where the median run never reached the
        tolerance is drawn on the top line of the plot, with an ``x`` when
        most runs diverged and a triangle when they ran out of iterations.

    Raises
    ------
    ValueError
        As :func:`stability`; ``limits`` with a key that is not a strategy
        of the results.
    TypeError
        ``limits`` not a dict, or a limit that is not a real number.

    Examples
    --------
    >>> from spherenet.experiments import compare, plot_stability, predicted_limits
    >>> strategies = ["riemannian", "projection"]
    >>> results = compare("rayleigh", strategies, "rsgd", seeds=2, budget=100,
    ...                   executor="serial", lrs=[0.5, 3.0])
    >>> figure = plot_stability(results, limits=predicted_limits("rayleigh", strategies))
    >>> figure.axes[0].get_xlabel()
    'step size lr'
    """
    from matplotlib.figure import Figure

    rows = stability(results, problem, tol, measure)
    if limits is not None:
        if not isinstance(limits, dict):
            raise TypeError(f"limits must be a dict strategy label -> step size, got "
                            f"{type(limits).__name__}")
        unknown = [key for key in limits if key not in results.strategies]
        if unknown:
            # A misspelled label would be drawn in gray, under a name no line has.
            raise ValueError(f"limits has keys {unknown} that are not strategies of the "
                             f"results {results.strategies}")
        limits = {key: check_real(value, f"limits[{key!r}]") for key, value in limits.items()}
    figure = figure or Figure(figsize=(8, 5), layout="constrained")
    ax = figure.subplots()
    groups = {}
    for row in rows:
        groups.setdefault((row["strategy"], row["optimizer"]), []).append(row)
    optimizers = list(dict.fromkeys(optimizer for _, optimizer in groups))
    colors = _colors(dict.fromkeys(strategy for strategy, _ in groups))
    finite = [row[k] for row in rows for k in ("iterations_min", "iterations_max")
              if math.isfinite(row[k])]
    top = 2.0 * max(finite + [1.0])
    styles = ("-", "--", ":", "-.")
    for (strategy, optimizer), group in groups.items():
        lrs = np.array([row["lr"] for row in group])
        label = strategy if len(optimizers) == 1 else f"{optimizer} / {strategy}"
        style = dict(color=colors[strategy], linestyle=styles[optimizers.index(optimizer) % 4])
        median = np.array([row["iterations_median"] for row in group])
        low = np.array([row["iterations_min"] for row in group])
        high = np.array([row["iterations_max"] for row in group])
        shown = np.where(np.isfinite(median), median, top)
        ax.plot(lrs, shown, marker="o", markersize=4, label=label, **style)
        ax.fill_between(lrs, np.where(np.isfinite(low), low, top),
                        np.where(np.isfinite(high), high, top), color=style["color"], alpha=0.15,
                        linewidth=0)
        never = ~np.isfinite(median)
        diverged = np.array([2 * row["diverged"] > row["runs"] for row in group])
        for mask, marker in ((never & diverged, "x"), (never & ~diverged, "^")):
            if mask.any():
                ax.plot(lrs[mask], np.full(mask.sum(), top), linestyle="none", marker=marker,
                        markersize=9, color=style["color"])
    for strategy, limit in (limits or {}).items():
        color = colors.get(strategy, "gray")
        if math.isfinite(limit):
            ax.axvline(limit, color=color, linestyle="--", linewidth=1.2,
                       label=f"{strategy}: predicted limit {limit:.3g}")
        else:
            ax.plot([], [], color=color, linestyle=":",
                    label=f"{strategy}: no predicted limit")
    ax.axhline(top, color="gray", linewidth=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step size lr")
    ax.set_ylabel("iterations to tolerance (median, band over seeds)")
    ax.grid(True, which="major", alpha=0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        ax.legend(fontsize="small")
    problem = problem or results.problems[0]
    ax.set_title(f"{problem}: top line = never reached (x: diverged, triangle: out of budget)",
                 fontsize="medium")
    return figure
