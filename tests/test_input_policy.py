"""The input policy of the manifolds (see ``spherenet.manifolds.base``), method by method.

* A sweep over every public method of every manifold x every kind of bad
  argument: the right exception, a message naming what was expected and
  what came, and arguments left untouched. The method list comes from
  introspection, so a new public method that takes arrays fails the sweep
  until it is described here.
* Points within ``point_atol`` of the manifold are accepted by every method
  that takes a point; 2x is refused by all of them.
* Zero steps keep the point bit for bit (NumPy and numba paths, both dtypes,
  in place and not, factor by factor, on points a few ulps off).
* ``project_point`` against plain NumPy; ``unchecked`` against the checked
  methods.
"""

import copy
import inspect
import pickle
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spherenet import Euclidean, Manifold, Oblique, Product, Sphere
from spherenet.manifolds import _kernels, point_atol
from spherenet.manifolds.base import CHECKED_METHODS

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)

CASES = {
    "Sphere3": lambda: Sphere(3),
    "Sphere3-projection-parallel": lambda: Sphere(3, retraction="projection", transport="parallel"),
    "Sphere2x3": lambda: Sphere(2, 3),
    "Oblique3x4-axis0": lambda: Oblique(3, 4),
    "Oblique3x4-axis1-projection": lambda: Oblique(3, 4, axis=1, retraction="projection"),
    "Oblique2x3x4-axis01-parallel": lambda: Oblique(shape=(2, 3, 4), axis=(0, 1), transport="parallel"),
    "Euclidean3x2": lambda: Euclidean(3, 2),
    "Product": lambda: Product([Oblique(3, 4, retraction="projection"), Euclidean(4)]),
}

P, V, A, LR = "point", "vector", "array", "lr"
#: The arguments of every public method that takes arrays, by role.
SPECS = {
    "proj": (P, V),
    "egrad2rgrad": (P, V),
    "ehess2rhess": (P, V, V, V),
    "inner": (P, V, V),
    "norm": (P, V),
    "directional_derivative": (P, V, V),
    "dist": (P, P),
    "exp": (P, V),
    "log": (P, P),
    "retr": (P, V),
    "inverse_retr": (P, P),
    "transp": (P, P, V),
    "gradient_step": (P, V, LR),
    "violation": (A,),
    "project_point": (A,),
    "random_tangent": (P,),
    "zero_vector": (P,),
    "check_point": (P,),
    "check_tangent": (P, V),
}
#: Public methods that take no point or vector.
NO_ARRAYS = {"random_point", "with_options"}


def public_methods(manifold):
    # "__mutmut_": the copies of every method that the mutation runner (bench/mutation.py)
    # adds to a mutated class are not part of the API
    return sorted(
        name for name, value in inspect.getmembers(manifold)
        if not name.startswith("_") and "__mutmut_" not in name and callable(value)
        and not isinstance(value, Manifold)
    )


def is_spheres(m):
    return isinstance(m, (Sphere, Oblique))


def sphere_axes(m):
    return tuple(range(len(m.shape))) if isinstance(m, Sphere) else m._axes


def ref_norms(m, a):
    """Per-factor norms in plain NumPy (float64)."""
    a = np.asarray(a, dtype=np.float64)
    return np.sqrt(np.sum(a * a, axis=sphere_axes(m), keepdims=True))


# --- valid arguments, built without the maps under test -------------------------------------


def _tangent_np(m, x, rng):
    z = rng.standard_normal(m.shape)
    if is_spheres(m):
        x64 = x.astype(np.float64)
        axes = sphere_axes(m)
        for _ in range(2):
            z = z - np.sum(x64 * z, axis=axes, keepdims=True) * x64
    return (0.3 * z / np.linalg.norm(z)).astype(x.dtype)


def _point_np(m, rng, dtype):
    z = rng.standard_normal(m.shape)
    if is_spheres(m):
        z = z / ref_norms(m, z)
    return z.astype(dtype)


