"""Numerics of the sphere maps against independent references.

* mpmath at 50 digits: the exact exponential map, the exact angle between two
  float vectors *as given* (atan2 of |x ^ y| and x . y, so a vector a few ulps
  off the unit sphere is not "corrected" first) and the exact logarithm.
* Closed forms: the great circle cos(t) x + sin(t) v and the parallel
  transport along it.
* Long runs: 10^5 retractions without re-normalization keep the norm.

Errors are measured in ulps of the dtype (``eps``) relative to the unit norm
of a point, or relative to the exact value for distances and logarithms.
"""

import os

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import eps, tol
from spherenet import Oblique, Sphere

# SPHERENET_TEST_EXAMPLES (default 6) scales the hypothesis examples, as in test_conformance.
CLOSED_FORM = settings(
    max_examples=4 * int(os.environ.get("SPHERENET_TEST_EXAMPLES", "6")), deadline=None, database=None
)
DPS = 50
DTYPE_IDS = ["float32", "float64"]


# --- references in high precision ---------------------------------------------------


def _mp(a):
    return [mpmath.mpf(float(t)) for t in np.ravel(a)]


def _dot(a, b):
    return mpmath.fsum(s * t for s, t in zip(a, b))


def mp_exp(x, u):
    """Exact exp on the unit sphere at x/||x|| of the float vector u as given."""
    with mpmath.workdps(DPS):
        X, U = _mp(x), _mp(u)
        nx = mpmath.sqrt(_dot(X, X))
        t = mpmath.sqrt(_dot(U, U))
        sinc = mpmath.sin(t) / t if t else mpmath.mpf(1)
        out = [mpmath.cos(t) * a / nx + sinc * b for a, b in zip(X, U)]
        return np.array([float(v) for v in out]).reshape(np.shape(x))


def mp_angle(x, y):
    """The angle between the float vectors x and y as given: atan2(|x ^ y|, x . y)."""
    with mpmath.workdps(DPS):
        X, Y = _mp(x), _mp(y)
        xy = _dot(X, Y)
        # Lagrange: |x ^ y|^2 = |x|^2 |y|^2 - (x.y)^2; at 50 digits the
        # cancellation (24 digits for an angle of 1e-12) is harmless.
        wedge = mpmath.sqrt(max(_dot(X, X) * _dot(Y, Y) - xy * xy, 0))
        return mpmath.atan2(wedge, xy)


def mp_log(x, y):
    """Exact log at x/||x|| of y/||y||: angle times the unit tangent direction towards y."""
    with mpmath.workdps(DPS):
        X, Y = _mp(x), _mp(y)
        nx = mpmath.sqrt(_dot(X, X))
        X = [a / nx for a in X]
        c = _dot(X, Y)
        p = [b - c * a for a, b in zip(X, Y)]
        norm_p = mpmath.sqrt(_dot(p, p))
        theta = mp_angle(x, y)
        return np.array([float(theta * a / norm_p) for a in p]).reshape(np.shape(x))


def _columns(a):
    return [a[:, j] for j in range(a.shape[1])]


# --- cases --------------------------------------------------------------------------

SPHERES = [Sphere(3), Sphere(4, 5)]
SPHERE_IDS = ["Sphere3", "Sphere4x5"]


def _unit_tangent(x64, rng):
    """A unit tangent vector at x (float64), computed without the code under test."""
    z = rng.standard_normal(x64.shape)
    for _ in range(2):  # twice: once leaves ~eps ||z|| along x, too much if z is nearly normal
        z -= np.sum(z * x64) / np.sum(x64 * x64) * x64
    return z / np.linalg.norm(z)


def _point(manifold, rng):
    z = rng.standard_normal(manifold.shape)
    return z / np.linalg.norm(z)


def _pair(manifold, rng, separation, antipodal, dtype):
    """x and y at about ``separation`` from x (or from -x), both rounded to dtype."""
    x = _point(manifold, rng)
    v = _unit_tangent(x, rng)
    y = (-x if antipodal else x) + separation * v
    y /= np.linalg.norm(y)
    return x.astype(dtype), y.astype(dtype)


# --- exp -------------------------------------------------------------------------------


