r"""Predicted local rates of first-order methods near a nondegenerate minimum.

Near a local minimizer :math:`x^*` with Riemannian Hessian eigenvalues
:math:`0 < \mu = \lambda_{\min} \le \dots \le \lambda_{\max} = L` (on the
tangent space), one step of each method is, to first order in the error, a
linear map whose spectral radius is the local linear rate: the factor by
which the distance to :math:`x^*` (and the gradient norm) shrinks per
iteration, asymptotically. The cost gap shrinks by the square of it.

========================  =================================================  =======================
method                    rate at step size :math:`\eta`                     stable for
========================  =================================================  =======================
riemannian (RGD)          :math:`\max_i |1 - \eta\lambda_i|`                 :math:`\eta < 2/L`
projection                RGD with :math:`\eta' = \eta/(1 - \eta c)`          :math:`\eta(L + 2c) < 2`
reparam                   RGD with :math:`\eta/\|v\|^2`, the norm growing     every :math:`\eta`
heavy ball (RSGD + mom.)  largest root of :math:`z^2 - (1 + \beta -           :math:`\eta < 2(1+\beta)/L`
                          \eta\lambda) z + \beta`
========================  =================================================  =======================

where :math:`c = \langle x^*, \nabla f(x^*)\rangle` is the radial part of
the Euclidean gradient at the minimizer (the Lagrange multiplier of the
constraint; :math:`-2\lambda_{\max}(A)` for the Rayleigh quotient
:math:`-x^\top A x`). Only the extreme eigenvalues enter, so
:func:`local_model` asks :func:`~spherenet.optim.spectrum.hessian_spectrum`
for one at each end. The derivations and their sources are on the
documentation's *Theory* page.

References
----------
P.-A. Absil, R. Mahony, R. Sepulchre, *Optimization Algorithms on Matrix
Manifolds*, Princeton University Press, 2008, chapter 4 (section 4.5).

N. Boumal, *An Introduction to Optimization on Smooth Manifolds*, Cambridge
University Press, 2023, chapter 4.

B. T. Polyak, Some methods of speeding up the convergence of iteration
methods, *USSR Computational Mathematics and Mathematical Physics* 4(5),
1964, 1-17.
"""

import dataclasses
import math
import numbers

import numpy as np

from . import _tangent
from .manifolds import Manifold, Product
from .manifolds.sphere import _Spheres

__all__ = [
    "LocalModel",
    "local_model",
    "gd_rate",
    "gd_lr_limit",
    "gd_optimal_lr",
    "projection_lr",
    "projection_rate",
    "projection_lr_limit",
    "projection_optimal_lr",
    "reparam_lr",
    "heavy_ball_rate",
    "heavy_ball_lr_limit",
    "heavy_ball_optimal",
]


# --- input checks ------------------------------------------------------------------------------


def _eigenvalues(eigenvalues):
    values = None
    if not isinstance(eigenvalues, (str, bytes)):
        try:
            values = np.asarray(eigenvalues)
        except ValueError:  # ragged nested lists
            values = None
    if values is not None and values.dtype.kind == "c":
        raise TypeError(f"eigenvalues must be real numbers, got dtype {values.dtype}")
    if values is not None and values.ndim > 1:
        # A Hessian matrix flattened would read its entries as eigenvalues.
        raise ValueError(f"eigenvalues must be a 1-D array of eigenvalues, got an array of "
                         f"shape {values.shape}; for a symmetric matrix H give "
                         "np.linalg.eigvalsh(H)")
    if values is not None:
        try:
            values = values.astype(np.float64).ravel()
        except (TypeError, ValueError):
            values = None
    if values is None or values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"eigenvalues must be a non-empty array of finite numbers, got "
                         f"{eigenvalues!r}")
    return float(np.min(values)), float(np.max(values))


def _real(value, name, positive=False, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value) or (positive and not value > 0) or (not positive and math.isinf(value)):
        what = "a positive number" if positive else "a finite number"
        raise ValueError(f"{name} must be {what}, got {value!r}")
    if low is not None and not (low <= value < high):
        raise ValueError(f"{name} must be in [{low}, {high}), got {value!r}")
    return value


