"""spherenet.interop.to_pymanopt: pymanopt's API on spherenet's geometry.

Every adapter method is compared with pymanopt's own manifold of the same
kind on the same inputs; pymanopt's optimizers are run on the adapters and
must reach the known optimum (scipy's eigh, closed forms) and pymanopt's own
answer.
"""

import numbers
import pickle
import subprocess
import sys

import autograd.numpy as anp
import numpy as np
import pytest
import scipy.linalg

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.interop import to_pymanopt

pymanopt = pytest.importorskip("pymanopt")
from pymanopt.manifolds.manifold import Manifold as PymanoptManifold  # noqa: E402
from pymanopt.manifolds.manifold import RiemannianSubmanifold  # noqa: E402
from pymanopt.manifolds.product import _ProductTangentVector  # noqa: E402

pm = pymanopt.manifolds
EPS64 = np.finfo(np.float64).eps

# The spheres are built with the projection retraction, which is pymanopt's
# retraction, so that every map can be compared with pymanopt's one to one.
CASES = {
    "sphere-vector": lambda: (Sphere(6, retraction="projection"), pm.Sphere(6)),
    "sphere-matrix": lambda: (Sphere(3, 4, retraction="projection"), pm.Sphere(3, 4)),
    "oblique": lambda: (Oblique(4, 5, retraction="projection"), pm.Oblique(4, 5)),
    "euclidean": lambda: (Euclidean(5), pm.Euclidean(5)),
    "product": lambda: (
        Product([Oblique(3, 4, retraction="projection"), Euclidean(2)]),
        pm.Product([pm.Oblique(3, 4), pm.Euclidean(2)]),
    ),
}


def _parts(a):
    return list(a) if isinstance(a, (list, tuple)) else [a]


def _as_input(manifold, parts):
    """pymanopt's representation of a point or vector: a list for a product."""
    return list(parts) if isinstance(manifold, Product) else parts[0]


def _ambient(manifold, rng, dtype=np.float64):
    shapes = manifold.shape if isinstance(manifold, Product) else (manifold.shape,)
    return _as_input(manifold, [rng.standard_normal(s).astype(dtype) for s in shapes])


def _sample(manifold, seed=0, dtype=np.float64):
    """Points x, y, ambient vectors g, h (gradient, Hessian-vector), tangents u, v at x."""
    rng = np.random.default_rng(seed)
    x = _as_input(manifold, _parts(manifold.random_point(rng, dtype)))
    y = _as_input(manifold, _parts(manifold.random_point(rng, dtype)))
    g, h = _ambient(manifold, rng, dtype), _ambient(manifold, rng, dtype)
    u = _as_input(manifold, _parts(manifold.proj(x, _ambient(manifold, rng, dtype))))
    v = _as_input(manifold, _parts(manifold.proj(x, _ambient(manifold, rng, dtype))))
    return dict(x=x, y=y, g=g, h=h, u=u, v=v)


def _is_scalar(a):
    return isinstance(a, numbers.Real) or (isinstance(a, np.ndarray) and a.ndim == 0)


def assert_close(actual, expected, rtol, atol=0.0):
    if _is_scalar(expected):
        assert isinstance(actual, numbers.Real)
    else:
        assert len(_parts(actual)) == len(_parts(expected))
    for a, e in zip(_parts(actual), _parts(expected)):
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)


# method name -> the arguments it takes, from a sample
METHODS = {
    "projection": "xg",
    "to_tangent_space": "xg",
    "euclidean_to_riemannian_gradient": "xg",
    "euclidean_to_riemannian_hessian": "xghu",
    "inner_product": "xuv",
    "norm": "xu",
    "dist": "xy",
    "exp": "xu",
    "retraction": "xu",
    "log": "xy",
    "transport": "xyu",
    "pair_mean": "xy",
    "zero_vector": "x",
}


@pytest.fixture(params=sorted(CASES))
def pair(request):
    ours, theirs = CASES[request.param]()
    return ours, to_pymanopt(ours, rng=0), theirs


# --- what the adapter is ------------------------------------------------------


def test_adapter_is_a_pymanopt_manifold_with_pymanopt_attributes(pair):
    ours, adapter, theirs = pair
    assert isinstance(adapter, PymanoptManifold)
    if isinstance(ours, Product):
        assert isinstance(adapter, pm.Product)
        assert all(isinstance(m, RiemannianSubmanifold) for m in adapter.manifolds)
        # tangent vectors support the optimizers' arithmetic, factor by factor
        x = adapter.random_point()
        u, v = adapter.random_tangent_vector(x), adapter.random_tangent_vector(x)
        for combo in (u + v, np.float64(2.0) * u - v, -u / 4):
            assert isinstance(combo, _ProductTangentVector)
        assert_close(np.float64(2.0) * u - v, [2 * a - b for a, b in zip(u, v)], rtol=1e-15)
    else:
        assert isinstance(adapter, RiemannianSubmanifold)
    assert adapter.spherenet_manifold is ours
    assert repr(ours) in repr(adapter)
    assert adapter.dim == theirs.dim == ours.dim
    assert adapter.point_layout == theirs.point_layout
    assert adapter.num_values == theirs.num_values
    assert adapter.typical_dist == pytest.approx(theirs.typical_dist, rel=1e-15)


