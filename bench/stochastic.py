"""Benchmark: the stochastic methods of ``minimize(..., data=...)`` on streaming PCA.

Run ``python bench/stochastic.py`` (about a minute; ``--quick`` for a
smaller problem, about 15 s). It prints one table; it asserts nothing.

The problem: the leading eigenvector of the sample second moment of n = 2000
samples of a spiked covariance in d = 50 (spikes 3 and 2: population eigengap
1), the answer from ``numpy.linalg.eigh``. Every method starts from the same
point, with closed-form mini-batch gradients, and runs under the riemannian
and projection strategies. Per run the table gives the passes over the data
(sample gradients / n, the fair clock: a full gradient costs n) needed to
bring the angle to the answer below 1e-3 and 1e-8 ("-" if not reached within
the budget: 40 passes of mini-batch gradients, the full gradients of R-SVRG's
and R-SRG's epochs coming on top), the angle reached, and the wall time per
iteration. The constant-step runs (momentum, Adam) stop at their noise floor.
Full-gradient descent (``rsgd`` with ``batch_size=n``) is the baseline,
measured in the same run.
"""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from spherenet import minimize  # noqa: E402
from spherenet.optim import schedules  # noqa: E402
from spherenet.problems import spiked_samples, streaming_pca  # noqa: E402

PASSES = 40


def samples_after(k, n, method, batch_size):
    """Sample gradients evaluated after k iterations (x0's full gradient included)."""
    m = n // batch_size  # iterations of an epoch's mini-batch steps (batch_size divides n here)
    if method == "rsvrg":  # 2 batch gradients a step, a full gradient at each epoch's end
        return n + 2 * batch_size * k + n * (k // m)
    if method == "rsrg":  # a full-gradient step (stored gradient), then m steps of 2 batches
        epochs, rest = divmod(k, m + 1)
        return n + epochs * (2 * batch_size * m + n) + 2 * batch_size * max(rest - 1, 0)
    return n + batch_size * k


def run(problem, x0, n, method, strategy, batch_size, lr, **options):
    """Angles after each iteration, the passes over the data used, the time per iteration."""
    angles = [problem.distance_to_optimum(x0)]

    def record(w):
        angles.append(problem.distance_to_optimum(w / np.linalg.norm(w)))

    per_iteration = batch_size * (2 if method in ("rsvrg", "rsrg") else 1)
    start = time.perf_counter()
    res = minimize(problem.cost, problem.manifold, x0=x0, grad=problem.egrad,
                   data=problem.data, batch_size=batch_size, method=method, strategy=strategy,
                   lr=lr, gtol=0, xtol=0, full_cost=False, rng=0, callback=record,
                   maxiter=int(PASSES * n / per_iteration), **options)
    seconds = time.perf_counter() - start
    passes = np.array([samples_after(k, n, method, batch_size) for k in range(res.nit + 1)]) / n
    return np.asarray(angles), passes, seconds / max(res.nit, 1)


def first_below(angles, passes, level):
    hit = np.nonzero(angles < level)[0]
    return f"{passes[hit[0]]:.1f}" if hit.size else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 500, d = 20")
    args = parser.parse_args(argv)
    d, n = (20, 500) if args.quick else (50, 2000)
    X, covariance = spiked_samples(d, n, spikes=(3.0, 2.0), rng=0)
    problem = streaming_pca(X, covariance)
    x0 = problem.x0(rng=1)
    mu = problem.eigenvalues[-1] - problem.eigenvalues[:-1]
    a = 2.0 / mu.min()
    sgd_lr = schedules.inverse_time_decay(a / 100, 1.0 / 100)
    eta = 1.0 / mu.max()
    runs = [
        ("full gradient (rsgd, batch n)", "rsgd", n, eta, {}),
        ("rsgd, batch 1, a/(t+100)", "rsgd", 1, sgd_lr, {}),
        ("rsgd, batch 10, mom. 0.9, lr 2e-3", "rsgd", 10, 0.002, {"momentum": 0.9}),
        ("radam, batch 10, lr 3e-3", "radam", 10, 0.003, {}),
        ("rsvrg, batch 20", "rsvrg", 20, 0.1, {}),
        ("rsrg, batch 20", "rsrg", 20, 0.1, {}),
    ]
    print(f"streaming PCA: n = {n}, d = {d}, Hessian eigenvalues at the answer in "
          f"[{mu.min():.3f}, {mu.max():.3f}], budget {PASSES} passes")
    header = f"{'method':32s} {'strategy':11s} {'passes to 1e-3':>15s} {'to 1e-8':>8s} " \
             f"{'final angle':>12s} {'us/iter':>8s}"
    print(header)
    print("-" * len(header))
    for label, method, batch, lr, options in runs:
        for strategy in ("riemannian", "projection"):
            angles, passes, per_it = run(problem, x0, n, method, strategy, batch, lr, **options)
            print(f"{label:32s} {strategy:11s} {first_below(angles, passes, 1e-3):>15s} "
                  f"{first_below(angles, passes, 1e-8):>8s} {angles[-1]:12.2e} "
                  f"{1e6 * per_it:8.0f}")


if __name__ == "__main__":
    main()
