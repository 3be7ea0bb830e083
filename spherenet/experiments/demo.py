"""``spherenet demo``: retraction against projection, on a problem with a known answer and on
the seed network, in a few seconds.

:func:`run_demo` runs two small grids serially (timings stay honest and
there is no process start-up) and returns the lines to print and the plots
it wrote; the command line only prints them.
"""

import time
import warnings

from .problems import PROBLEMS
from .summary import format_table, number_text, spread_text
from .runner import compare
from .specs import Budget

__all__ = ["run_demo", "demo_grids", "demo_plots", "DEMO_STRATEGIES", "DEMO_OPTIMIZERS"]

DEMO_STRATEGIES = ("riemannian", "projection", "reparam")
DEMO_OPTIMIZERS = ("rsgd", "radam", "cg")
NETWORK_OPTIMIZERS = ("rsgd", "radam")
RAYLEIGH_ITERATIONS = 300

_STRATEGY_LINES = (
    "  riemannian  step along the sphere: Riemannian gradient, exp map, transported momentum",
    "  projection  plain Euclidean step, then w <- w / ||w||   (what Keras unit_norm() does)",
    "  reparam     optimize a free v and use w = v / ||v||      (weight normalization)",
)


def _cell(row, stat, kind):
    return spread_text(row[f"{stat}_median"], row[f"{stat}_min"], row[f"{stat}_max"], kind)


def _options(optimizer, problem):
    options = PROBLEMS[problem].options.get(optimizer, {})
    return ", ".join(f"{k}={v:g}" for k, v in options.items())


def _optimizer_label(optimizer, problem):
    options = _options(optimizer, problem)
    return f"{optimizer} ({options})" if options else optimizer


def _ranking(summary, optimizers):
    """Per optimizer, the strategies from fastest to slowest by median iterations to tolerance."""
    lines = []
    for optimizer in optimizers:
        rows = sorted((row for row in summary if row["optimizer"] == optimizer),
                      key=lambda row: row["iterations_median"])
        cells = [f"{row['strategy']} {spread_text(*[row['iterations_median']] * 3, 'int')}"
                 for row in rows]
        lines.append(f"     {optimizer:<6} " + ", ".join(cells))
    return lines


def _rayleigh_section(seeds, executor):
    results = compare("rayleigh", DEMO_STRATEGIES, DEMO_OPTIMIZERS, seeds,
                      Budget(maxiter=RAYLEIGH_ITERATIONS), executor, progress=False)
    summary = results.summary()
    tol = number_text(summary[0]["tol"], "tol")
    n = PROBLEMS["rayleigh"].defaults["n"]
    gap = PROBLEMS["rayleigh"].defaults["gap"]
    rows = [[_optimizer_label(row["optimizer"], "rayleigh"), row["strategy"],
             f"{row['reached']}/{row['runs']}", _cell(row, "iterations", "int"),
             _cell(row, "time", "ms"), _cell(row, "final_distance", "e"),
             _cell(row, "final_violation", "e")] for row in summary]
    lines = [
        "1. A problem with a known answer: minimize -x'Ax over ||x|| = 1, for a symmetric",
        f"   {n} x {n} matrix A with eigen-gap {gap:g}; the answer, A's leading eigenvector, "
        "comes from",
        f"   numpy.linalg.eigh. At most {RAYLEIGH_ITERATIONS} iterations; distance = angle "
        "between x and the answer,",
        "   violation = | ||x|| - 1 |.",
        "",
        *format_table(["optimizer", "strategy", f"reached {tol}", f"iterations to {tol}",
                       f"ms to {tol}", "final distance", "final violation"], rows),
        "",
        f"   Fastest to distance {tol} first (median iterations):",
        *_ranking(summary, DEMO_OPTIMIZERS),
        "   With plain gradient steps, w <- (w - lr g) / ||w - lr g|| is the Riemannian step",
        "   along the projection retraction with lr' = lr / (1 - lr <w, g>): the same path at",
        "   another speed. Momentum and Adam keep their state in the ambient space, and the",
        "   radial part of the gradient they accumulate breaks that identity.",
    ]
    return results, lines


def _network_section(seeds, executor):
    results = compare("seed_network", DEMO_STRATEGIES, NETWORK_OPTIMIZERS, seeds, Budget(),
                      executor, progress=False)
    summary = results.summary()
    defaults = PROBLEMS["seed_network"].defaults
    tol = number_text(summary[0]["tol"], "tol")
    rows = [[_optimizer_label(row["optimizer"], "seed_network"), row["strategy"],
             _cell(row, "iterations", "int"), _cell(row, "final_cost", "g"),
             _cell(row, "final_accuracy", "f"), _cell(row, "final_violation", "e")]
            for row in summary]
    lines = [
        f"2. The seed network: Dense({defaults['hidden']}, input_dim=2, activation='relu', "
        "kernel_constraint=unit_norm()),",
        "   Dense(1, activation='sigmoid'), binary cross-entropy, on two moons "
        f"({defaults['n_samples']} points);",
        f"   {defaults['epochs']} epochs of batches of {defaults['batch_size']} in "
        f"{defaults['dtype']}. Loss and accuracy on the training set, violation",
        "   over the kernel's columns.",
        "",
        *format_table(["optimizer", "strategy", f"epochs to loss {tol}", "final loss",
                       "final accuracy", "final violation"], rows),
    ]
    return results, lines


def demo_grids(seeds=5, first_seed=0, executor="serial"):
    """Run the demo's grids; returns ``(lines, results)``: the text to print and the
    :class:`~spherenet.experiments.Results` of each grid (for plots)."""
    seed_list = list(range(first_seed, first_seed + seeds))
    lines = [
        "Three ways to keep ||w|| = 1 while an optimizer runs, compared with the same optimizer,",
        "the same hyper-parameters and, for each seed, the same starting point:",
        *_STRATEGY_LINES,
        f"{seeds} seed{'s' if seeds != 1 else ''}; a cell is the median [best, worst] over the "
        "seeds, or one value",
        "when they agree; never = not reached.",
        "",
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a missing network is reported below
        rayleigh, section = _rayleigh_section(seed_list, executor)
    lines += section
    results = [rayleigh]
    available, why = PROBLEMS["seed_network"].available()
    lines.append("")
    if available:
        network, section = _network_section(seed_list, executor)
        lines += section
        results.append(network)
    else:
        lines.append(f"2. The seed network is skipped: {why}.")
    return lines, results


def demo_plots(results, directory):
    """Save the figures of :func:`demo_grids`' results under ``directory`` (PNG and SVG,
    each written atomically); returns ``(paths, notes)``, notes saying why there are
    none if matplotlib is missing."""
    paths = []
    try:
        for result in results:
            paths += result.plot(directory)
    except ImportError as err:
        return paths, [f"no plots: {err}"]
    return paths, []


def run_demo(seeds=5, first_seed=0, plots=None, executor="serial"):
    """Run the demo's grids; returns ``(lines, plot_paths, notes)``.

    Parameters
    ----------
    seeds : int
        Number of seeds (starting points) per cell.
    first_seed : int
    plots : path or None
        Directory for the figures (PNG and SVG); None writes none.
    executor : str or Executor, default "serial"
    """
    started = time.perf_counter()
    lines, results = demo_grids(seeds, first_seed, executor)
    paths, notes = ([], []) if plots is None else demo_plots(results, plots)
    notes.append(f"{time.perf_counter() - started:.1f} s")
    return lines, paths, notes
