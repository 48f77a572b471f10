"""ITC-2007 track 3 instance files (`.ctt`): the reader and the writer.

Covers: parsing a `.ctt` file into an `Instance` with strict checks (every user error is
one `InputError` line naming the file and line) and writing it back in the competition's
layout, and the instance as plain arrays for shared memory (`instance_arrays`,
`instance_from_arrays`). `Instance` itself (its parts and the derived data the evaluators need: lecture ->
course, course conflicts, curricula per course, availability) lives in
`islands.timetable.model` and is re-exported here.

Does not cover: solutions (`islands.timetable.solution`), the cost
(`islands.timetable.validate`) or search (`islands.timetable.problem`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islands.errors import InputError, read_user_text
from islands.timetable.model import FILE_ARRAYS, Instance, _csr

__all__ = ["Instance", "format_ctt", "instance_arrays", "instance_from_arrays", "read_ctt", "write_ctt"]

HEADER_KEYS = ("Name", "Courses", "Rooms", "Days", "Periods_per_day", "Curricula", "Constraints")
SECTIONS = ("COURSES:", "ROOMS:", "CURRICULA:", "UNAVAILABILITY_CONSTRAINTS:")


class _Lines:
    """Non-blank lines of a file with their 1-based numbers, for one-line errors."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.items = [
            (number, line.split())
            for number, line in enumerate(text.splitlines(), start=1)
            if line.strip()
        ]
        self.position = 0
        self.last_line = len(text.splitlines())

    def peek(self) -> tuple[int, list[str]] | None:
        return self.items[self.position] if self.position < len(self.items) else None

    def next(self, expecting: str) -> tuple[int, list[str]]:
        item = self.peek()
        if item is None:
            raise InputError(
                f"file ends early (truncated?): expected {expecting}", path=self.path, line=self.last_line
            )
        self.position += 1
        return item

    def error(self, line: int, message: str) -> InputError:
        return InputError(message, path=self.path, line=line)


# Far above any real term, low enough that arrays sized by these numbers stay allocatable.
MAX_FIELD_VALUE = 10_000_000
MAX_PERIODS = 10_000


def _int(
    lines: _Lines, line: int, text: str, what: str, minimum: int = 0,
    maximum: int = MAX_FIELD_VALUE,
) -> int:
    try:
        value = int(text)
    except ValueError:
        raise lines.error(line, f"{what} must be an integer, got {text!r}") from None
    if value < minimum:
        raise lines.error(line, f"{what} must be >= {minimum}, got {value}")
    if value > maximum:
        raise lines.error(line, f"{what} must be <= {maximum}, got {value}")
    return value


def _section_rows(lines: _Lines, header: str, expected: int, what: str) -> list[tuple[int, list[str]]]:
    line, tokens = lines.next(header)
    if tokens != [header]:
        raise lines.error(line, f"expected section {header} here, found {' '.join(tokens)!r}")
    rows = []
    while True:
        item = lines.peek()
        if item is None or item[1][0] in SECTIONS or item[1][0] == "END.":
            break
        rows.append(lines.next(what))
    if len(rows) != expected:
        at = rows[expected][0] if len(rows) > expected else (item[0] if item else lines.last_line)
        raise lines.error(
            at, f"section {header} has {len(rows)} {what} line(s) but the header says {expected}"
        )
    return rows


