"""Reference tests for mutants that survived the mutation runs after the speed work.

Each test pins one behaviour against a value worked out by hand (closed
forms with exactly representable numbers, plain NumPy), an invariant, or an
error message word for word. Each was checked to fail on the mutants it
was written for, applied by hand; ``tests/MUTATION.md`` ("After the speed
work") says what they pin, module by module.
"""

import numpy as np
import pytest

from spherenet.optim import schedules


# --- optim/schedules.py: inverse_time_decay


def test_inverse_time_decay_is_lr_over_one_plus_decay_times_step():
    s = schedules.inverse_time_decay(3.0, decay=0.5)
    # 3 / (1 + 0.5 k), exact in binary floating point for these steps
    assert [s(k) for k in (0, 2, 4, 10)] == [3.0, 1.5, 1.0, 0.5]


def test_inverse_time_decay_of_zero_is_a_constant_step():
    s = schedules.inverse_time_decay(2.0, decay=0)
    assert [s(k) for k in (0, 1, 7)] == [2.0, 2.0, 2.0]


@pytest.mark.parametrize("decay", [-0.25, float("nan")])
def test_inverse_time_decay_refuses_a_negative_or_nan_decay(decay):
    with pytest.raises(ValueError) as err:
        schedules.inverse_time_decay(1.0, decay)
    assert str(err.value) == f"decay must be >= 0, got {decay}"


# --- nn/losses.py: the renormalized categorical cross-entropy at the clip bounds


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("at", [0, 1])
def test_categorical_probability_gradient_is_kept_at_both_clip_bounds(dtype, at):
    """q = p / s exactly at fl(1e-7) or fl(1 - 1e-7): the gradient passes (inclusive clip)."""
    from autograd import grad

    from spherenet.nn.losses import categorical_crossentropy_probs

    lo = dtype(1e-7)
    hi = dtype(1) - lo
    p = np.array([[lo, hi], [dtype(0.5), dtype(0.5)]], dtype=dtype)
    assert np.sum(p[0]) == 1  # so q = p / s = p exactly on the first row
    t = np.zeros((2, 2), dtype=dtype)
    t[0, at] = 1
    t[1, 0] = 1
    g = grad(categorical_crossentropy_probs)(p, t)
    # d/dq_i (-sum t log q) = -t_i / q_i (at the bound too); through q = p / s:
    # dp_j = (dq_j - sum_i dq_i q_i) / s, divided by the n = 2 rows of the mean
    q0 = float(p[0, at])
    dq = np.zeros(2)
    dq[at] = -1.0 / q0
    row0 = (dq - dq[at] * q0) / 2
    row1 = (np.array([-2.0, 0.0]) + 1.0) / 2
    assert g.dtype == dtype
    np.testing.assert_allclose(g, [row0, row1], rtol=8 * np.finfo(dtype).eps)


def test_mean_squared_error_config_and_its_missing_logits_form():
    from spherenet.nn.losses import MeanSquaredError

    loss = MeanSquaredError()
    assert loss.get_config() == {"name": "mean_squared_error"}
    with pytest.raises(NotImplementedError) as err:
        loss.logits_loss(np.zeros((1, 1)), np.zeros((1, 1)))
    assert str(err.value) == "mean_squared_error has no logits form"


# --- nn/losses.py: categorical cross-entropy of arrays with more than one row axis


