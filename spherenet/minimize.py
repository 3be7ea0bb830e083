"""``minimize``: one scipy-like entry point to every solver, step rule and strategy."""

import difflib
import inspect
import math
import numbers
import types
import weakref

import numpy as np

from . import _tangent
from .manifolds import Manifold, Product
from .manifolds.base import as_rng
from .optim._loop import OptimizeResult, Recorder, Stopper, default_ctol
from .optim._problem import Problem, check_cost_value
from .optim._solver import budgeted, evaluate, failed, start
from .optim.bb import barzilai_borwein
from .optim.cg import conjugate_gradient
from .optim.lbfgs import lbfgs
from .optim.rules import RAdam, RSGD, StepRule
from .optim.sd import steepest_descent
from .optim.finite_sum import as_data, check_batch_size, num_samples
from .optim.stochastic import RSRG, RSVRG, VarianceReduced, run_finite_sum
from .optim.trust_regions import trust_regions
from .strategies import Strategy, get_strategy

__all__ = ["minimize", "OptimizeResult", "METHODS", "STOCHASTIC_METHODS"]

_SOLVERS = {"sd": steepest_descent, "cg": conjugate_gradient, "trust-regions": trust_regions,
            "lbfgs": lbfgs, "bb": barzilai_borwein}
_RULES = {"rsgd": RSGD, "radam": RAdam}
METHODS = tuple(_SOLVERS) + tuple(_RULES)
_STOCHASTIC = {"rsvrg": RSVRG, "rsrg": RSRG}
#: Methods for finite-sum costs only (``data=``), besides the step rules of METHODS.
STOCHASTIC_METHODS = tuple(_STOCHASTIC)


def _check_options(method, target, options, skip):
    """Refuse option names that ``target`` (a solver or a step rule class) does not take."""
    if not options:
        return  # nothing to check (reading a signature costs tens of microseconds)
    names = list(inspect.signature(target).parameters)[skip:]
    unknown = sorted(set(options) - set(names))
    if unknown:
        # A misspelled option of the method, or of minimize itself (batchsize=, epoch=),
        # lands here: name the likely one.
        known = names + [name for name in inspect.signature(minimize).parameters
                         if name != "method_options"]
        likely = [match for name in unknown
                  for match in difflib.get_close_matches(name, known, n=1, cutoff=0.75)]
        hint = f" (did you mean {', '.join(likely)}?)" if likely else ""
        raise TypeError(f"method {method!r} takes the options {names}, got unknown "
                        f"option(s) {unknown}{hint}")


# _positional's answers for plain Python functions, by function (weakly: a lambda made
# per call does not pile up), with the parts of the function the answer was read from.
_POSITIONAL = weakref.WeakKeyDictionary()


def _positional(fun):
    """(required, most) positional arguments of ``fun``, most None for ``*args``; None when
    the signature cannot be read (some builtins): then nothing is checked.

    For a plain function the answer is kept, and reused while the function's code,
    defaults and ``__signature__``/``__wrapped__`` are the same objects (the usual
    case: the same cost passed to many runs).
    """
    if fun.__class__ is types.FunctionType:
        # A function's __signature__ and __wrapped__, when set, are in its __dict__.
        attributes = fun.__dict__
        code, defaults, kwdefaults = fun.__code__, fun.__defaults__, fun.__kwdefaults__
        signature, wrapped = attributes.get("__signature__"), attributes.get("__wrapped__")
        kept = _POSITIONAL.get(fun)
        if kept is not None:
            k = kept[0]
            if (k[0] is code and k[1] is defaults and k[2] is kwdefaults and k[3] is signature
                    and k[4] is wrapped):
                return kept[1]
        counts = _read_positional(fun)
        _POSITIONAL[fun] = ((code, defaults, kwdefaults, signature, wrapped), counts)
        return counts
    return _read_positional(fun)


