"""One process owns a run directory at a time: a second `islands run --out` on a live run's
directory, or an `islands resume` of it, gets one line and exit 2 (the lock is RUN_DIR/.lock)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

from coordinator.config import RunConfig
from coordinator.run import start_run


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordinator", *args, "--quiet"],
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_second_run_on_a_live_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run = start_run(RunConfig(problem="sphere:dim=4", islands=1, time_limit=60.0, seed=1,
                              out=str(run_dir), quiet=True))
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(run.execute()))
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not (run_dir / "checkpoint" / "coordinator.msgpack").exists():
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for args in (["run", "sphere:dim=4", "--generations", "2", "--out", str(run_dir)],
                     ["resume", str(run_dir)]):
            done = cli(*args)
            assert done.returncode == 2, done.stderr
            assert "the run is still going" in done.stderr and "Traceback" not in done.stderr
    finally:
        run.request_stop("interrupted")
        worker.join(60)
    assert result["stopped_by"] == "interrupted"
    # Once it ended, the directory is free again.
    done = cli("resume", str(run_dir), "--generations", "4")
    assert done.returncode == 0, done.stderr
