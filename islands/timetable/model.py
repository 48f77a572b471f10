"""The in-memory model of a CB-CTT instance: `Instance` and the parts it is made of.

Covers: `Courses` (with their teachers and lecture numbering), `Rooms`, `Curricula`, the
relations derived between courses (`CourseRelations`: conflicts, curricula of a course)
and `Instance`, which holds the parts plus the calendar and the unavailability
constraints, and keeps the flat names (`instance.course_lectures`, ...) the evaluators,
the kernels and the file formats read.

Does not cover: reading and writing `.ctt` files (`islands.timetable.instance`, which
also re-exports `Instance`), solutions (`islands.timetable.solution`), the cost
(`islands.timetable.validate`) or search (`islands.timetable.problem`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np


def _csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(lists) + 1, dtype=np.int32)
    offsets[1:] = np.cumsum([len(items) for items in lists])
    flat = np.fromiter((i for items in lists for i in items), dtype=np.int32, count=int(offsets[-1]))
    return offsets, flat


def _int32(values: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


@dataclass(eq=False)
class Courses:
    """The courses in file order. Lectures are numbered course by course: the lectures of
    course `c` are `first_lecture[c] .. first_lecture[c + 1] - 1`."""

    names: list[str]
    teachers: list[str]  # teacher name of each course
    lectures: np.ndarray  # int32 [C]
    min_days: np.ndarray  # int32 [C]
    students: np.ndarray  # int32 [C]
    # Derived in __post_init__.
    teacher: np.ndarray = field(init=False)  # int32 [C], index into teacher_names
    teacher_names: list[str] = field(init=False)  # first-seen order
    first_lecture: np.ndarray = field(init=False)  # int32 [C+1]
    lecture_course: np.ndarray = field(init=False)  # int32 [L]

    def __post_init__(self) -> None:
        self.lectures = _int32(self.lectures)
        self.min_days = _int32(self.min_days)
        self.students = _int32(self.students)
        teacher_index: dict[str, int] = {}
        for teacher in self.teachers:
            teacher_index.setdefault(teacher, len(teacher_index))
        self.teacher_names = list(teacher_index)
        self.teacher = np.array([teacher_index[t] for t in self.teachers], dtype=np.int32)
        self.first_lecture = np.zeros(len(self.names) + 1, dtype=np.int32)
        self.first_lecture[1:] = np.cumsum(self.lectures)
        self.lecture_course = np.repeat(
            np.arange(len(self.names), dtype=np.int32), self.lectures
        ).astype(np.int32)


@dataclass(eq=False)
class Rooms:
    """The rooms in file order."""

    names: list[str]
    capacity: np.ndarray  # int32 [R]

    def __post_init__(self) -> None:
        self.capacity = _int32(self.capacity)


@dataclass(eq=False)
class Curricula:
    """The curricula in file order; the courses of curriculum `q` are
    `members[offsets[q] : offsets[q + 1]]` (file order)."""

    names: list[str]
    offsets: np.ndarray  # int32 [Q+1], CSR into members
    members: np.ndarray  # int32, course indices

    def __post_init__(self) -> None:
        self.offsets = _int32(self.offsets)
        self.members = _int32(self.members)

    def of(self, q: int) -> np.ndarray:
        return self.members[self.offsets[q] : self.offsets[q + 1]]


@dataclass(eq=False)
class CourseRelations:
    """What links courses, derived from curricula and teachers (both as CSR arrays):
    the courses each course conflicts with (a shared curriculum or teacher, each pair
    once, sorted) and the curricula each course belongs to."""

    conflict_offsets: np.ndarray  # int32 [C+1]
    conflict_courses: np.ndarray  # int32
    curricula_offsets: np.ndarray  # int32 [C+1]
    curricula: np.ndarray  # int32, curriculum indices

    @classmethod
    def derive(cls, courses: Courses, curricula: Curricula) -> CourseRelations:
        n_courses = len(courses.names)
        neighbours: list[set[int]] = [set() for _ in range(n_courses)]
        curricula_of: list[list[int]] = [[] for _ in range(n_courses)]
        for q in range(len(curricula.names)):
            members = curricula.of(q)
            for c in members:
                curricula_of[int(c)].append(q)
                neighbours[int(c)].update(int(m) for m in members)
        by_teacher: dict[int, list[int]] = {}
        for c, t in enumerate(courses.teacher):
            by_teacher.setdefault(int(t), []).append(c)
        for same_teacher in by_teacher.values():
            for c in same_teacher:
                neighbours[c].update(same_teacher)
        for c in range(n_courses):
            neighbours[c].discard(c)
        return cls(*_csr([sorted(n) for n in neighbours]), *_csr(curricula_of))


def _view(path: str) -> property:
    """A read-only flat name for an attribute of one of the parts."""
    return property(attrgetter(path), doc=f"Same as `instance.{path}`.")


# Compared by `Instance.equals`: the file's data, not what is derived from it.
FILE_ARRAYS = (
    "course_lectures",
    "course_min_days",
    "course_students",
    "room_capacity",
    "curriculum_offsets",
    "curriculum_members",
    "unavailability",
)


class Instance:
    """One CB-CTT instance. Courses, rooms and curricula keep their file order.

    Periods are numbered `day * periods_per_day + period_of_day`. Lectures are numbered
    course by course: the lectures of course `c` are
    `course_first_lecture[c] .. course_first_lecture[c + 1] - 1`.

    Built from the file's data (the keyword arguments); kept as parts (`courses`,
    `rooms`, `curricula`, the derived `relations`) plus the calendar, `unavailability`
    (int32 [K, 3]: course, day, period_of_day, file order) and `available` (bool [C, P]).
    The flat names below read the parts.
    """

    def __init__(
        self,
        name: str,
        days: int,
        periods_per_day: int,
        course_names: list[str],
        course_teachers: list[str],
        course_lectures: np.ndarray,
        course_min_days: np.ndarray,
        course_students: np.ndarray,
        room_names: list[str],
        room_capacity: np.ndarray,
        curriculum_names: list[str],
        curriculum_offsets: np.ndarray,
        curriculum_members: np.ndarray,
        unavailability: np.ndarray,
    ) -> None:
        self.name = name
        self.days = days
        self.periods_per_day = periods_per_day
        self.courses = Courses(
            course_names, course_teachers, course_lectures, course_min_days, course_students
        )
        self.rooms = Rooms(room_names, room_capacity)
        self.curricula = Curricula(curriculum_names, curriculum_offsets, curriculum_members)
        self.unavailability = _int32(unavailability).reshape(-1, 3)
        self.available = np.ones((self.n_courses, self.n_periods), dtype=bool)
        if len(self.unavailability):
            course, day, period = self.unavailability.T
            self.available[course, day * self.periods_per_day + period] = False
        self.relations = CourseRelations.derive(self.courses, self.curricula)

    course_names = _view("courses.names")
    course_teachers = _view("courses.teachers")
    course_lectures = _view("courses.lectures")
    course_min_days = _view("courses.min_days")
    course_students = _view("courses.students")
    course_teacher = _view("courses.teacher")
    teacher_names = _view("courses.teacher_names")
    course_first_lecture = _view("courses.first_lecture")
    lecture_course = _view("courses.lecture_course")
    room_names = _view("rooms.names")
    room_capacity = _view("rooms.capacity")
    curriculum_names = _view("curricula.names")
    curriculum_offsets = _view("curricula.offsets")
    curriculum_members = _view("curricula.members")
    conflict_offsets = _view("relations.conflict_offsets")
    conflict_courses = _view("relations.conflict_courses")
    course_curricula_offsets = _view("relations.curricula_offsets")
    course_curricula = _view("relations.curricula")

    @property
    def n_courses(self) -> int:
        return len(self.course_names)

    @property
    def n_rooms(self) -> int:
        return len(self.room_names)

    @property
    def n_curricula(self) -> int:
        return len(self.curriculum_names)

    @property
    def n_periods(self) -> int:
        return self.days * self.periods_per_day

    @property
    def n_lectures(self) -> int:
        return int(self.course_lectures.sum())

    def curriculum(self, q: int) -> np.ndarray:
        """Course indices of curriculum `q`."""
        return self.curricula.of(q)

    def conflicts_of(self, c: int) -> np.ndarray:
        """Courses that conflict with course `c` (shared curriculum or teacher)."""
        return self.conflict_courses[self.conflict_offsets[c] : self.conflict_offsets[c + 1]]

    def conflict_matrix(self) -> np.ndarray:
        """Dense bool [C, C] conflict matrix (for tests and small instances only)."""
        matrix = np.zeros((self.n_courses, self.n_courses), dtype=bool)
        for c in range(self.n_courses):
            matrix[c, self.conflicts_of(c)] = True
        return matrix

    def course_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.course_names)}

    def room_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.room_names)}

    def equals(self, other: Instance) -> bool:
        """Same data (names, numbers, curricula, constraints in file order)."""
        return (
            self.name == other.name
            and self.days == other.days
            and self.periods_per_day == other.periods_per_day
            and self.course_names == other.course_names
            and self.course_teachers == other.course_teachers
            and self.room_names == other.room_names
            and self.curriculum_names == other.curriculum_names
            and all(
                np.array_equal(getattr(self, a), getattr(other, a)) for a in FILE_ARRAYS
            )
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Instance) and self.equals(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Instance(name={self.name!r}, courses={self.n_courses}, rooms={self.n_rooms}, "
            f"days={self.days}, periods_per_day={self.periods_per_day}, "
            f"curricula={self.n_curricula}, constraints={len(self.unavailability)})"
        )