def _map_factors(manifold, fn, *xs):
    if isinstance(manifold, Product):
        return tuple(fn(m, *parts) for m, *parts in zip(manifold.manifolds, *xs))
    return fn(manifold, *xs)


def valid_args(manifold, method, dtype=np.float64, seed=0):
    """Arguments accepted by ``method``: points, a nearby second point, tangent vectors."""
    rng = np.random.default_rng(seed)
    x = _map_factors(manifold, lambda m: _point_np(m, rng, dtype))
    args = []
    n_points = 0
    for role in SPECS[method]:
        if role == LR:
            args.append(0.1)
        elif role == V:
            args.append(_map_factors(manifold, lambda m, xi: _tangent_np(m, xi, rng), x))
        elif n_points == 0:
            args.append(x)
            n_points += 1
        else:  # a second point near x (inverse_retr of the projection needs <x, y> > 0)
            def near(m, xi):
                y = xi.astype(np.float64) + 0.2 * _tangent_np(m, xi, rng)
                if is_spheres(m):
                    y = y / ref_norms(m, y)
                return y.astype(dtype)

            args.append(_map_factors(manifold, near, x))
    return args


# --- the bad kinds ------------------------------------------------------------------------


def _other_dtype(a):
    return np.float32 if a.dtype == np.float64 else np.float64


def _bad_versions(m, a, role, name, position, n_arrays):
    """(label, bad value, exception, regex of the message) for the array ``a`` of factor ``m``."""
    shape = re.escape(str(m.shape))
    dtype_kinds = [
        ("int", np.round(a).astype(np.int64), "int64"),
        ("bool", a > 0, "bool"),
        ("float16", a.astype(np.float16), "float16"),
        ("complex", a.astype(np.complex128), "complex128"),
        ("object", a.astype(object), "object"),
    ]
    for label, bad, got in dtype_kinds:
        yield label, bad, TypeError, rf"{name} must have dtype float32 or float64, got {got}\b.*astype"
    yield "list", a.tolist(), TypeError, rf"{name} must be a numpy\.ndarray, got list.*shape {shape}"
    yield "scalar", 1.0, TypeError, rf"{name} must be a numpy\.ndarray, got float"
    wrong_shapes = [
        ("extra axis", a[..., None]),
        ("column", a.reshape(-1, 1)),
        ("batch", np.stack([a, a])),
        ("flat", a.ravel()) if a.ndim > 1 else ("shorter", a[:-1]),
    ]
    if a.ndim > 1:
        wrong_shapes.append(("transposed", a.T))
    for label, bad in wrong_shapes:
        got = re.escape(str(bad.shape))
        yield label, bad, ValueError, rf"{name} .*expected shape {shape} for {re.escape(repr(m))}, got {got}"
    other = np.dtype(_other_dtype(a)).name
    if n_arrays == 1:
        pass  # one array: any float dtype is consistent
    elif position == 0:  # the next array argument is the one said to differ
        yield "mixed dtypes", a.astype(_other_dtype(a)), TypeError, rf"has dtype {a.dtype}\b.*{name} has {other}\b"
    else:
        yield "mixed dtypes", a.astype(_other_dtype(a)), TypeError, rf"{name} has dtype {other}\b.* has {a.dtype}\b"
    for label, value in [("nan", np.nan), ("inf", np.inf)]:
        bad = a.copy()
        bad.flat[0] = value
        bad.flat[-1] = -value
        yield label, bad, ValueError, rf"{name} has 2 non-finite entries"
    if role == P and is_spheres(m):
        yield "2x", 2 * a, ValueError, rf"{name} is off .*by up to 1\b.*project_point\({name}\)"
        yield "zero", np.zeros_like(a), ValueError, rf"{name} is off .*by up to 1\b"


def _names(method):
    params = list(inspect.signature(getattr(Sphere(2), method)).parameters)
    if method in ("check_point", "check_tangent"):
        return ["point", "tangent vector"]
    return params


