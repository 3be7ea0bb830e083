"""BatchNormalization and LayerNormalization: forward, VJPs, moving statistics, states, callable layers.

References are plain NumPy written from the papers (Ioffe & Szegedy 2015,
Ba et al. 2016) and the closed-form backward pass of batch normalization,
plus central finite differences in float64; the moving-statistics update is
Keras's (momentum 0.99, epsilon 1e-3, biased batch variance).
"""

import os

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet.nn import (BatchNormalization, Dense, Dropout, LayerNormalization, Sequential,
                          load_model)
from spherenet.nn._autodiff import value_and_grads
from spherenet.optim import RSGD

EPS64 = np.finfo(np.float64).eps
EPS32 = np.finfo(np.float32).eps


def bn_reference(x, gamma, beta, mean, var, eps):
    """gamma (x - mean) / sqrt(var + eps) + beta, channels last."""
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def bn_backward_reference(x, gamma, dy, eps):
    """The closed-form backward pass of training-mode BN over axis 0 (Ioffe & Szegedy, sec. 3)."""
    n = x.shape[0]
    mu = x.mean(0)
    var = ((x - mu) ** 2).mean(0)
    inv = 1.0 / np.sqrt(var + eps)
    xhat = (x - mu) * inv
    dxhat = dy * gamma
    dx = inv / n * (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    return dx, (dy * xhat).sum(0), dy.sum(0)


def fd_directional(f, args, argnum, direction, h=1e-6):
    plus, minus = list(args), list(args)
    plus[argnum] = args[argnum] + h * direction
    minus[argnum] = args[argnum] - h * direction
    return (float(f(*plus)) - float(f(*minus))) / (2 * h)


def built_bn(shape, **kw):
    layer = BatchNormalization(**kw)
    layer.build(shape)
    return layer


@pytest.fixture
def bn_data():
    rng = np.random.default_rng(0)
    x = 3.0 * rng.standard_normal((7, 4)) + 1.5
    gamma = 1.0 + 0.3 * rng.standard_normal(4)
    beta = rng.standard_normal(4)
    mm = rng.standard_normal(4)
    mv = rng.uniform(0.5, 2.0, 4)
    return x, gamma, beta, mm, mv


# --- BatchNormalization forward -------------------------------------------------------


def test_bn_training_forward_and_update_match_numpy(bn_data):
    x, gamma, beta, mm, mv = bn_data
    layer = built_bn((4,))
    out, (new_mean, new_var) = layer.apply_with_state((gamma, beta), (mm, mv), x, training=True)
    mu, var = x.mean(0), x.var(0)  # biased, ddof=0
    np.testing.assert_allclose(out, bn_reference(x, gamma, beta, mu, var, 1e-3),
                               rtol=0, atol=50 * EPS64)
    np.testing.assert_allclose(new_mean, 0.99 * mm + 0.01 * mu, rtol=0, atol=10 * EPS64)
    np.testing.assert_allclose(new_var, 0.99 * mv + 0.01 * var, rtol=0, atol=50 * EPS64)
    # the unbiased variance would differ by a factor n / (n - 1): far beyond the tolerance
    assert np.max(np.abs(new_var - (0.99 * mv + 0.01 * x.var(0, ddof=1)))) > 1e-3


def test_bn_inference_uses_moving_statistics_and_keeps_them(bn_data):
    x, gamma, beta, mm, mv = bn_data
    layer = built_bn((4,), epsilon=0.01)
    out, states = layer.apply_with_state((gamma, beta), (mm, mv), x, training=False)
    np.testing.assert_allclose(out, bn_reference(x, gamma, beta, mm, mv, 0.01),
                               rtol=0, atol=50 * EPS64)
    assert states[0] is mm and states[1] is mv


def test_bn_momentum_and_channel_axis():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3, 2))
    layer = built_bn((3, 2), axis=1, momentum=0.5, center=False, scale=False)
    assert layer.params == () and [p.shape for p in layer.states] == [(3,), (3,)]
    out, (m, v) = layer.apply_with_state((), (np.zeros(3), np.ones(3)), x, training=True)
    mu = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2))
    expected = (x - mu[None, :, None]) / np.sqrt(var[None, :, None] + 1e-3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=50 * EPS64)
    np.testing.assert_allclose(m, 0.5 * mu, rtol=0, atol=10 * EPS64)
    np.testing.assert_allclose(v, 0.5 + 0.5 * var, rtol=0, atol=10 * EPS64)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bn_keeps_dtype_in_output_states_and_gradients(dtype, bn_data):
    x, gamma, beta, mm, mv = (a.astype(dtype) for a in bn_data)
    layer = built_bn((4,))
    out, states = layer.apply_with_state((gamma, beta), (mm, mv), x, training=True)
    assert out.dtype == dtype and all(s.dtype == dtype for s in states)
    w = np.ones_like(x)

    def f(x, g, b):
        return anp.sum(layer.apply_with_state((g, b), (mm, mv), x, True)[0] ** 2 * w)

    _, grads = value_and_grads(f, [x, gamma, beta])
    assert all(g.dtype == dtype for g in grads)


