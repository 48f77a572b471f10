"""The coordinator <-> island messages (islands.protocol): encoding, decoding, validation.

Every message class round-trips through `encode` / `decode`; anything malformed (random
bytes, mutated encodings, wrong types, counts, tags, versions, enum values) is dropped with
a reason and counted in `ProtocolStats`, never raised. Hypothesis does the fuzzing (the
`ci` profile in conftest.py runs 1000 cases each).
"""

from __future__ import annotations

import dataclasses
import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from islands import protocol
from islands.protocol import (
    PROTOCOL_VERSION,
    TO_COORDINATOR,
    TO_ISLAND,
    Ack,
    CheckpointFailed,
    Command,
    CommandKind,
    Deliver,
    Done,
    Failed,
    Improved,
    IslandState,
    Migrants,
    ProtocolStats,
    SourceBack,
    SourceGone,
    Started,
    Telemetry,
    decode,
    encode,
)

ALL_CLASSES = (*TO_COORDINATOR, *TO_ISLAND)

EXAMPLES = [
    Started(island=0, generation=0, population=16, restored=False),
    Started(island=3, generation=120, population=8, restored=True),
    Telemetry(island=1, state=IslandState.RUNNING, generation=7, evaluations=700,
              best_fitness=1.25, population=32, population_bytes=4096, cache_bytes=512,
              cache_hits=3, cache_misses=9,
              migration={"sent": 4, "received": 2, "dropped_reasons": {"run": 1}}),
    # No best yet: an infinite best fitness is the one non-finite float allowed.
    Telemetry(island=0, state=IslandState.STARTING, generation=0, evaluations=0,
              best_fitness=math.inf, population=16, population_bytes=0, cache_bytes=0,
              cache_hits=0, cache_misses=0, migration={}),
    Improved(island=2, generation=9, fitness=-3.5, genome=b"\x00\x01" * 8, dtype="<f8",
             shape=[2]),
    Migrants(island=1, generation=10, payload=b"\x81\xa1v\x01"),
    Ack(island=0, command=CommandKind.SHRINK, seq=17, population=8, generation=44),
    CheckpointFailed(island=1, error="No space left on device"),
    Done(island=0, reason="hibernated", generation=12),
    Failed(island=4, error="Traceback (most recent call last):\n  ...\nValueError: x\n"),
    Command(kind=CommandKind.HIBERNATE, arg=0.0, seq=-1),
    Command(kind=CommandKind.GROW, arg=2.0, seq=5),
    Deliver(source=2, generation=15, payload=b"migrants"),
    SourceGone(source=1, generation=30),
    SourceBack(source=1, generation=31),
]


def _fields(message):
    return [getattr(message, f.name) for f in dataclasses.fields(message)]


def _raw(*items):
    """Hand-made message bytes: `[version, tag, field, ...]` as msgpack."""
    return msgpack.packb(list(items), use_bin_type=True)


def _check_counted(stats: ProtocolStats, calls: int) -> None:
    assert stats.decoded + stats.dropped == calls
    assert sum(stats.dropped_reasons.values()) == stats.dropped


def _well_typed(message) -> bool:
    """Every field of a decoded message has its annotated type (bool never as an int)."""
    for f in dataclasses.fields(message):
        value = getattr(message, f.name)
        expected = {"int": int, "float": float, "bool": bool, "str": str, "bytes": bytes,
                    "list[int]": list, "dict[str, Any]": dict}[f.type]
        if not isinstance(value, expected):
            return False
        if expected in (int, float) and isinstance(value, bool):
            return False
        if f.type == "list[int]" and not all(type(v) is int and v >= 0 for v in value):
            return False
    return True


