"""The shape every test problem shares: a cost on a manifold and what is known about it."""

import numpy as np

from .._checks import check_flag

from ..manifolds.base import as_rng

__all__ = ["Problem"]


class Problem:
    """A minimization problem on a manifold, with what is known of its answer.

    Subclasses set :attr:`manifold` and implement :meth:`cost` with
    ``autograd.numpy`` (so that autograd can differentiate it); where they are
    cheap they also give the closed forms :meth:`egrad` and :meth:`ehess`
    (``None`` otherwise), so that benchmarks compare optimizers, not automatic
    differentiation.

    Attributes
    ----------
    manifold : Manifold
        Where the unknown lives.
    optimum : float or None
        The optimal cost, when it is known.
    egrad : callable or None
        ``egrad(x)``: the Euclidean gradient of :meth:`cost`, in closed form.
    ehess : callable or None
        ``ehess(x, u)``: the Euclidean Hessian-vector product, in closed form.

    Notes
    -----
    Every cost is defined on the ambient space, not only on the manifold, so
    that every strategy of :mod:`spherenet.strategies` (which may evaluate
    the cost off the sphere) runs on it.
    """

    name = "problem"
    manifold = None
    optimum = None
    egrad = None
    ehess = None

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r} on {self.manifold!r}>"

    def cost(self, x):
        """The cost at ``x``, written with ``autograd.numpy``."""
        raise NotImplementedError

    def x0(self, rng=None, dtype=None):
        """A starting point: by default a random point of the manifold.

        Parameters
        ----------
        rng : None, int or numpy.random.Generator
        dtype : float32 or float64, optional
        """
        return self.manifold.random_point(as_rng(rng), dtype)

    def solution(self):
        """One optimal point, or None when it is not known in closed form."""
        return None

    def distance_to_optimum(self, x):
        """Distance from ``x`` to the set of optimal points (geodesic, radians).

        The default is the manifold's distance to :meth:`solution`; problems
        whose optima come in families (signs, rotations, permutations)
        override it with the distance to the nearest one. ``x`` is not
        validated (the experiments call this on every iterate): pass a point
        of the manifold, e.g. ``manifold.project_point(w)``.

        Raises
        ------
        NotImplementedError
            When no optimal point is known.
        """
        sol = self.solution()
        if sol is None:
            raise NotImplementedError(f"no optimal point is known for {self!r}")
        return self.manifold.unchecked.dist(x, sol)

    def minimize(self, method="trust-regions", strategy="riemannian", x0=None, rng=None,
                 closed_form=True, **options):
        """Run :func:`spherenet.minimize` on this problem.

        Parameters
        ----------
        method, strategy
            As for :func:`spherenet.minimize`.
        x0 : point, optional
            Defaults to :meth:`x0` drawn from ``rng``.
        rng : None, int or numpy.random.Generator
        closed_form : bool, default True
            Pass the closed-form :attr:`egrad` and :attr:`ehess` (where the
            problem has them); False leaves every derivative to autograd.
        **options
            Passed to :func:`spherenet.minimize` (``maxiter``, ``gtol``, ...).

        Returns
        -------
        OptimizeResult
        """
        from ..minimize import minimize

        check_flag(closed_form, "closed_form")
        if x0 is None:
            x0 = self.x0(rng)
        return minimize(self.cost, self.manifold, x0=x0, method=method, strategy=strategy,
                        **self._minimize_args(closed_form, rng), **options)

    def _minimize_args(self, closed_form, rng):
        """What :meth:`minimize` passes besides x0, method, strategy and the options."""
        return {"grad": self.egrad if closed_form else None,
                "hess": self.ehess if closed_form else None}


def as_symmetric(A, what="A"):
    """A as a float64 square symmetric matrix; raises ValueError otherwise."""
    A = np.asarray(A, dtype=np.float64)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"{what} must be a square matrix, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{what} has non-finite entries")
    scale = max(1.0, float(np.max(np.abs(A))))
    if np.max(np.abs(A - A.T)) > 1e-12 * scale:
        raise ValueError(
            f"{what} must be symmetric, got max |A - A^T| = {float(np.max(np.abs(A - A.T))):.3g}"
        )
    return 0.5 * (A + A.T)


def angle_to_subspace(x, basis):
    """Angle between the nonzero vector x and the span of the orthonormal columns of basis.

    atan2 of the orthogonal and the parallel parts, not arccos of a cosine:
    accurate for tiny angles.
    """
    x = np.asarray(x, dtype=np.float64)
    coef = basis.T @ x
    rest = x - basis @ coef
    return float(np.arctan2(np.linalg.norm(rest), np.linalg.norm(coef)))


def top_eigenspace(A, rtol=1e-10):
    """Eigenvalues of the symmetric A and an orthonormal basis of its leading eigenspace.

    Eigenvalues within ``rtol * max(1, ||A||)`` of the largest count as equal.
    """
    w, V = np.linalg.eigh(A)
    tol = rtol * max(1.0, float(np.max(np.abs(w))))
    return w, V[:, w >= w[-1] - tol]
