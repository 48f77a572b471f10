"""The exact ITC-2007 cost on a hand-made instance: every constraint's cost worked out by
hand, including the official validator's rules for odd solutions."""

from pathlib import Path

import numpy as np
import pytest
from test_timetable_fixtures import TINY_CTT

from islands.timetable.instance import read_ctt
from islands.timetable.problem import TimetableProblem
from islands.timetable.solution import entries_to_genome, read_sol
from islands.timetable.validate import evaluate_entries


@pytest.fixture
def tiny(tmp_path: Path):
    path = tmp_path / "tiny.ctt"
    path.write_text(TINY_CTT)
    return path, read_ctt(path)


def cost_of(tmp_path: Path, instance, text: str):
    sol = tmp_path / "x.sol"
    sol.write_text(text)
    return evaluate_entries(instance, read_sol(sol, instance))


def test_instance_derived_data(tiny):
    _, inst = tiny
    assert inst.n_lectures == 5 and inst.n_periods == 6
    # cX-cY share q1, cX-cZ share teacher t1, cY-cZ nothing.
    assert inst.conflict_matrix().tolist() == [
        [False, True, True],
        [True, False, False],
        [True, False, False],
    ]
    assert not inst.available[2, 5] and inst.available.sum() == 17
    assert inst.lecture_course.tolist() == [0, 0, 1, 1, 2]


def test_clean_solution_soft_costs(tmp_path, tiny):
    _, inst = tiny
    b = cost_of(
        tmp_path,
        inst,
        "cX rB 0 0\ncX rB 0 1\ncY rA 0 2\ncY rA 1 0\ncZ rA 1 1\n",
    )
    # cZ (30 students) in rA (10): 20. cX on one day of its 2: 5. q1 alone at
    # day 1 slot 0: 1 lecture x 2. Every course keeps one room: 0.
    assert (b.lectures, b.conflicts, b.availability, b.room_occupancy) == (0, 0, 0, 0)
    assert (b.room_capacity, b.min_working_days, b.curriculum_compactness, b.room_stability) == (20, 5, 2, 0)
    assert b.hard_violations == 0 and b.soft_cost == 27
    assert b.format_report().splitlines()[-1] == "violations=0 cost=27"


def test_odd_solution_follows_official_validator(tmp_path, tiny):
    _, inst = tiny
    b = cost_of(
        tmp_path,
        inst,
        "cX rA 0 0\ncX rB 1 0\ncY rA 0 0\ncY rB 0 0\ncZ rB 1 2\ncZ rA 1 0\n",
    )
    # The second cY entry at period 0 is skipped (so cY misses a lecture and rB stays
    # free); cZ has one lecture too many.
    assert b.lectures == 2
    assert b.conflicts == 2  # cX-cY at period 0, cX-cZ (same teacher) at period 3
    assert b.availability == 1  # cZ at day 1 period 2
    assert b.room_occupancy == 1  # rA at period 0 holds cX and cY
    assert b.room_capacity == 10 + 20
    assert b.min_working_days == 0
    assert b.curriculum_compactness == 2 * (2 + 1)  # 2 lectures isolated at p0, 1 at p3
    assert b.room_stability == 2  # cX and cZ use two rooms each
    assert (b.hard_violations, b.soft_cost) == (6, 38)


def test_three_lectures_in_one_room(tmp_path, tiny):
    _, inst = tiny
    b = cost_of(tmp_path, inst, "cX rA 0 1\ncY rA 0 1\ncZ rA 0 1\n")
    assert b.room_occupancy == 2 and b.conflicts == 2 and b.lectures == 2


def test_compactness_first_last_and_middle_slots(tmp_path, tiny):
    _, inst = tiny
    b = cost_of(tmp_path, inst, "cX rB 0 0\ncX rB 0 2\ncY rB 1 1\ncY rB 1 2\ncZ rB 1 0\n")
    # q1 at slots 0 and 2 of day 0 (both isolated), slots 1 and 2 of day 1 (adjacent).
    assert b.curriculum_compactness == 4 and b.min_working_days == 5
    assert b.hard_violations == 0 and b.soft_cost == 9


def test_missing_lectures_counted(tmp_path, tiny):
    _, inst = tiny
    b = cost_of(tmp_path, inst, "cX rB 0 0\n")
    assert b.lectures == 1 + 2 + 1


def test_problem_agrees_on_hand_made_genomes(tiny):
    path, inst = tiny
    problem = TimetableProblem(str(path))
    cases = [
        np.array([[0, 1, 0], [0, 1, 1], [1, 0, 2], [1, 0, 3], [2, 0, 4]]),
        np.array([[0, 1, 0], [0, 1, 2], [1, 1, 4], [1, 1, 5], [2, 1, 3]]),
        np.array([[0, 0, 1], [0, 0, 1], [1, 0, 1], [1, 1, 1], [2, 0, 5]]),  # odd
    ]
    for entries in cases:
        genome = entries_to_genome(entries, inst)
        expected = evaluate_entries(inst, entries)
        described = problem.describe(genome)
        assert described["hard_violations"] == expected.hard_violations
        assert described["soft_cost"] == expected.soft_cost
        assert problem.evaluate(genome[None])[0] == 10_000 * expected.hard_violations + expected.soft_cost
