"""The manifold contract, one suite run over every manifold x dtype.

Every test checks an axiom of DESIGN.md's contract against a reference that
does not come from the code under test: an identity between the maps (exp and
log are inverse, dist(x, exp(x, u)) = ||u||), the Frobenius metric, finite
differences of a function with a known Euclidean gradient and Hessian.
Tolerances are ``tol(dtype, factor)``, the factor stated at each use.
"""

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import (
    MANIFOLD_CASES,
    Quadratic,
    assert_close,
    assert_equal,
    cap_sphere_factors,
    copy,
    dtypes,
    eps,
    factors,
    flatten,
    fnorm,
    frobenius,
    is_parallel,
    lincomb,
    parts,
    random_ambient,
    scale,
    size,
    sphere_factor_norms,
    sub,
    tangent,
    tol,
    unflatten,
)
from spherenet import Oblique, Sphere

# Examples per (manifold, dtype) and test; raise it for a thorough run, e.g.
# SPHERENET_TEST_EXAMPLES=500 python -m pytest tests/test_conformance.py
EXAMPLES = int(os.environ.get("SPHERENET_TEST_EXAMPLES", "6"))
AXIOM = settings(max_examples=EXAMPLES, deadline=None, database=None)
seeds = st.integers(0, 2**32 - 1)
# Norms of tangent vectors, log-uniform in 1e-8 .. 1e1.
scales = st.floats(-8.0, 1.0).map(lambda e: 10.0**e)
# Steps along which maps are inverse: below pi in every sphere factor.
BELOW_PI = 3.0

# The Euclidean factors of the products hold points of norm ~ sqrt(size);
# absolute tolerances on points and vectors are relative to this.
POINT_SCALE = 4.0


def _setup(manifold, dtype, seed):
    rng = np.random.default_rng(seed)
    x = manifold.random_point(rng=rng, dtype=dtype)
    return rng, x


def _parallel_cases():
    return [case for case in MANIFOLD_CASES if is_parallel(case.values[0]())]


# --- points, tangent vectors, the metric -------------------------------------------


@AXIOM
@given(seed=seeds)
def test_random_point_is_on_the_manifold(manifold, dtype, seed):
    x = manifold.random_point(rng=seed, dtype=dtype)
    assert manifold.check_point(x) is x
    assert dtypes(x) == [dtype] * len(parts(x))
    assert [a.shape for a in parts(x)] == [m.shape for m in factors(manifold)]
    # Independently of check_point: every sphere factor has unit norm.
    np.testing.assert_allclose(sphere_factor_norms(manifold, x), 1.0, rtol=0, atol=tol(dtype, 4))


def test_dim_is_the_dimension_of_the_tangent_space(manifold):
    x = manifold.random_point(rng=0)
    n = size(manifold)
    basis = [manifold.proj(x, unflatten(manifold, e, np.float64)) for e in np.eye(n)]
    rank = np.linalg.matrix_rank(np.array([flatten(b) for b in basis]), tol=1e-8)
    assert rank == manifold.dim


@AXIOM
@given(seed=seeds, norm=scales)
def test_proj_is_an_idempotent_orthogonal_projection_onto_the_tangent_space(
    manifold, dtype, seed, norm
):
    rng, x = _setup(manifold, dtype, seed)
    z = scale(norm, random_ambient(manifold, rng, dtype))
    p = manifold.proj(x, z)
    assert dtypes(p) == dtypes(x)
    assert manifold.check_tangent(x, p) is p
    assert_close(manifold.proj(x, p), p, atol=tol(dtype, 8) * fnorm(z))
    # Orthogonal: the removed part z - p is normal to every tangent vector.
    w = tangent(manifold, x, rng)
    assert abs(frobenius(sub(z, p), w)) <= tol(dtype, 8) * fnorm(z)
    # ... which makes proj self-adjoint for the Frobenius product.
    z2 = random_ambient(manifold, rng, dtype)
    lhs, rhs = frobenius(p, z2), frobenius(z, manifold.proj(x, z2))
    assert abs(lhs - rhs) <= tol(dtype, 16) * fnorm(z) * fnorm(z2)


