"""hessian_spectrum against closed forms: Rayleigh quotients on spheres and products.

For f(x) = -x^T A x on the sphere, at the eigenvector v_j of A
(A v_j = lambda_j v_j) the Riemannian Hessian is
Hess f(v_j)[u] = -2 P(A u) + 2 lambda_j u, with eigenvalues
2 (lambda_j - lambda_i), i != j: all positive at the top eigenvector (the
minimum), of both signs at an interior one (a saddle).
"""

import autograd.numpy as anp
import numpy as np
import pytest

from spherenet import Euclidean, Oblique, Product, Sphere
from spherenet.optim.spectrum import hessian_spectrum

EPS = np.finfo(np.float64).eps


def _symmetric(n, seed):
    rng = np.random.default_rng(seed)
    b = rng.standard_normal((n, n))
    return (b + b.T) / 2.0


def _rayleigh(a):
    return lambda x: -x @ a @ x


def _rayleigh_hessian_at(lam, j):
    """Closed form: the eigenvalues 2 (lambda_j - lambda_i), i != j, ascending."""
    return np.sort(2.0 * (lam[j] - np.delete(lam, j)))


def _atol(values, factor=1e3):
    # Lanczos and eigh are backward stable: errors of a few eps times the
    # spectral radius, times a stated factor for the size.
    return factor * EPS * float(np.max(np.abs(values)))


@pytest.mark.parametrize("n, method", [(12, "dense"), (300, "eigsh")])
def test_rayleigh_minimum(n, method):
    a = _symmetric(n, 0)
    lam, vec = np.linalg.eigh(a)
    expected = _rayleigh_hessian_at(lam, n - 1)
    spec = hessian_spectrum(_rayleigh(a), Sphere(n), vec[:, -1], k=5, method=method)
    assert spec.method == method
    assert spec.dim == n - 1
    np.testing.assert_allclose(spec.smallest, expected[:5], rtol=0, atol=_atol(expected))
    np.testing.assert_allclose(spec.largest, expected[::-1][:5], rtol=0, atol=_atol(expected))
    assert spec.smallest[0] > 0
    assert spec.is_local_min(tol=1e-8)


def test_rayleigh_saddle():
    n, j = 10, 6
    a = _symmetric(n, 1)
    lam, vec = np.linalg.eigh(a)
    expected = _rayleigh_hessian_at(lam, j)
    spec = hessian_spectrum(_rayleigh(a), Sphere(n), vec[:, j], k=n - 1)
    np.testing.assert_allclose(spec.smallest, expected, rtol=0, atol=_atol(expected))
    assert spec.grad_norm < 1e-12  # a critical point ...
    assert np.sum(spec.smallest < 0) == n - 1 - j  # ... with n-1-j descent directions
    assert not spec.is_local_min(tol=1e-8)


def test_saddle_found_by_eigsh():
    n, j = 200, 150
    a = _symmetric(n, 2)
    lam, vec = np.linalg.eigh(a)
    expected = _rayleigh_hessian_at(lam, j)
    spec = hessian_spectrum(_rayleigh(a), Sphere(n), vec[:, j], k=3, which="smallest",
                            method="eigsh")
    assert spec.largest is None
    np.testing.assert_allclose(spec.smallest, expected[:3], rtol=0, atol=_atol(expected))
    assert not spec.is_local_min()


def test_closed_form_derivatives_match_autograd():
    n = 30
    a = _symmetric(n, 3)
    x = Sphere(n).random_point(rng=4)  # not a critical point: the curvature term matters
    auto = hessian_spectrum(_rayleigh(a), Sphere(n), x, k=4)
    given = hessian_spectrum(_rayleigh(a), Sphere(n), x, k=4, grad=lambda x: -2.0 * a @ x,
                             hess=lambda x, u: -2.0 * a @ u)
    np.testing.assert_allclose(given.smallest, auto.smallest, rtol=0, atol=_atol(auto.largest))
    np.testing.assert_allclose(given.largest, auto.largest, rtol=0, atol=_atol(auto.largest))
    np.testing.assert_allclose(given.grad_norm, auto.grad_norm, rtol=1e-12)


@pytest.mark.parametrize("method", ["dense", "eigsh"])
def test_oblique_columns_at_eigenvectors(method):
    # f(X) = -sum_k s_k x_k^T A x_k separates over the columns; with column k at
    # the eigenvector v_{j_k}, the Hessian is block diagonal and its spectrum the
    # union of the columns' Rayleigh spectra, 2 s_k (lambda_{j_k} - lambda_i).
    # Distinct weights s_k keep the eigenvalues simple (Lanczos may miss copies
    # of a multiple eigenvalue). Oblique(10, 40) has 40 normal directions: the
    # eigsh path must keep all of them out of the answer.
    n, idx = 10, [9, 9, 4, 9] * 10
    weights = np.linspace(1.0, 2.0, len(idx))
    a = _symmetric(n, 5)
    lam, vec = np.linalg.eigh(a)
    x = vec[:, idx]
    expected = np.sort(np.concatenate(
        [s * _rayleigh_hessian_at(lam, j) for s, j in zip(weights, idx)]))
    spec = hessian_spectrum(lambda x: -anp.sum(weights * anp.sum((a @ x) * x, axis=0)),
                            Oblique(n, len(idx)), x, k=12, method=method)
    assert spec.dim == expected.size
    np.testing.assert_allclose(spec.smallest, expected[:12], rtol=0, atol=_atol(expected))
    np.testing.assert_allclose(spec.largest, expected[::-1][:12], rtol=0, atol=_atol(expected))
    assert not spec.is_local_min()  # the columns at v_4 are saddles


