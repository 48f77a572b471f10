"""Signals and crashes around a real `islands run`: graceful Ctrl-C / SIGTERM with
exit codes 130 / 143, no orphans, no leaks, and `islands resume` finishing the run
(after SIGTERM and after a SIGKILLed coordinator) without losing the best solution.

Slow: real coordinator subprocesses, real signals.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def start_run(tmp_path, time_limit=300):
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "coordinator", "run", "rastrigin:dim=20", "--islands", "2",
               "--time-limit", str(time_limit), "--checkpoint-interval", "1", "--json",
               "--out", str(run_dir)]
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO_ROOT)
    return child, run_dir


def resume(run_dir, *extra):
    command = [sys.executable, "-m", "coordinator", "resume", str(run_dir), "--json", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, timeout=300)


def best_on_disk(run_dir):
    """Fitness of best.npy as it is on disk (rastrigin, evaluated here)."""
    from islands.problem import build_problem

    genome = np.load(run_dir / "best.npy")
    return float(build_problem("rastrigin:dim=20").evaluate(genome[None, :])[0])


def run_events(run_dir):
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def island_children(pid):
    """Pids of the island processes under `pid`, by the name each gives itself (`island-N`),
    not its resource tracker or anything else it may start."""
    found = []
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return found
    for process in children:
        try:
            name = process.name()
        except psutil.Error:
            continue  # it ended between listing and reading
        if name.startswith("island-"):
            found.append(process.pid)
    return found


def island_pids(run_dir, child, timeout=120.0):
    """Pids of both islands once both have started and evolved (events carry no pids:
    they are the coordinator's children named `island-N`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        events_file = run_dir / "events.jsonl"
        if events_file.exists():
            records = [json.loads(line) for line in events_file.read_text().splitlines() if line]
            started = {r["island"] for r in records if r["event"] == "island_started"}
            pids = island_children(child.pid)
            if len(started) == 2 and len(pids) == 2 and (run_dir / "best.npy").exists():
                return pids
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


def test_ctrl_c_stops_gracefully_with_exit_code_130_summary_and_cleanup(tmp_path):
    child, run_dir = start_run(tmp_path)
    pids = island_pids(run_dir, child)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err[-3000:]
    summary = json.loads(out)
    stopped_by = "interrupted"
    assert summary["stopped_by"] == stopped_by
    # Each island wrote its checkpoint on the way out, the coordinator last.
    from islands.checkpoint import load_state

    islands_saved = [load_state(p) for p in (run_dir / "checkpoint").glob("island-*.msgpack")]
    assert len(islands_saved) == 2
    saved = load_state(run_dir / "checkpoint" / "coordinator.msgpack")
    assert saved["stopped_by"] == "interrupted"
    # What the islands saved on the way out is where they were when they stopped.
    assert sorted(s["generation"] for s in islands_saved) == sorted(
        i["generation"] for i in saved["islands"])
    assert summary["best_fitness"] is not None
    assert saved["best"]["fitness"] == summary["best_fitness"] == best_on_disk(run_dir)
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert "Traceback" not in err
    assert gone(pids, 10)
    assert segments_of(child.pid) == []


def test_sigterm_stops_with_143_and_islands_resume_finishes_the_run(tmp_path):
    child, run_dir = start_run(tmp_path, time_limit=8)
    pids = island_pids(run_dir, child)
    child.send_signal(signal.SIGTERM)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 143, err[-3000:]
    stopped = json.loads(out)
    assert stopped["stopped_by"] == "terminated"
    assert gone(pids, 10) and segments_of(child.pid) == []
    best_before = best_on_disk(run_dir)
    assert best_before == stopped["best_fitness"]

    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["stopped_by"] == "time_limit" and summary["resumed"]
    assert summary["run_id"] == stopped["run_id"]
    # Generations went on from where they were; the time limit counted the time spent.
    assert summary["generations"] > stopped["generations"]
    assert summary["elapsed_s"] >= 8
    assert summary["best_fitness"] <= best_before
    kinds = [e["event"] for e in run_events(run_dir)]
    assert kinds.count("resumed") == 1 and kinds.count("summary") == 2
    # Finished now: resuming again says so and changes nothing.
    again = resume(run_dir)
    assert again.returncode == 0 and again.stdout == ""
    assert "already finished" in again.stderr


def test_a_killed_coordinator_leaves_no_orphans_and_resume_finishes_the_run(tmp_path):
    child, run_dir = start_run(tmp_path, time_limit=8)
    pids = island_pids(run_dir, child)
    time.sleep(1.0)
    best_before = best_on_disk(run_dir)
    child.kill()
    child.communicate(timeout=30)
    # No orphans: each island notices its parent is gone within a few seconds.
    assert gone(pids, 5), [pid for pid in pids if psutil.pid_exists(pid)]
    # Its segments are left behind (nobody could unlink them) until the next start sweeps.

    resumed = resume(run_dir)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert segments_of(child.pid) == []
    assert summary["stopped_by"] == "time_limit" and summary["resumed"]
    assert summary["failed_islands"] == []
    assert summary["best_fitness"] <= best_before
    assert best_on_disk(run_dir) == summary["best_fitness"]
    assert "Traceback" not in resumed.stderr


def test_a_second_ctrl_c_stops_at_once_and_leaves_a_resumable_run(tmp_path):
    child, run_dir = start_run(tmp_path)
    pids = island_pids(run_dir, child)
    time.sleep(1.5)  # a periodic checkpoint has been written
    child.send_signal(signal.SIGINT)
    time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130
    assert "Traceback" not in err
    assert gone(pids, 10) and segments_of(child.pid) == []
    # The checkpoint from before the stop is there and readable: resume accepts it.
    from coordinator.run import load_resume

    config, state = load_resume(run_dir, time_limit=1.0)
    assert state["run_id"] and config.islands == 2
