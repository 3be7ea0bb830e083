"""spherenet.nn: a Keras-style network framework on HIPS autograd whose kernels live on spheres.

``Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm())``
means what a Keras user hopes: every column of the kernel has norm 1, always.
The model's weights are one point of a :class:`~spherenet.Product` manifold,
trained by a step rule of :mod:`spherenet.optim` under a strategy of
:mod:`spherenet.strategies` (Riemannian by default).

>>> from spherenet.nn import Sequential, Dense, unit_norm
>>> model = Sequential()
>>> model.add(Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
>>> model.add(Dense(1, activation="sigmoid"))
>>> model.compile(optimizer="rsgd", loss="binary_crossentropy", metrics=["accuracy"])
"""

from . import activations, callbacks, constraints, conv, initializers, losses, metrics, pooling
from .callbacks import Callback, EarlyStopping, History, LambdaCallback, ModelCheckpoint, ProgressBar
from .constraints import UnitNorm, unit_norm
from .conv import Conv1D, Conv2D
from .io import load_model
from .layers import Activation, Dense, Dropout, Flatten, Layer
from .model import NonFiniteLossWarning, Sequential
from .pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D, Reshape

__all__ = [
    "Sequential",
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "Conv1D",
    "Conv2D",
    "MaxPooling2D",
    "AveragePooling2D",
    "GlobalAveragePooling2D",
    "Reshape",
    "Layer",
    "UnitNorm",
    "unit_norm",
    "load_model",
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ProgressBar",
    "LambdaCallback",
    "NonFiniteLossWarning",
    "activations",
    "callbacks",
    "constraints",
    "conv",
    "initializers",
    "losses",
    "metrics",
    "pooling",
]
