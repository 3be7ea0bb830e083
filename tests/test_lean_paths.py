"""The written-out default loops of steepest descent and CG (optim/_lean.py) against the
general loops, bit for bit: the general loop runs when the default line search is passed
explicitly. Also the geometry's fused evaluation (_gradient_and_norm) against plain NumPy
and against the maps it stands for, and which runs take which loop."""

import math
import sys

import autograd.numpy as anp
import numpy as np
import pytest

import spherenet  # noqa: F401 - the optim modules below
from spherenet import Oblique, Sphere, minimize
from spherenet.optim import _lean
from spherenet.optim._problem import CostError
from spherenet.optim.line_search import AdaptiveLineSearch, BacktrackingLineSearch
from spherenet.strategies import Riemannian

EPS = np.finfo(np.float64).eps
DEFAULT_SEARCH = {"sd": BacktrackingLineSearch, "cg": AdaptiveLineSearch}


def _matrix(n, seed=0):
    a = np.random.default_rng(seed).standard_normal((n, n))
    return a + a.T


def _rayleigh(shape, seed=0):
    """-<x, A x> on arrays of ``shape`` (A acting on the flattened array), closed forms."""
    n = int(np.prod(shape))
    a = _matrix(n, seed)

    def cost(x):
        v = x.reshape(-1)
        return -(v @ (a @ v))

    def grad(x):
        return (-2.0 * (a @ x.reshape(-1))).reshape(x.shape).astype(x.dtype)

    def autograd_cost(x):
        v = anp.reshape(x, (-1,))
        return -anp.dot(v, anp.dot(a, v))

    return cost, grad, autograd_cost


def _both(cost, manifold, method, **kwargs):
    """The run by the lean loop and by the general one (same options)."""
    lean = minimize(cost, manifold, method=method, **kwargs)
    general = minimize(cost, manifold, method=method,
                       line_search=DEFAULT_SEARCH[method](), **kwargs)
    return lean, general


def _assert_same(a, b):
    # Times are not compared, but they are seconds since the start, in order.
    for run in (a, b):
        time = run.history["time"]
        assert 0.0 <= time[0] and np.all(np.diff(time) >= 0.0) and time[-1] < 60.0
    np.testing.assert_array_equal(a.x, b.x)
    for key in ("fun", "nit", "nfev", "ngev", "nhev", "status", "message", "grad_norm",
                "violation", "success"):
        assert a[key] == b[key], key
    assert set(a.history) == set(b.history)
    for key in a.history:
        if key != "time":
            np.testing.assert_array_equal(a.history[key], b.history[key], err_msg=key)


MANIFOLDS = [
    pytest.param(lambda: Sphere(40), id="sphere-exp"),
    pytest.param(lambda: Sphere(40, retraction="projection"), id="sphere-proj"),
    pytest.param(lambda: Sphere(4, 5), id="sphere-matrix"),
    pytest.param(lambda: Sphere(40, transport="parallel"), id="sphere-parallel"),
    pytest.param(lambda: Oblique(6, 5), id="oblique"),
    pytest.param(lambda: Sphere(3000, retraction="projection"), id="sphere-large"),
]


@pytest.mark.parametrize("make", MANIFOLDS)
@pytest.mark.parametrize("method", ["sd", "cg"])
@pytest.mark.parametrize("derivatives", ["closed", "autograd"])
def test_the_lean_loop_is_the_general_one(make, method, derivatives):
    manifold = make()
    cost, grad, autograd_cost = _rayleigh(manifold.shape)
    x0 = manifold.random_point(rng=3)
    if derivatives == "closed":
        lean, general = _both(cost, manifold, method, x0=x0, grad=grad, maxiter=150)
    else:
        lean, general = _both(autograd_cost, manifold, method, x0=x0, maxiter=150)
    assert lean.nit > 10
    _assert_same(lean, general)


