"""Where each population member's annealing stands between `improve()` calls.

Covers: `Trajectories`, the per-member search states of a trajectory problem
(`islands.problem.CompleteProblem.trajectory`): the state each member's annealing ended
its last call in (usually worse than the member's best: annealing wanders), and the
best fitness each member had then. A member whose fitness is now better than that (an
accepted immigrant) restarts from its genome.

Does not cover: the annealing (`islands.timetable.kernels.anneal`), its temperature
across calls (`islands.timetable.settings.CoolingSchedule`) or the population that calls
it (`islands.population`).

Why: a long annealing that restarts from its best state every fraction of a second (each
call) cannot wander while hot; one that goes on from where it stopped is the single
long annealing that does best on these instances.
"""

from __future__ import annotations

import numpy as np


class Trajectories:
    """The end states of the last `improve()` call, one per member."""

    def __init__(self) -> None:
        self.current: np.ndarray | None = None
        self.best_fitness: np.ndarray | None = None
        self.restarts = 0  # members that restarted from a better genome (immigrants)

    def starts(self, genomes: np.ndarray, fitness: np.ndarray) -> np.ndarray:
        """The genomes the next call anneals from, one per member."""
        genomes = np.asarray(genomes)
        if self.current is None or self.current.shape != genomes.shape:
            return genomes.copy()  # first call, or the population was resized
        starts = self.current.copy()
        restart = np.asarray(fitness) < self.best_fitness
        starts[restart] = genomes[restart]
        self.restarts += int(restart.sum())
        return starts

    def advance(self, end_states: np.ndarray, best_fitness: np.ndarray) -> None:
        """A call ended in `end_states`, the members' bests now at `best_fitness`."""
        self.current = np.array(end_states, copy=True)
        self.best_fitness = np.array(best_fitness, dtype=np.float64, copy=True)

    def forget(self) -> None:
        """Start every member afresh from its genome at the next call."""
        self.current = None
        self.best_fitness = None
