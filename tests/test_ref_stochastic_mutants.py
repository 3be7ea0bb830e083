"""Reference tests of the finite-sum machinery, written against what mutation testing showed
untested: the sampler's defaults and draws, the checks of data and their messages, the
epoch bookkeeping of the stochastic runs, and R-SVRG / R-SRG step by step in the cases the
other reference tests leave out (``test_ref_finite_sum.py``).

The references are plain NumPy: the sampler's draws replayed from
``numpy.random.default_rng(seed)`` (``permutation(n)`` per pass,
``integers(0, n, size)`` per batch with replacement), the sphere's maps
written out, and the updates written from the papers: R-SVRG (Zhang, Reddi &
Sra 2016, Algorithm 1, with retraction and vector transport as in Sato,
Kasai & Mishra 2019), R-SRG (Kasai, Sato & Mishra 2018, Algorithm 1). The
cost is the streaming-PCA cost f(w) = -1/2 mean_i (x_i^T w)^2, with the
mini-batch Euclidean gradient -X_B^T X_B w / |B| written here. Tolerances:
the references differ from the library only in the order of floating-point
operations, a few eps per step; 100 eps bounds the dozen steps compared.
"""

import math
import re

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Product, Sphere, minimize
from spherenet.optim import RSGD, RSRG, RSVRG, BatchSampler
from spherenet.optim.finite_sum import as_data
from test_ref_finite_sum import exp_map, pca_cost, pca_egrad, proj  # the same references

EPS64 = np.finfo(np.float64).eps
TOL = 100 * EPS64


def rgrad(x, batch):
    return proj(x, pca_egrad(x, batch))


def normalize(w):
    return w / np.linalg.norm(w)


