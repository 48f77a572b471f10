"""Signals and crashes around a real `islands run`: graceful Ctrl-C, no orphans, no leaks.

Slow: real coordinator subprocesses, real signals.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def start_run(tmp_path):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "coordinator", "run", "rastrigin:dim=20", "--islands", "2",
               "--time-limit", "300", "--json", "--out", str(run_dir)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO_ROOT)
    return child, run_dir


def island_pids(run_dir, child, timeout=120.0):
    """Pids of both islands once both have started and evolved."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        events_file = run_dir / "events.jsonl"
        if events_file.exists():
            records = [json.loads(line) for line in events_file.read_text().splitlines() if line]
            started = {r["island"]: r["pid"] for r in records if r["event"] == "island_started"}
            if len(started) == 2 and (run_dir / "best.npy").exists():
                return list(started.values())
        time.sleep(0.1)
    raise AssertionError("the islands never started")


def gone(pids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not [pid for pid in pids if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE]:
            return True
        time.sleep(0.1)
    return False


def segments_of(pid):
    return [name for name in os.listdir("/dev/shm") if name.startswith(f"islands_{pid}_")]


@pytest.mark.parametrize(("signum", "stopped_by"), [(signal.SIGINT, "interrupted"),
                                                     (signal.SIGTERM, "terminated")])
def test_ctrl_c_or_sigterm_stops_gracefully_with_summary_and_cleanup(tmp_path, signum, stopped_by):
    child, run_dir = start_run(tmp_path)
    pids = island_pids(run_dir, child)
    child.send_signal(signum)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err[-3000:]
    summary = json.loads(out)
    assert summary["stopped_by"] == stopped_by
    # Each island wrote its checkpoint on the way out.
    assert len(list((run_dir / "checkpoint").glob("island-*.msgpack"))) == 2
    assert summary["best_fitness"] is not None
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert "Traceback" not in err
    assert gone(pids, 10)
    assert segments_of(child.pid) == []


def test_islands_exit_when_the_coordinator_is_killed(tmp_path):
    child, run_dir = start_run(tmp_path)
    pids = island_pids(run_dir, child)
    child.kill()
    child.communicate(timeout=30)
    # No orphans: each island notices its parent is gone within a few seconds.
    assert gone(pids, 15), [pid for pid in pids if psutil.pid_exists(pid)]
    # Its shared memory is left behind (nobody could unlink it) until a sweep removes it.
    from memory.shared import sweep_dead_segments

    sweep_dead_segments()
    assert segments_of(child.pid) == []
