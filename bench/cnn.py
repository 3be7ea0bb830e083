"""Training time per epoch of a small CNN on the digits: spherenet.nn against PyTorch on the CPU.

The network of ``tests/test_nn_conv_digits.py`` -- Conv2D(32, 3, same, relu),
Conv2D(32, 3, same, relu), MaxPooling2D(2), Flatten, Dense(128, relu),
Dense(10, softmax) -- trained on the 1348 training images (8x8, one channel)
of scikit-learn's digits, float32, batches of 128 (11 a epoch, the last
one partial), SGD with momentum 0.9 and softmax cross-entropy, without
shuffling, in:

* spherenet.nn without constraints;
* spherenet.nn with every filter (and hidden Dense column) on its unit
  sphere, ``unit_norm(axis=[0, 1, 2])``, under the riemannian and the
  projection strategies;
* PyTorch (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Linear``, ``optim.SGD``),
  the same architecture on the same data (NCHW);
* PyTorch with the same constraint kept Keras's way: every filter and
  hidden column divided by its norm after each step.

For each thread count t (``--threads 1,2``) spherenet runs with its BLAS on
t threads (threadpoolctl) and the layers serial ("BLAS t, layers 1"), with
the convolution and pooling layers sharing their blocks of images between t
threads (``spherenet.nn.set_num_threads(t)``) and BLAS on one thread ("BLAS
1, layers t"), and with both; PyTorch runs with ``torch.set_num_threads(t)``.
The methods are interleaved epoch by epoch, ``--repeat`` times, with a pause
before each timed epoch (``--pause``, default 0.2 s): OpenBLAS's and
OpenMP's idle threads spin for a while after their last call, and would
otherwise take a core from the method timed next. The table gives each
method's best epoch in ms, the median over the repeats of its paired ratio to
PyTorch's epoch of the same repeat (the machine may be shared), the
median of CPU time over wall time (about t when t threads really work) and,
with a baseline, the median paired ratio to the baseline's same row.
``--baseline DIR`` adds the rows of another checkout of spherenet (e.g. a
``git worktree`` of an older commit), timed in the same run. Run
``python bench/cnn.py [--threads 1,2] [--repeat 7] [--baseline DIR] [--profile] [--timeline]``;
``--profile`` adds a cProfile of the spherenet riemannian epoch (one thread);
``--timeline`` adds, per thread count, where the epoch's time goes on each
thread (see :func:`timeline`; on one thread a convolution's blocks run as one
call, without a parallel region to time). On a shared machine, processes
that take a core in the middle of an epoch make the two-thread rows
meaningless; as root, ``chrt -f 1 python bench/cnn.py ...`` (real-time
priority for the few minutes of the run) keeps the cores.
"""

import argparse
import importlib
import importlib.util
import os
import sys
import threading
import time

import numpy as np
from threadpoolctl import ThreadpoolController

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import spherenet.nn  # noqa: E402
import spherenet.optim  # noqa: E402

F32 = np.float32
BLAS = ThreadpoolController()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", default="1,2", help="thread counts to compare (default 1,2)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=7,
                        help="timed epochs per method (0: no table, e.g. with --ops alone)")
    parser.add_argument("--pause", type=float, default=0.2,
                        help="seconds of sleep before each timed epoch (idle threads stop spinning)")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--baseline", metavar="DIR",
                        help="a checkout of spherenet whose rows to time in the same run")
    parser.add_argument("--timeline", action="store_true",
                        help="per-thread timeline of the parallel regions of the layers")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile the spherenet.nn riemannian epoch")
    parser.add_argument("--ops", action="store_true",
                        help="per-op times of an epoch (one thread), spherenet.nn beside PyTorch")
    return parser.parse_args()


ARGS = parse_args()


def data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.images[..., None] / 16.0).astype(F32), digits.target
    order = np.random.default_rng(0).permutation(len(x))
    n_train = int(round(len(x) * 0.75))
    return np.ascontiguousarray(x[order][:n_train]), y[order][:n_train]


