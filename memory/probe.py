"""Measuring memory: one sample of PSS/USS/RSS per process plus the host's available RAM.

Covers: `MemorySample` (what one measurement holds), `MemoryProbe` (the one mockable
reading function the monitor calls), `ProcessProbe` (the real one, reading
`/proc/PID/smaps_rollup`, falling back to psutil), `ScriptedProbe` (replays scripted
samples, numbers or errors so tests can drive the monitor through pressure spikes), and
`own_memory()` / `ProcessMemory` (this process's own PSS/USS/RSS, for a process that reports
its memory itself instead of being probed from outside).

Cost: smaps_rollup walks each process's page tables, so it costs more the more a process
has resident; by default `ProcessProbe` reads each process in full at most every
DEFAULT_FULL_INTERVAL_S and estimates in between from O(1) counters (see the class;
`full_interval=0` for full reads only). `benchmarks/probe_cost.py` measures the cost,
`benchmarks/probe_accuracy.py` how far the estimates stray from full reads.

Does not cover: deciding what a sample means (`memory.monitor`), which processes to measure
or how their numbers travel between processes (the caller passes pids, or builds a
`MemorySample` from numbers it gathered; the coordinator decides both).

Why PSS: shared-memory pages (the problem's instance data) are mapped by every island; PSS
divides each shared page among the processes mapping it, so the sum of PSS counts them
once, while the sum of RSS counts them once per process. USS (private pages) is what
would be freed by ending one process, so the policy uses it to pick an island.
"""

from __future__ import annotations

import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psutil


@dataclass
class MemorySample:
    """One measurement: per-process PSS/USS/RSS in bytes and the host's available RAM.

    The dict keys identify processes: pids for `ProcessProbe`, or any int key a caller
    measures by (e.g. a worker id, with the coordinator under its own key). Only the totals
    and the per-key values are read here, so keys just have to be distinct and consistent
    across the three dicts.
    """

    t: float
    pss_by_pid: dict[int, int] = field(default_factory=dict)
    uss_by_pid: dict[int, int] = field(default_factory=dict)
    rss_by_pid: dict[int, int] = field(default_factory=dict)
    host_available_bytes: int = 0

    @property
    def pss_total(self) -> int:
        return sum(self.pss_by_pid.values())

    @property
    def rss_total(self) -> int:
        return sum(self.rss_by_pid.values())

    @property
    def uss_total(self) -> int:
        return sum(self.uss_by_pid.values())


class MemoryProbe(ABC):
    """Takes one memory sample of the given processes."""

    @abstractmethod
    def sample(self, pids: Iterable[int]) -> MemorySample:
        """Measure `pids`; processes that no longer exist are left out, not raised."""


# smaps_rollup keys (values in kB) -> what they add to: PSS, RSS or USS.
_ROLLUP_FIELDS = {
    b"Rss": "rss",
    b"Pss": "pss",
    b"Private_Clean": "uss",
    b"Private_Dirty": "uss",
    b"Private_Hugetlb": "uss",
}


