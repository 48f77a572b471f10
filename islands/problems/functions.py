"""Continuous test functions (sphere, rastrigin, rosenbrock) as minimal Problems.

They show how small a problem can be: the five required parts plus `bounds` and
`target_fitness`. Operators default to those of `islands.problem.CompleteProblem`.
The memory-hungry test problem is `islands.problems.heavy`.
"""

from __future__ import annotations

import numpy as np


class _Function:
    low: float = -5.12
    high: float = 5.12

    def __init__(self, dim: int = 30) -> None:
        if int(dim) < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.dim = int(dim)
        self.genome_shape = (self.dim,)
        self.genome_dtype = np.dtype(np.float64)
        self.individual_bytes = 8 * self.dim
        self.bounds = (self.low, self.high)
        self.target_fitness = 0.0

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(n, self.dim))


class Sphere(_Function):
    name = "sphere"

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        return np.einsum("ij,ij->i", genomes, genomes)


class Rastrigin(_Function):
    name = "rastrigin"

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        return 10.0 * self.dim + (genomes**2 - 10.0 * np.cos(2.0 * np.pi * genomes)).sum(axis=1)


class Rosenbrock(_Function):
    name = "rosenbrock"
    low, high = -2.048, 2.048

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        head, tail = genomes[:, :-1], genomes[:, 1:]
        return (100.0 * (tail - head**2) ** 2 + (1.0 - head) ** 2).sum(axis=1)
