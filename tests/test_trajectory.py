"""Trajectory problems (`trajectory = True`, islands.problem): each population member is one
local search that goes on across generations; a member is replaced only by its own
result; a better immigrant restarts the member's search. With the real timetable
annealing, and with a small problem whose search is easy to follow."""

import numpy as np

from islands.island import Island
from islands.params import IslandParams
from islands.timetable.generator import generate_instance
from islands.timetable.problem import TimetableProblem


class Countdown:
    """Genome: one float per member; each improve() step lowers member k by k + 1, from
    where that member's own search stood (kept here, as an annealing keeps its state)."""

    genome_shape = (1,)
    genome_dtype = np.float64
    individual_bytes = 8
    trajectory = True

    def __init__(self) -> None:
        self.calls = 0

    def random(self, rng, n):
        return np.full((n, 1), 100.0)

    def evaluate(self, genomes):
        return np.asarray(genomes, dtype=np.float64).reshape(-1, 1)[:, 0].copy()

    def improve(self, genomes, fitness, rng):
        self.calls += 1
        step = np.arange(1, len(genomes) + 1, dtype=np.float64).reshape(-1, 1)
        improved = np.asarray(genomes) - step
        return improved, improved[:, 0].copy()


def test_each_member_is_replaced_only_by_its_own_search():
    problem = Countdown()
    island = Island(problem, island_id=0, seed=0, params=IslandParams(population=3, min_population=1))
    for _ in range(4):
        island.step()
    # Member k went down by (k + 1) per generation: no member took another's result
    # (mu+lambda over the union would have kept the three best, all from member 2).
    assert sorted(island.population.fitness.tolist()) == [88.0, 92.0, 96.0]
    assert problem.calls == 4


def timetable(population: int = 1) -> tuple[TimetableProblem, Island]:
    instance = generate_instance(courses=30, rooms=5, days=5, periods_per_day=5, curricula=12, seed=2)
    problem = TimetableProblem(instance=instance, ls_moves=20_000)
    problem.set_time_budget(30.0)
    island = Island(problem, island_id=0, seed=4,
                    params=IslandParams(population=population, min_population=1))
    return problem, island


def test_the_timetable_annealing_goes_on_from_where_its_last_call_ended():
    problem, island = timetable()
    island.step()
    first_end = problem.trajectories.current.copy()
    first_temperature = problem.cooling.temperature
    island.step()
    # The second call started from the first call's end state (not from the best): the
    # schedule went on cooling and no member restarted.
    assert problem.trajectories.restarts == 0
    assert problem.cooling.temperature < first_temperature
    assert not np.array_equal(problem.trajectories.current, first_end)
    assert island.population.fitness[0] <= island.population.fitness.max()


def test_a_better_immigrant_restarts_the_search_from_it():
    problem, island = timetable()
    for _ in range(2):
        island.step()
    donor_problem, donor = timetable()
    for _ in range(12):
        donor.step()
    genome, fitness = donor.best()
    if fitness >= island.best_fitness:
        genome, fitness = island.best()
        fitness -= 1.0  # claimed better: the island trusts a migrant's fitness
    assert island.accept_immigrants(genome[None, :], np.array([fitness])) == 1
    island.step()
    assert problem.trajectories.restarts == 1
    assert island.best_fitness <= fitness
