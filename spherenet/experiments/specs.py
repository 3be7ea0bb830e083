"""What one run is, as plain data: problem, strategy and optimizer by name and parameters,
a seed and a budget.

Everything here is picklable and hashable and holds no function, so that a
run can travel to a process pool or a dask worker and be named on disk by a
stable key.
"""

import dataclasses
import hashlib
import json
import math
import numbers
import re

__all__ = ["ProblemSpec", "StrategySpec", "OptimizerSpec", "Budget", "Run", "parse_assignment",
           "parse_strategy"]


def _format_value(value):
    return repr(value) if isinstance(value, float) else str(value)  # repr: labels stay distinct


class _Named:
    """A name with keyword parameters, compared and hashed by value."""

    __slots__ = ("name", "_params")
    what = "name"

    def __init__(self, name, **params):
        if not isinstance(name, str) or not name:
            raise TypeError(f"the {self.what} must be a non-empty string, got {name!r}")
        self.name = name
        self._params = tuple(sorted(params.items()))

    @classmethod
    def coerce(cls, spec):
        """A spec from an instance, a name, or a pair ``(name, {params})``."""
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            return cls(spec)
        if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[1], dict):
            return cls(spec[0], **spec[1])
        raise TypeError(
            f"a {cls.what} must be a name, a ({cls.what} name, parameters dict) pair or a "
            f"{cls.__name__}, got {spec!r}"
        )

    @property
    def params(self):
        return dict(self._params)

    @property
    def label(self):
        """``name`` or ``name(key=value, ...)``: how the spec appears in tables and plots."""
        if not self._params:
            return self.name
        return f"{self.name}({', '.join(f'{k}={self._format(v)}' for k, v in self._params)})"

    @staticmethod
    def _format(value):
        return _format_value(value)

    def with_params(self, **params):
        return type(self)(self.name, **{**self.params, **params})

    def __eq__(self, other):
        return type(other) is type(self) and (self.name, self._params) == (other.name, other._params)

    def __hash__(self):
        return hash((type(self).__name__, self.name, self._params))

    def __repr__(self):
        args = "".join(f", {k}={v!r}" for k, v in self._params)
        return f"{type(self).__name__}({self.name!r}{args})"

    def __getstate__(self):
        return self.name, self._params

    def __setstate__(self, state):
        self.name, self._params = state


class ProblemSpec(_Named):
    """A problem of :data:`spherenet.experiments.PROBLEMS` by name, with parameters.

    >>> ProblemSpec("rayleigh", n=100).label
    'rayleigh(n=100)'
    """

    __slots__ = ()
    what = "problem"


class StrategySpec(_Named):
    """A strategy of :mod:`spherenet.strategies` by name, with its options.

    The options are those of the strategy's class: ``retraction=`` and
    ``transport=`` for riemannian, ``epsilon=`` for projection, ``mu=`` for
    penalty. A spec without options is labeled by its name alone; string
    options are quoted in the label.

    >>> StrategySpec("riemannian").label
    'riemannian'
    >>> StrategySpec("riemannian", retraction="projection").label
    "riemannian(retraction='projection')"
    >>> StrategySpec("penalty", mu=10.0).label
    'penalty(mu=10.0)'
    """

    __slots__ = ()
    what = "strategy"

    @staticmethod
    def _format(value):
        return repr(value) if isinstance(value, (str, float)) else str(value)


