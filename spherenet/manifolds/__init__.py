"""Manifolds: spheres, products of spheres, Euclidean blocks and their products."""

from .base import Manifold, point_atol
from .euclidean import Euclidean
from .oblique import Oblique
from .product import Product
from .sphere import Sphere

__all__ = ["Manifold", "Sphere", "Oblique", "Euclidean", "Product", "point_atol"]
