"""Optimizers: step rules usable in any loop, and solvers that own their loop.

Step rules (:class:`RSGD`, :class:`RAdam`) are configuration plus two pure
functions, ``init`` and ``step``; solvers (:func:`steepest_descent`,
:func:`conjugate_gradient`, :func:`trust_regions`, :func:`lbfgs`,
:func:`barzilai_borwein`) run a whole minimization
and are normally reached through :func:`spherenet.minimize`. For finite-sum
costs (``minimize(..., data=...)``) the step rules run on mini-batches, beside
the variance-reduced :class:`RSVRG` and :class:`RSRG`
(:mod:`~spherenet.optim.stochastic`, :mod:`~spherenet.optim.finite_sum`).
"""

from . import finite_sum, schedules, stochastic
from ._loop import History, OptimizeResult, telemetry
from .bb import barzilai_borwein
from .cg import conjugate_gradient
from .decoupled import DecoupledWeightDecay
from .lbfgs import HintLineSearch, lbfgs
from .line_search import AdaptiveLineSearch, BacktrackingLineSearch
from .rules import RAdam, RSGD, Running, StepRule
from .finite_sum import BatchSampler
from .sd import steepest_descent
from .stochastic import RSRG, RSVRG
from .spectrum import HessianSpectrum, hessian_spectrum
from .trust_regions import trust_regions, truncated_cg

__all__ = [
    "RSGD",
    "RAdam",
    "DecoupledWeightDecay",
    "StepRule",
    "Running",
    "RSVRG",
    "RSRG",
    "BatchSampler",
    "schedules",
    "finite_sum",
    "stochastic",
    "telemetry",
    "History",
    "OptimizeResult",
    "steepest_descent",
    "conjugate_gradient",
    "trust_regions",
    "lbfgs",
    "barzilai_borwein",
    "truncated_cg",
    "hessian_spectrum",
    "HessianSpectrum",
    "BacktrackingLineSearch",
    "AdaptiveLineSearch",
    "HintLineSearch",
]
