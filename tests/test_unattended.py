"""What an unattended (cron, systemd) run needs from the command line (issue 13, part):
`islands --version`, a run with no stop criterion refused before anything is created
(after the spec's own errors), and a summary that says when, with what and on which
instance it ran."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
from datetime import datetime
from pathlib import Path

from test_timetable_fixtures import TINY_CTT

from coordinator.summary import islands_version

REPO_ROOT = Path(__file__).resolve().parent.parent


def islands(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordinator", *args], capture_output=True,
                          text=True, cwd=REPO_ROOT, timeout=300)


def test_version():
    result = islands("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"islands {islands_version()}" != "islands unknown"


def test_a_run_with_no_stop_criterion_is_refused_before_anything_is_created(tmp_path):
    run_dir = tmp_path / "run"
    result = islands("run", "rastrigin:dim=4", "--target", "0", "--out", str(run_dir))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "no stop criterion" in result.stderr
    assert "--time-limit" in result.stderr and not run_dir.exists()
    # A bad spec is still what is reported first.
    bad = islands("run", "rastrigin:dimm=4", "--out", str(run_dir))
    assert bad.returncode == 2 and "no parameter 'dimm'" in bad.stderr


def test_the_summary_says_when_with_what_and_on_which_instance(tmp_path):
    term = tmp_path / "tiny.ctt"
    term.write_text(TINY_CTT)
    result = islands("run", str(term), "--islands", "1", "--generations", "2", "--json",
                     "--quiet", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    started = datetime.fromisoformat(summary["started_at"])
    ended = datetime.fromisoformat(summary["ended_at"])
    assert started.tzinfo is not None and started <= ended
    assert summary["version"] == islands_version() and summary["host"] == socket.gethostname()
    assert summary["instance_sha256"] == hashlib.sha256(term.read_bytes()).hexdigest()


def run_in(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordinator", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_config_toml_records_what_was_chosen_and_repeats_a_sync_run_exactly(tmp_path):
    first = run_in(tmp_path, "run", "rastrigin:dim=8", "--sync", "--generations", "30",
                   "--seed", "7", "--json", "--quiet", "--out", "first")
    assert first.returncode == 0, first.stderr[-3000:]
    import tomllib

    recorded = tomllib.loads((tmp_path / "first" / "config.toml").read_text())
    summary = json.loads(first.stdout)
    assert recorded["islands"] == summary["islands"]
    assert recorded["search"]["population"] == summary["population"]
    assert int(recorded["memory"]["budget"]) == summary["budget_bytes"] and recorded["seed"] == 7
    assert recorded["problem"] == {"spec": "rastrigin", "dim": 8}  # the [problem] table
    again = run_in(tmp_path, "run", "--config", "first/config.toml", "--json", "--quiet",
                   "--out", "again")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["best_fitness"] == summary["best_fitness"]


def test_resume_works_from_another_working_directory(tmp_path):
    (tmp_path / "tiny.ctt").write_text(TINY_CTT)
    first = run_in(tmp_path, "run", "tiny.ctt", "--islands", "1", "--generations", "3",
                   "--json", "--quiet", "--out", "run")
    assert first.returncode == 0, first.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"  # cron starts in $HOME, not where the run began
    elsewhere.mkdir()
    resumed = run_in(elsewhere, "resume", "../run", "--generations", "6", "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads(resumed.stdout)
    assert summary["resumed"] and summary["stopped_by"] in ("generations", "target")
    assert summary["hard_violations"] == 0  # scored against tiny.ctt, found from the run's start
    assert summary["run_dir"] == str(tmp_path / "run")
    assert Path(summary["solution_file"]) == tmp_path / "run" / "best.sol"


IMPOSSIBLE_CTT = """Name: Impossible
Courses: 1
Rooms: 1
Days: 1
Periods_per_day: 1
Curricula: 0
Constraints: 0

COURSES:
c1 t1 2 1 5

ROOMS:
r1 10

CURRICULA:

UNAVAILABILITY_CONSTRAINTS:

END.
"""


def test_an_infeasible_best_has_its_own_exit_code(tmp_path):
    # Two lectures, one room, one period: every timetable breaks a hard constraint.
    (tmp_path / "impossible.ctt").write_text(IMPOSSIBLE_CTT)
    result = run_in(tmp_path, "run", "impossible.ctt", "--islands", "1", "--generations", "2",
                    "--json", "--out", "run")
    assert result.returncode == 3, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["feasible"] is False and summary["hard_violations"] > 0
    assert "infeasible" in result.stderr and (tmp_path / "run" / "best.sol").exists()
    feasible = run_in(tmp_path, "run", "rastrigin:dim=4", "--generations", "2", "--json",
                      "--quiet", "--out", "plain")
    assert feasible.returncode == 0 and json.loads(feasible.stdout)["feasible"] is None