# --- round trips ---------------------------------------------------------------------------
def test_examples_cover_every_message_class():
    assert {type(m) for m in EXAMPLES} == set(ALL_CLASSES)


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message):
    stats = ProtocolStats()
    data = encode(message)
    assert isinstance(data, bytes)
    decoded = decode(data, stats)
    assert decoded == message
    assert type(decoded) is type(message)
    assert _well_typed(decoded)
    assert (stats.decoded, stats.dropped) == (1, 0)
    # Each side accepts what is meant for it.
    expect = TO_ISLAND if type(message) in TO_ISLAND else TO_COORDINATOR
    assert decode(data, stats, expect=expect) == message


def test_enum_fields_decode_as_their_enums():
    telemetry = decode(encode(EXAMPLES[2]))
    assert telemetry.state is IslandState.RUNNING
    assert decode(encode(EXAMPLES[6])).command is CommandKind.SHRINK
    assert decode(encode(Command(CommandKind.STOP, 0.0, 1))).kind is CommandKind.STOP


def test_an_int_in_a_float_field_decodes_as_a_float():
    message = decode(_raw(PROTOCOL_VERSION, Command.TAG, int(CommandKind.SHRINK), 1, 4))
    assert message == Command(CommandKind.SHRINK, 1.0, 4)
    assert type(message.arg) is float


def test_encoding_is_version_tag_then_fields_in_order():
    message = Ack(island=2, command=CommandKind.GROW, seq=9, population=16, generation=3)
    assert msgpack.unpackb(encode(message)) == [PROTOCOL_VERSION, Ack.TAG, 2, 2, 9, 16, 3]


_finite = st.floats(allow_nan=False, allow_infinity=False)
_ints = st.integers(min_value=0, max_value=2**62)
_anys = st.integers(min_value=-(2**62), max_value=2**62)
_text = st.text(max_size=40)
_bytes = st.binary(max_size=64)
_MESSAGES = st.one_of(
    st.builds(Started, _ints, _anys, _anys, st.booleans()),
    st.builds(Telemetry, _ints, st.sampled_from(IslandState), _anys, _anys,
              st.one_of(_finite, st.just(math.inf), st.just(-math.inf)), _anys, _anys, _anys,
              _anys, _anys, st.dictionaries(_text, st.one_of(_anys, _text), max_size=4)),
    st.builds(Improved, _ints, _anys, _finite, _bytes, _text, st.lists(_ints, max_size=4)),
    st.builds(Migrants, _ints, _anys, _bytes),
    st.builds(Ack, _ints, st.sampled_from(CommandKind), _anys, _anys, _anys),
    st.builds(CheckpointFailed, _ints, _text),
    st.builds(Done, _ints, _text, _anys),
    st.builds(Failed, _ints, _text),
    st.builds(Command, st.sampled_from(CommandKind), _finite, _anys),
    st.builds(Deliver, _anys, _anys, _bytes),
    st.builds(SourceGone, _anys, _anys),
    st.builds(SourceBack, _anys, _anys),
)


@given(_MESSAGES)
def test_any_valid_message_round_trips(message):
    stats = ProtocolStats()
    assert decode(encode(message), stats) == message
    assert (stats.decoded, stats.dropped) == (1, 0)


# --- fuzzing: never raise, always count ------------------------------------------------------
@given(st.lists(st.binary(max_size=200), min_size=1, max_size=20))
def test_random_bytes_never_raise_and_are_counted(chunks):
    stats = ProtocolStats()
    for data in chunks:
        message = decode(data, stats)
        assert message is None or (isinstance(message, ALL_CLASSES) and _well_typed(message))
    _check_counted(stats, len(chunks))


@st.composite
def _mutated_bytes(draw):
    data = bytearray(encode(draw(st.sampled_from(EXAMPLES))))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        index = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[index] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[index] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[index:index] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete" and data:
            del data[index]
        elif kind == "truncate":
            del data[index:]
    return bytes(data)


@given(st.lists(_mutated_bytes(), min_size=1, max_size=10))
def test_mutated_encodings_never_raise_and_are_counted(blobs):
    stats = ProtocolStats()
    for data in blobs:
        message = decode(data, stats)
        assert message is None or _well_typed(message)
    _check_counted(stats, len(blobs))