# --- BatchNormalization backward ------------------------------------------------------


def test_bn_training_vjp_matches_closed_form_and_finite_differences(bn_data):
    x, gamma, beta, mm, mv = bn_data
    layer = built_bn((4,))
    dy = np.random.default_rng(3).standard_normal(x.shape)

    def f(x, g, b):
        return anp.sum(layer.apply_with_state((g, b), (mm, mv), x, True)[0] * dy)

    _, (gx, gg, gb) = value_and_grads(f, [x, gamma, beta])
    rx, rg, rb = bn_backward_reference(x, gamma, dy, 1e-3)
    np.testing.assert_allclose(gx, rx, rtol=0, atol=100 * EPS64 * np.abs(rx).max())
    np.testing.assert_allclose(gg, rg, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gb, rb, rtol=1e-13, atol=1e-13)
    rng = np.random.default_rng(4)
    for k, g in enumerate((gx, gg, gb)):
        v = rng.standard_normal(g.shape)
        # central differences: error ~ h^2 f''' + eps f / h, about 1e-9 here
        np.testing.assert_allclose(np.sum(g * v), fd_directional(f, [x, gamma, beta], k, v),
                                   rtol=1e-7, atol=1e-7)


def test_bn_inference_vjp_matches_finite_differences(bn_data):
    x, gamma, beta, mm, mv = bn_data
    layer = built_bn((4,))
    dy = np.random.default_rng(5).standard_normal(x.shape)

    def f(x, g, b):
        return anp.sum(layer.apply_with_state((g, b), (mm, mv), x, False)[0] * dy)

    _, (gx, gg, gb) = value_and_grads(f, [x, gamma, beta])
    inv = 1.0 / np.sqrt(mv + 1e-3)
    np.testing.assert_allclose(gx, dy * gamma * inv, rtol=1e-14, atol=1e-14)
    np.testing.assert_allclose(gg, (dy * (x - mm) * inv).sum(0), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(gb, dy.sum(0), rtol=1e-14, atol=1e-14)


def test_bn_output_does_not_depend_on_the_scale_of_the_kernel_before_it():
    # what makes the kernel "secretly on a sphere": BN(x W c) = BN(x W) per column, c > 0
    rng = np.random.default_rng(6)
    x, kernel = rng.standard_normal((16, 3)), rng.standard_normal((3, 4))
    layer = built_bn((4,))
    states = (np.zeros(4), np.ones(4))
    params = (np.ones(4), np.zeros(4))
    scale = np.array([0.5, 2.0, 7.0, 1.0])
    a = layer.apply_with_state(params, states, x @ kernel, True)[0]
    b = layer.apply_with_state(params, states, x @ (kernel * scale), True)[0]
    # epsilon breaks exact invariance: var + eps vs c^2 var + eps, relative 1e-3 / var
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-2)
    assert np.max(np.abs(a - b)) > 0  # epsilon is there


# --- LayerNormalization ---------------------------------------------------------------


