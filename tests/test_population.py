"""StreamingPopulation: chunked breeding bounds what is alive, both modes search, cache, resize."""

import tracemalloc

import numpy as np
import pytest

from islands.operators import best_k, replace_worst, tournament_select
from islands.population import StreamingPopulation, chunk_size_for
from islands.problem import build_problem, complete
from memory.cache import BoundedCache


class RecordingSphere:
    """Sphere that records the size of every batch it is asked to evaluate."""

    genome_shape = (8,)
    genome_dtype = np.float64
    individual_bytes = 64
    bounds = (-5.0, 5.0)

    def __init__(self):
        self.batches: list[int] = []

    def random(self, rng, n):
        return rng.uniform(-5, 5, size=(n, 8))

    def evaluate(self, genomes):
        self.batches.append(len(genomes))
        return np.einsum("ij,ij->i", genomes, genomes)


class TinyBits:
    """Three bits: only 8 distinct genomes exist, so offspring repeat all the time."""

    genome_shape = (3,)
    genome_dtype = np.int8
    individual_bytes = 3

    def __init__(self):
        self.evaluated = 0

    def random(self, rng, n):
        return rng.integers(0, 2, size=(n, 3))

    def evaluate(self, genomes):
        self.evaluated += len(genomes)
        return genomes.sum(axis=1).astype(np.float64)


def test_streaming_never_evaluates_more_than_one_chunk_at_once():
    inner = RecordingSphere()
    population = StreamingPopulation(complete(inner), 40, chunk_size=7)
    rng = np.random.default_rng(1)
    population.initialise(rng)
    for _ in range(5):
        stats = population.breed(rng)
        assert stats.evaluations == 40
    assert max(inner.batches) == 7
    assert sum(inner.batches) == 40 * 6
    assert len(population.genomes) == len(population.fitness) == 40


def test_non_streaming_evaluates_the_whole_generation_as_one_batch():
    inner = RecordingSphere()
    population = StreamingPopulation(complete(inner), 40, chunk_size=7, streaming=False)
    rng = np.random.default_rng(1)
    population.initialise(rng)
    population.breed(rng)
    assert inner.batches == [40, 40]


def _peak_traced_bytes(population, rng):
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        population.breed(rng)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_streaming_peak_memory_is_one_chunk_of_phenotypes():
    # heavy:mb=1 -> every evaluated individual holds a real 1 MiB phenotype.
    problem = build_problem("heavy:mb=1,dim=10")
    mib = 2**20
    streaming = StreamingPopulation(problem, 24, chunk_size=3)
    batch = StreamingPopulation(problem, 24, chunk_size=3, streaming=False)
    streaming.initialise(np.random.default_rng(2))
    batch.initialise(np.random.default_rng(2))
    streaming_peak = _peak_traced_bytes(streaming, np.random.default_rng(3))
    batch_peak = _peak_traced_bytes(batch, np.random.default_rng(3))
    assert 3 * mib <= streaming_peak < 4 * mib
    assert batch_peak >= 24 * mib


@pytest.mark.parametrize("streaming", [True, False])
def test_both_modes_improve_on_sphere(streaming):
    problem = build_problem("sphere:dim=10")
    population = StreamingPopulation(problem, 30, chunk_size=6, streaming=streaming)
    rng = np.random.default_rng(5)
    first = population.initialise(rng).best_fitness
    bests = [population.breed(rng).best_fitness for _ in range(40)]
    assert all(later <= earlier for earlier, later in zip(bests, bests[1:], strict=False))
    assert bests[-1] < 0.2 * first


def test_cache_saves_evaluations_on_duplicate_genomes():
    rng = np.random.default_rng(7)
    cached_inner = TinyBits()
    cached = StreamingPopulation(
        complete(cached_inner), 20, chunk_size=5, cache=BoundedCache(max_entries=100)
    )
    cached.initialise(rng)
    hits = 0
    for _ in range(10):
        stats = cached.breed(rng)
        hits += stats.cache_hits
        assert stats.evaluations + stats.cache_hits == 20
    # Only 8 distinct genomes exist: each is evaluated at most once, the rest are hits.
    assert cached_inner.evaluated <= 8
    assert hits >= 200 - 8

    plain_inner = TinyBits()
    plain = StreamingPopulation(complete(plain_inner), 20, chunk_size=5)
    plain.initialise(rng)
    for _ in range(10):
        plain.breed(rng)
    assert plain_inner.evaluated == 20 * 11


def test_cached_fitness_equals_evaluated_fitness():
    problem = build_problem("rastrigin:dim=5")
    cache = BoundedCache(max_entries=1000)
    population = StreamingPopulation(problem, 10, chunk_size=4, cache=cache)
    rng = np.random.default_rng(0)
    population.initialise(rng)
    population.breed(rng)
    # Every survivor's stored fitness is the problem's own value for its genome.
    np.testing.assert_array_equal(population.fitness, problem.evaluate(population.genomes))
    again = population.evaluate(population.genomes)
    np.testing.assert_array_equal(again, population.fitness)


