"""Errors at the public boundary: the right exception, and a message that says
what was expected and what came."""

import re
import warnings

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere

SPHERE_LIKE = [Sphere(3), Sphere(2, 3), Oblique(3, 4), Oblique(3, 4, axis=1)]
SPHERE_LIKE_IDS = ["Sphere3", "Sphere2x3", "Oblique3x4", "Oblique3x4-axis1"]
ARRAYS = SPHERE_LIKE + [Euclidean(3, 2)]
ARRAYS_IDS = SPHERE_LIKE_IDS + ["Euclidean3x2"]


def _off_by(manifold, point, factor):
    """The point with its first sphere factor scaled by ``factor``."""
    bad = point.copy()
    if isinstance(manifold, Sphere):
        bad *= factor
    elif manifold.axis == 0:
        bad[:, 0] *= factor
    else:
        bad[0, :] *= factor
    return bad


# --- check_point ----------------------------------------------------------------------


@pytest.mark.parametrize("manifold", ARRAYS, ids=ARRAYS_IDS)
def test_check_point_rejects_a_wrong_shape_naming_both_shapes(manifold):
    wrong = np.ones(manifold.shape + (2,))
    expected, got = re.escape(str(manifold.shape)), re.escape(str(wrong.shape))
    with pytest.raises(ValueError, match=rf"shape {expected}.*got {got}"):
        manifold.check_point(wrong)


@pytest.mark.parametrize("manifold", ARRAYS, ids=ARRAYS_IDS)
@pytest.mark.parametrize("bad_dtype", [np.int64, np.int32, np.float16, np.complex128])
def test_check_point_rejects_a_wrong_dtype_naming_it(manifold, bad_dtype):
    good = manifold.random_point(rng=0)
    wrong = np.round(good).astype(bad_dtype) if np.dtype(bad_dtype).kind == "i" else good.astype(bad_dtype)
    with pytest.raises(TypeError, match=rf"float32 or float64, got {np.dtype(bad_dtype).name}"):
        manifold.check_point(wrong)


@pytest.mark.parametrize("manifold", ARRAYS, ids=ARRAYS_IDS)
def test_check_point_rejects_a_list(manifold):
    as_list = manifold.random_point(rng=0).tolist()
    with pytest.raises(TypeError, match=r"numpy\.ndarray, got list"):
        manifold.check_point(as_list)


