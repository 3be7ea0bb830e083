"""Saving and loading models: one ``.npz`` file with the weights and a JSON architecture.

The file holds ``weight_000``, ``weight_001``, ... (kernel, bias, kernel, ...
in layer order) and ``architecture``, a JSON string with the layers' configs,
the weights' names and shapes, the model's dtype and, when it can be written
down, its compile settings.

When the model has been trained (by ``RSGD`` or ``RAdam``, alone or inside
``DecoupledWeightDecay``, under one of the named strategies), the file also holds the optimizer's state: the step
rule's buffers and moments (``optimizer_000``, ...), its step count (hence
the position of a learning-rate schedule), the strategy's variable where it
differs from the weights (``variable_000``, ...: the unnormalized v of
``"reparam"``), and the states of the generators that shuffle the data and
draw the dropout masks, with the rule's and the strategy's settings, as JSON
under ``"optimizer"``. A model loaded with :func:`load_model` and trained
further with ``fit(..., seed=None)`` then follows bit for bit the run that
was not interrupted. When the compile settings cannot be written down (a
Python learning-rate schedule, a custom loss), the model loads uncompiled
and resumes the saved state once compiled again with the same rule class,
hyper-parameters and strategy (the learning rate may be any schedule).
Files without that entry (older files, or models saved before any training)
still load; their training restarts the optimizer (zero momentum, fresh
moments, step 0).

The file is written to a unique temporary file ``.<name>.tmp-<pid>-<random>.npz``
in the same directory and moved into place with ``os.replace``, so a crash
never leaves a half-written model under the final name, and two processes
saving the same target never write to one file. A temporary file left by a
process that was killed while saving is removed by the next save of the
same target. Files are read with ``allow_pickle=False``, so loading never
runs code.
"""

import json
import os
import re
import zipfile

import numpy as np

from .._atomic import atomic_open
from ..optim.decoupled import DecoupledWeightDecay
from ..optim.rules import RAdam, RSGD
from ..strategies import STRATEGIES
from . import losses
from .layers import layer_from_config
from .model import _rule_signature

__all__ = ["save_model", "load_model", "load_weights", "FORMAT"]

FORMAT = "spherenet.nn.Sequential/1"


def _weight_key(i):
    return f"weight_{i:03d}"


# --- the optimizer's state as arrays and JSON ----------------------------------------------


def _encode(obj, arrays, prefix):
    """A JSON tree for a step rule's state; its arrays go into ``arrays``."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (int, float)) and not isinstance(obj, np.generic):
        if isinstance(obj, float) and not np.isfinite(obj):
            return {"float": repr(obj)}
        return obj
    if isinstance(obj, (np.ndarray, np.generic)):
        key = f"{prefix}_{len([k for k in arrays if k.startswith(prefix + '_')]):03d}"
        arrays[key] = np.asarray(obj)
        return {"array": key, "scalar": isinstance(obj, np.generic)}
    if isinstance(obj, (tuple, list)):
        return {"tuple" if isinstance(obj, tuple) else "list": [_encode(o, arrays, prefix)
                                                               for o in obj]}
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj):
        return {"dict": {k: _encode(v, arrays, prefix) for k, v in obj.items()}}
    raise TypeError(f"cannot save an optimizer state holding {type(obj).__name__}")


def _decode(node, data, dtype):
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError(f"unexpected entry {node!r}")
    if "array" in node:
        a = np.array(data[node["array"]])
        if a.dtype.kind == "f" and a.dtype != dtype:
            raise ValueError(f"{node['array']} has dtype {a.dtype}, the model {dtype}")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise ValueError(f"{node['array']} has NaN or infinite values")
        return a[()] if node.get("scalar") else a
    ((kind, value),) = node.items()
    if kind == "float":
        return float(value)
    if kind == "tuple":
        return tuple(_decode(v, data, dtype) for v in value)
    if kind == "list":
        return [_decode(v, data, dtype) for v in value]
    if kind == "dict":
        return {k: _decode(v, data, dtype) for k, v in value.items()}
    raise ValueError(f"unexpected entry {node!r}")


def _rng_state(rng):
    """A generator's state as JSON-able data."""
    if rng is None:
        return None
    state = dict(rng.bit_generator.state)
    if isinstance(state.get("state"), dict):
        state["state"] = {k: v.tolist() if isinstance(v, np.ndarray) else v
                          for k, v in state["state"].items()}
    return state


