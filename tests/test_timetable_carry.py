"""Last night's timetable on today's instance (islands.timetable.carry) and
`validate --against`: what is kept, what is skipped and reported, what counts as moved,
and one-line errors for malformed old files, through the API and the real CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import ITC2007_DIR, REPO_ROOT
from test_timetable_fixtures import TINY_CTT

from islands.errors import InputError
from islands.timetable.carry import carry_solution, compare
from islands.timetable.generator import generate_instance
from islands.timetable.instance import read_ctt
from islands.timetable.perturb import perturb_instance
from islands.timetable.solution import genome_to_entries, write_sol


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "islands.timetable", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )


def spread_genome(instance, seed=0):
    """A genome with every lecture in its own slot and no course twice in a period."""
    rng = np.random.default_rng(seed)
    free = iter(rng.permutation(instance.n_periods * instance.n_rooms))
    genome = np.empty(instance.n_lectures, dtype=np.int32)
    used = set()
    for lecture, course in enumerate(instance.lecture_course):
        slot = next(free)
        while (course, slot // instance.n_rooms) in used:
            slot = next(free)
        used.add((course, slot // instance.n_rooms))
        genome[lecture] = slot
    return genome


@pytest.fixture
def term():
    return generate_instance(courses=40, rooms=8, days=5, periods_per_day=5, curricula=15, seed=3)


def test_same_instance_keeps_every_lecture_and_nothing_moved(tmp_path, term):
    genome = spread_genome(term)
    old = write_sol(genome_to_entries(genome, term), term, tmp_path / "old.sol")
    carried = carry_solution(old, term)
    assert carried.kept == term.n_lectures and carried.skipped == ()
    assert np.array_equal(carried.genome, genome)
    assert carried.course_has_previous.all()
    assert np.array_equal(carried.slot_course[genome], term.lecture_course)
    assert (carried.slot_course >= 0).sum() == term.n_lectures
    report = compare(term, carried, genome)
    assert (report.lectures, report.moved, report.rooms_changed, report.periods_changed) == (
        term.n_lectures, 0, 0, 0)
    assert report.by_curriculum == {}


def test_compare_counts_room_and_period_changes_never_lecture_order(tmp_path, term):
    genome = spread_genome(term)
    carried = carry_solution(write_sol(genome_to_entries(genome, term), term, tmp_path / "o.sol"), term)
    course = int(np.argmax(term.course_lectures >= 3))
    first = term.course_first_lecture[course]
    shuffled = genome.copy()
    shuffled[first], shuffled[first + 1] = genome[first + 1], genome[first]
    assert compare(term, carried, shuffled).moved == 0

    changed = genome.copy()
    n_rooms = term.n_rooms
    period, room = divmod(int(genome[first]), n_rooms)
    changed[first] = period * n_rooms + (room + 1) % n_rooms  # same period, another room
    old_periods = {int(s) // n_rooms for s in genome[first : term.course_first_lecture[course + 1]]}
    new_period = next(p for p in range(term.n_periods) if p not in old_periods)
    changed[first + 1] = new_period * n_rooms + int(genome[first + 1]) % n_rooms
    report = compare(term, carried, changed)
    assert (report.moved, report.rooms_changed, report.periods_changed) == (2, 1, 1)
    curricula = [term.curriculum_names[q] for q in range(term.n_curricula)
                 if course in term.curriculum(q)]
    assert report.by_curriculum == {name: 2 for name in curricula}
    assert report.to_dict()["moved"] == 2


def test_closed_room_entries_are_skipped_and_reported(tmp_path, term):
    genome = spread_genome(term)
    old = write_sol(genome_to_entries(genome, term), term, tmp_path / "old.sol")
    today, change = perturb_instance(term, close_rooms=1, change_courses=0.0, seed=1)
    (closed,) = change.closed_rooms
    lines = old.read_text().splitlines()
    in_closed = [i for i, line in enumerate(lines, start=1) if line.split()[1] == closed]
    assert in_closed  # the spread genome uses every room
    carried = carry_solution(old, today)
    assert carried.kept == term.n_lectures - len(in_closed)
    assert len(carried.skipped) == 1
    assert carried.skipped[0].startswith(f"{old}:{in_closed[0]}: room {closed!r} no longer exists")
    assert (carried.genome == -1).sum() == len(in_closed)
    assert carried.course_has_previous.all()  # their courses existed last night

    # A course's old entries fill its first lectures, so its unplaced lectures are its
    # last ones: they go back to the periods it had in the closed room, in room 0 (a
    # clash there does not matter to compare).
    closed_index = term.room_names.index(closed)
    new = carried.genome.copy()
    for course in range(term.n_courses):
        span = slice(term.course_first_lecture[course], term.course_first_lecture[course + 1])
        lost_periods = [int(s) // term.n_rooms for s in genome[span] if s % term.n_rooms == closed_index]
        unplaced = np.nonzero(new[span] < 0)[0] + span.start
        new[unplaced] = np.array(lost_periods, dtype=np.int64) * today.n_rooms
    report = compare(today, carried, new)
    assert report.moved == report.rooms_changed == len(in_closed) == int(
        (genome % term.n_rooms == closed_index).sum())
    assert report.periods_changed == 0


def test_removed_and_added_courses(tmp_path):
    old = tmp_path / "old.sol"
    old.write_text("cX rA 0 0\ncX rB 1 0\ncY rA 0 1\ncY rB 1 1\ncZ rB 1 2\n")
    today_text = (TINY_CTT.replace("cY t2 2 1 5", "cW t3 2 1 8")
                  .replace("q1 2 cX cY", "q1 2 cX cW"))
    today = read_ctt_text(tmp_path, today_text)
    carried = carry_solution(old, today)
    assert today.course_names == ["cX", "cW", "cZ"]
    assert carried.skipped == (f"{old}:3: course 'cY' no longer exists; 2 entries skipped (the first on this line)",)
    assert carried.course_has_previous.tolist() == [True, False, True]
    assert carried.kept == 3
    assert carried.genome[2:4].tolist() == [-1, -1]  # cW is new
    full = carried.genome.copy()
    full[2:4] = [0 * today.n_rooms + 1, 2 * today.n_rooms + 0]
    report = compare(today, carried, full)
    assert (report.lectures, report.moved) == (3, 0)  # the new course's lectures do not count


def read_ctt_text(tmp_path, text):
    path = tmp_path / "source.ctt"
    path.write_text(text)
    return read_ctt(path)


def test_extra_repeated_and_out_of_calendar_entries(tmp_path):
    inst = read_ctt_text(tmp_path, TINY_CTT)
    old = tmp_path / "old.sol"
    old.write_text("cX rA 0 0\ncX rB 0 0\ncX rA 1 0\ncX rA 1 1\ncZ rA 5 0\ncZ rA 0 7\n")
    carried = carry_solution(old, inst)
    assert carried.kept == 2
    assert len(carried.skipped) == 4
    assert carried.skipped[0].startswith(f"{old}:2: course 'cX' already has a lecture at day 0 period 0")
    assert carried.skipped[1].startswith(f"{old}:4: course 'cX' has 2 lecture(s) today")
    assert carried.skipped[2].startswith(f"{old}:5: day 5 is outside today's calendar")
    assert carried.skipped[3].startswith(f"{old}:6: period 7 is outside today's calendar")
    assert carried.course_has_previous.tolist() == [True, False, True]
    assert carried.genome[:2].tolist() == [0, 3 * inst.n_rooms]


@pytest.mark.parametrize("text, line, message", [
    ("cX rA 0 0\ncX rA 0\n", 2, "expected 'course room day period', got 3"),
    ("cX rA 0 0\n\ncNope rGone x 0\n", 3, "day and period must be integers"),
])
def test_malformed_old_file_is_one_error_line(tmp_path, text, line, message):
    inst = read_ctt_text(tmp_path, TINY_CTT)
    old = tmp_path / "old.sol"
    old.write_text(text)
    with pytest.raises(InputError) as caught:
        carry_solution(old, inst)
    assert str(caught.value).startswith(f"{old}:{line}: ") and message in str(caught.value)

    new = tmp_path / "new.sol"
    new.write_text("cX rA 0 0\n")
    done = run_cli("validate", str(tmp_path / "source.ctt"), str(new), "--against", str(old))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and f"{old}:{line}:" in done.stderr

    with pytest.raises(InputError, match="old solution file not found"):
        carry_solution(tmp_path / "missing.sol", inst)


def test_validate_against_text_and_json(tmp_path):
    ctt = tmp_path / "tiny.ctt"
    ctt.write_text(TINY_CTT)
    old, new = tmp_path / "old.sol", tmp_path / "new.sol"
    old.write_text("cX rA 0 0\ncX rB 1 0\ncY rA 0 1\ncY rGone 1 1\ncZ rB 1 1\n")
    # cX: one lecture to another period; cY: its closed-room lecture stays in its period.
    new.write_text("cX rA 0 0\ncX rB 0 2\ncY rA 0 1\ncY rA 1 1\ncZ rB 1 1\n")
    done = run_cli("validate", str(ctt), str(new), "--against", str(old))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("moved:"))
    assert lines[at - 1].startswith("violations=")
    assert lines[at:] == ["moved: 2 of 5 lectures (periods changed 1, rooms changed 1)",
                          "  curriculum q1: 2 moved"]
    assert done.stderr.strip() == f"note: {old}:4: room 'rGone' no longer exists; entry skipped"

    done = run_cli("validate", str(ctt), str(new), "--against", str(old), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert "soft_cost" in data
    assert data["moves"] == {
        "lectures": 5, "moved": 2, "rooms_changed": 1, "periods_changed": 1,
        "by_curriculum": {"q1": 2},
        "skipped": [f"{old}:4: room 'rGone' no longer exists; entry skipped"],
    }
    done = run_cli("validate", str(ctt), str(new), "--json")
    assert "moves" not in json.loads(done.stdout)


def test_comp07_with_a_room_closed(tmp_path):
    if not (ITC2007_DIR / "comp07.ctt").exists():
        pytest.skip(f"ITC-2007 instances not found at {ITC2007_DIR}")
    base = read_ctt(ITC2007_DIR / "comp07.ctt")
    genome = spread_genome(base, seed=2)
    old = write_sol(genome_to_entries(genome, base), base, tmp_path / "old.sol")
    today, change = perturb_instance(base, close_rooms=1, change_courses=0.05, seed=0)
    carried = carry_solution(old, today)
    gone = set(change.removed_courses)
    in_closed = sum(1 for c, r in zip(base.lecture_course, genome % base.n_rooms, strict=True)
                    if base.room_names[r] in change.closed_rooms and base.course_names[c] not in gone)
    removed = sum(int(base.course_lectures[base.course_names.index(name)]) for name in gone)
    assert carried.kept == base.n_lectures - removed - in_closed
    assert not carried.course_has_previous[[today.course_names.index(n) for n in change.added_courses]].any()
    assert len(carried.skipped) == len(gone) + 1
