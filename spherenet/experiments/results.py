"""Tidy results of a grid: one row per run per iteration, CSV, and one file per finished run.

The tidy table has the columns :data:`COLUMNS`:

``problem, strategy, optimizer, seed``
    Which run (labels as given to :func:`~spherenet.experiments.compare`; a
    strategy with options as ``riemannian(retraction='projection')``).
``iteration``
    0 is the starting point; for networks, an epoch.
``time``
    Seconds since the run started (training time for networks).
``cost``
    The objective the optimizer minimizes (with the penalty term under
    ``penalty``; the training loss for networks).
``grad_norm``, ``violation``
    Gradient norm as :func:`spherenet.minimize` records it, and the
    constraint violation max_k | ||w_k|| - 1 | of the weights.
``distance``, ``gap``
    Distance from the (normalized) weights to the set of optimal points, and
    ``cost`` minus the optimal cost; NaN where not known.
``accuracy``
    Training accuracy for networks; NaN otherwise.
"""

import csv
import dataclasses
import json
import math
import re
import warnings
from pathlib import Path

import numpy as np

from .._atomic import atomic_write

__all__ = ["Results", "RunStore", "COLUMNS", "IDENTITY", "MEASURES", "atomic_write",
           "write_csv"]

IDENTITY = ("problem", "strategy", "optimizer", "seed")
MEASURES = ("iteration", "time", "cost", "grad_norm", "violation", "distance", "gap", "accuracy")
COLUMNS = IDENTITY + MEASURES
#: The measures a summary can compare with a tolerance, in the order the default is chosen.
TOLERANCE_MEASURES = ("distance", "gap", "grad_norm", "cost")


# --- small helpers ----------------------------------------------------------------------------


