"""Benchmark: instructions per iteration of the solver loops, counted by valgrind's callgrind.

Run ``python bench/loop_instructions.py`` (a few minutes; needs ``valgrind``).
For steepest descent and conjugate gradients on the FLOOR problems of
``bench/solvers.py`` (Rayleigh n = 100 on Sphere(100), Max-Cut on
Oblique(10, 200); closed-form derivatives, projection retraction, default
history), each case runs twice under callgrind, with ``maxiter`` N1 and N2
(both below the iteration where the run would stop by itself), and prints
(instructions of run N2 - instructions of run N1) / (N2 - N1): the cost of an
iteration, the user's cost and gradient included, without the start and end
of a run. Instrumentation is switched on only after the imports and a warm-up
run that reads its history (``callgrind_control -i on``), so that import-time
work and the first call of a compiled kernel cannot leak into the difference.
The counted runs do not read their history: the reductions of full stacks of
iterates during the run are counted, the last one (deferred until the history
is read) is not. ``--bare`` counts the bare NumPy loops of ``bench/solvers.py``
(the floor) instead, ``--cases rayleigh100:sd:30:90,...`` selects. Counts do
not depend on the load of the machine; they do depend on the versions of
Python, NumPy and the BLAS. Under valgrind the floating-point results can
differ in the last bits from a native run, and near the precision floor that
changes a few line-search trial counts: the table prints the evaluation
counts of both runs so that like is compared with like. The spherenet
measured is the one of the tree this script is in (its root is put first on
``sys.path``; the table's last line names it), so that a worktree or a copy
is compared with another without reinstalling. It asserts nothing.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = "rayleigh100:sd:30:90,rayleigh100:cg:10:45,maxcut:sd:100:300,maxcut:cg:50:200"


def child(problem, method, maxiter, bare):
    """Run one case: imports and a warm-up uninstrumented, then the counted run."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    # This tree's spherenet, not the installed one: bench/ is on sys.path (the
    # script's folder), the project root is not.
    sys.path.insert(0, os.path.dirname(HERE))
    sys.path.insert(0, HERE)
    import solvers as bench  # noqa: E402 - after the thread settings

    import spherenet
    from spherenet import minimize

    print("spherenet", os.path.dirname(spherenet.__file__), file=sys.stderr)

    prob = bench.rayleigh(100) if problem == "rayleigh100" else bench.maxcut()

    def run(n, read=False):
        if bare:
            _, it, nfev, ngev = bench.BARE[method](prob.cost, prob.grad, prob.manifold, prob.x0, n,
                                                   gtol=0.0, xtol=0.0)
            return it, nfev, ngev
        res = minimize(prob.cost, prob.manifold, x0=prob.x0, method=method,
                       strategy=bench._strategy(prob, "proj"), maxiter=n, gtol=0.0, xtol=0.0,
                       grad=prob.grad)
        if read:  # compiles (or loads) the history's kernels before the counted run
            res.history["angle"]
        return res.nit, res.nfev, res.ngev

    run(3, read=True)
    subprocess.run(["callgrind_control", "-i", "on", str(os.getpid())], capture_output=True,
                   check=False)
    print("counted", *run(maxiter), file=sys.stderr)


def count(problem, method, maxiter, bare, folder):
    out = os.path.join(folder, f"{problem}.{method}.{maxiter}.out")
    env = dict(os.environ, PYTHONHASHSEED="0")
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           sys.executable, os.path.abspath(__file__), "--child", problem, method, str(maxiter)]
    if bare:
        cmd.append("--bare")
    err = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stderr
    collected = int(re.search(r"Collected : (\d+)", err).group(1))
    it, nfev, ngev = map(int, re.search(r"counted (\d+) (\d+) (\d+)", err).groups())
    count.measured = re.search(r"^spherenet (.*)$", err, re.M).group(1)
    return collected, it, nfev, ngev


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bare", action="store_true", help="the bare NumPy loops (the floor)")
    parser.add_argument("--cases", default=CASES, help="problem:method:N1:N2,... (default: %(default)s)")
    parser.add_argument("--child", nargs=3, metavar=("PROBLEM", "METHOD", "MAXITER"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        problem, method, maxiter = args.child
        return child(problem, method, int(maxiter), args.bare)
    print(f"{'problem':<12} {'solver':<6} {'loop':<10} {'iters':>9} {'f evals':>9} "
          f"{'g evals':>9} {'instr/iter':>11}")
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases.split(","):
            problem, method, n1, n2 = case.split(":")
            a = count(problem, method, int(n1), args.bare, folder)
            b = count(problem, method, int(n2), args.bare, folder)
            per = (b[0] - a[0]) / (b[1] - a[1])
            print(f"{problem:<12} {method:<6} {'bare' if args.bare else 'spherenet':<10} "
                  f"{a[1]:>4}..{b[1]:<4} {a[2]:>4}/{b[2]:<4} {a[3]:>4}/{b[3]:<4} {per:>11,.0f}",
                  flush=True)
    if not args.bare:
        print(f"(spherenet measured: {count.measured})")


if __name__ == "__main__":
    main()
