"""Optional compiled kernels (numba) for the fused gradient step.

Placeholder until the kernels land: every entry point returns False, which
tells the caller to use its NumPy path.
"""


def gradient_step(reducer, use_exp, x, egrad, lr, out):
    return False
