"""
L-BFGS and Barzilai-Borwein beside conjugate gradients and trust regions
========================================================================

Four solvers that need nothing but the cost and its gradient (trust regions
also use Hessian-vector products) on two problems with known answers: the
leading eigenvector of a symmetric matrix (a Rayleigh quotient on
``Sphere(500)``) and the Burer-Monteiro form of the Max-Cut relaxation of a
random graph (``Oblique(p, n)``).

* ``"lbfgs"``: Riemannian limited-memory BFGS with the cautious update (Huang,
  Gallivan & Absil 2015): 30 curvature pairs, each moved by the vector
  transport to the current tangent space at every iteration.
* ``"bb"``: Barzilai-Borwein step lengths with a nonmonotone line search
  (Iannazzo & Porcelli 2018): one gradient and usually one cost per
  iteration, the cost allowed to go up now and then.
* ``"cg"``: nonlinear conjugate gradients (Hestenes-Stiefel).
* ``"trust-regions"``: Riemannian trust regions with truncated CG.

The lesson: counted in iterations, L-BFGS needs fewer than CG and BB, and
trust regions ten times fewer still (each of them runs an inner CG on
Hessian-vector products); counted in seconds, the picture changes with the
price of a gradient against that of the solver's own bookkeeping. L-BFGS
moves its 30 stored pairs to the new tangent space at every iteration (60
vector transports) and runs the two-loop recursion over them, BB and CG
handle one or two vectors: on cheap costs such as these, BB and CG are the
fast ones per second. ``python bench/solvers.py --qn-only`` prints the same
comparison as a table (Rayleigh n = 1000, Max-Cut, Thomson).
"""

# %%
# The two problems
# ----------------
# Closed-form gradients and Hessian-vector products, so that the solvers are
# compared, not automatic differentiation.

import time

import matplotlib.pyplot as plt
import numpy as np

from spherenet.problems import maxcut, rayleigh

rng = np.random.default_rng(0)
B = rng.standard_normal((500, 500))
eigen = rayleigh((B + B.T) / 2)
n = 200
W = np.triu((rng.random((n, n)) < 0.1).astype(float), 1)
cut = maxcut(W + W.T, rank=10)
problems = {"Rayleigh quotient, Sphere(500)": eigen, "Max-Cut, Oblique(10, 200)": cut}
methods = ("lbfgs", "bb", "cg", "trust-regions")

# %%
# The runs
# --------
# One start per problem, the same for every solver; gtol 1e-6. The history
# of each result holds the gradient norm and the wall time of every iterate.
# A few iterations of each solver first: the first call of a manifold map
# compiles its kernel (with the optional ``numba`` extra), which is not the
# solver's time.

for problem in problems.values():
    for method in methods:
        problem.minimize(method=method, rng=1, maxiter=3)

results = {}
for name, problem in problems.items():
    x0 = problem.x0(rng=1)
    for method in methods:
        start = time.perf_counter()
        res = problem.minimize(method=method, x0=x0, gtol=1e-6, maxiter=2000)
        results[name, method] = res
        print(f"{name:30s} {method:>13}: {res.nit:4d} iterations, {res.nfev:4d} costs, "
              f"{res.ngev:4d} gradients, {res.nhev:5d} Hessian-vector products, "
              f"{time.perf_counter() - start:5.2f} s, cost {res.fun:.10f}, success {res.success}")

# %%
# Every solver reaches the same cost: the known optimum of the Rayleigh
# quotient, -lambda_max.

print("-lambda_max:", eigen.optimum)

# %%
# Gradient norm against iterations and against time
# -------------------------------------------------

fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
for row, name in enumerate(problems):
    for method in methods:
        history = results[name, method].history
        axes[row, 0].semilogy(history["grad_norm"], label=method)
        axes[row, 1].semilogy(history["time"], history["grad_norm"], label=method)
    axes[row, 0].set_xlabel("iteration")
    axes[row, 1].set_xlabel("seconds")
    for ax in axes[row]:
        ax.set_ylabel("gradient norm")
        ax.set_title(name)
        ax.legend()
plt.show()
