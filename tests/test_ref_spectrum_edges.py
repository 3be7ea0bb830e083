"""Edges of ``hessian_spectrum``: defaults, the choice of method, the shift of the normal
space on a two-dimensional tangent space, reproducible Lanczos starts, and the
second-order test of a ``HessianSpectrum``. Closed form: for f(x) = -x'Ax on the sphere
at the top eigenvector, the Hessian's eigenvalues are 2 (lambda_max - lambda_i)."""

import numpy as np
import pytest

from spherenet import Sphere
from spherenet.optim.spectrum import HessianSpectrum, hessian_spectrum

A3 = np.diag([1.0, 2.0, 5.0])
A30 = np.diag(np.linspace(1.0, 30.0, 30))
E30 = np.eye(30)[-1]


def rayleigh(a):
    return lambda x: -x @ a @ x


def test_six_eigenvalues_at_each_end_by_default():
    spec = hessian_spectrum(rayleigh(A30), Sphere(30), E30)
    expected = 2.0 * (30.0 - np.linspace(1.0, 30.0, 30)[:-1])
    np.testing.assert_allclose(spec.smallest, np.sort(expected)[:6], rtol=1e-12)
    assert spec.largest.shape == (6,) and spec.method == "dense"


def test_only_the_ends_asked_for_are_computed():
    spec = hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], k=1, which="smallest")
    assert spec.largest is None and spec.smallest.tolist() == [pytest.approx(6.0)]


def test_unknown_which_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"^which must be one of \['smallest', 'largest', "
                                         r"'both'\], got 'all'$"):
        hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], which="all")


def test_auto_takes_lanczos_for_few_eigenvalues_of_a_large_space():
    # 4 k = 28 < dim = 29: Lanczos; k = 8 (32 >= 29): dense
    assert hessian_spectrum(rayleigh(A30), Sphere(30), E30, k=7, dense_max=10).method == "eigsh"
    assert hessian_spectrum(rayleigh(A30), Sphere(30), E30, k=8, dense_max=10).method == "dense"


def test_eigsh_falls_back_to_dense_when_arpack_cannot_take_k():
    # ARPACK needs k < N - 1; k = dim = N - 1 on the sphere
    spec = hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], k=2, method="eigsh")
    assert spec.method == "dense"
    np.testing.assert_allclose(spec.smallest, [6.0, 8.0], rtol=1e-12)


def test_lanczos_on_a_two_dimensional_tangent_space_shifts_the_normal_direction_away():
    # dim 2: no radius estimate (0); the normal direction is still shifted (by 1), so the
    # smallest eigenvalue found is the Hessian's, 2 (5 - 2) = 6, not the normal 0.
    spec = hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], k=1, method="eigsh",
                            which="smallest")
    assert spec.method == "eigsh"
    assert spec.smallest.tolist() == [pytest.approx(6.0, rel=1e-10)]


def test_the_default_lanczos_start_is_reproducible():
    one = hessian_spectrum(rayleigh(A30), Sphere(30), E30 + 0.0, k=2, method="eigsh")
    two = hessian_spectrum(rayleigh(A30), Sphere(30), E30 + 0.0, k=2, method="eigsh")
    np.testing.assert_array_equal(one.smallest, two.smallest)
    np.testing.assert_array_equal(one.largest, two.largest)


def test_is_local_min_with_its_own_gradient_tolerance():
    spec = HessianSpectrum(smallest=np.array([0.0, 1.0]), largest=None, grad_norm=0.5, dim=2,
                           method="dense", nhev=0)
    assert spec.is_local_min(tol=1e-6, gtol=0.5)  # at the tolerance: passes
    assert not spec.is_local_min(tol=1e-6)  # gtol defaults to tol
    none = HessianSpectrum(smallest=None, largest=np.ones(1), grad_norm=0.0, dim=1,
                           method="dense", nhev=0)
    with pytest.raises(ValueError, match='^is_local_min needs the smallest eigenvalues: use '
                                         'which="smallest" or "both"$'):
        none.is_local_min()
