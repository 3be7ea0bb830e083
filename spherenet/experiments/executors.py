"""Where runs execute: any ``concurrent.futures.Executor``.

``compare`` takes an executor or one of the names ``"serial"``, ``"threads"``,
``"processes"``. A ``dask.distributed`` client's ``client.get_executor()`` is an
Executor too, and runs the same grid on a cluster: the runs are plain
picklable data and a top-level function, and nothing in spherenet knows
about dask.
"""

import concurrent.futures
import contextlib
import os
import signal
import sys
import threading

__all__ = ["SerialExecutor", "make_executor", "stop_executor", "stoppable_run",
           "deferred_sigint", "RunStopped", "EXECUTORS"]

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
                                                  initializer=_stop_runs_in_this_worker), True


class RunStopped(KeyboardInterrupt):
    """Ctrl-C reached a worker process: its run stopped (and nothing was kept of it).

    Raised by the run's future; the grid then stops as if the parent had been
    interrupted.
    """


class _WorkerState:
    """Per process: has Ctrl-C been seen, and is a run executing (where it may stop)."""

    stop_requested = False
    in_run = False


def _stop_runs_on_sigint(signum, frame):
    # Raise only inside a run. Anywhere else in the worker's loop (taking the next
    # run from the call queue, sending a result back) an exception would leave a
    # half-written message in a pipe and the pool's manager thread blocked on it.
    _WorkerState.stop_requested = True
    if _WorkerState.in_run:
        _WorkerState.in_run = False
        raise RunStopped("interrupted")


def _stop_runs_in_this_worker():
    # Ctrl-C reaches every process of the terminal's foreground group. A worker that
    # took it as KeyboardInterrupt could be anywhere, sending a result included; it
    # stops only its run instead, and starts no new one (see stoppable_run). A forked
    # worker starts from a copy of the parent's state: reset it.
    _WorkerState.stop_requested = _WorkerState.in_run = False
    signal.signal(signal.SIGINT, _stop_runs_on_sigint)


@contextlib.contextmanager
def stoppable_run():
    """The block where SIGINT stops a run in a worker of a process pool from
    :func:`make_executor` (raising :class:`RunStopped`); elsewhere a no-op.

    After a SIGINT the worker's next runs stop at once, so that a pool that is
    being shut down drains in moments.

    Examples
    --------
    >>> with stoppable_run():
    ...     total = sum(range(10))
    >>> total
    45
    """
    if _WorkerState.stop_requested:
        raise RunStopped("interrupted before it started")
    try:
        _WorkerState.in_run = True  # inside the try: no window where it stays set
        yield
    finally:
        _WorkerState.in_run = False


class deferred_sigint:
    """Within the block, Ctrl-C in the main thread sets :attr:`pending` instead of
    raising ``KeyboardInterrupt`` wherever the thread happens to be.

    An asynchronous ``KeyboardInterrupt`` can land inside
    ``concurrent.futures`` (between the acquisitions of the futures' locks in
    ``wait``, inside ``submit``) and leave a lock held that the pool's manager
    thread then waits for forever. The caller polls :attr:`pending` at points
    where stopping is safe. Only Python's default handler is replaced, and only
    in the main thread; otherwise SIGINT behaves as before (and
    :attr:`installed` is False).

    Examples
    --------
    >>> import signal
    >>> with deferred_sigint() as sigint:
    ...     signal.raise_signal(signal.SIGINT)  # Ctrl-C
    ...     seen = sigint.pending
    >>> seen, signal.getsignal(signal.SIGINT) is signal.default_int_handler
    (True, True)
    """

    def __init__(self):
        self.pending = False
        self.installed = False

    def _note(self, signum, frame):
        self.pending = True

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGINT) is signal.default_int_handler):
            signal.signal(signal.SIGINT, self._note)
            self.installed = True
        return self

    def __exit__(self, *exc):
        if self.installed:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.installed = False
        return False


def stop_executor(executor, futures, owned):
    """Stop a grid's runs at once after Ctrl-C, without leaving anything behind.

    The ``futures`` not started are cancelled. An ``owned`` executor (made by
    :func:`make_executor`) is shut down: the workers of a process pool are
    sent SIGINT (a terminal sends it to them already; ``kill -INT`` of the
    parent alone does not), which stops their runs between two Python
    instructions (:func:`stoppable_run`), and the pool is then shut down
    normally. Workers are never terminated: one killed while it sends a
    result leaves a partial message in the result pipe, and the pool's
    manager thread, which ``shutdown`` and the interpreter's exit both wait
    for, blocked on it forever. Threads cannot be stopped: their runs in
    flight finish first. An executor passed in is left running.
    """
    for future in futures:
        future.cancel()
    if not owned:
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        if process.pid is not None and process.is_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)
    executor.shutdown(wait=True, cancel_futures=True)


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