def test_resize_shrinks_to_the_best_and_grows_with_evaluated_offspring():
    inner = RecordingSphere()
    population = StreamingPopulation(complete(inner), 20, chunk_size=4)
    rng = np.random.default_rng(3)
    population.initialise(rng)
    population.breed(rng)
    best_ten = np.sort(population.fitness)[:10]
    assert population.resize(10) == 10
    np.testing.assert_array_equal(np.sort(population.fitness), best_ten)
    assert population.nbytes == 10 * (8 * 8 + 8)

    inner.batches.clear()
    assert population.resize(25, rng) == 25
    assert len(population.genomes) == len(population.fitness) == 25
    assert max(inner.batches) <= 4 and sum(inner.batches) == 15
    np.testing.assert_array_equal(population.fitness, inner.evaluate(population.genomes))
    assert population.breed(rng).evaluations == 25


def test_resize_never_drops_below_elites():
    population = StreamingPopulation(build_problem("sphere:dim=3"), 10, chunk_size=None, elite_count=3)
    population.initialise(np.random.default_rng(0))
    assert population.resize(1) == 3


class ImprovingSphere(RecordingSphere):
    """Sphere with a local search that halves genomes; records how many it was given."""

    def __init__(self):
        super().__init__()
        self.improved_batches: list[int] = []

    def improve(self, genomes, fitness, rng):
        self.improved_batches.append(len(genomes))
        better = genomes * 0.5
        return better, np.einsum("ij,ij->i", better, better)


def test_improve_runs_on_whole_chunks_or_on_their_best_only():
    for improve_count, expected in ((None, [5, 5, 5, 5]), (2, [2, 2, 2, 2])):
        inner = ImprovingSphere()
        cache = BoundedCache(max_entries=1000)
        population = StreamingPopulation(
            complete(inner), 20, chunk_size=5, improve_count=improve_count, cache=cache
        )
        rng = np.random.default_rng(4)
        population.initialise(rng)
        population.breed(rng)
        assert inner.improved_batches == expected
        # Survivors carry the improved fitness, which matches their genomes.
        np.testing.assert_allclose(population.fitness, inner.evaluate(population.genomes))


def test_chunk_size_for_follows_the_slice():
    mib = 2**20
    # 100 MiB slice, 10 MiB phenotypes: 0.7 * 100 MiB usable -> 6 children.
    assert chunk_size_for(100 * mib, 10 * mib, 400, 50) == 6
    assert chunk_size_for(1 * mib, 10 * mib, 400, 50) == 1  # too small: still one at a time
    assert chunk_size_for(10**12, 8, 8, 50) == 50  # never above the population
    sizes = [chunk_size_for(s * mib, mib, 100, 1000) for s in (10, 50, 100, 500)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_operators():
    fitness = np.array([5.0, 1.0, 3.0, np.nan, 1.0])
    assert best_k(fitness, 3).tolist() == [1, 4, 2]
    winners = tournament_select(fitness, 1000, np.random.default_rng(0), size=5)
    assert 3 not in set(winners.tolist()) or np.mean(winners == 3) < 0.01
    # With every entrant drawn, the winner is always one of the two tied best.
    assert set(tournament_select(fitness, 200, np.random.default_rng(0), size=100).tolist()) == {1, 4}

    genomes = np.arange(5, dtype=np.float64).reshape(5, 1)
    resident = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    newcomers = np.array([[10.0], [20.0], [30.0]])
    replaced = replace_worst(genomes, resident, newcomers, np.array([4.5, 0.5, 6.0]))
    # 0.5 beats the worst (5.0), 4.5 does not beat the next worst (4.0), 6.0 beats nothing.
    assert replaced == 1
    assert resident.tolist() == [1.0, 2.0, 3.0, 4.0, 0.5]
    assert genomes[4, 0] == 20.0


class LoggingSphere(RecordingSphere):
    """Sphere that remembers every fitness value it returned."""

    def __init__(self):
        super().__init__()
        self.returned: list[np.ndarray] = []

    def evaluate(self, genomes):
        fitness = super().evaluate(genomes)
        self.returned.append(fitness.copy())
        return fitness


@pytest.mark.parametrize("chunk_size", [1, 3, 16])
def test_survivors_are_the_best_of_survivors_and_all_offspring(chunk_size):
    inner = LoggingSphere()
    population = StreamingPopulation(complete(inner), 16, chunk_size=chunk_size)
    rng = np.random.default_rng(9)
    population.initialise(rng)
    for _ in range(3):
        before = population.fitness.copy()
        inner.returned.clear()
        population.breed(rng)
        union = np.concatenate([before, *inner.returned])
        np.testing.assert_array_equal(np.sort(population.fitness), np.sort(union)[:16])
        np.testing.assert_array_equal(population.fitness, inner.evaluate(population.genomes))