def _real_array(value, name):
    """``value`` as a float64 array; strings and bools are refused, not parsed."""
    array = None if isinstance(value, (str, bytes)) else np.asarray(value)
    if array is None or array.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a real number or an array of them, got {value!r}")
    return array.astype(np.float64)


# --- Riemannian gradient descent ----------------------------------------------------------------


def gd_rate(eigenvalues, lr):
    r"""Local rate of fixed-step Riemannian gradient descent: :math:`\max_i |1 - \eta\lambda_i|`.

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues of the Riemannian Hessian at the minimizer (all of them,
        or just the smallest and the largest: only those matter).
    lr : float
        The step size :math:`\eta > 0`.

    Returns
    -------
    float
        The factor by which the distance to the minimizer shrinks per step,
        asymptotically; >= 1 means no local linear convergence.

    Raises
    ------
    ValueError
        Empty or non-finite eigenvalues, a 2-D array (a matrix is not its
        eigenvalues: give ``np.linalg.eigvalsh(H)``), ``lr`` not positive.
    TypeError
        Complex eigenvalues; ``lr`` not a real number.

    Notes
    -----
    With any retraction :math:`R`, the iteration
    :math:`x_{k+1} = R_{x_k}(-\eta \operatorname{grad} f(x_k))` has the
    fixed point :math:`x^*`, and its differential there is
    :math:`I - \eta \operatorname{Hess} f(x^*)` on :math:`T_{x^*}M` (a
    retraction agrees with the exponential map to first order). Its spectral
    radius is the local rate (Absil et al. 2008, theorem 4.5.6; Boumal 2023,
    section 4.6).

    References
    ----------
    P.-A. Absil, R. Mahony, R. Sepulchre, *Optimization Algorithms on Matrix
    Manifolds*, 2008, section 4.5. N. Boumal, *An Introduction to
    Optimization on Smooth Manifolds*, 2023, chapter 4.

    Examples
    --------
    The Hessian of :math:`-x^\top A x` at the leading eigenvector of
    :math:`A = \operatorname{diag}(1, 2, 5)` has eigenvalues
    :math:`2(5 - 2) = 6` and :math:`2(5 - 1) = 8`:

    >>> from spherenet.theory import gd_rate
    >>> round(gd_rate([6.0, 8.0], lr=0.1), 12)
    0.4
    """
    smallest, largest = _eigenvalues(eigenvalues)
    lr = _real(lr, "lr", positive=True)
    return max(abs(1.0 - lr * smallest), abs(1.0 - lr * largest))


def gd_lr_limit(eigenvalues):
    r"""The largest stable step size of Riemannian gradient descent: :math:`2/\lambda_{\max}`.

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues of the Riemannian Hessian at the minimizer.

    Returns
    -------
    float
        :math:`2/L` (``inf`` when :math:`L \le 0`: no step size is too large
        for the local model, which then has no linear rate either).

    Examples
    --------
    >>> from spherenet.theory import gd_lr_limit
    >>> gd_lr_limit([6.0, 8.0])
    0.25
    """
    _, largest = _eigenvalues(eigenvalues)
    return 2.0 / largest if largest > 0 else math.inf


def gd_optimal_lr(eigenvalues):
    r"""The step size with the best local rate of gradient descent, and that rate.

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues of the Riemannian Hessian at the minimizer, all > 0.

    Returns
    -------
    lr : float
        :math:`2/(\mu + L)`.
    rate : float
        :math:`(L - \mu)/(L + \mu) = (\kappa - 1)/(\kappa + 1)`.

    Raises
    ------
    ValueError
        If the smallest eigenvalue is not positive (no linear rate at any step).

    Notes
    -----
    :math:`\max(|1 - \eta\mu|, |1 - \eta L|)` is smallest where the two
    terms are equal, :math:`1 - \eta\mu = \eta L - 1` (Boumal 2023,
    section 4.6; the Euclidean case: Polyak 1987, section 1.4).

    Examples
    --------
    >>> from spherenet.theory import gd_optimal_lr
    >>> gd_optimal_lr([6.0, 8.0])
    (0.14285714285714285, 0.14285714285714285)
    """
    smallest, largest = _eigenvalues(eigenvalues)
    if not smallest > 0:
        raise ValueError(f"the smallest Hessian eigenvalue must be positive for a linear rate, "
                         f"got {smallest!r}")
    return 2.0 / (smallest + largest), (largest - smallest) / (largest + smallest)


