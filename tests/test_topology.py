"""Topologies: targets and sources per island and generation (islands.topology)."""

import pytest

from islands.errors import InputError
from islands.topology import Topology, neighbours, torus_grid


@pytest.mark.parametrize("n", range(1, 10))
@pytest.mark.parametrize("topology", ["ring", "full", "random", "torus"])
def test_topologies_have_no_self_loops_and_stay_in_range(topology, n):
    for island in range(n):
        for generation in range(3):
            targets = neighbours(topology, island, n, generation=generation, seed=11)
            assert island not in targets
            assert all(0 <= j < n for j in targets)
            assert len(set(targets)) == len(targets)
            if n == 1:
                assert targets == []
            elif topology == "full":
                assert sorted(targets) == [j for j in range(n) if j != island]
            elif topology in ("ring", "random"):
                assert len(targets) == 1


@pytest.mark.parametrize("n", range(2, 10))
def test_topologies_connect_every_island(n):
    # Following sends from any island reaches every other one (migrants can spread).
    for topology in ("ring", "torus"):
        reached, frontier = {0}, [0]
        while frontier:
            for j in neighbours(topology, frontier.pop(), n):
                if j not in reached:
                    reached.add(j)
                    frontier.append(j)
        assert reached == set(range(n)), topology


def test_ring_sends_to_the_next_island():
    assert [neighbours("ring", i, 5) for i in range(5)] == [[1], [2], [3], [4], [0]]


def test_torus_is_a_wrap_around_grid():
    assert torus_grid(9) == (3, 3) and torus_grid(6) == (2, 3) and torus_grid(7) == (3, 3)
    # 3 x 3: right and down with wrap-around.
    assert neighbours("torus", 0, 9) == [1, 3]
    assert neighbours("torus", 2, 9) == [0, 5]
    assert neighbours("torus", 8, 9) == [6, 2]
    assert neighbours("torus", 4, 9) == [5, 7]
    # 2 x 2: right and down are different islands.
    assert neighbours("torus", 3, 4) == [2, 1]
    # 7 = 3 + 3 + 1: island 6 is alone in its row, so only down (wrapping to the top).
    assert neighbours("torus", 6, 7) == [0]
    assert neighbours("torus", 5, 7) == [3, 2]  # column 2 has no third row: wraps
    # every island of a full grid receives exactly two
    incoming = [j for i in range(9) for j in neighbours("torus", i, 9)]
    assert sorted(incoming) == sorted(list(range(9)) * 2)


def test_random_topology_is_reproducible_and_varies():
    draws = [neighbours("random", 2, 9, generation=g, seed=5) for g in range(40)]
    assert draws == [neighbours("random", 2, 9, generation=g, seed=5) for g in range(40)]
    assert len({d[0] for d in draws}) > 3
    assert draws != [neighbours("random", 2, 9, generation=g, seed=6) for g in range(40)]


def test_unknown_topology_lists_the_valid_ones():
    with pytest.raises(InputError, match="unknown topology 'star'; valid topologies: ring, full, random, torus"):
        neighbours("star", 0, 4)
    with pytest.raises(InputError, match="island 4 is not one of 4"):
        neighbours("ring", 4, 4)


@pytest.mark.parametrize("n", range(1, 8))
@pytest.mark.parametrize("topology", ["ring", "full", "random", "torus"])
def test_sources_are_the_inverse_of_targets(topology, n):
    graph = Topology(topology, n, seed=3)
    for generation in range(4):
        for island in range(n):
            expected = sorted(s for s in range(n) if island in graph.targets(s, generation))
            assert graph.sources(island, generation) == expected


def test_ring_sources():
    assert [Topology("ring", 4).sources(i) for i in range(4)] == [[3], [0], [1], [2]]
