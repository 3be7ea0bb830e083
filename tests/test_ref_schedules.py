"""Learning-rate schedules against their formulas, written out here: defaults, the first
and last valid arguments, and the errors for the first invalid ones."""

import math

import pytest

from spherenet.optim import schedules


def test_step_decay_defaults_halve_every_ten_steps():
    # lr * 0.5 ** (step // 10): the defaults drop=0.5, every=10.
    s = schedules.step_decay(3.0)
    assert [s(k) for k in (0, 9, 10, 19, 20, 35)] == [3.0, 3.0, 1.5, 1.5, 0.75, 0.375]


def test_step_decay_every_one_decays_at_every_step():
    s = schedules.step_decay(1.0, drop=0.5, every=1)  # the smallest valid period
    assert [s(k) for k in range(4)] == [1.0, 0.5, 0.25, 0.125]


@pytest.mark.parametrize("every", [0, -3])
def test_step_decay_refuses_a_period_below_one(every):
    with pytest.raises(ValueError, match=f"every must be >= 1, got {every}"):
        schedules.step_decay(1.0, every=every)


def test_exponential_decay_default_gamma():
    e = schedules.exponential_decay(2.0)
    assert e(0) == 2.0
    # 0.99 ** 100 in double precision; the power is one correctly rounded libm call.
    assert e(100) == 2.0 * 0.99**100
    assert 0.73 < e(100) < 0.74  # 2 * 0.366: decays, slowly


def test_cosine_decay_default_floor_is_zero():
    c = schedules.cosine_decay(2.0, 8)
    assert c(0) == 2.0
    # 0.5 * lr * (1 + cos(pi k / T)) with lr_min = 0; at and after T, exactly
    # 0.5 * 2 * (1 + cos(pi)) = 0.
    assert c(8) == 0.0 and c(100) == 0.0
    assert c(2) == pytest.approx(1.0 + math.cos(math.pi / 4), rel=1e-15)


def test_cosine_decay_over_a_single_step():
    c = schedules.cosine_decay(1.0, 1, lr_min=0.25)  # the smallest valid total_steps
    assert c(0) == 1.0 and c(1) == 0.25 and c(5) == 0.25


@pytest.mark.parametrize("total", [0, -1])
def test_cosine_decay_refuses_fewer_than_one_step(total):
    with pytest.raises(ValueError, match=f"total_steps must be >= 1, got {total}"):
        schedules.cosine_decay(1.0, total_steps=total)


@pytest.mark.parametrize("lr", [0.0, -0.5])
def test_resolve_lr_refuses_a_learning_rate_that_is_not_positive(lr):
    with pytest.raises(ValueError, match=f"lr must be positive, got {float(lr)}"):
        schedules.resolve_lr(lr)


def test_resolve_lr_turns_a_number_into_a_constant_schedule():
    s = schedules.resolve_lr(1)  # an int: a float schedule
    assert s(0) == 1.0 and s(10**6) == 1.0 and isinstance(s(3), float)
