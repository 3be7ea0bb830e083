"""Benchmark: spherenet's solvers against pymanopt 2.2, and the strategies against each other.

Run ``python bench/solvers.py`` (about 2-3 minutes; ``--quick`` for one
repeat, ``--problems rayleigh100,thomson`` to select, ``--profile`` to add a
cProfile of one run, ``--floor-only`` for the first table alone,
``--qn-only`` for the quasi-Newton table alone, about 2 minutes, without
pymanopt). It prints tables; it asserts nothing.

The FLOOR table comes first (Rayleigh n = 100 and Max-Cut): spherenet's
steepest descent and conjugate gradients with the projection retraction
beside a bare NumPy loop of the same algorithm (pymanopt's line searches and
Hestenes-Stiefel rule, written with the fewest NumPy calls: no checks, no
history; its iterates are pymanopt's) and beside pymanopt, the runs
interleaved so that all see the same load of the machine. With closed-form
derivatives it gives the time per iteration, the overhead per iteration
outside the user's cost and gradient functions (instrumented runs), the
evaluation counts, and "sn solver, bare maps": spherenet's solver run on the
bare loop's sphere maps, which splits spherenet's overhead into the solver's
own (line search, checks, stopping tests, history) and its manifold
methods'. With autograd it gives the wall-time ratios to pymanopt. Times
are given twice: "cold", each run started after ``gc.collect()`` (which
walks every object of the process and leaves the caches cold, so a run's
fixed cost weighs as in a single run), and "b2b", runs back to back, five
in a row with the garbage collector off as ``timeit`` does (the caches warm,
as in a grid of many runs of one method). FLOOR TARGETS lists the speed
targets and whether they were met in this run, both ways.

Table 1 runs steepest descent, conjugate gradients and trust regions of both
libraries, and spherenet's L-BFGS and Barzilai-Borwein (which pymanopt 2.2
does not have), from the same starting point with the same tolerances (gradient
norm 1e-6, step 1e-10, the same iteration cap) on:

* Rayleigh quotients f(x) = -x^T A x on Sphere(n), n = 10, 100, 1000, A a fixed
  random symmetric matrix (the minimizer is the leading eigenvector);
* Max-Cut, Burer-Monteiro: f(Y) = -<L, Y^T Y>/4 on Oblique(10, 200), L the
  Laplacian of a fixed random graph (maximizes the relaxed cut);
* Thomson: N = 100 unit charges on S^2, f(X) = sum_{i<j} 1/||x_i - x_j|| on
  Oblique(3, 100).

Costs are the same autograd functions for both libraries (pymanopt through
``pymanopt.function.autograd``). spherenet runs with its default geometry
(exponential map, "exp") and with pymanopt's (metric projection retraction,
"proj": the same iterates as pymanopt up to rounding), and, where the
derivatives are easy to write (Rayleigh, Max-Cut), both libraries also run
with closed-form gradient and Hessian ("closed"; pymanopt through
``pymanopt.function.numpy``), to show the solvers' own cost apart from
autograd's. Time ratios compare like with like: autograd with autograd,
closed forms with closed forms.

The overhead tables give, per run, the time spent outside the cost,
gradient and Hessian-vector evaluations, measured in one instrumented run
(time accumulated inside the evaluation calls); for Rayleigh n = 1000 also
the per-call evaluation times (one autograd cost+gradient, one gradient
alone, ...) and the overhead estimated from them and the counts, which is
only as good as the per-call times are stable (memory-bound 8 MB matrix,
shared machine). Table 2 compares the ways of keeping the constraint.

The QUASI-NEWTON table sets L-BFGS (memory 30, Manopt's default, and 5) and
Barzilai-Borwein beside conjugate gradients, trust regions and steepest
descent on Rayleigh n = 1000, Max-Cut and Thomson (exponential map; closed
forms where the problem has them, and autograd): iterations, evaluations,
wall time (the runs of one problem interleaved, medians) and the ratios of
iterations and time to CG measured in the same run.

Iterations count steps (line searches, or trust-region subproblems including
rejected ones) for both libraries: pymanopt's conjugate gradients reports one
more (its loop counts the final, stopping pass), which is subtracted, and it
is given ``max_iterations = maxiter + 1`` so that both may take ``maxiter``
steps. pymanopt's steepest descent tests the gradient norm of the point
*before* its last line search, so it takes one step more on the same path.
Evaluation counts for pymanopt come from a separate, instrumented run;
pymanopt's Hessian-vector products each recompute the gradient at x, which
its "grad evals" include. Final cost and gradient norm are recomputed for
both libraries at the returned point with the same code.
"""

import os

# One BLAS/OpenMP/numba thread: timings of small problems are then stable and
# comparable; set before numpy is imported, or it has no effect.
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
for _var in _THREAD_VARS:
    os.environ[_var] = "1"

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import importlib.metadata  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import timeit  # noqa: E402
import warnings  # noqa: E402

import autograd  # noqa: E402
import autograd.numpy as anp  # noqa: E402
import numpy as np  # noqa: E402

# This tree's spherenet (a checkout, a copy or a worktree run with another
# environment), not whichever one is installed: only bench/ is on sys.path.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import spherenet  # noqa: E402
from spherenet import Oblique, Sphere, minimize  # noqa: E402
from spherenet.strategies import Riemannian  # noqa: E402

_problem_module = sys.modules["spherenet.optim._problem"]
_loop_module = sys.modules["spherenet.optim._loop"]
_SN_SOLVERS = {"sd": spherenet.optim.steepest_descent, "cg": spherenet.optim.conjugate_gradient}

try:
    import pymanopt  # noqa: E402
    from pymanopt.optimizers import ConjugateGradient, SteepestDescent, TrustRegions  # noqa: E402
except ImportError:  # pragma: no cover - pymanopt is a test extra
    pymanopt = None

GTOL = 1e-6
XTOL = 1e-10
SOLVERS = ("sd", "cg", "trust-regions")
SPHERENET_ONLY = ("lbfgs", "bb")  # no counterpart in pymanopt 2.2: spherenet rows only
LARGE = ("rayleigh1000",)  # the rest are "small/medium" for the targets


# --------------------------------------------------------------------------
# Problems
# --------------------------------------------------------------------------

