"""Finite sums in ``minimize``: input checks, histories, stopping, convergence and the
finite-sum problems with their known answers (numpy.linalg.eigh; a plain NumPy
Karcher-mean iteration).

Step-by-step references of the methods are in ``test_ref_finite_sum.py``.
"""

import math

import autograd
import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere, minimize
from spherenet.optim import RSRG, RSVRG, BatchSampler, RSGD, hessian_spectrum
from spherenet.problems import (finite_sum_karcher, paired_points, spiked_samples,
                                streaming_pca)

EPS64 = np.finfo(np.float64).eps


def pca_cost(w, batch):
    return -0.5 * anp.mean(anp.dot(batch, w) ** 2)


def setup(n=20, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.linspace(2.0, 0.5, d)
    x0 = rng.standard_normal(d)
    return X, x0 / np.linalg.norm(x0)


def run(X, x0, **options):
    options.setdefault("method", "rsgd")
    return minimize(pca_cost, Sphere(len(x0)), x0=x0, data=X, rng=0, **options)


# --- input checks -----------------------------------------------------------------------------


BAD_DATA = {
    "ragged tuple": (lambda X: (X, np.zeros(len(X) - 1)), ValueError,
                     r"data\[1\] has 19 samples but data\[0\] has 20"),
    "nan": (lambda X: np.where(np.arange(X.size).reshape(X.shape) == 9, np.nan, X), ValueError,
            r"data has 1 NaN or infinite value\(s\) \(first in sample 2\)"),
    "inf in a tuple": (lambda X: (X, np.r_[np.inf, np.zeros(len(X) - 1)]), ValueError,
                       r"data\[1\] has 1 NaN or infinite"),
    "empty": (lambda X: X[:0], ValueError, r"data has no samples \(shape \(0, 4\)\)"),
    "empty tuple": (lambda X: (), ValueError, r"data is an empty tuple"),
    "scalar": (lambda X: 3.0, ValueError, r"data must have a leading sample axis, got a scalar"),
    "complex": (lambda X: X + 1j, TypeError, r"data must be a real numeric array .* complex128"),
    "strings": (lambda X: np.array(["a", "b"]), TypeError, r"got dtype <U1"),
    "ragged list": (lambda X: [[1.0, 2.0], [3.0]], ValueError, r"data must be a numeric array"),
}


@pytest.mark.parametrize("case", BAD_DATA)
def test_bad_data_is_refused_before_any_step(case):
    make, error, message = BAD_DATA[case]
    X, x0 = setup()
    before = x0.copy()
    with pytest.raises(error, match=message):
        run(make(X), x0, batch_size=1)
    np.testing.assert_array_equal(x0, before)


@pytest.mark.parametrize("batch_size, error, message", [
    (0, ValueError, r"batch_size must be an int in \[1, 20\] \(the number of samples\), got 0"),
    (21, ValueError, r"batch_size must be an int in \[1, 20\].*got 21"),
    (-3, ValueError, r"got -3"),
    (2.0, TypeError, r"batch_size must be an int .*got float"),
    (True, TypeError, r"got bool"),
])
def test_bad_batch_size(batch_size, error, message):
    X, x0 = setup()
    with pytest.raises(error, match=message):
        run(X, x0, batch_size=batch_size)


@pytest.mark.parametrize("method", ["cg", "sd", "trust-regions", "lbfgs", "bb"])
def test_solvers_that_need_the_full_cost_refuse_data(method):
    X, x0 = setup()
    with pytest.raises(ValueError, match=rf"method '{method}' needs the full cost at every step"
                                         r".*\['rsgd', 'radam', 'rsvrg', 'rsrg'\]"):
        run(X, x0, method=method)


@pytest.mark.parametrize("method", ["rsvrg", "rsrg", RSVRG(lr=0.1), RSRG()])
def test_variance_reduction_needs_data(method):
    with pytest.raises(ValueError, match=r"minimizes a finite sum: give the samples as data="):
        minimize(lambda x: x[0], Sphere(3), method=method, rng=0)


@pytest.mark.parametrize("option", [dict(batch_size=2), dict(epochs=3), dict(replace=True),
                                    dict(full_cost=False)])
def test_finite_sum_options_need_data(option):
    with pytest.raises(ValueError, match=rf"{next(iter(option))} only apply to a finite-sum cost"):
        minimize(lambda x: x[0], Sphere(3), method="rsgd", rng=0, **option)


@pytest.mark.parametrize("options, error, message", [
    (dict(method="rsvrg", momentum=0.9), TypeError,
     r"method 'rsvrg' takes the options \['lr', 'inner', 'snapshot'\], got unknown option\(s\) "
     r"\['momentum'\]"),
    (dict(method="rsrg", snapshot="last"), TypeError, r"got unknown option\(s\) \['snapshot'\]"),
    (dict(method="rsvrg", snapshot="first"), ValueError, r"snapshot must be 'last' or 'random'"),
    (dict(method="rsrg", inner=0), ValueError, r"inner must be an int >= 1 or None"),
    (dict(method="rsvrg", lr=-1.0), ValueError, r"lr must be positive"),
    (dict(method=RSVRG(), lr=0.1), TypeError, r"options cannot be given with a RSVRG instance"),
    (dict(hess=lambda x, u: u), ValueError, r"hess is not used with data="),
    (dict(maxfev=10), ValueError, r"maxfev is not supported with data="),
    (dict(epochs=-1), ValueError, r"epochs must be an int >= 0 or None, got -1"),
    (dict(epochs=2.5), ValueError, r"epochs must be an int >= 0 or None, got 2.5"),
    (dict(replace=1), TypeError, r"replace must be True or False, got int"),
    (dict(full_cost="yes"), TypeError, r"full_cost must be True or False, got str"),
    (dict(method="rsgd", batch=3), TypeError, r"got unknown option\(s\) \['batch'\]"),
])
def test_options_that_make_no_sense(options, error, message):
    X, x0 = setup()
    with pytest.raises(error, match=message):
        run(X, x0, **options)


def test_unknown_method_lists_the_stochastic_ones():
    X, x0 = setup()
    with pytest.raises(ValueError, match=r"method must be one of \[.*'rsvrg', 'rsrg'\]"):
        run(X, x0, method="svrg")


def test_sampler_checks_its_arguments():
    with pytest.raises(ValueError, match=r"n must be an int >= 1"):
        BatchSampler(0, 1)
    with pytest.raises(TypeError, match=r"replace must be True or False"):
        BatchSampler(3, 1, replace="no")


def test_data_is_not_modified_and_tuples_reach_the_cost():
    """A tuple (X, y) is sliced together: each batch pairs the same samples."""
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((15, 3)), np.arange(15)
    copies = X.copy(), y.copy()

    def cost(w, batch):
        Xb, yb = batch
        assert yb.dtype.kind == "i"  # labels are not cast
        np.testing.assert_array_equal(Xb, X[yb])
        return anp.mean((anp.dot(Xb, w) - 0.1 * yb) ** 2)

    res = minimize(cost, Sphere(3), data=(X, y), batch_size=4, method="radam", lr=0.01,
                   epochs=2, rng=3)
    assert res.nit == 8 and res.nepoch == 2
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(y, copies[1])


# --- histories and stopping ---------------------------------------------------------------


def test_history_rows_and_epoch_history_hold_true_full_costs():
    X, x0 = setup(n=10)
    iterates = [x0]
    res = run(X, x0, lr=0.05, batch_size=4, epochs=3, gtol=0,
              callback=lambda w: iterates.append(w.copy()))
    per_epoch = 3  # ceil(10 / 4)
    assert res.status == 1 and res.message == "maximum number of epochs (3) reached"
    assert res.nit == 9 and len(res.history["cost"]) == res.nit + 1 == len(iterates)
    hist = res.epoch_history
    assert hist["epoch"].tolist() == [0, 1, 2, 3]
    assert hist["iteration"].tolist() == [0, 3, 6, 9]
    for k in range(4):
        w = iterates[per_epoch * k]
        full = X.T @ (X @ w) / 10
        np.testing.assert_allclose(hist["cost"][k], -0.5 * w @ full, rtol=10 * EPS64)
        np.testing.assert_allclose(hist["grad_norm"][k], np.linalg.norm(-full + (w @ full) * w),
                                   rtol=1e3 * EPS64)
    # x0, then per epoch 10 batch samples and 10 for the full cost
    assert hist["samples"].tolist() == [10, 30, 50, 70] and res.nsamples == 70
    np.testing.assert_allclose(res.fun, hist["cost"][-1], rtol=0)
    # step sizes: the geodesic distance between successive iterates
    angles = [math.atan2(np.linalg.norm(b - (a @ b) * a), a @ b)
              for a, b in zip(iterates, iterates[1:])]
    np.testing.assert_allclose(res.history["step_size"][1:], angles, rtol=1e-12)
    assert np.all(res.history["violation"] <= 10 * EPS64)


def test_without_full_cost_the_epochs_hold_nan_and_gtol_is_not_tested():
    X, x0 = setup(n=10)
    res = run(X, x0, lr=0.05, batch_size=5, epochs=2, gtol=1e10, full_cost=False)
    # gtol 1e10 would stop at once on the full gradient at x0; after that it is not tested
    assert res.status == 0 and res.nit == 0
    res = run(X, x0, lr=0.05, batch_size=5, epochs=2, gtol=0.0, full_cost=False)
    assert np.isnan(res.epoch_history["cost"][1:]).all() and res.nsamples == 10 + 20 + 10
    assert res.status == 1 and math.isfinite(res.fun)
    # R-SVRG (snapshot "last") and R-SRG need the full gradient of every epoch anyway
    for method in ("rsvrg", "rsrg"):
        on = run(X, x0, method=method, lr=0.1, batch_size=5, epochs=3, gtol=0)
        off = run(X, x0, method=method, lr=0.1, batch_size=5, epochs=3, gtol=0, full_cost=False)
        np.testing.assert_array_equal(on.x, off.x)
        np.testing.assert_array_equal(on.epoch_history["cost"], off.epoch_history["cost"])


def test_gtol_ftol_xtol_and_maxiter():
    X, x0 = setup(n=10)
    res = run(X, x0, method="rsvrg", lr=0.1, batch_size=2, epochs=100, gtol=1e-6)
    assert res.status == 0 and res.success and res.grad_norm <= 1e-6
    assert res.message.startswith("full gradient norm")
    assert res.grad_norm == res.epoch_history["grad_norm"][-1]
    res = run(X, x0, lr=0.05, batch_size=2, epochs=100, gtol=0, ftol=1e-2)
    costs = res.epoch_history["cost"]
    assert res.status == 3 and abs(costs[-2] - costs[-1]) <= 1e-2 * max(abs(costs[-1]), 1.0)
    assert all(abs(a - b) > 1e-2 * max(abs(a), abs(b), 1.0) for a, b in zip(costs[:-2], costs[1:-1]))
    res = run(X, x0, method="rsvrg", lr=0.1, batch_size=2, epochs=100, gtol=0, xtol=1e-3)
    assert res.status == 4 and "over an epoch" in res.message
    res = run(X, x0, lr=0.05, batch_size=3, maxiter=5, epochs=100)
    assert res.status == 1 and res.nit == 5 and res.nepoch == 1
    res = run(X, x0, lr=0.05, batch_size=3, maxiter=0)
    assert res.nit == 0 and res.status == 1


def test_epochs_alone_bound_the_run_beyond_1000_iterations():
    X, x0 = setup(n=600)
    res = run(X, x0, lr=1e-3, batch_size=1, epochs=2, gtol=0)
    assert res.nit == 1200 and res.status == 1


def test_callback_stops_after_the_iteration():
    X, x0 = setup(n=10)
    calls = []
    res = run(X, x0, lr=0.05, batch_size=2, epochs=5,
              callback=lambda w: calls.append(1) or len(calls) == 3)
    assert res.status == 5 and res.nit == 3 and len(calls) == 3


def test_nan_in_a_batch_returns_the_last_finite_point():
    X, x0 = setup(n=10)
    X = X.copy()
    X[7, 0] = 1e200  # (x^T w)^2 overflows to inf on sample 7 only

    def cost(w, batch):
        return -0.5 * anp.mean(anp.dot(batch, w) ** 2)

    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ValueError, match=r"the cost is -inf at the starting point"):
            minimize(cost, Sphere(4), x0=x0, data=X, batch_size=1, method="rsgd", rng=0)
        def guarded(w, batch):  # finite on the full data (sample 7 dropped there), not alone
            return cost(w, batch[batch[:, 0] < 1e100]) if len(batch) == 10 else cost(w, batch)

        res = minimize(guarded, Sphere(4), x0=x0, data=X, batch_size=1, method="rsgd", lr=0.01,
                       epochs=1, rng=0)
    position = list(np.random.default_rng(0).permutation(10)).index(7)
    assert res.status == -1 and res.nit == position + 1
    assert "became NaN or Inf at iteration" in res.message
    assert np.all(np.isfinite(res.x)) and len(res.history["cost"]) == res.nit + 1