def rows_3d(dtype):
    """(2, 3, 4) logits, unnormalized probabilities and one-hot targets: six rows of four classes."""
    rng = np.random.default_rng(7)
    z = rng.normal(size=(2, 3, 4)).astype(dtype)
    p = rng.uniform(0.1, 2.0, size=(2, 3, 4)).astype(dtype)  # rows sum to anything: renormalized
    t = np.eye(4, dtype=dtype)[[[0, 1, 2], [3, 0, 1]]]
    return z, p, t


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_categorical_crossentropy_from_logits_of_3d_arrays(dtype):
    """Every row along the last axis is one distribution; the mean goes over all six rows."""
    from autograd import grad

    from spherenet.nn.losses import CategoricalCrossentropy

    z, _, t = rows_3d(dtype)
    loss = CategoricalCrossentropy(from_logits=True)
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    lse = np.log(np.sum(np.exp(z64), axis=2, keepdims=True))  # |z| < 5: no shift needed
    expected = np.mean(np.sum(t64 * (lse - z64), axis=2))
    expected_grad = (np.exp(z64 - lse) - t64) / 6
    tol = 16 * np.finfo(dtype).eps
    value = loss(t, z)
    np.testing.assert_allclose(value, expected, rtol=tol)
    g = grad(lambda a: loss(t, a))(z)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, expected_grad, rtol=tol, atol=tol * np.max(np.abs(expected_grad)))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_categorical_crossentropy_of_probabilities_of_3d_arrays(dtype):
    from autograd import grad

    from spherenet.nn.losses import CategoricalCrossentropy

    _, p, t = rows_3d(dtype)
    loss = CategoricalCrossentropy()
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    s = np.sum(p64, axis=2, keepdims=True)
    q = p64 / s  # within [0.01, 0.9]: the clip does not act
    expected = -np.mean(np.sum(t64 * np.log(q), axis=2))
    dq = -t64 / q
    expected_grad = (dq - np.sum(dq * q, axis=2, keepdims=True)) / s / 6
    tol = 16 * np.finfo(dtype).eps
    np.testing.assert_allclose(loss(t, p), expected, rtol=tol)
    g = grad(lambda a: loss(t, a))(p)
    assert g.dtype == dtype
    np.testing.assert_allclose(g, expected_grad, rtol=tol, atol=tol * np.max(np.abs(expected_grad)))


# --- optim/trust_regions.py: the history row of a rejected step


def test_a_rejected_trust_region_step_keeps_the_gradient_norm_in_its_row():
    from spherenet import Sphere, minimize

    a = np.diag([3.0, 2.0, 1.0])
    x0 = np.array([0.0, 0.6, 0.8])
    res = minimize(lambda x: -x @ a @ x, Sphere(3), x0, method="trust-regions", radius=2.0, max_radius=2.0,
                   grad=lambda x: -2 * a @ x, hess=lambda x, v: -2 * a @ v)
    egrad = -2 * a @ x0
    rgrad = egrad - (x0 @ egrad) * x0  # (0, -0.768, 0.576): norm 0.96
    h = res.history
    assert np.isnan(h["step_size"][1]) and h["cost"][1] == h["cost"][0]  # the first proposal is rejected
    np.testing.assert_allclose(h["grad_norm"][:2], [np.linalg.norm(rgrad)] * 2, rtol=4 * np.finfo(float).eps)
    assert res.success and np.isfinite(h["step_size"][2])


# --- manifolds/base.py: the defaults of the base class, on a manifold that keeps them


def circle_class():
    """The unit circle in R^2 with only the abstract maps written out (projection retraction)."""
    from spherenet.manifolds.base import Manifold

    class Circle(Manifold):
        shape = (2,)
        dim = 1
        typical_dist = np.pi

        def _proj(self, x, u):
            return u - (x @ u) * x

        def _ehess2rhess(self, x, egrad, ehess, u):
            return self._proj(x, ehess) - (x @ egrad) * u

        def _inner(self, x, u, v):
            return float(u @ v)

        def _dist(self, x, y):
            return float(np.arccos(np.clip(x @ y, -1, 1)))

        def _exp(self, x, u):
            t = np.linalg.norm(u)
            return x * np.cos(t) + u * (np.sinc(t / np.pi))

        def _log(self, x, y):
            return self._proj(x, y - x)

        def _retr(self, x, u):
            y = x + u
            return y / np.linalg.norm(y)

        def _inverse_retr(self, x, y):
            return y / (x @ y) - x

        def _transp(self, x, y, v):
            return self._proj(y, v)

        def random_point(self, rng=None, dtype=None):
            return np.array([1.0, 0.0])

        def _random_tangent(self, x, rng=None):
            return np.array([-x[1], x[0]])

        def _zero_vector(self, x):
            return np.zeros_like(x)

    return Circle


def test_the_base_gradient_step_retracts_minus_lr_times_the_riemannian_gradient():
    m = circle_class()()
    x, egrad = np.array([1.0, 0.0]), np.array([1.0, 2.0])
    # rgrad = (0, 2); x - 0.5 rgrad = (1, -1), normalized
    expected = np.array([1.0, -1.0]) / np.sqrt(2.0)
    np.testing.assert_allclose(m.gradient_step(x, egrad, 0.5), expected, rtol=0, atol=2 * np.finfo(float).eps)
    out = np.full(2, np.nan)
    assert m.gradient_step(x, egrad, 0.5, out=out) is out
    np.testing.assert_allclose(out, expected, rtol=0, atol=2 * np.finfo(float).eps)
    assert np.array_equal(m.gradient_step(x, np.zeros(2), 0.5), x)