def import_baseline(path):
    """The ``nn`` and ``optim`` modules of the spherenet checkout at ``path``, as another package."""
    root = os.path.join(os.path.abspath(path), "spherenet")
    spec = importlib.util.spec_from_file_location(
        "spherenet_baseline", os.path.join(root, "__init__.py"), submodule_search_locations=[root])
    package = importlib.util.module_from_spec(spec)
    sys.modules["spherenet_baseline"] = package
    spec.loader.exec_module(package)
    return (importlib.import_module("spherenet_baseline.nn"),
            importlib.import_module("spherenet_baseline.optim"))


def make_spherenet(x, y, constrained=False, strategy="riemannian",
                   lib=(spherenet.nn, spherenet.optim)):
    nn, optim = lib
    filters = nn.unit_norm(axis=[0, 1, 2]) if constrained else None
    model = nn.Sequential([
        nn.Conv2D(32, 3, padding="same", activation="relu", kernel_constraint=filters,
                  input_shape=(8, 8, 1)),
        nn.Conv2D(32, 3, padding="same", activation="relu", kernel_constraint=filters),
        nn.MaxPooling2D(2),
        nn.Flatten(),
        nn.Dense(128, activation="relu", kernel_constraint=nn.unit_norm() if constrained else None),
        nn.Dense(10, activation="softmax"),
    ], seed=0)
    model.compile(optimizer=optim.RSGD(lr=ARGS.lr, momentum=ARGS.momentum),
                  loss="sparse_categorical_crossentropy", strategy=strategy)

    def epoch():
        model.fit(x, y, epochs=1, batch_size=ARGS.batch, verbose=0, shuffle=False)

    return epoch


def make_torch(x, y, torch, constrained=False):
    nn = torch.nn
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(512, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )
    constrained_weights = [net[0].weight, net[2].weight, net[6].weight]
    opt = torch.optim.SGD(net.parameters(), lr=ARGS.lr, momentum=ARGS.momentum)
    loss_fn = nn.CrossEntropyLoss()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    yt = torch.from_numpy(y)
    n, b = len(x), ARGS.batch

    def normalize():
        with torch.no_grad():
            for w in constrained_weights:  # torch's layout: one filter / unit per row
                dims = tuple(range(1, w.dim()))
                w.div_(1e-7 + torch.sqrt(torch.sum(w * w, dim=dims, keepdim=True)))

    if constrained:
        normalize()

    def epoch():
        for lo in range(0, n, b):
            opt.zero_grad(set_to_none=False)
            loss = loss_fn(net(xt[lo:lo + b]), yt[lo:lo + b])
            loss.backward()
            opt.step()
            if constrained:
                normalize()

    return epoch


