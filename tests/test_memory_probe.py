"""memory.probe: the real smaps_rollup probe on live and dead processes, its cheap mode (the
default: statm estimates between full reads) on real growing, steady and sharing children;
the scripted probe; own_memory() and its fallbacks."""

import mmap
import os
import subprocess
import sys
import time

import numpy as np
import psutil
import pytest

import memory
import memory.probe as probe_module
from memory.probe import (
    DEFAULT_DRIFT_FRACTION,
    DEFAULT_FULL_INTERVAL_S,
    MemorySample,
    ProcessMemory,
    ProcessProbe,
    ScriptedProbe,
    own_memory,
    read_smaps_rollup,
)

MIB = 1 << 20


def test_process_probe_measures_this_process():
    sample = ProcessProbe(full_interval=0).sample([os.getpid()])
    pid = os.getpid()
    assert set(sample.pss_by_pid) == {pid}
    assert 0 < sample.uss_by_pid[pid] <= sample.pss_by_pid[pid] <= sample.rss_by_pid[pid]
    assert sample.pss_total == sample.pss_by_pid[pid]
    assert sample.host_available_bytes > 0


def test_smaps_rollup_agrees_with_psutil():
    pss, uss, rss = read_smaps_rollup(os.getpid())
    info = psutil.Process().memory_full_info()
    # Measured a moment apart by two readers: allow a few MB of drift.
    assert abs(pss - info.pss) < 4 << 20
    assert abs(uss - info.uss) < 4 << 20
    assert abs(rss - info.rss) < 4 << 20


def test_dead_and_unknown_pids_are_skipped():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    sample = ProcessProbe(full_interval=0).sample([os.getpid(), child.pid, 2**22 + 12345])
    assert set(sample.pss_by_pid) == {os.getpid()}


def test_zombie_is_skipped():
    # The child exits but is not reaped until wait(): a zombie, whose rollup reads empty.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        process = psutil.Process(child.pid)
        for _ in range(1000):
            if process.status() == psutil.STATUS_ZOMBIE:
                break
            time.sleep(0.01)
        assert process.status() == psutil.STATUS_ZOMBIE
        assert ProcessProbe().sample([child.pid]).pss_by_pid == {}
    finally:
        child.wait()


def test_scripted_probe_replays_and_repeats_last():
    explicit = MemorySample(t=5.0, pss_by_pid={7: 10, 8: 20}, host_available_bytes=99)
    probe = ScriptedProbe([100, explicit, ValueError("boom"), 300])
    first = probe.sample([42])
    assert first.pss_by_pid == {42: 100} and first.pss_total == 100
    assert probe.sample([42]) is explicit
    with pytest.raises(ValueError, match="boom"):
        probe.sample([42])
    assert probe.sample([]).pss_total == 300
    assert probe.sample([]).pss_total == 300
    assert probe.calls == 5


def test_scripted_probe_needs_items():
    with pytest.raises(ValueError, match="at least one item"):
        ScriptedProbe([])


GROWER = """
import mmap, sys
blocks = []
for line in sys.stdin:
    command, argument = line.split()
    if command == "grow":
        block = bytearray(int(argument) << 20)
        block[::4096] = b"x" * len(block[::4096])  # touch every page: anonymous, private
        blocks.append(block)
    else:  # map PATH: map a shared tmpfs file and read every page
        with open(argument, "rb") as handle:
            blocks.append(mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ))
        sum(blocks[-1][::4096])
    print("ok", flush=True)
"""


