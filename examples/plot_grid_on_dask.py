"""
A grid of runs on a dask cluster
================================

The expensive thing one does with spherenet is run grids: problems x
strategies x optimizers x seeds. :func:`spherenet.experiments.compare` runs
a grid on any ``concurrent.futures.Executor``. A ``dask.distributed``
client's ``get_executor()`` is one, so the same call runs on a cluster --
here a :class:`~distributed.LocalCluster` of two worker processes on this
machine; pointing the ``Client`` at a scheduler's address runs it on many.
Nothing in spherenet knows about dask: a run is plain picklable data and a
top-level function.

The lesson: the results do not depend on where the runs ran -- every seed
starts from the same point under every strategy, and the dask run gives the
local run's numbers bit for bit.

(This page needs the ``dist`` extra: ``pip install -e ".[dist]"``; the
``docs`` extra includes it.)
"""

# %%
# The grid
# --------
# Two problems with known answers, three strategies, RSGD with momentum, four
# seeds: 24 runs of 500 iterations. Options left out take the problem's
# default step size.

import matplotlib.pyplot as plt
import dask
import numpy as np
from dask.distributed import Client, LocalCluster

from spherenet.experiments import OptimizerSpec, ProblemSpec, compare, plot_problem

grid = dict(
    problems=[ProblemSpec("rayleigh", n=100), ProblemSpec("thomson", n_points=12)],
    strategies=["riemannian", "projection", "reparam"],
    optimizers=[OptimizerSpec("rsgd", momentum=0.9)],
    seeds=4,
    budget=500,
)

# %%
# Locally, then on the cluster
# ----------------------------
# ``executor="serial"`` runs in this process, the reference. Then the same
# grid on a two-worker ``LocalCluster``.

local = compare(**grid, executor="serial")

# Worker processes are forked from this one, so that this script also runs as
# "python plot_grid_on_dask.py": with dask's default, "spawn", every worker
# would import the script again, which then needs an `if __name__ == "__main__"`
# guard.
dask.config.set({"distributed.worker.multiprocessing-method": "fork"})
with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                  dashboard_address=None) as cluster, Client(cluster) as client:
    print(client)
    on_dask = compare(**grid, executor=client.get_executor())

print(f"{len(on_dask.runs)} runs on dask; {on_dask.executed} executed")

# %%
# The same numbers
# ----------------
# Compare every iteration of every run (costs, gradient norms, distances to
# the optimum, violations); only the timings differ.

measures = ("cost", "grad_norm", "distance", "violation")
identical = all(
    np.array_equal(np.asarray(a["columns"][m]), np.asarray(b["columns"][m]), equal_nan=True)
    for a, b in zip(local.runs, on_dask.runs)
    for m in measures
)
print("dask results identical to the local ones:", identical)

# %%
# A summary: iterations and time to tolerance, final violation, median and
# spread over the seeds.

print(on_dask.summary())

# %%
# With momentum, riemannian reaches the tolerance in about 250 iterations on
# both problems; projection needs nearly twice as many on Thomson and does
# not get there within 500 on the Rayleigh quotient -- the ambient momentum
# buffer of :doc:`plot_step_size_identity` at work. Reparam keeps up on the
# Rayleigh quotient and stalls on some Thomson starts.

# %%
# Figures
# -------
# ``plot_problem`` draws the three panels of a problem -- the distance to the
# optimum against iterations and against time, with bands over the seeds, and
# the constraint violation -- on a figure or, here, a subfigure. (``Results.plot(directory)`` saves them as PNG and
# SVG; ``spherenet compare`` does the same from the command line.)

fig = plt.figure(figsize=(14, 8.4), layout="constrained")
for subfigure, problem in zip(fig.subfigures(len(on_dask.problems), 1), on_dask.problems):
    plot_problem(on_dask, problem, figure=subfigure)
plt.show()
