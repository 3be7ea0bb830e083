"""
The Thomson problem: charges on a sphere
========================================

Place :math:`N` unit charges on the sphere :math:`S^2` so that their Coulomb
energy :math:`E = \\sum_{i<j} \\|x_i - x_j\\|^{-1}` is minimal. Each charge is
a unit vector, so the configuration is a 3-by-N matrix with unit columns: a
point of ``Oblique(3, N)``, the product of N copies of :math:`S^2`.

The lesson: the product geometry handles all N spheres at once (one
whole-array operation per map), and second-order solvers reach the published
energies to their last digit in a few dozen iterations.
"""

# %%
# Known minimal energies
# ----------------------
# :data:`~spherenet.problems.THOMSON_ENERGIES` tabulates them to 9
# decimals; four random starts of the trust-region solver per N.

import matplotlib.pyplot as plt
import numpy as np
from scipy.spatial import ConvexHull

from spherenet.problems import THOMSON_ENERGIES, thomson

best = {}
print("  N   energy found        published      difference")
for N, published in THOMSON_ENERGIES.items():
    problem = thomson(N)
    runs = [problem.minimize(method="trust-regions", rng=seed, gtol=1e-10, maxiter=200)
            for seed in range(4)]
    best[N] = min(runs, key=lambda r: r.fun)
    print(f"{N:3d}   {best[N].fun:.10f}   {published:.9f}   {best[N].fun - published:+.1e}")

# %%
# Twelve charges form an icosahedron: every charge has five nearest
# neighbours, at the same distance.

X = best[12].x
distances = np.linalg.norm(X[:, :, None] - X[:, None, :], axis=0)
nearest = np.sort(distances, axis=1)[:, 1:6]
print("nearest-neighbour distances: min", nearest.min(), "max", nearest.max())
print("edge of the icosahedron inscribed in the unit sphere:",
      4 / np.sqrt(10 + 2 * np.sqrt(5)))

# %%
# Three solvers on N = 32
# -----------------------

problem = thomson(32)
runs = {method: problem.minimize(method=method, rng=0, gtol=1e-9, maxiter=1000)
        for method in ("trust-regions", "cg", "sd")}
lowest = min(r.fun for r in runs.values())
for method, result in runs.items():
    print(f"{method:>13}: {result.nit:4d} iterations, energy {result.fun:.10f}")

fig = plt.figure(figsize=(13, 4.2), constrained_layout=True)
for k, (N, result) in enumerate(((12, best[12]), (32, runs["trust-regions"]))):
    X = result.x
    ax = fig.add_subplot(1, 3, k + 1, projection="3d")
    hull = ConvexHull(X.T)
    for simplex in hull.simplices:
        cycle = list(simplex) + [simplex[0]]
        ax.plot(*X[:, cycle], color="gray", lw=0.6)
    ax.scatter(*X, s=40, color="C3", depthshade=False)
    ax.set_box_aspect((1, 1, 1))
    ax.set_axis_off()
    ax.set_title(f"N = {N}, E = {result.fun:.6f}")
ax = fig.add_subplot(1, 3, 3)
for method, result in runs.items():
    gap = np.maximum(result.history["cost"] - lowest, 1e-16)
    ax.semilogy(gap, ".-", markersize=3, label=method)
ax.set_xlabel("iteration")
ax.set_ylabel("energy - lowest energy found")
ax.set_title("Oblique(3, 32)")
ax.legend()
plt.show()
