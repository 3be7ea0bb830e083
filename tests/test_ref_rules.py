"""Reference tests of the step rules: RSGD (momentum, Nesterov, weight decay) and
RAdam/AMSGrad (adaptivity "factor" and "coordinate"), several steps against
hand-written references, Euclidean and spherical, with the sphere's maps
(projection, exponential map, projection retraction, projection and parallel
transports) written out in plain NumPy, one unit sphere per column; and the
learning-rate schedules.

References: PyTorch ``torch.optim.SGD`` (momentum, Nesterov, weight decay),
Becigneul & Ganea, "Riemannian adaptive optimization methods", ICLR 2019
(Algorithm 1: RAdam/RAMSGrad with per-factor second moments and transported
first moment), Kingma & Ba 2015 (Adam's bias corrections), Keras
``constraints.UnitNorm`` for the projection strategy.
"""

import math

import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.optim import RAdam, RSGD, schedules
from spherenet.strategies import Projection

EPS64 = np.finfo(np.float64).eps
EPS32 = float(np.finfo(np.float32).eps)

# --- the sphere, one factor per column (a 1-D array is one column) --------------------------


def col_dot(a, b):
    return np.sum(a * b, axis=0, keepdims=True)


def proj(x, u):
    return u - col_dot(x, u) * x


def exp_map(x, u):
    t = np.sqrt(col_dot(u, u))
    safe = np.where(t > 0, t, 1.0)
    return np.cos(t) * x + np.where(t > 0, np.sin(safe) / safe, 1.0) * u


def proj_retr(x, u):
    w = x + u
    return w / np.sqrt(col_dot(w, w))


def proj_transp(x, y, v):
    return proj(y, v)


def parallel_transp(x, y, v):
    return v - col_dot(y, v) / (1.0 + col_dot(x, y)) * (x + y)


SPHERICAL = {
    # name: (manifold factory, retraction, transport)
    "sphere-exp-proj": (lambda: Sphere(7), exp_map, proj_transp),
    "sphere-retr-parallel": (lambda: Sphere(7, retraction="projection", transport="parallel"),
                             proj_retr, parallel_transp),
    "oblique-exp-parallel": (lambda: Oblique(5, 4, transport="parallel"), exp_map,
                             parallel_transp),
    "oblique-retr-proj": (lambda: Oblique(5, 4, retraction="projection"), proj_retr,
                          proj_transp),
}


