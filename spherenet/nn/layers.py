"""Layers: each knows its parameters (shape, manifold, initializer) and a pure ``apply``.

A layer holds configuration only. ``build(input_shape)`` fixes the shapes of
its parameters and returns the output shape (both without the batch axis);
``apply(params, x, training, rng)`` is a pure function of the parameter
arrays and the batch, written with autograd primitives, so a model composes
layers and differentiates once. Weights live in the model, not in the layer.
"""

import math
import numbers
import re
import weakref

import autograd.numpy as anp
import numpy as np
from autograd.extend import defvjp_argnum, defvjp_argnums, primitive

from .._checks import check_flag
from ..manifolds import Euclidean, Manifold, Oblique, Sphere
from ..manifolds.base import as_rng
from . import activations, constraints, initializers, regularizers
from ._data import as_inputs
from ._init import as_weight as _as_weight, initial_weights

__all__ = ["Param", "Layer", "Dense", "Activation", "Dropout", "Flatten", "affine"]


@primitive
def affine(x, kernel, bias):
    """``x @ kernel + bias`` (``bias`` may be None), one autograd node.

    Its vector-Jacobian products are the three matrix products of the
    backward pass, ``g @ kernel.T``, ``x.T @ g`` and ``g.sum(0)``, in the
    arrays' dtype; only those of traced arguments are computed (not
    ``g @ kernel.T`` for the network's input).

    Examples
    --------
    >>> import numpy as np
    >>> affine(np.ones((1, 2)), np.ones((2, 3)), np.arange(3.0))
    array([[2., 3., 4.]])
    """
    out = x @ kernel
    if bias is not None:
        out += bias
    return out


def _affine_vjp(argnum, ans, args, kwargs):
    x, kernel, _ = args
    if argnum == 0:
        return lambda g: g @ kernel.T
    if argnum == 1:
        return lambda g: x.T @ g
    return lambda g: np.sum(g, axis=0)


defvjp_argnum(affine, _affine_vjp)


@primitive
def affine_relu(x, kernel, bias):
    """``relu(x @ kernel + bias)`` (``bias`` may be None), one autograd node.

    The same values as ``relu(affine(x, kernel, bias))``, forward and
    backward, bit for bit: the gradient is masked once, ``g * (ans > 0)``
    as :func:`~spherenet.nn.activations.relu`'s, and the masked gradient goes
    through :func:`affine`'s three products; a dense layer with a relu saves
    the relu's node, its array and a pass over it.

    Examples
    --------
    >>> import numpy as np
    >>> affine_relu(np.ones((1, 2)), np.ones((2, 3)), np.array([-3.0, -2.0, 0.5]))
    array([[0. , 0. , 2.5]])
    """
    out = x @ kernel
    if bias is not None:
        out += bias
    return np.maximum(out, 0, out=out)


def _affine_relu_vjps(argnums, ans, args, kwargs):
    x, kernel, _ = args

    def vjp(g):
        masked = g * (ans > 0)
        return tuple(masked @ kernel.T if argnum == 0 else x.T @ masked if argnum == 1
                     else np.sum(masked, axis=0) for argnum in argnums)
    return vjp


defvjp_argnums(affine_relu, _affine_relu_vjps)


class Param:
    """A parameter's description: name, shape, manifold, initializer and regularizer.

    Also describes a layer's non-trainable states (``Layer.states``: the
    moving statistics of batch normalization), whose manifold is Euclidean.
    """

    __slots__ = ("name", "shape", "manifold", "initializer", "regularizer")

    def __init__(self, name, shape, manifold, initializer, regularizer=None):
        self.name, self.shape, self.manifold, self.initializer = name, shape, manifold, initializer
        self.regularizer = regularizer

    @property
    def constrained(self):
        """Whether the parameter lives on a curved manifold (not a Euclidean space)."""
        return not isinstance(self.manifold, Euclidean)

    def __repr__(self):
        return f"Param({self.name!r}, {self.shape}, {self.manifold!r})"


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _as_shape(shape, what="input_shape"):
    if shape is None:
        return None
    if isinstance(shape, numbers.Integral):
        shape = (shape,)
    shape = tuple(shape)
    for n in shape:
        _check_positive_int(what, n)
    return tuple(int(n) for n in shape)


