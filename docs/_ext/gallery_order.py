"""The order of the gallery: from the geometry to the networks, then scale.

sphinx-gallery imports this class by name (``gallery_order.ExampleOrder``), so
that the configuration stays picklable.
"""

ORDER = (
    "plot_rayleigh_strategies.py",
    "plot_step_size_identity.py",
    "plot_predicted_rates.py",
    "plot_stability.py",
    "plot_distance_accuracy.py",
    "plot_check_gradient.py",
    "plot_maxcut_burer_monteiro.py",
    "plot_thomson.py",
    "plot_streaming_pca.py",
    "plot_seed_network.py",
    "plot_digits.py",
    "plot_bn_three_ways.py",
    "plot_cosface_circle.py",
    # examples not listed here come next, by file name
    "plot_grid_on_dask.py",
)


class ExampleOrder:
    """Sort key of sphinx-gallery's ``within_subsection_order``."""

    def __init__(self, src_dir):
        self.src_dir = src_dir

    def __repr__(self):
        return f"<{type(self).__name__}>"

    def __call__(self, filename):
        if filename in ORDER:
            return (ORDER.index(filename), filename)
        return (ORDER.index("plot_grid_on_dask.py") - 0.5, filename)
