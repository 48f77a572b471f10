"""The Island: one subpopulation's whole state and its one-generation step, with no process.

Covers: `Island` (a `StreamingPopulation`, its random stream, the fitness cache, the
best solution ever seen, counters), the actions the coordinator asks for (shrink, grow,
pause growth, clear the cache, change the chunk size), elites out and immigrants in,
`state()` / `from_state()` for checkpoints (restoring is exact: a restored island steps
bit-for-bit like the original; a state whose genomes do not fit the problem or lie
outside its domain is refused) and `refresh()` (a restored island whose best scores
differently now, the instance having changed, re-evaluates its population), and
`derive_seed()` (independent, reproducible seeds
per island).

Does not cover: the process around an island, commands and telemetry (`islands.worker`),
the wire format and topologies (`islands.migration`), writing the state to disk
(`islands.checkpoint`), breeding itself (`islands.population`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import memory
from islands.checkpoint import pack_array, pack_big_ints, unpack_array, unpack_big_ints
from islands.errors import InputError
from islands.operators import best_index, best_k, replace_worst
from islands.params import IslandParams
from islands.population import GenerationStats, StreamingPopulation
from islands.problem import CompleteProblem, complete
from memory.cache import BoundedCache

STATE_FORMAT = "islands-island"
STATE_VERSION = 1
# Cache entries are a 16-byte key and a float; this is what one costs in a dict (measured
# order of magnitude: key bytes object ~49 B, float ~24 B, dict slot ~ 30-50 B).
CACHE_ENTRY_BYTES = 128
DEFAULT_CACHE_ENTRIES = 10_000
# A cache that hits less than CACHE_MIN_HIT_RATE of its first CACHE_TRIAL_LOOKUPS look-ups
# is switched off: real-valued genomes almost never repeat, and hashing every child then
# costs more than evaluating it (Rastrigin-100: 0 hits, 70 % of a generation's time).
CACHE_TRIAL_LOOKUPS = 5_000
CACHE_MIN_HIT_RATE = 0.01


def derive_seed(run_seed: int, island_id: int) -> int:
    """The seed of island `island_id` in a run seeded with `run_seed` (a 64-bit int).

    Equal to spawning `SeedSequence(run_seed)` children and taking child `island_id`:
    islands get statistically independent streams, the same in every run with that seed.
    """
    if island_id < 0:
        raise ValueError(f"island id must be at least 0, got {island_id}")
    child = np.random.SeedSequence(int(run_seed), spawn_key=(int(island_id),))
    return int(child.generate_state(1, dtype=np.uint64)[0])


def _seed_sequence(seed: int | np.random.SeedSequence, island_id: int) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed  # already the island's own sequence
    return np.random.SeedSequence(derive_seed(int(seed), island_id))


class Island:
    """One island: population + random stream + cache + best-ever, stepped by plain calls.

    `seed` is an int (the run seed: the island derives its own with `derive_seed(seed,
    island_id)`, so islands given the same int still get independent streams) or a
    `SeedSequence` used as it is. `params` (`islands.params.IslandParams`) holds the
    population bounds, streaming and chunk size, cache bounds and the operator
    parameters that go to `StreamingPopulation`. `params.population` is the initial
    size; the current one is `population_size`. `cache_entries=0` turns the fitness
    cache off; the cache always has a bound (both None means `DEFAULT_CACHE_ENTRIES`).
    `max_population` defaults to the initial size. Evaluations a problem's `improve()`
    makes itself are not counted in `evaluations`.
    """

    def __init__(
        self,
        problem: CompleteProblem,
        *,
        island_id: int,
        seed: int | np.random.SeedSequence,
        params: IslandParams,
    ) -> None:
        self.problem = complete(problem)
        self.island_id = int(island_id)
        self.params = params
        self._seed_sequence = _seed_sequence(seed, self.island_id)
        self.rng = np.random.Generator(np.random.PCG64(self._seed_sequence))
        self.cache = self._make_cache(params.cache_entries, params.cache_bytes)
        try:
            self.population = StreamingPopulation(
                self.problem,
                int(params.population),
                chunk_size=params.chunk_size,
                streaming=params.streaming,
                cache=self.cache,
                **params.operator_params(),
            )
        except ValueError as error:
            raise InputError(str(error)) from error
        self.generation = 0
        self.evaluations = 0
        self.cache_hits = 0
        self.immigrants_accepted = 0
        self.growth_paused = False
        self._best_genome: np.ndarray | None = None
        self._best_fitness = math.inf

    @staticmethod
    def _make_cache(entries: int | None, max_bytes: int | None) -> BoundedCache | None:
        if entries == 0 or max_bytes == 0:
            return None
        if entries is None and max_bytes is None:
            entries = DEFAULT_CACHE_ENTRIES  # an unbounded cache is what froze the old system
        return BoundedCache(
            max_entries=entries, max_bytes=max_bytes, getsizeof=lambda _value: CACHE_ENTRY_BYTES
        )

    # ----------------------------------------------------------------- evolution
    @property
    def initialised(self) -> bool:
        return self.population.initialised

    def step(self) -> GenerationStats:
        """One generation (the first call also creates and evaluates the initial population).

        The first call's `evaluations` include the initial population's, so the stats of
        all steps add up to `evaluations`.
        """
        init_evaluations = init_hits = 0
        if not self.population.initialised:
            init_stats = self.population.initialise(self.rng)
            init_evaluations, init_hits = init_stats.evaluations, init_stats.cache_hits
            self._note_best()
        previous_best = self._best_fitness
        stats = self.population.breed(self.rng)
        stats.evaluations += init_evaluations
        stats.cache_hits += init_hits
        self.generation = self.population.generation
        self.evaluations += stats.evaluations
        self.cache_hits += stats.cache_hits
        self._note_best()
        stats.improved = bool(self._best_fitness < previous_best)
        if self.population.cache is not None:
            self._judge_cache()
        return stats

    def _judge_cache(self) -> None:
        """Switch the cache off once its trial shows it does not pay (see CACHE_TRIAL_LOOKUPS).

        The population stops using it and its entries are freed; the island keeps the object
        so its hit and miss counts stay reported (`cache_switched_off`)."""
        hits, misses = self.cache.lookups
        if hits + misses >= CACHE_TRIAL_LOOKUPS and hits < CACHE_MIN_HIT_RATE * (hits + misses):
            self.population.cache = None
            self.cache.clear()
            self.params = self.params.replace(cache_entries=0)  # a restored island starts without

    @property
    def cache_switched_off(self) -> bool:
        """True once the island turned its cache off itself, for lack of hits."""
        return self.cache is not None and self.population.cache is None

    def _note_best(self) -> None:
        if not self.population.initialised:
            return
        fitness = self.population.fitness
        index = best_index(fitness)
        if fitness[index] < self._best_fitness:  # copy the genome only when it is news
            self._best_genome = self.population.genomes[index].copy()
            self._best_fitness = float(fitness[index])

    def best(self) -> tuple[np.ndarray, float]:
        """The best genome ever seen (a copy) and its fitness, even if the population lost it."""
        if self._best_genome is None:
            raise RuntimeError(f"island {self.island_id} has not evaluated anything yet")
        return self._best_genome.copy(), float(self._best_fitness)

    @property
    def best_fitness(self) -> float:
        """Best fitness ever seen; inf before the first step."""
        return float(self._best_fitness)

    def refresh(self) -> bool:
        """After a restore: if the best scores differently now (the instance was edited
        since the state was saved), re-evaluate the population and take the best anew.
        True if it did. One evaluation when nothing changed (not counted)."""
        if self._best_genome is None:
            return False
        now = float(self.problem.evaluate(self._best_genome[None])[0])
        # Batch and single evaluations may differ in the last bits (summation order).
        if math.isclose(now, self._best_fitness, rel_tol=1e-9, abs_tol=1e-12):
            return False
        self._best_fitness = now  # may be worse now: the old value is no longer true
        if self.population.initialised:
            self.population.fitness = self.problem.evaluate(self.population.genomes)
            self._note_best()
        return True

    # ----------------------------------------------------------------- migration
    def emigrants(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the best `k` survivors' genomes and fitness (fewer if the population is smaller)."""
        if not self.population.initialised:
            empty = np.empty((0, *self.problem.genome_shape), dtype=self.problem.genome_dtype)
            return empty, np.empty(0, dtype=np.float64)
        chosen = best_k(self.population.fitness, k)
        return self.population.genomes[chosen].copy(), self.population.fitness[chosen].copy()

    def accept_immigrants(self, genomes: np.ndarray, fitness: np.ndarray) -> int:
        """Replace the worst survivors by better immigrants; returns how many were accepted.

        Wrong shapes, dtypes or non-finite fitness are ignored (0 accepted), never raised:
        immigrants come from other processes.
        """
        if not self.population.initialised:
            return 0
        genomes = np.asarray(genomes)
        fitness = np.asarray(fitness)
        if (
            genomes.dtype != self.problem.genome_dtype
            or genomes.ndim != 1 + len(self.problem.genome_shape)
            or tuple(genomes.shape[1:]) != self.problem.genome_shape
            or fitness.ndim != 1
            or len(fitness) != len(genomes)
            or not np.issubdtype(fitness.dtype, np.number)
            or not np.all(np.isfinite(fitness))
        ):
            return 0
        inside = self.problem.valid(genomes)  # never evaluate or breed out-of-domain genes
        genomes, fitness = genomes[inside], fitness[inside].astype(np.float64)
        accepted = replace_worst(self.population.genomes, self.population.fitness, genomes, fitness)
        if accepted:
            self.population.remember(genomes, fitness)
            self.immigrants_accepted += accepted
            self._note_best()
        return accepted

    # ----------------------------------------------------------------- memory actions
    def shrink(self, factor: float = 0.5) -> int:
        """Keep the best `factor` of the population (not below `min_population`); frees memory."""
        current = self.population.size
        new_size = max(int(self.params.min_population), int(current * float(factor)))
        new_size = min(new_size, current)  # shrinking never grows
        self.population.resize(new_size, self.rng)
        memory.release_memory()
        return self.population.size

    def grow(self, factor: float = 2.0) -> int:
        """Grow by `factor` (not above `max_population`) with evaluated offspring; no-op while paused."""
        current = self.population.size
        if self.growth_paused:
            return current
        new_size = min(self.params.population_cap, max(current, math.ceil(current * float(factor))))
        if new_size > current:
            self.population.resize(new_size, self.rng)
            evaluations, hits = self.population.take_counters()
            self.evaluations += evaluations
            self.cache_hits += hits
            self._note_best()
        return self.population.size

    def clear_cache(self) -> None:
        if self.cache is not None:
            self.cache.clear()

    def resize_cache(self, max_entries: int | None = None, max_bytes: int | None = None) -> None:
        """New cache bounds, evicting down to them now (0 for either turns the cache off)."""
        if max_entries == 0 or max_bytes == 0:
            self.cache = self.population.cache = None
        elif self.cache is None or self.cache_switched_off:  # a new cache, with a new trial
            self.cache = self.population.cache = self._make_cache(max_entries, max_bytes)
        else:
            if max_entries is None and max_bytes is None:
                max_entries = DEFAULT_CACHE_ENTRIES
            self.cache.resize(max_entries=max_entries, max_bytes=max_bytes)
        self.params = self.params.replace(cache_entries=max_entries, cache_bytes=max_bytes)

    def set_chunk_size(self, n: int | None) -> None:
        if n is not None and int(n) < 1:
            raise ValueError(f"chunk size must be at least 1, got {n}")
        self.population.chunk_size = None if n is None else int(n)
        self.params = self.params.replace(chunk_size=self.population.chunk_size)

    @property
    def chunk_size(self) -> int | None:
        return self.population.chunk_size

    @property
    def population_size(self) -> int:
        return self.population.size

    @property
    def population_bytes(self) -> int:
        return self.population.nbytes

    @property
    def cache_bytes(self) -> int:
        return 0 if self.cache is None else int(self.cache.bytes)

    @property
    def cache_stats(self) -> Any:
        return None if self.cache is None else self.cache.stats

    # ----------------------------------------------------------------- checkpoints
    def config(self) -> dict[str, Any]:
        """The checkpoint's `config` map (`IslandParams.checkpoint_config()`)."""
        return self.params.checkpoint_config()

    def state(self) -> dict[str, Any]:
        """Everything needed to continue exactly, as msgpack-able values only.

        The fitness cache is not saved: a restored island starts with an empty cache, so its
        evaluation and cache-hit counts may differ from the original's, never its genomes.
        """
        population = self.population
        return {
            "format": STATE_FORMAT,
            "v": STATE_VERSION,
            "problem": self.problem.name,
            "island_id": self.island_id,
            "rng": pack_big_ints(self.rng.bit_generator.state),
            "generation": self.generation,
            "evaluations": self.evaluations,
            "cache_hits": self.cache_hits,
            "immigrants_accepted": self.immigrants_accepted,
            "growth_paused": self.growth_paused,
            "population_size": population.size,
            "chunk_size": population.chunk_size,
            "genomes": pack_array(population.genomes),
            "fitness": pack_array(population.fitness),
            "best_genome": None if self._best_genome is None else pack_array(self._best_genome),
            "best_fitness": None if self._best_genome is None else float(self._best_fitness),
            "config": self.config(),
        }

    @classmethod
    def from_state(cls, problem: CompleteProblem, state: dict[str, Any]) -> Island:
        """The island `state()` described, ready to step on exactly as the original would."""
        problem = complete(problem)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise InputError("not an island state (format header missing)")
        if state.get("v") != STATE_VERSION:
            raise InputError(f"island state version {state.get('v')!r} is not supported")
        try:
            params = IslandParams.from_checkpoint(
                state["config"], population=int(state["population_size"]),
                chunk_size=state["chunk_size"],
            )
            island = cls(
                problem,
                island_id=int(state["island_id"]),
                seed=0,  # replaced by the saved stream below
                params=params,
            )
            island.rng.bit_generator.state = unpack_big_ints(state["rng"])
            genomes = unpack_array(state["genomes"])
            fitness = unpack_array(state["fitness"])
            island.generation = int(state["generation"])
            island.evaluations = int(state["evaluations"])
            island.cache_hits = int(state["cache_hits"])
            island.immigrants_accepted = int(state["immigrants_accepted"])
            island.growth_paused = bool(state["growth_paused"])
            best = state["best_genome"]
            best_genome = None if best is None else unpack_array(best)
        except (KeyError, TypeError, ValueError) as error:
            if isinstance(error, InputError):
                raise
            raise InputError(f"island state is malformed ({type(error).__name__}: {error})") from error
        expected_shape = (len(fitness), *problem.genome_shape)
        if genomes.dtype != problem.genome_dtype or genomes.shape != expected_shape:
            raise InputError(
                f"island state holds genomes {genomes.dtype}{list(genomes.shape)}, problem "
                f"{problem.name} needs {problem.genome_dtype}{list(expected_shape)}"
            )
        if not problem.valid(genomes).all() or (
                best_genome is not None and not problem.valid(best_genome[None]).all()):
            raise InputError(f"island state holds genomes outside problem {problem.name}'s "
                             "domain (damaged, or saved for another instance)")
        population = island.population
        population.genomes = genomes
        population.fitness = fitness.astype(np.float64)
        population.generation = island.generation
        population._rng = island.rng
        if best_genome is not None:
            if best_genome.shape != problem.genome_shape:
                raise InputError("island state's best genome does not fit the problem")
            island._best_genome = best_genome.astype(problem.genome_dtype)
            island._best_fitness = float(state["best_fitness"])
        return island