def test_the_base_norm_repr_and_missing_maps():
    circle = circle_class()
    m = circle()
    x = np.array([0.0, 1.0])
    assert m.norm(x, np.array([3.0, 0.0])) == 3.0 and m.norm(x, np.array([-4.0, 0.0])) == 4.0
    assert repr(m) == "Circle()"
    with pytest.raises(NotImplementedError) as err:
        m.violation(x)
    assert str(err.value) == "Circle does not define violation"
    with pytest.raises(NotImplementedError) as err:
        m.project_point(2 * x)
    assert str(err.value) == "Circle does not define project_point"


# --- optim/trust_regions.py: which steps count toward the precision-floor stop


def flat_cost_run(scale):
    """A cost reported as exactly 1 everywhere, with the derivatives of scale * x^T A x on S^2.

    Every step changes the cost by 0 (rounding, for the floor test); the
    model's predicted decrease is ~scale: below the floor's noise
    (~eps |f|) for scale = 1e-17, far above it for scale = 1.
    """
    from spherenet import Sphere, minimize

    a = np.diag([3.0, 2.0, 1.0])
    return minimize(lambda x: 1.0, Sphere(3), np.array([0.6, 0.0, 0.8]), method="trust-regions",
                    grad=lambda x: scale * 2 * a @ x, hess=lambda x, v: scale * 2 * a @ v,
                    gtol=0.0, maxiter=5)


def test_steps_whose_gradient_norm_drops_do_not_count_toward_the_floor():
    """Predicted and actual decreases at rounding, but each accepted step lowers the gradient norm."""
    res = flat_cost_run(1e-17)
    g = res.history["grad_norm"]
    assert np.all(np.isfinite(res.history["step_size"][1:]))  # every step accepted ...
    assert np.all(g[1:] < g[:-1])  # ... and lowers the gradient norm: no floor stop
    assert res.status == 1 and res.nit == 5


def test_a_step_the_model_predicts_a_decrease_for_is_not_lost_in_rounding():
    """No cost change, but a model decrease of ~1: rejected steps, never a floor stop."""
    res = flat_cost_run(1.0)
    assert np.all(np.isnan(res.history["step_size"]))
    assert res.status == 1 and res.nit == 5


@pytest.mark.parametrize("cost, model, accepted", [(1.0, 12e3, False), (0.5, 12e3, False), (2.0, 12e3, True),
                                                   (1.0, 9.004e3, False), (1.0, 8.996e3, True)])
def test_the_ratio_is_regularized_by_1e3_eps_max_1_abs_f(cost, model, accepted):
    """rho = (f - f+ + reg) / (m + reg) with f - f+ = 0: the first step passes rho > 0.1 iff m < 9 reg.

    On S^2 at x0 = (0.6, 0, 0.8) with the derivatives of s x^T A x, A =
    diag(3, 2, 1): grad = 1.92 s t and Hess t = 1.12 s t along the unit
    tangent t = (0.8, 0, -0.6), so the step to the boundary of radius 0.5
    predicts m = s (1.92 * 0.5 - 0.5 * 1.12 * 0.25) = 0.82 s. With
    m = 12e3 eps: rejected for |f| <= 1 (reg = 1e3 eps), accepted for
    f = 2 (reg = 2e3 eps, rho = 1/7); m = 9e3 eps (1 +- 4e-4) for f = 1:
    just on each side of rho = 0.1.
    """
    from spherenet import Sphere, minimize

    a = np.diag([3.0, 2.0, 1.0])
    s = model * np.finfo(float).eps / 0.82
    res = minimize(lambda x: cost, Sphere(3), np.array([0.6, 0.0, 0.8]), method="trust-regions",
                   grad=lambda x: s * 2 * a @ x, hess=lambda x, v: s * 2 * a @ v, radius=0.5,
                   gtol=0.0, maxiter=1)
    assert np.isnan(res.history["step_size"][1]) != accepted
    if accepted:
        np.testing.assert_allclose(res.history["step_size"][1], 0.5, rtol=1e-12)


