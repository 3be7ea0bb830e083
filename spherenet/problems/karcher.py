r"""The Karcher (Frechet) mean of points on a sphere."""

import autograd.numpy as anp
import numpy as np

from ..manifolds import Oblique, Sphere
from ..manifolds.base import as_rng

from ._base import Problem

__all__ = ["KarcherMean", "karcher_mean", "symmetric_points"]


class KarcherMean(Problem):
    r"""Minimize :math:`f(x) = \tfrac12 \sum_i w_i\, d(x, p_i)^2` on the sphere :math:`S^{n-1}`.

    The Riemannian gradient is :math:`-\sum_i w_i \log_x(p_i)`, so the mean is
    where the weighted logs balance. For points in an open geodesic ball of
    radius :math:`\pi/2` (an open hemisphere) the minimizer exists and is
    unique (Afsari 2011; Karcher 1977 for radius :math:`\pi/4`, where the
    cost is also convex). Use :func:`karcher_mean` to build one.

    Attributes
    ----------
    points : ndarray
        Shape (m, n): one unit point per row.
    weights : ndarray
        Shape (m,).
    mean : ndarray or None
        The mean, when it is known (see :func:`symmetric_points`).
    optimum : float or None
        The cost at ``mean``.

    Notes
    -----
    The cost is extended to the ambient space as :math:`g(x) = f(x/\|x\|)`
    (so every strategy can run on it); :meth:`egrad` is the exact Euclidean
    gradient of that extension,
    :math:`\nabla g(x) = -\sum_i w_i \log_{\hat x}(p_i) / \|x\|`, computed
    with the manifold's accurate :meth:`~spherenet.Sphere.log`. It is tangent
    at :math:`\hat x = x/\|x\|`, and on the sphere it is the Riemannian gradient.
    The cost itself writes the distance as :math:`2\arcsin(\|\hat x - p_i\|/2)`
    for autograd, whose derivative is undefined at a data point; the
    Hessian-vector products of trust regions come from autograd on it.
    """

    name = "karcher_mean"

    def __init__(self, points, weights=None, mean=None):
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2:
            raise ValueError(f"points must have shape (m, n), got {points.shape}")
        m, n = points.shape
        norms = np.linalg.norm(points, axis=1)
        if np.max(np.abs(norms - 1.0)) > 1e-12:
            raise ValueError(
                f"points must be unit vectors, got norms off 1 by up to "
                f"{float(np.max(np.abs(norms - 1.0))):.3g}"
            )
        weights = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
        if weights.shape != (m,) or np.any(weights < 0):
            raise ValueError(f"weights must be {m} non-negative numbers")
        self.points = points
        self.weights = weights
        self.manifold = Sphere(n)
        self._columns = Oblique(n, m)
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float64)
        self.optimum = None if mean is None else float(self.cost(self.mean))

    def cost(self, x):
        xhat = x / anp.sqrt(anp.sum(x * x))
        chord = anp.sqrt(anp.sum((xhat - self.points) ** 2, axis=1))
        theta = 2.0 * anp.arcsin(anp.minimum(0.5 * chord, 1.0))
        return 0.5 * anp.sum(self.weights * theta**2)

    def logs(self, x):
        """The tangent vectors log_x(p_i) at the unit point x, one per column (n, m)."""
        xs = np.repeat(x[:, None], self.points.shape[0], axis=1)
        # Unchecked: x is an iterate of the optimizer (any strategy's).
        return self._columns.unchecked.log(xs, self.points.T.astype(x.dtype))

    def egrad(self, x):
        norm = np.linalg.norm(x)
        return -(self.logs(x / norm) @ self.weights.astype(x.dtype)) / x.dtype.type(norm)

    def solution(self):
        return None if self.mean is None else self.mean.copy()


def karcher_mean(points, weights=None, mean=None):
    r"""The Karcher mean problem of points on the unit sphere.

    Parameters
    ----------
    points : (m, n) array_like
        Unit vectors, one per row.
    weights : (m,) array_like, optional
        Non-negative weights (default all 1).
    mean : (n,) array_like, optional
        The mean when it is known, e.g. from :func:`symmetric_points`, or the
        normalized midpoint :math:`(p + q)/\|p + q\|` of two points.

    Returns
    -------
    KarcherMean

    References
    ----------
    H. Karcher, "Riemannian center of mass and mollifier smoothing", Comm.
    Pure Appl. Math. 30 (1977). B. Afsari, "Riemannian L^p center of mass:
    existence, uniqueness, and convexity", Proc. AMS 139 (2011).

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.problems import karcher_mean, symmetric_points
    >>> points, pole = symmetric_points(4, angle=0.3, rng=0)
    >>> P = karcher_mean(points, mean=pole)
    >>> res = P.minimize(method="cg", rng=1)
    >>> bool(P.distance_to_optimum(res.x) < 1e-6), round(P.optimum, 12)
    (True, 0.27)
    """
    return KarcherMean(points, weights, mean)


def symmetric_points(n, angle, pole=None, rng=None):
    r"""2(n-1) points at the same distance from a pole, in pairs symmetric about it.

    The points are :math:`\cos(\alpha)\,p \pm \sin(\alpha)\,e_k` for an
    orthonormal basis :math:`e_1, \dots, e_{n-1}` of the tangent space at the
    pole p (randomly rotated by ``rng``). The reflection through the pole
    maps the set to itself, so the logs at the pole cancel in pairs: for
    :math:`\alpha < \pi/2` the pole is the unique minimizer of the Karcher
    cost (the points lie in the open hemisphere around it), with cost
    :math:`(n - 1)\alpha^2`.

    Parameters
    ----------
    n : int
        Dimension of the ambient space (n >= 2).
    angle : float
        The distance alpha of every point to the pole.
    pole : (n,) array_like, optional
        Default: a random unit vector.
    rng : None, int or numpy.random.Generator

    Returns
    -------
    points : ndarray, shape (2(n-1), n)
    pole : ndarray, shape (n,)
    """
    rng = as_rng(rng)
    if pole is None:
        pole = rng.standard_normal(n)
    pole = np.asarray(pole, dtype=np.float64)
    pole = pole / np.linalg.norm(pole)
    # An orthonormal basis whose first vector is the pole, the rest random.
    basis, _ = np.linalg.qr(np.column_stack([pole, rng.standard_normal((n, n - 1))]))
    tangents = basis[:, 1:].T
    c, s = np.cos(angle), np.sin(angle)
    points = np.concatenate([c * pole + s * tangents, c * pole - s * tangents])
    return points / np.linalg.norm(points, axis=1, keepdims=True), pole
