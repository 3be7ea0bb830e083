r"""A normalized classifier: logits are scaled cosines (NormFace), with CosFace's additive margin.

Both the features x and the class weight vectors :math:`w_j` (the columns of
the kernel) are unit vectors, so the logit of class j is
:math:`s\cos\theta_j` with :math:`\cos\theta_j = \hat x^T w_j`: a point of
the sphere is classified by the nearest class vector on the sphere. The
kernel lives on ``Oblique(features, units)``, kept there by the model's
strategy like any ``unit_norm`` kernel.
"""

import numbers

import numpy as np

from ._normalize import l2_normalize
from .constraints import unit_norm
from .layers import LAYERS, Dense, _activation_name, _initializer_config, affine

__all__ = ["CosineDense"]


class CosineDense(Dense):
    r"""Logits :math:`s\cos\theta_j` between the normalized input and unit class vectors.

    .. math::

        z_j = s\,\frac{x^T w_j}{\|x\|\,\|w_j\|},
        \qquad\text{while training: } z_y \leftarrow s(\cos\theta_y - m)
        \text{ for the true class } y,

    the additive cosine margin m of CosFace, which asks the true class to
    win by m; prediction and evaluation use the plain :math:`s\cos\theta`.
    The kernel columns are unit vectors (the kernel is a point of
    ``Oblique(features, units)``); they are divided by their norms in the
    forward pass as well, so that under ``strategy="none"`` the logits are
    still cosines.

    Parameters
    ----------
    units : int
        The number of classes.
    input_dim : int, optional
    scale : float > 0, default 16
        s: the logits lie in [-s, s]. NormFace uses s of about 16 to 30;
        CosFace 64.
    margin : float in [0, 2), default 0
        m; 0 is NormFace. A margin needs the logits in the loss: use
        ``activation="softmax"`` with a cross-entropy loss, or no activation
        and a loss with ``from_logits=True``.
    activation : str, optional
        None (logits) or ``"softmax"``.
    kernel_initializer, kernel_regularizer, name, input_shape
        As for :class:`~spherenet.nn.Dense`; ``HypersphericalEnergy`` spreads
        the class vectors over the sphere.

    References
    ----------
    F. Wang, X. Xiang, J. Cheng, A. L. Yuille, "NormFace: L2 hypersphere
    embedding for face verification", ACM MM 2017. H. Wang, Y. Wang, Z. Zhou,
    X. Ji, D. Gong, J. Zhou, Z. Li, W. Liu, "CosFace: large margin cosine loss
    for deep face recognition", CVPR 2018.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.nn import CosineDense
    >>> layer = CosineDense(2, scale=10.0)
    >>> x = np.array([[3.0, 4.0]])
    >>> _ = layer(x, seed=0)  # builds the layer
    >>> layer.set_weights([np.eye(2)])
    >>> layer(x)
    array([[6., 8.]])
    """

    def __init__(self, units, input_dim=None, scale=16.0, margin=0.0, activation=None,
                 kernel_initializer="glorot_uniform", kernel_regularizer=None, name=None,
                 input_shape=None):
        super().__init__(units, input_dim=input_dim, activation=activation, use_bias=False,
                         kernel_initializer=kernel_initializer, kernel_constraint=unit_norm(),
                         kernel_regularizer=kernel_regularizer, name=name,
                         input_shape=input_shape)
        for key, value in (("scale", scale), ("margin", margin)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"{key} must be a number, got {value!r}")
        if not (np.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
        if not 0.0 <= margin < 2.0:
            raise ValueError(f"margin must be in [0, 2) (a difference of cosines), got {margin!r}")
        name = _activation_name(self.activation, self)
        if name not in ("linear", "softmax"):
            raise ValueError(f"CosineDense activation must be None or 'softmax', got {name!r}")
        self.scale, self.margin = float(scale), float(margin)

    def pre_activation(self, params, x):
        """``scale * cos(theta)``: the logits without the margin."""
        kernel = l2_normalize(params[0], 0)
        return affine(l2_normalize(x, 1), kernel, None) * x.dtype.type(self.scale)

    def training_logits(self, logits, y, target):
        """``logits`` with ``scale * margin`` taken off the true class's (CosFace).

        ``y`` holds integer labels (``target="sparse"``) or one-hot rows
        (``"categorical"``).
        """
        if not self.margin:
            return logits
        dtype = logits.dtype.type
        if target == "sparse":
            onehot = (np.asarray(y).reshape(-1, 1) == np.arange(self.units)).astype(logits.dtype)
        elif target == "categorical":
            onehot = np.asarray(y, dtype=logits.dtype)
        else:
            raise ValueError(
                f"layer {self.name!r} has a margin, which needs class labels: use a categorical "
                f"or sparse categorical cross-entropy, not a loss for {target!r} targets")
        return logits - dtype(self.scale * self.margin) * onehot

    def check_loss(self, loss):
        """Refuse, at ``compile``, a loss the margin cannot act through.

        A margin (m > 0) lowers the true class's logit while training, so the
        loss must be a categorical or sparse categorical cross-entropy that
        sees the logits: on the logits themselves (``from_logits=True``, no
        activation) or fused with the layer's softmax (``activation="softmax"``,
        ``from_logits=False``). Without a margin any loss is accepted.

        Raises
        ------
        ValueError
            Naming the layer, the loss and its ``from_logits``, the activation
            and what would work.

        Examples
        --------
        >>> from spherenet.nn import CosineDense
        >>> from spherenet.nn.losses import SparseCategoricalCrossentropy
        >>> layer = CosineDense(3, margin=0.2, name="cos")
        >>> layer.check_loss(SparseCategoricalCrossentropy(from_logits=True))  # logits: fine
        >>> layer.check_loss(SparseCategoricalCrossentropy())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: layer 'cos' has a margin (0.2), which lowers the true class's logit: ...
        """
        if not self.margin:
            return
        activation = _activation_name(self.activation, self)
        categorical = loss.target in ("categorical", "sparse")
        if categorical and (activation == "linear") == bool(loss.from_logits):
            return
        raise ValueError(
            f"layer {self.name!r} has a margin ({self.margin:g}), which lowers the true class's "
            "logit: it needs a categorical or sparse categorical cross-entropy that sees the "
            "logits, either with activation='softmax' and from_logits=False or with no "
            f"activation and from_logits=True; got {loss.name} (from_logits={loss.from_logits}) "
            f"with activation {activation!r}")

    def get_config(self):
        config = {"class_name": type(self).__name__, "name": self.name}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        config.update(units=self.units, scale=self.scale, margin=self.margin,
                      activation=_activation_name(self.activation, self),
                      kernel_initializer=_initializer_config(self.kernel_initializer, self))
        if self.kernel_regularizer is not None:
            config["kernel_regularizer"] = self.kernel_regularizer.get_config()
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


LAYERS[CosineDense.__name__] = CosineDense