def read_smaps_rollup(pid: int) -> tuple[int, int, int] | None:
    """(pss, uss, rss) in bytes from /proc/PID/smaps_rollup; None when the file is missing.

    Raises ProcessLookupError when the process is gone (the file vanishes or reads empty).
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        if not psutil.pid_exists(pid):
            raise ProcessLookupError(pid) from None
        return None  # kernel without smaps_rollup (< 4.14)
    except ProcessLookupError:
        raise
    if not data:
        # A zombie or exiting process has no mm: its rollup reads empty.
        raise ProcessLookupError(pid)
    totals = {"pss": 0, "uss": 0, "rss": 0}
    for line in data.splitlines()[1:]:
        key, _, rest = line.partition(b":")
        kind = _ROLLUP_FIELDS.get(key)
        if kind is not None:
            totals[kind] += int(rest.split()[0]) * 1024
    return totals["pss"], totals["uss"], totals["rss"]


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def read_statm(pid: int) -> tuple[int, int]:
    """(rss, anonymous rss) in bytes from /proc/PID/statm: kernel counters, O(1) to read.

    Raises ProcessLookupError when the process is gone or a zombie.
    """
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            fields = handle.read().split()
    except FileNotFoundError:
        raise ProcessLookupError(pid) from None
    resident, shared = int(fields[1]), int(fields[2])
    if resident == 0:
        raise ProcessLookupError(pid)  # zombie: no memory map left
    return resident * _PAGE_SIZE, (resident - shared) * _PAGE_SIZE


# ProcessProbe's defaults: a full read of a process at most every 2 s, sooner when its
# counters moved by more than 10 % of its PSS (see the class docstring for the figures).
DEFAULT_FULL_INTERVAL_S = 2.0
DEFAULT_DRIFT_FRACTION = 0.10


@dataclass
class _FullReading:
    t: float
    pss: int
    uss: int
    anon: int
    rss: int


class ProcessProbe(MemoryProbe):
    """The real probe: smaps_rollup per pid, psutil `memory_full_info()` as fallback.

    smaps_rollup walks the page tables, so its cost grows with each process's resident
    size (about 1 ms per 256 MB of 4 KiB pages on the 2-core test VM, less for numpy's
    large arrays on transparent huge pages). With `full_interval` > 0 (the default,
    DEFAULT_FULL_INTERVAL_S) a process is read in full at most that often; in between,
    its PSS and USS are the last full values plus the change in anonymous RSS from
    /proc/PID/statm (O(1)), which is what island growth and shrinking change, and is
    exact for private pages. Read in full at once instead: a process whose anonymous RSS
    moved by more than `drift_fraction` of its last PSS; every process when one's shared
    (file and shmem) RSS moved by more than that, or when the set of pids asked about
    changed (a page mapped by one more or one fewer process changes every sharer's PSS).
    `full_interval=0` reads every process in full on every sample.

    Why the default: benchmarks/probe_accuracy.py (8 numpy children ramping 100-300 MB
    and back, half of them mapping a 64 MB shared segment, sampled every 0.5 s; medians
    of 3 runs) measured the peak total PSS at 0.995-1.000 of the full reads' peak and at
    most 1.7 % off in any sample, for full_interval 1, 2 and 5 s alike; 2 s keeps a change
    the counters do not show (a page's sharers changing) at most four monitor samples old.
    benchmarks/probe_cost.py: 8 idle numpy islands cost 0.5-0.7 ms per sample on average
    this way against 1.4-2.3 ms for full reads only (4-200 MB each, on a busy 2-core VM).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        full_interval: float = DEFAULT_FULL_INTERVAL_S,
        drift_fraction: float = DEFAULT_DRIFT_FRACTION,
    ):
        self._clock = clock
        self.full_interval = float(full_interval)
        self.drift_fraction = float(drift_fraction)
        self._full: dict[int, _FullReading] = {}
        self._asked: set[int] = set()
        self.full_reads = 0
        self.estimated_reads = 0

    def sample(self, pids: Iterable[int]) -> MemorySample:
        now = self._clock()
        pids = [int(pid) for pid in pids]
        estimates = self._estimates(pids, now) if self.full_interval > 0 else {}
        sample = MemorySample(t=now)
        for pid in pids:
            measured = estimates.get(pid) or self._measure_full(pid, now)
            if measured is None:
                continue
            pss, uss, rss = measured
            sample.pss_by_pid[pid] = pss
            sample.uss_by_pid[pid] = uss
            sample.rss_by_pid[pid] = rss
        if self._full:
            # Forget processes not asked about: a pid coming back may be a new process.
            self._full = {pid: r for pid, r in self._full.items() if pid in sample.pss_by_pid}
        sample.host_available_bytes = int(psutil.virtual_memory().available)
        return sample

    def _estimates(self, pids: list[int], now: float) -> dict[int, tuple[int, int, int]]:
        """(pss, uss, rss) from statm for the pids whose last full read is still good.

        Empty (all read in full) when the processes asked about changed or one's shared
        RSS moved by more than the drift allowance: a page shared by one more or one
        fewer process changes every sharer's PSS, while only one process's counters move.
        """
        asked = set(pids)
        if asked != self._asked:
            self._asked = asked
            return {}
        estimates = {}
        for pid in pids:
            last = self._full.get(pid)
            if last is None or now - last.t >= self.full_interval:
                continue
            try:
                rss, anon = read_statm(pid)
            except (ProcessLookupError, OSError, IndexError, ValueError):
                continue  # let the full read decide whether the process is gone
            allowance = self.drift_fraction * max(last.pss, 1)
            if abs((rss - anon) - (last.rss - last.anon)) > allowance:
                return {}
            growth = anon - last.anon
            if abs(growth) <= allowance:
                estimates[pid] = (max(0, last.pss + growth), max(0, last.uss + growth), rss)
        self.estimated_reads += len(estimates)
        return estimates

    def _measure_full(self, pid: int, now: float) -> tuple[int, int, int] | None:
        measured = self._read_full(pid)
        if measured is None:
            self._full.pop(pid, None)
            return None
        self.full_reads += 1
        if self.full_interval > 0:
            try:
                rss, anon = read_statm(pid)
            except (ProcessLookupError, OSError, IndexError, ValueError):
                return measured
            self._full[pid] = _FullReading(
                t=now, pss=measured[0], uss=measured[1], anon=anon, rss=rss
            )
        return measured

    @staticmethod
    def _read_full(pid: int) -> tuple[int, int, int] | None:
        try:
            rollup = read_smaps_rollup(pid)
        except (ProcessLookupError, PermissionError):
            return None
        except OSError:
            rollup = None
        if rollup is not None:
            return rollup
        try:
            info = psutil.Process(pid).memory_full_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            return None
        return int(getattr(info, "pss", info.uss)), int(info.uss), int(info.rss)


@dataclass(frozen=True)
class ProcessMemory:
    """One process's memory in bytes: PSS (shared pages divided), USS (private), RSS."""

    pss: int
    uss: int
    rss: int


def own_memory() -> ProcessMemory:
    """This process's PSS/USS/RSS, read as cheaply as the platform allows.

    Tries `/proc/self/smaps_rollup` (exact; cost grows with resident size, about 1 ms per
    256 MB), then psutil `memory_full_info()`, then `/proc/self/statm` (O(1) counters: RSS
    exact, PSS taken as RSS, an upper bound, and USS as anonymous RSS). Raises OSError when
    none of them can be read.
    """
    pid = os.getpid()
    try:
        rollup = read_smaps_rollup(pid)
    except OSError:
        rollup = None
    if rollup is not None:
        return ProcessMemory(pss=rollup[0], uss=rollup[1], rss=rollup[2])
    try:
        info = psutil.Process(pid).memory_full_info()
    except (psutil.Error, OSError):
        info = None
    if info is not None:
        return ProcessMemory(
            pss=int(getattr(info, "pss", info.uss)), uss=int(info.uss), rss=int(info.rss)
        )
    try:
        rss, anon = read_statm(pid)
    except (ProcessLookupError, IndexError, ValueError) as error:
        raise OSError(f"cannot read this process's memory (pid {pid}): {error!r}") from None
    return ProcessMemory(pss=rss, uss=anon, rss=rss)


ScriptItem = int | float | MemorySample | BaseException


class ScriptedProbe(MemoryProbe):
    """Replays scripted items, one per `sample()` call; after the last, repeats the last.

    An item is a number (the total PSS in bytes, put on the first pid given, or pid 0),
    a `MemorySample` (returned as is), or an exception instance (raised by `sample`).
    """

    def __init__(
        self,
        items: Sequence[ScriptItem],
        *,
        host_available_bytes: int = 1 << 50,
        clock: Callable[[], float] | None = None,
    ):
        if not items:
            raise ValueError("ScriptedProbe needs at least one item")
        self._items = list(items)
        self._host_available_bytes = host_available_bytes
        self._clock = clock
        self.calls = 0

    def sample(self, pids: Iterable[int]) -> MemorySample:
        item = self._items[min(self.calls, len(self._items) - 1)]
        t = self._clock() if self._clock is not None else float(self.calls)
        self.calls += 1
        if isinstance(item, BaseException):
            raise item
        if isinstance(item, MemorySample):
            return item
        pid = next(iter(pids), 0)
        size = int(item)
        return MemorySample(
            t=t,
            pss_by_pid={pid: size},
            uss_by_pid={pid: size},
            rss_by_pid={pid: size},
            host_available_bytes=self._host_available_bytes,
        )


__all__ = [
    "DEFAULT_DRIFT_FRACTION",
    "DEFAULT_FULL_INTERVAL_S",
    "MemoryProbe",
    "MemorySample",
    "ProcessMemory",
    "ProcessProbe",
    "ScriptedProbe",
    "own_memory",
    "read_smaps_rollup",
    "read_statm",
]
