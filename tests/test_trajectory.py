"""Trajectory problems (`trajectory = True`, islands.problem): each population member is one
local search that goes on across generations; a member is replaced only by its own
result; a better immigrant restarts the member's search once the annealing is cool
(`adopt_below`). With the real timetable annealing, and with a small problem whose search
is easy to follow."""

import time

import numpy as np
import pytest

from islands.errors import InputError
from islands.island import Island
from islands.params import IslandParams
from islands.timetable.generator import generate_instance
from islands.timetable.problem import TimetableProblem
from islands.timetable.settings import CoolingSchedule, SearchSettings
from islands.timetable.trajectory import Stall, Trajectories


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


def test_a_stall_is_due_after_its_share_of_the_cycle_with_as_much_time_left():
    stall = Stall(after_share=0.1)
    assert not stall.due(cycle_s=10.0, left_s=10.0)  # nothing found yet
    stall.record(500.0, 0.5, temperature=2.0)
    stall.record(480.0, 0.5, temperature=0.4)  # better: the clock starts over
    stall.record(480.0, 0.6, temperature=0.3)
    assert not stall.due(cycle_s=10.0, left_s=5.0)
    stall.record(490.0, 0.5, temperature=0.2)  # worse counts as no progress
    assert stall.due(cycle_s=10.0, left_s=5.0)
    assert not stall.due(cycle_s=10.0, left_s=0.9)  # too little time left to cool again
    assert stall.start_reheat() == 0.8  # twice the temperature of the last find
    assert stall.reheats == 1 and not stall.due(cycle_s=10.0, left_s=5.0)
    assert not Stall(after_share=0.0).due(cycle_s=10.0, left_s=10.0)


def test_a_reheat_cools_to_t_end_over_the_cycles_time_left():
    cooling = CoolingSchedule(t_start=3.0, t_end=0.08, anneal_s=10.0)
    for _ in range(4):
        high, low = cooling.next_range()
        cooling.advance(low, 1.0)
    assert cooling.left_s == pytest.approx(6.0)
    cooling.reheat(0.5)
    assert cooling.temperature == 0.5 and cooling.anneal_s == pytest.approx(6.0)
    lows = []
    for _ in range(6):
        high, low = cooling.next_range()
        lows.append(low)
        cooling.advance(low, 1.0)
    assert lows[0] < 0.5 and lows == sorted(lows, reverse=True)
    assert lows[-1] == pytest.approx(0.08)
    # The cycle is over: the usual reheat, and the next cycle is a whole one again.
    assert cooling.temperature == 1.5 and cooling.anneal_s == 10.0 and cooling.left_s == 10.0
    cooling.reheat(9.0)
    assert cooling.temperature == 3.0  # never above t_start


def annealed_until_stalled(reheat_after: float, calls_s: float = 2.0) -> TimetableProblem:
    """A small instance annealed through `calls_s` seconds of calls of cycles of 1 s (a
    small instance soon stops finding better timetables)."""
    instance = generate_instance(courses=12, rooms=3, days=5, periods_per_day=4, curricula=4, seed=1)
    problem = TimetableProblem(instance=instance, ls_moves=5_000, anneal_s=1.0,
                               reheat_after=reheat_after)
    rng = np.random.default_rng(0)
    genomes = problem.random(rng, 1)
    fitness = problem.evaluate(genomes)
    started = time.perf_counter()
    while time.perf_counter() - started < calls_s:
        improved, improved_fitness = problem.improve(genomes, fitness, rng)
        assert improved_fitness[0] <= fitness[0]  # nothing found is lost
        genomes, fitness = improved, improved_fitness
    return problem


def test_a_stalled_search_restarts_from_its_best_with_a_reheat():
    problem = annealed_until_stalled(reheat_after=0.2)
    assert problem.stall.reheats >= 1
    assert problem.stall.found_at is not None
    assert annealed_until_stalled(reheat_after=0.0, calls_s=1.0).stall.reheats == 0


def test_reheat_after_is_checked():
    assert SearchSettings(reheat_after="0.25").reheat_after == 0.25
    for bad in (-0.1, 1.5, "soon", float("nan")):
        with pytest.raises(InputError, match="reheat_after must be a number in"):
            SearchSettings(reheat_after=bad)


def test_a_parameter_that_is_not_a_number_is_named():
    with pytest.raises(InputError, match="t_start must be a number, got 'abc'"):
        SearchSettings(t_start="abc")
    with pytest.raises(InputError, match="ls_moves must be a whole number, got '2.5'"):
        SearchSettings(ls_moves="2.5")
    assert SearchSettings(anneal_s=None, population="3").population == 3


def test_a_search_without_a_feasible_timetable_takes_a_feasible_immigrant_even_when_hot():
    trajectories = Trajectories()
    trajectories.starts(np.array([[1], [2]]), np.array([10_500.0, 400.0]))
    trajectories.advance(np.array([[11], [12]]), np.array([10_450.0, 380.0]))
    # Both members received better genomes; only member 0's own search is infeasible
    # (>= 10,000: a hard violation) and its immigrant is feasible.
    fitness = np.array([390.0, 370.0])
    starts = trajectories.starts(np.array([[7], [8]]), fitness, adopt=False, feasible_below=10_000)
    assert np.array_equal(starts, [[7], [12]])
    # Without a threshold (or with a better but still infeasible genome) nothing restarts.
    trajectories.advance(np.array([[13], [14]]), np.array([390.0, 380.0]))
    again = trajectories.starts(np.array([[7], [8]]), np.array([385.0, 370.0]), adopt=False)
    assert np.array_equal(again, [[13], [14]])
    stuck = Trajectories()
    stuck.starts(np.array([[1]]), np.array([20_500.0]))
    stuck.advance(np.array([[11]]), np.array([20_400.0]))
    assert np.array_equal(stuck.starts(np.array([[5]]), np.array([10_300.0]), adopt=False,
                                       feasible_below=10_000), [[11]])