def ln_reference(x, gamma, beta, axes, eps):
    mu = x.mean(axis=axes, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("axis,shape,axes,gshape", [
    (-1, (5,), (1,), (5,)),
    (1, (3, 4), (1,), (3, 1)),
    ((1, 2), (3, 4), (1, 2), (3, 4)),
])
def test_ln_forward_and_vjp(axis, shape, axes, gshape):
    rng = np.random.default_rng(7)
    x = 2.0 * rng.standard_normal((6, *shape)) - 1.0
    layer = LayerNormalization(axis=axis)
    layer.build(shape)
    gamma = 1 + 0.2 * rng.standard_normal(layer.params[0].shape)
    beta = rng.standard_normal(layer.params[1].shape)
    out = layer.apply((gamma, beta), x, training=True)
    expected = ln_reference(x, gamma.reshape(gshape), beta.reshape(gshape), axes, 1e-3)
    np.testing.assert_allclose(out, expected, rtol=0, atol=50 * EPS64)
    np.testing.assert_array_equal(out, layer.apply((gamma, beta), x, training=False))
    dy = rng.standard_normal(x.shape)

    def f(x, g, b):
        return anp.sum(layer.apply((g, b), x) * dy)

    _, grads = value_and_grads(f, [x, gamma, beta])
    for k, g in enumerate(grads):
        v = rng.standard_normal(g.shape)
        np.testing.assert_allclose(np.sum(g * v), fd_directional(f, [x, gamma, beta], k, v),
                                   rtol=1e-7, atol=1e-7)


def test_ln_float32_is_kept():
    x = np.random.default_rng(8).standard_normal((3, 5)).astype(np.float32)
    layer = LayerNormalization()
    out = layer(x)
    assert out.dtype == np.float32 and all(w.dtype == np.float32 for w in layer.get_weights())
    np.testing.assert_allclose(out, ln_reference(x.astype(np.float64), 1.0, 0.0, (1,), 1e-3),
                               rtol=0, atol=20 * EPS32)


# --- bad input ------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs,error,match", [
    ({"momentum": 1.0}, ValueError, r"momentum must be in \[0, 1\), got 1.0"),
    ({"momentum": -0.1}, ValueError, "momentum must be in"),
    ({"momentum": "0.9"}, TypeError, "momentum must be a number"),
    ({"epsilon": 0.0}, ValueError, "epsilon must be a finite number > 0, got 0.0"),
    ({"epsilon": -1e-3}, ValueError, "epsilon must be"),
    ({"epsilon": None}, TypeError, "epsilon must be a positive number"),
    ({"axis": 1.5}, TypeError, "axis must be an int"),
    ({"axis": (1, 2)}, TypeError, "BatchNormalization axis must be an int"),
    ({"beta_initializer": "nonesuch"}, ValueError, "unknown initializer 'nonesuch'"),
])
def test_bn_refuses_bad_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchNormalization(**kwargs)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="renorm"):
        BatchNormalization(renorm=True)


@pytest.mark.parametrize("cls", [BatchNormalization, LayerNormalization])
@pytest.mark.parametrize("axis,match", [(0, "is the batch axis"), (2, "does not fit inputs"),
                                        (-3, "does not fit inputs")])
def test_wrong_axis_is_refused_at_build(cls, axis, match):
    model = Sequential([Dense(3, input_dim=2), cls(axis=axis)])
    with pytest.raises(ValueError, match=match):
        model.build()


def test_ln_refuses_bad_epsilon_and_axis_type():
    with pytest.raises(ValueError, match="epsilon"):
        LayerNormalization(epsilon=-1.0)
    with pytest.raises(TypeError, match="axis must be an int or a tuple of ints"):
        LayerNormalization(axis="last")


# --- in a model: states, weights order, fit, save/load -------------------------------


def bn_model(dtype="float32", seed=0, **bn):
    return Sequential([Dense(4, input_dim=3), BatchNormalization(**bn), Dense(2)],
                      dtype=dtype, seed=seed)


def test_weights_follow_keras_order_and_states_stay_out_of_the_optimizer():
    model = bn_model()
    assert model.weight_names == [
        "dense/kernel", "dense/bias", "batch_normalization/gamma", "batch_normalization/beta",
        "batch_normalization/moving_mean", "batch_normalization/moving_variance",
        "dense_1/kernel", "dense_1/bias"]
    weights = model.get_weights()
    np.testing.assert_array_equal(weights[2], np.ones(4))  # gamma
    np.testing.assert_array_equal(weights[4], np.zeros(4))  # moving mean
    np.testing.assert_array_equal(weights[5], np.ones(4))  # moving variance
    # the optimizer's point: kernels, biases, gamma, beta -- no moving statistics
    assert len(model.manifold.manifolds) == 6
    assert [w.shape for w in model.layers[1].get_weights()] == [(4,)] * 4
    new = [w + 1 for w in weights]
    model.set_weights(new)
    for a, b in zip(model.get_weights(), new):
        np.testing.assert_array_equal(a, b)
    model.layers[1].set_weights([np.full(4, 2.0), np.zeros(4), np.arange(4.0), np.full(4, 3.0)])
    np.testing.assert_array_equal(model.get_weights()[4], np.arange(4.0, dtype=np.float32))
    with pytest.raises(ValueError, match=r"has 4 weight arrays \(gamma, beta, moving_mean, "):
        model.layers[1].set_weights([np.ones(4)] * 2)
    with pytest.raises(ValueError, match="NaN"):
        model.set_weights(weights[:5] + [np.full(4, np.nan)] + weights[6:])
    np.testing.assert_array_equal(model.get_weights()[4], np.arange(4.0))  # nothing changed