class Layer:
    """Base class of layers.

    Parameters
    ----------
    name : str, optional
        Unique within a model; ``"dense"``, ``"dense_1"``... by default.
    input_shape : tuple of int, optional
        Shape of one sample (no batch axis); needed on a model's first layer
        unless the shape is taken from the data at the first ``fit``.
    """

    _has_weights = False

    def __init__(self, name=None, input_shape=None):
        if name is not None and not isinstance(name, str):
            raise ValueError(f"name must be a string, got {name!r}")
        self.name = name
        self.input_shape = _as_shape(input_shape)
        self.params = ()
        self.states = ()  # non-trainable arrays the layer updates itself (moving statistics)
        self.output_shape = None
        self._model = None  # a weak reference to the model holding the weights
        self._built_for = None  # the sample shape of the last build
        self._own_weights = None  # params then states, of a layer called on its own
        self._own_dtype = None

    @property
    def kind(self):
        """The default name's stem: the class name in snake case, as Keras names layers.

        ``"dense"``, ``"batch_normalization"``, ``"max_pooling2d"``...
        """
        name = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(self).__name__)
        return re.sub(r"([a-z])([A-Z])", r"\1_\2", name).lower()

    def build(self, input_shape):
        """Fix the parameter shapes for inputs of ``input_shape``; returns the output shape."""
        self.output_shape = tuple(input_shape)
        return self.output_shape

    def apply(self, params, x, training=False, rng=None):
        """The layer's output for a batch ``x`` (pure, autograd-traceable)."""
        raise NotImplementedError

    def apply_with_state(self, params, states, x, training=False, rng=None):
        """``(output, new_states)``: :meth:`apply` for a layer with non-trainable states.

        ``new_states`` are the values of ``states`` after this call (the
        moving statistics after a training batch); a stateless layer returns
        ``states`` unchanged.
        """
        return self.apply(params, x, training, rng), states

    def count_params(self):
        """The number of weights, trainable and not (as Keras's ``count_params``)."""
        return sum(math.prod(p.shape) for p in self.params + self.states)

    def __call__(self, x, training=False, seed=None):
        """The layer's output for a batch ``x``, as a NumPy array (Keras's ``layer(x)``).

        In a model, the layer runs with the model's weights (created on first
        use). On its own, the first call builds the layer for the shape of
        ``x`` and creates its initial weights (float64 for float64 input,
        float32 otherwise), seeded by ``seed``; those weights are the
        layer's until it joins a model, which then starts from them. With
        ``training=True`` the layer runs as in training and updates its
        non-trainable states (moving statistics), as in Keras.

        Parameters
        ----------
        x : array_like, shape (batch, ...)
        training : bool, default False
        seed : int or numpy.random.Generator, optional
            Seeds the initial weights (first call only) and, while training,
            dropout masks.

        Returns
        -------
        numpy.ndarray

        Raises
        ------
        ValueError
            If ``x`` does not have the shape the layer was built for.
        TypeError
            If ``training`` is not a bool.

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet.nn import Dense
        >>> layer = Dense(2, kernel_initializer="ones", bias_initializer="ones")
        >>> layer(np.array([[1.0, 2.0]]))
        array([[4., 4.]])
        >>> [w.shape for w in layer.get_weights()]
        [(2, 2), (2,)]
        """
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        model = None if self._model is None else self._model()
        if model is not None:
            return model._call_layer(self, x, bool(training), seed)
        dtype = np.float64 if getattr(x, "dtype", None) == np.float64 else np.float32
        if self._own_weights is not None:
            dtype = self._own_dtype
        x = as_inputs(x, self._built_for or self.input_shape, dtype,
                      f"the input of layer {self.name!r}")
        rng = as_rng(seed, "seed")
        if self._built_for is None or self._own_weights is None:
            self.build(x.shape[1:])
            self._built_for = tuple(x.shape[1:])
            pairs = [(self, p) for p in self.params + self.states]
            self._own_weights = initial_weights(pairs, np.dtype(dtype), rng)
            self._own_dtype = np.dtype(dtype)
        k = len(self.params)
        params, states = self._own_weights[:k], self._own_weights[k:]
        out, new = self.apply_with_state(params, states, x, bool(training), rng)
        if training and self.states:
            self._own_weights = tuple(params) + tuple(np.asarray(s) for s in new)
        return np.asarray(out)

    def _owner(self, what):
        model = None if self._model is None else self._model()
        if model is None:
            raise ValueError(
                f"layer {self.name!r} has no weights yet: they live in the model; add the layer "
                f"to a Sequential model, or call it on a batch (layer(x)), before calling {what}"
            )
        return model

    def _weight_range(self, model, what="get_weights"):
        model._require_shapes(what)
        i = next(k for k, layer in enumerate(model.layers) if layer is self)
        return model._full_slices[i]

    def _own(self, what="get_weights"):
        """The model holding this layer, or None for a layer on its own (built by a call)."""
        model = None if self._model is None else self._model()
        if model is None and self._own_weights is not None:
            return None
        return self._owner(what)

    def get_weights(self):
        """Copies of this layer's weights, in Keras's order: ``[kernel, bias]``.

        A layer without weights (Activation, Dropout, Flatten) gives ``[]``.
        The weights live in the model (created on first use, as
        ``Sequential.get_weights`` does).

        Raises
        ------
        ValueError
            If the layer has weights but is in no model, or the model's input
            shape is not known yet.

        Examples
        --------
        >>> from spherenet.nn import Sequential, Dense, unit_norm
        >>> model = Sequential([Dense(3, input_dim=2, kernel_constraint=unit_norm())], seed=0)
        >>> [w.shape for w in model.layers[0].get_weights()]
        [(2, 3), (3,)]
        """
        if not self._has_weights:
            return []
        model = self._own()
        if model is None:
            return [np.array(w, copy=True) for w in self._own_weights]
        a, b = self._weight_range(model)
        return model.get_weights()[a:b]

    def set_weights(self, weights):
        """Replace this layer's weights (``[kernel, bias]``), all or nothing.

        Validated as by ``Sequential.set_weights``: shapes, dtypes (another
        float dtype is cast and put back on the manifold at the model's
        precision), finiteness and the kernel's constraint. On any error
        nothing changes.

        Raises
        ------
        ValueError
            The wrong number of arrays, or an array refused by the model.
        TypeError
            An array that is not of integer or floating dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet.nn import Sequential, Dense, unit_norm
        >>> model = Sequential([Dense(2, input_dim=2, kernel_constraint=unit_norm())], seed=0)
        >>> model.layers[0].set_weights([np.eye(2), np.array([0.5, -0.5])])
        >>> model.get_weights()[1]
        array([ 0.5, -0.5], dtype=float32)
        """
        if isinstance(weights, (np.ndarray, str, bytes)) or not hasattr(weights, "__iter__"):
            raise TypeError(
                f"set_weights takes a list of arrays, got {type(weights).__name__}"
            )
        weights = list(weights)
        if not self._has_weights:
            if len(weights):
                raise ValueError(f"layer {self.name!r} has no weights, got {len(weights)} arrays")
            return
        model = self._own("set_weights")
        if model is None:
            self._set_own_weights(weights)
            return
        a, b = self._weight_range(model, "set_weights")
        names = [p.name for p in self.params + self.states]
        if len(weights) != b - a:
            raise ValueError(
                f"layer {self.name!r} has {b - a} weight arrays ({', '.join(names)}), "
                f"got {len(weights)}"
            )
        full = model.get_weights()
        full[a:b] = list(weights)
        model.set_weights(full)

    def _set_own_weights(self, weights):
        """set_weights of a layer on its own, validated as a model's."""
        specs = self.params + self.states
        if len(weights) != len(specs):
            names = ", ".join(p.name for p in specs)
            raise ValueError(f"layer {self.name!r} has {len(specs)} weight arrays ({names}), "
                             f"got {len(weights)}")
        dtype = self._own_dtype
        new = [_as_weight(p, w, dtype, f"{self.name}/{p.name}", 0.0 if k < len(self.params)
                          else None) for k, (p, w) in enumerate(zip(specs, weights))]
        self._own_weights = tuple(new)

    def get_config(self):
        config = {"class_name": type(self).__name__, "name": self.name}
        if self.input_shape is not None:
            config["input_shape"] = list(self.input_shape)
        return config

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def _activation_name(fun, layer):
    name = activations.name_of(fun)
    if name is None:
        raise ValueError(
            f"layer {layer.name!r} has the activation {fun!r}, a Python callable, which cannot be "
            "saved; use one of the named activations"
        )
    return name


