"""Typed messages between the coordinator and its islands, and their one encoding.

Covers: island states (`IslandState`) and command kinds (`CommandKind`); every message
either side sends, as a frozen dataclass; `encode(message) -> bytes` (msgpack: the
message's tag, then its fields in order) and `decode(data, stats) -> message | None`,
which validates every field's type and never raises: anything malformed is dropped and
counted in `ProtocolStats` with a reason.

To the coordinator: `Started`, `Telemetry`, `Improved`, `Migrants`, `Ack`,
`CheckpointFailed`, `Done`, `Failed`. To an island: `Command`, `Deliver`, `SourceGone`,
`SourceBack`. The migrant payload inside `Migrants` / `Deliver` is the wire format of
`islands.migration` (DESIGN.md "Migrants on the wire"), carried as opaque bytes.

Does not cover: moving the bytes (the coordinator's backends and `islands.worker`),
what a message makes happen (`islands.worker` on the island side, the coordinator's
parts on the other), the migrant codec itself (`islands.migration`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, ClassVar

import msgpack

from memory.budget import NamedIntEnum

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 512 * 2**20  # a checkpoint-sized genome at most; anything larger is hostile


class IslandState(NamedIntEnum):
    STARTING = 0
    RUNNING = 1
    SHRUNK = 2
    HIBERNATED = 3
    STOPPED = 4
    FAILED = 5
    DONE = 6


# Islands in these states evolve (and can be acted on).
EVOLVING_STATES = (IslandState.STARTING, IslandState.RUNNING, IslandState.SHRUNK)


class CommandKind(NamedIntEnum):
    SHRINK = 1
    GROW = 2
    CLEAR_CACHE = 3
    HIBERNATE = 4
    STOP = 5
    PAUSE_GROWTH = 6
    RESUME_GROWTH = 7


# --- messages to the coordinator -------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    """The island is built (or restored) and about to evolve."""

    TAG: ClassVar[int] = 1
    island: int
    generation: int
    population: int
    restored: bool


@dataclass(frozen=True)
class Telemetry:
    """Progress and own-memory readings, sent once per telemetry interval (not per generation)."""

    TAG: ClassVar[int] = 2
    island: int
    state: int  # an IslandState
    generation: int
    evaluations: int
    best_fitness: float
    population: int
    population_bytes: int
    cache_bytes: int
    cache_hits: int
    cache_misses: int
    migration: dict[str, Any] = field(default_factory=dict)  # MigrationStats.as_dict() + declined
    cache_off: bool = False  # the island switched its cache off itself (too few hits)


@dataclass(frozen=True)
class Improved:
    """A new best of this island: its genome as raw bytes of `dtype` and `shape`."""

    TAG: ClassVar[int] = 3
    island: int
    generation: int
    fitness: float
    genome: bytes
    dtype: str
    shape: list[int]


@dataclass(frozen=True)
class Migrants:
    """Emigrants of `generation`, to be routed along the topology (payload: migrant wire bytes)."""

    TAG: ClassVar[int] = 4
    island: int
    generation: int
    payload: bytes


@dataclass(frozen=True)
class Ack:
    """Command `seq` was carried out; population and generation as they are now."""

    TAG: ClassVar[int] = 5
    island: int
    command: int  # a CommandKind
    seq: int
    population: int
    generation: int


@dataclass(frozen=True)
class CheckpointFailed:
    TAG: ClassVar[int] = 6
    island: int
    error: str


@dataclass(frozen=True)
class Done:
    """The island's loop ended: `reason` is "generations", "stopped", "terminated" (a signal
    to the island itself) or "hibernated"."""

    TAG: ClassVar[int] = 7
    island: int
    reason: str
    generation: int


@dataclass(frozen=True)
class Failed:
    """An exception ended the island: its formatted traceback (sent once, then exit)."""

    TAG: ClassVar[int] = 8
    island: int
    error: str


# --- messages to an island -------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """Do `kind` (with `arg`: the factor of SHRINK / GROW); answer with `Ack(seq)`."""

    TAG: ClassVar[int] = 20
    kind: int  # a CommandKind
    arg: float
    seq: int


@dataclass(frozen=True)
class Deliver:
    """Migrants from `source`, emitted at its `generation`."""

    TAG: ClassVar[int] = 21
    source: int
    generation: int
    payload: bytes


@dataclass(frozen=True)
class SourceGone:
    """`source` sends nothing after `generation` (it finished, hibernated, died or stalled)."""

    TAG: ClassVar[int] = 22
    source: int
    generation: int


@dataclass(frozen=True)
class SourceBack:
    """`source` evolves again, from `generation`: lockstep waits for it again."""

    TAG: ClassVar[int] = 23
    source: int
    generation: int


ToCoordinator = Started | Telemetry | Improved | Migrants | Ack | CheckpointFailed | Done | Failed
ToIsland = Command | Deliver | SourceGone | SourceBack
Message = ToCoordinator | ToIsland

TO_COORDINATOR: tuple[type, ...] = (Started, Telemetry, Improved, Migrants, Ack,
                                    CheckpointFailed, Done, Failed)
TO_ISLAND: tuple[type, ...] = (Command, Deliver, SourceGone, SourceBack)
_BY_TAG: dict[int, type] = {cls.TAG: cls for cls in (*TO_COORDINATOR, *TO_ISLAND)}


def _checker(annotation: str) -> tuple[type, ...]:
    """The msgpack types a field of this annotation may arrive as."""
    return {
        "int": (int,),
        "float": (float, int),
        "bool": (bool,),
        "str": (str,),
        "bytes": (bytes,),
        "list[int]": (list,),
        "dict[str, Any]": (dict,),
    }[annotation]


_FIELDS: dict[type, tuple[tuple[str, tuple[type, ...]], ...]] = {
    cls: tuple((f.name, _checker(f.type)) for f in dataclasses.fields(cls)) for cls in _BY_TAG.values()
}
_ENUM_FIELDS: dict[tuple[type, str], type] = {
    (Telemetry, "state"): IslandState,
    (Ack, "command"): CommandKind,
    (Command, "kind"): CommandKind,
}


@dataclass
class ProtocolStats:
    """Messages decoded and dropped (with the reason of each drop)."""

    decoded: int = 0
    dropped: int = 0
    dropped_reasons: Counter = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.dropped_reasons[reason] += 1


def encode(message: Message) -> bytes:
    """One message as msgpack bytes: `[version, tag, field, ...]`."""
    values = [getattr(message, name) for name, _ in _FIELDS[type(message)]]
    return msgpack.packb([PROTOCOL_VERSION, message.TAG, *values], use_bin_type=True)


def decode(data: Any, stats: ProtocolStats | None = None,
           expect: tuple[type, ...] | None = None) -> Message | None:
    """The message in `data`, or None (counted in `stats`) if it is malformed.

    `expect` limits the accepted message classes (an island takes only `TO_ISLAND`).
    """
    stats = stats if stats is not None else ProtocolStats()
    reason = None
    message = None
    if not isinstance(data, (bytes, bytearray, memoryview)):
        reason = "not bytes"
    elif len(data) > MAX_MESSAGE_BYTES:
        reason = "oversized"
    else:
        try:
            items = msgpack.unpackb(data, raw=False, strict_map_key=True,
                                    max_bin_len=MAX_MESSAGE_BYTES)
        except Exception:  # msgpack raises many types on hostile bytes
            items = None
            reason = "undecodable"
        if reason is None:
            message, reason = _build(items, expect)
    if reason is not None:
        stats.drop(reason)
        return None
    stats.decoded += 1
    return message


def _build(items: Any, expect: tuple[type, ...] | None) -> tuple[Message | None, str | None]:
    if not isinstance(items, list) or len(items) < 2:
        return None, "not a message"
    version, tag, *values = items
    # `type(...) is int`: a bool is an int to isinstance and equals 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        return None, "version"
    cls = _BY_TAG.get(tag) if type(tag) is int else None
    if cls is None:
        return None, "unknown kind"
    if expect is not None and cls not in expect:
        return None, f"unexpected {cls.__name__}"
    fields = _FIELDS[cls]
    if len(values) != len(fields):
        return None, f"{cls.__name__}: wrong field count"
    kwargs: dict[str, Any] = {}
    for (name, types), value in zip(fields, values, strict=True):
        # bool is an int subclass: an int field must not take True, a bool field takes only bools.
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            return None, f"{cls.__name__}.{name}: bad type"
        if isinstance(value, float) and not math.isfinite(value) and name != "best_fitness":
            return None, f"{cls.__name__}.{name}: not finite"
        if name == "shape" and not all(type(v) is int and v >= 0 for v in value):
            return None, f"{cls.__name__}.shape: bad value"
        enum = _ENUM_FIELDS.get((cls, name))
        if enum is not None:
            try:
                value = enum(value)
            except ValueError:
                return None, f"{cls.__name__}.{name}: unknown value"
        kwargs[name] = float(value) if float in types and not isinstance(value, bool) else value
    if isinstance(kwargs.get("island", 0), int) and kwargs.get("island", 0) < 0:
        return None, f"{cls.__name__}.island: negative"
    return cls(**kwargs), None


__all__ = [
    "EVOLVING_STATES",
    "TO_COORDINATOR",
    "TO_ISLAND",
    "Ack",
    "CheckpointFailed",
    "Command",
    "CommandKind",
    "Deliver",
    "Done",
    "Failed",
    "Improved",
    "IslandState",
    "Message",
    "Migrants",
    "ProtocolStats",
    "SourceBack",
    "SourceGone",
    "Started",
    "Telemetry",
    "ToCoordinator",
    "ToIsland",
    "decode",
    "encode",
]
