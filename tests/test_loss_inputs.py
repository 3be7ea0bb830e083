"""Sparse cross-entropy called on its own: labels checked like the model checks them."""

import numpy as np
import pytest

from spherenet.nn.losses import SparseCategoricalCrossentropy

PROBS = np.array([[0.2, 0.3, 0.5], [0.6, 0.1, 0.3]])


@pytest.mark.parametrize("from_logits", [False, True])
def test_value_against_plain_numpy(from_logits):
    labels = np.array([2, 0])
    pred = np.log(PROBS) if from_logits else PROBS
    expected = -np.mean(np.log([0.5, 0.6]))
    loss = SparseCategoricalCrossentropy(from_logits=from_logits)
    assert loss(labels, pred) == pytest.approx(expected, rel=1e-14)
    # a column of labels and float-valued integer labels mean the same
    assert loss(labels.reshape(2, 1), pred) == pytest.approx(expected, rel=1e-14)
    assert loss(labels.astype(float), pred) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("from_logits", [False, True])
@pytest.mark.parametrize("labels, match", [
    (np.array([-1, 0]), r"labels out of range: they must be in \[0, 3\).*got -1 at sample 0"),
    (np.array([0, 3]), r"labels out of range.*got 3 at sample 1"),
    (np.array([0.5, 0.0]), "integer labels, got non-integer"),
    (np.array([0, 1, 2]), "y_pred has 2 samples but y_true has 3"),
    (np.eye(3)[:2], r"one integer label per sample, shape \(2,\), got \(2, 3\)"),
    (np.array([np.nan, 0.0]), r"1 NaN or infinite value\(s\) \(first in sample 0\)"),
])
def test_bad_labels_refused(labels, match, from_logits):
    loss = SparseCategoricalCrossentropy(from_logits=from_logits)
    with pytest.raises(ValueError, match=match):
        loss(labels, PROBS)


def test_predictions_of_other_shapes_refused():
    loss = SparseCategoricalCrossentropy()
    with pytest.raises(ValueError, match=r"shape \(samples, classes\).*got shape \(2, 3, 4\); for one-hot targets of other shapes use CategoricalCrossentropy$"):
        loss(np.zeros((2, 3)), np.full((2, 3, 4), 0.25))
    with pytest.raises(ValueError, match=r"got shape \(3,\)"):
        loss(np.array([0]), np.full(3, 1 / 3))


def test_gradient_through_the_checked_call():
    # the check reads the values of autograd's boxes; the gradient is -1/p at the label
    from autograd import grad
    loss = SparseCategoricalCrossentropy()
    g = grad(lambda p: loss(np.array([2, 0]), p))(PROBS)
    expected = np.zeros_like(PROBS)
    expected[0, 2], expected[1, 0] = -1 / 0.5 / 2, -1 / 0.6 / 2
    np.testing.assert_allclose(g, expected, rtol=1e-14)