@pytest.mark.parametrize("rng, name", [(-1, "rng"), (np.int64(-7), "seed")])
def test_as_rng_names_a_negative_seed(rng, name):
    from spherenet.manifolds.base import as_rng

    with pytest.raises(ValueError) as err:
        as_rng(rng, name)
    assert str(err.value) == f"{name} must be None, an int >= 0 or a numpy.random.Generator, got {rng}"


# --- manifolds/_reduce.py: FactorReducer.moments by slices, several factors


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gradient_step_of_a_large_read_only_oblique_point_by_columns(dtype):
    """Oblique(20000, 2): 320 KB in float64, so the NumPy step (a read-only point takes it)
    sums <x, x>, <x, g>, <g, g> over slices of rows; two factors, both reduced along axis 0."""
    from spherenet import Oblique

    m = Oblique(20000, 2)
    rng = np.random.default_rng(3)
    x = rng.normal(size=m.shape)
    x /= np.linalg.norm(x, axis=0)
    g = rng.normal(size=m.shape)
    x, g = x.astype(dtype), g.astype(dtype)
    x.flags.writeable = False
    lr = 0.05
    # exp map, column by column, in float64 from the stored entries
    x64, g64 = x.astype(np.float64), g.astype(np.float64)
    nx = np.linalg.norm(x64, axis=0)
    r = g64 - (np.sum(x64 * g64, axis=0) / nx**2) * x64
    nr = np.linalg.norm(r, axis=0)
    t = lr * nr
    expected = np.cos(t) * x64 / nx - np.sin(t) * r / nr
    assert m.retraction == "exp"
    y = m.gradient_step(x, g, lr)
    assert y.dtype == dtype
    # float32: the rounding of the result; float64: sums of 20000 terms in another order (sqrt(n) eps)
    factor = 8 if dtype == np.float32 else 8 * np.sqrt(m.shape[0])
    atol = factor * np.finfo(dtype).eps * np.max(np.abs(expected))
    np.testing.assert_allclose(y, expected, rtol=0, atol=atol)


# --- nn/model.py: the optimizer signature of a decoupled weight decay


def test_optimizer_signature_of_decoupled_weight_decay():
    from spherenet.nn import Dense, Sequential
    from spherenet.optim import DecoupledWeightDecay, RAdam, RSGD

    model = Sequential([Dense(2, input_dim=2)])
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=0.1, momentum=0.5), weight_decay=0.01), loss="mse")
    assert model._optimizer_signature() == {
        "rule": {"class_name": "DecoupledWeightDecay",
                 "rule": {"class_name": "RSGD", "momentum": 0.5, "nesterov": False, "weight_decay": 0.0},
                 "weight_decay": 0.01},
        "strategy": "riemannian", "strategy_options": {}}

    class MyRSGD(RSGD):  # not the registered class: no signature, nothing to resume from
        pass

    model.compile(optimizer=DecoupledWeightDecay(MyRSGD(lr=0.1), weight_decay=0.01), loss="mse")
    assert model._optimizer_signature() is None
    model.compile(optimizer=DecoupledWeightDecay(RAdam(lr=0.1), weight_decay=0.5), loss="mse")
    assert model._optimizer_signature()["rule"]["rule"]["class_name"] == "RAdam"


# --- optim/bb.py: the "average" reference with eta = 1


def test_bb_average_reference_with_eta_one_is_the_mean_of_all_costs(monkeypatch):
    """Q_{k+1} = eta Q_k + 1, C_{k+1} = (eta Q_k C_k + f_{k+1}) / Q_{k+1}:
    with eta = 1, C_k = mean(f_0 .. f_k)."""
    import importlib

    from spherenet import Sphere, minimize

    lbfgs = importlib.import_module("spherenet.optim.lbfgs")  # the module, not the solver it exports

    seen = []
    search = lbfgs.HintLineSearch.search

    def spy(self, problem, x, d, f0, df0, f_ref=None):
        seen.append((f0, f_ref))
        return search(self, problem, x, d, f0, df0, f_ref)

    monkeypatch.setattr(lbfgs.HintLineSearch, "search", spy)
    a = np.diag([3.0, 2.0, 1.0])
    res = minimize(lambda x: -x @ a @ x, Sphere(3), np.array([0.6, 0.48, 0.64]), method="bb",
                   nonmonotone_rule="average", nonmonotone_eta=1.0, maxiter=6)
    costs = res.history["cost"]
    assert len(seen) == res.nit == 6 and np.all(np.isfinite(res.history["step_size"][1:]))
    for k, (f0, ref) in enumerate(seen):
        assert f0 == costs[k]
        np.testing.assert_allclose(ref, np.mean(costs[: k + 1]), rtol=8 * np.finfo(float).eps)