@pytest.mark.parametrize("method", sorted(METHODS))
def test_every_method_agrees_with_pymanopts_own_manifold(pair, method):
    ours, adapter, theirs = pair
    sample = _sample(ours)
    args = [sample[k] for k in METHODS[method]]
    got = getattr(adapter, method)(*args)
    want = getattr(theirs, method)(*args)
    if not _is_scalar(want):
        # Same representation: arrays, or for a product a list for points and
        # a _ProductTangentVector for tangent vectors.
        assert type(got) is type(want)
    # dist and log go through an arccos in pymanopt: accurate to ~1e-13 for
    # the moderate angles of random points.
    rtol = 1e-11 if method in ("dist", "log", "pair_mean") else 1e-13
    assert_close(got, want, rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("case", ["sphere-vector", "sphere-matrix", "oblique", "euclidean"])
def test_weingarten_gives_pymanopts_riemannian_hessian(case):
    # pymanopt's RiemannianSubmanifold builds the Hessian from `weingarten`;
    # through it the adapter must give what pymanopt's own manifold gives.
    ours, theirs = CASES[case]()
    adapter = to_pymanopt(ours)
    s = _sample(ours, seed=1)
    generic = RiemannianSubmanifold.euclidean_to_riemannian_hessian(
        adapter, s["x"], s["g"], s["h"], s["u"]
    )
    assert_close(
        generic,
        theirs.euclidean_to_riemannian_hessian(s["x"], s["g"], s["h"], s["u"]),
        rtol=1e-13,
        atol=1e-14,
    )
    if isinstance(theirs, pm.Sphere):
        normal = s["g"] - theirs.projection(s["x"], s["g"])
        assert_close(
            adapter.weingarten(s["x"], s["u"], normal),
            theirs.weingarten(s["x"], s["u"], normal),
            rtol=1e-13,
            atol=1e-14,
        )


def test_retraction_and_transport_are_the_spherenet_manifolds_choices():
    theirs = pm.Sphere(5)
    s = _sample(Sphere(5), seed=2)
    x, y, u = s["x"], s["y"], s["u"]
    # Sphere's default retraction is the exponential map (pymanopt's is projection).
    default = to_pymanopt(Sphere(5))
    np.testing.assert_allclose(default.retraction(x, u), theirs.exp(x, u), rtol=1e-14, atol=1e-15)
    assert not np.allclose(default.retraction(x, u), theirs.retraction(x, u))
    # Parallel transport is an isometry onto T_y; pymanopt's projection is not.
    parallel = to_pymanopt(Sphere(5, transport="parallel"))
    moved = parallel.transport(x, y, u)
    assert abs(np.dot(y, moved)) < 10 * EPS64
    assert parallel.norm(y, moved) == pytest.approx(np.linalg.norm(u), rel=1e-14)
    assert np.linalg.norm(theirs.transport(x, y, u)) < 0.99 * np.linalg.norm(u)


# --- sampling -------------------------------------------------------------------


def test_random_point_and_tangent_vector_are_seeded_and_as_in_pymanopt(pair):
    ours, adapter, theirs = pair
    theirs_x = theirs.random_point()  # pymanopt draws from the global state
    theirs_u = theirs.random_tangent_vector(theirs_x)
    state = np.random.get_state()[1].copy()
    x = adapter.random_point()
    u = adapter.random_tangent_vector(x)
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    assert type(x) is type(theirs_x)
    assert type(u) is type(theirs_u)
    if isinstance(ours, Product):
        ours.check_tangent(tuple(x), tuple(u))
    else:
        ours.check_tangent(x, u)
    # unit norm, as pymanopt's random tangent vectors
    assert adapter.norm(x, u) == pytest.approx(theirs.norm(theirs_x, theirs_u), rel=1e-14)
    assert adapter.norm(x, u) == pytest.approx(1.0, rel=1e-14)
    # reproducible from the adapter's seed
    twin = to_pymanopt(ours, rng=0)
    assert_close(twin.random_point(), x, rtol=0)
    assert_close(twin.random_tangent_vector(x), u, rtol=0)
    assert not np.array_equal(_parts(adapter.random_point())[0], _parts(x)[0])


# --- accuracy: where spherenet's maps differ from pymanopt's ---------------------


@pytest.mark.parametrize("t", [1e-12, 1e-6, 1.0, np.pi - 1e-6, np.pi - 1e-12])
def test_dist_and_log_are_accurate_for_near_and_nearly_antipodal_points(t):
    # pymanopt's dist is arccos(<x, y>): it returns 0 for t < ~1e-8, and its
    # log inherits that (relative error 1) and loses 4 digits at pi - 1e-12.
    adapter = to_pymanopt(Sphere(4))
    x, e = np.eye(4)[0], np.eye(4)[1]
    y = np.cos(t) * x + np.sin(t) * e  # exact: cos(t), sin(t) are the coordinates
    assert adapter.dist(x, y) == pytest.approx(t, rel=4 * EPS64)
    np.testing.assert_allclose(adapter.log(x, y), t * e, rtol=4 * EPS64, atol=4 * EPS64 * t)


def test_oblique_log_and_dist_of_identical_and_antipodal_points_are_finite():
    # pymanopt's Oblique.log(X, X) is NaN in the columns whose <x, x> rounds
    # above 1, and Oblique.dist(X, -X) is NaN where <x, -x> rounds below -1.
    ours = Oblique(4, 200)
    adapter = to_pymanopt(ours)
    x = ours.random_point(rng=3)
    np.testing.assert_array_equal(adapter.log(x, x), np.zeros_like(x))
    assert adapter.dist(x, x) == 0.0
    assert adapter.dist(x, -x) == pytest.approx(np.pi * np.sqrt(200), rel=4 * EPS64)


# --- dtype --------------------------------------------------------------------


def test_float32_in_float32_out(pair):
    ours, adapter, _ = pair
    s32 = _sample(ours, seed=4, dtype=np.float32)
    s64 = {k: _as_input(ours, [p.astype(np.float64) for p in _parts(v)]) for k, v in s32.items()}
    for method, names in METHODS.items():
        got = getattr(adapter, method)(*[s32[k] for k in names])
        if isinstance(got, numbers.Real):
            continue
        assert all(p.dtype == np.float32 for p in _parts(got)), method
        want = getattr(adapter, method)(*[s64[k] for k in names])
        assert_close(got, want, rtol=1e-4, atol=1e-5)
    u = adapter.random_tangent_vector(s32["x"])
    assert all(p.dtype == np.float32 for p in _parts(u))
    x = to_pymanopt(ours, dtype=np.float32).random_point()
    assert all(p.dtype == np.float32 for p in _parts(x))
    assert all(p.dtype == np.float64 for p in _parts(adapter.random_point()))


# --- pymanopt's optimizers on spherenet's geometry --------------------------------


def _solve(manifold, cost_fn, optimizer, x0):
    cost = pymanopt.function.autograd(manifold)(cost_fn)
    problem = pymanopt.Problem(manifold, cost)
    return optimizer.run(problem, initial_point=x0)


def _optimizer(name, **kwargs):
    kwargs = dict(verbosity=0, min_gradient_norm=1e-9, **kwargs)
    if name == "SteepestDescent":
        return pymanopt.optimizers.SteepestDescent(max_iterations=1000, **kwargs)
    if name == "ConjugateGradient":
        return pymanopt.optimizers.ConjugateGradient(max_iterations=500, **kwargs)
    return pymanopt.optimizers.TrustRegions(max_iterations=50, **kwargs)


def _align_sign(x, ref, axis=None):
    return x * np.sign(np.sum(x * ref, axis=axis, keepdims=axis is not None))


OPTIMIZERS = ["SteepestDescent", "ConjugateGradient", "TrustRegions"]
RETRACTIONS = ["exp", "projection"]

# With retraction="exp" these runs also guard against drift: pymanopt's loop
# hands exp a gradient projected at a point a few ulps off the sphere, whose
# normal residue, if exp kept it, would grow ||x|| - 1 geometrically (1e-16 ->
# 1e-11 in ~20 steps) until the Armijo line search stalls on cost noise.


@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_rayleigh_quotient_on_sphere_reaches_the_top_eigenvector(name, retraction):
    n = 8
    rng = np.random.default_rng(5)
    q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    A = q @ np.diag([4.0, 2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0]) @ q.T
    A = (A + A.T) / 2
    eigvals, eigvecs = scipy.linalg.eigh(A)
    top, lam = eigvecs[:, -1], eigvals[-1]
    x0 = Sphere(n).random_point(rng=6)

    def cost(x):
        return -x @ A @ x

    for manifold in (to_pymanopt(Sphere(n, retraction=retraction), rng=0), pm.Sphere(n)):
        result = _solve(manifold, cost, _optimizer(name), x0)
        # Steepest descent stops on its line search at a gradient norm ~1e-7,
        # where the cost decrease reaches rounding; |x - x*| ~ grad / gap.
        assert result.gradient_norm < 1e-6
        np.testing.assert_allclose(_align_sign(result.point, top), top, atol=1e-6)
        assert result.cost == pytest.approx(-lam, rel=1e-12)


@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", ["ConjugateGradient", "TrustRegions"])
def test_oblique_columnwise_rayleigh_quotients_reach_each_columns_top_eigenvector(name, retraction):
    m, n = 5, 4
    rng = np.random.default_rng(7)
    B = rng.standard_normal((n, m, m))
    A = B + np.transpose(B, (0, 2, 1))  # one symmetric matrix per column
    eigs = [scipy.linalg.eigh(a) for a in A]
    tops = np.stack([vecs[:, -1] for _, vecs in eigs], axis=1)
    lam_sum = sum(vals[-1] for vals, _ in eigs)
    x0 = Oblique(m, n).random_point(rng=8)

    def cost(X):
        return -anp.sum(anp.einsum("jab,aj,bj->j", A, X, X))

    answers = []
    for manifold in (to_pymanopt(Oblique(m, n, retraction=retraction), rng=0), pm.Oblique(m, n)):
        result = _solve(manifold, cost, _optimizer(name), x0)
        answers.append(_align_sign(result.point, tops, axis=0))
        np.testing.assert_allclose(answers[-1], tops, atol=1e-6)
        assert result.cost == pytest.approx(-lam_sum, rel=1e-12)
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-6)


