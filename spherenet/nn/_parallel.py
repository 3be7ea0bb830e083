"""Threads for the convolution and pooling layers: a batch split into chunks of images.

The convolution and pooling layers copy, multiply and compare whole arrays,
and NumPy releases the GIL in its copies, ufunc loops and BLAS calls. With
``n`` threads (:func:`set_num_threads`, or the environment variable
``SPHERENET_NN_THREADS`` read at import), the blocks of images that the
serial path runs one after the other become tasks shared by ``n`` threads:
the calling thread and a persistent pool of ``n - 1`` (one region at a
time: a region another thread opens meanwhile runs on that thread alone). Every task is the
same call on the same data as in the serial path and writes its own part
of the result (a sum over the batch, as the kernel's gradient, is one
partial sum per block, added in the order of the blocks, which depend on
the shapes only), so the results are the same, bit for bit, for any number
of threads.

Inside the tasks BLAS should run on one thread: set it with
``threadpoolctl.threadpool_limits(1, user_api="blas")`` (or
``OPENBLAS_NUM_THREADS=1``); BLAS threads on top of these compete for the
same cores.
"""

import numbers
import os
import threading

__all__ = ["set_num_threads", "get_num_threads"]

_ENV = "SPHERENET_NN_THREADS"


def _checked(n, what):
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def _from_environment():
    value = os.environ.get(_ENV, "").strip()
    if not value:
        return 1
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"the environment variable {_ENV} must be a positive integer, "
                         f"got {value!r}")
    return n


_state = {"threads": _from_environment(), "pool": None, "workers": 0}
_lock = threading.Lock()
_inside = threading.local()  # set in the pool's threads: a chunk never splits again


def set_num_threads(n):
    """Set how many threads the convolution and pooling layers split a batch over.

    Parameters
    ----------
    n : int
        1 (the default, unless ``SPHERENET_NN_THREADS`` says otherwise) runs
        serially. Results do not depend on ``n`` (see Notes).

    Returns
    -------
    int
        The previous setting, to restore it.

    Raises
    ------
    ValueError
        If ``n`` is not a positive integer.

    Notes
    -----
    The blocks of work the serial path runs one after the other are shared
    by the threads; each is the same call on the same data and writes its own
    part of the result, so the results are the same, bit for bit, for any
    ``n``. Keep BLAS on one thread meanwhile
    (``threadpoolctl.threadpool_limits(1, user_api="blas")``): its threads
    would compete with these for the same cores.

    Examples
    --------
    >>> from spherenet.nn import get_num_threads, set_num_threads
    >>> previous = set_num_threads(2)
    >>> get_num_threads()
    2
    >>> _ = set_num_threads(previous)
    """
    n = _checked(n, "the number of threads")
    with _lock:
        previous = _state["threads"]
        _state["threads"] = n
    return previous


def get_num_threads():
    """The number of threads the convolution and pooling layers use (see :func:`set_num_threads`).

    Examples
    --------
    >>> from spherenet.nn import get_num_threads
    >>> get_num_threads() >= 1
    True
    """
    return _state["threads"]


class _Workers:
    """``count`` daemon threads, each waiting on a lock of its own for the next job.

    A lighter hand-off than an executor's queue and futures: a region
    releases the locks of the workers it needs and waits on a semaphore of
    its own (a stale release cannot end a later region early); about a
    third of the executor's cost on the calling thread, which pays it once
    per parallel region (a few dozen regions a training step).
    ``busy`` is held by the caller of :meth:`run`: one region at a time.
    """

    def __init__(self, count):
        self.count = count
        self.busy = threading.Lock()
        self._job = None
        self._go = [threading.Lock() for _ in range(count)]
        for go in self._go:
            go.acquire()
            threading.Thread(target=self._serve, args=(go,), name="spherenet-nn",
                             daemon=True).start()

    def _serve(self, go):
        _inside.active = True  # a chunk never splits again
        while True:
            go.acquire()
            job = self._job
            if job is None:  # retired
                return
            work, done = job
            try:
                work()
            finally:
                done.release()

    def run(self, work, count):
        """``work()`` on ``count`` workers and on the calling thread; returns when all are done."""
        done = threading.Semaphore(0)
        self._job = (work, done)
        for go in self._go[:count]:
            go.release()
        try:
            work()
        finally:
            for _ in range(count):
                done.acquire()

    def retire(self):
        """End the threads (with ``busy`` held: no region is running)."""
        self._job = None
        for go in self._go:
            go.release()


def _pool(workers):
    with _lock:
        old = _state["pool"]
        if _state["workers"] < workers:
            _state["pool"], _state["workers"] = _Workers(workers), workers
            if old is not None and old.busy.acquire(blocking=False):
                old.retire()  # else another thread's region runs on it: its threads stay idle
        return _state["pool"]


def _forget_pool_after_fork():
    # a forked child has none of the parent's threads: a pool copied from the parent would
    # accept tasks that no thread ever runs (a process pool of the experiments harness, say)
    global _lock
    _lock = threading.Lock()
    _state["pool"], _state["workers"] = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def run_tasks(tasks):
    """Call each of ``tasks`` (callables without arguments) once, on up to n threads.

    The threads take the tasks in order, each the next one not yet taken,
    the calling thread too. It returns once every task is done; if any
    failed, it raises the first error after all threads have stopped (no
    task still writes into a result), and no task is started after a
    failure.
    """
    tasks = list(tasks)
    threads = min(_state["threads"], len(tasks))
    if threads <= 1 or getattr(_inside, "active", False):
        for task in tasks:
            task()
        return
    queue, lock, errors = iter(tasks), threading.Lock(), []

    def work():
        while True:
            with lock:
                task = None if errors else next(queue, None)
            if task is None:
                return
            try:
                task()
            except BaseException as error:  # noqa: B902 -- handed to the caller below
                with lock:
                    errors.append(error)
                return

    pool = _pool(threads - 1)
    if not pool.busy.acquire(blocking=False):
        # another thread's region is running on the pool: this one runs here, with the same
        # results (the tasks do not depend on the thread that runs them)
        for task in tasks:
            task()
        return
    _inside.active = True
    try:
        pool.run(work, threads - 1)
    finally:
        _inside.active = False
        pool.busy.release()
    if errors:
        raise errors[0]


def run_chunks(fn, count, align=1):
    """Call ``fn(lo, hi)`` over contiguous chunks covering ``range(count)``, one per thread.

    The chunk boundaries are multiples of ``align`` (whole blocks of work);
    see :func:`run_tasks`.
    """
    blocks = -(-count // align)
    threads = min(_state["threads"], blocks)
    if threads <= 1 or getattr(_inside, "active", False):
        fn(0, count)
        return
    bounds = [min(count, blocks * i // threads * align) for i in range(threads + 1)]
    run_tasks([lambda lo=lo, hi=hi: fn(lo, hi) for lo, hi in zip(bounds, bounds[1:])])
