"""The run history (coordinator.history): SQLite rows written by real runs and read back
by `islands history`, the comparison line of a run on an instance seen before, and a
history that cannot be written (a warning, never a failed run)."""

import json
import sqlite3
import subprocess
import sys

from coordinator.history import HISTORY_ENV, compare, history_path, list_runs, record_run
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt


def islands(*args, cwd=None, timeout=180):
    return subprocess.run([sys.executable, "-m", "coordinator", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def summary(**values):
    base = {"run_id": "r", "problem": "timetable:term.ctt", "instance_sha256": "abc",
            "started_at": "2026-01-01T00:00:00+00:00", "ended_at": "2026-01-01T00:01:00+00:00",
            "stopped_by": "time_limit", "best_fitness": 130.0, "hard_violations": 0,
            "soft_cost": 130, "peak_memory_bytes": 10, "budget_bytes": 100, "run_dir": "runs/a",
            "version": "0.1.0", "host": "box", "elapsed_s": 60.0}
    return {**base, **values}


def test_the_comparison_line_names_this_run_the_last_and_the_best_ever(tmp_path):
    path = tmp_path / "h.sqlite"
    assert record_run(path, summary(soft_cost=118, best_fitness=118.0), "seed = 1") is None
    assert record_run(path, summary(soft_cost=130), "seed = 2") == (
        "soft 130, last run 118, best ever 118")
    assert record_run(path, summary(soft_cost=123, best_fitness=123.0), "") == (
        "soft 123, last run 130, best ever 118")
    # Another instance is not compared with these.
    assert record_run(path, summary(instance_sha256="other"), "") is None
    rows = list_runs(path)
    assert [r["soft_cost"] for r in rows] == [118, 130, 123, 130]
    assert rows[0]["config"] == "seed = 1" and rows[0]["host"] == "box"
    assert [r["soft_cost"] for r in list_runs(path, last=2)] == [123, 130]


def test_problems_without_soft_costs_compare_by_fitness():
    row = summary(hard_violations=None, soft_cost=None, best_fitness=1.5)
    earlier = [summary(hard_violations=None, soft_cost=None, best_fitness=f) for f in (2.0, 1.25)]
    assert compare(row, earlier) == "fitness 1.5, last run 1.25, best ever 1.25"


def test_the_default_file_honours_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(HISTORY_ENV, str(tmp_path / "env.sqlite"))
    assert history_path() == tmp_path / "env.sqlite"
    assert history_path(str(tmp_path / "flag.sqlite")) == tmp_path / "flag.sqlite"
    monkeypatch.delenv(HISTORY_ENV)
    assert history_path().name == "history.sqlite"  # under the user's data dir (platformdirs)


def test_two_real_runs_are_recorded_and_the_second_compares_with_the_first(tmp_path):
    write_ctt(generate_instance(courses=12, rooms=3, days=3, periods_per_day=4, curricula=4,
                                seed=5), tmp_path / "term.ctt")
    history = tmp_path / "history.sqlite"
    for name in ("first", "second"):
        done = islands("run", "timetable:term.ctt,ls_moves=2000", "--islands", "2", "--generations", "4",
                       "--out", name, "--history", history, "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr[-3000:]
    second = json.loads(done.stdout)
    log = (tmp_path / "second" / "run.log").read_text()
    [line] = [x for x in log.splitlines() if "Compared with earlier runs" in x]
    assert f"soft {second['soft_cost']}, last run " in line and ", best ever " in line
    assert "Compared with earlier runs" not in (tmp_path / "first" / "run.log").read_text()
    rows = list_runs(history)
    assert [r["run_dir"] for r in rows] == ["first", "second"]
    assert rows[1]["instance_sha256"] == second["instance_sha256"] is not None
    assert rows[1]["soft_cost"] == second["soft_cost"]
    assert rows[1]["peak_memory_bytes"] == second["peak_memory_bytes"] > 0
    assert "[search]" in rows[1]["config"] or "seed" in rows[1]["config"]
    listed = islands("history", "--history", history, "--problem", "term", "--last", "1")
    assert listed.returncode == 0 and listed.stdout.count("second") == 1
    assert "first" not in listed.stdout
    as_json = json.loads(islands("history", "--history", history, "--json").stdout)
    assert [r["stopped_by"] for r in as_json] == ["generations", "generations"]


def test_a_history_that_cannot_be_written_is_a_warning(tmp_path):
    not_a_database = tmp_path / "junk.sqlite"
    not_a_database.write_bytes(b"this is not SQLite" * 100)
    done = islands("run", "rastrigin:dim=10", "--islands", "1", "--generations", "3",
                   "--out", tmp_path / "run", "--history", not_a_database)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "not recorded in the history" in done.stderr and "Traceback" not in done.stderr
    listed = islands("history", "--history", not_a_database)
    assert listed.returncode == 2 and listed.stderr.startswith("islands: error: ")
    missing = islands("history", "--history", tmp_path / "none.sqlite")
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_no_history_records_nothing(tmp_path):
    history = tmp_path / "h.sqlite"
    done = islands("run", "rastrigin:dim=10", "--islands", "1", "--generations", "3",
                   "--out", tmp_path / "run", "--history", history, "--no-history")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not history.exists() or sqlite3.connect(history).execute(
        "SELECT count(*) FROM runs").fetchone() == (0,)
