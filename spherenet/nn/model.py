"""``Sequential``: a stack of layers trained by one step rule on one point of a Product manifold.

The model's weights -- every kernel and bias, in layer order -- form one
point of ``Product([M_1, M_2, ...])``, with M_i the manifold of the i-th
weight (``Oblique`` for a ``unit_norm`` kernel, ``Euclidean`` for a bias).
One training step is

1. the loss of a batch at the weights ``w = strategy.to_weights(z)`` (plus
   the penalty term under ``strategy="penalty"``), and its gradient with
   respect to every array of ``z`` in one reverse pass of autograd;
2. ``z, state = rule.step(strategy.geometry, z, grads, state)``,

so the same step rule runs under every strategy of
:mod:`spherenet.strategies`; under the default ``"riemannian"`` the kernel
never leaves its manifold.
"""

import contextlib
import math
import warnings
import weakref

import numpy as np
from autograd.tracer import getval

from .. import _tangent
from ..manifolds import Product
from ..manifolds.base import as_dtype, as_rng
from ..optim.decoupled import DecoupledWeightDecay
from ..optim.rules import RAdam, RSGD, StepRule
from ..strategies import STRATEGIES, NoConstraint, Penalty, Projection, Strategy, get_strategy
from . import activations, losses
from . import metrics as metrics_module
from ._autodiff import value_and_grads
from ._init import as_weight as _as_weight, initial_weights
from ._data import (as_inputs, as_sample_weight, as_targets, check_int, class_sample_weight,
                    split_validation)
from .callbacks import CallbackList, History, ProgressBar
from .layers import Activation, Dense, Dropout, Layer
from .summary import summary_lines

__all__ = ["Sequential", "NonFiniteLossWarning"]

_OPTIMIZERS = {"rsgd": RSGD, "sgd": RSGD, "radam": RAdam, "adam": RAdam}


class NonFiniteLossWarning(UserWarning):
    """Training stopped because the loss became NaN or infinite."""


def _get_optimizer(optimizer):
    if isinstance(optimizer, StepRule):
        return optimizer
    if isinstance(optimizer, str) and optimizer in _OPTIMIZERS:
        return _OPTIMIZERS[optimizer]()
    raise ValueError(
        f"unknown optimizer {optimizer!r}; choose one of {sorted(_OPTIMIZERS)} or pass a "
        "step rule from spherenet.optim, e.g. RSGD(lr=0.05, momentum=0.9)"
    )


def _rule_signature(rule):
    """The step rule's class and hyper-parameters but the learning rate, as JSON, or None."""
    if type(rule) is RSGD:
        return {"class_name": "RSGD", "momentum": rule.momentum, "nesterov": rule.nesterov,
                "weight_decay": rule.weight_decay}
    if type(rule) is RAdam:
        return {"class_name": "RAdam", "betas": list(rule.betas), "eps": rule.eps,
                "amsgrad": rule.amsgrad, "adaptivity": rule.adaptivity}
    if type(rule) is DecoupledWeightDecay:
        inner = _rule_signature(rule.rule)
        return None if inner is None else {"class_name": "DecoupledWeightDecay", "rule": inner,
                                           "weight_decay": rule.weight_decay}
    return None


@contextlib.contextmanager
def _forget_on_error(model, strategy):
    """On an interrupted fit (Ctrl-C, a callback's error) the model keeps its last completed
    step, and the next fit restarts the optimizer.

    The moving statistics of BatchNormalization follow every step: the
    weights are set to those of the same step (after the last epoch's end
    they are still the epoch's), so that the two never disagree. The state
    kept at the last epoch's end may have moved on since: it is dropped.
    """
    try:
        yield
    except BaseException:
        model._resume = None
        if model._steps_this_fit and model._live is not None:
            model._weights = tuple(np.asarray(w)
                                   for w in strategy.to_weights(model._live["variable"]))
        raise


def _weight_list(weights):
    """``weights`` as a list; an array (whose rows would pass for weights) is refused."""
    if isinstance(weights, (np.ndarray, str, bytes)) or not hasattr(weights, "__iter__"):
        raise TypeError(
            f"set_weights takes a list of arrays (kernel, bias, ...), got {type(weights).__name__}"
        )
    return list(weights)


def _output_layer(layers):
    """(name, activation name, units) of the layer that gives the model's output, or None."""
    act, name = None, None
    for layer in reversed(layers):
        if isinstance(layer, Dropout):
            continue
        if isinstance(layer, Activation):
            if act is None:
                act, name = activations.name_of(layer.activation), layer.name
            continue
        if isinstance(layer, Dense):
            if act is None:
                act, name = activations.name_of(layer.activation), layer.name
            return name, act, layer.units
        return None
    return None


def _warn_output_mismatch(layers, loss):
    """Warn (at compile) about an output activation that cannot train with ``loss``."""
    found = _output_layer(layers)
    if found is None:
        return
    name, act, units = found
    if act == "softmax" and units == 1:
        warnings.warn(
            f"the output layer {name!r} is a softmax over 1 unit, which is always exactly 1: "
            f"its gradient is zero, so the model cannot learn, and {loss.name} reports a "
            "meaningless loss; for two classes use Dense(1, activation='sigmoid') with "
            "loss='binary_crossentropy' (or Dense(2, activation='softmax') with "
            "'sparse_categorical_crossentropy')", UserWarning, stacklevel=3)
    elif act == "sigmoid" and units > 1 and loss.target in ("categorical", "sparse"):
        warnings.warn(
            f"the output layer {name!r} is a sigmoid over {units} units, but {loss.name} expects "
            "a probability distribution over the classes: -log p(true class) never pushes the "
            "other classes down, so every output drifts to 1; use activation='softmax' (or "
            "loss='binary_crossentropy' for independent labels)", UserWarning, stacklevel=3)
    elif loss.from_logits and act in ("sigmoid", "softmax"):
        warnings.warn(
            f"the loss takes logits (from_logits=True), but the output layer {name!r} already "
            f"applies a {act}: the loss would apply it a second time; remove the activation "
            "or use from_logits=False", UserWarning, stacklevel=3)