class _KernelLayer(Layer):
    """What layers with a kernel and a bias share (Dense, Conv1D, Conv2D).

    The Keras arguments ``activation``, ``use_bias``, the initializers, the
    kernel's constraint or manifold and the regularizers; the parameters
    built from a kernel shape; their config and its inverse.
    """

    _has_weights = True

    def _set_kernel_options(self, activation, use_bias, kernel_initializer, bias_initializer,
                            kernel_constraint, kernel_manifold, kernel_regularizer,
                            bias_regularizer):
        self.activation = activations.get(activation)
        self.use_bias = check_flag(use_bias, "use_bias")
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        if kernel_manifold is not None:
            if self.kernel_constraint is not None:
                raise ValueError("give kernel_constraint or kernel_manifold, not both")
            if not isinstance(kernel_manifold, Manifold):
                raise ValueError(
                    f"kernel_manifold must be a spherenet Manifold, got {kernel_manifold!r}"
                )
        self.kernel_manifold = kernel_manifold
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)

    def _kernel_params(self, shape, bias_size):
        """The kernel's and the bias's :class:`Param` for a kernel of ``shape``."""
        shape = tuple(int(n) for n in shape)
        if self.kernel_manifold is not None:
            manifold = self.kernel_manifold
            if tuple(manifold.shape) != shape:
                raise ValueError(
                    f"layer {self.name!r}: kernel_manifold {manifold!r} has shape "
                    f"{tuple(manifold.shape)}, but the kernel has shape {shape}"
                )
        elif self.kernel_constraint is not None:
            manifold = self.kernel_constraint.manifold(shape)
        else:
            manifold = Euclidean(*shape)
        params = [Param("kernel", shape, manifold, self.kernel_initializer,
                        self.kernel_regularizer)]
        if self.use_bias:
            params.append(Param("bias", (bias_size,), Euclidean(bias_size), self.bias_initializer,
                                self.bias_regularizer))
        return tuple(params)

    def apply(self, params, x, training=False, rng=None):
        return self.activation(self.pre_activation(params, x))

    def _shape_config(self):
        """The layer's own arguments, written before the kernel's in its config."""
        return {}

    def get_config(self):
        config = super().get_config()
        config.update(self._shape_config())
        config.update(
            activation=_activation_name(self.activation, self),
            use_bias=self.use_bias,
            kernel_initializer=_initializer_config(self.kernel_initializer, self),
            bias_initializer=_initializer_config(self.bias_initializer, self),
            kernel_constraint=(None if self.kernel_constraint is None
                               else self.kernel_constraint.get_config()),
            kernel_manifold=(None if self.kernel_manifold is None
                             else manifold_config(self.kernel_manifold)),
        )
        for key in ("kernel_regularizer", "bias_regularizer"):
            if getattr(self, key) is not None:  # files without regularizers stay as they were
                config[key] = getattr(self, key).get_config()
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if config.get("kernel_manifold") is not None:
            config["kernel_manifold"] = manifold_from_config(config["kernel_manifold"])
        return cls(**config)


