"""A warm start (islands.timetable.warm): tonight's search from last night's timetable on
today's instance, with a stability cost for every lecture moved. Real instances, files,
kernels and, for the command line, a real run with island processes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT

from islands.errors import InputError
from islands.timetable.carry import carry_solution, compare
from islands.timetable.generator import generate_instance
from islands.timetable.instance import write_ctt
from islands.timetable.perturb import perturb_instance
from islands.timetable.problem import HARD_WEIGHT, TimetableProblem

LECTURES_OF_A_ROOM = 1.5  # at most this many rooms' worth of lectures may move


@pytest.fixture(scope="module")
def nights(tmp_path_factory):
    """Yesterday's term solved and written; today's term: one room closed."""
    folder = tmp_path_factory.mktemp("nights")
    base = generate_instance(courses=40, rooms=6, days=5, periods_per_day=6, curricula=16, seed=3)
    write_ctt(base, folder / "yesterday.ctt")
    yesterday = TimetableProblem(str(folder / "yesterday.ctt"))
    rng = np.random.default_rng(0)
    genome, fitness, _ = yesterday.improve_with_stats(yesterday.random(rng, 1), None, rng, 400_000)
    assert fitness[0] < HARD_WEIGHT
    yesterday.write(genome[0], folder / "old")
    today, change = perturb_instance(base, close_rooms=1, change_courses=0.0, seed=1)
    write_ctt(today, folder / "today.ctt")
    return folder, base, today, change


def test_a_warm_start_keeps_what_fits_and_moves_what_must(nights):
    folder, base, today, change = nights
    problem = TimetableProblem(str(folder / "today.ctt"), initial=str(folder / "old.sol"))
    rng = np.random.default_rng(1)
    start = problem.random(rng, 1)
    improved, fitness, stats = problem.improve_with_stats(
        start, None, rng, 300_000, verify_every=53, t_range=(problem.t_start, problem.t_end))
    assert stats[0, 4] == 0, "incremental stability cost disagrees with a full evaluation"
    described = problem.describe(improved[0])
    assert described["hard_violations"] == 0
    # The closed room's lectures must move; little else does.
    per_room = today.n_lectures / base.n_rooms
    assert 0 < described["lectures_moved"] <= LECTURES_OF_A_ROOM * per_room
    assert described["stability_cost"] == 5 * described["lectures_moved"]
    assert fitness[0] == described["soft_cost"] + described["stability_cost"]
    # A cold start on the same instance moves most lectures.
    cold = TimetableProblem(str(folder / "today.ctt"))
    cold_genome, _, _ = cold.improve_with_stats(cold.random(rng, 1), None, rng, 300_000)
    carried = carry_solution(folder / "old.sol", today)
    assert compare(today, carried, cold_genome[0]).moved > today.n_lectures // 2


def test_stability_zero_is_a_plain_warm_start_and_the_weight_prices_moves(nights):
    folder, _, _, _ = nights
    free = TimetableProblem(str(folder / "today.ctt"), initial=str(folder / "old.sol"), stability=0)
    dear = TimetableProblem(str(folder / "today.ctt"), initial=str(folder / "old.sol"), stability=9)
    genome = free.random(np.random.default_rng(0), 1)
    moved = free.describe(genome[0])["lectures_moved"]
    assert free.describe(genome[0])["stability_cost"] == 0
    assert dear.evaluate(genome)[0] - free.evaluate(genome)[0] == 9 * moved


def test_the_warm_start_travels_in_the_shared_arrays_not_the_file(nights, tmp_path):
    folder, _, _, _ = nights
    old = tmp_path / "old.sol"
    old.write_bytes((folder / "old.sol").read_bytes())
    problem = TimetableProblem(str(folder / "today.ctt"), initial=str(old), stability=3)
    arrays = {name: np.array(value) for name, value in problem.shared_arrays().items()}
    old.unlink()  # an island on another node never sees the file
    attached = TimetableProblem.attach(arrays, initial=str(old), stability=3)
    genome = problem.random(np.random.default_rng(0), 1)
    assert attached.evaluate(genome)[0] == problem.evaluate(genome)[0]
    assert attached.describe(genome[0]) == problem.describe(genome[0])


def test_stability_without_an_initial_timetable_is_one_clear_error(nights):
    folder, _, _, _ = nights
    with pytest.raises(InputError, match="stability needs an initial timetable"):
        TimetableProblem(str(folder / "today.ctt"), stability=2)
    with pytest.raises(InputError, match="whole number >= 0"):
        TimetableProblem(str(folder / "today.ctt"), initial=str(folder / "old.sol"), stability=-1)


def test_islands_run_initial_reports_what_moved(nights, tmp_path):
    folder, _, today, _ = nights
    done = subprocess.run(
        [sys.executable, "-m", "coordinator", "run", str(folder / "today.ctt"),
         "--initial", str(folder / "old.sol"), "--stability", "4", "--islands", "1",
         "--time-limit", "6", "--json", "--quiet", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=240)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["hard_violations"] == 0
    assert 0 < summary["lectures_moved"] < today.n_lectures // 2
    assert summary["lectures_moved"] == summary["rooms_changed"] + summary["periods_changed"]
    assert summary["stability_cost"] == 4 * summary["lectures_moved"]
    assert "room" in done.stderr and "no longer exists" in done.stderr  # the skipped entries
    config = (tmp_path / "run" / "config.toml").read_text()
    assert "initial" in config and "stability = 4" in config


def test_initial_for_a_run_without_a_problem_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "coordinator", "run", "--initial", str(tmp_path / "x.sol"),
         "--time-limit", "1"],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("islands run TERM.ctt --initial OLD.sol")