@pytest.mark.parametrize("method", ["rsgd", "radam", "rsvrg", "rsrg"])
@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam", "penalty", "none"])
def test_every_method_runs_under_every_strategy_in_float32(method, strategy):
    X, x0 = setup(n=8)
    res = minimize(pca_cost, Sphere(4), x0=x0.astype(np.float32), data=X, batch_size=4,
                   method=method, strategy=strategy, lr=0.05, epochs=2, rng=0)
    assert res.x.dtype == np.float32 and res.nepoch == 2
    assert np.isfinite(res.fun) and res.epoch_history["cost"][-1] < res.epoch_history["cost"][0]


def test_a_product_with_a_user_gradient():
    """A finite sum on Product([Oblique, Euclidean]) with grad(x, batch) given."""
    rng = np.random.default_rng(2)
    X, y = rng.standard_normal((12, 3)), rng.standard_normal(12)
    M = Product([Oblique(3, 2), Euclidean(2)])

    def cost(p, batch):
        W, b = p
        Xb, yb = batch
        return anp.mean((anp.sum(anp.dot(Xb, W) + b, axis=1) - yb) ** 2)

    grad = autograd.grad(cost)
    x0 = M.random_point(rng=0)
    a = minimize(cost, M, x0=x0, data=(X, y), batch_size=3, method="rsgd", lr=0.05,
                 momentum=0.5, epochs=2, rng=4)
    b = minimize(cost, M, x0=x0, data=(X, y), batch_size=3, method="rsgd", lr=0.05,
                 momentum=0.5, epochs=2, rng=4, grad=grad)
    for pa, pb in zip(a.x, b.x):
        np.testing.assert_allclose(pa, pb, rtol=0, atol=10 * EPS64)
    np.testing.assert_allclose(np.linalg.norm(a.x[0], axis=0), 1.0, atol=10 * EPS64)


