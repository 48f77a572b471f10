"""Tomorrow's instance (islands.timetable.perturb, `generate timetable --perturb`):
deterministic per seed, K rooms closed, about the asked share of courses changed, a
valid `.ctt` out, and one-line refusals (exit 2) for closures the lectures cannot survive."""

import subprocess
import sys

import pytest
from conftest import REPO_ROOT

from islands.errors import InputError
from islands.timetable.generator import generate_instance
from islands.timetable.instance import read_ctt, write_ctt
from islands.timetable.perturb import perturb_instance


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "islands.timetable", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, timeout=120,
    )


@pytest.fixture
def base():
    return generate_instance(courses=100, rooms=14, days=5, periods_per_day=6, curricula=40, seed=5)


def test_same_seed_same_instance_other_seed_another(base):
    first, change = perturb_instance(base, close_rooms=2, change_courses=0.1, seed=4)
    again, change_again = perturb_instance(base, close_rooms=2, change_courses=0.1, seed=4)
    other, _ = perturb_instance(base, close_rooms=2, change_courses=0.1, seed=5)
    assert first == again and change == change_again
    assert not first == other


@pytest.mark.parametrize("close, share", [(1, 0.05), (3, 0.2), (0, 0.0)])
def test_what_it_changes(tmp_path, base, close, share):
    today, change = perturb_instance(base, close_rooms=close, change_courses=share, seed=1)
    assert today.n_rooms == base.n_rooms - close and len(change.closed_rooms) == close
    assert not set(change.closed_rooms) & set(today.room_names)
    assert set(today.room_names) | set(change.closed_rooms) == set(base.room_names)

    assert change.changed_courses == max(round(share * base.n_courses), 1 if share else 0)
    assert set(change.removed_courses) <= set(base.course_names)
    assert not set(change.removed_courses) & set(today.course_names)
    assert not set(change.added_courses) & set(base.course_names)
    assert today.n_courses == base.n_courses - len(change.removed_courses) + len(change.added_courses)
    in_a_curriculum = {today.course_names[c] for c in today.curriculum_members}
    assert set(change.added_courses) <= in_a_curriculum
    for name in change.constrained_courses:
        before = int((~base.available[base.course_names.index(name)]).sum())
        after_course = today.course_names.index(name)
        assert int((~today.available[after_course]).sum()) > before
        assert today.available[after_course].sum() >= today.course_lectures[after_course]
    kept = [n for n in base.course_names if n not in change.removed_courses]
    for name in kept:
        b, t = base.course_names.index(name), today.course_names.index(name)
        assert base.course_lectures[b] == today.course_lectures[t]
        assert base.course_teachers[b] == today.course_teachers[t]
    assert read_ctt(write_ctt(today, tmp_path / "today.ctt")) == today  # a valid .ctt
    assert today.n_lectures <= today.n_rooms * today.n_periods


def test_refuses_closures_the_lectures_cannot_survive(base):
    need = -(-base.n_lectures // base.n_periods)  # rooms the lectures need at the least
    too_many = base.n_rooms - need + 1
    with pytest.raises(InputError, match=f"cannot close {too_many} of {base.n_rooms} room"):
        perturb_instance(base, close_rooms=too_many, change_courses=0.0)
    perturb_instance(base, close_rooms=too_many - 1, change_courses=0.0)
    with pytest.raises(InputError, match="none would be left"):
        perturb_instance(base, close_rooms=base.n_rooms)
    with pytest.raises(InputError, match="--change-courses"):
        perturb_instance(base, change_courses=1.5)


def test_cli_perturb(tmp_path, base):
    source = write_ctt(base, tmp_path / "today.ctt")
    out1, out2 = tmp_path / "a.ctt", tmp_path / "b.ctt"
    done = run_cli("generate", "timetable", "--perturb", str(source), "--close-rooms", "2",
                   "--change-courses", "0.1", "--seed", "3", "-o", str(out1))
    assert done.returncode == 0, done.stderr
    summary = done.stdout.splitlines()[0]
    assert summary.startswith(f"perturbed {source}: closed 2 room(s)")
    assert "changed 10 of 100 courses" in summary
    run_cli("generate", "timetable", "--perturb", str(source), "--close-rooms", "2",
            "--change-courses", "0.1", "--seed", "3", "-o", str(out2))
    assert out1.read_bytes() == out2.read_bytes()
    assert read_ctt(out1).n_rooms == base.n_rooms - 2

    done = run_cli("generate", "timetable", "--perturb", str(source), "-o", str(out2))
    assert done.returncode == 0 and read_ctt(out2).n_rooms == base.n_rooms - 1  # default K = 1

    done = run_cli("generate", "timetable", "--perturb", str(source), "--close-rooms",
                   str(base.n_rooms - 1), "-o", str(tmp_path / "c.ctt"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "cannot close" in done.stderr
    assert not (tmp_path / "c.ctt").exists()

    for wrong, message in [(("--close-rooms", "1"), "needs --perturb"),
                           (("--perturb", str(source), "--courses", "30"), "--courses"),
                           (("--perturb", str(tmp_path / "nope.ctt")), "not found")]:
        done = run_cli("generate", "timetable", *wrong, "-o", str(tmp_path / "d.ctt"))
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_plain_generate_is_unchanged(tmp_path):
    out = tmp_path / "g.ctt"
    done = run_cli("generate", "timetable", "--courses", "30", "--rooms", "5", "--seed", "4", "-o", str(out))
    assert done.returncode == 0, done.stderr
    expected = generate_instance(courses=30, rooms=5, days=5, periods_per_day=6, curricula=40, seed=4)
    assert read_ctt(out) == expected
    done = run_cli("generate", "timetable", "-o", str(out))
    assert read_ctt(out) == generate_instance(
        courses=80, rooms=12, days=5, periods_per_day=6, curricula=40, seed=0)
