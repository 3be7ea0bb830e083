"""spherenet.nn parts: activations, losses, the affine primitive, initializers, constraints, layers.

References are independent of the code under test: central finite
differences in float64 for gradients, closed forms for values, and the
dtype rule (a float32 input gives a float32 value *and* gradient).
"""

import autograd.numpy as anp
import numpy as np
import pytest
from autograd import grad

from spherenet import Euclidean, Oblique, Sphere
from spherenet.nn import Activation, Dense, Dropout, Flatten, UnitNorm, activations, initializers
from spherenet.nn import constraints, losses, unit_norm
from spherenet.nn._autodiff import value_and_grads
from spherenet.nn.layers import affine

ACTIVATIONS = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "gelu", "linear"]


def fd_check(f, args, argnum, rng, h=1e-6, rtol=1e-6, atol=1e-8):
    """Compare autograd's gradient of scalar f in args[argnum] with central differences."""
    value, grads = value_and_grads(lambda *a: f(*a), args)
    g = grads[argnum]
    for _ in range(3):
        v = rng.standard_normal(args[argnum].shape)
        plus = list(args)
        minus = list(args)
        plus[argnum] = args[argnum] + h * v
        minus[argnum] = args[argnum] - h * v
        fd = (float(f(*plus)) - float(f(*minus))) / (2 * h)
        np.testing.assert_allclose(float(np.sum(g * v)), fd, rtol=rtol, atol=atol)


# --- activations -----------------------------------------------------------------


@pytest.mark.parametrize("name", ACTIVATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_keeps_dtype_in_value_and_gradient(name, dtype):
    fn = activations.get(name)
    x = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    w = np.random.default_rng(1).standard_normal((4, 5)).astype(dtype)
    assert fn(x).dtype == dtype
    g = grad(lambda x: anp.sum(fn(x) * w))(x)
    assert g.dtype == dtype


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation_gradient_matches_finite_differences(name):
    fn = activations.get(name)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4)) + 0.05  # keep relu's kink away from the samples
    w = rng.standard_normal((3, 4))
    fd_check(lambda x: anp.sum(fn(x) * w), [x], 0, rng)


def test_relu_gradient_is_float32_where_stock_autograd_gives_float64():
    # The reason for the float32-clean primitives (see spherenet.nn.activations):
    # autograd 1.x differentiates np.maximum through a float64 mask.
    x = np.linspace(-1, 1, 8, dtype=np.float32)
    ours = grad(lambda x: anp.sum(activations.relu(x)))(x)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, (x > 0).astype(np.float32))
    stock = grad(lambda x: anp.sum(anp.maximum(x, 0.0)))(x)
    np.testing.assert_array_equal(stock, ours)  # same values; stock's dtype is float64 in autograd 1.9


def test_activation_values_closed_forms():
    x = np.array([-2.0, 0.0, 3.0])
    np.testing.assert_allclose(activations.relu(x), [0, 0, 3])
    np.testing.assert_allclose(activations.leaky_relu(x), [-0.4, 0, 3])
    np.testing.assert_allclose(activations.sigmoid(x), 1 / (1 + np.exp(-x)))
    np.testing.assert_allclose(activations.gelu(x), [-0.04550026, 0.0, 2.99595031], rtol=1e-7)
    s = activations.softmax(np.array([[1.0, 2.0, 3.0]]))
    np.testing.assert_allclose(s, np.exp([[1, 2, 3]]) / np.exp([1, 2, 3]).sum())
    big = activations.softmax(np.array([[1e4, 0.0]], dtype=np.float32))
    assert np.all(np.isfinite(big)) and big[0, 0] == 1.0


def test_unknown_activation_is_a_value_error():
    with pytest.raises(ValueError, match="unknown activation 'relux'"):
        activations.get("relux")
    with pytest.raises(ValueError, match="unknown activation"):
        Dense(3, activation="swishy")


# --- losses --------------------------------------------------------------------------


def _classification_case(rng, n=6, k=4):
    logits = rng.standard_normal((n, k))
    labels = rng.integers(0, k, n)
    return logits, labels, np.eye(k)[labels]