def import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def run(threads, x, y, torch, baseline):
    """``(names, times, cpu)``: per method, its epochs' wall and CPU/wall times, interleaved.

    A method is ``(name, epoch, blas threads, layer threads, nn module)``: the
    layer threads are set with the ``set_num_threads`` of that module (the
    baseline's own, which an older checkout may not have: then its layers
    run as they do).
    """
    configs = [(threads, 1), (1, threads), (threads, threads)] if threads > 1 else [(1, 1)]
    methods = []
    for what, kwargs in (("Conv2D", {}), ("unit-norm filters, riemannian", {"constrained": True})):
        for blas, layers in configs:
            methods.append((f"spherenet.nn {what}, BLAS {blas}, layers {layers}",
                            make_spherenet(x, y, **kwargs), blas, layers, spherenet.nn))
    methods.append((f"spherenet.nn unit-norm filters, projection, BLAS 1, layers {threads}",
                    make_spherenet(x, y, True, "projection"), 1, threads, spherenet.nn))
    if baseline is not None:
        for what, kwargs in (("Conv2D", {}),
                             ("unit-norm filters, riemannian", {"constrained": True})):
            for blas, layers in configs[:2]:
                methods.append((f"baseline {what}, BLAS {blas}, layers {layers}",
                                make_spherenet(x, y, lib=baseline, **kwargs), blas, layers,
                                baseline[0]))
    if torch is not None:
        torch.set_num_threads(threads)
        methods += [("PyTorch", make_torch(x, y, torch), 1, 1, None),
                    ("PyTorch, filters normalized after each step",
                     make_torch(x, y, torch, True), 1, 1, None)]
    times = {name: [] for name, *_ in methods}
    cpu = {name: [] for name, *_ in methods}

    def timed(name, epoch, blas_threads, nn_threads, nn):
        setting = getattr(nn, "set_num_threads", None)
        with BLAS.limit(limits=blas_threads, user_api="blas"):
            previous = setting(nn_threads) if setting else None
            try:
                time.sleep(ARGS.pause)
                wall, process = time.perf_counter(), time.process_time()
                epoch()
                wall, process = time.perf_counter() - wall, time.process_time() - process
            finally:
                if setting:
                    setting(previous)
        if name is not None:
            times[name].append(wall)
            cpu[name].append(process / wall)

    for _, *method in methods:  # warm up (numba compilation, allocator, caches, thread pools)
        timed(None, *method)
    for _ in range(ARGS.repeat):
        for method in methods:
            timed(*method)
    return [name for name, *_ in methods], times, cpu


def main():
    x, y = data()
    torch = import_torch()
    baseline = import_baseline(ARGS.baseline) if ARGS.baseline else None
    thread_counts = [int(t) for t in ARGS.threads.split(",")]
    versions = [f"numpy {np.__version__}"]
    if torch is not None:
        versions.append(f"torch {torch.__version__}")
    print(f"digits CNN (32-32 conv, pool, 128, 10), {len(x)} images a epoch, batch {ARGS.batch}, "
          f"float32, SGD momentum {ARGS.momentum}, {ARGS.repeat} interleaved epochs per method; "
          + ", ".join(versions))
    for threads in thread_counts if ARGS.repeat > 0 else ():
        names, times, cpu = run(threads, x, y, torch, baseline)
        width = max(len(name) for name in names)
        print(f"\n{threads} thread(s)")
        print(f"{'method':<{width}}  {'best ms':>8}  {'x torch':>7}  {'cpu/wall':>8}"
              + (f"  {'x baseline':>10}" if baseline is not None else ""))
        for name in names:
            wall = np.array(times[name])
            ratio = (np.median(wall / np.array(times["PyTorch"])) if "PyTorch" in times
                     else float("nan"))
            twin = name.replace("spherenet.nn ", "baseline ", 1)
            versus = (f"  {np.median(wall / np.array(times[twin])):10.2f}"
                      if twin != name and twin in times else "")
            print(f"{name:<{width}}  {1e3 * wall.min():8.1f}  {ratio:7.2f}  "
                  f"{np.median(cpu[name]):8.2f}{versus}")
    if torch is None:
        print("PyTorch: not installed (pip install -e '.[bench]')")
    if ARGS.timeline:
        for threads in thread_counts:
            timeline(x, y, threads)
    if ARGS.profile:
        profile(x, y)
    if ARGS.ops:
        ops(x, y, torch)


_REGIONS = {  # the function that opens a parallel region: what it computes
    "_conv_gemm": "conv forward",
    "_conv_backward": "conv backward",
    "_max_pool": "max-pool forward",
    "_max_pool_vjp.<locals>.vjp": "max-pool backward",
    "_average_pool": "average-pool forward",
    "_average_pool_vjp.<locals>.vjp": "average-pool backward",
    "_pad": "padding",
}


def _region_name(frame):
    while frame is not None:
        name = _REGIONS.get(getattr(frame.f_code, "co_qualname", frame.f_code.co_name))
        if name is not None:
            return name
        frame = frame.f_back
    return "other"


