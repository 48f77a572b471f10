"""Island: search progress, reproducibility, exact checkpoint restore, resizing, immigrants."""

import numpy as np
import pytest

from islands.checkpoint import load_state, pack_array, save_state
from islands.errors import InputError
from islands.island import CACHE_MIN_HIT_RATE, CACHE_TRIAL_LOOKUPS, Island, derive_seed
from islands.params import IslandParams
from islands.problem import build_problem


@pytest.fixture(scope="module")
def rastrigin():
    return build_problem("rastrigin:dim=20")


def make_island(problem, island_id=0, seed=123, population_size=40, **overrides):
    """An island; `overrides` are `IslandParams` fields (chunk size 8 unless given)."""
    params = IslandParams(population=population_size, **{"chunk_size": 8, **overrides})
    return Island(problem, island_id=island_id, seed=seed, params=params)


def trajectory(island, steps):
    """Everything observable about `steps` generations, for bit-for-bit comparison."""
    records = []
    for _ in range(steps):
        stats = island.step()
        records.append(
            (
                stats.generation,
                stats.best_fitness,
                stats.mean_fitness,
                island.population.genomes.tobytes(),
                island.population.fitness.tobytes(),
            )
        )
    return records


def test_rastrigin_improves_over_30_steps(rastrigin):
    island = make_island(rastrigin)
    first = island.step()
    for _ in range(29):
        stats = island.step()
    assert island.generation == 30
    assert stats.best_fitness < 0.6 * first.best_fitness
    genome, fitness = island.best()
    assert fitness == island.best_fitness == stats.best_fitness
    assert rastrigin.evaluate(genome[None])[0] == fitness
    # Real evaluations: initial 40 + 30 generations of 40, fewer only by cache hits.
    assert island.evaluations + island.cache_hits == 40 * 31


def test_same_seed_gives_bit_identical_runs(rastrigin):
    assert trajectory(make_island(rastrigin), 10) == trajectory(make_island(rastrigin), 10)


def test_different_island_ids_give_different_streams(rastrigin):
    a = trajectory(make_island(rastrigin, island_id=0), 2)
    b = trajectory(make_island(rastrigin, island_id=1), 2)
    assert a[0][3] != b[0][3]
    assert derive_seed(5, 0) != derive_seed(5, 1)
    assert derive_seed(5, 1) == derive_seed(5, 1)
    # derive_seed is SeedSequence spawning: child i of the run seed's sequence.
    child = np.random.SeedSequence(5).spawn(3)[2]
    assert derive_seed(5, 2) == int(child.generate_state(1, dtype=np.uint64)[0])


def test_state_round_trip_through_a_file_continues_bit_for_bit(rastrigin, tmp_path):
    original = make_island(rastrigin, cache_entries=50)
    trajectory(original, 6)
    original.shrink(0.5)
    original.grow(1.5)
    path = tmp_path / "island.ckpt"
    save_state(path, original.state())
    restored = Island.from_state(rastrigin, load_state(path))
    assert restored.generation == original.generation
    assert restored.evaluations == original.evaluations
    assert restored.population_size == original.population_size
    assert restored.best()[1] == original.best()[1]
    np.testing.assert_array_equal(restored.best()[0], original.best()[0])
    assert trajectory(restored, 8) == trajectory(original, 8)


def test_state_before_the_first_step_restores_too(rastrigin):
    original = make_island(rastrigin, streaming=False, tournament_size=3)
    restored = Island.from_state(rastrigin, original.state())
    assert restored.population.tournament_size == 3 and not restored.population.streaming
    assert trajectory(restored, 3) == trajectory(original, 3)


def test_from_state_rejects_a_state_of_another_problem(rastrigin):
    island = make_island(rastrigin)
    island.step()
    with pytest.raises(InputError, match="needs float64"):
        Island.from_state(build_problem("sphere:dim=3"), island.state())
    with pytest.raises(InputError, match="not an island state"):
        Island.from_state(rastrigin, {"format": "other"})
    broken = island.state()
    del broken["rng"]
    with pytest.raises(InputError, match="malformed"):
        Island.from_state(rastrigin, broken)


def test_shrink_and_grow_respect_their_bounds(rastrigin):
    island = make_island(rastrigin, population_size=40, min_population=6, max_population=60)
    island.step()
    assert island.shrink(0.5) == 20
    assert island.shrink(0.1) == 6
    assert island.shrink(0.5) == 6
    assert len(island.population.fitness) == 6
    assert island.population_bytes == 6 * (20 * 8 + 8)
    island.growth_paused = True
    assert island.grow(4.0) == 6
    island.growth_paused = False
    assert island.grow(4.0) == 24
    assert island.grow(4.0) == 60
    assert island.grow(4.0) == 60
    assert len(island.population.genomes) == 60
    assert island.step().generation == 2


