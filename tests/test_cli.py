"""The `islands` command line as a user meets it: real subprocesses, exit codes, stderr."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def islands(*args, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "coordinator", *args], capture_output=True, text=True,
        timeout=timeout, cwd=REPO_ROOT,
    )


def assert_one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("islands: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "nosuchproblem"], ["unknown problem 'nosuchproblem'"]),
        (["run", "rastrigin:dimm=5"], ["has no parameter 'dimm'"]),
        (["run", "rastrigin:dim=0"], ["dim must be at least 1"]),
        (["run", "rastrigin", "--memory-budget", "12 parsecs"], ["invalid size"]),
        (["run", "rastrigin", "--memory-budget", "10M", "--generations", "1"], ["too small"]),
        (["run", "rastrigin", "--memory-budget", "10M", "--islands", "2"], ["2 islands"]),
        (["run", "rastrigin", "--frobnicate"], ["unrecognized arguments: --frobnicate"]),
        (["run", "rastrigin", "--islands", "two"], ["--islands"]),
        (["run", "rastrigin", "--islands", "0"], ["islands must be at least 1"]),
        (["launch"], ["invalid choice"]),
    ],
)
def test_user_errors_are_one_line_and_exit_2(args, fragments, tmp_path):
    assert_one_line_error(islands(*args, "--out", str(tmp_path / "run")) if args[0] == "run"
                          else islands(*args), *fragments)


def test_bad_config_file_names_file_and_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("islands = 2\npopulation = = 3\n")
    result = islands("run", "rastrigin", "--config", str(config))
    assert_one_line_error(result, f"{config}:2:")
    config.write_text("islands = 2\nspeed = 3\n")
    assert_one_line_error(islands("run", "rastrigin", "--config", str(config)), "'speed'")


def test_run_prints_one_json_summary(tmp_path):
    run_dir = tmp_path / "run"
    # --sync: 30 generations take milliseconds; lockstep makes the migrants' arrival certain.
    result = islands("run", "rastrigin:dim=50", "--islands", "2", "--generations", "30",
                     "--seed", "1", "--sync", "--json", "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)  # exactly one JSON object, nothing else
    for key in ("problem", "best_fitness", "islands", "generations", "evaluations", "elapsed_s",
                "budget_bytes", "peak_memory_bytes", "pressure_events", "run_dir", "stopped_by",
                "time_to_feasible_s", "cleanups", "bytes_freed", "migrants", "failed_islands",
                "solution_file"):
        assert key in summary, key
    assert summary["problem"] == "rastrigin:dim=50"
    assert summary["islands"] == 2 and summary["generations"] == 30
    assert summary["stopped_by"] == "generations"
    assert summary["failed_islands"] == []
    assert summary["migrants"]["sent"] > 0 and summary["migrants"]["accepted"] > 0
    assert 0 < summary["best_fitness"] < 50 * 40  # far better than a random genome
    assert json.loads((run_dir / "summary.json").read_text()) == summary
    assert (run_dir / "config.toml").read_text().count("seed = 1") == 1
    assert (run_dir / "best.npy").exists()
    assert "[GA] Complete: fitness=" in result.stderr
    assert "[GA] Hardware config: islands=2" in result.stderr


def test_quiet_keeps_only_warnings(tmp_path):
    result = islands("run", "sphere:dim=5", "--islands", "1", "--generations", "3", "--quiet",
                     "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "[GA]" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_run_without_spec_solves_a_generated_demo_term(tmp_path):
    run_dir = tmp_path / "demo"
    result = islands("run", "--time-limit", "2", "--json", "--out", str(run_dir), timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    term = run_dir / "demo.ctt"
    assert term.exists()
    assert f"demo term, written to {term}" in result.stderr
    assert summary["problem"] == f"timetable:{term}"
    assert summary["stopped_by"] == "time_limit"


def test_sync_command_gives_the_same_best_twice(tmp_path):
    results = []
    for name in ("a", "b"):
        result = islands("run", "rastrigin:dim=50", "--islands", "2", "--generations", "30",
                         "--seed", "1", "--json", "--sync", "--quiet", "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
        results.append(json.loads(result.stdout))
    assert results[0]["best_fitness"] == results[1]["best_fitness"]
    assert results[0]["evaluations"] == results[1]["evaluations"]


def test_run_directory_that_is_a_file_is_a_user_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = islands("run", "sphere:dim=3", "--generations", "1", "--out", str(blocker))
    assert_one_line_error(result, "cannot use run directory")


def test_resume_without_a_usable_checkpoint_is_one_line_and_exit_2(tmp_path):
    assert_one_line_error(islands("resume", str(tmp_path / "nothing")), "no such run directory")
    run_dir = tmp_path / "run"
    (run_dir / "checkpoint").mkdir(parents=True)
    assert_one_line_error(islands("resume", str(run_dir)), "no checkpoint to resume from")
    (run_dir / "checkpoint" / "coordinator.msgpack").write_bytes(b"\x93garbled\x00")
    assert_one_line_error(islands("resume", str(run_dir)), "coordinator.msgpack",
                          "not a readable checkpoint")


def test_resume_of_a_finished_run_says_so_or_goes_on_with_more_generations(tmp_path):
    run_dir = tmp_path / "run"
    first = islands("run", "sphere:dim=5", "--islands", "2", "--generations", "10", "--json",
                    "--out", str(run_dir))
    assert first.returncode == 0, first.stderr
    again = islands("resume", str(run_dir))
    assert again.returncode == 0
    assert "already finished (stopped by generations)" in again.stderr
    more = islands("resume", str(run_dir), "--generations", "25", "--json")
    assert more.returncode == 0, more.stderr
    summary, before = json.loads(more.stdout), json.loads(first.stdout)
    assert summary["generations"] == 25 and summary["run_id"] == before["run_id"]
    assert summary["best_fitness"] <= before["best_fitness"]
    assert summary["evaluations"] > before["evaluations"]


def test_help_documents_the_exit_codes():
    result = islands("--help")
    assert result.returncode == 0
    for code in ("130", "143", "islands resume RUN_DIR"):
        assert code in result.stdout


def test_cache_entries_and_checkpoint_interval_come_from_the_config_file(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text("cache_entries = 0\ncheckpoint_interval = 2.5\n")
    run_dir = tmp_path / "run"
    result = islands("run", "sphere:dim=5", "--islands", "2", "--generations", "5", "--json",
                     "--config", str(settings), "--out", str(run_dir))
    assert result.returncode == 0, result.stderr
    resolved = (run_dir / "config.toml").read_text()
    assert "cache_entries = 0" in resolved and "checkpoint_interval = 2.5" in resolved
    summary = json.loads(result.stdout)
    # The islands really ran without a fitness cache; populations were measured.
    assert summary["cache_bytes"] == 0 and summary["population_bytes"] > 0
