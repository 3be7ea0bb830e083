"""Callbacks: hooks into ``Sequential.fit`` with Keras's names and semantics.

A callback receives the epoch's ``logs`` (loss, metrics, ``val_``-prefixed
validation values and each constrained kernel's constraint violation) and may
stop training by setting ``self.model.stop_training = True``. A plain
callable in the ``callbacks`` list is called as ``fn(epoch, logs)`` after
every epoch; returning True stops training.
"""

import sys
import time

import numpy as np

from .._checks import check_flag

__all__ = [
    "Callback",
    "History",
    "EarlyStopping",
    "ModelCheckpoint",
    "ProgressBar",
    "LambdaCallback",
    "CallbackList",
]


class Callback:
    """Base class: override the hooks you need."""

    model = None

    def set_model(self, model):
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass


class History(Callback):
    """Records the logs of every epoch; ``fit`` returns it.

    Attributes
    ----------
    history : dict of str to list
        ``loss`` (the data loss, averaged over the epoch's batches, plus the
        terms of the layers' ``kernel_regularizer``/``bias_regularizer`` as
        in Keras; under ``strategy="penalty"`` without the penalty term, so
        that strategies compare on one number), each metric, ``val_loss`` and ``val_<metric>`` with
        validation data, and ``<layer>/kernel_violation``: the largest
        | ||w_k|| - 1 | over the factors (columns) of each constrained kernel
        at the end of the epoch. Every key is present from the start of
        ``fit``, with one value per completed epoch (an empty list if
        training stopped in its first epoch).
    epoch : list of int
    params : dict
        ``epochs``, ``steps`` (batches per epoch), ``samples``, ``strategy``.
    stop_reason : str or None
        Why training stopped before its last epoch, if it did.
    """

    def __init__(self):
        self.history, self.epoch, self.params, self.stop_reason = {}, [], {}, None

    def on_train_begin(self, logs=None):
        # Every key the fit logs is there from the start, so a fit stopped in its first
        # epoch (a NaN loss) still has history["loss"]: an empty list.
        for key in getattr(self.model, "log_keys", ()):
            self.history.setdefault(key, [])

    def on_epoch_end(self, epoch, logs=None):
        self.epoch.append(epoch)
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(value)

    def __repr__(self):
        return f"<History: {len(self.epoch)} epochs, keys {sorted(self.history)}>"


def _monitor_mode(monitor, mode):
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        mode = "max" if "acc" in monitor else "min"
    return mode