class BenchProblem:
    """A cost on a manifold with everything both libraries need."""

    def __init__(self, name, manifold, pm_manifold, cost, x0, maxiter, lr, grad=None, hess=None,
                 cost_np=None):
        self.name = name
        self.manifold = manifold
        self.pm_manifold = pm_manifold
        self.cost = cost
        self.x0 = x0
        self.maxiter = maxiter
        self.lr = lr  # for rsgd in table 2
        self.grad = grad
        self.hess = hess
        self.cost_np = cost if cost_np is None else cost_np
        self._autograd_grad = autograd.grad(cost)

    def egrad(self, x):
        return self.grad(x) if self.grad is not None else self._autograd_grad(x)

    def rgrad_norm(self, x):
        """Norm of the Riemannian gradient, per unit-norm column (a vector is one column)."""
        g = np.asarray(self.egrad(x))
        x2, g2 = np.atleast_2d(x.T).T, np.atleast_2d(g.T).T
        r = g2 - x2 * np.sum(x2 * g2, axis=0)
        return float(np.linalg.norm(r))

    def pymanopt_problem(self, closed=False):
        """The same problem for pymanopt: autograd, or the closed-form derivatives."""
        cost, manifold = self.cost, self.pm_manifold
        if not closed:
            deco = pymanopt.function.autograd(manifold)
            return pymanopt.Problem(manifold, deco(lambda x: cost(x)))
        deco = pymanopt.function.numpy(manifold)
        grad, hess = self.grad, self.hess
        return pymanopt.Problem(manifold, deco(lambda x: cost(x)),
                                euclidean_gradient=deco(lambda x: grad(x)),
                                euclidean_hessian=deco(lambda x, u: hess(x, u)))


def _symmetric(n, seed):
    b = np.random.default_rng(seed).standard_normal((n, n))
    return (b + b.T) / 2.0


def rayleigh(n):
    a = _symmetric(n, 1000 + n)
    norm = float(np.max(np.abs(np.linalg.eigvalsh(a))))
    return BenchProblem(
        f"rayleigh{n}", Sphere(n), pymanopt.manifolds.Sphere(n) if pymanopt else None,
        cost=lambda x: -(x @ (a @ x)),
        x0=Sphere(n).random_point(rng=n),
        maxiter=1000,
        lr=0.4 / norm,
        grad=lambda x: -2.0 * (a @ x),
        hess=lambda x, u: -2.0 * (a @ u),
    )


def maxcut(n=200, p=10, density=0.1, seed=7):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.random((n, n)) < density, 1)
    w = (upper | upper.T).astype(float)
    lap = np.diag(w.sum(axis=1)) - w
    norm = float(np.linalg.eigvalsh(lap)[-1])
    return BenchProblem(
        "maxcut", Oblique(p, n), pymanopt.manifolds.Oblique(p, n) if pymanopt else None,
        cost=lambda y: -anp.sum((y @ lap) * y) / 4.0,
        x0=Oblique(p, n).random_point(rng=seed),
        maxiter=1000,
        lr=2.5 / norm,
        grad=lambda y: -(y @ lap) / 2.0,
        hess=lambda y, u: -(u @ lap) / 2.0,
    )


def thomson(n_charges=100, seed=11):
    upper = np.triu_indices(n_charges, 1)

    def energy(x):
        sq = anp.sum(x * x, axis=0)
        d2 = sq[:, None] + sq[None, :] - 2.0 * anp.dot(x.T, x)
        return anp.sum(1.0 / anp.sqrt(d2[upper]))

    return BenchProblem(
        "thomson", Oblique(3, n_charges),
        pymanopt.manifolds.Oblique(3, n_charges) if pymanopt else None,
        cost=energy,
        x0=Oblique(3, n_charges).random_point(rng=seed),
        maxiter=1000,
        lr=2e-3,
    )


PROBLEMS = {
    "rayleigh10": lambda: rayleigh(10),
    "rayleigh100": lambda: rayleigh(100),
    "rayleigh1000": lambda: rayleigh(1000),
    "maxcut": maxcut,
    "thomson": thomson,
}


# --------------------------------------------------------------------------
# Running and timing
# --------------------------------------------------------------------------

_MIN_TOTAL = 0.3


def _timed(fun, repeats, min_total=None, max_repeats=25):
    """Median wall time (s) of ``fun()``, and the last result.

    At least ``repeats`` runs, more (up to ``max_repeats``) until ``min_total``
    seconds have been spent: short runs are repeated more, which steadies
    the median on a busy machine.
    """
    min_total = _MIN_TOTAL if min_total is None else min_total
    times, out = [], None
    while len(times) < repeats or (sum(times) < min_total and len(times) < max_repeats):
        gc.collect()
        start = time.perf_counter()
        out = fun()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _strategy(prob, variant):
    """pymanopt's geometry (projection retraction) for "proj" variants, else the default."""
    if "proj" in variant:
        return Riemannian(prob.manifold, retraction="projection")
    return "riemannian"


class Row(dict):
    """One line of table 1."""


class _Stopwatch:
    """Accumulates the time spent inside wrapped calls (one level deep: no double counting)."""

    def __init__(self):
        self.total = 0.0
        self.calls = {}
        self._depth = 0

    def wrap(self, fun, key):
        def wrapper(*args, **kwargs):
            self.calls[key] = self.calls.get(key, 0) + 1
            if self._depth:
                return fun(*args, **kwargs)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fun(*args, **kwargs)
            finally:
                self.total += time.perf_counter() - start
                self._depth -= 1
        return wrapper


