"""The nightly example of docs/nightly.md, run for real: docs/examples/nightly.sh started
twice at once (as overlapping cron slots do) runs once; the second start skips at once
with a line on stderr and exit 0, and the first leaves its summary and timetable where the
docs say. Skips where `flock` is missing (util-linux)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest

from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt

REPO_ROOT = Path(__file__).resolve().parent.parent
SCRIPT = REPO_ROOT / "docs" / "examples" / "nightly.sh"
pytestmark = pytest.mark.slow


def test_two_overlapping_nightly_starts_run_once(tmp_path):
    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed")
    term = write_ctt(generate_instance(courses=30, rooms=5, days=5, periods_per_day=5,
                                       curricula=12, seed=4), tmp_path / "term.ctt")
    runs = tmp_path / "runs"
    env = dict(os.environ, ISLANDS=f"{sys.executable} -m coordinator")
    home = tmp_path / "home"  # cron's working directory is not where the files are
    home.mkdir()
    first = subprocess.Popen(["bash", str(SCRIPT), str(term), str(runs), "8"], cwd=home,
                             env=env, stderr=subprocess.PIPE, text=True)
    tonight = runs / date.today().isoformat()
    deadline = time.monotonic() + 120
    while not (tonight / "events.jsonl").exists():
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the first run never started"
        time.sleep(0.1)
    second = subprocess.run(["bash", str(SCRIPT), str(term), str(runs), "8"], cwd=home,
                            env=env, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "skipping" in second.stderr
    assert first.poll() is None  # the second did not wait for it, nor disturb it
    _, first_err = first.communicate(timeout=300)
    assert first.returncode == 0, first_err[-3000:]
    [printed] = [p for p in runs.glob(f"{tonight.name}-*.json") if p.stat().st_size]
    summary = json.loads(printed.read_text())
    assert summary["run_dir"] == str(tonight)
    assert summary["stopped_by"] in ("time_limit", "target")
    assert Path(summary["solution_file"]) == tonight / "best.sol"
    assert json.loads((tonight / "summary.json").read_text()) == summary
