"""Where runs execute: any ``concurrent.futures.Executor``.

``compare`` takes an executor or one of the names ``"serial"``, ``"threads"``,
``"processes"``. A ``dask.distributed`` client's ``client.get_executor()`` is an
Executor too, and runs the same grid on a cluster: the runs are plain
picklable data and a top-level function, and nothing in spherenet knows
about dask.
"""

import concurrent.futures
import os
import signal
import sys

__all__ = ["SerialExecutor", "make_executor", "stop_executor", "EXECUTORS"]

EXECUTORS = ("serial", "threads", "processes")


class SerialExecutor(concurrent.futures.Executor):
    """Runs each task in the calling thread when it is submitted.

    The reference for the others (same results, no start-up cost), and the
    right choice for timing small runs, which a pool's contention distorts.
    """

    def submit(self, fn, /, *args, **kwargs):
        future = concurrent.futures.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as err:  # noqa: BLE001 - delivered through the future
            if isinstance(err, (KeyboardInterrupt, SystemExit)):
                raise
            future.set_exception(err)
        return future


def _cpu_count():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def make_executor(executor, n_runs, workers=None):
    """``(executor, owned)``: an Executor for ``n_runs`` runs, and whether we must shut it down.

    Parameters
    ----------
    executor : None, str or concurrent.futures.Executor
        None: a process pool when there is more than one run and more than
        one CPU, else serial. A name from :data:`EXECUTORS`. An Executor is
        used as it is (and not shut down).
    n_runs : int
    workers : int, optional
        Pool size; default the number of usable CPUs (at most ``n_runs``).
    """
    if isinstance(executor, concurrent.futures.Executor):
        return executor, False
    if executor is None:
        executor = "processes" if n_runs > 1 and _cpu_count() > 1 else "serial"
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose from {list(EXECUTORS)} "
                         "or pass a concurrent.futures.Executor")
    size = max(1, min(workers or _cpu_count(), max(n_runs, 1)))
    if executor == "serial":
        return SerialExecutor(), True
    if executor == "threads":
        return concurrent.futures.ThreadPoolExecutor(max_workers=size), True
    return concurrent.futures.ProcessPoolExecutor(max_workers=size,
                                                  initializer=_leave_sigint_to_the_parent), True


def _leave_sigint_to_the_parent():
    # Ctrl-C reaches every process of the terminal's foreground group. A worker that
    # took it would print a traceback from its task loop; the parent handles it instead
    # (it keeps the finished runs and stops the workers, see stop_executor).
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def stop_executor(executor):
    """Shut down an executor made by :func:`make_executor` at once: queued runs are
    cancelled and the workers of a process pool are terminated (their runs are lost)."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join()
    if processes:
        executor.shutdown(wait=True)


def progress_bar(total, enabled, desc="runs"):
    """A tqdm bar on stderr, or a no-op object when disabled or tqdm is missing.

    ``enabled=None`` shows the bar when stderr is a terminal.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if enabled:
        try:
            from tqdm.auto import tqdm

            return tqdm(total=total, desc=desc, unit="run", file=sys.stderr, leave=False)
        except ImportError:
            pass
    return _NoBar()


class _NoBar:
    def update(self, n=1):
        pass

    def set_postfix_str(self, text):
        pass

    def close(self):
        pass