def data(n=10, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.array([2.0, 1.0, 0.7, 0.3])[:d]
    return X, normalize(rng.standard_normal(d))


def labelled(n):
    """Samples whose column 0 names them (1..n), for costs that record their batches."""
    return np.column_stack([np.arange(n) + 1.0, np.ones(n)])


# --- data checks: the whole messages ------------------------------------------------------


@pytest.mark.parametrize("bad, name", [(None, "NoneType"), ("abc", "str"), (b"ab", "bytes"),
                                       ({"X": [1.0]}, "dict"), ({1.0, 2.0}, "set")])
def test_data_of_the_wrong_kind_is_named(bad, name):
    with pytest.raises(TypeError, match=rf"^data must be an array or a tuple of arrays, "
                                        rf"got {name}$"):
        as_data(bad)


def test_the_messages_of_as_data_are_whole():
    with pytest.raises(ValueError, match=r"^data is an empty tuple: give an array or a tuple of "
                                         r"arrays$"):
        as_data(())
    with pytest.raises(ValueError, match=r"^data\[2\] has 3 samples but data\[0\] has 4: every "
                                         r"array of data needs the same leading \(sample\) axis$"):
        as_data((np.zeros(4), np.zeros(4), np.zeros(3)))
    with pytest.raises(TypeError, match=r"^data is a list of 2 arrays: give a tuple \(X, y\) for "
                                        r"several arrays of samples, or one array, e\.g\. "
                                        r"np\.asarray\(data\), if the list holds the samples$"):
        as_data([np.zeros(3), np.zeros(3)])


# --- the sampler ------------------------------------------------------------------------------


def test_sampler_default_is_without_replacement():
    sampler = BatchSampler(5, 2, rng=3)
    perm = np.random.default_rng(3).permutation(5)
    drawn = [sampler.next().tolist() for _ in range(3)]
    assert drawn == [perm[:2].tolist(), perm[2:4].tolist(), perm[4:].tolist()]
    assert sampler.replace is False


def test_sampler_of_one_sample():
    sampler = BatchSampler(1, 1, rng=0)
    assert [sampler.next().tolist() for _ in range(3)] == [[0], [0], [0]]
    assert sampler.batches_per_epoch == 1
    assert BatchSampler(np.int64(3), 2, replace=np.True_, rng=0).replace is True


@pytest.mark.parametrize("n", [True, False, 2.5, 0, -1, "3", None])
def test_sampler_refuses_a_bad_number_of_samples(n):
    with pytest.raises(ValueError, match=rf"^n must be an int >= 1, got {re.escape(repr(n))}$"):
        BatchSampler(n, 1)


def test_sampler_names_the_type_of_a_bad_replace():
    with pytest.raises(TypeError, match=r"^replace must be True or False, got str$"):
        BatchSampler(3, 1, replace="no")


def test_default_batch_size_is_one_sample():
    n = 6
    seen = []

    def cost(w, batch):
        seen.append(len(batch))
        return pca_cost(w, batch)

    res = minimize(cost, Sphere(2), x0=normalize(np.ones(2)), method="rsgd", lr=0.01,
                   data=labelled(n), epochs=1, full_cost=False, rng=0)
    # the full cost at x0, one sample per iteration for an epoch, the full cost at the end
    assert seen == [n] + [1] * n + [n]
    assert res.nit == n and res.nepoch == 1


# --- the variance-reduced methods: configuration ---------------------------------------------


@pytest.mark.parametrize("inner", [True, 2.5, 0, -2, "3"])
@pytest.mark.parametrize("method", [RSVRG, RSRG])
def test_inner_must_be_a_positive_int(method, inner):
    with pytest.raises(ValueError, match=rf"^inner must be an int >= 1 or None \(one pass over "
                                         rf"the data\), got {re.escape(repr(inner))}$"):
        method(inner=inner)


def test_defaults_of_the_variance_reduced_methods():
    for method in (RSVRG(), RSRG()):
        assert method.lr == 0.01 and method.lr_at(7) == 0.01 and method.inner is None
    assert RSVRG().snapshot == "last"
    assert RSRG(inner=1).inner == 1 and RSVRG(inner=np.int64(2)).inner == 2
    assert repr(RSRG(lr=0.5, inner=3)) == "RSRG(lr=0.5, inner=3)"


# --- failures: a NaN at an iterate, an infinite step, a NaN at the snapshot -------------------


def nan_at(target, full_only=False, n=None):
    """The PCA cost, NaN at the point ``target`` (only on the full data if ``full_only``)."""
    def cost(w, batch):
        value = pca_cost(w, batch)
        at = np.array_equal(getattr(w, "_value", w), target)
        return value * np.nan if at and (not full_only or len(batch) == n) else value
    return cost


METHODS = {  # options, and an iterate k whose mini-batch step fails (no epoch ends at x_k)
    "rsgd": dict(method="rsgd", lr=0.1),
    "rsvrg": dict(method="rsvrg", lr=0.1),
    "rsrg": dict(method="rsrg", lr=0.1, inner=3),
}


@pytest.mark.parametrize("method", METHODS)
def test_a_nan_at_an_iterate_returns_that_iterate(method, capsys):
    X, x0 = data(n=10)
    options = dict(METHODS[method], data=X, batch_size=3, epochs=2, gtol=0, rng=4)
    iterates = []
    minimize(pca_cost, Sphere(4), x0=x0, callback=lambda w: iterates.append(w.copy()), **options)
    k = 2  # x_2: inside the first epoch (4 steps) for every method
    target = iterates[k - 1]
    capsys.readouterr()
    res = minimize(nan_at(target), Sphere(4), x0=x0, verbose=2, **options)
    # Iteration k + 1 (the step from x_k) failed: x_k is returned, the history has k + 2 rows.
    assert res.status == -1 and not res.success and res.nit == k + 1
    assert res.message == (f"the mini-batch cost or gradient became NaN or Inf at iteration "
                           f"{k + 1}; returning the last finite point")
    np.testing.assert_array_equal(res.x, target)
    assert len(res.history["cost"]) == k + 2
    assert np.isnan([res.history[c][-1] for c in ("cost", "grad_norm", "step_size")]).all()
    assert np.isfinite(res.history["cost"][:-1]).all()
    # fun and grad_norm: the full cost and gradient at x_k, NaN there too
    assert math.isnan(res.fun) and math.isnan(res.grad_norm)
    assert res.nepoch == 0 and res.epoch_history["epoch"].tolist() == [0.0]
    # the failed iteration is printed with its number
    printed = [line.split()[0] for line in capsys.readouterr().out.splitlines()
               if line.strip() and line.split()[0].isdigit()]
    assert printed == [str(i) for i in range(k + 2)]


def test_a_step_to_infinity_returns_the_last_finite_point():
    """A finite cost and gradient, but a step that overflows (no mini-batch evaluation fails)."""
    X = np.array([[1.0, 2.0], [3.0, -1.0], [2.0, 2.0]])
    lr = lambda k: 0.01 if k < 2 else 1e308  # noqa: E731  (the third step overflows)
    iterates = [np.zeros(2)]
    with np.errstate(over="ignore", invalid="ignore"):
        res = minimize(lambda x, batch: anp.mean(anp.dot(batch, x)), Euclidean(2), x0=np.zeros(2),
                       method="rsgd", lr=lr, data=X, batch_size=1, epochs=3, rng=0,
                       callback=lambda w: iterates.append(w.copy()))
    assert res.status == -1 and res.nit == 3
    assert res.message == ("the point became NaN or Inf at iteration 3; returning the last "
                           "finite point")
    # plain SGD on a linear cost: x_{k+1} = x_k - lr_k X_B
    idx = np.random.default_rng(0).permutation(3)
    ref = [np.zeros(2)]
    for k in range(2):
        ref.append(ref[-1] - 0.01 * X[idx[k]])
    np.testing.assert_allclose(np.array(iterates), np.array(ref), rtol=0, atol=4 * EPS64)
    np.testing.assert_array_equal(res.x, ref[2])
    assert len(res.history["cost"]) == 4 and math.isnan(res.history["cost"][-1])
    np.testing.assert_allclose(res.fun, np.mean(X @ ref[2]), rtol=4 * EPS64)


def test_a_nan_at_the_random_snapshot_stops_the_run():
    """Option II keeps x_t, t = rng.integers(m) drawn before the epoch's batches; its full
    gradient is evaluated at the epoch's end: NaN there ends the run at the epoch's last iterate."""
    X, x0 = data(n=10)
    seed, m = 1, 4
    keep = int(np.random.default_rng(seed).integers(m))
    assert keep >= 1  # x_0's full cost is that of the start, finite by the checks
    options = dict(method="rsvrg", snapshot="random", lr=0.1, data=X, batch_size=3, epochs=3,
                   gtol=0, rng=seed)
    iterates = [x0]
    minimize(pca_cost, Sphere(4), x0=x0, callback=lambda w: iterates.append(w.copy()), **options)
    res = minimize(nan_at(iterates[keep], full_only=True, n=10), Sphere(4), x0=x0, **options)
    assert res.status == -1 and res.nit == m and res.nepoch == 1
    assert res.message == "the full cost or gradient became NaN or Inf at the snapshot of epoch 1"
    np.testing.assert_array_equal(res.x, iterates[m])
    np.testing.assert_allclose(res.fun, -0.5 * np.mean((X @ iterates[m]) ** 2), rtol=TOL)
    np.testing.assert_allclose(res.grad_norm, np.linalg.norm(rgrad(iterates[m], X)),
                               rtol=1e3 * EPS64)


# --- epoch bookkeeping -------------------------------------------------------------------------


def test_the_epoch_history_is_float64():
    X, x0 = data(n=10)
    res = minimize(pca_cost, Sphere(4), x0=x0, method="rsrg", lr=0.1, data=X, batch_size=5,
                   epochs=2, maxiter=31, rng=0)  # iteration 31: a full-gradient step (see below)
    assert set(res.epoch_history) == {"epoch", "iteration", "cost", "grad_norm", "samples", "time"}
    for name, column in res.epoch_history.items():
        assert column.dtype == np.float64 and column.shape == (3,), name
    # R-SRG: 1 + ceil(10 / 5) = 3 iterations an epoch. Samples: 10 at x0; per epoch 30: the
    # full-gradient step reuses the last full gradient, 2 steps evaluate 2 batches of 5 each,
    # and the full cost and gradient at the epoch's end take 10
    assert res.epoch_history["iteration"].tolist() == [0.0, 3.0, 6.0]
    assert res.epoch_history["samples"].tolist() == [10.0, 40.0, 70.0]


def test_the_rule_is_initialized_at_x0_in_the_geometry():
    seen = []

    class Recording(RSGD):
        def init(self, geometry, x):
            seen.append((geometry, np.array(x)))
            return super().init(geometry, x)

    X, x0 = data(n=6)
    minimize(pca_cost, Sphere(4), x0=x0, method=Recording(lr=0.1), data=X, batch_size=3,
             epochs=1, rng=0)
    ((geometry, x),) = seen
    assert isinstance(geometry, Sphere) and geometry.shape == (4,)
    np.testing.assert_array_equal(x, x0)


def test_ftol_zero_never_stops_even_on_a_flat_cost():
    """ftol = 0 (the default) turns the test off: a cost that does not change between epochs
    (here constant, with a gradient of its own) runs to the epochs asked for."""
    X, x0 = data(n=6)
    res = minimize(lambda w, batch: 1.0, Sphere(4), x0=x0, grad=pca_egrad, method="rsgd",
                   lr=0.1, data=X, batch_size=3, epochs=3, gtol=0, xtol=0, rng=0)
    assert res.epoch_history["cost"].tolist() == [1.0] * 4
    assert res.status == 1 and res.nepoch == 3 and res.message == (
        "maximum number of epochs (3) reached")


FTOL_CASES = {  # cost = scale * (offset + PCA cost); the relative decrease of epoch 1 is
    "negative": (10.0, 0.0),  # |f1 - f0| / |f1|  (the cost grows in magnitude)
    "positive": (10.0, 5.0),  # |f1 - f0| / |f0|  (the cost shrinks in magnitude)
    "small": (0.05, 0.0),  # |f1 - f0| / 1     (both below 1 in magnitude)
}


@pytest.mark.parametrize("case", FTOL_CASES)
@pytest.mark.parametrize("factor", [1.01, 0.75])
def test_ftol_is_relative_to_the_larger_full_cost_and_one(case, factor):
    scale, offset = FTOL_CASES[case]
    X, x0 = data(n=10)

    def cost(w, batch):
        return scale * (offset - 0.5 * anp.mean(anp.dot(batch, w) ** 2))

    options = dict(method="rsgd", lr=0.05 / scale, data=X, batch_size=3, gtol=0, xtol=0, rng=0)
    iterates = [x0]
    minimize(cost, Sphere(4), x0=x0, epochs=1, callback=lambda w: iterates.append(w.copy()),
             **options)
    f0, f1 = (scale * (offset - 0.5 * np.mean((X @ w) ** 2)) for w in (x0, iterates[4]))
    relative = abs(f0 - f1) / max(abs(f0), abs(f1), 1.0)
    res = minimize(cost, Sphere(4), x0=x0, epochs=3, ftol=factor * relative, **options)
    if factor > 1:  # stops at the end of epoch 1
        assert res.status == 3 and res.nepoch == 1, res.message
        assert res.message.startswith("relative decrease of the full cost over an epoch <= ftol")
    else:
        assert res.nepoch > 1


def test_ftol_is_inclusive():
    """|f0 - f1| <= ftol * 1 with costs below 1 in magnitude: ftol = |f0 - f1| stops."""
    X, x0 = data(n=10)

    def cost(w, batch):
        return 0.05 * pca_cost(w, batch)

    options = dict(method="rsgd", lr=1.0, data=X, batch_size=3, gtol=0, xtol=0, rng=0)
    first = minimize(cost, Sphere(4), x0=x0, epochs=1, **options)
    f0, f1 = first.epoch_history["cost"]
    assert max(abs(f0), abs(f1)) < 1.0
    res = minimize(cost, Sphere(4), x0=x0, epochs=3, ftol=abs(f0 - f1), **options)
    assert res.status == 3 and res.nepoch == 1


# --- R-SVRG and R-SRG on a product: a sphere and a Euclidean block ----------------------------


def _product_problem():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((8, 3)) * np.array([1.5, 1.0, 0.5])
    Y = rng.standard_normal((8, 2))
    w0 = normalize(rng.standard_normal(3))
    return (X, Y), (w0, np.zeros(2))


def product_cost(p, batch):
    w, b = p
    Xb, Yb = batch
    return anp.mean(-0.5 * anp.dot(Xb, w) ** 2 + 0.5 * anp.sum((b - Yb) ** 2, axis=1))


def product_rgrad(p, idx, data):
    (w, b), (X, Y) = p, data
    Xb, Yb = X[idx], Y[idx]
    return proj(w, pca_egrad(w, Xb)), b - Yb.mean(axis=0)


def product_step(p, v, lr):  # the exponential map of the sphere, a straight step for b
    return exp_map(p[0], -lr * v[0]), p[1] - lr * v[1]


def product_transp(p, q, v):  # projection onto the sphere's tangent space; b's is the identity
    return proj(q[0], v[0]), v[1]


def lin(a, u, c, v):
    return tuple(a * ui + c * vi for ui, vi in zip(u, v))


@pytest.mark.parametrize("method", ["rsvrg", "rsrg"])
def test_variance_reduction_on_a_product_matches_the_algorithms(method):
    data_, p0 = _product_problem()
    n, b, seed, epochs, lr, inner = 8, 3, 2, 2, 0.2, 2
    iterates = [p0]
    M = Product([Sphere(3), Euclidean(2)])
    res = minimize(product_cost, M, x0=p0, method=method, lr=lr, inner=inner, data=data_,
                   batch_size=b, epochs=epochs, gtol=0, rng=seed,
                   callback=lambda p: iterates.append(tuple(a.copy() for a in p)))
    sampler = Replay(np.random.default_rng(seed), n, b)
    everything = np.arange(n)
    p, ref, norms = p0, [p0], []
    for _ in range(epochs):
        if method == "rsvrg":  # snapshot: the epoch's start (option I)
            snap, snap_g = p, product_rgrad(p, everything, data_)
            for _ in range(inner):
                idx = sampler.next()
                correction = lin(1.0, product_rgrad(snap, idx, data_), -1.0, snap_g)
                v = lin(1.0, product_rgrad(p, idx, data_), -1.0,
                        product_transp(snap, p, correction))
                norms.append(math.hypot(*(np.linalg.norm(vi) for vi in v)))
                p = product_step(p, v, lr)
                ref.append(p)
        else:
            v = product_rgrad(p, everything, data_)
            norms.append(math.hypot(*(np.linalg.norm(vi) for vi in v)))
            p_prev, p = p, product_step(p, v, lr)
            ref.append(p)
            for _ in range(inner):
                idx = sampler.next()
                correction = lin(1.0, product_rgrad(p_prev, idx, data_), -1.0, v)
                v = lin(1.0, product_rgrad(p, idx, data_), -1.0,
                        product_transp(p_prev, p, correction))
                norms.append(math.hypot(*(np.linalg.norm(vi) for vi in v)))
                p_prev, p = p, product_step(p, v, lr)
                ref.append(p)
    assert len(iterates) == len(ref) == res.nit + 1 and res.nepoch == epochs
    for got, want in zip(iterates, ref):
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=TOL)
    np.testing.assert_allclose(res.history["grad_norm"][1:], norms, rtol=1e3 * EPS64)