@AXIOM
@given(seed=seeds)
def test_random_tangent_is_a_unit_tangent_and_zero_vector_is_zero(manifold, dtype, seed):
    rng, x = _setup(manifold, dtype, seed)
    u = manifold.random_tangent(x, rng=rng)
    assert dtypes(u) == dtypes(x)
    manifold.check_tangent(x, u)
    assert fnorm(u) == pytest.approx(1.0, abs=tol(dtype, 8))
    zero = manifold.zero_vector(x)
    assert dtypes(zero) == dtypes(x)
    manifold.check_tangent(x, zero)
    assert all(not np.any(a) for a in parts(zero))


@AXIOM
@given(seed=seeds, a=st.floats(-10, 10), b=st.floats(-10, 10), norm=scales)
def test_inner_is_the_frobenius_product_symmetric_positive_bilinear(
    manifold, dtype, seed, a, b, norm
):
    rng, x = _setup(manifold, dtype, seed)
    u, v, w = (tangent(manifold, x, rng, norm) for _ in range(3))
    uv = manifold.inner(x, u, v)
    assert uv == pytest.approx(frobenius(u, v), abs=tol(dtype, 8) * norm**2)
    assert uv == manifold.inner(x, v, u)
    assert manifold.inner(x, u, u) > 0.0
    combo = lincomb(a, u, b, w)
    bilinear = a * uv + b * manifold.inner(x, w, v)
    scale_ = (abs(a) + abs(b) + 1.0) * norm**2
    assert manifold.inner(x, combo, v) == pytest.approx(bilinear, abs=tol(dtype, 16) * scale_)
    assert manifold.inner(x, v, combo) == pytest.approx(bilinear, abs=tol(dtype, 16) * scale_)


@AXIOM
@given(seed=seeds, norm=scales)
def test_norm_is_the_square_root_of_inner(manifold, dtype, seed, norm):
    rng, x = _setup(manifold, dtype, seed)
    u = tangent(manifold, x, rng, norm)
    assert manifold.norm(x, u) == pytest.approx(
        np.sqrt(manifold.inner(x, u, u)), rel=tol(np.float64, 8)
    )
    assert manifold.norm(x, u) == pytest.approx(norm, rel=tol(dtype, 8))
    assert manifold.norm(x, manifold.zero_vector(x)) == 0.0


# --- retraction, exponential, logarithm, distance --------------------------------


@AXIOM
@given(seed=seeds)
def test_retraction_at_zero_is_the_identity(manifold, dtype, seed):
    _, x = _setup(manifold, dtype, seed)
    y = manifold.retr(x, manifold.zero_vector(x))
    assert dtypes(y) == dtypes(x)
    assert_close(y, x, atol=tol(dtype, 4) * POINT_SCALE)
    assert_close(manifold.exp(x, manifold.zero_vector(x)), x, atol=tol(dtype, 4) * POINT_SCALE)


@AXIOM
@given(seed=seeds, norm=scales)
def test_retraction_has_velocity_u_at_zero(manifold, dtype, seed, norm):
    """d/dt retr(x, t u) at t = 0 is u, by a central difference."""
    rng, x = _setup(manifold, dtype, seed)
    u = tangent(manifold, x, rng, norm)
    # Steps of length h along u; central difference error ~ h^2 + eps/h.
    h = eps(dtype) ** (1 / 3)
    t = h / norm
    for retr in (manifold.retr, manifold.exp):
        fwd = retr(x, scale(t, u))
        bwd = retr(x, scale(-t, u))
        velocity = [
            (np.asarray(a, np.float64) - b) / (2 * t) for a, b in zip(parts(fwd), parts(bwd))
        ]
        # error / ||u|| is ~ h^2 + 2 eps / h = 3 eps^(2/3): 20 times that.
        assert_close(velocity, parts(u), atol=20 * h * h * norm * POINT_SCALE)


