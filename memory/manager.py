"""The coordinator's memory front door: budget, ledger, monitor and cleanup in one object.

Covers: `MemoryManager` (owns the Ledger and the MemoryMonitor, keeps the list of processes to
measure, hands out slices, runs `cleanup()` on the coordinator itself, keeps counters) and
`release_memory()` (gc + glibc `malloc_trim(0)`, what an island calls after shrinking so the
freed memory shows up in the next sample instead of sitting in malloc's free lists).

Does not cover: computing the budget (`memory.budget`), the hysteresis (`memory.monitor`),
or deciding actions per level (the coordinator's pure policy reads `level` and
`ledger.snapshot()` and sends commands through the ledger).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import linecache
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from memory.budget import (
    BudgetError,
    default_reserve_bytes,
    format_bytes,
    island_slice_bytes,
    total_memory_bytes,
)
from memory.monitor import MemoryMonitor, PressureLevel, Thresholds
from memory.probe import MemoryProbe, ProcessProbe, read_smaps_rollup
from memory.shared import Ledger

_LOGGER = logging.getLogger("islands.memory")

_libc_malloc_trim: Callable[[int], int] | None = None
_libc_loaded = False


def _malloc_trim() -> bool:
    """glibc `malloc_trim(0)`: hand free heap pages back to the OS. False where unavailable."""
    global _libc_malloc_trim, _libc_loaded
    if not _libc_loaded:
        _libc_loaded = True
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            trim = libc.malloc_trim  # glibc only; musl and macOS have none
            trim.argtypes = [ctypes.c_size_t]
            trim.restype = ctypes.c_int
            _libc_malloc_trim = trim
        except (OSError, AttributeError):
            _libc_malloc_trim = None
    if _libc_malloc_trim is None:
        return False
    _libc_malloc_trim(0)
    return True


def release_memory() -> None:
    """Collect garbage and return freed heap to the OS (call after shrinking a population)."""
    gc.collect()
    _malloc_trim()


def _own_rss_bytes() -> int:
    rollup = read_smaps_rollup(os.getpid())
    if rollup is not None:
        return rollup[2]
    import psutil

    return int(psutil.Process().memory_info().rss)


class MemoryManager:
    """Owns the budget ledger and the pressure monitor of one run (lives in the coordinator)."""

    def __init__(
        self,
        budget_bytes: int,
        *,
        n_islands: int,
        probe: MemoryProbe | None = None,
        interval: float = 0.5,
        thresholds: Thresholds | None = None,
        reserve_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        """Create the ledger (one row per island) and the monitor (not started yet).

        `reserve_bytes` is the host RAM that must stay available (below it: CRITICAL at once);
        None means `default_reserve_bytes(total_memory_bytes())`. `probe` defaults to the
        real `ProcessProbe`; tests pass a `ScriptedProbe` and call `monitor.tick()`.
        """
        if budget_bytes <= 0:
            raise BudgetError(f"invalid memory budget {budget_bytes}: must be positive")
        if n_islands < 1:
            raise BudgetError(f"invalid island count {n_islands}: need at least 1 island")
        self.budget_bytes = int(budget_bytes)
        self.n_islands = n_islands
        if reserve_bytes is None:
            reserve_bytes = default_reserve_bytes(total_memory_bytes())
        self.reserve_bytes = int(reserve_bytes)
        self._island_pids: dict[int, int] = {}
        self._pids_lock = threading.Lock()
        self.cleanups = 0
        self.bytes_freed = 0
        self._ledger: Ledger | None = Ledger.create(n_islands)
        self.monitor = MemoryMonitor(
            probe if probe is not None else ProcessProbe(),
            self.budget_bytes,
            pids=self.pids,
            interval=interval,
            thresholds=thresholds,
            reserve_bytes=self.reserve_bytes,
            clock=clock,
            logger=_LOGGER,
        )

    # --- processes to measure -----------------------------------------------------------
    def register_pid(self, island: int, pid: int) -> None:
        """Measure `pid` as island `island` from the next sample on."""
        self._check_island(island)
        with self._pids_lock:
            self._island_pids[island] = int(pid)

    def unregister_pid(self, island: int) -> None:
        """Stop measuring island `island` (it exited or hibernated)."""
        with self._pids_lock:
            self._island_pids.pop(island, None)

    def island_pids(self) -> dict[int, int]:
        with self._pids_lock:
            return dict(self._island_pids)

    def pids(self) -> list[int]:
        """The coordinator's own pid, then every registered island pid."""
        with self._pids_lock:
            return [os.getpid(), *self._island_pids.values()]

    def island_uss(self) -> dict[int, int]:
        """USS of each registered island in the last sample (what ending it would free).

        Islands missing from the sample (exited, or not sampled yet) are left out.
        """
        sample = self.monitor.last_sample
        if sample is None:
            return {}
        return {
            island: sample.uss_by_pid[pid]
            for island, pid in self.island_pids().items()
            if pid in sample.uss_by_pid
        }

    # --- ledger and slices ----------------------------------------------------------------
    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            raise ValueError("memory manager is stopped: its ledger is gone")
        return self._ledger

    @property
    def level(self) -> PressureLevel:
        return self.monitor.level

    def _check_island(self, island: int) -> None:
        if not 0 <= island < self.n_islands:
            raise IndexError(f"island {island} out of range 0..{self.n_islands - 1}")

    def slice_bytes(self, island: int) -> int:
        return int(self.ledger.row(island)["slice_bytes"])

    def set_slice(self, island: int, slice_bytes: int) -> None:
        if slice_bytes < 0:
            raise BudgetError(
                f"invalid slice {slice_bytes} for island {island}: cannot be negative"
            )
        self.ledger.update(island, slice_bytes=int(slice_bytes))

    def divide_budget(self, *, coordinator_bytes: int, shared_bytes: int) -> int:
        """Give every island an equal slice of what the coordinator and shared data leave."""
        per_island = island_slice_bytes(
            self.budget_bytes,
            self.n_islands,
            coordinator_bytes=coordinator_bytes,
            shared_bytes=shared_bytes,
        )
        for island in range(self.n_islands):
            self.set_slice(island, per_island)
        return per_island

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        self.monitor.start()

    def stop(self) -> None:
        """Stop the monitor and remove the ledger (idempotent)."""
        self.monitor.stop()
        if self._ledger is not None:
            ledger, self._ledger = self._ledger, None
            ledger.close()
            ledger.unlink()

    def __enter__(self) -> MemoryManager:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- cleanup of the coordinator itself ---------------------------------------------------
    def cleanup(self, level: str = "normal") -> int:
        """Free what this process can: "normal" = gc + malloc_trim; "aggressive" also drops
        interpreter caches (regex, linecache, type cache) and collects twice.

        Returns the bytes of RSS freed (0 when nothing shrank) and logs before/after.
        """
        if level not in ("normal", "aggressive"):
            raise ValueError(f"invalid cleanup level {level!r}: use 'normal' or 'aggressive'")
        before = _own_rss_bytes()
        gc.collect()
        if level == "aggressive":
            re.purge()
            linecache.clearcache()
            sys._clear_type_cache()
            gc.collect()  # objects freed by finalizers in the first pass
        _malloc_trim()
        after = _own_rss_bytes()
        freed = max(0, before - after)
        self.cleanups += 1
        self.bytes_freed += freed
        _LOGGER.info(
            "[MEMORY] Cleanup (%s): %s -> %s (freed %s)",
            level,
            format_bytes(before),
            format_bytes(after),
            format_bytes(freed),
        )
        return freed

    def stats(self) -> dict[str, Any]:
        return {
            "cleanups": self.cleanups,
            "bytes_freed": self.bytes_freed,
            "peak_bytes": self.monitor.peak_bytes,
            "samples": self.monitor.samples_taken,
            "probe_errors": self.monitor.probe_errors,
            "level": str(self.monitor.level),
        }


__all__ = ["MemoryManager", "release_memory"]
