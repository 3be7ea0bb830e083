"""Edges of ``hessian_spectrum``: defaults, the choice of method, the shift of the normal
space on a two-dimensional tangent space, reproducible Lanczos starts, and the
second-order test of a ``HessianSpectrum``. Closed form: for f(x) = -x'Ax on the sphere
at the top eigenvector, the Hessian's eigenvalues are 2 (lambda_max - lambda_i)."""

import numpy as np
import pytest
from scipy.sparse.linalg import LinearOperator

from spherenet import Sphere
from spherenet.optim import spectrum
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


# --- the shift of the normal space, one attempt at a time -----------------------------

A4 = np.diag([1.0, 2.0, 3.0, 10.0])  # at e_4: Hessian eigenvalues 2 (lambda_i - 10) = -18, -16, -14


def _spy_sides(monkeypatch, n_normal):
    """Record the shift of each ``_eigsh_side`` call; report ``n_normal(i)`` normal vectors."""
    real = spectrum._eigsh_side
    shifts = []

    def side(apply, project, size, k, which, shift, v0, tol):
        shifts.append(shift)
        values, _ = real(apply, project, size, k, which, shift, v0, tol)
        return values, n_normal(len(shifts) - 1)

    monkeypatch.setattr(spectrum, "_eigsh_side", side)
    return shifts


def test_a_three_dimensional_tangent_space_is_shifted_by_twice_the_spectral_radius(monkeypatch):
    # dim 3 is the smallest with a Lanczos radius estimate (loose: tol 1e-3); the radius is
    # max |2 (lambda_i - 10)| = 18 (numpy's eigh of the Hessian in a tangent basis).
    x = np.eye(4)[3]
    basis = np.eye(4)[:, :3]
    hess = basis.T @ (2.0 * A4 - 2.0 * (x @ A4 @ x) * np.eye(4)) @ basis
    radius = np.max(np.abs(np.linalg.eigvalsh(hess)))
    shifts = _spy_sides(monkeypatch, lambda i: 0)
    spec = hessian_spectrum(lambda v: v @ A4 @ v, Sphere(4), x, k=1, method="eigsh",
                            which="smallest")
    assert spec.method == "eigsh"
    assert shifts == [pytest.approx(2.0 * radius, rel=1e-2)]
    assert spec.smallest.tolist() == [pytest.approx(-18.0, rel=1e-10)]


def test_the_shift_grows_eightfold_when_a_normal_vector_comes_back(monkeypatch):
    shifts = _spy_sides(monkeypatch, lambda i: 1 if i == 0 else 0)
    spec = hessian_spectrum(lambda v: v @ A4 @ v, Sphere(4), np.eye(4)[3], k=1,
                            method="eigsh", which="largest")
    assert len(shifts) == 2 and shifts[1] == 8.0 * shifts[0]
    assert spec.largest.tolist() == [pytest.approx(-14.0, rel=1e-10)]


def test_four_attempts_with_a_normal_vector_are_an_error(monkeypatch):
    shifts = _spy_sides(monkeypatch, lambda i: 1)
    with pytest.raises(RuntimeError, match=r"^could not separate the normal space from the "
                                           r"Hessian's spectrum$"):
        hessian_spectrum(lambda v: v @ A4 @ v, Sphere(4), np.eye(4)[3], k=1, method="eigsh",
                         which="smallest")
    assert [s / shifts[0] for s in shifts] == [1.0, 8.0, 64.0, 512.0]


def test_a_projector_of_the_wrong_rank_is_an_error():
    # The identity as "projector" of a space of dimension 2 in R^3: rank 3.
    with pytest.raises(RuntimeError, match=r"^the tangent projector has rank 3, but the "
                                           r"manifold has dimension 2$"):
        spectrum._dense(lambda v: v, lambda v: v, 3, 2)


def test_every_hessian_vector_product_is_one_the_eigensolver_asked_for(monkeypatch):
    # nhev counts the products of the run; with the Lanczos path they all come from ARPACK
    # (the radius estimate and each end): none spent elsewhere, e.g. on building operators.
    real = spectrum.eigsh
    asked = []

    def eigsh(operator, **kwargs):
        def matvec(v):
            asked.append(1)
            return operator.matvec(v)

        counted = LinearOperator(operator.shape, matvec=matvec, dtype=np.float64)
        return real(counted, **kwargs)

    monkeypatch.setattr(spectrum, "eigsh", eigsh)
    spec = hessian_spectrum(rayleigh(A30), Sphere(30), E30 + 0.0, k=2, method="eigsh")
    assert spec.method == "eigsh" and len(asked) > 0
    assert spec.nhev == len(asked)


def test_a_two_dimensional_tangent_space_gets_the_unit_shift(monkeypatch):
    # dim 2: no radius estimate, so the shift is 1 (not 2 rho).
    shifts = _spy_sides(monkeypatch, lambda i: 0)
    hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], k=1, method="eigsh", which="smallest")
    assert shifts == [1.0]


def test_one_lanczos_start_for_the_radius_and_both_ends(monkeypatch):
    real = spectrum.eigsh
    starts = []

    def eigsh(operator, **kwargs):
        starts.append(kwargs.get("v0"))
        return real(operator, **kwargs)

    monkeypatch.setattr(spectrum, "eigsh", eigsh)
    hessian_spectrum(rayleigh(A30), Sphere(30), E30 + 0.0, k=2, method="eigsh")
    assert len(starts) == 3 and starts[0] is not None
    assert all(s is starts[0] for s in starts)
    # tangent at e_30 (projected), from the default generator seed 0
    assert starts[0][-1] == 0.0
    v0 = np.random.default_rng(0).standard_normal(30)
    np.testing.assert_array_equal(starts[0][:-1], v0[:-1])