def _rng_from_state(state):
    if state is None:
        return None
    name = state.get("bit_generator")
    if name not in ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64"):
        raise ValueError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    state = dict(state)
    inner = dict(state["state"])
    if name == "MT19937":
        inner["key"] = np.asarray(inner["key"], dtype=np.uint32)
    elif name == "Philox":
        inner = {k: np.asarray(v, dtype=np.uint64) for k, v in inner.items()}
        state["buffer"] = np.asarray(state["buffer"], dtype=np.uint64)
    state["state"] = inner
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _same_array(a, b):
    return a is b or (a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes())


def _optimizer_entries(model, arrays):
    """The JSON entry of the optimizer state (its arrays into ``arrays``), or None."""
    resume, signature = model._resume, model._optimizer_signature()
    if resume is None or resume["weights"] is not model._weights or signature is None:
        return None
    variable = resume["variable"]
    z = variable if isinstance(variable, tuple) else (variable,)
    replaced, mine = {}, {}
    for i, (zi, wi) in enumerate(zip(z, model._weights)):
        if not _same_array(zi, wi):
            key = f"variable_{i:03d}"
            mine[key] = zi
            replaced[str(i)] = key
    try:
        state = _encode(resume["state"], mine, "optimizer")
    except TypeError:
        return None  # a state that is not arrays and numbers: training will restart it
    arrays.update(mine)
    return {
        "signature": signature,
        "state": state,
        "variable": replaced,
        "sampler": _rng_state(resume["rng"]),
        "dropout": [_rng_state(r) for r in resume["dropout"]],
    }


def _restore_optimizer(model, entry, data, path):
    """The saved optimizer state, to resume ``model`` (compiled or not) from."""
    try:
        state = _decode(entry["state"], data, model.dtype)
        z = list(model._weights)
        for i, key in entry["variable"].items():
            zi = np.array(data[key])
            i = int(i)
            if zi.shape != z[i].shape or zi.dtype != model.dtype or not np.all(np.isfinite(zi)):
                raise ValueError(f"{key} must be finite, of shape {z[i].shape} and dtype "
                                 f"{model.dtype}, got {zi.shape} {zi.dtype}")
            z[i] = zi
        dropout = [_rng_from_state(r) for r in entry["dropout"]]
        if len(dropout) != len(model.layers):
            raise ValueError(f"{len(dropout)} dropout generators for {len(model.layers)} layers")
        rng = _rng_from_state(entry["sampler"])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        raise ValueError(f"{path}: the saved optimizer state is corrupted: {err}") from None
    return {"weights": model._weights, "variable": tuple(z), "state": state,
            "rng": rng, "dropout": dropout}


def _rule_config(rule):
    """The step rule as JSON: the model's signature of it (its class and hyper-parameters) with
    the learning rate, or None for a rule that JSON cannot hold (a schedule, a rule of its own)."""
    if isinstance(rule, str):
        return rule
    if type(rule) is DecoupledWeightDecay:
        inner = _rule_config(rule.rule)
        return None if inner is None else {"class_name": "DecoupledWeightDecay", "rule": inner,
                                           "weight_decay": rule.weight_decay}
    fields = _rule_signature(rule)
    if fields is None or callable(rule.lr):
        return None
    return {"class_name": fields.pop("class_name"), "lr": rule.lr, **fields}


_RULES = {"RSGD": RSGD, "RAdam": RAdam, "DecoupledWeightDecay": DecoupledWeightDecay}