class _Monitor(Callback):
    def __init__(self, monitor, mode, min_delta=0.0):
        self.monitor = monitor
        self.mode = _monitor_mode(monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.best = None

    def on_train_begin(self, logs=None):
        keys = self.model.log_keys
        if self.monitor not in keys:
            hint = " (pass validation_data or validation_split)" if self.monitor.startswith("val_") else ""
            raise ValueError(
                f"{type(self).__name__} monitors {self.monitor!r}, which this fit does not log"
                f"{hint}; it logs {sorted(keys)}"
            )
        self.best = None

    def _improved(self, value):
        if not np.isfinite(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs.

    Parameters
    ----------
    monitor : str, default "val_loss"
    min_delta : float, default 0
    patience : int, default 0
    mode : {"auto", "min", "max"}
        ``auto``: max for accuracies, min otherwise.
    baseline : float, optional
        Stop unless the monitored value beats it within ``patience`` epochs.
    restore_best_weights : bool, default False
        At the end, put back the weights of the best epoch.
    """

    def __init__(self, monitor="val_loss", min_delta=0.0, patience=0, mode="auto",
                 baseline=None, restore_best_weights=False, verbose=0):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.baseline = baseline
        self.restore_best_weights = bool(restore_best_weights)
        self.verbose = verbose
        self.stopped_epoch = None
        self.best_epoch = None

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self.wait, self.stopped_epoch, self.best_epoch, self._best_weights = 0, None, None, None
        if self.baseline is not None:
            self.best = float(self.baseline)

    def on_epoch_end(self, epoch, logs=None):
        value = logs[self.monitor]
        if self._improved(value):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True
            self.model.stop_reason = (
                f"EarlyStopping: {self.monitor} did not improve for {self.wait} epoch(s)"
            )

    def on_train_end(self, logs=None):
        if self._best_weights is not None and self.best_epoch != self.model.last_epoch:
            self.model.set_weights(self._best_weights)
            if self.verbose:
                print(f"EarlyStopping: restored the weights of epoch {self.best_epoch + 1}")


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``, atomic) after every epoch, or when ``monitor`` improves.

    Parameters
    ----------
    filepath : str or path
        May hold ``{epoch}`` and log fields, e.g. ``"model-{epoch:02d}-{val_loss:.3f}.npz"``.
    monitor : str, default "val_loss"
    save_best_only : bool, default False
    mode : {"auto", "min", "max"}
    """

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto", verbose=0):
        super().__init__(monitor, mode)
        self.filepath = str(filepath)
        self.save_best_only = check_flag(save_best_only, "save_best_only")
        self.verbose = verbose

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            value = logs[self.monitor]
            if not self._improved(value):
                return
            self.best = value
        path = self.filepath.format(epoch=epoch + 1, **logs)
        self.model.save(path)
        if self.verbose:
            print(f"ModelCheckpoint: saved {path}")


def _format_logs(logs):
    parts, worst = [], None
    for key, value in logs.items():
        if key.endswith("_violation"):
            worst = value if worst is None else max(worst, value)
        else:
            parts.append(f"{key}: {value:.4f}")
    if worst is not None:
        parts.append(f"violation: {worst:.1e}")
    return " - ".join(parts)


class ProgressBar(Callback):
    """One line per epoch with the loss, metrics and largest constraint violation.

    With ``verbose=1`` and tqdm installed, the line is a tqdm bar over the
    epoch's batches that stays when the epoch ends; without tqdm, or with
    ``verbose=2``, a plain line is printed at the end of each epoch.

    Parameters
    ----------
    verbose : {1, 2}
    file : file-like, optional
        Where to write (tqdm's default, stderr, for bars; stdout for lines).
    """

    def __init__(self, verbose=1, file=None):
        self.verbose = verbose
        self.file = file
        self._tqdm = None
        if verbose == 1:
            try:
                from tqdm.auto import tqdm
            except ImportError:  # tqdm is optional: fall back to plain lines
                tqdm = None
            self._tqdm = tqdm
        self._bar = None

    def on_train_begin(self, logs=None):
        self.epochs = self.model.history.params.get("epochs", 0)
        self.steps = self.model.history.params.get("steps", 0)

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if self._tqdm is not None:
            self._bar = self._tqdm(total=self.steps, desc=f"Epoch {epoch + 1}/{self.epochs}",
                                   unit="batch", leave=True, file=self.file)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)
            self._bar.update(1)

    def on_epoch_end(self, epoch, logs=None):
        text = _format_logs(logs)
        if self._bar is not None:
            self._bar.set_postfix_str(text, refresh=False)
            self._bar.close()
            self._bar = None
            return
        seconds = time.perf_counter() - self._start
        print(f"Epoch {epoch + 1}/{self.epochs} - {seconds:.2f}s - {text}",
              file=self.file or sys.stdout, flush=True)

    def on_train_end(self, logs=None):
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        reason = self.model.stop_reason
        if reason:
            print(reason, file=self.file or sys.stdout, flush=True)


class LambdaCallback(Callback):
    """A callback from plain functions, e.g. ``LambdaCallback(on_epoch_end=fn)``."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None,
                 on_train_end=None, on_train_batch_end=None):
        for name, fn in list(locals().items()):
            if name != "self" and fn is not None:
                setattr(self, name, fn)


class _Hook(Callback):
    """A plain callable ``fn(epoch, logs)``; returning True stops training."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        if self.fn(epoch, logs):
            self.model.stop_training = True
            self.model.stop_reason = f"the callback {getattr(self.fn, '__name__', self.fn)!r} returned True"


class CallbackList:
    """The callbacks of one fit, called in order."""

    def __init__(self, callbacks, model):
        self.callbacks = []
        for cb in callbacks:
            if not isinstance(cb, Callback):
                if not callable(cb):
                    raise ValueError(f"a callback must be a Callback or a callable, got {cb!r}")
                cb = _Hook(cb)
            cb.set_model(model)
            self.callbacks.append(cb)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", {} if logs is None else logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", {} if logs is None else logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, {} if logs is None else logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)