def bad_calls(manifold, method):
    """Every (label, args, exception, message regex) of bad input for ``method``."""
    args = valid_args(manifold, method)
    names = _names(method)
    arrays = [i for i, role in enumerate(SPECS[method]) if role != LR]
    for i in arrays:
        role, name = SPECS[method][i], names[i]
        position = arrays.index(i)
        if isinstance(manifold, Product):
            n = len(manifold.manifolds)
            for label, bad, exc, regex in [
                ("too few parts", args[i][:-1], ValueError, rf"{name} must have {n} parts, got {n - 1}"),
                ("too many parts", args[i] + args[i][:1], ValueError, rf"{name} must have {n} parts, got {n + 1}"),
                ("ndarray", args[i][0], TypeError, rf"{name} must be a tuple of {n} arrays, got ndarray"),
            ]:
                yield f"{name}: {label}", _replace(args, i, bad), exc, regex
            for k, m in enumerate(manifold.manifolds):
                for label, bad, exc, regex in _bad_versions(m, args[i][k], role, name, position,
                                                            len(arrays)):
                    part = list(args[i])
                    part[k] = bad
                    prefix = rf"^factor {k} \({re.escape(repr(m))}\): {method}: .*"
                    yield f"{name}[{k}]: {label}", _replace(args, i, tuple(part)), exc, prefix + regex
        else:
            for label, bad, exc, regex in _bad_versions(manifold, args[i], role, name, position,
                                                        len(arrays)):
                yield f"{name}: {label}", _replace(args, i, bad), exc, rf"^{method}: .*" + regex


def _replace(args, i, value):
    new = list(args)
    new[i] = value
    return new


def snapshot(value):
    if isinstance(value, (tuple, list)):
        return type(value)(snapshot(v) for v in value)
    return value.copy() if isinstance(value, np.ndarray) else copy.deepcopy(value)


