"""Selection and replacement helpers shared by the population, the island and migration.

Covers: tournament selection of parent indices, the indices of the best `k` individuals
in a stable order, and replace-worst-if-better (how immigrants and, in general,
newcomers enter a population). All of them work on a plain fitness array (minimisation:
lower is better) and never look at genomes except to copy them.

Does not cover: variation (mutation and crossover are the problem's, with defaults in
`islands.problem.CompleteProblem`), breeding and (mu+lambda) reduction
(`islands.population`), or migration topologies (`islands.migration`).
"""

from __future__ import annotations

import numpy as np


def tournament_select(
    fitness: np.ndarray, n: int, rng: np.random.Generator, size: int = 2
) -> np.ndarray:
    """Indices of `n` tournament winners; each tournament draws `size` entrants with replacement.

    NaN fitness never wins against a number (it sorts last in `argmin` terms).
    """
    if size < 1:
        raise ValueError(f"tournament size must be at least 1, got {size}")
    population = len(fitness)
    if population == 0:
        raise ValueError("cannot select from an empty population")
    entrants = rng.integers(0, population, size=(n, size))
    entrant_fitness = np.asarray(fitness, dtype=np.float64)[entrants]
    # NaN would win argmin (argmin returns the first NaN); push it behind every number.
    entrant_fitness = np.where(np.isnan(entrant_fitness), np.inf, entrant_fitness)
    winners = np.argmin(entrant_fitness, axis=1)
    return entrants[np.arange(n), winners]


def best_k(fitness: np.ndarray, k: int) -> np.ndarray:
    """Indices of the `k` lowest fitness values, best first; ties keep their original order."""
    k = max(0, min(int(k), len(fitness)))
    return np.argsort(np.asarray(fitness), kind="stable")[:k]


def replace_worst(
    genomes: np.ndarray,
    fitness: np.ndarray,
    new_genomes: np.ndarray,
    new_fitness: np.ndarray,
) -> int:
    """Replace the worst residents by newcomers, in place, only where a newcomer is strictly better.

    The best newcomer is paired with the worst resident, the second best with the second
    worst, and so on; pairing stops at the first newcomer that does not beat its resident
    (every later pair would fail too). NaN newcomers never enter. Returns how many were replaced.
    All pairs are compared and copied as whole arrays (no loop over individuals).
    """
    new_fitness = np.asarray(new_fitness, dtype=np.float64).reshape(-1)
    if len(new_fitness) != len(new_genomes):
        raise ValueError(f"{len(new_genomes)} newcomers but {len(new_fitness)} fitness values")
    pairs = min(len(new_fitness), len(fitness))
    if pairs == 0:
        return 0
    newcomer_order = np.argsort(new_fitness, kind="stable")[:pairs]  # best first, NaN last
    # Worst first; NaN residents count as the worst of all.
    resident_key = np.where(np.isnan(fitness), np.inf, fitness)
    resident_order = np.argsort(-resident_key, kind="stable")[:pairs]
    # NaN compares False, so a NaN newcomer ends the pairing like any loser.
    wins = new_fitness[newcomer_order] < resident_key[resident_order]
    replaced = pairs if wins.all() else int(np.argmin(wins))
    if replaced:
        residents, newcomers = resident_order[:replaced], newcomer_order[:replaced]
        genomes[residents] = new_genomes[newcomers]
        fitness[residents] = new_fitness[newcomers]
    return replaced


def best_index(fitness: np.ndarray) -> int:
    """Index of the lowest fitness (the first of ties); NaN only where all are NaN."""
    index = int(np.argmin(fitness))
    if fitness[index] != fitness[index]:  # argmin stops at the first NaN
        finite = ~np.isnan(fitness)
        if finite.any():
            index = int(np.flatnonzero(finite)[np.argmin(fitness[finite])])
    return index


def uniform_crossover(
    parents_a: np.ndarray, parents_b: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Each gene from either parent with probability 1/2 (one random bit per gene)."""
    genes = parents_a.size
    bits = np.unpackbits(np.frombuffer(rng.bytes((genes + 7) // 8), dtype=np.uint8), count=genes)
    return np.where(bits.view(bool).reshape(parents_a.shape), parents_b, parents_a)


def mutation_sites(
    count: int, gene_count: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(rows, genes) to mutate: each of `count` children gets Binomial(gene_count,
    1/gene_count) sites, at least one (else mutation would be a no-op copy), at genes drawn
    with replacement. Draws a few numbers per child instead of one per gene."""
    rate = max(1.0 / gene_count, 1e-9)
    per_child = np.maximum(rng.binomial(gene_count, rate, count), 1)
    rows = np.repeat(np.arange(count), per_child)
    return rows, rng.integers(0, gene_count, rows.size)
