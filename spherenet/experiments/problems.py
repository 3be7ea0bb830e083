"""The problems a grid can run, by name: spherenet.problems instances and network training.

Each entry of :data:`PROBLEMS` says how to build the problem from keyword
parameters (every one has a default, and ``instance`` seeds the random data:
the matrix, the graph, the points; the run's seed only draws the starting
point), the default options of each optimizer on it (a step size that works),
and the tolerance its summary uses by default.
"""

import functools
import inspect
import math
import numbers

import numpy as np

from .. import problems as _problems
from ..minimize import METHODS
from ..optim.bb import barzilai_borwein
from ..optim.cg import conjugate_gradient
from ..optim.lbfgs import lbfgs
from ..optim.rules import RAdam, RSGD
from ..optim.sd import steepest_descent
from ..optim.trust_regions import trust_regions
from ..manifolds import Sphere
from ..strategies import STRATEGIES, get_strategy
from .specs import OptimizerSpec, ProblemSpec, StrategySpec

__all__ = ["PROBLEMS", "OPTIMIZERS", "STRATEGY_NAMES", "Entry", "build_problem", "resolve",
           "resolve_strategy", "default_tol", "accepted_options", "strategy_options"]

#: Optimizer names accepted by the harness, and the options each accepts.
OPTIMIZERS = METHODS
STRATEGY_NAMES = tuple(STRATEGIES)
NETWORK_OPTIMIZERS = ("rsgd", "radam")
_OPTION_SOURCES = {"rsgd": RSGD.__init__, "radam": RAdam.__init__, "cg": conjugate_gradient,
                   "sd": steepest_descent, "trust-regions": trust_regions, "lbfgs": lbfgs,
                   "bb": barzilai_borwein}
_RUN_ARGUMENTS = {"self", "problem", "x0", "stopper", "recorder"}
_RULES = {"rsgd": RSGD, "radam": RAdam}


def accepted_options(optimizer):
    """The option names an optimizer accepts: its step rule's or solver's keywords."""
    return sorted(set(inspect.signature(_OPTION_SOURCES[optimizer]).parameters) - _RUN_ARGUMENTS)


def strategy_options(strategy):
    """The option names a strategy accepts: its class's keywords besides the manifold."""
    parameters = inspect.signature(STRATEGIES[strategy].__init__).parameters
    return sorted(set(parameters) - {"self", "manifold"})


class Entry:
    """A named problem: how to build it and how to run optimizers on it.

    Attributes
    ----------
    name : str
    kind : {"problem", "network"}
        An optimization problem of :mod:`spherenet.problems` (run by
        :func:`spherenet.minimize`) or a network trained by ``fit``.
    defaults : dict
        Every parameter and its default value.
    options : dict
        Default options per optimizer name (e.g. the step size of rsgd).
    tol : float
        Default tolerance of :meth:`Results.summary` on this problem's measure.
    description : str
    """

    def __init__(self, name, kind, build, defaults, options, tol, description):
        self.name, self.kind, self._build = name, kind, build
        self.defaults, self.options, self.tol = dict(defaults), dict(options), float(tol)
        self.description = description

    @property
    def optimizers(self):
        return NETWORK_OPTIMIZERS if self.kind == "network" else OPTIMIZERS

    def build(self, **params):
        return self._build(**{**self.defaults, **params})

    def available(self):
        """``(True, "")`` or ``(False, why)``; networks need :mod:`spherenet.nn`."""
        if self.kind != "network":
            return True, ""
        from .networks import network_available

        return network_available(self.name)


# --- builders: each one seeded by ``instance`` ------------------------------------------------


def _spectrum_matrix(rng, n, gap):
    """A random symmetric matrix with top eigenvalue 1 and second 1 - gap."""
    if not (isinstance(n, int) and n >= 2):
        raise ValueError(f"n must be an integer >= 2, got {n!r}")
    if not 0.0 < gap < 1.0:
        raise ValueError(f"gap must be in (0, 1), got {gap!r}")
    basis, _ = np.linalg.qr(rng.standard_normal((n, n)))
    eigenvalues = np.r_[rng.uniform(0.0, 1.0 - gap, n - 2), 1.0 - gap, 1.0]
    return (basis * eigenvalues) @ basis.T


def _rayleigh(n, gap, instance):
    return _problems.rayleigh(_spectrum_matrix(np.random.default_rng(instance), n, gap))


def _block_rayleigh(n, k, gap, instance):
    rng = np.random.default_rng(instance)
    return _problems.block_rayleigh(np.stack([_spectrum_matrix(rng, n, gap) for _ in range(k)]))


