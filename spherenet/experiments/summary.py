"""Summaries of a grid over seeds: how fast each strategy reaches a tolerance, where it ends.

:meth:`Results.summary <spherenet.experiments.Results.summary>` builds a
:class:`Summary`; this module also formats its numbers for tables.
"""

import math

import numpy as np

from .rates import fit_rate
from .results import write_csv

__all__ = ["Summary", "STATS", "format_table", "number_text", "spread_text", "run_stats"]

#: The statistics of a summary row, each as ``<stat>_median``, ``_min``, ``_max``.
STATS = ("iterations", "time", "rate", "final_cost", "final_grad_norm", "final_distance", "final_gap",
         "final_violation", "final_accuracy")


def format_table(headers, rows):
    """Lines of a plain-text table with columns separated by `` | ``."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


def run_stats(columns, measure, tol):
    """One run's iterations and time to ``measure <= tol`` (inf if never), its fitted
    asymptotic rate of ``measure`` (:func:`~spherenet.experiments.rates.fit_rate`) and
    final values."""
    values = columns[measure]
    hit = np.flatnonzero(values <= tol)
    first = hit[0] if hit.size else None
    return {
        "iterations": math.inf if first is None else float(columns["iteration"][first]),
        "time": math.inf if first is None else float(columns["time"][first]),
        "rate": fit_rate(values).rate,
        **{f"final_{name}": float(columns[name][-1])
           for name in ("cost", "grad_norm", "distance", "gap", "violation", "accuracy")},
    }


class Summary:
    """The rows of :meth:`Results.summary`, one per (problem, strategy, optimizer).

    Each row is a dict: ``problem, strategy, optimizer, measure, tol, runs,
    reached`` (runs that reached the tolerance) and, for each of
    ``iterations, time`` (to tolerance; ``inf`` if not reached), ``rate``
    (the asymptotic linear rate of the measure fitted by
    :func:`~spherenet.experiments.rates.fit_rate`; NaN for too short a run),
    ``final_cost, final_grad_norm, final_distance, final_gap, final_violation,
    final_accuracy``, the keys ``<stat>_median``, ``<stat>_min``,
    ``<stat>_max`` over the seeds.

    Attributes
    ----------
    rows : list of dict
    comparisons : list of dict
        Paired comparisons of each strategy with the baseline strategy, per
        (problem, optimizer), over the seeds both ran: ``problem, optimizer,
        strategy, baseline`` and the keys of
        :func:`~spherenet.experiments.rates.paired_comparison` (``ratio`` is
        strategy / baseline iterations to tolerance).
    """

    def __init__(self, rows, comparisons=()):
        self.rows = list(rows)
        self.comparisons = list(comparisons)

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i):
        return self.rows[i]

    def row(self, problem, strategy, optimizer):
        """The row of one (problem, strategy, optimizer)."""
        for row in self.rows:
            if (row["problem"], row["strategy"], row["optimizer"]) == (problem, strategy, optimizer):
                return row
        raise KeyError((problem, strategy, optimizer))

    def to_pandas(self):
        """The summary as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("Summary.to_pandas needs pandas: pip install pandas") from err
        return pd.DataFrame(self.rows)

    def to_csv(self, path):
        """Write the summary to ``path`` atomically."""
        header = list(self.rows[0]) if self.rows else []
        return write_csv(path, header, [[row[k] for k in header] for row in self.rows])

    def format(self, columns=("iterations", "time", "final_measure", "final_violation"),
               predicted=None):
        """Lines of a readable table; each statistic as ``median [min, max]`` over the seeds.

        ``columns`` picks among ``iterations``, ``time`` (to tolerance), ``rate``
        (the fitted asymptotic rate), ``predicted_rate`` (from ``predicted``),
        ``vs_baseline`` (the paired comparison with the baseline strategy:
        ratio of iterations to tolerance, its bootstrap interval and the
        Wilcoxon p-value; see :attr:`comparisons` and :meth:`comparison_notes`),
        ``final_measure`` (the final value of the tolerance measure),
        ``final_cost``, ``final_violation``, ``final_accuracy``.

        ``predicted`` maps a problem label to {(strategy, optimizer): rate}
        (:func:`~spherenet.experiments.predicted_rates`); the rate of a cell
        whose measure is the cost gap is squared, and a rate >= 1 is shown as
        ``unstable``.
        """
        kinds = {"iterations": "int", "time": "ms", "final_accuracy": "f", "final_cost": "g",
                 "rate": "f"}
        baseline = next((c["baseline"] for c in self.comparisons), None)
        rows = []
        for row in self.rows:
            cells = [row["problem"], row["optimizer"], row["strategy"],
                     f"{row['reached']}/{row['runs']}"]
            for column in columns:
                if column == "predicted_rate":
                    cells.append(_predicted_text(row, predicted))
                    continue
                if column == "vs_baseline":
                    cells.append("baseline" if row["strategy"] == baseline
                                 else self._comparison_text(row))
                    continue
                stat = f"final_{row['measure']}" if column == "final_measure" else column
                cells.append(spread_text(row[f"{stat}_median"], row[f"{stat}_min"],
                                         row[f"{stat}_max"], kinds.get(stat, "e")))
            rows.append(cells)
        measures = ", ".join(dict.fromkeys(row["measure"] for row in self.rows))
        tols = ", ".join(dict.fromkeys(number_text(row["tol"], "tol") for row in self.rows))
        names = {"iterations": "iterations to tol", "time": "ms to tol",
                 "final_measure": f"final {measures}", "final_cost": "final cost",
                 "rate": f"rate of {measures}", "predicted_rate": "predicted rate",
                 "vs_baseline": "iterations / baseline's [95% CI], Wilcoxon p",
                 "final_violation": "final violation", "final_accuracy": "final accuracy"}
        headers = ["problem", "optimizer", "strategy", f"reached tol ({tols})"]
        return format_table(headers + [names.get(c, c) for c in columns], rows)

    def _comparison_text(self, row):
        for c in self.comparisons:
            if (c["problem"], c["optimizer"], c["strategy"]) == (
                    row["problem"], row["optimizer"], row["strategy"]):
                if math.isnan(c["ratio"]):
                    return "-"
                text = number_text(c["ratio"], "f")
                if not math.isnan(c["ci_low"]):
                    text += f" [{number_text(c['ci_low'], 'f')}, {number_text(c['ci_high'], 'f')}]"
                if not math.isnan(c["pvalue"]):
                    text += f", p {c['pvalue']:.2g}"
                return text + ("*" if c["note"] else "")
        return "-"

    def comparison_notes(self):
        """Lines ``* strategy vs baseline (problem, optimizer): note`` for the comparisons
        with a note (marked ``*`` in the ``vs_baseline`` column)."""
        lines = []
        for c in self.comparisons:
            if c["note"]:
                note = c["note"].replace("only a ", f"only {c['strategy']} ").replace(
                    "only b ", f"only {c['baseline']} ")
                lines.append(f"* {c['strategy']} vs {c['baseline']} ({c['problem']}, "
                             f"{c['optimizer']}): {note}")
        return lines

    def format_comparisons(self):
        """Lines of a table of :attr:`comparisons` (none without any).

        Each row: the strategy against the baseline, the pairs of seeds
        compared, the geometric-mean ratio of iterations to tolerance with its
        bootstrap interval, the Wilcoxon p-value, and a note when a number is
        missing or weak.
        """
        if not self.comparisons:
            return []
        rows = []
        for c in self.comparisons:
            ratio = number_text(c["ratio"], "f")
            interval = ("-" if math.isnan(c["ci_low"])
                        else f"[{number_text(c['ci_low'], 'f')}, {number_text(c['ci_high'], 'f')}]")
            pvalue = "-" if math.isnan(c["pvalue"]) else f"{c['pvalue']:.2g}"
            pairs = f"{c['pairs']}" + (f" (+{c['excluded']} excluded)" if c["excluded"] else "")
            note = c["note"].replace("only a ", f"only {c['strategy']} ").replace(
                "only b ", f"only {c['baseline']} ")
            rows.append([c["problem"], c["optimizer"], c["strategy"], c["baseline"],
                         pairs, ratio, interval, pvalue, note])
        return format_table(["problem", "optimizer", "strategy", "baseline", "seed pairs",
                             "iterations ratio", "95% bootstrap CI", "Wilcoxon p", "note"], rows)

    def __str__(self):
        return "\n".join(self.format())