def slug(text):
    """A file-name-safe version of a label."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text).strip("_") or "_"


def _float_text(value):
    return repr(float(value))  # shortest text that reads back to the same float


def _ordered_unique(values):
    return list(dict.fromkeys(values))


def _as_run(problem, strategy, optimizer, seed, columns, status=None, message=""):
    n = len(columns["iteration"])
    full = {}
    for name in MEASURES:
        values = columns.get(name)
        values = [math.nan] * n if values is None else values
        full[name] = np.asarray(values, dtype=np.int64 if name == "iteration" else np.float64)
        if full[name].shape != (n,):
            raise ValueError(f"column {name!r} has {full[name].size} values, expected {n}")
    return {"problem": str(problem), "strategy": str(strategy), "optimizer": str(optimizer),
            "seed": int(seed), "status": status, "message": message, "columns": full}


# --- results ----------------------------------------------------------------------------------


class Results:
    """The runs of a grid, as a tidy table.

    Build it with :func:`~spherenet.experiments.compare`, :meth:`from_csv` or
    :meth:`load` (from the run files of an output directory).

    Attributes
    ----------
    runs : list of dict
        One per run, in grid order: ``problem, strategy, optimizer, seed,
        status, message`` and ``columns`` (the run's measures as arrays).
    executed, reused : int
        How many runs :func:`compare` executed, and how many it read back
        from finished run files.
    skipped : list of str
        Grid cells :func:`compare` left out, and why.
    failed : list of (dict, str)
        Runs that raised: the run's description and the error.
    """

    def __init__(self, runs=()):
        self.runs = list(runs)
        self.executed = self.reused = 0
        self.skipped, self.failed = [], []
        self._table = None

    @classmethod
    def from_records(cls, records):
        """From the records :func:`~spherenet.experiments.runner.execute` returns."""
        runs = []
        for record in records:
            run = record["run"]
            runs.append(_as_run(run["problem"], run["strategy"], run["optimizer"], run["seed"],
                                record["columns"], record.get("status"), record.get("message", "")))
        return cls(runs)

    @classmethod
    def load(cls, directory, budget=None):
        """The finished runs stored under ``directory`` (as ``compare(out=directory)`` left them).

        Parameters
        ----------
        directory : path
            The ``out`` folder of :func:`~spherenet.experiments.compare`; the run
            files are in its ``runs/`` folder.
        budget : int, dict or Budget, optional
            Take only the runs of this budget (``maxiter``, ``epochs``,
            ``maxtime``, ``gtol``). Needed when the folder holds runs of
            several budgets: the runs of two budgets are two grids, and one
            table would count the same cell and seed twice.

        Returns
        -------
        Results

        Raises
        ------
        ValueError
            The folder holds runs of more than one budget and ``budget`` is
            not given (the message lists them), or no run of ``budget``.

        Warns
        -----
        UserWarning
            For each file of ``runs/`` that is not a readable run file (the
            message names it); the file is skipped.

        Examples
        --------
        >>> import tempfile
        >>> from spherenet.experiments import compare, Results
        >>> out = tempfile.mkdtemp()
        >>> for maxiter in (10, 20):
        ...     _ = compare("rayleigh", "riemannian", "rsgd", seeds=1, budget=maxiter,
        ...                 executor="serial", out=out)
        >>> Results.load(out)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: ... holds the runs of 2 grids, by budget: maxiter=10 (1 run), maxiter=20 ...
        >>> len(Results.load(out, budget=20))
        21
        """
        from .specs import Budget

        store = RunStore(directory)
        grids = {}
        for record in store.records():
            grids.setdefault(_budget_key(record["run"]["budget"]), []).append(record)
        if budget is not None:
            wanted = _budget_key(dataclasses.asdict(Budget.coerce(budget)))
            if wanted not in grids:
                raise ValueError(f"{store.directory} holds no run of the budget "
                                 f"{_budget_text(wanted)}; it holds "
                                 f"{_grids_text(grids) or 'no run'}")
            return cls.from_records(grids[wanted])
        if len(grids) > 1:
            first = min(grids, key=_budget_order)
            raise ValueError(
                f"{store.directory} holds the runs of {len(grids)} grids, by budget: "
                f"{_grids_text(grids)}; choose one with Results.load(directory, budget=...), "
                f"e.g. budget=dict({_budget_text(first)}), or give each grid its own folder")
        return cls.from_records(next(iter(grids.values()), []))

    # --- the tidy table -------------------------------------------------------------------------

    def __len__(self):
        return sum(len(run["columns"]["iteration"]) for run in self.runs)

    def __repr__(self):
        return (f"<Results: {len(self.runs)} runs, {len(self)} rows; problems {self.problems}, "
                f"strategies {self.strategies}, optimizers {self.optimizers}>")

    @property
    def columns(self):
        return COLUMNS

    @property
    def problems(self):
        return _ordered_unique(run["problem"] for run in self.runs)

    @property
    def strategies(self):
        return _ordered_unique(run["strategy"] for run in self.runs)

    @property
    def optimizers(self):
        return _ordered_unique(run["optimizer"] for run in self.runs)

    def table(self):
        """The tidy table as a dict of column name to NumPy array."""
        if self._table is None:
            parts = {name: [] for name in COLUMNS}
            for run in self.runs:
                n = len(run["columns"]["iteration"])
                for name in IDENTITY:
                    parts[name].append(np.full(n, run[name], dtype=object))
                for name in MEASURES:
                    parts[name].append(run["columns"][name])
            self._table = {
                name: (np.concatenate(values) if values
                       else np.empty(0, dtype=object if name in IDENTITY[:3] else float))
                for name, values in parts.items()
            }
            self._table["seed"] = self._table["seed"].astype(np.int64)
        return self._table

    def __getitem__(self, name):
        if name not in COLUMNS:
            raise KeyError(f"no column {name!r}; the columns are {list(COLUMNS)}")
        return self.table()[name]

    def select(self, **criteria):
        """The runs whose ``problem``, ``strategy``, ``optimizer`` or ``seed`` match.

        A criterion is a value or a list of accepted values.
        """
        bad = sorted(set(criteria) - set(IDENTITY))
        if bad:
            raise ValueError(f"can select on {list(IDENTITY)}, not {bad}")
        accepted = {k: v if isinstance(v, (list, tuple, set)) else [v] for k, v in criteria.items()}
        return Results([run for run in self.runs
                        if all(run[k] in values for k, values in accepted.items())])

    def to_pandas(self):
        """The tidy table as a ``pandas.DataFrame`` (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("Results.to_pandas needs pandas: pip install pandas") from err
        table = self.table()
        frame = pd.DataFrame({name: table[name] for name in COLUMNS})
        for name in IDENTITY[:3]:
            frame[name] = frame[name].astype(str)
        return frame

    def to_csv(self, path):
        """Write the tidy table to ``path`` atomically (a temporary file, then
        ``os.replace``); floats are written to read back exactly. Returns the path."""

        def rows():
            for run in self.runs:
                identity = [run[name] for name in IDENTITY]
                columns = run["columns"]
                for i in range(len(columns["iteration"])):
                    yield identity + [int(columns["iteration"][i])] + [
                        float(columns[name][i]) for name in MEASURES[1:]]

        return write_csv(path, COLUMNS, rows())

    @classmethod
    def from_csv(cls, path):
        """Read a table written by :meth:`to_csv` (rows of a run must be contiguous)."""
        with open(path, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or any(name not in header for name in COLUMNS):
                raise ValueError(f"{path} is not a spherenet results table: expected the columns "
                                 f"{list(COLUMNS)}, got {header}")
            index = {name: header.index(name) for name in COLUMNS}
            runs, current, key = [], None, None
            for row in reader:
                row_key = tuple(row[index[name]] for name in IDENTITY)
                if row_key != key:
                    if current is not None:
                        runs.append(_as_run(*key, current))
                    key, current = row_key, {name: [] for name in MEASURES}
                current["iteration"].append(int(row[index["iteration"]]))
                for name in MEASURES[1:]:
                    current[name].append(float(row[index[name]]))
            if current is not None:
                runs.append(_as_run(*key, current))
        return cls(runs)

    # --- summaries and plots ------------------------------------------------------------------------

    def measure_for(self, problem):
        """The tolerance measure of ``problem``: the first of distance, gap, grad_norm, cost
        that is finite somewhere in its rows."""
        runs = [run for run in self.runs if run["problem"] == problem]
        for name in TOLERANCE_MEASURES:
            if any(np.isfinite(run["columns"][name]).any() for run in runs):
                return name
        return "cost"

    def summary(self, tol=None, measure=None, baseline=None):
        """Per (problem, strategy, optimizer): iterations and time to tolerance, final values.

        Parameters
        ----------
        tol : float or dict, optional
            The tolerance on the measure, or a dict problem label -> tolerance;
            default the registry's tolerance of each problem
            (:data:`spherenet.experiments.PROBLEMS`), 1e-6 for others.
        measure : str or dict, optional
            ``"distance"``, ``"gap"``, ``"grad_norm"`` or ``"cost"`` (or a dict per
            problem); default :meth:`measure_for` each problem.
        baseline : str, optional
            The strategy label every other strategy is compared with, seed by
            seed (:attr:`Summary.comparisons`); default the first strategy.

        Returns
        -------
        Summary
            A run reaches the tolerance at its first iteration with
            ``measure <= tol``; a run that never does counts as ``inf``
            iterations and seconds. Each statistic is given as median, min and
            max over the seeds; ``rate`` is the fitted asymptotic rate of the
            measure (:func:`~spherenet.experiments.rates.fit_rate`). For each
            (problem, optimizer) with the baseline and another strategy,
            :attr:`Summary.comparisons` holds a Wilcoxon signed-rank test and
            a bootstrap interval of the ratio of iterations to tolerance
            (:func:`~spherenet.experiments.rates.paired_comparison`).

        Raises
        ------
        ValueError
            An unknown measure, a ``baseline`` that is not a strategy of the
            results, a negative or non-finite ``tol``, a dict ``tol`` or
            ``measure`` with a key that is not a problem of the results.
        TypeError
            A ``tol`` that is not a number (a string, a bool).
        """
        from .problems import check_tol, default_tol
        from .rates import paired_comparison
        from .summary import STATS, Summary, run_stats

        if baseline is not None and baseline not in self.strategies:
            raise ValueError(f"baseline must be one of the strategies {self.strategies}, "
                             f"got {baseline!r}")
        baseline = baseline if baseline is not None else next(iter(self.strategies), None)
        for name, value in (("tol", tol), ("measure", measure)):
            unknown = sorted(set(value) - set(self.problems)) if isinstance(value, dict) else []
            if unknown:
                # A misspelled label would leave its problem at the default, unseen.
                raise ValueError(f"{name} has keys {unknown} that are not problems of the "
                                 f"results {self.problems}")
        iterations = {}

        groups = {}
        for run in self.runs:
            groups.setdefault((run["problem"], run["strategy"], run["optimizer"]), []).append(run)
        rows = []
        for (problem, strategy, optimizer), runs in groups.items():
            name = measure.get(problem) if isinstance(measure, dict) else measure
            name = name or self.measure_for(problem)
            if name not in TOLERANCE_MEASURES:
                raise ValueError(f"measure must be one of {list(TOLERANCE_MEASURES)}, got {name!r}")
            level = tol.get(problem) if isinstance(tol, dict) else tol
            level = default_tol(problem) if level is None else check_tol(level)
            per_run = [run_stats(run["columns"], name, level) for run in runs]
            iterations[problem, strategy, optimizer] = {
                run["seed"]: stats["iterations"] for run, stats in zip(runs, per_run)}
            row = {"problem": problem, "strategy": strategy, "optimizer": optimizer,
                   "measure": name, "tol": level, "runs": len(runs),
                   "reached": sum(math.isfinite(stats["iterations"]) for stats in per_run)}
            for stat in STATS:
                values = np.array([stats[stat] for stats in per_run], dtype=float)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    row[f"{stat}_median"] = float(np.median(values))
                    row[f"{stat}_min"] = float(np.min(values))
                    row[f"{stat}_max"] = float(np.max(values))
            rows.append(row)
        comparisons = []
        for (problem, strategy, optimizer), by_seed in iterations.items():
            base = iterations.get((problem, baseline, optimizer))
            if strategy == baseline or base is None:
                continue
            seeds = sorted(set(by_seed) & set(base))
            compared = paired_comparison([by_seed[s] for s in seeds], [base[s] for s in seeds])
            comparisons.append({"problem": problem, "optimizer": optimizer, "strategy": strategy,
                                "baseline": baseline, **compared})
        return Summary(rows, comparisons)

    def plot(self, directory, formats=("png", "svg"), measure=None, predicted=None):
        """One figure per problem, saved under ``directory``; see
        :func:`~spherenet.experiments.plots.plot_results` (``predicted``: rates
        drawn over the measured curves)."""
        from .plots import plot_results

        return plot_results(self, directory, formats=formats, measure=measure,
                            predicted=predicted)


class _CsvText:
    def __init__(self):
        self.parts = []

    def write(self, text):
        self.parts.append(text)

    def text(self):
        return "".join(self.parts)


def write_csv(path, header, rows):
    """Write rows (sequences) under ``header`` to ``path`` atomically; floats exactly."""
    lines = _CsvText()
    writer = csv.writer(lines)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_float_text(v) if isinstance(v, float) else v for v in row])
    atomic_write(path, lines.text())
    return Path(path)


# --- run files ----------------------------------------------------------------------------------


class RunStore:
    """Finished runs as one JSON file each under ``<directory>/runs/``, written atomically.

    A grid interrupted at any moment loses only the runs in flight, and
    :func:`~spherenet.experiments.compare` with the same ``out`` directory
    reads the finished ones back instead of running them again. A file is
    named by the run's labels and its :meth:`Run.key`, a hash of everything
    that defines it (resolved parameters, options, seed, budget).
    """

    FORMAT = 1

    def __init__(self, directory):
        self.directory = Path(directory) / "runs"

    def path(self, run):
        name = f"{run.problem_label}__{run.strategy_label}__{run.optimizer_label}__seed{run.seed}"
        return self.directory / f"{slug(name)}__{run.key()}.json"

    def load(self, run):
        """The stored record of ``run``, or None (missing, unreadable or another run's)."""
        path = self.path(run)
        try:
            with open(path) as handle:
                record = json.load(handle)
        except (OSError, ValueError):
            return None
        same = (record.get("format") == self.FORMAT and record.get("key") == run.key()
                and record.get("run") == json.loads(json.dumps(run.describe())))
        return record if same and "columns" in record else None

    def save(self, run, record):
        """Write a finished run's record; returns its path (None for a failed run: not stored)."""
        if "columns" not in record:
            return None
        path = self.path(run)
        atomic_write(path, json.dumps({"format": self.FORMAT, **record}))
        return path

    def records(self):
        """Every stored run record, sorted by file name; a file that is not one (not
        JSON, or not a run file of this format) is skipped with a warning naming it."""
        records = []
        for path in sorted(self.directory.glob("*.json")):
            try:
                with open(path) as handle:
                    record = json.load(handle)
            except (OSError, ValueError) as err:
                warnings.warn(f"skipped {path}: not a readable JSON file ({err})", stacklevel=3)
                continue
            problem = _record_problem(record, self.FORMAT)
            if problem:
                warnings.warn(f"skipped {path}: not a spherenet run file ({problem})",
                              stacklevel=3)
                continue
            records.append(record)
        return records


def _record_problem(record, expected_format):
    """Why ``record`` is not a stored run of this format, or "" if it is one."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if record.get("format") != expected_format:
        return f"format {record.get('format')!r}, expected {expected_format}"
    run = record.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("budget"), dict) or any(
            name not in run for name in IDENTITY):
        return "no run description"
    columns = record.get("columns")
    if not isinstance(columns, dict) or "iteration" not in columns:
        return "no columns"
    return ""


def _budget_key(budget):
    """A hashable, comparable form of a budget dict (numbers as floats: 5 and 5.0 agree)."""
    return tuple(sorted(
        (str(k), float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
        for k, v in budget.items()))


def _budget_text(key):
    from .specs import Budget

    fields = [f.name for f in dataclasses.fields(Budget)]
    defaults = dict(_budget_key(dataclasses.asdict(Budget())))
    items = sorted(key, key=lambda kv: fields.index(kv[0]) if kv[0] in fields else len(fields))
    # maxiter and the fields that differ from the defaults: short and unambiguous.
    shown = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
             for k, v in items if k == "maxiter" or defaults.get(k, object()) != v]
    return ", ".join(shown)


def _budget_order(key):
    return [(k, -math.inf if v is None else v) for k, v in key]


def _grids_text(grids):
    parts = []
    for key, records in sorted(grids.items(), key=lambda item: _budget_order(item[0])):
        count = len(records)
        parts.append(f"{_budget_text(key)} ({count} run{'s' if count != 1 else ''})")
    return ", ".join(parts)