_GRAPHS = {
    "cycle": (_problems.cycle_graph,
              lambda n: n if n % 2 == 0 else 0.5 * n * (1.0 + np.cos(np.pi / n))),
    "complete": (_problems.complete_graph, lambda n: n * n / 4.0),
}


def _maxcut(graph, n, instance):
    if graph == "petersen":
        return _problems.maxcut(_problems.petersen_graph(), sdp_value=12.5)
    if graph not in _GRAPHS:
        raise ValueError(f"graph must be one of {sorted(_GRAPHS) + ['petersen']}, got {graph!r}")
    make, value = _GRAPHS[graph]
    return _problems.maxcut(make(n), sdp_value=value(n))


def _thomson(n_points, instance):
    return _problems.thomson(n_points)


def _data_rng(instance):
    """The generator of an instance's data, a stream apart from the runs' starting points.

    A run of seed s starts from ``x0(default_rng(s))``; data drawn from
    ``default_rng(instance)`` would be the same draws when s == instance, and
    where the first draws make the optimum (the Karcher pole, the dictionary's
    atoms) the run of that seed would start at it.
    """
    return np.random.default_rng([instance, 1])


def _karcher_mean(n, angle, instance):
    points, pole = _problems.symmetric_points(n, angle, rng=_data_rng(instance))
    return _problems.karcher_mean(points, mean=pole)


def _spherical_kmeans(n_features, n_clusters, n_per_cluster, spread, temperature, instance):
    X, labels, _ = _problems.spherical_clusters(n_features, n_clusters, n_per_cluster, spread,
                                                rng=instance)
    return _problems.spherical_kmeans(X, n_clusters, temperature, labels=labels)


def _dictionary_learning(n_features, n_atoms, n_samples, noise, instance):
    Y, _, _ = _problems.dictionary_data(n_features, n_atoms, n_samples, noise,
                                        rng=_data_rng(instance))
    return _problems.dictionary_learning(Y, n_atoms)


def _network(name):
    def build(**params):
        from .networks import NETWORKS

        return NETWORKS[name](**params)

    return build


#: name -> Entry. ``spherenet compare --list`` prints them.
PROBLEMS = {entry.name: entry for entry in (
    Entry("rayleigh", "problem", _rayleigh, dict(n=50, gap=0.2, instance=0),
          {"rsgd": dict(lr=0.5), "radam": dict(lr=0.1)}, 1e-6,
          "leading eigenvector of a symmetric n x n matrix with eigen-gap `gap` (Sphere(n))"),
    Entry("block_rayleigh", "problem", _block_rayleigh, dict(n=20, k=10, gap=0.2, instance=0),
          {"rsgd": dict(lr=0.3), "radam": dict(lr=0.1)}, 1e-6,
          "k independent Rayleigh quotients, one per column (Oblique(n, k))"),
    Entry("maxcut", "problem", _maxcut, dict(graph="cycle", n=30, instance=0),
          {"rsgd": dict(lr=1.0), "radam": dict(lr=0.1)}, 1e-6,
          "Burer-Monteiro Max-Cut SDP of a cycle, complete or Petersen graph; known SDP value"),
    Entry("thomson", "problem", _thomson, dict(n_points=12, instance=0),
          {"rsgd": dict(lr=0.1), "radam": dict(lr=0.1)}, 1e-8,
          "n_points charges on S^2 at minimal energy (tabulated optima; Oblique(3, n_points))"),
    Entry("karcher_mean", "problem", _karcher_mean, dict(n=20, angle=0.5, instance=0),
          {"rsgd": dict(lr=0.03), "radam": dict(lr=0.1)}, 1e-6,
          "Karcher mean of 2(n-1) points symmetric about a pole (Sphere(n))"),
    Entry("spherical_kmeans", "problem", _spherical_kmeans,
          dict(n_features=5, n_clusters=3, n_per_cluster=40, spread=0.05, temperature=0.02,
               instance=0),
          {"rsgd": dict(lr=0.03), "radam": dict(lr=0.03)}, 1e-6,
          "smoothed spherical k-means of well-separated clusters (Oblique(d, k))"),
    Entry("dictionary_learning", "problem", _dictionary_learning,
          dict(n_features=10, n_atoms=4, n_samples=100, noise=0.0, instance=0),
          {"rsgd": dict(lr=0.003), "radam": dict(lr=0.03)}, 1e-6,
          "unit-norm atoms and codes of low-rank data (Oblique x Euclidean)"),
    Entry("seed_network", "network", _network("seed_network"),
          dict(n_samples=400, noise=0.1, hidden=500, batch_size=32, epochs=20, dtype="float32",
               instance=0),
          {"rsgd": dict(lr=0.1, momentum=0.9), "radam": dict(lr=0.01)}, 0.1,
          "Dense(hidden, relu, unit_norm) + Dense(1, sigmoid) on two moons; cost = training loss"),
    Entry("digits", "network", _network("digits"),
          dict(hidden=64, batch_size=32, epochs=10, dtype="float32", instance=0),
          {"rsgd": dict(lr=0.1, momentum=0.9), "radam": dict(lr=0.003)}, 0.1,
          "Dense(hidden, relu, unit_norm) + Dense(10, softmax) on the 8x8 digits "
          "(needs scikit-learn); cost = training loss"),
)}


