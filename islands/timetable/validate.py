"""The exact ITC-2007 track 3 cost of a solution, with the official validator's rules.

Covers: hard violations (Lectures, Conflicts, Availability, RoomOccupancy) and weighted
soft costs (RoomCapacity x1, MinWorkingDays x5, CurriculumCompactness x2,
RoomStability x1) of a list of entries, plus a printable report. Odd solutions follow
the competition's validator.cc: a second entry of a course in a period it already
occupies is skipped (so it counts as a missing lecture and occupies no room); missing
or extra lectures cost one each; two conflicting courses in one period cost one per
pair; k lectures in one room and period cost k - 1; an isolated curriculum period costs
(weight x) the number of that curriculum's lectures in it. Unknown ids never get here:
`islands.timetable.solution.read_sol` rejects them.

One difference, for files validator.cc scores too kindly: it skips a repeated entry with
a warning and never counts it, so a good solution copied a million times scores 0. Here
Lectures costs, per course, the larger of its missing lectures (lectures - periods it
occupies) and its extra entries (entries - lectures). That equals validator.cc's count
for every file without repeated entries and for every file with at most one entry per
lecture (every genome the search writes). `check_files` also reports repeated entries
(count and first line), as validator.cc's warnings do.

This is the plain, readable reference. The fast batch evaluator used by the search
(`islands.timetable.kernels`) is tested to agree with it on every genome.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from islands.timetable.model import Instance

HARD_NAMES = ("Lectures", "Conflicts", "Availability", "RoomOccupancy")
SOFT_NAMES = ("RoomCapacity", "MinWorkingDays", "CurriculumCompactness", "RoomStability")
MIN_WORKING_DAYS_WEIGHT = 5
COMPACTNESS_WEIGHT = 2


@dataclass(frozen=True)
class CostBreakdown:
    """Hard violation counts and weighted soft costs, per constraint."""

    lectures: int
    conflicts: int
    availability: int
    room_occupancy: int
    room_capacity: int
    min_working_days: int  # weighted (x5)
    curriculum_compactness: int  # weighted (x2)
    room_stability: int

    @property
    def hard_violations(self) -> int:
        return self.lectures + self.conflicts + self.availability + self.room_occupancy

    @property
    def soft_cost(self) -> int:
        return (
            self.room_capacity
            + self.min_working_days
            + self.curriculum_compactness
            + self.room_stability
        )

    def to_dict(self) -> dict[str, int]:
        data = asdict(self)
        data["hard_violations"] = self.hard_violations
        data["soft_cost"] = self.soft_cost
        return data

    def format_report(self) -> str:
        hard = (self.lectures, self.conflicts, self.availability, self.room_occupancy)
        soft = (self.room_capacity, self.min_working_days, self.curriculum_compactness, self.room_stability)
        lines = [f"Violations of {n} (hard) : {v}" for n, v in zip(HARD_NAMES, hard, strict=False)]
        lines += [f"Cost of {n} (soft) : {v}" for n, v in zip(SOFT_NAMES, soft, strict=False)]
        lines.append(f"violations={self.hard_violations} cost={self.soft_cost}")
        return "\n".join(lines)


def _first_entries(instance: Instance, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entries as int64 [N, 3] and the indices of the first entry of each (course,
    period) in file order; the others are the repeated entries."""
    entries = np.asarray(entries, dtype=np.int64).reshape(-1, 3)
    keys = entries[:, 0] * instance.n_periods + entries[:, 2]
    _, first = np.unique(keys, return_index=True)  # index of each key's first occurrence
    return entries, first


def timetable_matrix(instance: Instance, entries: np.ndarray) -> np.ndarray:
    """Room of each course in each period (-1 = none), skipping repeated course/period
    entries as the official validator does (the first one in file order wins)."""
    entries, first = _first_entries(instance, entries)
    table = np.full((instance.n_courses, instance.n_periods), -1, dtype=np.int32)
    table[entries[first, 0], entries[first, 2]] = entries[first, 1]
    return table


def repeated_entries(instance: Instance, entries: np.ndarray) -> np.ndarray:
    """Indices (file order) of the entries that repeat a course in a period it already
    occupies: the entries validator.cc skips with a warning."""
    entries, first = _first_entries(instance, entries)
    repeated = np.ones(len(entries), dtype=bool)
    repeated[first] = False
    return np.nonzero(repeated)[0]


