"""Reference tests of the finite-sum methods of ``minimize(..., data=...)``.

Every run is replayed by a hand-written NumPy loop with the same sampler
draws (``numpy.random.default_rng(seed)``: ``permutation(n)`` per pass
without replacement, ``integers(0, n, size)`` per batch with it), the sphere's
maps written out (projection, exponential map, projection retraction,
projection and parallel transports), and the update rules written from their
sources:

* mini-batch RSGD with momentum and RAdam (Becigneul & Ganea 2019,
  Algorithm 1) under the riemannian and projection strategies;
* Oja's rule, w <- (w + eta x x^T w) / ||w + eta x x^T w|| (Oja 1982);
* R-SVRG (Zhang, Reddi & Sra 2016, Algorithm 1; Sato, Kasai & Mishra 2019,
  with retraction and vector transport), snapshot options I and II;
* R-SRG (Kasai, Sato & Mishra 2018, Algorithm 1).

The cost is the streaming-PCA cost f(w) = -1/2 mean_i (x_i^T w)^2, whose
mini-batch Euclidean gradient -X_B^T X_B w / |B| is written here directly.
Tolerances: the references differ from the library only in the order of
floating-point operations, a few eps per step; 100 eps (float64) bounds
the dozen steps compared.
"""

import math

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Sphere, minimize
from spherenet.optim import schedules

EPS64 = np.finfo(np.float64).eps
TOL = 100 * EPS64


def pca_cost(w, batch):
    return -0.5 * anp.mean(anp.dot(batch, w) ** 2)


def pca_egrad(w, batch):
    return -(batch.T @ (batch @ w)) / len(batch)


# --- the sphere, written out --------------------------------------------------------------


def proj(x, u):
    return u - (x @ u) * x


def exp_map(x, u):
    t = np.linalg.norm(u)
    return x if t == 0 else math.cos(t) * x + (math.sin(t) / t) * u


def proj_retr(x, u):
    return (x + u) / np.linalg.norm(x + u)


def normalize(w):
    return w / np.linalg.norm(w)


def proj_transp(x, y, v):
    return proj(y, v)


def parallel_transp(x, y, v):
    return v - (y @ v) / (1.0 + x @ y) * (x + y)


def rgrad(x, batch):
    return proj(x, pca_egrad(x, batch))


def batches(seed, n, b, count, replace=False, rng=None):
    """The index batches the sampler draws, replayed."""
    rng = np.random.default_rng(seed) if rng is None else rng
    out, perm, pos = [], None, n
    for _ in range(count):
        if replace:
            out.append(rng.integers(0, n, size=b))
            continue
        if pos >= n:
            perm, pos = rng.permutation(n), 0
        out.append(perm[pos:pos + b])
        pos += b
    return out