def _rule_from_config(config):
    if isinstance(config, str):
        return config
    config = dict(config)
    name = config.pop("class_name", None)
    if name not in _RULES:
        raise ValueError(f"unknown step rule {name!r} in the compile settings; "
                         f"known: {sorted(_RULES)}")
    if name == "DecoupledWeightDecay":
        config["rule"] = _rule_from_config(config["rule"])
    if "betas" in config:
        config["betas"] = tuple(config["betas"])
    return _RULES[name](**config)


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
    """Write ``model`` to ``path`` atomically, with its optimizer state once trained.

    Raises
    ------
    ValueError
        If the architecture holds something that cannot be written as JSON
        (a Python function as activation or initializer).
    OSError
        If the file cannot be written (a missing or read-only folder, a full
        disk); the error names ``path``, and no temporary file is left.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from spherenet.nn import Sequential, Dense, unit_norm, load_model
    >>> from spherenet.optim import RSGD
    >>> model = Sequential([Dense(1, input_dim=2, kernel_constraint=unit_norm())], seed=0)
    >>> model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="mse")
    >>> x = np.random.default_rng(0).standard_normal((8, 2))
    >>> _ = model.fit(x, x[:, :1], epochs=1, batch_size=4, verbose=0, seed=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> save_model(model, path)
    >>> again = load_model(path)
    >>> _ = model.fit(x, x[:, :1], epochs=1, batch_size=4, verbose=0)
    >>> _ = again.fit(x, x[:, :1], epochs=1, batch_size=4, verbose=0)
    >>> all((a == b).all() for a, b in zip(model.get_weights(), again.get_weights()))
    True
    """
    model.build()
    weights = model.get_weights()
    compiled = _compile_config(model._compiled)
    config = {
        "format": FORMAT,
        "model": model.get_config(),
        "weights": [{"name": n, "shape": list(w.shape)} for n, w in zip(model.weight_names, weights)],
        "compile": compiled,
    }
    if compiled is None and model._compiled is not None:
        # the strategy alone, so that weights a penalty/none run left off the sphere load
        strategy = model._compiled["strategy"]
        name = strategy if isinstance(strategy, str) else getattr(strategy, "name", None)
        if name in STRATEGIES and (isinstance(strategy, str) or STRATEGIES[name] is strategy):
            config["strategy"] = {"name": name,
                                  "options": _json_options(model._compiled["strategy_options"])}
    arrays = {_weight_key(i): w for i, w in enumerate(weights)}
    optimizer = _optimizer_entries(model, arrays)
    if optimizer is not None:
        config["optimizer"] = optimizer
    arrays["architecture"] = np.array(json.dumps(config))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    name = os.path.basename(path)
    _remove_orphans(directory, name)
    try:
        with atomic_open(path, "wb", tag=f"{os.getpid()}-", suffix=".npz",
                         make_parents=False) as f:
            np.savez(f, **arrays)
    except OSError as err:
        if err.errno is None:
            raise
        raise type(err)(err.errno, f"cannot save the model: {err.strerror}", path) from None


def _temp_pattern(name):
    """The names of the temporary files of a save of ``name``, with the writer's pid."""
    return re.compile(rf"\.{re.escape(name)}\.tmp-(\d+)-[A-Za-z0-9_]+\.npz")


def _pid_alive(pid):
    """Whether process ``pid`` may still be writing (True when it cannot be told)."""
    if pid == os.getpid() or os.name == "nt":
        # another thread of this process may be saving right now; on Windows,
        # os.kill would terminate the process rather than probe it
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # it exists (owned by someone else), or we cannot tell: keep its file
    return True


def _remove_orphans(directory, name):
    """Delete the temporary files of earlier saves of ``name`` whose process is gone."""
    pattern = _temp_pattern(name)
    try:
        entries = os.listdir(directory)
    except OSError:
        return
    for entry in entries:
        match = pattern.fullmatch(entry)
        if match and not _pid_alive(int(match.group(1))):
            try:
                os.unlink(os.path.join(directory, entry))
            except OSError:
                pass


_WHAT = "a spherenet model file (a .npz archive written by Sequential.save)"


def _not_a_model(path):
    """A ValueError saying what ``path`` is, when it is not a zip archive."""
    if os.path.isdir(path):
        return ValueError(f"cannot read {path}: expected {_WHAT}, but it is a directory")
    with open(path, "rb") as f:
        head = f.read(6)
    if head == b"\x93NUMPY":
        what = "a single NumPy array (.npy)"
    elif not head:
        what = "empty"
    else:
        what = "not a zip archive (truncated, corrupted or of another format)"
    return ValueError(f"cannot read {path}: expected {_WHAT}, but the file is {what}")


