"""
Digits with unit-norm hidden layers
===================================

scikit-learn's handwritten digits (8x8 images, ten classes, shipped with
scikit-learn, so no download) classified by a 64-256-256-10 network whose
two hidden kernels are ``unit_norm()``: every weight vector into a hidden
unit has norm 1. The same network, seed and optimizer are trained under two
strategies: ``"riemannian"`` (steps along the oblique manifold, the default)
and ``"projection"`` (a plain step, then :math:`w/(10^{-7} + \\|w\\|)`, which
is what Keras's ``unit_norm()`` does).

The lesson: unit-norm layers cost nothing in accuracy here -- both runs pass
97% on held-out digits -- and both keep the constraint to about
:math:`10^{-7}`; the Riemannian run keeps it to float32 rounding, the
projection run to Keras's :math:`\\epsilon = 10^{-7}`, which by design leaves
every norm a little short of 1.

Run ``python examples/plot_digits.py``: it trains in a few seconds and shows
the figure.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from spherenet.nn import Dense, Sequential, unit_norm
from spherenet.optim import RSGD

# %%
# The digits
# ----------
# 1797 images of 64 pixels with values 0 to 16, scaled to [0, 1]; a quarter
# of them, stratified by class, is held out as the test set.

x, y = load_digits(return_X_y=True)
x = x / 16.0
x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y,
                                                    random_state=0)
print(f"{len(x_train)} training and {len(x_test)} test images of {x.shape[1]} pixels")

# %%
# The network
# -----------
# The Keras lines, with a softmax output trained by sparse categorical
# cross-entropy (the labels are the integers 0 to 9). ``summary`` lists the
# manifold of each kernel.


def digits_model(strategy):
    model = Sequential(seed=0)
    model.add(Dense(256, input_dim=64, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(256, activation="relu", kernel_constraint=unit_norm()))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer=RSGD(lr=0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], strategy=strategy)
    return model


digits_model("riemannian").summary()

# %%
# Two strategies, one optimizer
# -----------------------------
# 20 epochs of ``RSGD(lr=0.05, momentum=0.9)`` on batches of 32, from the same
# initial weights and with the same shuffling. The test set is passed as
# ``validation_data``, so that ``fit`` logs the test loss and accuracy after
# every epoch, next to the violation :math:`\max_j |\,\|w_j\| - 1|` of each
# constrained kernel (``"dense/kernel_violation"``, ...).

strategies = ["riemannian", "projection"]
logs = {}
for strategy in strategies:
    model = digits_model(strategy)
    history = model.fit(x_train, y_train, epochs=20, batch_size=32,
                        validation_data=(x_test, y_test), verbose=0, seed=0)
    logs[strategy] = history.history
    test_loss, test_accuracy = model.evaluate(x_test, y_test)
    worst = max(model.constraint_violations().values())
    print(f"{strategy:>10}: test accuracy {test_accuracy:.4f}, test loss {test_loss:.4f}, "
          f"violation {worst:.1e}")

# %%
# Accuracy, loss and violation per epoch
# --------------------------------------
# The violation is the larger of the two hidden kernels'.

epochs = np.arange(1, 21)
fig, (ax_acc, ax_loss, ax_viol) = plt.subplots(1, 3, figsize=(14, 4), constrained_layout=True)
for strategy in strategies:
    h = logs[strategy]
    line, = ax_acc.plot(epochs, h["val_accuracy"], label=strategy)
    ax_loss.semilogy(epochs, h["val_loss"], color=line.get_color(), label=f"{strategy}, test")
    ax_loss.semilogy(epochs, h["loss"], color=line.get_color(), ls="--", lw=1,
                     label=f"{strategy}, training")
    violation = np.maximum(h["dense/kernel_violation"], h["dense_1/kernel_violation"])
    ax_viol.semilogy(epochs, violation, color=line.get_color(), marker=".", label=strategy)
ax_viol.axhline(1e-7, color="0.5", ls=":", lw=1, label=r"$10^{-7}$ (Keras's $\epsilon$)")
ax_acc.set_ylim(0.8, 1.0)
ax_viol.set_ylim(1e-9, 1e-5)
ax_acc.set_ylabel("test accuracy")
ax_loss.set_ylabel("cross-entropy")
ax_viol.set_ylabel(r"$\max_j\, |\,\|w_j\| - 1|$, hidden kernels")
for ax in (ax_acc, ax_loss, ax_viol):
    ax.set_xlabel("epoch")
    ax.set_xticks([1, 5, 10, 15, 20])
    ax.legend()
ax_acc.set_title("test accuracy")
ax_loss.set_title("loss (test solid, training dashed)")
ax_viol.set_title("constraint violation")
plt.show()

# %%
# Reading the figure: the two runs learn at the same pace and end within a
# fraction of a percent of each other; the training loss keeps falling while
# the test loss levels off after about ten epochs. The violation is flat in
# both runs -- neither drifts as training goes on -- but at two levels: under
# ``"riemannian"`` it is float32 rounding of a point kept on the manifold;
# under ``"projection"`` it sits just above :math:`10^{-7}`, because
#
# .. math::
#
#    \left\| \frac{w}{10^{-7} + \|w\|} \right\| = 1 - \frac{10^{-7}}{10^{-7} + \|w\|}.
#
# Keras's :math:`\epsilon` guards against dividing by zero, at the price of
# norms that are never quite 1.
