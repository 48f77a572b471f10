"""A stuck island (issue 11 items 1 and 2), as a user meets it: real `islands run` commands.

Each test runs `python -m coordinator run ...` in a subprocess with the real defaults
(heartbeat floor 10 s, command deadline 5 s, stop grace 4 s) on an installed problem
plugin whose behaviour depends on its island: the process name of an island worker is
`island-N` (LocalBackend), so the spec parameter `hang=N` hangs island N only, in every
life it gets (forever, inside `evaluate`, `hang_after` seconds after its first evaluation
in that process), and `leak=N` makes island N keep `leak_mb` MiB more real memory per
evaluation in module-level state (freed only when its process ends). Every hang writes a
marker file, so a test can tell "the island never hung" (a broken set-up) from "the
coordinator did not notice" (a bug).

- a `--generations` run ends: the healthy island finishes, the stuck one is recorded
  (stuck, crash, restart, island_failed after MAX_FAILURES), exit 0, one JSON summary;
- with `--time-limit` the run ends on time (only the stop grace late) and says `stuck`;
- with `--sync` the healthy island is not held behind the stuck one for good;
- with `--memory-budget 300M`, one island stuck and one leaking: memory actions are still
  taken on the leaking island while the other is stuck, and the tree's PSS (sampled from
  outside) stays bounded.
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

from benchmarks.fault_cases import STUCK_LEAK_MODULE
from benchmarks.fault_tools import TreePss
from coordinator.pressure import COMMAND_DEADLINE_S
from coordinator.run import STOP_GRACE_S
from coordinator.supervisor import HEARTBEAT_FLOOR_S, MAX_FAILURES

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKS_ENV = "STUCK_ISLAND_MARKS"
MIB = 1 << 20



@pytest.fixture
def stuck_plugin(install_plugin, tmp_path):
    """Install the plugin; returns (plugin dir for PYTHONPATH, marks dir)."""
    install_plugin("stuck_leak", STUCK_LEAK_MODULE, "stuckleak", "StuckLeak")
    marks = tmp_path / "marks"
    marks.mkdir()
    return tmp_path / "plugin", marks


def run_islands(plugin_dir: Path, marks: Path, run_dir: Path, spec: str, *flags: str,
                timeout: float = 85.0, sample_memory: bool = False):
    """`python -m coordinator run SPEC --json --quiet --out RUN_DIR FLAGS...` as a user runs it.

    Returns (completed process, wall seconds, peak tree PSS or None). A run that does not end
    within `timeout` is killed (its whole process group) and the test fails with its events.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(plugin_dir), str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env[MARKS_ENV] = str(marks)
    command = [sys.executable, "-m", "coordinator", "run", spec, "--json", "--quiet",
               "--out", str(run_dir), "--seed", "1", *flags]
    started = time.monotonic()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             cwd=REPO_ROOT, env=env, start_new_session=True)
    sampler = TreePss(child.pid) if sample_memory else None
    try:
        stdout, stderr = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)
        stdout, stderr = child.communicate()
        pytest.fail(f"the run did not end within {timeout:.0f}s\nstderr:\n{stderr[-3000:]}\n"
                    f"events:\n{brief_events(run_dir)}")
    finally:
        if sampler is not None:
            sampler.stop()
    wall = time.monotonic() - started
    result = subprocess.CompletedProcess(command, child.returncode, stdout, stderr)
    return result, wall, None if sampler is None else sampler.peak