def _unknown(what, name, options):
    return ValueError(f"unknown {what} {name!r}; choose from {sorted(options)}")


@functools.lru_cache(maxsize=32)
def _build_cached(spec):
    return PROBLEMS[spec.name].build(**spec.params)


def build_problem(spec):
    """The problem object of a resolved :class:`ProblemSpec` (cached per process)."""
    return _build_cached(spec)


def resolve_strategy(strategy):
    """A checked :class:`StrategySpec` from a name, a pair ``(name, {options})`` or a spec.

    The strategy is built once on ``Sphere(2)``, so that bad option values
    (``retraction="geodesic"``, ``mu=-1``) fail now, not in every run.

    Raises
    ------
    ValueError
        Naming the unknown strategy or option and the accepted ones, or the
        bad value.
    """
    try:
        spec = StrategySpec.coerce(strategy)
    except TypeError as err:
        raise ValueError(str(err)) from None
    if spec.name not in STRATEGY_NAMES:
        raise _unknown("strategy", spec.name, STRATEGY_NAMES)
    accepted = strategy_options(spec.name)
    bad = sorted(set(spec.params) - set(accepted))
    if bad:
        takes = f"it takes {accepted}" if accepted else "it takes no options"
        raise ValueError(f"unknown option(s) {bad} of strategy {spec.name!r}; {takes}")
    try:
        get_strategy(spec.name, Sphere(2), **spec.params)
    except (TypeError, ValueError) as err:
        raise ValueError(f"strategy {spec.label}: {err}") from None
    return spec


def resolve(problem, strategy, optimizer):
    """Check names and options; fill in defaults.

    Returns
    -------
    (ProblemSpec, str, OptimizerSpec, str)
        The resolved problem and its label, the resolved optimizer and its label.

    Raises
    ------
    ValueError
        Naming the unknown problem, parameter, strategy, optimizer or option
        and the accepted ones.
    """
    problem, optimizer = ProblemSpec.coerce(problem), OptimizerSpec.coerce(optimizer)
    if problem.name not in PROBLEMS:
        raise _unknown("problem", problem.name, PROBLEMS)
    entry = PROBLEMS[problem.name]
    bad = sorted(set(problem.params) - set(entry.defaults))
    if bad:
        raise ValueError(f"unknown parameter(s) {bad} of problem {problem.name!r}; "
                         f"it takes {sorted(entry.defaults)}")
    resolve_strategy(strategy)
    if optimizer.name not in OPTIMIZERS:
        raise _unknown("optimizer", optimizer.name, OPTIMIZERS)
    accepted = accepted_options(optimizer.name)
    bad = sorted(set(optimizer.params) - set(accepted))
    if bad:
        raise ValueError(f"unknown option(s) {bad} of optimizer {optimizer.name!r}; "
                         f"it takes {accepted}")
    resolved_problem = ProblemSpec(problem.name, **{**entry.defaults, **problem.params})
    options = {**entry.options.get(optimizer.name, {}), **optimizer.params}
    if optimizer.name in _RULES:
        try:  # bad values (momentum=2) fail now, not in every run
            _RULES[optimizer.name](**options)
        except (TypeError, ValueError) as err:
            raise ValueError(f"optimizer {optimizer.label}: {err}") from None
    resolved_optimizer = OptimizerSpec(optimizer.name, **options)
    return resolved_problem, problem.label, resolved_optimizer, optimizer.label


def default_tol(problem_label):
    """The registry's tolerance for a problem label such as ``"rayleigh(n=100)"``; else 1e-6."""
    entry = PROBLEMS.get(problem_label.split("(", 1)[0])
    return 1e-6 if entry is None else entry.tol


def check_tol(tol):
    """A summary tolerance as a float: a finite number >= 0 (a string or a bool is refused,
    not parsed; a negative tolerance, which no distance reaches, is an error)."""
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real):
        raise TypeError(f"tol must be a number >= 0, got {type(tol).__name__} {tol!r}")
    if not 0.0 <= float(tol) < math.inf:
        raise ValueError(f"tol must be a finite number >= 0, got {float(tol)!r}")
    return float(tol)
