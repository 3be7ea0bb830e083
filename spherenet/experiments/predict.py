"""The predictions of :mod:`spherenet.theory` for the cells of a grid.

For a problem with a known minimizer (``solution()``, as the Rayleigh
quotients have), :func:`predicted_rates` gives the local rate of each
(strategy, optimizer) cell that the theory covers: ``rsgd`` without Nesterov
under ``riemannian`` (any retraction: they agree to first order), ``rsgd``
without momentum under ``projection`` (``epsilon=0``). Other cells (reparam,
whose rate depends on the norm its run reaches; penalty; momentum under
projection; the solvers) get no prediction.
"""

import math

from .. import theory
from .problems import PROBLEMS, build_problem, resolve
from .runner import _as_list, _as_lrs, _sweep
from .summary import format_table, number_text, spread_text

__all__ = ["predicted_rates", "predicted_limits", "rate_table"]


def _model(problem):
    """The local model at the problem's minimizer, or None (no solution, degenerate minimum)."""
    solution = problem.solution() if hasattr(problem, "solution") else None
    if solution is None:
        return None
    try:
        model = theory.local_model(problem.cost, problem.manifold, solution,
                                   grad=getattr(problem, "egrad", None),
                                   hess=getattr(problem, "ehess", None))
    except (ValueError, NotImplementedError):
        return None
    return model if model.smallest > 1e-8 * max(1.0, abs(model.largest)) else None


def _rate(model, strategy, optimizer):
    if optimizer.name != "rsgd" or optimizer.params.get("nesterov", False):
        return None
    lr = optimizer.params.get("lr")
    momentum = float(optimizer.params.get("momentum", 0.0))
    if lr is None:
        return None
    if strategy.name == "riemannian":
        return model.rate("riemannian", lr=lr, momentum=momentum)
    if (strategy.name == "projection" and momentum == 0.0 and model.radial is not None
            and not strategy.params.get("epsilon", 0.0)):
        return model.rate("projection", lr=lr)
    return None


def predicted_rates(problems, strategies, optimizers, lrs=None):
    """Predicted local rates of the cells of a grid, where the theory gives one.

    Parameters
    ----------
    problems, strategies, optimizers, lrs
        As for :func:`~spherenet.experiments.compare`.

    Returns
    -------
    dict
        Problem label -> {(strategy label, optimizer label): rate}, the form
        :func:`~spherenet.experiments.plot_results` takes; the rate is that
        of the distance to the minimizer (and of the gradient norm).

    Examples
    --------
    >>> from spherenet.experiments import predicted_rates
    >>> rates = predicted_rates("rayleigh", ["riemannian", "reparam"], "rsgd", lrs=[0.1, 0.5])
    >>> sorted(rates["rayleigh"])
    [('riemannian', 'rsgd(lr=0.1)'), ('riemannian', 'rsgd(lr=0.5)')]
    """
    from .problems import resolve_strategy

    optimizers = _as_list(optimizers, "optimizer")
    if lrs is not None:
        optimizers = _sweep(optimizers, _as_lrs(lrs))
    strategies = [resolve_strategy(s) for s in _as_list(strategies, "strategy")]
    out = {}
    for problem in _as_list(problems, "problem"):
        label, model = None, None
        for strategy in strategies:
            for optimizer in optimizers:
                spec, label, resolved, optimizer_label = resolve(problem, strategy, optimizer)
                if model is None:  # networks: no known minimizer (and costly to build)
                    model = (PROBLEMS[spec.name].kind == "problem"
                             and _model(build_problem(spec))) or False
                rate = _rate(model, strategy, resolved) if model else None
                out.setdefault(label, {})
                if rate is not None:
                    out[label][strategy.label, optimizer_label] = rate
    return out


def predicted_limits(problem, strategies, momentum=0.0):
    """Predicted largest stable step sizes of RSGD under each strategy (where known).

    Parameters
    ----------
    problem : str, ProblemSpec or (name, params)
    strategies : list
    momentum : float, default 0

    Returns
    -------
    dict
        Strategy label -> step size limit: ``2(1 + momentum)/L`` for
        riemannian, :func:`spherenet.theory.projection_lr_limit` for
        projection (without momentum; ``inf`` when there is none), ``inf``
        for reparam (its norm grows until the effective step is stable).
        Strategies without a prediction, and problems without a
        nondegenerate known minimizer, are left out.

    Examples
    --------
    >>> from spherenet.experiments import predicted_limits
    >>> limits = predicted_limits("rayleigh", ["riemannian", "projection", "reparam"])
    >>> round(limits["riemannian"], 3), limits["projection"], limits["reparam"]
    (1.013, inf, inf)
    """
    from .problems import resolve_strategy

    spec, _, _, _ = resolve(problem, "riemannian", "rsgd")
    model = PROBLEMS[spec.name].kind == "problem" and _model(build_problem(spec))
    limits = {}
    if not model:
        return limits
    for strategy in (resolve_strategy(s) for s in _as_list(strategies, "strategy")):
        if strategy.name == "riemannian":
            limits[strategy.label] = theory.heavy_ball_lr_limit(model.eigenvalues, momentum)
        elif (strategy.name == "projection" and momentum == 0 and model.radial is not None
              and not strategy.params.get("epsilon", 0.0)):
            limits[strategy.label] = theory.projection_lr_limit(model.eigenvalues, model.radial)
        elif strategy.name == "reparam":
            limits[strategy.label] = math.inf
    return limits


def rate_table(summary, predicted):
    """Lines of a table: measured rates (median [min, max] over seeds) beside predicted ones.

    Parameters
    ----------
    summary : Summary
    predicted : dict
        As :func:`predicted_rates` returns. A cell whose measure is the cost
        gap is compared with the square of the predicted rate; a predicted
        rate >= 1 is shown as unstable, without a difference.

    Returns
    -------
    list of str
        Empty when no cell has a prediction.

    Examples
    --------
    >>> from spherenet.experiments import compare, predicted_rates, rate_table
    >>> results = compare("rayleigh", "riemannian", "rsgd", seeds=2, budget=200,
    ...                   executor="serial")
    >>> lines = rate_table(results.summary(), predicted_rates("rayleigh", "riemannian", "rsgd"))
    >>> [cell.strip() for cell in lines[2].split("|")][:4]
    ['rayleigh', 'rsgd', 'riemannian', 'distance']
    >>> lines[2].split("|")[5].strip()  # max |1 - 0.5 * 2 (1 - lambda_i)|, gap 0.2
    '0.800'
    """
    rows = []
    for row in summary:
        rate = (predicted.get(row["problem"]) or {}).get((row["strategy"], row["optimizer"]))
        if rate is None:
            continue
        expected = rate * rate if row["measure"] == "gap" else rate
        measured = row["rate_median"]
        # At or above 1 the local model predicts no convergence, not a rate to compare with
        # (on a sphere the distance is bounded: an unstable run wanders instead).
        stable = 0 < expected < 1
        difference = (measured - expected) / expected if stable else math.nan
        rows.append([row["problem"], row["optimizer"], row["strategy"], row["measure"],
                     spread_text(measured, row["rate_min"], row["rate_max"], "f"),
                     number_text(expected, "f") + ("" if stable else " (unstable)"),
                     "-" if math.isnan(difference) else f"{100 * difference:+.1f}%"])
    if not rows:
        return []
    return format_table(["problem", "optimizer", "strategy", "measure", "measured rate",
                         "predicted", "difference"], rows)
