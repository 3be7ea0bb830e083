"""The stack of iterates behind the history (``spherenet.optim._batch.SphereBatch``): its
size, when it pays, what one flush returns, and the hand-over to the per-iterate
computation for iterates whose float64 sums of squares leave the normal range. The
reference angle is atan2(||y - <x,y> x||, <x,y>) of the normalized points, the reference
violation | ||y|| - 1 |, with norms rescaled first."""

import numpy as np
import pytest

from spherenet import Oblique, Sphere
from spherenet.optim._batch import SphereBatch

EPS = np.finfo(np.float64).eps


def norm(v):
    """||v||, rescaled first: exact for entries far outside the range of their squares."""
    m = np.max(np.abs(v))
    return m * np.sqrt(np.sum((v / m) ** 2)) if m > 0 else 0.0


def reference(old, new):
    """Violation of ``new`` and the angle from ``old`` (NaN without one), plain NumPy."""
    violation = abs(norm(new) - 1.0)
    if old is None:
        return violation, np.nan
    x, y = old / norm(old), new / norm(new)
    c = x @ y
    return violation, float(np.arctan2(np.linalg.norm(y - c * x), c))


class Fallback:
    def __init__(self):
        self.calls = []

    def __call__(self, old, new):
        self.calls.append((None if old is None else old.copy(), new.copy()))
        return reference(old, new)


def test_the_default_stack_takes_128_iterates():
    x = Sphere(3).random_point(rng=0)
    batch = SphereBatch(Sphere(3), x, False, fallback=None)
    for i in range(127):
        assert batch.add(x) and not batch.full
    assert batch.add(x) and batch.full and batch.pending == 128


@pytest.mark.parametrize("max_rows, max_bytes, rows", [(5, 1 << 19, 5), (128, 24 * 7, 7),
                                                       (128, 24, 2), (1, 1 << 19, 2)])
def test_the_stack_size_is_bounded_by_rows_and_bytes_but_holds_two(max_rows, max_bytes, rows):
    x = np.array([1.0, 0.0, 0.0])  # 24 bytes
    batch = SphereBatch(Sphere(3), x, False, fallback=None, max_bytes=max_bytes,
                        max_rows=max_rows)
    for i in range(rows - 1):
        batch.add(x)
        assert not batch.full
    batch.add(x)
    assert batch.full and batch.pending == rows


def test_batching_pays_for_points_of_up_to_4096_float64_numbers():
    assert SphereBatch.fits(np.zeros(3))
    assert SphereBatch.fits(np.zeros(4096))  # 16 of them fill the 512 KiB exactly
    assert not SphereBatch.fits(np.zeros(4097))
    assert SphereBatch.fits(np.zeros(8192, dtype=np.float32))
    assert not SphereBatch.fits((np.zeros(3),))


def test_a_first_flush_of_one_iterate_has_only_the_nan_angle():
    x = np.array([0.0, 0.6, 0.8])
    batch = SphereBatch(Sphere(3), x, True, fallback=None)  # no fallback needed
    batch.add(x)
    violations, angles = batch.flush()
    assert violations == [pytest.approx(0.0, abs=2 * EPS)]
    assert angles.shape == (1,) and np.isnan(angles[0])
    assert batch.flush() == ([], [])
    y = np.array([0.0, 0.8, 0.6])
    batch.add(y)  # the next flush measures from the last iterate of the previous one
    _, angles = batch.flush()
    assert angles.tolist() == [pytest.approx(reference(x, y)[1], rel=4 * EPS)]


@pytest.mark.parametrize("scale", [1e-160, 1e160])
def test_iterates_whose_squares_leave_the_float64_range_go_one_by_one(scale):
    # ||x||^2 underflows (1e-320) or overflows (inf) in float64: the batch hands the
    # whole stack to the per-iterate computation, which rescales.
    t = 0.3
    points = [scale * np.array([1.0, 0.0, 0.0]), scale * np.array([np.cos(t), np.sin(t), 0.0]),
              scale * np.array([np.cos(2 * t), np.sin(2 * t), 0.0])]
    fallback = Fallback()
    batch = SphereBatch(Sphere(3), points[0], True, fallback=fallback)
    for p in points:
        batch.add(p)
    with np.errstate(over="ignore"):  # the overflow of 1e320 is what the batch detects
        violations, angles = batch.flush()
    assert len(fallback.calls) == 3 and fallback.calls[0][0] is None
    np.testing.assert_array_equal(fallback.calls[2][0], points[1])
    expected = [reference(None, points[0])] + [reference(a, b) for a, b in
                                              zip(points[:-1], points[1:])]
    assert violations == [e[0] for e in expected]
    assert np.isnan(angles[0]) and angles.dtype == np.float64
    np.testing.assert_allclose(angles[1:], [t, t], rtol=8 * EPS)


def test_a_stack_of_ordinary_iterates_never_calls_the_fallback():
    manifold = Oblique(3, 4)
    rng = np.random.default_rng(1)
    points = [manifold.random_point(rng=rng) for _ in range(5)]
    fallback = Fallback()
    batch = SphereBatch(manifold, points[0], False, fallback=fallback)
    for p in points:
        batch.add(p)
    violations, angles = batch.flush()
    assert fallback.calls == []
    for k in range(1, 5):
        cols = [reference(points[k - 1][:, j], points[k][:, j])[1] for j in range(4)]
        assert angles[k] == pytest.approx(np.sqrt(np.sum(np.square(cols))), rel=8 * EPS)
    assert max(violations) <= 4 * EPS


def test_a_tangential_part_whose_square_overflows_goes_one_by_one():
    # ||x||^2 = 1.44e308 is finite, but ||y - x||^2 (the tangential part of a step of
    # 1.5 rad, not normalized) is not: the batch hands the stack to the fallback.
    t = 1.5
    x = 1.2e154 * np.array([1.0, 0.0, 0.0])
    y = 1.2e154 * np.array([np.cos(t), np.sin(t), 0.0])
    fallback = Fallback()
    batch = SphereBatch(Sphere(3), x, False, fallback=fallback)
    batch.add(x), batch.add(y)
    with np.errstate(over="ignore", invalid="ignore"):
        _, angles = batch.flush()
    assert len(fallback.calls) == 2
    assert angles[1] == pytest.approx(t, rel=8 * EPS)
