"""The selection, replacement and default variation operators (islands.operators)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from islands.operators import best_index, mutation_sites, replace_worst, uniform_crossover
from islands.problem import build_problem

values = st.one_of(st.floats(-10, 10, allow_nan=False), st.just(float("nan")))


def replace_worst_one_by_one(genomes, fitness, new_genomes, new_fitness):
    """The definition, pair by pair: best newcomer against worst resident, until one fails."""
    newcomers = sorted(range(len(new_fitness)), key=lambda i: (np.isnan(new_fitness[i]), new_fitness[i]))
    key = [np.inf if np.isnan(f) else f for f in fitness]
    residents = sorted(range(len(fitness)), key=lambda i: -key[i])
    replaced = 0
    for newcomer, resident in zip(newcomers, residents, strict=False):
        if not new_fitness[newcomer] < key[resident]:
            break
        genomes[resident] = new_genomes[newcomer]
        fitness[resident] = new_fitness[newcomer]
        replaced += 1
    return replaced


@settings(max_examples=300, deadline=None)
@given(st.lists(values, min_size=0, max_size=12), st.lists(values, min_size=0, max_size=12))
def test_replace_worst_matches_its_pair_by_pair_definition(resident, newcomer):
    fitness = np.array(resident, dtype=np.float64)
    genomes = np.arange(len(fitness), dtype=np.float64)[:, None] * np.ones((1, 3))
    new_fitness = np.array(newcomer, dtype=np.float64)
    new_genomes = 100 + np.arange(len(new_fitness), dtype=np.float64)[:, None] * np.ones((1, 3))
    expected_genomes, expected_fitness = genomes.copy(), fitness.copy()
    expected = replace_worst_one_by_one(expected_genomes, expected_fitness, new_genomes, new_fitness)
    assert replace_worst(genomes, fitness, new_genomes, new_fitness) == expected
    np.testing.assert_array_equal(genomes, expected_genomes)
    np.testing.assert_array_equal(fitness, expected_fitness)


@given(st.lists(values, min_size=1, max_size=12))
def test_best_index_is_the_first_lowest_number(fitness):
    fitness = np.array(fitness)
    index = best_index(fitness)
    if np.isnan(fitness).all():
        assert index == 0
    else:
        assert fitness[index] == np.nanmin(fitness)
        assert index == int(np.flatnonzero(fitness == np.nanmin(fitness))[0])


def test_uniform_crossover_takes_each_gene_from_one_parent_about_half_each():
    rng = np.random.default_rng(1)
    a, b = np.zeros((50, 101)), np.ones((50, 101))  # 5050 genes: not a whole number of bytes
    child = uniform_crossover(a, b, rng)
    assert child.shape == a.shape and set(np.unique(child)) <= {0.0, 1.0}
    assert 0.45 < child.mean() < 0.55
    assert not np.array_equal(child, uniform_crossover(a, b, rng))


def test_mutation_sites_give_every_child_at_least_one_gene_and_about_one_on_average():
    rows, genes = mutation_sites(2000, 100, np.random.default_rng(2))
    assert set(rows.tolist()) == set(range(2000)) and genes.min() >= 0 and genes.max() < 100
    assert 1.2 < len(rows) / 2000 < 1.5  # E[max(Binomial(100, 1/100), 1)] = 1 + 0.366


def test_default_mutation_changes_every_child_and_stays_inside_the_bounds():
    problem = build_problem("rastrigin:dim=30")
    rng = np.random.default_rng(3)
    parents = np.full((200, 30), 5.1)  # next to the upper bound 5.12
    children = problem.mutate(parents, rng)
    assert (children != parents).any(axis=1).all()
    assert children.max() <= 5.12 and children.min() >= -5.12
    assert (parents == 5.1).all()  # the parents are not touched
