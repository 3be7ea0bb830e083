"""spherenet.nn.layers: saved manifolds, per-layer weights and the weightless layers, by hand.

* A ``kernel_manifold`` is saved in the architecture as a JSON dict written
  out here field by field (class, shape, axis as an int or a list,
  retraction, transport) and read back to an equal manifold with the same
  options; anything else is refused, naming it.
* ``Layer.get_weights``/``set_weights`` address the layer's own slice of the
  model's weights (a layer after others included): checked against the
  model's list, which is built independently.
* ``Flatten`` and ``Activation``: values against NumPy, and their names and
  input shapes as given.
"""

import json

import numpy as np
import pytest

from spherenet.manifolds import Euclidean, Oblique, Product, Sphere
from spherenet.nn import Activation, Dense, Dropout, Flatten, Sequential, unit_norm
from spherenet.nn._autodiff import value_and_grads
from spherenet.nn.layers import layer_from_config, manifold_config, manifold_from_config


def eps(dtype):
    return float(np.finfo(dtype).eps)

# --- manifolds in saved architectures -----------------------------------------------------------

SAVED = [
    (Oblique(4, 3),
     {"class_name": "Oblique", "shape": [4, 3], "axis": 0, "retraction": "exp",
      "transport": "projection"}),
    (Oblique(4, 3, axis=1, retraction="projection", transport="parallel"),
     {"class_name": "Oblique", "shape": [4, 3], "axis": 1, "retraction": "projection",
      "transport": "parallel"}),
    (Oblique(shape=(2, 3, 4), axis=(0, 1)),
     {"class_name": "Oblique", "shape": [2, 3, 4], "axis": [0, 1], "retraction": "exp",
      "transport": "projection"}),
    (Sphere(4, 3, retraction="projection", transport="parallel"),
     {"class_name": "Sphere", "shape": [4, 3], "retraction": "projection",
      "transport": "parallel"}),
    (Sphere(5),
     {"class_name": "Sphere", "shape": [5], "retraction": "exp", "transport": "projection"}),
    (Euclidean(4, 3), {"class_name": "Euclidean", "shape": [4, 3]}),
]


@pytest.mark.parametrize("manifold, expected", SAVED, ids=lambda v: repr(v)[:40])
def test_manifold_config_is_the_documented_json_and_reads_back(manifold, expected):
    config = manifold_config(manifold)
    assert config == expected
    # JSON keeps it: lists, ints and strings only
    assert json.loads(json.dumps(config)) == expected
    back = manifold_from_config(json.loads(json.dumps(config)))
    assert type(back) is type(manifold) and back == manifold
    assert back.shape == manifold.shape
    for option in ("retraction", "transport", "axis"):
        assert getattr(back, option, None) == getattr(manifold, option, None)
    if isinstance(manifold, Oblique):
        assert type(back.axis) is type(manifold.axis)


@pytest.mark.parametrize("manifold, expected", SAVED[:4], ids=lambda v: repr(v)[:40])
def test_dense_kernel_manifold_survives_its_config(manifold, expected):
    shape = manifold.shape
    layer = Dense(shape[-1], input_shape=shape[:-1] if len(shape) == 2 else None,
                  kernel_manifold=manifold, name="d")
    config = layer.get_config()
    assert config["kernel_manifold"] == expected
    again = layer_from_config(json.loads(json.dumps(config)))
    assert again.kernel_manifold == manifold
    assert again.get_config() == config


def test_unsavable_and_unknown_manifolds_are_refused():
    with pytest.raises(ValueError, match=r"^cannot save a kernel_manifold of type Product$"):
        manifold_config(Product([Sphere(3), Euclidean(2)]))
    with pytest.raises(ValueError, match=r"^unknown manifold 'Stiefel' in a saved architecture$"):
        manifold_from_config({"class_name": "Stiefel", "shape": [3, 2]})
    with pytest.raises(ValueError, match=r"^unknown manifold None in a saved architecture$"):
        manifold_from_config({"shape": [3]})


# --- per-layer weights ------------------------------------------------------------------------


def three_layer_model():
    model = Sequential(seed=4, dtype="float64")
    model.add(Dense(3, input_dim=2, kernel_constraint=unit_norm(), name="first"))
    model.add(Activation("tanh", name="act"))
    model.add(Dense(4, use_bias=False, name="second"))
    model.add(Dense(2, name="third"))
    return model


def test_layer_weights_are_its_slice_of_the_model():
    model = three_layer_model()
    full = model.get_weights()  # first/kernel, first/bias, second/kernel, third/kernel, third/bias
    assert [w.shape for w in full] == [(2, 3), (3,), (3, 4), (4, 2), (2,)]
    first, act, second, third = model.layers
    expected = {first: full[0:2], act: [], second: full[2:3], third: full[3:5]}
    for layer, weights in expected.items():
        got = layer.get_weights()
        assert len(got) == len(weights)
        for a, b in zip(got, weights):
            np.testing.assert_array_equal(a, b)
    # copies: editing them leaves the model alone
    third.get_weights()[0][:] = 0.0
    np.testing.assert_array_equal(model.get_weights()[3], full[3])


