"""Classic optimization problems on spheres, each with its known answer.

Every problem is a small :class:`Problem` object: a ``manifold``, a ``cost``
written with ``autograd.numpy``, closed-form ``egrad``/``ehess`` where they
are cheap, a starting point ``x0(rng)``, and what is known of the answer
(``optimum``, ``solution()``, ``distance_to_optimum(x)``). They serve as
tests with independent references and as benchmarks.

* :func:`rayleigh` on ``Sphere(n)``: the leading eigenvector (``eigh``);
  :func:`block_rayleigh` on ``Oblique(n, k)``: one per column;
* :func:`maxcut` on ``Oblique(p, n)``: the SDP value of vertex-transitive
  graphs, and a dual certificate (:func:`maxcut_certificate`) for any graph;
* :func:`thomson` on ``Oblique(3, N)``: the published minimal energies;
* :func:`karcher_mean` on ``Sphere(n)``: the pole of symmetric points;
* :func:`spherical_kmeans` on ``Oblique(d, k)``: the normalized means of
  known, well-separated clusters;
* :func:`dictionary_learning` on ``Product([Oblique(m, k), Euclidean(k, N)])``:
  the Eckart-Young optimum;
* finite sums, for the stochastic methods (``data=``): :func:`streaming_pca`
  of :func:`spiked_samples` on ``Sphere(d)`` (``eigh`` of the sample second
  moment; Oja's rule is ``rsgd`` under the projection strategy), and
  :func:`finite_sum_karcher` of :func:`paired_points` (their pole).

Examples
--------
>>> import numpy as np
>>> from spherenet.problems import rayleigh
>>> P = rayleigh(np.diag([1.0, 2.0, 3.0]))
>>> res = P.minimize(method="cg", rng=0)
>>> bool(abs(res.fun - P.optimum) < 1e-10)
True
"""

from ._base import Problem
from .dictionary import DictionaryLearning, dictionary_data, dictionary_learning
from .finite_sum import (FiniteSumKarcher, FiniteSumProblem, StreamingPCA,
                         finite_sum_karcher, paired_points, spiked_samples, streaming_pca)
from .karcher import KarcherMean, karcher_mean, symmetric_points
from .kmeans import SphericalKMeans, matched_distance, spherical_clusters, spherical_kmeans
from .maxcut import (MaxCut, complete_graph, cut_value, cycle_graph, laplacian, maxcut,
                     maxcut_certificate, petersen_graph)
from .rayleigh import BlockRayleigh, Rayleigh, block_rayleigh, rayleigh
from .thomson import THOMSON_ENERGIES, Thomson, riesz_energy, thomson

__all__ = [
    "Problem",
    "Rayleigh",
    "BlockRayleigh",
    "rayleigh",
    "block_rayleigh",
    "MaxCut",
    "maxcut",
    "maxcut_certificate",
    "laplacian",
    "cycle_graph",
    "complete_graph",
    "petersen_graph",
    "cut_value",
    "Thomson",
    "thomson",
    "riesz_energy",
    "THOMSON_ENERGIES",
    "KarcherMean",
    "karcher_mean",
    "symmetric_points",
    "SphericalKMeans",
    "spherical_kmeans",
    "spherical_clusters",
    "matched_distance",
    "DictionaryLearning",
    "dictionary_learning",
    "dictionary_data",
    "FiniteSumProblem",
    "StreamingPCA",
    "streaming_pca",
    "spiked_samples",
    "FiniteSumKarcher",
    "finite_sum_karcher",
    "paired_points",
]
