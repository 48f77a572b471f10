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