def _exp_errors(manifold, dtype, norms, n_seeds=4):
    """max |exp(x, u) - exact| / eps over seeds, for each norm of u."""
    errors = []
    for norm in norms:
        worst = 0.0
        for seed in range(n_seeds):
            rng = np.random.default_rng(seed)
            x = _point(manifold, rng)
            u = (norm * _unit_tangent(x, rng)).astype(dtype)
            x = x.astype(dtype)
            y = manifold.exp(x, u)
            assert y.dtype == dtype
            worst = max(worst, float(np.max(np.abs(y - mp_exp(x, u)))) / eps(dtype))
        errors.append(worst)
    return np.array(errors)


@pytest.mark.parametrize("manifold", SPHERES, ids=SPHERE_IDS)
def test_exp_float64_is_accurate_from_tiny_to_huge_steps(manifold):
    """||u|| from 1e-150 to 1e3 (wrapping around the sphere ~160 times).

    A few ulps throughout where long double is wider than double (||u|| is
    then summed in extended precision past 1 rad); elsewhere 4 ulps times
    max(1, ||u||): ||u|| in float64 is off by ~1 ulp of ||u||, and that moves
    the point by as much -- the condition number of u -> exp(x, u) is ||u||.
    """
    norms = np.logspace(-150, 3, 35)
    errors = _exp_errors(manifold, np.float64, norms)
    extended = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
    limit = 4.0 * (np.ones_like(norms) if extended else np.maximum(1.0, norms))
    assert np.all(errors <= limit), dict(zip(norms[errors > limit], errors[errors > limit]))


@pytest.mark.parametrize("manifold", SPHERES, ids=SPHERE_IDS)
def test_exp_float32_is_accurate_to_a_few_ulps_from_tiny_to_huge_steps(manifold):
    """float32 data, float64 internals: a few float32 ulps even at ||u|| = 1e3.

    Here ||u|| is computed in float64 from float32 entries, far more accurately
    than a float32 ulp of ||u||, so no max(1, ||u||) factor is needed -- as long
    as nothing (the tangent part of u, say) is rounded to float32 on the way.
    """
    norms = np.logspace(-30, 3, 28)
    errors = _exp_errors(manifold, np.float32, norms, n_seeds=8)
    assert np.all(errors <= 4.0), dict(zip(norms, errors))


def test_exp_of_oblique_is_exact_factor_by_factor():
    """Every column of Oblique(3, 6) gets its own step length, 1e-12 .. 1e2."""
    manifold = Oblique(3, 6)
    rng = np.random.default_rng(7)
    x = manifold.random_point(rng=rng)
    lengths = np.logspace(-12, 2, 6)
    u = np.stack([n * _unit_tangent(c, rng) for n, c in zip(lengths, _columns(x))], axis=1)
    y = manifold.exp(x, u)
    expected = np.stack([mp_exp(a, b) for a, b in zip(_columns(x), _columns(u))], axis=1)
    # As for Sphere: 4 ulps (times max(1, ||u_k||) without extended precision).
    errors = np.max(np.abs(y - expected), axis=0) / eps(np.float64)
    extended = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
    assert np.all(errors <= 4.0 * (1.0 if extended else np.maximum(1.0, lengths))), errors


# --- dist and log -------------------------------------------------------------------------