def lectures_cost(instance: Instance, entries: np.ndarray, table: np.ndarray | None = None) -> int:
    """The Lectures violations: per course, max(missing lectures, extra entries)."""
    if table is None:
        table = timetable_matrix(instance, entries)
    occupied = (table >= 0).sum(axis=1)
    n_entries = np.bincount(
        np.asarray(entries, dtype=np.int64).reshape(-1, 3)[:, 0], minlength=instance.n_courses
    )
    missing = instance.course_lectures - occupied
    extra = n_entries - instance.course_lectures
    return int(np.maximum(np.maximum(missing, extra), 0).sum())


def evaluate_entries(instance: Instance, entries: np.ndarray) -> CostBreakdown:
    """The full cost breakdown of entries [N, 3] (course, room, period)."""
    table = timetable_matrix(instance, entries)
    present = table >= 0
    n_courses, ppd = instance.n_courses, instance.periods_per_day

    lectures = lectures_cost(instance, entries, table)

    conflicts = 0
    for c1 in range(n_courses):
        for c2 in instance.conflicts_of(c1):
            if c2 > c1:
                conflicts += int(np.count_nonzero(present[c1] & present[c2]))

    availability = int(np.count_nonzero(present & ~instance.available))

    room_load = np.zeros((instance.n_rooms, instance.n_periods), dtype=np.int64)
    courses, periods = np.nonzero(present)
    np.add.at(room_load, (table[courses, periods], periods), 1)
    room_occupancy = int(np.maximum(room_load - 1, 0).sum())

    shortfall = instance.course_students[courses] - instance.room_capacity[table[courses, periods]]
    room_capacity = int(np.maximum(shortfall, 0).sum())

    per_day = present.reshape(n_courses, instance.days, ppd).any(axis=2).sum(axis=1)
    min_working_days = int(np.maximum(instance.course_min_days - per_day, 0).sum())

    compactness = 0
    for q in range(instance.n_curricula):
        load = present[instance.curriculum(q)].sum(axis=0).reshape(instance.days, ppd)
        for day in range(instance.days):
            for slot in range(ppd):
                if load[day, slot] == 0:
                    continue
                before = slot > 0 and load[day, slot - 1] > 0
                after = slot < ppd - 1 and load[day, slot + 1] > 0
                if not before and not after:
                    compactness += int(load[day, slot])

    room_stability = 0
    for c in range(n_courses):
        used = np.unique(table[c][present[c]])
        room_stability += max(len(used) - 1, 0)

    return CostBreakdown(
        lectures=lectures,
        conflicts=conflicts,
        availability=availability,
        room_occupancy=room_occupancy,
        room_capacity=room_capacity,
        min_working_days=MIN_WORKING_DAYS_WEIGHT * min_working_days,
        curriculum_compactness=COMPACTNESS_WEIGHT * compactness,
        room_stability=room_stability,
    )


@dataclass(frozen=True)
class FileCheck:
    """The cost of a solution file and what validator.cc would warn about in it."""

    breakdown: CostBreakdown
    entries: int
    repeated_entries: int  # entries naming a course in a period it already occupies
    first_repeated_line: int | None  # 1-based line of the first one
    warning: str | None  # one line about the repeated entries; None when there are none

    def to_dict(self) -> dict[str, int | None]:
        data: dict[str, int | None] = dict(self.breakdown.to_dict())
        data["entries"] = self.entries
        data["repeated_entries"] = self.repeated_entries
        data["first_repeated_line"] = self.first_repeated_line
        return data


def check_files(instance_path: str, solution_path: str) -> FileCheck:
    """Read an instance and a solution file, evaluate, and find repeated entries."""
    from islands.timetable.instance import read_ctt
    from islands.timetable.solution import read_sol_lines

    instance = read_ctt(instance_path)
    entries, lines = read_sol_lines(solution_path, instance)
    repeated = repeated_entries(instance, entries)
    first_line, warning = None, None
    if len(repeated):
        course, _, period = (int(v) for v in entries[repeated[0]])
        first_line = int(lines[repeated[0]])
        day, slot = divmod(period, instance.periods_per_day)
        warning = (
            f"{solution_path}:{first_line}: repeated entry: course "
            f"{instance.course_names[course]} already has a lecture at day {day} period {slot} "
            f"({len(repeated)} of {len(entries)} entries repeat one; skipped as "
            "validator.cc does, and a course's entries beyond its lectures count as "
            "Lectures violations)"
        )
    return FileCheck(
        breakdown=evaluate_entries(instance, entries),
        entries=len(entries),
        repeated_entries=len(repeated),
        first_repeated_line=first_line,
        warning=warning,
    )


def validate_files(instance_path: str, solution_path: str) -> CostBreakdown:
    """Read an instance and a solution file and evaluate (InputError on bad files)."""
    return check_files(instance_path, solution_path).breakdown
