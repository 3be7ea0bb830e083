"""Predicted local rates (spherenet.theory) against closed forms, brute force and plain-NumPy runs.

The measured rates come from a few lines of NumPy written from the update
rules (not from spherenet's optimizers), run until the error reaches 1e-11;
the rate is (e_end / e_start)^(1/steps) over the last part of the run.
"""

import math

import numpy as np
import pytest

from spherenet import Oblique, Sphere
from spherenet.problems import block_rayleigh
from spherenet.theory import (LocalModel, gd_lr_limit, gd_optimal_lr, gd_rate, heavy_ball_lr_limit,
                              heavy_ball_optimal, heavy_ball_rate, local_model, projection_lr,
                              projection_lr_limit, projection_optimal_lr, projection_rate,
                              reparam_lr)

EPS = np.finfo(np.float64).eps


def _rotated(eigenvalues, seed=0):
    n = len(eigenvalues)
    q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (q * np.asarray(eigenvalues)) @ q.T, q[:, np.argmax(eigenvalues)]


def _angle(x, v):
    """Angle between the lines of unit x and v (atan2: accurate near 0)."""
    c = abs(x @ v)
    return math.atan2(np.linalg.norm(x - (x @ v) * v), c)


def _normalize(x):
    return x / np.linalg.norm(x)


def _measured_rate(errors, floor=1e-11):
    """Rate over the last 60% of the run before the error reaches ``floor``."""
    errors = np.asarray(errors)
    stop = int(np.argmax(errors < floor)) if np.any(errors < floor) else len(errors)
    start = int(0.4 * stop)
    assert stop - start >= 20, "too short a run to measure a rate"
    return (errors[stop - 1] / errors[start]) ** (1.0 / (stop - 1 - start))


def _state_errors(errors):
    """sqrt(e_k^2 + e_{k-1}^2): a two-step recurrence's error without the zeros of its
    oscillation (which would bias a rate read from two single values)."""
    errors = np.asarray(errors)
    return np.sqrt(errors[1:] ** 2 + errors[:-1] ** 2)


def _run_rgd(A, v, x, lr, steps, radial_step=False, momentum=0.0):
    """Plain-NumPy gradient descent on f = -x'Ax: riemannian (projection retraction and
    transport) or, with radial_step, Keras's normalize(x - lr g)."""
    errors, m = [_angle(x, v)], np.zeros_like(x)
    for _ in range(steps):
        g = -2.0 * A @ x
        if radial_step:
            x = _normalize(x - lr * g)
        else:
            rgrad = g - (x @ g) * x
            m = momentum * m + rgrad
            x_new = _normalize(x - lr * m)
            m = m - (x_new @ m) * x_new  # projection transport to the new tangent space
            x = x_new
        errors.append(_angle(x, v))
    return errors


# --- closed forms -------------------------------------------------------------------------------


def test_gd_rate_is_the_spectral_radius_of_the_linearized_step():
    values = np.array([0.3, 1.0, 2.5, 4.0])
    for lr in (0.05, 0.3, 0.49, 0.6):
        # I - lr H, written out: its largest |eigenvalue|
        expected = np.max(np.abs(np.linalg.eigvalsh(np.eye(4) - lr * np.diag(values))))
        assert gd_rate(values, lr) == pytest.approx(expected, rel=4 * EPS)
        assert gd_rate([values.min(), values.max()], lr) == gd_rate(values, lr)
    assert gd_lr_limit(values) == 0.5
    assert gd_lr_limit([-1.0, 0.0]) == math.inf


def test_gd_optimal_lr_beats_a_fine_grid():
    values = [0.5, 1.7, 3.0]
    lr, rate = gd_optimal_lr(values)
    grid = np.linspace(0.01, 0.6, 5901)
    rates = [gd_rate(values, t) for t in grid]
    assert rate == pytest.approx(min(rates), abs=1e-3)
    assert rate <= min(rates) + 4 * EPS
    assert lr == pytest.approx(grid[int(np.argmin(rates))], abs=1e-4)
    assert rate == pytest.approx((3.0 / 0.5 - 1) / (3.0 / 0.5 + 1), rel=4 * EPS)
    with pytest.raises(ValueError, match="smallest Hessian eigenvalue must be positive"):
        gd_optimal_lr([0.0, 1.0])


