"""spherenet.theory given carelessly: a Hessian matrix for its eigenvalues, odd tolerances.

A 2-D array passed as ``eigenvalues`` used to be flattened, its off-diagonal
entries read as eigenvalues: a silent wrong rate. Complex numbers and
non-numeric tolerances are refused with the module's own messages.
"""

import numpy as np
import pytest

from spherenet import Sphere
from spherenet import theory

H = np.array([[2.0, 1.0], [1.0, 3.0]])  # eigenvalues (5 -+ sqrt 5) / 2
A = np.diag([1.0, 2.0, 5.0])
POLE = np.array([0.0, 0.0, 1.0])


CALLS = [
    lambda e: theory.gd_rate(e, 0.1),
    lambda e: theory.gd_lr_limit(e),
    lambda e: theory.gd_optimal_lr(e),
    lambda e: theory.projection_rate(e, 0.1, -1.0),
    lambda e: theory.projection_lr_limit(e, -1.0),
    lambda e: theory.projection_optimal_lr(e, -1.0),
    lambda e: theory.heavy_ball_rate(e, 0.1, 0.5),
    lambda e: theory.heavy_ball_lr_limit(e, 0.5),
    lambda e: theory.heavy_ball_optimal(e),
]


@pytest.mark.parametrize("call", CALLS)
def test_a_matrix_is_not_taken_for_its_eigenvalues(call):
    with pytest.raises(ValueError, match=r"eigenvalues must be a 1-D array of eigenvalues, got "
                                         r"an array of shape \(2, 2\); for a symmetric matrix H "
                                         r"give np.linalg.eigvalsh\(H\)"):
        call(H)


def test_the_eigenvalues_of_the_matrix_give_the_rate_of_the_iteration():
    # Independent check: the spectral radius of I - lr H, from numpy.
    lr = 0.3
    expected = np.max(np.abs(np.linalg.eigvals(np.eye(2) - lr * H)))
    got = theory.gd_rate(np.linalg.eigvalsh(H), lr)
    assert got == pytest.approx(expected, rel=8 * np.finfo(float).eps)


@pytest.mark.parametrize("values", [[1 + 1j, 2.0], np.array([1.0, 2.0], dtype=complex)])
def test_complex_eigenvalues_are_refused_by_name(values):
    with pytest.raises(TypeError, match="eigenvalues must be real numbers, got dtype complex"):
        theory.gd_rate(values, 0.1)


@pytest.mark.parametrize("name", ["gtol", "rtol"])
@pytest.mark.parametrize("value, error, match", [
    ("1e-6", TypeError, "must be a real number, got str"),
    (True, TypeError, "must be a real number, got bool"),
    (-1.0, ValueError, "must be a number >= 0, got -1.0"),
    (float("nan"), ValueError, "must be a finite number, got nan"),
])
def test_local_model_tolerances_are_checked(name, value, error, match):
    with pytest.raises(error, match=f"{name} {match}"):
        theory.local_model(lambda x: -x @ A @ x, Sphere(3), POLE, **{name: value})


@pytest.mark.parametrize("call, name", [
    (lambda v: theory.projection_lr(0.1, v), "radial"),
    (lambda v: theory.reparam_lr(0.1, v), "v_norm"),
])
@pytest.mark.parametrize("value", ["1", b"1", True, ["1", "2"], [True, False]])
def test_strings_and_bools_are_not_parsed_as_numbers(call, name, value):
    with pytest.raises(TypeError, match=f"{name} must be a real number or an array of them"):
        call(value)


def test_arrays_of_numbers_are_taken():
    # eta' = eta / (1 - eta c) and eta / |v|^2, elementwise (closed forms of the docstrings).
    np.testing.assert_allclose(theory.projection_lr(0.5, np.array([-10.0, 0.5])),
                               [0.5 / 6.0, 0.5 / 0.75], rtol=4 * np.finfo(float).eps)
    np.testing.assert_allclose(theory.reparam_lr(0.5, [2, 4]), [0.125, 0.03125],
                               rtol=4 * np.finfo(float).eps)


def test_local_model_names_a_finite_sum_cost():
    X = np.random.default_rng(0).standard_normal((20, 3))

    def cost(x, batch):
        return -np.mean((batch @ x) ** 2)

    with pytest.raises(TypeError, match=r"cost takes 2 required positional arguments \(x, "
                                        r"batch\), but .* calls cost\(x\)"):
        theory.local_model(cost, Sphere(3), POLE)
    # the full cost of the finite sum, as a function of x alone, is what it takes
    model = theory.local_model(lambda x: cost(x, X), Sphere(3),
                               np.linalg.eigh(X.T @ X)[1][:, -1])
    eigenvalues = np.linalg.eigvalsh(X.T @ X / 20)
    # Hessian of -x'Sx on the sphere at the top eigenvector: 2(l_max - l_i), i < max
    np.testing.assert_allclose([model.smallest, model.largest],
                               [2 * (eigenvalues[2] - eigenvalues[1]),
                                2 * (eigenvalues[2] - eigenvalues[0])], rtol=1e-10)