@contextlib.contextmanager
def _timing_spherenet_evaluations(watch):
    """Time spherenet's evaluations from inside its Problem class, for one instrumented run.

    What is timed: ``Problem.cost``, ``Problem.cost_and_egrad`` (autograd's
    forward and backward passes, or the user's functions), ``Problem.hessian_at``
    (autograd's traced gradient pass) and the Hessian-vector products it
    returns (which include the manifold's ``ehess2rhess``: a slight overcount).
    """
    cls = _problem_module.Problem
    names = [n for n in ("cost", "cost_and_egrad", "hessian_at", "egrad_and_hessian")
             if n in cls.__dict__]
    saved = {name: cls.__dict__[name] for name in names}
    cls.cost = watch.wrap(saved["cost"], "cost")
    cls.cost_and_egrad = watch.wrap(saved["cost_and_egrad"], "cost_and_egrad")
    hessian_at = watch.wrap(saved["hessian_at"], "hessian_at")

    def patched_hessian_at(self, x, egrad, *vjp):
        if vjp:  # called by egrad_and_hessian, which is timed as a whole below
            return saved["hessian_at"](self, x, egrad, *vjp)
        return watch.wrap(hessian_at(self, x, egrad), "hvp")

    cls.hessian_at = patched_hessian_at
    if "egrad_and_hessian" in saved:  # (egrad, hvp) from one traced gradient pass
        both = watch.wrap(saved["egrad_and_hessian"], "hessian_at")

        def egrad_and_hessian(self, x):
            egrad, hvp = both(self, x)
            return egrad, watch.wrap(hvp, "hvp")

        cls.egrad_and_hessian = egrad_and_hessian
    try:
        yield
    finally:
        for name, fun in saved.items():
            setattr(cls, name, fun)


def run_spherenet(prob, method, variant, repeats):
    geometry = _strategy(prob, variant)
    closed = "closed" in variant
    kwargs = dict(x0=prob.x0, method=method, strategy=geometry, maxiter=prob.maxiter, gtol=GTOL,
                  xtol=XTOL)
    if closed:
        kwargs.update(grad=prob.grad, hess=prob.hess)
    wall, res = _timed(lambda: minimize(prob.cost, prob.manifold, **kwargs), repeats)
    watch = _Stopwatch()
    with _timing_spherenet_evaluations(watch):
        start = time.perf_counter()
        minimize(prob.cost, prob.manifold, **kwargs)
        inrun_wall = time.perf_counter() - start
    return Row(problem=prob.name, solver=method, library=f"spherenet[{variant}]", it=res.nit,
               nfev=res.nfev, ngev=res.ngev, nhev=res.nhev, wall=wall, x=res.x,
               message=res.message, n_setup=watch.calls.get("hessian_at", 0),
               inrun_wall=inrun_wall, inrun_evals=watch.total)


_PM = {"sd": lambda **kw: SteepestDescent(**kw), "cg": lambda **kw: ConjugateGradient(**kw),
       "trust-regions": lambda **kw: TrustRegions(**kw)}


def run_pymanopt(prob, method, repeats, closed=False):
    maxiter = prob.maxiter + (1 if method == "cg" else 0)
    options = dict(verbosity=0, min_gradient_norm=GTOL, min_step_size=XTOL, max_iterations=maxiter)
    problem = prob.pymanopt_problem(closed)
    optimizer = _PM[method](**options)
    optimizer.run(problem, initial_point=prob.x0)  # builds pymanopt's lazy operators once
    wall, res = _timed(lambda: optimizer.run(problem, initial_point=prob.x0), repeats)
    # Counts and in-run evaluation times from a separate, instrumented run
    # (pymanopt does not count): its cost and its Euclidean gradient and
    # Hessian-vector product, which its Riemannian gradient and Hessian call.
    counted = prob.pymanopt_problem(closed)
    watch = _Stopwatch()
    _ = counted.riemannian_gradient, counted.riemannian_hessian  # build the lazy closures
    counted._cost = watch.wrap(counted._cost, "cost")
    counted._euclidean_gradient = watch.wrap(counted.euclidean_gradient, "grad")
    counted._euclidean_hessian = watch.wrap(counted.euclidean_hessian, "hess")
    start = time.perf_counter()
    _PM[method](**options).run(counted, initial_point=prob.x0)
    inrun_wall = time.perf_counter() - start
    it = res.iterations - (1 if method == "cg" else 0)
    library = "pymanopt" + ("[closed]" if closed else "")
    return Row(problem=prob.name, solver=method, library=library,
               it=it, nfev=watch.calls.get("cost", 0), ngev=watch.calls.get("grad", 0),
               nhev=watch.calls.get("hess", 0), wall=wall, x=res.point,
               message=res.stopping_criterion, n_setup=0, inrun_wall=inrun_wall,
               inrun_evals=watch.total)


def finish(prob, row):
    row["fun"] = float(prob.cost_np(row["x"]))
    row["gnorm"] = prob.rgrad_norm(row["x"])
    return row


# --------------------------------------------------------------------------
# Printing
# --------------------------------------------------------------------------

def print_table(headers, rows, title):
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    print()
    print(title)
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.rjust(w) for c, w in zip(r, widths)))


def _is_pymanopt(row):
    return row["library"].startswith("pymanopt")


def _baseline_key(row):
    """Rows are compared with pymanopt's row of the same problem, solver and derivatives."""
    return row["problem"], row["solver"], "closed" in row["library"]


def table1(rows):
    pm_wall = {_baseline_key(r): r["wall"] for r in rows if _is_pymanopt(r)}
    out = []
    for r in rows:
        base = pm_wall.get(_baseline_key(r))
        ratio = "" if _is_pymanopt(r) or base is None else f"{r['wall'] / base:.2f}"
        out.append([
            r["problem"], r["solver"], r["library"], str(r["it"]), str(r["nfev"]), str(r["ngev"]),
            str(r["nhev"]) if r["solver"] == "trust-regions" else "-",
            f"{1e3 * r['wall']:.1f}", f"{1e3 * r['wall'] / max(r['it'], 1):.3f}",
            f"{r['fun']:.12g}", f"{r['gnorm']:.2e}", ratio,
        ])
    print_table(["problem", "solver", "library", "iters", "f evals", "g evals", "Hv evals",
                 "wall ms", "ms/iter", "final cost", "grad norm", "sn/pm time"], out,
                "TABLE 1 - solvers: spherenet vs pymanopt (wall: median of repeats)")


