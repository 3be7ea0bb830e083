"""What the input checks of the public manifold methods cost, and what they do not.

1. Public ``exp``, ``proj`` and ``gradient_step`` (validated: dtype, shape,
   finite values, unit norm of the point) against the same maps of
   ``manifold.unchecked``, on ``Sphere(100)`` and ``Oblique(4096, 1024)``
   (float64): microseconds per call and their ratio.
2. One iteration of ``minimize(method="cg")`` on a Rayleigh quotient on
   ``Sphere(100)`` with closed-form cost and gradient: the optimizer runs on
   ``strategy.geometry``, the unchecked maps, so this should not change with
   the checks. To compare with a checkout that predates them, run this script
   with that checkout first on ``PYTHONPATH`` (part 1 then prints n/a).

Every number is the best of ``--repeat`` rounds (the machine may be shared).
Run ``python bench/checks.py [--repeat 7] [--iters 200]``.
"""

import argparse
import time

import numpy as np

import spherenet
from spherenet import Oblique, Sphere, minimize


def best_time(fn, number, repeat):
    """Best over ``repeat`` rounds of the mean time of ``number`` calls, in seconds."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def maps_table(repeat):
    rows = []
    for manifold, number in [(Sphere(100), 2000), (Oblique(4096, 1024), 10)]:
        rng = np.random.default_rng(0)
        x = manifold.random_point(rng)
        g = rng.standard_normal(manifold.shape)
        u = 1e-3 * manifold.proj(x, g)  # a short step (long ones take the long-double path)
        out = np.empty_like(x)
        fast = getattr(manifold, "unchecked", None)
        calls = {
            "exp": lambda m: m.exp(x, u),
            "proj": lambda m: m.proj(x, g),
            "gradient_step": lambda m: m.gradient_step(x, g, 0.01, out=out),
        }
        for name, call in calls.items():
            call(manifold)  # compile the kernels, warm the caches
            checked = best_time(lambda: call(manifold), number, repeat)
            if fast is None:
                rows.append([_short(manifold), name, checked, None])
                continue
            call(fast)
            raw = best_time(lambda: call(fast), number, repeat)
            rows.append([_short(manifold), name, checked, raw])
    print(f"{'manifold':<20} {'method':<14} {'checked us':>11} {'unchecked us':>13} {'ratio':>7}")
    for label, name, checked, raw in rows:
        if raw is None:
            print(f"{label:<20} {name:<14} {checked * 1e6:>11.1f} {'n/a':>13} {'n/a':>7}")
        else:
            print(f"{label:<20} {name:<14} {checked * 1e6:>11.1f} {raw * 1e6:>13.1f} "
                  f"{checked / raw:>7.2f}")


def _short(manifold):
    return f"Sphere{manifold.shape}" if isinstance(manifold, Sphere) else f"Oblique{manifold.shape}"


def cg_table(repeat, iters):
    n = 100
    rng = np.random.default_rng(1)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = (q * np.linspace(1.0, 100.0, n)) @ q.T

    def cost(x):
        return -float(x @ A @ x)

    def grad(x):
        return -2.0 * (A @ x)

    M = Sphere(n)
    x0 = M.random_point(rng=2)

    def run():
        res = minimize(cost, M, x0=x0, method="cg", grad=grad, maxiter=iters, gtol=0.0,
                       ftol=0.0, xtol=0.0)
        return res

    res = run()
    per_iter = best_time(run, 1, repeat) / max(res.nit, 1)
    print(f"minimize(method='cg') on a Rayleigh quotient, Sphere({n}): {res.nit} iterations, "
          f"{per_iter * 1e6:.1f} us per iteration")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--iters", type=int, default=200)
    args = parser.parse_args()
    print(f"spherenet from {spherenet.__file__}")
    print()
    maps_table(args.repeat)
    print()
    cg_table(args.repeat, args.iters)


if __name__ == "__main__":
    main()
