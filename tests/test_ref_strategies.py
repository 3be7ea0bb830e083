"""Reference tests of the stationarity measure each strategy reports (the
``grad_norm`` of the history and of the result), at every iterate of runs long
enough that the variable is far from where it started: for reparam ||v_k|| has
grown away from 1 (a missing or misplaced factor ||v_k|| shows), for penalty
the columns are off the sphere (the penalty term is nonzero).

The formulas, from the definitions (spherenet.strategies docstrings):

* riemannian, projection, reparam: ||grad f(w)||, the norm of the Riemannian
  gradient P_w(egrad f(w)) at the weights w, factor by factor, so that one gtol
  means one thing across the three;
* penalty: the norm of the Euclidean gradient of f(z) + mu sum_k (||z_k||^2 - 1)^2;
* none: the norm of the Euclidean gradient of f.

The cost is on Product([Oblique(4, 3), Euclidean(2)]): the Euclidean factor is
never constrained, and its gradient enters every measure unchanged.
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, minimize
from spherenet.strategies import Penalty, Reparam

EPS64 = np.finfo(np.float64).eps
_rng = np.random.default_rng(21)
A = (lambda C: (C + C.T) / 2)(_rng.standard_normal((4, 4)))
B = _rng.standard_normal((4, 3))
MANIFOLD = Product([Oblique(4, 3), Euclidean(2)])
W0 = (lambda W: W / np.linalg.norm(W, axis=0))(_rng.standard_normal((4, 3)))
X0 = (W0, np.array([0.5, -1.0]))


def cost(x):
    w, e = x
    return (anp.sum(w * anp.dot(A, w)) + anp.sum(B * w) + anp.sum((e - w[:2, 0]) ** 2)
            + 0.5 * anp.sum(e**4))


def egrad(w, e):
    gw = 2 * A @ w + B
    gw[:2, 0] -= 2 * (e - w[:2, 0])
    ge = 2 * (e - w[:2, 0]) + 2 * e**3
    return gw, ge


def riemannian_norm(w, e):
    gw, ge = egrad(w, e)
    rw = gw - np.sum(w * gw, axis=0) * w
    return np.sqrt(np.sum(rw * rw) + ge @ ge)


def penalty_norm(w, e, mu):
    gw, ge = egrad(w, e)
    gw = gw + 4 * mu * (np.sum(w * w, axis=0) - 1) * w
    return np.sqrt(np.sum(gw * gw) + ge @ ge)


def euclidean_norm(w, e):
    gw, ge = egrad(w, e)
    return np.sqrt(np.sum(gw * gw) + ge @ ge)


def assert_measure(got, want, scale):
    """|got - want| <= 256 eps want + 64 eps scale: the measure is a norm of a
    difference of terms of size ``scale`` (the Euclidean gradient's norm), so its
    rounding is absolute near a critical point."""
    got, want, scale = map(np.asarray, (got, want, scale))
    assert got.shape == want.shape
    err = np.abs(got - want)
    bound = 256 * EPS64 * want + 64 * EPS64 * scale
    assert np.all(err <= bound), (err / bound).max()


def _scales(weights):
    return [euclidean_norm(*X0)] + [euclidean_norm(w, e) for w, e in weights]


def _run(strategy, method="rsgd", maxiter=40, **options):
    weights = []
    res = minimize(cost, MANIFOLD, x0=X0, method=method, strategy=strategy, maxiter=maxiter,
                   gtol=0.0, xtol=0.0, callback=lambda x: weights.append(x), **options)
    return res, weights


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
@pytest.mark.parametrize("method", ["rsgd", "radam", "cg", "rsgd-user-grad"])
def test_riemannian_projection_reparam_report_the_riemannian_gradient_norm(strategy, method):
    options = {"lr": 0.05} if method.startswith("r") else {}
    if method == "rsgd-user-grad":
        method, options["grad"] = "rsgd", lambda x: egrad(*x)
    n = 15 if method == "cg" else 40
    res, weights = _run(strategy, method, maxiter=n, **options)
    assert len(weights) == res.nit == n
    want = [riemannian_norm(*X0)] + [riemannian_norm(w, e) for w, e in weights]
    assert_measure(res.history["grad_norm"], want, _scales(weights))
    assert res.grad_norm == res.history["grad_norm"][-1]
    if strategy == "reparam" and method == "rsgd":
        # ||v_k|| far from 1: a measure off by the factor ||v_k|| would show
        assert res.history["v_norm"][-1] > 1.05


def test_reparam_measure_with_columns_of_different_norms():
    # v with columns of norms 0.5, 2 and 5: the measure undoes the 1/||v_k|| of
    # each column's gradient, not one common factor.
    scales = np.array([0.5, 2.0, 5.0])
    strategy = Reparam(MANIFOLD)
    v = (W0 * scales, X0[1])
    gv = strategy.egrad(lambda x: egrad(*x), v)
    got = strategy.measure(v, gv, gv)
    assert_measure([got], [riemannian_norm(*X0)], [euclidean_norm(*X0)])
    # the variable's gradient is P_w(g)/||v_k|| column by column: its norm is not the measure
    gw, ge = egrad(*X0)
    rw = (gw - np.sum(W0 * gw, axis=0) * W0) / scales
    np.testing.assert_allclose(gv[0], rw, rtol=0, atol=64 * EPS64 * np.abs(gw).max())
    np.testing.assert_allclose(gv[1], ge, rtol=0, atol=16 * EPS64 * np.abs(ge).max())
    assert abs(np.sqrt(np.sum(rw * rw) + ge @ ge) - got) > 1e-3 * got


@pytest.mark.parametrize("user_grad", [False, True])
@pytest.mark.parametrize("mu", [1.0, 10.0])
def test_penalty_reports_the_gradient_norm_of_the_penalized_cost(mu, user_grad):
    options = {"grad": lambda x: egrad(*x)} if user_grad else {}
    res, weights = _run(Penalty(MANIFOLD, mu=mu), "rsgd", lr=0.01, **options)
    assert max(res.history["violation"][1:]) > 1e-3  # the penalty term is not zero
    want = [penalty_norm(*X0, mu)] + [penalty_norm(w, e, mu) for w, e in weights]
    assert_measure(res.history["grad_norm"], want, np.array(_scales(weights)) * (1 + 4 * mu))
    # it is not the Riemannian nor the plain Euclidean norm
    w, e = weights[-1]
    assert res.grad_norm != pytest.approx(euclidean_norm(w, e), rel=1e-6)
    assert res.grad_norm != pytest.approx(riemannian_norm(w, e), rel=1e-6)


def test_none_reports_the_euclidean_gradient_norm():
    res, weights = _run("none", "rsgd", lr=0.01)
    assert max(res.history["violation"][1:]) > 1e-3
    want = [euclidean_norm(*X0)] + [euclidean_norm(w, e) for w, e in weights]
    assert_measure(res.history["grad_norm"], want, want)


def test_projection_measure_is_not_the_ambient_gradient_norm():
    # The projection strategy steps with the ambient gradient but reports the
    # Riemannian one: at every iterate the two differ by the radial part.
    res, weights = _run("projection", "rsgd", lr=0.05)
    w, e = weights[-1]
    assert euclidean_norm(w, e) > 1.1 * riemannian_norm(w, e)
    assert_measure([res.grad_norm], [riemannian_norm(w, e)], [euclidean_norm(w, e)])


@pytest.mark.parametrize("strategy", ["riemannian", "projection", "reparam"])
def test_gtol_means_one_thing_across_strategies(strategy):
    # Stopping at gtol: the reported measure at the stop is <= gtol and equals the
    # formula at the returned weights; the iterate before was above gtol.
    res = minimize(cost, MANIFOLD, x0=X0, method="cg", strategy=strategy, gtol=1e-4,
                   maxiter=2000)
    assert res.status == 0, res.message
    w, e = res.x
    assert_measure([res.grad_norm], [riemannian_norm(w, e)], [euclidean_norm(w, e)])
    assert res.grad_norm <= 1e-4 < res.history["grad_norm"][-2]