# --- the projection strategy --------------------------------------------------------------------


def projection_lr(lr, radial):
    r"""Effective Riemannian step of "step, then normalize": :math:`\eta/(1 - \eta c)`.

    Parameters
    ----------
    lr : float
        The step size :math:`\eta` of the projection strategy.
    radial : float or array_like
        :math:`c = \langle x, g\rangle`, the radial part of the Euclidean
        gradient g (one value per sphere factor, or one for all).

    Returns
    -------
    float or ndarray
        :math:`\eta' = \eta/(1 - \eta c)`; NaN where :math:`1 - \eta c \le 0`
        (there the normalized step goes through the origin's far side and is
        no Riemannian step of positive length).

    Notes
    -----
    For a unit vector x, :math:`x - \eta g = (1 - \eta c)\,x - \eta P_x g`,
    so when :math:`1 - \eta c > 0`

    .. math::

        \frac{x - \eta g}{\|x - \eta g\|} = R_x(-\eta' P_x g), \qquad
        R_x(u) = \frac{x + u}{\|x + u\|},

    the projection retraction of a Riemannian gradient step (Absil et al.
    2008, example 4.1.2, for the retraction).

    Examples
    --------
    At the leading eigenvector of A, :math:`c = -2\lambda_{\max}(A)`:

    >>> from spherenet.theory import projection_lr
    >>> projection_lr(0.5, radial=-2.0 * 5.0)
    0.08333333333333333
    """
    lr = _real(lr, "lr", positive=True)
    radial = _real_array(radial, "radial")
    if not np.all(np.isfinite(radial)):
        raise ValueError(f"radial must be finite, got {radial!r}")
    denominator = 1.0 - lr * radial
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(denominator > 0, lr / denominator, np.nan)
    return float(value) if value.ndim == 0 else value


def projection_rate(eigenvalues, lr, radial):
    r"""Local rate of gradient descent under the projection strategy.

    The rate of Riemannian gradient descent at the effective step
    :func:`projection_lr` at the minimizer, :math:`\eta' = \eta/(1 - \eta c)`.

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues of the Riemannian Hessian at the minimizer.
    lr : float
    radial : float
        :math:`c = \langle x^*, \nabla f(x^*)\rangle` (common to every sphere factor).

    Returns
    -------
    float
        NaN when :math:`1 - \eta c \le 0`.

    Notes
    -----
    The projection iteration is :math:`x_{k+1} = R_{x_k}(-\eta'_k
    \operatorname{grad} f(x_k))` with :math:`\eta'_k = \eta/(1 - \eta
    \langle x_k, g_k\rangle)` (:func:`projection_lr`); near :math:`x^*` the
    step size tends to :math:`\eta'`, which is all the linearization sees.

    Examples
    --------
    >>> from spherenet.theory import projection_rate
    >>> round(projection_rate([6.0, 8.0], lr=0.5, radial=-10.0), 12)
    0.5
    """
    smallest, largest = _eigenvalues(eigenvalues)
    radial = _real(radial, "radial")
    effective = projection_lr(lr, radial)
    if math.isnan(effective):
        return math.nan
    return gd_rate([smallest, largest], effective)