class Dense(_KernelLayer):
    """A fully connected layer: ``activation(x @ kernel + bias)``, kernel (input_dim, units).

    Parameters
    ----------
    units : int
    input_dim : int, optional
        Features of the input, for a first layer (Keras's ``input_dim``).
    activation : str or callable, optional
        ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softmax"``, ``"gelu"``,
        ``"leaky_relu"``, ``"linear"`` / None.
    use_bias : bool, default True
    kernel_initializer, bias_initializer : str, dict or Initializer
        Default ``"glorot_uniform"`` and ``"zeros"``. A constrained kernel is
        normalized onto its manifold after initialization.
    kernel_constraint : {None, "unit_norm"} or Constraint
        ``unit_norm()`` (``axis=0``): every column of the kernel has norm 1;
        the kernel is a point of ``Oblique(input_dim, units)``.
    kernel_manifold : Manifold, optional
        Any manifold of the kernel's shape instead, e.g. ``Sphere(input_dim,
        units)`` for unit Frobenius norm. Not together with a constraint.
    kernel_regularizer, bias_regularizer : str, dict or Regularizer, optional
        A term added to the loss, e.g. ``L2(1e-4)`` or
        ``HypersphericalEnergy(0.01)`` (see :mod:`spherenet.nn.regularizers`).
    name, input_shape
        As for :class:`Layer`.

    Examples
    --------
    >>> from spherenet.nn import Dense, unit_norm
    >>> layer = Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm())
    >>> layer.build((2,))
    (500,)
    >>> layer.params[0]
    Param('kernel', (2, 500), Oblique(shape=(2, 500), axis=0, retraction='exp', transport='projection'))
    """

    def __init__(self, units, input_dim=None, activation=None, use_bias=True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros",
                 kernel_constraint=None, kernel_manifold=None, kernel_regularizer=None,
                 bias_regularizer=None, name=None, input_shape=None):
        if input_dim is not None:
            if input_shape is not None:
                raise ValueError("give input_dim or input_shape, not both")
            input_shape = (_check_positive_int("input_dim", input_dim),)
        super().__init__(name, input_shape)
        self.units = _check_positive_int("units", units)
        self._set_kernel_options(activation, use_bias, kernel_initializer, bias_initializer,
                                 kernel_constraint, kernel_manifold, kernel_regularizer,
                                 bias_regularizer)

    def build(self, input_shape):
        if len(input_shape) != 1:
            raise ValueError(
                f"layer {self.name!r} (Dense) expects samples of shape (features,), got "
                f"{tuple(input_shape)}; add a Flatten layer before it"
            )
        self.params = self._kernel_params((input_shape[0], self.units), self.units)
        self.output_shape = (self.units,)
        return self.output_shape

    def pre_activation(self, params, x):
        """``x @ kernel + bias``: the logits when the activation is left out."""
        return affine(x, params[0], params[1] if self.use_bias else None)

    def apply(self, params, x, training=False, rng=None):
        # a subclass with its own pre-activation keeps the two nodes
        if (self.activation is activations.relu
                and type(self).pre_activation is Dense.pre_activation):
            return affine_relu(x, params[0], params[1] if self.use_bias else None)
        return super().apply(params, x, training, rng)

    def _shape_config(self):
        return {"units": self.units}