def same(a, b):
    if isinstance(a, (tuple, list)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    return a == b


# --- the sweep ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_every_public_method_is_covered_by_the_sweep(name):
    manifold = CASES[name]()
    unknown = set(public_methods(manifold)) - set(SPECS) - NO_ARRAYS
    assert not unknown, f"public methods missing from the input-policy sweep: {sorted(unknown)}"
    # ... and every method the unchecked view strips of its checks is swept.
    assert set(CHECKED_METHODS) <= set(SPECS)


@pytest.mark.parametrize("method", sorted(SPECS))
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused_with_a_message_and_left_untouched(name, method):
    manifold = CASES[name]()
    if not hasattr(manifold, method):
        pytest.skip(f"{name} has no {method}")
    fn = getattr(manifold, method)
    # The valid call succeeds (so that each failure below is the bad argument's).
    fn(*valid_args(manifold, method))
    count = 0
    for label, args, exc, regex in bad_calls(manifold, method):
        before = snapshot(args)
        with pytest.raises(exc) as info:
            fn(*args)
        assert re.search(regex, str(info.value)), f"{label}: {info.value!r} does not match {regex!r}"
        assert all(same(a, b) for a, b in zip(args, before)), f"{label}: an argument was modified"
        count += 1
    assert count >= 12


@pytest.mark.parametrize("name", ["Sphere3", "Oblique3x4-axis0", "Euclidean3x2", "Product"])
def test_gradient_step_checks_lr_and_out(name):
    manifold = CASES[name]()
    x, g, lr = valid_args(manifold, "gradient_step")
    for bad_lr, exc, regex in [("0.1", TypeError, "lr must be a real number, got str"),
                               (True, TypeError, "got bool"),
                               (np.nan, ValueError, "lr must be finite, got nan"),
                               (np.array([0.1]), TypeError, "got ndarray")]:
        with pytest.raises(exc, match=regex):
            manifold.gradient_step(x, g, bad_lr)

    def each(a, fn):
        return tuple(fn(p) for p in a) if isinstance(a, tuple) else fn(a)

    def read_only(a):
        a = a.copy()
        a.flags.writeable = False
        return a

    for out, exc, regex in [
        (each(x, lambda a: a.astype(np.float32)), TypeError, "out has dtype float32 but x has float64"),
        (each(x, lambda a: np.empty(a.shape + (1,))), ValueError, "out must have shape"),
        (each(x, read_only), ValueError, "out must be a writeable array"),
    ]:
        before = snapshot(x)
        with pytest.raises(exc, match=regex):
            manifold.gradient_step(x, g, lr, out=out)
        assert same(x, before)
    # out may be uninitialized memory: its content is not checked.
    out = each(x, lambda a: np.full_like(a, np.nan))
    assert manifold.gradient_step(x, g, lr, out=out) is out


def test_random_point_keeps_refusing_other_dtypes():
    for manifold in (Sphere(3), Euclidean(2), Product([Sphere(2), Euclidean(1)])):
        for bad in (np.float16, np.int64, np.complex128):
            with pytest.raises(TypeError, match=rf"float32 or float64, got {np.dtype(bad).name}"):
                manifold.random_point(rng=0, dtype=bad)


def test_the_example_messages_of_the_policy():
    M = Sphere(3)
    x = np.array([1.0, 0.0, 0.0])
    with pytest.raises(ValueError) as info:
        M.exp(x, np.zeros((3, 1)))
    assert "expected shape (3,) for Sphere(3, retraction='exp', transport='projection'), got (3, 1)" in str(info.value)
    with pytest.raises(TypeError) as info:
        M.exp(x.astype(np.int64), np.zeros(3, dtype=np.int64))
    assert str(info.value) == (
        "exp: x must have dtype float32 or float64, got int64; convert it, e.g. x.astype(np.float64)"
    )
    # A (2, 3) batch is not one point of a 6-sphere.
    with pytest.raises(ValueError, match=r"expected shape \(3,\).*got \(2, 3\)"):
        M.dist(np.eye(2, 3), np.eye(2, 3))


# --- scale: off the manifold by 2x refused, by 500 eps accepted ----------------------------


POINT_METHODS = sorted(m for m, roles in SPECS.items() if P in roles)


def _scale_points(manifold, method, args, factor):
    out = list(args)
    for i, role in enumerate(SPECS[method]):
        if role == P:
            out[i] = _map_factors(
                manifold,
                lambda m, a: (a.astype(np.float64) * factor).astype(a.dtype) if is_spheres(m) else a,
                args[i],
            )
    return out


def _flat64(value):
    if isinstance(value, (tuple, list)):
        return np.concatenate([_flat64(v) for v in value])
    return np.atleast_1d(np.asarray(value, dtype=np.float64)).ravel()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", [n for n in CASES if n != "Euclidean3x2"])
def test_points_a_few_hundred_eps_off_are_accepted_and_2x_refused(name, dtype):
    manifold = CASES[name]()
    eps = float(np.finfo(dtype).eps)
    for method in POINT_METHODS:
        args = valid_args(manifold, method, dtype)
        fn = getattr(manifold, method)
        if method == "random_tangent":
            fn = lambda x, fn=fn: fn(x, rng=5)  # noqa: E731
        with pytest.raises(ValueError, match="off .*by up to 1\\b"):
            fn(*_scale_points(manifold, method, args, 2.0))
        if method == "check_tangent":
            continue  # its tangency test is relative to the point's norm: covered by check_point
        for factor in (1 + 500 * eps, 1 - 500 * eps):
            near = fn(*_scale_points(manifold, method, args, factor))
            exact = fn(*args)
            # Within the tolerance, x is treated as on the manifold: results
            # move by O(500 eps) (x3 for the maps that renormalize, x4 margin).
            np.testing.assert_allclose(_flat64(near), _flat64(exact), rtol=0,
                                       atol=2000 * eps * max(1.0, float(np.max(np.abs(_flat64(exact))))),
                                       err_msg=method)


@settings(max_examples=25, deadline=None)
@given(ulps=st.integers(-900, 900), seed=st.integers(0, 2**16))
def test_check_point_default_tolerance_is_point_atol(ulps, seed):
    M = Sphere(4)
    x = _point_np(M, np.random.default_rng(seed), np.float64)
    scaled = x * (1 + ulps * EPS64)
    # Accepted: the norm is off by |ulps| eps plus a few eps of rounding, < 1000 eps.
    assert M.check_point(scaled) is scaled
    assert point_atol(np.float64) == 1000 * EPS64 and point_atol(np.float32) == 1000 * EPS32
    with pytest.raises(ValueError, match=r"tolerance 2\.22e-13"):
        M.check_point(x * (1 + (1100 + abs(ulps)) * EPS64))


# --- zero steps keep the point bit for bit -----------------------------------------------------


def _few_ulps_off(m, x, ulps):
    if not is_spheres(m):
        return x
    return (x.astype(np.float64) * (1 + ulps * float(np.finfo(x.dtype).eps))).astype(x.dtype)


ZERO_STEP_CASES = {
    "Sphere7-exp": lambda: Sphere(7),
    "Sphere7-projection": lambda: Sphere(7, retraction="projection"),
    "Oblique5x6-axis0-exp": lambda: Oblique(5, 6),
    "Oblique5x6-axis1-projection": lambda: Oblique(5, 6, axis=1, retraction="projection"),
    # 5000 columns: several blocks of the compiled "lead" layout.
    "Oblique7x5000-exp": lambda: Oblique(7, 5000),
    "Oblique7x5000-projection": lambda: Oblique(7, 5000, retraction="projection"),
    "Euclidean4": lambda: Euclidean(4),
    "Product": lambda: Product([Oblique(3, 4), Sphere(5, retraction="projection"), Euclidean(2)]),
}


@pytest.fixture(params=["numba", "numpy"])
def kernels(request, monkeypatch):
    if request.param == "numba":
        pytest.importorskip("numba")
        assert _kernels.available()
    else:
        monkeypatch.setattr(_kernels, "gradient_step", lambda *args: False)
    return request.param


@pytest.mark.parametrize("ulps", [0, 3, -5])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(ZERO_STEP_CASES))
def test_zero_step_returns_the_point_bit_for_bit(name, dtype, ulps, kernels):
    manifold = ZERO_STEP_CASES[name]()
    rng = np.random.default_rng(1)
    x = _map_factors(manifold, lambda m: _few_ulps_off(m, _point_np(m, rng, dtype), ulps))
    zero = _map_factors(manifold, lambda m, a: np.zeros_like(a), x)
    before = snapshot(x)
    assert same(manifold.exp(x, zero), x)
    assert same(manifold.retr(x, zero), x)
    for other in ("exp", "projection"):  # both retractions of the sphere factors
        alt = _map_factors(manifold, lambda m: m.with_options(retraction=other) if is_spheres(m) else m)
        alt = Product(list(alt)) if isinstance(manifold, Product) else alt
        assert same(alt.retr(x, zero), x)
        assert same(alt.gradient_step(x, zero, 0.3), x)
    # A purely normal gradient (2x) has the tangent part 0 exactly: no step either.
    normal = _map_factors(manifold, lambda m, a: 2 * a if is_spheres(m) else np.zeros_like(a), x)
    assert same(manifold.gradient_step(x, normal, 0.3), x)
    assert same(x, before)
    # In place.
    y = snapshot(x)
    out = manifold.gradient_step(y, zero, 0.3, out=y)
    assert out is y and same(y, x)


