"""
Distances and logarithms without arccos
=======================================

The textbook distance on the sphere is :math:`\\arccos\\langle x, y\\rangle`.
It is exact in exact arithmetic and poor in floating point: near 1 the
cosine changes by :math:`\\theta^2/2`, so an angle below
:math:`\\sqrt{\\epsilon} \\approx 10^{-8}` rounds to 0 and a small angle
keeps only about half its digits. spherenet forms the sine and the cosine
from the difference :math:`y - x` (near points) or the sum :math:`y + x`
(nearly antipodal points) and takes ``atan2`` of them (see
:doc:`/geometry`).

The lesson, measured here against pymanopt 2.2 (``arccos`` of the clipped
inner product; its logarithm rescales by that distance) and against the
formula of geoopt 0.5's ``Sphere.dist`` (``arccos`` of the inner product
clamped to :math:`[-1 + 10^{-7}, 1 - 10^{-7}]` in float64), reproduced in
NumPy so that this page does not need PyTorch.
"""

# %%
# Points at a known angle
# -----------------------
# :math:`x = e_1` and :math:`y = (\cos\theta, \sin\theta, 0)`: the angle
# between :math:`x` and the *rounded* :math:`y` is ``atan2(y[1], y[0])``,
# correct to an ulp, our reference.

import matplotlib.pyplot as plt
import numpy as np
import pymanopt

from spherenet import Sphere

sphere = Sphere(3)
reference_sphere = pymanopt.manifolds.Sphere(3)
x = np.array([1.0, 0.0, 0.0])


def geoopt_dist(x, y, eps=1e-7):
    """geoopt 0.5.1 Sphere.dist in float64: acos(clamp(<x, y>, -1 + eps, 1 - eps))."""
    return float(np.arccos(np.clip(x @ y, -1.0 + eps, 1.0 - eps)))


def point_at(theta):
    return np.array([np.cos(theta), np.sin(theta), 0.0])


thetas = np.logspace(-12, 0, 61)
rows = {"spherenet": [], "pymanopt": [], "geoopt formula": []}
log_rows = {"spherenet": [], "pymanopt": []}
for theta in thetas:
    y = point_at(theta)
    exact = np.arctan2(y[1], y[0])
    for name, d in (("spherenet", sphere.dist(x, y)),
                    ("pymanopt", reference_sphere.dist(x, y)),
                    ("geoopt formula", geoopt_dist(x, y))):
        rows[name].append(abs(d - exact) / exact)
    for name, u in (("spherenet", sphere.log(x, y)), ("pymanopt", reference_sphere.log(x, y))):
        log_rows[name].append(abs(np.linalg.norm(u) - exact) / exact)

for theta in (1e-12, 1e-8, 1e-4):
    y = point_at(theta)
    print(f"theta = {theta:.0e}: spherenet {sphere.dist(x, y):.6e}, "
          f"pymanopt {reference_sphere.dist(x, y):.6e}, geoopt formula {geoopt_dist(x, y):.6e}")

# %%
# Nearly antipodal points
# -----------------------
# With :math:`y = (-\cos\delta, \sin\delta, 0)` the distance is
# :math:`\pi - \delta`. Near :math:`\pi` a float64 number is only known to
# an absolute :math:`4\cdot 10^{-16}` (an ulp of :math:`\pi`), so we plot
# the absolute error. The inner product is :math:`-1 + \delta^2/2`, which
# rounds to :math:`-1` for :math:`\delta < 10^{-8}`; the sum :math:`x + y`
# keeps :math:`\delta`.

deltas = np.logspace(-12, 0, 61)
far_rows = {"spherenet": [], "pymanopt": [], "geoopt formula": []}
for delta in deltas:
    y = np.array([-np.cos(delta), np.sin(delta), 0.0])
    exact = np.pi - np.arctan2(y[1], -y[0])  # the angle, to an ulp of pi
    for name, d in (("spherenet", sphere.dist(x, y)),
                    ("pymanopt", reference_sphere.dist(x, y)),
                    ("geoopt formula", geoopt_dist(x, y))):
        far_rows[name].append(abs(d - exact))

# %%
# Many columns at once
# --------------------
# On ``Oblique(3, 1000)`` pymanopt's distance sums the columns' inner
# products and takes ``arccos`` after clipping at 1 only: between a point and
# itself it returns the rounding of 1000 cosines, and between a point and its
# antipode a rounded cosine below -1 gives NaN.

from spherenet import Oblique

X = Oblique(3, 1000).random_point(rng=0)
with np.errstate(invalid="ignore"):  # pymanopt's arccos of a cosine below -1
    print("dist(X, X):  spherenet", Oblique(3, 1000).dist(X, X),
          " pymanopt", pymanopt.manifolds.Oblique(3, 1000).dist(X, X))
    print("dist(X, -X): spherenet", Oblique(3, 1000).dist(X, -X),
          " pymanopt", pymanopt.manifolds.Oblique(3, 1000).dist(X, -X),
          " exact pi sqrt(1000) =", np.pi * np.sqrt(1000))

# %%
# The figure
# ----------
# Errors floored at :math:`10^{-17}` to fit the log scale (a zero error is
# exact); the dashed line is the machine epsilon.

floor = 1e-17
fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), constrained_layout=True)
for name, errors in rows.items():
    axes[0].loglog(thetas, np.maximum(errors, floor), ".-", label=name)
axes[0].set_xlabel(r"angle $\theta$")
axes[0].set_title(r"dist$(x, y)$, near points: relative error")
for name, errors in far_rows.items():
    axes[1].loglog(deltas, np.maximum(errors, floor), ".-", label=name)
axes[1].set_xlabel(r"$\delta = \pi - $ angle")
axes[1].set_title(r"dist$(x, y)$, nearly antipodal: absolute error")
for name, errors in log_rows.items():
    axes[2].loglog(thetas, np.maximum(errors, floor), ".-", label=name)
axes[2].set_xlabel(r"angle $\theta$")
axes[2].set_title(r"$\|\log_x(y)\|$, near points: relative error")
for ax in axes:
    ax.axhline(np.finfo(float).eps, color="gray", linestyle="--", lw=0.8)
    ax.set_ylim(floor / 2, 10)
    ax.legend()
plt.show()

# %%
# Below :math:`\theta \approx 10^{-8}` pymanopt's distance is 0, and
# geoopt's clamp (which keeps the gradient of ``acos`` finite) holds every
# distance below :math:`\arccos(1 - 10^{-7}) \approx 4.5\cdot 10^{-4}` at
# that value; in between, ``arccos`` has lost half of the digits. spherenet's
# distance and logarithm stay within a few ulps. For optimization the
# difference shows wherever a distance of nearby points is measured: stopping
# tests on the step length, distances to a known optimum, Karcher means, and
# the logarithm as an inverse retraction.
