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


def timetable_matrix(instance: Instance, entries: np.ndarray) -> np.ndarray:
    """Room of each course in each period (-1 = none), skipping repeated course/period
    entries as the official validator does (the first one in file order wins)."""
    table = np.full((instance.n_courses, instance.n_periods), -1, dtype=np.int32)
    for c, r, p in np.asarray(entries).reshape(-1, 3):
        if table[c, p] < 0:
            table[c, p] = r
    return table


def evaluate_entries(instance: Instance, entries: np.ndarray) -> CostBreakdown:
    """The full cost breakdown of entries [N, 3] (course, room, period)."""
    table = timetable_matrix(instance, entries)
    present = table >= 0
    n_courses, ppd = instance.n_courses, instance.periods_per_day

    lectures = int(np.abs(present.sum(axis=1) - instance.course_lectures).sum())

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


def validate_files(instance_path: str, solution_path: str) -> CostBreakdown:
    """Read an instance and a solution file and evaluate (InputError on bad files)."""
    from islands.timetable.instance import read_ctt
    from islands.timetable.solution import read_sol

    instance = read_ctt(instance_path)
    return evaluate_entries(instance, read_sol(solution_path, instance))