def read_ctt(path: str | Path) -> Instance:
    """Read a `.ctt` file. Raises InputError (one line with file and line) on bad input."""
    path = Path(path)
    text = read_user_text(path, "instance file")
    lines = _Lines(path, text)
    header: dict[str, str] = {}
    header_line: dict[str, int] = {}
    for key in HEADER_KEYS:
        line, tokens = lines.next(f"header line '{key}:'")
        header_line[key] = line
        if len(tokens) != 2 or tokens[0] != key + ":":
            raise lines.error(line, f"expected header line '{key}: VALUE', found {' '.join(tokens)!r}")
        header[key] = tokens[1]
        if key != "Name":
            header[key] = str(_int(lines, line, tokens[1], key, minimum=1 if key in ("Days", "Periods_per_day", "Courses", "Rooms") else 0))
    n_courses, n_rooms = int(header["Courses"]), int(header["Rooms"])
    days, periods_per_day = int(header["Days"]), int(header["Periods_per_day"])
    n_curricula, n_constraints = int(header["Curricula"]), int(header["Constraints"])
    if days * periods_per_day > MAX_PERIODS:
        raise lines.error(
            header_line["Periods_per_day"],
            f"Days x Periods_per_day = {days * periods_per_day} periods, more than {MAX_PERIODS}",
        )

    course_names: list[str] = []
    teachers: list[str] = []
    numbers: list[tuple[int, int, int]] = []
    course_at: dict[str, int] = {}
    for line, tokens in _section_rows(lines, "COURSES:", n_courses, "course"):
        if len(tokens) != 5:
            raise lines.error(line, f"course line needs 5 fields (course teacher lectures min_working_days students), got {len(tokens)}")
        name = tokens[0]
        if name in course_at:
            raise lines.error(line, f"duplicate course id {name!r}")
        course_at[name] = len(course_names)
        course_names.append(name)
        teachers.append(tokens[1])
        lectures = _int(lines, line, tokens[2], "lectures", 1)
        min_days = _int(lines, line, tokens[3], "min_working_days", 0)
        students = _int(lines, line, tokens[4], "students", 0)
        if min_days > days:
            raise lines.error(line, f"min_working_days {min_days} exceeds the {days} days")
        numbers.append((lectures, min_days, students))

    room_names: list[str] = []
    capacities: list[int] = []
    room_at: dict[str, int] = {}
    for line, tokens in _section_rows(lines, "ROOMS:", n_rooms, "room"):
        if len(tokens) != 2:
            raise lines.error(line, f"room line needs 2 fields (room capacity), got {len(tokens)}")
        if tokens[0] in room_at:
            raise lines.error(line, f"duplicate room id {tokens[0]!r}")
        room_at[tokens[0]] = len(room_names)
        room_names.append(tokens[0])
        capacities.append(_int(lines, line, tokens[1], "room capacity", 0))

    curriculum_names: list[str] = []
    members: list[list[int]] = []
    for line, tokens in _section_rows(lines, "CURRICULA:", n_curricula, "curriculum"):
        if len(tokens) < 2:
            raise lines.error(line, "curriculum line needs: curriculum count course...")
        if tokens[0] in curriculum_names:
            raise lines.error(line, f"duplicate curriculum id {tokens[0]!r}")
        count = _int(lines, line, tokens[1], "curriculum size", 1)
        if len(tokens) - 2 != count:
            raise lines.error(line, f"curriculum {tokens[0]} says {count} courses but lists {len(tokens) - 2}")
        courses: list[int] = []
        for name in tokens[2:]:
            if name not in course_at:
                raise lines.error(line, f"curriculum {tokens[0]} names unknown course {name!r}")
            if course_at[name] in courses:
                raise lines.error(line, f"curriculum {tokens[0]} lists course {name!r} twice")
            courses.append(course_at[name])
        curriculum_names.append(tokens[0])
        members.append(courses)

    constraints: list[tuple[int, int, int]] = []
    for line, tokens in _section_rows(lines, "UNAVAILABILITY_CONSTRAINTS:", n_constraints, "constraint"):
        if len(tokens) != 3:
            raise lines.error(line, f"constraint line needs 3 fields (course day period), got {len(tokens)}")
        if tokens[0] not in course_at:
            raise lines.error(line, f"constraint names unknown course {tokens[0]!r}")
        day = _int(lines, line, tokens[1], "day", 0)
        period = _int(lines, line, tokens[2], "period", 0)
        if day >= days:
            raise lines.error(line, f"day {day} out of range (the instance has {days} days)")
        if period >= periods_per_day:
            raise lines.error(line, f"period {period} out of range ({periods_per_day} periods per day)")
        constraints.append((course_at[tokens[0]], day, period))

    line, tokens = lines.next("END.")
    if tokens != ["END."]:
        raise lines.error(line, f"expected END., found {' '.join(tokens)!r}")
    extra = lines.peek()
    if extra is not None:
        raise lines.error(extra[0], "text after END.")

    offsets, flat = _csr(members)
    return Instance(
        name=header["Name"],
        days=days,
        periods_per_day=periods_per_day,
        course_names=course_names,
        course_teachers=teachers,
        course_lectures=np.array([n[0] for n in numbers], dtype=np.int32),
        course_min_days=np.array([n[1] for n in numbers], dtype=np.int32),
        course_students=np.array([n[2] for n in numbers], dtype=np.int32),
        room_names=room_names,
        room_capacity=np.array(capacities, dtype=np.int32),
        curriculum_names=curriculum_names,
        curriculum_offsets=offsets,
        curriculum_members=flat,
        unavailability=np.array(constraints, dtype=np.int32).reshape(-1, 3),
    )


