"""Extreme eigenvalues of the Riemannian Hessian: a minimum, a saddle, or neither.

:func:`hessian_spectrum` is the counterpart of Manopt's ``hessianspectrum``:
it never forms a basis of the tangent space, but works with tangent vectors in
ambient coordinates (one flat vector; the parts of a
:class:`~spherenet.Product` point concatenated) and hands the operator
v -> P_x Hess f(x)[P_x v] to ``scipy.sparse.linalg.eigsh`` (or, in small
dimensions, to a dense ``eigh``).
"""

import dataclasses
import math
from typing import Optional

import numpy as np
from scipy.linalg import eigh
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh

from .. import _tangent
from ..manifolds import Manifold
from ..manifolds.base import as_rng
from ._problem import Problem

__all__ = ["hessian_spectrum", "HessianSpectrum"]

_WHICH = ("smallest", "largest", "both")
_METHODS = ("auto", "dense", "eigsh")


@dataclasses.dataclass(frozen=True)
class HessianSpectrum:
    """Extreme eigenvalues of the Riemannian Hessian at a point.

    Attributes
    ----------
    smallest : ndarray or None
        The k smallest eigenvalues, the smallest first (None if not asked for).
    largest : ndarray or None
        The k largest eigenvalues, the largest first (None if not asked for).
    grad_norm : float
        Norm of the Riemannian gradient at the point.
    dim : int
        Dimension of the tangent space (the number of eigenvalues there are).
    method : str
        "dense" or "eigsh".
    nhev : int
        Hessian-vector products used.
    """

    smallest: Optional[np.ndarray]
    largest: Optional[np.ndarray]
    grad_norm: float
    dim: int
    method: str
    nhev: int

    def is_local_min(self, tol=1e-6, gtol=None):
        """True when the point passes the second-order test for a local minimum.

        The gradient norm is at most ``gtol`` and every eigenvalue of the
        Hessian is at least ``-tol``: the second-order necessary conditions,
        to tolerance. (A zero eigenvalue leaves the question open; a negative
        one beyond ``-tol`` is a direction of descent: a saddle.)

        Parameters
        ----------
        tol : float, default 1e-6
            Tolerance on the smallest eigenvalue.
        gtol : float, optional
            Tolerance on the gradient norm; ``tol`` when None.

        Returns
        -------
        bool

        Raises
        ------
        ValueError
            If the smallest eigenvalues were not computed (``which="largest"``).
        """
        if self.smallest is None:
            raise ValueError(
                'is_local_min needs the smallest eigenvalues: use which="smallest" or "both"')
        gtol = tol if gtol is None else gtol
        return bool(self.grad_norm <= gtol and self.smallest[0] >= -tol)


class _Flat:
    """Between tangent vectors (arrays, or tuples of arrays, shaped like x) and flat vectors."""

    def __init__(self, x):
        self.is_tuple = _tangent.is_tuple(x)
        parts = tuple(x) if self.is_tuple else (x,)
        self.shapes = [np.shape(p) for p in parts]
        self.dtypes = [np.asarray(p).dtype for p in parts]
        sizes = [int(np.prod(s)) for s in self.shapes]
        self.bounds = np.cumsum([0] + sizes)
        self.size = int(self.bounds[-1])

    def flat(self, u):
        if self.is_tuple:
            return np.concatenate([np.ravel(ui) for ui in u]).astype(np.float64, copy=False)
        return np.ravel(u).astype(np.float64, copy=False)

    def unflat(self, v):
        v = np.ravel(v)
        parts = [
            v[lo:hi].reshape(shape).astype(dtype)
            for lo, hi, shape, dtype in zip(self.bounds[:-1], self.bounds[1:], self.shapes,
                                            self.dtypes)
        ]
        return tuple(parts) if self.is_tuple else parts[0]


def _dense(project, apply, size, dim):
    """All eigenvalues (ascending) of the Hessian restricted to the tangent space, densely."""
    # An orthonormal basis Q of T_x from the (symmetric, idempotent) projector;
    # then Q^T (P H P) Q is the Hessian in that basis: dim products, not size.
    proj_matrix = np.column_stack([project(e) for e in np.eye(size)])
    proj_matrix = 0.5 * (proj_matrix + proj_matrix.T)
    values, vectors = eigh(proj_matrix)
    basis = vectors[:, values > 0.5]
    if basis.shape[1] != dim:
        raise RuntimeError(
            f"the tangent projector has rank {basis.shape[1]}, but the manifold has "
            f"dimension {dim}"
        )
    hess_matrix = basis.T @ np.column_stack([apply(q) for q in basis.T])
    return eigh(0.5 * (hess_matrix + hess_matrix.T), eigvals_only=True)


