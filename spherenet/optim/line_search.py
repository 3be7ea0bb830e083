"""Line searches along a retraction curve t -> R_x(t d).

Both are Armijo backtracking searches with the initial-step heuristics of
Manopt (and pymanopt): :class:`BacktrackingLineSearch` guesses the first step
from the last decrease of the cost, :class:`AdaptiveLineSearch` from the last
accepted step. A NaN or Inf cost at a trial point counts as no decrease.
"""

from .. import _tangent


def check_line_search(line_search):
    """``line_search`` as given when it has a ``search`` method (None stays None)."""
    if line_search is not None and not callable(getattr(line_search, "search", None)):
        raise TypeError("line_search must be None or an object with a method "
                        "search(problem, x, d, f0, df0) such as BacktrackingLineSearch(), "
                        f"got {line_search!r}")
    return line_search


def _line(geometry, x, d, dd=None):
    """``t -> R_x(t d)``: the geometry's own curve (``_retr_line``) when it has one for
    x and d, else ``retr(x, t * d)``; ``dd``, <d, d> when the caller knows it, is passed on."""
    curve = getattr(geometry, "_retr_line", None)
    line = None if curve is None else (curve(x, d) if dd is None else curve(x, d, dd))
    if line is None:
        retr, lincomb = geometry.retr, _tangent.lincomb

        def line(t):
            return retr(x, lincomb(t, d))
    return line


class BacktrackingLineSearch:
    """Armijo backtracking with an optimistic first step from the previous decrease.

    Parameters
    ----------
    contraction : float
        Factor by which the step shrinks after a failed trial.
    optimism : float
        The first trial step is ``optimism`` times the step that a quadratic
        model fitted to the previous decrease would take.
    sufficient_decrease : float
        Armijo constant c in f(R_x(a d)) <= f(x) + c a <grad f, d>.
    max_trials : int
    initial_step : float
        Length of the very first trial step.

    Examples
    --------
    >>> from spherenet.optim.line_search import BacktrackingLineSearch
    >>> BacktrackingLineSearch().contraction
    0.5
    """

    def __init__(self, contraction=0.5, optimism=2.0, sufficient_decrease=1e-4,
                 max_trials=25, initial_step=1.0):
        self.contraction = contraction
        self.optimism = optimism
        self.sufficient_decrease = sufficient_decrease
        self.max_trials = max_trials
        self.initial_step = initial_step
        self._f_prev = None

    def _first_alpha(self, f0, df0, norm_d):
        if self._f_prev is not None and df0 < 0 and self._f_prev > f0:
            return self.optimism * 2.0 * (f0 - self._f_prev) / df0
        return self.initial_step / norm_d

    def _remember(self, f0, alpha, trials):
        self._f_prev = f0

    def _backtrack(self, problem, x, d, f0, df0, alpha, line=None):
        # The trial points R_x(alpha d) come from the geometry's curve along d
        # when it has one (coefficients computed once per search), else from retr.
        if line is None:
            line = _line(problem.geometry, x, d)
        cost, contraction = problem.cost, self.contraction
        c, max_trials = self.sufficient_decrease, self.max_trials
        new_x = line(alpha)
        new_f = cost(new_x)
        trials = 1
        while not new_f <= f0 + c * alpha * df0 and trials <= max_trials:
            alpha *= contraction
            new_x = line(alpha)
            new_f = cost(new_x)
            trials += 1
        return alpha, new_x, new_f, trials

    def search(self, problem, x, d, f0, df0, norm_d=None):
        """Return ``(step_length, new_x, new_f)``; step 0 and x itself when no decrease was found.

        When a first step guessed from the previous iteration finds no
        decrease (the guess can be tiny when the last decrease was at
        rounding level), the search starts once more from ``initial_step``.
        ``norm_d``, the norm of d when the caller knows it already (steepest
        descent: the gradient norm), saves computing it again.
        """
        if norm_d is None:
            norm_d = problem.geometry.norm(x, d)
        guess, fresh = float(self._first_alpha(f0, df0, norm_d)), self.initial_step / norm_d
        line = _line(problem.geometry, x, d)
        alpha, new_x, new_f, trials = self._backtrack(problem, x, d, f0, df0, guess, line)
        if not new_f <= f0 and guess != fresh:
            alpha, new_x, new_f, trials = self._backtrack(problem, x, d, f0, df0, fresh, line)
        self._remember(f0, alpha, trials)
        if not new_f <= f0:
            return 0.0, x, f0
        return alpha * norm_d, new_x, new_f


class AdaptiveLineSearch(BacktrackingLineSearch):
    """Armijo backtracking whose first trial is the last accepted step (doubled
    when it was accepted at once), as Manopt's ``linesearch_adaptive``.

    Examples
    --------
    >>> from spherenet.optim.line_search import AdaptiveLineSearch
    >>> AdaptiveLineSearch().sufficient_decrease
    0.5
    """

    def __init__(self, contraction=0.5, sufficient_decrease=0.5, max_trials=10, initial_step=1.0):
        super().__init__(contraction=contraction, sufficient_decrease=sufficient_decrease,
                         max_trials=max_trials, initial_step=initial_step)
        self._alpha_prev = None

    def _first_alpha(self, f0, df0, norm_d):
        if self._alpha_prev is not None:
            return self._alpha_prev
        return self.initial_step / norm_d

    def _remember(self, f0, alpha, trials):
        self._alpha_prev = alpha if trials == 2 else 2.0 * alpha
