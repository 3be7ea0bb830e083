"""Learning-rate schedules: callables of the step number (0, 1, 2, ...)."""

import math
import numbers

import numpy as np

__all__ = ["constant", "step_decay", "exponential_decay", "cosine_decay", "inverse_time_decay",
           "resolve_lr", "step_size"]


def constant(lr):
    """lr at every step.

    Examples
    --------
    >>> constant(0.1)(1000)
    0.1
    """
    lr = float(lr)
    return lambda step: lr


def step_decay(lr, drop=0.5, every=10):
    """lr * drop ** (step // every).

    Examples
    --------
    >>> step_decay(1.0, drop=0.5, every=10)(25)
    0.25
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    return lambda step: float(lr) * drop ** (step // every)


def exponential_decay(lr, gamma=0.99):
    """lr * gamma ** step.

    Examples
    --------
    >>> exponential_decay(1.0, gamma=0.5)(3)
    0.125
    """
    return lambda step: float(lr) * gamma**step


def cosine_decay(lr, total_steps, lr_min=0.0):
    """Cosine annealing from lr to lr_min over total_steps, then lr_min.

    Examples
    --------
    >>> cosine_decay(1.0, 100)(50)
    0.5
    """
    if total_steps < 1:
        raise ValueError(f"total_steps must be >= 1, got {total_steps}")

    def schedule(step):
        frac = min(step, total_steps) / total_steps
        return lr_min + 0.5 * (float(lr) - lr_min) * (1.0 + math.cos(math.pi * frac))

    return schedule


def inverse_time_decay(lr, decay):
    """lr / (1 + decay * step): the O(1/t) steps of stochastic approximation.

    With decay = lr * mu, the step is 1 / (mu (t + 1/lr)), the schedule of the
    O(1/t) rate of SGD on a mu-strongly convex cost (Robbins & Monro 1951;
    the ``decay`` step size of Kasai's RSOpt).

    Examples
    --------
    >>> inverse_time_decay(1.0, decay=0.5)(2)
    0.5
    """
    if not decay >= 0:
        raise ValueError(f"decay must be >= 0, got {decay}")
    return lambda step: float(lr) / (1.0 + decay * step)


def resolve_lr(lr):
    """A schedule from a real number or a callable; checks the number is positive and finite.

    A bool (True would be a step of 1), a string or a sequence is refused,
    not converted.

    Examples
    --------
    >>> resolve_lr(0.5)(3)
    0.5
    >>> resolve_lr(True)
    Traceback (most recent call last):
    ...
    TypeError: lr must be a positive number or a schedule lr(step), got bool True
    """
    if callable(lr):
        return lr
    if isinstance(lr, np.ndarray) and lr.ndim == 0 and lr.dtype.kind in "iuf":
        lr = lr.item()
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"lr must be a positive number or a schedule lr(step), got "
                        f"{type(lr).__name__} {lr!r}")
    lr = float(lr)
    if not lr > 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if lr == math.inf:
        raise ValueError(f"lr must be finite, got {lr}")
    return constant(lr)


def step_size(schedule, step):
    """``schedule(step)`` as a float, checked: a schedule that goes negative (a linear
    decay run past its end), NaN or infinite would step uphill or off to infinity unseen.
    Zero is a step size (``cosine_decay`` ends there with ``lr_min=0``).

    Examples
    --------
    >>> step_size(lambda k: 1.0 - 0.25 * k, 2)
    0.5
    >>> step_size(lambda k: 1.0 - 0.25 * k, 5)
    Traceback (most recent call last):
    ...
    ValueError: the step-size schedule returned -0.25 at step 5: a step size must be a finite number >= 0
    """
    lr = schedule(step)
    if isinstance(lr, np.ndarray) and lr.ndim == 0 and lr.dtype.kind in "iuf":
        lr = lr.item()
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"the step-size schedule returned {lr!r} at step {step}: a step size "
                        "must be a finite number >= 0")
    value = float(lr)
    if not 0.0 <= value < math.inf:
        raise ValueError(f"the step-size schedule returned {lr!r} at step {step}: a step size "
                         "must be a finite number >= 0")
    return value