def test_max_population_defaults_to_the_initial_size(rastrigin):
    island = make_island(rastrigin, population_size=30)
    island.step()
    island.shrink(0.5)
    assert island.grow(10.0) == 30


def test_accept_immigrants_replaces_only_worse_residents(rastrigin):
    island = make_island(rastrigin, population_size=10)
    island.step()
    fitness_before = island.population.fitness.copy()
    worst, second_worst = np.sort(fitness_before)[-1], np.sort(fitness_before)[-2]
    newcomers = np.zeros((3, 20))
    newcomers[1] += 0.5
    newcomers[2] += 1.0
    newcomer_fitness = np.array([-1.0, (worst + second_worst) / 2 + 1e9, worst + 1.0])
    accepted = island.accept_immigrants(newcomers, newcomer_fitness)
    assert accepted == 1
    assert -1.0 in island.population.fitness and worst not in island.population.fitness
    assert island.best_fitness == -1.0
    np.testing.assert_array_equal(island.best()[0], np.zeros(20))
    assert island.immigrants_accepted == 1


@pytest.mark.parametrize(
    "genomes, fitness",
    [
        (np.zeros((2, 19)), np.zeros(2)),  # wrong genome shape
        (np.zeros((2, 20), dtype=np.float32), np.zeros(2)),  # wrong dtype
        (np.zeros((2, 20)), np.zeros(3)),  # count mismatch
        (np.zeros((2, 20)), np.array([np.nan, -5.0])),  # NaN fitness
        (np.zeros(20), np.zeros(1)),  # not a batch
    ],
)
def test_accept_immigrants_ignores_malformed_batches(rastrigin, genomes, fitness):
    island = make_island(rastrigin, population_size=10)
    island.step()
    before = island.population.genomes.copy()
    assert island.accept_immigrants(genomes, fitness) == 0
    np.testing.assert_array_equal(island.population.genomes, before)


def test_emigrants_are_copies_of_the_best(rastrigin):
    island = make_island(rastrigin, population_size=10)
    island.step()
    genomes, fitness = island.emigrants(3)
    np.testing.assert_array_equal(fitness, np.sort(island.population.fitness)[:3])
    genomes[:] = 99.0
    assert not np.any(island.population.genomes == 99.0)
    assert len(island.emigrants(50)[1]) == 10


def test_best_never_gets_worse_through_steps_shrinks_and_grows(rastrigin):
    island = make_island(rastrigin, population_size=30, min_population=4)
    history = []
    for round_number in range(12):
        island.step()
        if round_number % 3 == 1:
            island.shrink(0.25)
        if round_number % 3 == 2:
            island.grow(4.0)
        history.append(island.best_fitness)
    assert all(later <= earlier for earlier, later in zip(history, history[1:], strict=False))
    # An immigrant better than anything reachable is kept as best even after the
    # population is replaced wholesale.
    island.accept_immigrants(np.full((1, 20), 0.0), np.array([-100.0]))
    island.population.resize(4)
    island.population.fitness[:] = 50.0  # the survivors lose it
    island.step()
    assert island.best()[1] == -100.0


def test_cache_can_be_cleared_and_turned_off(rastrigin):
    island = make_island(rastrigin, cache_entries=100)
    island.step()
    assert island.cache_stats.entries == 80 and island.cache_bytes > 0
    island.clear_cache()
    assert island.cache_bytes == 0
    uncached = make_island(rastrigin, cache_entries=0)
    uncached.step()
    assert uncached.cache_stats is None and uncached.cache_bytes == 0
    uncached.resize_cache(max_entries=30)
    uncached.step()
    assert uncached.cache_stats.entries == 30
    uncached.resize_cache(max_entries=10)
    assert uncached.cache_stats.entries == 10
    uncached.resize_cache(max_entries=0)
    assert uncached.cache_stats is None and uncached.step().cache_hits == 0
    # Both bounds None still gives a bounded cache.
    assert make_island(rastrigin, cache_entries=None).cache.max_entries == 10_000


def test_set_chunk_size_changes_the_next_generation(rastrigin):
    island = make_island(rastrigin)
    island.step()
    island.set_chunk_size(3)
    assert island.chunk_size == 3
    with pytest.raises(ValueError):
        island.set_chunk_size(0)