def check_targets(rows):
    """Targets: same answer, iterations within 10%, wall-time ratios; one line per check."""
    pm = {_baseline_key(r): r for r in rows if _is_pymanopt(r)}
    out = []
    for r in rows:
        ref = pm.get(_baseline_key(r))
        if _is_pymanopt(r) or ref is None:
            continue
        converged = r["gnorm"] <= 2 * GTOL and ref["gnorm"] <= 2 * GTOL
        same = abs(r["fun"] - ref["fun"]) <= 1e-8 * max(1.0, abs(ref["fun"]))
        iters_ok = r["it"] <= 1.1 * ref["it"] + 1
        target = 1 / 3 if r["solver"] == "trust-regions" else 1 / 2
        ratio = r["wall"] / ref["wall"]
        applies = r["problem"] not in LARGE or r["solver"] == "trust-regions"
        out.append([
            r["problem"], r["solver"], r["library"],
            ("yes" if same else "NO") + ("" if converged else " (not both converged)"),
            f"{r['it']} vs {ref['it']}" + ("" if iters_ok else " NO"),
            f"{ratio:.2f} (<= {target:.2f})" if applies else f"{ratio:.2f} (n/a)",
            ("ok" if ratio <= target else "MISSED") if applies else "-",
        ])
    print_table(["problem", "solver", "library", "same cost", "iters sn vs pm", "time ratio",
                 "time target"], out, "TARGETS - same answer, iterations within 10%, wall time")


# --------------------------------------------------------------------------
# Overhead beyond evaluations (Rayleigh n = 1000)
# --------------------------------------------------------------------------

def _per_call(fun, batch_time=0.02, batches=15):
    """Seconds per call of fun(): the fastest of ``batches`` timeit batches of ~batch_time each.

    The minimum, the usual estimate of an intrinsic cost on a busy machine,
    makes the overhead estimates upper bounds.
    """
    timer = timeit.Timer(fun)
    start = time.perf_counter()
    fun()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(batch_time / once))
    return min(timer.repeat(repeat=batches, number=number)) / number


def eval_times(prob):
    x = prob.x0
    u = prob.manifold.random_tangent(x, rng=3)
    cost = prob.cost
    vjp, _ = autograd.make_vjp(autograd.grad(cost))(x)
    pm = prob.pymanopt_problem() if pymanopt else None
    t = {
        "cost": _per_call(lambda: cost(x)),
        "value_and_grad": _per_call(lambda: autograd.value_and_grad(cost)(x)),
        "grad": _per_call(lambda: autograd.grad(cost)(x)),
        "hvp_setup": _per_call(lambda: autograd.make_vjp(autograd.grad(cost))(x)),
        "hvp": _per_call(lambda: vjp(u)),
    }
    if prob.grad is not None:
        t["closed_grad"] = _per_call(lambda: prob.grad(x))
        t["closed_hvp"] = _per_call(lambda: prob.hess(x, u))
    if pm is not None:
        t["pm_cost"] = _per_call(lambda: pm.cost(x))
        t["pm_grad"] = _per_call(lambda: pm.euclidean_gradient(x))
        t["pm_hvp"] = _per_call(lambda: pm.euclidean_hessian(x, u))
        if prob.grad is not None:
            pmc = prob.pymanopt_problem(closed=True)
            t["pm_closed_grad"] = _per_call(lambda: pmc.euclidean_gradient(x))
            t["pm_closed_hvp"] = _per_call(lambda: pmc.euclidean_hessian(x, u))
    return t


def _estimated_evals(r, t):
    """Evaluation time of a run from its counts and the per-call times ``t``."""
    if r["library"] == "pymanopt":
        return r["nfev"] * t["pm_cost"] + r["ngev"] * t["pm_grad"] + r["nhev"] * t["pm_hvp"]
    if r["library"] == "pymanopt[closed]":
        return (r["nfev"] * t["pm_cost"] + r["ngev"] * t["pm_closed_grad"]
                + r["nhev"] * t["pm_closed_hvp"])
    if "closed" in r["library"]:
        return r["nfev"] * t["cost"] + r["ngev"] * t["closed_grad"] + r["nhev"] * t["closed_hvp"]
    # autograd: a gradient comes with its cost (one forward and one backward
    # pass); trust regions trace the gradient once per outer iteration.
    return ((r["nfev"] - r["ngev"]) * t["cost"] + r["ngev"] * t["value_and_grad"]
            + r["n_setup"] * t["hvp_setup"] + r["nhev"] * t["hvp"])


def overhead_table(prob, rows, t=None):
    """Solver overhead = wall time minus time inside cost/gradient/Hessian evaluations.

    Measured in one instrumented run per row (time accumulated inside the
    evaluation calls, same run, same caches); with ``t`` (per-call times from
    micro-benchmarks) also estimated as wall - counts x per-call times.
    """
    if t is not None:
        print()
        print(f"Per-call evaluation times on {prob.name} (fastest of 15 batches of 20 ms):")
        print("  " + ", ".join(f"{key} {1e6 * value:.1f} us" for key, value in t.items()))
    pm_inrun = {_baseline_key(r): r["inrun_wall"] for r in rows if _is_pymanopt(r)}
    out = []
    for r in rows:
        if r["problem"] != prob.name:
            continue
        over = r["inrun_wall"] - r["inrun_evals"]
        base = pm_inrun.get(_baseline_key(r))
        best = "" if _is_pymanopt(r) or base is None else f"{r['inrun_evals'] / base:.2f}"
        line = [r["solver"], r["library"], f"{1e3 * r['inrun_wall']:.1f}",
                f"{1e3 * r['inrun_evals']:.1f}", f"{1e3 * over:.1f}",
                f"{100 * over / r['inrun_wall']:.0f}", f"{1e6 * over / max(r['it'], 1):.0f}", best]
        if t is not None:
            estimate = r["wall"] - _estimated_evals(r, t)
            line += [f"{1e3 * r['wall']:.1f}", f"{100 * estimate / r['wall']:.0f}"]
        out.append(line)
    headers = ["solver", "library", "wall ms", "in evals ms", "overhead ms", "overhead %",
               "overhead us/iter", "evals/pm wall"]
    if t is not None:
        headers += ["median wall ms", "overhead % (per-call est.)"]
    print_table(headers, out,
                f"OVERHEAD beyond evaluations on {prob.name}, measured in an instrumented run "
                "(evals/pm wall: the sn/pm time ratio at zero overhead)")


# --------------------------------------------------------------------------
# The floor: a bare NumPy loop of the same algorithm
# --------------------------------------------------------------------------