@pytest.mark.parametrize("method", ["sd", "cg"])
@pytest.mark.parametrize("maxfev", [None, 9])
def test_a_point_too_large_for_the_history_stack(method, maxfev):
    # 6000 float64 numbers: the violation and angle are computed per iterate (no stack);
    # a run cut by maxfev ends at the last recorded iterate, its number included.
    manifold = Sphere(6000)
    weights = np.linspace(1.0, 3.0, 6000)
    x0 = manifold.random_point(rng=23)
    lean, general = _both(lambda x: -float(np.sum(weights * x * x)), manifold, method, x0=x0,
                          grad=lambda x: -2.0 * weights * x, maxiter=40, maxfev=maxfev)
    assert lean.nit == (40 if maxfev is None else len(lean.history["cost"]) - 1)
    _assert_same(lean, general)


def test_cg_resets_an_uphill_direction():
    # A wavy cost on Sphere(5) where Hestenes-Stiefel's direction points uphill at one
    # iterate: the direction is reset to -grad there, in both loops alike.
    n, seed = 5, 2
    manifold = Sphere(n)
    a = _matrix(n, seed)
    c = np.random.default_rng(seed).standard_normal(n) * 3
    e0 = np.eye(n)[0]

    def cost(x):
        return float(np.sin(3.0 * (x @ c)) + 0.3 * (x @ (a @ x)) + np.cos(5 * x[0]))

    def grad(x):
        return 3.0 * np.cos(3.0 * (x @ c)) * c + 0.6 * (a @ x) - 5 * np.sin(5 * x[0]) * e0

    x0 = manifold.random_point(rng=seed)
    assert _count_resets(cost, grad, manifold.unchecked, x0) == 1
    lean, general = _both(cost, manifold, "cg", x0=x0, grad=grad, maxiter=60)
    _assert_same(lean, general)


def _count_resets(cost, grad, geometry, x0):
    """How many times CG's direction was not a descent direction (plain re-run of cg's
    rule with the general loop's line search, counting ``not slope < 0``)."""
    from spherenet.optim.cg import _conjugate_gradient

    count = {"n": 0}
    original = geometry.directional_derivative

    class Counting:
        def __getattr__(self, name):
            return getattr(geometry, name)

        def directional_derivative(self, x, g, d):
            slope = original(x, g, d)
            if not slope < 0.0:
                count["n"] += 1
            return slope

    from spherenet.optim._loop import Recorder, Stopper
    from spherenet.optim._problem import Problem
    problem = Problem(cost, Counting(), grad)
    recorder = Recorder(problem, Riemannian(Sphere(*x0.shape)))
    stopper = Stopper(60, 1e-6, 0.0, 1e-10, math.inf, None)
    _conjugate_gradient(problem, x0, stopper, recorder, line_search=AdaptiveLineSearch())
    return count["n"]


@pytest.mark.parametrize("beta_rule", ["HS", "FR", "PR+", "HZ"])
@pytest.mark.parametrize("restart", [None, 0.1])
def test_every_beta_rule_and_restart(beta_rule, restart):
    manifold = Sphere(30)
    cost, grad, _ = _rayleigh(manifold.shape, seed=1)
    x0 = manifold.random_point(rng=4)
    lean, general = _both(cost, manifold, "cg", x0=x0, grad=grad, maxiter=120,
                          beta_rule=beta_rule, restart=restart)
    _assert_same(lean, general)


@pytest.mark.parametrize("method", ["sd", "cg"])
def test_float32_to_the_precision_floor(method):
    manifold = Sphere(30)
    cost, grad, _ = _rayleigh(manifold.shape, seed=2)
    x0 = manifold.random_point(rng=5, dtype=np.float32)
    lean, general = _both(cost, manifold, method, x0=x0, grad=grad, maxiter=3000, gtol=1e-12)
    assert lean.x.dtype == np.float32
    assert lean.status == 6                      # the float32 floor, not gtol
    _assert_same(lean, general)