class Replay:
    """The sampler's batches without replacement, replayed: a permutation per pass, cut in order."""

    def __init__(self, rng, n, b):
        self.rng, self.n, self.b = rng, n, b
        self.perm, self.pos = None, n

    def next(self):
        if self.pos >= self.n:
            self.perm, self.pos = self.rng.permutation(self.n), 0
        self.pos += self.b
        return self.perm[self.pos - self.b:self.pos]


# --- telemetry of a finite-sum run -----------------------------------------------------------


def test_telemetry_of_the_steps_taken():
    """With telemetry, each row describes the step x_k -> x_{k+1} as the tangent vector the
    retraction was given: here the inverse of the projection retraction,
    u = x_{k+1} / <x_k, x_{k+1}> - x_k, and Exp_x(u), the projection transport, written out."""
    X, x0 = data(n=10)
    iterates = [x0]
    res = minimize(pca_cost, Sphere(4, retraction="projection"), x0=x0, method="rsgd", lr=0.3,
                   data=X, batch_size=4, maxiter=5, telemetry=True, rng=0,
                   callback=lambda w: iterates.append(w.copy()))
    h = res.history
    assert res.nit == 5 and all(math.isnan(h[name][0]) for name in
                                ("tangency", "norm_drift", "chord", "retr_exp_gap",
                                 "transport_defect"))
    for k, (x, y) in enumerate(zip(iterates, iterates[1:]), start=1):
        u = y / (x @ y) - x
        e = exp_map(x, u)
        gap = math.atan2(np.linalg.norm(e - (e @ y) * y), e @ y)
        moved = proj(y, u)
        np.testing.assert_allclose(h["chord"][k], np.linalg.norm(y - x), rtol=1e-12)
        np.testing.assert_allclose(h["retr_exp_gap"][k], gap, rtol=1e-8)
        np.testing.assert_allclose(h["transport_defect"][k],
                                   abs(np.linalg.norm(moved) - np.linalg.norm(u))
                                   / np.linalg.norm(u), rtol=1e-8)
        assert h["retr_exp_gap"][k] > 1e-6  # a real gap: the steps are not tiny
        assert abs(h["tangency"][k]) <= 1e3 * EPS64 and abs(h["norm_drift"][k]) <= 10 * EPS64


