"""One reverse pass of autograd for a function of several arrays.

``autograd.grad`` of a function of a *tuple* of weights unpacks the tuple with
``container_take``, whose backward pass allocates a zero-filled copy of the
whole tuple and adds every gradient into it: one extra pass over all the
weights per batch (about 10% of a training step of a 784-512-512-10 network).
Here every array is its own root of the trace instead, and the backward pass
collects the gradient that reaches each root. It is autograd's own
``backward_pass`` (``autograd.core``), with the roots' gradients kept.
"""

import numpy as np
from autograd.core import VJPNode, add_outgrads
from autograd.tracer import isbox, new_box, trace_stack
from autograd.util import toposort
from autograd.extend import vspace

__all__ = ["value_and_grads"]


def value_and_grads(fun, args):
    """``fun(*args)`` and its gradient with respect to every array of ``args``.

    Parameters
    ----------
    fun : callable
        A scalar-valued function of ``len(args)`` arrays, written with
        autograd primitives.
    args : sequence of ndarray

    Returns
    -------
    value : scalar
    grads : tuple of ndarray
        One gradient per argument; zeros for an argument the value does not
        depend on.

    Examples
    --------
    >>> import numpy as np
    >>> value, (ga, gb) = value_and_grads(lambda a, b: (a * b).sum(), [np.ones(2), np.arange(2.0)])
    >>> float(value), ga.tolist(), gb.tolist()
    (1.0, [0.0, 1.0], [1.0, 1.0])
    """
    roots = [VJPNode.new_root() for _ in args]
    with trace_stack.new_trace() as trace:
        end = fun(*[new_box(a, trace, root) for a, root in zip(args, roots)])
        if not (isbox(end) and end._trace == trace):
            return end, tuple(np.zeros_like(a) for a in args)
        value, end_node = end._value, end._node
    index = {id(root): i for i, root in enumerate(roots)}
    grads = [None] * len(args)
    outgrads = {end_node: (vspace(value).ones(), False)}
    for node in toposort(end_node):
        outgrad = outgrads.pop(node)[0]
        i = index.get(id(node))
        if i is not None:
            grads[i] = outgrad
            continue
        for parent, ingrad in zip(node.parents, node.vjp(outgrad)):
            outgrads[parent] = add_outgrads(outgrads.get(parent), ingrad)
    return value, tuple(np.zeros_like(a) if g is None else g for a, g in zip(args, grads))
