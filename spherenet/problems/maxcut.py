r"""The Max-Cut semidefinite relaxation, solved by Burer-Monteiro on the oblique manifold."""

import math

import autograd.numpy as anp
import numpy as np

from ..manifolds import Oblique
from ..manifolds.base import as_rng
from ._base import Problem, as_symmetric

__all__ = [
    "MaxCut",
    "maxcut",
    "maxcut_certificate",
    "laplacian",
    "cycle_graph",
    "complete_graph",
    "petersen_graph",
    "cut_value",
]


def laplacian(W):
    """The graph Laplacian L = Diag(W 1) - W of a symmetric weight matrix.

    Examples
    --------
    >>> laplacian(complete_graph(3))
    array([[ 2., -1., -1.],
           [-1.,  2., -1.],
           [-1., -1.,  2.]])
    """
    W = as_symmetric(W, "W")
    if np.any(np.diag(W) != 0.0):
        raise ValueError("W must have a zero diagonal (no self-loops)")
    return np.diag(W.sum(axis=1)) - W


def cycle_graph(n):
    """Adjacency matrix of the cycle C_n (n >= 3)."""
    if n < 3:
        raise ValueError(f"a cycle needs n >= 3 vertices, got {n}")
    W = np.zeros((n, n))
    i = np.arange(n)
    W[i, (i + 1) % n] = W[(i + 1) % n, i] = 1.0
    return W


def complete_graph(n):
    """Adjacency matrix of the complete graph K_n."""
    return np.ones((n, n)) - np.eye(n)


def petersen_graph():
    """Adjacency matrix of the Petersen graph (10 vertices, 15 edges, 3-regular)."""
    W = np.zeros((10, 10))
    for i in range(5):
        for a, b in ((i, (i + 1) % 5), (i, i + 5), (5 + i, 5 + (i + 2) % 5)):
            W[a, b] = W[b, a] = 1.0
    return W


def cut_value(W, signs):
    """Total weight of the edges between the vertices of sign +1 and of sign -1."""
    signs = np.where(np.asarray(signs) >= 0, 1.0, -1.0)
    return float(0.25 * np.sum(np.asarray(W) * (1.0 - np.outer(signs, signs))))


def maxcut_certificate(L, Y):
    r"""A primal value and a certified upper bound of the Max-Cut SDP at Y.

    The SDP is :math:`\max \langle C, X\rangle` s.t. :math:`\operatorname{diag}(X) = 1`,
    :math:`X \succeq 0`, with :math:`C = L/4`; its dual is
    :math:`\min \sum_i y_i` s.t. :math:`\operatorname{Diag}(y) - C \succeq 0`.

    From the columns of Y (normalized, so that :math:`X = Y^\top Y` is
    feasible) the primal value is :math:`\langle C, X\rangle`. The dual
    candidate is the Lagrange multiplier of the Burer-Monteiro problem,
    :math:`y_i = (X C)_{ii}` (so :math:`\sum_i y_i` equals the primal value),
    shifted by :math:`\max(0, -\lambda_{\min}(S))` with
    :math:`S = \operatorname{Diag}(y) - C` to make it dual feasible. Whatever
    Y is, the bound is a valid upper bound on the SDP value (up to the
    rounding of one symmetric eigenvalue problem); it equals the primal value
    exactly when S is positive semidefinite, i.e. when Y is a global optimum
    (Boumal, Voroninski & Bandeira 2016).

    Parameters
    ----------
    L : (n, n) array_like
        Graph Laplacian.
    Y : (p, n) array_like
        One column per vertex.

    Returns
    -------
    primal : float
        :math:`\langle L/4, Y^\top Y\rangle` with unit columns; at most the SDP value.
    dual_bound : float
        An upper bound on the SDP value.

    Examples
    --------
    The complete graph K_4: four unit vectors summing to zero reach n^2/4 = 4.

    >>> import numpy as np
    >>> Y = np.array([[1, 1, -1, -1], [1, -1, 1, -1], [1, -1, -1, 1]]) / np.sqrt(3)
    >>> primal, bound = maxcut_certificate(laplacian(complete_graph(4)), Y)
    >>> round(primal, 12), round(bound, 12)
    (4.0, 4.0)
    """
    C = 0.25 * as_symmetric(L, "L")
    Y = np.asarray(Y, dtype=np.float64)
    Y = Y / np.linalg.norm(Y, axis=0)
    X = Y.T @ Y
    primal = float(np.sum(C * X))
    y = np.einsum("ij,ji->i", X, C)
    lam_min = float(np.linalg.eigvalsh(np.diag(y) - C)[0])
    bound = float(np.sum(y)) + C.shape[0] * max(0.0, -lam_min)
    return primal, bound