def test_heavy_ball_rate_against_numpy_roots_over_the_whole_spectrum():
    rng = np.random.default_rng(1)
    for _ in range(50):
        values = np.sort(rng.uniform(0.1, 5.0, 6))
        lr, beta = rng.uniform(0.01, 0.8), rng.uniform(0.0, 0.95)
        expected = max(np.max(np.abs(np.roots([1.0, -(1.0 + beta - lr * lam), beta])))
                       for lam in values)
        assert heavy_ball_rate(values, lr, beta) == pytest.approx(expected, rel=1e-9)


def test_heavy_ball_optimum_against_a_grid_and_polyaks_formula():
    values = [1.0, 9.0]
    lr, beta, rate = heavy_ball_optimal(values)
    assert (lr, beta, rate) == pytest.approx((4.0 / 16.0, 0.25, 0.5), rel=4 * EPS)
    best = min(heavy_ball_rate(values, t, b)
               for t in np.linspace(0.05, 0.4, 141) for b in np.linspace(0.0, 0.9, 91))
    assert rate <= best + 1e-12
    assert best == pytest.approx(rate, abs=2e-2)
    assert heavy_ball_rate(values, lr, beta) == pytest.approx(rate, rel=1e-12)
    # the stability limit: the rate crosses 1 there
    limit = heavy_ball_lr_limit(values, 0.5)
    assert limit == pytest.approx(2 * 1.5 / 9.0, rel=4 * EPS)
    assert heavy_ball_rate(values, 0.999 * limit, 0.5) < 1.0 < heavy_ball_rate(values, 1.001 * limit, 0.5)


def test_projection_formulas():
    assert projection_lr(0.5, -3.0) == pytest.approx(0.5 / 2.5, rel=EPS)
    assert math.isnan(projection_lr(0.5, 2.0))  # 1 - eta c = 0: no Riemannian step
    np.testing.assert_allclose(projection_lr(0.1, [-1.0, 1.0]), [0.1 / 1.1, 0.1 / 0.9], rtol=EPS)
    values = [2.0, 6.0]
    # effective step exactly 2 / (mu + L) = 0.25 at the optimal lr
    lr, rate = projection_optimal_lr(values, radial=-1.0)
    assert lr / (1.0 + lr) == pytest.approx(0.25, rel=4 * EPS)
    assert rate == pytest.approx(0.5, rel=4 * EPS)
    assert projection_rate(values, lr, -1.0) == pytest.approx(rate, rel=8 * EPS)
    # the limit: effective step 2/L exactly there
    limit = projection_lr_limit(values, radial=1.0)
    assert projection_lr(limit, 1.0) == pytest.approx(2.0 / 6.0, rel=4 * EPS)
    assert projection_lr_limit(values, radial=-3.0) == math.inf  # L + 2c = 0
    assert reparam_lr(0.3, 2.0) == pytest.approx(0.075, rel=EPS)


