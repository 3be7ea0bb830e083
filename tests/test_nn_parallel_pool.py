"""The worker threads of the layers' parallel regions (``spherenet.nn._parallel``).

* The same threads serve every region (none started per region).
* A region another thread opens while one runs is run by that thread
  alone, to the end, with every task once.
* A larger thread count replaces the workers; the old ones end.
"""

import threading

import pytest

from spherenet.nn import _parallel, get_num_threads, set_num_threads


@pytest.fixture
def threads():
    previous = get_num_threads()
    yield set_num_threads
    set_num_threads(previous)


def pool_threads():
    return {t for t in threading.enumerate() if t.name == "spherenet-nn"}


def test_the_same_workers_serve_every_region(threads):
    threads(3)
    seen, lock = set(), threading.Lock()

    def task():
        with lock:
            seen.add(threading.get_ident())

    _parallel.run_tasks([task] * 6)
    before = pool_threads()
    for _ in range(50):
        _parallel.run_tasks([task] * 6)
    assert pool_threads() == before and len(before) >= 2
    assert seen <= {t.ident for t in before} | {threading.get_ident()}


def test_a_region_opened_while_another_runs_runs_on_its_own_thread(threads):
    threads(2)
    started, release = threading.Event(), threading.Event()
    first = []

    def blocking(i):
        def task():
            started.set()
            release.wait(10)
            first.append(i)
        return task

    caller = threading.Thread(target=_parallel.run_tasks,
                              args=([blocking(0), blocking(1)],), daemon=True)
    caller.start()
    assert started.wait(10)
    second = []
    # the pool is busy: these run here, every one once, and the call returns while the
    # first region still waits
    _parallel.run_tasks([lambda i=i: second.append((i, threading.get_ident()))
                         for i in range(4)])
    assert second == [(i, threading.get_ident()) for i in range(4)]
    assert first == []
    release.set()
    caller.join(10)
    assert not caller.is_alive() and sorted(first) == [0, 1]


def test_more_threads_replace_the_workers_and_the_old_ones_end(threads):
    threads(2)
    _parallel.run_tasks([lambda: None] * 2)
    old = pool_threads()
    threads(max(4, len(old) + 2))
    _parallel.run_tasks([lambda: None] * 8)
    for thread in old:
        thread.join(10)
        assert not thread.is_alive()
    assert len(pool_threads()) == max(4, len(old) + 2) - 1