def projection_lr_limit(eigenvalues, radial):
    r"""The largest stable step size of the projection strategy (``inf``: none).

    Parameters
    ----------
    eigenvalues : array_like
    radial : float

    Returns
    -------
    float
        :math:`2/(L + 2c)` when :math:`L + 2c > 0`, else ``inf``.

    Notes
    -----
    :math:`\eta' < 2/L` with :math:`\eta' = \eta/(1 - \eta c)` and
    :math:`1 - \eta c > 0` is :math:`\eta (L + 2c) < 2`. When :math:`c < 0`
    the effective step stays below :math:`1/|c|` however large
    :math:`\eta`; if also :math:`L \le 2|c|` no step size is unstable. For the
    Rayleigh quotient :math:`-x^\top A x`, :math:`L + 2c = -2(\lambda_1 +
    \lambda_n)`: normalizing after each step never diverges when
    :math:`\lambda_1 + \lambda_n \ge 0`.

    Examples
    --------
    >>> from spherenet.theory import projection_lr_limit
    >>> projection_lr_limit([6.0, 8.0], radial=-10.0)
    inf
    >>> projection_lr_limit([6.0, 8.0], radial=1.0)
    0.2
    """
    _, largest = _eigenvalues(eigenvalues)
    radial = _real(radial, "radial")
    scale = largest + 2.0 * radial
    return 2.0 / scale if scale > 0 else math.inf


def projection_optimal_lr(eigenvalues, radial):
    r"""The step size with the best local rate under the projection strategy, and that rate.

    Parameters
    ----------
    eigenvalues : array_like
        All > 0.
    radial : float

    Returns
    -------
    lr : float
        The :math:`\eta` whose effective step is :math:`2/(\mu + L)`:
        :math:`\eta = \eta'/(1 + \eta' c)`; ``inf`` when that effective step
        is out of reach (:math:`c < 0` and :math:`2/(\mu + L) \ge 1/|c|`):
        the rate then improves with :math:`\eta` all the way.
    rate : float
        The rate at that step (its limit as :math:`\eta \to \infty` in the
        second case, at :math:`\eta' = 1/|c|`).

    Examples
    --------
    >>> from spherenet.theory import projection_optimal_lr
    >>> projection_optimal_lr([6.0, 8.0], radial=-1.0)
    (0.16666666666666666, 0.14285714285714285)
    >>> lr, rate = projection_optimal_lr([6.0, 8.0], radial=-10.0)
    >>> lr, round(rate, 12)
    (inf, 0.4)
    """
    best, rate = gd_optimal_lr(eigenvalues)
    radial = _real(radial, "radial")
    denominator = 1.0 + best * radial
    if denominator > 0:
        return best / denominator, rate
    return math.inf, gd_rate(eigenvalues, -1.0 / radial)


# --- the reparam strategy -----------------------------------------------------------------------


def reparam_lr(lr, v_norm):
    r"""Effective Riemannian step of weight normalization w = v/||v||: :math:`\eta/\|v\|^2`.

    Parameters
    ----------
    lr : float
        Step size :math:`\eta` of gradient descent on v.
    v_norm : float or array_like
        :math:`\|v\|` (one per sphere factor, or one for all), positive.

    Returns
    -------
    float or ndarray

    Notes
    -----
    The gradient of :math:`v \mapsto f(v/\|v\|)` is
    :math:`P_w \nabla f(w)/\|v\|`, orthogonal to v; so with
    :math:`r = \|v\|`,

    .. math::

        \frac{v - \eta P_w \nabla f(w)/r}{\|v - \eta P_w \nabla f(w)/r\|}
        = R_w\!\left(-\frac{\eta}{r^2} \operatorname{grad} f(w)\right),
        \qquad r_{+}^2 = r^2 + \frac{\eta^2}{r^2}\|\operatorname{grad} f(w)\|^2,

    a Riemannian step with the projection retraction and step
    :math:`\eta/r^2`, after which the norm has grown. The effective step
    decreases along the run to :math:`\eta/r_\infty^2` (the norm converges
    when the gradients decay linearly): the asymptotic rate is
    :func:`gd_rate` at that step, and a step size too large for the local
    model makes the iterates bounce and the norm grow until it is not: this
    strategy has no stability limit, only slow phases (the "auto rate-tuning"
    of Arora, Li & Lyu 2019; the effective step :math:`\eta/\|v\|^2` is van
    Laarhoven's 2017).

    References
    ----------
    T. Salimans, D. P. Kingma, Weight normalization, NeurIPS 2016.
    T. van Laarhoven, L2 regularization versus batch and weight
    normalization, arXiv:1706.05350, 2017. S. Arora, Z. Li, K. Lyu,
    Theoretical analysis of auto rate-tuning by batch normalization, ICLR 2019.

    Examples
    --------
    >>> from spherenet.theory import reparam_lr
    >>> reparam_lr(0.5, v_norm=2.0)
    0.125
    """
    lr = _real(lr, "lr", positive=True)
    v_norm = _real_array(v_norm, "v_norm")
    if not np.all(np.isfinite(v_norm) & (v_norm > 0)):
        raise ValueError(f"v_norm must be positive and finite, got {v_norm!r}")
    value = lr / (v_norm * v_norm)
    return float(value) if value.ndim == 0 else value