@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape, axis", [((7, 5000), 0), ((5, 6), 0), ((6, 5), 1)])
@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_factors_with_a_zero_step_stay_while_the_others_move(retraction, shape, axis, dtype, inplace,
                                                             kernels):
    M = Oblique(*shape, axis=axis, retraction=retraction)
    rng = np.random.default_rng(2)
    x = _few_ulps_off(M, _point_np(M, rng, dtype), 4)
    g = rng.standard_normal(shape).astype(dtype)
    # Factors along the first index of these views: every third one gets a
    # zero gradient, the next a purely normal one (2x: tangent part 0 exactly).
    gv, xv = np.moveaxis(g, axis, 0), np.moveaxis(x, axis, 0)
    gv[:, 0::3] = 0.0
    gv[:, 1::3] = 2 * xv[:, 1::3]
    still = np.zeros(shape[1 - axis], dtype=bool)
    still[0::3] = still[1::3] = True
    still = np.expand_dims(still, axis)
    lr = 0.3
    # Reference for the moving factors, in plain NumPy from the formulas.
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    axes = (axis,)
    xx = np.sum(x64 * x64, axis=axes, keepdims=True)
    r = g64 - np.sum(x64 * g64, axis=axes, keepdims=True) / xx * x64
    t = lr * np.sqrt(np.sum(r * r, axis=axes, keepdims=True))
    if retraction == "exp":
        expected = np.cos(t) * x64 / np.sqrt(xx) - lr * np.sin(t) / np.where(t > 0, t, 1) * r
    else:
        expected = (x64 - lr * r) / np.sqrt(xx + t * t)
    y = x.copy()
    got = M.gradient_step(y, g, lr, out=y) if inplace else M.gradient_step(x, g, lr)
    mask = np.broadcast_to(still, shape)
    assert got[mask].tobytes() == x[mask].tobytes()
    assert np.all(np.any(got != x, axis=axis)[~still.reshape(-1)])  # the others moved
    np.testing.assert_allclose(got[~mask], expected[~mask], rtol=0, atol=30 * float(np.finfo(dtype).eps))


