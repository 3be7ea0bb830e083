"""Plain NumPy references of Riemannian L-BFGS and Barzilai-Borwein, and the maps they run on.

Shared by ``test_ref_lbfgs.py``, ``test_ref_bb.py`` and ``test_ref_qn.py``;
nothing here calls spherenet.

* The maps of a geometry, written out: the sphere (projection retraction
  (x + u)/||x + u|| or the exponential map; projection transport), flat space,
  and the projection strategy's "step, then normalize" (ambient gradient,
  identity transport, slope <P_x g, d>, and the pair's s the displacement
  x_{k+1} - x_k, as in spectral projected gradient methods).
* :func:`ref_lbfgs`: Huang, Gallivan & Absil, SIAM J. Optim. 25(3) (2015),
  as in Manopt's ``rlbfgs``: the inverse Hessian approximation is built as a
  *dense matrix* by the BFGS update
  H <- (I - rho s y^T) H (I - rho y s^T) + rho s s^T from H_0 = <s,y>/<y,y> I
  (1/||grad f(x_0)|| before any pair), not by the two-loop recursion; every
  stored pair is transported to the new point at every iteration; a pair is
  stored only when <s,y>/<s,s> >= epsilon ||grad f(x_k)||^alpha (the cautious
  update); the step comes from Armijo backtracking (c = 1e-4, factor 1/2)
  from t = 1 along the direction.
* :func:`ref_bb`: Iannazzo & Porcelli, IMA J. Numer. Anal. 38(1) (2018),
  Algorithm 1, as in Manopt's ``barzilaiborwein``: d_k = -lambda_k grad f(x_k);
  backtracking t = 1, 1/2, ... until f(R(t d_k)) <= C_k + c t <grad f, d_k>,
  C_k the max-type reference max(f_{k-M+1}, ..., f_k) (Grippo-Lampariello-
  Lucidi) or Zhang & Hager's average (SIAM J. Optim. 14(4), 2004):
  C_0 = f_0, Q_0 = 1, Q_{k+1} = eta Q_k + 1,
  C_{k+1} = (eta Q_k C_k + f_{k+1}) / Q_{k+1}; then, with
  s = T(t d_k) and y = grad f(x_{k+1}) - T(grad f(x_k)),
  lambda_{k+1} = <s,s>/<s,y> (BB1) or <s,y>/<y,y> (BB2), BB1 after odd
  iterations and BB2 after even ones for "alternate", clipped to
  [lambda_min, lambda_max], lambda_max when <s,y> <= 0.
"""

import numpy as np


class Maps:
    """The few maps of a geometry that the references use."""

    def __init__(self, grad, retr, transp, slope=None, pair_step=None):
        self.grad = grad  # (x, egrad) -> the gradient the method uses
        self.retr = retr
        self.transp = transp  # (x, y, v) -> v moved to y
        self.slope = slope or (lambda x, g, d: g @ d)  # d/dt f(R_x(t d)) at 0
        # (x, new_x, step) -> the s of a curvature pair, in the new tangent space
        self.pair_step = pair_step or (lambda x, new_x, step: transp(x, new_x, step))


def sphere_maps(retraction):
    def proj(x, u):
        return u - (x @ u) * x

    def retr(x, u):
        if retraction == "projection":
            v = x + u
            return v / np.linalg.norm(v)
        t = np.linalg.norm(u)
        return x if t == 0 else np.cos(t) * x + np.sin(t) * u / t

    return Maps(proj, retr, lambda x, y, v: proj(y, v))


def euclidean_maps():
    return Maps(lambda x, g: g, lambda x, u: x + u, lambda x, y, v: v)


def projection_maps():
    """The projection strategy on a sphere: ambient gradient, step then normalize."""
    def retr(x, u):
        v = x + u
        return v / np.linalg.norm(v)

    return Maps(lambda x, g: g, retr, lambda x, y, v: v,
                slope=lambda x, g, d: (g - (x @ g) * x) @ d,
                pair_step=lambda x, new_x, step: new_x - x)


def symmetric(n, seed):
    b = np.random.default_rng(seed).standard_normal((n, n))
    return (b + b.T) / 2.0


A8 = symmetric(8, 0)
X8 = np.random.default_rng(1).standard_normal(8)
X8 /= np.linalg.norm(X8)


def rayleigh(x):
    return x @ A8 @ x


