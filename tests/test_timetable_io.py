"""Instance and solution files: round trips, one-line errors for bad input (file and
line named), and the `validate` / `generate` commands as real subprocesses."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ITC2007_DIR, REPO_ROOT
from test_timetable_fixtures import TINY_CTT

from islands.errors import InputError
from islands.timetable.generator import generate_instance, write_demo_term
from islands.timetable.instance import read_ctt, write_ctt
from islands.timetable.solution import read_sol, write_sol


def needs_itc() -> Path:
    if not (ITC2007_DIR / "comp01.ctt").exists():
        pytest.skip("ITC-2007 instances not found at ../shared/itc2007")
    return ITC2007_DIR


def test_round_trip_competition_instances(tmp_path):
    folder = needs_itc()
    for name in ("comp01", "comp05", "comp07", "comp12"):
        first = read_ctt(folder / f"{name}.ctt")
        second = read_ctt(write_ctt(first, tmp_path / f"{name}.ctt"))
        assert first == second
        assert first.n_courses > 0 and len(first.unavailability) > 0


def test_round_trip_generated_and_solution(tmp_path):
    inst = generate_instance(courses=40, rooms=6, days=5, periods_per_day=5, curricula=15, seed=3)
    again = read_ctt(write_ctt(inst, tmp_path / "g.ctt"))
    assert inst == again
    rng = np.random.default_rng(0)
    entries = np.stack(
        [inst.lecture_course, rng.integers(0, inst.n_rooms, inst.n_lectures),
         rng.integers(0, inst.n_periods, inst.n_lectures)], axis=1
    ).astype(np.int32)
    path = write_sol(entries, inst, tmp_path / "g.sol")
    assert np.array_equal(read_sol(path, again), entries)


def test_generator_is_deterministic_and_sane(tmp_path):
    a = generate_instance(courses=120, rooms=10, days=5, periods_per_day=6, curricula=50, seed=7)
    b = generate_instance(courses=120, rooms=10, days=5, periods_per_day=6, curricula=50, seed=7)
    c = generate_instance(courses=120, rooms=10, days=5, periods_per_day=6, curricula=50, seed=8)
    assert a == b and not a == c
    assert a.n_lectures <= 0.9 * a.n_rooms * a.n_periods
    assert len(a.teacher_names) < a.n_courses  # some teachers have several courses
    assert a.room_capacity.max() >= a.course_students.max()
    shared = np.bincount(a.curriculum_members, minlength=a.n_courses)
    assert shared.max() >= 2  # curricula share courses
    demo = read_ctt(write_demo_term(tmp_path / "demo.ctt", seed=1))
    assert 60 <= demo.n_courses <= 120


def write_tiny(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.ctt"
    path.write_text(text)
    return path


BAD_INSTANCES = [
    (TINY_CTT.replace("Courses: 3", "Courses: 4"), "section COURSES: has 3", 14),
    (TINY_CTT.replace("cY t2 2 1 5", "cY t2 two 1 5"), "lectures must be an integer", 11),
    (TINY_CTT.replace("q1 2 cX cY", "q1 2 cX cW"), "unknown course 'cW'", 19),
    (TINY_CTT.replace("cZ 1 2", "cQ 1 2"), "unknown course 'cQ'", 22),
    (TINY_CTT.replace("cZ 1 2", "cZ 7 2"), "day 7 out of range", 22),
    (TINY_CTT.replace("cZ 1 2", "cZ 1 3"), "period 3 out of range", 22),
    (TINY_CTT.replace("rB 30", "rA 30"), "duplicate room id 'rA'", 16),
    (TINY_CTT.replace("cZ t1 1 1 30", "cX t1 1 1 30"), "duplicate course id 'cX'", 12),
    (TINY_CTT.replace("END.\n", ""), "expected END.", 23),
    (TINY_CTT[: TINY_CTT.index("CURRICULA:")], "truncated", 17),
    (TINY_CTT.replace("ROOMS:\nrA 10\nrB 30\n", ""), "expected section ROOMS:", 15),
    (TINY_CTT.replace("Rooms: 2", "Rooms: x"), "Rooms must be an integer", 3),
]


@pytest.mark.parametrize(("text", "message", "line"), BAD_INSTANCES)
def test_bad_instance_one_line_with_file_and_line(tmp_path, text, message, line):
    path = write_tiny(tmp_path, text)
    with pytest.raises(InputError) as caught:
        read_ctt(path)
    text_of_error = str(caught.value)
    assert "\n" not in text_of_error
    assert message in text_of_error
    assert text_of_error.startswith(f"{path}:{line}: "), text_of_error


@pytest.mark.parametrize(
    ("solution", "message"),
    [
        ("cX rA 0 0\ncX rQ 0 1\n", "unknown room 'rQ'"),
        ("cX rA 0 0\ncW rA 0 1\n", "unknown course 'cW'"),
        ("cX rA 0 0\ncX rA 0\n", "expected 'course room day period'"),
        ("cX rA 0 0\ncX rA 0 x\n", "must be integers"),
        ("cX rA 0 0\ncX rA 2 0\n", "day 2 out of range"),
    ],
)
def test_bad_solution_names_file_and_line(tmp_path, solution, message):
    inst = read_ctt(write_tiny(tmp_path, TINY_CTT))
    sol = tmp_path / "s.sol"
    sol.write_text(solution)
    with pytest.raises(InputError) as caught:
        read_sol(sol, inst)
    assert str(caught.value).startswith(f"{sol}:2: ") and message in str(caught.value)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "islands.timetable", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )


def test_cli_validate_generate_and_exit_codes(tmp_path):
    ctt = tmp_path / "tiny.ctt"
    ctt.write_text(TINY_CTT)
    sol = tmp_path / "s.sol"
    sol.write_text("cX rA 0 0\ncX rB 1 0\ncY rA 0 0\ncY rB 0 0\ncZ rB 1 2\ncZ rA 1 0\n")
    done = run_cli("validate", str(ctt), str(sol))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "violations=6 cost=38"
    done = run_cli("validate", str(ctt), str(sol), "--json")
    assert done.returncode == 0 and json.loads(done.stdout)["soft_cost"] == 38

    sol.write_text("cX rA 0 0\ncX rNope 1 0\n")
    done = run_cli("validate", str(ctt), str(sol))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert f"{sol}:2:" in done.stderr and "unknown room 'rNope'" in done.stderr
    assert "Traceback" not in done.stderr

    bad = write_tiny(tmp_path, TINY_CTT.replace("Courses: 3", "Courses: 4"))
    done = run_cli("validate", str(bad), str(sol))
    assert done.returncode == 2 and f"{bad}:14:" in done.stderr and "Traceback" not in done.stderr

    out = tmp_path / "g.ctt"
    done = run_cli("generate", "timetable", "--courses", "30", "--rooms", "5", "--seed", "4", "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert read_ctt(out).n_courses == 30
    done = run_cli("generate", "timetable", "--courses", "0", "-o", str(out))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    done = run_cli("generate", "timetable", "-o", str(tmp_path / "missing" / "x.ctt"))
    assert done.returncode == 2 and "does not exist" in done.stderr
