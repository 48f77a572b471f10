"""memory.probe: the real smaps_rollup probe on live and dead processes; the scripted probe."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from memory.probe import MemorySample, ProcessProbe, ScriptedProbe, read_smaps_rollup


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
