"""Telemetry of minimize(..., telemetry=True) against closed forms on the sphere."""

import numpy as np
import pytest

from spherenet import Sphere, minimize
from spherenet.optim._loop import TELEMETRY_FIELDS

A = np.diag(np.arange(1.0, 21.0))


def cost(x):
    return -x @ A @ x


@pytest.mark.parametrize("method", ["sd", "cg", "trust-regions"])
def test_telemetry_matches_the_closed_forms_of_the_sphere(method):
    manifold = Sphere(20, retraction="projection", transport="parallel")
    res = minimize(cost, manifold, rng=1, method=method, telemetry=True)
    h = res.history
    assert all(len(h[name]) == res.nit + 1 for name in TELEMETRY_FIELDS)
    moved = ~np.isnan(h["retr_exp_gap"])
    assert moved.sum() >= 3
    step = h["step_size"][moved]
    # Projection retraction: R_x(v) is at angle arctan ||v|| along the same great circle
    # as Exp_x(v), which is at angle ||v||.
    np.testing.assert_allclose(h["retr_exp_gap"][moved], step - np.arctan(step), rtol=1e-8,
                               atol=1e-15)
    # The chord of an arc of angle theta is 2 sin(theta / 2).
    np.testing.assert_allclose(h["chord"][moved], 2 * np.sin(h["angle"][moved] / 2),
                               rtol=1e-10, atol=1e-15)
    assert np.max(h["transport_defect"][moved]) < 1e-12  # parallel transport: an isometry
    assert np.max(h["tangency"][moved]) < 1e-6
    assert np.max(np.abs(h["norm_drift"][moved])) < 1e-14


def test_telemetry_with_the_exponential_map_has_no_retraction_gap():
    res = minimize(cost, Sphere(20), rng=1, method="cg", telemetry=True)
    gaps = res.history["retr_exp_gap"]
    assert np.nanmax(gaps) == 0.0


def test_telemetry_is_off_by_default():
    res = minimize(cost, Sphere(20), rng=1, method="cg")
    assert not set(TELEMETRY_FIELDS) & set(res.history)
