"""CosineDense (NormFace/CosFace) and the regularizers: values, gradients, the loss they join.

References: plain NumPy written from the papers (s cos theta, CosFace's
margin on the true class, the hyperspherical energy as a double loop over
pairs), the Thomson energy of :mod:`spherenet.problems`, closed-form
gradients of a linear model's mse, and central finite differences.
"""

import os

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet.nn import (L1, L1L2, L2, CosineDense, Dense, HypersphericalEnergy, Sequential,
                          load_model, regularizers)
from spherenet.nn._autodiff import value_and_grads
from spherenet.nn.losses import SparseCategoricalCrossentropy
from spherenet.optim import RSGD
from spherenet.problems import riesz_energy, thomson

EPS64 = np.finfo(np.float64).eps
EPS32 = np.finfo(np.float32).eps


def energy_double_loop(W, s):
    """sum_{i<j} f_s(|w_i/|w_i| - w_j/|w_j||) over columns, f_s = r^-s or log(1/r) for s = 0."""
    W = np.asarray(W, dtype=np.float64)
    cols = [W[:, i] / np.linalg.norm(W[:, i]) for i in range(W.shape[1])]
    total = 0.0
    for i in range(len(cols)):
        for j in range(i + 1, len(cols)):
            r = np.linalg.norm(cols[i] - cols[j])
            total += np.log(1.0 / r) if s == 0 else r ** -s
    return total


def fd_directional(f, x, v, h=1e-6):
    return (float(f(x + h * v)) - float(f(x - h * v))) / (2 * h)


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# --- the hyperspherical energy --------------------------------------------------------


@pytest.mark.parametrize("power", [1.0, 2.0, 0.5, 0.0])
def test_mhe_value_and_gradient_match_a_double_loop_and_finite_differences(power):
    rng = np.random.default_rng(0)
    W = rng.standard_normal((5, 7))
    reg = HypersphericalEnergy(factor=0.3, power=power)
    np.testing.assert_allclose(float(reg(W)), 0.3 * energy_double_loop(W, power), rtol=1e-13)
    _, (g,) = value_and_grads(reg, [W])
    for _ in range(3):
        v = rng.standard_normal(W.shape)
        np.testing.assert_allclose(np.sum(g * v), fd_directional(reg, W, v), rtol=1e-7, atol=1e-9)
    # scale-invariant per column (it sees directions only): the gradient is orthogonal to each
    np.testing.assert_allclose(np.sum(g * W, axis=0), 0.0, atol=1e-12)


