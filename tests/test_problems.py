"""spherenet.problems: every solver reaches the known answer of every problem it suits.

References are independent of the code under test: ``scipy.linalg.eigh``,
closed-form SDP values checked by explicit primal points and dual
certificates, the published Thomson energies (and the closed forms of the
polyhedra behind them), symmetry, Eckart-Young.
"""

import itertools

import autograd
import numpy as np
import pytest
from scipy.linalg import eigh, subspace_angles

from spherenet import Oblique, Sphere
from spherenet.problems import (THOMSON_ENERGIES, block_rayleigh, complete_graph, cut_value,
                                cycle_graph, dictionary_data, dictionary_learning, karcher_mean,
                                laplacian, matched_distance, maxcut, maxcut_certificate,
                                petersen_graph, rayleigh, spherical_clusters, spherical_kmeans,
                                symmetric_points, thomson)

SOLVERS = ("sd", "cg", "trust-regions")


def _symmetric(n, seed):
    B = np.random.default_rng(seed).standard_normal((n, n))
    return (B + B.T) / 2


def _problems():
    Y, _, _ = dictionary_data(6, 3, 20, noise=0.1, rng=5)
    X, labels, _ = spherical_clusters(5, 3, 10, spread=0.05, rng=6)
    points, pole = symmetric_points(4, 0.4, rng=7)
    return {
        "rayleigh": rayleigh(_symmetric(6, 0)),
        "block_rayleigh": block_rayleigh(np.stack([_symmetric(5, s) for s in range(3)])),
        "maxcut": maxcut(petersen_graph()),
        "thomson": thomson(7),
        "karcher": karcher_mean(points, mean=pole),
        "kmeans": spherical_kmeans(X, 3, temperature=0.1, labels=labels),
        "dictionary": dictionary_learning(Y, 3, lam=0.3),
    }


PROBLEMS = _problems()


def _apply(x, fun):
    return tuple(fun(a) for a in x) if isinstance(x, tuple) else fun(x)


def _flat(x):
    return np.concatenate([np.ravel(a) for a in x]) if isinstance(x, tuple) else np.ravel(x)


# --- closed forms against autograd ------------------------------------------------


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_closed_form_derivatives_match_autograd(name):
    P = PROBLEMS[name]
    rng = np.random.default_rng(1)
    # Off the manifold too: the strategies evaluate the cost there.
    x = _apply(P.x0(rng), lambda a: a * 1.3 + 0.05 * rng.standard_normal(a.shape))
    u = _apply(x, lambda a: rng.standard_normal(a.shape))
    g = autograd.grad(P.cost)(x)
    np.testing.assert_allclose(_flat(P.egrad(x)), _flat(g), rtol=1e-10,
                               atol=1e-12 * np.max(np.abs(_flat(g))))
    if P.ehess is not None:
        h = autograd.make_vjp(autograd.grad(P.cost))(x)[0](u)
        np.testing.assert_allclose(_flat(P.ehess(x, u)), _flat(h), rtol=1e-9,
                                   atol=1e-11 * np.max(np.abs(_flat(h))))


@pytest.mark.parametrize("name", sorted(PROBLEMS))
def test_x0_is_on_the_manifold_and_keeps_the_dtype(name):
    P = PROBLEMS[name]
    P.manifold.check_point(P.x0(0))
    x = P.x0(0, dtype=np.float32)
    assert all(a.dtype == np.float32 for a in (x if isinstance(x, tuple) else (x,)))


# --- Rayleigh quotients --------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 50])
@pytest.mark.parametrize("method", SOLVERS)
def test_rayleigh_reaches_the_leading_eigenvector(method, n):
    A = _symmetric(n, n)
    w, V = eigh(A)
    P = rayleigh(A)
    res = P.minimize(method=method, rng=1, maxiter=2000)
    assert res.success, res.message
    np.testing.assert_allclose(res.fun, -w[-1], rtol=1e-11)
    # gap-aware: gradient norm 1e-6 leaves an angle of about 1e-6 / (2 gap)
    gap = w[-1] - w[-2]
    assert min(np.linalg.norm(res.x - V[:, -1]), np.linalg.norm(res.x + V[:, -1])) < 1e-6 / gap
    assert P.distance_to_optimum(res.x) < 1e-6 / gap