def test_layer_set_weights_replaces_its_slice_only():
    model = three_layer_model()
    full = model.get_weights()
    third = model.layers[3]
    new = [np.arange(8.0).reshape(4, 2), np.array([0.5, -0.5])]
    third.set_weights(new)
    after = model.get_weights()
    for i in range(3):
        np.testing.assert_array_equal(after[i], full[i])
    np.testing.assert_array_equal(after[3], new[0])
    np.testing.assert_array_equal(after[4], new[1])
    second = model.layers[2]
    second.set_weights([np.ones((3, 4))])
    np.testing.assert_array_equal(model.get_weights()[2], np.ones((3, 4)))
    np.testing.assert_array_equal(model.get_weights()[3], new[0])
    # all or nothing, with the count in the message
    with pytest.raises(ValueError, match=r"^layer 'third' has 2 weight arrays \(kernel, bias\), "
                                         r"got 1$"):
        third.set_weights([np.zeros((4, 2))])
    with pytest.raises(ValueError, match=r"^layer 'act' has no weights, got 1 arrays$"):
        model.layers[1].set_weights([np.zeros(2)])
    model.layers[1].set_weights([])  # nothing to set: accepted
    with pytest.raises(TypeError, match=r"^set_weights takes a list of arrays, got ndarray$"):
        third.set_weights(np.zeros((4, 2)))
    np.testing.assert_array_equal(model.get_weights()[3], new[0])


def test_layer_outside_a_model_has_no_weights_to_give():
    layer = Dense(2, input_dim=3, name="lonely")
    with pytest.raises(ValueError, match=r"^layer 'lonely' has no weights yet: they live "
                                         r"in the model; add the layer to a Sequential model, or "
                                         r"call it on a batch \(layer\(x\)\), before calling "
                                         r"get_weights$"):
        layer.get_weights()
    with pytest.raises(ValueError, match=r"before calling set_weights$"):
        layer.set_weights([np.zeros((3, 2)), np.zeros(2)])
    assert Activation("relu").get_weights() == [] and Dropout(0.5).get_weights() == []


# --- the weightless layers -------------------------------------------------------------------


def test_flatten_keeps_the_batch_axis_and_passes_the_gradient():
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    layer = Flatten()
    assert layer.build((3, 4)) == (12,)
    out = layer.apply((), x)
    assert out.shape == (2, 12) and out.dtype == np.float32
    np.testing.assert_array_equal(out, x.reshape(2, 12))
    weights = np.arange(24.0).reshape(2, 12)
    value, (g,) = value_and_grads(lambda a: (layer.apply((), a) * weights).sum(), [x])
    np.testing.assert_array_equal(g, weights.reshape(2, 3, 4))
    # one sample of shape (3, 4): still a batch of one row of 12
    assert layer.apply((), x[:1]).shape == (1, 12)


