"""One Riemannian gradient step on a large point: spherenet against its peers.

Times ``x <- retr(x, -lr * egrad2rgrad(x, g))`` (and its exponential-map
variant) on a (4096, 1024) point, float64 and float32, for the sphere of
matrices (unit Frobenius norm) and the oblique manifold (unit columns), and
prints one table per manifold with, measured in the same run:

* the traffic floor of a fused in-place step, ``np.add(x, g, out=x)``
  (read two arrays, write one); ``np.add(x, g, out=c)`` for reference; and
  the floor of any two-pass step (sums, then the update: x and g read
  twice), ``np.dot(x, g)`` then ``np.add(x, g, out=x)`` (BLAS and NumPy at
  their memory speed), with ``np.dot(x, g)`` alone (read two arrays);
* pymanopt 2.2 (``euclidean_to_riemannian_gradient``, scale, ``retraction``
  or ``exp``);
* geoopt's ``RiemannianSGD.step()`` on a ``ManifoldParameter`` whose ``.grad``
  is set (``Sphere``: projection retraction, ``SphereExact``: exp), with
  ``torch.set_num_threads(1)``;
* a hand-fused two-pass NumPy step (three einsum reductions, then
  ``a x + b g`` into preallocated buffers; not cancellation-safe);
* spherenet's methods called one by one, ``M.retr(x, -lr * M.egrad2rgrad(x, g))``
  and ``M.exp(...)``;
* spherenet's ``gradient_step(x, g, lr, out=x)``, the public method (which
  validates x and egrad from the sums of squares of the step's own first
  pass, inside the compiled kernel on the numba path: no pass of its own) and
  ``M.unchecked.gradient_step`` (the hot path of the step rules), each on
  the NumPy path (forced) and the numba path (compilation excluded).

The point is reset from a copy before every timed call (not timed), so that
every method steps from the same point. Each method is timed ``--repeat``
times (after one warm-up call), every call paired with a call of the floor
just before it; the table gives the median time and the median of the paired
ratios to the floor, with their spread (25th-75th percentile), so that load
from other processes shows as spread rather than as a wrong ratio. Run:
``python bench/step.py [--size 4096,1024] [--repeat 15] [--blas-threads 1]
[--no-peers]``.
"""

import argparse
import os
import sys
import time


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="4096,1024", help="m,n of the point (default 4096,1024)")
    parser.add_argument("--repeat", type=int, default=15, help="timed calls per method (median)")
    parser.add_argument("--lr", type=float, default=0.1, help="step size")
    parser.add_argument(
        "--blas-threads",
        default="1",
        help="OpenBLAS threads, set before NumPy loads (default 1; 'keep' leaves the default)",
    )
    parser.add_argument(
        "--no-peers", action="store_true", help="time spherenet and the floor only (quicker)"
    )
    return parser.parse_args()


ARGS = parse_args()
if ARGS.blas_threads != "keep":
    # Before NumPy is imported: every method then runs on one core.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = ARGS.blas_threads

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import spherenet  # noqa: E402
from spherenet import Oblique, Sphere  # noqa: E402
from spherenet.manifolds import _kernels  # noqa: E402

NOT_INSTALLED = "not installed"


def blas_threads():
    """Threads OpenBLAS will use, read from the loaded library (or '?')."""
    import ctypes

    np.dot(np.ones(2), np.ones(2))
    try:
        with open("/proc/self/maps") as maps:
            libs = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        libs = []
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in (
            "scipy_openblas_get_num_threads64_",
            "openblas_get_num_threads64_",
            "openblas_get_num_threads",
        ):
            if hasattr(lib, name):
                return f"{getattr(lib, name)()} ({os.path.basename(path)})"
    return "?"


def try_pymanopt():
    try:
        import pymanopt
        from pymanopt import manifolds
    except ImportError:
        return None
    return pymanopt.__version__, manifolds


