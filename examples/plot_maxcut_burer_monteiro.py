"""
Max-Cut by Burer-Monteiro on the oblique manifold
=================================================

The Goemans-Williamson relaxation of Max-Cut is the semidefinite program
:math:`\\max \\tfrac14\\langle L, X\\rangle` over :math:`X \\succeq 0` with
:math:`\\operatorname{diag}(X) = 1`. Burer and Monteiro write
:math:`X = Y^\\top Y` with :math:`Y \\in \\mathbb{R}^{p \\times n}`: the
constraint :math:`\\operatorname{diag}(X) = 1` says every column of
:math:`Y` is a unit vector, so :math:`Y` lives on ``Oblique(p, n)``, a
product of :math:`n` spheres, and the problem becomes smooth and
unconstrained on a manifold.

The lesson: for small :math:`p` the factorized problem has spurious local
optima; once :math:`p(p+1)/2 > n` (Boumal, Voroninski & Bandeira 2016) the
second-order critical points a Riemannian trust-region method finds are
global, which :func:`~spherenet.problems.maxcut_certificate` *certifies*
with a dual bound.
"""

# %%
# A random graph
# --------------

import matplotlib.pyplot as plt
import numpy as np

from spherenet.problems import cut_value, maxcut

rng = np.random.default_rng(0)
n = 60
W = np.triu((rng.random((n, n)) < 0.15).astype(float), 1)
W = W + W.T
print(f"{n} vertices, {int(W.sum() / 2)} edges")

# %%
# The rank p: local optima, then certified global ones
# ----------------------------------------------------
# For each rank, eight random starts of the trust-region solver. The
# certificate returns the SDP value of :math:`Y^\top Y` and an upper bound on
# the SDP optimum; they agree exactly when :math:`Y` is globally optimal.
# (At :math:`p = 1` each column is :math:`\pm 1`: the manifold has dimension
# 0 and there is nothing to optimize -- these are random cuts.)

ranks = [1, 2, 3, 4, 6, maxcut(W).manifold.shape[0]]
values, bounds = {}, {}
for p in ranks:
    problem = maxcut(W, rank=p)
    runs = [problem.minimize(method="trust-regions", rng=seed, gtol=1e-8, maxiter=200)
            for seed in range(8)]
    values[p] = [-r.fun for r in runs]
    best = min(runs, key=lambda r: r.fun)
    bounds[p] = problem.certificate(best.x)
    print(f"p = {p:2d}: best value {max(values[p]):.6f}, certified bound {bounds[p][1]:.6f}")

# %%
# Convergence at the default rank
# -------------------------------
# The default rank is the smallest :math:`p` with :math:`p(p+1)/2 > n`.
# Trust regions use the Riemannian Hessian (from ``ehess`` by
# ``ehess2rhess``); conjugate gradients only the gradient.

problem = maxcut(W)
results = {method: problem.minimize(method=method, rng=0, gtol=1e-9, maxiter=500)
           for method in ("trust-regions", "cg")}
for method, result in results.items():
    primal, bound = problem.certificate(result.x)
    print(f"{method:>13}: {result.nit} iterations, SDP value {primal:.9f}, "
          f"gap to the certified bound {bound - primal:.1e}")

# %%
# Rounding to a cut
# -----------------
# Goemans-Williamson: draw a random hyperplane, cut the vertices by the sign
# of :math:`r^\top y_i`. In expectation the cut is at least 0.878 times the
# SDP value, which is itself at least the maximum cut.

Y = results["trust-regions"].x
sdp = problem.certificate(Y)[0]
cuts = [cut_value(W, rng.standard_normal(Y.shape[0]) @ Y) for _ in range(500)]
print(f"SDP value {sdp:.3f}; random hyperplane cuts: mean {np.mean(cuts):.1f}, "
      f"best {max(cuts):.0f}")

fig, axes = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
ax = axes[0]
for p in ranks:
    ax.plot([p] * len(values[p]), values[p], "o", color="C0", alpha=0.5)
ax.plot(ranks, [bounds[p][1] for p in ranks], "s--", color="C3",
        label="certified upper bound\n(from the best start)")
ax.axhline(sdp, color="gray", lw=0.8)
ax.set_xlabel("rank p")
ax.set_ylabel("SDP value reached")
ax.set_title("8 starts per rank")
ax.legend()
ax = axes[1]
for method, result in results.items():
    ax.semilogy(result.history["grad_norm"], ".-", label=method)
ax.set_xlabel("iteration")
ax.set_ylabel("Riemannian gradient norm")
ax.set_title(f"Oblique{problem.manifold.shape}")
ax.legend()
ax = axes[2]
ax.hist(cuts, bins=30, color="C0", alpha=0.7)
ax.axvline(sdp, color="C3", label="SDP value (upper bound)")
ax.axvline(0.878 * sdp, color="C1", linestyle="--", label="0.878 x SDP value")
ax.set_xlabel("cut weight")
ax.set_title("500 hyperplane roundings")
ax.legend()
plt.show()
