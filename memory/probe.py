"""Measuring memory: one sample of PSS/USS/RSS per process plus the host's available RAM.

Covers: `MemorySample` (what one measurement holds), `MemoryProbe` (the one mockable
reading function the monitor calls), `ProcessProbe` (the real one, reading
`/proc/PID/smaps_rollup`, falling back to psutil) and `ScriptedProbe` (replays scripted
samples, numbers or errors so tests can drive the monitor through pressure spikes).

Does not cover: deciding what a sample means (`memory.monitor`) or which processes to
measure (the caller passes pids; `memory.manager` keeps that list).

Why PSS: shared-memory pages (the problem's instance data) are mapped by every island; PSS
divides each shared page among the processes mapping it, so the sum of PSS counts them
once, while the sum of RSS counts them once per process. USS (private pages) is what
would be freed by ending one process, so the policy uses it to pick an island.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import psutil


@dataclass
class MemorySample:
    """One measurement: per-process PSS/USS/RSS in bytes and the host's available RAM."""

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


class ProcessProbe(MemoryProbe):
    """The real probe: smaps_rollup per pid (fast), psutil `memory_full_info()` as fallback."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock

    def sample(self, pids: Iterable[int]) -> MemorySample:
        sample = MemorySample(t=self._clock())
        for pid in pids:
            measured = self._measure(int(pid))
            if measured is None:
                continue
            pss, uss, rss = measured
            sample.pss_by_pid[pid] = pss
            sample.uss_by_pid[pid] = uss
            sample.rss_by_pid[pid] = rss
        sample.host_available_bytes = int(psutil.virtual_memory().available)
        return sample

    @staticmethod
    def _measure(pid: int) -> tuple[int, int, int] | None:
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


__all__ = ["MemoryProbe", "MemorySample", "ProcessProbe", "ScriptedProbe", "read_smaps_rollup"]
