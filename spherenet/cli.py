"""The command line: ``spherenet <command>``, also ``python -m spherenet <command>``.

Commands:

* ``spherenet demo``: retraction against projection (and reparametrization)
  in a few seconds, on a problem with a known answer and on the seed network:
  a table and a plot. ``spherenet demo --geometry`` is the geometry tour
  instead: Taylor checks of gradients, Hessians and retractions, distances
  where ``arccos`` fails, and the norm of a point after 100000 steps.
* ``spherenet compare``: a grid of problems x strategies x optimizers x seeds
  (:func:`spherenet.experiments.compare`), written as CSV, run files and plots.
* ``spherenet check``: the diagnostics of :mod:`spherenet.diagnostics` on a
  manifold of your choice, for a Rayleigh-quotient cost.

Every command is two functions, one adding its arguments to its
``argparse`` sub-parser and one running it (``run(args) -> exit code``),
registered in ``COMMANDS``: adding a command is adding one row there. A
command that finds its arguments inconsistent calls ``args.parser.error``:
a one-line message and exit code 2, as for any argparse error. Output folders
and files are checked (created, or written to) before any work starts.

Ctrl-C ends a command with exit status 130 and a one-line message; ``compare``
says how many runs are saved and how to resume.
"""

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from ._atomic import atomic_write, probe_writable
from .diagnostics import check_gradient, check_hessian, check_retraction
from .experiments import EXECUTORS, OPTIMIZERS, PROBLEMS, STRATEGY_NAMES, compare
from .experiments.summary import format_table
from .experiments.specs import (Budget, OptimizerSpec, ProblemSpec, StrategySpec,
                                parse_assignment, parse_strategy)
from .manifolds import Oblique, Sphere

__all__ = ["main", "build_parser", "format_table"]


# --- output helpers ---------------------------------------------------------------


def _say(lines=()):
    for line in [lines] if isinstance(lines, str) else lines:
        print(line)


def _slope(check):
    return "exact" if check.exact else f"{check.slope:.2f}"


def _relative_error(value, exact):
    error = abs(value - exact) / abs(exact)
    return "0" if error == 0.0 else f"{error:.0e}"


def _verdict(*checks):
    return "yes" if all(c.passed for c in checks) else "NO"


# --- a test cost --------------------------------------------------------------------


def rayleigh(manifold, rng):
    """A Rayleigh-quotient cost on a Sphere or an axis-0 Oblique manifold.

    ``f(X) = sum_j y_j' A y_j`` over the unit-norm factors y_j of X (the
    columns for ``Oblique(m, n)``, the flattened array for a ``Sphere``),
    with A a random symmetric matrix. Returns ``(cost, egrad, ehess)``; the
    cost is written with ``autograd.numpy`` so autograd can differentiate it.
    """
    import autograd.numpy as anp

    shape = manifold.shape
    rows = shape[0] if isinstance(manifold, Oblique) else int(np.prod(shape))
    a = rng.standard_normal((rows, rows))
    a = (a + a.T) / 2.0

    def cost(x):
        y = anp.reshape(x, (rows, -1))
        return anp.sum(y * anp.dot(a, y))

    def egrad(x):
        return np.reshape(2.0 * a @ np.reshape(x, (rows, -1)), shape)

    def ehess(x, u):
        return np.reshape(2.0 * a @ np.reshape(u, (rows, -1)), shape)

    return cost, egrad, ehess


def _run_checks(manifold, x, rng, use_autograd):
    cost, egrad, ehess = rayleigh(manifold, rng)
    grad, hess = (None, None) if use_autograd else (egrad, ehess)
    return (
        check_gradient(manifold, cost, grad, x=x, rng=rng),
        check_hessian(manifold, cost, grad, hess, x=x, rng=rng),
        check_retraction(manifold, x=x, rng=rng),
    )


# --- spherenet demo -------------------------------------------------------------------


