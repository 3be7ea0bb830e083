"""Step rules: functional at heart (state in, state out), with a thin stateful wrapper.

A step rule is configuration only; ``init(geometry, x)`` makes its state and
``step(geometry, x, egrad, state)`` returns ``(new_x, new_state)``. The arrays
of a state may be reused by the next step (a step consumes its input state),
which is what keeps large steps from allocating. ``geometry`` is the
manifold, or a strategy's geometry, so the same rule runs under every
strategy.
"""

import math
import numbers

import numpy as np

from .. import _tangent
from .._checks import check_flag, check_real
from ..manifolds import Product
from ..manifolds.sphere import _Spheres
from ..strategies import ProjectionGeometry
from . import _momentum
from .schedules import resolve_lr, step_size

__all__ = ["StepRule", "RSGD", "RAdam", "Running"]


class StepRule:
    """Base class of step rules."""

    def init(self, geometry, x):
        """The initial state at the point ``x``."""
        return {"step": 0}

    def step(self, geometry, x, egrad, state):
        """One step from ``x`` with Euclidean gradient ``egrad``: ``(new_x, new_state)``."""
        raise NotImplementedError

    def start(self, geometry, x):
        """A stateful :class:`Running` wrapper starting at ``x``."""
        return Running(self, geometry, x)

    def lr_at(self, step):
        return step_size(self._schedule, step)


class Running:
    """A step rule bound to a geometry and a current point.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.optim import RSGD
    >>> M = Sphere(3)
    >>> run = RSGD(lr=0.1).start(M, np.array([1.0, 0.0, 0.0]))
    >>> x = run.step(np.array([0.0, -1.0, 0.0]))
    >>> round(float(np.linalg.norm(x)), 15)
    1.0
    """

    def __init__(self, rule, geometry, x):
        self.rule = rule
        self.geometry = geometry
        self.x = x
        self.state = rule.init(geometry, x)

    def step(self, egrad):
        self.x, self.state = self.rule.step(self.geometry, self.x, egrad, self.state)
        return self.x


def _map(fun, *args):
    if _tangent.is_tuple(args[0]):
        return tuple(fun(*a) for a in zip(*args))
    return fun(*args)


class RSGD(StepRule):
    """Riemannian stochastic gradient descent with momentum.

    x+ = R_x(-lr d) with d = grad (no momentum), or the momentum buffer
    m <- momentum * m + grad (moved to the new tangent space by the
    geometry's vector transport after the step), or grad + momentum * m with
    Nesterov.

    Parameters
    ----------
    lr : float or callable
        Step size, or a schedule ``lr(step)`` (see :mod:`spherenet.optim.schedules`).
    momentum : float, default 0
    nesterov : bool, default False
    weight_decay : float, default 0
        Adds ``weight_decay * x`` to the Euclidean gradient. On a sphere
        factor the radial part is projected out, so it only acts on
        Euclidean factors.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Sphere
    >>> from spherenet.optim import RSGD
    >>> M, rule = Sphere(2), RSGD(lr=0.5)
    >>> x, state = rule.step(M, np.array([1.0, 0.0]), np.array([0.0, -1.0]), rule.init(M, None))
    >>> np.round(x, 6)
    array([0.877583, 0.479426])
    """

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, weight_decay=0.0):
        self._schedule = resolve_lr(lr)
        self.lr = lr
        momentum = check_real(momentum, "momentum")
        nesterov = check_flag(nesterov, "nesterov")
        weight_decay = check_real(weight_decay, "weight_decay")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0.0:
            raise ValueError("nesterov needs a positive momentum")
        if not 0.0 <= weight_decay < math.inf:
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay}")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self.weight_decay = float(weight_decay)

    def __repr__(self):
        return (f"RSGD(lr={self.lr!r}, momentum={self.momentum}, nesterov={self.nesterov}, "
                f"weight_decay={self.weight_decay})")

    def init(self, geometry, x):
        return {"step": 0, "momentum": None}

    def step(self, geometry, x, egrad, state):
        lr = self.lr_at(state["step"])
        if self.weight_decay:
            egrad = _tangent.lincomb(1.0, egrad, self.weight_decay, x)
        if self.momentum == 0.0:
            new_x = geometry.gradient_step(x, egrad, lr)
            return new_x, {"step": state["step"] + 1, "momentum": None}
        if not self.nesterov:
            # Sphere, Oblique and Euclidean factors, under riemannian, projection or none:
            # the same step, fused into two passes over memory (see _momentum).
            fused = _momentum.momentum_step(geometry, x, egrad, state["momentum"], lr, self.momentum)
            if fused is not None:
                return fused[0], {"step": state["step"] + 1, "momentum": fused[1]}
        rgrad = geometry.egrad2rgrad(x, egrad)
        buf = state["momentum"]
        buf = rgrad if buf is None else _tangent.lincomb(self.momentum, buf, 1.0, rgrad)
        direction = _tangent.lincomb(1.0, rgrad, self.momentum, buf) if self.nesterov else buf
        new_x = geometry.retr(x, _tangent.lincomb(-lr, direction))
        buf = geometry.transp(x, new_x, buf)
        return new_x, {"step": state["step"] + 1, "momentum": buf}


