"""
Step-size stability: riemannian, projection, reparam
====================================================

How large a step can each strategy take? The local theory
(:mod:`spherenet.theory`, :doc:`/theory`) answers for gradient descent near
the minimizer of :math:`f(x) = -x^\\top A x`, whose Riemannian Hessian has
largest eigenvalue :math:`L = 2(\\lambda_1 - \\lambda_n)`:

* **riemannian**: stable for :math:`\\eta < 2/L`; beyond, the iterates
  wander over the sphere (the distance is bounded, so they cannot run off).
* **projection**: the effective step :math:`\\eta/(1 + 2\\eta\\lambda_1)`
  never exceeds :math:`1/(2\\lambda_1)`, which is below :math:`2/L` whenever
  :math:`\\lambda_1 + \\lambda_n > 0`: no step size is too large. Large
  steps still help less and less.
* **reparam** (:math:`w = v/\\|v\\|`): the effective step is
  :math:`\\eta/\\|v\\|^2`, and a step too large makes :math:`\\|v\\|` grow until
  it is not: no limit either, but a slow start.

A step-size sweep is one more axis of the grid: ``compare(..., lrs=[...])``
(``spherenet compare --lr 0.05,0.1,...`` on the command line).
"""

# %%
# The sweep
# ---------

import math

import matplotlib.pyplot as plt
import numpy as np

from spherenet.experiments import compare, plot_stability, predicted_limits, stability

lrs = [float(f"{lr:.2g}") for lr in np.geomspace(0.05, 20.0, 9)]
strategies = ["riemannian", "projection", "reparam"]
results = compare("rayleigh", strategies, "rsgd", seeds=4, budget=300, executor="serial",
                  lrs=lrs)
limits = predicted_limits("rayleigh", strategies)
print("predicted stability limits:",
      {s: (round(v, 3) if math.isfinite(v) else v) for s, v in limits.items()})

# %%
# Iterations to tolerance (distance 1e-6 to the leading eigenvector)
# ------------------------------------------------------------------
# The median over the seeds, per strategy and step size; ``never`` for a
# step size where most runs did not reach the tolerance in 300 iterations
# (``unstable`` when they did not even halve their distance to it).

table = {(row["strategy"], row["lr"]): row for row in stability(results)}
print(f"{'lr':>6} " + " ".join(f"{s:>12}" for s in strategies))
for lr in lrs:
    cells = []
    for strategy in strategies:
        row = table[strategy, lr]
        if math.isfinite(row["iterations_median"]):
            cells.append(f"{row['iterations_median']:12.0f}")
        else:
            cells.append(f"{'unstable' if 2 * row['diverged'] > row['runs'] else 'never':>12}")
    print(f"{lr:6.3g} " + " ".join(cells))

# %%
# The plot
# --------
# The dashed line is the riemannian limit :math:`2/L`: the measured
# transition sits on it.

figure = plt.figure(figsize=(8, 5), layout="constrained")
plot_stability(results, limits=limits, figure=figure)
plt.show()

# %%
# Well below its limit the riemannian strategy is the fastest; near it its
# rate :math:`|1 - \eta L|` tends to 1 and it slows down, and past
# :math:`2/L` it breaks down, as predicted. The projection strategy pays for
# its shorter effective step at small step sizes but converges at every one,
# ever more slowly gaining as :math:`\eta' \to 1/(2\lambda_1)`. Reparam
# adapts: its norm :math:`\|v\|` grows until the effective step
# :math:`\eta/\|v\|^2` works, which makes it the fastest around and past
# the riemannian limit, until for very large steps the norm it accumulates
# (and the first, wasted steps) slow it down again. With momentum the
# riemannian limit moves to :math:`2(1 + \beta)/L`
# (:func:`spherenet.theory.heavy_ball_lr_limit`).
