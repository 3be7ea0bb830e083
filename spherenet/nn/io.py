"""Saving and loading models: one ``.npz`` file with the weights and a JSON architecture.

The file holds ``weight_000``, ``weight_001``, ... (kernel, bias, kernel, ...
in layer order) and ``architecture``, a JSON string with the layers' configs,
the weights' names and shapes, the model's dtype and, when it can be written
down, its compile settings. It is written to a temporary file in the same
directory and moved into place with ``os.replace``, so a crash never leaves a
half-written model under the final name; it is read with
``allow_pickle=False``, so loading never runs code.
"""

import json
import os
import tempfile
import zipfile

import numpy as np

from ..optim.rules import RAdam, RSGD
from ..strategies import STRATEGIES
from . import losses
from .layers import layer_from_config

__all__ = ["save_model", "load_model", "load_weights", "FORMAT"]

FORMAT = "spherenet.nn.Sequential/1"


def _weight_key(i):
    return f"weight_{i:03d}"


def _rule_config(rule):
    if isinstance(rule, str):
        return rule
    if type(rule) is RSGD and not callable(rule.lr):
        return {"class_name": "RSGD", "lr": rule.lr, "momentum": rule.momentum,
                "nesterov": rule.nesterov, "weight_decay": rule.weight_decay}
    if type(rule) is RAdam and not callable(rule.lr):
        return {"class_name": "RAdam", "lr": rule.lr, "betas": list(rule.betas), "eps": rule.eps,
                "amsgrad": rule.amsgrad, "adaptivity": rule.adaptivity}
    return None


def _rule_from_config(config):
    if isinstance(config, str):
        return config
    config = dict(config)
    cls = {"RSGD": RSGD, "RAdam": RAdam}[config.pop("class_name")]
    if "betas" in config:
        config["betas"] = tuple(config["betas"])
    return cls(**config)


def _compile_config(compiled):
    """The compile settings as JSON, or None when some part is a Python object."""
    if compiled is None:
        return None
    optimizer = _rule_config(compiled["optimizer"])
    metrics = compiled["metrics"]
    strategy = compiled["strategy"]
    if isinstance(strategy, type):
        strategy = strategy.name if STRATEGIES.get(strategy.name) is strategy else None
    if optimizer is None or strategy is None or not all(isinstance(m, str) for m in metrics):
        return None
    if not isinstance(compiled["loss"], tuple(losses._LOSSES.values())):
        return None
    return {"optimizer": optimizer, "loss": compiled["loss"].get_config(), "metrics": metrics,
            "strategy": strategy, "strategy_options": compiled["strategy_options"]}


def save_model(model, path):
    """Write ``model`` to ``path`` atomically.

    Raises
    ------
    ValueError
        If the architecture holds something that cannot be written as JSON
        (a Python function as activation or initializer).
    """
    model.build()
    weights = model.get_weights()
    config = {
        "format": FORMAT,
        "model": model.get_config(),
        "weights": [{"name": n, "shape": list(w.shape)} for n, w in zip(model.weight_names, weights)],
        "compile": _compile_config(model._compiled),
    }
    arrays = {_weight_key(i): w for i, w in enumerate(weights)}
    arrays["architecture"] = np.array(json.dumps(config))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _read(path):
    """(config, weights) from a saved file, with a clear error for anything unreadable."""
    path = os.fspath(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            if "architecture" not in data.files:
                raise ValueError(
                    f"{path} is not a spherenet model file: it has no 'architecture' entry "
                    f"(entries: {sorted(data.files)})"
                )
            config = json.loads(str(data["architecture"][()]))
            if not isinstance(config, dict) or config.get("format") != FORMAT:
                raise ValueError(f"{path} is not a spherenet model file of format {FORMAT!r}")
            expected = config["weights"]
            missing = [_weight_key(i) for i in range(len(expected)) if _weight_key(i) not in data.files]
            if missing:
                raise ValueError(f"{path} is missing the weight entries {missing}")
            weights = [data[_weight_key(i)] for i in range(len(expected))]
    except FileNotFoundError:
        raise
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"cannot read {path}: {err}") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(
            f"cannot read {path}: the file is truncated or corrupted ({type(err).__name__}: {err})"
        ) from None
    for spec, w in zip(expected, weights):
        if list(w.shape) != list(spec["shape"]):
            raise ValueError(f"{path}: weight {spec['name']} has shape {w.shape}, its "
                             f"architecture says {tuple(spec['shape'])}")
    return config, weights


def load_model(path):
    """The model saved in ``path``, with its weights (and compiled, if it was).

    Raises
    ------
    ValueError
        A truncated or corrupted file, a missing entry, an unknown layer or
        weights that do not fit the architecture.
    FileNotFoundError
        If there is no such file.

    Examples
    --------
    >>> import os, tempfile
    >>> from spherenet.nn import Sequential, Dense, unit_norm, load_model
    >>> model = Sequential([Dense(3, input_dim=2, kernel_constraint=unit_norm())], seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> model.save(path)
    >>> again = load_model(path)
    >>> all((a == b).all() for a, b in zip(model.get_weights(), again.get_weights()))
    True
    """
    from .model import Sequential

    config, weights = _read(path)
    spec = config["model"]
    try:
        layers = [layer_from_config(c) for c in spec["layers"]]
        model = Sequential(layers, name=spec.get("name"), dtype=spec.get("dtype", "float32"))
        model._build_shapes(tuple(spec["input_shape"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: cannot rebuild the saved architecture: {err}") from None
    _set(model, weights, config, path)
    compiled = config.get("compile")
    if compiled:
        model.compile(optimizer=_rule_from_config(compiled["optimizer"]),
                      loss=losses.get(compiled["loss"]), metrics=compiled["metrics"],
                      strategy=compiled["strategy"], strategy_options=compiled["strategy_options"])
    return model


def _set(model, weights, config, path):
    ours = [(n, tuple(p.shape)) for n, (_, p) in zip(model.weight_names, model._params)]
    theirs = [(w["name"], tuple(w["shape"])) for w in config["weights"]]
    if [s for _, s in ours] != [s for _, s in theirs]:
        raise ValueError(
            f"incompatible architecture: {path} holds weights {theirs}, the model has {ours}"
        )
    try:
        model.set_weights(weights)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def load_weights(model, path):
    """Load the weights of ``path`` into ``model``, whose architecture must match."""
    config, weights = _read(path)
    if model.input_shape is None and config["model"].get("input_shape") is not None:
        model._build_shapes(tuple(config["model"]["input_shape"]))
    model._require_shapes("load_weights")
    _set(model, weights, config, path)

