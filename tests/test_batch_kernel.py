"""The compiled reduction of the history's stack (manifolds._kernels.history_batch).

On an Oblique whose factor axes lead, SphereBatch reduces its stack of
iterates with a numba kernel; elsewhere, and without numba, with NumPy. Both
are checked against plain NumPy written from the definitions (violation
max_k | ||y_k|| - 1 |, angle the root sum of squares of the per-factor angles)
and against known angles, and against each other to rounding.
"""

import numpy as np
import pytest

from spherenet import Oblique, Sphere
from spherenet.manifolds import _kernels
from spherenet.optim._batch import SphereBatch

pytest.importorskip("numba")

KERNELS = _kernels._load()


@pytest.fixture(params=["compiled", "numpy"])
def path(request, monkeypatch):
    monkeypatch.setitem(_kernels._STATE, "numba", KERNELS if request.param == "compiled" else False)
    return request.param


def _walk(M, rng, steps, scale, dtype, off=0.0):
    """Iterates of a random walk on M (moved by about ``scale`` radians per factor),
    each factor of each iterate scaled by its own 1 + off u, u in [0.5, 1.5) (the
    projection strategy's points are off the sphere; ``normalize`` then divides by
    the norms)."""
    x = M.random_point(rng)
    points = [x]
    for _ in range(steps):
        u = M.proj(points[-1], rng.standard_normal(x.shape))
        norms = np.sqrt(np.sum(u * u, axis=M._axes, keepdims=True))
        points.append(M.retr(points[-1], scale * u / norms))
    factor_shape = tuple(1 if i in M._axes else n for i, n in enumerate(x.shape))
    return [(p * (1.0 + off * rng.uniform(0.5, 1.5, factor_shape))).astype(dtype)
            for p in points]


def _reference(points, normalize, axes=(0,)):
    """Violations of the points and angles between consecutive ones, in float64 from
    the definitions: atan2(||y - <x, y> x||, <x, y>) per unit column."""
    def norm(a):
        return np.sqrt(np.sum(a * a, axis=axes, keepdims=True))

    viol = [np.max(np.abs(norm(p.astype(np.float64)) - 1.0)) for p in points]
    angles = []
    for x, y in zip(points[:-1], points[1:]):
        x, y = x.astype(np.float64), y.astype(np.float64)
        if normalize:
            x, y = x / norm(x), y / norm(y)
        c = np.sum(x * y, axis=axes, keepdims=True)
        s = norm(y - c * x)
        angles.append(np.sqrt(np.sum(np.arctan2(s, c) ** 2)))
    return np.array(viol), np.array(angles)


def _flushes(M, points, normalize, cut):
    """The batch's violations and angles over two flushes (points[:cut], points[cut:])."""
    batch = SphereBatch(M, points[0], normalize, fallback=None)
    out_v, out_a = [], []
    for part in (points[:cut], points[cut:]):
        for p in part:
            assert batch.add(p)
        v, a = batch.flush()
        out_v += list(v)
        out_a += list(a)
    return np.array(out_v), np.array(out_a)


