"""The coordinator's memory front door: budget, slices, pressure level and cleanup in one object.

Covers: `MemoryManager` (holds the budget and reserve, one slice per island in a plain dict,
a `MemoryMonitor` fed through `observe(sample)`, `cleanup()` of the process that owns it, and
counters for `stats()`) and `release_memory()` (gc + glibc `malloc_trim(0)`, what a process
calls after shrinking so the freed memory shows up in the next measurement instead of sitting
in malloc's free lists).

Does not cover: computing the budget (`memory.budget`), the hysteresis (`memory.monitor`),
measuring (`memory.probe`; a process measures itself with `own_memory()`), which processes
exist and how their measurements arrive (the coordinator builds a `MemorySample` from what
its workers report and calls `observe()`), or deciding actions per level (the coordinator's
policy reads `level` and `slices()`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import linecache
import logging
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
from memory.probe import MemoryProbe, MemorySample, own_memory

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


class MemoryManager:
    """The budget, island slices and pressure level of one run (lives in the coordinator)."""

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
        """Set every island's slice to 0 and create the monitor, fed by `observe()`.

        `reserve_bytes` is the host RAM that must stay available (below it: CRITICAL at once);
        None means `default_reserve_bytes(total_memory_bytes())`. `probe`, if given, is kept
        as `monitor.probe` for a caller that samples with it; the manager itself never
        samples (its monitor has no pids), so `start()` runs no thread.
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
        self._slices: dict[int, int] = {island: 0 for island in range(n_islands)}
        self._slices_lock = threading.Lock()
        self.cleanups = 0
        self.bytes_freed = 0
        self.monitor = MemoryMonitor(
            probe,
            self.budget_bytes,
            pids=None,
            interval=interval,
            thresholds=thresholds,
            reserve_bytes=self.reserve_bytes,
            clock=clock,
            logger=_LOGGER,
        )

    # --- pressure -----------------------------------------------------------------------------
    @property
    def level(self) -> PressureLevel:
        return self.monitor.level

    def observe(self, sample: MemorySample) -> PressureLevel:
        """Update the pressure level from a sample taken elsewhere (see `MemoryMonitor.observe`)."""
        return self.monitor.observe(sample)

    # --- slices -------------------------------------------------------------------------------
    def _check_island(self, island: int) -> None:
        if not 0 <= island < self.n_islands:
            raise IndexError(f"island {island} out of range 0..{self.n_islands - 1}")

    def slice_bytes(self, island: int) -> int:
        """Island `island`'s slice of the budget in bytes (0 until one is set)."""
        self._check_island(island)
        with self._slices_lock:
            return self._slices[island]

    def set_slice(self, island: int, slice_bytes: int) -> None:
        self._check_island(island)
        if slice_bytes < 0:
            raise BudgetError(
                f"invalid slice {slice_bytes} for island {island}: cannot be negative"
            )
        with self._slices_lock:
            self._slices[island] = int(slice_bytes)

    def slices(self) -> dict[int, int]:
        """A copy of every island's slice: {island: bytes}."""
        with self._slices_lock:
            return dict(self._slices)

    def divide_budget(self, *, coordinator_bytes: int, shared_bytes: int) -> int:
        """Give every island an equal slice of what the coordinator and shared data leave."""
        per_island = island_slice_bytes(
            self.budget_bytes,
            self.n_islands,
            coordinator_bytes=coordinator_bytes,
            shared_bytes=shared_bytes,
        )
        with self._slices_lock:
            for island in range(self.n_islands):
                self._slices[island] = per_island
        return per_island

    # --- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Start the monitor's sampling thread if it can sample; otherwise do nothing."""
        if self.monitor.can_sample:
            self.monitor.start()

    def stop(self) -> None:
        """Stop the monitor's thread if one runs (idempotent)."""
        self.monitor.stop()

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
        before = own_memory().rss
        gc.collect()
        if level == "aggressive":
            re.purge()
            linecache.clearcache()
            sys._clear_type_cache()
            gc.collect()  # objects freed by finalizers in the first pass
        _malloc_trim()
        after = own_memory().rss
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
