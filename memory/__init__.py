"""Memory side of `islands`: budgets, measurement, pressure levels, bounded caches, shared memory.

This package knows nothing about evolution and imports neither `islands` nor `coordinator`
(imports point `coordinator -> islands -> memory`).

- `memory.budget`: size parsing (`parse_size`, binary units), physical RAM and cgroup
  v1/v2 limits, the global budget (`compute_budget`), island slices, `format_bytes`.
- `memory.probe`: `MemorySample`, `ProcessProbe` (PSS/USS/RSS from /proc/PID/smaps_rollup)
  and `ScriptedProbe` (scripted samples for tests).
- `memory.monitor`: `PressureLevel`, `Thresholds`, `MemoryMonitor` (hysteresis, background
  thread, subscribers).
- `memory.cache`: `BoundedCache`, an LRU bounded by entries and bytes (the fitness cache).
- `memory.shared`: `SharedArray` (POSIX shared memory numpy arrays), `sweep_dead_segments`,
  and the budget `Ledger` with `IslandState` and `Command`.
- `memory.manager`: `MemoryManager` (ledger + monitor + cleanup, in the coordinator) and
  `release_memory()` (what islands call after shrinking).

What to do at each pressure level is the coordinator's policy, not this package's.
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
from memory.probe import MemoryProbe, MemorySample, ProcessProbe, ScriptedProbe
from memory.shared import (
    Command,
    IslandState,
    Ledger,
    SharedArray,
    SharedArrayHandle,
    SharedMemoryError,
    sweep_dead_segments,
)

__all__ = [
    "BoundedCache",
    "BudgetError",
    "CacheStats",
    "Command",
    "IslandState",
    "Ledger",
    "MemoryManager",
    "MemoryMonitor",
    "MemoryProbe",
    "MemorySample",
    "PressureLevel",
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
    "parse_size",
    "physical_memory_bytes",
    "release_memory",
    "sweep_dead_segments",
    "total_memory_bytes",
]
