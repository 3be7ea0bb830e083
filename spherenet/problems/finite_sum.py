r"""Finite-sum problems with known answers: streaming PCA and a Karcher mean of many points.

Their cost is a mean over samples, ``cost(x, batch)``, for the stochastic
methods of :func:`spherenet.minimize` (``data=``); ``cost(x)`` is the full
cost, so the full-batch solvers run on them too.
"""

import math
import numbers

import autograd.numpy as anp
import numpy as np

from ..manifolds import Sphere
from ..manifolds.base import as_rng
from ._base import Problem, angle_to_subspace, top_eigenspace

__all__ = ["FiniteSumProblem", "StreamingPCA", "streaming_pca", "spiked_samples",
           "FiniteSumKarcher", "finite_sum_karcher", "paired_points"]


class FiniteSumProblem(Problem):
    """A problem whose cost is the mean of per-sample terms over ``data``.

    ``cost(x, batch=None)`` and ``egrad(x, batch=None)`` take a batch of
    samples (rows of :attr:`data`); without one they are the full cost and
    gradient. :meth:`minimize` passes ``data`` to :func:`spherenet.minimize`.

    Attributes
    ----------
    data : ndarray
        The samples, one per row.
    """

    data = None

    def minimize(self, method="rsvrg", strategy="riemannian", x0=None, rng=None,
                 closed_form=True, batch_size=1, **options):
        """Run :func:`spherenet.minimize` on the finite sum (``data=self.data``).

        Parameters
        ----------
        method : str, default "rsvrg"
            A method that takes ``data``: "rsgd", "radam", "rsvrg", "rsrg".
        strategy, x0, rng, closed_form
            As for :meth:`spherenet.problems.Problem.minimize` (no Hessian
            is passed: the stochastic methods do not use one).
        batch_size : int, default 1
        **options
            Passed to :func:`spherenet.minimize` (``lr``, ``epochs``, ...).

        Returns
        -------
        OptimizeResult
        """
        return super().minimize(method, strategy, x0, rng, closed_form, batch_size=batch_size,
                                **options)

    def _minimize_args(self, closed_form, rng):
        # no Hessian (the stochastic methods take none); the data, and rng for the sampler
        return {"grad": self.egrad if closed_form else None, "data": self.data, "rng": rng}


class StreamingPCA(FiniteSumProblem):
    r"""The leading principal direction of samples: :math:`\min_{\|w\| = 1} -\tfrac12 \frac1n \sum_i (x_i^\top w)^2`.

    The cost is :math:`-\tfrac12 w^\top \hat C w` with :math:`\hat C =
    X^\top X / n`; its minimizers are the leading unit eigenvectors of
    :math:`\hat C` (``numpy.linalg.eigh``), the optimal cost is
    :math:`-\lambda_1(\hat C)/2`. The factor 1/2 makes the mini-batch step of
    ``rsgd`` under the projection strategy with batch size 1 exactly Oja's
    rule, :math:`w \leftarrow (w + \eta\, x x^\top w)/\|w + \eta\, x x^\top w\|`.
    At a minimizer the Riemannian Hessian has the eigenvalues
    :math:`\lambda_1 - \lambda_j` (j >= 2) of :math:`\hat C`: the sample
    eigengap is the smallest, the strong-convexity constant that sets the
    local rates.

    Use :func:`streaming_pca` to build one.

    Attributes
    ----------
    data : ndarray
        Shape (n, d).
    eigenvalues : ndarray
        Of :math:`\hat C`, ascending.
    optimum : float
    covariance : ndarray or None
        The population covariance, when known (:func:`spiked_samples`).
    """

    name = "streaming_pca"

    def __init__(self, X, covariance=None):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or len(X) == 0:
            raise ValueError(f"X must have shape (n, d) with n >= 1, got {X.shape}")
        if not np.all(np.isfinite(X)):
            raise ValueError("X has NaN or infinite values")
        self.data = X
        n, d = X.shape
        self.manifold = Sphere(d)
        self.second_moment = X.T @ X / n
        self.eigenvalues, self._top = top_eigenspace(self.second_moment)
        self.optimum = -0.5 * float(self.eigenvalues[-1])
        if covariance is not None:
            covariance = np.asarray(covariance, dtype=np.float64)
            if covariance.shape != (d, d) or not np.all(np.isfinite(covariance)):
                raise ValueError(f"covariance must be a finite ({d}, {d}) matrix (d = {d}), got "
                                 f"shape {covariance.shape}" + (
                                     "" if covariance.shape != (d, d) else " with NaN or Inf"))
        self.covariance = covariance

    def cost(self, x, batch=None):
        batch = self.data if batch is None else batch
        return -0.5 * anp.mean(anp.dot(batch, x) ** 2)

    def egrad(self, x, batch=None):
        batch = self.data if batch is None else batch
        return -(batch.T @ (batch @ x)).astype(x.dtype) / x.dtype.type(len(batch))

    def ehess(self, x, u):
        return -(self.second_moment @ u).astype(u.dtype)

    def solution(self):
        """A leading unit eigenvector of the sample second moment (its negative too)."""
        return self._top[:, -1].copy()

    def distance_to_optimum(self, x):
        """Angle between x and the leading eigenspace of the sample second moment."""
        return angle_to_subspace(x, self._top)

    def population_solution(self):
        """The leading eigenvector of the population covariance (None if unknown)."""
        if self.covariance is None:
            return None
        return np.linalg.eigh(self.covariance)[1][:, -1]


