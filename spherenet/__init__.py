"""spherenet: optimization where the unknowns live on spheres.

Exact, stable geometry of spheres and products of spheres; Riemannian solvers
and the competing ways of keeping a unit-norm constraint; networks whose
kernels stay on the sphere.
"""

from .manifolds import Euclidean, Manifold, Oblique, Product, Sphere
from .interop import from_pymanopt, from_pymanopt_options, to_pymanopt
from .minimize import OptimizeResult, minimize
from .optim import hessian_spectrum
from . import theory

__version__ = "0.1.0"

__all__ = [
    "Manifold",
    "Sphere",
    "Oblique",
    "Euclidean",
    "Product",
    "minimize",
    "OptimizeResult",
    "to_pymanopt",
    "from_pymanopt",
    "from_pymanopt_options",
    "hessian_spectrum",
    "theory",
    "__version__",
]
