"""Where each population member's annealing stands between `improve()` calls.

Covers: `Trajectories`, the per-member search states of a trajectory problem
(`islands.problem.CompleteProblem.trajectory`): the state each member's annealing ended
its last call in (usually worse than the member's best: annealing wanders), and the
best fitness each trajectory has reached itself. A member whose fitness is better than
that (an accepted immigrant) restarts from its genome, when the caller lets it adopt
(`starts(..., adopt=...)`: the timetable problem adopts only once cool). And `Stall`:
how long the island's own search has gone without a better best, which tells the
timetable problem when to restart from its best with a reheat.

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

    def starts(
        self, genomes: np.ndarray, fitness: np.ndarray, adopt: bool = True,
        feasible_below: float = -np.inf,
    ) -> np.ndarray:
        """The genomes the next call anneals from, one per member: where each trajectory
        stopped or, with `adopt`, the member's genome where it is better than anything
        that trajectory found (an immigrant). A trajectory that has found nothing below
        `feasible_below` restarts from a genome below it even without `adopt`: a search
        stuck with a hard violation gains nothing from staying independent."""
        genomes = np.asarray(genomes)
        if self.current is None or self.current.shape != genomes.shape:
            # First call, or the population was resized: every search starts afresh.
            self.best_fitness = np.full(len(genomes), np.inf)
            return genomes.copy()
        starts = self.current.copy()
        fitness = np.asarray(fitness)
        rescue = (self.best_fitness >= feasible_below) & (fitness < feasible_below)
        restart = (fitness < self.best_fitness) & (bool(adopt) | rescue)
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


class Stall:
    """Seconds of calls since the island's own search last found a better best, and the
    temperature it was found at. `after_share`: the share of a cooling cycle after which
    the search counts as stalled (0: never)."""

    def __init__(self, after_share: float) -> None:
        self.after_share = float(after_share)
        self.best = np.inf
        self.seconds = 0.0
        self.found_at: float | None = None  # temperature of the call that found `best`
        self.reheats = 0

    def record(self, call_best: float, seconds: float, temperature: float) -> None:
        """A call that started at `temperature` and took `seconds` reached `call_best`."""
        if call_best < self.best:
            self.best, self.seconds, self.found_at = float(call_best), 0.0, float(temperature)
        else:
            self.seconds += seconds

    def due(self, cycle_s: float, left_s: float) -> bool:
        """Stalled for `after_share` of a cycle of `cycle_s`, with as much time left."""
        window = self.after_share * cycle_s
        return (self.after_share > 0 and self.found_at is not None
                and self.seconds >= window and left_s >= window)

    def start_reheat(self) -> float:
        """Count a reheat and restart the clock; returns where the stalled search goes on
        from: twice as hot as its last improvement."""
        self.seconds = 0.0
        self.reheats += 1
        return 2.0 * float(self.found_at or 0.0)