@AXIOM
@given(seed=seeds, norm=scales)
def test_log_inverts_exp_below_pi(manifold, dtype, seed, norm):
    rng, x = _setup(manifold, dtype, seed)
    u = cap_sphere_factors(manifold, tangent(manifold, x, rng, norm), BELOW_PI)
    y = manifold.exp(x, u)
    manifold.check_point(y)
    v = manifold.log(x, y)
    assert dtypes(v) == dtypes(x)
    # The log near distance pi amplifies rounding by 1/sin(3) ~ 7.
    assert_close(v, u, atol=tol(dtype, 64) * (1.0 + fnorm(u)) * POINT_SCALE)
    manifold.check_tangent(x, v)


@AXIOM
@given(seed=seeds, norm=scales)
def test_dist_along_a_geodesic_is_the_norm_of_its_velocity(manifold, dtype, seed, norm):
    rng, x = _setup(manifold, dtype, seed)
    u = cap_sphere_factors(manifold, tangent(manifold, x, rng, norm), BELOW_PI)
    y = manifold.exp(x, u)
    length = fnorm(u)
    d = manifold.dist(x, y)
    assert d == pytest.approx(length, rel=tol(dtype, 16), abs=tol(dtype, 16) * POINT_SCALE)
    assert manifold.dist(y, x) == pytest.approx(d, rel=tol(dtype, 16), abs=tol(dtype, 16))
    assert manifold.dist(x, x) == 0.0
    assert manifold.dist(y, y) == 0.0
    assert manifold.dist(x, copy(x)) == 0.0


@AXIOM
@given(seed=seeds)
def test_dist_is_symmetric_between_random_points(manifold, dtype, seed):
    rng, x = _setup(manifold, dtype, seed)
    y = manifold.random_point(rng=rng, dtype=dtype)
    d = manifold.dist(x, y)
    assert d > 0.0
    assert manifold.dist(y, x) == pytest.approx(d, rel=tol(dtype, 16))
    # The triangle inequality through a third point.
    z = manifold.random_point(rng=rng, dtype=dtype)
    assert d <= manifold.dist(x, z) + manifold.dist(z, y) + tol(dtype, 16) * d


@AXIOM
@given(seed=seeds, norm=scales)
def test_inverse_retr_inverts_retr(manifold, dtype, seed, norm):
    rng, x = _setup(manifold, dtype, seed)
    u = tangent(manifold, x, rng, norm)
    if "exp" in np.atleast_1d(manifold.retraction):
        u = cap_sphere_factors(manifold, u, BELOW_PI)
    y = manifold.retr(x, u)
    manifold.check_point(y)
    v = manifold.inverse_retr(x, y)
    assert dtypes(v) == dtypes(x)
    manifold.check_tangent(x, v)
    # Projection retraction: <x, y> = 1/||x + u||, so rounding grows as (1 + ||u||)^2.
    atol = tol(dtype, 64) * (1.0 + fnorm(u)) ** 2 * POINT_SCALE
    assert_close(v, u, atol=atol)


# --- transports -----------------------------------------------------------------


@AXIOM
@given(seed=seeds, norm=scales, a=st.floats(-10, 10))
def test_transp_is_linear_into_the_tangent_space_at_y(manifold, dtype, seed, norm, a):
    rng, x = _setup(manifold, dtype, seed)
    y = manifold.retr(x, cap_sphere_factors(manifold, tangent(manifold, x, rng, norm), 2.5))
    u, v = tangent(manifold, x, rng), tangent(manifold, x, rng)
    tu, tv = manifold.transp(x, y, u), manifold.transp(x, y, v)
    assert dtypes(tu) == dtypes(x)
    manifold.check_tangent(y, tu)
    combo = manifold.transp(x, y, lincomb(a, u, 1.0, v))
    assert_close(combo, lincomb(a, tu, 1.0, tv), atol=tol(dtype, 32) * (abs(a) + 1.0))


@AXIOM
@given(seed=seeds)
def test_transp_from_x_to_x_is_the_identity(manifold, dtype, seed):
    rng, x = _setup(manifold, dtype, seed)
    v = tangent(manifold, x, rng)
    assert_close(manifold.transp(x, x, v), v, atol=tol(dtype, 8))