class Sequential:
    """A linear stack of layers, with Keras's API.

    Parameters
    ----------
    layers : list of Layer, optional
    name : str, optional
    dtype : {"float32", "float64"}, default "float32"
        Weights, activations and gradients all keep this dtype; inputs are
        cast once per ``fit``/``predict`` call, not per batch.
    seed : int or numpy.random.Generator, optional
        Seeds the weight initialization (otherwise the seed given to the
        first ``fit`` does).

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.nn import Sequential, Dense, unit_norm
    >>> model = Sequential(seed=0)
    >>> model.add(Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
    >>> model.add(Dense(1, activation="sigmoid"))
    >>> model.compile(optimizer="rsgd", loss="binary_crossentropy", metrics=["accuracy"])
    >>> x = np.random.default_rng(0).standard_normal((64, 2))
    >>> history = model.fit(x, x[:, 0] > 0, epochs=2, batch_size=32, verbose=0, seed=0)
    >>> kernel = model.get_weights()[0]
    >>> kernel.dtype, bool(np.allclose(np.linalg.norm(kernel, axis=0), 1.0, atol=1e-6))
    (dtype('float32'), True)
    """

    def __init__(self, layers=None, name=None, dtype="float32", seed=None):
        self.name = name or "sequential"
        try:
            self.dtype = as_dtype(dtype)
        except TypeError as err:
            raise ValueError(str(err)) from None
        if seed is not None and not isinstance(seed, np.random.Generator):
            as_rng(seed, "seed")  # checked now, used when the weights are made
        self.seed = seed
        self._layers = []
        self._params = []  # (layer, Param), in weight order: what the optimizer trains
        self._slices = []
        self._state_params = []  # (layer, Param) of non-trainable states (moving statistics)
        self._state_slices = []
        self._full_slices = []  # each layer's range in get_weights() (its params, then states)
        self._states = ()
        self._input_shape = None
        self._weights = None
        self._compiled = None
        self._resume = None
        self._pending = None  # a loaded optimizer state waiting for a matching compile
        self._steps_this_fit = 0
        self._live = None
        self.history = None
        self.stop_training = False
        self.stop_reason = None
        self.last_epoch = None
        self.log_keys = ()
        for layer in layers or []:
            self.add(layer)

    # --- structure --------------------------------------------------------------

    @property
    def layers(self):
        return list(self._layers)

    def add(self, layer):
        """Append a layer (before the model's weights are created)."""
        if not isinstance(layer, Layer):
            raise ValueError(f"add() takes a spherenet.nn layer, got {layer!r}")
        if self._weights is not None:
            raise ValueError("cannot add a layer to a model whose weights exist; build a new model")
        names = {lay.name for lay in self._layers}
        if layer.name is None:
            stem, k = layer.kind, 0
            layer.name = stem
            while layer.name in names:
                k += 1
                layer.name = f"{stem}_{k}"
        elif layer.name in names:
            raise ValueError(f"a layer named {layer.name!r} is already in the model")
        self._layers.append(layer)
        layer._model = weakref.ref(self)
        self._input_shape = None

    @property
    def input_shape(self):
        """Shape of one input sample, once known."""
        if self._input_shape is None and self._layers:
            first = self._layers[0]
            # a first layer called on its own knows the shape it was built for
            shape = first.input_shape or (first._built_for if first._own_weights is not None
                                          else None)
            if shape is not None:
                self._build_shapes(shape)
        return self._input_shape

    @property
    def output_shape(self):
        return None if self.input_shape is None else self._layers[-1].output_shape

    def _build_shapes(self, input_shape):
        if not self._layers:
            raise ValueError("the model has no layers")
        shape = tuple(input_shape)
        params, slices, states, state_slices, full = [], [], [], [], []
        for layer in self._layers:
            layer._built_for = shape
            shape = layer.build(shape)
            slices.append((len(params), len(params) + len(layer.params)))
            params.extend((layer, p) for p in layer.params)
            state_slices.append((len(states), len(states) + len(layer.states)))
            states.extend((layer, p) for p in layer.states)
            start = len(params) + len(states) - len(layer.params) - len(layer.states)
            full.append((start, len(params) + len(states)))
        self._params, self._slices = params, slices
        self._state_params, self._state_slices, self._full_slices = states, state_slices, full
        self._input_shape = tuple(input_shape)

    def _all_params(self):
        """Every (layer, Param) in the order of :meth:`get_weights`: per layer, params then states."""
        out = []
        for (a, b), (c, d) in zip(self._slices, self._state_slices):
            out += self._params[a:b] + self._state_params[c:d]
        return out

    @property
    def weight_names(self):
        """``layer/weight`` for every array of :meth:`get_weights`, in its order."""
        if self.input_shape is None:  # (the property builds the shapes when it can)
            return []
        return [f"{layer.name}/{p.name}" for layer, p in self._all_params()]

    @property
    def manifold(self):
        """The Product manifold of all the weights, in weight order."""
        self._require_shapes()
        return Product([p.manifold for _, p in self._params])

    def _require_shapes(self, what="this"):
        if self.input_shape is None:
            raise ValueError(
                f"the model's input shape is unknown, so {what} cannot be done yet: give "
                "input_dim (or input_shape) to the first layer, or call build() or fit() first"
            )

    def build(self, input_shape=None, seed=None):
        """Create the weights (each on its manifold) for samples of ``input_shape``."""
        if input_shape is not None:
            shape = tuple(input_shape)
            if self.input_shape is not None and self.input_shape != shape:
                raise ValueError(f"the model expects inputs of shape {self.input_shape}, got {shape}")
            self._build_shapes(shape)
        self._require_shapes("build")
        if self._weights is None:
            rng = as_rng(seed if seed is not None else self.seed)
            weights = initial_weights(self._params, self.dtype, rng)
            states = initial_weights(self._state_params, self.dtype, rng)
            # a layer called on its own before joining the model brings its weights (as in Keras)
            weights, states = list(weights), list(states)
            for i, layer in enumerate(self._layers):
                own, specs = layer._own_weights, layer.params + layer.states
                if own and len(own) == len(specs) and all(
                        w.shape == p.shape for w, p in zip(own, specs)):
                    (a, b), (c, d) = self._slices[i], self._state_slices[i]
                    # in the model's dtype, back on the manifold at its precision
                    own = [_as_weight(p, w, self.dtype, f"{layer.name}/{p.name}",
                                      0.0 if k < b - a else None)
                           for k, (p, w) in enumerate(zip(specs, own))]
                    weights[a:b], states[c:d] = own[:b - a], own[b - a:]
            self._weights, self._states = tuple(weights), tuple(states)
        return self

    @property
    def built(self):
        return self._weights is not None

    def count_params(self):
        self._require_shapes()
        return sum(layer.count_params() for layer in self._layers)

    # --- weights ----------------------------------------------------------------

    def _merge(self, weights, states):
        """Trainable weights and states in the order of :meth:`get_weights`."""
        out = []
        for (a, b), (c, d) in zip(self._slices, self._state_slices):
            out += list(weights[a:b]) + list(states[c:d])
        return out

    def get_weights(self):
        """Copies of the weights, in layer order (kernel, bias, kernel, ...).

        A layer's non-trainable states follow its trainable weights, as in
        Keras: ``gamma, beta, moving_mean, moving_variance`` for a
        :class:`~spherenet.nn.BatchNormalization`.
        """
        self.build()
        return [np.array(w, copy=True) for w in self._merge(self._weights, self._states)]

    def set_weights(self, weights):
        """Replace the weights, all or nothing.

        Parameters
        ----------
        weights : list of array_like
            One array per weight, in the order of :meth:`get_weights`
            (kernel, bias, kernel, ...), of integer or floating dtype.

        Notes
        -----
        An array of the model's dtype is taken bit for bit. An array of
        another floating dtype is checked against the manifold at the
        coarser of the two precisions (``1e3 * eps`` of float32 when either
        is float32), cast, and put back on the manifold at the model's
        precision: every sphere factor is divided by its norm, in the
        model's dtype. So float32 weights load into a float64 model (and
        back) and keep the constraint to the new dtype's rounding, while
        weights that are really off the manifold are still refused. Under a strategy that
        does not keep the constraint (``"penalty"``, ``"none"``) constrained
        kernels are not checked against their manifold, since training
        leaves them off it; under ``"projection"`` with ``epsilon`` (Keras's
        ``w / (epsilon + ||w||)``), norms may be off 1 by up to ``10 * epsilon``.

        Raises
        ------
        ValueError
            Wrong number of arrays, a wrong shape, non-finite values (also
            values finite in the given dtype but beyond the model's), or a
            constrained kernel off its manifold (the message says by how
            much). Nothing is changed then.
        TypeError
            An array that is not of integer or floating dtype.

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet.nn import Sequential, Dense, unit_norm
        >>> model = Sequential([Dense(3, input_dim=2, kernel_constraint=unit_norm())],
        ...                    seed=0, dtype="float64")
        >>> kernel, bias = model.get_weights()
        >>> model.set_weights([kernel.astype(np.float32), bias])
        >>> new = model.get_weights()[0]
        >>> new.dtype, bool(np.all(np.abs(np.linalg.norm(new, axis=0) - 1) <= 4e-16))
        (dtype('float64'), True)
        """
        self._assign(weights, self._constraint_slack())

    def _assign(self, weights, slack):
        """set_weights with a given tolerance on the constraint (None: not checked)."""
        self._require_shapes()
        weights = _weight_list(weights)
        specs = self._all_params()
        if len(weights) != len(specs):
            raise ValueError(f"the model has {len(specs)} weight arrays, got {len(weights)}")
        trainable = {id(p) for _, p in self._params}
        new = [
            _as_weight(p, w, self.dtype, f"{layer.name}/{p.name}",
                       slack if id(p) in trainable else None)
            for (layer, p), w in zip(specs, weights)
        ]
        self._weights = tuple(w for (_, p), w in zip(specs, new) if id(p) in trainable)
        self._states = tuple(w for (_, p), w in zip(specs, new) if id(p) not in trainable)
        self._resume = self._pending = None

    def _optimizer_signature(self):
        """What the optimizer state depends on besides the learning rate, as JSON, or None.

        The step rule's class and hyper-parameters, the strategy's name and options.
        """
        if self._compiled is None:
            return None
        rule, strategy = self._compiled["rule"], self._compiled["strategy"]
        config = _rule_signature(rule)
        if config is None:
            return None
        name = strategy if isinstance(strategy, str) else getattr(strategy, "name", None)
        if name not in STRATEGIES or not (isinstance(strategy, str) or STRATEGIES[name] is strategy):
            return None
        options = self._compiled["strategy_options"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values()):
            return None
        return {"rule": config, "strategy": name, "strategy_options": dict(options)}

    def _constraint_slack(self, strategy=None, options=None):
        """How far a strategy (the compiled one by default) leaves kernels off their manifolds.

        None when it does not keep the constraint at all (penalty, none); under
        projection with Keras's epsilon, w / (epsilon + ||w||) has norm 1 - epsilon / ||w||.
        """
        if strategy is None:
            if self._compiled is None:
                return 0.0
            strategy, options = self._compiled["strategy"], self._compiled["strategy_options"]
        spec, options = strategy, dict(options or {})
        if spec == "projection":
            options.setdefault("epsilon", 1e-7)
        cls = STRATEGIES.get(spec) if isinstance(spec, str) else spec
        if isinstance(cls, type) and issubclass(cls, (Penalty, NoConstraint)):
            return None
        if isinstance(cls, type) and issubclass(cls, Projection):
            return 10.0 * float(options.get("epsilon", 0.0))
        return 0.0

    def constraint_violations(self):
        """``{name: max_k | ||w_k|| - 1 |}`` for each constrained weight."""
        self.build()
        return {
            # Unchecked: the weights were validated when set, and a diverged
            # run's NaN weights should report a NaN violation, not raise.
            f"{layer.name}/{p.name}": p.manifold.unchecked.violation(w)
            for (layer, p), w in zip(self._params, self._weights) if p.constrained
        }

    # --- compile ----------------------------------------------------------------

    def compile(self, optimizer="rsgd", loss=None, metrics=None, strategy="riemannian",
                strategy_options=None):
        """Choose the step rule, loss, metrics and how constraints are kept.

        Parameters
        ----------
        optimizer : {"rsgd", "radam"} or StepRule, default "rsgd"
            ``"sgd"`` and ``"adam"`` are accepted as aliases; names give the
            rules' default settings (lr 0.01 and 0.001).
        loss : str or Loss
            ``"mse"``, ``"binary_crossentropy"``, ``"categorical_crossentropy"``,
            ``"sparse_categorical_crossentropy"``, or a Loss (``from_logits=``).
        metrics : list of str or callable, optional
            ``"accuracy"`` (chosen to fit the loss), ``"binary_accuracy"``,
            ``"categorical_accuracy"``, ``"sparse_categorical_accuracy"``, ``"mse"``.
        strategy : str or Strategy subclass, default "riemannian"
            ``"riemannian"``, ``"projection"`` (Keras ``unit_norm``: w / (1e-7 + ||w||)
            after each step), ``"reparam"``, ``"penalty"``, ``"none"``.
        strategy_options : dict, optional
            Passed to the strategy, e.g. ``{"mu": 10.0}`` for penalty.

        Raises
        ------
        ValueError
            Unknown optimizer, loss, metric or strategy; a ``CosineDense``
            output with a margin and a loss other than a (sparse) categorical
            cross-entropy on its logits.

        Warns
        -----
        UserWarning
            For an output that cannot train with the loss: a softmax over one
            unit (always 1: use a sigmoid), a sigmoid over several units with a
            categorical cross-entropy (use a softmax), or a sigmoid/softmax
            output with a loss that takes logits.
        """
        if loss is None:
            raise ValueError("compile needs a loss, e.g. loss='binary_crossentropy'")
        rule = _get_optimizer(optimizer)
        loss = losses.get(loss)
        if isinstance(metrics, (str, bytes)) or not (metrics is None
                                                     or hasattr(metrics, "__iter__")):
            # A string would be read letter by letter ('unknown metric a').
            raise TypeError(f"metrics must be a list of metric names or functions, e.g. "
                            f"['accuracy'], got {type(metrics).__name__} {metrics!r}")
        metric_ids = [] if metrics is None else list(metrics)
        for m in metric_ids:
            metrics_module.get(m, loss.target, 2)
        if isinstance(strategy, str):
            if strategy not in STRATEGIES:
                raise ValueError(f"unknown strategy {strategy!r}; choose one of {sorted(STRATEGIES)}")
        elif not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
            raise ValueError(f"strategy must be a name or a Strategy subclass, got {strategy!r}")
        if self._layers:
            check_loss = getattr(self._layers[-1], "check_loss", None)
            if check_loss is not None:
                check_loss(loss)  # a CosineDense margin needs logits and class labels
            _warn_output_mismatch(self._layers, loss)
        options = dict(strategy_options or {})
        if strategy == "projection":
            options.setdefault("epsilon", 1e-7)  # Keras's unit_norm divides by epsilon + ||w||
        self._compiled = {"rule": rule, "loss": loss, "metrics": metric_ids,
                          "strategy": strategy, "strategy_options": options,
                          "optimizer": optimizer}
        self._resume = None
        pending, self._pending = self._pending, None
        if (pending is not None and pending["resume"]["weights"] is self._weights
                and pending["signature"] == self._optimizer_signature()):
            # the file's compile settings could not be written down (a Python schedule):
            # compiled again alike, the model resumes the saved optimizer state
            self._resume = pending["resume"]

    def _require_compiled(self):
        if self._compiled is None:
            raise RuntimeError("compile the model before training or evaluating it")
        return self._compiled

    @property
    def loss(self):
        return None if self._compiled is None else self._compiled["loss"]

    def _make_strategy(self):
        spec = self._compiled["strategy"]
        return get_strategy(spec, self.manifold, **self._compiled["strategy_options"])

    def _output_mode(self):
        """'fused' (train a sigmoid/softmax output from its logits), 'logits' or 'probs'."""
        loss, last = self._compiled["loss"], self._layers[-1]
        if loss.from_logits:
            return "logits"
        act = activations.name_of(getattr(last, "activation", None))
        if (loss.output_activation is not None and act == loss.output_activation
                and isinstance(last, (Dense, Activation))):
            return "fused"
        return "probs"

    def _metric_fns(self):
        compiled = self._compiled
        units = self.output_shape[-1]
        return [metrics_module.get(m, compiled["loss"].target, units) for m in compiled["metrics"]]

    # --- forward ------------------------------------------------------------------

    def _forward(self, w, x, training=False, rngs=None, logits=False, states=None, updates=None):
        """The output for a batch; a stateful layer's new states are appended to ``updates``."""
        h, last = x, len(self._layers) - 1
        states = self._states if states is None else states
        for i, (layer, (a, b)) in enumerate(zip(self._layers, self._slices)):
            params, rng = w[a:b], None if rngs is None else rngs[i]
            c, d = self._state_slices[i]
            if logits and i == last:
                if isinstance(layer, Dense):
                    h = layer.pre_activation(params, h)
            elif d > c:
                h, new = layer.apply_with_state(params, states[c:d], h, training, rng)
                if updates is not None:
                    updates.extend(getval(s) for s in new)
            else:
                h = layer.apply(params, h, training, rng)
        return h

    def _regularization(self, w):
        """The sum of the weights' regularization terms (``kernel_regularizer=`` ...), or 0."""
        total = 0.0
        for (_, p), wi in zip(self._params, w):
            if p.regularizer is not None:
                total = total + p.regularizer(wi)
        return total

    def _batch_loss(self, w, xb, yb, mode, training=False, rngs=None, updates=None, swb=None):
        """(loss, probabilities) of one batch; the loss includes the regularization terms.

        ``updates``: a list that receives the layers' new states, or None; ``swb``: the
        batch's checked sample weights, or None.
        """
        loss = self._compiled["loss"]
        out = self._forward(w, xb, training, rngs, logits=(mode == "fused"), updates=updates)
        # a margin classifier (CosFace) lowers the true class's logit while training
        adjust = getattr(self._layers[-1], "training_logits", None) if training else None
        if adjust is not None and mode == "probs" and self._layers[-1].margin:
            raise ValueError(
                f"layer {self._layers[-1].name!r} has a margin, which acts on logits: give it "
                "activation='softmax' with a cross-entropy loss, or use a loss with "
                "from_logits=True")
        if mode in ("fused", "logits"):
            value = loss.logits_loss(
                yb, out if adjust is None else adjust(out, yb, loss.target), swb)
        else:
            value = loss.probs_loss(yb, out, swb)
        if mode == "fused":
            probs = self._layers[-1].activation(getval(out))
        else:
            probs = getval(out)
            if mode == "logits" and loss.output_activation is not None:
                probs = activations.get(loss.output_activation)(probs)
        if any(p.regularizer is not None for _, p in self._params):
            value = value + self._regularization(w)
        return value, probs

    def _call_layer(self, layer, x, training, seed):
        """``layer(x)`` for a layer of this model, with the model's weights (see Layer.__call__)."""
        i = next(k for k, lay in enumerate(self._layers) if lay is layer)
        if i == 0 and self.input_shape is None:
            x = as_inputs(x, None, self.dtype)
            self._build_shapes(x.shape[1:])
        self._require_shapes(f"calling layer {layer.name!r}")
        x = as_inputs(x, layer._built_for, self.dtype, f"the input of layer {layer.name!r}")
        self.build()
        (a, b), (c, d) = self._slices[i], self._state_slices[i]
        rng = as_rng(seed if seed is not None else getattr(layer, "seed", None), "seed")
        out, new = layer.apply_with_state(self._weights[a:b], self._states[c:d], x, training, rng)
        if training and d > c:
            states = list(self._states)
            states[c:d] = [np.asarray(s) for s in new]
            self._states = tuple(states)
        return np.asarray(out)

    def __call__(self, x, training=False):
        """The model's output for a batch ``x``, as a NumPy array (Keras's ``model(x)``).

        Creates the weights on first use, like :meth:`predict` (from the shape
        of ``x`` if the model has no input shape yet). With ``training=True``
        the layers run as in training: Dropout draws masks (from each layer's
        ``seed``, else unseeded) and BatchNormalization normalizes with the
        batch's statistics and updates its moving statistics, as a training
        call does in Keras.

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet.nn import Sequential, Dense
        >>> model = Sequential([Dense(2, input_dim=3)], seed=0)
        >>> x = np.ones((4, 3), dtype=np.float32)
        >>> out = model(x)
        >>> type(out).__name__, out.shape, bool(np.array_equal(out, model.predict(x)))
        ('ndarray', (4, 2), True)
        """
        if not isinstance(training, (bool, np.bool_)):
            raise TypeError(f"training must be True or False, got {training!r}")
        if self.input_shape is None:
            x = as_inputs(x, None, self.dtype)
            self._build_shapes(x.shape[1:])
        else:
            x = self._prepare_x(x)
        self.build()
        rngs, updates = None, None
        if training:
            rngs = [np.random.default_rng(getattr(layer, "seed", None)) for layer in self._layers]
            updates = []
        out = self._forward(self._weights, x, bool(training), rngs, updates=updates)
        if updates:
            self._states = tuple(updates)
        return np.asarray(out)

    def _prepare_x(self, x, what="x"):
        self._require_shapes()
        return as_inputs(x, self.input_shape, self.dtype, what)

    def predict(self, x, batch_size=None, verbose=0):
        """The model's outputs for ``x`` (probabilities for a sigmoid/softmax output).

        ``batch_size`` (default 1024) only bounds the memory used.
        """
        x = self._prepare_x(x)
        self.build()
        bs = 1024 if batch_size is None else check_int("batch_size", batch_size, 1)
        out = [self._forward(self._weights, x[i:i + bs]) for i in range(0, len(x), bs)]
        return np.concatenate(out, axis=0)

    def _evaluate_arrays(self, x, y, batch_size, metric_fns, sw=None):
        mode = self._output_mode()
        total, sums = 0.0, [0.0] * len(metric_fns)
        for i in range(0, len(x), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            swb = None if sw is None else sw[i:i + batch_size]
            value, probs = self._batch_loss(self._weights, xb, yb, mode, swb=swb)
            total += float(value) * len(xb)
            for k, (_, fn) in enumerate(metric_fns):
                sums[k] += fn(yb, probs) * len(xb)
        n = len(x)
        return total / n, [s / n for s in sums]

    def evaluate(self, x, y, batch_size=None, verbose=0, return_dict=False, sample_weight=None):
        r"""Loss (and metrics) on ``(x, y)``: a float, a list ``[loss, *metrics]``, or a dict.

        ``sample_weight``: one finite weight >= 0 per sample, shape ``(n,)``;
        the loss is then Keras's :math:`\frac{1}{n} \sum_i w_i \ell_i`
        (whatever the batch size), the metrics stay unweighted (Keras's
        ``metrics``, not its ``weighted_metrics``).

        Examples
        --------
        >>> import numpy as np
        >>> from spherenet.nn import Sequential, Dense
        >>> model = Sequential([Dense(1, input_dim=1, use_bias=False)], dtype="float64")
        >>> model.compile(loss="mse")
        >>> model.set_weights([np.array([[2.0]])])
        >>> x, y = np.array([[1.0], [1.0]]), np.array([[1.0], [0.0]])  # squared errors 1 and 4
        >>> model.evaluate(x, y), model.evaluate(x, y, sample_weight=[3.0, 0.0])
        (2.5, 1.5)
        """
        compiled = self._require_compiled()
        x = self._prepare_x(x)
        units = self.output_shape[-1]
        y = as_targets(y, len(x), compiled["loss"].target, units, self.dtype)
        sw = as_sample_weight(sample_weight, len(x), self.dtype)
        self.build()
        bs = 1024 if batch_size is None else check_int("batch_size", batch_size, 1)
        metric_fns = self._metric_fns()
        loss, values = self._evaluate_arrays(x, y, bs, metric_fns, sw)
        result = {"loss": loss, **{name: v for (name, _), v in zip(metric_fns, values)}}
        if verbose:
            print(" - ".join(f"{k}: {v:.4f}" for k, v in result.items()))
        if return_dict:
            return result
        return loss if not metric_fns else [loss, *values]

    # --- fit --------------------------------------------------------------------------

    def fit(self, x, y, epochs=1, batch_size=32, verbose=1, callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, seed=None,
            sample_weight=None, class_weight=None):
        r"""Train for ``epochs`` passes over ``(x, y)``; returns a :class:`History`.

        Parameters
        ----------
        x : array_like, shape (samples, features...)
        y : array_like
            Integer labels (sparse cross-entropy), one-hot rows (categorical),
            0/1 values (binary) or targets (mse).
        epochs : int, default 1
        batch_size : int, default 32
        verbose : {0, 1, 2}, default 1
            0 quiet; 1 a progress bar (tqdm, if installed) ending as one line
            per epoch; 2 one plain line per epoch.
        callbacks : list of Callback or callable, optional
        validation_split : float in [0, 1), default 0
            Hold out the last fraction of the samples (before shuffling).
        validation_data : (x_val, y_val), optional
        shuffle : bool, default True
        seed : int or numpy.random.Generator, optional
            Seeds the shuffling, the dropout masks and, if the weights do not
            exist yet and the model has no seed, their initialization: two
            runs with equal seeds give bit-identical weights. With None, a
            fit that follows another fit of the same model (or a model
            loaded with :func:`~spherenet.nn.load_model`, which saves them)
            continues its shuffling and dropout generators, as well as the
            optimizer's state: ``fit(epochs=2); fit(epochs=2)`` is then
            bit for bit ``fit(epochs=4)``. A seed restarts them.
        sample_weight : array_like, shape (samples,), optional
            One finite weight >= 0 per sample: the loss of a batch of m
            samples is Keras's :math:`\frac{1}{m} \sum_i w_i \ell_i`, and the
            epoch's ``loss`` in the history is :math:`\frac{1}{n} \sum_i w_i
            \ell_i` over the epoch (what :meth:`evaluate` with the same
            weights reports). Metrics stay unweighted. With
            ``validation_split``, the last fraction of the weights goes with
            the held-out samples; ``validation_data`` may then be a triple
            ``(x_val, y_val, sample_weight_val)``.
        class_weight : dict, optional
            ``{class index: weight}`` (Keras's): every sample weighs the weight
            of its class (its label, the argmax of its target row, or its
            rounded 0/1 target), 1 for a class not listed. Not together with
            ``sample_weight``.

        Returns
        -------
        History

        Raises
        ------
        ValueError
            For bad data (lengths, feature counts, NaN/Inf, values beyond the
            range of the model's dtype, labels out of range) or arguments,
            before any weight changes.

        Warns
        -----
        NonFiniteLossWarning
            If the loss becomes NaN or infinite: training stops and the model
            keeps the weights of the last step whose loss was finite.
        """
        compiled = self._require_compiled()
        epochs = check_int("epochs", epochs, 0)
        batch_size = check_int("batch_size", 32 if batch_size is None else batch_size, 1)
        if verbose not in (0, 1, 2):
            raise ValueError(f"verbose must be 0, 1 or 2, got {verbose!r}")
        if callbacks is not None and not isinstance(callbacks, (list, tuple)):
            raise TypeError(f"callbacks must be a list of Callback objects or callables, got "
                            f"{type(callbacks).__name__}")
        if not isinstance(shuffle, (bool, np.bool_)):
            raise TypeError(f"shuffle must be True or False, got {shuffle!r}")
        resume = self._resume if (self._resume is not None
                                  and self._resume["weights"] is self._weights) else None
        rng = resume["rng"] if (seed is None and resume is not None
                                and resume["rng"] is not None) else as_rng(seed, "seed")
        if self.input_shape is None:
            x = as_inputs(x, None, self.dtype)
            self._build_shapes(x.shape[1:])
        else:
            x = self._prepare_x(x)
        units, target = self.output_shape[-1], compiled["loss"].target
        y = as_targets(y, len(x), target, units, self.dtype)
        if class_weight is not None:
            if sample_weight is not None:
                raise ValueError("give sample_weight or class_weight, not both")
            sw = class_sample_weight(class_weight, y, target, units, self.dtype)
        else:
            sw = as_sample_weight(sample_weight, len(x), self.dtype)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
                raise ValueError("validation_data must be a pair (x_val, y_val) or a triple "
                                 "(x_val, y_val, sample_weight_val)")
            xv = self._prepare_x(validation_data[0], "validation x")
            val = (xv, as_targets(validation_data[1], len(xv), target, units, self.dtype,
                                  "validation y", "validation x"),
                   None if len(validation_data) == 2 else as_sample_weight(
                       validation_data[2], len(xv), self.dtype, "validation sample_weight",
                       "validation x"))
        elif validation_split:
            (x, y), (xv, yv) = split_validation(x, y, validation_split)
            val = (xv, yv, None if sw is None else sw[len(x):])
            sw = None if sw is None else sw[:len(x)]
        metric_fns = self._metric_fns()
        history = History()
        cbs = [history] + ([ProgressBar(verbose)] if verbose else []) + list(callbacks or [])
        callback_list = CallbackList(cbs, self)

        if self._weights is None:
            self.build(seed=self.seed if self.seed is not None else rng)
        names = [f"{layer.name}/{p.name}" for layer, p in self._params]
        constrained = [i for i, (_, p) in enumerate(self._params) if p.constrained]
        keys = ["loss"] + [name for name, _ in metric_fns]
        keys += [f"val_{k}" for k in keys] if val is not None else []
        keys += [f"{names[i]}_violation" for i in constrained]
        self.log_keys = tuple(keys)
        n, steps = len(x), math.ceil(len(x) / batch_size)
        history.params = {"epochs": epochs, "steps": steps, "samples": n,
                          "strategy": compiled["strategy"]}
        self.history, self.stop_training, self.stop_reason, self.last_epoch = history, False, None, None

        strategy, rule = self._make_strategy(), compiled["rule"]
        geometry = strategy.geometry
        if resume is not None:
            z, state = resume["variable"], resume["state"]
        else:
            z = strategy.to_variable(self._weights)
            state = rule.init(geometry, z)
        if seed is None and resume is not None and resume["dropout"] is not None:
            rngs = resume["dropout"]
        else:
            rngs = [None if not isinstance(layer, Dropout)
                    else np.random.default_rng(layer.seed if layer.seed is not None
                                               else rng.integers(2**63))
                    for layer in self._layers]
        self._steps_this_fit = 0
        mode = self._output_mode()
        batch = {}

        def data_loss(w):
            updates = [] if self._state_params else None
            value, probs = self._batch_loss(w, batch["x"], batch["y"], mode, True, rngs, updates,
                                            swb=batch["sw"])
            batch["loss"], batch["probs"], batch["states"] = getval(value), probs, updates
            return value

        cost = strategy.cost(data_loss)

        def objective(*zs):
            return cost(tuple(zs))

        self._live = {"variable": z, "lr": None}
        callback_list.on_train_begin()
        # Overflow is how a diverging run shows itself: it is detected (a non-finite loss
        # or weights) and reported once, by a NonFiniteLossWarning, not by NumPy warnings.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                _forget_on_error(self, strategy):
            for epoch in range(epochs):
                callback_list.on_epoch_begin(epoch)
                order = rng.permutation(n) if shuffle else None
                z, state, seen, sums = self._train_epoch(
                    z, state, rule, geometry, objective, batch, x, y, order, batch_size,
                    metric_fns, callback_list, epoch, sw)
                if self.stop_training:
                    break
                self._weights = tuple(strategy.to_weights(z))
                # what a ModelCheckpoint of this epoch saves, to resume from it bit for bit
                self._resume = {"weights": self._weights, "variable": z, "state": state,
                                "rng": rng, "dropout": rngs}
                logs = {"loss": sums[0] / seen}
                logs.update((name, v / seen) for (name, _), v in zip(metric_fns, sums[1:]))
                if val is not None:
                    vloss, vvalues = self._evaluate_arrays(val[0], val[1], max(batch_size, 1024),
                                                           metric_fns, val[2])
                    logs["val_loss"] = vloss
                    logs.update((f"val_{name}", v) for (name, _), v in zip(metric_fns, vvalues))
                for i in constrained:
                    logs[f"{names[i]}_violation"] = self._params[i][1].manifold.unchecked.violation(
                        self._weights[i])
                self.last_epoch = epoch
                callback_list.on_epoch_end(epoch, logs)
                if self.stop_training:
                    break
        self._weights = tuple(np.asarray(w) for w in strategy.to_weights(z))
        self._resume = None if state is None else {
            "weights": self._weights, "variable": z, "state": state, "rng": rng, "dropout": rngs}
        history.stop_reason = self.stop_reason
        callback_list.on_train_end()
        return history

    def _train_epoch(self, z, state, rule, geometry, objective, batch, x, y, order, batch_size,
                     metric_fns, callback_list, epoch, sw=None):
        """One pass over the batches: ``(z, state, samples seen, [loss sum, metric sums...])``.

        ``sw``: the checked sample weights, or None.

        ``state`` is None when a non-finite loss or weights stopped training;
        ``z`` is then the last variable whose loss was finite. Steps never
        write into ``z``, so keeping the previous one costs nothing.
        """
        n = len(x)
        sums, seen, good = [0.0] * (1 + len(metric_fns)), 0, z
        for step in range(math.ceil(n / batch_size)):
            lo, hi = step * batch_size, min(n, (step + 1) * batch_size)
            if order is None:
                batch["x"], batch["y"] = x[lo:hi], y[lo:hi]
                batch["sw"] = None if sw is None else sw[lo:hi]
            else:
                idx = order[lo:hi]
                batch["x"], batch["y"] = x.take(idx, axis=0), y.take(idx, axis=0)
                batch["sw"] = None if sw is None else sw.take(idx)
            value, grads = value_and_grads(objective, z)
            if not math.isfinite(float(value)):
                self._stop_nonfinite(float(value), epoch, step, batch["x"])
                return good, None, seen, sums
            good = z
            lr = rule.lr_at(state["step"]) if isinstance(state, dict) and "step" in state else None
            z, state = rule.step(geometry, z, grads, state)
            self._steps_this_fit += 1
            if batch.get("states"):
                self._states = tuple(batch["states"])  # the moving statistics, as Keras's step
            self._live = {"variable": z, "lr": lr}  # what AngularTelemetry reads per step
            m = hi - lo
            seen += m
            sums[0] += float(batch["loss"]) * m
            for k, (_, fn) in enumerate(metric_fns, start=1):
                sums[k] += fn(batch["y"], batch["probs"]) * m
            callback_list.on_train_batch_end(step, {"loss": sums[0] / seen})
        if not _tangent.all_finite(z):
            self._stop_nonfinite(None, epoch, step, batch["x"])
            return good, None, seen, sums
        return z, state, seen, sums

    def _stop_nonfinite(self, value, epoch, step, xb):
        where = f"training stopped at epoch {epoch + 1}, batch {step + 1}"
        if value is None:
            message = (f"{where}: the weights became NaN or infinite; the model keeps the weights "
                       "of the last step with a finite loss (try a smaller learning rate)")
        elif self._steps_this_fit == 0:
            # No step of this fit has moved the weights: the learning rate is not to blame.
            largest = float(np.max(np.abs(xb))) if xb.size else 0.0
            message = (
                f"{where}: the loss is {value} at the weights training started from, before any "
                f"step; the data or the weights overflow {self.dtype.name} (largest |x| in the "
                f"batch: {largest:.3g}); scale the inputs or targets down, or use "
                "dtype='float64'. The weights are unchanged"
            )
        else:
            message = (
                f"{where}: the loss became {value} after {self._steps_this_fit} step(s) of this "
                "fit; the model keeps the weights of the last step with a finite loss (try a "
                "smaller learning rate)"
            )
        self.stop_training, self.stop_reason = True, message
        warnings.warn(message, NonFiniteLossWarning, stacklevel=4)

    # --- summary and saving ---------------------------------------------------------

    def summary(self, print_fn=print, line_length=None):
        """Print a Keras-like table: layers, output shapes, parameter counts, kernel manifolds."""
        self._require_shapes("summary")
        strategy = None if self._compiled is None else self._compiled["strategy"]
        for line in summary_lines(self, strategy, line_length):
            print_fn(line)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype.name,
                "input_shape": None if self.input_shape is None else list(self.input_shape),
                "layers": [layer.get_config() for layer in self._layers]}

    def save(self, path):
        """Save architecture, weights and optimizer state to one ``.npz`` file, atomically.

        See :mod:`spherenet.nn.io`; :func:`~spherenet.nn.load_model` reads it
        back and resumes training where it stopped.
        """
        from .io import save_model

        save_model(self, path)

    def load_weights(self, path):
        """Load weights saved from a model of the same architecture (any float dtype).

        The optimizer restarts; :func:`~spherenet.nn.load_model` resumes it.
        """
        from .io import load_weights

        load_weights(self, path)