@pytest.mark.parametrize("call, match", [
    (lambda: gd_rate([], 0.1), "non-empty"),
    (lambda: gd_rate([1.0, np.nan], 0.1), "finite"),
    (lambda: gd_rate([1.0], 0.0), "lr must be a positive"),
    (lambda: gd_rate([1.0], "0.1"), "lr must be a real number"),
    (lambda: heavy_ball_rate([1.0], 0.1, 1.0), r"momentum must be in \[0.0, 1.0\)"),
    (lambda: reparam_lr(0.1, 0.0), "v_norm must be positive"),
    (lambda: projection_rate([1.0], 0.1, math.inf), "radial must be a finite"),
    (lambda: LocalModel(1.0, 2.0, None, 0.0).rate("projection", lr=0.1), "different radial"),
    (lambda: LocalModel(1.0, 2.0, -1.0, 0.0).rate("projection", lr=0.1, momentum=0.5),
     "with momentum"),
    (lambda: LocalModel(1.0, 2.0, -1.0, 0.0).rate("reparam", lr=0.1), "v_norm"),
    (lambda: LocalModel(1.0, 2.0, -1.0, 0.0).rate("penalty", lr=0.1), "strategy must be"),
])
def test_bad_input_is_refused(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


# --- the local model against eigh ---------------------------------------------------------------


def test_local_model_of_a_rayleigh_quotient_against_eigh():
    A, v = _rotated([0.2, 0.7, 1.1, 1.9, 2.4])
    model = local_model(lambda x: -x @ A @ x, Sphere(5), v)
    lam = np.linalg.eigvalsh(A)
    # Hess f(v1) = 2 (lambda_1 I - A) on v1's complement; radial <v, -2 A v> = -2 lambda_1
    assert model.smallest == pytest.approx(2 * (lam[-1] - lam[-2]), rel=1e-12)
    assert model.largest == pytest.approx(2 * (lam[-1] - lam[0]), rel=1e-12)
    assert model.radial == pytest.approx(-2 * lam[-1], rel=1e-12)
    with pytest.raises(ValueError, match="not a critical point"):
        local_model(lambda x: -x @ A @ x, Sphere(5), _normalize(v + 0.1))


def test_local_model_float32_point():
    A, v = _rotated([0.2, 0.7, 1.1, 1.9, 2.4])
    model = local_model(lambda x: -x @ A @ x, Sphere(5), v.astype(np.float32), gtol=1e-5,
                        rtol=1e-6)
    lam = np.linalg.eigvalsh(A)
    eps32 = float(np.finfo(np.float32).eps)  # v rounded to float32: errors of 100 eps32 at most
    assert model.smallest == pytest.approx(2 * (lam[-1] - lam[-2]), rel=100 * eps32)
    assert model.radial == pytest.approx(-2 * lam[-1], rel=100 * eps32)


def test_local_model_on_the_oblique_manifold_radial_per_column():
    same = block_rayleigh(np.stack([np.diag([1.0, 2.0, 4.0]), np.diag([0.5, 3.0, 4.0])]))
    model = local_model(same.cost, same.manifold, same.solution(), grad=same.egrad)
    assert model.radial == pytest.approx(-8.0, rel=1e-12)
    # columns' Hessians 2(4 - 2) and 2(4 - 3) at the smallest, 2(4 - 0.5) at the largest
    assert (model.smallest, model.largest) == pytest.approx((2.0, 7.0), rel=1e-12)
    other = block_rayleigh(np.stack([np.diag([1.0, 2.0, 4.0]), np.diag([0.5, 3.0, 5.0])]))
    assert local_model(other.cost, other.manifold, other.solution(), grad=other.egrad).radial is None
    assert isinstance(other.manifold, Oblique)


# --- predicted rates against plain-NumPy runs ---------------------------------------------------


def _diagonal_case():
    eigenvalues = np.array([0.1, 0.5, 1.0, 1.6, 3.0])
    hess = 2.0 * (3.0 - eigenvalues[:-1])  # Hessian eigenvalues at e_5, closed form
    A = np.diag(eigenvalues)
    v = np.eye(5)[-1]
    x0 = _normalize(np.ones(5))
    return A, v, x0, hess


@pytest.mark.parametrize("lr", [0.05, 0.2, 0.3])
def test_rgd_rate_on_a_diagonal_rayleigh_quotient(lr):
    A, v, x0, hess = _diagonal_case()
    errors = _run_rgd(A, v, x0, lr, 600)
    # closed form max |1 - lr 2 (lambda_1 - lambda_i)|, and the same from the model
    expected = max(abs(1 - lr * h) for h in hess)
    predicted = gd_rate(hess, lr)
    assert predicted == pytest.approx(expected, rel=4 * EPS)
    assert _measured_rate(errors) == pytest.approx(predicted, rel=2e-3)


def test_rgd_and_projection_rates_on_a_rotated_rayleigh_quotient():
    A, v = _rotated([0.0, 0.3, 0.45, 0.6, 0.8, 1.0], seed=3)
    model = local_model(lambda x: -x @ A @ x, Sphere(6), v)
    x0 = _normalize(np.random.default_rng(4).standard_normal(6))
    for lr in (0.3, 1.0):
        measured = _measured_rate(_run_rgd(A, v, x0, lr, 800))
        assert measured == pytest.approx(model.rate("riemannian", lr=lr), rel=2e-3)
    for lr in (0.5, 3.0, 40.0):
        measured = _measured_rate(_run_rgd(A, v, x0, lr, 800, radial_step=True))
        assert measured == pytest.approx(model.rate("projection", lr=lr), rel=2e-3)
    # projection never beats 1 - mu / |c| here (effective step below 1/|c|)
    assert model.rate("projection", lr=1e6) == pytest.approx(1 - model.smallest / 2.0, rel=1e-5)


def test_projection_stability_limit_with_a_negative_spectrum():
    # lambda_1 + lambda_n < 0: L + 2c > 0, a finite limit 2 / (L + 2c)
    A, v = _rotated([-3.0, -2.0, -1.0, 0.5], seed=5)
    model = local_model(lambda x: -x @ A @ x, Sphere(4), v)
    limit = projection_lr_limit(model.eigenvalues, model.radial)
    assert limit == pytest.approx(2.0 / (2 * 3.5 - 2 * 0.5 * 2), rel=1e-12)
    x0 = _normalize(v + 1e-3 * np.random.default_rng(6).standard_normal(4))
    below = _run_rgd(A, v, x0, 0.97 * limit, 1500, radial_step=True)
    above = _run_rgd(A, v, x0, 1.1 * limit, 100, radial_step=True)
    assert below[-1] < 1e-11
    assert above[-1] > 10 * above[0]  # the error grows from the start


def test_riemannian_stability_limit():
    A, v, _, hess = _diagonal_case()
    limit = gd_lr_limit(hess)
    x0 = _normalize(v + 1e-4 * np.ones(5))
    assert _run_rgd(A, v, x0, 0.98 * limit, 2000)[-1] < 1e-11
    above = _run_rgd(A, v, x0, 1.02 * limit, 100)
    assert above[-1] > 10 * above[0]


def test_heavy_ball_rate_of_a_riemannian_momentum_run():
    A, v = _rotated([0.0, 0.3, 0.45, 0.6, 0.8, 1.0], seed=3)
    model = local_model(lambda x: -x @ A @ x, Sphere(6), v)
    x0 = _normalize(np.random.default_rng(4).standard_normal(6))
    # complex roots at both ends (rate sqrt(beta)); real roots at the small end
    for lr, beta in ((0.1, 0.9), (0.05, 0.3)):
        measured = _measured_rate(_state_errors(_run_rgd(A, v, x0, lr, 1500, momentum=beta)))
        assert measured == pytest.approx(model.rate("riemannian", lr=lr, momentum=beta), rel=1e-2)
    # Polyak's optimum: k rho^k, so the measured rate is above rho by about exp(1/k)
    lr, beta, rate = heavy_ball_optimal(model.eigenvalues)
    measured = _measured_rate(_state_errors(_run_rgd(A, v, x0, lr, 800, momentum=beta)))
    assert rate < measured < rate * 1.1
    assert measured < gd_optimal_lr(model.eigenvalues)[1]


def test_reparam_step_is_a_riemannian_step_of_size_lr_over_norm_squared():
    A, v = _rotated([0.0, 0.3, 0.45, 0.6, 0.8, 1.0], seed=3)
    rng = np.random.default_rng(7)
    vec = 2.5 * _normalize(rng.standard_normal(6))
    lr = 0.7
    for _ in range(20):
        r = np.linalg.norm(vec)
        w = vec / r
        g = -2.0 * A @ w
        rgrad = g - (w @ g) * w
        new = vec - lr * rgrad / r                       # gradient of v -> f(v/|v|)
        riemannian = _normalize(w - reparam_lr(lr, r) * rgrad)
        np.testing.assert_allclose(new / np.linalg.norm(new), riemannian, rtol=0, atol=8 * EPS)
        assert np.linalg.norm(new) ** 2 == pytest.approx(r * r + (lr / r) ** 2 * (rgrad @ rgrad),
                                                          rel=8 * EPS)
        vec = new


def test_reparam_rate_at_the_final_norm():
    A, v = _rotated([0.0, 0.3, 0.45, 0.6, 0.8, 1.0], seed=3)
    model = local_model(lambda x: -x @ A @ x, Sphere(6), v)
    vec = _normalize(np.random.default_rng(4).standard_normal(6))
    lr, errors = 0.5, []
    for _ in range(1500):
        r = np.linalg.norm(vec)
        w = vec / r
        errors.append(_angle(w, v))
        g = -2.0 * A @ w
        vec = vec - lr * (g - (w @ g) * w) / r
    measured = _measured_rate(errors)
    assert measured == pytest.approx(model.rate("reparam", lr=lr, v_norm=np.linalg.norm(vec)),
                                     rel=2e-3)