def test_bad_parameters_are_input_errors(rastrigin):
    # Unknown parameters can only come from outside the code now: a checkpoint's config.
    state = make_island(rastrigin).state()
    state["config"]["operator_params"]["mutation"] = 0.5
    with pytest.raises(InputError, match="unknown island parameter 'mutation'"):
        Island.from_state(rastrigin, state)
    with pytest.raises(InputError, match="population size"):
        make_island(rastrigin, population_size=0)
    with pytest.raises(InputError, match="crossover_rate"):
        make_island(rastrigin, crossover_rate=2.0)


@pytest.mark.slow
def test_shrink_gives_survivor_memory_back_to_the_os():
    psutil = pytest.importorskip("psutil")
    wide = build_problem("sphere:dim=20000")  # 160 kB a genome: 500 of them are 80 MB
    island = Island(wide, island_id=0, seed=1, params=IslandParams(population=500, chunk_size=50))
    island.step()
    assert island.population_bytes == 500 * (20000 * 8 + 8)
    before = psutil.Process().memory_info().rss
    assert island.shrink(0.25) == 125
    after = psutil.Process().memory_info().rss
    assert island.population_bytes == 125 * (20000 * 8 + 8)
    assert before - after > 0.6 * (500 - 125) * 20000 * 8


def test_immigrants_outside_the_problems_domain_are_never_taken(rastrigin):
    island = make_island(rastrigin)
    island.step()
    genomes = np.zeros((2, 20))
    genomes[0, 3] = np.nan  # claims the best fitness there is, and is not a genome at all
    assert island.accept_immigrants(genomes, np.array([-1.0, 0.0])) == 1
    assert np.isfinite(island.population.genomes).all()
    assert island.best_fitness == 0.0


def test_a_state_with_genomes_outside_the_domain_is_refused(rastrigin):
    island = make_island(rastrigin)
    island.step()
    state = island.state()
    genomes = island.population.genomes.copy()
    genomes[5, 0] = np.inf
    state["genomes"] = pack_array(genomes)
    with pytest.raises(InputError, match="outside"):
        Island.from_state(rastrigin, state)


def test_refresh_rescores_a_restored_island_only_when_its_best_scores_differently(rastrigin):
    island = make_island(rastrigin)
    for _ in range(3):
        island.step()
    state = island.state()
    same = Island.from_state(rastrigin, state)
    assert not same.refresh()
    assert same.best_fitness == island.best_fitness
    # As if the instance had changed: the saved values are no longer what genomes score.
    state["best_fitness"] = island.best_fitness - 5.0
    state["fitness"] = pack_array(island.population.fitness + 7.0)
    stale = Island.from_state(rastrigin, state)
    assert stale.refresh()
    assert np.array_equal(stale.population.fitness, rastrigin.evaluate(stale.population.genomes))
    assert stale.best_fitness == island.best_fitness


class FewBits:
    """Eight bits, so children repeat often: a cache that pays."""

    genome_shape = (8,)
    genome_dtype = np.dtype(np.int8)
    individual_bytes = 8

    def random(self, rng, n):
        return rng.integers(0, 2, size=(n, 8), dtype=np.int8)

    def evaluate(self, genomes):
        return -genomes.sum(axis=1).astype(np.float64)


def test_a_cache_without_hits_switches_itself_off_and_keeps_its_counts(rastrigin):
    island = make_island(rastrigin, population_size=50, chunk_size=None)
    steps = 0
    while not island.cache_switched_off:
        assert steps < 200, "a real-valued genome's cache never switched off"
        island.step()
        steps += 1
    hits, misses = island.cache.lookups
    assert hits == 0 and misses >= CACHE_TRIAL_LOOKUPS
    assert island.cache_bytes == 0 and island.cache_stats.misses == misses
    island.step()  # no more look-ups, no more entries
    assert island.cache.lookups == (hits, misses) and island.cache_bytes == 0
    assert island.state()["config"]["cache_entries"] == 0  # a restored island starts without
    # An explicit size turns it on again: a new cache, on a new trial.
    island.resize_cache(max_entries=100)
    island.step()
    assert not island.cache_switched_off and island.cache.lookups == (0, 50)


def test_a_cache_that_hits_stays_on():
    island = make_island(FewBits(), population_size=50, chunk_size=None)
    for _ in range(3 * CACHE_TRIAL_LOOKUPS // 50):
        island.step()
    hits, misses = island.cache.lookups
    assert hits + misses >= CACHE_TRIAL_LOOKUPS and hits > CACHE_MIN_HIT_RATE * (hits + misses)
    assert not island.cache_switched_off and island.cache_bytes > 0