class Grower:
    """A real child process that grows by private MB or maps a shared file on request."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, "-c", GROWER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.pid = self.process.pid

    def ask(self, command, argument):
        self.process.stdin.write(f"{command} {argument}\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "ok"

    def grow(self, mb):
        self.ask("grow", mb)

    def stop(self):
        self.process.stdin.close()
        self.process.wait()


@pytest.fixture
def grower():
    child = Grower()
    yield child
    if child.process.poll() is None:
        child.stop()


class StillClock:
    """A clock that moves only when told: estimates stay due however slow the machine."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_cheap_mode_estimates_growth_and_rereads_on_drift(grower):
    grower.grow(100)
    probe = ProcessProbe(full_interval=3600.0, drift_fraction=0.10)
    first = probe.sample([grower.pid])
    assert (probe.full_reads, probe.estimated_reads) == (1, 0)
    grower.grow(5)  # +5 % of PSS: within the drift allowance, estimated from statm
    second = probe.sample([grower.pid])
    assert (probe.full_reads, probe.estimated_reads) == (1, 1)
    exact = read_smaps_rollup(grower.pid)[0]
    assert abs(second.pss_total - exact) < 2 << 20
    assert second.pss_total - first.pss_total > 4 << 20
    grower.grow(40)  # +40 %: too much drift, read in full again
    third = probe.sample([grower.pid])
    assert (probe.full_reads, probe.estimated_reads) == (2, 1)
    assert abs(third.pss_total - read_smaps_rollup(grower.pid)[0]) < 2 << 20
    grower.stop()
    # Gone: skipped, and its cached reading forgotten.
    assert probe.sample([grower.pid]).pss_by_pid == {}
    assert probe.sample([os.getpid()]).pss_by_pid.keys() == {os.getpid()}


def test_default_probe_is_the_cheap_mode():
    assert DEFAULT_FULL_INTERVAL_S > 0
    probe = ProcessProbe()
    assert probe.full_interval == DEFAULT_FULL_INTERVAL_S
    assert probe.drift_fraction == DEFAULT_DRIFT_FRACTION
    assert ProcessProbe(full_interval=0).full_interval == 0


def test_default_probe_reads_growth_beyond_drift_in_full_at_once(grower):
    grower.grow(100)
    clock = StillClock()
    probe = ProcessProbe(clock=clock)  # the default mode; the full interval never runs out
    first = probe.sample([grower.pid])
    assert (probe.full_reads, probe.estimated_reads) == (1, 0)
    grower.grow(int(100 * 2 * DEFAULT_DRIFT_FRACTION))  # twice the drift allowance
    clock.now += 0.5
    grown = probe.sample([grower.pid])
    assert (probe.full_reads, probe.estimated_reads) == (2, 0)  # read, not estimated
    exact = read_smaps_rollup(grower.pid)[0]
    assert abs(grown.pss_total - exact) < 2 * MIB
    assert grown.pss_total - first.pss_total >= 15 * MIB


def test_default_probe_estimate_of_a_steady_child_stays_within_5_percent(grower):
    grower.grow(100)
    clock = StillClock()
    probe = ProcessProbe(clock=clock)
    probe.sample([grower.pid])
    for _ in range(5):
        clock.now += 0.25  # stays inside the full interval: every one an estimate
        estimated = probe.sample([grower.pid]).pss_total
        exact = read_smaps_rollup(grower.pid)[0]
        assert abs(estimated - exact) <= 0.05 * exact
    assert (probe.full_reads, probe.estimated_reads) == (1, 5)


def test_default_probe_rereads_every_sharer_when_one_maps_a_shared_segment(grower):
    grower.grow(50)
    path = f"/dev/shm/islands_test_probe_{os.getpid()}"
    with open(path, "wb+") as handle:
        handle.truncate(64 * MIB)
        segment = mmap.mmap(handle.fileno(), 0)
    try:
        segment[:] = b"\x01" * len(segment)  # this process owns it: its PSS has all 64 MB
        clock = StillClock()
        probe = ProcessProbe(clock=clock)
        pids = [os.getpid(), grower.pid]
        before = probe.sample(pids)
        assert (probe.full_reads, probe.estimated_reads) == (2, 0)
        clock.now += 0.5
        probe.sample(pids)
        assert (probe.full_reads, probe.estimated_reads) == (2, 2)
        # The child maps it: only the child's counters move, but this process's PSS
        # drops by half the segment. Both are read in full.
        grower.ask("map", path)
        clock.now += 0.5
        after = probe.sample(pids)
        assert (probe.full_reads, probe.estimated_reads) == (4, 2)
        dropped = before.pss_by_pid[os.getpid()] - after.pss_by_pid[os.getpid()]
        assert 24 * MIB <= dropped <= 40 * MIB
    finally:
        segment.close()
        os.unlink(path)


