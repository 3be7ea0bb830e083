"""
Is my gradient right? Taylor slopes on the sphere
=================================================

Along a curve :math:`c(h) = R_x(hd)` through :math:`x` with velocity
:math:`d`, the first-order model :math:`f(x) + h\\langle\\operatorname{grad}
f(x), d\\rangle` is off by :math:`O(h^2)` when the gradient is right and by
:math:`O(h)` when it is wrong. On a log-log plot of the error against
:math:`h` that is a slope of 2 or of 1, whatever the constants -- the test of
Manopt's ``checkgradient``, which :func:`spherenet.diagnostics.check_gradient`
follows (and :func:`~spherenet.diagnostics.check_hessian` one order up,
:func:`~spherenet.diagnostics.check_retraction` for the maps themselves).

The lesson: one plot tells a right gradient from a wrong one, and the usual
mistake on a sphere -- forgetting the factor 2 of a quadratic form, or
passing the Riemannian gradient where the Euclidean one is expected -- shows
as a slope of 1.
"""

# %%
# A quadratic form on the sphere, with autograd's gradient
# --------------------------------------------------------
# Leave ``grad`` out and autograd differentiates the cost (written with
# ``autograd.numpy``); ``check_gradient`` converts the Euclidean gradient to
# the Riemannian one with ``egrad2rgrad``.

import autograd.numpy as anp
import matplotlib.pyplot as plt
import numpy as np

from spherenet import Oblique, Sphere
from spherenet.diagnostics import check_gradient, check_hessian, check_retraction

rng = np.random.default_rng(0)
A = rng.standard_normal((20, 20))
A = A + A.T
sphere = Sphere(20)


def cost(x):
    return anp.dot(x, anp.dot(A, x))


right = check_gradient(sphere, cost, rng=0)
print(right)

# %%
# Two wrong gradients
# -------------------
# ``A @ x`` forgets the factor 2; a Euclidean gradient with a wrong
# *normal* part only, :math:`2Ax + 5x`, is *not* wrong: the Riemannian
# gradient projects it away, and the check agrees.

half = check_gradient(sphere, cost, grad=lambda x: A @ x, rng=0)
normal = check_gradient(sphere, cost, grad=lambda x: 2 * A @ x + 5 * x, rng=0)
print(half)
print(normal)

# %%
# Hessians and retractions
# ------------------------
# ``check_hessian`` expects slope 3 along the exponential map; a Hessian off
# by a factor gives slope 2. ``check_retraction`` compares the retraction
# with the exponential map: the projection retraction of the sphere reaches
# the angle :math:`\arctan h` instead of :math:`h`, an error
# :math:`h - \arctan h \approx h^3/3`, so slope 3 (second order).

hessian = check_hessian(sphere, cost, hess=lambda x, u: 2 * A @ u, rng=0)
wrong_hessian = check_hessian(sphere, cost, hess=lambda x, u: A @ u, rng=0)
retraction = check_retraction(Oblique(5, 30, retraction="projection"), rng=0)
for check in (hessian, wrong_hessian, retraction):
    print(check)

# %%
# The plots
# ---------
# Every check result draws itself with ``plot(ax)``: the errors, the line
# fitted on the most linear piece, and a reference line of the expected
# slope.

fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
checks = [
    (right, "autograd's gradient"),
    (half, "gradient A x: factor 2 missing"),
    (normal, "gradient 2 A x + 5 x: normal part ignored"),
    (hessian, "Hessian 2 A u"),
    (wrong_hessian, "Hessian A u: factor 2 missing"),
    (retraction, "projection retraction on Oblique(5, 30)"),
]
for ax, (check, label) in zip(axes.flat, checks):
    check.plot(ax)
    verdict = "passed" if check.passed else "FAILED"
    ax.set_title(f"{label}\n{check.kind} check: {verdict}", fontsize=10)
plt.show()
