"""Checks of scalar arguments shared across the package: flags and real numbers.

A flag is a bool (or a NumPy bool): a string such as "no" or a number would
otherwise pass for True or False unseen. A real number is refused when it
comes as a bool, a string or a sequence, rather than converted.
"""

import numbers

import numpy as np

__all__ = ["check_flag", "check_real"]


def check_flag(value, name):
    """``value`` as a bool; TypeError naming ``name`` unless it is one.

    Examples
    --------
    >>> check_flag(np.True_, "shuffle")
    True
    >>> check_flag("no", "shuffle")
    Traceback (most recent call last):
    ...
    TypeError: shuffle must be True or False, got 'no'
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_real(value, name):
    """``value`` as a float; TypeError naming ``name`` for a bool, a string or a sequence.

    Examples
    --------
    >>> check_real(np.float32(0.5), "momentum")
    0.5
    >>> check_real(True, "momentum")
    Traceback (most recent call last):
    ...
    TypeError: momentum must be a real number, got bool True
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)
