r"""Spherical k-means: centroids on the oblique manifold, cosine similarity."""

import autograd.numpy as anp
import numpy as np
from autograd.scipy.special import logsumexp
from scipy.optimize import linear_sum_assignment

from ..manifolds import Oblique
from ..manifolds.base import as_rng
from ._base import Problem

__all__ = ["SphericalKMeans", "spherical_kmeans", "spherical_clusters", "matched_distance"]


def _unit_rows(X):
    X = np.asarray(X, dtype=np.float64)
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def _normalized_means(X, labels, k):
    sums = np.zeros((X.shape[1], k))
    np.add.at(sums.T, labels, X)
    norms = np.linalg.norm(sums, axis=0)
    if np.any(norms == 0.0):
        raise ValueError("a cluster is empty or its points sum to zero")
    return sums / norms


class SphericalKMeans(Problem):
    r"""Spherical k-means as a smooth problem on ``Oblique(d, k)``.

    The k centroids are the unit columns of C; the data are unit rows
    :math:`x_i`. The hard objective :math:`-\sum_i \max_j \langle x_i, c_j\rangle`
    (minus the total cosine similarity of every point to its nearest
    centroid) is smoothed with a temperature :math:`\tau`:

    .. math::

        f(C) = -\tau \sum_i \log \sum_j e^{\langle x_i, c_j\rangle / \tau},

    which tends to the hard objective as :math:`\tau \to 0`. Its gradient is
    :math:`-X^\top R` with :math:`R` the soft assignments (a row-wise softmax).
    :meth:`lloyd` runs the classical alternation instead (assign to the
    nearest centroid, then normalize the cluster sums; Dhillon & Modha 2001).

    For well-separated clusters with known labels, the minimizer of the hard
    objective is the normalized mean of every cluster (:meth:`solution`); the
    smooth minimizer differs from it by :math:`O(e^{-\text{gap}/\tau})`, where
    gap is the margin of cosine similarity between a point's own centroid
    and the others. Centroids are defined up to a permutation, which
    :meth:`distance_to_optimum` takes into account.

    Use :func:`spherical_kmeans` to build one.
    """

    name = "spherical_kmeans"

    def __init__(self, X, n_clusters, temperature=0.05, labels=None):
        X = _unit_rows(X)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (n_samples, n_features), got {X.shape}")
        k = int(n_clusters)
        if not 1 <= k <= X.shape[0]:
            raise ValueError(f"n_clusters must be in [1, {X.shape[0]}], got {n_clusters}")
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature}")
        self.X = X
        self.n_clusters = k
        self.temperature = float(temperature)
        self.manifold = Oblique(X.shape[1], k)
        self.labels = None if labels is None else np.asarray(labels)
        self._solution = None if labels is None else _normalized_means(X, self.labels, k)

    def cost(self, C):
        tau = self.temperature
        return -tau * anp.sum(logsumexp(anp.dot(self.X, C) / tau, axis=1))

    def _soft(self, C):
        S = (self.X @ C) / self.temperature
        S = S - S.max(axis=1, keepdims=True)
        R = np.exp(S)
        return R / R.sum(axis=1, keepdims=True)

    def egrad(self, C):
        return -(self.X.T @ self._soft(C))

    def ehess(self, C, U):
        R = self._soft(C)
        dS = (self.X @ U) / self.temperature
        dR = R * (dS - np.sum(R * dS, axis=1, keepdims=True))
        return -(self.X.T @ dR)

    def assign(self, C):
        """The index of the nearest centroid (largest cosine) of every point."""
        return np.argmax(self.X @ C, axis=1)

    def x0(self, rng=None, dtype=None):
        """Farthest-point seeding: a random data point, then repeatedly the
        point least similar to the centroids chosen so far."""
        rng = as_rng(rng)
        chosen = [int(rng.integers(self.X.shape[0]))]
        for _ in range(1, self.n_clusters):
            similarity = np.max(self.X @ self.X[chosen].T, axis=1)
            chosen.append(int(np.argmin(similarity)))
        C = self.X[chosen].T.copy()
        return C if dtype is None else C.astype(dtype)

    def lloyd(self, C, maxiter=100):
        """Spherical Lloyd iterations from C: returns ``(C, labels, n_iter)``."""
        labels = self.assign(C)
        for it in range(1, int(maxiter) + 1):
            C = _normalized_means(self.X, labels, self.n_clusters)
            new = self.assign(C)
            if np.array_equal(new, labels):
                return C, labels, it
            labels = new
        return C, labels, int(maxiter)

    def solution(self):
        """The normalized means of the labelled clusters (None without labels)."""
        return None if self._solution is None else self._solution.copy()

    def distance_to_optimum(self, C):
        """Geodesic distance to :meth:`solution` under the best matching of centroids."""
        sol = self.solution()
        if sol is None:
            raise NotImplementedError(f"no labels were given to {self!r}")
        return matched_distance(C, sol)


def matched_distance(C, D):
    """Root sum of squared angles between the columns of C and D, best permutation."""
    C = C / np.linalg.norm(C, axis=0)
    D = D / np.linalg.norm(D, axis=0)
    # squared angles, from the chord: accurate for near columns
    chord = np.linalg.norm(C[:, :, None] - D[:, None, :], axis=0)
    angles = 2.0 * np.arcsin(np.minimum(chord / 2.0, 1.0))
    rows, cols = linear_sum_assignment(angles**2)
    return float(np.sqrt(np.sum(angles[rows, cols] ** 2)))


def spherical_clusters(n_features, n_clusters, n_per_cluster, spread=0.1, rng=None):
    r"""Unit vectors scattered around random directions: data with a known clustering.

    Parameters
    ----------
    n_features, n_clusters, n_per_cluster : int
    spread : float
        Standard deviation of the Gaussian noise added to the direction
        before normalizing; every point is about ``spread * sqrt(d)``
        radians from its direction.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    X : ndarray, shape (n_clusters * n_per_cluster, n_features)
    labels : ndarray of int
    directions : ndarray, shape (n_features, n_clusters)
        The unit directions, one per column.
    """
    rng = as_rng(rng)
    directions = rng.standard_normal((n_features, n_clusters))
    directions /= np.linalg.norm(directions, axis=0)
    labels = np.repeat(np.arange(n_clusters), n_per_cluster)
    X = directions[:, labels].T + spread * rng.standard_normal((labels.size, n_features))
    return _unit_rows(X), labels, directions


def spherical_kmeans(X, n_clusters, temperature=0.05, labels=None):
    r"""The (smoothed) spherical k-means problem on the unit rows of X.

    Parameters
    ----------
    X : (n_samples, n_features) array_like
        Data; rows are normalized.
    n_clusters : int
    temperature : float, default 0.05
        Smoothing of the max over centroids; smaller is closer to k-means.
    labels : array_like of int, optional
        A known clustering; then :meth:`~SphericalKMeans.solution` is the
        normalized means of its clusters.

    Returns
    -------
    SphericalKMeans

    References
    ----------
    I. S. Dhillon, D. S. Modha, "Concept decompositions for large sparse
    text data using clustering", Machine Learning 42 (2001).

    Examples
    --------
    >>> from spherenet.problems import spherical_clusters, spherical_kmeans
    >>> X, labels, directions = spherical_clusters(5, 3, 40, spread=0.05, rng=0)
    >>> P = spherical_kmeans(X, 3, temperature=0.02, labels=labels)
    >>> res = P.minimize(rng=0)
    >>> bool(P.distance_to_optimum(res.x) < 1e-6)
    True
    """
    return SphericalKMeans(X, n_clusters, temperature, labels)