class MaxCut(Problem):
    r"""The Burer-Monteiro factorization of the Max-Cut SDP on ``Oblique(p, n)``.

    Minimize :math:`f(Y) = -\tfrac14 \langle L, Y^\top Y\rangle
    = -\tfrac14 \sum_{ij} L_{ij} \langle y_i, y_j\rangle` over Y whose n
    columns (one per vertex) are unit vectors of :math:`R^p`: minus the SDP
    value when Y is optimal. With :math:`p(p+1)/2 > n` second-order critical
    points are global optima for generic costs (Boumal, Voroninski & Bandeira
    2016); the default rank is the smallest such p.

    Use :func:`maxcut` to build one.

    Attributes
    ----------
    W, L : ndarray
        Weights and Laplacian.
    sdp_value : float or None
        The SDP value, when given.
    optimum : float or None
        ``-sdp_value``.
    """

    name = "maxcut"

    def __init__(self, W, rank=None, sdp_value=None):
        self.W = as_symmetric(W, "W")
        self.L = laplacian(self.W)
        n = self.L.shape[0]
        p = int(math.floor(math.sqrt(2 * n))) + 1 if rank is None else int(rank)
        if p < 1:
            raise ValueError(f"rank must be >= 1, got {rank}")
        self._C = 0.25 * self.L
        self.manifold = Oblique(p, n)
        self.sdp_value = None if sdp_value is None else float(sdp_value)
        self.optimum = None if sdp_value is None else -float(sdp_value)

    def cost(self, Y):
        return -anp.sum(Y * anp.dot(Y, self._C))

    def egrad(self, Y):
        return -2.0 * (Y @ self._C)

    def ehess(self, Y, U):
        return -2.0 * (U @ self._C)

    def certificate(self, Y):
        """``(primal value, certified upper bound)``: see :func:`maxcut_certificate`."""
        return maxcut_certificate(self.L, Y)

    def round(self, Y, rng=None, trials=10):
        """Goemans-Williamson hyperplane rounding: the best of ``trials`` random cuts.

        Returns
        -------
        signs : ndarray of +1/-1
        value : float
            The weight of the cut.
        """
        rng = as_rng(rng)
        best = (None, -np.inf)
        for _ in range(int(trials)):
            signs = np.where(rng.standard_normal(Y.shape[0]) @ Y >= 0.0, 1.0, -1.0)
            value = cut_value(self.W, signs)
            if value > best[1]:
                best = (signs, value)
        return best


def maxcut(W, rank=None, sdp_value=None):
    r"""The Max-Cut SDP relaxation of a graph, in Burer-Monteiro form.

    Parameters
    ----------
    W : (n, n) array_like
        Symmetric non-negative weights with a zero diagonal (an adjacency matrix).
    rank : int, optional
        The number p of rows of Y; default the smallest p with p(p+1)/2 > n.
    sdp_value : float, optional
        The SDP value when it is known; sets ``optimum = -sdp_value``. For a
        vertex-transitive graph it is :math:`n \lambda_{\max}(L)/4` (the dual
        can be averaged over the automorphisms, so a constant y is optimal):
        :math:`n^2/4` for :math:`K_n`, n for an even cycle,
        :math:`\tfrac n2 (1 + \cos(\pi/n))` for an odd cycle, 12.5 for the
        Petersen graph. :func:`maxcut_certificate` checks any value.

    Returns
    -------
    MaxCut

    References
    ----------
    M. X. Goemans, D. P. Williamson, "Improved approximation algorithms for
    maximum cut and satisfiability problems using semidefinite programming",
    J. ACM 42 (1995). N. Boumal, V. Voroninski, A. S. Bandeira, "The
    non-convex Burer-Monteiro approach works on smooth semidefinite
    programs", NeurIPS 2016.

    Examples
    --------
    The 5-cycle: its cut is at most 4, its SDP value is 2.5 (1 + cos(pi/5)).

    >>> import numpy as np
    >>> from spherenet.problems import maxcut, cycle_graph
    >>> P = maxcut(cycle_graph(5), sdp_value=2.5 * (1 + np.cos(np.pi / 5)))
    >>> res = P.minimize(rng=0, gtol=1e-10)
    >>> primal, bound = P.certificate(res.x)
    >>> bool(abs(primal - P.sdp_value) < 1e-10 and abs(bound - primal) < 1e-8)
    True
    >>> P.round(res.x, rng=0)[1]
    4.0
    """
    return MaxCut(W, rank, sdp_value)