# --- convergence ----------------------------------------------------------------------------


def test_rsvrg_converges_linearly_to_the_eigh_answer():
    X, C = spiked_samples(10, 200, spikes=(3.0, 1.0), rng=0)
    P = streaming_pca(X, C)
    top = np.linalg.eigh(X.T @ X / 200)[1][:, -1]
    x0 = P.x0(rng=1)
    res = P.minimize(method="rsvrg", x0=x0, batch_size=10, lr=0.05, epochs=30, gtol=1e-12,
                     xtol=0, rng=1)
    assert min(np.linalg.norm(res.x - top), np.linalg.norm(res.x + top)) < 1e-8
    g = res.epoch_history["grad_norm"]
    # linear: the full gradient norm shrinks by at least half every epoch after the first
    assert np.all(g[2:] <= 0.5 * g[1:-1]) and len(g) > 8
    # SGD with the same constant step stalls at its noise floor
    sgd = P.minimize(method="rsgd", x0=x0, batch_size=10, lr=0.05, epochs=30, gtol=0, rng=1)
    assert P.distance_to_optimum(sgd.x) > 1e-4


# --- problems with known answers ------------------------------------------------------------


def test_spiked_samples_are_seeded_and_have_the_chosen_spectrum():
    X, C = spiked_samples(6, 50, spikes=(3.0, 1.5), noise=0.5, rng=7)
    X2, C2 = spiked_samples(6, 50, spikes=(3.0, 1.5), noise=0.5, rng=7)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(C, C2)
    np.testing.assert_allclose(np.linalg.eigvalsh(C), [0.5] * 4 + [2.0, 3.5], atol=1e-14)
    # the samples are sqrt(noise) z + U (sqrt(spikes) g), drawn in this order
    rng = np.random.default_rng(7)
    U, _ = np.linalg.qr(rng.standard_normal((6, 2)))
    z, g = rng.standard_normal((50, 6)), rng.standard_normal((50, 2))
    np.testing.assert_allclose(X, np.sqrt(0.5) * z + (g * np.sqrt([3.0, 1.5])) @ U.T, atol=1e-14)
    with pytest.raises(ValueError, match="positive and decreasing"):
        spiked_samples(6, 5, spikes=(1.0, 2.0))