def try_geoopt():
    try:
        import torch
    except ImportError:
        return None
    try:
        import geoopt
    except ImportError as err:
        if "linesearch" not in str(err):
            return None
        # geoopt 0.5.0 imports scipy.optimize.linesearch, private since scipy 1.8.
        import scipy.optimize._linesearch as _ls

        sys.modules["scipy.optimize.linesearch"] = _ls
        try:
            import geoopt
        except ImportError:
            return None
    torch.set_num_threads(1)
    return torch, geoopt


# --- the methods -------------------------------------------------------------
#
# Each factory gets (x, g, lr) -- x is reset before every call -- and returns
# a zero-argument callable doing one step, or a string saying why not.


def floor_inplace(x, g, lr):
    return lambda: np.add(x, g, out=x)


def floor_out(x, g, lr):
    c = np.empty_like(x)
    return lambda: np.add(x, g, out=c)


def read_two(x, g, lr):
    xf, gf = x.reshape(-1), g.reshape(-1)
    return lambda: np.dot(xf, gf)


def two_pass_floor(x, g, lr):
    xf, gf = x.reshape(-1), g.reshape(-1)

    def step():
        np.dot(xf, gf)
        np.add(x, g, out=x)

    return step


def pymanopt_step(kind, which):
    def factory(x, g, lr):
        found = try_pymanopt()
        if found is None:
            return NOT_INSTALLED
        _, manifolds = found
        m, n = x.shape
        M = manifolds.Sphere(m, n) if kind == "sphere" else manifolds.Oblique(m, n)
        move = M.retraction if which == "retr" else M.exp

        def step():
            return move(x, -lr * M.euclidean_to_riemannian_gradient(x, g))

        return step

    return factory


def geoopt_step(kind, which):
    def factory(x, g, lr):
        found = try_geoopt()
        if found is None:
            return NOT_INSTALLED
        torch, geoopt = found
        # geoopt's spheres normalize the last dimension: the whole array is one
        # vector (Sphere), and unit columns of (m, n) are unit rows of its
        # contiguous (n, m) transpose (Oblique).
        if kind == "sphere":
            xt, gt = x.reshape(-1), g.reshape(-1)
        else:
            xt, gt = np.ascontiguousarray(x.T), np.ascontiguousarray(g.T)
        x0 = xt.copy()
        manifold = geoopt.Sphere() if which == "retr" else geoopt.SphereExact()
        param = geoopt.ManifoldParameter(torch.from_numpy(xt), manifold=manifold)
        param.grad = torch.from_numpy(gt)
        opt = geoopt.optim.RiemannianSGD([param], lr=lr)

        def step():
            with torch.no_grad():
                param.copy_(torch.from_numpy(x0))  # geoopt's own copy of x
            start = time.perf_counter()
            opt.step()
            return time.perf_counter() - start

        step.self_timed = True
        return step

    return factory


def numpy_fused(kind, which):
    """The hand-fused NumPy step: 3 reductions, then a x + b g into buffers."""

    def factory(x, g, lr):
        sub = "ij,ij->" if kind == "sphere" else "ij,ij->j"
        scratch = np.empty_like(x)

        def step():
            xx = np.einsum(sub, x, x, dtype=np.float64)
            xg = np.einsum(sub, x, g, dtype=np.float64)
            gg = np.einsum(sub, g, g, dtype=np.float64)
            c = xg / xx
            rr = np.maximum(gg - c * xg, 0.0)
            if which == "retr":
                a = 1.0 / np.sqrt(xx + lr * lr * rr)
                b = -lr * a
            else:
                t = lr * np.sqrt(rr)
                a = np.cos(t) / np.sqrt(xx)
                b = -lr * np.sinc(t / np.pi)
            # out = a x + b (g - c x) = (a - b c) x + b g
            np.multiply(g, b.astype(x.dtype), out=scratch)
            np.multiply(x, (a - b * c).astype(x.dtype), out=x)
            np.add(x, scratch, out=x)

        return step

    return factory