# --- project_point ------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["Sphere3", "Sphere2x3", "Oblique3x4-axis0", "Oblique3x4-axis1-projection",
                          "Oblique2x3x4-axis01-parallel"]),
    dtype=st.sampled_from([np.float64, np.float32]),
    log_scale=st.floats(-30, 30),
    seed=st.integers(0, 2**16),
)
def test_project_point_is_x_over_its_norm(name, dtype, log_scale, seed):
    M = CASES[name]()
    rng = np.random.default_rng(seed)
    z = (rng.standard_normal(M.shape) * 10.0**log_scale).astype(dtype)
    before = z.copy()
    p = M.project_point(z)
    assert p.dtype == dtype and p.shape == M.shape
    assert same(z, before)
    eps = float(np.finfo(dtype).eps)
    # Reference: plain NumPy in float64, x / ||x|| factor by factor.
    z64 = z.astype(np.float64)
    np.testing.assert_allclose(p, z64 / ref_norms(M, z64), rtol=0, atol=2 * eps)
    # On the manifold to rounding (2 eps), and a fixed point up to an ulp.
    np.testing.assert_allclose(ref_norms(M, p), 1.0, rtol=0, atol=2 * eps)
    np.testing.assert_allclose(M.project_point(p), p, rtol=0, atol=2 * eps)
    M.check_point(p)


def test_project_point_of_euclidean_and_product():
    E = Euclidean(2, 2)
    z = np.array([[3.0, -1.0], [0.0, 7.0]])
    p = E.project_point(z)
    assert p is not z and same(p, z)
    M = Product([Oblique(2, 2), Euclidean(2)])
    w, b = M.project_point((np.array([[3.0, 0.0], [4.0, -2.0]], np.float32), np.array([5.0, 6.0], np.float32)))
    assert w.dtype == b.dtype == np.float32
    np.testing.assert_array_equal(w, np.array([[0.6, 0.0], [0.8, -1.0]], np.float32))
    np.testing.assert_array_equal(b, [5.0, 6.0])


def test_project_point_refuses_zero_factors_and_non_finite_input():
    M = Oblique(3, 4)
    z = np.ones((3, 4))
    z[:, 1] = 0.0
    z[:, 3] = 0.0
    with pytest.raises(ValueError, match=r"project_point: x has 2 of 4 factor\(s\) of norm 0"):
        M.project_point(z)
    with pytest.raises(ValueError, match=r"x has 1 non-finite"):
        M.project_point(_one_nan() + 1.0)
    P = Product([Euclidean(1), Sphere(2)])
    with pytest.raises(ValueError, match=r"^factor 1 \(Sphere\(2.*\)\): project_point: x has 1 of 1"):
        P.project_point((np.ones(1), np.zeros(2)))


def _one_nan():
    a = np.zeros((3, 4))
    a[1, 2] = np.nan
    return a