def test_streaming_pca_answers_are_those_of_eigh():
    X, C = spiked_samples(8, 300, spikes=(2.0,), rng=3)
    P = streaming_pca(X, C)
    w, V = np.linalg.eigh(X.T @ X / 300)
    np.testing.assert_allclose(P.optimum, -0.5 * w[-1], rtol=10 * EPS64)
    np.testing.assert_allclose(abs(P.solution() @ V[:, -1]), 1.0, atol=1e-14)
    np.testing.assert_allclose(P.cost(V[:, -1]), P.optimum, rtol=10 * EPS64)
    np.testing.assert_allclose(abs(P.population_solution() @ np.linalg.eigh(C)[1][:, -1]), 1.0,
                               atol=1e-14)
    x = P.x0(rng=0)
    np.testing.assert_allclose(P.egrad(x, X[:5]), -(X[:5].T @ X[:5] @ x) / 5, atol=1e-14)
    np.testing.assert_allclose(P.egrad(x), autograd.grad(P.cost)(x), atol=1e-14)
    # The Hessian at the optimum has the eigenvalues lambda_1 - lambda_j (j >= 2).
    spectrum = hessian_spectrum(P.cost, P.manifold, P.solution(), k=7, which="both")
    np.testing.assert_allclose(np.sort(spectrum.smallest), np.sort(w[-1] - w[:-1]), atol=1e-12)