def _start(M, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(M.shape)
    x = x / np.sqrt(col_dot(x, x))
    # gradients with a radial part, of different sizes per step
    grads = [rng.standard_normal(M.shape) * s for s in (1.0, 0.3, 2.0, 0.7, 1.5, 0.1)]
    return x, grads


# --- RSGD ----------------------------------------------------------------------------------


def ref_rsgd_sphere(x, grads, lr, mu, nesterov, retr, transp):
    """Riemannian SGD with momentum: b <- mu b + r, step -lr b (or -lr (r + mu b)), b moved."""
    b, out = None, []
    for g in grads:
        r = proj(x, g)
        b = r if b is None else mu * b + r
        direction = r + mu * b if nesterov else b
        new = retr(x, -lr * direction)
        b = transp(x, new, b)
        x = new
        out.append((x, b))
    return out


@pytest.mark.parametrize("case", list(SPHERICAL))
@pytest.mark.parametrize("nesterov", [False, True])
def test_rsgd_momentum_on_spheres_matches_the_reference(case, nesterov):
    make, retr, transp = SPHERICAL[case]
    M = make()
    x, grads = _start(M, 1)
    lr, mu = 0.15, 0.8
    ref = ref_rsgd_sphere(x, grads, lr, mu, nesterov, retr, transp)
    rule = RSGD(lr=lr, momentum=mu, nesterov=nesterov)
    state = rule.init(M, x)
    for k, (g, (rx, rb)) in enumerate(zip(grads, ref)):
        x, state = rule.step(M, x, g, state)
        # rounding of a few ulps per step, compounded over 6 steps: 64 eps
        np.testing.assert_allclose(x, rx, rtol=0, atol=64 * EPS64, err_msg=f"x_{k}")
        np.testing.assert_allclose(state["momentum"], rb, rtol=0, atol=64 * EPS64 * 4,
                                   err_msg=f"b_{k}")
    assert state["step"] == len(grads)


@pytest.mark.parametrize("transport", ["projection", "parallel"])
@pytest.mark.parametrize("retraction", ["exp", "projection"])
def test_rsgd_momentum_on_rows_matches_the_reference(retraction, transport):
    # Oblique(..., axis=1): one sphere per row (the NumPy path of the fused step);
    # the reference works on the transposed arrays, one sphere per column.
    M = Oblique(4, 5, axis=1, retraction=retraction, transport=transport)
    xt, grads_t = _start(Oblique(5, 4), 13)
    retr = exp_map if retraction == "exp" else proj_retr
    transp = proj_transp if transport == "projection" else parallel_transp
    ref = ref_rsgd_sphere(xt, grads_t, 0.2, 0.7, False, retr, transp)
    rule = RSGD(lr=0.2, momentum=0.7)
    x, state = xt.T.copy(), rule.init(M, None)
    for k, (g, (rx, rb)) in enumerate(zip(grads_t, ref)):
        x, state = rule.step(M, x, g.T.copy(), state)
        np.testing.assert_allclose(x.T, rx, rtol=0, atol=64 * EPS64, err_msg=f"x_{k}")
        np.testing.assert_allclose(state["momentum"].T, rb, rtol=0, atol=256 * EPS64)


def test_nesterov_path_differs_from_plain_momentum_by_the_reference_amount():
    # Both paths pinned to their references, and the references differ: the two
    # rules cannot be swapped or merged without a test failing.
    make, retr, transp = SPHERICAL["sphere-exp-proj"]
    M = make()
    x0, grads = _start(M, 2)
    plain = ref_rsgd_sphere(x0, grads, 0.1, 0.9, False, retr, transp)[-1][0]
    nest = ref_rsgd_sphere(x0, grads, 0.1, 0.9, True, retr, transp)[-1][0]
    assert np.linalg.norm(plain - nest) > 1e-2


def ref_sgd_euclidean(x, grads, lr, mu, nesterov, wd):
    """torch.optim.SGD (dampening 0)."""
    b, out = None, []
    for g in grads:
        g = g + wd * x
        b = g if b is None else mu * b + g
        x = x - lr * (g + mu * b if nesterov else b)
        out.append(x)
    return out


@pytest.mark.parametrize("mu, nesterov, wd", [(0.0, False, 0.0), (0.9, False, 0.0),
                                              (0.9, True, 0.0), (0.5, False, 0.3),
                                              (0.7, True, 0.1), (0.0, False, 0.2)])
def test_rsgd_on_euclidean_is_torch_sgd(mu, nesterov, wd):
    E = Euclidean(3, 2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2))
    grads = [rng.standard_normal((3, 2)) for _ in range(6)]
    ref = ref_sgd_euclidean(x, grads, 0.2, mu, nesterov, wd)
    rule = RSGD(lr=0.2, momentum=mu, nesterov=nesterov, weight_decay=wd)
    state = rule.init(E, x)
    for k, (g, rx) in enumerate(zip(grads, ref)):
        x, state = rule.step(E, x, g, state)
        np.testing.assert_allclose(x, rx, rtol=0, atol=16 * EPS64, err_msg=f"x_{k}")


def test_weight_decay_on_a_product_acts_on_the_euclidean_factor():
    # On the unit sphere wd * x is radial: projected out. On R^n it is torch's.
    P = Product([Sphere(4), Euclidean(3)])
    rng = np.random.default_rng(4)
    xs, grads_s = _start(Sphere(4), 5)
    xe = rng.standard_normal(3)
    grads_e = [rng.standard_normal(3) for _ in grads_s]
    ref_s = ref_rsgd_sphere(xs, grads_s, 0.1, 0.6, False, exp_map, proj_transp)
    ref_e = ref_sgd_euclidean(xe, grads_e, 0.1, 0.6, False, 0.4)
    rule = RSGD(lr=0.1, momentum=0.6, weight_decay=0.4)
    x, state = (xs, xe), rule.init(P, (xs, xe))
    for gs, ge, (rs, _), re in zip(grads_s, grads_e, ref_s, ref_e):
        x, state = rule.step(P, x, (gs, ge), state)
        np.testing.assert_allclose(x[0], rs, rtol=0, atol=64 * EPS64)
        np.testing.assert_allclose(x[1], re, rtol=0, atol=16 * EPS64)


def test_rsgd_momentum_under_the_projection_strategy_is_keras_unit_norm():
    # Keras: b <- mu b + g (ambient, not projected, not transported), w <- normalize(w - lr b).
    M = Oblique(5, 4)
    G = Projection(M).geometry
    x, grads = _start(M, 6)
    rule = RSGD(lr=0.1, momentum=0.9)
    state = rule.init(G, x)
    rx, b = x, None
    for g in grads:
        b = g if b is None else 0.9 * b + g
        w = rx - 0.1 * b
        rx = w / np.sqrt(col_dot(w, w))
        x, state = rule.step(G, x, g, state)
        np.testing.assert_allclose(x, rx, rtol=0, atol=16 * EPS64)
        np.testing.assert_allclose(state["momentum"], b, rtol=0, atol=16 * EPS64)