# --- heavy ball --------------------------------------------------------------------------------


def _heavy_ball_radius(curvature, lr, momentum):
    """Largest |root| of z^2 - (1 + beta - lr lambda) z + beta."""
    b = 1.0 + momentum - lr * curvature
    disc = b * b - 4.0 * momentum
    # A double root (Polyak's optimum) is ill-conditioned: a disc of rounding size would
    # move the root by sqrt(eps); treat it as zero.
    if disc <= 8.0 * np.finfo(np.float64).eps * (b * b + 4.0 * momentum):
        return math.sqrt(momentum)  # complex pair (or double root), |z|^2 = beta
    return 0.5 * (abs(b) + math.sqrt(disc))


def heavy_ball_rate(eigenvalues, lr, momentum):
    r"""Local rate of gradient descent with heavy-ball momentum (RSGD with ``momentum``).

    Parameters
    ----------
    eigenvalues : array_like
        Eigenvalues of the Riemannian Hessian at the minimizer.
    lr : float
        :math:`\eta > 0`.
    momentum : float
        :math:`\beta \in [0, 1)`.

    Returns
    -------
    float
        The largest modulus of the roots of
        :math:`z^2 - (1 + \beta - \eta\lambda) z + \beta` over the extreme
        eigenvalues :math:`\lambda`.

    Notes
    -----
    RSGD with momentum, :math:`m_k = \beta\,T(m_{k-1}) + \operatorname{grad}
    f(x_k)`, :math:`x_{k+1} = R_{x_k}(-\eta m_k)`, is to first order at
    :math:`x^*` (where transport and retraction are the identity) Polyak's
    heavy ball :math:`e_{k+1} = e_k - \eta H e_k + \beta(e_k - e_{k-1})`.
    On an eigenvector of H it is a two-term recurrence with characteristic
    polynomial :math:`z^2 - (1 + \beta - \eta\lambda)z + \beta`; complex
    roots have modulus :math:`\sqrt\beta` and real ones grow away from it
    monotonically towards the ends of the spectrum, so the extreme
    eigenvalues decide (Polyak 1964; Polyak 1987, section 3.2.1). The
    Riemannian version: Boumal 2023, section 4.9 and references there.

    Examples
    --------
    >>> from spherenet.theory import heavy_ball_rate
    >>> round(heavy_ball_rate([1.0, 4.0], lr=4.0 / 9.0, momentum=1.0 / 9.0), 12)  # Polyak
    0.333333333333
    """
    smallest, largest = _eigenvalues(eigenvalues)
    lr = _real(lr, "lr", positive=True)
    momentum = _real(momentum, "momentum", low=0.0, high=1.0)
    return max(_heavy_ball_radius(smallest, lr, momentum),
               _heavy_ball_radius(largest, lr, momentum))


def heavy_ball_lr_limit(eigenvalues, momentum):
    r"""The largest stable step size of heavy ball: :math:`2(1 + \beta)/L`.

    Examples
    --------
    >>> from spherenet.theory import heavy_ball_lr_limit
    >>> heavy_ball_lr_limit([1.0, 4.0], momentum=0.5)
    0.75
    """
    _, largest = _eigenvalues(eigenvalues)
    momentum = _real(momentum, "momentum", low=0.0, high=1.0)
    return 2.0 * (1.0 + momentum) / largest if largest > 0 else math.inf