def test_the_radius_of_an_unconverged_lanczos_is_what_it_found(monkeypatch):
    from scipy.sparse.linalg import ArpackNoConvergence

    found = []

    def eigsh(operator, **kwargs):
        raise ArpackNoConvergence("no convergence", found[0], np.zeros((4, len(found[0]))))

    monkeypatch.setattr(spectrum, "eigsh", eigsh)
    op = LinearOperator((4, 4), matvec=lambda v: v, dtype=np.float64)
    found.append(np.array([3.0, -5.0]))
    assert spectrum._radius(op, np.ones(4), 3) == 5.0
    found[0] = np.array([])
    assert spectrum._radius(op, np.ones(4), 3) == 0.0
    assert spectrum._radius(op, np.ones(4), 2) == 0.0  # below dimension 3: no estimate


def test_auto_method_at_its_thresholds():
    # size <= dense_max: dense (also at equality); 4 k >= dim: dense (also at equality)
    x30 = E30 + 0.0
    assert hessian_spectrum(rayleigh(A30), Sphere(30), x30, k=1, dense_max=30).method == "dense"
    assert hessian_spectrum(rayleigh(A30), Sphere(30), x30, k=1, dense_max=29).method == "eigsh"
    a29, e29 = np.diag(np.arange(1.0, 30.0)), np.eye(29)[-1]
    assert hessian_spectrum(rayleigh(a29), Sphere(29), e29, k=7, dense_max=10).method == "dense"
    # the default dense_max is 200: a sphere in R^201 takes Lanczos for k = 1
    a201, e201 = np.diag(np.arange(1.0, 202.0)), np.eye(201)[-1]
    spec = hessian_spectrum(rayleigh(a201), Sphere(201), e201, k=1, which="smallest")
    assert spec.method == "eigsh"
    assert spec.smallest.tolist() == [pytest.approx(2.0, rel=1e-8)]


def test_the_default_start_is_seed_zero():
    one = hessian_spectrum(rayleigh(A30), Sphere(30), E30 + 0.0, k=2, method="eigsh")
    two = hessian_spectrum(rayleigh(A30), Sphere(30), E30 + 0.0, k=2, method="eigsh", rng=0)
    np.testing.assert_array_equal(one.smallest, two.smallest)
    assert one.nhev == two.nhev


def test_a_users_gradient_and_hessian_are_the_ones_used():
    # The cost is -x'A3x, but the user's derivatives are those of -2 x'A3x: the spectrum
    # and the gradient norm follow the user's (twice the closed form; e_3 is critical, so
    # the gradient norm is 0 either way: take x off the eigenvectors for it).
    spec = hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], k=2, method="dense",
                            grad=lambda x: -4.0 * A3 @ x, hess=lambda x, u: -4.0 * A3 @ u)
    np.testing.assert_allclose(spec.smallest, [12.0, 16.0], rtol=1e-12)
    x = np.array([0.6, 0.0, 0.8])
    spec = hessian_spectrum(rayleigh(A3), Sphere(3), x, k=1, method="dense",
                            grad=lambda x: -4.0 * A3 @ x)
    egrad = -4.0 * A3 @ x
    assert spec.grad_norm == pytest.approx(np.linalg.norm(egrad - (x @ egrad) * x), rel=1e-12)


def test_is_local_min_accepts_the_smallest_eigenvalue_at_minus_tol():
    spec = HessianSpectrum(smallest=np.array([-0.25, 1.0]), largest=None, grad_norm=0.0, dim=2,
                           method="dense", nhev=0)
    assert spec.is_local_min(tol=0.25) is True
    assert spec.is_local_min(tol=0.125) is False


def test_bad_arguments_are_refused_with_what_came():
    with pytest.raises(TypeError, match=r"^manifold must be a spherenet Manifold, got tuple$"):
        hessian_spectrum(rayleigh(A3), (3,), np.eye(3)[2])
    with pytest.raises(ValueError, match=r"^method must be one of \['auto', 'dense', 'eigsh'\], "
                                         r"got 'lanczos'$"):
        hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], method="lanczos")
    with pytest.raises(ValueError, match=r"^k must be a positive int, got 0$"):
        hessian_spectrum(rayleigh(A3), Sphere(3), np.eye(3)[2], k=0)


def test_is_local_min_default_tolerance_is_1e_6():
    # the smallest eigenvalue -1e-3 is far below -1e-6: not a local minimum by default
    spec = HessianSpectrum(smallest=np.array([-1e-3, 1.0]), largest=None, grad_norm=0.0, dim=2,
                           method="dense", nhev=0)
    assert spec.is_local_min() is False
    assert spec.is_local_min(tol=2e-3) is True


@pytest.mark.parametrize("k", [2.0, 1.5, np.float64(3.0), "2"])
def test_k_must_be_an_integer(k):
    with pytest.raises((TypeError, ValueError), match="k"):
        hessian_spectrum(rayleigh(A30), Sphere(30), E30, k=k)


def test_a_spectral_radius_below_one_still_gives_twice_the_radius_as_shift(monkeypatch):
    # the Hessian of -x'Ax/100 (A4) at e_4 has eigenvalues 2 (lambda_i - 10) / 100 =
    # -0.18, -0.16, -0.14: radius 0.18 < 1, shift 0.36 (not the unit shift of dimension 2)
    shifts = _spy_sides(monkeypatch, lambda i: 0)
    spec = hessian_spectrum(lambda v: v @ A4 @ v / 100.0, Sphere(4), np.eye(4)[3], k=1,
                            method="eigsh", which="smallest")
    assert shifts == [pytest.approx(0.36, rel=1e-2)]
    assert spec.smallest.tolist() == [pytest.approx(-0.18, rel=1e-10)]
