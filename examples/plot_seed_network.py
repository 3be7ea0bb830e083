"""
A network whose first-layer weight vectors stay on the unit circle
===================================================================

The line that started spherenet,
``Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm())``,
asks for 500 hidden units whose weight vectors have norm exactly 1. In
spherenet.nn that kernel is a point of the oblique manifold (every column on
the unit circle) and the optimizer steps along the circle, so the constraint
holds after every step -- not only approximately, and with no "normalize
again" pass. This example trains that seed model on two interleaved half
moons made with NumPy and draws its decision boundary, next to the learned
weight vectors, which all sit on the unit circle.

Run ``python examples/plot_seed_network.py [figure.png]``: it trains in a
second or two and shows the figure (or writes it to the file given).
"""

import sys

import matplotlib.pyplot as plt
import numpy as np

from spherenet.nn import Dense, Sequential, unit_norm
from spherenet.optim import RSGD

# %%
# Two moons
# ---------
# Two interleaved half circles with a little Gaussian noise.

rng = np.random.default_rng(0)
n = 1000
t = rng.uniform(0.0, np.pi, n)
y = rng.integers(0, 2, n)
upper = np.c_[np.cos(t), np.sin(t)]
lower = np.c_[1.0 - np.cos(t), 0.5 - np.sin(t)]
x = np.where(y[:, None] == 0, upper, lower) + 0.1 * rng.standard_normal((n, 2))

# %%
# The seed model
# --------------
# Exactly the Keras lines; only the optimizer is given a larger step and
# momentum. The default strategy is ``"riemannian"``: the kernel moves along
# its manifold. Try ``strategy="projection"`` (Keras's step-then-normalize)
# or ``"none"`` (no constraint) to compare.

model = Sequential(seed=0)
model.add(Dense(500, input_dim=2, activation="relu", kernel_constraint=unit_norm()))
model.add(Dense(1, activation="sigmoid"))
model.compile(optimizer=RSGD(lr=0.1, momentum=0.9), loss="binary_crossentropy",
              metrics=["accuracy"])
model.summary()
history = model.fit(x, y, epochs=30, batch_size=32, validation_split=0.2, verbose=0, seed=0)

kernel = model.get_weights()[0]
norms = np.linalg.norm(kernel.astype(np.float64), axis=0)
print(f"validation accuracy {history.history['val_accuracy'][-1]:.3f}; "
      f"column norms off 1 by at most {np.max(np.abs(norms - 1)):.1e} ({kernel.dtype})")

# %%
# Decision boundary and weight vectors
# ------------------------------------

grid = np.linspace(-1.6, 2.6, 300), np.linspace(-1.1, 1.6, 220)
gx, gy = np.meshgrid(*grid)
probs = model.predict(np.c_[gx.ravel(), gy.ravel()]).reshape(gx.shape)

fig, (ax, ax_w) = plt.subplots(1, 2, figsize=(11, 4.5), gridspec_kw={"width_ratios": [3, 2]})
ax.contourf(gx, gy, probs, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.6)
ax.contour(gx, gy, probs, levels=[0.5], colors="k", linewidths=1.5)
ax.scatter(*x.T, c=y, cmap="RdBu_r", s=8, edgecolors="k", linewidths=0.2)
ax.set_title("Decision boundary (p = 0.5)")
ax.set_aspect("equal")

circle = np.linspace(0, 2 * np.pi, 200)
ax_w.plot(np.cos(circle), np.sin(circle), color="0.7", lw=1)
ax_w.scatter(*kernel, s=6, color="C0")
ax_w.set_title("500 first-layer weight vectors,\nall on the unit circle")
ax_w.set_aspect("equal")
ax_w.set_xlim(-1.2, 1.2)
ax_w.set_ylim(-1.2, 1.2)
fig.tight_layout()

if len(sys.argv) > 1:
    fig.savefig(sys.argv[1], dpi=100)
else:
    plt.show()