@pytest.mark.parametrize("from_logits", [True, False])
def test_loss_gradients_match_finite_differences(from_logits):
    rng = np.random.default_rng(3)
    logits, labels, onehot = _classification_case(rng)
    binary_targets = rng.integers(0, 2, (6, 1)).astype(float)
    binary_logits = rng.standard_normal((6, 1))
    if from_logits:
        cases = [
            (losses.SparseCategoricalCrossentropy(True), logits, labels),
            (losses.CategoricalCrossentropy(True), logits, onehot),
            (losses.CategoricalCrossentropy(True), logits, activations.softmax(rng.standard_normal((6, 4)))),
            (losses.BinaryCrossentropy(True), binary_logits, binary_targets),
        ]
    else:
        probs = activations.softmax(logits)
        cases = [
            (losses.SparseCategoricalCrossentropy(), probs, labels),
            (losses.CategoricalCrossentropy(), probs, onehot),
            (losses.BinaryCrossentropy(), activations.sigmoid(binary_logits), binary_targets),
            (losses.MeanSquaredError(), rng.standard_normal((6, 3)), rng.standard_normal((6, 3))),
        ]
    for loss, pred, target in cases:
        fd_check(lambda p, loss=loss, target=target: loss(target, p), [pred], 0, rng, h=1e-6)


@pytest.mark.parametrize("loss_name, from_logits", [
    (name, logits) for name in ["sparse_categorical_crossentropy", "categorical_crossentropy",
                                "binary_crossentropy", "mse"]
    for logits in (True, False) if not (name == "mse" and logits)
])
def test_loss_gradient_keeps_float32(loss_name, from_logits):
    rng = np.random.default_rng(4)
    logits, labels, onehot = _classification_case(rng)
    loss = losses.get({"name": loss_name, "from_logits": from_logits} if loss_name != "mse" else loss_name)
    pred = logits if from_logits else activations.softmax(logits)
    target = {"sparse_categorical_crossentropy": labels, "categorical_crossentropy": onehot,
              "binary_crossentropy": onehot, "mse": onehot}[loss_name]
    if loss_name == "binary_crossentropy" and not from_logits:
        pred = activations.sigmoid(logits)
    pred32 = pred.astype(np.float32)
    target32 = target if loss_name.startswith("sparse") else target.astype(np.float32)
    value, (g,) = value_and_grads(lambda p: loss(target32, p), [pred32])
    assert np.asarray(value).dtype == np.float32
    assert g.dtype == np.float32


def test_cross_entropies_from_logits_are_stable_and_agree_with_probabilities():
    big = np.array([[1e4, -1e4, 0.0], [-50.0, 60.0, 0.0]], dtype=np.float32)
    labels = np.array([1, 1])
    value, (g,) = value_and_grads(
        lambda z: losses.SparseCategoricalCrossentropy(True)(labels, z), [big])
    assert np.isfinite(value) and np.all(np.isfinite(g))
    np.testing.assert_allclose(float(value), (2e4 + 0.0) / 2, rtol=1e-6)
    # moderate logits: the logits and probability forms agree
    z = np.random.default_rng(5).standard_normal((5, 3))
    y = np.array([0, 1, 2, 1, 0])
    np.testing.assert_allclose(losses.SparseCategoricalCrossentropy(True)(y, z),
                               losses.SparseCategoricalCrossentropy()(y, activations.softmax(z)))
    np.testing.assert_allclose(losses.CategoricalCrossentropy(True)(np.eye(3)[y], z),
                               losses.SparseCategoricalCrossentropy(True)(y, z))
    zb = z[:, :1]
    tb = (y[:, None] > 0).astype(float)
    np.testing.assert_allclose(losses.BinaryCrossentropy(True)(tb, zb),
                               losses.BinaryCrossentropy()(tb, activations.sigmoid(zb)))
    assert float(losses.BinaryCrossentropy(True)(np.array([[0.0]]), np.array([[1e4]]))) == 1e4


def test_probability_losses_clip_like_keras():
    p = np.array([[0.0, 1.0]])
    value = losses.CategoricalCrossentropy()(np.array([[1.0, 0.0]]), p)
    np.testing.assert_allclose(value, -np.log(1e-7), rtol=1e-6)


def test_unknown_loss_is_a_value_error():
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")


# --- the affine primitive and the multi-root gradient -----------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_gradients(dtype):
    rng = np.random.default_rng(6)
    x, w, b, c = (rng.standard_normal(s).astype(dtype) for s in [(5, 3), (3, 4), (4,), (5, 4)])
    value, grads = value_and_grads(lambda x, w, b: anp.sum(affine(x, w, b) * c), [x, w, b])
    np.testing.assert_allclose(grads[0], c @ w.T, rtol=1e-5)
    np.testing.assert_allclose(grads[1], x.T @ c, rtol=1e-5)
    np.testing.assert_allclose(grads[2], c.sum(0), rtol=1e-5)
    assert all(g.dtype == dtype for g in grads)
    if dtype == np.float64:
        fd_check(lambda x, w, b: anp.sum(affine(x, w, b) * c), [x, w, b], 1, rng)