def _karcher_reference(points, x, steps=200):
    """x <- Exp_x(mean_i Log_x(p_i)), the classic fixed-point (gradient) iteration."""
    for _ in range(steps):
        c = points @ x
        v = points - c[:, None] * x
        s = np.linalg.norm(v, axis=1)
        logs = (np.arctan2(s, c) / np.where(s > 0, s, 1.0))[:, None] * v
        u = logs.mean(axis=0)
        t = np.linalg.norm(u)
        x = x if t == 0 else np.cos(t) * x + np.sin(t) / t * u
    return x


def test_paired_points_have_their_pole_as_karcher_mean():
    points, pole = paired_points(5, 40, 1.0, rng=4)
    again, pole2 = paired_points(5, 40, 1.0, rng=4)
    np.testing.assert_array_equal(points, again)
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=1e-15)
    start = pole + 0.3 * np.random.default_rng(0).standard_normal(5)
    mean = _karcher_reference(points, start / np.linalg.norm(start))
    np.testing.assert_allclose(mean, pole, atol=1e-12)
    P = finite_sum_karcher(points, mean=pole)
    x = P.x0(rng=2) * 1.5  # off the sphere: the extension's gradient
    np.testing.assert_allclose(P.egrad(x, points[:7]), autograd.grad(P.cost)(x, points[:7]),
                               atol=1e-14)
    res = P.minimize(method="rsrg", batch_size=8, lr=0.5, epochs=40, gtol=1e-10, rng=1)
    assert P.distance_to_optimum(res.x) < 1e-9
    with pytest.raises(ValueError, match=r"max_angle must be in \(0, pi/2\)"):
        paired_points(3, 4, 2.0)


def test_variance_reduced_instances_and_rule_instances_are_accepted():
    X, x0 = setup(n=10)
    a = run(X, x0, method=RSVRG(lr=0.1, inner=3), batch_size=2, epochs=2, gtol=0)
    b = run(X, x0, method="rsvrg", lr=0.1, inner=3, batch_size=2, epochs=2, gtol=0)
    np.testing.assert_array_equal(a.x, b.x)
    assert a.nit == 6
    c = run(X, x0, method=RSGD(lr=0.1), batch_size=2, epochs=1)
    d = run(X, x0, method="rsgd", lr=0.1, batch_size=2, epochs=1)
    np.testing.assert_array_equal(c.x, d.x)
    assert repr(RSVRG(lr=0.1)) == "RSVRG(lr=0.1, inner=None, snapshot='last')"


def test_gtol_is_inclusive_and_convergence_outranks_the_callback():
    """A run replayed with gtol equal to the gradient norm reached at epoch 2 stops
    there, converged, even though the callback asks to stop at that iteration too."""
    X, x0 = setup(n=10)
    first = run(X, x0, method="rsvrg", lr=0.1, batch_size=2, epochs=2, gtol=0)
    norms = first.epoch_history["grad_norm"]
    assert norms[2] < min(norms[:2])
    calls = []
    res = run(X, x0, method="rsvrg", lr=0.1, batch_size=2, epochs=5, gtol=norms[2],
              callback=lambda w: calls.append(1) or len(calls) == 10)
    assert res.status == 0 and res.nit == 10 and res.grad_norm == norms[2]


def test_xtol_is_inclusive_on_the_distance_moved_over_an_epoch():
    X, x0 = setup(n=10)
    iterates = [x0]
    run(X, x0, method="rsvrg", lr=0.1, batch_size=2, epochs=6, gtol=0, xtol=0,
        callback=lambda w: iterates.append(w.copy()))
    # the run's own distance (the boundary is the point): epoch ends every 5 iterates
    moved = [Sphere(4).dist(iterates[5 * k], iterates[5 * k + 5]) for k in range(6)]
    k = next(k for k in range(1, 6) if moved[k] < min(moved[:k]))
    res = run(X, x0, method="rsvrg", lr=0.1, batch_size=2, epochs=6, gtol=0, xtol=moved[k])
    assert res.status == 4 and res.nepoch == k + 1 and res.nit == 5 * (k + 1)
