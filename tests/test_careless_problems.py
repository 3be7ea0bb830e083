"""The finite-sum test problems given careless arguments.

A zero pole or a dimension of 1 made ``paired_points`` return NaN points
without a word; a population covariance of the wrong shape was kept and
returned as the population solution; counts given as floats, bools or
negatives, or a pole or mean of the wrong length, failed deep in NumPy.
"""

import math

import numpy as np
import pytest

from spherenet.problems import (finite_sum_karcher, paired_points, spiked_samples,
                                streaming_pca)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=1), ValueError, r"n must be an int >= 2, got 1"),
    (dict(n=True), TypeError, r"n must be an int >= 2, got bool"),
    (dict(n=3.0), TypeError, r"n must be an int >= 2, got float"),
    (dict(pairs=0), ValueError, r"pairs must be an int >= 1, got 0"),
    (dict(pairs=-1), ValueError, r"pairs must be an int >= 1, got -1"),
    (dict(pairs=2.5), TypeError, r"pairs must be an int >= 1, got float"),
    (dict(max_angle="0.5"), TypeError, r"max_angle must be a real number in \(0, pi/2\), got str"),
    (dict(pole=[0.0, 0.0, 0.0]), ValueError, r"pole must be a finite nonzero vector of shape "
                                             r"\(3,\), got norm 0"),
    (dict(pole=[1.0, math.nan, 0.0]), ValueError, r"pole must be a finite nonzero vector"),
    (dict(pole=[1.0, 0.0]), ValueError, r"pole must be a finite nonzero vector of shape "
                                        r"\(3,\), got shape \(2,\)"),
])
def test_paired_points_refuses_careless_arguments(kwargs, error, match):
    arguments = dict(n=3, pairs=4, max_angle=0.5, rng=0)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        paired_points(**arguments)


def test_paired_points_takes_numpy_integers_and_an_unnormalized_pole():
    points, pole = paired_points(np.int64(3), np.int32(2), np.float32(0.5), pole=[0, 0, 2],
                                 rng=0)
    assert points.shape == (4, 3)
    np.testing.assert_array_equal(pole, [0.0, 0.0, 1.0])
    angles = np.arccos(np.clip(points @ pole, -1.0, 1.0))
    assert np.all(angles <= 0.5 + 1e-12)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, r"n must be an int >= 1, got 0"),
    (dict(n=10.0), TypeError, r"n must be an int >= 1, got float"),
    (dict(n=True), TypeError, r"n must be an int >= 1, got bool"),
    (dict(d=1), ValueError, r"d must be an int >= 2, got 1"),
    (dict(d="5"), TypeError, r"d must be an int >= 2, got str"),
    (dict(noise="1"), TypeError, r"noise must be a positive number, got str"),
])
def test_spiked_samples_refuses_careless_arguments(kwargs, error, match):
    arguments = dict(d=4, n=10, rng=0)
    arguments.update(kwargs)
    with pytest.raises(error, match=match):
        spiked_samples(**arguments)


@pytest.mark.parametrize("covariance, match", [
    (np.eye(2), r"covariance must be a finite \(3, 3\) matrix \(d = 3\), got shape \(2, 2\)"),
    (np.ones(3), r"got shape \(3,\)"),
    (np.full((3, 3), np.nan), r"covariance must be a finite \(3, 3\) matrix"),
])
def test_streaming_pca_refuses_a_covariance_that_does_not_fit(covariance, match):
    X = np.random.default_rng(0).standard_normal((10, 3))
    with pytest.raises(ValueError, match=match):
        streaming_pca(X, covariance)


@pytest.mark.parametrize("mean, match", [
    ([1.0, 0.0], r"mean must be a unit vector of shape \(3,\), got shape \(2,\)"),
    ([1.0, 1.0, 0.0], r"mean must be a unit vector of shape \(3,\), got norm 1.41"),
    ([math.nan, 0.0, 1.0], r"mean must be a unit vector of shape \(3,\), got norm nan"),
])
def test_finite_sum_karcher_refuses_a_mean_that_does_not_fit(mean, match):
    with pytest.raises(ValueError, match=match):
        finite_sum_karcher(np.eye(3), mean=mean)


@pytest.mark.parametrize("value", ["no", 0, None])
def test_closed_form_must_be_a_bool(value):
    from spherenet.problems import rayleigh

    X = spiked_samples(4, 20, rng=0)[0]
    with pytest.raises(TypeError, match=f"closed_form must be True or False, got {value!r}"):
        streaming_pca(X).minimize(closed_form=value, epochs=1, rng=0)
    with pytest.raises(TypeError, match=f"closed_form must be True or False, got {value!r}"):
        rayleigh(np.diag([1.0, 2.0, 3.0])).minimize(closed_form=value, rng=0)