@pytest.mark.parametrize("manifold", _parallel_cases(), indirect=True)
@AXIOM
@given(seed=seeds, norm=scales)
def test_parallel_transport_is_an_isometry_mapping_log_to_minus_log(
    manifold, dtype, seed, norm
):
    rng, x = _setup(manifold, dtype, seed)
    # 1 + <x, y> >= 1 + cos(2.5) = 0.2 in every factor: rounding amplified <= 5x.
    w = cap_sphere_factors(manifold, tangent(manifold, x, rng, norm), 2.5)
    y = manifold.exp(x, w)
    u, v = tangent(manifold, x, rng), tangent(manifold, x, rng)
    u = scale(3.0, u)
    pu, pv = manifold.transp(x, y, u), manifold.transp(x, y, v)
    manifold.check_tangent(y, pu)
    atol = tol(dtype, 64)
    assert manifold.inner(y, pu, pv) == pytest.approx(manifold.inner(x, u, v), abs=3 * atol)
    assert manifold.norm(y, pu) == pytest.approx(3.0, abs=3 * atol)
    log_xy = manifold.log(x, y)
    expected = scale(-1.0, manifold.log(y, x))
    assert_close(manifold.transp(x, y, log_xy), expected, atol=atol * (1.0 + fnorm(w)) * POINT_SCALE)


# --- gradients and Hessians --------------------------------------------------------


@AXIOM
@given(seed=seeds)
def test_egrad2rgrad_is_tangent_and_gives_directional_derivatives(manifold, dtype, seed):
    """(f(retr(x, t u)) - f(retr(x, -t u))) / 2t == inner(x, rgrad, u) for tangent u."""
    rng, x = _setup(manifold, dtype, seed)
    f = Quadratic(manifold, rng)
    egrad = f.egrad(x, dtype)
    rgrad = manifold.egrad2rgrad(x, egrad)
    assert dtypes(rgrad) == dtypes(x)
    manifold.check_tangent(x, rgrad)
    h = eps(dtype) ** (1 / 3)
    scale_ = 1.0 + fnorm(egrad) + np.linalg.norm(f.A, 2) + abs(f(x))
    for _ in range(2):
        u = tangent(manifold, x, rng)
        for retr in (manifold.retr, manifold.exp):
            fd = (f(retr(x, scale(h, u))) - f(retr(x, scale(-h, u)))) / (2 * h)
            # error ~ h^2 |f'''| + eps |f| / h (rounding of the points) ~ eps^(2/3).
            assert fd == pytest.approx(manifold.inner(x, rgrad, u), abs=50 * h * h * scale_)


@pytest.mark.parametrize("dtype", [np.dtype(np.float64)], ids=["float64"], indirect=True)
@AXIOM
@given(seed=seeds)
def test_ehess2rhess_is_the_second_derivative_along_geodesics(manifold, dtype, seed):
    """d^2/dt^2 f(exp(x, t u)) at 0 == inner(x, Hess f(x)[u], u) (geodesics have no acceleration)."""
    rng, x = _setup(manifold, dtype, seed)
    f = Quadratic(manifold, rng)
    egrad = f.egrad(x, dtype)
    scale_ = 1.0 + fnorm(egrad) + np.linalg.norm(f.A, 2) + abs(f(x))
    # Second central difference: error ~ h^2 |f''''| + 4 eps |f| / h^2; h = eps^(1/4).
    h = eps(dtype) ** 0.25
    for _ in range(2):
        u = tangent(manifold, x, rng)
        hess_u = manifold.ehess2rhess(x, egrad, f.ehess(u, dtype), u)
        manifold.check_tangent(x, hess_u)
        second = (f(manifold.exp(x, scale(h, u))) - 2 * f(x) + f(manifold.exp(x, scale(-h, u)))) / h**2
        assert second == pytest.approx(manifold.inner(x, hess_u, u), abs=100 * h * h * scale_)