@pytest.mark.parametrize("method", ["sd", "cg"])
@pytest.mark.parametrize("maxfev", [1, 2, 7, 40])
def test_the_evaluation_budget(method, maxfev):
    manifold = Sphere(20)
    cost, grad, _ = _rayleigh(manifold.shape, seed=3)
    x0 = manifold.random_point(rng=6)
    lean, general = _both(cost, manifold, method, x0=x0, grad=grad, maxfev=maxfev)
    assert lean.status == 7 and lean.nfev <= maxfev
    _assert_same(lean, general)


@pytest.mark.parametrize("method", ["sd", "cg"])
@pytest.mark.parametrize("maxiter", [0, 1, 2])
def test_the_first_iterations(method, maxiter):
    manifold = Sphere(20)
    cost, grad, _ = _rayleigh(manifold.shape, seed=4)
    x0 = manifold.random_point(rng=7)
    lean, general = _both(cost, manifold, method, x0=x0, grad=grad, maxiter=maxiter)
    assert lean.nit == maxiter
    _assert_same(lean, general)


def _trap(kind, after):
    """A Rayleigh cost/gradient on Sphere(15) that turns bad after ``after`` gradient calls:
    NaN costs away from the path (trial points rejected), or a NaN/Inf gradient."""
    cost, grad, _ = _rayleigh((15,), seed=5)
    calls = {"grad": 0}

    def bad_cost(x):
        return math.nan if calls["grad"] > after and x[0] > 0.0 else cost(x)

    def bad_grad(x):
        calls["grad"] += 1
        g = grad(x)
        if calls["grad"] > after:
            g[3] = math.inf if kind == "inf" else math.nan
        return g

    if kind == "cost":
        return bad_cost, grad, calls
    return cost, bad_grad, calls


@pytest.mark.parametrize("method", ["sd", "cg"])
@pytest.mark.parametrize("kind", ["cost", "nan", "inf"])
def test_nonfinite_costs_and_gradients(method, kind):
    runs = []
    for search in (None, DEFAULT_SEARCH[method]()):
        cost, grad, _ = _trap(kind, after=4)
        options = {} if search is None else {"line_search": search}
        runs.append(minimize(cost, Sphere(15), x0=Sphere(15).random_point(rng=8), method=method,
                             grad=grad, maxiter=60, **options))
    lean, general = runs
    if kind != "cost":
        assert lean.status == -1 and "NaN or Inf" in lean.message
    _assert_same(lean, general)


@pytest.mark.parametrize("method", ["sd", "cg"])
def test_no_decrease(method):
    # A cost that only rises away from x0 along every direction the search tries:
    # f = |x - x0|^2 with a gradient that points the wrong way.
    x0 = Sphere(10).random_point(rng=9)
    lean, general = _both(lambda x: float(np.sum((x - x0) ** 2)), Sphere(10), method, x0=x0,
                          grad=lambda x: -(x - x0) - 0.1 * np.roll(x0, 1))
    assert lean.status in (4, 6) and lean.nit == 1
    _assert_same(lean, general)


@pytest.mark.parametrize("method", ["sd", "cg"])
def test_a_gradient_of_another_dtype_or_a_bad_shape(method):
    manifold = Sphere(12)
    cost, grad, _ = _rayleigh(manifold.shape, seed=6)
    x0 = manifold.random_point(rng=10)
    lean, general = _both(lambda x: np.float32(cost(x)), manifold, method, x0=x0,
                          grad=lambda x: grad(x).astype(np.float32), maxiter=20)
    assert lean.x.dtype == np.float64
    _assert_same(lean, general)
    for search in (None, DEFAULT_SEARCH[method]()):
        options = {} if search is None else {"line_search": search}
        with pytest.raises(CostError, match=r"the gradient has shape \(11,\)"):
            minimize(cost, manifold, x0=x0, method=method, grad=lambda x: grad(x)[:11],
                     **options)


# --- which loop runs -----------------------------------------------------------------

@pytest.fixture
def lean_runs(monkeypatch):
    """Counts the runs of the lean loops."""
    count = {"n": 0}
    for name in ("steepest_descent", "conjugate_gradient"):
        original = getattr(_lean, name)

        def counted(*args, _original=original, **kwargs):
            count["n"] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(_lean, name, counted)
    return count


