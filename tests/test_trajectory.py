"""Trajectory problems (`trajectory = True`, islands.problem): each population member is one
local search that goes on across generations; a member is replaced only by its own
result; a better immigrant restarts the member's search once the annealing is cool
(`adopt_below`). With the real timetable annealing, and with a small problem whose search
is easy to follow."""

import numpy as np
import pytest

from islands.errors import InputError
from islands.island import Island
from islands.params import IslandParams
from islands.timetable.generator import generate_instance
from islands.timetable.problem import TimetableProblem
from islands.timetable.settings import SearchSettings
from islands.timetable.trajectory import Trajectories


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


def timetable(population: int = 1, **settings: float) -> tuple[TimetableProblem, Island]:
    instance = generate_instance(courses=30, rooms=5, days=5, periods_per_day=5, curricula=12, seed=2)
    problem = TimetableProblem(instance=instance, ls_moves=20_000, **settings)
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


def island_given_a_better_immigrant(
    claimed: float | None = None, **settings: float
) -> tuple[TimetableProblem, Island, float]:
    """An island two generations in, and a better genome accepted from another island
    (with the fitness `claimed` where given: the island trusts a migrant's fitness)."""
    problem, island = timetable(**settings)
    for _ in range(2):
        island.step()
    donor_problem, donor = timetable()
    for _ in range(12):
        donor.step()
    genome, fitness = donor.best()
    if fitness >= island.best_fitness:
        genome, fitness = island.best()
        fitness -= 1.0  # claimed better: the island trusts a migrant's fitness
    fitness = fitness if claimed is None else claimed
    assert island.accept_immigrants(genome[None, :], np.array([fitness])) == 1
    return problem, island, fitness


def test_a_better_immigrant_restarts_a_cool_search_from_it():
    # t_start 0.09 lies below the default adopt_below (0.1): the schedule is cool throughout.
    problem, island, fitness = island_given_a_better_immigrant(t_start=0.09)
    island.step()
    assert problem.trajectories.restarts == 1
    assert island.best_fitness <= fitness


def test_a_hot_search_goes_on_from_its_own_state_and_the_island_keeps_the_immigrant():
    # Claimed -1: better than any timetable, so no search of its own can reach it.
    problem, island, fitness = island_given_a_better_immigrant(claimed=-1.0)
    assert problem.cooling.temperature > problem.adopt_below
    own_end = problem.trajectories.current.copy()
    island.step()
    assert problem.trajectories.restarts == 0
    assert island.best_fitness <= fitness  # the immigrant stays the island's best
    # The next call went on from where the trajectory stopped: its own best is still
    # what it found itself, worse than the immigrant, so once cool it would restart.
    assert not np.array_equal(problem.trajectories.current, own_end)
    assert problem.trajectories.best_fitness[0] > fitness


def test_adopt_below_inf_restarts_at_every_better_immigrant():
    problem, island, fitness = island_given_a_better_immigrant(adopt_below=float("inf"))
    island.step()
    assert problem.trajectories.restarts == 1


def test_trajectories_track_each_searchs_own_best_and_adopt_only_when_told():
    trajectories = Trajectories()
    genomes = np.array([[1], [2]])
    assert np.array_equal(trajectories.starts(genomes, np.array([50.0, 60.0])), genomes)
    trajectories.advance(np.array([[11], [12]]), np.array([40.0, 55.0]))
    # Member 0 received an immigrant of fitness 30 (better than its search's 40).
    immigrant = np.array([[7], [2]])
    fitness = np.array([30.0, 55.0])
    assert np.array_equal(trajectories.starts(immigrant, fitness, adopt=False), [[11], [12]])
    trajectories.advance(np.array([[13], [14]]), np.array([45.0, 50.0]))
    assert trajectories.best_fitness.tolist() == [40.0, 50.0]  # own bests, not the immigrant
    assert np.array_equal(trajectories.starts(immigrant, fitness, adopt=True), [[7], [14]])
    trajectories.advance(np.array([[15], [16]]), np.array([30.0, 50.0]))
    assert trajectories.best_fitness.tolist() == [30.0, 50.0]
    assert trajectories.restarts == 1


def test_adopt_below_is_checked():
    assert SearchSettings(adopt_below="inf").adopt_below == float("inf")
    assert SearchSettings(adopt_below="0.2").adopt_below == 0.2
    for bad in (-0.1, "warm", float("nan")):
        with pytest.raises(InputError, match="adopt_below must be a number >= 0"):
            SearchSettings(adopt_below=bad)