def data(n=10, d=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * np.array([2.0, 1.0, 0.7, 0.3])[:d]
    x0 = normalize(rng.standard_normal(d))
    return X, x0


def run_iterates(X, x0, **options):
    """The iterates of a run (x0 first), through the callback."""
    iterates = [x0]
    res = minimize(pca_cost, Sphere(X.shape[1]), x0=x0, data=X,
                   callback=lambda w: iterates.append(w.copy()), **options)
    return res, iterates


# --- the sampler, pinned through the batches the cost sees ---------------------------------


@pytest.mark.parametrize("replace", [False, True])
def test_batches_seen_by_the_cost_are_the_seeded_draws(replace):
    n, b = 7, 3
    X = np.column_stack([np.arange(n) + 1.0, np.ones(n)])  # column 0 names the sample
    seen = []

    def cost(w, batch):
        seen.append(np.asarray(batch[:, 0] - 1.0).astype(int).tolist())
        return -0.5 * anp.mean(anp.dot(batch, w) ** 2)

    res = minimize(cost, Sphere(2), x0=normalize(np.ones(2)), method="rsgd", lr=0.01, data=X,
                   batch_size=b, replace=replace, maxiter=8, full_cost=False, rng=5)
    expected = [b.tolist() for b in batches(5, n, b, 8, replace)]
    # The evaluation at x0 and the final one are on all the data, in order.
    assert seen[0] == list(range(n)) and seen[-1] == list(range(n))
    assert seen[1:-1] == expected
    assert res.nit == 8
    if not replace:  # a pass uses every sample once, the last batch holds the rest
        assert sorted(sum(expected[:3], [])) == list(range(n)) and len(expected[2]) == 1
        assert sorted(sum(expected[3:6], [])) == list(range(n))


# --- mini-batch step rules against hand-written loops --------------------------------------


def _reference_rule(X, x0, idx, lr, strategy, kind, momentum=0.0, betas=(0.9, 0.999), eps=1e-8):
    x, buf, m, v = x0.copy(), None, None, None
    iterates, batch_costs = [x.copy()], []
    for k, i in enumerate(idx):
        B = X[i]
        batch_costs.append(-0.5 * np.mean((B @ x) ** 2))
        g = pca_egrad(x, B)
        step = lr(k)
        if strategy == "riemannian":
            r = proj(x, g)
        else:
            r = g
        if kind == "rsgd":
            buf = r if buf is None else momentum * buf + r
            direction = buf
        else:
            m = (1 - betas[0]) * r if m is None else betas[0] * m + (1 - betas[0]) * r
            sq = r @ r
            v = (1 - betas[1]) * sq if v is None else betas[1] * v + (1 - betas[1]) * sq
            t = k + 1
            direction = (m / (1 - betas[0] ** t)) / (np.sqrt(v / (1 - betas[1] ** t)) + eps)
        if strategy == "riemannian":
            new = exp_map(x, -step * direction)
            if kind == "rsgd":
                buf = proj_transp(x, new, buf)
            else:
                m = proj_transp(x, new, m)
        else:
            new = normalize(x - step * direction)
        x = new
        iterates.append(x.copy())
    return iterates, batch_costs


RULE_CASES = {
    "rsgd": dict(method="rsgd", lr=0.1),
    "rsgd-momentum": dict(method="rsgd", lr=0.1, momentum=0.9),
    "rsgd-schedule": dict(method="rsgd", lr=schedules.inverse_time_decay(0.3, 0.5)),
    "radam": dict(method="radam", lr=0.05),
}


@pytest.mark.parametrize("strategy", ["riemannian", "projection"])
@pytest.mark.parametrize("case", RULE_CASES)
def test_minibatch_rule_matches_a_numpy_loop(case, strategy):
    options = RULE_CASES[case]
    X, x0 = data(n=10)
    steps, seed, b = 7, 3, 3
    res, iterates = run_iterates(X, x0, strategy=strategy, batch_size=b, maxiter=steps, rng=seed,
                                 **options)
    lr = options["lr"] if callable(options["lr"]) else (lambda k, c=options["lr"]: c)
    ref, batch_costs = _reference_rule(X, x0, batches(seed, 10, b, steps), lr, strategy,
                                       options["method"], momentum=options.get("momentum", 0.0))
    np.testing.assert_allclose(np.array(iterates), np.array(ref), rtol=0, atol=TOL)
    # Row k of the history: the cost of batch k at the iterate before step k.
    np.testing.assert_allclose(res.history["cost"][1:], batch_costs, rtol=TOL, atol=0)
    np.testing.assert_allclose(res.history["cost"][0], -0.5 * np.mean((X @ x0) ** 2), rtol=TOL)
    # An epoch is ceil(10 / 3) = 4 steps: its full cost is the cost at the 4th iterate.
    assert res.nepoch == 1 and res.epoch_history["iteration"].tolist() == [0, 4]
    np.testing.assert_allclose(res.epoch_history["cost"][1], -0.5 * np.mean((X @ ref[4]) ** 2),
                               rtol=TOL)
    # fun and grad_norm: the full cost and Riemannian gradient norm at x (mid-epoch stop).
    np.testing.assert_allclose(res.fun, -0.5 * np.mean((X @ ref[-1]) ** 2), rtol=TOL)
    np.testing.assert_allclose(res.grad_norm, np.linalg.norm(rgrad(ref[-1], X)), rtol=1e3 * EPS64)


def test_oja_rule_is_rsgd_under_projection():
    """Oja (1982): w <- (w + eta x x^T w)/||.||, one sample at a time, two passes."""
    X, x0 = data(n=12)
    eta, seed = 0.05, 11
    res, iterates = run_iterates(X, x0, method="rsgd", strategy="projection", lr=eta,
                                 batch_size=1, epochs=2, rng=seed)
    w, ref = x0.copy(), [x0.copy()]
    for i in batches(seed, 12, 1, 24):
        x = X[i[0]]
        w = w + eta * x * (x @ w)
        w = w / np.linalg.norm(w)
        ref.append(w)
    assert res.nit == 24 and res.nepoch == 2 and res.status == 1
    np.testing.assert_allclose(np.array(iterates), np.array(ref), rtol=0, atol=TOL)


def test_oja_rule_in_float32_keeps_the_dtype():
    X, x0 = data(n=12)
    res, iterates = run_iterates(X.astype(np.float32), x0.astype(np.float32), method="rsgd",
                                 strategy="projection", lr=0.05, batch_size=1, epochs=1, rng=2)
    w = x0.copy()
    for i in batches(2, 12, 1, 12):
        x = X[i[0]]
        w = normalize(w + 0.05 * x * (x @ w))
    assert res.x.dtype == np.float32 and all(it.dtype == np.float32 for it in iterates)
    # 12 steps, each a few float32 roundings of numbers of order 1
    np.testing.assert_allclose(res.x, w, rtol=0, atol=100 * np.finfo(np.float32).eps)


def test_riemannian_sgd_is_not_oja():
    """The Riemannian step on the same samples differs from Oja's (another step size):
    the reference above would catch a strategy that is ignored."""
    X, x0 = data(n=12)
    a = minimize(pca_cost, Sphere(4), x0=x0, method="rsgd", strategy="projection", lr=0.05,
                 data=X, batch_size=1, epochs=1, rng=3)
    b = minimize(pca_cost, Sphere(4), x0=x0, method="rsgd", strategy="riemannian", lr=0.05,
                 data=X, batch_size=1, epochs=1, rng=3)
    assert np.linalg.norm(a.x - b.x) > 1e-4


def test_full_batch_sgd_is_fixed_step_gradient_descent():
    """batch_size = n without replacement: every batch is all the data (permuted),
    so the iterates are those of the full-batch step rule with the same step."""
    X, x0 = data(n=9)
    full = []
    minimize(lambda w: pca_cost(w, X), Sphere(4), x0=x0, method="rsgd", lr=0.2, maxiter=15,
             gtol=0, xtol=0, callback=lambda w: full.append(w.copy()))
    res, iterates = run_iterates(X, x0, method="rsgd", lr=0.2, batch_size=9, maxiter=15, gtol=0,
                                 rng=4)
    assert res.nepoch == 15
    # The mean over a permuted batch sums in another order: a few eps per step.
    np.testing.assert_allclose(np.array(iterates[1:]), np.array(full), rtol=0, atol=TOL)


# --- variance reduction ---------------------------------------------------------------------


TRANSPORTS = {
    "exp-projection": (dict(), exp_map, proj_transp),
    "retr-parallel": (dict(retraction="projection", transport="parallel"), proj_retr,
                      parallel_transp),
}


@pytest.mark.parametrize("geometry", TRANSPORTS)
@pytest.mark.parametrize("snapshot", ["last", "random"])
def test_rsvrg_epochs_match_the_algorithm(geometry, snapshot):
    options, retr, transp = TRANSPORTS[geometry]
    X, x0 = data(n=10)
    lr, b, seed, epochs = 0.2, 3, 7, 2
    iterates = [x0]
    res = minimize(pca_cost, Sphere(4, **options), x0=x0, method="rsvrg", lr=lr,
                   snapshot=snapshot, data=X, batch_size=b, epochs=epochs, gtol=0, rng=seed,
                   callback=lambda w: iterates.append(w.copy()))
    m = 4  # ceil(10 / 3): one pass per epoch
    rng = np.random.default_rng(seed)
    x = x0.copy()
    snap = x0.copy()
    ref, norms = [x0.copy()], []
    for _ in range(epochs):
        keep = int(rng.integers(m)) if snapshot == "random" else None
        snap_grad = rgrad(snap, X)
        idx = batches(None, 10, b, m, rng=rng)  # the epoch's pass, after the index
        kept = None
        for t in range(m):
            if t == keep:
                kept = x.copy()
            B = X[idx[t]]
            v = rgrad(x, B) - transp(snap, x, rgrad(snap, B) - snap_grad)
            norms.append(np.linalg.norm(v))
            x = retr(x, -lr * v)
            ref.append(x.copy())
        snap = x.copy() if keep is None else kept
    assert res.nit == epochs * m and res.nepoch == epochs
    np.testing.assert_allclose(np.array(iterates), np.array(ref), rtol=0, atol=TOL)
    np.testing.assert_allclose(res.history["grad_norm"][1:], norms, rtol=1e3 * EPS64)
    # One full gradient per epoch (at x0, then at the snapshots), two batch gradients a step.
    extra = 10 * (epochs - 1) if snapshot == "random" else 0  # none after the last epoch
    assert res.nsamples == 10 * (epochs + 1) + 2 * 10 * epochs + extra


@pytest.mark.parametrize("geometry", TRANSPORTS)
def test_rsrg_epochs_match_the_algorithm(geometry):
    options, retr, transp = TRANSPORTS[geometry]
    X, x0 = data(n=10)
    b, seed, epochs, inner = 2, 9, 2, 3
    lr = schedules.inverse_time_decay(0.3, 0.2)  # called with the iteration count
    iterates = [x0]
    res = minimize(pca_cost, Sphere(4, **options), x0=x0, method="rsrg", lr=lr, inner=inner,
                   data=X, batch_size=b, epochs=epochs, gtol=0, rng=seed,
                   callback=lambda w: iterates.append(w.copy()))
    idx = iter(batches(seed, 10, b, epochs * inner))
    x, ref, norms = x0.copy(), [x0.copy()], []
    for _ in range(epochs):
        v = rgrad(x, X)
        norms.append(np.linalg.norm(v))
        x_prev, x = x, retr(x, -lr(len(ref) - 1) * v)
        ref.append(x.copy())
        for _ in range(inner):
            B = X[next(idx)]
            v = rgrad(x, B) - transp(x_prev, x, rgrad(x_prev, B) - v)
            norms.append(np.linalg.norm(v))
            x_prev, x = x, retr(x, -lr(len(ref) - 1) * v)
            ref.append(x.copy())
    assert res.nit == epochs * (1 + inner) and res.nepoch == epochs
    np.testing.assert_allclose(np.array(iterates), np.array(ref), rtol=0, atol=TOL)
    np.testing.assert_allclose(res.history["grad_norm"][1:], norms, rtol=1e3 * EPS64)
    # The first step of an epoch is the full-gradient step: its row holds the full cost.
    np.testing.assert_allclose(res.history["cost"][1 + inner + 1],
                               -0.5 * np.mean((X @ ref[1 + inner]) ** 2), rtol=TOL)