# --- stopping within and at the end of an epoch -------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_maxiter_and_the_callback_stop_within_an_epoch(method):
    X, x0 = data(n=10)
    options = dict(METHODS[method], data=X, batch_size=3, epochs=3, gtol=0, rng=4)
    res = minimize(pca_cost, Sphere(4), x0=x0, maxiter=5, **options)
    assert res.status == 1 and res.nit == 5 and res.nepoch == 1
    assert res.message == "maximum number of iterations (5) reached"
    calls = []
    res = minimize(pca_cost, Sphere(4), x0=x0, callback=lambda w: calls.append(1) or
                   len(calls) == 6, **options)
    assert res.status == 5 and res.nit == 6 and len(calls) == 6


def test_a_nan_full_cost_at_an_epoch_end_stops_there():
    """The full cost at the end of epoch 1 (iterate 4 = ceil(10 / 3)) is NaN: the run stops at
    that iterate, unsuccessful; the epoch is counted and has its row, NaN."""
    X, x0 = data(n=10)
    options = dict(method="rsgd", lr=0.1, data=X, batch_size=3, epochs=3, gtol=0, rng=4)
    iterates = [x0]
    minimize(pca_cost, Sphere(4), x0=x0, callback=lambda w: iterates.append(w.copy()), **options)
    res = minimize(nan_at(iterates[4], full_only=True, n=10), Sphere(4), x0=x0, **options)
    assert res.status == -1 and res.nit == 4 and res.nepoch == 1
    assert res.message == ("the full cost or gradient became NaN or Inf at the end of epoch 1 "
                           "(iteration 4)")
    np.testing.assert_array_equal(res.x, iterates[4])
    assert math.isnan(res.fun) and math.isnan(res.grad_norm)
    # samples: 10 at x0, 3 + 3 + 3 + 1 in the epoch's batches, 10 for the full cost that failed
    assert res.nsamples == 30
    hist = res.epoch_history
    assert len(hist["cost"]) == res.nepoch + 1 and hist["iteration"].tolist() == [0.0, 4.0]
    assert math.isnan(hist["cost"][1]) and math.isnan(hist["grad_norm"][1])
    assert hist["samples"].tolist() == [10.0, 30.0]


