"""Memory side of `islands`: budgets, measurement, pressure levels, bounded caches, shared memory.

This package knows nothing about evolution and imports neither `islands` nor `coordinator`
(imports point `coordinator -> islands -> memory`).

- `memory.budget`: size parsing (`parse_size`, binary units), physical RAM and cgroup
  v1/v2 limits, the global budget (`compute_budget`), island slices, `format_bytes`,
  `NamedIntEnum`.
- `memory.probe`: `MemorySample`, `ProcessProbe` (PSS/USS/RSS from /proc/PID/smaps_rollup),
  `ScriptedProbe` (scripted samples for tests) and `own_memory()` -> `ProcessMemory` (this
  process measuring itself).
- `memory.monitor`: `PressureLevel`, `Thresholds`, `MemoryMonitor` (hysteresis fed by
  `observe(sample)` or by its own probe on `tick()`/a background thread, subscribers).
- `memory.cache`: `BoundedCache`, an LRU bounded by entries and bytes (the fitness cache).
- `memory.shared`: `SharedArray` (POSIX shared memory numpy arrays) and
  `sweep_dead_segments`.
- `memory.manager`: `MemoryManager` (budget, island slices, pressure level via `observe`,
  cleanup; in the coordinator) and `release_memory()` (what a process calls after shrinking).

Does not cover: what to do at each pressure level (the coordinator's policy), island states,
commands and the messages carrying measurements between processes (`islands.protocol`).
"""

from memory.budget import (
    BudgetError,
    cgroup_limit_bytes,
    compute_budget,
    default_reserve_bytes,
    format_bytes,
    island_slice_bytes,
    parse_size,
    physical_memory_bytes,
    total_memory_bytes,
)
from memory.cache import BoundedCache, CacheStats
from memory.manager import MemoryManager, release_memory
from memory.monitor import MemoryMonitor, PressureLevel, Thresholds
from memory.probe import (
    MemoryProbe,
    MemorySample,
    ProcessMemory,
    ProcessProbe,
    ScriptedProbe,
    own_memory,
)
from memory.shared import (
    SharedArray,
    SharedArrayHandle,
    SharedMemoryError,
    sweep_dead_segments,
)

__all__ = [
    "BoundedCache",
    "BudgetError",
    "CacheStats",
    "MemoryManager",
    "MemoryMonitor",
    "MemoryProbe",
    "MemorySample",
    "PressureLevel",
    "ProcessMemory",
    "ProcessProbe",
    "ScriptedProbe",
    "SharedArray",
    "SharedArrayHandle",
    "SharedMemoryError",
    "Thresholds",
    "cgroup_limit_bytes",
    "compute_budget",
    "default_reserve_bytes",
    "format_bytes",
    "island_slice_bytes",
    "own_memory",
    "parse_size",
    "physical_memory_bytes",
    "release_memory",
    "sweep_dead_segments",
    "total_memory_bytes",
]
