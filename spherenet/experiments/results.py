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
import json
import math
import os
import re
import tempfile
import warnings
from pathlib import Path

import numpy as np

__all__ = ["Results", "RunStore", "COLUMNS", "IDENTITY", "MEASURES", "atomic_write",
           "write_csv"]

IDENTITY = ("problem", "strategy", "optimizer", "seed")
MEASURES = ("iteration", "time", "cost", "grad_norm", "violation", "distance", "gap", "accuracy")
COLUMNS = IDENTITY + MEASURES
#: The measures a summary can compare with a tolerance, in the order the default is chosen.
TOLERANCE_MEASURES = ("distance", "gap", "grad_norm", "cost")


# --- small helpers ----------------------------------------------------------------------------


def atomic_write(path, text):
    """Write ``text`` to ``path`` through a temporary file and ``os.replace``.

    A reader (or a resumed grid) sees the old file or the whole new one, never
    a partial one, even if the process is killed mid-write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    def load(cls, directory):
        """The finished runs stored under ``directory`` (as ``compare(out=directory)`` left them)."""
        return cls.from_records(RunStore(directory).records())

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

    def summary(self, tol=None, measure=None):
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

        Returns
        -------
        Summary
            A run reaches the tolerance at its first iteration with
            ``measure <= tol``; a run that never does counts as ``inf``
            iterations and seconds. Each statistic is given as median, min and
            max over the seeds.
        """
        from .problems import default_tol
        from .summary import STATS, Summary, run_stats

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
            level = default_tol(problem) if level is None else float(level)
            per_run = [run_stats(run["columns"], name, level) for run in runs]
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
        return Summary(rows)

    def plot(self, directory, formats=("png", "svg"), measure=None):
        """One figure per problem, saved under ``directory``; see
        :func:`~spherenet.experiments.plots.plot_results`."""
        from .plots import plot_results

        return plot_results(self, directory, formats=formats, measure=measure)


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
        """Every stored record, sorted by file name."""
        records = []
        for path in sorted(self.directory.glob("*.json")):
            with open(path) as handle:
                records.append(json.load(handle))
        return records
