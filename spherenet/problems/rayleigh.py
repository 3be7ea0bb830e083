r"""Rayleigh quotients: leading eigenvectors on the sphere and on the oblique manifold."""

import autograd.numpy as anp
import numpy as np

from ..manifolds import Oblique, Sphere
from ._base import Problem, angle_to_subspace, as_symmetric, top_eigenspace

__all__ = ["Rayleigh", "BlockRayleigh", "rayleigh", "block_rayleigh"]


class Rayleigh(Problem):
    r"""Minimize :math:`f(x) = -x^\top A x` on the sphere :math:`S^{n-1}`.

    The minimizers are the unit eigenvectors of the largest eigenvalue
    :math:`\lambda_{\max}` of the symmetric A, the optimal cost is
    :math:`-\lambda_{\max}`; both come from ``numpy.linalg.eigh``. Every
    other critical point (another eigenvector) is a saddle or a maximum.

    Use :func:`rayleigh` to build one.

    Attributes
    ----------
    A : ndarray
        The symmetric matrix.
    eigenvalues : ndarray
        Its eigenvalues, ascending.
    optimum : float
        :math:`-\lambda_{\max}`.
    """

    name = "rayleigh"

    def __init__(self, A):
        self.A = as_symmetric(A)
        n = self.A.shape[0]
        self.manifold = Sphere(n)
        self.eigenvalues, self._top = top_eigenspace(self.A)
        self.optimum = -float(self.eigenvalues[-1])

    def cost(self, x):
        return -anp.dot(x, anp.dot(self.A, x))

    def egrad(self, x):
        return -2.0 * (self.A @ x)

    def ehess(self, x, u):
        return -2.0 * (self.A @ u)

    def solution(self):
        """A unit leading eigenvector (its negative is optimal too)."""
        return self._top[:, -1].copy()

    def distance_to_optimum(self, x):
        """Angle between x and the leading eigenspace (0 for -v as for v)."""
        return angle_to_subspace(x, self._top)


def rayleigh(A):
    r"""The Rayleigh quotient problem :math:`\min_{\|x\| = 1} -x^\top A x`.

    Parameters
    ----------
    A : (n, n) array_like
        Symmetric matrix.

    Returns
    -------
    Rayleigh
        ``manifold = Sphere(n)``, closed-form ``egrad = -2 A x`` and
        ``ehess = -2 A u``, ``optimum = -lambda_max(A)``.

    Raises
    ------
    ValueError
        If A is not square and symmetric.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.problems import rayleigh
    >>> P = rayleigh(np.diag([1.0, 3.0, 2.0]))
    >>> res = P.minimize(rng=0)
    >>> bool(abs(res.fun - P.optimum) < 1e-12), bool(P.distance_to_optimum(res.x) < 1e-6)
    (True, True)
    """
    return Rayleigh(A)


class BlockRayleigh(Problem):
    r"""Minimize :math:`-\sum_j x_j^\top A_j x_j` over matrices X with unit-norm columns.

    On the oblique manifold the columns are independent spheres, so the
    problem splits: column j goes to a leading eigenvector of its own
    :math:`A_j`, and the optimal cost is :math:`-\sum_j \lambda_{\max}(A_j)`
    (``k`` times the top eigenvalue when all columns share one matrix).

    Use :func:`block_rayleigh` to build one.

    Attributes
    ----------
    A : ndarray
        Shape (k, n, n): the matrix of every column.
    optimum : float
    """

    name = "block_rayleigh"

    def __init__(self, A, k=None):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim == 2:
            if k is None:
                raise ValueError("give the number of columns k with a single matrix A")
            A = np.broadcast_to(as_symmetric(A), (int(k),) + A.shape)
        elif A.ndim == 3:
            if k is not None and int(k) != A.shape[0]:
                raise ValueError(f"k={k} but A holds {A.shape[0]} matrices")
            A = np.stack([as_symmetric(a, f"A[{j}]") for j, a in enumerate(A)])
        else:
            raise ValueError(f"A must have shape (n, n) or (k, n, n), got {A.shape}")
        self.A = np.ascontiguousarray(A)
        k, n = A.shape[0], A.shape[1]
        self.manifold = Oblique(n, k)
        tops = [top_eigenspace(a) for a in self.A]
        self.top_eigenvalues = np.array([w[-1] for w, _ in tops])
        self._tops = [basis for _, basis in tops]
        self.optimum = -float(np.sum(self.top_eigenvalues))

    def _apply(self, x):
        # column j of the result is A_j x_j
        return anp.einsum("jab,bj->aj", self.A, x)

    def cost(self, x):
        return -anp.sum(x * self._apply(x))

    def egrad(self, x):
        return -2.0 * self._apply(x)

    def ehess(self, x, u):
        return -2.0 * self._apply(u)

    def solution(self):
        """The matrix of leading eigenvectors, one per column."""
        return np.stack([basis[:, -1] for basis in self._tops], axis=1)

    def distance_to_optimum(self, x):
        """Root sum of squares of the columns' angles to their leading eigenspaces."""
        angles = [angle_to_subspace(x[:, j], basis) for j, basis in enumerate(self._tops)]
        return float(np.sqrt(np.sum(np.square(angles))))


def block_rayleigh(A, k=None):
    r"""Independent Rayleigh quotients, one per column, on ``Oblique(n, k)``.

    Parameters
    ----------
    A : (n, n) or (k, n, n) array_like
        One symmetric matrix shared by the k columns (then give ``k``), or
        one per column.
    k : int, optional
        Number of columns, with a single matrix.

    Returns
    -------
    BlockRayleigh
        ``optimum = -sum_j lambda_max(A_j)``.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.problems import block_rayleigh
    >>> P = block_rayleigh(np.stack([np.diag([1.0, 2.0]), np.diag([5.0, 3.0])]))
    >>> P.optimum
    -7.0
    >>> res = P.minimize(rng=0)
    >>> bool(abs(res.fun - P.optimum) < 1e-12)
    True
    """
    return BlockRayleigh(A, k)
