"""Weight initializers, seeded, in the model's dtype; Keras names and fan conventions.

An initializer is called as ``init(shape, dtype, rng)`` with a
``numpy.random.Generator``; one built with ``seed=`` ignores ``rng`` and gives
the same array at every call. A kernel that lives on a sphere (a
``unit_norm`` constraint or a ``kernel_manifold``) is put on it after
initialization by its layer: every factor (column) is divided by its norm,
so Glorot-then-normalized is the default, and ``"sphere_uniform"`` (Gaussian
then normalized) samples each column uniformly on its sphere.
"""

import math

import numpy as np

from ..manifolds.base import as_rng
from ._registry import from_config

__all__ = [
    "Initializer",
    "Zeros",
    "Ones",
    "RandomNormal",
    "RandomUniform",
    "GlorotUniform",
    "GlorotNormal",
    "HeUniform",
    "HeNormal",
    "LecunUniform",
    "LecunNormal",
    "SphereUniform",
    "get",
]


def _fans(shape):
    """Keras's fans: (in, out) for a Dense kernel, receptive field times channels beyond."""
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


class Initializer:
    """Base class. Subclasses implement ``_sample(shape, rng)`` in float64."""

    name = None

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=np.float32, rng=None):
        rng = as_rng(self.seed if self.seed is not None else rng)
        return np.asarray(self._sample(tuple(shape), rng), dtype=dtype)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{type(self).__name__}({args})"

    def get_config(self):
        config = {"name": self.name}
        config.update({k: v for k, v in vars(self).items() if not k.startswith("_")})
        return config


class Zeros(Initializer):
    """All zeros (the default for biases)."""

    name = "zeros"

    def _sample(self, shape, rng):
        return np.zeros(shape)


class Ones(Initializer):
    """All ones."""

    name = "ones"

    def _sample(self, shape, rng):
        return np.ones(shape)


def _truncated_normal(shape, stddev, rng):
    """Normal(0, stddev) redrawn beyond two standard deviations, as Keras's."""
    z = rng.standard_normal(shape)
    bad = np.abs(z) > 2.0
    while np.any(bad):
        z[bad] = rng.standard_normal(int(np.sum(bad)))
        bad = np.abs(z) > 2.0
    return z * stddev


class RandomNormal(Initializer):
    """Normal(mean, stddev)."""

    name = "random_normal"

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        super().__init__(seed)
        self.mean, self.stddev = float(mean), float(stddev)

    def _sample(self, shape, rng):
        return self.mean + self.stddev * rng.standard_normal(shape)


class RandomUniform(Initializer):
    """Uniform(minval, maxval)."""

    name = "random_uniform"

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        super().__init__(seed)
        self.minval, self.maxval = float(minval), float(maxval)

    def _sample(self, shape, rng):
        return rng.uniform(self.minval, self.maxval, shape)


class _VarianceScaling(Initializer):
    scale, mode, distribution = 1.0, "fan_avg", "uniform"

    def _sample(self, shape, rng):
        fan_in, fan_out = _fans(shape)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        variance = self.scale / max(1.0, fan)
        if self.distribution == "uniform":
            limit = math.sqrt(3.0 * variance)
            return rng.uniform(-limit, limit, shape)
        # std of a standard normal truncated to [-2, 2]
        return _truncated_normal(shape, math.sqrt(variance) / 0.87962566103423978, rng)


class GlorotUniform(_VarianceScaling):
    """Uniform(-l, l), l = sqrt(6 / (fan_in + fan_out)) (Keras's default kernel initializer).

    Examples
    --------
    >>> w = GlorotUniform(seed=0)((2, 3))
    >>> w.shape, w.dtype, bool(abs(w).max() <= (6 / 5) ** 0.5)
    ((2, 3), dtype('float32'), True)
    """

    name = "glorot_uniform"


class GlorotNormal(_VarianceScaling):
    """Truncated normal of variance 2 / (fan_in + fan_out)."""

    name = "glorot_normal"
    distribution = "normal"


class HeUniform(_VarianceScaling):
    """Uniform of variance 2 / fan_in."""

    name = "he_uniform"
    scale, mode = 2.0, "fan_in"


class HeNormal(_VarianceScaling):
    """Truncated normal of variance 2 / fan_in."""

    name = "he_normal"
    scale, mode, distribution = 2.0, "fan_in", "normal"


class LecunUniform(_VarianceScaling):
    """Uniform of variance 1 / fan_in."""

    name = "lecun_uniform"
    mode = "fan_in"


class LecunNormal(_VarianceScaling):
    """Truncated normal of variance 1 / fan_in."""

    name = "lecun_normal"
    mode, distribution = "fan_in", "normal"


class SphereUniform(Initializer):
    """Each slice along ``axis`` uniform on its unit sphere (Gaussian, then normalized).

    Examples
    --------
    >>> import numpy as np
    >>> w = SphereUniform(seed=0)((3, 4), np.float64)
    >>> np.allclose(np.linalg.norm(w, axis=0), 1.0)
    True
    """

    name = "sphere_uniform"

    def __init__(self, axis=0, seed=None):
        super().__init__(seed)
        self.axis = axis

    def _sample(self, shape, rng):
        z = rng.standard_normal(shape)
        return z / np.sqrt(np.sum(z * z, axis=self.axis, keepdims=True))


_INITIALIZERS = {
    cls.name: cls
    for cls in (Zeros, Ones, RandomNormal, RandomUniform, GlorotUniform, GlorotNormal,
                HeUniform, HeNormal, LecunUniform, LecunNormal, SphereUniform)
}


def get(identifier):
    """An initializer from a Keras name, a config dict, an instance or a callable.

    A callable is used as ``fn(shape, dtype, rng)``.

    Raises
    ------
    ValueError
        For an unknown name, listing the known ones.

    Examples
    --------
    >>> get("he_normal")
    HeNormal(seed=None)
    """
    if isinstance(identifier, Initializer) or (
        callable(identifier) and not isinstance(identifier, type)
    ):
        return identifier
    return from_config(identifier, _INITIALIZERS, "initializer")