def _read_positional(fun):
    try:
        parameters = inspect.signature(fun).parameters.values()
    except (TypeError, ValueError):
        return None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    positional = [p for p in parameters if p.kind in kinds]
    required = sum(p.default is inspect.Parameter.empty for p in positional)
    variadic = any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)
    return required, None if variadic else len(positional)


def _check_signature(name, fun, finite_sum, caller="minimize"):
    """A cost or grad that cannot be called the way minimize will call it, named up front
    (a cost(x) given data=, or a finite-sum cost(x, batch) without), not as Python's
    error about positional arguments from deep in the first evaluation."""
    counts = None if fun is None else _positional(fun)
    if counts is None:
        return
    required, most = counts
    plural = lambda k: f"{k} positional argument{'' if k == 1 else 's'}"  # noqa: E731
    if finite_sum and (required > 2 or (most is not None and most < 2)):
        takes = plural(most if most is not None and most < 2 else required)
        raise TypeError(
            f"with data=, {name} is called as {name}(x, batch) (batch: a mini-batch of the "
            f"samples, the rows of data), but {name} takes {takes}; write {name}(x, batch) "
            f"as the mean over the samples of batch, or leave data= out")
    if not finite_sum and required > 1:
        names = ", ".join(list(inspect.signature(fun).parameters)[:required])
        if caller == "minimize":
            calls, hint = "without data= minimize calls", "give the samples as data="
        else:
            calls, hint = f"{caller} calls", f"give the full cost, lambda x: {name}(x, data)"
        raise TypeError(f"{name} takes {required} required positional arguments ({names}), but "
                        f"{calls} {name}(x); for a finite-sum {name}(x, batch) {hint}")


def _check_rng(rng, needed=True):
    """A numpy Generator from ``rng``, checked even when x0 is given (it would be ignored).

    None stays None when no generator is ``needed`` (x0 given, no data): a fresh
    generator seeds itself from the operating system, which costs more than a
    short run's iterations.
    """
    if rng is None and not needed:
        return None
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng < 0:
        raise ValueError(f"rng must be None, an int >= 0 or a numpy.random.Generator, got {rng}")
    if isinstance(rng, bool):
        raise TypeError("rng must be None, an int >= 0 or a numpy.random.Generator, got bool")
    return as_rng(rng)


def _check_full_batch(rule, batch_size, epochs, replace, full_cost):
    """Without data: refuse the finite-sum methods and options."""
    if isinstance(rule, VarianceReduced):
        name = type(rule).__name__.lower()
        raise ValueError(f"method {name!r} minimizes a finite sum: give the samples as data= "
                         "(and cost(x, batch))")
    given = [name for name, value, default in (("batch_size", batch_size, None),
                                               ("epochs", epochs, None),
                                               ("replace", replace, False),
                                               ("full_cost", full_cost, True))
             if value is not default]
    if given:
        raise ValueError(f"{', '.join(given)} only apply to a finite-sum cost: give data= too, "
                         "or leave them out")