@pytest.mark.parametrize("retraction", RETRACTIONS)
@pytest.mark.parametrize("name", OPTIMIZERS)
def test_product_of_oblique_and_euclidean_reaches_the_closed_form_optimum(name, retraction):
    # min ||X - B||^2 + ||b - c||^2: X* = B with unit columns, b* = c.
    rng = np.random.default_rng(9)
    B, c = rng.standard_normal((3, 6)), rng.standard_normal(4)
    X_opt = B / np.linalg.norm(B, axis=0)
    f_opt = np.sum((X_opt - B) ** 2)
    ours = Product([Oblique(3, 6, retraction=retraction), Euclidean(4)])
    x0 = list(ours.random_point(rng=10))

    def cost(X, b):
        return ((X - B) ** 2).sum() + ((b - c) ** 2).sum()

    for manifold in (to_pymanopt(ours, rng=0), pm.Product([pm.Oblique(3, 6), pm.Euclidean(4)])):
        result = _solve(manifold, cost, _optimizer(name), x0)
        assert type(result.point) is list
        X, b = result.point
        np.testing.assert_allclose(X, X_opt, atol=1e-7)
        np.testing.assert_allclose(b, c, atol=1e-7)
        assert result.cost == pytest.approx(f_opt, rel=1e-12)