def _demo_arguments(parser):
    parser.add_argument("--seeds", type=_positive_int, default=5,
                        help="starting points per strategy and optimizer (default 5)")
    parser.add_argument("--seed", type=_nonnegative_int, default=0,
                        help="the first seed (default 0); also seeds the geometry tour")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="where to write the plots (default: a new folder "
                             "spherenet-demo-YYYYmmdd-HHMMSS-XXXXXXXX in the current folder)")
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument("--geometry", action="store_true",
                        help="the geometry tour instead: Taylor checks, accurate distances, "
                             "norms kept after many steps")
    parser.add_argument(
        "--steps", type=_positive_int, default=100_000,
        help="with --geometry: exp steps in the norm-keeping test (default 100000)",
    )


def _demo(args):
    if args.geometry:
        return _tour(args)
    from .experiments.demo import demo_grids, demo_plots

    started = time.perf_counter()
    out, fresh = None, False
    if not args.no_plots and args.out:
        out = _writable_folder(args, "--out", args.out)
    elif not args.no_plots:
        out, fresh = _fresh_folder(args, "spherenet-demo"), True
    try:
        _say([f"spherenet {__version__}: demo -- keeping weights on the unit sphere, "
              "by retraction or by projection", ""])
        sys.stdout.flush()  # a reader through a pipe knows at once that it started
        lines, results = demo_grids(seeds=args.seeds, first_seed=args.seed)
        _say(lines)
        sys.stdout.flush()  # the tables before the (slower) plots
        paths, notes = ([], []) if out is None else demo_plots(results, out)
    except BaseException:
        if fresh:
            with contextlib.suppress(OSError):
                out.rmdir()  # an interrupted demo leaves no empty folder behind (only empty)
        raise
    if paths:
        _say(["", "Plots: the distance (or loss) against iterations and against time, and the "
                  "violation, per strategy:"])
        _say(f"  {path}" for path in paths if path.suffix == ".png")
        _say(f"  (and the same as SVG: {', '.join(p.name for p in paths if p.suffix == '.svg')})")
    notes.append(f"{time.perf_counter() - started:.1f} s")
    _say(["", f"({'; '.join(notes)}. Your own grid: spherenet compare --help; "
              "the geometry tour: spherenet demo --geometry.)"])
    return 0


def _demo_checks(seed):
    rng = np.random.default_rng(seed)
    rows = []
    for label, build in (("Sphere(50)", lambda r: Sphere(50, retraction=r)),
                         ("Oblique(10, 20)", lambda r: Oblique(10, 20, retraction=r))):
        for retraction in ("exp", "projection"):
            manifold = build(retraction)
            grad, hess, retr = _run_checks(manifold, None, rng, use_autograd=True)
            rows.append([label, retraction, _slope(grad), _slope(hess), _slope(retr),
                         f"{grad.tangency_residual:.0e}", _verdict(grad, hess, retr)])
    _say([
        "1. Taylor checks (spherenet.diagnostics) of f(X) = sum_j x_j' A x_j, A symmetric;",
        "   gradient and Hessian-vector products by autograd, converted by the manifold.",
        "   Expected slopes: gradient 2, Hessian 3, retraction 3 (second order; exp is",
        "   exact against itself).",
        "",
        *format_table(["manifold", "retraction", "gradient slope", "Hessian slope",
                       "retraction slope", "grad tangency", "passed"], rows),
    ])
    sphere = Sphere(50)
    cost, egrad, _ = rayleigh(sphere, rng)
    wrong = check_gradient(sphere, cost, lambda x: 2.0 * egrad(x), rng=rng)
    _say(["", f"   A gradient twice too large on Sphere(50): slope {_slope(wrong)}, "
              f"passed: {_verdict(wrong)}."])