_MSGPACK_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=10) | st.binary(max_size=10),
    lambda inner: (st.lists(inner, max_size=4)
                   | st.dictionaries(st.text(max_size=5), inner, max_size=4)),
    max_leaves=8,
)


@st.composite
def _mutated_fields(draw):
    """A valid message's item list with fields replaced, added or removed, re-packed."""
    items = msgpack.unpackb(encode(draw(st.sampled_from(EXAMPLES))))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["replace", "append", "remove"]))
        if kind == "replace":
            items[draw(st.integers(0, len(items) - 1))] = draw(_MSGPACK_VALUES)
        elif kind == "append":
            items.append(draw(_MSGPACK_VALUES))
        elif items:
            del items[draw(st.integers(0, len(items) - 1))]
    return msgpack.packb(items, use_bin_type=True)


@given(st.lists(_mutated_fields(), min_size=1, max_size=10),
       st.sampled_from([None, TO_ISLAND, TO_COORDINATOR]))
def test_mutated_fields_never_raise_and_only_well_typed_messages_pass(blobs, expect):
    stats = ProtocolStats()
    for data in blobs:
        message = decode(data, stats, expect=expect)
        if message is not None:
            assert _well_typed(message)
            assert expect is None or isinstance(message, expect)
            for f in dataclasses.fields(message):
                value = getattr(message, f.name)
                if isinstance(value, float) and f.name != "best_fitness":
                    assert math.isfinite(value)
    _check_counted(stats, len(blobs))


def test_non_bytes_input_is_dropped_not_raised():
    stats = ProtocolStats()
    for data in (None, "text", 42, [1, 1, 0, 0, 1, True], {"v": 1}):
        assert decode(data, stats) is None
    assert stats.dropped_reasons == {"not bytes": 5}
    _check_counted(stats, 5)


def test_buffer_types_are_accepted():
    data = encode(EXAMPLES[0])
    assert decode(bytearray(data)) == EXAMPLES[0]
    assert decode(memoryview(data)) == EXAMPLES[0]


# --- specific drops, each with its reason ------------------------------------------------------
V = PROTOCOL_VERSION
STARTED = (V, Started.TAG, 0, 5, 16)  # the fixed part of a Started (restored comes last)
TELEMETRY = (V, Telemetry.TAG, 1, int(IslandState.RUNNING), 7, 70, 1.5, 8, 100, 0, 0, 0, {}, False)

