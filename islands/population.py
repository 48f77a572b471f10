"""The streaming population: compact survivors, offspring bred and reduced one chunk at a time.

Covers: `StreamingPopulation` (survivor genomes `(P, *genome_shape)` + fitness `(P,)`,
initialisation, one generation of (mu+lambda) breeding in chunks, resizing), the
fitness cache look-up around evaluation, `GenerationStats`, and `chunk_size_for()`,
which turns an island's memory slice into a chunk size.

Why chunks: a problem's phenotype (a decoded timetable, the `heavy` problem's buffer)
can be far larger than its genome. Only one chunk of offspring is bred, evaluated and
alive at a time; it is merged into the survivors at once, so memory is
`survivors' genomes + one chunk of phenotypes` instead of `2P phenotypes`. With
`streaming=False` the whole generation is bred and evaluated as one batch, the old way.

Does not cover: the random stream, counters across generations, best-ever tracking,
migration and checkpoints (`islands.island`), selection helpers (`islands.operators`),
the cache itself (`memory.cache.BoundedCache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from islands.operators import best_index, best_k, replace_worst, tournament_select
from islands.problem import CompleteProblem, genome_key

# chunk_size_for(): fraction of the slice we plan to use at all (the rest covers the
# interpreter, numpy temporaries and measurement noise), and the share kept for the cache.
CHUNK_SAFETY_FACTOR = 0.8
CHUNK_CACHE_SHARE = 0.1
CHUNK_USABLE_SHARE = CHUNK_SAFETY_FACTOR - CHUNK_CACHE_SHARE  # of a slice, for survivors + chunk


def chunk_size_for(slice_bytes: int, individual_bytes: int, genome_bytes: int, population: int) -> int:
    """How many offspring one chunk may hold so an island stays inside its memory slice.

    Formula (bytes)::

        survivors = population * (genome_bytes + 8 + 16)       # genomes, fitness, sort indices
        usable    = slice_bytes * CHUNK_SAFETY_FACTOR          # 0.8: headroom for the rest
                    - slice_bytes * CHUNK_CACHE_SHARE          # 0.1: the fitness cache
                    - survivors
        per_child = individual_bytes + 5 * genome_bytes + 8    # phenotype + 2 parents, crossed,
                                                               # child, mutated child
        chunk     = floor(usable / per_child), clamped to [1, population]

    A slice too small for even one child still gives 1: the island then runs one child
    at a time and the coordinator's pressure policy decides the rest.
    """
    population = max(1, int(population))
    usable = int(slice_bytes) * CHUNK_USABLE_SHARE - population * survivor_bytes(genome_bytes)
    per_child = child_bytes(individual_bytes, genome_bytes)
    chunk = int(usable // per_child) if usable > 0 else 1
    return max(1, min(population, chunk))


def survivor_bytes(genome_bytes: int) -> int:
    """What one survivor holds between generations: genome, fitness, sort index."""
    return int(genome_bytes) + 8 + 16


def child_bytes(individual_bytes: int, genome_bytes: int) -> int:
    """What one child in flight holds: phenotype, two parents, crossed, child, mutated."""
    return max(1, int(individual_bytes) + 5 * int(genome_bytes) + 8)


@dataclass
class GenerationStats:
    """What one generation did. `evaluations` counts real evaluations only (not cache hits)."""

    generation: int
    evaluations: int
    cache_hits: int
    best_fitness: float
    mean_fitness: float
    improved: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            "evaluations": self.evaluations,
            "cache_hits": self.cache_hits,
            "best_fitness": self.best_fitness,
            "mean_fitness": self.mean_fitness,
            "improved": self.improved,
        }


class StreamingPopulation:
    """Survivors (compact genomes + fitness) and (mu+lambda) breeding in chunks.

    `chunk_size=None` means one chunk of the whole population. `cache` is any object
    with `get(key, default)` and `set(key, value)` (a `memory.cache.BoundedCache`),
    keyed by `islands.problem.genome_key`. `improve_count=None` runs the problem's
    local search (if it has one) on every child of a chunk, else on the chunk's best
    `improve_count` children. (mu+lambda) truncation always keeps the best individuals;
    `elite_count` is additionally the floor below which `resize()` never shrinks.
    """

    def __init__(
        self,
        problem: CompleteProblem,
        size: int,
        *,
        chunk_size: int | None,
        streaming: bool = True,
        cache: Any | None = None,
        elite_count: int = 1,
        tournament_size: int = 2,
        crossover_rate: float = 0.9,
        improve_count: int | None = None,
    ) -> None:
        if int(size) < 1:
            raise ValueError(f"population size must be at least 1, got {size}")
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(f"chunk size must be at least 1, got {chunk_size}")
        if int(elite_count) < 0:
            raise ValueError(f"elite_count must be at least 0, got {elite_count}")
        if int(tournament_size) < 1:
            raise ValueError(f"tournament_size must be at least 1, got {tournament_size}")
        if not 0.0 <= float(crossover_rate) <= 1.0:
            raise ValueError(f"crossover_rate must be within [0, 1], got {crossover_rate}")
        if improve_count is not None and int(improve_count) < 0:
            raise ValueError(f"improve_count must be at least 0, got {improve_count}")
        self.problem = problem
        self.size = int(size)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.streaming = bool(streaming)
        self.cache = cache
        self.elite_count = int(elite_count)
        self.tournament_size = int(tournament_size)
        self.crossover_rate = float(crossover_rate)
        self.improve_count = None if improve_count is None else int(improve_count)
        self.generation = 0
        self.genomes = np.empty((0, *problem.genome_shape), dtype=problem.genome_dtype)
        self.fitness = np.empty(0, dtype=np.float64)
        self._rng: np.random.Generator | None = None
        # Per-generation counters, reset by breed().
        self._evaluations = 0
        self._cache_hits = 0

    # ----------------------------------------------------------------- properties
    @property
    def initialised(self) -> bool:
        return len(self.fitness) > 0

    @property
    def nbytes(self) -> int:
        """Memory held by the survivors (genomes + fitness)."""
        return int(self.genomes.nbytes + self.fitness.nbytes)

    @property
    def effective_chunk_size(self) -> int:
        return self.size if self.chunk_size is None else max(1, min(self.chunk_size, self.size))

    def best(self) -> tuple[np.ndarray, float]:
        """A copy of the best survivor's genome and its fitness."""
        if not self.initialised:
            raise RuntimeError("population not initialised")
        index = best_index(self.fitness)
        return self.genomes[index].copy(), float(self.fitness[index])

    # ----------------------------------------------------------------- evaluation
    def evaluate(self, genomes: np.ndarray) -> np.ndarray:
        """Fitness of `genomes`: cache hits first, the distinct misses evaluated as one batch.

        Repeats of one genome inside the batch are evaluated once and count as cache hits
        (evaluations saved); every evaluated value goes into the cache.
        """
        if self.cache is None:
            self._evaluations += len(genomes)
            return self.problem.evaluate(genomes)
        fitness = np.empty(len(genomes), dtype=np.float64)
        keys = [genome_key(genome) for genome in genomes]
        first_index: dict[bytes, int] = {}  # distinct missing genome -> its first position
        repeats: list[tuple[int, int]] = []  # (position, position of its first occurrence)
        for index, key in enumerate(keys):
            if key in first_index:
                repeats.append((index, first_index[key]))
                continue
            cached = self.cache.get(key)
            if cached is None:
                first_index[key] = index
            else:
                fitness[index] = cached
        missing = list(first_index.values())
        self._cache_hits += len(genomes) - len(missing)
        if missing:
            batch = genomes if len(missing) == len(genomes) else genomes[missing]
            evaluated = self.problem.evaluate(batch)
            self._evaluations += len(missing)
            fitness[missing] = evaluated
            for index, value in zip(missing, evaluated, strict=True):
                self.cache.set(keys[index], float(value))
        for index, first in repeats:
            fitness[index] = fitness[first]
        return fitness

    def remember(self, genomes: np.ndarray, fitness: np.ndarray) -> None:
        """Put known fitness values (immigrants, improved children) into the cache."""
        if self.cache is None:
            return
        for genome, value in zip(genomes, fitness, strict=True):
            self.cache.set(genome_key(genome), float(value))

    # ----------------------------------------------------------------- breeding
    def initialise(self, rng: np.random.Generator) -> GenerationStats:
        """Random survivors, created and evaluated chunk by chunk (generation 0)."""
        self._rng = rng
        self._reset_counters()
        chunk = self.effective_chunk_size if self.streaming else self.size
        genome_parts, fitness_parts = [], []
        for start in range(0, self.size, chunk):
            count = min(chunk, self.size - start)
            genomes = self.problem.random(rng, count)
            genome_parts.append(genomes)
            fitness_parts.append(self.evaluate(genomes))
            del genomes  # the phenotypes died inside evaluate(); keep only the genomes
        self.genomes = np.concatenate(genome_parts)
        self.fitness = np.concatenate(fitness_parts)
        self.generation = 0
        return self._stats(previous_best=np.inf)

    def offspring(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """`count` children of the current survivors: tournament, crossover, mutation."""
        parents = self.genomes[tournament_select(self.fitness, 2 * count, rng, self.tournament_size)]
        parents_a, parents_b = parents[:count], parents[count:]
        # `parents` is a copy: writing into children never touches the survivors.
        children = np.asarray(self.problem.crossover(parents_a, parents_b, rng),
                              dtype=self.problem.genome_dtype)
        not_crossed = rng.random(count) >= self.crossover_rate
        children[not_crossed] = parents_a[not_crossed]
        del parents, parents_a, parents_b
        return self.problem.mutate(children, rng)

    def _evaluated_offspring(
        self, rng: np.random.Generator, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        children = self.offspring(rng, count)
        fitness = self.evaluate(children)
        if self.problem.has_improve and self.improve_count != 0:
            children, fitness = self._improve(children, fitness, rng)
        return children, fitness

    def _improve(
        self, children: np.ndarray, fitness: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.improve_count is None or self.improve_count >= len(children):
            improved, improved_fitness = self.problem.improve(children, fitness, rng)
            self.remember(improved, improved_fitness)
            return improved, improved_fitness
        chosen = best_k(fitness, self.improve_count)
        improved, improved_fitness = self.problem.improve(children[chosen], fitness[chosen], rng)
        self.remember(improved, improved_fitness)
        children = children.copy()
        fitness = fitness.copy()
        children[chosen] = improved
        fitness[chosen] = improved_fitness
        return children, fitness

    def _reduce(self, genomes: np.ndarray, fitness: np.ndarray) -> None:
        """(mu+lambda) in place: survivors become the best `size` of survivors + newcomers.

        Pairing the best newcomer with the worst survivor and so on (`replace_worst`) keeps
        exactly the best `size` of the union (survivors win ties), without the merged copy
        a concatenate-and-sort would allocate for every chunk.
        """
        replace_worst(self.genomes, self.fitness, genomes, fitness)

    def _continue_trajectories(self, rng: np.random.Generator) -> None:
        """A trajectory problem's generation: every member's search goes on from where it
        was, and each member is replaced by its own result (never by another's, which
        would hand two members one search state)."""
        improved, fitness = self.problem.improve(self.genomes.copy(), self.fitness.copy(), rng)
        self._evaluations += len(fitness)  # each member's result, as a child would count
        self.remember(improved, fitness)
        better = fitness <= self.fitness
        self.genomes[better] = improved[better]
        self.fitness[better] = fitness[better]

    def breed(self, rng: np.random.Generator) -> GenerationStats:
        """One generation: `size` offspring in chunks, each merged into the survivors at once.

        A trajectory problem (`CompleteProblem.trajectory`) instead continues one local
        search per member, all members in one call (such populations are a handful)."""
        if not self.initialised:
            raise RuntimeError("population not initialised: call initialise() first")
        self._rng = rng
        self._reset_counters()
        previous_best = float(self.fitness[best_index(self.fitness)])
        if self.problem.trajectory and self.improve_count != 0:
            self._continue_trajectories(rng)
        elif self.streaming:
            chunk = self.effective_chunk_size
            for start in range(0, self.size, chunk):
                children, fitness = self._evaluated_offspring(rng, min(chunk, self.size - start))
                self._reduce(children, fitness)
                del children, fitness  # before the next chunk is bred
        else:
            children, fitness = self._evaluated_offspring(rng, self.size)
            self._reduce(children, fitness)
            del children, fitness
        self.generation += 1
        return self._stats(previous_best)

    # ----------------------------------------------------------------- resizing
    def resize(self, new_size: int, rng: np.random.Generator | None = None) -> int:
        """Shrink (drop the worst) or grow (add evaluated offspring of the survivors).

        Never shrinks below `max(1, elite_count)`. Growing uses `rng`, else the generator
        last given to `initialise()`/`breed()`. Before initialisation it only sets the size.
        """
        new_size = max(1, self.elite_count, int(new_size))
        if not self.initialised or new_size == self.size:
            self.size = new_size
            return self.size
        if new_size < self.size:
            keep = best_k(self.fitness, new_size)
            # Fancy indexing copies, so the old, larger arrays are freed right here.
            self.genomes = self.genomes[keep]
            self.fitness = self.fitness[keep]
            self.size = new_size
            return self.size
        rng = rng if rng is not None else self._rng
        if rng is None:
            raise RuntimeError("resize() needs a random generator to grow")
        chunk = self.effective_chunk_size if self.streaming else new_size
        missing = new_size - len(self.fitness)
        while missing > 0:
            children, fitness = self._evaluated_offspring(rng, min(chunk, missing))
            self.genomes = np.concatenate([self.genomes, children])
            self.fitness = np.concatenate([self.fitness, fitness])
            missing -= len(children)
            del children, fitness
        self.size = new_size
        return self.size

    def take_counters(self) -> tuple[int, int]:
        """(evaluations, cache hits) since the last reset, and reset them."""
        counters = (self._evaluations, self._cache_hits)
        self._reset_counters()
        return counters

    # ----------------------------------------------------------------- helpers
    def _reset_counters(self) -> None:
        self._evaluations = 0
        self._cache_hits = 0

    def _stats(self, previous_best: float) -> GenerationStats:
        best = float(self.fitness[best_index(self.fitness)])
        mean = float(self.fitness.mean())
        if mean != mean:  # NaN members: the mean of the others, as nanmean would
            mean = float(np.nanmean(self.fitness))
        return GenerationStats(
            generation=self.generation,
            evaluations=self._evaluations,
            cache_hits=self._cache_hits,
            best_fitness=best,
            mean_fitness=mean,
            improved=bool(best < previous_best),
        )