def _demo_distances():
    delta = 1e-9
    x = np.array([1.0, 0.0, 0.0])
    sphere = Sphere(3)
    cases = (
        ("1e-9 apart", np.array([np.cos(delta), np.sin(delta), 0.0]), delta),
        ("antipodal but 1e-9", np.array([-np.cos(delta), np.sin(delta), 0.0]), np.pi - delta),
    )
    rows = []
    for label, y, exact in cases:
        ours = sphere.dist(x, y)
        naive = float(np.arccos(np.clip(x @ y, -1.0, 1.0)))
        rows.append([label, f"{exact:.16g}", f"{ours:.16g}", _relative_error(ours, exact),
                     f"{naive:.16g}", _relative_error(naive, exact)])
    _say([
        "",
        "2. Distances on Sphere(3) where arccos(<x, y>) fails (float64):",
        "",
        *format_table(["points", "exact", "spherenet dist", "rel. error",
                       "arccos(<x, y>)", "rel. error"], rows),
    ])


def _demo_norms(steps, seed):
    oblique = Oblique(3, 32)
    lr = 1e-3
    rows = []
    for dtype in (np.float32, np.float64):
        rng = np.random.default_rng(seed + 1)
        start = oblique.random_point(rng, dtype=dtype)
        directions = [rng.standard_normal((3, 32)).astype(dtype) for _ in range(97)]
        # Unchecked maps, as in an optimizer loop (the textbook loop below
        # drifts off the manifold, which the checked maps would refuse).
        fast = oblique.unchecked
        x = start
        for k in range(steps):
            x = fast.gradient_step(x, directions[k % 97], lr)
        ours = fast.violation(x)
        # The textbook exp, which takes ||x|| = 1 for granted: with small steps
        # nothing pulls the rounding errors of the norm back, and they add up.
        x = start
        for k in range(steps):
            u = -lr * fast.proj(x, directions[k % 97])
            t = np.linalg.norm(u, axis=0)
            x = np.cos(t) * x + (np.sin(t) / t) * u
        textbook = fast.violation(x)
        rows.append([np.dtype(dtype).name, f"{ours:.1e}", f"{textbook:.1e}",
                     f"{np.finfo(dtype).eps:.1e}"])
    _say([
        "",
        f"3. Staying on the manifold: max_j | ||x_j|| - 1 | after {steps} small exp steps",
        "   (length ~1e-3, as late in an optimization) on Oblique(3, 32), by spherenet",
        "   and by the textbook exp cos(t) x + sin(t)/t u:",
        "",
        *format_table(["dtype", "spherenet", "textbook exp", "machine eps"], rows),
    ])


def _tour(args):
    start = time.perf_counter()
    _say([f"spherenet {__version__}: geometry tour", ""])
    _demo_checks(args.seed)
    _demo_distances()
    _demo_norms(args.steps, args.seed)
    _say(["", f"({time.perf_counter() - start:.1f} s. Check your own shapes: "
              "spherenet check --help; compare strategies: spherenet demo.)"])
    return 0


# --- spherenet check ------------------------------------------------------------------


#: The largest side of the test cost's matrix in ``spherenet check`` (0.8 GB in float64).
MAX_CHECK_ROWS = 10_000


