"""Migration: wire codec round trip, hostile bytes never raise, topologies, schedule."""


import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from islands.errors import InputError
from islands.migration import (
    Migrants,
    MigrationStats,
    decode_migrants,
    encode_migrants,
    neighbours,
    should_migrate,
    torus_grid,
)

SHAPE = (4, 3)
DTYPE = np.dtype(np.int32)


def valid_message(k=2, run="run-1"):
    genomes = np.arange(k * 12, dtype=np.int32).reshape(k, *SHAPE)
    fitness = np.linspace(1.0, 2.0, k)
    return encode_migrants(run, 3, 17, genomes, fitness), genomes, fitness


def decode(data, run_id="run-1", stats=None):
    return decode_migrants(data, run_id=run_id, genome_shape=SHAPE, genome_dtype=DTYPE, stats=stats)


def test_round_trip():
    data, genomes, fitness = valid_message(k=3)
    raw = msgpack.unpackb(data, raw=False)
    assert raw["v"] == 1 and raw["dtype"] == "int32" and raw["shape"] == [3, 4, 3]
    assert set(raw) == {"v", "run", "from", "gen", "fitness", "dtype", "shape", "genome"}
    migrants = decode(data)
    assert isinstance(migrants, Migrants)
    assert (migrants.run, migrants.from_island, migrants.generation, migrants.count) == ("run-1", 3, 17, 3)
    np.testing.assert_array_equal(migrants.genomes, genomes)
    np.testing.assert_array_equal(migrants.fitness, fitness)
    assert migrants.genomes.flags.writeable and migrants.genomes.dtype == DTYPE
    assert decode(data, run_id=None) is not None


def test_float_genomes_round_trip_exactly():
    genomes = np.random.default_rng(0).normal(size=(5, 7))
    data = encode_migrants("r", 0, 1, genomes, np.arange(5.0))
    migrants = decode_migrants(data, run_id="r", genome_shape=(7,), genome_dtype=np.float64)
    np.testing.assert_array_equal(migrants.genomes, genomes)


def tampered(**changes):
    data, _, _ = valid_message()
    message = msgpack.unpackb(data, raw=False)
    for key, value in changes.items():
        if value is KeyError:
            del message[key]
        else:
            message[key] = value
    return msgpack.packb(message, use_bin_type=True)


@pytest.mark.parametrize(
    "data, reason",
    [
        (tampered(v=2), "wrong version"),
        (tampered(v=True), "wrong version"),
        (tampered(run="other-run"), "wrong run"),
        (tampered(dtype="float64"), "wrong dtype"),
        (tampered(shape=[2, 3, 4]), "wrong shape"),
        (tampered(shape=[2, 4]), "wrong shape"),
        (tampered(shape=[3, 4, 3]), "count mismatch"),
        (tampered(fitness=[1.0, float("nan")]), "non-finite fitness"),
        (tampered(fitness=[1.0, float("inf")]), "non-finite fitness"),
        (tampered(fitness=[]), "bad fitness"),
        (tampered(fitness=["a", "b"]), "bad fitness"),
        (tampered(genome=b"\x00" * 95), "byte length mismatch"),
        (tampered(genome="text"), "bad genome"),
        (tampered(shape=[2**40, 4, 3], fitness=[1.0] * 2), "count mismatch"),
        (tampered(**{"from": -1}), "bad header"),
        (tampered(gen=KeyError), "bad header"),
        (msgpack.packb([1, 2, 3]), "not a map"),
        (b"", "undecodable"),
        (10**9, "undecodable"),
        (None, "undecodable"),
        (valid_message()[0][:-5], "undecodable"),
        (valid_message()[0] + b"\x00", "undecodable"),
    ],
)
def test_invalid_messages_are_dropped_with_a_reason(data, reason):
    stats = MigrationStats()
    assert decode(data, stats=stats) is None
    assert stats.dropped == 1 and stats.received == 0
    assert list(stats.dropped_reasons) == [reason]


def test_huge_declared_shape_allocates_nothing():
    fitness = [1.0] * 3
    message = tampered(shape=[3, 4, 3], fitness=fitness, genome=b"")
    assert decode(message) is None
    big = {"v": 1, "run": "run-1", "from": 0, "gen": 0, "fitness": [1.0], "dtype": "int32",
           "shape": [1, 2**62, 2**62], "genome": b""}
    assert decode_migrants(msgpack.packb(big), run_id=None, genome_shape=(2**62, 2**62),
                           genome_dtype=np.int32) is None


def test_non_finite_float_genes_are_dropped():
    genomes = np.array([[1.0, np.nan]])
    data = encode_migrants("r", 0, 1, genomes, np.array([0.0]))
    stats = MigrationStats()
    assert decode_migrants(data, run_id="r", genome_shape=(2,), genome_dtype=np.float64, stats=stats) is None
    assert stats.dropped_reasons == {"non-finite genome": 1}


def test_stats_count_received_messages():
    stats = MigrationStats()
    decode(valid_message()[0], stats=stats)
    decode(b"junk", stats=stats)
    assert stats.as_dict() == {
        "sent": 0, "received": 2, "accepted": 0, "dropped": 1,
        "dropped_reasons": {"undecodable": 1},
    }


def _check_decoded(result):
    assert result is None or (
        isinstance(result, Migrants)
        and result.genomes.shape == (result.count, *SHAPE)
        and result.genomes.dtype == DTYPE
        and np.all(np.isfinite(result.fitness))
    )


@given(st.binary(max_size=400))
def test_fuzz_random_bytes_never_raise(data):
    _check_decoded(decode(data))


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats() | st.text(max_size=8)
    | st.binary(max_size=200),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=10,
)
FIELDS = ["v", "run", "from", "gen", "fitness", "dtype", "shape", "genome"]


@given(
    st.sampled_from(FIELDS),
    msgpack_values,
    st.integers(min_value=1, max_value=4),
)
def test_fuzz_fields_replaced_by_arbitrary_values_never_raise(field, value, k):
    data, _, _ = valid_message(k=k)
    message = msgpack.unpackb(data, raw=False)
    message[field] = value
    _check_decoded(decode(msgpack.packb(message, use_bin_type=True)))


@given(st.data())
def test_fuzz_mutated_valid_bytes_never_raise(data):
    message, _, _ = valid_message(k=data.draw(st.integers(1, 4)))
    message = bytearray(message)
    for _ in range(data.draw(st.integers(1, 6))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if not message:
            break
        position = data.draw(st.integers(0, len(message) - 1))
        if action == "flip":
            message[position] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del message[position:position + data.draw(st.integers(1, 20))]
        else:
            message[position:position] = data.draw(st.binary(min_size=1, max_size=10))
    _check_decoded(decode(bytes(message)))


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


def test_should_migrate():
    assert [g for g in range(13) if should_migrate(g, 4)] == [4, 8, 12]
    assert not any(should_migrate(g, 0) for g in range(10))
    assert [g for g in range(4) if should_migrate(g, 1)] == [1, 2, 3]
