"""memory.probe: the real smaps_rollup probe on live and dead processes; the scripted probe;
own_memory() and its fallbacks."""

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
    MemorySample,
    ProcessMemory,
    ProcessProbe,
    ScriptedProbe,
    own_memory,
    read_smaps_rollup,
)

MIB = 1 << 20


def test_process_probe_measures_this_process():
    sample = ProcessProbe().sample([os.getpid()])
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
    sample = ProcessProbe().sample([os.getpid(), child.pid, 2**22 + 12345])
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
import sys
blocks = []
for line in sys.stdin:
    mb = int(line)
    block = bytearray(mb << 20)
    block[::4096] = b"x" * len(block[::4096])  # touch every page: anonymous, private
    blocks.append(block)
    print("ok", flush=True)
"""


def test_cheap_mode_estimates_growth_and_rereads_on_drift():
    child = subprocess.Popen(
        [sys.executable, "-c", GROWER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )

    def grow(mb):
        child.stdin.write(f"{mb}\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "ok"

    try:
        grow(100)
        probe = ProcessProbe(full_interval=3600.0, drift_fraction=0.10)
        first = probe.sample([child.pid])
        assert (probe.full_reads, probe.estimated_reads) == (1, 0)
        grow(5)  # +5 % of PSS: within the drift allowance, estimated from statm
        second = probe.sample([child.pid])
        assert (probe.full_reads, probe.estimated_reads) == (1, 1)
        exact = read_smaps_rollup(child.pid)[0]
        assert abs(second.pss_total - exact) < 2 << 20
        assert second.pss_total - first.pss_total > 4 << 20
        grow(40)  # +40 %: too much drift, read in full again
        third = probe.sample([child.pid])
        assert (probe.full_reads, probe.estimated_reads) == (2, 1)
        assert abs(third.pss_total - read_smaps_rollup(child.pid)[0]) < 2 << 20
    finally:
        child.stdin.close()
        child.wait()
    # Gone: skipped, and its cached reading forgotten.
    assert probe.sample([child.pid]).pss_by_pid == {}
    assert probe.sample([os.getpid()]).pss_by_pid.keys() == {os.getpid()}


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
    probed = ProcessProbe().sample([os.getpid()])
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
