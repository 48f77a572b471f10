"""Shared memory: numpy arrays in POSIX shared memory, and sweeping segments of dead owners.

Covers: `SharedArray` (create in the owner, attach zero-copy elsewhere, close, unlink; any
numpy dtype, structured ones included), `SharedArrayHandle` (the small picklable description
another process needs to attach), segment naming (`islands_<owner pid>_<tag>_<counter>`),
and `sweep_dead_segments` (removes segments whose owner died).

Does not cover: what goes into shared memory or who attaches it (the `islands` and
`coordinator` packages decide), messages between processes (no shared tables live here;
processes talk through typed messages in `islands.protocol`), or measuring memory
(`memory.probe`).

Lifetimes: only the owner creates and unlinks segments. Python's `resource_tracker` is kept
out entirely (on 3.13+ with `track=False`; before, by skipping its register/unregister calls
while we create, attach or unlink): a tracker unlinks a segment when an *attaching* process
exits, destroying data still in use, and processes started by `multiprocessing` share one
tracker, so the usual "unregister after attach" races between two processes attaching at
once. Instead the owner unlinks explicitly, an `atexit` hook unlinks what the owner forgot,
and `sweep_dead_segments` (run at start-up) removes what a killed owner left behind; the
owner pid in each name makes that possible.
"""

from __future__ import annotations

import atexit
import errno
import itertools
import json
import os
import re
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np
import psutil

from memory.budget import BudgetError, format_bytes

SEGMENT_PREFIX = "islands"
_TAG_RE = re.compile(r"^[A-Za-z0-9]{1,10}$")
_counter = itertools.count()
_tracker_lock = threading.Lock()
# name -> pid of the process that created it; unlinked at exit if still there.
_owned_segments: dict[str, int] = {}


class SharedMemoryError(BudgetError):
    """Shared memory could not be created (e.g. /dev/shm is full): one clear line."""


# --- resource_tracker bypass --------------------------------------------------------------
@contextmanager
def _untracked() -> Iterator[None]:
    """Skip resource_tracker (un)registration of shared memory for the calls inside."""
    with _tracker_lock:
        register, unregister = resource_tracker.register, resource_tracker.unregister

        def skip_register(name: str, rtype: str) -> None:
            if rtype != "shared_memory":
                register(name, rtype)

        def skip_unregister(name: str, rtype: str) -> None:
            if rtype != "shared_memory":
                unregister(name, rtype)

        resource_tracker.register = skip_register
        resource_tracker.unregister = skip_unregister
        try:
            yield
        finally:
            resource_tracker.register = register
            resource_tracker.unregister = unregister


def _open_segment(name: str, *, create: bool = False, size: int = 0) -> SharedMemory:
    if sys.version_info >= (3, 13):
        return SharedMemory(name=name, create=create, size=size, track=False)
    with _untracked():
        return SharedMemory(name=name, create=create, size=size)


def _unlink_segment(name: str) -> bool:
    """Remove a segment by name; False if it was already gone."""
    try:
        shm = _open_segment(name)
    except FileNotFoundError:
        return False
    try:
        with _untracked():
            shm.unlink()
    except FileNotFoundError:
        return False
    finally:
        shm.close()
    return True


@atexit.register
def _unlink_owned_at_exit() -> None:
    for name, owner in list(_owned_segments.items()):
        if owner == os.getpid():
            _unlink_segment(name)
    _owned_segments.clear()


# --- dtype <-> str for handles ----------------------------------------------------------
def _dtype_to_str(dtype: np.dtype) -> str:
    if dtype.fields is None:
        return dtype.str
    return json.dumps(dtype.descr)


def _descr_from_json(descr: list) -> list:
    """json turns descr tuples into lists; np.dtype wants (name, format[, shape]) tuples."""
    fields = []
    for name, fmt, *shape in descr:
        fmt = _descr_from_json(fmt) if isinstance(fmt, list) else fmt
        fields.append((name, fmt, tuple(shape[0])) if shape else (name, fmt))
    return fields


def _dtype_from_str(text: str) -> np.dtype:
    if text.startswith("["):
        return np.dtype(_descr_from_json(json.loads(text)))
    return np.dtype(text)


def segment_name(
    tag: str,
    *,
    owner_pid: int | None = None,
    counter: int | None = None,
    prefix: str = SEGMENT_PREFIX,
) -> str:
    """`{prefix}_{owner_pid}_{tag}_{counter}`; tag is 1-10 letters/digits (names stay short)."""
    if not _TAG_RE.match(tag):
        raise ValueError(f"invalid shared array tag {tag!r}: use 1-10 letters or digits")
    pid = os.getpid() if owner_pid is None else owner_pid
    number = next(_counter) if counter is None else counter
    return f"{prefix}_{pid}_{tag}_{number}"


