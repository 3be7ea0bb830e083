"""Defaults of the Armijo line searches (``BacktrackingLineSearch``,
``AdaptiveLineSearch``) read off their behaviour: the number of trials of a search that
finds no decrease (max_trials + 1 evaluations: Manopt's 25 and 10) and the length of the
first trial step (initial_step / ||d||)."""

import numpy as np
import pytest

from spherenet import Euclidean
from spherenet.optim import AdaptiveLineSearch, BacktrackingLineSearch

D = np.array([3.0, 0.0, 4.0])  # ||d|| = 5


class Wall:
    """A problem-like object whose cost never decreases from x = 0; it logs every trial."""

    geometry = Euclidean(3)

    def __init__(self):
        self.points = []

    def cost(self, x):
        self.points.append(np.array(x, copy=True))
        return 1.0


@pytest.mark.parametrize("kind, evaluations", [(BacktrackingLineSearch, 26),
                                               (AdaptiveLineSearch, 11)])
def test_default_trial_limits(kind, evaluations):
    problem = Wall()
    step, new_x, new_f = kind().search(problem, np.zeros(3), D, 0.0, -25.0)
    assert (step, new_f) == (0.0, 0.0) and len(problem.points) == evaluations
    # the first trial is a step of length initial_step = 1, then halvings
    np.testing.assert_allclose([np.linalg.norm(p) for p in problem.points],
                               [0.5**k for k in range(evaluations)], rtol=1e-15)


@pytest.mark.parametrize("kind", [BacktrackingLineSearch, AdaptiveLineSearch])
def test_initial_step_sets_the_length_of_the_first_trial(kind):
    problem = Wall()
    kind(initial_step=0.25, max_trials=0).search(problem, np.zeros(3), D, 0.0, -25.0)
    assert len(problem.points) == 1
    np.testing.assert_allclose(problem.points[0], 0.25 * D / 5.0, rtol=1e-15)
