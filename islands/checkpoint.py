"""The checkpoint codec: msgpack state files written atomically, and numpy array packing.

Covers: `atomic_write_bytes()` (temp file in the same directory, write, flush, fsync,
`os.replace`, fsync of the directory, so a crash leaves either the old file or the new
one, never half of one; `durable=False` skips the fsyncs: still atomic against a killed
process, not against a power cut, for writes too frequent to wait for the disk), `save_state()` / `load_state()` (a msgpack map with the header
`{"format": "islands-checkpoint", "v": 1, "state": {...}}`; unreadable, garbled or
foreign files raise `InputError` naming the file) and `pack_array()` / `unpack_array()`
(an array as `{"dtype", "shape", "data"}` with explicit byte order) and
`pack_big_ints()` / `unpack_big_ints()` (ints past 64 bits, as a random generator's state
holds), which `Island.state()` uses; `sweep_temp_files()` removes the temp files a killed writer left.

Does not cover: what goes into an island's state (`islands.island.Island.state`), when
checkpoints are written, the run directory layout and resuming (the coordinator).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from islands.errors import InputError

CHECKPOINT_FORMAT = "islands-checkpoint"
CHECKPOINT_VERSION = 1


def atomic_write_bytes(path: Path, data: bytes, *, durable: bool = True,
                       mode: int | None = None) -> None:
    """Write `data` to `path` so that readers see the old content or the new, never a mix.

    A failed write (disk full, I/O error) raises OSError and leaves the old file as it
    was; the temp file is removed. The file is private to the user (0600) unless `mode`
    says otherwise (0644 for files people read, such as `summary.json`).
    """
    path = Path(path)
    directory = path.parent
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        if mode is not None:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as temp_file:
            temp_file.write(data)
            temp_file.flush()
            if durable:
                os.fsync(temp_file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    if not durable:
        return
    # The rename itself is only durable once the directory entry is on disk.
    with contextlib.suppress(OSError):
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)
        finally:
            os.close(directory_fd)


def sweep_temp_files(directory: Path, name: str = "*") -> list[Path]:
    """Remove the temp files `atomic_write_bytes` left in `directory` for `name` (every
    file by default): a writer killed mid-write (SIGKILL after a stop grace) leaves one.
    Call only where no writer of those files is alive. Returns what was removed."""
    removed = []
    for temp in Path(directory).glob(f".{name}.*.tmp"):
        with contextlib.suppress(OSError):
            temp.unlink()
            removed.append(temp)
    return removed


def save_state(path: Path, state: dict[str, Any], *, durable: bool = True) -> None:
    """Write `state` (msgpack-able values only) as a checkpoint file, atomically."""
    document = {"format": CHECKPOINT_FORMAT, "v": CHECKPOINT_VERSION, "state": state}
    atomic_write_bytes(Path(path), msgpack.packb(document, use_bin_type=True), durable=durable)


def load_state(path: Path) -> dict[str, Any]:
    """The state saved by `save_state()`; InputError naming the file if it is not one."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise InputError(f"cannot read checkpoint: {error.strerror or error}", path=path) from error
    try:
        document = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except Exception as error:  # msgpack raises several unrelated types for garbage
        raise InputError(f"not a readable checkpoint ({type(error).__name__})", path=path) from error
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise InputError("not an islands checkpoint (format header missing)", path=path)
    if document.get("v") != CHECKPOINT_VERSION:
        raise InputError(
            f"checkpoint version {document.get('v')!r} is not supported (expected {CHECKPOINT_VERSION})",
            path=path,
        )
    state = document.get("state")
    if not isinstance(state, dict):
        raise InputError("checkpoint has no state map", path=path)
    return state


def pack_array(array: np.ndarray) -> dict[str, Any]:
    """An array as msgpack-able `{"dtype": "<f8", "shape": [...], "data": bytes}`."""
    array = np.asarray(array)
    if array.dtype.hasobject:
        raise ValueError("cannot pack an object array")
    # Explicit little-endian so files move between machines.
    little = array.astype(array.dtype.newbyteorder("<"), copy=False)
    return {"dtype": little.dtype.str, "shape": list(array.shape), "data": np.ascontiguousarray(little).tobytes()}


def unpack_array(packed: Any) -> np.ndarray:
    """The writable array packed by `pack_array()`; InputError if the map does not describe one."""
    if not isinstance(packed, dict):
        raise InputError("packed array is not a map")
    try:
        dtype = np.dtype(packed["dtype"])
        shape = tuple(int(s) for s in packed["shape"])
        data = packed["data"]
    except (KeyError, TypeError, ValueError) as error:
        raise InputError(f"packed array is malformed ({error})") from error
    if dtype.hasobject or not isinstance(data, bytes) or any(s < 0 for s in shape):
        raise InputError("packed array has a bad dtype, shape or data")
    expected = dtype.itemsize * int(np.prod(shape, dtype=object))
    if expected != len(data):
        raise InputError(f"packed array holds {len(data)} bytes, its shape needs {expected}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def pack_big_ints(value: Any) -> Any:
    """Ints as decimal strings, for state maps (PCG64 state holds 128-bit ints; msgpack stops at 64)."""
    if isinstance(value, dict):
        return {key: pack_big_ints(item) for key, item in value.items()}
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    return value


def unpack_big_ints(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"int"}:
            return int(value["int"])
        return {key: unpack_big_ints(item) for key, item in value.items()}
    return value
