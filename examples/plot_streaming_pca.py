"""
Streaming PCA: Oja's rule, Riemannian SGD and R-SVRG
=====================================================

The leading principal direction of samples :math:`x_1, \\dots, x_n` minimizes
the finite sum :math:`f(w) = -\\frac12 \\frac1n \\sum_i (x_i^\\top w)^2` on the
unit sphere. Oja's rule (1982), :math:`w \\leftarrow (w + \\eta\\, x x^\\top
w)/\\|w + \\eta\\, x x^\\top w\\|` with one sample at a time, is *literally*
``minimize(..., method="rsgd", strategy="projection", batch_size=1)``; the
Riemannian step on the same samples is ``strategy="riemannian"``; R-SVRG
(``method="rsvrg"``) reduces the variance of the sample gradients with a
snapshot of the full gradient, transported to the current point.

We compare them with what the theory predicts, computed from the Hessian at
the known optimum (``numpy.linalg.eigh`` gives the answer,
:func:`~spherenet.optim.hessian_spectrum` the curvatures):

* **SGD with steps** :math:`\\eta_t = a/(t + t_0)`: near the optimum the error
  follows the linear recursion :math:`e_{t+1} = (I - \\eta_t H) e_t + \\eta_t
  \\xi_t`, and for :math:`2 a \\mu_{\\min} > 1` (Chung 1954; see Bottou,
  Curtis & Nocedal 2018, Sec. 4.2, for the O(1/t) rate)

  .. math::

     \\mathbb E\\, d(w_t, w^*)^2 \\approx \\frac{1}{t}\\sum_j
     \\frac{a^2 \\sigma_j^2}{2 a \\mu_j - 1},

  with :math:`\\mu_j` the eigenvalues of the Riemannian Hessian at
  :math:`w^*` and :math:`\\sigma_j^2` the variance of one sample's Riemannian
  gradient along the j-th eigenvector (samples drawn with replacement).
* **Full-gradient descent with a fixed step** :math:`\\eta`: the iteration map
  :math:`w \\mapsto R_w(-\\eta \\operatorname{grad} f(w))` has the
  differential :math:`\\mathrm{id} - \\eta \\operatorname{Hess} f(w^*)` at the
  optimum (Absil, Mahony & Sepulchre 2008, Sec. 4.5), so the distance
  contracts asymptotically by :math:`\\rho = \\max_j |1 - \\eta \\mu_j|` per
  step, i.e. per pass over the data. R-SVRG (Zhang, Reddi & Sra 2016; Sato,
  Kasai & Mishra 2019) also converges linearly with a fixed step; we measure
  its rate per pass and set it against :math:`\\rho`.
"""

# %%
# Samples of a spiked covariance
# ------------------------------
# :math:`\Sigma = I + 2 u_1 u_1^\top + 1.8 u_2 u_2^\top`: a population eigengap
# of 0.2. The finite-sum minimizer is the top eigenvector of the *sample* second
# moment :math:`X^\top X / n`, which the problem gets from ``eigh``.

import matplotlib.pyplot as plt
import numpy as np

from spherenet import minimize
from spherenet.optim import hessian_spectrum, schedules
from spherenet.problems import spiked_samples, streaming_pca

d, n = 10, 500
X, covariance = spiked_samples(d, n, spikes=(2.0, 1.8), rng=0)
problem = streaming_pca(X, covariance)
w_star = problem.solution()
x0 = problem.x0(rng=1)
print(f"population angle of the sample answer: "
      f"{np.arccos(abs(w_star @ problem.population_solution())):.3f} rad")

# %%
# Curvatures and gradient noise at the optimum
# --------------------------------------------
# ``hessian_spectrum`` gives the eigenvalues :math:`\mu_j` of the Riemannian
# Hessian at :math:`w^*` (here :math:`\lambda_1 - \lambda_j` of the second
# moment, whose eigenvectors are the Hessian's); the per-sample Riemannian
# gradients :math:`-(x_i^\top w^*)(x_i - (x_i^\top w^*) w^*)` have mean zero
# there, and their variance along each eigenvector is :math:`\sigma_j^2`.

spectrum = hessian_spectrum(problem.cost, problem.manifold, w_star, k=d - 1, which="both")
mu = np.sort(spectrum.smallest)
eigenvalues, vectors = np.linalg.eigh(problem.second_moment)
tangent_vectors = vectors[:, :-1]  # eigenvectors of the Hessian at w*
along = X @ w_star
sample_grads = -along[:, None] * (X - along[:, None] * w_star)
sigma2 = np.mean((sample_grads @ tangent_vectors) ** 2, axis=0)
mu_of_vectors = eigenvalues[-1] - eigenvalues[:-1]
print("Hessian eigenvalues (hessian_spectrum):", np.round(mu, 4))
print("lambda_1 - lambda_j (eigh):            ", np.round(np.sort(mu_of_vectors), 4))

# %%
# Oja's rule and Riemannian SGD on the same samples
# -------------------------------------------------
# Both draw the same samples (the same seed), with replacement, and the step
# :math:`a/(t + t_0)` with :math:`a = 2/\mu_{\min}`
# (:func:`~spherenet.optim.schedules.inverse_time_decay`). The prediction is
# for the mean of :math:`d^2` over runs: we average ten seeds of the
# Riemannian run (the slow direction decorrelates slowly: a few runs
# fluctuate by tens of percent around the prediction).

a, t0, epochs = 2.0 / mu[0], 100, 4
constant = np.sum(a**2 * sigma2 / (2 * a * mu_of_vectors - 1))


