r"""Dictionary learning with unit-norm atoms: a product of an oblique and a Euclidean space."""

import autograd.numpy as anp
import numpy as np
from scipy.linalg import subspace_angles

from ..manifolds import Euclidean, Oblique, Product
from ..manifolds.base import as_rng
from ._base import Problem

__all__ = ["DictionaryLearning", "dictionary_learning", "dictionary_data"]


class DictionaryLearning(Problem):
    r"""Minimize :math:`\|Y - DC\|_F^2 + \lambda \|C\|_F^2` over unit-norm atoms D and codes C.

    The point is the pair ``(D, C)`` of ``Product([Oblique(m, k), Euclidean(k, N)])``:
    the k atoms (columns of D) are unit vectors of :math:`R^m`, the codes are
    free. Use :func:`dictionary_learning` to build one.

    What is known:

    * with :math:`\lambda = 0`, DC ranges over all matrices of rank at most
      k, so by Eckart-Young the optimal cost is
      :math:`\sum_{i > k} \sigma_i(Y)^2` (:attr:`optimum`), reached exactly
      when the span of the atoms is the span of the top k left singular
      vectors of Y (when :math:`\sigma_k > \sigma_{k+1}` and D has full
      rank). :meth:`distance_to_optimum` is the largest principal angle
      between the two subspaces. For noiseless data Y = D0 C0 of rank k, the
      optimum is 0 and the span of D0 is recovered;
    * the atoms themselves are *not* identifiable from this smooth cost (any
      basis of unit vectors of the right subspace is optimal, not only D0 up
      to signs and permutation; recovering the atoms needs sparse codes);
    * with :math:`\lambda > 0` the optimum is not known in closed form, but
      for fixed D the best codes are the ridge solution
      :math:`(D^\top D + \lambda I)^{-1} D^\top Y` (:meth:`best_codes`).
    """

    name = "dictionary_learning"

    def __init__(self, Y, n_atoms, lam=0.0):
        Y = np.asarray(Y, dtype=np.float64)
        if Y.ndim != 2:
            raise ValueError(f"Y must have shape (n_features, n_samples), got {Y.shape}")
        m, N = Y.shape
        k = int(n_atoms)
        if not 1 <= k <= m:
            raise ValueError(f"n_atoms must be in [1, {m}] (an undercomplete dictionary), got {n_atoms}")
        if not lam >= 0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        self.Y = Y
        self.n_atoms = k
        self.lam = float(lam)
        self.manifold = Product([Oblique(m, k), Euclidean(k, N)])
        U, s, _ = np.linalg.svd(Y, full_matrices=False)
        self.singular_values = s
        self._top = U[:, :k]
        self.optimum = float(np.sum(s[k:] ** 2)) if self.lam == 0.0 else None

    def cost(self, x):
        D, C = x
        R = self.Y - anp.dot(D, C)
        return anp.sum(R * R) + self.lam * anp.sum(C * C)

    def egrad(self, x):
        D, C = x
        R = D @ C - self.Y
        return 2.0 * (R @ C.T), 2.0 * (D.T @ R + self.lam * C)

    def ehess(self, x, u):
        D, C = x
        dD, dC = u
        R = D @ C - self.Y
        dR = dD @ C + D @ dC
        return 2.0 * (dR @ C.T + R @ dC.T), 2.0 * (dD.T @ R + D.T @ dR + self.lam * dC)

    def best_codes(self, D):
        """The codes minimizing the cost for fixed atoms D (least squares / ridge)."""
        if self.lam == 0.0:
            return np.linalg.lstsq(D, self.Y, rcond=None)[0]
        k = D.shape[1]
        return np.linalg.solve(D.T @ D + self.lam * np.eye(k), D.T @ self.Y)

    def x0(self, rng=None, dtype=None):
        """Random unit atoms and their best codes."""
        D = self.manifold.manifolds[0].random_point(as_rng(rng))
        C = self.best_codes(D)
        if dtype is not None:
            D, C = D.astype(dtype), C.astype(dtype)
        return D, C

    def distance_to_optimum(self, x):
        """Largest principal angle between span(D) and the top-k left singular subspace of Y.

        Only meaningful with ``lam = 0``.
        """
        if self.lam != 0.0:
            raise NotImplementedError("the optimum is known only for lam = 0")
        return float(np.max(subspace_angles(np.asarray(x[0], dtype=np.float64), self._top)))


def dictionary_data(n_features, n_atoms, n_samples, noise=0.0, rng=None):
    """Data Y = D0 C0 (+ noise) from random unit atoms D0 and Gaussian codes C0.

    Returns
    -------
    Y : ndarray, shape (n_features, n_samples)
    D0 : ndarray, shape (n_features, n_atoms), unit columns
    C0 : ndarray, shape (n_atoms, n_samples)
    """
    rng = as_rng(rng)
    D0 = rng.standard_normal((n_features, n_atoms))
    D0 /= np.linalg.norm(D0, axis=0)
    C0 = rng.standard_normal((n_atoms, n_samples))
    Y = D0 @ C0 + noise * rng.standard_normal((n_features, n_samples))
    return Y, D0, C0


def dictionary_learning(Y, n_atoms, lam=0.0):
    r"""Dictionary learning with unit-norm atoms, on a product manifold.

    Parameters
    ----------
    Y : (m, N) array_like
        Data, one sample per column.
    n_atoms : int
        The number k <= m of atoms.
    lam : float, default 0
        Ridge weight on the codes.

    Returns
    -------
    DictionaryLearning

    Examples
    --------
    Noiseless data of rank 3: the cost goes to 0 and the span of the atoms
    is recovered.

    >>> from spherenet.problems import dictionary_data, dictionary_learning
    >>> Y, D0, C0 = dictionary_data(6, 3, 40, rng=0)
    >>> P = dictionary_learning(Y, 3)
    >>> res = P.minimize(rng=1)
    >>> P.optimum < 1e-20, bool(res.fun < 1e-12), bool(P.distance_to_optimum(res.x) < 1e-6)
    (True, True, True)
    """
    return DictionaryLearning(Y, n_atoms, lam)
