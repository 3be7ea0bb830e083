"""The step rules' options (``spherenet.optim.RSGD``, ``RAdam``): defaults, the first and
last valid values, and the exact messages for the first invalid ones."""

import numpy as np
import pytest

from spherenet import Sphere
from spherenet.optim import RAdam, RSGD
from spherenet.optim.rules import StepRule


def test_defaults_and_reprs():
    assert repr(RSGD()) == "RSGD(lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0)"
    assert repr(RAdam()) == ("RAdam(lr=0.001, betas=(0.9, 0.999), eps=1e-08, amsgrad=False, "
                             "adaptivity='factor')")
    assert repr(RAdam(lr=0.5)).startswith("RAdam(lr=0.5, ")
    assert RSGD().lr_at(10) == 0.01 and RAdam().lr_at(10) == 0.001


def test_the_base_rule_starts_at_step_zero():
    assert StepRule().init(Sphere(2), np.array([1.0, 0.0])) == {"step": 0}


def test_betas_may_be_zero_but_not_one():
    RAdam(betas=(0.0, 0.999)), RAdam(betas=(0.9, 0.0))
    for betas in [(1.0, 0.999), (0.9, 1.0), (-0.1, 0.999), (0.9, 1.5)]:
        with pytest.raises(ValueError) as err:
            RAdam(betas=betas)
        assert str(err.value) == f"betas must be in [0, 1), got {betas}"


@pytest.mark.parametrize("rule, options, message", [
    (RAdam, {"eps": 0.0}, "eps must be positive, got 0.0"),
    (RAdam, {"adaptivity": "row"}, "adaptivity must be 'factor' or 'coordinate', got 'row'"),
    (RSGD, {"momentum": 1.0}, r"momentum must be in \[0, 1\), got 1.0"),
    (RSGD, {"nesterov": True}, "nesterov needs a positive momentum"),
    (RSGD, {"weight_decay": -0.001}, "weight_decay must be a finite number >= 0, got -0.001"),
])
def test_bad_options_are_refused_with_a_message(rule, options, message):
    with pytest.raises(ValueError, match="^" + message + "$"):
        rule(**options)