def _bare_maps(manifold):
    """inner, proj and the projection retraction of a Sphere (vector) or an Oblique (columns),
    as pymanopt writes them, in a few NumPy calls each."""
    if isinstance(manifold, Sphere):
        def proj(x, u):
            return u - np.dot(x, u) * x

        def retr(x, u):
            y = x + u
            return y / math.sqrt(np.dot(y, y))
    else:
        def proj(x, u):
            return u - x * np.sum(x * u, axis=0)

        def retr(x, u):
            y = x + u
            return y / np.sqrt(np.sum(y * y, axis=0))

    def inner(u, v):
        return float(np.dot(u.ravel(), v.ravel()))

    return inner, proj, retr


def bare_sd(cost, egrad, manifold, x, maxiter, gtol=GTOL, xtol=XTOL):
    """Steepest descent with pymanopt's backtracking line search (and its iterates), in
    a bare loop: no checks, no history. Returns (x, iterations, cost evals, gradient evals)."""
    inner, proj, retr = _bare_maps(manifold)
    f = cost(x)
    g = proj(x, egrad(x))
    grad_norm = math.sqrt(inner(g, g))
    nfev = ngev = 1
    it, f_prev = 0, None
    while grad_norm > gtol and it < maxiter:
        d = -g
        df0 = -grad_norm * grad_norm
        alpha = 2.0 * 2.0 * (f - f_prev) / df0 if f_prev is not None else 1.0 / grad_norm
        new_x = retr(x, alpha * d)
        new_f = cost(new_x)
        trials = 1
        while new_f > f + 1e-4 * alpha * df0 and trials <= 25:
            alpha *= 0.5
            new_x = retr(x, alpha * d)
            new_f = cost(new_x)
            trials += 1
        nfev += trials
        it += 1
        if new_f > f:
            break
        f_prev, x, f, step = f, new_x, new_f, alpha * grad_norm
        g = proj(x, egrad(x))
        ngev += 1
        grad_norm = math.sqrt(inner(g, g))
        if step <= xtol:
            break
    return x, it, nfev, ngev


def bare_cg(cost, egrad, manifold, x, maxiter, gtol=GTOL, xtol=XTOL):
    """Conjugate gradients (Hestenes-Stiefel, pymanopt's adaptive line search and iterates)
    in a bare loop. Returns (x, iterations, cost evals, gradient evals)."""
    inner, proj, retr = _bare_maps(manifold)
    f = cost(x)
    g = proj(x, egrad(x))
    grad_sq = inner(g, g)
    nfev = ngev = 1
    d = -g
    it, alpha_prev = 0, None
    while math.sqrt(grad_sq) > gtol and it < maxiter:
        df0 = inner(g, d)
        if df0 >= 0:
            d = -g
            df0 = -grad_sq
        norm_d = math.sqrt(inner(d, d))
        alpha = alpha_prev if alpha_prev is not None else 1.0 / norm_d
        new_x = retr(x, alpha * d)
        new_f = cost(new_x)
        trials = 1
        while new_f > f + 0.5 * alpha * df0 and trials <= 10:
            alpha *= 0.5
            new_x = retr(x, alpha * d)
            new_f = cost(new_x)
            trials += 1
        nfev += trials
        it += 1
        if new_f > f:
            break
        alpha_prev = alpha if trials == 2 else 2.0 * alpha
        new_g = proj(new_x, egrad(new_x))
        ngev += 1
        new_grad_sq = inner(new_g, new_g)
        old_g = proj(new_x, g)
        d = proj(new_x, d)
        diff = new_g - old_g
        denominator = inner(diff, d)
        beta = max(0.0, inner(new_g, diff) / denominator) if denominator != 0.0 else 0.0
        d = beta * d - new_g
        x, f, g, grad_sq = new_x, new_f, new_g, new_grad_sq
        if alpha * norm_d <= xtol:
            break
    return x, it, nfev, ngev


BARE = {"sd": bare_sd, "cg": bare_cg}


class _BareGeometry:
    """The maps of :func:`_bare_maps` behind the manifold methods that sd and cg call: run
    spherenet's solvers on it to split their overhead into the solver's own (line search,
    checks, stopping tests, history) and the manifold methods'."""

    def __init__(self, manifold):
        self._inner, self._proj, self._retr = _bare_maps(manifold)

    def inner(self, x, u, v):
        return self._inner(u, v)

    def directional_derivative(self, x, grad, d):
        return self._inner(grad, d)

    def norm(self, x, u):
        return math.sqrt(self._inner(u, u))

    def proj(self, x, u):
        return self._proj(x, u)

    egrad2rgrad = proj

    def transp(self, x, y, v):
        return self._proj(y, v)

    def retr(self, x, u):
        return self._retr(x, u)
FLOOR_PROBLEMS = ("rayleigh100", "maxcut")


def _interleaved(funs, repeats, max_repeats=25):
    """Median wall time of each of ``funs`` (a dict of callables) and its last result, the
    runs interleaved (one of each in turn) so that all see the same load of the machine."""
    times = {key: [] for key in funs}
    outs = {}
    while True:
        n = len(next(iter(times.values())))
        spent = sum(sum(t) for t in times.values())
        if n >= repeats and (spent >= _MIN_TOTAL * len(funs) or n >= max_repeats):
            break
        for key, fun in funs.items():
            gc.collect()
            start = time.perf_counter()
            outs[key] = fun()
            times[key].append(time.perf_counter() - start)
    return {key: statistics.median(t) for key, t in times.items()}, outs


def _back_to_back(funs, rounds=7, block=5):
    """Median wall time of one call of each of ``funs`` when called ``block`` times in a
    row (the garbage collector off during a block, as ``timeit`` does), the blocks of
    the functions interleaved ``rounds`` times: a grid of many runs of one method, where
    code and data stay in the caches from one run to the next (``_interleaved`` collects
    garbage before each run, so that every run starts with cold caches)."""
    times = {key: [] for key in funs}
    for _ in range(rounds):
        for key, fun in funs.items():
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                for _ in range(block):
                    fun()
                times[key].append((time.perf_counter() - start) / block)
            finally:
                gc.enable()
    return {key: statistics.median(t) for key, t in times.items()}