def test_count_params_counts_moving_statistics_as_keras():
    model = bn_model()
    assert model.count_params() == 16 + 16 + 10
    assert model.layers[1].count_params() == 16
    lines = []
    model.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "Total params: 42" in text and "Trainable params: 34" in text
    assert "Non-trainable params: 8" in text
    bn_row = next(line for line in lines if line.startswith("batch_normalization"))
    assert bn_row.split()[-1] == "16"  # no kernel manifold for gamma and beta


def test_fit_updates_moving_statistics_from_the_batch_at_the_weights_before_the_step():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((8, 3))
    y = rng.standard_normal((8, 2))
    model = bn_model(dtype="float64")
    model.compile(optimizer=RSGD(lr=0.1), loss="mse")
    kernel, bias, *_ = model.get_weights()
    h = x @ kernel + bias
    model.fit(x, y, epochs=1, batch_size=8, shuffle=False, verbose=0)
    mean, var = model.get_weights()[4:6]
    np.testing.assert_allclose(mean, 0.01 * h.mean(0), rtol=0, atol=10 * EPS64)
    np.testing.assert_allclose(var, 0.99 + 0.01 * h.var(0), rtol=0, atol=10 * EPS64)
    # predict runs in inference mode: the moving statistics, not the batch's
    gamma, beta = model.get_weights()[2:4]
    k2, b2 = model.get_weights()[6:8]
    kernel, bias = model.get_weights()[:2]
    expected = bn_reference(x @ kernel + bias, gamma, beta, mean, var, 1e-3) @ k2 + b2
    np.testing.assert_allclose(model.predict(x), expected, rtol=0, atol=100 * EPS64)