@pytest.mark.parametrize("nesterov", [False, True])
def test_rsgd_float32_stays_float32_near_the_float64_reference(nesterov):
    make, retr, transp = SPHERICAL["oblique-exp-parallel"]
    M = make()
    x, grads = _start(M, 7)
    ref = ref_rsgd_sphere(x, grads, 0.15, 0.8, nesterov, retr, transp)
    rule = RSGD(lr=0.15, momentum=0.8, nesterov=nesterov)
    x32, state = x.astype(np.float32), rule.init(M, x)
    for g, (rx, _) in zip(grads, ref):
        x32, state = rule.step(M, x32, g.astype(np.float32), state)
        assert x32.dtype == np.float32
        # float32 inputs (rounded by eps32/2) through 6 steps: 64 eps32
        np.testing.assert_allclose(x32, rx, rtol=0, atol=64 * EPS32)


# --- RAdam ---------------------------------------------------------------------------------


def ref_radam(x, grads, lr, betas, eps, amsgrad, adaptivity, retr, transp, sphere=True):
    """Becigneul & Ganea's RAdam / RAMSGrad (sphere=True) or Adam/AMSGrad (sphere=False).

    ``lr`` may be a function of the step number 0, 1, 2, ...
    """
    b1, b2 = betas
    m = v = vmax = None
    out = []
    for t, g in enumerate(grads, start=1):
        r = proj(x, g) if sphere else g
        sq = col_dot(r, r) if (sphere and adaptivity == "factor") else r * r
        m = (1 - b1) * r if m is None else b1 * m + (1 - b1) * r
        v = (1 - b2) * sq if v is None else b2 * v + (1 - b2) * sq
        vmax = v if vmax is None else np.maximum(vmax, v)
        denom = vmax if amsgrad else v
        d = (m / (1 - b1**t)) / (np.sqrt(denom / (1 - b2**t)) + eps)
        if sphere and adaptivity == "coordinate":
            d = proj(x, d)
        step_lr = lr(t - 1) if callable(lr) else lr
        new = retr(x, -step_lr * d) if sphere else x - step_lr * d
        m = transp(x, new, m) if sphere else m
        x = new
        out.append(dict(x=x, m=m, v=v, vmax=vmax))
    return out