def _floor_runners(prob, method, closed):
    """Callables run(cost, grad) -> (x, iterations) for the bare loop (closed forms only),
    spherenet[proj] and pymanopt, on the same problem and settings."""
    pm_options = dict(verbosity=0, min_gradient_norm=GTOL, min_step_size=XTOL,
                      max_iterations=prob.maxiter + (1 if method == "cg" else 0))

    def bare(cost, grad):
        x, it, _, _ = BARE[method](cost, grad, prob.manifold, prob.x0, prob.maxiter)
        return x, it

    def sn(cost, grad):
        res = minimize(cost, prob.manifold, x0=prob.x0, method=method,
                       strategy=_strategy(prob, "proj"), maxiter=prob.maxiter, gtol=GTOL,
                       xtol=XTOL, grad=grad if closed else None)
        return res.x, res.nit

    def pm(cost, grad):
        if closed:
            deco = pymanopt.function.numpy(prob.pm_manifold)
            problem = pymanopt.Problem(prob.pm_manifold, deco(lambda x: cost(x)),
                                       euclidean_gradient=deco(lambda x: grad(x)))
        else:
            deco = pymanopt.function.autograd(prob.pm_manifold)
            problem = pymanopt.Problem(prob.pm_manifold, deco(lambda x: cost(x)))
        res = _PM[method](**pm_options).run(problem, initial_point=prob.x0)
        return res.point, res.iterations - (1 if method == "cg" else 0)

    def sn_on_bare_maps(cost, grad):
        strategy = Riemannian(prob.manifold, retraction="projection")
        problem = _problem_module.Problem(cost, _BareGeometry(prob.manifold), grad)
        recorder = _loop_module.Recorder(problem, strategy)
        stopper = _loop_module.Stopper(prob.maxiter, GTOL, 0.0, XTOL, math.inf, None)
        res = _SN_SOLVERS[method](problem, prob.x0, stopper, recorder)
        return res.x, res.nit

    runners = {"bare": bare} if closed else {}
    runners.update({"spherenet": sn, "pymanopt": pm})
    if closed:
        runners["sn solver, bare maps"] = sn_on_bare_maps
    return runners


def _autograd_counts_spherenet(prob, method):
    res = minimize(prob.cost, prob.manifold, x0=prob.x0, method=method,
                   strategy=_strategy(prob, "proj"), maxiter=prob.maxiter, gtol=GTOL, xtol=XTOL)
    return dict(nfev=res.nfev, ngev=res.ngev)


def _autograd_counts_pymanopt(prob, method):
    problem = prob.pymanopt_problem()
    watch = _Stopwatch()
    _ = problem.riemannian_gradient  # build the lazy closures
    problem._cost = watch.wrap(problem._cost, "cost")
    problem._euclidean_gradient = watch.wrap(problem.euclidean_gradient, "grad")
    _PM[method](verbosity=0, min_gradient_norm=GTOL, min_step_size=XTOL,
                max_iterations=prob.maxiter + (1 if method == "cg" else 0)).run(
        problem, initial_point=prob.x0)
    return dict(nfev=watch.calls.get("cost", 0), ngev=watch.calls.get("grad", 0))


def floor_rows(prob, method, repeats, closed=True):
    """Time per iteration of the bare loop, spherenet[proj] and pymanopt, interleaved; with
    closed forms also the overhead: time outside the user's cost and gradient functions,
    from instrumented runs (median), and the evaluation counts."""
    runners = _floor_runners(prob, method, closed)
    for run in runners.values():
        run(prob.cost, prob.grad)  # warm (pymanopt builds its operators lazily)
    walls, outs = _interleaved({k: (lambda r=r: r(prob.cost, prob.grad))
                                for k, r in runners.items()}, repeats)
    warm = _back_to_back({k: (lambda r=r: r(prob.cost, prob.grad)) for k, r in runners.items()},
                         rounds=max(7, repeats))
    out = {}
    for name, (x, it) in outs.items():
        out[name] = dict(wall=walls[name], warm=warm[name], it=it, x=x, over=math.nan, nfev="-",
                         ngev="-")
    if not closed:
        # Evaluation counts: calls of the autograd cost (plain calls and traced passes)
        # and gradient passes, from one more run of each with counting wrappers.
        out["spherenet"].update(_autograd_counts_spherenet(prob, method))
        out["pymanopt"].update(_autograd_counts_pymanopt(prob, method))
    if closed:
        overheads = {name: [] for name in runners}
        for _ in range(max(3, repeats)):
            for name, run in runners.items():
                watch = _Stopwatch()
                gc.collect()
                start = time.perf_counter()
                run(watch.wrap(prob.cost, "cost"), watch.wrap(prob.grad, "grad"))
                inrun = time.perf_counter() - start
                overheads[name].append((inrun - watch.total) / max(out[name]["it"], 1))
                out[name].update(nfev=watch.calls.get("cost", 0), ngev=watch.calls.get("grad", 0))
        for name in runners:
            out[name]["over"] = statistics.median(overheads[name])
    return out