def test_mhe_of_unit_points_in_r3_is_the_thomson_energy():
    rng = np.random.default_rng(1)
    problem = thomson(6)
    X = problem.manifold.random_point(rng)
    expected = problem.energy(X)
    np.testing.assert_allclose(float(HypersphericalEnergy(factor=1.0)(X)), expected, rtol=4 * EPS64)
    np.testing.assert_allclose(float(riesz_energy(X)), expected, rtol=0, atol=0)
    # the octahedron, a closed form: 12 edges of length sqrt 2 and 3 diagonals of length 2
    octahedron = np.hstack([np.eye(3), -np.eye(3)])
    np.testing.assert_allclose(float(HypersphericalEnergy(factor=1.0)(octahedron)),
                               12 / np.sqrt(2) + 3 / 2, rtol=4 * EPS64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mhe_factors_along_axis_and_dtype(dtype):
    rng = np.random.default_rng(2)
    K = rng.standard_normal((3, 3, 2, 4)).astype(dtype)  # a conv-like kernel: 4 filters
    value = HypersphericalEnergy(factor=1.0, axis=(0, 1, 2))(K)
    assert value.dtype == dtype
    np.testing.assert_allclose(float(value), energy_double_loop(K.reshape(18, 4), 1.0),
                               rtol=50 * np.finfo(dtype).eps)
    rows = HypersphericalEnergy(factor=1.0, axis=1)(K[0, 0])  # rows of a (2, 4) matrix
    np.testing.assert_allclose(float(rows), energy_double_loop(K[0, 0].T, 1.0),
                               rtol=50 * np.finfo(dtype).eps)
    with pytest.raises(ValueError, match=r"axis 2 does not fit a weight of shape \(2, 4\)"):
        HypersphericalEnergy(axis=2)(K[0, 0])


@pytest.mark.parametrize("make,match", [
    (lambda: L2(-0.1), "l2 must be a finite number >= 0"),
    (lambda: L1(float("nan")), "l1 must be a finite number >= 0"),
    (lambda: HypersphericalEnergy(power=-1.0), "power must be"),
    (lambda: regularizers.get("nonesuch"), "unknown regularizer 'nonesuch'"),
])
def test_regularizers_refuse_bad_values(make, match):
    with pytest.raises(ValueError, match=match):
        make()
    with pytest.raises(TypeError, match="axis must be an int or a tuple of ints"):
        HypersphericalEnergy(axis=1.0)


def test_l1_l2_values():
    w = np.array([[1.0, -2.0], [0.5, 0.0]])
    assert float(L1(0.1)(w)) == pytest.approx(0.1 * 3.5, rel=4 * EPS64)
    assert float(L2(0.1)(w)) == pytest.approx(0.1 * 5.25, rel=4 * EPS64)
    assert float(L1L2(0.1, 0.2)(w)) == pytest.approx(0.35 + 1.05, rel=4 * EPS64)


# --- regularizers in the loss -------------------------------------------------------


def test_l2_is_added_to_the_loss_exactly_and_drives_one_sgd_step():
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    model = Sequential([Dense(2, input_dim=3, kernel_regularizer=L2(0.1),
                              bias_regularizer=L1(0.05))], dtype="float64", seed=0)
    model.compile(optimizer=RSGD(lr=0.2), loss="mse")
    kernel, bias = model.get_weights()
    residual = x @ kernel + bias - y
    mse = np.mean(residual ** 2)
    expected = mse + 0.1 * np.sum(kernel ** 2) + 0.05 * np.sum(np.abs(bias))
    np.testing.assert_allclose(model.evaluate(x, y), expected, rtol=10 * EPS64)
    history = model.fit(x, y, epochs=1, batch_size=6, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=10 * EPS64)
    # one step: the mse gradient (2/(n m)) x^T r plus 2 * 0.1 * kernel (coupled weight decay)
    g_kernel = 2.0 / residual.size * x.T @ residual + 0.2 * kernel
    g_bias = 2.0 / residual.size * residual.sum(0) + 0.05 * np.sign(bias)
    new_kernel, new_bias = model.get_weights()
    np.testing.assert_allclose(new_kernel, kernel - 0.2 * g_kernel, rtol=0, atol=20 * EPS64)
    np.testing.assert_allclose(new_bias, bias - 0.2 * g_bias, rtol=0, atol=20 * EPS64)


def test_l2_regularizer_equals_rsgd_weight_decay_of_twice_its_factor():
    rng = np.random.default_rng(4)
    x, y = rng.standard_normal((16, 3)), rng.standard_normal((16, 1))
    a = Sequential([Dense(1, input_dim=3, kernel_regularizer=L2(0.05),
                          bias_regularizer=L2(0.05))], dtype="float64", seed=0)
    b = Sequential([Dense(1, input_dim=3)], dtype="float64", seed=0)
    a.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="mse")
    b.compile(optimizer=RSGD(lr=0.1, momentum=0.9, weight_decay=0.1), loss="mse")
    for m in (a, b):
        m.fit(x, y, epochs=3, batch_size=4, verbose=0, seed=0)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_allclose(wa, wb, rtol=0, atol=100 * EPS64)


def test_regularizers_are_saved_and_loaded(tmp_path):
    model = Sequential([Dense(3, input_dim=2, kernel_regularizer=HypersphericalEnergy(0.2, power=2),
                              bias_regularizer="l2"),
                        CosineDense(4, scale=8.0, margin=0.2, activation="softmax",
                                    kernel_regularizer={"name": "mhe", "factor": 0.1})], seed=0)
    path = os.path.join(tmp_path, "reg.npz")
    model.save(path)
    again = load_model(path)
    assert again.layers[0].kernel_regularizer.get_config() == {
        "name": "hyperspherical_energy", "factor": 0.2, "power": 2.0, "axis": 0}
    assert again.layers[0].bias_regularizer.get_config() == {"name": "l2", "l2": 0.01}
    cos = again.layers[1]
    assert (cos.scale, cos.margin, cos.units) == (8.0, 0.2, 4)
    assert cos.kernel_regularizer.factor == 0.1
    x = np.random.default_rng(5).standard_normal((3, 2)).astype(np.float32)
    np.testing.assert_array_equal(model.predict(x), again.predict(x))


# --- CosineDense ---------------------------------------------------------------------


def test_cosine_logits_are_scaled_cosines():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((5, 4))
    layer = CosineDense(3, scale=7.5)
    layer(x, seed=0)
    W = rng.standard_normal((4, 3))
    W /= np.linalg.norm(W, axis=0)
    layer.set_weights([W])
    cos = np.array([[xi @ W[:, j] / np.linalg.norm(xi) for j in range(3)] for xi in x])
    np.testing.assert_allclose(layer(x), 7.5 * cos, rtol=0, atol=40 * EPS64)
    np.testing.assert_allclose(layer(10 * x), layer(x), rtol=0, atol=40 * EPS64)
    # the kernel's columns are divided by their norms in the forward pass too
    params = (W * np.array([2.0, 0.5, 3.0]),)
    np.testing.assert_allclose(layer.pre_activation(params, x), 7.5 * cos, rtol=0, atol=40 * EPS64)
    x32 = x.astype(np.float32)
    assert CosineDense(3)(x32, seed=0).dtype == np.float32