def format_ctt(instance: Instance) -> str:
    """The `.ctt` text of an instance (the competition's layout)."""
    out = [
        f"Name: {instance.name}",
        f"Courses: {instance.n_courses}",
        f"Rooms: {instance.n_rooms}",
        f"Days: {instance.days}",
        f"Periods_per_day: {instance.periods_per_day}",
        f"Curricula: {instance.n_curricula}",
        f"Constraints: {len(instance.unavailability)}",
        "",
        "COURSES:",
    ]
    for c, name in enumerate(instance.course_names):
        out.append(
            f"{name} {instance.course_teachers[c]} {instance.course_lectures[c]} "
            f"{instance.course_min_days[c]} {instance.course_students[c]}"
        )
    out += ["", "ROOMS:"]
    out += [f"{name}\t{cap}" for name, cap in zip(instance.room_names, instance.room_capacity, strict=False)]
    out += ["", "CURRICULA:"]
    for q, name in enumerate(instance.curriculum_names):
        courses = [instance.course_names[c] for c in instance.curriculum(q)]
        out.append(f"{name}  {len(courses)} {' '.join(courses)}")
    out += ["", "UNAVAILABILITY_CONSTRAINTS:"]
    out += [f"{instance.course_names[c]} {d} {p}" for c, d, p in instance.unavailability]
    out += ["", "END.", ""]
    return "\n".join(out)


def write_ctt(instance: Instance, path: str | Path) -> Path:
    """Write `instance` as a `.ctt` file; returns the path."""
    path = Path(path)
    path.write_text(format_ctt(instance), encoding="utf-8")
    return path


# The file's integer arrays but the unavailability table (shared as [-1, 3]).
_INT_ARRAYS = tuple(name for name in FILE_ARRAYS if name != "unavailability")


def _names_blob(instance: Instance) -> np.ndarray:
    parts = [
        instance.name,
        "\t".join(instance.course_names),
        "\t".join(instance.course_teachers),
        "\t".join(instance.room_names),
        "\t".join(instance.curriculum_names),
    ]
    return np.frombuffer("\n".join(parts).encode("utf-8"), dtype=np.uint8).copy()


def _split(text: str) -> list[str]:
    return text.split("\t") if text else []

def instance_arrays(instance: Instance) -> dict[str, np.ndarray]:
    """The instance as plain arrays (names as one UTF-8 byte array), for shared memory;
    `instance_from_arrays` rebuilds it."""
    arrays = {name: np.ascontiguousarray(getattr(instance, name)) for name in _INT_ARRAYS}
    arrays["unavailability"] = np.ascontiguousarray(instance.unavailability.reshape(-1, 3))
    arrays["calendar"] = np.array([instance.days, instance.periods_per_day], dtype=np.int32)
    arrays["names"] = _names_blob(instance)
    return arrays


def instance_from_arrays(arrays: dict[str, np.ndarray]) -> Instance:
    """The instance `instance_arrays` (or shared-memory views of them) describe."""
    name, courses, teachers, rooms, curricula = (
        bytes(np.asarray(arrays["names"])).decode("utf-8").split("\n")
    )
    days, periods_per_day = (int(x) for x in arrays["calendar"])
    return Instance(
        name=name,
        days=days,
        periods_per_day=periods_per_day,
        course_names=_split(courses),
        course_teachers=_split(teachers),
        course_lectures=np.array(arrays["course_lectures"]),
        course_min_days=np.array(arrays["course_min_days"]),
        course_students=np.array(arrays["course_students"]),
        room_names=_split(rooms),
        room_capacity=np.array(arrays["room_capacity"]),
        curriculum_names=_split(curricula),
        curriculum_offsets=np.array(arrays["curriculum_offsets"]),
        curriculum_members=np.array(arrays["curriculum_members"]),
        unavailability=np.array(arrays["unavailability"]),
    )
