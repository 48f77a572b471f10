"""Migration: the migrant wire codec, its counters, topologies and the migration schedule.

Covers: `encode_migrants()` / `decode_migrants()` (DESIGN.md "Migrants on the wire"),
`Migrants`, `MigrationStats` (sent / received / accepted / dropped with reasons),
`should_migrate()` (the schedule).

Wire format: one msgpack map per message, carrying k migrants::

    {"v": 1, "run": run_id, "from": island, "gen": generation,
     "fitness": [k floats], "dtype": "float64", "shape": [k, *genome_shape],
     "genome": k * prod(genome_shape) * itemsize bytes, little-endian, C order}

The count of migrants is `len(fitness)`, which must equal `shape[0]`. Decoding never
raises: anything that fails to decode or validate (wrong version, run, dtype or shape,
byte length mismatch, non-finite fitness or genes, non-map, truncated, oversized) gives
None and, when a `MigrationStats` is passed, one count under `dropped_reasons`.

Does not cover: who sends to whom (`islands.topology`), choosing emigrants and accepting
immigrants (`islands.island.Island`), moving the bytes between processes (`islands.worker`
and the coordinator's router).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

WIRE_VERSION = 1
# Guards against hostile or corrupted bytes: no message needs more than this.
MAX_GENOME_BYTES = 256 * 2**20
MAX_MIGRANTS = 100_000
MAX_STRING = 4096
_UNDECODABLE = object()


@dataclass
class Migrants:
    """Decoded migrants: `genomes` `(k, *genome_shape)` (writable) and `fitness` `(k,)`."""

    run: str
    from_island: int
    generation: int
    genomes: np.ndarray
    fitness: np.ndarray

    @property
    def count(self) -> int:
        return len(self.fitness)


@dataclass
class MigrationStats:
    """Migration counters of one island: sent, received and accepted count migrants;
    dropped counts messages (a dropped message's migrant count cannot be trusted)."""

    sent: int = 0
    received: int = 0
    accepted: int = 0
    dropped: int = 0
    dropped_reasons: Counter = field(default_factory=Counter)

    def drop(self, reason: str) -> None:
        self.dropped += 1
        self.dropped_reasons[reason] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "received": self.received,
            "accepted": self.accepted,
            "dropped": self.dropped,
            "dropped_reasons": dict(self.dropped_reasons),
        }


def _wire_dtype(dtype: Any) -> np.dtype:
    return np.dtype(dtype).newbyteorder("<")


def encode_migrants(
    run_id: str, from_island: int, generation: int, genomes: np.ndarray, fitness: np.ndarray
) -> bytes:
    """One wire message carrying the k migrants `genomes` `(k, ...)` with `fitness` `(k,)`."""
    genomes = np.asarray(genomes)
    fitness = np.asarray(fitness, dtype=np.float64).reshape(-1)
    if genomes.ndim < 1 or len(genomes) != len(fitness):
        raise ValueError(f"{len(genomes)} genomes but {len(fitness)} fitness values")
    if genomes.dtype.hasobject:
        raise ValueError("object genomes cannot go on the wire")
    wire = np.ascontiguousarray(genomes.astype(_wire_dtype(genomes.dtype), copy=False))
    message = {
        "v": WIRE_VERSION,
        "run": str(run_id),
        "from": int(from_island),
        "gen": int(generation),
        "fitness": [float(value) for value in fitness],
        "dtype": genomes.dtype.name,
        "shape": [int(s) for s in genomes.shape],
        "genome": wire.tobytes(),
    }
    return msgpack.packb(message, use_bin_type=True)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(
    message: Any, run_id: str | None, genome_shape: tuple[int, ...], genome_dtype: np.dtype
) -> Migrants | str:
    """The migrants in `message`, or the reason it is dropped."""
    if not isinstance(message, dict):
        return "not a map"
    if message.get("v") != WIRE_VERSION or not _is_int(message.get("v")):
        return "wrong version"
    run = message.get("run")
    if not isinstance(run, str):
        return "bad run"
    if run_id is not None and run != run_id:
        return "wrong run"
    from_island, generation = message.get("from"), message.get("gen")
    if not _is_int(from_island) or not _is_int(generation) or from_island < 0 or generation < 0:
        return "bad header"
    if message.get("dtype") != genome_dtype.name:
        return "wrong dtype"
    fitness_list = message.get("fitness")
    if not isinstance(fitness_list, list) or not fitness_list:
        return "bad fitness"
    if not all(isinstance(v, float | int) and not isinstance(v, bool) for v in fitness_list):
        return "bad fitness"
    fitness = np.array(fitness_list, dtype=np.float64)
    if not np.all(np.isfinite(fitness)):
        return "non-finite fitness"
    shape = message.get("shape")
    if not isinstance(shape, list) or not all(_is_int(s) for s in shape):
        return "bad shape"
    if tuple(shape[1:]) != genome_shape or len(shape) != 1 + len(genome_shape):
        return "wrong shape"
    if shape[0] != len(fitness):
        return "count mismatch"
    genome_bytes = message.get("genome")
    if not isinstance(genome_bytes, bytes):
        return "bad genome"
    # Python ints: a huge declared shape cannot overflow or allocate anything here.
    expected = math.prod(shape) * genome_dtype.itemsize
    if expected != len(genome_bytes):
        return "byte length mismatch"
    genomes = (
        np.frombuffer(genome_bytes, dtype=_wire_dtype(genome_dtype))
        .reshape(shape)
        .astype(genome_dtype)  # a native-order copy: writable, not tied to the message
    )
    if np.issubdtype(genome_dtype, np.inexact) and not np.all(np.isfinite(genomes)):
        return "non-finite genome"
    return Migrants(run, from_island, generation, genomes, fitness)


def decode_migrants(
    data: bytes,
    *,
    run_id: str | None,
    genome_shape: Any,
    genome_dtype: Any,
    stats: MigrationStats | None = None,
) -> Migrants | None:
    """The migrants in one wire message, or None if it is not valid.

    With `stats`, a valid message adds its migrant count to `received`, an invalid one
    adds 1 to `dropped` and to `dropped_reasons[reason]`.

    `run_id=None` accepts any run. Never raises, whatever `data` holds.
    Drop reasons: "undecodable" (not msgpack, truncated, trailing bytes, over the size
    limits), "not a map", "wrong version", "bad run", "wrong run", "bad header",
    "wrong dtype", "bad fitness", "non-finite fitness", "bad shape", "wrong shape",
    "count mismatch", "bad genome", "byte length mismatch", "non-finite genome".
    """
    # The receiver's own shape and dtype: a bad one is a programming error and raises.
    shape = tuple(int(s) for s in np.atleast_1d(genome_shape))
    dtype = np.dtype(genome_dtype)
    try:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("not bytes")  # bytes(an int) would allocate that many
        message = msgpack.unpackb(
            bytes(data),
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_GENOME_BYTES,
            max_array_len=MAX_MIGRANTS,
            max_str_len=MAX_STRING,
            max_map_len=64,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises many types (ValueError, ExtraData, OutOfData, ...)
        message = _UNDECODABLE
    try:
        result = "undecodable" if message is _UNDECODABLE else _validate(message, run_id, shape, dtype)
    except Exception:  # a check this module forgot: still dropped, never raised
        result = "invalid"
    if isinstance(result, str):
        if stats is not None:
            stats.drop(result)
        return None
    if stats is not None:
        stats.received += result.count
    return result


def should_migrate(generation: int, interval: int) -> bool:
    """True on generations interval, 2*interval, ...; an interval < 1 turns migration off."""
    return interval >= 1 and generation > 0 and generation % interval == 0