def test_cosine_gradient_matches_finite_differences():
    rng = np.random.default_rng(7)
    x, W = rng.standard_normal((5, 4)), rng.standard_normal((4, 3))
    dy = rng.standard_normal((5, 3))
    layer = CosineDense(3, scale=5.0)
    layer.build((4,))

    def f(x, W):
        return anp.sum(layer.pre_activation((W,), x) * dy)

    _, (gx, gW) = value_and_grads(f, [x, W])
    for g, fun, at in ((gx, lambda a: f(a, W), x), (gW, lambda a: f(x, a), W)):
        v = rng.standard_normal(at.shape)
        np.testing.assert_allclose(np.sum(g * v), fd_directional(fun, at, v), rtol=1e-7, atol=1e-9)


def test_cosface_margin_acts_on_the_true_class_only_and_only_in_training():
    rng = np.random.default_rng(8)
    x, labels = rng.standard_normal((6, 4)), np.array([0, 2, 1, 2, 0, 1])
    model = Sequential([CosineDense(3, input_dim=4, scale=10.0, margin=0.35,
                                    activation="softmax")], dtype="float64", seed=0)
    model.compile(optimizer=RSGD(lr=0.1), loss="sparse_categorical_crossentropy")
    (W,) = model.get_weights()
    logits = 10.0 * (x / np.linalg.norm(x, axis=1, keepdims=True)) @ W
    onehot = np.eye(3)[labels]
    ce_plain = -np.mean(np.log(softmax(logits)[np.arange(6), labels]))
    ce_margin = -np.mean(np.log(softmax(logits - 3.5 * onehot)[np.arange(6), labels]))
    np.testing.assert_allclose(model.evaluate(x, labels), ce_plain, rtol=10 * EPS64)
    np.testing.assert_allclose(model.predict(x), softmax(logits), rtol=0, atol=10 * EPS64)
    # one batch: the loss fit logs is at the weights before its step
    history = model.fit(x, labels, epochs=1, batch_size=6, verbose=0)
    np.testing.assert_allclose(history.history["loss"][0], ce_margin, rtol=10 * EPS64)
    # with logits out and a from_logits loss, and with one-hot targets: the same margin
    model2 = Sequential([CosineDense(3, input_dim=4, scale=10.0, margin=0.35)],
                        dtype="float64", seed=0)
    model2.compile(optimizer=RSGD(lr=0.1), loss=SparseCategoricalCrossentropy(from_logits=True))
    h2 = model2.fit(x, labels, epochs=1, batch_size=6, verbose=0)
    np.testing.assert_allclose(h2.history["loss"][0], ce_margin, rtol=10 * EPS64)
    model3 = Sequential([CosineDense(3, input_dim=4, scale=10.0, margin=0.35,
                                     activation="softmax")], dtype="float64", seed=0)
    model3.compile(optimizer=RSGD(lr=0.1), loss="categorical_crossentropy")
    h3 = model3.fit(x, onehot, epochs=1, batch_size=6, verbose=0)
    np.testing.assert_allclose(h3.history["loss"][0], ce_margin, rtol=10 * EPS64)


def test_cosine_kernel_columns_stay_on_spheres_under_riemannian_training():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((64, 5)).astype(np.float32)
    labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0).astype(int)
    model = Sequential([Dense(8, input_dim=5, activation="tanh"),
                        CosineDense(3, scale=16.0, margin=0.2, activation="softmax",
                                    kernel_regularizer=HypersphericalEnergy(0.01))], seed=0)
    model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    history = model.fit(x, labels, epochs=5, batch_size=16, verbose=0, seed=0)
    W = model.get_weights()[2]
    assert W.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(W.astype(np.float64), axis=0), 1.0, atol=8 * EPS32)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize("kwargs,error,match", [
    ({"scale": 0.0}, ValueError, "scale must be a finite number > 0"),
    ({"scale": "big"}, TypeError, "scale must be a number"),
    ({"margin": -0.1}, ValueError, r"margin must be in \[0, 2\)"),
    ({"activation": "relu"}, ValueError, "activation must be None or 'softmax'"),
    ({"use_bias": True}, TypeError, "use_bias"),
])
def test_cosine_dense_refuses_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        CosineDense(3, **kwargs)