@pytest.mark.parametrize("shape", [(10, 20), (3, 7), (2, 3, 4)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("normalize", [False, True])
def test_the_stack_against_the_definitions(path, shape, dtype, normalize):
    rng = np.random.default_rng(sum(shape))
    M = Oblique(*shape) if len(shape) == 2 else Oblique(shape, axis=(0, 1))
    points = _walk(M, rng, 25, 1e-2, dtype, off=1e-3 if normalize else 0.0)
    v, a = _flushes(M, points, normalize, cut=9)
    ref_v, ref_a = _reference(points, normalize, M._axes)
    eps = np.finfo(dtype).eps
    # Violation: the float64 norms of the stored numbers (float32 rounding is in the data).
    np.testing.assert_allclose(v, ref_v, rtol=0, atol=4 * np.finfo(np.float64).eps)
    assert np.isnan(a[0])
    # Angles of about 1e-2 per factor: a few ulps of the data's dtype relative to them.
    np.testing.assert_allclose(a[1:], ref_a, rtol=64 * eps if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("normalize", [False, True])
def test_compiled_and_numpy_paths_agree_to_rounding(monkeypatch, dtype, normalize):
    rng = np.random.default_rng(7)
    M = Oblique(10, 200)
    points = _walk(M, rng, 40, 3e-3, dtype, off=2e-4 if normalize else 0.0)
    results = {}
    for name, state in (("compiled", KERNELS), ("numpy", False)):
        monkeypatch.setitem(_kernels._STATE, "numba", state)
        results[name] = _flushes(M, points, normalize, cut=17)
    (v1, a1), (v2, a2) = results["compiled"], results["numpy"]
    np.testing.assert_allclose(v1, v2, rtol=0, atol=2 * np.finfo(np.float64).eps)
    np.testing.assert_allclose(a1[1:], a2[1:], rtol=32 * np.finfo(np.float64).eps)


@pytest.mark.parametrize("theta", [1e-12, 1e-7, 3e-3, 0.039, 0.041, 0.5, 1.5, 2.0, 3.0, 3.14])
def test_known_angles_small_and_large(path, theta):
    # Each column turned by theta (k-th column by theta * (1 + k/10)) in a plane: the
    # angle is sqrt(sum of squares), across the series (ratio < 0.04) and atan2 branches.
    rng = np.random.default_rng(1)
    M = Oblique(6, 5)
    x = M.random_point(rng)
    u = M.proj(x, rng.standard_normal(x.shape))
    u /= np.linalg.norm(u, axis=0)
    thetas = theta * (1.0 + np.arange(5) / 10.0)
    thetas = np.minimum(thetas, np.pi - 1e-3)
    y = np.cos(thetas) * x + np.sin(thetas) * u
    _, a = _flushes(M, [x, y], normalize=False, cut=1)
    expected = np.sqrt(np.sum(thetas ** 2))
    assert abs(a[1] - expected) <= 1e-9 * expected + 8 * np.finfo(float).eps


def test_the_series_branch_of_the_angle_is_atan2_to_rounding():
    f = _kernels._angle  # compiled
    for t in np.concatenate([np.logspace(-15, np.log10(0.0399), 200), [0.04, 0.05, 0.3]]):
        for c in (1.0, 0.5, 3.0):
            assert abs(f(t * c, c) - np.arctan2(t * c, c)) <= 2 * np.finfo(float).eps * np.arctan2(t * c, c)
    assert f(0.0, 1.0) == 0.0 and f(1.0, -1.0) == np.arctan2(1.0, -1.0)
    assert f(0.3, 0.0) == np.pi / 2


def test_sums_out_of_the_safe_range_go_to_the_per_iterate_fallback(path):
    # A column of norm 1e-160 (its float64 sum of squares underflows): both paths hand the
    # whole flush to the fallback.
    M = Oblique(4, 3)
    rng = np.random.default_rng(2)
    x = M.random_point(rng)
    y = x.copy()
    y[:, 1] *= 1e-160
    calls = []

    def fallback(old, new):
        calls.append(old is None)
        return 0.25, 0.5

    batch = SphereBatch(M, x, normalize=False, fallback=fallback)
    batch.add(x)
    batch.add(y)
    v, a = batch.flush()
    assert calls == [True, False] and v == [0.25, 0.25] and list(a) == [0.5, 0.5]


def test_which_stacks_take_the_compiled_reduction():
    x = np.ones((3, 4)) / np.sqrt(3)
    assert SphereBatch(Oblique(3, 4), x, False, None)._view3().shape[1:] == (3, 4)
    assert SphereBatch(Oblique(3, 4, axis=1), x / x * 0.5, False, None)._view3() is None
    assert SphereBatch(Sphere(3, 4), x / np.sqrt(4), False, None)._view3() is None
    assert SphereBatch(Sphere(12), np.ones(12) / np.sqrt(12), False, None)._view3() is None
