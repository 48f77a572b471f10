"""Signals at any moment (issue 11 item 8), as a user or a service manager sends them:
real `islands run` commands in their own process group.

- SIGTERM during a long warm-up (a cold numba compile takes a minute) stops within 5 s:
  exit 143, the summary printed, no traceback, and `islands resume` runs the search;
- SIGHUP (the terminal went away) is a graceful stop like SIGTERM: exit 129;
- SIGTERM to the whole process group (`timeout`, systemd) is a clean stop: each island
  writes its own stop checkpoint, none is counted as failed, exit 143, no orphans;
- SIGTERM to one island alone: it checkpoints and stops, the run goes on without it and
  says so, and `islands resume` finishes its work;
- temp files of writes cut short are swept: at the stop and when a run is resumed.

Slow: real coordinator subprocesses, real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_run_signals import gone, island_pids, segments_of

from benchmarks.fault_cases import SLOW_WARM_UP_MODULE
from islands.checkpoint import load_state

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow



def islands_command(*arguments: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """`python -m coordinator ARGUMENTS --json` in a process group of its own."""
    command = [sys.executable, "-m", "coordinator", *arguments, "--json"]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO_ROOT, env=env, start_new_session=True)


def start_rastrigin(run_dir: Path, *flags: str) -> subprocess.Popen:
    return islands_command("run", "rastrigin:dim=20", "--islands", "2", "--seed", "5",
                           "--checkpoint-interval", "1", "--out", str(run_dir), *flags)


def ended(child: subprocess.Popen, timeout: float) -> tuple[str, str]:
    try:
        return child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        out, err = child.communicate()
        pytest.fail(f"did not end within {timeout}s after the signal\n{err[-3000:]}")


def run_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()
            if line.strip()]


def resume(run_dir: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict, str]:
    child = islands_command("resume", str(run_dir), *extra, env=env)
    out, err = ended(child, 120)
    assert "Traceback" not in err, err[-3000:]
    return child.returncode, json.loads(out) if out.strip() else {}, err


def test_sigterm_during_a_long_warm_up_stops_within_5_s_and_the_run_resumes(tmp_path,
                                                                           install_plugin):
    install_plugin("cold_start", SLOW_WARM_UP_MODULE, "coldstart", "ColdStart")
    env = dict(os.environ, WARM_UP_MARK=str(tmp_path / "warming"),
               PYTHONPATH=os.pathsep.join([str(tmp_path / "plugin"), str(REPO_ROOT)]))
    run_dir = tmp_path / "run"
    child = islands_command("run", "coldstart:dim=8", "--islands", "2", "--time-limit", "3",
                            "--out", str(run_dir), env=env)
    deadline = time.monotonic() + 60
    while not (tmp_path / "warming").exists() and time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()[1][-3000:]
        time.sleep(0.05)
    assert (tmp_path / "warming").exists(), "the warm-up never started"
    signalled = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, err = ended(child, 30)
    assert time.monotonic() - signalled < 5.0
    assert child.returncode == 143, err[-3000:]
    assert "Traceback" not in err
    assert "during the warm-up" in err
    summary = json.loads(out)
    assert summary["stopped_by"] == "terminated"
    assert summary["best_fitness"] is None and summary["generations"] == 0
    assert not any(e["event"] == "island_started" for e in run_events(run_dir))

    code, resumed, _ = resume(run_dir, env=dict(env, FAST_WARM_UP="1"))
    assert code == 0
    assert resumed["stopped_by"] == "time_limit" and resumed["generations"] > 0
    assert resumed["best_fitness"] is not None


def test_sighup_is_a_graceful_stop_with_exit_code_129(tmp_path):
    run_dir = tmp_path / "run"
    child = start_rastrigin(run_dir, "--time-limit", "300")
    pids = island_pids(run_dir, child)
    child.send_signal(signal.SIGHUP)
    out, err = ended(child, 30)
    assert child.returncode == 129, err[-3000:]
    assert "Traceback" not in err
    summary = json.loads(out)
    assert summary["stopped_by"] == "hangup" and summary["best_fitness"] is not None
    assert gone(pids, 10) and segments_of(child.pid) == []
    assert load_state(run_dir / "checkpoint" / "coordinator.msgpack")["stopped_by"] == "hangup"

    code, resumed, _ = resume(run_dir, "--time-limit", "3")
    assert code == 0 and resumed["best_fitness"] <= summary["best_fitness"]


def test_sigterm_to_the_process_group_is_a_clean_stop(tmp_path):
    run_dir = tmp_path / "run"
    child = start_rastrigin(run_dir, "--time-limit", "300")
    pids = island_pids(run_dir, child)
    time.sleep(1.0)
    os.killpg(child.pid, signal.SIGTERM)  # what `timeout` and systemd's stop send
    out, err = ended(child, 30)
    assert child.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "failed" not in err.lower()
    summary = json.loads(out)
    assert summary["stopped_by"] == "terminated"
    assert summary["failed_islands"] == []
    kinds = [e["event"] for e in run_events(run_dir)]
    assert "crash" not in kinds and "island_failed" not in kinds
    # Each island wrote its stop checkpoint: where it was when it stopped.
    saved = load_state(run_dir / "checkpoint" / "coordinator.msgpack")
    islands_saved = {s["island_id"]: s["generation"] for s in
                     (load_state(p) for p in (run_dir / "checkpoint").glob("island-*.msgpack"))}
    assert islands_saved == {i["island"]: i["generation"] for i in saved["islands"]}
    assert gone(pids, 10) and segments_of(child.pid) == []
    assert not list(run_dir.rglob("*.tmp"))


def test_sigterm_to_one_island_stops_it_alone_and_resume_finishes_its_generations(tmp_path):
    run_dir = tmp_path / "run"
    child = start_rastrigin(run_dir, "--generations", "4000", "--population", "20")
    pids = island_pids(run_dir, child)
    os.kill(pids[0], signal.SIGTERM)
    out, err = ended(child, 120)
    assert "Traceback" not in err
    assert "was sent SIGTERM or SIGHUP" in err
    assert child.returncode == 143, err[-3000:]
    summary = json.loads(out)
    assert summary["stopped_by"] == "terminated" and summary["failed_islands"] == []
    done = [e for e in run_events(run_dir) if e["event"] == "island_done"]
    assert sorted(e["reason"] for e in done) == ["generations", "terminated"]

    code, resumed, _ = resume(run_dir)
    assert code == 0
    assert resumed["stopped_by"] == "generations"
    assert resumed["best_fitness"] <= summary["best_fitness"]
    islands_saved = [load_state(p) for p in (run_dir / "checkpoint").glob("island-*.msgpack")]
    assert sorted(s["generation"] for s in islands_saved) == [4000, 4000]


def test_temp_files_of_writes_cut_short_are_swept_on_resume(tmp_path):
    run_dir = tmp_path / "run"
    child = start_rastrigin(run_dir, "--time-limit", "300")
    island_pids(run_dir, child)
    child.send_signal(signal.SIGTERM)
    ended(child, 30)
    assert child.returncode == 143
    # What an island SIGKILLed in the middle of a large checkpoint write leaves behind.
    leftovers = [run_dir / "checkpoint" / ".island-0.msgpack.k2j4x9.tmp",
                 run_dir / ".best.npy.a8c1q0.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 4096)
    code, _, err = resume(run_dir, "--time-limit", "2")
    assert code == 0
    assert not [path for path in leftovers if path.exists()]
    assert "temp file" in err
