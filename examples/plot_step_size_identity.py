"""
Normalize-after-step is a Riemannian step, until momentum
=========================================================

For a unit vector :math:`x`, a Euclidean gradient :math:`g` and a step size
:math:`\\eta` with :math:`1 - \\eta\\langle x, g\\rangle > 0`,

.. math::

    \\frac{x - \\eta g}{\\|x - \\eta g\\|} = R_x(-\\eta' P_x g), \\qquad
    \\eta' = \\frac{\\eta}{1 - \\eta\\langle x, g\\rangle},

where :math:`P_x g = g - \\langle x, g\\rangle x` is the Riemannian gradient
and :math:`R_x(u) = (x + u)/\\|x + u\\|` the projection retraction (the
derivation is on :doc:`/strategies`). So Keras's ``unit_norm()`` after plain
SGD *is* Riemannian SGD, with a step size that changes from step to step.

This example checks the identity to rounding, and then shows how momentum and
Adam break it: their state is kept in the ambient space, where it collects the
radial parts :math:`\\langle x, g\\rangle x` of past gradients.
"""

# %%
# Set-up: a Rayleigh quotient and the two geometries
# --------------------------------------------------
# ``Projection(S).geometry`` is the geometry the projection strategy hands to
# the optimizers: the gradient is used as is and a step is "add, then
# normalize". ``S`` itself, with the projection retraction, is the Riemannian
# geometry.

import matplotlib.pyplot as plt
import numpy as np

from spherenet import Sphere
from spherenet.optim import RSGD, RAdam
from spherenet.problems import rayleigh
from spherenet.strategies import Projection

rng = np.random.default_rng(0)
n = 50
Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
problem = rayleigh((Q * np.linspace(0.0, 1.0, n)) @ Q.T)
S = Sphere(n, retraction="projection")
projection = Projection(S).geometry
x0 = problem.x0(rng=1)
eta, steps = 0.2, 100


def angle(u, v):
    """The angle between two nonzero vectors (atan2, accurate when small)."""
    u, v = u / np.linalg.norm(u), v / np.linalg.norm(v)
    return float(2.0 * np.arctan2(np.linalg.norm(u - v), np.linalg.norm(u + v)))


# %%
# Plain SGD: the identity holds at every step
# -------------------------------------------
# Run RSGD under the projection geometry; at each step, compare the new point
# with the Riemannian step :math:`R_x(-\eta' P_x g)` from the same point.

rule = RSGD(lr=eta)
x, state = x0, rule.init(projection, x0)
path, identity_error, eta_prime = [x0], [], []
for k in range(steps):
    g = problem.egrad(x)
    x_new, state = rule.step(projection, x, g, state)
    eta_k = eta / (1.0 - eta * (x @ g))
    identity_error.append(np.linalg.norm(x_new - S.retr(x, -eta_k * S.proj(x, g))))
    eta_prime.append(eta_k)
    x = x_new
    path.append(x)
print(f"max |normalize(x - eta g) - R_x(-eta' P_x g)| over {steps} steps: "
      f"{max(identity_error):.1e}")
print(f"eta'/eta between {min(eta_prime) / eta:.3f} and {max(eta_prime) / eta:.3f}")

# %%
# The whole trajectory, too: Riemannian SGD with the schedule
# :math:`\eta'_k` (a step rule accepts a callable ``lr(step)``) retraces the
# projection run to rounding.

riemannian = RSGD(lr=lambda k: eta_prime[k])
y, state = x0, riemannian.init(S, x0)
replay_gap = [0.0]
for k in range(steps):
    y, state = riemannian.step(S, y, problem.egrad(y), state)
    replay_gap.append(S.dist(y, path[k + 1]))
print(f"largest distance between the two trajectories: {max(replay_gap):.1e}")

# %%
# Momentum: the buffer remembers radial parts
# -------------------------------------------
# Under the projection strategy the buffer is ambient,
# :math:`b_{k+1} = \mu b_k + g_k`, and the step is
# :math:`\operatorname{normalize}(x_k - \eta b_{k+1})`: by the same identity,
# :math:`R_{x_k}(-\eta'_k P_{x_k} b_{k+1})` with
# :math:`\eta'_k = \eta/(1 - \eta\langle x_k, b_{k+1}\rangle)`. Riemannian
# momentum instead accumulates tangent vectors and transports them:
# :math:`m_{k+1} = \mu\, T_{x_{k-1}\to x_k} m_k + P_{x_k} g_k`. We feed
# both the *same* points and gradients (those of the projection run) and
# measure the angle between the step actually taken and :math:`-m_{k+1}`. A
# step size only rescales a direction, so any nonzero angle is a step that no
# step size reproduces.