@pytest.mark.parametrize("options, lean", [
    ({}, True),
    ({"strategy": "projection"}, False),       # its own stationarity measure
    ({"line_search": "default"}, False),
    ({"callback": lambda x: None}, False),
    ({"maxtime": 100.0}, False),
    ({"ftol": 1e-12}, False),
    ({"telemetry": True}, False),
    ({"verbose": 2}, False),
    ({"strategy": "penalty"}, False),          # its own stationarity measure
])
@pytest.mark.parametrize("method", ["sd", "cg"])
def test_which_runs_take_the_lean_loop(lean_runs, capsys, method, options, lean):
    cost, grad, _ = _rayleigh((8,), seed=8)
    if options.get("line_search") == "default":
        options = {"line_search": DEFAULT_SEARCH[method]()}
    minimize(cost, Sphere(8), x0=Sphere(8).random_point(rng=12), method=method, grad=grad,
             maxiter=3, **options)
    assert lean_runs["n"] == int(lean)


def test_a_product_takes_the_general_loop(lean_runs):
    from spherenet import Euclidean, Product

    manifold = Product([Sphere(3), Euclidean(2)])
    x0 = manifold.random_point(rng=13)
    minimize(lambda x: anp.sum(x[0] * np.arange(3.0)) + anp.sum(x[1] ** 2), manifold, x0=x0,
             method="sd", maxiter=3)
    assert lean_runs["n"] == 0


# --- the fused evaluation ---------------------------------------------------------------

@pytest.mark.parametrize("manifold, dtype", [
    (Sphere(50), np.float64), (Sphere(5, 6), np.float64), (Oblique(7, 4), np.float64),
    (Sphere(50), np.float32), (Oblique(7, 4), np.float32), (Sphere(3000), np.float64),
])
def test_the_fused_evaluation_is_the_maps_it_stands_for(manifold, dtype):
    geometry = manifold.unchecked
    x = manifold.random_point(rng=14, dtype=dtype)
    egrad = (np.random.default_rng(15).standard_normal(x.shape) + 3.0 * x).astype(dtype)
    rgrad, norm, sq = geometry._gradient_and_norm(x, egrad)
    np.testing.assert_array_equal(rgrad, geometry.egrad2rgrad(x, egrad))
    assert norm == geometry._finite_norm(x, rgrad)
    assert sq == geometry.inner(x, rgrad, rgrad)
    assert -sq == geometry.directional_derivative(x, rgrad, -rgrad)   # the slope of sd
    # Plain NumPy, per factor: r = g - <x, g> x.
    axes = (0,) if isinstance(manifold, Oblique) else tuple(range(x.ndim))
    x64, g64 = x.astype(np.float64), egrad.astype(np.float64)
    r = g64 - np.sum(x64 * g64, axis=axes, keepdims=True) * x64
    tol = 64 * np.finfo(dtype).eps * np.linalg.norm(g64)
    np.testing.assert_allclose(rgrad, r, rtol=0, atol=tol)
    assert abs(norm - np.linalg.norm(r)) <= tol
    assert abs(sq - np.sum(r * r)) <= 2 * tol * np.linalg.norm(r)


@pytest.mark.parametrize("manifold", [Sphere(20), Oblique(4, 5)])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", [0, 7])
def test_the_fused_evaluation_refuses_a_nonfinite_gradient_quietly(manifold, bad, where):
    # No floating-point warning either (they are errors in this suite).
    geometry = manifold.unchecked
    x = manifold.random_point(rng=16)
    x.reshape(-1)[0] = 0.0            # an entry where 0 * inf is NaN
    x = geometry.project_point(x)
    egrad = np.ones_like(x)
    egrad.reshape(-1)[where] = bad
    assert geometry._gradient_and_norm(x, egrad) is None