def test_default_probe_rereads_all_when_the_pids_change(grower):
    grower.grow(10)  # answered: started up, its memory settled
    clock = StillClock()
    probe = ProcessProbe(clock=clock)
    probe.sample([os.getpid()])
    clock.now += 0.5
    probe.sample([os.getpid(), grower.pid])  # a new process: sharing may have changed
    assert (probe.full_reads, probe.estimated_reads) == (3, 0)
    clock.now += 0.5
    probe.sample([os.getpid(), grower.pid])
    assert (probe.full_reads, probe.estimated_reads) == (3, 2)


def test_cheap_mode_rereads_after_full_interval():
    clock = iter(range(100)).__next__
    probe = ProcessProbe(clock=lambda: float(clock()), full_interval=2.0)
    for _ in range(5):
        probe.sample([os.getpid()])
    # t = 0 full, 1 estimated, 2 full, 3 estimated, 4 full (unless drift forced more).
    assert probe.full_reads >= 3
    assert probe.full_reads + probe.estimated_reads == 5


# --- own_memory(): this process measuring itself -------------------------------------------
def test_own_memory_of_this_process_is_positive_and_consistent():
    mine = own_memory()
    assert isinstance(mine, ProcessMemory)
    assert memory.own_memory is own_memory and memory.ProcessMemory is ProcessMemory
    assert 0 < mine.uss <= mine.pss <= mine.rss
    # Agrees with the probe's reading of this pid (a moment apart: a few MB of drift).
    probed = ProcessProbe(full_interval=0).sample([os.getpid()])
    assert abs(mine.pss - probed.pss_by_pid[os.getpid()]) < 4 * MIB
    assert abs(mine.rss - probed.rss_by_pid[os.getpid()]) < 4 * MIB
    with pytest.raises(AttributeError):
        mine.rss = 0  # frozen


def _grows_with_a_touched_array(measure):
    before = measure()
    block = np.ones(64 * MIB // 8, dtype=np.float64)  # 64 MB, every page written
    try:
        after = measure()
    finally:
        del block
    return before, after


def test_own_memory_grows_with_a_64mb_array():
    before, after = _grows_with_a_touched_array(own_memory)
    assert after.rss - before.rss >= 40 * MIB
    assert after.pss - before.pss >= 40 * MIB
    assert after.uss - before.uss >= 40 * MIB


def test_own_memory_falls_back_to_psutil_without_smaps_rollup(monkeypatch):
    monkeypatch.setattr(probe_module, "read_smaps_rollup", lambda pid: None)
    mine = own_memory()
    info = psutil.Process().memory_full_info()
    assert abs(mine.pss - info.pss) < 4 * MIB
    assert abs(mine.rss - info.rss) < 4 * MIB
    before, after = _grows_with_a_touched_array(own_memory)
    assert after.pss - before.pss >= 40 * MIB


def test_own_memory_falls_back_to_statm_without_smaps_or_psutil(monkeypatch):
    exact = own_memory()

    def unreadable(pid):
        raise PermissionError(pid)

    def denied(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(probe_module, "read_smaps_rollup", unreadable)
    monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
    mine = own_memory()
    assert abs(mine.rss - exact.rss) < 4 * MIB
    assert mine.pss == mine.rss  # statm has no PSS: RSS is the upper bound used
    assert 0 < mine.uss <= mine.rss
    before, after = _grows_with_a_touched_array(own_memory)
    assert after.rss - before.rss >= 40 * MIB
    assert after.uss - before.uss >= 40 * MIB


def test_own_memory_raises_oserror_when_nothing_is_readable(monkeypatch):
    def gone(pid):
        raise ProcessLookupError(pid)

    def denied(self):
        raise psutil.AccessDenied(self.pid)

    monkeypatch.setattr(probe_module, "read_smaps_rollup", lambda pid: None)
    monkeypatch.setattr(psutil.Process, "memory_full_info", denied)
    monkeypatch.setattr(probe_module, "read_statm", gone)
    with pytest.raises(OSError, match="cannot read this process's memory"):
        own_memory()