@AXIOM
@given(seed=seeds)
def test_riemannian_hessian_is_symmetric(manifold, dtype, seed):
    rng, x = _setup(manifold, dtype, seed)
    f = Quadratic(manifold, rng)
    egrad = f.egrad(x, dtype)
    u, v = tangent(manifold, x, rng), tangent(manifold, x, rng)
    hu = manifold.ehess2rhess(x, egrad, f.ehess(u, dtype), u)
    hv = manifold.ehess2rhess(x, egrad, f.ehess(v, dtype), v)
    assert dtypes(hu) == dtypes(x)
    scale_ = 1.0 + fnorm(egrad) + np.linalg.norm(f.A, 2)
    assert manifold.inner(x, hu, v) == pytest.approx(manifold.inner(x, u, hv), abs=tol(dtype, 32) * scale_)


# --- the contract on arguments and results --------------------------------------


def _calls(manifold, rng, dtype):
    """(name, args) for every method that takes arrays, with valid arguments."""
    x = manifold.random_point(rng=rng, dtype=dtype)
    u = tangent(manifold, x, rng)
    y = manifold.retr(x, scale(0.5, u))
    v = tangent(manifold, x, rng)
    z = random_ambient(manifold, rng, dtype)
    h = random_ambient(manifold, rng, dtype)
    return [
        ("proj", (x, z)),
        ("egrad2rgrad", (x, z)),
        ("ehess2rhess", (x, z, h, u)),
        ("inner", (x, u, v)),
        ("norm", (x, u)),
        ("dist", (x, y)),
        ("exp", (x, u)),
        ("log", (x, y)),
        ("retr", (x, u)),
        ("inverse_retr", (x, y)),
        ("transp", (x, y, v)),
        ("random_tangent", (x, 0)),
        ("zero_vector", (x,)),
        ("check_point", (x,)),
        ("check_tangent", (x, u)),
        ("gradient_step", (x, z, 0.1)),
    ]


ARRAY_METHODS = {
    "proj", "egrad2rgrad", "ehess2rhess", "exp", "log", "retr", "inverse_retr",
    "transp", "random_tangent", "zero_vector", "gradient_step",
}  # fmt: skip


@AXIOM
@given(seed=seeds)
def test_methods_never_modify_their_inputs(manifold, dtype, seed):
    for name, args in _calls(manifold, np.random.default_rng(seed), dtype):
        before = [copy(a) if not np.isscalar(a) else a for a in args]
        getattr(manifold, name)(*args)
        for arg, old in zip(args, before):
            if not np.isscalar(arg):
                assert_equal(arg, old)


@AXIOM
@given(seed=seeds)
def test_array_results_keep_the_input_dtype(manifold, dtype, seed):
    for name, args in _calls(manifold, np.random.default_rng(seed), dtype):
        if name in ARRAY_METHODS:
            result = getattr(manifold, name)(*args)
            assert dtypes(result) == [dtype] * len(parts(result)), name
            assert [a.shape for a in parts(result)] == [a.shape for a in parts(args[0])], name


def test_outputs_are_new_arrays_not_views_of_the_inputs(manifold, dtype):
    """A caller may update a returned gradient in place without touching its own arrays."""
    rng = np.random.default_rng(0)
    for name, args in _calls(manifold, rng, dtype):
        if name in ARRAY_METHODS:
            result = getattr(manifold, name)(*args)
            for out in parts(result):
                for arg in args:
                    if not np.isscalar(arg):
                        for a in parts(arg):
                            assert not np.shares_memory(out, a), f"{name} returns a view of an input"


@AXIOM
@given(seed=seeds, lr=st.floats(-3.0, 0.0).map(lambda e: 10.0**e), gscale=scales)
def test_gradient_step_is_a_retraction_of_minus_lr_rgrad(manifold, dtype, seed, lr, gscale):
    rng, x = _setup(manifold, dtype, seed)
    egrad = scale(gscale, random_ambient(manifold, rng, dtype))
    expected = manifold.retr(x, scale(-lr, manifold.egrad2rgrad(x, egrad)))
    step = lr * fnorm(egrad)
    atol = tol(dtype, 32) * (1.0 + step) * POINT_SCALE
    new = manifold.gradient_step(x, egrad, lr)
    assert dtypes(new) == dtypes(x)
    assert_close(new, expected, atol=atol)
    # In place: out=x overwrites x with the same point and returns its arrays.
    x_in_place = copy(x)
    returned = manifold.gradient_step(x_in_place, egrad, lr, out=x_in_place)
    assert all(r is a for r, a in zip(parts(returned), parts(x_in_place)))
    assert_close(x_in_place, new, atol=tol(dtype, 4) * POINT_SCALE)
    manifold.check_point(x_in_place)