def _predicted_text(row, predicted):
    rate = ((predicted or {}).get(row["problem"]) or {}).get((row["strategy"], row["optimizer"]))
    if rate is None:
        return "-"
    rate = rate * rate if row["measure"] == "gap" else rate
    return number_text(rate, "f") if 0 < rate < 1 else "unstable"


def number_text(value, kind="e"):
    """A short text for one statistic: ``kind`` is "int", "ms" (seconds shown in
    milliseconds), "f" (3 decimals), "g" (2 significant digits), "e" (one
    significant digit, 0 as "0") or "tol" (plain between 1e-3 and 1e4, else "e")."""
    if math.isnan(value):
        return "-"
    if math.isinf(value):
        return "never"
    if kind == "int":
        return f"{value:.0f}"
    if kind == "ms":
        return f"{1e3 * value:.2g}" if 1e3 * value < 100 else f"{1e3 * value:.0f}"
    if kind == "f":
        return f"{value:.3f}"
    if kind == "g" or (kind == "tol" and 1e-3 <= abs(value) < 1e4):
        return f"{value:.2g}"
    return "0" if value == 0 else f"{value:.0e}".replace("e-0", "e-").replace("e+0", "e+")


def spread_text(median, low, high, kind="e"):
    """``median [low, high]``, or the median alone when all seeds agree; ``never`` for inf."""
    center, lo, hi = (number_text(v, kind) for v in (median, low, high))
    return center if lo == hi == center else f"{center} [{lo}, {hi}]"