def floor_table(problems, repeats):
    """Per-iteration time of spherenet beside the bare loop and pymanopt; the targets."""
    lines, checks = [], []
    for prob in problems:
        if prob.name not in FLOOR_PROBLEMS:
            continue
        for closed in (True, False):
            for method in ("sd", "cg"):
                r = floor_rows(prob, method, repeats, closed)
                per = {k: v["wall"] / max(v["it"], 1) for k, v in r.items()}
                warm = {k: v["warm"] / max(v["it"], 1) for k, v in r.items()}
                kind = "closed" if closed else "autograd"
                for name, v in r.items():
                    lines.append([
                        prob.name, kind, method, name, str(v["it"]), str(v["nfev"]),
                        str(v["ngev"]), f"{1e6 * per[name]:.1f}",
                        "-" if math.isnan(v["over"]) else f"{1e6 * v['over']:.1f}",
                        f"{per[name] / per['bare']:.2f}" if closed else "-",
                        f"{per[name] / per['pymanopt']:.2f}",
                        f"{v['wall'] / r['pymanopt']['wall']:.2f}",
                        f"{1e6 * warm[name]:.1f}",
                        f"{warm[name] / warm['bare']:.2f}" if closed else "-",
                        f"{warm[name] / warm['pymanopt']:.2f}",
                        f"{np.max(np.abs(v['x'] - r['pymanopt']['x'])):.1e}",
                    ])
                sn = r["spherenet"]
                if closed:
                    target = {"sd": 0.6, "cg": 0.4}[method] if prob.name == "rayleigh100" else None
                    checks.append([prob.name, kind, method, "overhead us/iter <= 20",
                                   f"{1e6 * sn['over']:.1f}", "", _verdict(1e6 * sn["over"] <= 20),
                                   ""])
                    bare = (per["spherenet"] / per["bare"], warm["spherenet"] / warm["bare"])
                    checks.append([prob.name, kind, method, "time/iter <= 1.25 x bare",
                                   f"{bare[0]:.2f}", f"{bare[1]:.2f}", _verdict(bare[0] <= 1.25),
                                   _verdict(bare[1] <= 1.25)])
                    if target is not None:
                        pm = (per["spherenet"] / per["pymanopt"],
                              warm["spherenet"] / warm["pymanopt"])
                        checks.append([prob.name, kind, method, f"time/iter <= {target} x pymanopt",
                                       f"{pm[0]:.2f}", f"{pm[1]:.2f}", _verdict(pm[0] <= target),
                                       _verdict(pm[1] <= target)])
                elif method == "cg":
                    target = 0.65 if prob.name == "rayleigh100" else 0.8
                    ratio = (sn["wall"] / r["pymanopt"]["wall"],
                             sn["warm"] / r["pymanopt"]["warm"])
                    checks.append([prob.name, kind, method, f"wall <= {target} x pymanopt",
                                   f"{ratio[0]:.2f}", f"{ratio[1]:.2f}", _verdict(ratio[0] <= target),
                                   _verdict(ratio[1] <= target)])
    print_table(["problem", "derivatives", "solver", "loop", "iters", "f evals", "g evals",
                 "us/iter", "overhead us/iter", "/ bare", "/ pm per iter", "/ pm wall",
                 "b2b us/iter", "b2b / bare", "b2b / pm", "max |x - x_pm|"], lines,
                "FLOOR - projection retraction: spherenet beside a bare NumPy loop of the same "
                "algorithm (closed forms) and pymanopt; runs interleaved, medians. us/iter: wall "
                "/ iterations, each run after gc.collect() (cold caches); overhead: time outside "
                "the user's cost and gradient functions; b2b: the same runs back to back, "
                "5 in a row with the garbage collector off (warm caches, as in a grid of runs)")
    print_table(["problem", "derivatives", "solver", "target", "cold", "b2b", "cold", "b2b"],
                checks, "FLOOR TARGETS (cold: each run after gc.collect(); b2b: back to back)")


def _verdict(ok):
    return "ok" if ok else "MISSED"


# --------------------------------------------------------------------------
# Table 2: strategies
# --------------------------------------------------------------------------

STRATEGY_VARIANTS = (
    ("riemannian(exp)", lambda m: "riemannian"),
    ("riemannian(proj)", lambda m: Riemannian(m, retraction="projection")),
    ("projection", lambda m: "projection"),
    ("reparam", lambda m: "reparam"),
)


def table2(problems):
    out = []
    for prob in problems:
        for method in ("cg", "rsgd"):
            for label, make in STRATEGY_VARIANTS:
                options = {"lr": prob.lr} if method == "rsgd" else {}
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    res = minimize(prob.cost, prob.manifold, x0=prob.x0, method=method,
                                   strategy=make(prob.manifold), maxiter=prob.maxiter, gtol=GTOL,
                                   xtol=XTOL, **options)
                wall = time.perf_counter() - start
                violation = res.history["violation"]
                stop = {0: "", 1: " (maxiter)", 4: " (xtol)", 6: " (floor)"}.get(
                    res.status, f" ({res.status})")
                out.append([
                    prob.name, method + (f" lr={prob.lr:.3g}" if method == "rsgd" else ""), label,
                    f"{res.nit}{stop}", f"{res.fun:.12g}", f"{res.grad_norm:.2e}",
                    f"{violation[-1]:.1e}", f"{np.max(violation):.1e}", f"{1e3 * wall:.0f}",
                ])
    print_table(["problem", "method", "strategy", "iters to gtol", "final cost", "grad norm",
                 "final viol.", "max viol.", "wall ms"], out,
                "TABLE 2 - ways of keeping the constraint (same optimizer, same settings)")


# --------------------------------------------------------------------------
# Quasi-Newton table: L-BFGS and BB beside CG, trust regions and sd
# --------------------------------------------------------------------------

# (label, method, options): L-BFGS with its default memory 30 and with 5 pairs (fewer
# transports per iteration: the cheaper choice when gradients are cheap).
QN_METHODS = (("lbfgs", "lbfgs", {}), ("lbfgs m=5", "lbfgs", {"memory": 5}), ("bb", "bb", {}),
              ("cg", "cg", {}), ("trust-regions", "trust-regions", {}), ("sd", "sd", {}))
QN_PROBLEMS = ("rayleigh1000", "maxcut", "thomson")


def qn_rows(prob, closed, repeats):
    """One run per method of QN_METHODS on ``prob`` (default geometry: exponential map),
    the runs interleaved; wall times are medians, ratios to CG from this same run."""
    kwargs = dict(x0=prob.x0, maxiter=prob.maxiter, gtol=GTOL, xtol=XTOL)
    if closed:
        kwargs.update(grad=prob.grad, hess=prob.hess)
    funs = {label: (lambda method=method, options=options: minimize(
                prob.cost, prob.manifold, method=method, **kwargs, **options))
            for label, method, options in QN_METHODS}
    for fun in funs.values():
        fun()  # warm: autograd's tracing, numba kernels, caches
    walls, results = _interleaved(funs, repeats)
    rows = []
    for label, _, _ in QN_METHODS:
        res = results[label]
        row = Row(problem=prob.name, solver=label, library="closed" if closed else "autograd",
                  it=res.nit, nfev=res.nfev, ngev=res.ngev, nhev=res.nhev, wall=walls[label],
                  x=res.x, status=res.status)
        rows.append(finish(prob, row))
    return rows