def test_convergence_outranks_an_iteration_stop_and_an_iteration_stop_outranks_xtol():
    """At the end of epoch 1 (iteration 4): ftol met and the callback asking to stop -> status
    3; xtol met and maxiter reached -> status 1 (xtol is no convergence)."""
    X, x0 = data(n=10)
    options = dict(method="rsgd", lr=0.1, data=X, batch_size=3, epochs=5, gtol=0, rng=4)
    calls = []
    res = minimize(pca_cost, Sphere(4), x0=x0, ftol=math.inf, xtol=0,
                   callback=lambda w: calls.append(1) or len(calls) == 4, **options)
    assert res.status == 3 and res.nit == 4 and res.success
    res = minimize(pca_cost, Sphere(4), x0=x0, xtol=math.inf, maxiter=4, **options)
    assert res.status == 1 and res.nit == 4
    assert res.message == "maximum number of iterations (4) reached"


def test_a_bad_cost_value_is_named_under_the_penalty_strategy():
    """The penalty adds to the cost's value: a string must be refused before the addition."""
    X, x0 = data(n=6)
    with pytest.raises(ValueError, match=r"the cost must return a real number \(float\), got str"):
        minimize(lambda w, batch: "cost", Sphere(4), x0=x0, strategy="penalty", method="rsgd",
                 data=X, epochs=1, rng=0)


