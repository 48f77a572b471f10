"""One process owns a run directory at a time: a second `islands run --out` on a live run's
directory, or an `islands resume` of it, gets one line and exit 2 (the lock is RUN_DIR/.lock);
a new run in a directory that holds a stopped or finished run needs --overwrite, which
replaces that run's files (and leaves the user's own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

from coordinator.config import flat_config
from coordinator.run import start_run
from coordinator.state import acquire_lock


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "coordinator", *args, "--quiet"],
                          capture_output=True, text=True, timeout=120, check=False)


def test_a_second_run_on_a_live_run_directory_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run = start_run(flat_config(problem="sphere:dim=4", islands=1, time_limit=60.0, seed=1,
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


def test_a_new_run_in_a_finished_runs_directory_needs_overwrite(tmp_path):
    run_dir = tmp_path / "run"
    first = cli("run", "sphere:dim=4", "--islands", "2", "--generations", "5", "--seed", "1",
                "--out", str(run_dir), "--json")
    assert first.returncode == 0, first.stderr
    (run_dir / "notes.txt").write_text("mine")  # a user's file beside the run's
    again = cli("run", "rastrigin:dim=6", "--generations", "3", "--out", str(run_dir), "--json")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert json.loads((run_dir / "summary.json").read_text()) == json.loads(first.stdout)

    replaced = cli("run", "rastrigin:dim=6", "--islands", "1", "--generations", "3",
                   "--out", str(run_dir), "--json", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    summary = json.loads(replaced.stdout)
    assert summary["problem"].startswith("rastrigin") and summary["islands"] == 1
    # Nothing of the first run is left to mix into the new one.
    assert sorted(p.name for p in (run_dir / "checkpoint").glob("island-*")) == [
        "island-0.msgpack"]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("summary") == 1
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_a_forked_island_does_not_keep_the_run_locked(tmp_path):
    # Islands are forked from the coordinator: the lock's descriptor must not live on in them.
    handle = acquire_lock(tmp_path)
    reader, writer = os.pipe()
    ready_reader, ready_writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child: say it is up (after-fork hooks done), outlive the parent's lock
        os.close(writer)
        os.write(ready_writer, b"r")
        os.read(reader, 1)
        os._exit(0)
    os.close(reader)
    os.close(ready_writer)
    try:
        assert os.read(ready_reader, 1) == b"r"
        handle.close()  # the coordinator ends
        acquire_lock(tmp_path).close()  # free at once, though the child still lives
    finally:
        os.close(writer)
        os.close(ready_reader)
        os.waitpid(child, 0)
