"""`heavy`: a problem whose every evaluation really costs a chosen number of megabytes.

Covers: `Heavy` (spec `heavy:mb=20,dim=50`). Each individual's phenotype is an
`(mb * 2**20 / 8,)` float64 array built from its genome (the genome tiled over it) and
fully written and read; the phenotypes of one batch are alive together, so evaluating k
individuals needs about `k * mb` MB on top of the process. That makes memory pressure
reproducible in tests and benchmarks with small budgets. Fitness is the sphere function
of the genome plus the phenotype's mean square, so search makes progress (optimum 0 at
the origin).

Does not cover: the chunking that bounds how many phenotypes live at once
(`islands.population`), memory measurement (`memory`), the continuous test functions
(`islands.problems.functions`).
"""

from __future__ import annotations

import numpy as np


class Heavy:
    name = "heavy"
    low, high = -5.12, 5.12

    def __init__(self, mb: float = 20, dim: int = 50) -> None:
        try:
            mb, dim_float = float(mb), float(dim)
        except (TypeError, ValueError) as error:
            raise ValueError(f"mb and dim must be numbers (got mb={mb!r}, dim={dim!r})") from error
        if not mb > 0 or not np.isfinite(mb):
            raise ValueError(f"mb must be a positive number of megabytes, got {mb:g}")
        if dim_float != int(dim_float) or dim_float < 1:
            raise ValueError(f"dim must be at least 1, got {dim}")
        self.mb = mb
        self.dim = int(dim_float)
        self.genome_shape = (self.dim,)
        self.genome_dtype = np.dtype(np.float64)
        # At least one genome's worth of phenotype, so tiny `mb` still works.
        self.phenotype_length = max(self.dim, int(mb * 2**20) // 8)
        self.individual_bytes = self.phenotype_length * 8
        self.bounds = (self.low, self.high)
        self.target_fitness = 0.0

    def random(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size=(n, self.dim))

    def phenotypes(self, genomes: np.ndarray) -> np.ndarray:
        """The batch's phenotypes `(n, phenotype_length)`: each genome tiled, every page written."""
        genomes = np.asarray(genomes, dtype=np.float64).reshape(-1, self.dim)
        count = len(genomes)
        phenotypes = np.empty((count, self.phenotype_length), dtype=np.float64)
        repeats, rest = divmod(self.phenotype_length, self.dim)
        phenotypes[:, : repeats * self.dim].reshape(count, repeats, self.dim)[...] = genomes[:, None, :]
        phenotypes[:, repeats * self.dim :] = genomes[:, :rest]
        return phenotypes

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        genomes = np.asarray(genomes, dtype=np.float64).reshape(-1, self.dim)
        phenotypes = self.phenotypes(genomes)
        # Reading the whole phenotype (no temporary) is part of the cost we simulate.
        mean_square = np.einsum("ij,ij->i", phenotypes, phenotypes) / self.phenotype_length
        del phenotypes
        return np.einsum("ij,ij->i", genomes, genomes) + mean_square