def test_rayleigh_distance_handles_a_repeated_top_eigenvalue():
    P = rayleigh(np.diag([1.0, 3.0, 3.0]))
    x = np.array([0.0, 0.6, -0.8])  # in the top eigenspace, far from any one eigenvector
    assert P.distance_to_optimum(x) == 0.0
    np.testing.assert_allclose(P.distance_to_optimum(np.array([1.0, 1.0, 0.0]) / np.sqrt(2)),
                               np.pi / 4, rtol=1e-15)


@pytest.mark.parametrize("method", ["cg", "trust-regions"])
def test_block_rayleigh_per_column_and_shared_matrix(method):
    mats = np.stack([_symmetric(8, s) for s in range(4)])
    P = block_rayleigh(mats)
    res = P.minimize(method=method, rng=2)
    np.testing.assert_allclose(res.fun, -sum(eigh(a, eigvals_only=True)[-1] for a in mats),
                               rtol=1e-11)
    assert P.distance_to_optimum(res.x) < 1e-5
    shared = block_rayleigh(mats[0], k=3)
    res = shared.minimize(method=method, rng=3)
    np.testing.assert_allclose(res.fun, -3 * eigh(mats[0], eigvals_only=True)[-1], rtol=1e-11)


def test_rayleigh_rejects_bad_matrices():
    with pytest.raises(ValueError, match="symmetric"):
        rayleigh(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        rayleigh(np.ones((2, 3)))
    with pytest.raises(ValueError, match="k"):
        block_rayleigh(np.eye(3))


# --- Max-Cut ---------------------------------------------------------------------------


def _odd_cycle_value(n):
    return n / 2 * (1 + np.cos(np.pi / n))


GRAPHS = [
    pytest.param(cycle_graph(5), _odd_cycle_value(5), id="C5"),
    pytest.param(cycle_graph(7), _odd_cycle_value(7), id="C7"),
    pytest.param(cycle_graph(6), 6.0, id="C6"),
    pytest.param(cycle_graph(8), 8.0, id="C8"),
    pytest.param(complete_graph(5), 25 / 4, id="K5"),
    pytest.param(complete_graph(6), 36 / 4, id="K6"),
    pytest.param(petersen_graph(), 12.5, id="Petersen"),
]


def _brute_force_maxcut(W):
    n = W.shape[0]
    return max(cut_value(W, (1,) + s) for s in itertools.product((1, -1), repeat=n - 1))


def test_sdp_values_are_certified_by_explicit_primal_and_dual_points():
    # Odd cycle: consecutive vertices at angle pi (n - 1) / n in the plane.
    for n in (3, 5, 7, 9):
        angles = np.pi * (n - 1) / n * np.arange(n)
        Y = np.stack([np.cos(angles), np.sin(angles)])
        primal, bound = maxcut_certificate(laplacian(cycle_graph(n)), Y)
        np.testing.assert_allclose([primal, bound], _odd_cycle_value(n), rtol=1e-14)
    # Even cycle: the bipartition (rank 1), value n.
    for n in (4, 6, 8):
        Y = np.array([[(-1.0) ** i for i in range(n)]])
        np.testing.assert_allclose(maxcut_certificate(laplacian(cycle_graph(n)), Y), n, rtol=1e-14)
    # K_n: the vertices of a regular simplex, value n^2/4.
    for n in (3, 4, 5):
        simplex = np.eye(n) - 1.0 / n
        Y = simplex / np.linalg.norm(simplex, axis=0)
        np.testing.assert_allclose(maxcut_certificate(laplacian(complete_graph(n)), Y),
                                   n * n / 4, rtol=1e-14)
    # Vertex-transitive graphs: the constant dual y = lambda_max(L)/4 is optimal.
    L = laplacian(petersen_graph())
    np.testing.assert_allclose(10 * eigh(L, eigvals_only=True)[-1] / 4, 12.5, rtol=1e-14)


@pytest.mark.parametrize("W, value", GRAPHS)
def test_maxcut_burer_monteiro_reaches_the_sdp_value(W, value):
    P = maxcut(W, sdp_value=value)
    res = P.minimize(method="trust-regions", rng=0, gtol=1e-10)
    assert res.success, res.message
    np.testing.assert_allclose(-res.fun, value, rtol=1e-12)
    primal, bound = P.certificate(res.x)
    np.testing.assert_allclose(primal, value, rtol=1e-12)
    assert value - 1e-12 * value <= bound <= value + 1e-8
    # Rounding gives a cut no larger than the maximum cut, and the SDP bounds both.
    best = _brute_force_maxcut(W)
    signs, cut = P.round(res.x, rng=0)
    assert cut == cut_value(W, signs) <= best <= value + 1e-12
    assert cut >= 0.878 * value


@pytest.mark.parametrize("method", ["sd", "cg"])
def test_maxcut_first_order_solvers(method):
    P = maxcut(cycle_graph(7), sdp_value=_odd_cycle_value(7))
    res = P.minimize(method=method, rng=1, maxiter=3000)
    assert res.success, res.message
    primal, bound = P.certificate(res.x)
    np.testing.assert_allclose(primal, P.sdp_value, rtol=1e-10)
    assert bound - primal < 1e-5


def test_maxcut_certificate_bounds_from_any_point_and_exposes_a_suboptimal_one():
    W = cycle_graph(5)
    L = laplacian(W)
    for seed in range(5):
        Y = Oblique(3, 5).random_point(seed)
        primal, bound = maxcut_certificate(L, Y)
        assert primal <= _odd_cycle_value(5) + 1e-12 <= bound + 2e-12
    # Rank 1: the best cut (4 of 5 edges) is a critical point of the rank-1
    # problem, but not optimal for the SDP: the certificate says so.
    Y = np.array([[1.0, -1.0, 1.0, -1.0, -1.0]])
    primal, bound = maxcut_certificate(L, Y)
    assert primal == 4.0 and bound > _odd_cycle_value(5) + 0.1


# --- Thomson ---------------------------------------------------------------------------


def test_published_thomson_energies_match_their_polyhedra():
    a = 4 / np.sqrt(10 + 2 * np.sqrt(5))  # icosahedron edge, circumradius 1
    golden = (1 + np.sqrt(5)) / 2
    closed = {
        2: 0.5,
        3: np.sqrt(3),
        4: 6 / np.sqrt(8 / 3),
        5: 3 / np.sqrt(3) + 6 / np.sqrt(2) + 0.5,
        6: 12 / np.sqrt(2) + 3 / 2,
        12: 6 * (5 / a + 5 / (golden * a) + 0.5),
    }
    for n, value in closed.items():
        np.testing.assert_allclose(THOMSON_ENERGIES[n], value, rtol=0, atol=5e-10)


def _best_of(P, method, restarts, **options):
    best = None
    for seed in range(restarts):
        res = P.minimize(method=method, rng=seed, **options)
        if best is None or res.fun < best.fun:
            best = res
        if abs(best.fun - P.optimum) <= 5e-10:
            break
    return best


@pytest.mark.parametrize("n", [4, 5, 6, 12])
@pytest.mark.parametrize("method", ["trust-regions", "cg"])
def test_thomson_reaches_the_published_energy(method, n):
    P = thomson(n)
    res = _best_of(P, method, restarts=5, gtol=1e-8, maxiter=2000)
    np.testing.assert_allclose(res.fun, THOMSON_ENERGIES[n], rtol=1e-6)
    assert abs(res.fun - THOMSON_ENERGIES[n]) <= 5e-10
    assert np.allclose(np.linalg.norm(res.x, axis=0), 1.0, rtol=0, atol=1e-14)


def test_thomson_table_is_reproduced_for_every_n():
    for n in THOMSON_ENERGIES:
        res = _best_of(thomson(n), "trust-regions", restarts=6, gtol=1e-10)
        # the table has 9 decimals
        np.testing.assert_allclose(res.fun, THOMSON_ENERGIES[n], rtol=0, atol=5e-10)


def test_trust_regions_reach_a_tiny_gtol_on_thomson():
    # Regression: near the optimum, tCG can return a step whose model decrease
    # is negative by rounding; trust regions used to reject it forever without
    # shrinking the radius, and ran to maxiter.
    for n, seed in itertools.product((5, 8, 10), range(6)):
        res = thomson(n).minimize(method="trust-regions", rng=seed, gtol=1e-10, maxiter=200)
        assert res.success and res.nit < 60, (n, seed, res.nit, res.message)


# --- Karcher mean -------------------------------------------------------------------------


@pytest.mark.parametrize("method", SOLVERS)
@pytest.mark.parametrize("n, angle", [(3, 0.3), (6, 1.0), (10, 1.4)])
def test_karcher_mean_of_symmetric_points_is_the_pole(method, n, angle):
    points, pole = symmetric_points(n, angle, rng=n)
    P = karcher_mean(points, mean=pole)
    np.testing.assert_allclose(P.optimum, (n - 1) * angle**2, rtol=1e-13)
    # First-order optimality at the pole, by symmetry: the logs cancel.
    assert np.linalg.norm(P.logs(pole).sum(axis=1)) < 1e-14 * len(points)
    res = P.minimize(method=method, rng=0)
    assert res.success, res.message
    assert P.distance_to_optimum(res.x) < 1e-6
    assert np.linalg.norm(P.logs(res.x).sum(axis=1)) <= 1e-6
    np.testing.assert_allclose(res.fun, P.optimum, rtol=1e-10)


def test_weighted_karcher_mean_of_two_points_divides_the_geodesic():
    S = Sphere(4)
    p, q = S.random_point(0), S.random_point(1)
    for w in (0.5, 0.2, 0.9):
        # The minimizer of (1-w) d(x,p)^2 + w d(x,q)^2 on the geodesic is at fraction w.
        expected = S.exp(p, w * S.log(p, q))
        P = karcher_mean(np.stack([p, q]), weights=[1 - w, w], mean=expected)
        res = P.minimize(method="trust-regions", rng=2)
        assert res.success, res.message
        assert P.distance_to_optimum(res.x) < 1e-8


# --- spherical k-means ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cg", "trust-regions"])
def test_spherical_kmeans_finds_the_clusters(method):
    X, labels, directions = spherical_clusters(10, 4, 50, spread=0.05, rng=0)
    P = spherical_kmeans(X, 4, temperature=0.01, labels=labels)
    res = P.minimize(method=method, rng=0, gtol=1e-5)
    # the smooth minimizer is within exp(-gap / temperature) of the hard one
    assert P.distance_to_optimum(res.x) < 1e-6
    # and the cluster means are within the noise of the true directions
    assert matched_distance(res.x, directions) < 0.1
    found = P.assign(res.x)
    assert len(set(zip(found, labels))) == 4  # the same partition, up to relabelling


def test_spherical_lloyd_iterations_agree():
    X, labels, _ = spherical_clusters(10, 4, 50, spread=0.05, rng=0)
    P = spherical_kmeans(X, 4, labels=labels)
    C, found, n_iter = P.lloyd(P.x0(1))
    assert n_iter < 10
    assert P.distance_to_optimum(C) < 1e-14


# --- dictionary learning ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["cg", "trust-regions"])
def test_dictionary_learning_noiseless_recovers_the_span(method):
    Y, D0, _ = dictionary_data(8, 4, 100, rng=10)
    P = dictionary_learning(Y, 4)
    assert P.optimum < 1e-20 * np.sum(Y**2)
    res = P.minimize(method=method, rng=11, maxiter=3000)
    assert res.success, res.message
    assert res.fun < 1e-12 * np.sum(Y**2)
    assert np.max(subspace_angles(res.x[0], D0)) < 1e-6
    assert P.distance_to_optimum(res.x) < 1e-6
    np.testing.assert_allclose(np.linalg.norm(res.x[0], axis=0), 1.0, rtol=0, atol=1e-14)


def test_dictionary_learning_noisy_reaches_eckart_young():
    Y, _, _ = dictionary_data(8, 3, 60, noise=0.2, rng=12)
    P = dictionary_learning(Y, 3)
    s = np.linalg.svd(Y, compute_uv=False)
    np.testing.assert_allclose(P.optimum, np.sum(s[3:] ** 2), rtol=1e-14)
    res = P.minimize(method="trust-regions", rng=13)
    assert res.success, res.message
    np.testing.assert_allclose(res.fun, P.optimum, rtol=1e-10)


def test_dictionary_learning_ridge_codes_are_optimal_for_their_atoms():
    Y, _, _ = dictionary_data(8, 3, 60, noise=0.2, rng=14)
    P = dictionary_learning(Y, 3, lam=0.5)
    assert P.optimum is None
    res = P.minimize(method="trust-regions", rng=15)
    assert res.success, res.message
    D, C = res.x
    np.testing.assert_allclose(C, P.best_codes(D), rtol=1e-6, atol=1e-8)
    with pytest.raises(NotImplementedError):
        P.distance_to_optimum(res.x)
