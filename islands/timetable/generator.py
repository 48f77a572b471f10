"""Synthetic university terms in the ITC-2007 track 3 model, deterministic per seed.

Covers: `generate_instance` (teachers with several courses, curricula that share courses,
room sizes that fit the enrolments, some unavailable periods, minimum working days; sized
so the term looks feasible: enough room-periods, every curriculum and teacher fits in the
week) and `write_demo_term`, the term that `islands run` with no spec solves.

Does not cover: reading or writing files (`islands.timetable.instance`) or solving.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from islands.errors import InputError
from islands.timetable.instance import write_ctt
from islands.timetable.model import Instance, _csr

# Room-periods kept free so a timetable can exist and the search has room to move.
MAX_OCCUPANCY = 0.9
# A curriculum or teacher uses at most this share of the week's periods.
MAX_GROUP_LOAD = 0.7

DEMO_SIZE = {"courses": 80, "rooms": 12, "days": 5, "periods_per_day": 6, "curricula": 40}


def generate_instance(
    *, courses: int, rooms: int, days: int, periods_per_day: int, curricula: int, seed: int
) -> Instance:
    """A realistic synthetic term. Raises InputError for impossible sizes."""
    if min(courses, rooms, days, periods_per_day) < 1 or curricula < 0:
        raise InputError("generate: courses, rooms, days and periods per day must be >= 1")
    rng = np.random.default_rng(seed)
    periods = days * periods_per_day
    group_cap = max(1, int(MAX_GROUP_LOAD * periods))

    # Lectures per course: mostly 2-5 a week, capped by the periods of a week.
    lectures = rng.choice([1, 2, 3, 3, 4, 4, 5, 6], size=courses).astype(np.int64)
    lectures = np.minimum(lectures, group_cap)
    room_periods = rooms * periods
    while lectures.sum() > MAX_OCCUPANCY * room_periods and lectures.max() > 1:
        lectures[np.argmax(lectures - rng.random(courses))] -= 1
    if lectures.sum() > MAX_OCCUPANCY * room_periods:
        raise InputError(
            f"generate: {courses} courses need more than {MAX_OCCUPANCY:.0%} of the "
            f"{room_periods} room-periods; add rooms or periods"
        )
    min_days = np.minimum(lectures, rng.integers(2, 6, size=courses)).clip(1, days)

    # Teachers: most teach 1-3 courses; a teacher's weekly load stays under group_cap.
    teacher_of = np.empty(courses, dtype=np.int64)
    teacher_load: list[int] = []
    teacher_quota: list[int] = []
    current = -1
    for c in rng.permutation(courses):
        if current < 0 or teacher_quota[current] == 0 or teacher_load[current] + lectures[c] > group_cap:
            teacher_load.append(0)
            teacher_quota.append(int(rng.choice([1, 2, 2, 3, 3, 4])))
            current = len(teacher_load) - 1
        teacher_of[c] = current
        teacher_load[current] += int(lectures[c])
        teacher_quota[current] -= 1

    # Curricula: a programme year takes a window of related courses plus a shared one
    # (a common course taken by several programmes), within group_cap lectures.
    members: list[list[int]] = []
    for q in range(curricula):
        size = int(rng.integers(3, 8))
        start = int(rng.integers(0, courses))
        chosen: list[int] = []
        load = 0
        for offset in range(courses):
            c = (start + offset * int(rng.integers(1, 3))) % courses
            if c in chosen or load + lectures[c] > group_cap:
                continue
            chosen.append(c)
            load += int(lectures[c])
            if len(chosen) >= size:
                break
        if q > 0 and rng.random() < 0.5:
            shared = members[int(rng.integers(0, q))]
            extra = shared[int(rng.integers(0, len(shared)))]
            if extra not in chosen and load + lectures[extra] <= group_cap:
                chosen.append(extra)
        members.append(sorted(chosen))

    # Students: courses in more curricula are bigger.
    in_curricula = np.zeros(courses, dtype=np.int64)
    for chosen in members:
        in_curricula[chosen] += 1
    students = (rng.lognormal(3.4, 0.6, size=courses) * (1 + 0.5 * in_curricula)).astype(np.int64)
    students = students.clip(5, 400)

    # Rooms: capacities at quantiles of the enrolments, so most courses fit somewhere.
    quantiles = np.sort(rng.uniform(0.3, 1.0, size=rooms))
    capacity = np.quantile(students, quantiles).astype(np.int64)
    capacity[-1] = max(int(capacity[-1]), int(students.max()))
    capacity = ((capacity + 9) // 10 * 10).astype(np.int64)

    # Unavailability: about one course in six is away a few periods, keeping enough.
    constraints: list[tuple[int, int, int]] = []
    for c in range(courses):
        if rng.random() < 1 / 6:
            spare = periods - int(lectures[c]) - 2
            count = int(min(rng.integers(2, 9), max(spare, 0)))
            for p in sorted(rng.choice(periods, size=count, replace=False)):
                constraints.append((c, int(p) // periods_per_day, int(p) % periods_per_day))

    offsets, flat = _csr(members)
    width = len(str(courses))
    return Instance(
        name=f"synthetic-{courses}c-{rooms}r-{days}x{periods_per_day}-s{seed}",
        days=days,
        periods_per_day=periods_per_day,
        course_names=[f"c{c:0{width}d}" for c in range(courses)],
        course_teachers=[f"t{t:0{width}d}" for t in teacher_of],
        course_lectures=lectures.astype(np.int32),
        course_min_days=min_days.astype(np.int32),
        course_students=students.astype(np.int32),
        room_names=[f"r{r:0{len(str(rooms))}d}" for r in range(rooms)],
        room_capacity=capacity.astype(np.int32),
        curriculum_names=[f"q{q:0{len(str(max(curricula, 1)))}d}" for q in range(curricula)],
        curriculum_offsets=offsets,
        curriculum_members=flat,
        unavailability=np.array(constraints, dtype=np.int32).reshape(-1, 3),
    )


def write_demo_term(path: Path, seed: int = 0) -> Path:
    """Write the demo term (about 80 courses) that `islands run` with no spec solves."""
    return write_ctt(generate_instance(seed=seed, **DEMO_SIZE), path)
