"""memory.manager: budget slices, pressure fed by observe(), cleanup counters, exports."""

import logging
import os
import subprocess
import sys

import pytest

import memory
from memory import (
    BudgetError,
    MemoryManager,
    MemorySample,
    PressureLevel,
    ProcessProbe,
    ScriptedProbe,
    release_memory,
)
from memory.manager import _malloc_trim

MIB = 1 << 20


@pytest.fixture
def manager():
    managers = []

    def make(**kwargs):
        kwargs.setdefault("n_islands", 3)
        kwargs.setdefault("reserve_bytes", 0)
        made = MemoryManager(kwargs.pop("budget_bytes", 1000 * MIB), **kwargs)
        managers.append(made)
        return made

    yield make
    for made in managers:
        made.stop()


def test_package_exports():
    for name in [
        "MemoryManager",
        "MemoryMonitor",
        "BoundedCache",
        "PressureLevel",
        "parse_size",
        "Thresholds",
        "compute_budget",
        "island_slice_bytes",
        "BudgetError",
        "SharedArray",
        "ProcessProbe",
        "ScriptedProbe",
        "MemorySample",
        "ProcessMemory",
        "own_memory",
        "format_bytes",
        "release_memory",
    ]:
        assert hasattr(memory, name), name
        assert name in memory.__all__, name
    # Island states, commands and the shared ledger left this package (islands.protocol).
    for name in ["Ledger", "IslandState", "Command"]:
        assert not hasattr(memory, name), name
        assert name not in memory.__all__, name
    assert set(memory.__all__) <= set(dir(memory))


def test_memory_imports_neither_islands_nor_coordinator():
    code = (
        "import sys, memory, memory.manager;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('islands', 'coordinator')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_observe_feeds_the_level_and_stats_from_a_real_sample(manager):
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        made = manager()
        sample = ProcessProbe().sample([os.getpid(), child.pid])
        assert made.observe(sample) is PressureLevel.NORMAL
        assert made.monitor.last_sample is sample
        assert set(sample.pss_by_pid) == {os.getpid(), child.pid}
        assert made.stats()["peak_bytes"] == sample.pss_total > 0
        assert made.stats()["samples"] == 1
    finally:
        child.communicate(b"")


def _sample(pss_by_key, host_available=1 << 50):
    return MemorySample(t=0.0, pss_by_pid=dict(pss_by_key), host_available_bytes=host_available)


def test_level_follows_observed_pressure(manager):
    made = manager()
    changes = []
    made.monitor.subscribe(lambda old, new, sample: changes.append((old, new)))
    assert made.level is PressureLevel.NORMAL
    # Keys are worker ids (coordinator under -1), not pids: the manager does not care.
    heavy = _sample({-1: 100 * MIB, 0: 400 * MIB, 1: 400 * MIB})
    assert made.observe(heavy) is PressureLevel.NORMAL
    assert made.observe(heavy) is PressureLevel.CRITICAL
    assert made.level is PressureLevel.CRITICAL
    assert changes == [(PressureLevel.NORMAL, PressureLevel.CRITICAL)]
    calm = _sample({-1: 100 * MIB})
    assert [made.observe(calm) for _ in range(3)] == [
        PressureLevel.CRITICAL,
        PressureLevel.CRITICAL,
        PressureLevel.NORMAL,
    ]
    stats = made.stats()
    assert stats["samples"] == 5
    assert stats["peak_bytes"] == 900 * MIB
    assert stats["level"] == "normal"


def test_host_reserve_applies_to_observed_samples(manager):
    made = manager(reserve_bytes=1000)
    assert made.observe(_sample({0: 1}, host_available=10)) is PressureLevel.CRITICAL


def test_slices_are_set_read_and_divided(manager):
    made = manager()
    assert made.slices() == {0: 0, 1: 0, 2: 0}
    per_island = made.divide_budget(coordinator_bytes=100 * MIB, shared_bytes=300 * MIB)
    assert per_island == 200 * MIB
    assert [made.slice_bytes(i) for i in range(3)] == [200 * MIB] * 3
    made.set_slice(1, 50 * MIB)
    assert made.slice_bytes(1) == 50 * MIB
    slices = made.slices()
    assert slices == {0: 200 * MIB, 1: 50 * MIB, 2: 200 * MIB}
    slices[0] = 1  # a copy
    assert made.slice_bytes(0) == 200 * MIB
    with pytest.raises(BudgetError, match="invalid slice -1 for island 2: cannot be negative"):
        made.set_slice(2, -1)
    with pytest.raises(IndexError, match="island 3 out of range 0..2"):
        made.set_slice(3, 1)
    with pytest.raises(IndexError, match="island -1 out of range 0..2"):
        made.slice_bytes(-1)
    with pytest.raises(BudgetError, match="leaves nothing for 3 islands"):
        made.divide_budget(coordinator_bytes=900 * MIB, shared_bytes=200 * MIB)
    assert made.slices() == {0: 200 * MIB, 1: 50 * MIB, 2: 200 * MIB}  # unchanged by a failure


def test_manager_rejects_bad_budget_and_island_count():
    with pytest.raises(BudgetError, match="invalid memory budget 0: must be positive"):
        MemoryManager(0, n_islands=1, reserve_bytes=0)
    with pytest.raises(BudgetError, match="invalid island count 0: need at least 1 island"):
        MemoryManager(MIB, n_islands=0, reserve_bytes=0)


def test_start_and_stop_are_safe_and_idempotent(manager):
    made = manager(probe=ScriptedProbe([900 * MIB]))
    assert made.monitor.probe is not None and not made.monitor.can_sample
    made.start()  # fed by observe(): nothing to sample with, so no thread
    assert not made.monitor.running
    made.stop()
    made.stop()
    with manager() as entered:
        assert entered.observe(_sample({0: MIB})) is PressureLevel.NORMAL
    assert not entered.monitor.running
    # Still usable after stop: nothing was torn down.
    assert made.observe(_sample({0: 900 * MIB})) is PressureLevel.NORMAL
    assert made.divide_budget(coordinator_bytes=0, shared_bytes=0) == 1000 * MIB // 3


def test_cleanup_counts_and_logs(manager, caplog):
    made = manager()
    garbage = [bytearray(1 << 16) for _ in range(800)]  # ~50 MB of small heap blocks
    del garbage
    with caplog.at_level(logging.INFO, logger="islands.memory"):
        first = made.cleanup("aggressive")
        second = made.cleanup()
    assert first >= 0 and second >= 0
    stats = made.stats()
    assert stats["cleanups"] == 2
    assert stats["bytes_freed"] == first + second
    assert "[MEMORY] Cleanup (aggressive): " in caplog.text
    assert "[MEMORY] Cleanup (normal): " in caplog.text
    with pytest.raises(ValueError, match="invalid cleanup level 'harsh'"):
        made.cleanup("harsh")


@pytest.mark.slow
def test_release_memory_returns_freed_heap_to_the_os():
    # Real heap: a child fills ~200 MB of small objects, frees them, and reports RSS drops.
    code = """
import gc
from memory.probe import read_smaps_rollup
from memory.manager import release_memory
import os
gc.disable()
blocks = [bytearray(1000) for _ in range(200_000)]
keep = blocks[::1000]  # a few survivors scattered over the heap
filled = read_smaps_rollup(os.getpid())[2]
del blocks
release_memory()
after = read_smaps_rollup(os.getpid())[2]
print(filled - after)
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    freed = int(result.stdout)
    assert freed > 100 * MIB


def test_malloc_trim_available_on_glibc():
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc-only")
    assert _malloc_trim() is True
    release_memory()
