r"""Measured rates and honest comparisons across seeds.

:func:`fit_rate` reads the asymptotic linear rate of one run off its
convergence curve, to set beside the predictions of :mod:`spherenet.theory`;
:func:`paired_comparison` compares two strategies run from the same seeds:
a Wilcoxon signed-rank test and a bootstrap confidence interval of the ratio
of their iterations to tolerance.
"""

import dataclasses
import math
import warnings

import numpy as np

__all__ = ["RateFit", "fit_rate", "paired_comparison", "FLOOR_FACTOR", "MIN_POINTS"]

#: The fit stops where the measure falls below this many machine epsilons times its start.
FLOOR_FACTOR = 1e3
#: Fewer points than this in the window: no rate (NaN).
MIN_POINTS = 5


@dataclasses.dataclass(frozen=True)
class RateFit:
    """The rate of one run and the window it was fitted on.

    Attributes
    ----------
    rate : float
        Factor per iteration, :math:`\\exp` of the least-squares slope of
        ``log(measure)`` over the window; NaN without a window.
    start, stop : int
        The window, ``values[start:stop]`` (iteration indices).
    """

    rate: float
    start: int
    stop: int

    @property
    def points(self):
        return self.stop - self.start


def fit_rate(values, floor=None, min_points=MIN_POINTS):
    r"""The asymptotic linear rate of a convergence curve.

    Parameters
    ----------
    values : array_like
        A measure per iteration that tends to 0: distance to the optimum,
        cost gap or gradient norm.
    floor : float, optional
        The fit ends before the first value at or below ``floor``; default
        ``FLOOR_FACTOR * eps * values[0]`` (1000 machine epsilons relative to
        the start), where rounding starts to dominate the measure.
    min_points : int, default 5

    Returns
    -------
    RateFit
        NaN rate when the window has fewer than ``min_points`` values.

    Raises
    ------
    ValueError
        ``values`` of several curves (an array with more than one axis
        longer than 1), ``min_points`` < 2, a negative ``floor``.

    Notes
    -----
    The window rule: the run is cut at its first value that is not finite
    (a diverged run), not positive, or at or below ``floor`` (a run that
    reached machine precision: what follows is rounding noise, not
    convergence); the window is the second half of what remains,
    ``values[stop // 2:stop]``, so that the transient of the first
    iterations is left out. The rate is :math:`\exp(s)` with s the
    least-squares slope of :math:`\log v_k` against k over the window. A
    diverging run has a rate above 1. For the distance and the gradient
    norm this is the :math:`\rho` of :mod:`spherenet.theory`; the cost gap
    contracts at :math:`\rho^2`.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.experiments.rates import fit_rate
    >>> values = 3.0 * 0.8 ** np.arange(60.0)
    >>> fit = fit_rate(values)
    >>> round(fit.rate, 12), fit.start, fit.stop
    (0.8, 30, 60)
    >>> fit_rate(np.r_[values, np.zeros(5)]).stop  # exact zeros end the fit
    60
    """
    values = np.asarray(values, dtype=np.float64)
    if sum(n > 1 for n in values.shape) > 1:
        # Flattened, the runs of a (runs, iterations) array would be one long curve.
        raise ValueError(f"values must be one curve (a value per iteration), got an array of "
                         f"shape {values.shape}; fit each run separately")
    values = values.ravel()
    if isinstance(min_points, bool) or not isinstance(min_points, (int, np.integer)) or \
            min_points < 2:
        raise ValueError(f"min_points must be an integer >= 2, got {min_points!r}")
    if values.size == 0:
        return RateFit(math.nan, 0, 0)
    if floor is None:
        start_value = values[0] if np.isfinite(values[0]) and values[0] > 0 else 0.0
        floor = FLOOR_FACTOR * np.finfo(np.float64).eps * start_value
    elif not float(floor) >= 0:
        raise ValueError(f"floor must be >= 0, got {floor!r}")
    bad = ~np.isfinite(values) | (values <= floor)
    stop = int(np.argmax(bad)) if bad.any() else values.size
    start = stop // 2
    if stop - start < min_points:
        return RateFit(math.nan, start, stop)
    k = np.arange(start, stop, dtype=np.float64)
    slope = np.polyfit(k, np.log(values[start:stop]), 1)[0]
    return RateFit(float(np.exp(slope)), start, stop)


