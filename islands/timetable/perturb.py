"""Tomorrow's instance from today's: a few rooms closed, a few per cent of the courses changed.

Covers: `perturb_instance(base, close_rooms=, change_courses=, seed=)`, deterministic per
seed, for tests and benchmarks of nightly regeneration. It closes K rooms (refused with
one InputError line when the lectures would no longer fit in the room-periods left) and
changes about a share of the courses: some removed (with their constraints, curricula that
become empty go too), some added (new names, lectures / minimum days / students drawn
from the existing courses, an existing or a new teacher, joined to an existing
curriculum), a few given new unavailable periods. `Perturbation` says what changed.

Does not cover: generating a term from nothing (`islands.timetable.generator`), reading
or writing `.ctt` files (`islands.timetable.instance`), or carrying last night's
solution onto the new instance (`islands.timetable.carry`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from islands.errors import InputError
from islands.timetable.model import Instance, _csr

# A teacher or curriculum that an added course joins keeps under this share of the week
# (the generator's rule), so the new course does not make the term infeasible by itself.
MAX_GROUP_LOAD = 0.7


@dataclass(frozen=True)
class Perturbation:
    """What `perturb_instance` changed (names from the base instance, or the new ones)."""

    closed_rooms: tuple[str, ...]
    removed_courses: tuple[str, ...]
    added_courses: tuple[str, ...]
    constrained_courses: tuple[str, ...]  # existing courses with new unavailable periods
    base_courses: int

    @property
    def changed_courses(self) -> int:
        return len(self.removed_courses) + len(self.added_courses) + len(self.constrained_courses)

    def summary(self) -> str:
        """One line: what changed."""
        rooms = ", ".join(self.closed_rooms) or "none"
        share = self.changed_courses / max(self.base_courses, 1)
        return (
            f"closed {len(self.closed_rooms)} room(s) ({rooms}); changed {self.changed_courses} "
            f"of {self.base_courses} courses ({share:.1%}): {len(self.removed_courses)} removed, "
            f"{len(self.added_courses)} added, {len(self.constrained_courses)} with new "
            "unavailable periods"
        )


def _split(changes: int) -> tuple[int, int, int]:
    """Changed courses as (removed, added, given constraints), about a third each."""
    return (changes + 2) // 3, (changes + 1) // 3, changes // 3


def _fresh_name(prefix: str, taken: set[str]) -> str:
    k = 0
    while f"{prefix}{k}" in taken:
        k += 1
    taken.add(f"{prefix}{k}")
    return f"{prefix}{k}"


def perturb_instance(
    base: Instance, *, close_rooms: int = 1, change_courses: float = 0.05, seed: int = 0
) -> tuple[Instance, Perturbation]:
    """Tomorrow's instance and what changed. Raises InputError for impossible requests."""
    if close_rooms < 0:
        raise InputError(f"perturb: --close-rooms must be >= 0, got {close_rooms}")
    if not 0.0 <= change_courses <= 1.0:
        raise InputError(f"perturb: --change-courses must be a share in 0..1, got {change_courses}")
    if close_rooms >= base.n_rooms:
        raise InputError(f"perturb: cannot close {close_rooms} of {base.n_rooms} room(s): none would be left")
    rng = np.random.default_rng(seed)
    n_courses, periods = base.n_courses, base.n_periods
    changes = round(change_courses * n_courses)
    if change_courses > 0:
        changes = max(changes, 1)
    n_removed, n_added, n_constrained = _split(changes)
    n_removed = min(n_removed, n_courses - 1)  # a term keeps at least one course

    order = rng.permutation(n_courses)
    removed = sorted(int(c) for c in order[:n_removed])
    constrained = sorted(int(c) for c in order[n_removed : n_removed + n_constrained])
    gone = set(removed)
    kept = [c for c in range(n_courses) if c not in gone]

    names = [base.course_names[c] for c in kept]
    teachers = [base.course_teachers[c] for c in kept]
    numbers = [(int(base.course_lectures[c]), int(base.course_min_days[c]),
                int(base.course_students[c])) for c in kept]
    new_index = {old: i for i, old in enumerate(kept)}
    members = [[new_index[int(c)] for c in base.curriculum(q) if int(c) in new_index]
               for q in range(base.n_curricula)]

    cap = max(1, int(MAX_GROUP_LOAD * periods))
    teacher_load: dict[str, int] = {}
    for teacher, (lectures, _, _) in zip(teachers, numbers, strict=True):
        teacher_load[teacher] = teacher_load.get(teacher, 0) + lectures
    taken_names = set(base.course_names)
    taken_teachers = set(base.course_teachers)
    added: list[str] = []
    for _ in range(n_added):
        model = int(rng.integers(0, n_courses))  # an existing course as a pattern for the numbers
        lectures = int(min(base.course_lectures[model], cap))
        min_days = int(min(base.course_min_days[model], lectures, base.days))
        students = int(base.course_students[int(rng.integers(0, n_courses))])
        name = _fresh_name("new", taken_names)
        teacher = str(rng.choice(sorted(teacher_load))) if teacher_load and rng.random() < 0.5 else ""
        if not teacher or teacher_load[teacher] + lectures > cap:
            teacher = _fresh_name("tnew", taken_teachers)
        teacher_load[teacher] = teacher_load.get(teacher, 0) + lectures
        course = len(names)
        names.append(name)
        teachers.append(teacher)
        numbers.append((lectures, min_days, students))
        loads = [sum(numbers[c][0] for c in group) for group in members]
        fitting = [q for q, load in enumerate(loads) if members[q] and load + lectures <= cap]
        if fitting:
            members[fitting[int(rng.integers(0, len(fitting)))]].append(course)
        added.append(name)

    unavailability = [(new_index[int(c)], int(d), int(p)) for c, d, p in base.unavailability
                      if int(c) in new_index]
    for c in constrained:
        away = ~base.available[c]
        free = np.nonzero(~away)[0]
        spare = len(free) - int(base.course_lectures[c]) - 2  # keep room for its lectures
        count = int(min(rng.integers(2, 5), max(spare, 0)))
        for p in sorted(int(p) for p in rng.choice(free, size=count, replace=False)):
            unavailability.append((new_index[c], p // base.periods_per_day, p % base.periods_per_day))
    unavailability.sort(key=lambda row: row[0])  # file order: by course, as the base had

    total = sum(n[0] for n in numbers)
    rooms_left = base.n_rooms - close_rooms
    if total > rooms_left * periods:
        raise InputError(
            f"perturb: cannot close {close_rooms} of {base.n_rooms} room(s): {total} lectures "
            f"need at least {-(-total // periods)} rooms of {periods} periods"
        )
    closed = sorted(int(r) for r in rng.choice(base.n_rooms, size=close_rooms, replace=False))
    open_rooms = [r for r in range(base.n_rooms) if r not in closed]

    curricula = [(base.curriculum_names[q], group) for q, group in enumerate(members) if group]
    offsets, flat = _csr([group for _, group in curricula])
    instance = Instance(
        name=f"{base.name}-next-s{seed}",
        days=base.days,
        periods_per_day=base.periods_per_day,
        course_names=names,
        course_teachers=teachers,
        course_lectures=np.array([n[0] for n in numbers], dtype=np.int32),
        course_min_days=np.array([n[1] for n in numbers], dtype=np.int32),
        course_students=np.array([n[2] for n in numbers], dtype=np.int32),
        room_names=[base.room_names[r] for r in open_rooms],
        room_capacity=base.room_capacity[open_rooms],
        curriculum_names=[name for name, _ in curricula],
        curriculum_offsets=offsets,
        curriculum_members=flat,
        unavailability=np.array(unavailability, dtype=np.int32).reshape(-1, 3),
    )
    return instance, Perturbation(
        closed_rooms=tuple(base.room_names[r] for r in closed),
        removed_courses=tuple(base.course_names[c] for c in removed),
        added_courses=tuple(added),
        constrained_courses=tuple(base.course_names[c] for c in constrained),
        base_courses=n_courses,
    )