# --- errors, optional dependency, pickling ---------------------------------------


@pytest.mark.parametrize(
    "obj", [pm.Sphere(3), "Sphere(3)", np.zeros(3), None], ids=["pymanopt", "str", "array", "None"]
)
def test_unsupported_object_raises_type_error(obj):
    with pytest.raises(TypeError, match="spherenet manifold"):
        to_pymanopt(obj)


def test_bad_rng_or_dtype_raises_type_error():
    with pytest.raises(TypeError, match="rng"):
        to_pymanopt(Sphere(3), rng="seed")
    with pytest.raises(TypeError, match="dtype"):
        to_pymanopt(Sphere(3), dtype=np.int64)


def test_missing_pymanopt_raises_import_error_naming_pip_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pymanopt", None)
    with pytest.raises(ImportError, match="pip install pymanopt"):
        to_pymanopt(Sphere(3))


def test_importing_spherenet_does_not_import_pymanopt():
    code = (
        "import sys, spherenet; a = 'pymanopt' in sys.modules; "
        "import spherenet.interop; print(a, 'pymanopt' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_adapter_pickles_into_a_fresh_process():
    adapter = to_pymanopt(Product([Oblique(3, 4), Euclidean(2)]), rng=11)
    expected = adapter.random_point()  # the generator's state travels with it
    adapter = to_pymanopt(Product([Oblique(3, 4), Euclidean(2)]), rng=11)
    code = (
        "import pickle, sys; m = pickle.loads(sys.stdin.buffer.read()); "
        "x = m.random_point(); sys.stdout.buffer.write(pickle.dumps((type(m).__name__, m.dim, x)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=pickle.dumps(adapter), capture_output=True, check=True
    )
    name, dim, x = pickle.loads(out.stdout)
    assert (name, dim) == ("_ProductAdapter", 10)
    assert_close(x, expected, rtol=0)