@pytest.mark.parametrize("definite", [True, False])
def test_product_sphere_euclidean(definite):
    # f(x, b) = -x^T A x + b^T B b / 2 at (v_top, 0): the spectrum is the union
    # of the sphere's 2 (lambda_top - lambda_i) and the eigenvalues of B.
    n, m = 5, 3
    a = _symmetric(n, 6)
    lam, vec = np.linalg.eigh(a)
    b_mat = np.diag([1.0, 2.0, 3.0] if definite else [-1.0, 2.0, 3.0])
    point = (vec[:, -1], np.zeros(m))
    expected = np.sort(np.concatenate([_rayleigh_hessian_at(lam, n - 1), np.diag(b_mat)]))

    def cost(p):
        x, b = p
        return -x @ a @ x + 0.5 * b @ b_mat @ b

    spec = hessian_spectrum(cost, Product([Sphere(n), Euclidean(m)]), point, k=n - 1 + m)
    np.testing.assert_allclose(spec.smallest, expected, rtol=0, atol=_atol(expected))
    assert spec.is_local_min(tol=1e-8) is definite


def test_dense_and_eigsh_agree_at_a_generic_point():
    n = 300
    a = _symmetric(n, 7)
    x = Sphere(n).random_point(rng=8)
    dense = hessian_spectrum(_rayleigh(a), Sphere(n), x, k=6, method="dense")
    lanczos = hessian_spectrum(_rayleigh(a), Sphere(n), x, k=6, method="eigsh")
    scale = _atol(dense.largest)
    np.testing.assert_allclose(lanczos.smallest, dense.smallest, rtol=0, atol=scale)
    np.testing.assert_allclose(lanczos.largest, dense.largest, rtol=0, atol=scale)
    assert dense.nhev == n - 1  # one product per basis vector of the tangent space
    assert not dense.is_local_min()  # not even a critical point


def test_euclidean_has_no_normal_space():
    b_mat = _symmetric(40, 9)
    spec = hessian_spectrum(lambda b: 0.5 * b @ b_mat @ b, Euclidean(40), np.zeros(40), k=3,
                            method="eigsh")
    lam = np.linalg.eigvalsh(b_mat)
    np.testing.assert_allclose(spec.smallest, lam[:3], rtol=0, atol=_atol(lam))
    np.testing.assert_allclose(spec.largest, lam[::-1][:3], rtol=0, atol=_atol(lam))


def test_float32_point():
    n = 8
    a = _symmetric(n, 10)
    lam, vec = np.linalg.eigh(a)
    expected = _rayleigh_hessian_at(lam, n - 1)
    spec = hessian_spectrum(_rayleigh(a), Sphere(n), vec[:, -1].astype(np.float32), k=n - 1)
    atol = 100 * np.finfo(np.float32).eps * float(np.max(np.abs(expected)))
    np.testing.assert_allclose(spec.smallest, expected, rtol=0, atol=atol)


def test_k_is_capped_at_the_dimension():
    spec = hessian_spectrum(lambda x: -x @ x, Sphere(3), np.array([1.0, 0.0, 0.0]), k=10)
    assert spec.smallest.shape == (2,)
    # f = -1 on the whole sphere: the Hessian is zero
    np.testing.assert_allclose(spec.smallest, [0.0, 0.0], atol=1e-14)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"which": "middle"}, ValueError),
        ({"method": "lobpcg"}, ValueError),
        ({"k": 0}, ValueError),
    ],
)
def test_bad_arguments(kwargs, error):
    with pytest.raises(error):
        hessian_spectrum(lambda x: -x @ x, Sphere(3), np.array([1.0, 0.0, 0.0]), **kwargs)


def test_point_off_the_manifold():
    with pytest.raises(ValueError, match="off"):
        hessian_spectrum(lambda x: -x @ x, Sphere(3), np.array([2.0, 0.0, 0.0]))


def test_is_local_min_needs_the_smallest():
    spec = hessian_spectrum(lambda x: -x @ x, Sphere(3), np.array([1.0, 0.0, 0.0]), k=1,
                            which="largest")
    assert spec.smallest is None
    with pytest.raises(ValueError, match="smallest"):
        spec.is_local_min()
