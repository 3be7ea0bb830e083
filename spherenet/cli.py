"""The command line: ``spherenet <command>``, also ``python -m spherenet <command>``.

Commands:

* ``spherenet demo``: a few seconds' tour: Taylor checks of gradients,
  Hessians and retractions on spheres and oblique manifolds, distances where
  ``arccos`` fails, and the norm of a point after 100000 steps.
* ``spherenet check``: the diagnostics of :mod:`spherenet.diagnostics` on a
  manifold of your choice, for a Rayleigh-quotient cost.

Every command is two functions, one adding its arguments to its
``argparse`` sub-parser and one running it (``run(args) -> exit code``),
registered in ``COMMANDS``: adding a command is adding one row there.
"""

import argparse
import sys
import time

import numpy as np

from . import __version__
from .diagnostics import check_gradient, check_hessian, check_retraction
from .manifolds import Oblique, Sphere

__all__ = ["main", "build_parser"]


# --- output helpers ---------------------------------------------------------------


def format_table(headers, rows):
    """Lines of a plain-text table with columns separated by `` | ``."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [" | ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return lines


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
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--steps", type=_positive_int, default=100_000,
        help="number of exp steps in the norm-keeping test (default 100000)",
    )


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
        x = start
        for k in range(steps):
            x = oblique.gradient_step(x, directions[k % 97], lr)
        ours = oblique.violation(x)
        # The textbook exp, which takes ||x|| = 1 for granted: with small steps
        # nothing pulls the rounding errors of the norm back, and they add up.
        x = start
        for k in range(steps):
            u = -lr * oblique.proj(x, directions[k % 97])
            t = np.linalg.norm(u, axis=0)
            x = np.cos(t) * x + (np.sin(t) / t) * u
        textbook = oblique.violation(x)
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


def _demo(args):
    start = time.perf_counter()
    _say([f"spherenet {__version__}: demo", ""])
    _demo_checks(args.seed)
    _demo_distances()
    _demo_norms(args.steps, args.seed)
    _say(["", f"({time.perf_counter() - start:.1f} s. Check your own shapes: "
              "spherenet check --help.)"])
    return 0


# --- spherenet check ------------------------------------------------------------------


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
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--autograd", action="store_true",
                        help="differentiate the cost with autograd instead of the closed forms")
    parser.add_argument("--plot", metavar="FILE",
                        help="also save the three error curves to FILE (needs matplotlib)")


def _check(args):
    kind = Sphere if args.manifold == "sphere" else Oblique
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
        try:
            from matplotlib.figure import Figure
        except ImportError:
            print("spherenet check: error: --plot needs matplotlib: "
                  "pip install spherenet[plot]", file=sys.stderr)
            return 1
        figure = Figure(figsize=(15, 4.5), layout="constrained")
        for check, ax in zip(checks, figure.subplots(1, 3)):
            check.plot(ax)
        figure.suptitle(repr(manifold))
        figure.savefig(args.plot)
        _say(["", f"plots saved to {args.plot}"])
    return 0 if all(c.passed for c in checks) else 1


# --- argument types ---------------------------------------------------------------------


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
    ("demo", "a few seconds' tour: Taylor checks, accurate distances, norms kept",
     _demo_arguments, _demo),
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
        sub.set_defaults(run=run)
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
        0 on success, 1 if a check failed. Bad arguments exit with code 2
        through ``SystemExit``, as argparse does.

    Examples
    --------
    >>> from spherenet.cli import main
    >>> main(["check", "--manifold", "oblique", "--shape", "3,4"])  # doctest: +ELLIPSIS
    Oblique(shape=(3, 4), ...
    0
    """
    args = build_parser().parse_args(argv)
    return args.run(args)
