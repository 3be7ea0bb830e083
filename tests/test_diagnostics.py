"""Taylor checks of gradients, Hessians and retractions (spherenet.diagnostics)."""

import dataclasses
import sys

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.diagnostics import (
    GradientCheck,
    HessianCheck,
    RetractionCheck,
    check_gradient,
    check_hessian,
    check_retraction,
)

EPS = np.finfo(np.float64).eps
SLOPE_ATOL = 0.1

_A = np.random.default_rng(42).standard_normal((6, 6))
A = _A + _A.T  # symmetric: the Euclidean Hessian of x' A x is 2A


def rayleigh(x):
    """x' A x for a vector, sum_j x_j' A x_j for the columns of a matrix."""
    return anp.sum(x * anp.dot(A, x))


def rayleigh_egrad(x):
    return 2.0 * A @ x


def rayleigh_ehess(x, u):
    return 2.0 * A @ u


MANIFOLDS = [
    Sphere(6),
    Sphere(6, retraction="projection"),
    Oblique(6, 4),
    Oblique(6, 4, retraction="projection"),
]
IDS = [f"{type(m).__name__}-{m.retraction}" for m in MANIFOLDS]


# --- gradients -------------------------------------------------------------------------


@pytest.mark.parametrize("manifold", MANIFOLDS, ids=IDS)
@pytest.mark.parametrize("grad", [None, rayleigh_egrad], ids=["autograd", "explicit"])
def test_right_gradient_has_slope_two(manifold, grad):
    check = check_gradient(manifold, rayleigh, grad, rng=0)
    assert isinstance(check, GradientCheck)
    assert not check.exact
    assert abs(check.slope - 2.0) < SLOPE_ATOL
    assert check.expected_slope == 2.0
    assert check.tangency_residual < 100 * EPS
    assert check.passed


@pytest.mark.parametrize("manifold", MANIFOLDS, ids=IDS)
@pytest.mark.parametrize("factor", [2.0, -1.0], ids=["twice", "sign-flipped"])
def test_wrong_gradient_has_slope_one_and_fails(manifold, factor):
    check = check_gradient(manifold, rayleigh, lambda x: factor * rayleigh_egrad(x), rng=0)
    assert abs(check.slope - 1.0) < SLOPE_ATOL
    assert not check.passed
    assert "FAILED" in str(check)


def test_gradient_check_along_exp_and_at_a_given_point_and_direction():
    manifold = Sphere(6, retraction="projection")
    x = manifold.random_point(rng=1)
    d = manifold.random_tangent(x, rng=2)
    check = check_gradient(manifold, rayleigh, rayleigh_egrad, x=x, d=d, curve="exp")
    assert check.curve == "exp" and check.passed
    # The first-order model at h: f(x) + h <grad f(x), d>, recomputed independently.
    h = check.steps[-1]
    rgrad = manifold.proj(x, rayleigh_egrad(x))
    expected = abs(rayleigh(manifold.exp(x, h * d)) - rayleigh(x) - h * rgrad @ d)
    np.testing.assert_allclose(check.errors[-1], expected, rtol=1e-12)


def test_gradient_that_is_not_tangent_fails_on_tangency():
    class BrokenSphere(Sphere):
        def egrad2rgrad(self, x, egrad):
            return egrad  # forgets the projection

    manifold = BrokenSphere(6)
    check = check_gradient(manifold, rayleigh, rayleigh_egrad, rng=0)
    assert check.tangency_residual > 1e-3
    assert not check.passed


def test_linear_model_exact_on_euclidean_space_passes():
    b = np.arange(1.0, 5.0)
    check = check_gradient(Euclidean(4), lambda x: anp.sum(b * x) + 3.0, rng=0)
    assert check.exact and np.isnan(check.slope)
    assert np.all(check.errors < 1e-13)
    assert check.passed
    assert "exact" in str(check)


# --- Hessians ----------------------------------------------------------------------------