def _bootstrap_interval(data, confidence, n_resamples, rng):
    """Percentile bootstrap of the mean of ``data`` (seeded)."""
    rng = np.random.default_rng(rng)
    index = rng.integers(0, data.size, size=(n_resamples, data.size))
    means = data[index].mean(axis=1)
    alpha = 0.5 * (1.0 - confidence)
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_comparison(a, b, confidence=0.95, n_resamples=10000, rng=0):
    r"""Compare iterations to tolerance of two strategies run from the same seeds.

    Parameters
    ----------
    a, b : array_like
        Iterations to tolerance of strategies A and B, seed by seed (the
        same seeds in the same order); ``inf`` for a run that never reached it.
    confidence : float, default 0.95
    n_resamples : int, default 10000
        Bootstrap resamples.
    rng : int or numpy.random.Generator, default 0
        Seeds the bootstrap: the interval is reproducible.

    Returns
    -------
    dict
        ``pairs`` (seeds where both reached the tolerance; only those are
        compared), ``excluded`` (seeds left out), ``a_only`` and ``b_only``
        (seeds where only a, or only b, reached the tolerance: evidence the
        ratio cannot hold, named in the note), ``ratio`` (geometric mean
        of a/b over the pairs), ``ci_low``, ``ci_high`` (percentile bootstrap
        interval of that geometric mean), ``statistic`` and ``pvalue`` of the
        two-sided Wilcoxon signed-rank test of a against b
        (``scipy.stats.wilcoxon``), and ``note``: why a number is NaN or not
        to be trusted ("" otherwise).

    Raises
    ------
    ValueError
        ``a`` and ``b`` of different lengths, negative or NaN values, a
        ``confidence`` outside (0, 1), ``n_resamples`` < 100.

    Notes
    -----
    The ratio is a geometric mean, the exponential of the mean of
    :math:`\log(a_i/b_i)`, so that A twice as slow and B twice as slow are
    symmetric; the bootstrap resamples the seeds (pairs), keeping each
    pair together. The Wilcoxon test needs nonzero differences: with all
    pairs tied it is undefined, and with n pairs its smallest two-sided
    p-value is :math:`2^{1-n}` (n >= 6 for p < 0.05). A run that never
    reached the tolerance has no ratio; such seeds are counted in
    ``excluded``, not hidden.

    References
    ----------
    F. Wilcoxon, Individual comparisons by ranking methods, *Biometrics
    Bulletin* 1(6), 1945. B. Efron, R. Tibshirani, *An Introduction to the
    Bootstrap*, Chapman & Hall, 1993, chapter 13 (percentile intervals).

    Examples
    --------
    >>> from spherenet.experiments.rates import paired_comparison
    >>> result = paired_comparison([20, 22, 19, 25, 21, 30], [10, 11, 10, 12, 11, 14])
    >>> round(result["ratio"], 3), result["pairs"], round(result["pvalue"], 5)
    (2.004, 6, 0.03125)
    >>> result["ci_low"] < result["ratio"] < result["ci_high"]
    True
    """
    from scipy.stats import wilcoxon

    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired (the same seeds), got {a.size} and {b.size} "
                         "values")
    if np.isnan(a).any() or np.isnan(b).any() or (a < 0).any() or (b < 0).any():
        raise ValueError("iterations must be >= 0 or inf (never reached), got NaN or a "
                         "negative value")
    if not 0.0 < float(confidence) < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or \
            n_resamples < 100:
        raise ValueError(f"n_resamples must be an integer >= 100, got {n_resamples!r}")
    # Iteration 0 reached (the start already within tolerance) has no ratio either.
    both = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    a_only = int(np.sum(np.isfinite(a) & ~np.isfinite(b)))
    b_only = int(np.sum(np.isfinite(b) & ~np.isfinite(a)))
    a, b = a[both], b[both]
    out = {"pairs": int(a.size), "excluded": int(both.size - a.size), "a_only": a_only,
           "b_only": b_only, "ratio": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "statistic": math.nan, "pvalue": math.nan, "note": ""}
    censored = []
    if a_only:
        censored.append(f"only a reached the tolerance on {a_only} seed(s)")
    if b_only:
        censored.append(f"only b reached the tolerance on {b_only} seed(s)")

    def noted(text=""):
        out["note"] = "; ".join([text] * bool(text) + censored)
        return out

    if a.size == 0:
        return noted("no seed where both reached the tolerance")
    log_ratio = np.log(a / b)  # equal ratios give equal logs (log a - log b may not)
    out["ratio"] = float(np.exp(np.mean(log_ratio)))
    if a.size < 2:
        return noted("one pair: no interval, no test")
    if np.all(log_ratio == log_ratio[0]):
        out["ci_low"] = out["ci_high"] = out["ratio"]  # every resample has the same mean
    else:
        low, high = _bootstrap_interval(log_ratio, float(confidence), int(n_resamples), rng)
        out["ci_low"], out["ci_high"] = math.exp(low), math.exp(high)
    if np.all(a == b):
        return noted("all pairs tie: the signed-rank test is undefined")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on ties and small samples; noted below
        test = wilcoxon(a, b, zero_method="wilcox", alternative="two-sided")
    out["statistic"], out["pvalue"] = float(test.statistic), float(test.pvalue)
    nonzero = int(np.count_nonzero(a != b))
    if nonzero < 6:
        return noted(f"{nonzero} untied pairs: the smallest possible p-value is "
                     f"{2.0 ** (1 - nonzero):.3g}")
    return noted()