def test_huge_finite_gradients_take_the_safe_norm():
    geometry = Sphere(10).unchecked
    x = Sphere(10).random_point(rng=17)
    egrad = np.full(10, 1e200) * np.arange(1.0, 11.0)       # squares overflow
    with np.errstate(over="ignore", invalid="ignore"):
        expected = geometry.egrad2rgrad(x, egrad)
    fused = geometry._gradient_and_norm(x, egrad)
    if fused is None:                                        # <x, g> itself overflowed
        assert not np.isfinite(float(np.vdot(x, egrad)))
    else:
        rgrad, norm, sq = fused
        np.testing.assert_array_equal(rgrad, expected)
        assert norm == geometry._finite_norm(x, rgrad)


def test_a_subclass_with_its_own_projection_is_not_fused():
    class Other(Sphere):
        def _proj(self, x, u):
            return super()._proj(x, u)

    assert Sphere._gradient_and_norm_ok() is True
    assert Other._gradient_and_norm_ok() is False
    assert _lean._fused(Other(5).unchecked) is None


def test_the_curve_without_its_tests_is_the_curve():
    geometry = Sphere(40).unchecked
    x = Sphere(40).random_point(rng=18)
    d = Sphere(40).random_tangent(x, rng=19)
    assert geometry._small_line_ok(x, d)
    for t in (1e-4, 0.3, 2.0):
        np.testing.assert_array_equal(geometry._small_line(x, d)(t), geometry._retr_line(x, d)(t))
    assert not Sphere(40)._small_line_ok(x, d)                       # checked manifold
    assert not geometry._small_line_ok(x.astype(np.float32), d.astype(np.float32))
    assert not Oblique(8, 5).unchecked._small_line_ok(np.ones((8, 5)), np.ones((8, 5)))


def test_the_module_is_what_sd_and_cg_import():
    assert sys.modules["spherenet.optim.sd"]._lean is _lean
    assert sys.modules["spherenet.optim.cg"]._lean is _lean
    assert Riemannian(Sphere(3)).geometry._gradient_and_norm is not None


@pytest.mark.parametrize("u_scale", [1.0, 1e-160, 1e160])
def test_the_norm_with_its_square(u_scale):
    geometry = Sphere(30).unchecked
    x = Sphere(30).random_point(rng=20)
    u = Sphere(30).random_tangent(x, rng=21) * u_scale
    norm, sq = geometry._norm_and_sq(x, u)
    assert norm == geometry.norm(x, u)
    # (plain NumPy scaled first: its own sum of squares would under- or overflow)
    np.testing.assert_allclose(norm, u_scale * np.linalg.norm(u / u_scale), rtol=4 * EPS)
    if u_scale == 1.0:
        assert sq == float(np.vdot(u, u))
    else:                      # the sum of squares under- or overflowed: the rescaled norm
        assert sq is None
    u32 = Sphere(30).random_tangent(x, rng=21).astype(np.float32)
    assert geometry._norm_and_sq(x.astype(np.float32), u32)[1] is None   # float32: no sum


@pytest.mark.parametrize("drift", [0.0, 3e-12, -5e-9])
def test_the_violation_of_one_factor(drift):
    x = Sphere(40).random_point(rng=22) * (1.0 + drift)
    expected = abs(np.sqrt(np.sum(x * x)) - 1.0)
    assert abs(Sphere(40).violation(x) - expected) <= 2 * EPS
    # The same number as the per-factor path (a 1 x 40 Oblique: one factor, several axes).
    assert Sphere(40).unchecked.violation(x) == float(
        np.max(np.abs(Sphere(40).unchecked._red.norms(x) - 1.0)))


def test_the_unchecked_view_binds_the_raw_maps_but_the_overrides():
    class Own(Sphere):
        def retr(self, x, u):
            return super().retr(x, 0.5 * u)

    view = Own(4).unchecked
    assert view.__dict__["proj"] == view._proj                 # raw
    assert "retr" not in view.__dict__                         # the subclass's own
    assert "retr" not in Own._raw_names() and "proj" in Own._raw_names()
    assert "retr" in Sphere._raw_names()