def _count(value, name, low):
    """An int >= low; a float, a bool or a string is refused, not truncated or converted."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {low}, got {type(value).__name__} {value!r}")
    if value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return int(value)


def _unit_vector(value, name, n):
    """``value`` as a float64 vector of shape (n,) and norm 1 (to 1e-12)."""
    value = np.asarray(value, dtype=np.float64)
    if value.shape != (n,):
        raise ValueError(f"{name} must be a unit vector of shape ({n},), got shape {value.shape}")
    norm = float(np.linalg.norm(value))
    if not abs(norm - 1.0) <= 1e-12:
        raise ValueError(f"{name} must be a unit vector of shape ({n},), got norm {norm:.3g}")
    return value


def spiked_samples(d, n, spikes=(1.0,), noise=1.0, rng=None):
    r"""n samples of a spiked covariance :math:`\Sigma = \sigma^2 I + \sum_j \theta_j u_j u_j^\top`.

    :math:`x = \sigma z + \sum_j \sqrt{\theta_j}\, g_j u_j` with z, g
    standard normal, the :math:`u_j` orthonormal and random (Johnstone's
    spiked model). The eigenvalues of :math:`\Sigma` are
    :math:`\sigma^2 + \theta_j` (on :math:`u_j`) and :math:`\sigma^2`: the
    eigengap :math:`\lambda_1 - \lambda_2` is :math:`\theta_1 - \theta_2`
    (:math:`\theta_1` for one spike).

    Parameters
    ----------
    d, n : int
        Dimension and number of samples.
    spikes : sequence of float, default (1.0,)
        :math:`\theta_1 > \theta_2 > ... > 0`.
    noise : float, default 1.0
        :math:`\sigma^2`.
    rng : None, int or numpy.random.Generator
        Draws, in order, the directions (QR of a d x k normal matrix), then
        z (n x d), then g (n x k).

    Returns
    -------
    X : ndarray, shape (n, d)
    covariance : ndarray, shape (d, d)

    Examples
    --------
    >>> import numpy as np
    >>> X, C = spiked_samples(5, 1000, spikes=(3.0, 1.0), rng=0)
    >>> np.round(np.linalg.eigvalsh(C), 12).tolist()
    [1.0, 1.0, 1.0, 2.0, 4.0]
    """
    d, n = _count(d, "d", 2), _count(n, "n", 1)
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a positive number, got {type(noise).__name__} {noise!r}")
    spikes = np.asarray(spikes, dtype=np.float64)
    if spikes.ndim != 1 or len(spikes) == 0 or len(spikes) >= d:
        raise ValueError(f"spikes must be 1 to d - 1 = {d - 1} numbers, got {spikes.tolist()}")
    if not (np.all(spikes > 0) and np.all(np.diff(spikes) < 0)):
        raise ValueError(f"spikes must be positive and decreasing, got {spikes.tolist()}")
    if not noise > 0:
        raise ValueError(f"noise must be positive, got {noise}")
    rng = as_rng(rng)
    U, _ = np.linalg.qr(rng.standard_normal((d, len(spikes))))
    z = rng.standard_normal((n, d))
    g = rng.standard_normal((n, len(spikes)))
    X = np.sqrt(noise) * z + (g * np.sqrt(spikes)) @ U.T
    covariance = noise * np.eye(d) + (U * spikes) @ U.T
    return X, covariance


def streaming_pca(X, covariance=None):
    r"""The streaming PCA problem of the samples X (rows): Oja's rule and its rivals.

    Parameters
    ----------
    X : (n, d) array_like
        Samples, one per row (centred: the cost uses the second moment).
    covariance : (d, d) array_like, optional
        The population covariance, if known (:func:`spiked_samples`).

    Returns
    -------
    StreamingPCA
        ``manifold = Sphere(d)``, ``data = X``; ``optimum`` and
        ``solution()`` from ``eigh`` of :math:`X^\top X / n`.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet.problems import spiked_samples, streaming_pca
    >>> X, C = spiked_samples(10, 500, spikes=(4.0,), rng=0)
    >>> P = streaming_pca(X, C)
    >>> res = P.minimize(method="rsvrg", batch_size=10, lr=0.05, epochs=50, rng=1)
    >>> bool(P.distance_to_optimum(res.x) < 1e-6), bool(abs(res.fun - P.optimum) < 1e-12)
    (True, True)
    """
    return StreamingPCA(X, covariance)


class FiniteSumKarcher(FiniteSumProblem):
    r"""The Karcher mean as a finite sum: :math:`\min_x \tfrac12 \frac1m \sum_i d(x, p_i)^2` on a sphere.

    The mean-of-terms form of :class:`~spherenet.problems.KarcherMean`
    (uniform weights): the points are the samples, ``cost(x, batch)`` the
    mean over a batch of rows. The cost is extended off the sphere as
    :math:`f(x/\|x\|)`, and :meth:`egrad`,
    :math:`-\frac1b \sum_i \log_{\hat x}(p_i) / \|x\|`, is its exact
    Euclidean gradient, with :math:`\log_x(p) = \theta\, v/\|v\|`,
    :math:`v = p - \langle x, p\rangle x`,
    :math:`\theta = \operatorname{atan2}(\|v\|, \langle x, p\rangle)`.

    Use :func:`finite_sum_karcher` to build one.

    Attributes
    ----------
    data : ndarray
        Shape (m, n): unit points, one per row.
    mean : ndarray or None
    optimum : float or None
    """

    name = "finite_sum_karcher"

    def __init__(self, points, mean=None):
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or len(points) == 0:
            raise ValueError(f"points must have shape (m, n) with m >= 1, got {points.shape}")
        gap = float(np.max(np.abs(np.linalg.norm(points, axis=1) - 1.0)))
        if not gap <= 1e-12:
            raise ValueError(f"points must be unit vectors, got norms off 1 by up to {gap:.3g}")
        self.data = points
        self.manifold = Sphere(points.shape[1])
        self.mean = None if mean is None else _unit_vector(mean, "mean", points.shape[1])
        self.optimum = None if mean is None else float(self.cost(self.mean))

    def cost(self, x, batch=None):
        batch = self.data if batch is None else batch
        xhat = x / anp.sqrt(anp.sum(x * x))
        chord = anp.sqrt(anp.sum((xhat - batch) ** 2, axis=1))
        theta = 2.0 * anp.arcsin(anp.minimum(0.5 * chord, 1.0))
        return 0.5 * anp.mean(theta**2)

    def egrad(self, x, batch=None):
        batch = self.data if batch is None else batch
        norm = np.linalg.norm(x)
        xhat = x / norm
        cosines = batch @ xhat
        v = batch - cosines[:, None] * xhat
        sines = np.linalg.norm(v, axis=1)
        scale = np.where(sines > 0, np.arctan2(sines, cosines) / np.where(sines > 0, sines, 1.0),
                         0.0)
        return (-(scale @ v) / (len(batch) * norm)).astype(x.dtype)

    def solution(self):
        return None if self.mean is None else self.mean.copy()


def paired_points(n, pairs, max_angle, pole=None, rng=None):
    r"""2 * pairs points on :math:`S^{n-1}` in pairs symmetric about a pole, whose Karcher mean it is.

    Each pair is :math:`\operatorname{Exp}_p(\pm \alpha_k t_k)` for a random
    unit tangent :math:`t_k` at the pole p and an angle :math:`\alpha_k`
    uniform in (0, max_angle]: the logs at p cancel pair by pair, so p is a
    critical point of the Karcher cost, and for max_angle < pi/2 (all points
    in the open hemisphere about p) its unique minimizer (Afsari 2011).

    Parameters
    ----------
    n : int
        Ambient dimension (n >= 2).
    pairs : int
    max_angle : float
        In (0, pi/2).
    pole : (n,) array_like, optional
        Default: a random unit vector.
    rng : None, int or numpy.random.Generator
        Draws the pole (if not given), then the tangents, then the angles.

    Returns
    -------
    points : ndarray, shape (2 * pairs, n)
    pole : ndarray, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> points, pole = paired_points(3, 50, 0.5, rng=0)
    >>> points.shape, bool(np.all(np.arccos(np.clip(points @ pole, -1, 1)) <= 0.5 + 1e-12))
    ((100, 3), True)
    """
    n, pairs = _count(n, "n", 2), _count(pairs, "pairs", 1)
    if isinstance(max_angle, (bool, np.bool_)) or not isinstance(max_angle, numbers.Real):
        raise TypeError(f"max_angle must be a real number in (0, pi/2), got "
                        f"{type(max_angle).__name__} {max_angle!r}")
    if not 0 < max_angle < np.pi / 2:
        raise ValueError(f"max_angle must be in (0, pi/2), got {max_angle}")
    if pole is not None:
        pole = np.asarray(pole, dtype=np.float64)
        if pole.shape != (n,):
            raise ValueError(f"pole must be a finite nonzero vector of shape ({n},), got shape "
                             f"{pole.shape}")
        norm = float(np.linalg.norm(pole))
        if not 0 < norm < math.inf:
            raise ValueError(f"pole must be a finite nonzero vector of shape ({n},), got norm "
                             f"{norm}")
    rng = as_rng(rng)
    pole = rng.standard_normal(n) if pole is None else pole
    pole = pole / np.linalg.norm(pole)
    t = rng.standard_normal((pairs, n))
    t = t - np.outer(t @ pole, pole)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    alpha = max_angle * (1.0 - rng.random(pairs))  # in (0, max_angle]
    c, s = np.cos(alpha)[:, None], np.sin(alpha)[:, None]
    points = np.concatenate([c * pole + s * t, c * pole - s * t])
    return points / np.linalg.norm(points, axis=1, keepdims=True), pole


def finite_sum_karcher(points, mean=None):
    """The Karcher mean of the rows of ``points`` as a finite sum.

    Parameters
    ----------
    points : (m, n) array_like
        Unit vectors, one per row.
    mean : (n,) array_like, optional
        The mean when known, e.g. the pole of :func:`paired_points`.

    Returns
    -------
    FiniteSumKarcher

    Examples
    --------
    >>> from spherenet.problems import finite_sum_karcher, paired_points
    >>> points, pole = paired_points(4, 100, 0.6, rng=0)
    >>> P = finite_sum_karcher(points, mean=pole)
    >>> res = P.minimize(method="rsvrg", batch_size=20, lr=0.5, epochs=40, gtol=1e-10, rng=1)
    >>> bool(P.distance_to_optimum(res.x) < 1e-9)
    True
    """
    return FiniteSumKarcher(points, mean)