def _check_arguments(parser):
    parser.add_argument("--manifold", choices=("sphere", "oblique"), default="sphere",
                        help="Sphere (unit Frobenius norm) or Oblique (unit-norm columns); "
                             "default sphere")
    parser.add_argument("--shape", type=_shape, default=(3, 4),
                        help="shape of a point, comma-separated, e.g. 3,4 (default)")
    parser.add_argument("--retraction", choices=("exp", "projection"), default="exp",
                        help="the manifold's retraction (default exp)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="dtype of the point (the checks run in float64); default float64")
    parser.add_argument("--seed", type=_nonnegative_int, default=0,
                        help="random seed (default 0)")
    parser.add_argument("--autograd", action="store_true",
                        help="differentiate the cost with autograd instead of the closed forms")
    parser.add_argument("--plot", metavar="FILE",
                        help="also save the three error curves to FILE (needs matplotlib)")


def _check(args):
    kind = Sphere if args.manifold == "sphere" else Oblique
    shape = ",".join(map(str, args.shape))
    if kind is Sphere and int(np.prod(args.shape)) < 2:
        args.parser.error(f"argument --shape: a sphere of shape {shape} is two points, with no "
                          "direction to move in: give 2 or more entries, such as 3,4")
    if kind is Oblique and args.shape[0] < 2:
        args.parser.error(f"argument --shape: the columns of an oblique point of shape {shape} "
                          f"have {args.shape[0]} entry, two points each, with no direction to "
                          "move in: give 2 or more rows, such as 3,4")
    side = args.shape[0] if kind is Oblique else int(np.prod(args.shape))
    if side > MAX_CHECK_ROWS or np.prod(args.shape, dtype=float) > MAX_CHECK_ROWS ** 2 / 10:
        args.parser.error(f"argument --shape: {shape} is too large for the checks: the cost's "
                          f"matrix A is {side} x {side}; give at most {MAX_CHECK_ROWS} "
                          f"{'rows' if kind is Oblique else 'entries'} and "
                          f"{MAX_CHECK_ROWS ** 2 // 10} entries in all")
    plot_format = _plot_format(args) if args.plot else None
    manifold = kind(*args.shape, retraction=args.retraction)
    rng = np.random.default_rng(args.seed)
    x = manifold.random_point(rng, dtype=args.dtype)
    checks = _run_checks(manifold, x, rng, args.autograd)
    grad, hess, retr = checks
    rows = []
    for name, check, residuals in (
        ("gradient", grad, f"tangency {grad.tangency_residual:.1e}"),
        ("Hessian", hess, f"tangency {hess.tangency_residual:.1e}, "
                          f"symmetry {hess.symmetry_defect:.1e}"),
        ("retraction", retr, "on manifold" if retr.on_manifold else "OFF the manifold"),
    ):
        h = check.steps[check.fit_range]
        fitted = "-" if check.exact else f"[{h[0]:.0e}, {h[-1]:.0e}]"
        rows.append([name, _slope(check), f"{check.expected_slope:g}", fitted, residuals,
                     _verdict(check)])
    derivatives = "autograd" if args.autograd else "closed forms"
    factors = "columns" if kind is Oblique else "the whole array"
    _say([
        f"{manifold!r}, {args.dtype} point (checks run in float64)",
        f"cost f(X) = sum_j x_j' A x_j over the unit-norm x_j ({factors}), "
        f"A random symmetric; derivatives by {derivatives}",
        "",
        *format_table(["check", "slope", "expected", "fitted on h", "residuals", "passed"],
                      rows),
    ])
    if args.plot:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(15, 4.5), layout="constrained")
        for check, ax in zip(checks, figure.subplots(1, 3)):
            check.plot(ax)
        figure.suptitle(repr(manifold))
        atomic_write(args.plot, lambda handle: figure.savefig(handle, format=plot_format))
        _say(["", f"plots saved to {args.plot}"])
    return 0 if all(c.passed for c in checks) else 1


def _plot_format(args):
    """The file format of ``--plot FILE`` (from its suffix), checked with its folder up front."""
    try:
        import matplotlib
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        args.parser.error("argument --plot: needs matplotlib: pip install spherenet[plot]")
    path = Path(args.plot)
    formats = FigureCanvasBase.get_supported_filetypes()
    fmt = path.suffix[1:].lower() or matplotlib.rcParams["savefig.format"]
    if fmt not in formats:
        args.parser.error(f"argument --plot: cannot save a figure as {fmt!r} ({args.plot!r}); "
                          f"end the file name with one of .{', .'.join(sorted(formats))}")
    if path.is_dir():
        args.parser.error(f"argument --plot: {args.plot!r} is a folder; expected a file name")
    if not path.absolute().parent.is_dir():
        args.parser.error(f"argument --plot: no folder {str(path.absolute().parent)!r} to save "
                          f"{path.name!r} in; create it first")
    _writable_folder(args, "--plot", path.absolute().parent)
    return fmt


# --- output folders --------------------------------------------------------------------------


def _writable_folder(args, option, folder):
    """``folder`` as a Path, after checking that files can be written there (or in the
    nearest existing folder above it); an argparse error otherwise."""
    folder = Path(folder)
    try:
        probe_writable(folder)
    except OSError as err:
        where = err.filename or folder
        args.parser.error(f"argument {option}: cannot write in {str(folder)!r}: "
                          f"{err.strerror or err} ({where})")
    return folder