def sgd(strategy, seed):
    distances = []
    minimize(problem.cost, problem.manifold, x0=x0, grad=problem.egrad, data=X, batch_size=1,
             replace=True, method="rsgd", strategy=strategy,
             lr=schedules.inverse_time_decay(a / t0, 1.0 / t0), epochs=epochs,
             full_cost=False, rng=seed,
             callback=lambda w: distances.append(
                 problem.distance_to_optimum(w / np.linalg.norm(w))))
    return np.array(distances)


oja = sgd("projection", 2)
riemannian = [sgd("riemannian", seed) for seed in range(2, 12)]
print(f"Oja vs Riemannian SGD, same samples, after {len(oja)} steps: "
      f"{oja[-1]:.2e} vs {riemannian[0][-1]:.2e} rad")
mean_sq = np.mean(np.square(riemannian), axis=0)
t = np.arange(1, len(mean_sq) + 1)
late = t > len(t) // 2
print(f"mean d^2 * (t + t0) over the second half: {np.mean(mean_sq[late] * (t[late] + t0)):.2f}, "
      f"predicted {constant:.2f}")

# %%
# Full-gradient descent and R-SVRG with a fixed step
# --------------------------------------------------
# Full-gradient descent is ``rsgd`` with ``batch_size=n`` (every batch is all
# the data); R-SVRG takes batches of 20, one pass per epoch, and evaluates
# about three passes of sample gradients per epoch (``epoch_history``
# counts them). Both take the step :math:`\eta = 0.1`.

eta = 0.1
rho = np.max(np.abs(1.0 - eta * mu))
best = (mu[-1] - mu[0]) / (mu[-1] + mu[0])
gd = [problem.distance_to_optimum(x0)]
minimize(problem.cost, problem.manifold, x0=x0, grad=problem.egrad, data=X, batch_size=n,
         method="rsgd", lr=eta, epochs=40, gtol=0, full_cost=False, rng=0,
         callback=lambda w: gd.append(problem.distance_to_optimum(w)))
svrg_iterates = [x0]
svrg = minimize(problem.cost, problem.manifold, x0=x0, grad=problem.egrad, data=X,
                batch_size=20, method="rsvrg", lr=eta, epochs=12, gtol=1e-13, rng=0,
                callback=lambda w: svrg_iterates.append(w))
ends = svrg.epoch_history["iteration"].astype(int)
svrg_distance = np.array([problem.distance_to_optimum(svrg_iterates[k]) for k in ends])
svrg_passes = svrg.epoch_history["samples"] / n
measured_gd = (gd[-1] / gd[20]) ** (1.0 / (len(gd) - 21))
fit = np.polyfit(svrg_passes[1:], np.log(svrg_distance[1:]), 1)
print(f"full gradient: predicted rate {rho:.4f} per pass, measured {measured_gd:.4f}")
print(f"R-SVRG: measured rate {np.exp(fit[0]):.4f} per pass")
print(f"(full gradient with its best fixed step 2/(mu_min + mu_max): {best:.4f} per pass)")

# %%
# The picture
# -----------

fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
ax = axes[0]
passes = t / n
ax.semilogy(passes, oja, lw=0.8, label="Oja (rsgd, projection)")
ax.semilogy(passes, riemannian[0], lw=0.8, ls="--", label="Riemannian SGD, same samples")
ax.semilogy(passes, np.sqrt(constant / (t + t0)), "k:", label=r"predicted $\sqrt{C/(t+t_0)}$")
ax.semilogy(np.arange(len(gd)), gd, "o-", ms=3, label=rf"full gradient, step $\eta$ = {eta}")
k = np.arange(len(gd))
ax.semilogy(k, gd[20] * rho ** (k - 20.0), "k--", lw=1,
            label=rf"predicted $\rho^k$, $\rho$ = {rho:.3f}")
ax.semilogy(svrg_passes, svrg_distance, "s-", ms=4, label=rf"R-SVRG, step $\eta$ = {eta}, batch 20")
ax.set_xlabel("passes over the data (sample gradients / n)")
ax.set_ylabel("angle to the answer of eigh (rad)")
ax.set_ylim(1e-12, 3)
ax.legend(fontsize=8)
ax.set_title("distance to the optimum")

ax = axes[1]
ax.loglog(t, mean_sq, label=r"Riemannian SGD, mean $d^2$ over 10 runs")
ax.loglog(t, constant / (t + t0), "k:", label=r"predicted $C/(t + t_0)$")
ax.set_xlabel("iteration t (one sample each)")
ax.set_ylabel(r"$d(w_t, w^*)^2$")
ax.legend(fontsize=8)
ax.set_title("the O(1/t) rate of SGD with a/(t + t0) steps")
plt.show()

# %%
# What it shows: Oja's rule and the Riemannian step, fed the same samples,
# trace nearly the same path (the projection's effective step differs by a
# factor :math:`1/(1 - \eta \langle w, g\rangle)`, which tends to 1 with
# :math:`\eta`); both approach the optimum like :math:`1/\sqrt t`, with the
# constant of the linearized recursion. A fixed step with the full gradient
# contracts by :math:`\rho` per pass, exactly as the Hessian's eigenvalues
# predict; R-SVRG with the same step converges linearly too, to the rounding
# of float64, and much faster per pass: its mini-batch steps see the
# curvature many times per pass. (Full-gradient descent with its best fixed
# step, :math:`\rho^* = (\kappa - 1)/(\kappa + 1)` with
# :math:`\kappa = \mu_{\max}/\mu_{\min}`, is printed above: on
# a problem this well conditioned it is a match for R-SVRG; the advantage
# of variance reduction grows with the condition number.) SGD with a fixed
# step would stall at its noise floor.
# (Sampling without replacement, the default, converges faster than the
# prediction for SGD, which assumes independent draws.)