def _radius(operator, v0, k_dim):
    """A rough estimate of the spectral radius of the tangent Hessian (loose Lanczos)."""
    if k_dim < 3:
        return 0.0
    try:
        value = eigsh(operator, k=1, which="LM", v0=v0, tol=1e-3, return_eigenvectors=False)
    except ArpackNoConvergence as err:
        value = err.eigenvalues
    return float(np.max(np.abs(value))) if np.size(value) else 0.0


def _eigsh_side(apply, project, size, k, side, shift, v0, tol):
    """The k eigenvalues at one end of the tangent spectrum, normal directions shifted away.

    The operator is A = P H P + s (I - P) with s = +shift for the smallest
    (the normal directions sit at the top, far from the wanted end) and
    s = -shift for the largest. Returns the tangent eigenvalues found, sorted
    from the wanted end, and how many returned eigenvectors were normal
    (a sign that the shift was not outside the spectrum).
    """
    s = shift if side == "smallest" else -shift

    def matvec(v):
        v = np.ravel(v)
        return apply(v) + s * (v - project(v))

    operator = LinearOperator((size, size), matvec=matvec, dtype=np.float64)
    which = "SA" if side == "smallest" else "LA"
    values, vectors = eigsh(operator, k=k, which=which, v0=v0, tol=tol)
    # The shifted operator commutes with P, so each eigenvector is tangent or
    # normal (up to rounding): keep the tangent ones.
    tangent = np.array([np.dot(project(vec), vec) >= 0.5 for vec in vectors.T])
    values = np.sort(values[tangent])
    if side == "largest":
        values = values[::-1]
    return values, int(np.sum(~tangent))