DROPS = [
    ("wrong version", _raw(V + 1, *STARTED[1:], False), "version"),
    ("version a string", _raw("1", *STARTED[1:], False), "version"),
    ("unknown tag", _raw(V, 99, 0, 5, 16, False), "unknown kind"),
    ("tag not an int", _raw(V, "started", 0, 5, 16, False), "unknown kind"),
    ("too few fields", _raw(*STARTED), "Started: wrong field count"),
    ("too many fields", _raw(*STARTED, False, 1), "Started: wrong field count"),
    ("str for int", _raw(V, Started.TAG, "0", 5, 16, False), "Started.island: bad type"),
    ("float for int", _raw(V, Started.TAG, 0, 5.0, 16, False), "Started.generation: bad type"),
    ("bool for int", _raw(V, Started.TAG, True, 5, 16, False), "Started.island: bad type"),
    ("int for bool", _raw(*STARTED, 1), "Started.restored: bad type"),
    ("None for bool", _raw(*STARTED, None), "Started.restored: bad type"),
    ("bool for float", _raw(V, Command.TAG, int(CommandKind.SHRINK), True, 1),
     "Command.arg: bad type"),
    ("str for bytes", _raw(V, Migrants.TAG, 0, 5, "payload"), "Migrants.payload: bad type"),
    ("bytes for str", _raw(V, Done.TAG, 0, b"stopped", 3), "Done.reason: bad type"),
    ("list for dict", _raw(*TELEMETRY[:-2], [], False), "Telemetry.migration: bad type"),
    ("unknown command kind", _raw(V, Command.TAG, 99, 0.5, 1), "Command.kind: unknown value"),
    ("unknown ack command", _raw(V, Ack.TAG, 0, 0, 1, 8, 3), "Ack.command: unknown value"),
    ("unknown island state", _raw(*TELEMETRY[:3], 42, *TELEMETRY[4:]),
     "Telemetry.state: unknown value"),
    ("nan factor", _raw(V, Command.TAG, int(CommandKind.SHRINK), math.nan, 1),
     "Command.arg: not finite"),
    ("infinite fitness", _raw(V, Improved.TAG, 0, 3, math.inf, b"", "<f8", [0]),
     "Improved.fitness: not finite"),
    ("negative shape", _raw(V, Improved.TAG, 0, 3, 1.0, b"", "<f8", [2, -1]),
     "Improved.shape: bad value"),
    ("negative island", _raw(V, Started.TAG, -1, 5, 16, False), "Started.island: negative"),
    ("not a list", _raw(V), "not a message"),
    ("a map", msgpack.packb({"v": V, "tag": Started.TAG}), "not a message"),
    ("empty list", _raw(), "not a message"),
    ("not msgpack", b"\xc1", "undecodable"),
    ("truncated", encode(EXAMPLES[2])[:-3], "undecodable"),
    ("int map keys", _raw(*TELEMETRY[:-1], {1: 2}), "undecodable"),
    # True == 1 in Python: the version, the tag and shape entries must not take a bool either.
    ("version a bool", _raw(True, *STARTED[1:], False), "version"),
    ("tag a bool", _raw(V, True, 0, 5, 16, False), "unknown kind"),
    ("bool in shape", _raw(V, Improved.TAG, 0, 3, 1.0, b"", "<f8", [True]),
     "Improved.shape: bad value"),
]


@pytest.mark.parametrize(("case", "data", "reason"), [pytest.param(*case, id=case[0])
                                                       for case in DROPS])
def test_malformed_message_is_dropped_with_its_reason(case, data, reason):
    stats = ProtocolStats()
    assert decode(data, stats) is None
    assert stats.decoded == 0
    assert stats.dropped == 1
    assert dict(stats.dropped_reasons) == {reason: 1}


def test_valid_base_cases_of_the_drop_table_decode():
    """The drop cases are one change away from a valid message (so each tests one thing)."""
    assert decode(_raw(*STARTED, False)) == Started(0, 5, 16, False)
    assert decode(_raw(*TELEMETRY)).state is IslandState.RUNNING
    assert decode(_raw(V, Improved.TAG, 0, 3, 1.0, b"", "<f8", [0])) is not None


def test_oversized_message_is_dropped(monkeypatch):
    data = encode(Migrants(0, 1, b"x" * 100))
    monkeypatch.setattr(protocol, "MAX_MESSAGE_BYTES", 64)
    stats = ProtocolStats()
    assert decode(data, stats) is None
    assert dict(stats.dropped_reasons) == {"oversized": 1}


def test_an_island_drops_a_telemetry_and_the_coordinator_drops_a_command():
    stats = ProtocolStats()
    assert decode(encode(EXAMPLES[2]), stats, expect=TO_ISLAND) is None
    assert decode(encode(Command(CommandKind.STOP, 0.0, 1)), stats, expect=TO_COORDINATOR) is None
    assert dict(stats.dropped_reasons) == {"unexpected Telemetry": 1, "unexpected Command": 1}
    _check_counted(stats, 2)


def test_stats_count_a_mixed_stream():
    stats = ProtocolStats()
    stream = [encode(m) for m in EXAMPLES] + [data for _, data, _ in DROPS]
    results = [decode(data, stats) for data in stream]
    assert stats.decoded == len(EXAMPLES) == sum(r is not None for r in results)
    assert stats.dropped == len(DROPS)
    _check_counted(stats, len(stream))