def _fresh_folder(args, name):
    """A new folder ``<name>-YYYYmmdd-HHMMSS-XXXXXXXX`` in the current folder (unique even
    for two commands started in the same second)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        return Path(tempfile.mkdtemp(prefix=f"{name}-{stamp}-", dir=os.getcwd()))
    except OSError as err:
        args.parser.error(f"cannot create a folder for the plots in {os.getcwd()!r}: "
                          f"{err.strerror or err}; choose one with --out DIR, or --no-plots")


# --- spherenet compare ------------------------------------------------------------------


def _compare_arguments(parser):
    parser.add_argument("--problem", "--problems", dest="problems", type=_names(PROBLEMS, "problem"),
                        default=["rayleigh"], metavar="NAMES",
                        help="comma-separated problems (default rayleigh); see --list")
    parser.add_argument("--strategies", "--strategy", dest="strategies", type=_strategies,
                        default=["riemannian", "projection"], metavar="NAMES",
                        help=f"comma-separated, from {', '.join(STRATEGY_NAMES)} "
                             "(default riemannian,projection); a strategy's options follow a "
                             "colon, joined by '+' (or ';'): riemannian:retraction=projection, "
                             "riemannian:retraction=projection+transport=parallel, "
                             "projection:epsilon=1e-7, penalty:mu=10 (see --list)")
    parser.add_argument("--optimizer", "--optimizers", dest="optimizers",
                        type=_names(OPTIMIZERS, "optimizer"), default=["rsgd"], metavar="NAMES",
                        help=f"comma-separated, from {', '.join(OPTIMIZERS)} (default rsgd)")
    parser.add_argument("--seeds", type=_positive_int, default=5,
                        help="seeds (starting points) per cell: 0, 1, ..., N-1 (default 5)")
    parser.add_argument("--budget", type=_positive_int, default=200,
                        help="iterations per run (default 200)")
    parser.add_argument("--epochs", type=_positive_int, default=None,
                        help="epochs per run of a network problem (default: the problem's)")
    parser.add_argument("--maxtime", type=_positive_float, default=None,
                        help="seconds per run (default: no limit)")
    parser.add_argument("--param", dest="params", type=_assignment, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="a problem parameter, e.g. n=100 (repeatable; see --list)")
    parser.add_argument("--set", dest="options", type=_assignment, action="append", default=[],
                        metavar="KEY=VALUE",
                        help="an optimizer option, e.g. lr=0.1 or momentum=0.9 (repeatable; given "
                             "to the optimizers that take it)")
    parser.add_argument("--lr", dest="lrs", type=_step_sizes, default=None, metavar="LRS",
                        action=_ExtendStepSizes,
                        help="a step-size sweep: comma-separated step sizes, e.g. 0.01,0.1,1 "
                             "(repeatable: the lists add up); every optimizer (rsgd, radam) "
                             "runs at each; writes the stability plot "
                             "plots/<problem>_stability.png")
    parser.add_argument("--baseline", default=None, metavar="STRATEGY",
                        help="the strategy label the others are compared with, seed by seed "
                             "(Wilcoxon test, bootstrap interval); default the first")
    parser.add_argument("--tol", type=_positive_float, default=None,
                        help="summary tolerance on the distance to the optimum (or cost gap, or "
                             "loss); default per problem")
    parser.add_argument("--out", metavar="DIR", default="results",
                        help="output directory (default results/): results.csv, summary.csv, "
                             "plots/, and runs/ (one file per finished run: rerunning resumes)")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="where runs execute (default: processes for more than one run)")
    parser.add_argument("--workers", type=_positive_int, default=None,
                        help="pool size (default: the number of CPUs)")
    parser.add_argument("--no-plots", action="store_true", help="write no plots")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--list", action="store_true",
                        help="list the problems with their parameters, and exit")


def _list_problems():
    from .experiments.problems import strategy_options

    lines = ["problems (parameters and defaults; --param KEY=VALUE):"]
    for name, entry in PROBLEMS.items():
        available, why = entry.available()
        params = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
        lines.append(f"  {name}: {entry.description}")
        lines.append(f"      {params}" + ("" if available else f"  [unavailable: {why}]"))
    lines += ["", "strategies (options; NAME:KEY=VALUE+KEY=VALUE):"]
    for name in STRATEGY_NAMES:
        options = strategy_options(name)
        lines.append(f"  {name}" + (f": {', '.join(options)}" if options else ""))
    lines += ["",
              f"optimizers: {', '.join(OPTIMIZERS)} (networks: rsgd, radam)"]
    _say(lines)
    return 0


def _specs(args):
    """Problem and optimizer specs with the --param and --set values each one takes."""
    from .experiments.problems import accepted_options

    problems, used = [], set()
    for name in args.problems:
        params = {k: v for k, v in args.params if k in PROBLEMS[name].defaults}
        used.update(params)
        problems.append(ProblemSpec(name, **params))
    unused = sorted({k for k, _ in args.params} - used)
    if unused:
        accepted = sorted({k for name in args.problems for k in PROBLEMS[name].defaults})
        args.parser.error(f"no chosen problem takes the parameter(s) {unused}; they take "
                          f"{accepted}")
    optimizers, used = [], set()
    for name in args.optimizers:
        options = {k: v for k, v in args.options if k in accepted_options(name)}
        used.update(options)
        optimizers.append(OptimizerSpec(name, **options))
    unused = sorted({k for k, _ in args.options} - used)
    if unused:
        accepted = sorted({k for name in args.optimizers for k in accepted_options(name)})
        args.parser.error(f"no chosen optimizer takes the option(s) {unused}; they take "
                          f"{accepted}")
    return problems, optimizers


def _compare(args):
    from .experiments import build_grid

    if args.list:
        return _list_problems()
    problems, optimizers = _specs(args)
    budget = dict(maxiter=args.budget, epochs=args.epochs)
    if args.maxtime is not None:
        budget["maxtime"] = args.maxtime
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # compare below says what it skips
            runs, skipped = build_grid(problems, args.strategies, optimizers, args.seeds,
                                       Budget(**budget), lrs=args.lrs)
    except ValueError as err:
        args.parser.error(str(err).replace("\n", " "))
    if not runs:
        args.parser.error("nothing to run: " + "; ".join(skipped))
    labels = [StrategySpec.coerce(spec).label for spec in args.strategies]
    if args.baseline is not None and args.baseline not in labels:
        args.parser.error(f"--baseline must be one of the strategies {labels}, got "
                          f"{args.baseline!r}")
    out = _writable_folder(args, "--out", args.out)
    started = time.perf_counter()
    progress = False if args.no_progress else None  # None: a bar when stderr is a terminal
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            results = compare(problems, args.strategies, optimizers, args.seeds, Budget(**budget),
                              args.executor, out=out, progress=progress, workers=args.workers,
                              lrs=args.lrs)
        except ValueError as err:
            args.parser.error(str(err).replace("\n", " "))
    for warning in caught:
        if issubclass(warning.category, UserWarning):
            print(f"spherenet compare: {warning.message}", file=sys.stderr)
    if not results.runs:
        print("spherenet compare: no run finished; nothing written", file=sys.stderr)
        return 1
    baseline = args.baseline if args.baseline in results.strategies else None
    summary = results.summary(tol=args.tol, baseline=baseline)
    predicted = _predictions(problems, args.strategies, optimizers, args.lrs)
    _say([f"{len(results.runs)} runs ({results.executed} run now, {results.reused} read back "
          f"from {out / 'runs'}) in {time.perf_counter() - started:.1f} s; cells are "
          "median [best, worst] over the seeds", "",
          *summary.format(("iterations", "time", "rate", "predicted_rate", "vs_baseline",
                           "final_measure", "final_violation"), predicted=predicted)])
    notes = summary.comparison_notes()
    _say(["", "rate: the fitted asymptotic rate per iteration; predicted: spherenet.theory at the "
              "known minimizer. vs baseline: geometric mean over the seeds where both reached "
              "tol, bootstrap interval, Wilcoxon signed-rank p."] + notes)
    written = [results.to_csv(out / "results.csv"), summary.to_csv(out / "summary.csv")]
    if not args.no_plots:
        try:
            written += results.plot(out / "plots", predicted=predicted)
            if args.lrs is not None:
                written += _stability_plots(results, args, optimizers, out / "plots")
        except ImportError as err:
            print(f"spherenet compare: no plots: {err}", file=sys.stderr)
    _say(["", "wrote:", *(f"  {path}" for path in written)])
    if results.failed:
        print(f"spherenet compare: {len(results.failed)} run(s) raised; the first: "
              f"{results.failed[0][1]}", file=sys.stderr)
        return 1
    return 0


def _predictions(problems, strategies, optimizers, lrs):
    """Predicted rates of the optimization problems of the grid (networks have none)."""
    from .experiments import predicted_rates

    chosen = [p for p in problems if PROBLEMS[p.name].kind == "problem"]
    if not chosen:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return predicted_rates(chosen, strategies, optimizers, lrs=lrs)


def _stability_plots(results, args, optimizers, directory):
    """One stability plot per problem, with the predicted limits of rsgd where known."""
    from .experiments import plot_stability, predicted_limits
    from .experiments.results import slug

    rsgd = [spec for spec in optimizers if spec.name == "rsgd"]
    momenta = {float(spec.params.get("momentum", 0.0)) for spec in rsgd}
    single = (len(rsgd) == len(optimizers) and len(momenta) == 1
              and not any(spec.params.get("nesterov", False) for spec in rsgd))
    written = []
    for spec, problem in zip(_specs_in_grid(results, args), results.problems):
        limits = {}
        if single and PROBLEMS[spec.name].kind == "problem":
            limits = predicted_limits(spec, args.strategies, momentum=next(iter(momenta)))
        figure = plot_stability(results, problem, limits=limits, tol=args.tol)
        path = directory / f"{slug(problem)}_stability.png"
        atomic_write(path, lambda handle: figure.savefig(handle, format="png", dpi=110))
        written.append(path)
    return written


def _specs_in_grid(results, args):
    """The problem specs of the grid, in the order of ``results.problems``."""
    problems, _ = _specs(args)
    by_label = {spec.label: spec for spec in problems}
    return [by_label[label] for label in results.problems]


# --- argument types ---------------------------------------------------------------------


def _step_sizes(text):
    """An argument type: comma-separated positive step sizes, e.g. ``0.01,0.1,1``."""
    parts = [part.strip() for part in text.split(",")]
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive step sizes such as 0.01,0.1,1; "
                f"{part!r} is not a number (in {text!r})") from None
        if not (value > 0 and np.isfinite(value)):
            raise argparse.ArgumentTypeError(
                f"expected comma-separated positive step sizes such as 0.01,0.1,1; "
                f"got {part!r} (in {text!r})")
        values.append(value)
    if len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"a step size is repeated in {text!r}")
    return values



class _ExtendStepSizes(argparse.Action):
    """``--lr`` given again adds its step sizes to the sweep (the last list alone would
    drop the others unseen); a step size given twice is an error."""

    def __call__(self, parser, namespace, values, option_string=None):
        so_far = list(getattr(namespace, self.dest, None) or [])
        for value in values:
            if value in so_far:
                parser.error(f"argument {option_string}: step size {value:g} is given twice")
            so_far.append(value)
        setattr(namespace, self.dest, so_far)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonnegative_int(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _names(choices, what):
    """An argument type: comma-separated names, each one of ``choices``."""

    def parse(text):
        names = [name.strip() for name in text.split(",") if name.strip()]
        bad = [name for name in names if name not in choices]
        if bad or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {what} {bad[0] if bad else text!r}; choose from {', '.join(choices)}"
                if bad else f"expected comma-separated {what} names, got {text!r}")
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"a {what} is repeated in {text!r}")
        return names

    return parse


def _strategies(text):
    """An argument type: comma-separated strategies, each ``NAME`` or
    ``NAME:KEY=VALUE+KEY=VALUE`` (``;`` also separates options), checked."""
    from .experiments.problems import resolve_strategy

    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise argparse.ArgumentTypeError(f"expected comma-separated strategy names, got {text!r}")
    specs = []
    for item in items:
        try:
            spec = parse_strategy(item)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"strategy {item!r}: {err}") from None
        if spec.name not in STRATEGY_NAMES:
            raise argparse.ArgumentTypeError(
                f"unknown strategy {spec.name!r}; choose from {', '.join(STRATEGY_NAMES)}")
        try:
            specs.append(resolve_strategy(spec))
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    if len(set(specs)) != len(specs):
        raise argparse.ArgumentTypeError(f"a strategy is repeated in {text!r}")
    return specs


def _assignment(text):
    try:
        return parse_assignment(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _shape(text):
    try:
        shape = tuple(int(part) for part in text.split(","))
    except ValueError:
        shape = ()
    if not shape or any(n < 1 for n in shape):
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, such as 3,4; got {text!r}"
        )
    return shape


# --- the parser ---------------------------------------------------------------------------

#: (name, one-line help, add_arguments(parser), run(args) -> exit code)
COMMANDS = (
    ("demo", "retraction versus projection in a few seconds: a table and a plot "
             "(--geometry: the geometry tour)",
     _demo_arguments, _demo),
    ("compare", "run a grid of problems x strategies x optimizers x seeds; write CSV and plots",
     _compare_arguments, _compare),
    ("check", "gradient, Hessian and retraction checks on a manifold of your choice",
     _check_arguments, _check),
)


def build_parser():
    """The ``argparse`` parser of the ``spherenet`` command, with one sub-parser per command."""
    parser = argparse.ArgumentParser(
        prog="spherenet",
        description="spherenet: optimization on spheres and products of spheres.",
    )
    parser.add_argument("--version", action="version", version=f"spherenet {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="command", required=True)
    for name, help_text, add_arguments, run in COMMANDS:
        description = help_text[0].upper() + help_text[1:] + "."
        sub = commands.add_parser(name, help=help_text, description=description)
        add_arguments(sub)
        sub.set_defaults(run=run, parser=sub)
    return parser


def main(argv=None):
    """Run the ``spherenet`` command line; returns the exit code.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (without the program name); ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success, 1 if a check failed, a run of a grid raised or a file
        could not be written, 130 after Ctrl-C (``KeyboardInterrupt``). Bad
        arguments, and output folders that cannot be written, exit with code
        2 through ``SystemExit``, as argparse does, before any work starts.

    Examples
    --------
    >>> from spherenet.cli import main
    >>> main(["check", "--manifold", "oblique", "--shape", "3,4"])  # doctest: +ELLIPSIS
    Oblique(shape=(3, 4), ...
    0
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (``spherenet demo | head``): stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as interrupt:
        print(_interrupted_message(args.command, argv, interrupt), file=sys.stderr)
        return 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
    except OSError as err:  # a disk that fills up, a folder removed meanwhile...
        print(f"spherenet {args.command}: {err}", file=sys.stderr)
        return 1


def _interrupted_message(command, argv, interrupt):
    from .experiments import GridInterrupted

    again = shlex.join(["spherenet", *argv])
    if command == "compare" and isinstance(interrupt, GridInterrupted):
        return (f"spherenet compare: interrupted; {interrupt.saved} of {interrupt.total} runs "
                f"are saved in {interrupt.directory}. To resume (the saved runs are read back, "
                f"not run again): {again}")
    if command == "compare":
        return (f"spherenet compare: interrupted; the finished runs are saved. To resume (they "
                f"are read back, not run again): {again}")
    if command == "demo":
        return (f"spherenet demo: interrupted; the demo saves no runs (it takes a few seconds): "
                f"run it again to start over: {again}")
    return f"spherenet {command}: interrupted"