def test_fit_in_two_parts_equals_one_and_save_load_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(10)
    x = rng.standard_normal((24, 3)).astype(np.float32)
    y = rng.standard_normal((24, 2)).astype(np.float32)
    one, two = bn_model(), bn_model()
    for m in (one, two):
        m.compile(optimizer=RSGD(lr=0.05, momentum=0.9), loss="mse")
    one.fit(x, y, epochs=4, batch_size=8, verbose=0, seed=1)
    two.fit(x, y, epochs=2, batch_size=8, verbose=0, seed=1)
    path = os.path.join(tmp_path, "bn.npz")
    two.save(path)
    again = load_model(path)
    assert isinstance(again.layers[1], BatchNormalization)
    assert again.layers[1].momentum == 0.99 and again.layers[1].epsilon == 1e-3
    for a, b in zip(two.get_weights(), again.get_weights()):
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(two.predict(x), again.predict(x))
    again.fit(x, y, epochs=2, batch_size=8, verbose=0)
    for a, b in zip(one.get_weights(), again.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_layer_normalization_saves_and_loads_with_its_options(tmp_path):
    model = Sequential([Dense(6, input_dim=2), LayerNormalization(epsilon=1e-5, center=False)],
                       seed=3, dtype="float64")
    model.layers[1].set_weights([np.linspace(0.5, 2.0, 6)])
    path = os.path.join(tmp_path, "ln.npz")
    model.save(path)
    again = load_model(path)
    assert again.layers[1].epsilon == 1e-5 and again.layers[1].center is False
    assert again.weight_names == ["dense/kernel", "dense/bias", "layer_normalization/gamma"]
    x = np.random.default_rng(11).standard_normal((5, 2))
    np.testing.assert_array_equal(model(x), again(x))


# --- callable layers and models -------------------------------------------------------


def test_callable_layer_builds_once_and_returns_an_ndarray():
    layer = BatchNormalization()
    x = np.random.default_rng(12).standard_normal((6, 3)).astype(np.float32)
    out = layer(x)
    assert type(out) is np.ndarray and out.dtype == np.float32 and out.shape == (6, 3)
    weights = layer.get_weights()
    # inference with the initial statistics (0, 1): x / sqrt(1 + eps)
    np.testing.assert_allclose(out, x / np.sqrt(np.float32(1.001)), rtol=2 * EPS32)
    out2 = layer(x, training=True)
    mean = layer.get_weights()[2]
    np.testing.assert_allclose(mean, 0.01 * x.mean(0), rtol=0, atol=4 * EPS32)
    assert layer.get_weights()[0] is not weights[0]  # copies, not the layer's own arrays
    np.testing.assert_array_equal(layer.get_weights()[0], weights[0])  # gamma not rebuilt
    np.testing.assert_allclose(out2.mean(0), 0.0, atol=10 * EPS32)
    with pytest.raises(ValueError, match="3 features"):
        layer(np.ones((2, 4)))
    with pytest.raises(TypeError, match="training must be True or False"):
        layer(x, training="yes")


def test_layer_called_alone_gives_the_same_result_as_in_a_model():
    x = np.random.default_rng(13).standard_normal((5, 3))
    dense, bn, out = Dense(4, activation="relu"), BatchNormalization(), Dense(2)
    dense(x, seed=1)
    alone = out(bn(dense(x)), seed=2)
    model = Sequential([dense, bn, out], dtype="float64")
    # a model of layers that were called on their own starts from their weights
    np.testing.assert_array_equal(model(x), alone)
    np.testing.assert_array_equal(model.predict(x), alone)
    np.testing.assert_array_equal(model.layers[2](model.layers[1](dense(x))), alone)
    # in the model, a layer runs with the model's weights
    weights = model.get_weights()
    weights[-1] = weights[-1] + 1.0
    model.set_weights(weights)
    np.testing.assert_array_equal(out(bn(dense(x))), alone + 1.0)


def test_model_call_in_training_mode_updates_the_moving_statistics_and_predict_does_not():
    rng = np.random.default_rng(14)
    x = rng.standard_normal((10, 3))
    model = Sequential([BatchNormalization(input_shape=(3,)), Dropout(0.5, seed=0)],
                       dtype="float64")
    model.predict(x)
    np.testing.assert_array_equal(model.get_weights()[2], np.zeros(3))
    out = model(x, training=True)
    np.testing.assert_allclose(model.get_weights()[2], 0.01 * x.mean(0), rtol=0, atol=10 * EPS64)
    assert np.sum(out == 0) > 0  # dropout ran in training mode
    np.testing.assert_array_equal(model(x), model.predict(x))


def test_a_model_adopts_weights_of_layers_called_alone_in_its_own_dtype():
    x = np.random.default_rng(15).standard_normal((4, 3))
    dense, act = Dense(3, kernel_constraint="unit_norm"), BatchNormalization()
    dense(x, seed=0)  # float64 weights
    act(dense(x), training=True)
    model = Sequential([dense, act], dtype="float32")
    kernel, bias, gamma, beta, mean, var = model.get_weights()
    assert kernel.dtype == np.float32
    np.testing.assert_allclose(kernel, dense._own_weights[0], rtol=EPS32)
    np.testing.assert_allclose(np.linalg.norm(kernel.astype(np.float64), axis=0), 1.0,
                               atol=2 * EPS32)
    np.testing.assert_allclose(mean, act._own_weights[2], rtol=EPS32)
    assert np.any(mean != 0)


def test_default_names_are_keras_snake_case():
    from spherenet import nn
    # Keras names a layer after its class in snake case (keras.src.utils.naming.to_snake_case).
    expected = {
        nn.Dense(2): "dense",
        nn.BatchNormalization(): "batch_normalization",
        nn.LayerNormalization(): "layer_normalization",
        nn.CosineDense(2): "cosine_dense",
        nn.Conv2D(2, 3): "conv2d",
        nn.MaxPooling2D(): "max_pooling2d",
        nn.GlobalAveragePooling2D(): "global_average_pooling2d",
    }
    for layer, name in expected.items():
        assert layer.kind == name