def _read(path, with_optimizer=False):
    """(config, weights[, optimizer arrays]) from a saved file, with a clear error otherwise."""
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        if not os.path.exists(path):
            raise FileNotFoundError(2, "no such model file", path)
        raise _not_a_model(path)
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
            extra = ({k: data[k] for k in data.files
                      if k.startswith(("optimizer_", "variable_"))}
                     if with_optimizer and config.get("optimizer") else {})
    except FileNotFoundError:
        raise
    except ValueError as err:
        if str(path) in str(err):
            raise
        if "pickle" in str(err):
            raise ValueError(f"cannot read {path}: expected {_WHAT}, but it holds Python "
                             "objects, which a spherenet model file never does") from None
        raise ValueError(f"cannot read {path}: {err}") from None
    except (zipfile.BadZipFile, EOFError, OSError, KeyError, json.JSONDecodeError) as err:
        raise ValueError(
            f"cannot read {path}: the file is truncated or corrupted ({type(err).__name__}: {err})"
        ) from None
    for spec, w in zip(expected, weights):
        if list(w.shape) != list(spec["shape"]):
            raise ValueError(f"{path}: weight {spec['name']} has shape {w.shape}, its "
                             f"architecture says {tuple(spec['shape'])}")
    if with_optimizer:
        return config, weights, extra
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

    config, weights, extra = _read(path, with_optimizer=True)
    spec = config["model"]
    try:
        layers = [layer_from_config(c) for c in spec["layers"]]
        model = Sequential(layers, name=spec.get("name"), dtype=spec.get("dtype", "float32"))
        model._build_shapes(tuple(spec["input_shape"]))
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: cannot rebuild the saved architecture: {err}") from None
    compiled = config.get("compile")
    if compiled:
        # compiled first: under "penalty" or "none" the kernels are legitimately off their manifold
        try:
            rule = _rule_from_config(compiled["optimizer"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"{path}: cannot rebuild the saved step rule: {err}") from None
        model.compile(optimizer=rule,
                      loss=losses.get(compiled["loss"]), metrics=compiled["metrics"],
                      strategy=compiled["strategy"], strategy_options=compiled["strategy_options"])
    _set(model, weights, config, path, rebuilt=True)
    entry = config.get("optimizer")
    if entry:
        resume = _restore_optimizer(model, entry, extra, path)
        if model._compiled is not None:
            if entry.get("signature") == model._optimizer_signature():
                model._resume = resume
        else:
            model._pending = {"signature": entry.get("signature"), "resume": resume}
    return model


def _json_options(options):
    """The strategy options if they are plain JSON numbers, else {}."""
    ok = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in options.values())
    return dict(options) if ok else {}


def _set(model, weights, config, path, rebuilt=False):
    ours = [(n, tuple(p.shape)) for n, (_, p) in zip(model.weight_names, model._all_params())]
    theirs = [(w["name"], tuple(w["shape"])) for w in config["weights"]]
    if [s for _, s in ours] != [s for _, s in theirs]:
        raise ValueError(
            f"incompatible architecture: {path} holds weights {theirs}, the model has {ours}"
        )
    saved = config.get("strategy")
    if (rebuilt and model._compiled is None and isinstance(saved, dict)
            and saved.get("name") in STRATEGIES):
        # an uncompiled model from a file whose compile settings could not be written down:
        # the strategy it was trained under says how far its kernels may be off the sphere
        slack = model._constraint_slack(saved["name"], saved.get("options") or {})
    else:
        slack = model._constraint_slack()
    try:
        model._assign(weights, slack)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def load_weights(model, path):
    """Load the weights of ``path`` into ``model``, whose architecture must match.

    Weights of another dtype are cast and put back on their manifolds (see
    ``Sequential.set_weights``). The optimizer state of the file is not
    loaded: the model's next ``fit`` starts a fresh optimizer; use
    :func:`load_model` to resume training.
    """
    config, weights = _read(path)
    if model.input_shape is None and config["model"].get("input_shape") is not None:
        model._build_shapes(tuple(config["model"]["input_shape"]))
    model._require_shapes("load_weights")
    _set(model, weights, config, path)