def _initializer_config(init, layer):
    if not isinstance(init, initializers.Initializer):
        raise ValueError(
            f"layer {layer.name!r} has the initializer {init!r}, a Python callable, which "
            "cannot be saved; use a named initializer"
        )
    return init.get_config()


class Activation(Layer):
    """Applies an activation function (see :class:`Dense`).

    Examples
    --------
    >>> import numpy as np
    >>> Activation("relu").apply((), np.array([[-1.0, 1.0]]))
    array([[0., 1.]])
    """

    def __init__(self, activation, name=None, input_shape=None):
        super().__init__(name, input_shape)
        self.activation = activations.get(activation)

    def apply(self, params, x, training=False, rng=None):
        return self.activation(x)

    def get_config(self):
        config = super().get_config()
        config["activation"] = _activation_name(self.activation, self)
        return config


class Dropout(Layer):
    """Zeroes a fraction ``rate`` of the inputs while training, scaling the rest by 1/(1 - rate).

    Parameters
    ----------
    rate : float in [0, 1)
    seed : int, optional
        Seeds this layer's masks; otherwise they come from the seed given to
        ``fit``. Either way, two runs with the same seeds are identical.
    """

    def __init__(self, rate, seed=None, name=None, input_shape=None):
        super().__init__(name, input_shape)
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0.0 <= rate < 1.0:
            raise ValueError(f"Dropout rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        if seed is not None:
            if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, numbers.Integral):
                raise TypeError(f"Dropout seed must be None or an int >= 0, got {seed!r}")
            if seed < 0:
                raise ValueError(f"Dropout seed must be None or an int >= 0, got {seed!r}")
        self.seed = None if seed is None else int(seed)

    def apply(self, params, x, training=False, rng=None):
        if not training or self.rate == 0.0:
            return x
        dtype = x.dtype
        keep = rng.random(x.shape, dtype=np.float32) >= np.float32(self.rate)
        return x * (keep * dtype.type(1.0 / (1.0 - self.rate)))

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, seed=self.seed)
        return config