# --- nn/layers.py: a layer on its own (built by its first call)


def test_a_layer_called_alone_keeps_the_dtype_of_its_first_call():
    from spherenet.nn import Dense

    layer = Dense(2, kernel_initializer="ones", bias_initializer="zeros", name="first")
    out = layer([[1.0, 2.0]])  # a list: float32 weights, x @ ones + 0
    assert out.dtype == np.float32 and out.tolist() == [[3.0, 3.0]]
    again = layer(np.array([[1.0, -2.0]]))  # float64 data, cast to the layer's float32
    assert again.dtype == np.float32 and again.tolist() == [[-1.0, -1.0]]
    assert [w.dtype for w in layer.get_weights()] == [np.float32, np.float32]
    with pytest.raises(ValueError) as err:
        layer(np.ones((1, 3)))
    assert str(err.value) == "the input of layer 'first' has 3 features, but the model expects 2 features"


def test_the_first_call_seeds_the_initial_weights_and_the_dropout_mask():
    from spherenet.nn import Dense, Dropout

    x = np.arange(12.0).reshape(3, 4) + 1
    a, b, c = Dense(3)(x, seed=5), Dense(3)(x, seed=5), Dense(3)(x, seed=6)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    d1, d2 = Dropout(0.5)(x, training=True, seed=3), Dropout(0.5)(x, training=True, seed=3)
    assert np.array_equal(d1, d2)
    kept = d1 != 0
    assert 0 < kept.sum() < x.size and np.array_equal(d1[kept], 2 * x[kept])  # inverted dropout


def test_a_layer_whose_model_is_gone_makes_its_own_weights():
    import gc

    from spherenet.nn import Dense, Sequential

    model = Sequential([Dense(2, input_dim=3, kernel_initializer="ones", bias_initializer="zeros")])
    model.build()
    layer = model.layers[0]
    del model
    gc.collect()
    assert layer(np.ones((1, 3), dtype=np.float32)).tolist() == [[3.0, 3.0]]


def test_a_layer_that_joined_a_model_reads_and_writes_the_models_weights():
    from spherenet.nn import Dense, Sequential

    layer = Dense(2, kernel_initializer="ones", bias_initializer="zeros")
    layer(np.ones((1, 2), dtype=np.float32))  # its own weights first
    model = Sequential([layer])
    kernel, bias = np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0.5, -0.5])
    model.set_weights([kernel, bias])
    got = layer.get_weights()
    assert np.array_equal(got[0], kernel) and np.array_equal(got[1], bias)


def test_set_weights_of_a_layer_in_a_model_without_input_shape_names_set_weights():
    from spherenet.nn import Dense, Sequential

    model = Sequential([Dense(2)])
    with pytest.raises(ValueError) as err:
        model.layers[0].set_weights([np.eye(2), np.zeros(2)])
    assert str(err.value).startswith("the model's input shape is unknown, so set_weights cannot be done yet")


def test_set_weights_of_a_layer_on_its_own():
    from spherenet.nn import Dense, unit_norm

    layer = Dense(2, kernel_constraint=unit_norm(), name="first")
    layer(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(ValueError) as err:
        layer.set_weights([np.eye(2)])
    assert str(err.value) == "layer 'first' has 2 weight arrays (kernel, bias), got 1"
    with pytest.raises(ValueError) as err:
        layer.set_weights([np.eye(3), np.zeros(2)])
    assert str(err.value) == "first/kernel has shape (2, 2), got (3, 3)"
    with pytest.raises(ValueError, match=r"^first/kernel must lie on "):
        # columns of norm 1.5: off the constraint by 0.5, far beyond float32's tolerance (1e3 eps)
        layer.set_weights([1.5 * np.eye(2), np.zeros(2)])
    layer.set_weights([np.eye(2), np.array([0.25, -0.25])])  # float64 arrays: kept float32
    w = layer.get_weights()
    assert [a.dtype for a in w] == [np.float32, np.float32]
    assert np.array_equal(w[0], np.eye(2)) and w[1].tolist() == [0.25, -0.25]