# --- the unchecked view ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", list(CASES))
def test_unchecked_gives_the_same_results_bit_for_bit(name, dtype):
    manifold = CASES[name]()
    fast = manifold.unchecked
    assert type(fast) is type(manifold) and fast == manifold and hash(fast) == hash(manifold)
    assert manifold.unchecked is fast and fast.unchecked is fast
    for method in CHECKED_METHODS:
        args = valid_args(manifold, method, dtype, seed=3)
        kwargs = {"rng": 5} if method == "random_tangent" else {}
        checked = getattr(manifold, method)(*args, **kwargs)
        raw = getattr(fast, method)(*args, **kwargs)
        assert same(_as_tuple(checked), _as_tuple(raw)), method


def _as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def test_unchecked_does_not_validate():
    M = Sphere(3)
    x = np.array([1.0, 0.0, 0.0])
    with pytest.raises(ValueError):
        M.exp(x, np.zeros((3, 1)))
    M.unchecked.exp(x, np.zeros((3, 1)))  # not refused: a wrong shape is the caller's problem
    assert isinstance(M.unchecked.dist(2 * x, x), float)  # an off point is not refused
    # Product: the raw maps of the product call the factors' raw maps.
    P = Product([Sphere(3), Euclidean(1)])
    with pytest.raises(ValueError):
        P.exp((x, np.zeros(1)), (np.zeros((3, 1)), np.zeros(1)))
    P.unchecked.exp((x, np.zeros(1)), (np.zeros((3, 1)), np.zeros(1)))  # not refused


def test_unchecked_survives_copy_pickle_and_with_options():
    M = Oblique(3, 4)
    fast = M.unchecked
    again = pickle.loads(pickle.dumps(fast))
    assert again == M and again.unchecked is again
    x = 2 * M.random_point(rng=0)
    u = np.ones((3, 4))
    assert again.proj(x, u).shape == (3, 4)  # still unchecked: the off point is not refused
    plain = pickle.loads(pickle.dumps(M))
    with pytest.raises(ValueError, match="off"):
        plain.proj(x, u)
    # A copy is checked again, and with_options does not keep a stale view.
    with pytest.raises(ValueError, match="off"):
        copy.copy(fast).proj(x, u)
    other = M.with_options(retraction="projection")
    assert other.unchecked.retraction == "projection" and M.unchecked.retraction == "exp"


def test_unchecked_keeps_a_subclass_override():
    class Unnormalized(Sphere):
        def retr(self, x, u):
            return x + u

    M = Unnormalized(2)
    x, u = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    np.testing.assert_array_equal(M.unchecked.retr(x, u), [1.0, 1.0])
    np.testing.assert_allclose(M.unchecked.exp(x, u), [np.cos(1.0), np.sin(1.0)], rtol=0, atol=1e-15)


@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_exp_and_retr_read_u_through_its_tangent_part(retraction):
    # Tangency is not checked: a normal component of u is ignored (not an error).
    M = Oblique(4, 3, retraction=retraction)
    rng = np.random.default_rng(4)
    x = _point_np(M, rng, np.float64)
    u = _tangent_np(M, x, rng)
    with_normal = u + 0.7 * x
    np.testing.assert_allclose(M.exp(x, with_normal),
                               M.exp(x, u), rtol=0, atol=8 * EPS64)
    np.testing.assert_allclose(M.retr(x, with_normal), M.retr(x, u), rtol=0, atol=8 * EPS64)


# --- random malformed input (hypothesis) ----------------------------------------------------

_METHODS = sorted(m for m in SPECS if m not in ("check_point", "check_tangent"))
_BAD_DTYPES = [np.int8, np.int64, np.uint16, np.bool_, np.float16, np.complex64, np.longdouble]


