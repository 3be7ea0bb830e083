"""Threads for the convolution and pooling layers: a batch split into chunks of images.

The convolution and pooling layers copy, multiply and compare whole arrays,
and NumPy releases the GIL in its copies, ufunc loops and BLAS calls. With
``n`` threads (:func:`set_num_threads`, or the environment variable
``SPHERENET_NN_THREADS`` read at import), the blocks of images that the
serial path runs one after the other become tasks shared by ``n`` threads:
the calling thread and a persistent pool of ``n - 1``. Every task is the
same call on the same data as in the serial path and writes its own part
of the result (the kernel's gradient is one task beside the blocks of the
input's gradient; no sum is split), so the results are the same, bit for
bit, for any number of threads.

Inside the tasks BLAS should run on one thread: set it with
``threadpoolctl.threadpool_limits(1, user_api="blas")`` (or
``OPENBLAS_NUM_THREADS=1``); BLAS threads on top of these compete for the
same cores.
"""

import numbers
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

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


def _pool(workers):
    with _lock:
        if _state["workers"] < workers:
            # a larger pool replaces the old one, which is not shut down: another thread may be
            # handing it tasks; its threads end once it is no longer referenced
            _state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="spherenet-nn",
                                                initializer=_mark_inside)
            _state["workers"] = workers
        return _state["pool"]


def _mark_inside():
    _inside.active = True


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
    futures = [pool.submit(work) for _ in range(threads - 1)]
    _inside.active = True
    try:
        work()
    finally:
        _inside.active = False
        wait(futures)
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