def test_activation_layer_keeps_its_name_and_input_shape():
    layer = Activation("relu", name="act", input_shape=(3,))
    assert layer.name == "act" and layer.input_shape == (3,)
    x = np.array([[-1.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.apply((), x, training=True), [[0.0, 0.0, 2.0]])
    np.testing.assert_array_equal(layer.apply((), x), [[0.0, 0.0, 2.0]])
    model = Sequential([layer], dtype="float64")
    assert model.input_shape == (3,) and model.output_shape == (3,)
    assert layer.get_config() == {"class_name": "Activation", "name": "act", "input_shape": [3],
                                  "activation": "relu"}


def test_layer_weights_of_a_model_without_input_shape_say_what_is_missing():
    model = Sequential([Dense(2, name="d")])
    with pytest.raises(ValueError, match=r"^the model's input shape is unknown, so get_weights "
                                         r"cannot be done yet"):
        model.layers[0].get_weights()


def test_dropout_config_keeps_rate_and_seed():
    layer = Dropout(0.25, seed=11, name="drop")
    config = layer.get_config()
    assert config == {"class_name": "Dropout", "name": "drop", "rate": 0.25, "seed": 11}
    again = layer_from_config(config)
    assert (again.rate, again.seed, again.name) == (0.25, 11, "drop")


def test_dropout_arguments():
    layer = Dropout(0.5, name="drop", input_shape=(3,))
    assert (layer.name, layer.input_shape, layer.rate, layer.seed) == ("drop", (3,), 0.5, None)
    for bad in (False, True, 1.0, -0.1, "0.5", None):
        with pytest.raises(ValueError, match=r"^Dropout rate must be in \[0, 1\), got "):
            Dropout(bad)


class FixedUniforms:
    """A stand-in generator whose uniforms are given: the mask's comparison by hand."""

    def __init__(self, values):
        self.values = np.asarray(values)

    def random(self, shape, dtype=np.float64):
        return self.values.reshape(shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dropout_mask_keeps_uniforms_at_or_above_the_rate(dtype):
    # keep iff u >= rate, u uniform in [0, 1) drawn as float32 from the layer's generator;
    # kept entries are scaled by 1 / (1 - rate)
    x = np.array([[1.0, 2.0, 3.0, 4.0]], dtype=dtype)
    layer = Dropout(0.5)
    out = layer.apply((), x, training=True, rng=FixedUniforms([0.25, 0.5, 0.75, 0.4999]))
    np.testing.assert_array_equal(out, np.array([[0.0, 4.0, 6.0, 0.0]], dtype=dtype))
    assert out.dtype == dtype
    # a seeded generator: its float32 uniforms, as numpy draws them
    x = np.arange(1.0, 201.0, dtype=dtype).reshape(10, 20)
    out = Dropout(0.3).apply((), x, training=True, rng=np.random.default_rng(9))
    u = np.random.default_rng(9).random((10, 20), dtype=np.float32)
    expected = np.where(u >= np.float32(0.3), x * dtype(1 / 0.7), 0)
    np.testing.assert_allclose(out, expected, rtol=eps(dtype), atol=0)
    # not training: the identity
    assert Dropout(0.3).apply((), x, rng=np.random.default_rng(9)) is x


def test_layer_from_config_refuses_unknown_classes():
    with pytest.raises(ValueError, match=r"^unknown layer class 'Conv9'; known: \[.*'Dense'"):
        layer_from_config({"class_name": "Conv9"})
    with pytest.raises(ValueError, match=r"^unknown layer class None; known: \["):
        layer_from_config({"name": "x"})


def test_dense_config_keeps_both_initializers():
    layer = Dense(3, input_dim=2, activation="tanh", use_bias=True, kernel_initializer="ones",
                  bias_initializer={"name": "random_normal", "stddev": 0.5}, name="d")
    config = layer.get_config()
    assert config["kernel_initializer"]["name"] == "ones"
    assert config["bias_initializer"]["name"] == "random_normal"
    assert config["bias_initializer"]["stddev"] == 0.5
    again = layer_from_config(json.loads(json.dumps(config)))
    assert again.get_config() == config
    again.build((2,))
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(again.params[0].initializer((2, 3), np.float64, rng),
                                  np.ones((2, 3)))


def test_dense_arguments_are_checked():
    for bad in (True, 2.0, 0, -1, "3"):
        with pytest.raises(ValueError, match=r"^units must be a positive integer, got "):
            Dense(bad)
    with pytest.raises(ValueError, match=r"^input_dim must be a positive integer, got True$"):
        Dense(2, input_dim=True)
    with pytest.raises(ValueError, match=r"^give input_dim or input_shape, not both$"):
        Dense(2, input_dim=3, input_shape=(3,))
    assert Dense(np.int64(4), input_dim=np.int32(3)).units == 4


@pytest.mark.parametrize("which", ["kernel_initializer", "bias_initializer"])
def test_a_python_callable_initializer_cannot_be_saved(which):
    layer = Dense(2, input_dim=2, name="custom", **{which: lambda shape, dtype, rng: np.ones(shape)})
    with pytest.raises(ValueError, match=r"^layer 'custom' has the initializer <function .*>, a "
                                         r"Python callable, which cannot be saved; use a named "
                                         r"initializer$"):
        layer.get_config()


def test_a_python_callable_activation_cannot_be_saved():
    layer = Activation(lambda x: x, name="mine")
    with pytest.raises(ValueError, match=r"^layer 'mine' has the activation <function .*>, a "
                                         r"Python callable, which cannot be saved"):
        layer.get_config()


def test_manifold_from_config_without_a_shape():
    with pytest.raises(ValueError, match=r"^unknown manifold 'Stiefel' in a saved architecture$"):
        manifold_from_config({"class_name": "Stiefel"})


def test_layer_arguments_and_state_before_build():
    layer = Dense(2, input_shape=3, name="d")  # an int is one axis
    assert layer.input_shape == (3,) and layer.output_shape is None and layer.params == ()
    assert repr(layer) == "<Dense 'd'>" and repr(Flatten(name="f")) == "<Flatten 'f'>"
    with pytest.raises(ValueError, match=r"^input_shape must be a positive integer, got 0$"):
        Dense(2, input_shape=(3, 0))
    with pytest.raises(ValueError, match=r"^name must be a string, got 3$"):
        Dense(2, name=3)
    with pytest.raises(ValueError, match=r"^give kernel_constraint or kernel_manifold, not both$"):
        Dense(3, kernel_constraint=unit_norm(), kernel_manifold=Sphere(4, 3))