NEAR = np.logspace(-12, -3, 10)
ANTIPODAL = np.logspace(-10, -3, 8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("manifold", SPHERES, ids=SPHERE_IDS)
@pytest.mark.parametrize(
    "separations, antipodal", [(NEAR, False), (ANTIPODAL, True)], ids=["near", "antipodal"]
)
def test_dist_is_accurate_to_a_few_ulps(manifold, dtype, separations, antipodal):
    for seed, separation in enumerate(separations):
        x, y = _pair(manifold, np.random.default_rng(seed), separation, antipodal, dtype)
        exact = float(mp_angle(x, y))
        if exact == 0.0:  # float32 rounded y back onto x
            assert manifold.dist(x, y) == 0.0
            continue
        assert manifold.dist(x, y) == pytest.approx(exact, rel=tol(dtype, 4), abs=0)
        assert manifold.dist(y, x) == pytest.approx(exact, rel=tol(dtype, 4), abs=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("manifold", SPHERES, ids=SPHERE_IDS)
def test_dist_and_log_of_identical_points_are_exactly_zero(manifold, dtype):
    for seed in range(5):
        x = manifold.random_point(rng=seed, dtype=dtype)
        for y in (x, x.copy()):
            assert manifold.dist(x, y) == 0.0
            log = manifold.log(x, y)
            assert log.dtype == dtype
            assert not np.any(log)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
def test_dist_of_oblique_is_the_root_sum_of_squares_of_exact_angles(dtype):
    """Columns of Oblique(4, 6) near, far and nearly antipodal at once."""
    rng = np.random.default_rng(3)
    pairs = [
        _pair(Sphere(4), rng, s, anti, dtype)
        for s, anti in [(1e-9, False), (1e-4, False), (0.5, False), (1e-7, True), (1e-3, True), (0.5, True)]
    ]
    x = np.stack([p[0] for p in pairs], axis=1)
    y = np.stack([p[1] for p in pairs], axis=1)
    with mpmath.workdps(DPS):
        exact = float(mpmath.sqrt(mpmath.fsum(mp_angle(a, b) ** 2 for a, b in pairs)))
    assert Oblique(4, 6).dist(x, y) == pytest.approx(exact, rel=tol(dtype, 4), abs=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("manifold", SPHERES, ids=SPHERE_IDS)
@pytest.mark.parametrize(
    "separations, antipodal", [(NEAR, False), (ANTIPODAL, True)], ids=["near", "antipodal"]
)
def test_log_is_accurate_relative_to_its_norm(manifold, dtype, separations, antipodal):
    checked = 0
    for seed, separation in enumerate(separations):
        x, y = _pair(manifold, np.random.default_rng(seed), separation, antipodal, dtype)
        if np.array_equal(x, y) or np.array_equal(x, -y):
            # float32 rounded y onto x (log 0: tested above) or onto -x (no log).
            continue
        log = manifold.log(x, y)
        assert log.dtype == dtype
        exact = mp_log(x, y)
        error = np.linalg.norm(log - exact) / np.linalg.norm(exact)
        assert error <= tol(dtype, 8), (separation, error / eps(dtype))
        checked += 1
    assert checked >= 3


# --- closed forms -----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("manifold", [Sphere(3), Sphere(2, 3), Oblique(4, 5)], ids=["Sphere3", "Sphere2x3", "Oblique4x5"])
@CLOSED_FORM
@given(seed=st.integers(0, 2**32 - 1), t=st.floats(0.0, 20.0))
def test_exp_follows_the_great_circle(manifold, dtype, seed, t):
    """exp(x, t v) = cos(t) x + sin(t) v for a unit tangent v, per factor for Oblique."""
    rng = np.random.default_rng(seed)
    x = manifold.random_point(rng=rng)
    if isinstance(manifold, Oblique):
        # A different time per column: 0 .. t.
        times = np.linspace(0.0, t, x.shape[1])
        v = np.stack([_unit_tangent(c, rng) for c in _columns(x)], axis=1)
    else:
        times = t
        v = _unit_tangent(x, rng)
    expected = np.cos(times) * x + np.sin(times) * v
    y = manifold.exp(x.astype(dtype), (times * v).astype(dtype))
    assert y.dtype == dtype
    # Rounding t v to dtype moves the step by ~eps t.
    np.testing.assert_allclose(y, expected, rtol=0, atol=tol(dtype, 4) * max(1.0, t))


def _parallel_closed_form(x, u_hat, t, v):
    """P(v) = v + <u, v> ((cos t - 1) u - sin t x) along the geodesic cos(t) x + sin(t) u."""
    return v + np.sum(u_hat * v) * ((np.cos(t) - 1.0) * u_hat - np.sin(t) * x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("retraction", ["exp", "projection"])
@CLOSED_FORM
@given(seed=st.integers(0, 2**32 - 1), t=st.floats(0.0, 3.0))
def test_parallel_transport_on_sphere3_matches_the_closed_form(retraction, dtype, seed, t):
    manifold = Sphere(3, retraction=retraction, transport="parallel")
    rng = np.random.default_rng(seed)
    x = _point(manifold, rng)
    u_hat = _unit_tangent(x, rng)
    y = np.cos(t) * x + np.sin(t) * u_hat
    v = _unit_tangent(x, rng)
    expected = _parallel_closed_form(x, u_hat, t, v)
    moved = manifold.transp(x.astype(dtype), y.astype(dtype), v.astype(dtype))
    assert moved.dtype == dtype
    # The formula divides by 1 + <x, y> = 1 + cos t >= 0.01; the closed form
    # in float64 and the rounding of y to dtype add a few ulps.
    np.testing.assert_allclose(moved, expected, rtol=0, atol=tol(dtype, 16) / (1.0 + np.cos(t)))


def test_parallel_transport_on_oblique_matches_the_closed_form_per_column():
    manifold = Oblique(3, 4, transport="parallel")
    rng = np.random.default_rng(11)
    x = manifold.random_point(rng=rng)
    times = np.array([0.0, 0.1, 1.5, 2.9])
    u_hat = np.stack([_unit_tangent(c, rng) for c in _columns(x)], axis=1)
    v = np.stack([_unit_tangent(c, rng) for c in _columns(x)], axis=1) * np.array([1.0, 2.0, 3.0, 4.0])
    y = np.cos(times) * x + np.sin(times) * u_hat
    expected = np.stack(
        [_parallel_closed_form(*cols) for cols in zip(_columns(x), _columns(u_hat), times, _columns(v))],
        axis=1,
    )
    errors = np.max(np.abs(manifold.transp(x, y, v) - expected), axis=0) / eps(np.float64)
    # As on Sphere(3): 16 ulps / (1 + cos t), times the norm of v (1 .. 4).
    assert np.all(errors <= 16.0 * np.array([1.0, 2.0, 3.0, 4.0]) / (1.0 + np.cos(times))), errors


# --- long runs: no drift ------------------------------------------------------------------

N_STEPS = 100_000
DRIFT_LIMIT = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 1e-6}


def _drift(manifold, dtype, via, seed=0):
    """Largest | ||x_k|| - 1 | over the factors of N_STEPS consecutive steps."""
    rng = np.random.default_rng(seed)
    x = manifold.random_point(rng=rng, dtype=dtype)
    m = x.shape[0]
    # Ambient steps whose tangent part has norm ~0.1 .. 1 per factor (column).
    lengths = rng.uniform(0.1, 1.0, (N_STEPS, 1) + x.shape[1:]) / np.sqrt(m - 1)
    steps = (rng.standard_normal((N_STEPS,) + x.shape) * lengths).astype(dtype)
    trajectory = np.empty((N_STEPS,) + x.shape, dtype=dtype)
    # The raw maps, as the optimizers run them (the public ones add an entry check
    # per call, which would only slow this loop of 1e5 steps down).
    manifold = manifold.unchecked
    if via == "retr":
        retr = manifold.retr
        for k in range(N_STEPS):
            z = steps[k]
            # Tangent part of z, computed here (not by the code under test).
            x = retr(x, z - np.sum(x * z, axis=0) * x)
            trajectory[k] = x
    else:
        step = manifold.gradient_step
        for k in range(N_STEPS):
            step(x, steps[k], 1.0, out=x)
            trajectory[k] = x
    norms = np.sqrt(np.sum(trajectory.astype(np.float64) ** 2, axis=1))
    return float(np.max(np.abs(norms - 1.0)))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("via", ["retr", "gradient_step"])
@pytest.mark.parametrize("retraction", ["exp", "projection"])
@pytest.mark.parametrize("make", [lambda r: Sphere(3, retraction=r), lambda r: Oblique(5, 8, retraction=r)], ids=["Sphere3", "Oblique5x8"])
def test_no_drift_over_a_long_run_without_renormalization(make, retraction, via, dtype):
    dtype = np.dtype(dtype)
    drift = _drift(make(retraction), dtype, via)
    assert drift <= DRIFT_LIMIT[dtype]


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel-if-installed", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
def test_gradient_step_keeps_the_norm_for_a_nearly_normal_gradient(compiled, dtype, monkeypatch):
    """g = 100 x + 1e-6 u: the projection cancels all but 1e-8 of g. Without a
    second projection the rounding residue along x (eps ||g||), times the step,
    left the NumPy path's points 13 ulps off the sphere."""
    from spherenet.manifolds import _kernels

    if not compiled:
        monkeypatch.setattr(_kernels, "gradient_step", lambda *args: False)
    manifold = Sphere(1000)
    worst = 0.0
    for seed in range(10):
        x = manifold.random_point(rng=seed, dtype=dtype)
        u = manifold.random_tangent(x, rng=seed + 100)
        g = (100.0 * x.astype(np.float64) + 1e-6 * u).astype(dtype)
        y = manifold.gradient_step(x, g, 0.1)
        norm = np.sqrt(np.sum(np.square(y.astype(np.longdouble))))
        worst = max(worst, float(abs(norm - 1)) / eps(dtype))
    assert worst <= 2.0, worst


# --- parallel transport near the antipode ---------------------------------------------------


def mp_transport(x, y, v):
    """Exact parallel transport from x/||x|| to y/||y|| of the tangent part of v.

    Along the minimizing geodesic cos(t) x + sin(t) e: the component of v
    along e turns with the velocity, (cos t e - sin t x), the rest is kept.
    """
    with mpmath.workdps(DPS):
        X, Y, V = _mp(x), _mp(y), _mp(v)
        nx, ny = mpmath.sqrt(_dot(X, X)), mpmath.sqrt(_dot(Y, Y))
        X, Y = [a / nx for a in X], [b / ny for b in Y]
        xv = _dot(X, V)
        V = [b - xv * a for a, b in zip(X, V)]
        cos_t = _dot(X, Y)
        w = [b - cos_t * a for a, b in zip(X, Y)]
        sin_t = mpmath.sqrt(_dot(w, w))
        e = [t / sin_t for t in w]
        k = _dot(e, V)
        out = [b + k * ((cos_t - 1) * c - sin_t * a) for a, b, c in zip(X, V, e)]
        return np.array([float(t) for t in out]).reshape(np.shape(x))


GAPS = [1e-4, 1e-6, 1e-8]  # the angle is pi - gap (antipodal) or gap (near)


def _transport_case(manifold, seed, gap, antipodal, dtype):
    """x, y = +-x + gap e_j with x_j = 0, and a tangent v at x, all exact in dtype.

    With one entry of x zero, y is representable even in float32 at a gap of
    1e-8 (a generic y = -x + 1e-8 u rounds back onto -x): the angle is
    pi - atan(gap) or atan(gap), up to the rounding of the other entries.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(manifold.shape)
    j = np.unravel_index(seed % z.size, z.shape)
    z[j] = 0.0
    x = (z / np.linalg.norm(z)).astype(dtype)
    y = (-x if antipodal else x).copy()
    y[j] = gap
    v = (3.0 * _unit_tangent(x.astype(np.float64), rng)).astype(dtype)
    return x, y, v


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("manifold", SPHERES, ids=SPHERE_IDS)
@pytest.mark.parametrize("antipodal", [True, False], ids=["antipodal", "near"])
@pytest.mark.parametrize("gap", GAPS)
def test_parallel_transport_is_accurate_near_the_antipode(manifold, gap, antipodal, dtype):
    """Norm, tangency at y and the vector itself within a few ulps of ||v||.

    The formula v - <y, v>/(1 + <x, y>) (x + y) lost 3e7 ulps of the norm in
    float64 and the whole vector in float32 at pi - 1e-8: 1 + <x, y> cancels.
    """
    manifold = manifold.with_options(transport="parallel")
    for seed in range(4):
        x, y, v = _transport_case(manifold, seed, gap, antipodal, dtype)
        # y is off unit norm by gap^2/2 (it is built exact in the dtype, not normalized):
        # beyond the public methods' tolerance in float64, so the raw map is tested.
        moved = manifold.unchecked.transp(x, y, v)
        assert moved.dtype == dtype
        m64, v64, y64 = (a.astype(np.float64) for a in (moved, v, y))
        size = np.linalg.norm(v64)
        # 4 ulps: v and y are themselves a fraction of an ulp off tangent / unit.
        assert abs(np.linalg.norm(m64) - size) <= tol(dtype, 4) * size
        assert abs(np.sum(m64 * y64)) <= tol(dtype, 4) * size * np.linalg.norm(y64)
        np.testing.assert_allclose(moved, mp_transport(x, y, v), rtol=0, atol=tol(dtype, 4) * size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("gap", GAPS + [1.0])
def test_parallel_transport_is_an_isometry_near_the_antipode(gap, dtype):
    """<P u, P w> = <u, w> column by column of Oblique(5, 4), generic points."""
    manifold = Oblique(5, 4, transport="parallel")
    rng = np.random.default_rng(5)
    pairs = [_pair(Sphere(5), rng, gap, True, np.float64) for _ in range(4)]
    x = np.stack([p[0] for p in pairs], axis=1)
    y = np.stack([p[1] for p in pairs], axis=1)
    u = np.stack([_unit_tangent(c, rng) for c in _columns(x)], axis=1)
    w = np.stack([_unit_tangent(c, rng) for c in _columns(x)], axis=1)
    x, y, u, w = (a.astype(dtype) for a in (x, y, u, w))
    pu, pw = (manifold.transp(x, y, a).astype(np.float64) for a in (u, w))
    u, w = u.astype(np.float64), w.astype(np.float64)
    np.testing.assert_allclose(np.sum(pu * pw, axis=0), np.sum(u * w, axis=0), rtol=0,
                               atol=tol(dtype, 4))
    np.testing.assert_allclose(np.sum(pu * pu, axis=0), np.sum(u * u, axis=0), rtol=0,
                               atol=tol(dtype, 4))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
def test_parallel_transport_at_exactly_antipodal_and_identical_points_returns_v(dtype):
    """No unique geodesic from x to -x: v is returned (T_x = T_{-x}), as documented."""
    manifold = Oblique(4, 3, transport="parallel")
    x = manifold.random_point(rng=1, dtype=dtype)
    v = manifold.random_tangent(x, rng=2)
    y = x * np.array([-1.0, 1.0, -1.0], dtype=dtype)
    np.testing.assert_array_equal(manifold.transp(x, y, v), v)
    sphere = Sphere(4, 3, transport="parallel")
    x = sphere.random_point(rng=3, dtype=dtype)
    v = sphere.random_tangent(x, rng=4)
    np.testing.assert_array_equal(sphere.transp(x, -x, v), v)
    np.testing.assert_array_equal(sphere.transp(x, x, v), v)


def test_parallel_transport_of_tiny_separations_float64():
    """||y - x|| = 1e-200: the sums of squares underflow and are rescaled."""
    manifold = Sphere(3, transport="parallel")
    for antipodal in (False, True):
        for gap in (1e-200, 1e-310):
            x = np.array([0.6, 0.8, 0.0])
            y = (-x if antipodal else x).copy()
            y[2] = gap
            v = np.array([-0.8, 0.6, 0.5])
            moved = manifold.transp(x, y, v)
            # Exact: the e_3 component turns into -sin(t) x + cos(t) e_3, t = atan(gap)
            # or pi - atan(gap); the in-plane one is kept.
            cos_t = -1.0 if antipodal else 1.0
            expected = np.array([-0.8, 0.6, 0.5 * cos_t])
            np.testing.assert_allclose(moved, expected, rtol=0, atol=tol(np.float64, 2))


@pytest.mark.parametrize("compiled", [True, False], ids=["kernel-if-installed", "numpy"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=DTYPE_IDS)
@pytest.mark.parametrize("angle", [np.pi - 1e-7, np.pi, np.pi + 1e-3, 2.0])
def test_fused_momentum_step_transports_along_its_great_circle(angle, dtype, compiled, monkeypatch):
    """RSGD's fused step with exp and parallel transport: a step of angle t along -d
    moves d to cos(t) d + ||d|| sin(t) x, also at t = pi (it divided by 1 + cos t)."""
    from spherenet.optim import _momentum

    if not compiled:
        monkeypatch.setattr(_momentum, "_kernel_for", lambda *args: None)
    manifold = Oblique(6, 3, transport="parallel")
    rng = np.random.default_rng(0)
    x = manifold.random_point(rng=rng)
    # Steps of angle, angle / 2 and 0.999 angle: t = lr ||d_k||.
    d = np.stack([_unit_tangent(c, rng) for c in _columns(x)], axis=1) * np.array([1.0, 0.5, 0.999])
    lr = float(angle)
    x, d = x.astype(dtype), d.astype(dtype)
    new_x, new_b = _momentum.momentum_step(manifold, x, d, None, lr, 0.9)
    x64, d64 = x.astype(np.float64), d.astype(np.float64)
    t = lr * np.linalg.norm(d64, axis=0)
    expected = np.cos(t) * d64 + np.linalg.norm(d64, axis=0) * np.sin(t) * x64
    scale = np.linalg.norm(d64, axis=0)
    # A step of t rad is off by ~t ulps (t <= 5.3 here), times ||d||.
    errors = np.max(np.abs(new_b - expected), axis=0) / scale
    assert np.all(errors <= tol(dtype, 16)), errors / eps(dtype)
    assert np.all(np.isfinite(new_x))