@pytest.mark.parametrize("manifold", MANIFOLDS, ids=IDS)
@pytest.mark.parametrize(
    "derivatives", [(None, None), (rayleigh_egrad, rayleigh_ehess), (rayleigh_egrad, None)],
    ids=["autograd", "explicit", "explicit-grad-autograd-hess"],
)
def test_right_hessian_has_slope_three(manifold, derivatives):
    grad, hess = derivatives
    check = check_hessian(manifold, rayleigh, grad, hess, rng=0)
    assert isinstance(check, HessianCheck)
    assert abs(check.slope - 3.0) < SLOPE_ATOL
    assert check.tangency_residual < 100 * EPS
    assert check.symmetry_defect < 100 * EPS
    assert check.passed


@pytest.mark.parametrize("manifold", MANIFOLDS, ids=IDS)
def test_hessian_along_the_retraction_has_slope_three(manifold):
    # Both retractions of the sphere are of second order.
    check = check_hessian(manifold, rayleigh, rayleigh_egrad, rayleigh_ehess, rng=0, curve="retr")
    assert check.curve == "retr"
    assert abs(check.slope - 3.0) < SLOPE_ATOL and check.passed


@pytest.mark.parametrize("manifold", MANIFOLDS, ids=IDS)
def test_wrong_hessian_has_slope_two_and_fails(manifold):
    check = check_hessian(
        manifold, rayleigh, rayleigh_egrad, lambda x, u: 2.0 * rayleigh_ehess(x, u), rng=0
    )
    assert abs(check.slope - 2.0) < SLOPE_ATOL
    assert not check.passed


def test_non_symmetric_hessian_fails_on_symmetry():
    # <(B - B') d, d> = 0: the Taylor slope cannot see an antisymmetric error,
    # the symmetry test does.
    skew = np.triu(np.ones((6, 6)), 1)
    skew = skew - skew.T
    check = check_hessian(
        Sphere(6), rayleigh, rayleigh_egrad, lambda x, u: rayleigh_ehess(x, u) + skew @ u, rng=0
    )
    assert abs(check.slope - 3.0) < SLOPE_ATOL
    assert check.symmetry_defect > 1e-3
    assert not check.passed


def test_wrong_gradient_spoils_the_hessian_check():
    check = check_hessian(Sphere(6), rayleigh, lambda x: -rayleigh_egrad(x), rayleigh_ehess, rng=0)
    assert abs(check.slope - 1.0) < SLOPE_ATOL and not check.passed


def test_quadratic_model_exact_on_euclidean_space_passes():
    check = check_hessian(Euclidean(6), lambda x: x @ A @ x + anp.sum(x), rng=0)
    assert check.exact and check.passed
    assert np.all(check.errors < 1e-12)


def test_error_above_rounding_only_for_a_few_steps_is_still_fitted():
    # f = ||x||^2 + 1e-10 x_1^8 from x = e_0 along e_1: the quadratic model
    # misses only 1e-10 h^8, above rounding for the 4 largest steps alone.
    x, d = np.eye(3)[0], np.eye(3)[1]
    check = check_hessian(Euclidean(3), lambda p: anp.sum(p**2) + 1e-10 * p[1] ** 8, x=x, d=d)
    fitted = check.steps[check.fit_range]
    assert not check.exact and 3 <= len(fitted) < 11 and fitted[-1] == 1.0
    assert abs(check.slope - 8.0) < 0.5 and check.passed


# --- retractions ---------------------------------------------------------------------------


@pytest.mark.parametrize("manifold", [Sphere(6), Oblique(6, 4), Product([Sphere(3), Euclidean(2)])])
def test_exp_against_itself_is_exact(manifold):
    check = check_retraction(manifold, rng=0)
    assert isinstance(check, RetractionCheck)
    assert check.exact and check.on_manifold and check.passed
    assert np.all(check.errors <= 10 * EPS)


