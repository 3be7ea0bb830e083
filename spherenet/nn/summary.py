"""The table printed by ``Sequential.summary()``: Keras's layout plus each kernel's manifold."""

import math

from ..manifolds import Euclidean, Oblique, Sphere

__all__ = ["describe_manifold", "summary_lines"]


def describe_manifold(manifold):
    """A short name for a kernel's manifold, e.g. ``"Oblique(2x500, columns)"``.

    Examples
    --------
    >>> from spherenet import Oblique, Sphere
    >>> describe_manifold(Oblique(2, 500)), describe_manifold(Sphere(3, 4))
    ('Oblique(2x500, columns)', 'Sphere(3x4)')
    """
    dims = "x".join(map(str, manifold.shape))
    if isinstance(manifold, Oblique):
        axis = {0: "columns", 1: "rows"}.get(manifold.axis, f"axis={manifold.axis}")
        if len(manifold.shape) != 2 and not isinstance(manifold.axis, tuple):
            axis = f"axis={manifold.axis}"
        return f"Oblique({dims}, {axis})"
    if isinstance(manifold, Sphere):
        return f"Sphere({dims})"
    if isinstance(manifold, Euclidean):
        return "Euclidean"
    return type(manifold).__name__


def _count(n):
    return f"{n:,}"


def summary_lines(model, strategy=None, line_length=None):
    """The lines of the summary table of ``model``."""
    rows = []
    for layer in model.layers:
        # the kernel's manifold; a layer without a kernel (BatchNormalization's gamma) shows none
        kernel = next((p.manifold for p in layer.params if p.name == "kernel"), None)
        rows.append((
            f"{layer.name} ({type(layer).__name__})",
            str((None, *layer.output_shape)),
            _count(layer.count_params()),
            "" if kernel is None else describe_manifold(kernel),
        ))
    header = ("Layer (type)", "Output Shape", "Param #", "Kernel manifold")
    widths = [max(len(r[i]) for r in rows + [header]) + 3 for i in range(4)]
    width = max(sum(widths), line_length or 0)

    def fmt(row):
        return "".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()

    total = sum(layer.count_params() for layer in model.layers)
    constrained = sum(
        math.prod(p.shape) for layer in model.layers for p in layer.params
        if p.constrained
    )
    lines = [f'Model: "{model.name}"', "_" * width, fmt(header), "=" * width]
    for i, row in enumerate(rows):
        lines.append(fmt(row))
        lines.append("_" * width if i < len(rows) - 1 else "=" * width)
    states = sum(math.prod(p.shape) for layer in model.layers for p in layer.states)
    lines += [
        f"Total params: {_count(total)}",
        f"Trainable params: {_count(total - states)}",
    ]
    if states:  # Keras's line; left out when zero, as the table always was
        lines.append(f"Non-trainable params: {_count(states)}")
    lines += [
        f"Params on spheres: {_count(constrained)}",
        f"dtype: {model.dtype.name}" + ("" if strategy is None else
                                        f"; constraints kept by strategy: {strategy if isinstance(strategy, str) else strategy.__name__}"),
        "_" * width,
    ]
    return lines