class _ThreadClock:
    """CPU time and time spent waiting for a core (Linux's schedstat) of the calling thread.

    A thread's wall time is then on a core + runnable but waiting for one
    (the machine is busy) + asleep (waiting for the GIL, a lock, a task).
    """

    def __init__(self):
        self._files = threading.local()

    def __call__(self):
        fd = getattr(self._files, "fd", None)
        if fd is None:
            try:
                fd = os.open(f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY)
            except OSError:
                fd = -1
            self._files.fd = fd
        waited = int(os.pread(fd, 100, 0).split()[1]) * 1e-9 if fd >= 0 else 0.0
        return time.thread_time(), waited


def timeline(x, y, threads, epochs=5):
    """Where the time of an epoch goes with ``threads`` layer threads (BLAS on one).

    Every parallel region of the layers (``spherenet.nn._parallel.run_tasks``)
    is timed, and each of its tasks on the thread that runs it: wall time,
    CPU time, and the time it waited for a core (the machine busy) -- the rest
    of a task's wall time it was asleep, which inside a task means waiting
    for the GIL. Of the epoch with the least wall time less the main thread's
    waits for a core, the table gives per kind of region: how many, their
    wall time, the time of their tasks (summed over threads), the share the
    worker threads ran, the time both threads were in a task at once, the
    hand-off (region start to the first task on a worker, averaged), and
    the tasks' time asleep. Outside the regions the main thread runs alone.
    """
    from spherenet.nn import _parallel, conv

    clock = _ThreadClock()
    regions, tasks = [], []
    run_tasks = _parallel.run_tasks

    def timed_run_tasks(todo):
        name = _region_name(sys._getframe(1))
        index = len(regions)

        def timed(task):
            def call():
                # the clocks read inside the wall-clock interval: a wait for a core between
                # the two readings counts in both
                start = time.perf_counter()
                cpu, waited = clock()
                task()
                cpu_end, waited_end = clock()
                end = time.perf_counter()
                tasks.append((index, threading.get_ident(), start, end, cpu_end - cpu,
                              waited_end - waited))
            return call

        start = time.perf_counter()
        run_tasks([timed(task) for task in todo])
        regions.append((name, start, time.perf_counter()))

    main = threading.get_ident()
    best = None
    for what, constrained in (("Conv2D", False), ("unit-norm filters, riemannian", True)):
        model = make_spherenet(x, y, constrained)
        _parallel.run_tasks = conv.run_tasks = timed_run_tasks
        try:
            with BLAS.limit(limits=1, user_api="blas"):
                previous = spherenet.nn.set_num_threads(threads)
                try:
                    model()
                    for _ in range(epochs):
                        regions.clear()
                        tasks.clear()
                        time.sleep(ARGS.pause)
                        _, waited = clock()
                        wall, cpu = time.perf_counter(), time.process_time()
                        model()
                        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                        waited = clock()[1] - waited
                        if best is None or wall - waited < best[0]:
                            best = (wall - waited, wall, cpu, list(regions), list(tasks))
                finally:
                    spherenet.nn.set_num_threads(previous)
        finally:
            _parallel.run_tasks = conv.run_tasks = run_tasks
        print_timeline(f"{what}, layers on {threads} thread(s), BLAS 1", best, main)
        best = None


