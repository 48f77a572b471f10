"""Timetable solutions (`.sol`): one line `course room day period` per lecture, 0-based.

Covers: reading a `.sol` file against an instance (unknown courses or rooms, out-of-range
days or periods and malformed lines are rejected with one `InputError` line naming the
file and line; a UTF-8 byte-order mark is accepted), writing one, and converting between
entries and problem genomes.

Does not cover: the cost of a solution (`islands.timetable.validate`). Entries keep their
file order and may be odd (repeated, missing or extra lectures): the evaluator applies the
competition validator's rules to them, and `read_sol_lines` gives each entry's line number
so that repeated entries can be reported where they are. Reading an old solution against
a changed instance (unknown names skipped, not fatal) is `islands.timetable.carry`, which
shares the line parser (`sol_lines`, `sol_day_period`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from islands.errors import InputError, read_user_text
from islands.timetable.model import Instance


def read_sol(path: str | Path, instance: Instance) -> np.ndarray:
    """Entries of a `.sol` file as an int32 array [N, 3]: course, room, period (file order)."""
    return read_sol_lines(path, instance)[0]


def sol_lines(text: str, path: str | Path) -> Iterator[tuple[int, list[str]]]:
    """(1-based line, its four fields) of each non-blank line of `.sol` text; a line with
    another number of fields is one InputError naming file and line. Shared by the strict
    reader here and the lenient one of `islands.timetable.carry`."""
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens:
            continue
        if len(tokens) != 4:
            raise InputError(
                f"expected 'course room day period', got {len(tokens)} field(s)", path=path, line=number
            )
        yield number, tokens


def sol_day_period(day_text: str, period_text: str, path: str | Path, line: int) -> tuple[int, int]:
    """The day and period fields as integers; anything else is one InputError line."""
    try:
        return int(day_text), int(period_text)
    except ValueError:
        raise InputError(
            f"day and period must be integers, got {day_text!r} {period_text!r}", path=path, line=line
        ) from None


def read_sol_lines(path: str | Path, instance: Instance) -> tuple[np.ndarray, np.ndarray]:
    """Entries of a `.sol` file [N, 3] (as `read_sol`) and the 1-based line of each [N]."""
    path = Path(path)
    text = read_user_text(path, "solution file")
    courses, rooms = instance.course_index(), instance.room_index()
    days, ppd = instance.days, instance.periods_per_day
    entries: list[tuple[int, int, int]] = []
    numbers: list[int] = []
    for number, (course_name, room_name, day_text, period_text) in sol_lines(text, path):
        course = courses.get(course_name)
        if course is None:
            raise InputError(f"unknown course {course_name!r}", path=path, line=number)
        room = rooms.get(room_name)
        if room is None:
            raise InputError(f"unknown room {room_name!r}", path=path, line=number)
        day, period = sol_day_period(day_text, period_text, path, number)
        if not 0 <= day < days:
            raise InputError(f"day {day} out of range 0..{days - 1}", path=path, line=number)
        if not 0 <= period < ppd:
            raise InputError(f"period {period} out of range 0..{ppd - 1}", path=path, line=number)
        entries.append((course, room, day * ppd + period))
        numbers.append(number)
    return (
        np.array(entries, dtype=np.int32).reshape(-1, 3),
        np.array(numbers, dtype=np.int64),
    )


def format_sol(entries: np.ndarray, instance: Instance) -> str:
    ppd = instance.periods_per_day
    return "".join(
        f"{instance.course_names[c]} {instance.room_names[r]} {p // ppd} {p % ppd}\n"
        for c, r, p in np.asarray(entries).reshape(-1, 3)
    )


def write_sol(entries: np.ndarray, instance: Instance, path: str | Path) -> Path:
    """Write entries [N, 3] (course, room, period) as a `.sol` file; returns the path."""
    path = Path(path)
    path.write_text(format_sol(entries, instance), encoding="utf-8")
    return path


def genome_to_entries(genome: np.ndarray, instance: Instance) -> np.ndarray:
    """Entries (course, room, period) of a genome (`slot = period * n_rooms + room`)."""
    slots = np.asarray(genome, dtype=np.int64).reshape(-1)
    return np.stack(
        [instance.lecture_course, slots % instance.n_rooms, slots // instance.n_rooms], axis=1
    ).astype(np.int32)


def entries_to_genome(entries: np.ndarray, instance: Instance) -> np.ndarray:
    """A genome from entries with exactly the right lecture count per course.

    Raises InputError when a course has missing or extra entries (a genome has one slot
    per lecture, so it cannot express those; the evaluator of entries can).
    """
    entries = np.asarray(entries).reshape(-1, 3)
    genome = np.empty(instance.n_lectures, dtype=np.int32)
    filled = instance.course_first_lecture[:-1].copy()
    for c, r, p in entries:
        if filled[c] >= instance.course_first_lecture[c + 1]:
            raise InputError(f"course {instance.course_names[c]} has too many lectures")
        genome[filled[c]] = p * instance.n_rooms + r
        filled[c] += 1
    short = np.nonzero(filled != instance.course_first_lecture[1:])[0]
    if len(short):
        raise InputError(f"course {instance.course_names[short[0]]} has too few lectures")
    return genome