def _factor_sq(geometry, u):
    """Squared norm per factor: one scalar per sphere, one per coordinate elsewhere."""
    if isinstance(geometry, ProjectionGeometry):
        # The projection strategy steps in the ambient space, but its sphere
        # factors are still factors: one second moment each, as under riemannian.
        return _factor_sq(geometry.manifold, u)
    if isinstance(geometry, Product):
        return tuple(_factor_sq(m, ui) for m, ui in zip(geometry.manifolds, u))
    if isinstance(geometry, _Spheres):
        return geometry._red.dot(u, u).astype(u.dtype)
    if _tangent.is_tuple(u):
        return tuple(ui * ui for ui in u)
    return u * u


class RAdam(StepRule):
    """Riemannian Adam / AMSGrad (Becigneul & Ganea 2019).

    With r = grad f(x) (Riemannian), t the step number:

    ``m <- b1 m + (1 - b1) r``,  ``v <- b2 v + (1 - b2) |r|^2``,
    x+ = R_x(-lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)),
    then m is moved to T_{x+} by the vector transport.

    Parameters
    ----------
    lr : float or callable, default 1e-3
    betas : (float, float), default (0.9, 0.999)
    eps : float, default 1e-8
    amsgrad : bool, default False
        Use the running maximum of v (AMSGrad).
    adaptivity : {"factor", "coordinate"}, default "factor"
        ``"factor"``: ``|r|^2`` is one scalar per sphere factor (per column of an
        Oblique): the intrinsic choice of Becigneul & Ganea, and the direction
        stays tangent. Euclidean factors are products of lines, so there it is
        one scalar per coordinate, i.e. Adam. Under the projection strategy the
        sphere factors keep one scalar each (of the ambient gradient), so that
        the two strategies differ only in how the constraint is kept.
        (geoopt's ``RiemannianAdam`` is of this kind too: its second moment is
        ``component_inner``, one number per point of its ``Sphere``.)
        ``"coordinate"``: one scalar per ambient coordinate, as Euclidean Adam
        followed by Keras ``unit_norm`` keeps it; the coordinate-wise division
        leaves the tangent space, so the direction is projected back to T_x
        before the retraction.

    Examples
    --------
    >>> import numpy as np
    >>> from spherenet import Oblique
    >>> from spherenet.optim import RAdam
    >>> M = Oblique(3, 4)
    >>> run = RAdam(lr=0.1).start(M, M.random_point(rng=0))
    >>> x = run.step(np.ones((3, 4)))
    >>> bool(np.allclose(np.linalg.norm(x, axis=0), 1.0))
    True
    """

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, adaptivity="factor"):
        self._schedule = resolve_lr(lr)
        self.lr = lr
        if (isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2
                or not all(isinstance(b, numbers.Real) and not isinstance(b, (bool, np.bool_))
                           for b in betas)):
            raise TypeError(f"betas must be a pair (beta1, beta2) of numbers in [0, 1), got "
                            f"{betas!r}")
        b1, b2 = betas
        if not (0.0 <= b1 < 1.0 and 0.0 <= b2 < 1.0):
            raise ValueError(f"betas must be in [0, 1), got {betas}")
        eps = check_real(eps, "eps")
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        if adaptivity not in ("factor", "coordinate"):
            raise ValueError(f"adaptivity must be 'factor' or 'coordinate', got {adaptivity!r}")
        self.betas = (float(b1), float(b2))
        self.eps = float(eps)
        self.amsgrad = check_flag(amsgrad, "amsgrad")
        self.adaptivity = adaptivity

    def __repr__(self):
        return (f"RAdam(lr={self.lr!r}, betas={self.betas}, eps={self.eps}, "
                f"amsgrad={self.amsgrad}, adaptivity={self.adaptivity!r})")

    def init(self, geometry, x):
        return {"step": 0, "m": None, "v": None, "v_max": None}

    def step(self, geometry, x, egrad, state):
        b1, b2 = self.betas
        t = state["step"] + 1
        lr = self.lr_at(state["step"])
        rgrad = geometry.egrad2rgrad(x, egrad)
        if self.adaptivity == "factor":
            sq = _factor_sq(geometry, rgrad)
        else:
            sq = _map(lambda r: r * r, rgrad)
        m, v = state["m"], state["v"]
        m = _tangent.lincomb(1.0 - b1, rgrad) if m is None else _tangent.lincomb(b1, m, 1.0 - b1, rgrad)
        v = _tangent.lincomb(1.0 - b2, sq) if v is None else _tangent.lincomb(b2, v, 1.0 - b2, sq)
        v_max = state["v_max"]
        if self.amsgrad:
            v_max = v if v_max is None else _map(np.maximum, v_max, v)
        denom_src = v_max if self.amsgrad else v
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t

        def direction_of(mi, vi):
            scale = mi.dtype.type(1.0 / c1)
            return (mi * scale) / (np.sqrt(vi * vi.dtype.type(1.0 / c2)) + vi.dtype.type(self.eps))

        direction = _map(direction_of, m, denom_src)
        if self.adaptivity == "coordinate":
            direction = geometry.proj(x, direction)
        new_x = geometry.retr(x, _tangent.lincomb(-lr, direction))
        m = geometry.transp(x, new_x, m)
        return new_x, {"step": t, "m": m, "v": v, "v_max": v_max}