@pytest.mark.parametrize("case", list(SPHERICAL))
@pytest.mark.parametrize("adaptivity", ["factor", "coordinate"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_radam_on_spheres_matches_the_reference(case, adaptivity, amsgrad):
    make, retr, transp = SPHERICAL[case]
    M = make()
    x, grads = _start(M, 8)
    kwargs = dict(lr=0.05, betas=(0.8, 0.9), eps=1e-3)  # eps large enough to matter
    ref = ref_radam(x, grads, amsgrad=amsgrad, adaptivity=adaptivity, retr=retr,
                    transp=transp, **kwargs)
    rule = RAdam(amsgrad=amsgrad, adaptivity=adaptivity, **kwargs)
    state = rule.init(M, x)
    for k, (g, r) in enumerate(zip(grads, ref)):
        x, state = rule.step(M, x, g, state)
        np.testing.assert_allclose(x, r["x"], rtol=0, atol=64 * EPS64, err_msg=f"x_{k}")
        np.testing.assert_allclose(state["m"], r["m"], rtol=0, atol=64 * EPS64,
                                   err_msg=f"m_{k}")
        np.testing.assert_allclose(np.broadcast_to(state["v"], r["v"].shape), r["v"],
                                   rtol=64 * EPS64, err_msg=f"v_{k}")
        if amsgrad:
            np.testing.assert_allclose(np.broadcast_to(state["v_max"], r["vmax"].shape),
                                       r["vmax"], rtol=64 * EPS64)
    # the second moment has the reference's shape: one per column, or one per coordinate
    assert np.shape(state["v"]) == np.shape(ref[-1]["v"])


def test_amsgrad_changes_the_path_when_v_decays():
    # A large gradient, then small ones with a short memory for v: v_max > v, so
    # the AMSGrad reference path is not the Adam one (the tests above tell them apart).
    make, retr, transp = SPHERICAL["oblique-retr-proj"]
    M = make()
    x, grads = _start(M, 9)
    kwargs = dict(lr=0.05, betas=(0.8, 0.5), eps=1e-8, adaptivity="factor", retr=retr,
                  transp=transp)
    a = ref_radam(x, grads, amsgrad=False, **kwargs)[-1]
    b = ref_radam(x, grads, amsgrad=True, **kwargs)[-1]
    assert np.all(b["vmax"] >= b["v"]) and np.any(b["vmax"] > 2 * b["v"])
    assert np.linalg.norm(a["x"] - b["x"]) > 1e-3


@pytest.mark.parametrize("adaptivity", ["factor", "coordinate"])
@pytest.mark.parametrize("amsgrad", [False, True])
def test_radam_on_euclidean_is_adam_over_several_steps(adaptivity, amsgrad):
    E = Euclidean(4, 3)
    rng = np.random.default_rng(10)
    x = rng.standard_normal((4, 3))
    grads = [rng.standard_normal((4, 3)) * s for s in (1.0, 0.01, 5.0, 0.2, 0.05)]
    kwargs = dict(lr=0.1, betas=(0.9, 0.99), eps=1e-4)
    ref = ref_radam(x, grads, amsgrad=amsgrad, adaptivity=adaptivity, retr=None, transp=None,
                    sphere=False, **kwargs)
    rule = RAdam(amsgrad=amsgrad, adaptivity=adaptivity, **kwargs)
    state = rule.init(E, x)
    for g, r in zip(grads, ref):
        x, state = rule.step(E, x, g, state)
        np.testing.assert_allclose(x, r["x"], rtol=0, atol=16 * EPS64)
        np.testing.assert_allclose(state["v"], r["v"], rtol=16 * EPS64)


def test_radam_under_the_projection_strategy():
    # Ambient m and v (one v per column in "factor" mode), no transport, then normalize.
    M = Oblique(5, 4)
    G = Projection(M).geometry
    x, grads = _start(M, 11)
    b1, b2, eps, lr = 0.9, 0.99, 1e-6, 0.05
    rule = RAdam(lr=lr, betas=(b1, b2), eps=eps)
    state = rule.init(G, x)
    rx, m, v = x, 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * col_dot(g, g)
        w = rx - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
        rx = w / np.sqrt(col_dot(w, w))
        x, state = rule.step(G, x, g, state)
        np.testing.assert_allclose(x, rx, rtol=0, atol=16 * EPS64)


def test_radam_float32_stays_float32_near_the_float64_reference():
    make, retr, transp = SPHERICAL["oblique-exp-parallel"]
    M = make()
    x, grads = _start(M, 12)
    ref = ref_radam(x, grads, 0.05, (0.9, 0.999), 1e-8, False, "factor", retr, transp)
    rule = RAdam(lr=0.05)
    x32, state = x.astype(np.float32), rule.init(M, x)
    for g, r in zip(grads, ref):
        x32, state = rule.step(M, x32, g.astype(np.float32), state)
        assert x32.dtype == np.float32 and state["m"].dtype == np.float32
        np.testing.assert_allclose(x32, r["x"], rtol=0, atol=64 * EPS32)


# --- schedules -----------------------------------------------------------------------------


def test_schedules_against_their_formulas():
    steps = range(0, 40)
    s = schedules.step_decay(0.3, drop=0.7, every=4)
    np.testing.assert_allclose([s(k) for k in steps], [0.3 * 0.7 ** (k // 4) for k in steps],
                               rtol=4 * EPS64)
    e = schedules.exponential_decay(0.3, gamma=0.93)
    np.testing.assert_allclose([e(k) for k in steps], [0.3 * 0.93**k for k in steps],
                               rtol=64 * EPS64)
    c = schedules.cosine_decay(0.3, 25, lr_min=0.02)
    want = [0.02 + (0.3 - 0.02) * (1 + math.cos(math.pi * min(k, 25) / 25)) / 2 for k in steps]
    np.testing.assert_allclose([c(k) for k in steps], want, rtol=4 * EPS64)
    assert c(0) == 0.3 and c(25) == pytest.approx(0.02, rel=4 * EPS64)
    assert c(12) > c(13)  # decreasing on the way


@pytest.mark.parametrize("schedule", [schedules.step_decay(0.5, drop=0.5, every=2),
                                      schedules.exponential_decay(0.5, gamma=0.8),
                                      schedules.cosine_decay(0.5, 4, lr_min=0.1)])
def test_rules_read_the_schedule_at_steps_0_1_2(schedule):
    # RSGD on R: x_k = -sum_{j<k} lr(j) g. RAdam with a constant gradient: the
    # bias-corrected direction is g/(|g| + eps) at every step.
    E = Euclidean(1)
    g = np.array([2.0])
    run = RSGD(lr=schedule).start(E, np.zeros(1))
    for k in range(1, 7):
        run.step(g)
        assert run.x[0] == pytest.approx(-2.0 * sum(schedule(j) for j in range(k)), rel=8 * EPS64)
    run = RAdam(lr=schedule, eps=1e-8).start(E, np.zeros(1))
    for k in range(1, 7):
        run.step(g)
        want = -sum(schedule(j) for j in range(k)) * 2.0 / (2.0 + 1e-8)
        assert run.x[0] == pytest.approx(want, rel=64 * EPS64)