def spherenet_manifold(kind, x):
    m, n = x.shape
    if kind == "sphere":
        return Sphere(m, n, retraction="projection")
    return Oblique(m, n, retraction="projection")


def spherenet_one_by_one(kind, which):
    def factory(x, g, lr):
        M = spherenet_manifold(kind, x)
        move = M.retr if which == "retr" else M.exp

        def step():
            return move(x, -lr * M.egrad2rgrad(x, g))

        return step

    return factory


def spherenet_gradient_step(kind, which, path, public):
    """``M.gradient_step`` (public: validates its input) or ``M.unchecked.gradient_step``."""

    def factory(x, g, lr):
        M = spherenet_manifold(kind, x)
        if which == "exp":
            M = Sphere(*x.shape) if kind == "sphere" else Oblique(*x.shape)
        method = M.gradient_step if public else M.unchecked.gradient_step
        if path == "nb":
            if not _kernels.available():
                return "numba " + NOT_INSTALLED
            probe = x.copy()
            start = time.perf_counter()
            method(probe, g, lr, out=probe)  # compile (or load) first
            COMPILE_TIMES.append(time.perf_counter() - start)
            return lambda: method(x, g, lr, out=x)

        def step():
            real = _kernels.gradient_step
            _kernels.gradient_step = lambda *args: False  # force the NumPy path
            try:
                method(x, g, lr, out=x)
            finally:
                _kernels.gradient_step = real

        return step

    return factory


COMPILE_TIMES = []


FLOOR = "floor: np.add(x, g, out=x)"


def methods(kind):
    rows = [
        (FLOOR, floor_inplace),
        ("np.add(x, g, out=c) (for reference)", floor_out),
        ("np.dot(x, g): read 2", read_two),
        ("2-pass floor: dot, then add", two_pass_floor),
    ]
    for which in ("retr", "exp"):
        if not ARGS.no_peers:
            rows += [
                (f"pymanopt {which}", pymanopt_step(kind, which)),
                (f"geoopt RiemannianSGD {which}", geoopt_step(kind, which)),
                (f"hand-fused NumPy {which}", numpy_fused(kind, which)),
                (f"spherenet one by one {which}", spherenet_one_by_one(kind, which)),
            ]
        for path, label in (("np", "NumPy"), ("nb", "numba")):
            rows += [
                (
                    f"gradient_step {label} {which}",
                    spherenet_gradient_step(kind, which, path, True),
                ),
                (
                    f"unchecked.gradient_step {label} {which}",
                    spherenet_gradient_step(kind, which, path, False),
                ),
            ]
    return rows


def timed(step):
    start = time.perf_counter()
    result = step()
    elapsed = time.perf_counter() - start
    return result if getattr(step, "self_timed", False) else elapsed


def time_all(kind, shape, dtype, lr, repeat):
    """{method name: (median s, median ratio, 25th, 75th percentile of the ratio) or a string}."""
    rng = np.random.default_rng(0)
    x0 = rng.standard_normal(shape)
    x0 /= np.linalg.norm(x0) if kind == "sphere" else np.linalg.norm(x0, axis=0)
    x0 = x0.astype(dtype)
    # Gradient of a typical size: per-factor norm about 1.
    scale = 1.0 / np.sqrt(x0.size if kind == "sphere" else shape[0])
    g = (rng.standard_normal(shape) * scale).astype(dtype)
    x = x0.copy()
    steps = {}
    for name, factory in methods(kind):
        made = factory(x, g, lr)
        steps[name] = made
        if callable(made):  # warm up (and check that it runs)
            np.copyto(x, x0)
            made()
    floor = steps[FLOOR]
    results = {}
    for name, step in steps.items():
        if not callable(step):
            results[name] = step
            continue
        # Every call follows a floor call on the same reset point: the pair
        # sees the same load from other processes, and the ratio cancels most
        # of it. Repeats of one method run back to back.
        times, ratios = [], []
        for _ in range(repeat):
            np.copyto(x, x0)
            base = timed(floor)
            np.copyto(x, x0)
            elapsed = timed(step)
            times.append(elapsed)
            ratios.append(elapsed / base)
        q25, q50, q75 = np.percentile(ratios, [25, 50, 75])
        results[name] = (float(np.median(times)), q50, q25, q75)
    return results