momentum_angles = {}
for mu in (0.5, 0.9):
    rule = RSGD(lr=eta, momentum=mu)
    x, state = x0, rule.init(projection, x0)
    b, m = np.zeros(n), np.zeros(n)
    angles, identity = [], []
    for k in range(steps):
        g = problem.egrad(x)
        x_new, state = rule.step(projection, x, g, state)
        b = mu * b + g                     # the ambient buffer, as the strategy keeps it
        m = mu * m + S.proj(x, g)          # Riemannian momentum along the same points
        eta_k = eta / (1.0 - eta * (x @ b))
        identity.append(np.linalg.norm(x_new - S.retr(x, -eta_k * S.proj(x, b))))
        angles.append(angle(S.inverse_retr(x, x_new), -m))
        m = S.transp(x, x_new, m)
        x = x_new
    momentum_angles[mu] = np.array(angles)
    print(f"momentum {mu}: identity with the ambient buffer holds to {max(identity):.1e};\n"
          f"    angle to the Riemannian momentum step up to {max(angles):.2f} rad "
          f"(median {np.median(angles):.3f})")

# %%
# Adam: the second moment sees the radial part
# --------------------------------------------
# RAdam under the projection strategy keeps one second moment per sphere
# factor, of the *ambient* gradient: :math:`v \leftarrow \beta_2 v + (1 -
# \beta_2)\|g\|^2` with :math:`\|g\|^2 = \langle x, g\rangle^2 + \|P_x g\|^2`.
# The Riemannian RAdam accumulates :math:`\|P_x g\|^2` only. Along the same
# points and gradients, compare the lengths and directions of the two steps.

b1, b2, eps, lr = 0.9, 0.999, 1e-8, 0.05
rule = RAdam(lr=lr, betas=(b1, b2), eps=eps)
x, state = x0, rule.init(projection, x0)
m_r, v_r = np.zeros(n), 0.0
length_ratio, adam_angles = [], []
for k in range(1, steps + 1):
    g = problem.egrad(x)
    x_new, state = rule.step(projection, x, g, state)
    r = S.proj(x, g)
    m_r = b1 * m_r + (1 - b1) * r
    v_r = b2 * v_r + (1 - b2) * (r @ r)
    direction = (m_r / (1 - b1**k)) / (np.sqrt(v_r / (1 - b2**k)) + eps)
    moved = S.inverse_retr(x, x_new)       # the tangent step the projection run took
    length_ratio.append(np.linalg.norm(moved) / np.linalg.norm(lr * direction))
    adam_angles.append(angle(moved, -direction))
    m_r = S.transp(x, x_new, m_r)
    x = x_new
print(f"Adam: projection step / Riemannian step, lengths in ratio {min(length_ratio):.2f} "
      f"to {max(length_ratio):.2f};\n    angle up to {max(adam_angles):.2f} rad")

# %%
# The figure
# ----------

fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
ax = axes[0, 0]
ax.semilogy(np.maximum(identity_error, 1e-18), ".", label="identity error per step")
ax.semilogy(np.maximum(replay_gap, 1e-18), "-", label=r"replay with $\eta'_k$: distance")
ax.axhline(np.finfo(float).eps, color="gray", linestyle="--", label="machine epsilon")
ax.set_ylim(1e-18, 1e-12)
ax.set_title(r"plain SGD: $\mathrm{normalize}(x - \eta g) = R_x(-\eta' P_x g)$")
ax.set_xlabel("step")
ax.legend(fontsize=8)
ax = axes[0, 1]
ax.plot(np.array(eta_prime) / eta)
ax.set_title(r"effective step $\eta'/\eta = 1/(1 - \eta\langle x, g\rangle)$")
ax.set_xlabel("step")
ax = axes[1, 0]
for mu, angles in momentum_angles.items():
    ax.semilogy(np.maximum(angles, 1e-17), label=f"momentum {mu}")
ax.set_ylim(1e-4, 2)
ax.set_title("momentum: angle between the projection step\nand the Riemannian momentum step")
ax.set_xlabel("step")
ax.set_ylabel("rad")
ax.legend()
ax = axes[1, 1]
ax.plot(length_ratio, label="length ratio (projection / Riemannian)")
ax.plot(adam_angles, label="angle between the steps (rad)")
ax.set_title("Adam: the same gradients, other steps")
ax.set_xlabel("step")
ax.legend()
plt.show()

# %%
# Without momentum the identity holds to the last bit, and a Riemannian run
# with the schedule :math:`\eta'_k` retraces the projection run. With
# momentum the projection step is still *some* projection-retraction step,
# but along :math:`P_x b`, where :math:`b` carries
# :math:`\langle x_j, g_j\rangle x_j` from earlier points :math:`x_j \neq x`:
# a radial part of an old gradient becomes tangential once the point has
# moved. With Adam the denominator also counts
# :math:`\langle x, g\rangle^2`, here much larger than
# :math:`\|P_x g\|^2`, and the steps are several times shorter.