class OptimizerSpec(_Named):
    """An optimizer by name (``"rsgd"``, ``"radam"``, ``"cg"``, ...), with its options.

    >>> OptimizerSpec("rsgd", lr=0.1, momentum=0.9).label
    'rsgd(lr=0.1, momentum=0.9)'
    """

    __slots__ = ()
    what = "optimizer"


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long a run may go on.

    Parameters
    ----------
    maxiter : int, default 200
        Iterations of an optimization problem.
    epochs : int, optional
        Epochs of a network problem; None uses the problem's own default.
    maxtime : float, default inf
        Seconds, for every run.
    gtol : float, default 1e-10
        Gradient-norm tolerance of the optimization problems: small, so that
        runs go on to the distances the summary's tolerances ask for.
    """

    maxiter: int = 200
    epochs: int = None
    maxtime: float = math.inf
    gtol: float = 1e-10

    def __post_init__(self):
        for name, low in (("maxiter", 0), ("epochs", 0)):
            value = getattr(self, name)
            if value is None and name == "epochs":
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"budget {name} must be an integer >= {low}, got {value!r}")
        for name in ("maxtime", "gtol"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"budget {name} must be >= 0, got {getattr(self, name)!r}")

    @classmethod
    def coerce(cls, budget):
        """A Budget from a Budget, an int (``maxiter``) or a dict of its fields."""
        if isinstance(budget, cls):
            return budget
        if isinstance(budget, dict):
            unknown = sorted(set(budget) - {f.name for f in dataclasses.fields(cls)})
            if unknown:
                raise ValueError(f"unknown budget field(s) {unknown}; choose from "
                                 f"{[f.name for f in dataclasses.fields(cls)]}")
            return cls(**budget)
        if isinstance(budget, numbers.Integral) and not isinstance(budget, bool):
            return cls(maxiter=int(budget))
        raise TypeError(f"budget must be an int (iterations), a dict or a Budget, got {budget!r}")


@dataclasses.dataclass(frozen=True)
class Run:
    """One cell of a grid and one seed.

    ``problem`` and ``optimizer`` are fully resolved (defaults filled in) so
    that the run's :meth:`key` changes when a default does; the labels are the
    short names shown in tables (only what the user chose). ``strategy`` is
    a :class:`StrategySpec` (a name given here is turned into one), labeled
    by :attr:`strategy_label`.
    """

    problem: ProblemSpec
    problem_label: str
    strategy: StrategySpec
    optimizer: OptimizerSpec
    optimizer_label: str
    seed: int
    budget: Budget

    def __post_init__(self):
        object.__setattr__(self, "strategy", StrategySpec.coerce(self.strategy))

    @property
    def strategy_label(self):
        return self.strategy.label

    def describe(self):
        """A JSON-able dict that identifies the run."""
        described = {
            "problem": self.problem_label,
            "problem_name": self.problem.name,
            "problem_params": self.problem.params,
            "strategy": self.strategy.label,
            "optimizer": self.optimizer_label,
            "optimizer_name": self.optimizer.name,
            "optimizer_options": self.optimizer.params,
            "seed": self.seed,
            "budget": dataclasses.asdict(self.budget),
        }
        if self.strategy.params:
            # Only with options: a strategy given by name alone keeps the description,
            # and so the key, of the runs stored before strategies had options.
            described["strategy_name"] = self.strategy.name
            described["strategy_options"] = self.strategy.params
        return described

    def key(self):
        """A stable hex digest of :meth:`describe` (names the run's result file)."""
        text = json.dumps(self.describe(), sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_value(text):
    """``"3"`` -> 3, ``"0.1"`` -> 0.1, ``"true"`` -> True, otherwise the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip()


def parse_assignment(text):
    """``"key=value"`` -> ``("key", parsed value)``; ValueError otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(value)


def _split_options(text):
    """``"a=1+b=x"`` or ``"a=1;b=x"`` -> ``["a=1", "b=x"]``; a ``+`` or ``;`` splits only
    before ``key=``, so that ``mu=1e+3`` stays whole."""
    return re.split(r"[;+](?=\s*[A-Za-z_]\w*\s*=)", text)


def parse_strategy(text):
    """``"name"`` or ``"name:key=value+key=value"`` -> :class:`StrategySpec`; ValueError otherwise.

    Options are separated by ``+`` (or ``;``), values parsed as by the
    ``--param`` and ``--set`` options of ``spherenet compare``; only the syntax
    is checked here, not the name or the options.

    >>> parse_strategy("riemannian:retraction=projection+transport=parallel").label
    "riemannian(retraction='projection', transport='parallel')"
    >>> parse_strategy("penalty:mu=1e+3").params
    {'mu': 1000.0}
    """
    name, sep, rest = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"expected NAME or NAME:KEY=VALUE+KEY=VALUE, got {text!r}")
    options = {}
    if sep:
        for part in _split_options(rest):
            key, value = parse_assignment(part)
            if key in options:
                raise ValueError(f"option {key!r} is given twice")
            options[key] = value
    return StrategySpec(name, **options)
