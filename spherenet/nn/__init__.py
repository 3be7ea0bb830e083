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

from . import (activations, callbacks, constraints, conv, initializers, losses, metrics, pooling,
               regularizers)
from .callbacks import Callback, EarlyStopping, History, LambdaCallback, ModelCheckpoint, ProgressBar
from .constraints import UnitNorm, unit_norm
from .conv import Conv1D, Conv2D
from .cosine import CosineDense
from .io import load_model
from .layers import Activation, Dense, Dropout, Flatten, Layer
from .model import NonFiniteLossWarning, Sequential
from ._parallel import get_num_threads, set_num_threads
from .normalization import BatchNormalization, LayerNormalization
from .pooling import AveragePooling2D, GlobalAveragePooling2D, MaxPooling2D, Reshape
from .regularizers import L1, L1L2, L2, HypersphericalEnergy
from .telemetry import AngularTelemetry, equilibrium_angular_update

__all__ = [
    "Sequential",
    "Dense",
    "Activation",
    "Dropout",
    "Flatten",
    "BatchNormalization",
    "CosineDense",
    "LayerNormalization",
    "L1",
    "L2",
    "L1L2",
    "HypersphericalEnergy",
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
    "AngularTelemetry",
    "equilibrium_angular_update",
    "NonFiniteLossWarning",
    "set_num_threads",
    "get_num_threads",
    "activations",
    "callbacks",
    "constraints",
    "conv",
    "initializers",
    "losses",
    "metrics",
    "pooling",
    "regularizers",
]
