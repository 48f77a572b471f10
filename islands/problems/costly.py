"""`costly`: a continuous problem whose evaluation burns a fixed amount of CPU.

For scaling benchmarks (benchmarks/scaling.py): each evaluation repeats a small
deterministic numpy computation `work` times, so the cost per individual is set by a
parameter, not by the machine's mood, and every process does exactly the same work.
`benchmarks/scaling.py` calibrates `work` to about 1 ms on the machine at hand.
The fitness is rastrigin's, so the search still makes progress. Memory-hungry
evaluation is `islands.problems.heavy`'s job.
"""

from __future__ import annotations

import numpy as np

from islands.problems.functions import Rastrigin


class Costly(Rastrigin):
    name = "costly"

    def __init__(self, dim: int = 30, work: int = 100) -> None:
        super().__init__(dim=dim)
        if int(work) < 0:
            raise ValueError(f"work must be non-negative, got {work}")
        self.work = int(work)

    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        fitness = super().evaluate(genomes)
        for row in range(len(genomes)):
            burn = genomes[row]
            for _ in range(self.work):
                # A chain each step depends on, so nothing can be skipped or hoisted.
                burn = np.sin(burn) * 0.5 + burn * 0.5
            fitness[row] += 0.0 * float(burn[0])
        return fitness
