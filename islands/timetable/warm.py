"""A warm start: today's search from last night's timetable, with a cost for moving.

Covers: `WarmStart`, what the search needs of an earlier timetable (`--initial OLD.sol`,
read by `islands.timetable.carry`): the start genome (old places kept, the rest placed
by the kernels' repair), the stability cost (each lecture in a slot its course did not
hold last night costs `stability`, the minimal-perturbation weight) as kernel arrays and
as a vectorised cost of a batch, the arrays that carry it to island processes, and the
moved-lecture figures a summary reports.

Does not cover: reading the old file and counting moves (`islands.timetable.carry`), the
annealing that pays the cost (`islands.timetable.kernels`, `previous_course` /
`previous_weight` in `kernel_data`) or the problem around it
(`islands.timetable.problem`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from islands.errors import InputError
from islands.timetable.carry import CarriedSolution, carry_solution, compare
from islands.timetable.model import Instance

# A warm start anneals from this temperature unless t_start is given: hot enough to
# trade a moved lecture for a clearly better timetable, cold enough to keep the rest.
WARM_T_START = 0.5
DEFAULT_STABILITY = 5  # a moved lecture costs as much as a working day too few
# shared_arrays() names of the carried solution
_ARRAYS = ("warm_genome", "warm_slot_course", "warm_has_previous", "warm_periods", "warm_stability")


class WarmStart:
    """Last night's timetable on today's instance, and the price of moving away from it."""

    def __init__(self, instance: Instance, carried: CarriedSolution, stability: int) -> None:
        if int(stability) < 0 or int(stability) != stability:
            raise InputError(f"timetable: stability must be a whole number >= 0, got {stability}")
        self.instance = instance
        self.carried = carried
        self.stability = int(stability)
        self.previous_course = np.ascontiguousarray(carried.slot_course, dtype=np.int32)
        self.previous_weight = (
            np.asarray(carried.course_has_previous, dtype=np.int32) * self.stability
        )

    @classmethod
    def read(cls, path: str | Path, instance: Instance, stability: int) -> WarmStart:
        return cls(instance, carry_solution(path, instance), stability)

    def start_genome(self) -> np.ndarray:
        """The carried genome: -1 where a lecture has no old place (the repair places it)."""
        return self.carried.genome.astype(np.int32, copy=True)

    def cost(self, genomes: np.ndarray) -> np.ndarray:
        """Stability cost of each genome of a batch [n, lectures] (int64 [n])."""
        genomes = np.asarray(genomes).reshape(-1, self.instance.n_lectures)
        courses = self.instance.lecture_course
        outside = self.previous_course[genomes] != courses[None, :]
        return (outside * self.previous_weight[courses][None, :]).sum(axis=1).astype(np.int64)

    def describe(self, genome: np.ndarray) -> dict[str, Any]:
        """What a summary reports: lectures moved, rooms and periods changed."""
        report = compare(self.instance, self.carried, genome)
        return {
            "lectures_moved": report.moved,
            "rooms_changed": report.rooms_changed,
            "periods_changed": report.periods_changed,
            "lectures_carried": report.lectures,
            "stability_cost": int(self.cost(genome)[0]),
        }

    def shared_arrays(self) -> dict[str, np.ndarray]:
        carried = self.carried
        periods = carried.previous_periods
        if periods is None:
            periods = np.zeros((self.instance.n_courses, self.instance.n_periods), dtype=bool)
        return {
            "warm_genome": np.ascontiguousarray(carried.genome, dtype=np.int32),
            "warm_slot_course": self.previous_course,
            "warm_has_previous": np.asarray(carried.course_has_previous, dtype=np.uint8),
            "warm_periods": np.ascontiguousarray(periods, dtype=np.uint8),
            "warm_stability": np.array([self.stability], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, instance: Instance, arrays: dict[str, np.ndarray]) -> WarmStart | None:
        """The warm start `shared_arrays()` carried, or None when there was none."""
        if not all(name in arrays for name in _ARRAYS):
            return None
        carried = CarriedSolution(
            genome=np.array(arrays["warm_genome"], dtype=np.int32),
            slot_course=np.array(arrays["warm_slot_course"], dtype=np.int32),
            course_has_previous=np.array(arrays["warm_has_previous"], dtype=bool),
            kept=0,
            skipped=(),
            previous_periods=np.array(arrays["warm_periods"], dtype=bool),
        )
        return cls(instance, carried, int(np.asarray(arrays["warm_stability"])[0]))