def print_timeline(what, best, main):
    critical, wall, cpu, regions, tasks = best
    inside = sum(end - start for _, start, end in regions)
    print(f"\ntimeline of spherenet.nn {what}: epoch {1e3 * wall:.1f} ms "
          f"({1e3 * critical:.1f} ms less the main thread's waits for a core), CPU/wall "
          f"{cpu / wall:.2f}; {len(regions)} parallel regions, {1e3 * inside:.1f} ms "
          f"({inside / wall:.0%}), outside {1e3 * (wall - inside):.1f} ms")
    rows = {}
    for index, (name, start, end) in enumerate(regions):
        mine = [t for t in tasks if t[0] == index]
        row = rows.setdefault(name, [0, 0.0, 0.0, 0.0, 0.0, [], 0.0])
        row[0] += 1
        row[1] += end - start
        row[2] += sum(t[3] - t[2] for t in mine)
        row[3] += sum(t[3] - t[2] for t in mine if t[1] != main)
        edges = sorted([(t[2], 1) for t in mine] + [(t[3], -1) for t in mine])
        busy, last = 0, start
        for moment, step in edges:
            if busy >= 2:
                row[4] += moment - last
            busy, last = busy + step, moment
        first_worker = min((t[2] for t in mine if t[1] != main), default=None)
        if first_worker is not None:
            row[5].append(first_worker - start)
        row[6] += sum(t[3] - t[2] - t[4] - t[5] for t in mine)
    print(f"{'region':<22}  {'count':>5}  {'wall ms':>8}  {'tasks ms':>8}  {'workers':>7}  "
          f"{'both ms':>7}  {'hand-off us':>11}  {'asleep ms':>9}")
    for name, (count, wall_r, work, workers, both, handoff, asleep) in sorted(
            rows.items(), key=lambda item: -item[1][1]):
        mean = 1e6 * np.mean(handoff) if handoff else float("nan")
        print(f"{name:<22}  {count:5d}  {1e3 * wall_r:8.2f}  {1e3 * work:8.2f}  "
              f"{workers / work if work else 0:7.0%}  {1e3 * both:7.2f}  {mean:11.0f}  "
              f"{1e3 * asleep:9.2f}")


def profile(x, y):
    import cProfile
    import pstats

    epoch = make_spherenet(x, y, True)
    with BLAS.limit(limits=1, user_api="blas"):
        epoch()
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(5):
            epoch()
        prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)


def _clock():
    """The calling thread's CPU time: the per-op times are not those of a wait for a core."""
    return time.thread_time()


def _timed_primitives(totals):
    """Time every autograd primitive's forward call and vector-Jacobian product into ``totals``.

    Returns a function that undoes the patching. A primitive's forward is
    the raw function autograd's wrapper calls (its ``f_raw`` closure cell),
    its backward the function its VJP maker returns; both add their wall
    time to ``totals[(name, "forward" | "backward")]`` (seconds, calls).
    """
    from autograd.core import primitive_vjps

    undo = []

    def add(key, seconds):
        entry = totals.setdefault(key, [0.0, 0])
        entry[0] += seconds
        entry[1] += 1

    def shape_of(args):  # the shape of the first array among args (or their tuples): its input's
        for a in args:
            a = getattr(a, "_value", a)
            if isinstance(a, tuple):
                found = shape_of(a)
                if found:
                    return found
            elif isinstance(a, np.ndarray) and a.ndim:
                return "x".join(["N", *map(str, a.shape[1:])])
        return ""

    for fun, maker in list(primitive_vjps.items()):
        code, cells = getattr(fun, "__code__", None), getattr(fun, "__closure__", None)
        if code is None or cells is None or "f_raw" not in code.co_freevars:
            continue
        cell = cells[code.co_freevars.index("f_raw")]
        raw = cell.cell_contents
        name = getattr(raw, "__name__", repr(raw))

        def forward(*args, _raw=raw, _name=name, **kwargs):
            start = _clock()
            try:
                return _raw(*args, **kwargs)
            finally:
                add((_name, shape_of(args), "forward"), _clock() - start)

        def timed_maker(*args, _maker=maker, _name=name):
            vjp = _maker(*args)
            # the maker's arguments: (ans, *args) or (argnums, ans, args, kwargs)
            shape = shape_of(args[2:3] if isinstance(args[0], tuple) else args[1:])

            def backward(g):
                start = _clock()
                try:
                    return tuple(vjp(g))  # some makers return a generator: run it here
                finally:
                    add((_name, shape, "backward"), _clock() - start)
            return backward

        cell.cell_contents = forward
        primitive_vjps[fun] = timed_maker
        undo.append((cell, raw, fun, maker))

    def restore():
        for cell_, raw_, fun_, maker_ in undo:
            cell_.cell_contents = raw_
            primitive_vjps[fun_] = maker_
    return restore