# --- any shape ---------------------------------------------------------------------

small_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)


@st.composite
def sphere_like(draw):
    """A Sphere or an Oblique of a random small shape, every factor of size >= 2."""
    shape = draw(small_shapes)
    retraction = draw(st.sampled_from(["exp", "projection"]))
    transport = draw(st.sampled_from(["projection", "parallel"]))
    if draw(st.booleans()):
        if int(np.prod(shape)) < 2:
            shape = shape + (2,)
        return Sphere(*shape, retraction=retraction, transport=transport)
    ndim = len(shape)
    axes = draw(st.sets(st.integers(0, ndim - 1), min_size=1).map(lambda s: tuple(sorted(s))))
    if int(np.prod([shape[a] for a in axes])) < 2:
        shape = tuple(n + 1 if i == axes[0] else n for i, n in enumerate(shape))
    axis = axes[0] if len(axes) == 1 and draw(st.booleans()) else axes
    return Oblique(shape=shape, axis=axis, retraction=retraction, transport=transport)


@settings(max_examples=7 * EXAMPLES, deadline=None, database=None)
@given(manifold=sphere_like(), seed=seeds, norm=scales, dtype=st.sampled_from(["float32", "float64"]))
def test_sphere_like_axioms_for_any_shape(manifold, seed, norm, dtype):
    dtype = np.dtype(dtype)
    rng, x = _setup(manifold, dtype, seed)
    manifold.check_point(x)
    assert x.shape == manifold.shape
    n_factors = sphere_factor_norms(manifold, x).size
    assert manifold.dim == x.size - n_factors
    z = random_ambient(manifold, rng, dtype)
    p = manifold.proj(x, z)
    manifold.check_tangent(x, p)
    u = cap_sphere_factors(manifold, tangent(manifold, x, rng, norm), BELOW_PI)
    y = manifold.exp(x, u)
    manifold.check_point(y)
    assert_close(manifold.log(x, y), u, atol=tol(dtype, 64) * (1 + fnorm(u)))
    assert manifold.dist(x, y) == pytest.approx(fnorm(u), rel=tol(dtype, 16), abs=tol(dtype, 16))
    v = manifold.inverse_retr(x, manifold.retr(x, u))
    assert_close(v, u, atol=tol(dtype, 64) * (1 + fnorm(u)) ** 2)
    manifold.check_tangent(y, manifold.transp(x, y, tangent(manifold, x, rng)))
    new = manifold.gradient_step(x, z, 0.3)
    assert_close(new, manifold.retr(x, scale(-0.3, manifold.egrad2rgrad(x, z))), atol=tol(dtype, 64) * (1 + fnorm(z)))


@pytest.mark.parametrize("make", [lambda: Sphere(1), lambda: Oblique(1, 4)], ids=["Sphere1", "Oblique1x4"])
def test_random_tangent_of_a_zero_dimensional_manifold_is_finite(make):
    manifold = make()
    assert manifold.dim == 0
    x = manifold.random_point(rng=0)
    u = manifold.random_tangent(x, rng=0)
    # The only tangent vector of a pair of points (per factor) is 0.
    assert u.dtype == x.dtype and u.shape == x.shape
    assert not np.any(u)
    manifold.check_tangent(x, u)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_random_tangent_is_tangent_even_for_a_nearly_normal_draw(dtype):
    """On the circle a Gaussian draw is nearly normal to x once in a few hundred:
    normalizing its projection must not blow up the rounding residue along x."""
    manifold = Sphere(2)
    failures = []
    for seed in range(5000):
        x = manifold.random_point(rng=10**6 + seed, dtype=dtype)
        u = manifold.random_tangent(x, rng=seed)
        normal = abs(float(np.dot(x.astype(np.float64), u)))
        if normal > tol(dtype, 100):
            failures.append((seed, normal))
    assert not failures, f"{len(failures)} of 5000 draws not tangent, e.g. {failures[:3]}"
