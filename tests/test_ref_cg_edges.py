"""Edges of nonlinear conjugate gradients (``minimize(method="cg")``): the message for an
unknown rule, and the reset of a direction that is not a descent direction whatever the
size of its slope."""

import numpy as np
import pytest

from spherenet import Euclidean, Sphere, minimize


def test_unknown_beta_rule_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"^beta_rule must be one of \['FR', 'PR\+', 'HS', "
                                         r"'HZ'\], got 'PR'$"):
        minimize(lambda x: x[0], Sphere(3), rng=0, method="cg", beta_rule="PR")


class Overshoot:
    """Steps 2.5 times past the minimizer of a quadratic along d; records what it gets."""

    def __init__(self, hess):
        self.hess = hess
        self.calls = []

    def search(self, problem, x, d, f0, df0):
        self.calls.append(dict(x=np.array(x), d=np.array(d), slope=df0))
        alpha = -2.5 * df0 / (d @ self.hess @ d)
        new_x = x + alpha * d
        return alpha * np.sqrt(d @ d), new_x, problem.cost(new_x)


@pytest.mark.parametrize("scale", [1.0, 1e-3])
def test_an_uphill_direction_is_reset_whatever_the_size_of_its_slope(scale):
    # As in test_ref_cg: after a step 2.5x past the minimizer the Fletcher-Reeves
    # direction has slope +0.5 ||g1||^2 > 0; for the cost scaled by 1e-3 that slope is
    # below 1e-4, still uphill, still replaced by -g1.
    hess = scale * np.diag([1.0, 10.0])
    x0 = np.array([1.0, 0.3])
    spy = Overshoot(hess)
    minimize(lambda x: 0.5 * x @ hess @ x, Euclidean(2), x0=x0, method="cg", beta_rule="FR",
             maxiter=2, gtol=0.0, xtol=0.0, line_search=spy)
    g0 = hess @ x0
    x1 = x0 - 2.5 * (g0 @ g0) / (g0 @ hess @ g0) * g0
    g1 = hess @ x1
    fr_direction = -g1 + (g1 @ g1) / (g0 @ g0) * -g0
    assert 0.0 < g1 @ fr_direction < (1.0 if scale < 1.0 else np.inf)
    np.testing.assert_allclose(spy.calls[1]["d"], -g1, rtol=1e-14)
    assert spy.calls[1]["slope"] == pytest.approx(-(g1 @ g1), rel=1e-14)
