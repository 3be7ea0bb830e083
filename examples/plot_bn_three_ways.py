r"""
Three ways to train the kernel before a batch normalization
===========================================================

A kernel followed by ``BatchNormalization`` is *scale-invariant*, column by
column: multiplying the weight vector of a unit by c > 0 changes nothing
after the normalization. So only its direction :math:`\hat w = w/\|w\|`
matters, and whatever an optimizer does, what it really moves is a point on
a sphere. There are three ways to train such a kernel:

1. **Riemannian**: put it on the sphere (``kernel_constraint=unit_norm()``)
   and step along the sphere.
2. **Unconstrained with weight decay**, as everybody does: plain SGD with
   momentum :math:`\mu` and weight decay :math:`\lambda`. The gradient of a
   scale-invariant weight is orthogonal to it, so each step *grows* the norm,
   while the decay shrinks it; the norm settles where the two balance, and
   the angle turned per step settles at
   :math:`\sqrt{2\eta\lambda/(1+\mu)}` (Wan et al. 2021, "spherical motion
   dynamics"), whatever the data. The step size of the motion on the sphere
   is the *effective* learning rate :math:`\eta/\|w\|^2` (Arora, Li & Lyu
   2019).
3. **Keras-style renormalization**: a plain step, then :math:`w/\|w\|`
   (``strategy="projection"``).

This example trains one small network the three ways, with the same
optimizer (SGD, the same learning rate and momentum), records with
:class:`~spherenet.nn.AngularTelemetry` the angle every column turns at every
step, and draws it against the predicted equilibrium.

Run ``python examples/plot_bn_three_ways.py [figure.png]``: it trains in a
few seconds and shows the figure (or writes it to ``figure.png``).
"""

import os
import sys

import matplotlib.pyplot as plt
import numpy as np

from spherenet.nn import (Activation, AngularTelemetry, BatchNormalization, Dense, Sequential,
                          equilibrium_angular_update, unit_norm)
from spherenet.optim import RSGD

# %%
# Data and network
# ----------------
# Three classes in R^8 separated by quadratic boundaries; a 8-32-3 network
# whose hidden kernel (no bias: the normalization removes it) is followed by
# batch normalization.

rng = np.random.default_rng(0)
x = rng.standard_normal((512, 8))
score = np.c_[x[:, 0] * x[:, 1], x[:, 2] ** 2 - 1, 0.5 * x[:, 3] - 0.5 * x[:, 4] * x[:, 5]]
y = np.argmax(score, axis=1)
x_val = rng.standard_normal((512, 8))
score_val = np.c_[x_val[:, 0] * x_val[:, 1], x_val[:, 2] ** 2 - 1,
                  0.5 * x_val[:, 3] - 0.5 * x_val[:, 4] * x_val[:, 5]]
y_val = np.argmax(score_val, axis=1)


def network(constraint):
    return Sequential([Dense(32, input_dim=8, use_bias=False, kernel_constraint=constraint),
                       BatchNormalization(), Activation("relu"),
                       Dense(3, activation="softmax")], seed=0)


LR, WD, MU, EPOCHS, BATCH = 0.1, 5e-3, 0.9, 40, 32


def train(model, optimizer, strategy):
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], strategy=strategy)
    telemetry = AngularTelemetry(layers=["dense"])
    history = model.fit(x, y, epochs=EPOCHS, batch_size=BATCH, verbose=0, seed=0,
                        validation_data=(x_val, y_val), callbacks=[telemetry])
    return telemetry, history


# %%
# Unconstrained, with weight decay
# --------------------------------
# ``RSGD(weight_decay=)`` adds :math:`\lambda w` to the gradient, which then
# goes through momentum: PyTorch's weight decay, and Keras's
# ``kernel_regularizer=L2(lambda / 2)``. ``strategy="none"``: nothing keeps
# the columns at norm 1.