def events(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def brief_events(run_dir: Path) -> str:
    keep = ("stuck", "crash", "restart", "island_failed", "island_done", "island_started",
            "pressure", "action", "hibernated", "summary")
    return "\n".join(json.dumps(e) for e in events(run_dir) if e["event"] in keep)


def of(run_events: list[dict], kind: str, island: int | None = None) -> list[dict]:
    return [e for e in run_events
            if e["event"] == kind and (island is None or e.get("island") == island)]


def hangs(marks: Path, island: int) -> list[Path]:
    return sorted(marks.glob(f"hung-{island}-*"))


def one_json_summary(result: subprocess.CompletedProcess, run_dir: Path) -> dict:
    context = f"stderr:\n{result.stderr[-3000:]}\nevents:\n{brief_events(run_dir)}"
    assert result.returncode == 0, context
    assert "Traceback" not in result.stderr, context
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout is not one JSON line: {result.stdout[:2000]!r}\n{context}"
    return json.loads(lines[0])


def check_stuck_events(run_events: list[dict], island: int) -> list[dict]:
    """The stuck island is recorded: each `stuck` event past the deadline, then a crash."""
    stuck = of(run_events, "stuck", island)
    assert stuck, "no stuck event for the hung island"
    for event in stuck:
        assert event["deadline_s"] >= HEARTBEAT_FLOOR_S
        assert event["silent_s"] >= event["deadline_s"]
        # Found within a few loop ticks of its deadline, not much later.
        assert event["silent_s"] <= event["deadline_s"] + 2.0, event
    crashes = [e for e in of(run_events, "crash", island) if e["reason"] == "stuck"]
    assert len(crashes) == len(stuck)
    assert [c["failures"] for c in crashes] == list(range(1, len(crashes) + 1))
    return stuck


@pytest.mark.slow
def test_a_generations_run_with_a_stuck_island_ends_with_the_island_failed(tmp_path,
                                                                            stuck_plugin):
    plugin_dir, marks = stuck_plugin
    run_dir = tmp_path / "run"
    result, wall, _ = run_islands(plugin_dir, marks, run_dir,
                                  "stuckleak:dim=8,hang=1,hang_after=1.0,delay=0.01",
                                  "--islands", "2", "--population", "16", "--generations", "300")
    summary = one_json_summary(result, run_dir)
    run_events = events(run_dir)
    # Every life of island 1 hung (set-up check), island 0 never did.
    assert len(hangs(marks, 1)) == MAX_FAILURES and not hangs(marks, 0)

    assert summary["stopped_by"] == "generations"
    # The healthy island finished its generations.
    assert [e["reason"] for e in of(run_events, "island_done", 0)] == ["generations"]
    assert summary["generations"] == 300
    # The stuck island: recorded, killed and restarted like a crash, then given up on.
    stuck = check_stuck_events(run_events, 1)
    assert len(stuck) == MAX_FAILURES
    restarts = [e for e in of(run_events, "restart", 1) if e["reason"] == "stuck"]
    assert len(restarts) == MAX_FAILURES - 1
    assert len(of(run_events, "island_failed", 1)) == 1
    assert summary["failed_islands"] == [1]
    assert summary["island_failures"] == {"1": MAX_FAILURES}
    assert not of(run_events, "island_done", 1)
    # And the run ends right after the last failure, not later.
    summary_event = of(run_events, "summary")[-1]
    assert summary_event["t"] - of(run_events, "island_failed", 1)[0]["t"] < 2.0
    assert wall < 80.0


@pytest.mark.slow
def test_a_time_limited_run_with_a_stuck_island_ends_on_time_and_names_it(tmp_path,
                                                                           stuck_plugin):
    plugin_dir, marks = stuck_plugin
    run_dir = tmp_path / "run"
    limit = 16.0
    result, wall, _ = run_islands(plugin_dir, marks, run_dir,
                                  "stuckleak:dim=8,hang=1,hang_after=1.0,delay=0.01",
                                  "--islands", "2", "--population", "16",
                                  "--time-limit", str(limit))
    summary = one_json_summary(result, run_dir)
    run_events = events(run_dir)
    assert hangs(marks, 1) and not hangs(marks, 0)

    assert summary["stopped_by"] == "time_limit"
    check_stuck_events(run_events, 1)  # the stuck island is mentioned
    assert summary["island_failures"].get("1", 0) >= 1
    # The healthy island was stopped at the limit.
    done = of(run_events, "island_done", 0)
    assert [e["reason"] for e in done] == ["stopped"]
    assert done[0]["t"] < limit + 1.0
    # On time: late at most by the stop grace a (possibly hung again) island is given.
    assert summary["elapsed_s"] <= limit + STOP_GRACE_S + 1.0, brief_events(run_dir)
    assert wall <= limit + STOP_GRACE_S + 5.0  # start-up of the command included


@pytest.mark.slow
def test_in_sync_mode_the_healthy_island_is_not_held_behind_a_stuck_one(tmp_path,
                                                                         stuck_plugin):
    # The CLI's sync timeout is 60 s: a healthy island released by it (and not by the
    # coordinator's SourceGone) would need minutes for 300 generations.
    plugin_dir, marks = stuck_plugin
    run_dir = tmp_path / "run"
    result, wall, _ = run_islands(plugin_dir, marks, run_dir,
                                  "stuckleak:dim=8,hang=1,hang_after=1.0,delay=0.01",
                                  "--islands", "2", "--population", "16", "--generations", "300",
                                  "--sync")
    summary = one_json_summary(result, run_dir)
    run_events = events(run_dir)
    assert len(hangs(marks, 1)) == MAX_FAILURES and not hangs(marks, 0)

    assert summary["stopped_by"] == "generations"
    assert [e["reason"] for e in of(run_events, "island_done", 0)] == ["generations"]
    assert summary["generations"] == 300
    assert len(check_stuck_events(run_events, 1)) == MAX_FAILURES
    assert summary["failed_islands"] == [1]
    # Once the stuck island is gone for good, its neighbour does not wait for it.
    gone_at = of(run_events, "island_failed", 1)[0]["t"]
    assert of(run_events, "island_done", 0)[0]["t"] - gone_at < 10.0, brief_events(run_dir)
    assert wall < 85.0


@pytest.mark.slow
def test_memory_enforcement_goes_on_while_an_island_is_stuck(tmp_path, stuck_plugin):
    """Island 1 hangs, island 0 leaks about 50 MB/s of real memory; budget 300M."""
    plugin_dir, marks = stuck_plugin
    run_dir = tmp_path / "run"
    budget = 300 * MIB
    limit = 25.0
    result, wall, outside_peak = run_islands(
        plugin_dir, marks, run_dir,
        "stuckleak:dim=8,hang=1,hang_after=1.0,leak=0,leak_mb=1,delay=0.02",
        "--islands", "2", "--population", "16", "--time-limit", str(limit),
        "--memory-budget", "300M", sample_memory=True)
    summary = one_json_summary(result, run_dir)
    run_events = events(run_dir)
    assert hangs(marks, 1) and not hangs(marks, 0)
    context = brief_events(run_dir)

    assert summary["stopped_by"] == "time_limit"
    assert summary["budget_bytes"] == budget
    stuck = check_stuck_events(run_events, 1)
    # The hang began when island 1 last spoke before its first stuck event.
    hang_began = stuck[0]["t"] - stuck[0]["silent_s"]
    found = stuck[0]["t"]
    actions = [e for e in summary["pressure_events"]
               if e["action"] in ("shrink", "hibernate", "terminate")]
    # Memory actions on the leaking island while the other one hung, before the coordinator
    # even knew it was stuck: nothing waited on the stuck island's answer.
    while_stuck = [e for e in actions if e["island"] == 0 and hang_began < e["t"] < found]
    assert while_stuck, f"no action on the leaking island from {hang_began}s to {found}s\n{context}"
    # ... and they go on after it (the leak goes on in every life of island 0).
    assert [e for e in actions if e["island"] == 0 and e["t"] > found], context
    # The first action came within a few command deadlines of the first pressure.
    first_pressure = [e for e in summary["pressure_events"] if e["action"] == "level_change"
                      and e["level"] != "normal"][0]
    first_action = [e for e in actions if e["island"] == 0][0]
    assert first_action["t"] - first_pressure["t"] < 2 * COMMAND_DEADLINE_S + 1.0, context
    # The tree stays bounded: the old code reached 5.8x the budget.
    assert summary["peak_memory_bytes"] < 2 * budget, context
    assert outside_peak < 2 * budget, (outside_peak, context)
    assert summary["elapsed_s"] <= limit + STOP_GRACE_S + 1.0
    assert wall < 60.0
