r"""
A cosine classifier's embedding on the circle: NormFace and CosFace
====================================================================

A normalized classifier (:class:`~spherenet.nn.CosineDense`) scores a
feature vector by the cosines between its direction and one unit vector per
class: the logits are :math:`s\cos\theta_j`. With a two-dimensional
embedding, every sample is a point of the unit circle and every class an
arrow on it; a sample belongs to the nearest arrow. NormFace trains this
with the plain softmax cross-entropy; CosFace subtracts a margin m from the
true class's cosine while training, so a sample counts as right only when
it is nearer to its class by m -- which pulls the classes into tighter
arcs with empty gaps between them.

The class vectors are the columns of the kernel, a point of
``Oblique(2, classes)`` kept on the circle by the Riemannian step. Each
network is read layer by layer with callable layers (``layer(x)``) to draw
the embedding.

Run ``python examples/plot_cosface_circle.py [figure.png]``: it trains in a
few seconds and shows the figure (or writes it to ``figure.png``).
"""

import sys

import matplotlib.pyplot as plt
import numpy as np

from spherenet.nn import CosineDense, Dense, HypersphericalEnergy, Sequential
from spherenet.optim import RSGD

# %%
# Data
# ----
# Five classes in R^10: Gaussian clouds around random centres, close enough
# to overlap a little.

rng = np.random.default_rng(0)
classes, dim = 5, 10
centres = 1.6 * rng.standard_normal((classes, dim))
y = rng.integers(0, classes, 1500)
x = centres[y] + rng.standard_normal((1500, dim))
x_test, y_test = x[1000:], y[1000:]
x, y = x[:1000], y[:1000]

# %%
# Two networks, one margin apart
# ------------------------------
# A 10-32-2 feature extractor and a cosine classifier on its 2-d output;
# ``HypersphericalEnergy`` (minimum hyperspherical energy) keeps the class
# vectors spread over the circle.


def network(margin):
    return Sequential([
        Dense(32, input_dim=dim, activation="tanh"),
        Dense(2),  # the embedding
        CosineDense(classes, scale=16.0, margin=margin, activation="softmax",
                    kernel_regularizer=HypersphericalEnergy(1e-3)),
    ], seed=0)


models = {}
for name, margin in (("NormFace (m = 0)", 0.0), ("CosFace (m = 0.35)", 0.35)):
    model = network(margin)
    model.compile(optimizer=RSGD(lr=0.05, momentum=0.9), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=30, batch_size=32, verbose=0, seed=0)
    models[name] = model


def embed(model, x):
    """The normalized 2-d features: the layers before the classifier, called one by one."""
    h = x
    for layer in model.layers[:-1]:
        h = layer(h)
    return h / np.linalg.norm(h, axis=1, keepdims=True)


# %%
# How tight are the classes?
# --------------------------
# For each test sample, the angle to its class vector; and between
# neighbouring class vectors, the angle they leave free.

for name, model in models.items():
    kernel = model.get_weights()[-1]
    e = embed(model, x_test)
    angle_to_class = np.arccos(np.clip(np.sum(e * kernel[:, y_test].T, axis=1), -1, 1))
    directions = np.sort(np.arctan2(kernel[1], kernel[0]))
    gaps = np.diff(np.r_[directions, directions[0] + 2 * np.pi])
    accuracy = model.evaluate(x_test, y_test)[1]
    print(f"{name:20s} test accuracy {accuracy:.3f}; angle to the class vector: median "
          f"{np.degrees(np.median(angle_to_class)):5.1f} deg, 90% "
          f"{np.degrees(np.percentile(angle_to_class, 90)):5.1f} deg; smallest angle between "
          f"class vectors {np.degrees(gaps.min()):5.1f} deg; |columns| - 1 <= "
          f"{np.abs(np.linalg.norm(kernel, axis=0) - 1).max():.1e}")

# %%
# The figure
# ----------
# Test samples on the unit circle (spread a little radially by their class,
# so that overlapping points stay visible), coloured by their true class,
# with the class vectors as arrows.

fig, axes = plt.subplots(1, 2, figsize=(11, 5.5))
colors = plt.get_cmap("tab10")(np.arange(classes))
for ax, (name, model) in zip(axes, models.items()):
    e = embed(model, x_test)
    radius = 1.0 + 0.04 * (y_test - (classes - 1) / 2) + 0.01 * rng.standard_normal(len(e))
    ax.scatter(radius * e[:, 0], radius * e[:, 1], s=6, c=colors[y_test], alpha=0.6)
    t = np.linspace(0, 2 * np.pi, 200)
    ax.plot(np.cos(t), np.sin(t), color="0.8", lw=0.8, zorder=0)
    kernel = model.get_weights()[-1]
    for k in range(classes):
        ax.annotate("", xy=1.3 * kernel[:, k], xytext=(0, 0),
                    arrowprops={"arrowstyle": "->", "color": colors[k], "lw": 2})
    ax.set_title(name)
    ax.set_aspect("equal")
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout(rect=(0, 0, 1, 0.97))

# %%
# Reading the figure: with the margin, the stragglers between classes are
# pulled in (the printed 90% angle to the class vector about halves, while
# the median, set by the bulk of each cloud, hardly moves), and the class
# vectors spread apart (the smallest angle between two of them grows
# towards the 72 degrees of five evenly spaced ones), leaving empty arcs
# between classes -- the "large margin" of CosFace. The class vectors
# are exactly on the circle (the last printed number) because the kernel
# lives on the oblique manifold. The margin is a training device only:
# ``predict`` and ``evaluate`` use the plain cosines.

if len(sys.argv) > 1:  # write the figure instead of showing it
    fig.savefig(sys.argv[1], dpi=100)
else:
    plt.show()