def test_epochs_bound_an_rsrg_run():
    """R-SRG, inner = 2: epochs of 3 iterations. maxiter = 31 falls on a full-gradient step
    (1 + 3 k), where even a run that missed its epoch ends would stop, instead of running on."""
    X, x0 = data(n=10)
    res = minimize(pca_cost, Sphere(4), x0=x0, method="rsrg", lr=0.1, inner=2, data=X,
                   batch_size=3, epochs=2, maxiter=31, gtol=0, rng=0)
    assert res.nit == 6 and res.nepoch == 2 and res.status == 1
    assert res.message == "maximum number of epochs (2) reached"
    assert res.epoch_history["iteration"].tolist() == [0.0, 3.0, 6.0]


@pytest.mark.parametrize("options, status, message", [
    (dict(epochs=0), 1, "maximum number of epochs (0) reached"),
    (dict(epochs=2, gtol=math.inf), 0, "gradient norm"),
])
def test_a_run_that_stops_at_x0_evaluates_the_full_cost_once(options, status, message):
    X, x0 = data(n=10)
    res = minimize(pca_cost, Sphere(4), x0=x0, method="rsvrg", data=X, batch_size=3, rng=0,
                   **options)
    assert res.status == status and res.message.startswith(message) and res.nit == 0
    np.testing.assert_array_equal(res.x, x0)
    np.testing.assert_allclose(res.fun, -0.5 * np.mean((X @ x0) ** 2), rtol=TOL)
    np.testing.assert_allclose(res.grad_norm, np.linalg.norm(rgrad(x0, X)), rtol=1e3 * EPS64)
    assert res.nsamples == 10 and res.nfev == 1 and res.nepoch == 0
    assert res.epoch_history["samples"].tolist() == [10.0]


@pytest.mark.parametrize("ctol, feasible", [(10.0, True), (1e-12, False)])
def test_ctol_decides_feasibility_of_a_finite_sum_result(ctol, feasible):
    """Unconstrained steps (strategy "none") leave the sphere by far more than 1e-12 and far
    less than 10 in one epoch; ftol = inf stops there, converged, so success is feasibility."""
    X, x0 = data(n=10)
    res = minimize(pca_cost, Sphere(4), x0=x0, method="rsgd", lr=0.05, strategy="none", data=X,
                   batch_size=3, epochs=3, ftol=math.inf, ctol=ctol, rng=0)
    assert res.status == 3 and 1e-6 < res.violation < 10.0
    assert res.success is feasible
    assert ("off the sphere" in res.message) is not feasible