def print_table(title, results, shape):
    width = max(len(name) for name in results[np.float64]) + 2
    print(f"\n{title}, point {shape[0]}x{shape[1]}")
    print("  (ms: median time; x floor: median of the paired ratios [25th-75th percentile])")
    header = (
        f"{'method':<{width}}| {'f64 ms':>8} | {'f64 x floor':>19} "
        f"| {'f32 ms':>8} | {'f32 x floor':>19}"
    )
    print(header)
    print("-" * len(header))
    for name in results[np.float64]:
        if isinstance(results[np.float64][name], str):
            print(f"{name:<{width}}| {results[np.float64][name]}")
            continue
        cells = []
        for dtype in (np.float64, np.float32):
            median, ratio, low, high = results[dtype][name]
            cells += [f"{median * 1e3:8.2f}", f"{ratio:5.2f} [{low:5.2f}-{high:5.2f}]"]
        print(f"{name:<{width}}| {cells[0]} | {cells[1]:>19} | {cells[2]} | {cells[3]:>19}")
    if ARGS.no_peers:
        return
    for which in ("retr", "exp"):
        ours = f"spherenet one by one {which}"
        theirs = f"pymanopt {which}"
        parts = []
        for dtype, label in ((np.float64, "f64"), (np.float32, "f32")):
            a, b = results[dtype][ours], results[dtype][theirs]
            if isinstance(b, str):
                parts.append(f"{label}: pymanopt {b}")
            else:
                parts.append(f"{label} {b[0] / a[0]:.2f}x")
        print(f"  speed-up of spherenet one by one over pymanopt ({which}): " + ", ".join(parts))


def main():
    shape = tuple(int(s) for s in ARGS.size.split(","))
    start = time.perf_counter()
    pm = None if ARGS.no_peers else try_pymanopt()
    go = None if ARGS.no_peers else try_geoopt()
    print("One Riemannian gradient step, in place where the API allows; median of", ARGS.repeat)
    print(f"numpy {np.__version__}, spherenet {spherenet.__version__}, ", end="")
    print(f"BLAS threads {blas_threads()}")
    if ARGS.no_peers:
        print("peers not timed (--no-peers); ", end="")
    else:
        print(f"pymanopt {pm[0] if pm else NOT_INSTALLED}; ", end="")
    if ARGS.no_peers:
        pass
    elif go:
        torch, geoopt = go
        print(f"geoopt {geoopt.__version__}, torch {torch.__version__} ", end="")
        print(f"threads {torch.get_num_threads()}; ", end="")
    else:
        print(f"geoopt {NOT_INSTALLED}; ", end="")
    if _kernels.available():
        import numba

        print(f"numba {numba.__version__} (kernels single-threaded)")
    else:
        print(f"numba {NOT_INSTALLED}")
    print("NumPy element-wise ops and einsum run on one thread.")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"load average before: {load:.2f} on {os.cpu_count()} CPUs", end="")
    print(" -- other work is running, timings will be noisy" if load > 0.5 else "")
    for kind, title in (("sphere", "Sphere(m, n)"), ("oblique", "Oblique(m, n), unit columns")):
        results = {
            dtype: time_all(kind, shape, dtype, ARGS.lr, ARGS.repeat)
            for dtype in (np.float64, np.float32)
        }
        print_table(title, results, shape)
    if COMPILE_TIMES:
        times = ", ".join(f"{t:.2f}" for t in COMPILE_TIMES)
        print(
            f"\nnumba kernels: first call per dtype/layout took {times} s "
            "(compilation or cache load; excluded above)"
        )
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    print(f"total bench time {time.perf_counter() - start:.0f} s; load average after: {load:.2f}")


if __name__ == "__main__":
    main()
