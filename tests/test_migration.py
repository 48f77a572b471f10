"""Migration: wire codec round trip, hostile bytes never raise, topologies, schedule."""


import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from islands.migration import (
    Migrants,
    MigrationStats,
    decode_migrants,
    encode_migrants,
    should_migrate,
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


def test_should_migrate():
    assert [g for g in range(13) if should_migrate(g, 4)] == [4, 8, 12]
    assert not any(should_migrate(g, 0) for g in range(10))
    assert [g for g in range(4) if should_migrate(g, 1)] == [1, 2, 3]