def heavy_ball_optimal(eigenvalues):
    r"""Polyak's optimal heavy-ball parameters and their rate.

    Parameters
    ----------
    eigenvalues : array_like
        All > 0.

    Returns
    -------
    lr : float
        :math:`4/(\sqrt L + \sqrt\mu)^2`.
    momentum : float
        :math:`\left(\frac{\sqrt L - \sqrt\mu}{\sqrt L + \sqrt\mu}\right)^2`.
    rate : float
        :math:`(\sqrt\kappa - 1)/(\sqrt\kappa + 1)`, with :math:`\kappa = L/\mu`.

    Notes
    -----
    Both extreme eigenvalues then have a double root of modulus
    :math:`\sqrt\beta`, so the error decays like :math:`k\,\rho^k`: a fitted
    rate over a window of iterations k is larger by about a factor
    :math:`e^{1/k}`.

    References
    ----------
    B. T. Polyak, Some methods of speeding up the convergence of iteration
    methods, 1964, theorem 9.

    Examples
    --------
    >>> from spherenet.theory import heavy_ball_optimal
    >>> heavy_ball_optimal([1.0, 4.0])
    (0.4444444444444444, 0.1111111111111111, 0.3333333333333333)
    """
    smallest, largest = _eigenvalues(eigenvalues)
    if not smallest > 0:
        raise ValueError(f"the smallest Hessian eigenvalue must be positive for a linear rate, "
                         f"got {smallest!r}")
    root_l, root_m = math.sqrt(largest), math.sqrt(smallest)
    lr = 4.0 / (root_l + root_m) ** 2
    rate = (root_l - root_m) / (root_l + root_m)
    return lr, rate * rate, rate


# --- the local model at a point -----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class LocalModel:
    """What the local rates depend on, measured at a minimizer: see :func:`local_model`.

    Attributes
    ----------
    smallest, largest : float
        Extreme eigenvalues of the Riemannian Hessian.
    radial : float or None
        :math:`\\langle x^*, \\nabla f(x^*)\\rangle`, shared by every sphere
        factor; None when the factors disagree (then the projection strategy
        has no single effective step, and no prediction here).
    grad_norm : float
        Riemannian gradient norm at the point (about 0 at a minimizer).
    """

    smallest: float
    largest: float
    radial: object
    grad_norm: float

    @property
    def eigenvalues(self):
        """``array([smallest, largest])``: all that the rates need."""
        return np.array([self.smallest, self.largest])

    def rate(self, strategy="riemannian", lr=None, momentum=0.0, v_norm=None):
        """Predicted local rate of RSGD(lr, momentum) under ``strategy``.

        Parameters
        ----------
        strategy : {"riemannian", "projection", "reparam"}
        lr : float
        momentum : float, default 0
            Heavy ball; under the riemannian strategy only (the projection
            strategy's ambient buffer breaks the identity its rate rests on).
        v_norm : float, optional
            The reparam strategy's final :math:`\\|v\\|` (its history's
            ``v_norm``): needed for that strategy.

        Returns
        -------
        float

        Raises
        ------
        ValueError
            An unknown strategy, a combination the theory here does not
            cover, a missing ``v_norm`` or ``radial``.

        Examples
        --------
        >>> from spherenet.theory import LocalModel
        >>> model = LocalModel(smallest=1.0, largest=4.0, radial=-2.0, grad_norm=0.0)
        >>> round(model.rate("riemannian", lr=0.4), 9), round(model.rate("projection", lr=2.0), 9)
        (0.6, 0.6)
        >>> round(model.rate("riemannian", lr=4 / 9, momentum=1 / 9), 9)  # Polyak's optimum
        0.333333333
        >>> round(model.rate("reparam", lr=1.6, v_norm=2.0), 9)
        0.6
        """
        if lr is None:
            raise ValueError("give the step size lr")
        momentum = _real(momentum, "momentum", low=0.0, high=1.0)
        if strategy == "riemannian":
            if momentum > 0:
                return heavy_ball_rate(self.eigenvalues, lr, momentum)
            return gd_rate(self.eigenvalues, lr)
        if strategy not in ("projection", "reparam"):
            raise ValueError(f"strategy must be one of ['riemannian', 'projection', 'reparam'], "
                             f"got {strategy!r}")
        if momentum > 0:
            raise ValueError(f"no rate prediction for the {strategy} strategy with momentum: "
                             "its ambient buffer is not a Riemannian heavy ball")
        if strategy == "projection":
            if self.radial is None:
                raise ValueError("the sphere factors have different radial gradients "
                                 "<x*, egrad>: no single effective step to predict with")
            return projection_rate(self.eigenvalues, lr, self.radial)
        if v_norm is None:
            raise ValueError("the reparam strategy's rate needs the final v_norm of the run")
        return gd_rate(self.eigenvalues, reparam_lr(lr, v_norm))


