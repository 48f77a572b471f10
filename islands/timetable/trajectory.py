"""Where each population member's annealing stands between `improve()` calls.

Covers: `Trajectories`, the per-member search states of a trajectory problem
(`islands.problem.CompleteProblem.trajectory`): the state each member's annealing ended
its last call in (usually worse than the member's best: annealing wanders), and the
best fitness each trajectory has reached itself. A member whose fitness is better than
that (an accepted immigrant) restarts from its genome, when the caller lets it adopt
(`starts(..., adopt=...)`: the timetable problem adopts only once cool).

Does not cover: the annealing (`islands.timetable.kernels.anneal`), its temperature
across calls (`islands.timetable.settings.CoolingSchedule`) or the population that calls
it (`islands.population`).

Why: a long annealing that restarts from its best state every fraction of a second (each
call) cannot wander while hot; one that goes on from where it stopped is the single
long annealing that does best on these instances. Likewise a hot trajectory pulled to
another island's best at every migration explores little of its own: two islands are
two independent searches while hot, and pool their best once cool.
"""

from __future__ import annotations

import numpy as np


class Trajectories:
    """The end states of the last `improve()` call, one per member."""

    def __init__(self) -> None:
        self.current: np.ndarray | None = None
        self.best_fitness: np.ndarray | None = None  # each trajectory's own best so far
        self.restarts = 0  # members that restarted from a better genome (immigrants)

    def starts(self, genomes: np.ndarray, fitness: np.ndarray, adopt: bool = True) -> np.ndarray:
        """The genomes the next call anneals from, one per member: where each trajectory
        stopped or, with `adopt`, the member's genome where it is better than anything
        that trajectory found (an immigrant)."""
        genomes = np.asarray(genomes)
        if self.current is None or self.current.shape != genomes.shape:
            # First call, or the population was resized: every search starts afresh.
            self.best_fitness = np.full(len(genomes), np.inf)
            return genomes.copy()
        starts = self.current.copy()
        restart = (np.asarray(fitness) < self.best_fitness) & bool(adopt)
        starts[restart] = genomes[restart]
        self.best_fitness[restart] = np.inf  # a restarted search's own best starts over
        self.restarts += int(restart.sum())
        return starts

    def advance(self, end_states: np.ndarray, call_best: np.ndarray) -> None:
        """The call from `starts` ended in `end_states`; `call_best`: the best fitness
        each annealing held during it (its start included)."""
        self.best_fitness = np.minimum(self.best_fitness, np.asarray(call_best, dtype=np.float64))
        self.current = np.array(end_states, copy=True)

    def forget(self) -> None:
        """Start every member afresh from its genome at the next call."""
        self.current = None
        self.best_fitness = None
