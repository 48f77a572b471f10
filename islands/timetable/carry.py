"""Last night's timetable on today's instance: carrying an old `.sol` over, and what moved.

Covers: `carry_solution`, a lenient read of an old solution against a possibly different
instance (courses and rooms matched by name). Entries naming courses or rooms that no
longer exist, days or periods outside today's calendar, entries beyond a course's
lectures and a second entry of a course in one period are skipped and reported as one
human line each (per entry, or per closed room / removed course / missing day or period),
never fatal; malformed lines and an unreadable file are one `InputError` naming file and
line. `CarriedSolution` holds the result as a partial genome. `compare` counts the
lectures a new genome moved away from their course's old places (`MoveReport`).

Does not cover: the strict reader of a solution for today's instance
(`islands.timetable.solution`, whose line parser this module shares), the cost
(`islands.timetable.validate`), starting the search from the carried genome and the
stability cost (`islands.timetable.problem` and the kernels), the `validate --against`
command (`islands.timetable.cli`), or making tomorrow's instance
(`islands.timetable.perturb`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from islands.errors import read_user_text
from islands.timetable.model import Instance
from islands.timetable.solution import sol_day_period, sol_lines


@dataclass(frozen=True, eq=False)
class CarriedSolution:
    """An old solution mapped onto today's instance.

    `genome`: int32 [n_lectures], `slot = period * n_rooms + room` of each lecture's
    previous place, -1 where it has none (a new course, more lectures than old entries,
    its old room closed). `slot_course`: int32 [n_periods * n_rooms], the course (today's
    index) that held each slot last night, -1 none (the first entry wins on a clash).
    `course_has_previous`: bool [n_courses], the course existed last night (it has an
    entry in the old file). `kept`: entries mapped. `skipped`: one line per skipped entry
    or group, naming file and line. `previous_periods`: bool [n_courses, n_periods], the
    periods each course had last night, including entries whose room closed (so a lecture
    that keeps its period in another room counts as a room change, not a period change).
    """

    genome: np.ndarray
    slot_course: np.ndarray
    course_has_previous: np.ndarray
    kept: int
    skipped: tuple[str, ...]
    previous_periods: np.ndarray | None = field(default=None)


class _Skips:
    """Skipped entries grouped by reason; each group is reported at its first line."""

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self.groups: dict[tuple, list] = {}  # key -> [first line, count, message]

    def add(self, key: tuple, line: int, message: str) -> None:
        group = self.groups.setdefault(key, [line, 0, message])
        group[1] += 1

    def lines(self) -> tuple[str, ...]:
        out = []
        for first, count, message in sorted(self.groups.values(), key=lambda g: g[0]):
            what = "entry skipped" if count == 1 else f"{count} entries skipped (the first on this line)"
            out.append(f"{self.path}:{first}: {message}; {what}")
        return tuple(out)


def carry_solution(path: str | Path, instance: Instance) -> CarriedSolution:
    """Read an old `.sol` against today's `instance`, keeping what still exists.

    A course's old entries go to its lectures in file order. Raises InputError only for
    an unreadable file or a malformed line (wrong field count, non-integer day/period).
    """
    text = read_user_text(path, "old solution file")
    courses, rooms = instance.course_index(), instance.room_index()
    days, ppd, n_rooms = instance.days, instance.periods_per_day, instance.n_rooms
    genome = np.full(instance.n_lectures, -1, dtype=np.int32)
    slot_course = np.full(instance.n_periods * n_rooms, -1, dtype=np.int32)
    has_previous = np.zeros(instance.n_courses, dtype=bool)
    previous_periods = np.zeros((instance.n_courses, instance.n_periods), dtype=bool)
    occupied = np.zeros((instance.n_courses, instance.n_periods), dtype=bool)  # kept entries
    filled = np.zeros(instance.n_courses, dtype=np.int64)
    skips = _Skips(path)
    kept = 0
    for number, (course_name, room_name, day_text, period_text) in sol_lines(text, path):
        day, period = sol_day_period(day_text, period_text, path, number)
        course = courses.get(course_name)
        if course is None:
            skips.add(("course", course_name), number, f"course {course_name!r} no longer exists")
            continue
        has_previous[course] = True
        if not 0 <= day < days:
            skips.add(("day", day), number, f"day {day} is outside today's calendar (days 0..{days - 1})")
            continue
        if not 0 <= period < ppd:
            skips.add(
                ("period", period), number,
                f"period {period} is outside today's calendar (periods 0..{ppd - 1})",
            )
            continue
        when = day * ppd + period
        room = rooms.get(room_name)
        if room is None:
            previous_periods[course, when] = True
            skips.add(("room", room_name), number, f"room {room_name!r} no longer exists")
            continue
        if occupied[course, when]:
            skips.add(
                ("repeat", number), number,
                f"course {course_name!r} already has a lecture at day {day} period {period}",
            )
            continue
        if filled[course] >= instance.course_lectures[course]:
            skips.add(
                ("extra", course), number,
                f"course {course_name!r} has {instance.course_lectures[course]} lecture(s) "
                "today, fewer than its old entries",
            )
            continue
        slot = when * n_rooms + room
        genome[instance.course_first_lecture[course] + filled[course]] = slot
        filled[course] += 1
        occupied[course, when] = previous_periods[course, when] = True
        if slot_course[slot] < 0:
            slot_course[slot] = course
        kept += 1
    return CarriedSolution(
        genome=genome,
        slot_course=slot_course,
        course_has_previous=has_previous,
        kept=kept,
        skipped=skips.lines(),
        previous_periods=previous_periods,
    )


@dataclass(frozen=True)
class MoveReport:
    """How far a new timetable moved from last night's, over the courses that existed.

    `moved`: lectures not in one of their course's old (period, room) slots, per course
    lectures minus the multiset intersection of old and new slots (lecture order never
    matters). `rooms_changed`: moved lectures that kept an old period of their course in
    another room; `periods_changed`: the other moved lectures. `by_curriculum`: moved
    lectures per curriculum name (non-zero only, most moved first).
    """

    lectures: int
    moved: int
    rooms_changed: int
    periods_changed: int
    by_curriculum: dict[str, int]

    def to_dict(self) -> dict[str, object]:
        return {
            "lectures": self.lectures,
            "moved": self.moved,
            "rooms_changed": self.rooms_changed,
            "periods_changed": self.periods_changed,
            "by_curriculum": dict(self.by_curriculum),
        }


def _old_periods(instance: Instance, carried: CarriedSolution, course: int) -> Counter:
    if carried.previous_periods is not None:
        return Counter(np.nonzero(carried.previous_periods[course])[0].tolist())
    old = carried.genome[instance.course_first_lecture[course] : instance.course_first_lecture[course + 1]]
    return Counter((old[old >= 0] // instance.n_rooms).tolist())


def compare(instance: Instance, carried: CarriedSolution, genome: np.ndarray) -> MoveReport:
    """Lectures of `genome` (today's instance) moved away from `carried`'s places."""
    genome = np.asarray(genome).reshape(-1)
    if len(genome) != instance.n_lectures or len(carried.genome) != instance.n_lectures:
        raise ValueError(
            f"compare: genomes of {len(genome)} and {len(carried.genome)} lectures for an "
            f"instance of {instance.n_lectures}"
        )
    first, n_rooms = instance.course_first_lecture, instance.n_rooms
    moved_per_course = np.zeros(instance.n_courses, dtype=np.int64)
    lectures = rooms_changed = 0
    for course in np.nonzero(carried.course_has_previous)[0]:
        old = carried.genome[first[course] : first[course + 1]]
        new = genome[first[course] : first[course + 1]]
        exact = Counter(old[old >= 0].tolist()) & Counter(new[new >= 0].tolist())
        old_periods = _old_periods(instance, carried, course)
        new_periods = Counter((new[new >= 0] // n_rooms).tolist())
        for slot, count in exact.items():
            old_periods[slot // n_rooms] -= count
            new_periods[slot // n_rooms] -= count
        # Lectures not on an old slot but in a period the course had: only the room changed.
        rooms_changed += sum((old_periods & new_periods).values())
        lectures += len(new)
        moved_per_course[course] = len(new) - sum(exact.values())
    by_curriculum = {}
    for q, name in enumerate(instance.curriculum_names):
        count = int(moved_per_course[instance.curriculum(q)].sum())
        if count:
            by_curriculum[name] = count
    moved = int(moved_per_course.sum())
    return MoveReport(
        lectures=lectures,
        moved=moved,
        rooms_changed=rooms_changed,
        periods_changed=moved - rooms_changed,
        by_curriculum=dict(sorted(by_curriculum.items(), key=lambda item: (-item[1], item[0]))),
    )