def _radial(manifold, x, egrad):
    """<x_k, g_k> per sphere factor (None for a manifold without one)."""
    factors = manifold.manifolds if isinstance(manifold, Product) else (manifold,)
    xs = tuple(x) if isinstance(manifold, Product) else (x,)
    gs = tuple(egrad) if isinstance(manifold, Product) else (egrad,)
    values = [np.ravel(m._red.dot(np.asarray(xi, dtype=np.float64), np.asarray(gi, np.float64)))
              for m, xi, gi in zip(factors, xs, gs) if isinstance(m, _Spheres)]
    return np.concatenate(values) if values else None


def local_model(cost, manifold, x, grad=None, hess=None, *, gtol=1e-6, rtol=1e-8):
    r"""Extreme Hessian eigenvalues and radial gradient at a minimizer: the inputs of the rates.

    Parameters
    ----------
    cost : callable
        ``cost(x) -> float`` (``autograd.numpy`` when grad/hess are not given).
    manifold : Manifold
        A Sphere, an Oblique, or a Product with sphere factors.
    x : array or tuple of arrays
        A minimizer (checked to be on the manifold and critical).
    grad, hess : callable, optional
        Euclidean gradient and Hessian-vector product, as for
        :func:`~spherenet.optim.spectrum.hessian_spectrum`.
    gtol : float, default 1e-6
        Largest accepted Riemannian gradient norm at x.
    rtol : float, default 1e-8
        Relative agreement asked of the sphere factors' radial gradients
        for ``radial`` to be set.

    Returns
    -------
    LocalModel

    Raises
    ------
    ValueError
        x off the manifold or not critical (gradient norm above ``gtol``);
        a negative or NaN ``gtol`` or ``rtol``.
    TypeError
        ``manifold`` is not a spherenet Manifold; ``gtol`` or ``rtol`` not a
        real number.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.theory import local_model
    >>> A = np.diag([1.0, 2.0, 5.0])
    >>> model = local_model(lambda x: -x @ A @ x, Sphere(3), np.array([0.0, 0.0, 1.0]))
    >>> [round(v, 9) for v in (model.smallest, model.largest, model.radial)]
    [6.0, 8.0, -10.0]
    >>> round(model.rate("riemannian", lr=0.1), 9), round(model.rate("projection", lr=0.5), 9)
    (0.4, 0.5)
    """
    from .optim._problem import Problem
    from .optim.spectrum import hessian_spectrum

    if not isinstance(manifold, Manifold):
        raise TypeError(f"manifold must be a spherenet Manifold, got {type(manifold).__name__}")
    from .minimize import _check_signature

    for name, fun in (("cost", cost), ("grad", grad)):
        _check_signature(name, fun, finite_sum=False, caller="local_model")
    for name, value in (("gtol", gtol), ("rtol", rtol)):
        if not _real(value, name) >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    spectrum = hessian_spectrum(cost, manifold, x, k=1, which="both", grad=grad, hess=hess)
    if not spectrum.grad_norm <= gtol:
        raise ValueError(f"x is not a critical point: the Riemannian gradient norm is "
                         f"{spectrum.grad_norm:.3g}, more than gtol={gtol:g}")
    x = tuple(x) if _tangent.is_tuple(x) else x
    _, egrad = Problem(cost, manifold.unchecked, egrad=grad).cost_and_egrad(x)
    values = _radial(manifold, x, egrad)
    radial = None
    if values is not None:
        center = float(np.mean(values))
        if np.all(np.abs(values - center) <= rtol * max(1.0, abs(center))):
            radial = center
    return LocalModel(smallest=float(spectrum.smallest[0]), largest=float(spectrum.largest[0]),
                      radial=radial, grad_norm=float(spectrum.grad_norm))