def ops(x, y, torch, epochs=9):
    """Per-op time of an epoch on one thread (BLAS 1, layers 1): spherenet.nn, then PyTorch.

    spherenet.nn: every autograd primitive's forward and backward (see
    :func:`_timed_primitives`), the optimizer's step (``rule.step``), and the
    rest of the epoch (autograd's trace and bookkeeping, the loss's
    bookkeeping, metrics); per epoch, the best of ``epochs`` epochs for the
    epoch total, the median of the per-epoch sums for each op. PyTorch:
    ``torch.profiler``'s self CPU time of each op, per epoch.
    """
    from spherenet.optim import rules

    for what, constrained in (("Conv2D", False), ("unit-norm filters, riemannian", True)):
        model = make_spherenet(x, y, constrained)
        per_epoch, walls = [], []
        step = rules.RSGD.step

        with BLAS.limit(limits=1, user_api="blas"):
            previous = spherenet.nn.set_num_threads(1)
            model()
            for _ in range(epochs):
                totals = {}

                def timed_step(self, *args, _totals=totals):
                    start = _clock()
                    try:
                        return step(self, *args)
                    finally:
                        entry = _totals.setdefault(("optimizer step", "", ""), [0.0, 0])
                        entry[0] += _clock() - start
                        entry[1] += 1

                restore = _timed_primitives(totals)
                rules.RSGD.step = timed_step
                try:
                    time.sleep(ARGS.pause)
                    start = _clock()
                    model()
                    walls.append(_clock() - start)
                finally:
                    rules.RSGD.step = step
                    restore()
                per_epoch.append(totals)
            spherenet.nn.set_num_threads(previous)
        keys = sorted({k for t in per_epoch for k in t},
                      key=lambda k: -np.median([t.get(k, [0, 0])[0] for t in per_epoch]))
        wall = np.median(walls)
        print(f"\nper-op times of spherenet.nn {what}, one thread: epoch {1e3 * wall:.1f} ms "
              f"(CPU time of the thread, median of {epochs}; timing adds a little)")
        print(f"{'op (input shape)':<52}  {'calls':>5}  {'ms':>7}  {'share':>6}")
        accounted = 0.0
        for key in keys:
            ms = np.median([t.get(key, [0, 0])[0] for t in per_epoch])
            accounted += ms
            calls = per_epoch[0].get(key, [0, 0])[1]
            if ms >= 5e-5:
                print(f"{key[0]} ({key[1]}) {key[2]}".replace(" ()", "").ljust(52)
                      + f"  {calls:5d}  {1e3 * ms:7.2f}  {ms / wall:6.1%}")
        print(f"{'rest (autograd, bookkeeping)':<52}  {'':>5}  {1e3 * (wall - accounted):7.2f}  "
              f"{(wall - accounted) / wall:6.1%}")
    if torch is None:
        return
    from torch.profiler import ProfilerActivity, profile as torch_profile

    torch.set_num_threads(1)
    epoch = make_torch(x, y, torch)
    epoch()
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(epochs):
            epoch()
    events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in events) / epochs
    print(f"\nper-op self CPU times of PyTorch, one thread, per epoch (profiled: "
          f"{total / 1e3:.1f} ms)")
    print(f"{'op':<44}  {'calls':>5}  {'ms':>7}")
    for event in events:
        ms = event.self_cpu_time_total / epochs / 1e3
        if ms >= 0.2:
            print(f"{event.key:<44}  {event.count // epochs:5d}  {ms:7.2f}")


if __name__ == "__main__":
    main()
