"""memory.manager: ledger + monitor wiring, measured pids, slices, cleanup counters."""

import logging
import os
import subprocess
import sys

import pytest

import memory
from memory import (
    BudgetError,
    Command,
    MemoryManager,
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
        "Ledger",
        "IslandState",
        "Command",
        "ProcessProbe",
        "ScriptedProbe",
        "MemorySample",
        "format_bytes",
        "release_memory",
    ]:
        assert hasattr(memory, name), name


def test_memory_imports_neither_islands_nor_coordinator():
    code = (
        "import sys, memory, memory.manager;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('islands', 'coordinator')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_pids_are_own_plus_registered(manager):
    made = manager()
    assert made.pids() == [os.getpid()]
    made.register_pid(0, 111)
    made.register_pid(2, 333)
    assert made.pids() == [os.getpid(), 111, 333]
    made.unregister_pid(0)
    assert made.pids() == [os.getpid(), 333]
    with pytest.raises(IndexError):
        made.register_pid(3, 1)


def test_monitor_samples_the_managed_pids(manager):
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        made = manager(probe=ProcessProbe())
        made.register_pid(1, child.pid)
        made.monitor.tick()
        sample = made.monitor.last_sample
        assert set(sample.pss_by_pid) == {os.getpid(), child.pid}
        assert made.island_uss() == {1: sample.uss_by_pid[child.pid]}
        assert made.stats()["peak_bytes"] == sample.pss_total > 0
    finally:
        child.communicate(b"")


def test_level_follows_scripted_pressure(manager):
    made = manager(probe=ScriptedProbe([900 * MIB]))
    assert made.level is PressureLevel.NORMAL
    made.monitor.tick()
    made.monitor.tick()
    assert made.level is PressureLevel.CRITICAL
    assert made.stats()["samples"] == 2


def test_slices_live_in_the_ledger(manager):
    made = manager()
    per_island = made.divide_budget(coordinator_bytes=100 * MIB, shared_bytes=300 * MIB)
    assert per_island == 200 * MIB
    assert [made.slice_bytes(i) for i in range(3)] == [200 * MIB] * 3
    made.set_slice(1, 50 * MIB)
    assert made.ledger.row(1)["slice_bytes"] == 50 * MIB
    seq = made.ledger.send_command(1, Command.SHRINK, 0.5)
    assert made.ledger.pending_command(1) == (Command.SHRINK, 0.5, seq)
    with pytest.raises(BudgetError, match="leaves nothing for 3 islands"):
        made.divide_budget(coordinator_bytes=900 * MIB, shared_bytes=200 * MIB)


def test_stop_unlinks_the_ledger_and_is_idempotent(manager):
    made = manager()
    name = made.ledger.handle.name
    assert os.path.exists(f"/dev/shm/{name}")
    made.start()
    assert made.monitor.running
    made.stop()
    made.stop()
    assert not made.monitor.running
    assert not os.path.exists(f"/dev/shm/{name}")
    with pytest.raises(ValueError, match="stopped"):
        _ = made.ledger


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