def _check_finite_sum(method, solver, hess, maxfev, data, batch_size, epochs, replace, full_cost):
    """With data: the method and options that make sense, and the data checked."""
    if solver is not None:
        raise ValueError(
            f"method {method!r} needs the full cost at every step (line search or model); "
            f"with data= use one of {list(_RULES) + list(STOCHASTIC_METHODS)} or a StepRule")
    if hess is not None:
        raise ValueError("hess is not used with data=: the stochastic methods use gradients only")
    if maxfev is not None:
        raise ValueError("maxfev is not supported with data=: bound the run with epochs= or "
                         "maxiter= (mini-batch steps)")
    data = as_data(data)
    batch_size = check_batch_size(batch_size, num_samples(data))
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0 or None, got {epochs!r}")
        epochs = int(epochs)
    for name, value in (("replace", replace), ("full_cost", full_cost)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be True or False, got {type(value).__name__}")
    return data, batch_size, epochs, bool(replace), bool(full_cost)


@budgeted
def _run_rule(problem, x0, stopper, recorder, rule):
    """Full-batch iterations of a step rule, with the shared stopping tests and history."""
    geometry = problem.geometry
    x = x0
    f, egrad, _, grad_norm = start(problem, recorder, x)
    state = rule.init(geometry, x)
    it, f_old, step = 0, None, None
    while True:
        stop = stopper.check(it, recorder.elapsed(), grad_norm, f_old, f, step, x)
        if stop:
            return recorder.result(x, f, grad_norm, it, *stop)
        new_x, state = rule.step(geometry, x, egrad, state)
        it += 1
        if not _tangent.all_finite(new_x):
            return failed(recorder, x, f, grad_norm, it, "point")
        new = evaluate(problem, new_x)
        if new is None:
            return failed(recorder, x, f, grad_norm, it, "cost or gradient")
        step = geometry.dist(x, new_x)
        f_old = f
        taken = geometry.inverse_retr(x, new_x) if recorder.telemetry else None
        x, (f, egrad, _, grad_norm) = new_x, new
        recorder.record(it, x, f, grad_norm, step, taken)


def minimize(cost, manifold, x0=None, method="cg", strategy="riemannian", grad=None, hess=None,
             maxiter=None, gtol=1e-6, ftol=0.0, xtol=1e-10, maxtime=math.inf, callback=None,
             verbose=0, rng=None, telemetry=False, ctol=None, maxfev=None, data=None,
             batch_size=None, epochs=None, replace=False, full_cost=True, **method_options):
    """Minimize ``cost`` over ``manifold``, in the manner of ``scipy.optimize.minimize``.

    Parameters
    ----------
    cost : callable
        ``cost(x) -> float``; x is an array (a tuple of arrays on a
        :class:`~spherenet.Product`). Written with ``autograd.numpy`` when
        gradients are left to autograd. With ``data``: ``cost(x, batch) ->
        float``, the *mean* over the samples of ``batch`` of a per-sample
        cost, so that ``cost(x, data)`` is the full cost (see "Finite sums"
        below).
    manifold : Manifold
        The constraint set.
    x0 : array or tuple, optional
        Starting point on the manifold (checked: a float32 or float64 array
        of the manifold's shape, finite, on the manifold; a tuple of them,
        or a list, on a :class:`~spherenet.Product`); random from ``rng`` if
        None. Its dtype is kept; it is never modified.
    method : str or StepRule
        One of "cg", "sd", "trust-regions", "lbfgs", "bb", "rsgd", "radam",
        "rsvrg", "rsrg" (default "cg"):
        conjugate gradients, steepest descent, Riemannian trust regions,
        limited-memory BFGS (:func:`~spherenet.optim.lbfgs`: ``memory=``,
        cautious update), Barzilai-Borwein steps with a nonmonotone line
        search (:func:`~spherenet.optim.barzilai_borwein`: ``bb_rule=``), or
        full-batch iterations of a step rule (``lr=`` and the rule's other
        options go in ``method_options``), or a step rule instance. With
        ``data``: mini-batch iterations of a step rule ("rsgd", "radam", or
        an instance), Riemannian SVRG ("rsvrg", options ``lr``, ``inner``,
        ``snapshot``: :class:`~spherenet.optim.RSVRG`) or R-SRG ("rsrg",
        options ``lr``, ``inner``: :class:`~spherenet.optim.RSRG`), or an
        instance of these two.
    strategy : str or Strategy, default "riemannian"
        How the constraint is kept: "riemannian", "projection", "reparam",
        "penalty", "none" (see :mod:`spherenet.strategies`), or an instance
        such as ``Penalty(manifold, mu=100)``.
    grad : callable, optional
        Euclidean gradient ``grad(x)`` (with ``data``: ``grad(x, batch)``);
        autograd when None.
    hess : callable, optional
        Euclidean Hessian-vector product ``hess(x, u)``; autograd when None.
    maxiter : int, optional
        Most iterations (with ``data``: mini-batch steps). Default 1000; with
        ``data`` and ``epochs``, no bound other than the epochs.
    gtol : float, default 1e-6
        Stop when the gradient norm (in the strategy's geometry) is <= gtol.
        Below some level the dtype's rounding of the cost hides all progress
        (in float32, often above 1e-6): cost-based solvers (sd, cg,
        trust-regions, lbfgs, bb) then stop at this *precision floor* with status 6,
        ``success=False`` and a message giving the gradient norm reached
        (see ``Stopper`` in ``spherenet.optim._loop``).
    ftol : float, default 0
        Stop when ``|f_k - f_{k+1}| <= ftol * max(|f_k|, |f_{k+1}|, 1)``.
    xtol : float, default 1e-10
        Stop when the step length is <= xtol.
    maxtime : float, default inf
        Seconds.
    maxfev : int, optional
        Most cost evaluations: ``nfev <= maxfev`` exactly. The evaluation
        that would exceed it is not made; the run stops with status 7 and
        returns the last iterate at which the cost and gradient are known
        (an unfinished line search is dropped). Counted as ``nfev``: every
        call of the cost, alone or with its gradient; Hessian-vector products
        and trust regions' gradient-only evaluations are not. At least 1 (the
        evaluation at x0); None (default): no limit.
    ctol : float, optional
        Constraint tolerance of a successful result: ``success`` is True only
        when the run converged (gtol or ftol) *and* every constrained factor
        of ``x`` has | ||x_k|| - 1 | <= ctol, whatever the strategy. Default
        max(1e-6, 100 eps of the dtype): 1e-6 for float64, 1.2e-5 for
        float32. The riemannian, projection and reparam strategies meet it to
        rounding; penalty (whose minimizer is off the sphere by about 1/mu)
        and none usually do not, and then report ``success=False`` with a
        message giving the violation and what to change (raise mu, or keep
        the constraint with strategy="riemannian"), even when the gradient
        test passed (``status`` 0 still says that it did).
    callback : callable, optional
        ``callback(x)`` after every iteration with the current weights;
        returning True stops the run.
    verbose : int, default 0
        1 prints a summary, 2 a line per iteration.
    rng : None, int or numpy.random.Generator
        Seeds the random starting point.
    telemetry : bool, default False
        Also record, per step, the geometric health numbers of
        :func:`spherenet.optim.telemetry`: tangency residual of the step,
        norm drift, chordal step length, retraction-versus-exp gap and
        transport isometry defect. Off, they cost nothing.
    data : array or tuple of arrays, optional
        The samples of a finite-sum cost, on the leading axis of every array
        (e.g. ``(X, y)``); numeric, finite, at least one sample. Selects the
        stochastic methods.
    batch_size : int, optional
        Samples per mini-batch, in [1, n]; default 1. Only with ``data``.
    epochs : int, optional
        Most epochs (see "Finite sums"); None: bounded by ``maxiter`` only.
    replace : bool, default False
        Draw mini-batches with replacement (see
        :class:`~spherenet.optim.finite_sum.BatchSampler`).
    full_cost : bool, default True
        Evaluate the full cost and gradient at the end of every epoch (one
        pass over the data), for ``epoch_history`` and the gtol and ftol
        tests; False leaves both tests out for rsgd and radam (rsvrg and
        rsrg compute the full gradient of each epoch anyway).
    **method_options
        Passed to the solver (e.g. ``beta_rule="PR+"`` for cg, ``radius=`` for
        trust regions, ``memory=`` for lbfgs, ``bb_rule=`` for bb) or to the step rule (``lr=``, ``momentum=``, ...).

    Returns
    -------
    OptimizeResult
        ``x, fun, nit, nfev, ngev, nhev, grad_norm, violation, success,
        status, message, history``. If the cost or gradient becomes NaN or
        Inf the result is unsuccessful, says where, and holds the last finite
        point. With ``data`` also ``epoch_history``, ``nepoch`` (epochs
        completed) and ``nsamples`` (sample gradients evaluated: n for a
        full gradient, the batch's size for a mini-batch one); ``fun`` and
        ``grad_norm`` are the full cost and gradient norm at ``x``.

    Notes
    -----
    **Finite sums.** With ``data``, one iteration is one step from one
    mini-batch drawn by a seeded
    :class:`~spherenet.optim.finite_sum.BatchSampler` (``rng`` draws x0
    first, when it is not given, then the batches). An epoch is
    ``ceil(n / batch_size)`` iterations for rsgd and radam (one pass over the
    data without replacement, as many samples with it) and one outer
    iteration for rsvrg and rsrg (see :mod:`spherenet.optim.stochastic`).
    A step-size schedule ``lr(k)`` is called with the iteration count k.
    Gradients come from autograd on ``cost(x, batch)`` (with respect to x),
    or from ``grad(x, batch)``, through the strategy as for full batches.
    ``history`` has a row per iteration: row k holds the mini-batch cost
    and gradient norm that step k was computed from (at the iterate before
    it; for rsvrg and rsrg the norm of the variance-reduced estimate), with
    the violation, step size and angle of the iterate it reached; row 0 the
    full cost and gradient norm at x0. ``epoch_history`` has a row per
    epoch (and one for x0): ``epoch``, ``iteration``, the full ``cost`` and
    ``grad_norm`` at the epoch's end (NaN with ``full_cost=False``), the
    cumulated ``samples`` and ``time``. Stopping: gtol (on the full gradient
    norm), ftol (on the full cost between epochs) and xtol (on the distance
    moved over the epoch: a mini-batch step's length says nothing of
    stationarity) at the end of an epoch; epochs; maxiter, maxtime and the
    callback after every iteration.
    ``hess`` and ``maxfev`` do not apply, nor do the solvers that need the
    full cost at every step (sd, cg, trust-regions, lbfgs, bb).

    Raises
    ------
    ValueError
        Unknown method or strategy; a negative or NaN maxiter, tolerance or
        maxfev; bad ``data`` (no samples, NaN, arrays with different numbers
        of samples), ``batch_size`` outside [1, n], a method or option that
        does not apply with ``data`` (or needs it); x0 of the wrong shape,
        not finite or off the manifold; a cost that is not a real scalar (an array, even of shape (1,); a
        complex number; a string) or is not finite at x0; a gradient of the
        wrong shape or not real. All before the first iteration.
    TypeError
        A manifold, x0 (dtype other than float32/float64, not an array),
        callable, rng or option of the wrong type; an option name that the
        method does not take.

    Examples
    --------
    The leading eigenvector of a symmetric matrix, on the sphere:

    >>> import numpy as np
    >>> from spherenet import Sphere, minimize
    >>> A = np.diag([1.0, 2.0, 5.0])
    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), rng=0)
    >>> res.success, round(-res.fun, 8)
    (True, 5.0)

    A penalty keeps the weights only near the sphere (here at
    ||x|| = sqrt(1 + 5/2), the penalized minimizer), and says so:

    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), strategy="penalty", rng=0)
    >>> res.status, res.success, round(res.violation, 4)
    (0, False, 0.8708)
    >>> print(res.message)  # doctest: +ELLIPSIS
    gradient norm ... <= gtol 1.0e-06; but the weights are off the sphere by up to 0.871 ...raise mu...

    A finite sum: Oja's rule for the leading principal direction of samples
    is ``rsgd`` under the projection strategy, one sample at a time:

    >>> import autograd.numpy as anp
    >>> X = np.random.default_rng(0).standard_normal((500, 3)) * [2.0, 1.0, 0.5]
    >>> cost = lambda w, batch: -0.5 * anp.mean(anp.dot(batch, w) ** 2)
    >>> res = minimize(cost, Sphere(3), method="rsgd", strategy="projection", lr=0.01,
    ...                data=X, batch_size=1, epochs=3, rng=0)
    >>> res.nit, res.nepoch, bool(abs(res.x[0]) > 0.99)
    (1500, 3, True)
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"manifold must be a spherenet Manifold, got {type(manifold).__name__}")
    for name, fun in (("cost", cost), ("grad", grad), ("hess", hess), ("callback", callback)):
        if not (callable(fun) or (fun is None and name != "cost")):
            raise TypeError(f"{name} must be callable{'' if name == 'cost' else ' or None'}, "
                            f"got {type(fun).__name__}")
    if isinstance(method, StepRule):
        rule, solver = method, None
        if method_options:
            raise TypeError("method options cannot be given with a StepRule instance")
    elif isinstance(method, str) and method in _RULES:
        _check_options(method, _RULES[method], method_options, skip=0)
        rule, solver = _RULES[method](**method_options), None
    elif isinstance(method, str) and method in _SOLVERS:
        _check_options(method, _SOLVERS[method], method_options, skip=4)
        rule, solver = None, _SOLVERS[method]
    elif isinstance(method, VarianceReduced):
        rule, solver = method, None
        if method_options:
            raise TypeError(f"method options cannot be given with a {type(method).__name__} "
                            "instance")
    elif isinstance(method, str) and method in _STOCHASTIC:
        _check_options(method, _STOCHASTIC[method], method_options, skip=0)
        rule, solver = _STOCHASTIC[method](**method_options), None
    else:
        raise ValueError(f"method must be one of {list(METHODS + STOCHASTIC_METHODS)} or a "
                         f"StepRule, got {method!r}")
    for name, fun in (("cost", cost), ("grad", grad)):
        _check_signature(name, fun, data is not None)
    if data is None:
        maxiter = 1000 if maxiter is None else maxiter
        _check_full_batch(rule, batch_size, epochs, replace, full_cost)
    else:
        data, batch_size, epochs, replace, full_cost = _check_finite_sum(
            method, solver, hess, maxfev, data, batch_size, epochs, replace, full_cost)
        if maxiter is None:
            maxiter = math.inf if epochs is not None else 1000
    strat = get_strategy(strategy, manifold)
    rng = _check_rng(rng, needed=x0 is None or data is not None)
    if x0 is None:
        x0 = manifold.random_point(rng)
    else:
        if isinstance(manifold, Product) and isinstance(x0, list):
            x0 = tuple(x0)  # pymanopt's product points are lists
        manifold.check_point(x0, name="x0")  # validated once, here; the loop runs unchecked
    stopper = Stopper(maxiter, gtol, ftol, xtol, maxtime,
                      None if callback is None else (lambda z: callback(strat.to_weights(z))),
                      maxfev=maxfev)
    if data is not None:
        return run_finite_sum(cost, grad, strat, data, strat.to_variable(x0), stopper, rule, rng,
                              batch_size, replace, epochs, full_cost, verbose, telemetry,
                              default_ctol(x0) if ctol is None else ctol)
    if grad is None:
        egrad = None
    elif type(strat).egrad is Strategy.egrad and type(strat).to_weights is Strategy.to_weights:
        egrad = grad  # the variable is the weights: the user's gradient as it is, no wrappers
    else:
        egrad = lambda z: strat.egrad(grad, z)  # noqa: E731
    ehess = None
    if hess is not None and strat.supports_user_hessian():
        ehess = lambda z, u: strat.ehess(hess, z, u)  # noqa: E731
    strategy_cost = strat.cost(cost)
    if strategy_cost is not cost:
        # The strategy computes with the cost's value (a penalty adds to it):
        # check it first, so that a bad value is named, not a failed addition.
        strategy_cost = strat.cost(lambda z: check_cost_value(cost(z)))
    # The base Strategy.measure is the norm of rgrad in the geometry, Problem's own
    # default: leave it out, one call less per iteration.
    measure = None if type(strat).measure is Strategy.measure else strat.measure
    problem = Problem(strategy_cost, strat.geometry, egrad, ehess, measure=measure)
    recorder = Recorder(problem, strat, verbose, telemetry,
                        default_ctol(x0) if ctol is None else ctol)
    z0 = strat.to_variable(x0)
    if solver is not None:
        return solver(problem, z0, stopper, recorder, **method_options)
    return _run_rule(problem, z0, stopper, recorder, rule)