def qn_table(problems, repeats):
    """Iterations, evaluations and time of L-BFGS and BB beside CG, trust regions and sd."""
    out = []
    for prob in problems:
        if prob.name not in QN_PROBLEMS:
            continue
        for closed in ([True] if prob.grad is not None else []) + [False]:
            rows = qn_rows(prob, closed, repeats)
            cg = next(r for r in rows if r["solver"] == "cg")
            for r in rows:
                stop = {0: "", 1: " (maxiter)", 4: " (xtol)", 6: " (floor)"}.get(
                    r["status"], f" ({r['status']})")
                out.append([
                    prob.name, r["library"], r["solver"], f"{r['it']}{stop}", str(r["nfev"]),
                    str(r["ngev"]), str(r["nhev"]) if r["solver"] == "trust-regions" else "-",
                    f"{1e3 * r['wall']:.1f}", f"{1e3 * r['wall'] / max(r['it'], 1):.3f}",
                    f"{r['it'] / cg['it']:.2f}", f"{r['wall'] / cg['wall']:.2f}",
                    f"{r['fun']:.12g}", f"{r['gnorm']:.1e}",
                ])
    print_table(["problem", "derivatives", "solver", "iters", "f evals", "g evals", "Hv evals",
                 "wall ms", "ms/iter", "iters / cg", "time / cg", "final cost", "grad norm"],
                out, "QUASI-NEWTON - L-BFGS (memory 30 and 5, cautious) and BB (alternate, max-type "
                "nonmonotone search) beside CG (HS), trust regions and sd; exponential map; "
                "runs interleaved, wall: median; ratios to CG of the same run")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def warm_up():
    """Compile spherenet's optional numba kernels before anything is timed."""
    for manifold in (Sphere(5), Oblique(3, 4)):
        for label, make in STRATEGY_VARIANTS:
            minimize(lambda x: anp.sum(x[0]), manifold, x0=manifold.random_point(rng=0),
                     method="rsgd", lr=0.1, maxiter=2, strategy=make(manifold))


def profile(prob, method, variant):
    geometry = _strategy(prob, variant)

    def run():
        return minimize(prob.cost, prob.manifold, x0=prob.x0, method=method, strategy=geometry,
                        maxiter=prob.maxiter, gtol=GTOL, xtol=XTOL)

    run()
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(10):
        run()
    profiler.disable()
    stream = io.StringIO()
    stats = pstats.Stats(profiler, stream=stream)
    stats.sort_stats("cumulative").print_stats(30)
    stats.sort_stats("tottime").print_stats(20)
    print()
    print(f"PROFILE - 10 runs of {prob.name} {method} spherenet[{variant}]")
    print(stream.getvalue())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one timed repeat instead of three")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--problems", default=",".join(PROBLEMS),
                        help=f"comma-separated, from {','.join(PROBLEMS)}")
    parser.add_argument("--skip-table2", action="store_true")
    parser.add_argument("--floor-only", action="store_true",
                        help="only the table of spherenet beside the bare NumPy loop")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of rayleigh100 trust-regions")
    parser.add_argument("--qn-only", action="store_true",
                        help="only the quasi-Newton table (L-BFGS and BB beside CG, trust "
                             "regions and sd on rayleigh1000, maxcut, thomson; no pymanopt)")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    global _MIN_TOTAL
    _MIN_TOTAL = 0.0 if args.quick else 0.3
    names = [n.strip() for n in args.problems.split(",") if n.strip()]
    unknown = [n for n in names if n not in PROBLEMS]
    if unknown:
        parser.error(f"unknown problem(s) {unknown}; choose from {list(PROBLEMS)}")
    if args.qn_only:
        if args.problems == parser.get_default("problems"):
            names = list(QN_PROBLEMS)
        print("spherenet quasi-Newton benchmark")
        print(f"  python {platform.python_version()}, numpy {np.__version__}, spherenet "
              f"{spherenet.__version__}; threads: 1 (set by this script)")
        print(f"  timed repeats: {repeats} (median); gtol {GTOL:g}, xtol {XTOL:g}")
        t_start = time.perf_counter()
        warm_up()
        qn_table([PROBLEMS[n]() for n in names], repeats)
        print(f"total time {time.perf_counter() - t_start:.0f} s")
        return
    if pymanopt is None:
        sys.exit("this benchmark needs pymanopt: pip install 'pymanopt==2.2.*'")

    print("spherenet solver benchmark")
    print(f"  python {platform.python_version()}, numpy {np.__version__}, autograd "
          f"{importlib.metadata.version('autograd')}, pymanopt {pymanopt.__version__}, "
          f"spherenet {spherenet.__version__} ({os.path.dirname(spherenet.__file__)})")
    print("  threads: " + ", ".join(f"{v}={os.environ[v]}" for v in _THREAD_VARS)
          + " (set by this script before importing numpy)")
    print(f"  timed repeats: {repeats} (median); gtol {GTOL:g}, xtol/min_step_size {XTOL:g}")
    t_start = time.perf_counter()

    warm_up()
    problems = [PROBLEMS[n]() for n in names]
    floor_table(problems, repeats)
    if args.floor_only:
        print(f"total time {time.perf_counter() - t_start:.0f} s")
        return
    rows = []
    for prob in problems:
        variants = ["exp", "proj"] + (["proj,closed"] if prob.grad is not None else [])
        for method in SOLVERS + SPHERENET_ONLY:
            if method in _PM:
                rows.append(finish(prob, run_pymanopt(prob, method, repeats)))
            if method in _PM and prob.grad is not None:
                rows.append(finish(prob, run_pymanopt(prob, method, repeats, closed=True)))
            for variant in variants:
                rows.append(finish(prob, run_spherenet(prob, method, variant, repeats)))
    table1(rows)
    check_targets(rows)
    qn_table(problems, repeats)
    for prob in problems:
        overhead_table(prob, rows, eval_times(prob) if prob.name == "rayleigh1000" else None)
    if not args.skip_table2:
        table2(problems)
    if args.profile:
        profile(rayleigh(100), "trust-regions", "proj")
    print()
    print(f"total time {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