def rayleigh_egrad(x):
    return 2.0 * (A8 @ x)


# --- L-BFGS ------------------------------------------------------------------------------


def dense_inverse_hessian(pairs, scale, n):
    H = scale * np.eye(n)
    for s, y, rho in pairs:
        V = np.eye(n) - rho * np.outer(y, s)
        H = V.T @ H @ V + rho * np.outer(s, s)
    return H


def ref_armijo(phi, f_ref, slope, c=1e-4, contraction=0.5, max_trials=25):
    t, value, trials = 1.0, phi(1.0), 1
    while not value <= f_ref + c * t * slope and trials <= max_trials:
        t *= contraction
        value, trials = phi(t), trials + 1
    return t, value


def ref_lbfgs(f, egrad, maps, x0, iterations, memory=30, epsilon=1e-4, power=1.0):
    """``iterations`` steps of Riemannian L-BFGS; one dict per step."""
    n = x0.size
    x = x0
    g = maps.grad(x, egrad(x))
    scale, pairs, out = 1.0 / np.linalg.norm(g), [], []
    for _ in range(iterations):
        d = -dense_inverse_hessian(pairs, scale, n) @ g
        fallback = False
        if not maps.slope(x, g, d) < 0 and pairs:
            pairs, d, fallback = [], -scale * g, True
        t, value = ref_armijo(lambda a: f(maps.retr(x, a * d)), f(x), maps.slope(x, g, d))
        assert value <= f(x)  # the reference never needs the fallback of a failed search
        new_x = maps.retr(x, t * d)
        new_g = maps.grad(new_x, egrad(new_x))
        s = maps.pair_step(x, new_x, t * d)
        y = new_g - maps.transp(x, new_x, g)
        # rho = 1/<s, y> stays the one computed when the pair was stored (as Manopt):
        # the projection transport is not an isometry, so <T s, T y> differs.
        pairs = [(maps.transp(x, new_x, si), maps.transp(x, new_x, yi), rho)
                 for si, yi, rho in pairs]
        accepted = s @ y > 0 and (s @ y) / (s @ s) >= epsilon * np.linalg.norm(g) ** power
        if accepted:
            pairs = (pairs + [(s, y, 1.0 / (s @ y))])[-memory:] if memory > 0 else []
            scale = (s @ y) / (y @ y)
        out.append(dict(x=x, d=d, t=t, step=t * np.linalg.norm(d), new_x=new_x,
                        accepted=accepted, pairs=list(pairs), scale=scale, fallback=fallback))
        x, g = new_x, new_g
    return out


# --- Barzilai-Borwein ---------------------------------------------------------------------


def ref_bb(f, egrad, maps, x0, iterations, rule="alternate", memory=10, step_min=1e-3,
           step_max=1e3, c=1e-4, reference="max", eta=0.85):
    """``iterations`` steps of the RBB method; one dict per step (``f_ref``: C_k)."""
    x = x0
    g = maps.grad(x, egrad(x))
    lam, costs, out = 1.0 / np.linalg.norm(g), [f(x)], []
    average, weight = f(x), 1.0
    for k in range(1, iterations + 1):
        d = -lam * g
        f_ref = max(costs[-memory:]) if reference == "max" else average
        t, value = ref_armijo(lambda a: f(maps.retr(x, a * d)), f_ref, maps.slope(x, g, d), c=c)
        new_x = maps.retr(x, t * d)
        assert f(new_x) <= f_ref
        new_g = maps.grad(new_x, egrad(new_x))
        moved = maps.transp(x, new_x, g)
        s, y = maps.pair_step(x, new_x, t * d), new_g - moved
        if not s @ y > 0:
            new_lam = step_max
        elif rule == "bb1" or (rule == "alternate" and k % 2 == 1):
            new_lam = min(step_max, max(step_min, (s @ s) / (s @ y)))
        else:
            new_lam = min(step_max, max(step_min, (s @ y) / (y @ y)))
        out.append(dict(x=x, d=d, lam=lam, t=t, f_ref=f_ref, step=t * np.linalg.norm(d),
                        new_x=new_x, s=s, y=y))
        costs.append(f(new_x))
        new_weight = eta * weight + 1.0
        average = (eta * weight * average + costs[-1]) / new_weight
        weight = new_weight
        x, g, lam = new_x, new_g, new_lam
    return out