@dataclass(frozen=True)
class SharedArrayHandle:
    """What a worker needs to attach a SharedArray: segment name, shape and dtype."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _dtype_from_str(self.dtype).itemsize


class SharedArray:
    """A numpy array in POSIX shared memory: created by the owner, attached zero-copy by others."""

    def __init__(
        self, shm: SharedMemory, handle: SharedArrayHandle, *, owner: bool, readonly: bool = False
    ):
        self._shm: SharedMemory | None = shm
        self.handle = handle
        self.owner = owner
        array = np.ndarray(handle.shape, dtype=_dtype_from_str(handle.dtype), buffer=shm.buf)
        if readonly:
            array.flags.writeable = False
        self._array: np.ndarray | None = array
        del array
        # numpy views keep a reference to this array but no buffer export on the mapping, so
        # unmapping under a live view would crash on its next access instead of raising.
        # Any reference beyond this baseline is a view (or the array) someone still holds.
        self._array_refs = sys.getrefcount(self._array)

    @property
    def name(self) -> str:
        return self.handle.name

    @classmethod
    def create(cls, shape: int | tuple[int, ...], dtype: Any, *, tag: str = "arr") -> SharedArray:
        """Create a zero-filled shared array (owner only); its pages are reserved up front.

        Reserving with posix_fallocate makes a full /dev/shm fail here, with a clear error,
        instead of a SIGBUS when a page is first touched later.
        """
        shape_tuple = (
            (int(shape),) if isinstance(shape, (int, np.integer)) else tuple(int(s) for s in shape)
        )
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape_tuple, dtype=np.int64)) * dtype.itemsize
        size = max(nbytes, 1)  # POSIX shm cannot be empty
        while True:
            name = segment_name(tag)
            try:
                shm = _open_segment(name, create=True, size=size)
                break
            except FileExistsError:
                continue  # a dead namesake (same pid reused); take the next counter
            except OSError as error:
                raise SharedMemoryError(
                    f"cannot create shared memory segment '{name}' ({format_bytes(size)}): "
                    f"{error.strerror or error}"
                ) from None
        try:
            _reserve_pages(shm, size)
        except OSError as error:
            shm.close()
            _unlink_segment(name)
            free = _shm_free_bytes()
            where = f" ({format_bytes(free)} free in /dev/shm)" if free is not None else ""
            reason = (
                "no space left" if error.errno == errno.ENOSPC else (error.strerror or str(error))
            )
            raise SharedMemoryError(
                f"cannot reserve {format_bytes(size)} of shared memory for '{name}': "
                f"{reason}{where}; enlarge /dev/shm or lower the memory budget"
            ) from None
        _owned_segments[name] = os.getpid()
        handle = SharedArrayHandle(name=name, shape=shape_tuple, dtype=_dtype_to_str(dtype))
        return cls(shm, handle, owner=True)

    @classmethod
    def from_array(cls, array: np.ndarray, *, tag: str = "arr") -> SharedArray:
        """Create a shared array holding a copy of `array`."""
        array = np.asarray(array)
        shared = cls.create(array.shape, array.dtype, tag=tag)
        shared.array[...] = array
        return shared

    @classmethod
    def attach(cls, handle: SharedArrayHandle, *, readonly: bool = False) -> SharedArray:
        """Map an existing shared array by its handle (zero-copy), e.g. in an island worker."""
        try:
            shm = _open_segment(handle.name)
        except FileNotFoundError:
            raise SharedMemoryError(
                f"shared memory segment '{handle.name}' does not exist (owner gone?)"
            ) from None
        if shm.size < handle.nbytes:
            shm.close()
            raise SharedMemoryError(
                f"shared memory segment '{handle.name}' holds {shm.size} bytes, "
                f"handle needs {handle.nbytes}"
            )
        return cls(shm, handle, owner=False, readonly=readonly)

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            raise ValueError(f"shared array '{self.name}' is closed")
        return self._array

    @property
    def closed(self) -> bool:
        return self._shm is None

    def close(self) -> None:
        """Drop this object's numpy view, then unmap the segment (idempotent).

        Raises BufferError if other numpy views of the array are still alive.
        """
        if self._shm is None:
            return
        if sys.getrefcount(self._array) > self._array_refs:
            raise BufferError(
                f"shared array '{self.name}' still has live numpy views; delete them before close()"
            )
        self._array = None
        self._shm.close()
        self._shm = None

    def unlink(self) -> None:
        """Remove the segment (owner only); attached processes keep their mapping until close."""
        if not self.owner:
            raise PermissionError(f"only the owner may unlink shared array '{self.name}'")
        _unlink_segment(self.name)
        _owned_segments.pop(self.name, None)

    def __enter__(self) -> SharedArray:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if self.owner:
            self.unlink()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"SharedArray({self.name!r}, shape={self.handle.shape}, dtype={self.handle.dtype}, {state})"


def _reserve_pages(shm: SharedMemory, size: int) -> None:
    fd = getattr(shm, "_fd", -1)
    if fd is not None and fd >= 0:
        os.posix_fallocate(fd, 0, size)
        return
    fd = os.open(f"/dev/shm/{shm.name}", os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)


def _shm_free_bytes(shm_dir: str = "/dev/shm") -> int | None:
    try:
        stats = os.statvfs(shm_dir)
    except OSError:
        return None
    return stats.f_bavail * stats.f_frsize


def _owner_alive(pid: int, segment_mtime: float) -> bool:
    """Is `pid` alive and old enough to have written the segment (not a reused pid)?"""
    try:
        process = psutil.Process(pid)
        started = process.create_time()
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    # The owner existed before the segment was last written; a process started later is a
    # stranger that got the pid. One second of slack for timestamp resolution.
    return started <= segment_mtime + 1.0


def sweep_dead_segments(prefix: str = SEGMENT_PREFIX, shm_dir: str = "/dev/shm") -> list[str]:
    """Remove segments named `{prefix}_{pid}_...` whose owner process is dead; return their names."""
    removed: list[str] = []
    pattern = re.compile(rf"^{re.escape(prefix)}_(\d+)_")
    try:
        entries = sorted(os.listdir(shm_dir))
    except FileNotFoundError:
        return removed
    for name in entries:
        match = pattern.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        path = os.path.join(shm_dir, name)
        try:
            mtime = os.stat(path).st_mtime
        except FileNotFoundError:
            continue
        if pid == os.getpid() or _owner_alive(pid, mtime):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            continue
        except PermissionError:
            continue  # another user's segment; not ours to remove
        removed.append(name)
    return removed


__all__ = [
    "SEGMENT_PREFIX",
    "SharedArray",
    "SharedArrayHandle",
    "SharedMemoryError",
    "segment_name",
    "sweep_dead_segments",
]
