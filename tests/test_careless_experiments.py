"""The experiments' rate fit given several curves at once.

``fit_rate`` flattened a (runs, iterations) array into one long curve: the
second run's start after the first run's end, a rate of nothing. It is now
refused; a single curve as a column or a row is still one curve.
"""

import numpy as np
import pytest

from spherenet.experiments.rates import fit_rate


def test_several_curves_at_once_are_refused():
    curves = np.stack([3.0 * 0.8 ** np.arange(40.0), 2.0 * 0.5 ** np.arange(40.0)])
    with pytest.raises(ValueError, match=r"values must be one curve \(a value per iteration\), "
                                         r"got an array of shape \(2, 40\); fit each run "
                                         r"separately"):
        fit_rate(curves)


@pytest.mark.parametrize("shape", [(60, 1), (1, 60), (1, 60, 1)])
def test_one_curve_as_a_column_or_a_row_is_one_curve(shape):
    curve = 3.0 * 0.8 ** np.arange(60.0)
    fit = fit_rate(curve.reshape(shape))
    # Independent: the least-squares slope of log values over the second half, in closed form.
    k = np.arange(30.0, 60.0)
    logs = np.log(curve[30:])
    slope = np.sum((k - k.mean()) * (logs - logs.mean())) / np.sum((k - k.mean()) ** 2)
    assert fit.rate == pytest.approx(np.exp(slope), rel=64 * np.finfo(float).eps)
    assert (fit.start, fit.stop) == (30, 60)