def test_margin_needs_logits_and_class_labels():
    model = Sequential([CosineDense(2, input_dim=3, margin=0.3)], seed=0)
    with pytest.raises(ValueError, match="has a margin .* needs a categorical or sparse"):
        model.compile(loss="sparse_categorical_crossentropy")  # probabilities: no logits
    model = Sequential([CosineDense(1, input_dim=3, margin=0.3)], seed=0)
    with pytest.raises(ValueError, match="lowers the true class's logit"):
        model.compile(loss="mse")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cosine_and_mhe_gradients_keep_the_dtype(dtype):
    rng = np.random.default_rng(10)
    x, W = rng.standard_normal((4, 3)).astype(dtype), rng.standard_normal((3, 5)).astype(dtype)
    layer = CosineDense(5)
    layer.build((3,))
    value, grads = value_and_grads(lambda x, W: anp.sum(layer.pre_activation((W,), x) ** 2),
                                   [x, W])
    assert value.dtype == dtype and all(g.dtype == dtype for g in grads)
    for power in (0.0, 1.0, 2.0):
        value, (g,) = value_and_grads(HypersphericalEnergy(0.1, power=power), [W])
        assert value.dtype == dtype and g.dtype == dtype


def test_l2_normalize_gradient_matches_finite_differences_also_for_a_zero_row():
    from spherenet.nn._normalize import l2_normalize

    rng = np.random.default_rng(11)
    x = rng.standard_normal((3, 4))
    x[1] = 0.0  # clipped: x / 1e-6, a linear map there
    dy = rng.standard_normal(x.shape)

    def f(x):
        return anp.sum(l2_normalize(x, 1) * dy)

    _, (g,) = value_and_grads(f, [x])
    np.testing.assert_allclose(g[1], dy[1] / 1e-6, rtol=1e-12)
    v = rng.standard_normal(x.shape)
    v[1] = 0.0  # finite differences across the clip would not see the linear branch alone
    np.testing.assert_allclose(np.sum(g * v), fd_directional(f, x, v), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.sum(g[[0, 2]] * x[[0, 2]], axis=1), 0.0, atol=1e-14)


# --- decoupled weight decay (Keras's optimizers' weight_decay) ----------------------


def test_decoupled_weight_decay_shrinks_before_a_momentum_step_unlike_the_coupled_one():
    from spherenet.optim import DecoupledWeightDecay

    rng = np.random.default_rng(12)
    x, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 1))
    lr, mu, wd = 0.1, 0.9, 0.3
    model = Sequential([Dense(1, input_dim=3)], dtype="float64", seed=0)
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=lr, momentum=mu), wd), loss="mse")
    w, b = model.get_weights()
    buf_w, buf_b = np.zeros_like(w), np.zeros_like(b)
    for _ in range(2):  # Keras 3 SGD: w <- w - lr wd w; m <- mu m - lr g(w_old); w <- w + m
        r = x @ w + b - y
        gw, gb = 2 / r.size * x.T @ r, 2 / r.size * r.sum(0)
        buf_w, buf_b = mu * buf_w + gw, mu * buf_b + gb
        w, b = (1 - lr * wd) * w - lr * buf_w, (1 - lr * wd) * b - lr * buf_b
        model.fit(x, y, epochs=1, batch_size=5, shuffle=False, verbose=0)
    np.testing.assert_allclose(model.get_weights()[0], w, rtol=0, atol=20 * EPS64)
    np.testing.assert_allclose(model.get_weights()[1], b, rtol=0, atol=20 * EPS64)
    coupled = Sequential([Dense(1, input_dim=3)], dtype="float64", seed=0)
    coupled.compile(optimizer=RSGD(lr=lr, momentum=mu, weight_decay=wd), loss="mse")
    coupled.fit(x, y, epochs=2, batch_size=5, shuffle=False, verbose=0)
    assert np.max(np.abs(coupled.get_weights()[0] - w)) > 1e-3  # through momentum: different


def test_decoupled_weight_decay_leaves_sphere_kernels_on_their_sphere():
    from spherenet.optim import DecoupledWeightDecay

    rng = np.random.default_rng(13)
    x, y = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    model = Sequential([Dense(2, input_dim=3, kernel_constraint="unit_norm")], dtype="float64",
                       seed=0)
    model.compile(optimizer=DecoupledWeightDecay(RSGD(lr=0.1), 0.5), loss="mse")
    model.fit(x, y, epochs=3, batch_size=4, verbose=0, seed=0)
    np.testing.assert_allclose(np.linalg.norm(model.get_weights()[0], axis=0), 1.0, atol=4 * EPS64)
    with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
        DecoupledWeightDecay(RSGD(), -1.0)
    with pytest.raises(TypeError, match="rule must be a step rule"):
        DecoupledWeightDecay("sgd", 0.1)
