"""A solver's history is computed when first read (History._deferred).

The violation and angle columns of a run on a sphere are reduced from the
stacked iterates when the history is read, not at the end of the run. These
tests pin that every way of reading the dict gives the complete history, with
the values of an independent computation; that a read from two threads
builds it once; that the pending histories are bounded; and that a result
does not keep the user's functions alive through its history.
"""

import copy
import gc
import io
import json
import pickle
import threading
import time
import weakref

import numpy as np
import pytest

from spherenet import Oblique, Sphere, minimize
from spherenet.optim import _loop
from spherenet.optim._loop import History
from spherenet.optim.line_search import BacktrackingLineSearch

FIELDS = ["angle", "cost", "grad_norm", "step_size", "time", "violation"]


def _rayleigh(n=12, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((n, n))
    A = (B + B.T) / 2
    x0 = rng.standard_normal(n)
    x0 /= np.linalg.norm(x0)
    return (lambda x: float(x @ A @ x)), (lambda x: 2.0 * A @ x), x0.astype(dtype)


def _run(maxiter=30, method="cg", **kwargs):
    cost, grad, x0 = _rayleigh()
    return minimize(cost, Sphere(12), x0=x0, method=method, grad=grad, maxiter=maxiter,
                    gtol=1e-12, **kwargs)


def _pending(history):
    return history.__dict__.get("_build") is not None


def test_a_result_history_is_pending_until_read_and_then_complete():
    res = _run()
    assert _pending(res.history)
    assert sorted(res.history) == FIELDS
    assert not _pending(res.history)
    assert all(len(v) == res.nit + 1 for v in res.history.values())


@pytest.mark.parametrize("method", ["cg", "sd"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_deferred_columns_are_the_iterates_violation_and_angle(method, dtype):
    # The iterates, from a callback (general loop), against plain NumPy: |‖x‖ - 1| and the
    # angle atan2(‖y - <x, y> x‖, <x, y>) between consecutive unit iterates, in float64.
    cost, grad, x0 = _rayleigh(dtype=dtype)
    seen = [x0.astype(np.float64)]
    res = minimize(cost, Sphere(12), x0=x0, method=method, grad=grad, maxiter=25, gtol=1e-12,
                   callback=lambda x: seen.append(np.array(x, dtype=np.float64)),
                   line_search=BacktrackingLineSearch() if method == "sd" else None)
    h = res.history
    assert _pending(h)
    # A run that ends without a decrease records its last point once more (step 0), and
    # the callback does not see it: add it to the iterates.
    xs = np.array(seen + [seen[-1]] * (res.nit + 1 - len(seen)))
    assert len(h["violation"]) == len(xs) == res.nit + 1 and len(seen) > 10
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(h["violation"], np.abs(np.linalg.norm(xs, axis=1) - 1.0),
                               rtol=0, atol=4 * eps)
    x, y = xs[:-1], xs[1:]
    c = np.sum(x * y, axis=1)
    sine = np.linalg.norm(y - c[:, None] * x, axis=1)
    np.testing.assert_allclose(h["angle"][1:], np.arctan2(sine, c), rtol=1e-6, atol=8 * eps)
    assert np.isnan(h["angle"][0])


def test_the_deferred_history_equals_the_recorders_eager_one():
    # Recorder.history() (eager) and the result's (deferred) are the same numbers.
    cost, grad, x0 = _rayleigh()
    captured = {}
    original = _loop.Recorder.result

    def result(self, *args):
        out = original(self, *args)
        captured["eager"] = self.history()
        return out

    _loop.Recorder.result = result
    try:
        res = minimize(cost, Sphere(12), x0=x0, method="cg", grad=grad, maxiter=20)
    finally:
        _loop.Recorder.result = original
    for name in FIELDS:
        np.testing.assert_array_equal(res.history[name], captured["eager"][name])


def _read_ways():
    return {
        "getitem": lambda h: h["cost"],
        "contains": lambda h: "cost" in h,
        "iter": lambda h: list(h),
        "reversed": lambda h: list(reversed(h)),
        "len": len,
        "bool": bool,
        "keys": lambda h: list(h.keys()),
        "values": lambda h: list(h.values()),
        "items": lambda h: list(h.items()),
        "get": lambda h: h.get("cost"),
        "repr": repr,
        "str": str,
        "dict": dict,
        "unpack": lambda h: {**h},
        "update-into": lambda h: {}.update(h),
        "or": lambda h: h | {},
        "ror": lambda h: {} | h,
        "copy": lambda h: h.copy(),
        "copy.copy": copy.copy,
        "copy.deepcopy": copy.deepcopy,
        "pickle": lambda h: pickle.loads(pickle.dumps(h)),
        "json": lambda h: json.dumps({k: v.tolist() for k, v in h.items()}),
        "savez": lambda h: np.savez(io.BytesIO(), **h),
        "setdefault": lambda h: h.setdefault("extra", 1.0),
        "setitem": lambda h: h.__setitem__("extra", 1.0),
        "update": lambda h: h.update(extra=1.0),
    }


@pytest.mark.parametrize("way", sorted(_read_ways()))
def test_every_way_of_reading_gives_the_complete_history(way):
    res = _run(maxiter=8)
    h = res.history
    assert _pending(h)
    out = _read_ways()[way](h)
    assert not _pending(h)
    assert set(FIELDS) <= set(dict.keys(h))
    assert all(len(dict.__getitem__(h, k)) == res.nit + 1 for k in FIELDS)
    if isinstance(out, dict):  # a copy made from the pending history has every column
        assert set(FIELDS) <= set(out)
        np.testing.assert_array_equal(out["cost"], dict.__getitem__(h, "cost"))
    if way in ("len", "bool"):
        assert out == len(FIELDS) or out is True
    if way == "repr":
        assert "'cost'" in out and "'violation'" in out


def test_equality_between_two_pending_histories_reads_both():
    a, b = History._deferred(lambda: {"k": 1}), History._deferred(lambda: {"k": 1})
    assert a == b and not (a != b)
    assert not _pending(a) and not _pending(b)
    assert History._deferred(lambda: {"k": 1}) != History._deferred(lambda: {"k": 2})


def test_a_pickled_result_has_its_history():
    res = _run(maxiter=5)
    back = pickle.loads(pickle.dumps(res))
    assert sorted(back.history) == FIELDS
    np.testing.assert_array_equal(back.history["violation"], res.history["violation"])


def test_two_threads_reading_a_pending_history_build_it_once():
    calls = []

    def build():
        calls.append(1)
        time.sleep(0.05)  # the second reader arrives while the first builds
        return {"cost": np.arange(3.0)}

    h = History._deferred(build)
    barrier, out = threading.Barrier(2), []

    def read():
        barrier.wait()
        out.append(h["cost"].sum())

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1] and out == [3.0, 3.0]


def test_a_failing_build_leaves_the_history_pending_and_raises_again():
    attempts = []

    def build():
        attempts.append(1)
        raise RuntimeError("boom")

    h = History._deferred(build)
    for _ in range(2):
        with pytest.raises(RuntimeError, match="boom"):
            len(h)
    assert attempts == [1, 1] and _pending(h)


def test_at_most_max_pending_histories_wait_and_dropped_ones_are_never_built():
    _loop._PENDING.clear()
    built = []

    def maker(i):
        return lambda: built.append(i) or {"i": i}

    for i in range(3 * _loop._MAX_PENDING):
        History._deferred(maker(("dropped", i)))  # unreferenced: gone at once
    assert built == []
    kept = [History._deferred(maker(i)) for i in range(_loop._MAX_PENDING + 3)]
    # Making histories beyond the bound built the oldest kept ones, in order.
    assert built == [0, 1, 2]
    assert [_pending(h) for h in kept] == [False] * 3 + [True] * _loop._MAX_PENDING
    assert [h["i"] for h in kept] == list(range(_loop._MAX_PENDING + 3))
    assert len(_loop._PENDING) <= _loop._MAX_PENDING


def test_an_unread_history_keeps_neither_the_problem_nor_the_users_functions():
    cost, grad, x0 = _rayleigh()

    class Cost:  # a callable object, weakly referenceable
        def __call__(self, x):
            return cost(x)

    fun = Cost()
    ref = weakref.ref(fun)
    res = minimize(fun, Sphere(12), x0=x0, method="cg", grad=grad, maxiter=10)
    del fun
    gc.collect()
    assert _pending(res.history)
    assert ref() is None
    assert len(res.history["cost"]) == res.nit + 1


def test_oblique_runs_longer_than_the_stack_defer_only_its_rest():
    # A run longer than the stack flushes full stacks during the run; the deferred part is
    # the rest. The columns agree with plain NumPy on the iterates (from the callback):
    # max over the columns of |‖X_j‖ - 1|, and the root sum of squares of the per-column
    # angles atan2(‖Y_j - <X_j, Y_j> X_j‖, <X_j, Y_j>).
    rng = np.random.default_rng(3)
    M = Oblique(3, 6)
    C = rng.standard_normal((3, 3))
    A = C @ C.T
    x0 = M.random_point(rng)
    seen = [x0]
    res = minimize(lambda X: float(np.sum(X * (A @ X))), M, x0=x0, method="rsgd", lr=1e-3,
                   grad=lambda X: 2.0 * A @ X, maxiter=300, gtol=0.0, xtol=0.0,
                   callback=lambda X: seen.append(np.array(X)))
    assert res.nit == 300 and len(seen) == 301
    h = res.history
    assert _pending(h)
    xs = np.array(seen)
    eps = np.finfo(float).eps
    np.testing.assert_allclose(h["violation"],
                               np.max(np.abs(np.linalg.norm(xs, axis=1) - 1.0), axis=1),
                               rtol=0, atol=4 * eps)
    x, y = xs[:-1], xs[1:]
    c = np.sum(x * y, axis=1, keepdims=True)
    sine = np.linalg.norm(y - c * x, axis=1)
    angle = np.sqrt(np.sum(np.arctan2(sine, c[:, 0]) ** 2, axis=1))
    np.testing.assert_allclose(h["angle"][1:], angle, rtol=1e-6, atol=8 * eps)


def test_a_failing_build_of_an_evicted_history_is_raised_when_that_history_is_read():
    # Making a history evicts the oldest one; its failure is not this run's: it is raised
    # when the failing history itself is read.
    _loop._PENDING.clear()

    def bad():
        raise RuntimeError("old history")

    failing = History._deferred(bad)
    kept = [History._deferred(lambda i=i: {"i": i}) for i in range(_loop._MAX_PENDING)]
    assert _pending(failing) and len(kept[-1]) == 1
    with pytest.raises(RuntimeError, match="old history"):
        failing["i"]