def _corrupt(data, manifold, args, method):
    """One random corruption of one array argument: (new args, index, kind)."""
    arrays = [i for i, role in enumerate(SPECS[method]) if role != LR]
    i = data.draw(st.sampled_from(arrays), label="argument")
    value = args[i]
    parts = list(value) if isinstance(manifold, Product) else [value]
    k = data.draw(st.integers(0, len(parts) - 1), label="factor")
    a = parts[k]
    kind = data.draw(st.sampled_from(
        ["dtype", "shape", "nonfinite", "huge", "scale", "empty", "parts"]), label="kind")
    if kind == "parts" and not isinstance(manifold, Product):
        kind = "shape"
    if kind == "dtype":
        a = a.astype(data.draw(st.sampled_from(_BAD_DTYPES), label="dtype"))
    elif kind == "shape":
        axis = data.draw(st.integers(0, a.ndim), label="axis")
        size = data.draw(st.integers(2, 3), label="size")
        a = np.repeat(np.expand_dims(a, axis), size, axis=axis)
    elif kind == "nonfinite":
        a = a.copy()
        a.flat[data.draw(st.integers(0, a.size - 1), label="where")] = data.draw(
            st.sampled_from([np.nan, np.inf, -np.inf]), label="value")
    elif kind == "huge":
        with np.errstate(over="ignore"):
            a = (a * data.draw(st.sampled_from([1e30, 1e150, 1e300]), label="factor")).astype(a.dtype)
        if not np.all(np.isfinite(a)):
            kind = "nonfinite"
    elif kind == "scale":
        a = a * a.dtype.type(data.draw(st.floats(0.25, 4.0), label="scale"))
    elif kind == "empty":
        a = np.zeros((0,) + a.shape[1:], dtype=a.dtype)
    if kind == "parts":
        parts = parts[:-1] if data.draw(st.booleans(), label="fewer") else parts + parts[:1]
    else:
        parts[k] = a
    new = tuple(parts) if isinstance(manifold, Product) else parts[0]
    return _replace(args, i, new), i, kind


def _finite(result):
    if isinstance(result, (tuple, list)):
        return all(_finite(r) for r in result)
    return bool(np.all(np.isfinite(result)))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_random_malformed_input_is_refused_or_answered_correctly(data):
    """Random corruptions of one argument of a random method of a random manifold.

    Either a TypeError/ValueError whose message names the method, or an answer:
    then the corruption was one the policy accepts (a scaled vector, a scaled
    Euclidean point, huge finite values), and the answer is what the same call
    gives on the clean arguments transformed the same way, or finite and on the
    manifold; the arguments are never modified.
    """
    name = data.draw(st.sampled_from(sorted(CASES)), label="manifold")
    manifold = CASES[name]()
    method = data.draw(st.sampled_from(_METHODS), label="method")
    dtype = data.draw(st.sampled_from([np.float32, np.float64]), label="dtype")
    args = valid_args(manifold, method, dtype=dtype, seed=data.draw(st.integers(0, 99)))
    bad, i, kind = _corrupt(data, manifold, args, method)
    before = snapshot(bad)
    role = SPECS[method][i]
    try:
        result = getattr(manifold, method)(*bad)
    except (TypeError, ValueError) as err:
        assert method in str(err), str(err)
        if kind in ("scale", "huge"):
            # finite values change nothing but the norm: refused only for a point
            # that is then off a sphere factor
            factors = manifold.manifolds if isinstance(manifold, Product) else (manifold,)
            assert role in (P, A) and any(is_spheres(m) for m in factors), str(err)
            assert "is off" in str(err), str(err)
    else:
        # Accepted: only value changes of the kinds the policy allows.
        assert kind in ("scale", "huge"), (kind, method)
        if role == P and isinstance(manifold, (Sphere, Oblique)):
            # a point is accepted only within point_atol of the sphere: a scale of ~1
            clean = getattr(manifold, method)(*args)
            np.testing.assert_allclose(np.asarray(result, dtype=np.float64),
                                       np.asarray(clean, dtype=np.float64),
                                       rtol=0, atol=1e-3 if dtype == np.float32 else 1e-9)
        if method in ("exp", "retr", "gradient_step", "project_point") and _finite(result):
            assert manifold.violation(result) <= point_atol(dtype)
    for got, want in zip(bad, before):
        assert same(got, want), "an argument was modified"