@pytest.mark.parametrize("manifold", ARRAYS, ids=ARRAYS_IDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_point_rejects_non_finite_entries_counting_them(manifold, bad):
    x = manifold.random_point(rng=0)
    x.flat[0] = bad
    x.flat[-1] = bad
    with pytest.raises(ValueError, match=r"\b2 non-finite"):
        manifold.check_point(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("manifold", SPHERE_LIKE, ids=SPHERE_LIKE_IDS)
@pytest.mark.parametrize("factor, amount", [(1.1, "0.1"), (0.5, "0.5"), (1.001, "0.001")])
def test_check_point_says_by_how_much_a_point_is_off(manifold, dtype, factor, amount):
    x = _off_by(manifold, manifold.random_point(rng=0, dtype=dtype), factor)
    with pytest.raises(ValueError, match=rf"off .*by up to {re.escape(amount)}\b"):
        manifold.check_point(x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_check_point_tolerance_comes_from_the_dtype_and_atol(dtype):
    manifold = Sphere(4)
    x = manifold.random_point(rng=0, dtype=dtype)
    eps = float(np.finfo(dtype).eps)
    slightly_off = (x.astype(np.float64) * (1 + 10 * eps)).astype(dtype)
    assert manifold.check_point(slightly_off) is slightly_off  # within 1000 eps
    off = (x.astype(np.float64) * (1 + 5000 * eps)).astype(dtype)
    with pytest.raises(ValueError, match="norm off 1"):
        manifold.check_point(off)
    assert manifold.check_point(off, atol=1e-2) is off


def test_check_point_counts_the_factors_that_are_off():
    manifold = Oblique(3, 5)
    x = manifold.random_point(rng=0)
    x[:, 1] *= 2.0
    x[:, 3] *= 0.9
    with pytest.raises(ValueError, match=r"2 of 5 factor\(s\).*by up to 1\b"):
        manifold.check_point(x)


# --- check_tangent -----------------------------------------------------------------


@pytest.mark.parametrize("manifold", SPHERE_LIKE, ids=SPHERE_LIKE_IDS)
def test_check_tangent_rejects_a_normal_component_saying_how_large(manifold):
    x = manifold.random_point(rng=0)
    u = manifold.random_tangent(x, rng=1) + 0.25 * x
    with pytest.raises(ValueError, match=r"not tangent.*up to 0\.25\b"):
        manifold.check_tangent(x, u)


@pytest.mark.parametrize("manifold", ARRAYS, ids=ARRAYS_IDS)
@pytest.mark.parametrize("point_dtype, vector_dtype", [(np.float64, np.float32), (np.float32, np.float64)])
def test_check_tangent_rejects_a_dtype_mismatch_naming_both(manifold, point_dtype, vector_dtype):
    x = manifold.random_point(rng=0, dtype=point_dtype)
    u = manifold.random_tangent(x, rng=1).astype(vector_dtype)
    with pytest.raises(
        TypeError, match=rf"{np.dtype(vector_dtype).name}.*point has {np.dtype(point_dtype).name}"
    ):
        manifold.check_tangent(x, u)


@pytest.mark.parametrize("manifold", SPHERE_LIKE, ids=SPHERE_LIKE_IDS)
def test_check_tangent_checks_the_point_and_the_vector_shape(manifold):
    x = manifold.random_point(rng=0)
    u = manifold.random_tangent(x, rng=1)
    with pytest.raises(ValueError, match="norm off 1"):
        manifold.check_tangent(2.0 * x, u)
    with pytest.raises(ValueError, match="tangent vector must have shape"):
        manifold.check_tangent(x, u[..., :1])
    assert manifold.check_tangent(x, u) is u


# --- Product ---------------------------------------------------------------------------

PRODUCT = Product([Oblique(3, 4), Euclidean(4)])


@pytest.mark.parametrize("n_parts", [1, 3])
def test_product_check_point_needs_one_part_per_factor(n_parts):
    x = PRODUCT.random_point(rng=0)
    wrong = (x + x)[:n_parts]
    with pytest.raises(ValueError, match=rf"must have 2 parts, got {n_parts}"):
        PRODUCT.check_point(wrong)


@pytest.mark.parametrize("not_a_tuple", [np.zeros((3, 4)), {"w": 0}, 3.0], ids=["ndarray", "dict", "float"])
def test_product_check_point_needs_a_tuple(not_a_tuple):
    with pytest.raises(TypeError, match=rf"tuple of 2 arrays, got {type(not_a_tuple).__name__}"):
        PRODUCT.check_point(not_a_tuple)


def test_product_errors_name_the_factor():
    w, b = PRODUCT.random_point(rng=0)
    w_off = w.copy()
    w_off[:, 2] *= 3.0
    with pytest.raises(ValueError, match=r"factor 0 \(Oblique.*by up to 2\b"):
        PRODUCT.check_point((w_off, b))
    with pytest.raises(TypeError, match=r"factor 1 \(Euclidean.*float16"):
        PRODUCT.check_point((w, b.astype(np.float16)))
    u = PRODUCT.random_tangent((w, b), rng=1)
    with pytest.raises(ValueError, match=r"factor 0 .*not tangent"):
        PRODUCT.check_tangent((w, b), (u[0] + w, u[1]))
    as_list = [w, b]
    assert PRODUCT.check_point(as_list) is as_list  # a list is accepted


# --- constructors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda: Sphere(), TypeError, "at least one dimension"),
        (lambda: Sphere(0), ValueError, r"positive sizes, got \(0,\)"),
        (lambda: Sphere(3, -1), ValueError, "positive sizes"),
        (lambda: Sphere(2.5), TypeError, r"ints, got \(2\.5,\)"),
        (lambda: Sphere("3"), TypeError, "ints"),
        (lambda: Sphere(True), TypeError, "ints"),
        (lambda: Sphere(3, retraction="bogus"), ValueError, r"retraction must be one of .*'exp'.*got 'bogus'"),
        (lambda: Sphere(3, transport="nope"), ValueError, r"transport must be one of .*'parallel'.*got 'nope'"),
        (lambda: Oblique(3, 4, retraction="qr"), ValueError, "retraction must be one of"),
        (lambda: Oblique(3, 4, axis=2), ValueError, r"axis 2 is out of range for shape \(3, 4\)"),
        (lambda: Oblique(3, 4, axis=-3), ValueError, "out of range"),
        (lambda: Oblique(3, 4, axis=(0, 0)), ValueError, "repeats an axis"),
        (lambda: Oblique(3, 4, axis=(1, -1)), ValueError, "repeats an axis"),
        (lambda: Oblique(3, 4, axis=1.0), TypeError, r"axis must be an int .*got 1\.0"),
        (lambda: Oblique(3, 4, axis=()), TypeError, "non-empty tuple"),
        (lambda: Oblique(3, 4, shape=(3, 4)), TypeError, "either positionally or as shape="),
        (lambda: Oblique(3, 4, axes=0), TypeError, "unexpected keyword argument"),
        (lambda: Euclidean(), TypeError, "at least one dimension"),
        (lambda: Product([]), ValueError, "at least one manifold"),
        (lambda: Product([3]), TypeError, "must be Manifolds, got int"),
        (lambda: Product([Sphere(3), "Euclidean(2)"]), TypeError, "got str"),
        (lambda: Product(Sphere(3)), TypeError, "sequence of manifolds, got Sphere"),
    ],
)
def test_constructors_reject_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_oblique_normalizes_negative_axes():
    assert Oblique(3, 4, axis=-1) == Oblique(3, 4, axis=1)
    assert Oblique(shape=(2, 3, 4), axis=(1, 0)) == Oblique(shape=(2, 3, 4), axis=(0, 1))
    assert Oblique(3, 4, axis=-1).axis == 1


def test_product_flattens_nested_products():
    inner = Product([Sphere(3), Euclidean(2)])
    nested = Product([inner, Oblique(2, 3)])
    assert nested.manifolds == (Sphere(3), Euclidean(2), Oblique(2, 3))
    assert nested.dim == 2 + 2 + 3


# --- random_point / random_tangent: dtype and seeding ---------------------------------

ALL = [Sphere(3), Oblique(3, 4), Euclidean(3, 2), Product([Oblique(3, 4), Euclidean(4)])]
ALL_IDS = ["Sphere3", "Oblique3x4", "Euclidean3x2", "Product"]


@pytest.mark.parametrize("manifold", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("bad_dtype", [np.int32, np.float16, "complex128", bool])
def test_random_point_rejects_non_float_dtypes(manifold, bad_dtype):
    with pytest.raises(TypeError, match=rf"float32 or float64, got {np.dtype(bad_dtype).name}"):
        manifold.random_point(dtype=bad_dtype)


@pytest.mark.parametrize("manifold", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("bad_rng", ["seed", 1.5, np.random.RandomState(0)], ids=["str", "float", "RandomState"])
def test_random_point_rejects_what_is_not_a_seed_or_generator(manifold, bad_rng):
    with pytest.raises(TypeError, match=rf"rng must be None, an int or a numpy.random.Generator, got {type(bad_rng).__name__}"):
        manifold.random_point(rng=bad_rng)
    x = manifold.random_point(rng=0)
    with pytest.raises(TypeError, match="rng must be"):
        manifold.random_tangent(x, rng=bad_rng)


def _same(a, b):
    a, b = (a if isinstance(a, tuple) else (a,)), (b if isinstance(b, tuple) else (b,))
    return all(np.array_equal(p, q) for p, q in zip(a, b))


@pytest.mark.parametrize("manifold", ALL, ids=ALL_IDS)
def test_an_int_seed_reproduces_and_a_generator_advances(manifold):
    assert _same(manifold.random_point(rng=0), manifold.random_point(rng=0))
    assert not _same(manifold.random_point(rng=0), manifold.random_point(rng=1))
    gen = np.random.default_rng(0)
    first, second = manifold.random_point(rng=gen), manifold.random_point(rng=gen)
    assert not _same(first, second)
    # A Generator is used as is: the same stream as seeding it with the int.
    assert _same(first, manifold.random_point(rng=0))
    x = first
    assert _same(manifold.random_tangent(x, rng=5), manifold.random_tangent(x, rng=5))
    gen = np.random.default_rng(5)
    assert not _same(manifold.random_tangent(x, rng=gen), manifold.random_tangent(x, rng=gen))


@pytest.mark.parametrize("manifold", ALL, ids=ALL_IDS)
def test_sampling_never_touches_the_global_random_state(manifold):
    np.random.seed(1234)
    state = np.random.get_state()
    x = manifold.random_point()
    manifold.random_point(rng=None, dtype=np.float32)
    manifold.random_tangent(x)
    after = np.random.get_state()
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    # rng=None is a fresh generator: two calls differ.
    assert not _same(manifold.random_point(), manifold.random_point())


# --- inverse of the projection retraction ------------------------------------------------


@pytest.mark.parametrize(
    "manifold", [Sphere(3, retraction="projection"), Oblique(3, 4, retraction="projection")],
    ids=["Sphere3", "Oblique3x4"],
)
@pytest.mark.parametrize("cosine", [-1e-6, -0.5, -1.0])
def test_inverse_of_the_projection_retraction_needs_a_positive_inner_product(manifold, cosine):
    """y = cos(t) x + sin(t) v with cos(t) <= 0 is not retr(x, u) for any u."""
    rng = np.random.default_rng(0)
    x = manifold.random_point(rng=rng)
    v = manifold.random_tangent(x, rng=rng)
    v = v / np.linalg.norm(v, axis=0)  # unit in every factor
    y = cosine * x + np.sqrt(1.0 - cosine**2) * v
    if isinstance(manifold, Oblique):
        y[:, 1:] = x[:, 1:]  # only one factor is at fault
    with pytest.raises(ValueError, match=r"<x, y> > 0.*got min <x, y> = "):
        manifold.inverse_retr(x, y)
    # The log (the exponential retraction's inverse) is defined there.
    assert np.all(np.isfinite(manifold.log(x, y)))


# --- the input policy at the entry points (more in test_input_policy.py) ---------------------


def test_minimize_validates_x0_once_with_the_policy_message():
    from spherenet import minimize

    M = Sphere(3)
    x0 = np.array([0.0, 0.6, 0.8])
    cost = lambda x: float(x[0])  # noqa: E731
    grad = lambda x: np.array([1.0, 0.0, 0.0])  # noqa: E731
    with pytest.raises(ValueError, match=r"x0 is off Sphere\(3.*by up to 1\b.*M\.project_point\(x0\)"):
        minimize(cost, M, x0=2 * x0, grad=grad)
    with pytest.raises(TypeError, match=r"x0 must have dtype float32 or float64, got int64"):
        minimize(cost, M, x0=np.array([0, 0, 1]), grad=grad)
    with pytest.raises(ValueError, match=r"expected shape \(3,\).*got \(3, 1\)"):
        minimize(cost, M, x0=x0[:, None], grad=grad)
    # Within point_atol x0 is accepted, and the result is back on the sphere.
    res = minimize(cost, M, x0=x0 * (1 + 300 * np.finfo(float).eps), grad=grad, maxiter=50)
    np.testing.assert_allclose(res.x, [-1.0, 0.0, 0.0], atol=1e-6)


def test_a_float32_point_cast_to_float64_must_be_projected_first():
    M = Oblique(3, 4)
    x32 = M.random_point(rng=0, dtype=np.float32)
    x64 = x32.astype(np.float64)  # off unit norm by ~1e-8 in float64
    with pytest.raises(ValueError, match=r"x is off .*tolerance 2\.22e-13.*project_point\(x\)"):
        M.proj(x64, np.ones((3, 4)))
    fixed = M.project_point(x64)
    np.testing.assert_allclose(fixed, x64, rtol=0, atol=2 * np.finfo(np.float32).eps)
    M.proj(fixed, np.ones((3, 4)))


def test_product_parts_are_checked_with_their_factor_named():
    M = Product([Oblique(3, 4), Euclidean(4)])
    w, b = M.random_point(rng=0)
    with pytest.raises(ValueError, match=r"^factor 0 \(Oblique\(shape=\(3, 4\).*\)\): exp: x is off"):
        M.exp((2 * w, b), (np.zeros_like(w), np.zeros_like(b)))
    with pytest.raises(TypeError, match=r"^factor 1 \(Euclidean\(4\)\): exp: u has dtype float32 but x has float64"):
        M.exp((w, b), (np.zeros_like(w), np.zeros(4, np.float32)))
    with pytest.raises(ValueError, match=r"exp: u must have 2 parts, got 1"):
        M.exp((w, b), (np.zeros_like(w),))


def test_atol_must_be_a_non_negative_number_or_none():
    M = Sphere(3)
    x = np.array([1.0, 0.0, 0.0])
    assert M.check_point(x, atol=0) is x and M.check_point(x, atol=None) is x
    assert M.check_point(x, atol=0.5) is x
    for bad in (-1e-3, True, False, float("nan"), "1e-3", 1j):
        with pytest.raises(ValueError, match=r"^atol must be a non-negative number or None, got "
                                             + re.escape(repr(bad)) + "$"):
            M.check_point(x, atol=bad)
        with pytest.raises(ValueError, match=r"^atol must be a non-negative number or None"):
            M.check_tangent(x, np.zeros(3), atol=bad)


@pytest.mark.parametrize("make", [lambda *s: Sphere(*s), lambda *s: Euclidean(*s),
                                  lambda *s: Oblique(shape=s)], ids=["Sphere", "Euclidean", "Oblique"])
def test_shape_errors_name_the_shape(make):
    with pytest.raises(TypeError, match=r"^shape needs at least one dimension, got none$"):
        make()
    with pytest.raises(ValueError, match=r"^shape must have positive sizes, got \(3, 0\)$"):
        make(3, 0)
    with pytest.raises(TypeError, match=r"^shape must be given as ints, got \(3, 2\.0\)$"):
        make(3, 2.0)


def test_a_huge_negative_entry_is_measured_without_overflow():
    # max |x| comes from the most negative entry here: it must send the norm to the
    # rescaling path, which reports the true distance to the sphere, not inf
    for M, x in [(Sphere(3), np.array([-1e200, 0.0, 0.0])),
                 (Oblique(3, 2), np.array([[-1e200, 1.0], [0.0, 0.0], [0.0, 0.0]]))]:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=r"1 of \d factor\(s\) have norm off 1 by up "
                                                 r"to 1e\+200 "):
                M.check_point(x)


def test_oblique_constructor_messages():
    with pytest.raises(TypeError, match=r"^give the shape either positionally or as shape=, "
                                        r"not both$"):
        Oblique(3, 2, shape=(3, 2))
    with pytest.raises(TypeError, match=r"^unexpected keyword argument\(s\): bar, foo$"):
        Oblique(3, 2, foo=1, bar=2)


def test_empty_product_message():
    with pytest.raises(ValueError, match=r"^Product needs at least one manifold, got none$"):
        Product([])


def test_with_options_names_the_option():
    for M in (Sphere(3), Oblique(3, 2)):
        with pytest.raises(ValueError, match=r"^retraction must be one of \['exp', 'projection'\], "
                                             r"got 'bogus'$"):
            M.with_options(retraction="bogus")
        with pytest.raises(ValueError, match=r"^transport must be one of \['parallel', "
                                             r"'projection'\], got 'bogus'$"):
            M.with_options(transport="bogus")
