"""Resume against what is on disk now (issue 11 item 9): real `islands run` / `islands
resume` commands.

- the `.ctt` edited in place between the stop and the resume: the best is scored again
  against the instance as it is now (the summary agrees with `islands validate` of the
  written `.sol`), the islands re-evaluate their populations;
- an island checkpoint that does not fit the problem (another problem's file, or an
  instance whose rooms were removed, so its slots point past the timetable): one line
  naming the file and exit 2 before any island starts, not three crashes;
- a damaged best genome in the coordinator checkpoint: one outside the problem's domain
  is left out with a warning, one whose saved fitness lies is scored again.

Slow: real coordinator subprocesses (the timetable ones compile kernels on a cold cache).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from islands.checkpoint import load_state, save_state
from islands.problem import build_problem
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt

REPO_ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def islands(*arguments: str, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "coordinator", *arguments],
                            capture_output=True, text=True, cwd=REPO_ROOT, timeout=timeout)
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result


def summary_of(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.fixture
def term(tmp_path) -> Path:
    instance = generate_instance(courses=20, rooms=4, days=5, periods_per_day=4, curricula=8,
                                 seed=1)
    return write_ctt(instance, tmp_path / "term.ctt")


def run_timetable(term: Path, run_dir: Path) -> dict:
    return summary_of(islands("run", str(term), "--islands", "2", "--time-limit", "2",
                              "--seed", "3", "--json", "--quiet", "--out", str(run_dir)))


def validated_cost(term: Path, solution: str) -> int:
    report = json.loads(islands("validate", str(term), solution, "--json").stdout)
    return 10_000 * report["hard_violations"] + report["soft_cost"]


def test_resume_after_the_instance_was_edited_scores_the_best_against_it(tmp_path, term):
    run_dir = tmp_path / "run"
    before = run_timetable(term, run_dir)
    # Every room shrinks to 5 seats: the same timetable now costs far more.
    term.write_text(re.sub(r"^(r\d+)\t\d+$", r"\1\t5", term.read_text(), flags=re.M))
    assert validated_cost(term, before["solution_file"]) > before["best_fitness"]

    result = islands("resume", str(run_dir), "--time-limit", "4", "--json")
    after = summary_of(result)
    assert "scores" in result.stderr and "the instance changed" in result.stderr
    assert after["solution_file"] is not None
    assert after["best_fitness"] == validated_cost(term, after["solution_file"])
    assert after["best_fitness"] > before["best_fitness"]  # the old value is no longer true


def test_an_island_checkpoint_of_another_problem_is_one_line_and_exit_2(tmp_path):
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for spec, run_dir in (("rastrigin:dim=20", ours), ("rastrigin:dim=10", theirs)):
        summary_of(islands("run", spec, "--islands", "2", "--generations", "30", "--json",
                           "--quiet", "--out", str(run_dir)))
    shutil.copy(theirs / "checkpoint" / "island-1.msgpack", ours / "checkpoint" / "island-1.msgpack")
    result = islands("resume", str(ours), "--generations", "60", timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "island-1.msgpack" in lines[0]
    assert "float64[" in lines[0]  # what it holds against what the problem needs


def test_an_instance_that_lost_rooms_refuses_island_checkpoints_pointing_past_it(tmp_path, term):
    run_dir = tmp_path / "run"
    run_timetable(term, run_dir)
    text = term.read_text().replace("Rooms: 4", "Rooms: 2")
    term.write_text(re.sub(r"^r[23]\t\d+\n", "", text, flags=re.M))
    result = islands("resume", str(run_dir), "--time-limit", "4", timeout=60)
    assert result.returncode == 2, result.stderr[-3000:]
    line = result.stderr.strip().splitlines()[-1]
    assert "island-" in line and "outside" in line and "domain" in line


@pytest.mark.parametrize("damage", ["nan genome", "lying fitness"])
def test_a_damaged_best_genome_is_not_taken_at_its_word(tmp_path, damage):
    run_dir = tmp_path / "run"
    spec = "rastrigin:dim=20"
    first = summary_of(islands("run", spec, "--islands", "2", "--generations", "40", "--json",
                               "--quiet", "--out", str(run_dir)))
    path = run_dir / "checkpoint" / "coordinator.msgpack"
    state = load_state(path)
    if damage == "nan genome":
        state["best"]["genome"] = np.full(20, np.nan).tobytes()
        state["best"]["fitness"] = -1.0
    else:
        state["best"]["fitness"] = -1.0  # rastrigin is never below 0
    save_state(path, state)

    result = islands("resume", str(run_dir), "--generations", "60", "--json")
    resumed = summary_of(result)
    expected_warning = "outside the problem's domain" if damage == "nan genome" else "scores"
    assert expected_warning in result.stderr
    assert 0.0 <= resumed["best_fitness"] <= first["best_fitness"]
    best = np.load(run_dir / "best.npy")
    assert resumed["best_fitness"] == float(build_problem(spec).evaluate(best[None])[0])