def test_value_and_grads_agrees_with_autograd_on_a_tuple():
    rng = np.random.default_rng(7)
    args = [rng.standard_normal((3, 2)), rng.standard_normal(2)]

    def f(a, b):
        return anp.sum(anp.tanh(a @ b) ** 2) + anp.sum(b)

    value, grads = value_and_grads(f, args)
    expected = grad(lambda t: f(*t))(tuple(args))
    for g, e in zip(grads, expected):
        np.testing.assert_allclose(g, e)
    _, unused = value_and_grads(lambda a, b: anp.sum(a), args)
    np.testing.assert_array_equal(unused[1], np.zeros(2))


# --- initializers and constraints ---------------------------------------------------------


@pytest.mark.parametrize("name", ["glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
                                  "lecun_uniform", "lecun_normal", "random_normal",
                                  "random_uniform", "zeros", "ones", "sphere_uniform"])
def test_initializers_are_seeded_and_keep_dtype(name):
    init = initializers.get(name)
    a = init((20, 30), np.float32, np.random.default_rng(0))
    b = init((20, 30), np.float32, np.random.default_rng(0))
    assert a.dtype == np.float32 and a.shape == (20, 30)
    np.testing.assert_array_equal(a, b)
    seeded = initializers.get({"name": name, "seed": 3})
    np.testing.assert_array_equal(seeded((4, 5)), seeded((4, 5), rng=99))


def test_glorot_uniform_limit_and_sphere_uniform_norms():
    w = initializers.GlorotUniform(seed=0)((100, 50), np.float64)
    limit = np.sqrt(6 / 150)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.9 * limit
    s = initializers.SphereUniform(axis=0, seed=0)((10, 7), np.float64)
    np.testing.assert_allclose(np.linalg.norm(s, axis=0), 1.0, rtol=1e-14)
    with pytest.raises(ValueError, match="unknown initializer"):
        initializers.get("glorot_uniformm")


def test_unit_norm_reads_axis_as_keras():
    assert unit_norm is UnitNorm
    assert UnitNorm().manifold((2, 500)) == Oblique(2, 500, axis=0)
    assert UnitNorm(axis=1).manifold((3, 4)) == Oblique(3, 4, axis=1)
    w = np.array([[3.0, 0.0], [4.0, 2.0]])
    np.testing.assert_allclose(UnitNorm()(w), w / (1e-7 + np.linalg.norm(w, axis=0)))
    np.testing.assert_allclose(UnitNorm(axis=1)(w),
                               w / (1e-7 + np.linalg.norm(w, axis=1, keepdims=True)))
    assert constraints.get("unit_norm").axis == 0
    with pytest.raises(ValueError, match="unknown constraint"):
        constraints.get("max_norm")


# --- layers ----------------------------------------------------------------------------------


def test_dense_parameters_and_manifolds():
    layer = Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm())
    assert layer.build((2,)) == (500,)
    kernel, bias = layer.params
    assert kernel.shape == (2, 500) and kernel.manifold == Oblique(2, 500) and kernel.constrained
    assert bias.shape == (500,) and bias.manifold == Euclidean(500) and not bias.constrained
    plain = Dense(3, use_bias=False)
    plain.build((4,))
    assert len(plain.params) == 1 and plain.params[0].manifold == Euclidean(4, 3)
    sphere = Dense(3, kernel_manifold=Sphere(4, 3))
    sphere.build((4,))
    assert sphere.params[0].manifold == Sphere(4, 3)


def test_dense_configuration_errors():
    with pytest.raises(ValueError, match="not both"):
        Dense(3, kernel_constraint=unit_norm(), kernel_manifold=Sphere(4, 3))
    with pytest.raises(ValueError, match="has shape"):
        Dense(3, kernel_manifold=Sphere(5, 3)).build((4,))
    with pytest.raises(ValueError, match="Flatten"):
        Dense(3).build((8, 8))
    with pytest.raises(ValueError, match="units must be a positive integer"):
        Dense(0)
    with pytest.raises(ValueError, match="kernel_manifold must be a spherenet Manifold"):
        Dense(3, kernel_manifold="sphere")


def test_activation_dropout_flatten_layers():
    x = np.arange(12, dtype=np.float32).reshape(2, 2, 3) - 5
    flat = Flatten()
    assert flat.build((2, 3)) == (6,)
    np.testing.assert_array_equal(flat.apply((), x), x.reshape(2, 6))
    np.testing.assert_array_equal(Activation("relu").apply((), x), np.maximum(x, 0))
    drop = Dropout(0.5)
    ones = np.ones((200, 50), np.float32)
    np.testing.assert_array_equal(drop.apply((), ones, training=False), ones)
    out = drop.apply((), ones, training=True, rng=np.random.default_rng(0))
    assert out.dtype == np.float32 and set(np.unique(out)) <= {0.0, 2.0}
    assert 0.45 < np.mean(out == 0) < 0.55
    with pytest.raises(ValueError, match="rate"):
        Dropout(1.0)