class Flatten(Layer):
    """Reshapes each sample to one axis: (batch, d1, d2, ...) -> (batch, d1*d2*...)."""

    def build(self, input_shape):
        self.output_shape = (math.prod(input_shape),)
        return self.output_shape

    def apply(self, params, x, training=False, rng=None):
        return anp.reshape(x, (x.shape[0], -1))


LAYERS = {cls.__name__: cls for cls in (Dense, Activation, Dropout, Flatten)}


def layer_from_config(config):
    """A layer from its ``get_config()``."""
    config = dict(config)
    name = config.pop("class_name", None)
    if name not in LAYERS:
        raise ValueError(f"unknown layer class {name!r}; known: {sorted(LAYERS)}")
    cls = LAYERS[name]
    if hasattr(cls, "from_config"):
        return cls.from_config(config)
    return cls(**config)


# --- manifolds in saved architectures ---------------------------------------------


def manifold_config(manifold):
    """A JSON-able description of a Sphere, Oblique or Euclidean."""
    if isinstance(manifold, Oblique):
        axis = manifold.axis
        return {"class_name": "Oblique", "shape": list(manifold.shape),
                "axis": list(axis) if isinstance(axis, tuple) else axis,
                "retraction": manifold.retraction, "transport": manifold.transport}
    if isinstance(manifold, Sphere):
        return {"class_name": "Sphere", "shape": list(manifold.shape),
                "retraction": manifold.retraction, "transport": manifold.transport}
    if isinstance(manifold, Euclidean):
        return {"class_name": "Euclidean", "shape": list(manifold.shape)}
    raise ValueError(f"cannot save a kernel_manifold of type {type(manifold).__name__}")


def manifold_from_config(config):
    """The inverse of :func:`manifold_config`."""
    kind, shape = config.get("class_name"), tuple(config.get("shape", ()))
    if kind == "Oblique":
        axis = config["axis"]
        return Oblique(shape=shape, axis=tuple(axis) if isinstance(axis, list) else axis,
                       retraction=config["retraction"], transport=config["transport"])
    if kind == "Sphere":
        return Sphere(*shape, retraction=config["retraction"], transport=config["transport"])
    if kind == "Euclidean":
        return Euclidean(*shape)
    raise ValueError(f"unknown manifold {kind!r} in a saved architecture")