@pytest.mark.parametrize(
    "manifold", [Sphere(6, retraction="projection"), Oblique(6, 4, retraction="projection")]
)
def test_projection_retraction_is_second_order(manifold):
    check = check_retraction(manifold, rng=0)
    assert abs(check.slope - 3.0) < SLOPE_ATOL
    assert check.expected_slope == 3.0 and check.passed
    # dist(R_x(hu), Exp_x(hu)) = h - arctan(h) for a unit u on one sphere.
    if isinstance(manifold, Sphere):
        h = check.steps[-10:]
        np.testing.assert_allclose(check.errors[-10:], h - np.arctan(h), rtol=1e-8)


class _FirstOrderSphere(Sphere):
    """(x + u + ||u||^2 w) / norm: agrees with exp to first order only."""

    def retr(self, x, u):
        w = x + u + np.sum(u * u) * self.proj(x, np.ones_like(x))
        return w / np.linalg.norm(w)


def test_first_order_retraction_has_slope_two():
    manifold = _FirstOrderSphere(6, retraction="projection")
    second = check_retraction(manifold, rng=0)
    first = check_retraction(manifold, rng=0, order=1)
    assert abs(second.slope - 2.0) < SLOPE_ATOL
    assert not second.passed
    assert first.expected_slope == 2.0 and first.passed


def test_retraction_that_leaves_the_manifold_fails():
    class Unnormalized(Sphere):
        def retr(self, x, u):
            return x + u

    check = check_retraction(Unnormalized(6), rng=0)
    assert not check.on_manifold
    assert not check.passed
    assert "OFF" in str(check)


# --- products, dtypes, the result object ----------------------------------------------------


def product_cost(point):
    w, b = point
    return anp.sum(w * anp.dot(A, w)) + anp.sum(b**4) + anp.sum(w[:2] * b)


def test_product_manifold_with_tuple_points():
    manifold = Product([Oblique(6, 2), Euclidean(2, 2)])
    x = manifold.random_point(rng=3)
    d = manifold.random_tangent(x, rng=4)

    def egrad(point):
        w, b = point
        gw = 2.0 * A @ w
        gw[:2] += b
        return (gw, 4.0 * b**3 + w[:2])

    checks = [
        check_gradient(manifold, product_cost, x=x, d=d),
        check_gradient(manifold, product_cost, egrad, x=list(x), d=list(d)),
        check_hessian(manifold, product_cost, x=x, d=d),
    ]
    for check, expected in zip(checks, [2.0, 2.0, 3.0]):
        assert abs(check.slope - expected) < SLOPE_ATOL and check.passed
    wrong = check_gradient(manifold, product_cost, lambda p: tuple(-g for g in egrad(p)), x=x)
    assert not wrong.passed
    assert check_retraction(Product([Oblique(6, 2, retraction="projection"), Euclidean(2)]),
                            rng=0).passed


def test_float32_point_is_checked_in_float64():
    manifold = Oblique(6, 4)
    x = manifold.random_point(rng=0, dtype=np.float32)
    d = manifold.random_tangent(x, rng=1)
    seen = []

    def cost(point):
        seen.append(point.dtype)
        return rayleigh(point)

    check = check_gradient(manifold, cost, rayleigh_egrad, x=x, d=d)
    assert check.dtype == "float32" and "float32" in str(check)
    assert set(seen) == {np.dtype(np.float64)}
    assert abs(check.slope - 2.0) < SLOPE_ATOL and check.passed
    assert check_hessian(manifold, rayleigh, x=x, d=d).passed


