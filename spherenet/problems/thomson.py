r"""The Thomson problem: N unit charges on the sphere S^2 at minimal Coulomb energy."""

import autograd.numpy as anp
import numpy as np

from ..manifolds import Oblique
from ._base import Problem

__all__ = ["Thomson", "thomson", "riesz_energy", "THOMSON_ENERGIES"]

#: Minimal energies :math:`\sum_{i<j} 1/\|x_i - x_j\|` of N points on the unit
#: sphere, as tabulated to 9 decimals (Wikipedia, "Thomson problem"). N = 2, 3,
#: 4, 5, 6, 12 have closed forms (antipodes, equilateral triangle,
#: tetrahedron, triangular bipyramid, octahedron, icosahedron) that the tests
#: recompute; N = 7 to 10 are reproduced to the table's rounding (5e-10) by
#: the tests' random restarts. (N = 11 is left out: the value at hand was not
#: reproduced to its last digits.)
THOMSON_ENERGIES = {
    2: 0.500000000,
    3: 1.732050808,
    4: 3.674234614,
    5: 6.474691495,
    6: 9.985281374,
    7: 14.452977414,
    8: 19.675287861,
    9: 25.759986531,
    10: 32.716949460,
    12: 49.165253058,
}


def riesz_energy(X, s=1.0):
    r"""The Riesz s-energy :math:`\sum_{i<j} \|x_i - x_j\|^{-s}` of the columns of X.

    With s = 1 it is the Coulomb energy of the Thomson problem (the cost of
    :class:`Thomson`, for points of any dimension); it is also the
    hyperspherical energy of the columns of a unit-norm kernel (Liu et al.
    2018). Written with autograd primitives, so it can be differentiated.

    Parameters
    ----------
    X : ndarray, shape (d, N)
        N points of R^d as columns (on the unit sphere for the Thomson problem).
    s : float, default 1
        Positive exponent.

    Returns
    -------
    scalar of X's dtype

    Notes
    -----
    The pairwise differences are formed explicitly (d * N^2 numbers), not
    from the Gram matrix: :math:`\|x_i\|^2 + \|x_j\|^2 - 2 x_i^T x_j` loses
    all accuracy for nearby points, whose terms dominate the energy.

    Examples
    --------
    Two antipodal points are 2 apart:

    >>> import numpy as np
    >>> float(riesz_energy(np.array([[1.0, -1.0], [0.0, 0.0]])))
    0.5
    """
    n = X.shape[1]
    dtype = X.dtype
    diff = X[:, :, None] - X[:, None, :]
    # + I keeps the (masked-out) diagonal away from sqrt(0), whose
    # derivative autograd would turn into NaN.
    r2 = anp.sum(diff * diff, axis=0) + np.eye(n, dtype=dtype)
    upper = np.triu(np.ones((n, n), dtype=dtype), k=1)
    if s == 1.0:
        return anp.sum(upper / anp.sqrt(r2))
    return anp.sum(upper * r2 ** dtype.type(-0.5 * s))


class Thomson(Problem):
    r"""Minimize the Coulomb energy :math:`E(X) = \sum_{i<j} \|x_i - x_j\|^{-1}` on ``Oblique(3, N)``.

    The columns of X are the N points of :math:`S^2`. The optimum is only
    known numerically (and to be the global one only for small N); it is
    invariant under rotations and permutations of the points, so there is no
    single :meth:`solution`.

    Use :func:`thomson` to build one.

    Attributes
    ----------
    n_points : int
    optimum : float or None
        From :data:`THOMSON_ENERGIES` when N is in the table.

    Notes
    -----
    With :math:`r_{ij} = \|x_i - x_j\|` and :math:`w_{ij} = r_{ij}^{-3}`
    (:math:`w_{ii} = 0`), the Euclidean gradient is
    :math:`\nabla_i E = -\sum_j w_{ij}(x_i - x_j)`, i.e.
    :math:`\nabla E = X W - X \operatorname{Diag}(W 1)`, and its derivative
    along U adds :math:`\dot w_{ij} = -3 r_{ij}^{-5}\langle x_i - x_j, u_i - u_j\rangle`.
    """

    name = "thomson"

    def __init__(self, n_points):
        n_points = int(n_points)
        if n_points < 2:
            raise ValueError(f"the Thomson problem needs at least 2 points, got {n_points}")
        self.n_points = n_points
        self.manifold = Oblique(3, n_points)
        self.optimum = THOMSON_ENERGIES.get(n_points)
        self._upper = np.triu(np.ones((n_points, n_points)), k=1)
        self._eye = np.eye(n_points)

    def cost(self, X):
        return riesz_energy(X)

    def _weights(self, X):
        diff = X[:, :, None] - X[:, None, :]
        r2 = np.einsum("kij,kij->ij", diff, diff) + self._eye
        w = r2 ** -1.5
        np.fill_diagonal(w, 0.0)
        return diff, r2, w

    def egrad(self, X):
        _, _, w = self._weights(X)
        return X @ w - X * w.sum(axis=0)

    def ehess(self, X, U):
        diff, r2, w = self._weights(X)
        # <x_i - x_j, u_i - u_j>
        dot = np.einsum("kij,kij->ij", diff, U[:, :, None] - U[:, None, :])
        dw = -3.0 * dot * r2 ** -2.5
        np.fill_diagonal(dw, 0.0)
        return U @ w - U * w.sum(axis=0) + X @ dw - X * dw.sum(axis=0)

    def energy(self, X):
        """The energy of the points (the cost), as a float."""
        return float(self.cost(np.asarray(X, dtype=np.float64)))


def thomson(n_points):
    r"""The Thomson problem for ``n_points`` charges on the unit sphere of R^3.

    Parameters
    ----------
    n_points : int
        N >= 2.

    Returns
    -------
    Thomson
        ``manifold = Oblique(3, N)``, closed-form gradient and Hessian, and
        ``optimum`` from :data:`THOMSON_ENERGIES` (None for N beyond it).

    References
    ----------
    J. J. Thomson, "On the structure of the atom", Philosophical Magazine 7
    (1904). Wikipedia, "Thomson problem" (table of minimal energies).

    Examples
    --------
    Four charges form a regular tetrahedron, of energy 6 / sqrt(8/3):

    >>> import numpy as np
    >>> from spherenet.problems import thomson
    >>> P = thomson(4)
    >>> res = P.minimize(rng=0)
    >>> bool(abs(res.fun - 6 / np.sqrt(8 / 3)) < 1e-12), P.optimum
    (True, 3.674234614)
    """
    return Thomson(n_points)