def hessian_spectrum(cost, manifold, x, k=6, which="both", grad=None, hess=None, *,
                     method="auto", dense_max=200, tol=0.0, rng=0):
    r"""Extreme eigenvalues of the Riemannian Hessian of ``cost`` at ``x``.

    The Riemannian Hessian at x is a symmetric operator on the tangent space
    T_x (of dimension ``manifold.dim``); its eigenvalues say whether a
    critical point is a local minimum (all >= 0), a saddle (some < 0) or a
    local maximum (all <= 0), and its condition number how hard the problem
    is for first-order methods. This is Manopt's ``hessianspectrum``.

    Parameters
    ----------
    cost : callable
        ``cost(x) -> float``, written with ``autograd.numpy`` when ``grad`` or
        ``hess`` is left to autograd.
    manifold : Manifold
    x : array or tuple of arrays
        A point of ``manifold`` (checked).
    k : int, default 6
        How many eigenvalues at each requested end (at most ``manifold.dim``).
    which : {"both", "smallest", "largest"}
    grad : callable, optional
        Euclidean gradient ``grad(x)``; autograd when None.
    hess : callable, optional
        Euclidean Hessian-vector product ``hess(x, u)``; autograd
        (reverse over reverse, the forward pass cached at x) when None.
    method : {"auto", "dense", "eigsh"}, default "auto"
        "dense" forms the Hessian in an orthonormal basis of T_x (``dim``
        Hessian-vector products and an ``eigh`` of the ambient size);
        "eigsh" runs ARPACK's Lanczos method on the operator. "auto" is
        dense when the ambient size is at most ``dense_max`` or ``k`` is
        not small against ``dim``.
    dense_max : int, default 200
    tol : float, default 0
        Relative accuracy asked of ``eigsh`` (0: machine precision).
    rng : None, int or numpy.random.Generator, default 0
        Seeds the Lanczos starting vector, so that results are reproducible.

    Returns
    -------
    HessianSpectrum
        ``smallest`` (smallest first), ``largest`` (largest first),
        ``grad_norm``, ``dim``, ``method``, ``nhev`` and ``is_local_min(tol)``.

    Raises
    ------
    ValueError
        Unknown ``which`` or ``method``, ``k < 1``, ``x`` off the manifold.
    TypeError
        ``manifold`` is not a spherenet Manifold.

    Notes
    -----
    Tangent vectors are represented in ambient coordinates, so the operator
    handed to the eigensolver lives on the ambient space R^N, N >= dim:

    .. math::

        A v = P_x \operatorname{Hess} f(x)[P_x v] + s\,(v - P_x v).

    The first term is symmetric on R^N, equals the Riemannian Hessian on T_x
    and vanishes on the normal space; so without the second term every
    normal direction would contribute a spurious eigenvalue 0, which cannot
    be told apart from a true zero of the Hessian (at a local minimum the k
    smallest eigenvalues of P H P could all be such zeros). Requesting
    N - dim extra eigenvalues is no cure: on Oblique(10, 200) that is 200 of
    them. The shift s moves the whole normal space to the eigenvalue s
    without touching the tangent spectrum (A commutes with P_x); with
    :math:`s = +2\rho` when the smallest eigenvalues are wanted and
    :math:`s = -2\rho` for the largest, where :math:`\rho` is a
    Lanczos estimate of the spectral radius of the Hessian, the normal
    directions sit at the far end, out of the way. The starting vector is
    tangent, so in exact arithmetic the Krylov space never leaves T_x at
    all; the shift guards against rounding and restarts. As a last check,
    each returned eigenvector is classified (tangent when
    :math:`\|P_x v\|^2 \ge 1/2`; it is exactly tangent or normal since A
    commutes with P_x) and the shift is enlarged if a normal one slipped in.
    A shift 2 rho, not a huge constant, keeps the spread of A's spectrum, and
    so the Lanczos convergence rate, within a factor of 3 of the Hessian's.

    The dense path builds an orthonormal basis Q of T_x from the eigenvectors
    of the projector matrix and takes all ``dim`` eigenvalues of
    :math:`Q^T P H P Q`: no shift is needed there.

    Lanczos (as Manopt's ``eigs``) finds every distinct extreme eigenvalue
    but may return fewer copies of a multiple one than its multiplicity
    (products of identical factors at identical points are the usual
    source); the dense path counts multiplicities exactly.

    References
    ----------
    N. Boumal, *An Introduction to Optimization on Smooth Manifolds*,
    Cambridge University Press, 2023, sections 5.5 and 6.1.

    Examples
    --------
    At the leading eigenvector of A, the Hessian of f(x) = -x^T A x on the
    sphere has the eigenvalues 2(lambda_max - lambda_i):

    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.optim.spectrum import hessian_spectrum
    >>> A = np.diag([1.0, 2.0, 5.0])
    >>> spec = hessian_spectrum(lambda x: -x @ A @ x, Sphere(3), np.array([0.0, 0.0, 1.0]), k=2)
    >>> spec.smallest, spec.largest
    (array([6., 8.]), array([8., 6.]))
    >>> spec.is_local_min()
    True
    """
    if not isinstance(manifold, Manifold):
        raise TypeError(f"manifold must be a spherenet Manifold, got {type(manifold).__name__}")
    if which not in _WHICH:
        raise ValueError(f"which must be one of {list(_WHICH)}, got {which!r}")
    if method not in _METHODS:
        raise ValueError(f"method must be one of {list(_METHODS)}, got {method!r}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    manifold.check_point(x)
    if _tangent.is_tuple(x):
        x = tuple(x)
    # x is checked; the Hessian operator below applies the maps many times.
    fast = manifold.unchecked
    problem = Problem(cost, fast, egrad=grad, ehess=hess)
    _, egrad = problem.cost_and_egrad(x)
    grad_norm = manifold.norm(x, manifold.egrad2rgrad(x, egrad))
    hvp = problem.hessian_at(x, egrad)
    flat = _Flat(x)
    dim = manifold.dim
    k = min(int(k), dim)

    def project(v):
        return flat.flat(fast.proj(x, flat.unflat(v)))

    def apply(v):
        return flat.flat(fast.proj(x, hvp(fast.proj(x, flat.unflat(v)))))

    if method == "auto":
        method = "dense" if flat.size <= dense_max or 4 * k >= dim else "eigsh"
    if method == "eigsh" and k >= flat.size - 1:
        method = "dense"  # ARPACK needs k < N - 1
    smallest = largest = None
    sides = ("smallest", "largest") if which == "both" else (which,)
    if method == "dense":
        values = _dense(project, apply, flat.size, dim)
        smallest = values[:k] if "smallest" in sides else None
        largest = values[::-1][:k] if "largest" in sides else None
    else:
        v0 = project(as_rng(rng).standard_normal(flat.size))
        tangent_op = LinearOperator((flat.size, flat.size), matvec=lambda v: apply(np.ravel(v)),
                                    dtype=np.float64)
        rho = _radius(tangent_op, v0, dim)
        shift = 2.0 * rho if rho > 0.0 and math.isfinite(rho) else 1.0
        found = {}
        for side in sides:
            for _ in range(4):
                values, n_normal = _eigsh_side(apply, project, flat.size, k, side, shift, v0, tol)
                if n_normal == 0:
                    break
                shift *= 8.0
            else:  # pragma: no cover - needs an adversarial operator
                raise RuntimeError(
                    "could not separate the normal space from the Hessian's spectrum")
            found[side] = values
        smallest, largest = found.get("smallest"), found.get("largest")
    return HessianSpectrum(smallest=smallest, largest=largest, grad_norm=float(grad_norm),
                           dim=dim, method=method, nhev=problem.nhev)