wd_telemetry, wd_history = train(network(None), RSGD(lr=LR, momentum=MU, weight_decay=WD), "none")
predicted = equilibrium_angular_update(LR, WD, MU)
steps = len(wd_telemetry.lr)
tail = slice(steps // 2, None)
measured = np.sqrt(np.mean(wd_telemetry.angles["dense/kernel"][tail] ** 2))
effective = float(np.median(wd_telemetry.effective_lr["dense/kernel"][tail]))
print(f"predicted equilibrium angle per step sqrt(2 eta lambda / (1 + mu)) = {predicted:.4f} rad")
print(f"measured (RMS over the units and the last {steps - steps // 2} steps) = {measured:.4f} rad"
      f"  -> measured / predicted = {measured / predicted:.3f}")
low, high = np.percentile(wd_telemetry.effective_lr["dense/kernel"][tail], [10, 90])
print(f"effective learning rates eta / |w_k|^2 at equilibrium: median {effective:.3f}, "
      f"10-90% of the units {low:.3f}-{high:.3f} (eta = {LR})")

# %%
# On the sphere: Riemannian, and step-then-normalize
# --------------------------------------------------
# The same SGD, without weight decay (on the sphere it would do nothing: its
# radial push is projected out).

runs = {"unconstrained + weight decay": (wd_telemetry, wd_history)}
runs["riemannian (unit_norm)"] = train(network(unit_norm()), RSGD(lr=LR, momentum=MU),
                                       "riemannian")
runs["renormalize after the step (Keras)"] = train(network(unit_norm()),
                                                   RSGD(lr=LR, momentum=MU), "projection")
for name, (telemetry, history) in runs.items():
    rms = np.sqrt(np.mean(telemetry.angles["dense/kernel"][tail] ** 2))
    print(f"{name:36s} angle/step {rms:.4f} rad, validation accuracy "
          f"{history.history['val_accuracy'][-1]:.3f}")

# %%
# The figure
# ----------
# Left: the RMS angle turned per step over the 32 units (smoothed over 20
# steps), with the predicted equilibrium. Middle: the column norms of the
# unconstrained kernel and its effective learning rate. Right: validation
# accuracy.

fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
window = np.ones(20) / 20
for name, (telemetry, history) in runs.items():
    rms = np.sqrt(np.mean(telemetry.angles["dense/kernel"] ** 2, axis=1))
    axes[0].plot(np.convolve(rms, window, mode="valid"), label=name)
    axes[2].plot(np.arange(1, EPOCHS + 1), history.history["val_accuracy"], label=name)
axes[0].axhline(predicted, color="k", ls="--",
                label=r"$\sqrt{2\eta\lambda/(1+\mu)}$ (weight decay)")
axes[0].set_xlabel("step")
axes[0].set_ylabel("angle turned per step (rad)")
axes[0].set_ylim(0, 3 * predicted)
axes[0].legend(fontsize=8)
norms = wd_telemetry.norms["dense/kernel"]
axes[1].plot(norms, color="C0", alpha=0.25, lw=0.7)
axes[1].set_xlabel("step")
axes[1].set_ylabel(r"column norms $\|w_k\|$ (unconstrained run)")
twin = axes[1].twinx()
eff = wd_telemetry.effective_lr["dense/kernel"]
twin.plot(np.median(eff, axis=1), color="C3", label=r"median $\eta/\|w_k\|^2$")
twin.fill_between(np.arange(len(eff)), *np.percentile(eff, [10, 90], axis=1), color="C3",
                  alpha=0.15, label="10-90% of the units")
twin.set_yscale("log")
twin.set_ylabel("effective learning rate", color="C3")
twin.legend(loc="lower right", fontsize=8)
axes[2].set_xlabel("epoch")
axes[2].set_ylabel("validation accuracy")
axes[2].legend(fontsize=8)
fig.tight_layout()

# %%
# Reading the figure:
#
# * The weight-decay run starts from columns of norm about 0.7 (Glorot's
#   initialization), so from a large effective step; its first steps turn
#   the columns far. As the norms move and the decay pulls back, the angle
#   per step comes down to the predicted line and stays there (the printed
#   ratio is within a few percent of 1): the norms have found their
#   equilibrium, and with them the effective learning rates. Each unit gets
#   its own, :math:`\eta/\|w_k\|^2`, spread over a decade: the dynamics
#   tunes them so that every column turns by the same angle, whatever its
#   gradient. Changing :math:`\lambda` changes where the norms settle, i.e.
#   the effective learning rate -- why weight decay matters for normalized
#   layers although the network's function does not depend on the norms.
# * On the sphere, the Riemannian step and Keras's step-then-normalize turn
#   the columns by :math:`\eta\,\|\text{gradient}\|` (times the momentum's
#   gain): the angle follows the gradients instead of settling at a value
#   set by :math:`\eta, \lambda, \mu`. The two sphere runs differ only in
#   how the constraint is kept (a retraction versus
#   :math:`w/(10^{-7} + \|w\|)`, and a momentum moved to the new tangent
#   space or not); their curves stay close, and so do the accuracies of all
#   three runs: the difference between the three ways is how fast each
#   column turns, not where training can go.

if len(sys.argv) > 1:  # write the figure instead of showing it
    fig.savefig(sys.argv[1], dpi=100)
else:
    plt.show()