def test_same_seed_same_check():
    first = check_gradient(Sphere(6), rayleigh, rng=7)
    second = check_gradient(Sphere(6), rayleigh, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(first.errors, second.errors)
    assert check_gradient(Sphere(6), rayleigh, rng=8).errors[-1] != first.errors[-1]


def test_result_is_frozen_and_summarized():
    check = check_gradient(Sphere(6), rayleigh, rng=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.slope = 2.0
    with pytest.raises(ValueError):
        check.errors[0] = 0.0
    assert check.steps.shape == check.errors.shape == (51,)
    assert check.steps[0] == 1e-8 and check.steps[-1] == 1.0
    fitted = check.steps[check.fit_range]
    assert len(fitted) >= 3 and np.all(np.diff(fitted) > 0)
    text = str(check)
    assert "\n" not in text and "slope 2.00" in text and text.endswith("passed")
    assert repr(check).startswith("<GradientCheck: gradient check")


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cost, message",
    [
        (lambda x: x * 2.0, "must return a scalar"),
        (lambda x: float("nan"), "cost returned nan"),
        (lambda x: np.inf if x[0] > 10 else 1.0 + 1j, "real number"),
    ],
)
def test_bad_cost_is_a_value_error(cost, message):
    with pytest.raises(ValueError, match=message):
        check_gradient(Sphere(6), cost, rayleigh_egrad, rng=0)


def test_cost_that_fails_along_the_curve_names_the_step():
    manifold = Sphere(6)
    x = np.eye(6)[0]
    d = np.eye(6)[1]
    cost = lambda p: np.nan if p[1] > 0.5 else float(p @ A @ p)  # noqa: E731
    with pytest.raises(ValueError, match=r"cost returned nan at the step h = "):
        check_gradient(manifold, cost, rayleigh_egrad, x=x, d=d)


def test_invalid_point_direction_and_gradient_are_value_errors():
    manifold = Sphere(6)
    x = manifold.random_point(rng=0)
    with pytest.raises(ValueError, match="norm off 1"):
        check_gradient(manifold, rayleigh, x=2.0 * x)
    with pytest.raises(ValueError, match="not tangent"):
        check_gradient(manifold, rayleigh, x=x, d=x)
    with pytest.raises(ValueError, match="given without x"):
        check_gradient(manifold, rayleigh, d=manifold.random_tangent(x, rng=0))
    with pytest.raises(TypeError, match="numpy.ndarray"):
        check_gradient(manifold, rayleigh, x=list(x))
    assert check_gradient(manifold, rayleigh, lambda p: list(rayleigh_egrad(p)), x=x).passed
    with pytest.raises(ValueError, match="zero vector"):
        check_gradient(manifold, rayleigh, x=x, d=np.zeros(6))
    with pytest.raises(ValueError, match="shape"):
        check_gradient(manifold, rayleigh, lambda p: np.ones(5), x=x)
    with pytest.raises(ValueError, match="non-finite"):
        check_hessian(manifold, rayleigh, rayleigh_egrad, lambda p, u: u * np.nan, x=x)
    with pytest.raises(ValueError, match="curve"):
        check_gradient(manifold, rayleigh, curve="geodesic")
    with pytest.raises(ValueError, match="order"):
        check_retraction(manifold, order=3)


def test_cost_autograd_cannot_differentiate_says_what_to_do():
    def cost(x):
        return float(x @ A @ x)

    with pytest.raises(TypeError, match="autograd.numpy.*grad="):
        check_gradient(Sphere(6), cost, rng=0)
    with pytest.raises(TypeError, match="autograd"):
        check_hessian(Sphere(6), cost, rayleigh_egrad, rng=0)
    # With the derivatives given, autograd is not needed.
    assert check_hessian(Sphere(6), cost, rayleigh_egrad, rayleigh_ehess, rng=0).passed


# --- plots -----------------------------------------------------------------------------------


def test_plot_draws_errors_fit_and_reference():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    check = check_hessian(Sphere(6), rayleigh, rng=0)
    ax = check.plot()
    try:
        labels = [line.get_label() for line in ax.get_lines()]
        assert labels == ["error E(h)", "fit, slope 3.00", "slope 3 (expected)"]
        assert ax.get_xscale() == ax.get_yscale() == "log"
        fig, given = plt.subplots()
        assert check_retraction(Sphere(6), rng=0).plot(given) is given
        labels = [line.get_label() for line in given.get_lines()]
        assert labels == ["error E(h)", "slope 3 (expected)"]  # exact: nothing to fit
    finally:
        plt.close("all")


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    check = check_gradient(Sphere(6), rayleigh, rng=0)
    with pytest.raises(ImportError, match=r"pip install spherenet\[plot\]"):
        check.plot()
