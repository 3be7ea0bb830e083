"""Riemannian Barzilai-Borwein steps with a nonmonotone line search (Iannazzo & Porcelli 2018)."""

import collections

from .. import _tangent
from ._solver import advance, budgeted, start, stopped
from .lbfgs import HintLineSearch, _check_positive, _displaced

BB_RULES = ("alternate", "bb1", "bb2")
NONMONOTONE_RULES = ("max", "average")


def bb_step(rule, it, ss, sy, yy, step_min, step_max):
    """The Barzilai-Borwein step length from <s, s>, <s, y>, <y, y>, clipped.

    bb1 = <s, s> / <s, y>, bb2 = <s, y> / <y, y>; "alternate" takes bb1
    after odd-numbered iterations ``it`` (1, 3, ...) and bb2 after even
    ones. Without positive curvature (<s, y> <= 0) the step is ``step_max``.
    """
    if not sy > 0.0:
        return step_max
    if rule == "bb1" or (rule == "alternate" and it % 2 == 1):
        value = ss / sy
    else:
        value = sy / yy
    return min(step_max, max(step_min, value))


def _barzilai_borwein(problem, x0, stopper, recorder, bb_rule="alternate", step0=None,
                     step_min=1e-3, step_max=1e3, nonmonotone_memory=10,
                     sufficient_decrease=1e-4, contraction=0.5, max_trials=25,
                     nonmonotone_rule="max", nonmonotone_eta=0.85):
    """Minimize by Riemannian Barzilai-Borwein steps with a nonmonotone line search.

    Iteration k moves along d_k = -lambda_k grad f(x_k): a backtracking
    search from t = 1 finds the first t = contraction^j with the nonmonotone
    Armijo condition

    .. math::

        f(R_{x_k}(t d_k)) \\le C_k
            - c \\, t \\lambda_k \\|\\operatorname{grad} f(x_k)\\|^2,

    c = ``sufficient_decrease``, whose reference value C_k is, by default
    (``nonmonotone_rule="max"``), the largest of the last M costs
    (Grippo, Lampariello & Lucidi 1986), M = ``nonmonotone_memory``:

    .. math::

        C_k = \\max_{0 \\le j < \\min(k + 1, M)} f(x_{k-j}),

    as in Iannazzo & Porcelli (2018), Algorithm 1, Manopt's
    ``barzilaiborwein`` (written by the second author: the maximum of the
    last ``ls_nmsteps`` costs) and Manopt.jl's ``NonmonotoneLinesearch``.
    With ``nonmonotone_rule="average"`` it is the average of Zhang & Hager
    (2004), used with BB steps on the Stiefel manifold by Wen & Yin (2013):
    C_0 = f(x_0), Q_0 = 1 and, after each step,

    .. math::

        Q_{k+1} = \\eta Q_k + 1, \\qquad
        C_{k+1} = \\frac{\\eta Q_k C_k + f(x_{k+1})}{Q_{k+1}},

    eta = ``nonmonotone_eta`` (0: the monotone Armijo search; 1: the mean of
    all costs so far). With the step taken, s_k = -t lambda_k T(grad f(x_k))
    (under the projection strategy: the displacement x_{k+1} - x_k, see
    ``_displaced`` in ``spherenet/optim/lbfgs.py``) and
    y_k = grad f(x_{k+1}) - T(grad f(x_k)) (T: the geometry's vector
    transport), the next step length is

    .. math::

        \\lambda^{BB1} = \\frac{\\langle s_k, s_k\\rangle}{\\langle s_k, y_k\\rangle},
        \\qquad
        \\lambda^{BB2} = \\frac{\\langle s_k, y_k\\rangle}{\\langle y_k, y_k\\rangle},

    clipped to [step_min, step_max] (step_max when <s_k, y_k> <= 0), as in
    Iannazzo & Porcelli (2018) and Manopt.

    Parameters
    ----------
    problem : spherenet.optim._problem.Problem
    x0 : point
    stopper, recorder : the shared stopping tests and history.
    bb_rule : {"alternate", "bb1", "bb2"}, default "alternate"
        BB1 (long step), BB2 (short step), or the two in turn, BB1 after
        the first step (Manopt's "direct", "inverse", "alternate").
    step0 : float, optional
        lambda_0; None (default): 1 / ||grad f(x_0)||, a first trial step of
        length 1. (Manopt takes 0.1.)
    step_min, step_max : float, default 1e-3 and 1e3
        The clipping interval of lambda (Manopt's defaults). lambda is a
        step per unit of gradient, so these bounds depend on the scale of
        the cost: widen them for a cost whose curvature is far from 1e-3 to
        1e3 (a BB step is an inverse curvature). A step_max much larger
        than needed costs backtracking trials after every step with
        <s, y> <= 0, and a failed search when ``max_trials`` halvings do
        not bring it back to scale.
    nonmonotone_memory : int, default 10
        M, the number of recent costs whose maximum is the Armijo reference
        (1 gives the monotone Armijo search); Manopt's ``ls_nmsteps``. Read
        by the "max" rule only.
    sufficient_decrease : float, default 1e-4
    contraction : float, default 0.5
    max_trials : int, default 25
        Of the backtracking search.
    nonmonotone_rule : {"max", "average"}, default "max"
        The reference value C_k: the maximum of the last M costs (the
        paper's and Manopt's), or Zhang and Hager's weighted average.
    nonmonotone_eta : float, default 0.85
        eta in [0, 1] of the "average" rule (Zhang and Hager's choice);
        read by that rule only.

    Returns
    -------
    OptimizeResult
        ``x`` is the last iterate (not necessarily the best one seen: the
        method is nonmonotone).

    Raises
    ------
    ValueError, TypeError
        An unknown bb_rule; a step0, step_min, step_max that is not a
        positive finite number or step_min > step_max; a
        nonmonotone_memory or max_trials that is not an int >= 1; a
        contraction outside (0, 1); a sufficient_decrease outside [0, 1);
        an unknown nonmonotone_rule; a nonmonotone_eta outside [0, 1].

    References
    ----------
    B. Iannazzo and M. Porcelli, "The Riemannian Barzilai-Borwein method
    with nonmonotone line search and the matrix geometric mean
    computation", IMA J. Numer. Anal. 38(1), 2018.
    J. Barzilai and J. M. Borwein, "Two-point step size gradient methods",
    IMA J. Numer. Anal. 8, 141-148, 1988.
    L. Grippo, F. Lampariello and S. Lucidi, "A nonmonotone line search
    technique for Newton's method", SIAM J. Numer. Anal. 23, 707-716, 1986.
    H. Zhang and W. W. Hager, "A nonmonotone line search technique and its
    application to unconstrained optimization", SIAM J. Optim. 14(4),
    1043-1056, 2004.
    Z. Wen and W. Yin, "A feasible method for optimization with
    orthogonality constraints", Math. Program. 142, 397-434, 2013.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere, minimize
    >>> A = np.diag([1.0, 2.0, 5.0])
    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), method="bb", bb_rule="bb1", rng=0)
    >>> res.success, round(-res.fun, 8)
    (True, 5.0)
    >>> res = minimize(lambda x: -x @ A @ x, Sphere(3), method="bb", nonmonotone_rule="average",
    ...                rng=0)
    >>> res.success, round(-res.fun, 8)
    (True, 5.0)
    """
    if bb_rule not in BB_RULES:
        raise ValueError(f"bb_rule must be one of {list(BB_RULES)}, got {bb_rule!r}")
    if not isinstance(nonmonotone_rule, str) or nonmonotone_rule not in NONMONOTONE_RULES:
        raise ValueError(f"nonmonotone_rule must be one of {list(NONMONOTONE_RULES)}, "
                         f"got {nonmonotone_rule!r}")
    eta = _check_positive("nonmonotone_eta", nonmonotone_eta, allow_zero=True)
    if not eta <= 1.0:
        raise ValueError(f"nonmonotone_eta must be in [0, 1], got {nonmonotone_eta!r}")
    if step0 is not None:
        step0 = _check_positive("step0", step0)
    step_min = _check_positive("step_min", step_min)
    step_max = _check_positive("step_max", step_max)
    if step_min > step_max:
        raise ValueError(f"step_min must be <= step_max, got {step_min!r} > {step_max!r}")
    nonmonotone_memory = _check_positive("nonmonotone_memory", nonmonotone_memory, integer=True)
    max_trials = _check_positive("max_trials", max_trials, integer=True)
    contraction = _check_positive("contraction", contraction)
    if not contraction < 1.0:
        raise ValueError(f"contraction must be in (0, 1), got {contraction!r}")
    sufficient_decrease = _check_positive("sufficient_decrease", sufficient_decrease,
                                          allow_zero=True)
    if not sufficient_decrease < 1.0:
        raise ValueError(f"sufficient_decrease must be in [0, 1), got {sufficient_decrease!r}")
    line_search = HintLineSearch(contraction, sufficient_decrease, max_trials)
    geometry = problem.geometry
    x = x0
    f, _, grad, grad_norm = start(problem, recorder, x)
    recent = collections.deque([f], maxlen=nonmonotone_memory)  # the "max" rule's costs
    average, weight = f, 1.0  # the "average" rule's C_k and Q_k
    use_max = nonmonotone_rule == "max"
    if step0 is None:
        norm = geometry.norm(x, grad)
        step0 = 1.0 / norm if norm > 0.0 else 1.0
    lam = step0
    it, f_old, grad_norm_old, step = 0, None, None, None
    while True:
        done = stopped(stopper, recorder, it, x, f, f_old, grad_norm, grad_norm_old, step)
        if done is not None:
            return done
        direction = _tangent.lincomb(-lam, grad)
        slope = geometry.directional_derivative(x, grad, direction)
        reference = max(recent) if use_max else average
        step, new_x, new_f = line_search.search(problem, x, direction, f, slope, reference)
        it += 1
        done, taken, new = advance(problem, recorder, stopper, x, f, f_old, grad_norm, it,
                                   direction, step, new_x, new_f)
        if done is not None:
            return done
        new_f, _, new_grad, new_grad_norm = new
        moved_grad = geometry.transp(x, new_x, grad)
        # The step actually taken was t * lam along -grad: s = -(t lam) T(grad).
        lam *= step / geometry.norm(x, direction)
        if _displaced(geometry):
            s = geometry.inverse_retr(x, new_x)
        else:
            s = _tangent.lincomb(-lam, moved_grad)
        y = _tangent.lincomb(1.0, new_grad, -1.0, moved_grad)
        lam = bb_step(bb_rule, it, geometry.inner(new_x, s, s), geometry.inner(new_x, s, y),
                      geometry.inner(new_x, y, y), step_min, step_max)
        if use_max:
            recent.append(new_f)
        else:
            new_weight = eta * weight + 1.0
            average = (eta * weight * average + new_f) / new_weight
            weight = new_weight
        f_old, grad_norm_old = f, grad_norm
        x, f, grad, grad_norm = new_x, new_f, new_grad, new_grad_norm
        recorder.record(it, x, f, grad_norm, step, taken)


# Wrapped here rather than decorated, so that mutation testing reaches the body.
barzilai_borwein = budgeted(_barzilai_borwein)
